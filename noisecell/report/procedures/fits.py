"""Procedure 3, the model: fit the behavioural model to the "fit" and "mismatch" parts (each condition
once), and the report's view of every calibrated condition (:class:`~..data.ConditionFit`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError, NoisecellError
from ...model import ratemodel
from ..data import ConditionFit, condition_label
from . import log
from .points import cond_points

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
    extra = {"bias_range_lo_v": lo_b, "bias_range_hi_v": hi_b}
    up = dn = (float("nan"), float("nan"))
    if rm["kind"] == "loglinear":
        # ln k at V50 and the slopes there: the block restated at reference V50 (exact with curvature)
        at = ratemodel.rereference(rm, v50)
        up = (at["ln_k_up"]["intercept"], at["ln_k_up"]["slope_per_v"])
        dn = (at["ln_k_down"]["intercept"], at["ln_k_down"]["slope_per_v"])
        extra.update(ln_k_up_curvature_per_v2=at["ln_k_up"]["curvature_per_v2"],
                     ln_k_up_curvature_se_per_v2=at["ln_k_up"]["curvature_se_per_v2"],
                     ln_k_down_curvature_per_v2=at["ln_k_down"]["curvature_per_v2"],
                     ln_k_down_curvature_se_per_v2=at["ln_k_down"]["curvature_se_per_v2"])
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
    from ...analysis.sigmoid import fit_sigmoids

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


def interp_fit(model, cond: tuple) -> ConditionFit:
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


def mismatch_tables(model, nominal: tuple) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    if model is None:
        return None, None
    rows, summ = [], []
    for c in model.conditions:
        cd = model.condition_data((c.corner, c.temp_c, c.vdd_v))
        mm = cd.get("mismatch")
        if not mm:
            continue
        for inst in mm.get("instances", []):
            inst = dict(inst)
            tr = inst.pop("trim", None)
            if isinstance(tr, dict):  # the instance's own trim (with [mismatch]): flat columns for the tables
                inst["trim_supply_v"] = tr.get("supply_v")
                for k, v in (tr.get("trims_v") or {}).items():
                    inst[f"trim_{k}_v"] = v
                inst["dc_offset_v"] = tr.get("dc_offset_v")
                inst["trim_settings"] = tr.get("rounds")
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


@dataclass
class ModelResult:
    """The behavioural model fitted to the "fit" and "mismatch" parts: ``model`` (a
    :class:`noisecell.model.CellModel`, None when none could be fitted) saved at ``path``; ``fits``: the
    report's view of each calibrated condition; ``dropped``: (condition, reason) left out; ``nominal``:
    the condition the datasheet states (the nominal one, or the first calibrated one when the nominal
    could not be fitted); ``warnings``: what the report says about the fit."""

    model: object | None
    path: Path | None
    fits: list[ConditionFit]
    nominal: tuple[str, float, float]
    dropped: list[tuple[tuple, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fit_at(self, cond: tuple) -> ConditionFit | None:
        return next((f for f in self.fits if (f.corner, f.temp_c, f.vdd_v) == cond), None)

    def summary(self) -> str:
        if self.model is None:
            return "model: none (" + "; ".join(w for w in self.warnings if w.startswith("no model")) + ")"
        lines = [f"model: {self.path} ({len(self.fits)} condition(s); {len(self.dropped)} left out)"]
        for f in self.fits:
            lines.append(f"  {f.label}: V50 {f.v50_v * 1e3:+.4g} mV, scale {f.scale_v * 1e3:.4g} mV, "
                         f"τ(V50) {f.tau_at_v50_s * 1e9:.4g} ns, {f.n_points} points")
        return "\n".join(lines)


#: a condition whose τ(V50) is shorter than this many noise steps NT is flagged as not NT-converged.
#: Measured on pbit_x5 (session 26, 8 µs records at V50): at τ ≈ 1.8 ns (4.5 NT of 0.4 ns) the flip rate
#: rose 17 % for NT 0.4 → 0.2 ns and 11 % more for 0.2 → 0.1 ns; at τ 6.6 ns (16.5 NT) +8 % for 0.4 → 0.2
#: ns. The condition's own CIs are statistical only and do not hold that systematic error.
MIN_TAU_NOISE_STEPS = 25.0


def noise_step_caveats(doc: dict, noise_step_s: float | None) -> tuple[dict, list[str]]:
    """The model document with each condition's noise step NT (s) and τ(V50)/NT in its ``joint_fit`` block
    (when it has one), and one warning per condition whose τ(V50) is under MIN_TAU_NOISE_STEPS·NT: its
    rates carry a discretisation error of the noise (finer NT: faster flips, shorter τ) that its CIs
    do not include. Pure: returns a new document."""
    if not noise_step_s or not math.isfinite(noise_step_s) or noise_step_s <= 0:
        return doc, []
    warnings, conds = [], []
    for c in doc.get("conditions", []):
        tau = float((c.get("tau") or {}).get("tau_at_v50_s") or float("nan"))
        n = tau / noise_step_s
        if c.get("joint_fit") is not None and math.isfinite(n):
            c = {**c, "joint_fit": {**c["joint_fit"], "noise_step_s": float(noise_step_s),
                                    "tau_v50_noise_steps": float(n)}}
        if math.isfinite(n) and n < MIN_TAU_NOISE_STEPS:
            warnings.append(f"condition {condition_label(c['corner'], c['temp_c'], c['vdd_v'])}: τ(V50) "
                            f"{tau * 1e9:.3g} ns is only {n:.3g} noise steps (NT {noise_step_s * 1e9:.3g} ns; "
                            f"resolved from {MIN_TAU_NOISE_STEPS:g}): its rates are not NT-converged (pbit_x5: flip "
                            "rate +17 % for NT 0.4 → 0.2 ns at τ 1.8 ns, +8 % at 6.6 ns), a systematic error its "
                            "CIs do not include; re-trim it slower (noisecell trim --max-flips) or lower noise_step")
        conds.append(c)
    return {**doc, "conditions": conds}, warnings


def _nothing_to_fit(points: pd.DataFrame) -> str:
    """Say what was seen rather than the fitter's generic "no rows" (the sweep did run)."""
    ok = points[points["status"].eq("ok") & points["role"].isin(["fit", "mismatch"])]
    seen = ", ".join(f"{n} {r}" for r, n in ok["regime"].astype(str).value_counts().items())
    n_bi = int(ok["regime"].astype(str).eq("bistable").sum())
    head = (f"none of the {len(ok)} finished fit/mismatch points telegraphs" if n_bi == 0 else
            f"no condition has 3 bistable points ({n_bi} of the {len(ok)} finished fit/mismatch "
            "points telegraph, spread over conditions)")
    return (f"{head} ({seen or 'no points'}); a model needs at least 3 bistable points "
            "per condition: lengthen the records (sweep.adaptive) or trim the cell")


