"""Cell descriptions: ``spice_models/<name>/cell.toml`` plus its netlist template.

The format is documented in ``docs/ARCHITECTURE.md`` ("The cell description"). :func:`load_cell`
reads and validates it and returns a frozen :class:`CellSpec`; every problem is reported as one
:class:`~noisecell.errors.InputError` line naming the ``cell.toml`` and the offending key.

Voltages are V, temperatures °C. Parameter values in ``[params]`` are in the unit given by their
``unit`` field *as written into the netlist* (e.g. sky130 subcircuit widths are in µm), so noisecell
passes them to ngspice unchanged.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE = re.compile(r"^[A-Za-z0-9_.:+\-\[\]<>#]+$")
_KNOWN_TECHNOLOGIES = ("generic", "sky130")


@dataclass(frozen=True)
class SupplySpec:
    """A DC source whose power counts toward the cell's energy.

    source: element name of the voltage source in the netlist (its current is recorded).
    param: the ``.param`` setting its voltage. nominal_v / range_v: V.
    """

    source: str
    param: str
    nominal_v: float
    range_v: tuple[float, float]


@dataclass(frozen=True)
class BiasSpec:
    """The input that sets P(1): ``param`` (a .param), valid ``range_v`` (V), ``mid_v`` (V, nominal P(1)=0.5)."""

    param: str
    range_v: tuple[float, float]
    mid_v: float


@dataclass(frozen=True)
class ReadoutSpec:
    """How the bit is read: 1 when V(v_out) [- V(v_outb) if differential] > threshold_v (V)."""

    mode: str
    threshold_v: float
    #: full width of the comparator's hysteresis band, V (switch up at threshold + h/2, down at
    #: threshold - h/2). A property of the cell's state separation, declared so that strongly biased
    #: points (whose histogram has no visible second mode) are digitised without noise chatter.
    #: None: estimated per trace from the histogram.
    hysteresis_v: float | None = None


@dataclass(frozen=True)
class TrimEntry:
    """One stored trim value: the trim voltage value_v (V) found at (corner, temp_c °C[, vdd_v V])."""

    corner: str
    temp_c: float
    value_v: float
    vdd_v: float | None = None


@dataclass(frozen=True)
class TrimSpec:
    """A trim input (a .param): nominal_v and range_v in V, and optionally a stored table of trimmed values."""

    nominal_v: float
    range_v: tuple[float, float]
    description: str = ""
    table: tuple[TrimEntry, ...] = ()

    def value_for(self, corner: str, temp_c: float) -> float:
        """Trim value (V) for ``corner`` at ``temp_c`` (°C).

        Uses the stored table when it has entries for ``corner``: linear interpolation in
        temperature between the nearest entries, the nearest entry's value outside them (trim is not
        extrapolated). Falls back to ``nominal_v`` when the table has nothing for the corner.
        """
        rows = sorted((e.temp_c, e.value_v) for e in self.table if e.corner == corner)
        if not rows:
            return self.nominal_v
        if temp_c <= rows[0][0]:
            return rows[0][1]
        if temp_c >= rows[-1][0]:
            return rows[-1][1]
        for (t0, v0), (t1, v1) in zip(rows, rows[1:]):
            if t0 <= temp_c <= t1:
                return v0 if t1 == t0 else v0 + (v1 - v0) * (temp_c - t0) / (t1 - t0)
        return self.nominal_v  # pragma: no cover - unreachable


@dataclass(frozen=True)
class ParamSpec:
    """Any other user-settable .param: nominal, min, max, in ``unit`` (as written in the netlist)."""

    nominal: float
    min: float
    max: float
    unit: str = ""


@dataclass(frozen=True)
class CellSpec:
    """A validated cell description. See the module docstring and docs/ARCHITECTURE.md."""

    name: str
    description: str
    technology: str
    netlist_path: Path
    template: str
    corners: tuple[str, ...]
    nominal_corner: str
    nominal_temp_c: float
    supplies: dict[str, SupplySpec]
    bias: BiasSpec
    outputs: dict[str, str]
    readout: ReadoutSpec
    trim: dict[str, TrimSpec] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    cell_dir: Path | None = None

    @property
    def main_supply(self) -> str:
        """Name of the main supply (``vdd`` if present, else the first listed)."""
        return "vdd" if "vdd" in self.supplies else next(iter(self.supplies))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the template text is left out; its path is included)."""
        d = {
            "name": self.name,
            "description": self.description,
            "technology": self.technology,
            "netlist_path": str(self.netlist_path),
            "corners": list(self.corners),
            "nominal": {"corner": self.nominal_corner, "temp_c": self.nominal_temp_c},
            "supplies": {k: {**asdict(v), "range_v": list(v.range_v)} for k, v in self.supplies.items()},
            "bias": {**asdict(self.bias), "range_v": list(self.bias.range_v)},
            "outputs": dict(self.outputs),
            "readout": asdict(self.readout),
            "trim": {k: {"nominal_v": t.nominal_v, "range_v": list(t.range_v), "description": t.description,
                         "table": [asdict(e) for e in t.table]} for k, t in self.trim.items()},
            "params": {k: asdict(p) for k, p in self.params.items()},
        }
        return d

    def summary(self) -> str:
        lines = [f"cell {self.name} ({self.technology}): {self.description}",
                 f"  netlist: {self.netlist_path}",
                 f"  corners: {', '.join(self.corners)} (nominal {self.nominal_corner}, {self.nominal_temp_c:g} °C)"]
        for k, s in self.supplies.items():
            lines.append(f"  supply {k}: {s.source} = {s.param} = {s.nominal_v:g} V, range {s.range_v[0]:g}..{s.range_v[1]:g} V")
        b = self.bias
        lines.append(f"  bias: {b.param}, range {b.range_v[0]:g}..{b.range_v[1]:g} V, mid {b.mid_v:g} V")
        lines.append("  outputs: " + ", ".join(f"{k}=V({v})" for k, v in self.outputs.items()))
        lines.append(f"  readout: {self.readout.mode}, threshold {self.readout.threshold_v:g} V")
        for k, t in self.trim.items():
            lines.append(f"  trim {k}: nominal {t.nominal_v:g} V, range {t.range_v[0]:g}..{t.range_v[1]:g} V"
                         f"{', ' + str(len(t.table)) + ' stored values' if t.table else ''} {t.description}")
        for k, p in self.params.items():
            lines.append(f"  param {k}: nominal {p.nominal:g} {p.unit}, range {p.min:g}..{p.max:g}")
        return "\n".join(lines)


