"""The main job: sweep → analysis → fits → model → report, for one cell (and optionally measured data).

``characterize(cell, out_dir, spec_path=None, quick=False, measurements=None, workers=None)`` runs the
parts of a characterisation spec (see ``default_spec.toml``) as resumable sweeps under
``OUT/sweep/<part>/``, fits the behavioural model on the "fit" and "mismatch" parts, checks it on the
"heldout" part, and writes ``OUT/model.json``, ``OUT/report.html``, ``OUT/figures/*.png`` and
``OUT/tables/*.csv``. Progress goes to stderr. Re-running the same command resumes: finished
simulations are never redone.
"""
from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import __version__
from ..errors import InputError, NoisecellError
from ..units import parse_si
from .data import POINT_COLUMNS, Comparison, ConditionFit, ExampleStream, ReportData, condition_label, kt_ln2_j

Z95 = float(stats.norm.ppf(0.975))
ROLES = ("fit", "mismatch", "heldout")
SPEC_KEYS = ("cell", "title", "sweep", "part", "report", "quick", "pilot", "design")
PILOT_KEYS = ("num", "duration", "seed", "margin")
#: at most this many pilot stages (each narrows a too-steep bracket ~4-fold with 9 points)
PILOT_STAGES = 4
REPORT_KEYS = ("examples", "entropy_90b", "entropy_sample_period", "fit_regimes")
#: sweep-spec keys a characterisation spec may not set (the flow owns them)
_FLOW_OWNED = ("cell", "grid")


def log(msg: str) -> None:
    print(f"characterize: {msg}", file=sys.stderr, flush=True)


# ============================================================================ spec
@dataclass
class Part:
    name: str
    role: str
    sweep: dict            # a complete sweep-spec dict (TOML shape), ready for parse_spec
    grid_raw: dict = field(default_factory=dict)
    where: str = ""


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


def default_spec_text() -> str:
    return resources.files("noisecell.report").joinpath("default_spec.toml").read_text(encoding="utf-8")


def load_char_spec(path: str | Path | None, *, quick: bool, cell_name: str | None) -> CharSpec:
    """Read a characterisation spec (the package default when ``path`` is None) and resolve its parts.

    ``cell_name`` (command line) overrides the spec's ``cell``; default cell "pbit".
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
    from ..schema import validate

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
    cell = cell_name or data.get("cell") or "pbit"
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
    _fit_regimes(report.get("fit_regimes", ["bistable"]), source)
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

    from ..cells import load_cell

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
        for k, v in pr.items():
            if k in ("name", "role", "grid"):
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
        grid, skip_reason = _resolve_grid(grid_raw, cell_spec, where)
        if skip_reason:
            skipped.append(f"part {name!r} skipped: {skip_reason}")
            continue
        sweep["grid"] = grid
        sweep["cell"] = cell
        # validate now, so a bad spec fails before any simulation starts
        from ..sweep.spec import parse_spec
        parse_spec(sweep, source=f"{source} part {name}", base_dir=Path(source).parent if path else None)
        parts.append(Part(name=name, role=role, sweep=sweep, grid_raw=grid_raw, where=where))
    if not any(p.role == "fit" for p in parts) and data.get("design") is None:
        raise InputError(f"{source}: no part with role = \"fit\" (after skipping: {'; '.join(skipped) or 'none'})")
    design = data.get("design")
    if design is not None:
        from ..sequential import parse_design

        parse_design(design, source)      # typos fail before any simulation
    return CharSpec(source=source, text=text, cell=cell, title=title, parts=parts, report=report, skipped=skipped,
                    pilot=pilot, shared=shared, design=design)


def _resolve_grid(grid: dict, cell, where: str, window: tuple[float, float, float] | None = None
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


# ============================================================================ normalising rows
def _nan(x) -> float:
    """None → NaN (table cells)."""
    return float("nan") if x is None else float(x)


def _lo(ci) -> float:
    return float("nan") if ci is None else float(ci.lo)


def _hi(ci) -> float:
    return float("nan") if ci is None else float(ci.hi)


def point_row(r: dict, part: str, role: str) -> dict:
    """One sweep (or measurement) row → one row of the report's per-point table (:data:`POINT_COLUMNS`),
    read through :class:`~noisecell.analysis.StreamEstimates` (its fields, not guessed column names)."""
    from ..analysis.estimates import StreamEstimates

    e = StreamEstimates.from_row(r)
    regime = r.get("regime")
    if regime is None or (isinstance(regime, float) and math.isnan(regime)):
        regime = _regime_from_estimates(e, r.get("status", "ok"))
    inst = r.get("mismatch_instance")
    dt = e.sample_period_s
    e_bit = e.energy_per_bit_j
    return {
        "part": part, "role": role, "corner": r.get("corner"), "temp_c": _nan(r.get("temp_c")),
        "vdd_v": _nan(r.get("vdd_v")), "bias_v": _nan(r.get("bias_v")),
        "instance": int(inst) if inst is not None and inst == inst else -1,
        "job_id": r.get("job_id"), "status": r.get("status", "ok"), "error": r.get("error"),
        "regime": regime,
        "n_samples": float(e.n_samples) if e.n_samples else float("nan"), "sample_period_s": _nan(dt),
        "duration_s": _nan(r.get("simulated_s", r.get("duration_s"))),
        "p1": _nan(e.p1), "p1_ci95_lo": _lo(e.p1_ci95), "p1_ci95_hi": _hi(e.p1_ci95), "p1_se": _nan(e.p1_se),
        "n_eff": _nan(e.n_eff), "lag1_autocorr": _nan(e.lag1_autocorr),
        "tau_s": _nan(e.tau_s), "tau_s_ci95_lo": _lo(e.tau_s_ci95), "tau_s_ci95_hi": _hi(e.tau_s_ci95),
        "tau_log_se": _nan(e.tau_log_se),
        "rate_up_hz": _nan(e.rate_up_hz), "rate_up_hz_ci95_lo": _lo(e.rate_up_hz_ci95),
        "rate_up_hz_ci95_hi": _hi(e.rate_up_hz_ci95),
        "rate_down_hz": _nan(e.rate_down_hz), "rate_down_hz_ci95_lo": _lo(e.rate_down_hz_ci95),
        "rate_down_hz_ci95_hi": _hi(e.rate_down_hz_ci95),
        "rates_resolved": bool(e.rates_resolved), "n_flips": float(e.n_flips),
        "dwell_gof_p_0": _nan(e.dwell_gof_p_0), "dwell_gof_p_1": _nan(e.dwell_gof_p_1),
        "markov_consistent": bool(e.markov_consistent),
        "psd_tau_s": _nan(e.psd_tau_samples * dt) if (e.psd_tau_samples is not None and dt) else float("nan"),
        "mean_power_w": _nan(e.mean_supply_power_w), "energy_per_flip_j": _nan(e.energy_per_flip_j),
        "energy_per_bit_j": _nan(e_bit),
        "energy_per_bit_kTln2": e_bit / kt_ln2_j(float(r["temp_c"])) if e_bit is not None else float("nan"),
        "h_shannon_rate": float("nan"), "h_min_rate": float("nan"), "rct_cutoff": float("nan"),
        "apt_cutoff": float("nan"), "h_original": float("nan"),
        "chunks": float(e.chunks),
    }


def normalise_rows(df: pd.DataFrame, part: str, role: str) -> pd.DataFrame:
    """Sweep (or measurement) rows → the report's per-point table (:data:`POINT_COLUMNS`)."""
    out = [point_row(r, part, role) for r in df.to_dict("records")]
    cols = list(POINT_COLUMNS[:1]) + ["role"] + list(POINT_COLUMNS[1:]) + ["chunks"]
    df = pd.DataFrame(out, columns=cols)
    # no per-flip / per-bit figure for a point that does not telegraph (issue 16): its "flips" are
    # comparator crossings of one noisy level, its τ a noise correlation time
    from ..regime import PER_BIT_KEYS
    blank = [c for c in cols if c in PER_BIT_KEYS or c in ("rate_up_lo_hz", "rate_up_hi_hz", "rate_down_lo_hz",
                                                           "rate_down_hi_hz", "tau_lo_s", "tau_hi_s")]
    df.loc[df["regime"] != "bistable", blank] = np.nan
    return df


def _regime_from_estimates(e, status: str) -> str:
    """Fallback when the sweep recorded no regime: a point with too few flips cannot be fitted."""
    if status != "ok":
        return "failed"
    if e.n_flips < 10:
        return "stuck"
    if e.p1 is not None and (e.p1 <= 0 or e.p1 >= 1):
        return "stuck"
    return "bistable"