def fit_model(points: pd.DataFrame, raw: pd.DataFrame, cellspec, ident: dict, nominal: tuple, out: Path,
              *, adjust_document=None) -> ModelResult:
    """Fit the model to the fittable ("fitted_regime", status ok) points of the fit and mismatch parts,
    every condition exactly once (a condition that cannot be fitted is left out and said so), and
    write ``out/model.json``. ``points`` and ``raw`` are row-aligned (see :class:`.parts.PartsResult`).
    ``adjust_document``: (doc, dropped) -> doc applied before the model is made (the sequential design's
    joint fit of the nominal condition); ``dropped``: the (condition, reason) pairs the per-point fit
    left out."""
    from ...model import CellModel
    from ...model.fit import fit_sweep

    warnings: list[str] = []
    fittable = points["fitted_regime"].to_numpy() & points["status"].eq("ok").to_numpy()
    for_fit = raw[fittable & points["role"].isin(["fit", "mismatch"]).to_numpy()]
    n_nonbi = int((points["status"].eq("ok") & ~points["fitted_regime"]).sum())
    if n_nonbi:
        seen = sorted(set(points.loc[points["status"].eq("ok") & ~points["fitted_regime"], "regime"].astype(str)))
        warnings.append(f"{n_nonbi} point(s) have regime(s) {', '.join(seen)}: shown, not fitted")
    model = model_path = None
    dropped: list[tuple[tuple, str]] = []
    failure = None
    try:
        if not len(for_fit):
            raise NoisecellError(_nothing_to_fit(points))
        try:
            doc = fit_sweep(for_fit, name=cellspec.name, bias_param=cellspec.bias.param,
                            technology=cellspec.technology, netlist_sha256=ident["netlist_sha256"],
                            model_package=ident["model_package"], sweep_id=ident["sweep_id"],
                            ngspice_version=ident["ngspice"],
                            nominal={"corner": nominal[0], "temp_c": nominal[1], "vdd_v": nominal[2]},
                            what="condition", dropped=dropped)
        except InputError:
            if dropped and len(dropped) == for_fit.groupby(["corner", "temp_c", "vdd_v"]).ngroups:
                raise NoisecellError(_nothing_to_fit(points)) from None
            raise
        for c in doc.get("conditions", []):
            g = c.get("goodness_of_fit") or {}
            if g.get("n_renewal_kept"):
                # stated, not silent: these rates are 1/mean dwell of a non-exponential dwell law
                warnings.append(f"condition {condition_label(c['corner'], c['temp_c'], c['vdd_v'])}: "
                                f"{g['n_renewal_kept']} of {g.get('n_points', '?')} fitted points are flagged non-Markov with "
                                "dwells more regular than exponential (a renewal telegraph with a dead time); their "
                                "rates (1/mean dwell) give P(1) and τ, the model's Markov sampler not their dwell shape")
        if adjust_document is not None:
            from ...model.fit import rereference_mismatch

            doc = adjust_document(doc, dropped)  # the reasons: a condition left out says why
            # offsets, gains and tau ratios against the nominal fit the model now holds
            doc["conditions"] = [rereference_mismatch(c) for c in doc["conditions"]]
        model = CellModel(doc, source=str(out / "model.json"))
        model_path = model.save(out / "model.json")
        log(f"model written: {model_path}")
    except NoisecellError as exc:
        failure = exc
        log(f"warning: no model could be fitted: {exc}")
    warnings += [f"condition {condition_label(*cond)} left out of the model: {why}" for cond, why in dropped]
    if failure is not None:
        warnings.append(f"no model: {failure}")
    fits = []
    if model is not None:
        for c in model.conditions:
            cond = (c.corner, c.temp_c, c.vdd_v)
            fits.append(condition_fit(model, cond, cond_points(points, cond, roles=("fit",))))
    nominal_eff = nominal
    if fits and not any((f.corner, f.temp_c, f.vdd_v) == nominal for f in fits):
        nominal_eff = (fits[0].corner, fits[0].temp_c, fits[0].vdd_v)
    return ModelResult(model, model_path, fits, nominal_eff, dropped, warnings)
