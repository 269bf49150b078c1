"""Cell descriptions: ``spice_models/<name>/cell.toml`` plus its netlist template.

The format is documented in ``docs/ARCHITECTURE.md`` ("The cell description"). :func:`load_cell`
reads and validates it and returns a frozen :class:`CellSpec`; every problem is reported as one
:class:`~noisecell.errors.InputError` line naming the ``cell.toml`` and the offending key.

Voltages are V, temperatures °C. Parameter values in ``[params]`` are in the unit given by their
``unit`` field *as written into the netlist* (e.g. sky130 subcircuit widths are in µm), so noisecell
passes them to ngspice unchanged.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: .param names ngspice cannot take. The functions of its .param/{} expression evaluator (numparam's
#: list in src/frontend/numparam/xpressn.c of ngspice 39): a parameter named after one makes ngspice
#: stop with "Cannot compute substitute" (checked for every name here, ngspice 39.3). And the
#: expression variables it substitutes silently: {time} and {hertz} become 0, {temper} the
#: temperature — a wrong circuit, no error (checked likewise).
NGSPICE_FUNCTION_NAMES = frozenset(
    "sqr sqrt sin cos exp ln arctan abs pow pwr max min int log log10 sinh cosh tanh ternary_fcn agauss "
    "sgn gauss unif aunif limit ceil floor asin acos atan asinh acosh atanh tan nint".split())
NGSPICE_RESERVED_PARAM_NAMES = NGSPICE_FUNCTION_NAMES | {"time", "hertz", "temper"}


def reserved_param_problem(name: str) -> str | None:
    """Why ``name`` cannot be a .param name in ngspice (None when it can)."""
    low = name.lower()
    if low in NGSPICE_FUNCTION_NAMES:
        return f"{name} is the ngspice function {low}(), so ngspice stops with 'Cannot compute substitute'"
    if low in NGSPICE_RESERVED_PARAM_NAMES:
        return f"{name} is ngspice's expression variable {low}, which ngspice substitutes silently (a wrong circuit)"
    return None


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


#: the cell every command uses when none is named (`make demo`, `noisecell simulate/trim/cell/characterize`,
#: a characterisation spec without ``cell``). pbit_x5 (issue 17's reference cell: τ(V50) 74-93 ns, P·τ(V50)
#: 265-331 aJ in four default-flow runs, trims 15 of 15 pairs); the previous default pbit (sessions ≤ 25's
#: reports and models) and pbit_x4 stay available by name
DEFAULT_CELL = "pbit_x5"

#: the one place stored trim values live, next to cell.toml (written by `noisecell trim --write`)
TRIMS_FILE = "trims.json"


def read_trims_json(cell_dir: Path) -> dict:
    """The validated content of ``cell_dir/trims.json`` ({} when the cell has none)."""
    import json

    from .schema import validate

    p = Path(cell_dir) / TRIMS_FILE
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{p}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]}); regenerate it with "
                         "`noisecell trim CELL --all --write`") from None
    validate(data, "trims-v1.json", str(p))
    return data


def stored_trim_entries(cell_dir: Path, trim_params: list[str], corners: list[str]) -> dict[str, list[TrimEntry]]:
    """Passing rows of trims.json per trim .param, as TrimEntry (for :meth:`TrimSpec.value_for`)."""
    rows = read_trims_json(cell_dir).get("trims", {})
    out: dict[str, list[TrimEntry]] = {}
    for tname in trim_params:
        out[tname] = [TrimEntry(r["corner"], float(r["temp_c"]), float(r["value_v"]),
                                None if r.get("vdd_v") is None else float(r["vdd_v"]))
                      for r in rows.get(tname, []) if r.get("ok") and r.get("corner") in corners
                      and isinstance(r.get("value_v"), (int, float))]
    return out


def spice_models_dir() -> Path:
    """The built-in cells' folder: the repo's ``spice_models/``."""
    return Path(__file__).resolve().parent.parent / "spice_models"


def cell_dirs() -> list[Path]:
    """Folders searched for cells by name, in order: those in ``$NOISECELL_SPICE_MODELS``
    (``os.pathsep``-separated, i.e. ``:`` on Linux), then the built-in :func:`spice_models_dir`.
    The variable ADDS folders: a cell of the same name in an earlier folder hides a later one."""
    env = os.environ.get("NOISECELL_SPICE_MODELS", "")
    extra = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for d in extra + [spice_models_dir()]:
        if d not in out:
            out.append(d)
    return out


def list_cells() -> list[str]:
    """Names of the cells (folders with a cell.toml) in :func:`cell_dirs`, sorted, each once."""
    names = set()
    for root in cell_dirs():
        if root.is_dir():
            names.update(p.parent.name for p in root.glob("*/cell.toml"))
    return sorted(names)


def _resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.name == "cell.toml" and p.is_file():
        return p
    if p.is_dir() and (p / "cell.toml").is_file():
        return p / "cell.toml"
    if _IDENT.match(name_or_path):
        for root in cell_dirs():
            cand = root / name_or_path / "cell.toml"
            if cand.is_file():
                return cand
    known = ", ".join(list_cells()) or "none"
    raise InputError(f"cell {name_or_path!r}: no such cell (no cell.toml found); available cells: {known}, "
                     "or pass a folder containing cell.toml")


def _fail(path: Path, key: str, msg: str) -> InputError:
    return InputError(f"{path}: key {key!r}: {msg}")


def _range(raw: list) -> tuple[float, float]:
    return float(raw[0]), float(raw[1])


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
    except RecursionError:
        raise InputError(f"{path}: arrays/tables nested too deeply; a cell.toml needs a few levels") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})")
    from .schema import validate

    validate(raw, "cell-v1.json", str(path))  # keys, types, enums; unknown keys refused
    r = lambda key, msg: _fail(path, key, msg)  # noqa: E731  (checks the schema cannot express)
    name, technology = raw["name"], raw["technology"]
    description = raw.get("description", "")
    netlist_name = raw["netlist"]
    netlist_path = (path.parent / netlist_name).resolve()
    if netlist_path.parent != path.parent.resolve():
        raise r("netlist", f"{netlist_name!r} must be a file next to cell.toml")
    if not netlist_path.is_file():
        raise r("netlist", f"netlist file {netlist_path} does not exist")

    from .technology import corners as _tech_corners
    corners_raw = raw["corners"]
    offered = _tech_corners(technology)
    for c in corners_raw:
        if c not in offered:
            raise r("corners", f"corner {c!r} is not offered by technology {technology!r} ({', '.join(offered)})")
    nominal_corner, nominal_temp_c = raw["nominal"]["corner"], float(raw["nominal"]["temp_c"])
    if nominal_corner not in corners_raw:
        raise r("nominal.corner", f"{nominal_corner!r} is not in corners {corners_raw}")

    # Cell templates are part of the repo or a user folder; they get the same safety check as any
    # user netlist, with includes allowed only inside the cell's own folder or the technology's models.
    # Includes are inlined here (checked recursively), so ngspice never resolves a path itself.
    from .technology import allowed_include_dirs as _tech_dirs
    template = _netlist.load_template(netlist_path, allowed_dirs=[path.parent.resolve()] + _tech_dirs(technology))
    defined = _netlist.template_params(template)
    # a .param named like an ngspice function: refuse it here, naming the cell.toml key that uses it
    declared = ([(f"supplies.{k}.param", s.get("param", "")) for k, s in raw["supplies"].items()]
                + [("bias.param", raw["bias"]["param"])] + [(f"trim.{k}", k) for k in raw.get("trim", {})]
                + [(f"params.{k}", k) for k in raw.get("params", {})])
    for key, pname in declared:
        why = reserved_param_problem(pname)
        if why:
            raise r(key, f".param name {why}; rename it (e.g. {pname}_X) in {netlist_path.name} and cell.toml")
    for pname in defined:
        why = reserved_param_problem(pname)
        if why:
            raise InputError(f"{netlist_path}: .param {why}; rename it (e.g. {pname.upper()}_X) in "
                             f"{netlist_path.name} and wherever it is used")

    def need_param(p: str, key: str) -> None:
        if p.lower() not in defined:
            raise r(key, f".param {p} is not defined in {netlist_path.name}; add a '.param {p}=<value>' line")

    def in_range(key: str, x: float, rng: tuple[float, float]) -> None:
        if rng[0] > rng[1]:
            raise r(key.rsplit(".", 1)[0] + ".range_v", f"low {rng[0]:g} is above high {rng[1]:g}")
        if not rng[0] <= x <= rng[1]:
            raise r(key, f"{x:g} V is outside range_v {list(rng)}")

    supplies: dict[str, SupplySpec] = {}
    element_names = {e.lower() for e in _netlist.element_names(template)}
    for sname, s in raw["supplies"].items():
        key = f"supplies.{sname}"
        if s["source"].lower() not in element_names or not s["source"].lower().startswith("v"):
            raise r(key + ".source", f"voltage source {s['source']} not found in {netlist_path.name}")
        need_param(s["param"], key + ".param")
        supplies[sname] = SupplySpec(s["source"], s["param"], float(s["nominal_v"]), _range(s["range_v"]))
        in_range(key + ".nominal_v", supplies[sname].nominal_v, supplies[sname].range_v)

    b = raw["bias"]
    bias = BiasSpec(b["param"], _range(b["range_v"]), float(b.get("mid_v", 0.0)))
    need_param(bias.param, "bias.param")
    in_range("bias.mid_v", bias.mid_v, bias.range_v)

    outputs = {k if k.startswith("v_") else f"v_{k}": node for k, node in raw["outputs"].items()}

    ro = raw.get("readout", {})
    mode = ro.get("mode", "single")
    if mode == "differential" and "v_outb" not in outputs:
        raise r("readout.mode", "differential readout needs an output named v_outb")
    hyst = ro.get("hysteresis_v")
    readout = ReadoutSpec(mode, float(ro.get("threshold_v", 0.0)), None if hyst is None else float(hyst))

    stored = stored_trim_entries(path.parent, list(raw.get("trim", {})), corners_raw)
    trims: dict[str, TrimSpec] = {}
    for tname, t in raw.get("trim", {}).items():
        key = f"trim.{tname}"
        need_param(tname, key)
        rng = _range(t["range_v"])
        in_range(key + ".nominal_v", float(t["nominal_v"]), rng)
        for e in stored.get(tname, ()):
            if not rng[0] <= e.value_v <= rng[1]:
                raise InputError(f"{path.parent / TRIMS_FILE}: trims.{tname}: {e.corner} {e.temp_c:g} C value "
                                 f"{e.value_v:g} V is outside the cell's range_v {list(rng)}; regenerate it with "
                                 f"`noisecell trim {name} --all --write`")
        trims[tname] = TrimSpec(float(t["nominal_v"]), rng, t.get("description", ""), tuple(stored.get(tname, ())))

    params: dict[str, ParamSpec] = {}
    for pname, p in raw.get("params", {}).items():
        key = f"params.{pname}"
        need_param(pname, key)
        spec = ParamSpec(float(p["nominal"]), float(p["min"]), float(p["max"]), p.get("unit", ""))
        if not spec.min <= spec.nominal <= spec.max:
            raise r(key, f"nominal {spec.nominal:g} is outside [{spec.min:g}, {spec.max:g}]")
        params[pname] = spec

    used = [s.param.lower() for s in supplies.values()] + [bias.param.lower()] + [t.lower() for t in trims] + [p.lower() for p in params]
    dup = {u for u in used if used.count(u) > 1}
    if dup:
        raise InputError(f"{path}: .param {sorted(dup)[0]} is listed twice (supplies/bias/trim/params must be distinct)")

    return CellSpec(name=name, description=description, technology=technology, netlist_path=netlist_path,
                    template=template, corners=tuple(corners_raw), nominal_corner=nominal_corner,
                    nominal_temp_c=nominal_temp_c, supplies=supplies, bias=bias, outputs=outputs,
                    readout=readout, trim=trims, params=params, cell_dir=path.parent.resolve())