# ============================================================================ fits
def _ci(x) -> tuple[float, float]:
    if not x:
        return float("nan"), float("nan")
    return float(x[0]), float(x[1])


def condition_fit(model, cond: tuple, rows: pd.DataFrame) -> ConditionFit:
    """The report's view of one calibrated condition of a :class:`noisecell.model.CellModel`.

    Rate route (the model): V50, scale, τ(V50) and the curves P(1)(V), τ(V) from ln k_up, ln k_down.
    Direct route: the sigmoid fitted to P(1) alone (best AIC of logistic, probit, tanh when
    ``noisecell.analysis.sigmoid`` provides it, else the model's logistic GLM cross-check).
    """
    cd = model.condition_data(cond)
    sg, tau, rm = cd["sigmoid"], cd["tau"], cd["rate_model"]
    lo_b, hi_b = cd["bias_range_v"]

    def clip(x):
        return np.clip(np.asarray(x, float), lo_b, hi_b)

    def p1_model(x, model=model, cond=cond):
        return model.p1(clip(x), cond)

    def tau_model(x, model=model, cond=cond):
        return model.tau(clip(x), cond)

    v50, s = sg["v50_v"], sg["scale_v"]
    ref = rm["reference_bias_v"]
    up = (rm["ln_k_up"]["intercept"] + rm["ln_k_up"]["slope_per_v"] * (v50 - ref), rm["ln_k_up"]["slope_per_v"])
    dn = (rm["ln_k_down"]["intercept"] + rm["ln_k_down"]["slope_per_v"] * (v50 - ref), rm["ln_k_down"]["slope_per_v"])
    extra = {"bias_range_lo_v": lo_b, "bias_range_hi_v": hi_b}
    gof = cd.get("goodness_of_fit") or {}
    for k in ("p1", "tau", "ln_k_up", "ln_k_down"):
        g = gof.get(k)
        if isinstance(g, dict) and g.get("p_value") is not None:
            extra[f"gof_{k}_chi2_per_dof"] = g["chi2"] / g["dof"] if g.get("dof") else float("nan")
            extra[f"gof_{k}_p"] = g["p_value"]
    fit = ConditionFit(corner=cond[0], temp_c=cond[1], vdd_v=cond[2], form="logistic (rate model)",
                       n_points=int(gof.get("n_points", 0)), v50_v=v50, v50_ci_v=_ci(sg.get("v50_ci95_v")),
                       scale_v=s, scale_ci_v=_ci(sg.get("scale_ci95_v")), slope_per_v=1 / (4 * s),
                       tau_at_v50_s=tau["tau_at_v50_s"], tau_at_v50_ci_s=_ci(tau.get("tau_at_v50_ci95_s")),
                       ln_k_up=up, ln_k_down=dn, p1_curve=p1_model, tau_curve=tau_model, extra=extra)
    direct = _direct_sigmoid(rows) or sg.get("direct_fit")
    if direct:
        dv, dci = direct["v50_v"], _ci(direct.get("v50_ci95_v"))
        extra.update({"direct_form": direct.get("form"), "direct_v50_v": dv, "direct_v50_lo_v": dci[0],
                      "direct_v50_hi_v": dci[1], "direct_slope_per_v": direct.get("slope_per_v", float("nan")),
                      "direct_aic": direct.get("aic", float("nan")),
                      "direct_dispersion": direct.get("dispersion", float("nan"))})
        # both routes use the same streams, so this is a consistency check, not an independent test:
        # they disagree when the V50s differ by more than the wider half-interval
        half = max(dci[1] - dci[0], fit.v50_ci_v[1] - fit.v50_ci_v[0]) / 2
        fit.routes_agree = bool(abs(dv - v50) <= half) if math.isfinite(half) else None
        if direct.get("curve") is not None:
            fit.extra["_direct_curve"] = direct["curve"]
    return fit