def spice_models_dir() -> Path:
    """The folder holding the cells: ``$NOISECELL_SPICE_MODELS`` if set, else the repo's ``spice_models/``."""
    env = os.environ.get("NOISECELL_SPICE_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "spice_models"


def list_cells() -> list[str]:
    """Names of the cells (folders with a cell.toml) in :func:`spice_models_dir`, sorted."""
    root = spice_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/cell.toml"))


def _resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.name == "cell.toml" and p.is_file():
        return p
    if p.is_dir() and (p / "cell.toml").is_file():
        return p / "cell.toml"
    if _IDENT.match(name_or_path):
        cand = spice_models_dir() / name_or_path / "cell.toml"
        if cand.is_file():
            return cand
    known = ", ".join(list_cells()) or "none"
    raise InputError(f"cell {name_or_path!r}: no such cell (no cell.toml found); available cells: {known}, "
                     "or pass a folder containing cell.toml")


class _Reader:
    """Typed access to the TOML table with errors naming the file and the dotted key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{self.path}: key {key!r}: {msg}")

    def get(self, table: dict, key: str, dotted: str, *, required: bool = True, default: Any = None):
        if key not in table:
            if required:
                raise InputError(f"{self.path}: missing required key {dotted!r} (see docs/ARCHITECTURE.md, 'The cell description')")
            return default
        return table[key]

    def num(self, table: dict, key: str, dotted: str, **kw) -> float:
        v = self.get(table, key, dotted, **kw)
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise self.fail(dotted, f"expected a finite number, got {v!r}")
        return float(v)

    def string(self, table: dict, key: str, dotted: str, **kw) -> str:
        v = self.get(table, key, dotted, **kw)
        if v is None:
            return v
        if not isinstance(v, str):
            raise self.fail(dotted, f"expected a string, got {v!r}")
        return v

    def ident(self, table: dict, key: str, dotted: str, **kw) -> str:
        v = self.string(table, key, dotted, **kw)
        if v is not None and not _IDENT.match(v):
            raise self.fail(dotted, f"{v!r} is not a valid SPICE identifier (letters, digits, _)")
        return v

    def range2(self, table: dict, key: str, dotted: str) -> tuple[float, float]:
        v = self.get(table, key, dotted)
        if (not isinstance(v, list) or len(v) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in v)):
            raise self.fail(dotted, f"expected [low, high] (two finite numbers), got {v!r}")
        lo, hi = float(v[0]), float(v[1])
        if lo > hi:
            raise self.fail(dotted, f"low {lo:g} is above high {hi:g}")
        return lo, hi

    def table(self, table: dict, key: str, dotted: str, *, required: bool = True) -> dict:
        v = self.get(table, key, dotted, required=required, default={})
        if not isinstance(v, dict):
            raise self.fail(dotted, "expected a table")
        return v


def load_cell(name_or_path: str) -> CellSpec:
    """Load and validate a cell by name (folder in :func:`spice_models_dir`), folder or cell.toml path.

    Checks every key, that every referenced .param exists in the netlist template, that supply
    sources exist, that nominal values lie in their ranges and that the template passes the netlist
    safety check (:func:`noisecell.netlist.check_template`). Raises :class:`InputError`.
    """
    from . import netlist as _netlist  # local: netlist imports nothing from here, avoid cycles anyway

    path = _resolve(str(name_or_path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}); fix the syntax")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}; a binary file?); write cell.toml as UTF-8 TOML")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})")
    r = _Reader(path)
    name = r.ident(raw, "name", "name")
    description = r.string(raw, "description", "description", required=False, default="") or ""
    technology = r.string(raw, "technology", "technology")
    if technology not in _KNOWN_TECHNOLOGIES:
        raise r.fail("technology", f"unknown technology {technology!r}; use one of {', '.join(_KNOWN_TECHNOLOGIES)}")
    netlist_name = r.string(raw, "netlist", "netlist")
    netlist_path = (path.parent / netlist_name).resolve()
    if netlist_path.parent != path.parent.resolve():
        raise r.fail("netlist", f"{netlist_name!r} must be a file next to cell.toml")
    if not netlist_path.is_file():
        raise r.fail("netlist", f"netlist file {netlist_path} does not exist")

    from .technology import corners as _tech_corners
    corners_raw = r.get(raw, "corners", "corners")
    if not isinstance(corners_raw, list) or not corners_raw or not all(isinstance(c, str) for c in corners_raw):
        raise r.fail("corners", f"expected a non-empty list of corner names, got {corners_raw!r}")
    offered = _tech_corners(technology)
    for c in corners_raw:
        if c not in offered:
            raise r.fail("corners", f"corner {c!r} is not offered by technology {technology!r} ({', '.join(offered)})")
    nominal = r.table(raw, "nominal", "nominal")
    nominal_corner = r.string(nominal, "corner", "nominal.corner")
    if nominal_corner not in corners_raw:
        raise r.fail("nominal.corner", f"{nominal_corner!r} is not in corners {corners_raw}")
    nominal_temp_c = r.num(nominal, "temp_c", "nominal.temp_c")

    # Cell templates are part of the repo or a user folder; they get the same safety check as any
    # user netlist, with includes allowed only inside the cell's own folder or the technology's models.
    # Includes are inlined here (checked recursively), so ngspice never resolves a path itself.
    from .technology import allowed_include_dirs as _tech_dirs
    template = _netlist.load_template(netlist_path, allowed_dirs=[path.parent.resolve()] + _tech_dirs(technology))
    defined = _netlist.template_params(template)

    def need_param(p: str, key: str) -> None:
        if p.lower() not in defined:
            raise r.fail(key, f".param {p} is not defined in {netlist_path.name}; add a '.param {p}=<value>' line")

    supplies: dict[str, SupplySpec] = {}
    sup_tab = r.table(raw, "supplies", "supplies")
    if not sup_tab:
        raise r.fail("supplies", "at least one supply is required")
    element_names = {e.lower() for e in _netlist.element_names(template)}
    for sname, s in sup_tab.items():
        key = f"supplies.{sname}"
        if not _IDENT.match(sname):
            raise r.fail(key, "supply names must be identifiers")
        if not isinstance(s, dict):
            raise r.fail(key, "expected a table")
        src = r.ident(s, "source", key + ".source")
        if src.lower() not in element_names or not src.lower().startswith("v"):
            raise r.fail(key + ".source", f"voltage source {src} not found in {netlist_path.name}")
        param = r.ident(s, "param", key + ".param")
        need_param(param, key + ".param")
        nom = r.num(s, "nominal_v", key + ".nominal_v")
        rng = r.range2(s, "range_v", key + ".range_v")
        if not rng[0] <= nom <= rng[1]:
            raise r.fail(key + ".nominal_v", f"{nom:g} V is outside range_v {list(rng)}")
        supplies[sname] = SupplySpec(src, param, nom, rng)

    b = r.table(raw, "bias", "bias")
    bias = BiasSpec(r.ident(b, "param", "bias.param"), r.range2(b, "range_v", "bias.range_v"),
                    r.num(b, "mid_v", "bias.mid_v", required=False, default=0.0) or 0.0)
    need_param(bias.param, "bias.param")
    if not bias.range_v[0] <= bias.mid_v <= bias.range_v[1]:
        raise r.fail("bias.mid_v", f"{bias.mid_v:g} V is outside range_v {list(bias.range_v)}")

    out_tab = r.table(raw, "outputs", "outputs")
    outputs: dict[str, str] = {}
    for k, node in out_tab.items():
        if not _IDENT.match(k):
            raise r.fail(f"outputs.{k}", "output names must be identifiers")
        if not isinstance(node, str) or not _NODE.match(node):
            raise r.fail(f"outputs.{k}", f"expected a node name, got {node!r}")
        outputs[k if k.startswith("v_") else f"v_{k}"] = node
    if "v_out" not in outputs:
        raise r.fail("outputs.v_out", "the primary output v_out is required")

    ro = r.table(raw, "readout", "readout", required=False)
    mode = r.string(ro, "mode", "readout.mode", required=False, default="single")
    if mode not in ("single", "differential"):
        raise r.fail("readout.mode", f"expected 'single' or 'differential', got {mode!r}")
    if mode == "differential" and "v_outb" not in outputs:
        raise r.fail("readout.mode", "differential readout needs an output named v_outb")
    hyst = r.num(ro, "hysteresis_v", "readout.hysteresis_v", required=False, default=None)
    if hyst is not None and hyst < 0:
        raise r.fail("readout.hysteresis_v", f"must be >= 0 V (full band width), got {hyst!r}")
    readout = ReadoutSpec(mode, r.num(ro, "threshold_v", "readout.threshold_v", required=False, default=0.0) or 0.0,
                          hyst)

    trims: dict[str, TrimSpec] = {}
    for tname, t in r.table(raw, "trim", "trim", required=False).items():
        key = f"trim.{tname}"
        if not _IDENT.match(tname) or not isinstance(t, dict):
            raise r.fail(key, "expected [trim.<PARAM>] tables named after a .param")
        need_param(tname, key)
        nom = r.num(t, "nominal_v", key + ".nominal_v")
        rng = r.range2(t, "range_v", key + ".range_v")
        if not rng[0] <= nom <= rng[1]:
            raise r.fail(key + ".nominal_v", f"{nom:g} V is outside range_v {list(rng)}")
        entries = []
        tab = t.get("table", [])
        if not isinstance(tab, list):
            raise r.fail(key + ".table", "expected an array of tables [[trim.X.table]] with corner, temp_c, value_v")
        for i, e in enumerate(tab):
            ek = f"{key}.table[{i}]"
            if not isinstance(e, dict):
                raise r.fail(ek, "expected a table with corner, temp_c, value_v")
            corner = r.string(e, "corner", ek + ".corner")
            if corner not in corners_raw:
                raise r.fail(ek + ".corner", f"{corner!r} is not one of the cell's corners")
            val = r.num(e, "value_v", ek + ".value_v")
            if not rng[0] <= val <= rng[1]:
                raise r.fail(ek + ".value_v", f"{val:g} V is outside range_v {list(rng)}")
            entries.append(TrimEntry(corner, r.num(e, "temp_c", ek + ".temp_c"), val,
                                     r.num(e, "vdd_v", ek + ".vdd_v", required=False)))
        trims[tname] = TrimSpec(nom, rng, r.string(t, "description", key + ".description", required=False,
                                                   default="") or "", tuple(entries))

    params: dict[str, ParamSpec] = {}
    for pname, p in r.table(raw, "params", "params", required=False).items():
        key = f"params.{pname}"
        if not _IDENT.match(pname) or not isinstance(p, dict):
            raise r.fail(key, "expected PARAM = { nominal = .., min = .., max = .., unit = '..' }")
        need_param(pname, key)
        spec = ParamSpec(r.num(p, "nominal", key + ".nominal"), r.num(p, "min", key + ".min"),
                         r.num(p, "max", key + ".max"), r.string(p, "unit", key + ".unit", required=False, default="") or "")
        if not spec.min <= spec.nominal <= spec.max:
            raise r.fail(key, f"nominal {spec.nominal:g} is outside [{spec.min:g}, {spec.max:g}]")
        params[pname] = spec

    used = [s.param.lower() for s in supplies.values()] + [bias.param.lower()] + [t.lower() for t in trims] + [p.lower() for p in params]
    dup = {u for u in used if used.count(u) > 1}
    if dup:
        raise InputError(f"{path}: .param {sorted(dup)[0]} is listed twice (supplies/bias/trim/params must be distinct)")

    return CellSpec(name=name, description=description, technology=technology, netlist_path=netlist_path,
                    template=template, corners=tuple(corners_raw), nominal_corner=nominal_corner,
                    nominal_temp_c=nominal_temp_c, supplies=supplies, bias=bias, outputs=outputs,
                    readout=readout, trim=trims, params=params, cell_dir=path.parent.resolve())
