"""Procedure 0, the characterisation spec: read, validate and resolve it before anything is simulated.

A spec (``noisecell/report/default_spec.toml`` by default) names the cell, shared sweep settings, a
pilot, the parts (each a sweep with a role: "fit", "mismatch", "heldout") and report options.
:func:`load_char_spec` returns a :class:`CharSpec` whose parts carry complete sweep-spec dicts.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
import tomllib

import numpy as np

from ...errors import InputError
from ...units import parse_si

ROLES = ("fit", "mismatch", "heldout")


SPEC_KEYS = ("cell", "title", "sweep", "part", "report", "quick", "pilot", "design", "conditions", "mismatch")


PILOT_KEYS = ("num", "duration", "seed", "margin")
#: at most this many pilot stages (each narrows a too-steep bracket ~4-fold with 9 points)


PILOT_STAGES = 4


REPORT_KEYS = ("examples", "entropy_90b", "entropy_sample_period", "fit_regimes")
#: sweep-spec keys a characterisation spec may not set (the flow owns them)


_FLOW_OWNED = ("cell", "grid")


@dataclass
class Part:
    name: str
    role: str
    sweep: dict            # a complete sweep-spec dict (TOML shape), ready for parse_spec
    grid_raw: dict = field(default_factory=dict)
    where: str = ""
    duration_tau: float | None = None   # record length in units of the nominal τ(V50) (issue 18)


@dataclass
class CharSpec:
    source: str
    text: str
    cell: str
    title: str | None
    parts: list[Part]
    report: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    pilot: dict | None = None
    shared: dict = field(default_factory=dict)
    design: dict | None = None        # [design] table: noisecell.sequential (issue 14)
    conditions: object = None         # [conditions]: .conditions.ConditionsSettings (issue 18)
    mismatch: object = None           # [mismatch]: .mismatch.MismatchSettings (issue 18)


def default_spec_text() -> str:
    return resources.files("noisecell.report").joinpath("default_spec.toml").read_text(encoding="utf-8")


def load_char_spec(path: str | Path | None, *, quick: bool, cell_name: str | None) -> CharSpec:
    """Read a characterisation spec (the package default when ``path`` is None) and resolve its parts.

    ``cell_name`` (command line) overrides the spec's ``cell``; default cell ``noisecell.cells.DEFAULT_CELL``.
    """
    if path is None:
        text, source = default_spec_text(), "default_spec.toml"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{p}: no such characterisation spec file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: cannot read ({exc})") from None
        source = str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"{source}: arrays/tables nested too deeply; a characterisation spec needs a few levels") from None
    from ...schema import validate

    validate(data, "characterize-spec-v1.json", source)  # structure; unknown keys refused (one line)
    bad = sorted(set(data) - set(SPEC_KEYS))
    if bad:
        raise InputError(f"{source}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(SPEC_KEYS)}")
    if quick:
        q = data.get("quick")
        if not isinstance(q, dict):
            raise InputError(f"{source}: --quick needs a [quick] table in the spec (see the default spec)")
        badq = sorted(set(q) - set(SPEC_KEYS) - {"quick"})
        if badq:
            raise InputError(f"{source}: unknown key(s) in [quick]: {', '.join(badq)}")
        data = {**{k: v for k, v in data.items() if k != "quick"}, **q}
    data.pop("quick", None)
    from ...cells import DEFAULT_CELL

    cell = cell_name or data.get("cell") or DEFAULT_CELL
    if cell_name and ("/" in cell_name or Path(cell_name).exists()):
        # a folder given on the command line is relative to where the command runs, not to the spec
        cell = str(Path(cell_name).resolve())
    if not isinstance(cell, str):
        raise InputError(f"{source}: cell must be a string (a cell name from spice_models/ or a path)")
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(f"{source}: title must be a string")
    shared = data.get("sweep", {})
    if not isinstance(shared, dict):
        raise InputError(f"{source}: [sweep] must be a table of sweep-spec keys")
    for k in _FLOW_OWNED:
        if k in shared:
            raise InputError(f"{source}: sweep.{k} is set per part by the characterisation; remove it from [sweep]")
    report = data.get("report", {})
    if not isinstance(report, dict):
        raise InputError(f"{source}: [report] must be a table")
    badr = sorted(set(report) - set(REPORT_KEYS))
    if badr:
        raise InputError(f"{source}: unknown key(s) in [report]: {', '.join(badr)}; allowed: {', '.join(REPORT_KEYS)}")
    # report keys are checked now too, so a typo never costs a simulation
    fit_regimes(report.get("fit_regimes", ["bistable"]), source)
    ex = report.get("examples", 3)
    if isinstance(ex, bool) or not isinstance(ex, int) or not 0 <= ex <= 5:
        raise InputError(f"{source}: report.examples must be an integer 0..5, got {ex!r}")
    if not isinstance(report.get("entropy_90b", True), bool):
        raise InputError(f"{source}: report.entropy_90b must be true or false")
    esp = report.get("entropy_sample_period", "auto")
    if esp != "auto":
        t = parse_si(esp, unit="s", what=f"{source}: report.entropy_sample_period")
        if not t > 0:
            raise InputError(f"{source}: report.entropy_sample_period must be > 0 s or \"auto\", got {esp!r}")
    pilot = data.get("pilot")
    if pilot is not None:
        if not isinstance(pilot, dict):
            raise InputError(f"{source}: [pilot] must be a table")
        badp = sorted(set(pilot) - set(PILOT_KEYS))
        if badp:
            raise InputError(f"{source}: unknown key(s) in [pilot]: {', '.join(badp)}; allowed: {', '.join(PILOT_KEYS)}")
        n = pilot.get("num", 9)
        if isinstance(n, bool) or not isinstance(n, int) or n < 3:
            raise InputError(f"{source}: pilot.num must be an integer ≥ 3, got {n!r}")
        m = pilot.get("margin", 4.0)
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0:
            raise InputError(f"{source}: pilot.margin must be a number > 0 (sigmoid scales), got {m!r}")
        if not parse_si(pilot.get("duration", "2us"), unit="s", what=f"{source}: pilot.duration") > 0:
            raise InputError(f"{source}: pilot.duration must be > 0")
    parts_raw = data.get("part")
    if not isinstance(parts_raw, list) or not parts_raw:
        raise InputError(f"{source}: no [[part]] tables; a characterisation needs at least one part with role = \"fit\"")

    from ...cells import load_cell

    cell_spec = load_cell(cell)
    parts, skipped, names = [], [], set()
    for i, pr in enumerate(parts_raw):
        where = f"{source}: part #{i + 1}"
        if not isinstance(pr, dict):
            raise InputError(f"{where}: must be a table")
        name = pr.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise InputError(f"{where}: name must be letters, digits, - or _ (it names OUT/sweep/<name>)")
        where = f"{source}: part {name!r}"
        if name in names:
            raise InputError(f"{where}: duplicate part name")
        names.add(name)
        role = pr.get("role", "fit")
        if role not in ROLES:
            raise InputError(f"{where}: role = {role!r}; use one of {', '.join(ROLES)}")
        for k in ("cell",):
            if k in pr:
                raise InputError(f"{where}: {k} is set for the whole characterisation, not per part")
        sweep = copy.deepcopy(shared)
        dur_tau = pr.get("duration_tau")
        if dur_tau is not None:
            if isinstance(dur_tau, bool) or not isinstance(dur_tau, (int, float)) or not dur_tau > 0:
                raise InputError(f"{where}: duration_tau must be a number > 0 (record length in units of the "
                                 f"nominal τ(V50)), got {dur_tau!r}")
            if "duration" in pr or "adaptive" in pr:
                raise InputError(f"{where}: give duration_tau or duration/adaptive, not both")
            sweep.pop("adaptive", None)
            sweep["duration"] = "1us"   # placeholder for validation; run_parts sets duration_tau x τ(V50)
        for k, v in pr.items():
            if k in ("name", "role", "grid", "duration_tau"):
                continue
            if isinstance(v, dict) and isinstance(sweep.get(k), dict):
                sweep[k] = {**sweep[k], **v} if k != "adaptive" else dict(v)
            else:
                sweep[k] = v
        if "duration" in pr and "adaptive" not in pr:
            sweep.pop("adaptive", None)  # a part that asks for a fixed duration gets one
        grid_raw = pr.get("grid", {})
        if not isinstance(grid_raw, dict):
            raise InputError(f"{where}: grid must be a table")
        grid, skip_reason = resolve_grid(grid_raw, cell_spec, where)
        if skip_reason:
            skipped.append(f"part {name!r} skipped: {skip_reason}")
            continue
        sweep["grid"] = grid
        sweep["cell"] = cell
        # validate now, so a bad spec fails before any simulation starts
        from ...sweep.spec import parse_spec
        parse_spec(sweep, source=f"{source} part {name}", base_dir=Path(source).parent if path else None)
        parts.append(Part(name=name, role=role, sweep=sweep, grid_raw=grid_raw, where=where,
                          duration_tau=None if dur_tau is None else float(dur_tau)))
    if not any(p.role == "fit" for p in parts) and data.get("design") is None:
        raise InputError(f"{source}: no part with role = \"fit\" (after skipping: {'; '.join(skipped) or 'none'})")
    design = data.get("design")
    if design is not None:
        from ...sequential import parse_design

        parse_design(design, source)      # typos fail before any simulation
    conditions = None
    if data.get("conditions") is not None:
        from .conditions import parse_conditions

        if pilot is None:
            raise InputError(f"{source}: [conditions] needs a [pilot] table (every condition gets its own pilot)")
        conditions = parse_conditions(data["conditions"], cell_spec, source)
    mismatch = None
    if data.get("mismatch") is not None:
        from .mismatch import parse_mismatch

        mismatch = parse_mismatch(data["mismatch"], source, cell=cell_spec.name)
        if mismatch is not None:
            if cell_spec.technology == "generic":
                skipped.append(f"[mismatch] skipped: cell {cell_spec.name} uses generic model cards without mismatch statistics")
                mismatch = None
            elif design is None:
                raise InputError(f"{source}: [mismatch] needs a [design] table (the nominal fit places and sizes the "
                                 "instances' records)")
    return CharSpec(source=source, text=text, cell=cell, title=title, parts=parts, report=report, skipped=skipped,
                    pilot=pilot, shared=shared, design=design, conditions=conditions, mismatch=mismatch)


def resolve_grid(grid: dict, cell, where: str, window: tuple[float, float, float] | None = None
                  ) -> tuple[dict, str | None]:
    """Shorthands → sweep-spec axes. ``window`` = (lo, hi, centre) V from the pilot replaces the cell's
    bias range and mid point for the ``{num, span, midpoints}`` bias shorthand."""
    out = dict(grid)
    lo, hi = cell.bias.range_v
    b = grid.get("bias")
    if isinstance(b, dict) and "start" not in b and "stop" not in b and "step" not in b:
        extra = sorted(set(b) - {"num", "span", "midpoints"})
        if extra:
            raise InputError(f"{where}: grid.bias: unknown key(s) {', '.join(extra)}; use num, span, midpoints "
                             f"(or start/stop/num as in a sweep spec)")
        num = b.get("num")
        if isinstance(num, bool) or not isinstance(num, int) or num < 2:
            raise InputError(f"{where}: grid.bias.num must be an integer ≥ 2, got {num!r}")
        span = b.get("span", 1.0)
        if isinstance(span, bool) or not isinstance(span, (int, float)) or not 0 < span <= 1:
            raise InputError(f"{where}: grid.bias.span must be in (0, 1], got {span!r}")
        mid = cell.bias.mid_v
        half = 0.5 * (hi - lo) * span
        if window is not None:
            half = 0.5 * (window[1] - window[0]) * span
            mid = window[2]
        a, z = max(lo, mid - half), min(hi, mid + half)
        pts = np.linspace(a, z, num)
        if b.get("midpoints", False):
            pts = 0.5 * (pts[1:] + pts[:-1])
        out["bias"] = [float(f"{x:.9g}") for x in pts]
    temps = grid.get("temperature")
    if isinstance(temps, list):
        out["temperature"] = [cell.nominal_temp_c if t == "nominal" else t for t in temps]
    corners = grid.get("corner")
    if isinstance(corners, list):
        res: list[str] = []
        for c in corners:
            if c == "nominal":
                res.append(cell.nominal_corner)
            elif c == "others":
                res.extend(x for x in cell.corners if x != cell.nominal_corner)
            else:
                res.append(c)
        if not res:
            return out, f"cell {cell.name} has no corners other than {cell.nominal_corner}"
        out["corner"] = list(dict.fromkeys(res))
    if grid.get("mismatch_instances") and cell.technology == "generic":
        return out, f"cell {cell.name} uses generic model cards without mismatch statistics"
    return out, None


def fit_regimes(val, source: str) -> tuple[str, ...]:
    from ...regime import REGIMES

    if isinstance(val, str):
        val = [val]
    if not isinstance(val, list) or not val or any(v not in REGIMES for v in val):
        raise InputError(f"{source}: report.fit_regimes must be a list of {', '.join(REGIMES)}, got {val!r}")
    return tuple(dict.fromkeys(val))


def spec_noise_step(spec: CharSpec) -> float:
    """The noise step NT (s) the characterisation's records run at: the spec's shared ``[sweep]``
    ``noise_step``, else noisecell's default (:data:`noisecell.noise.DEFAULT_NOISE_STEP_S`)."""
    from ...noise import DEFAULT_NOISE_STEP_S

    v = (spec.shared or {}).get("noise_step")
    return float(DEFAULT_NOISE_STEP_S if v is None else parse_si(v, unit="s", what="[sweep] noise_step"))