def _direct_sigmoid(rows: pd.DataFrame) -> dict | None:
    """Best-AIC direct fit of P(1) alone (logistic, probit, tanh; free saturations when the points
    allow) from :mod:`noisecell.analysis.sigmoid`, as a dict with a ``curve`` callable."""
    from ..analysis.sigmoid import fit_sigmoids

    use = rows[np.isfinite(rows["p1"].astype(float)) & np.isfinite(rows["n_eff"].astype(float))
               & (rows["n_eff"].astype(float) > 0)] if len(rows) else rows
    if len(use) < 3:
        return None
    # free saturation levels add two parameters: only with enough points left to judge them
    free = (False, True) if len(use) >= 6 else (False,)
    try:
        comp = fit_sigmoids(bias_v=use["bias_v"].to_numpy(float), p1=use["p1"].to_numpy(float),
                            n_eff=use["n_eff"].to_numpy(float), free_saturation=free)
    except (NoisecellError, ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    b = comp.best
    if not (b.converged and math.isfinite(b.v50_v)):
        return None
    return {"form": b.form + (" + saturations" if b.free_saturation else ""), "v50_v": b.v50_v,
            "v50_ci95_v": list(b.v50_ci95), "scale_v": b.scale_v, "slope_per_v": b.slope_per_v,
            "aic": b.aic, "dispersion": b.dispersion, "curve": b.predict}


# ============================================================================ the flow
@dataclass
class CharacterizeResult:
    out_dir: Path
    report_path: Path
    model_path: Path | None
    failed_jobs: int
    total_jobs: int
    datasheet: pd.DataFrame
    measured_model_path: Path | None = None
    wall_s: float = 0.0

    def summary(self) -> str:
        lines = [f"characterize: report {self.report_path}", f"  model {self.model_path}"]
        if self.measured_model_path:
            lines.append(f"  measured model {self.measured_model_path}")
        lines.append(f"  jobs: {self.total_jobs - self.failed_jobs}/{self.total_jobs} ok, {self.failed_jobs} failed; "
                     f"{self.wall_s:.0f} s")
        return "\n".join(lines)


def characterize(cell: str | None, out_dir: str | Path, *, spec_path: str | Path | None = None, quick: bool = False,
                 measurements: str | Path | None = None, workers: int | None = None,
                 command: str | None = None, retry_failed: bool = False, check: bool = True) -> CharacterizeResult:
    """Run the whole characterisation (see the module docstring); returns where everything was written."""
    t0 = time.monotonic()
    out = Path(out_dir)
    # read and validate everything the user gave before any simulation starts
    spec = load_char_spec(spec_path, quick=quick, cell_name=cell)
    meas = None
    if measurements is not None:
        from ..measurements import load_measurements
        meas = load_measurements(measurements)
        log(f"measurements: {len(meas.captures)} captures from {meas.root} "
            f"({'SYNTHETIC' if meas.synthetic else 'measured'})")
    from ..cells import load_cell
    from ..sweep import run_sweep
    from ..sweep.spec import parse_spec

    cellspec = load_cell(spec.cell)
    # the DC `cell check` first (issue 16): a cell that cannot be bistable is refused in seconds
    check_res = None
    if check and "v_outb" in cellspec.outputs:
        from ..cellcheck import gate
        check_res = gate(cellspec, log)
    out.mkdir(parents=True, exist_ok=True)
    warnings = list(spec.skipped)
    if check_res is not None and check_res.status != "ok":
        warnings.append(f"cell check: {check_res.verdict}")
    frames, raw_frames, part_rows = [], [], []
    total = failed = 0
    pilot_note = "none (bias shorthands over the cell's whole bias range)"
    if spec.pilot is not None:
        # a short coarse sweep at the nominal condition locates the sigmoid; the parts' bias
        # shorthands are then laid out around it instead of over the whole bias range
        pilots, window, note = _run_pilot(spec, cellspec, out, workers, retry_failed)
        log(note)
        for k, pres in enumerate(pilots):
            name = "pilot" if k == 0 else f"pilot{k + 1}"
            total += pres.total
            failed += pres.failed
            frames.append(normalise_rows(pres.dataframe, name, "pilot"))
            raw = pres.dataframe.copy()
            raw["part"], raw["role"] = name, "pilot"
            raw_frames.append(raw)
            part_rows.append({"part": name, "role": "pilot", "points": pres.total, "ok": pres.done,
                              "failed": pres.failed, "simulated_s": float(pd.to_numeric(
                                  pres.dataframe.get("simulated_s"), errors="coerce").sum()),
                              "adaptive_saving": float("nan"), "store": str(Path("sweep") / name)})
        pilot_note = note
        if window is None:
            warnings.append(note)
        else:
            for part in spec.parts:
                part.sweep["grid"], _ = _resolve_grid(part.grid_raw, cellspec, part.where, window)
    seq = None
    if spec.design is not None:
        # sequential design at the nominal condition (noisecell.sequential): rounds until the
        # datasheet targets are met or the budget is spent, then held-out records
        seq, t_frames = _run_design(spec, cellspec, out, frames, workers, retry_failed)
        for name, role, res in t_frames:
            total += res.total
            failed += res.failed
            frames.append(normalise_rows(res.dataframe, name, role))
            raw = res.dataframe.copy()
            raw["part"], raw["role"] = name, role
            raw_frames.append(raw)
            part_rows.append({"part": name, "role": role, "points": res.total, "ok": res.done, "failed": res.failed,
                              "simulated_s": float(pd.to_numeric(res.dataframe.get("simulated_s"), errors="coerce").sum()),
                              "adaptive_saving": float("nan"), "store": str(Path("sweep") / name)})
        log(seq.summary())
        if not seq.design.met:
            warnings.append(f"datasheet targets not met: {seq.design.reason} (see the design rows of the datasheet)")
    for i, part in enumerate(spec.parts):
        sw = parse_spec(part.sweep, source=f"{spec.source} part {part.name}",
                        base_dir=Path(spec.source).parent if spec_path else None)
        n_pts = (max(1, len(sw.bias_v)) * max(1, len(sw.temp_c)) * max(1, len(sw.corners)) * max(1, len(sw.vdd_v))
                 * max(1, sw.mismatch_instances))
        log(f"part {i + 1}/{len(spec.parts)} {part.name!r} ({part.role}): {n_pts} points -> "
            f"{out / 'sweep' / part.name}")
        try:
            res = run_sweep(sw, out / "sweep" / part.name, workers=workers, progress=True, retry_failed=retry_failed)
        except InputError as exc:
            if "different spec" not in str(exc):
                raise
            raise InputError(f"{out / 'sweep' / part.name}: holds part {part.name!r} of a different characterisation "
                             "(spec edited, the pilot placed the bias points elsewhere, or the simulation/analysis code "
                             "changed); use a new --out folder, "
                             "or delete that part's folder to simulate it again") from None
        log(res.summary().splitlines()[0])
        df = res.dataframe
        total += res.total
        failed += res.failed
        for jid, err in res.failures:
            warnings.append(f"part {part.name}: job {jid[:12]} failed: {err}")
        raw = df.copy()
        raw["part"], raw["role"] = part.name, part.role
        raw_frames.append(raw)
        frames.append(normalise_rows(df, part.name, part.role))
        ad = res.adaptive
        part_rows.append({"part": part.name, "role": part.role, "points": res.total, "ok": res.done,
                          "failed": res.failed, "simulated_s": float(pd.to_numeric(df.get("simulated_s"), errors="coerce").sum())
                          if "simulated_s" in df else float("nan"),
                          "adaptive_saving": ad.saving if ad else float("nan"),
                          "store": str(Path("sweep") / part.name)})
    points = pd.concat(frames, ignore_index=True)
    raw_all = pd.concat(raw_frames, ignore_index=True)
    nominal = (cellspec.nominal_corner, float(cellspec.nominal_temp_c),
               float(cellspec.supplies[cellspec.main_supply].nominal_v))
    # a cell whose trim sets the supply per corner/temperature runs at that supply, not the nominal
    # one: the nominal condition is the supply actually simulated at the nominal corner/temperature
    at_nom = points[(points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
                    & points["role"].isin(["fit"]) & (points["status"] == "ok")]
    if len(at_nom):
        vdds = np.unique(at_nom["vdd_v"].to_numpy(float))
        nominal = (nominal[0], nominal[1], float(vdds[np.argmin(np.abs(vdds - nominal[2]))]))
    report_cfg = {"examples": 3, "entropy_90b": True, "entropy_sample_period": "auto", "fit_regimes": ["bistable"],
                  **spec.report}
    fit_regimes = _fit_regimes(report_cfg["fit_regimes"], spec.source)
    if fit_regimes != ("bistable",):
        warnings.append(f"the spec fits points of regime(s) {', '.join(fit_regimes)}: the sigmoid and τ of a "
                        "non-bistable point describe the comparator output, not a telegraphing latch")
    # from here on "fittable" points are labelled by a boolean column; regime keeps its value
    points["fitted_regime"] = points["regime"].isin(fit_regimes)

    # ---- model: fit on the "fit" and "mismatch" parts, fittable points only
    from ..model import CellModel
    from ..model.fit import fit_sweep

    fittable = points["fitted_regime"].to_numpy() & points["status"].eq("ok").to_numpy()
    for_fit = raw_all[fittable & points["role"].isin(["fit", "mismatch"]).to_numpy()]
    n_nonbi = int((points["status"].eq("ok") & ~points["fitted_regime"]).sum())
    if n_nonbi:
        warnings.append(f"{n_nonbi} point(s) have regime(s) "
                        f"{', '.join(sorted(set(points.loc[points['status'].eq('ok') & ~points['fitted_regime'], 'regime'].astype(str))))}"
                        f": shown, not fitted")
    ident = _identity(cellspec, raw_all)
    model = None
    model_path = None
    for_fit, dropped = _drop_unfittable(for_fit, fit_sweep)
    for cond, why in dropped:
        warnings.append(f"condition {condition_label(*cond)} left out of the model: {why}")
    try:
        if not len(for_fit):
            # say what was seen rather than the fitter's generic "no rows" (the sweep did run)
            ok = points[points["status"].eq("ok") & points["role"].isin(["fit", "mismatch"])]
            seen = ", ".join(f"{n} {r}" for r, n in ok["regime"].astype(str).value_counts().items())
            n_bi = int(ok["regime"].astype(str).eq("bistable").sum())
            head = (f"none of the {len(ok)} finished fit/mismatch points telegraphs" if n_bi == 0 else
                    f"no condition has 3 bistable points ({n_bi} of the {len(ok)} finished fit/mismatch "
                    "points telegraph, spread over conditions)")
            raise NoisecellError(f"{head} ({seen or 'no points'}); a model needs at least 3 bistable points "
                                 "per condition: lengthen the records (sweep.adaptive) or trim the cell")
        doc = fit_sweep(for_fit, name=cellspec.name, bias_param=cellspec.bias.param, technology=cellspec.technology,
                        netlist_sha256=ident["netlist_sha256"], model_package=ident["model_package"],
                        sweep_id=ident["sweep_id"], ngspice_version=ident["ngspice"],
                        nominal={"corner": nominal[0], "temp_c": nominal[1], "vdd_v": nominal[2]},
                        what=f"{out / 'sweep'}")
        if seq is not None:
            doc = seq.apply_to_document(doc)
        model = CellModel(doc, source=str(out / "model.json"))
        model_path = model.save(out / "model.json")
        log(f"model written: {model_path}")
    except NoisecellError as exc:
        warnings.append(f"no model: {exc}")
        log(f"warning: no model could be fitted: {exc}")

    fits = []
    if model is not None:
        for c in model.conditions:
            cond = (c.corner, c.temp_c, c.vdd_v)
            rows = _cond_points(points, cond, roles=("fit",))
            fits.append(condition_fit(model, cond, rows))
    nominal_eff = nominal
    if fits and not any((f.corner, f.temp_c, f.vdd_v) == nominal for f in fits):
        nominal_eff = (fits[0].corner, fits[0].temp_c, fits[0].vdd_v)

    # ---- entropy at a stated clock period, SP 800-90B on the stored streams
    ent_period, ent_note = _entropy_period(report_cfg, fits, nominal_eff, points)
    warnings.extend(_entropy_columns(points, out, ent_period, bool(report_cfg.get("entropy_90b", True)), nominal_eff))

    # ---- examples, mismatch, held-out validation
    examples = _examples(points, out, nominal_eff, int(report_cfg.get("examples", 3)))
    mm, mm_sum = _mismatch_tables(model, nominal_eff)
    validation, v_note = _validation(model, points, nominal_eff)

    # ---- measurements
    comparison = None
    meas_info = None
    meas_model_path = None
    if meas is not None:
        comparison, meas_info, meas_model_path, mwarn = _measured(meas, out, model, fits, nominal_eff, cellspec)
        warnings.extend(mwarn)

    datasheet = _datasheet(points, fits, model, nominal_eff, mm_sum, validation, ent_period, cellspec)
    if seq is not None:
        datasheet = pd.concat([datasheet, pd.DataFrame(seq.datasheet_rows(condition_label(*nominal_eff)))],
                              ignore_index=True)
        if seq.heldout is not None:
            v_note = f"{v_note} {seq.heldout.summary()}".strip()
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    cell_info = {"name": cellspec.name, "description": cellspec.description, "technology": cellspec.technology,
                 "netlist": str(cellspec.netlist_path), "netlist_sha256": ident["netlist_sha256"],
                 "model package": (f"{ident['model_package']['name']} {ident['model_package']['version']}"
                                   if ident["model_package"] else "none (model cards in the netlist)"),
                 "corners offered": ", ".join(cellspec.corners),
                 "nominal condition": condition_label(*nominal),
                 "bias input": f"{cellspec.bias.param}, {cellspec.bias.range_v[0]:g} .. {cellspec.bias.range_v[1]:g} V",
                 "readout": f"{cellspec.readout.mode}, threshold {cellspec.readout.threshold_v:g} V",
                 "trim": ", ".join(f"{k}: {json.dumps(_trim_values(raw_all, k))}" for k in cellspec.trim) or "none"}
    prov = {"created_utc": created, "noisecell_version": __version__, "ngspice_version": ident["ngspice"],
            "command": command or "", "spec": spec.source + (" [quick]" if quick else ""),
            "spec_sha256": hashlib.sha256(spec.text.encode()).hexdigest(),
            "sweep store": str(out / "sweep"), "jobs": f"{total - failed}/{total} ok",
            "simulated time": f"{sum(r['simulated_s'] for r in part_rows if math.isfinite(r['simulated_s'])) * 1e6:.4g} µs",
            "noise": "per-MOSFET thermal + shot noise, TRRANDOM unit sources seeded per job (setseed)",
            "pilot": pilot_note, "entropy clock": ent_note, "spec_text": spec.text}
    data = ReportData(
        title=spec.title or f"noisecell characterisation: {cellspec.name}", cell=cell_info, provenance=prov,
        points=points.drop(columns=["chunks"]), fits=fits, examples=examples, datasheet=datasheet,
        nominal=nominal_eff, mismatch=mm, mismatch_summary=mm_sum, validation=validation, validation_note=v_note,
        entropy_note=ent_note, comparison=comparison, measurement_info=meas_info, warnings=warnings,
        sweep_summary=pd.DataFrame(part_rows))
    from .html import render
    log("writing figures, tables and report.html")
    report_path = render(data, out)
    log(f"done in {time.monotonic() - t0:.0f} s: {report_path}")
    return CharacterizeResult(out_dir=out, report_path=report_path, model_path=model_path, failed_jobs=failed,
                              total_jobs=total, datasheet=datasheet, measured_model_path=meas_model_path,
                              wall_s=time.monotonic() - t0)


def _run_design(spec: CharSpec, cellspec, out: Path, frames: list, workers, retry_failed):
    """Run noisecell.sequential at the nominal condition, guessed from the pilot's points; returns
    the result and (part name, role, SweepResult) of every sweep it ran (rounds "fit", held-out
    "heldout")."""
    from ..sequential import run_sequential
    from ..simulator.pool import HostPool

    pil = pd.concat([f for f in frames if len(f) and str(f["role"].iloc[0]) == "pilot"]) if frames else None
    ok = pil[pil["status"] == "ok"] if pil is not None and len(pil) else None
    shared = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    with HostPool(workers) as pool:
        seq = run_sequential(spec.design, cell=spec.cell, out=out / "sweep", shared=shared,
                             corner=cellspec.nominal_corner, temp_c=float(cellspec.nominal_temp_c),
                             bias_limits=tuple(cellspec.bias.range_v),
                             pilot_bias_v=None if ok is None else ok["bias_v"].to_numpy(float),
                             pilot_p1=None if ok is None else pd.to_numeric(ok["p1"], errors="coerce").to_numpy(float),
                             source=spec.source, workers=workers, retry_failed=retry_failed, pool=pool,
                             rate_regimes=_fit_regimes(spec.report.get("fit_regimes", ["bistable"]), spec.source),
                             log=log)
    parts = [(name, "fit", res) for name, res in seq.sweeps] + [(name, "heldout", res) for name, res in seq.heldout_sweeps]
    return seq, parts


def _drop_unfittable(df: pd.DataFrame, fit_sweep) -> tuple[pd.DataFrame, list[tuple[tuple, str]]]:
    """Rows of the conditions a model can be fitted to, and (condition, reason) for the others.

    One condition with too few telegraphing points (e.g. a cold corner that is stuck over most of the
    bias window) must not cost the model of every other condition.
    """
    if not len(df):
        return df, []
    keep, dropped = [], []
    for cond, g in df.groupby(["corner", "temp_c", "vdd_v"], sort=True):
        try:
            fit_sweep(g, what="condition")
            keep.append(g)
        except NoisecellError as exc:
            dropped.append(((cond[0], float(cond[1]), float(cond[2])), str(exc).split(": ", 2)[-1]))
    return (pd.concat(keep) if keep else df.iloc[:0]), dropped


def _fit_regimes(val, source: str) -> tuple[str, ...]:
    from ..regime import REGIMES

    if isinstance(val, str):
        val = [val]
    if not isinstance(val, list) or not val or any(v not in REGIMES for v in val):
        raise InputError(f"{source}: report.fit_regimes must be a list of {', '.join(REGIMES)}, got {val!r}")
    return tuple(dict.fromkeys(val))


def _trim_values(raw: pd.DataFrame, name: str) -> list:
    if "trim_json" not in raw:
        return []
    vals = set()
    for t in raw["trim_json"].dropna():
        try:
            v = json.loads(t).get(name)
        except (TypeError, ValueError):
            continue
        if v is not None:
            vals.add(round(float(v), 6))
    return sorted(vals)


def _identity(cellspec, raw: pd.DataFrame) -> dict:
    sha = None
    try:
        sha = hashlib.sha256(Path(cellspec.netlist_path).read_bytes()).hexdigest()
    except OSError:
        pass
    pkg = None
    try:
        from ..technology import model_identity
        ident = model_identity(cellspec.technology)
        if ident.get("package"):
            pkg = {"name": ident["package"], "version": str(ident.get("version") or "unknown")}
    except Exception:  # noqa: BLE001 - identity is best effort, shown as "unknown"
        pkg = None
    ng = None
    for c in ("ngspice_version", "sim_ngspice_version", "ngspice"):
        if c in raw.columns and raw[c].notna().any():
            ng = str(raw[c].dropna().iloc[0])
            break
    if ng is None:
        try:
            from ..simulator.session import _ngspice_version
            ng = _ngspice_version()
        except Exception:  # noqa: BLE001
            ng = None
    return {"netlist_sha256": sha, "model_package": pkg, "ngspice": ng, "sweep_id": None}


def _cond_points(points: pd.DataFrame, cond: tuple, roles=("fit",)) -> pd.DataFrame:
    sel = ((points["corner"] == cond[0]) & np.isclose(points["temp_c"], cond[1]) & np.isclose(points["vdd_v"], cond[2])
           & points["role"].isin(roles) & (points["instance"] < 0) & (points["status"] == "ok")
           & points["fitted_regime"])
    return points[sel].sort_values("bias_v")


# ============================================================================ pilot
def pilot_window(bias_v: np.ndarray, p1: np.ndarray, margin: float, lo: float, hi: float
                 ) -> tuple[tuple[float, float, float] | None, str]:
    """Bias window (lo, hi, centre), V, around the P(1) = 0.5 crossing seen in a coarse pilot sweep.

    With two or more pilot points strictly inside (0.02, 0.98), a straight line through logit P(1)
    gives V50 and the logistic scale s; the window is V50 ± margin·s, widened to keep those points.
    With fewer, the window is the bracket between the last point below 0.5 and the first above.
    Returns (None, reason) when the pilot shows no crossing.
    """
    v, p = np.asarray(bias_v, float), np.asarray(p1, float)
    ok = np.isfinite(p) & np.isfinite(v)
    # later stages can repeat a bias point: pool repeats (equal-length runs, so a plain mean)
    v, inv = np.unique(v[ok], return_inverse=True)
    p = np.bincount(inv, weights=p[ok]) / np.bincount(inv)
    inner = (p > 0.02) & (p < 0.98)
    if inner.sum() >= 2:
        y = np.log(p[inner] / (1 - p[inner]))
        b, a = np.polyfit(v[inner], y, 1)
        if b > 0:
            v50, s = -a / b, 1 / b
            w_lo = min(v50 - margin * s, v[inner].min())
            w_hi = max(v50 + margin * s, v[inner].max())
            w_lo, w_hi = max(lo, w_lo), min(hi, w_hi)
            return ((w_lo, w_hi, 0.5 * (w_lo + w_hi)),
                    f"pilot: P(1) crosses 0.5 near {v50 * 1e3:+.3g} mV, logistic scale ≈ {s * 1e3:.3g} mV; "
                    f"bias points laid out over {w_lo * 1e3:+.3g} .. {w_hi * 1e3:+.3g} mV")
    above = np.flatnonzero(p >= 0.5)
    if above.size and above[0] > 0 and p[above[0] - 1] < 0.5:
        i = above[0]
        # the sigmoid is steeper than the pilot grid: the bracket, widened by half a grid step on each
        # side so that a V50 near either end still has points on both sides
        half = 0.5 * (v[i] - v[i - 1])
        w_lo, w_hi = max(lo, v[i - 1] - half), min(hi, v[i] + half)
        return ((w_lo, w_hi, 0.5 * (w_lo + w_hi)),
                f"pilot: P(1) crosses 0.5 between {v[i - 1] * 1e3:+.3g} and {v[i] * 1e3:+.3g} mV (steeper than the "
                f"pilot grid); window {w_lo * 1e3:+.3g} .. {w_hi * 1e3:+.3g} mV")
    return None, ("pilot: P(1) does not cross 0.5 inside the cell's bias range "
                  f"(P(1) = {', '.join(f'{x:.2f}' for x in p)}); the parts use the whole range")


def _run_pilot(spec: CharSpec, cellspec, out: Path, workers, retry_failed):
    from ..sweep import run_sweep
    from ..sweep.spec import parse_spec

    pl = spec.pilot
    lo, hi = cellspec.bias.range_v
    sweep = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    sweep.update(cell=spec.cell, duration=pl.get("duration", "2us"), seed=pl.get("seed", 1000),
                 grid={"bias": [float(f"{x:.9g}") for x in np.linspace(lo, hi, int(pl.get("num", 9)))]})
    margin = float(pl.get("margin", 4.0))
    results, window, note = [], None, ""
    for stage in range(1, PILOT_STAGES + 1):
        sw = parse_spec(sweep, source=f"{spec.source} [pilot]")
        name = "pilot" if stage == 1 else f"pilot{stage}"
        log(f"pilot stage {stage}: {len(sw.bias_v)} points at the nominal condition -> {out / 'sweep' / name}")
        try:
            res = run_sweep(sw, out / "sweep" / name, workers=workers, progress=True, retry_failed=retry_failed)
        except InputError as exc:
            if "different spec" not in str(exc):
                raise
            raise InputError(f"{out / 'sweep' / name}: holds a pilot stage of a different characterisation (spec "
                             "edited, or the simulation/analysis code changed); use a new --out folder, or delete "
                             "OUT/sweep to simulate again") from None
        results.append(res)
        ok = pd.concat([r.dataframe for r in results])
        ok = ok[ok["status"] == "ok"]
        if not len(ok) or "p1" not in ok:
            window, note = None, "pilot: every pilot simulation failed (see Warnings); the parts use the whole bias range"
            break
        # refuse frozen / non-monotonic points before fitting (issue 16): see regime.sigmoid_points
        from ..regime import sigmoid_points
        col = lambda c: pd.to_numeric(ok[c], errors="coerce").to_numpy(float) if c in ok else None  # noqa: E731
        sp = sigmoid_points(ok["bias_v"].to_numpy(float), col("p1"), col("p1_ci95_lo"), col("p1_ci95_hi"),
                            ok["regime"].astype(str).to_numpy() if "regime" in ok else None)
        if sp.refusal:
            window, note = None, f"pilot: {sp.refusal}; the parts use the whole bias range"
            break
        use = np.asarray(sp.usable)
        window, note = pilot_window(ok["bias_v"].to_numpy(float)[use], col("p1")[use], margin, lo, hi)
        if sp.excluded:
            note += f" ({sp.excluded})"
        if window is None or "steeper than the pilot grid" not in note or stage == PILOT_STAGES:
            break
        # next stage: the same number of points across the widened bracket (each stage narrows it
        # about (num-1)/2-fold) until the sigmoid's own width is resolved
        sweep["grid"] = {"bias": [float(f"{x:.9g}") for x in np.linspace(window[0], window[1], int(pl.get("num", 9)))]}
        sweep["seed"] = int(pl.get("seed", 1000)) + stage
    return results, window, note


# ============================================================================ stored streams
def _stream_names(out: Path, part: str, job_id: str) -> list[str]:
    """Stored stream names of a job: the single run, or its adaptive chunks in order."""
    bits_dir = out / "sweep" / part / "bits"
    if (bits_dir / f"{job_id}.npz").exists():
        return [job_id]
    names, k = [], 0
    while (bits_dir / f"{job_id}.c{k}.npz").exists():
        names.append(f"{job_id}.c{k}")
        k += 1
    return names


def _load_bits(out: Path, part: str, job_id: str) -> tuple[list[np.ndarray], float | None]:
    from ..sweep.store import Store

    st = Store(out / "sweep" / part)
    streams, sp = [], None
    for name in _stream_names(out, part, job_id):
        b, sp = st.read_bits(name)
        streams.append(b)
    return streams, sp


# ============================================================================ entropy
def _entropy_period(cfg: dict, fits: list[ConditionFit], nominal: tuple, points: pd.DataFrame) -> tuple[float, str]:
    """The bit clock the entropy figures are stated at, s, and a sentence saying why."""
    native = float(np.nanmedian(points["sample_period_s"].astype(float))) if len(points) else float("nan")
    val = cfg.get("entropy_sample_period", "auto")
    if val != "auto":
        t = parse_si(val, unit="s", what="report.entropy_sample_period")
        if not t > 0:
            raise InputError(f"report.entropy_sample_period must be > 0, got {val!r}")
        return t, f"entropy and health-test figures at a {t * 1e9:.4g} ns bit clock (set in the spec)"
    fit = next((f for f in fits if (f.corner, f.temp_c, f.vdd_v) == nominal), None)
    if fit is None or not math.isfinite(fit.tau_at_v50_s) or not math.isfinite(native):
        return native, f"entropy figures at the simulation's sample period ({native * 1e9:.4g} ns)"
    # a clock of about one correlation time: successive bits are then only e^-1 correlated, the
    # usual operating point of a p-bit read by a clocked system; rounded to whole stored samples
    m = max(1, int(round(fit.tau_at_v50_s / native)))
    t = m * native
    return t, (f"entropy and health-test figures at a {t * 1e9:.4g} ns bit clock ≈ τ at V50 "
               f"({fit.tau_at_v50_s * 1e9:.3g} ns), i.e. every {m}th stored sample")


def _entropy_columns(points: pd.DataFrame, out: Path, period_s: float, run_90b: bool, nominal: tuple) -> list[str]:
    """Markov-model entropy rates and health-test cutoffs at ``period_s`` for every point (from its
    rates), and SP 800-90B h_original on the stored stream decimated to ``period_s`` (nominal points)."""
    from ..analysis.markov import apt_cutoff, min_entropy_rate, rct_cutoff, shannon_rate
    from ..model.sampler import transition_probabilities

    problems: list[str] = []
    points["entropy_period_s"] = period_s
    points["h_original_n"] = np.nan
    points["h_original_period_s"] = np.nan
    for i, r in points.iterrows():
        ku, kd = r["rate_up_hz"], r["rate_down_hz"]
        if r["status"] != "ok" or not (ku > 0 and kd > 0) or not math.isfinite(period_s):
            continue
        a, b, _ = transition_probabilities(math.log(ku), math.log(kd), period_s)
        h_min = min_entropy_rate(float(a), float(b))
        points.at[i, "h_shannon_rate"] = shannon_rate(float(a), float(b))
        points.at[i, "h_min_rate"] = h_min
        points.at[i, "rct_cutoff"] = rct_cutoff(h_min) or np.nan
        points.at[i, "apt_cutoff"] = apt_cutoff(h_min) or np.nan
    if not run_90b:
        return problems
    from ..entropy import MIN_SAMPLES, assess

    sel = ((points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
           & np.isclose(points["vdd_v"], nominal[2]) & (points["instance"] < 0) & (points["status"] == "ok")
           & (points["role"] == "fit"))
    for i in points.index[sel]:
        r = points.loc[i]
        streams, sp = _load_bits(out, r["part"], r["job_id"])
        if not streams or not sp:
            continue
        m = max(1, int(round(period_s / sp)))
        # every chunk is an independent stream: decimate each, then join (one junction per chunk)
        dec = np.concatenate([s[::m] for s in streams])
        used_period = m * sp
        if dec.size < MIN_SAMPLES:
            # too few samples at the stated clock: assess the stream at its native period instead (a
            # different, stated, per-sample figure) rather than report nothing
            dec = np.concatenate(streams)
            used_period = sp
        points.at[i, "h_original_n"] = dec.size
        points.at[i, "h_original_period_s"] = used_period
        if dec.size < MIN_SAMPLES:
            continue
        try:
            points.at[i, "h_original"] = assess(dec, run_ais31=False, source=str(r["job_id"])[:12]).h_original
        except NoisecellError:
            continue
        except (ValueError, ArithmeticError) as exc:
            # an estimator failing on one stream must not cost the report (the simulations are kept)
            problems.append(f"SP 800-90B assessment failed at {r['bias_v'] * 1e3:+.4g} mV "
                            f"({type(exc).__name__}: {exc}); h_original not given there")
    return problems


# ============================================================================ examples
def _examples(points: pd.DataFrame, out: Path, nominal: tuple, n: int) -> list[ExampleStream]:
    """Streams shown in detail: nominal condition, P(1) nearest 0.5, then nearest 0.2 and 0.8."""
    from ..analysis import analyze_stream
    from ..digitize import digitize_waveform
    from ..io import BitStream
    from ..waveform import Waveform

    ok = points[(points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
                & np.isclose(points["vdd_v"], nominal[2]) & (points["role"] == "fit") & (points["instance"] < 0)
                & (points["status"] == "ok") & points["p1"].between(0.02, 0.98)
                & np.isfinite(points["tau_s"].astype(float))]
    # prefer fitted (bistable) points; fall back to any telegraphing point so the report still shows one
    rows = ok[ok["fitted_regime"]] if ok["fitted_regime"].sum() >= min(n, len(ok)) else ok
    if not len(rows) or n <= 0:
        return []
    chosen = []
    for target in (0.5, 0.2, 0.8, 0.35, 0.65)[:n]:
        left = rows[~rows.index.isin(chosen)]
        if not len(left):
            break
        chosen.append((left["p1"] - target).abs().idxmin())
    exs = []
    for i in sorted(chosen, key=lambda j: rows.loc[j, "bias_v"]):
        r = rows.loc[i]
        names = _stream_names(out, r["part"], r["job_id"])
        if not names:
            continue
        streams, sp = _load_bits(out, r["part"], r["job_id"])
        bits = np.concatenate(streams) if len(streams) > 1 else streams[0]
        wpath = out / "sweep" / r["part"] / "waves" / f"{names[0]}.npz"
        t = v = thr = None
        hyst = 0.0
        if wpath.exists():
            wf = Waveform.load_npz(wpath)
            from ..digitize import readout_signal
            v, _, _ = readout_signal(wf)
            t = np.asarray(wf.time_s, float)
            _, dig = digitize_waveform(wf)
            thr, hyst = dig.threshold_v, dig.hysteresis_v
        acf_tau = psd_tau = float("nan")
        try:
            est = analyze_stream(BitStream(bits=streams[0], sample_period_s=sp), sample_period_s=sp)
            acf_tau = _nan(est.tau_exp_fit_s)
            psd_tau = est.psd_tau_samples * sp if est.psd_tau_samples else float("nan")
        except NoisecellError:
            pass
        exs.append(ExampleStream(
            label=condition_label(*nominal) + ("" if r["fitted_regime"] else f" [{r['regime']}]"),
            corner=nominal[0], temp_c=nominal[1], vdd_v=nominal[2],
            bias_v=float(r["bias_v"]), bits=bits, sample_period_s=float(sp), p1=float(r["p1"]),
            tau_s=float(r["tau_s"]), rate_up_hz=float(r["rate_up_hz"]), rate_down_hz=float(r["rate_down_hz"]),
            time_s=t, v_read=v, threshold_v=thr, hysteresis_v=hyst, acf_tau_s=acf_tau, psd_tau_s=psd_tau))
    return exs


# ============================================================================ mismatch, validation
def _mismatch_tables(model, nominal: tuple) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    if model is None:
        return None, None
    rows, summ = [], []
    for c in model.conditions:
        cd = model.condition_data((c.corner, c.temp_c, c.vdd_v))
        mm = cd.get("mismatch")
        if not mm:
            continue
        for inst in mm.get("instances", []):
            rows.append({"corner": c.corner, "temp_c": c.temp_c, "vdd_v": c.vdd_v, **inst})
        summ.append({"corner": c.corner, "temp_c": c.temp_c, "vdd_v": c.vdd_v, "n_instances": mm["n_instances"],
                     "v50_mean_v": mm["v50_mean_v"], "v50_sd_v": mm["v50_sd_v"],
                     "v50_sd_lo_v": _ci(mm.get("v50_sd_ci95_v"))[0], "v50_sd_hi_v": _ci(mm.get("v50_sd_ci95_v"))[1],
                     "scale_mean_v": mm["scale_mean_v"], "scale_sd_v": mm["scale_sd_v"],
                     "correlation_v50_ln_scale": mm["correlation"]})
    if not rows:
        return None, None
    mm_df = pd.DataFrame(rows)
    for k in ("v50_lo_v", "v50_hi_v"):
        if k not in mm_df:
            mm_df[k] = mm_df["v50_v"]
    return mm_df, pd.DataFrame(summ)


def _validation(model, points: pd.DataFrame, nominal: tuple) -> tuple[pd.DataFrame | None, str]:
    """Model predictions at the held-out bias points against the fresh SPICE runs there."""
    held = points[(points["role"] == "heldout") & (points["status"] == "ok")]
    if model is None or not len(held):
        return None, "No held-out part in the spec (role = \"heldout\")." if not len(held) else \
            "No model to validate."
    rows = []
    for _, r in held.iterrows():
        cond = (r["corner"], r["temp_c"], r["vdd_v"])
        try:
            lo_b, hi_b = model.bias_range(cond)
        except NoisecellError:
            continue
        if not lo_b <= r["bias_v"] <= hi_b or not r["fitted_regime"]:
            continue
        p_m = model.p1(r["bias_v"], cond)
        p_lo, p_hi = model.p1_ci95(r["bias_v"], cond)
        t_m = model.tau(r["bias_v"], cond)
        t_lo, t_hi = model.tau_ci95(r["bias_v"], cond)
        # z of the difference: SPICE and model uncertainties are independent (the held-out streams
        # were not used in the fit), half-widths / 1.96 as standard errors
        # the SPICE point's stored standard errors; the model's from its CIs (the model JSON keeps
        # intervals: on the logit scale for P(1), the ln scale for τ)
        se_p = math.hypot(r["p1_se"], (p_hi - p_lo) / (2 * Z95))
        se_lt = math.hypot(r["tau_log_se"], (math.log(t_hi) - math.log(t_lo)) / (2 * Z95))
        rows.append({"corner": cond[0], "temp_c": cond[1], "vdd_v": cond[2], "bias_v": r["bias_v"],
                     "p1_spice": r["p1"], "p1_spice_lo": r["p1_ci95_lo"], "p1_spice_hi": r["p1_ci95_hi"],
                     "p1_model": p_m, "p1_model_lo": p_lo, "p1_model_hi": p_hi,
                     "p1_z": (r["p1"] - p_m) / se_p if se_p > 0 else float("nan"),
                     "tau_spice_s": r["tau_s"], "tau_spice_lo_s": r["tau_s_ci95_lo"], "tau_spice_hi_s": r["tau_s_ci95_hi"],
                     "tau_model_s": t_m, "tau_model_lo_s": t_lo, "tau_model_hi_s": t_hi,
                     "tau_ratio": r["tau_s"] / t_m,
                     "ln_tau_z": math.log(r["tau_s"] / t_m) / se_lt if se_lt > 0 else float("nan")})
    if not rows:
        return None, "No held-out point lies inside the model's validated bias range."
    df = pd.DataFrame(rows)
    n = len(df)
    zp = np.nanmax(np.abs(df["p1_z"]))
    zt = np.nanmax(np.abs(df["ln_tau_z"]))
    # with n independent held-out points, max|z| exceeds Φ⁻¹(1 − 0.025/n) with probability ≈ 5 %
    # when the model is right (Šidák/Bonferroni), so that is the pass line
    zc = float(stats.norm.ppf(1 - 0.025 / n))
    verdict = "consistent" if zp <= zc and zt <= zc else "NOT consistent"
    note = (f"{n} held-out bias points (own seeds, not used in the fit): max |z| of P(1) = {zp:.2f}, "
            f"of ln τ = {zt:.2f}; family-wise 95 % line for {n} points |z| ≤ {zc:.2f}: model {verdict} "
            f"with the fresh simulations.")
    return df, note


# ============================================================================ measured data
def measurement_rows(meas) -> pd.DataFrame:
    """Analyse every capture of a :class:`~noisecell.measurements.MeasurementSet` like a simulated
    stream; rows shaped like a sweep table (corner ``"measured"``), ready for ``fit_sweep``."""
    from ..analysis import StreamEstimates, analyze_stream
    from ..io import BitStream

    rows = []
    for i, c in enumerate(meas.captures):
        bs = BitStream(bits=c.bits, sample_period_s=c.sample_period_s, source=str(c.file))
        row = {"index": i, "job_id": c.file.name, "cell": meas.cell_id, "corner": "measured", "temp_c": c.temp_c,
               "vdd_v": c.vdd_v, "bias_v": c.bias_v, "mismatch_instance": -1, "status": "ok", "error": None}
        try:
            est = analyze_stream(bs, temp_c=c.temp_c)
            row.update(est.to_row())
        except NoisecellError as exc:
            row.update({"p1": float(np.mean(c.bits)), "analysis_error": str(exc)})
        e = StreamEstimates.from_row(row)
        row["regime"] = ("bistable" if (e.rates_resolved and e.n_flips >= 10 and e.p1 is not None and 0 < e.p1 < 1)
                         else "stuck")
        row["simulated_s"] = c.bits.size * c.sample_period_s
        if c.mean_supply_power_w is not None:
            pw = c.mean_supply_power_w
            row["mean_supply_power_w"] = pw
            row["energy_per_bit_j"] = pw * e.tau_s if e.rates_resolved and e.tau_s else None
            row["energy_per_flip_j"] = pw / e.flip_rate_hz if e.flip_rate_hz else None
        rows.append(row)
    return pd.DataFrame(rows)


def _interp_fit(model, cond: tuple) -> ConditionFit:
    """A ConditionFit for a condition the model interpolates (temperature between calibrated ones)."""
    v50, s = model.v50(cond), model.scale(cond)

    def p1c(x, model=model, cond=cond):
        lo, hi = model.bias_range(cond)
        return model.p1(np.clip(np.asarray(x, float), lo, hi), cond)

    def tauc(x, model=model, cond=cond):
        lo, hi = model.bias_range(cond)
        return model.tau(np.clip(np.asarray(x, float), lo, hi), cond)

    t50 = model.tau(v50, cond)
    return ConditionFit(corner=cond[0], temp_c=cond[1], vdd_v=cond[2], form="logistic (rate model, interpolated)",
                        n_points=0, v50_v=v50, v50_ci_v=(float("nan"), float("nan")), scale_v=s,
                        scale_ci_v=(float("nan"), float("nan")), slope_per_v=1 / (4 * s), tau_at_v50_s=t50,
                        tau_at_v50_ci_s=model.tau_ci95(v50, cond), p1_curve=p1c, tau_curve=tauc,
                        note="interpolated in temperature between calibrated conditions",
                        extra=dict(zip(("bias_range_lo_v", "bias_range_hi_v"), model.bias_range(cond))))


def _measured(meas, out: Path, sim_model, sim_fits, nominal: tuple, cellspec):
    from ..model import CellModel
    from ..model.fit import fit_sweep

    warnings = []
    raw = measurement_rows(meas)
    pts = normalise_rows(raw, "measured", "measured")
    pts["fitted_regime"] = pts["regime"].eq("bistable")
    n_stuck = int((pts["regime"] != "bistable").sum())
    if n_stuck:
        warnings.append(f"measured: {n_stuck} capture(s) show too few flips to estimate rates (shown, not fitted)")
    info = {"folder": str(meas.root), "cell_id": meas.cell_id, "cell": meas.cell or "", "instrument": meas.instrument,
            "synthetic": "YES: synthetic data, not measured" if meas.synthetic else "no (measured)",
            "provenance": meas.provenance, "notes": meas.notes, "captures": len(meas.captures),
            **{k: str(v) for k, v in meas.extra.items()}}
    name = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in (meas.cell_id or "measured"))[:64]
    try:
        doc = fit_sweep(raw[pts["regime"].eq("bistable").to_numpy()], name=name, bias_param=cellspec.bias.param,
                        technology=cellspec.technology, source="measurement", what=str(meas.root))
        doc["provenance"]["notes"] = (("SYNTHETIC data: " if meas.synthetic else "") + meas.provenance)[:2000]
        mmodel = CellModel(doc, source=str(out / "model_measured.json"))
        mpath = mmodel.save(out / "model_measured.json")
        log(f"measured model written: {mpath}")
    except NoisecellError as exc:
        warnings.append(f"measured: no model could be fitted: {exc}")
        return None, info, None, warnings
    mcond = (mmodel.conditions[0].corner, mmodel.conditions[0].temp_c, mmodel.conditions[0].vdd_v)
    if len(mmodel.conditions) > 1:
        warnings.append(f"measured: {len(mmodel.conditions)} (temperature, supply) conditions; the comparison "
                        f"uses {condition_label(*mcond)}")
    mfit = condition_fit(mmodel, mcond, _cond_points(pts, mcond, roles=("measured",)))
    # kept for the report when there is nothing to compare with (underscore keys are not shown as text)
    info["_points"] = pts.drop(columns=["chunks"])
    info["_fit"] = mfit
    if sim_model is None:
        return None, info, mpath, warnings
    # the simulated supply nearest the measured one, at the nominal corner; within 1 % it is compared
    # (the table says both supplies), further away the supplies differ too much to attribute a shift
    vdds = sorted({c.vdd_v for c in sim_model.conditions if c.corner == nominal[0]},
                  key=lambda v: abs(v - mcond[2]))
    svdd = vdds[0] if vdds and abs(vdds[0] - mcond[2]) <= 0.01 * mcond[2] else mcond[2]
    scond = (nominal[0], mcond[1], svdd)
    if svdd != mcond[2]:
        warnings.append(f"measured at {mcond[2]:g} V, simulated at {svdd:g} V (trimmed supply, within 1 %): "
                        "compared as the same condition")
    try:
        exact = next((f for f in sim_fits if (f.corner, f.temp_c, f.vdd_v) == scond), None)
        sfit = exact or _interp_fit(sim_model, scond)
    except NoisecellError as exc:
        warnings.append(f"measured: no simulated condition matches {condition_label(*mcond)} ({exc}); "
                        "no simulation-versus-measurement comparison")
        return None, info, mpath, warnings
    rows = _comparison_rows(sfit, mfit, sim_model, mmodel, scond, mcond, pts)
    meas_points = pts.drop(columns=["chunks"])
    return Comparison(sim=sfit, meas=mfit, rows=rows, meas_points=meas_points), info, mpath, warnings


def _half_se(ci) -> float:
    return (ci[1] - ci[0]) / (2 * Z95) if ci and all(math.isfinite(x) for x in ci) else float("nan")


def _comparison_rows(sfit: ConditionFit, mfit: ConditionFit, smodel, mmodel, scond, mcond, mpts) -> list[dict]:
    rows = []
    # an interpolated simulated condition carries no CI of its own: the measured error alone is used
    se = math.hypot(_nan0(_half_se(sfit.v50_ci_v)), _half_se(mfit.v50_ci_v))
    d = mfit.v50_v - sfit.v50_v
    rows.append({"quantity": "V50 shift (measured − simulated)", "simulated": sfit.v50_v, "measured": mfit.v50_v,
                 "difference_or_ratio": d, "ci_lo": d - Z95 * se, "ci_hi": d + Z95 * se, "unit": "V"})
    # slope ratio = scale_sim / scale_meas; CI on the log scale from the scale CIs
    r = sfit.scale_v / mfit.scale_v
    sl = math.hypot(_nan0(_log_se(sfit.scale_ci_v)), _log_se(mfit.scale_ci_v))
    rows.append({"quantity": "slope ratio dP/dV (measured / simulated)", "simulated": sfit.slope_per_v,
                 "measured": mfit.slope_per_v, "difference_or_ratio": r, "ci_lo": r * math.exp(-Z95 * sl),
                 "ci_hi": r * math.exp(Z95 * sl), "unit": "1/V (slopes)"})
    rt = mfit.tau_at_v50_s / sfit.tau_at_v50_s
    st = math.hypot(_nan0(_log_se(sfit.tau_at_v50_ci_s)), _log_se(mfit.tau_at_v50_ci_s))
    rows.append({"quantity": "τ at V50 ratio (measured / simulated)", "simulated": sfit.tau_at_v50_s,
                 "measured": mfit.tau_at_v50_s, "difference_or_ratio": rt, "ci_lo": rt * math.exp(-Z95 * st),
                 "ci_hi": rt * math.exp(Z95 * st), "unit": "s (τ)"})
    me = mmodel.condition_data(mcond).get("energy") or {}
    try:
        se_ = smodel.condition_data(scond).get("energy") or {}
    except NoisecellError:
        se_ = {}
    for key, label, unit in (("mean_supply_power_w", "mean supply power near V50", "W"),
                             ("energy_per_bit_j", "energy per bit P·τ near V50", "J")):
        a, b = se_.get(key), me.get(key)
        ratio = b / a if (a and b) else float("nan")
        rows.append({"quantity": f"{label} (measured / simulated)", "simulated": a if a is not None else float("nan"),
                     "measured": b if b is not None else float("nan"), "difference_or_ratio": ratio,
                     "ci_lo": float("nan"), "ci_hi": float("nan"), "unit": unit})
    return rows


def _nan0(x: float) -> float:
    return 0.0 if not math.isfinite(x) else x


def _log_se(ci) -> float:
    if not ci or not all(math.isfinite(x) and x > 0 for x in ci):
        return float("nan")
    return (math.log(ci[1]) - math.log(ci[0])) / (2 * Z95)


# ============================================================================ datasheet
def _datasheet(points, fits, model, nominal, mm_sum, validation, ent_period, cellspec) -> pd.DataFrame:
    from ..analysis.markov import apt_cutoff, min_entropy_rate, rct_cutoff, shannon_rate
    from ..model.sampler import transition_probabilities

    rows = []
    nl = condition_label(*nominal)

    def add(q, v, lo=float("nan"), hi=float("nan"), unit="", cond=nl, note=""):
        rows.append({"quantity": q, "value": v, "ci_lo": lo, "ci_hi": hi, "unit": unit, "condition": cond,
                     "note": note})

    f = next((x for x in fits if (x.corner, x.temp_c, x.vdd_v) == nominal), None)
    if f is None:
        add("model", float("nan"), note="no model could be fitted; see Warnings")
        return pd.DataFrame(rows)
    add("V50 (bias for P(1) = 0.5)", f.v50_v, *f.v50_ci_v, "V")
    add("sigmoid scale s (logistic)", f.scale_v, *f.scale_ci_v, "V", note="P(1) = 1/(1+exp(-(V-V50)/s))")
    add("slope dP(1)/dV at V50", 1 / (4 * f.scale_v), 1 / (4 * f.scale_ci_v[1]), 1 / (4 * f.scale_ci_v[0]), "1/V")
    k19 = 2 * math.log(19)
    add("bias span P(1) 5 % → 95 %", k19 * f.scale_v, k19 * f.scale_ci_v[0], k19 * f.scale_ci_v[1], "V")
    add("correlation time τ at V50", f.tau_at_v50_s, *f.tau_at_v50_ci_s, "s")
    add("switching rate k_up = k_down at V50", 1 / (2 * f.tau_at_v50_s), 1 / (2 * f.tau_at_v50_ci_s[1]),
        1 / (2 * f.tau_at_v50_ci_s[0]), "1/s")
    rows_nom = _cond_points(points, nominal)
    if len(rows_nom):
        j = (rows_nom["bias_v"] - f.v50_v).abs().idxmin()
        r = rows_nom.loc[j]
        at = f"simulated point nearest V50 ({r['bias_v'] * 1e3:+.3g} mV)"
        add("mean supply power", r["mean_power_w"], unit="W", note=at)
        if math.isfinite(r["mean_power_w"]):
            # P·τ with τ from the model at V50; the power's own error is far smaller than τ's
            e = r["mean_power_w"] * f.tau_at_v50_s
            add("energy per bit P·τ(V50)", e, r["mean_power_w"] * f.tau_at_v50_ci_s[0],
                r["mean_power_w"] * f.tau_at_v50_ci_s[1], "J", note=f"power {at}")
            kt = kt_ln2_j(nominal[1])
            add("energy per bit / kT·ln2", e / kt, r["mean_power_w"] * f.tau_at_v50_ci_s[0] / kt,
                r["mean_power_w"] * f.tau_at_v50_ci_s[1] / kt, "", note=f"kT·ln2 = {kt:.4g} J at {nominal[1]:g} °C")
        add("energy per flip P/(flip rate)", r["energy_per_flip_j"], unit="J", note=at)
        if math.isfinite(r.get("h_original", float("nan"))):
            add("SP 800-90B h_original", r["h_original"], unit="bits/sample",
                note=f"{at}, bit clock {r['h_original_period_s'] * 1e9:.4g} ns, {int(r['h_original_n'])} samples")
    if math.isfinite(ent_period):
        k50 = 1 / (2 * f.tau_at_v50_s)
        a, b, _ = transition_probabilities(math.log(k50), math.log(k50), ent_period)
        h_min = min_entropy_rate(float(a), float(b))
        note = f"two-state Markov model at V50, bit clock {ent_period * 1e9:.4g} ns"
        add("min-entropy rate", h_min, unit="bits/sample", note=note)
        add("Shannon entropy rate", shannon_rate(float(a), float(b)), unit="bits/sample", note=note)
        add("repetition count test cutoff C", rct_cutoff(h_min) or float("nan"), unit="samples",
            note="SP 800-90B §4.4.1, α = 2^-20")
        add("adaptive proportion test cutoff C (W = 1024)", apt_cutoff(h_min) or float("nan"), unit="samples",
            note="SP 800-90B §4.4.2, α = 2^-20")
    # temperature: V50 drift by weighted least squares over the nominal corner's temperatures
    same = [x for x in fits if x.corner == nominal[0] and x.vdd_v == nominal[2]]
    if len(same) >= 2:
        t = np.array([x.temp_c for x in same])
        v = np.array([x.v50_v for x in same])
        se = np.array([max(_half_se(x.v50_ci_v), 1e-12) for x in same])
        w = 1 / se**2
        tb = np.sum(w * t) / np.sum(w)
        slope = np.sum(w * (t - tb) * v) / np.sum(w * (t - tb) ** 2)
        s_se = math.sqrt(1 / np.sum(w * (t - tb) ** 2))
        add("V50 temperature coefficient", slope, slope - Z95 * s_se, slope + Z95 * s_se, "V/°C",
            cond=f"{nominal[0]}, {t.min():g}..{t.max():g} °C", note="weighted straight line through V50(T)")
        for x in sorted(same, key=lambda x: x.temp_c):
            if x.temp_c != nominal[1]:
                add(f"τ at V50, {x.temp_c:g} °C", x.tau_at_v50_s, *x.tau_at_v50_ci_s, "s", cond=x.label)
    corners = [x for x in fits if x.temp_c == nominal[1] and x.vdd_v == nominal[2]]
    if len(corners) >= 2:
        lo = min(corners, key=lambda x: x.v50_v)
        hi = max(corners, key=lambda x: x.v50_v)
        add("V50 spread over corners (max − min)", hi.v50_v - lo.v50_v, unit="V",
            cond=f"{nominal[1]:g} °C", note=f"min {lo.corner} {lo.v50_v * 1e3:+.3g} mV, max {hi.corner} {hi.v50_v * 1e3:+.3g} mV")
        tl = min(corners, key=lambda x: x.tau_at_v50_s)
        th = max(corners, key=lambda x: x.tau_at_v50_s)
        add("τ at V50 over corners: max / min", th.tau_at_v50_s / tl.tau_at_v50_s, unit="",
            cond=f"{nominal[1]:g} °C", note=f"{tl.corner} {tl.tau_at_v50_s * 1e9:.3g} ns .. {th.corner} {th.tau_at_v50_s * 1e9:.3g} ns")
    if mm_sum is not None and len(mm_sum):
        m = mm_sum.iloc[0]
        add("mismatch σ(V50)", m["v50_sd_v"], m["v50_sd_lo_v"], m["v50_sd_hi_v"], "V",
            cond=condition_label(m["corner"], m["temp_c"], m["vdd_v"]),
            note=f"{int(m['n_instances'])} Monte Carlo instances, de-noised by the per-instance errors")
        add("mismatch σ(scale)", m["scale_sd_v"], unit="V", cond=condition_label(m["corner"], m["temp_c"], m["vdd_v"]))
    if validation is not None and len(validation):
        add("held-out check: max |z| P(1)", float(np.nanmax(np.abs(validation["p1_z"]))), unit="",
            note=f"{len(validation)} held-out bias points")
        add("held-out check: max |z| ln τ", float(np.nanmax(np.abs(validation["ln_tau_z"]))), unit="")
    ok = points[points["status"] == "ok"]
    add("operating points simulated", float(len(points)), unit="", cond="all",
        note=f"{int((points['status'] != 'ok').sum())} failed, {int((ok['regime'] != 'bistable').sum())} not bistable")
    return pd.DataFrame(rows)
