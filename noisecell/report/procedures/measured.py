"""Procedure 6, measured comparison: measured captures analysed like simulated streams, the same model
fitted to them, compared with the simulation at the matching condition."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...constants import Z95
from ...errors import NoisecellError
from ..data import Comparison, ConditionFit, condition_label
from . import log
from .fits import condition_fit, interp_fit
from .points import cond_points, normalise_rows


def measurement_rows(meas) -> pd.DataFrame:
    """Analyse every capture of a :class:`~noisecell.measurements.MeasurementSet` like a simulated
    stream; rows shaped like a sweep table (corner ``"measured"``), ready for ``fit_sweep``."""
    from ...analysis import StreamEstimates, analyze_stream
    from ...io import BitStream

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


@dataclass
class MeasuredResult:
    """Measured captures: ``comparison`` with the simulation (None when nothing matches or no model
    could be fitted), ``info`` (the dataset's metadata; ``_points`` / ``_fit`` hold its per-point table
    and fit), the measured model's ``model_path`` and the ``warnings`` for the report."""

    comparison: Comparison | None
    info: dict
    model_path: Path | None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = f"measured: {self.info.get('captures', 0)} captures from {self.info.get('folder')}"
        if self.comparison is None:
            return head + "; no comparison (" + ("; ".join(self.warnings) or "no simulated model") + ")"
        rows = "; ".join(f"{r['quantity']} {r['difference_or_ratio']:.4g}" for r in self.comparison.rows[:3])
        return f"{head}; {rows}"


def compare_measured(meas, out: Path, sim_model, sim_fits, nominal: tuple, cellspec) -> MeasuredResult:
    """Analyse and fit the measured captures, and compare them with the simulated model at the
    matching condition (see :func:`measured_comparison`)."""
    return MeasuredResult(*measured_comparison(meas, out, sim_model, sim_fits, nominal, cellspec))


def measured_comparison(meas, out: Path, sim_model, sim_fits, nominal: tuple, cellspec):
    """(comparison, info, measured model path, warnings)."""
    from ...model import CellModel
    from ...model.fit import fit_sweep

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
    mfit = condition_fit(mmodel, mcond, cond_points(pts, mcond, roles=("measured",)))
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
        sfit = exact or interp_fit(sim_model, scond)
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
                             ("energy_per_bit_j", "energy per bit P·τ(V50)", "J")):
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
