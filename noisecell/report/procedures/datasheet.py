"""Procedure 4, the datasheet: the headline figures at the nominal condition with their 95 % CIs."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...constants import Z95
from ...model.instances import spread_interval
from ..data import condition_label, kt_ln2_j
from ..notation import eng
from .points import cond_points

#: quantities whose sign matters (shown with "+" when positive)
SIGNED = ("V50 (bias for P(1) = 0.5)", "V50 temperature coefficient")
#: units of counts (shown without decimals)
COUNT_UNITS = ("samples",)


@dataclass(frozen=True)
class Datasheet:
    """The headline figures: ``table`` has one row per quantity with plain SI floats (value, ci_lo,
    ci_hi; NaN where there is no interval), unit, condition and note — what datasheet.csv holds."""

    table: pd.DataFrame

    @staticmethod
    def text(row) -> str:
        """One row in engineering notation: ``+0.50 mV [−0.94, +1.94]``."""
        v, lo, hi, unit = row["value"], row["ci_lo"], row["ci_hi"], row["unit"]
        unit = unit if isinstance(unit, str) else ""       # a CSV read back gives NaN for no unit
        ci = (lo, hi) if (lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi))) else None
        if ci is None and (unit in COUNT_UNITS or (unit == "" and isinstance(v, float) and v.is_integer()
                                                  and abs(v) < 1e9)) and math.isfinite(v):
            return f"{int(v)}" + (f" {unit}" if unit else "")
        return eng(v, unit, ci, signed=row["quantity"] in SIGNED)

    def display_table(self) -> pd.DataFrame:
        """The table as a reader sees it: quantity, "value [95 % CI]" in engineering notation, condition, note."""
        t = self.table
        if not len(t):
            return t
        return pd.DataFrame({"quantity": t["quantity"], "value [95 % CI]": [self.text(r) for _, r in t.iterrows()],
                             "condition": t["condition"], "note": t["note"]})

    def summary(self) -> str:
        lines = ["datasheet:"]
        for _, r in self.table.iterrows():
            lines.append(f"  {r['quantity']} = {self.text(r)}  ({r['condition']})")
        return "\n".join(lines)


def make_datasheet(points, fits, model, nominal, mm_sum, validation, ent_period, cellspec) -> Datasheet:
    """The datasheet of a characterisation (see :func:`datasheet_table`)."""
    return Datasheet(datasheet_table(points, fits, model, nominal, mm_sum, validation, ent_period, cellspec))

def _half_se(ci) -> float:
    return (ci[1] - ci[0]) / (2 * Z95) if ci and all(math.isfinite(x) for x in ci) else float("nan")


def datasheet_table(points, fits, model, nominal, mm_sum, validation, ent_period, cellspec) -> pd.DataFrame:
    from ...analysis.markov import apt_cutoff, min_entropy_rate, rct_cutoff, shannon_rate
    from ...model.sampler import transition_probabilities

    rows = []
    nl = condition_label(*nominal)

    def add(q, v, lo=float("nan"), hi=float("nan"), unit="", cond=nl, note=""):
        # a quantity these data do not give (no supply current recorded, no flips) is left out, not
        # listed without a value
        if v is None or not math.isfinite(float(v)):
            return
        rows.append({"quantity": q, "value": v, "ci_lo": lo, "ci_hi": hi, "unit": unit, "condition": cond,
                     "note": note})

    f = next((x for x in fits if (x.corner, x.temp_c, x.vdd_v) == nominal), None)
    if f is None:
        # no rate model at the nominal condition: still state what the points say. P(1) against bias is
        # a property of the readout whatever the regime, so its direct sigmoid fit gives V50 and the
        # scale (the rows used to be one "model" row with no value and no interval)
        _no_model_rows(add, points, nominal)
        _points_row(add, points)
        return pd.DataFrame(rows)
    add("V50 (bias for P(1) = 0.5)", f.v50_v, *f.v50_ci_v, "V")
    add("sigmoid scale s (logistic)", f.scale_v, *f.scale_ci_v, "V", note="P(1) = 1/(1+exp(-(V-V50)/s))")
    add("slope dP(1)/dV at V50", 1 / (4 * f.scale_v), 1 / (4 * f.scale_ci_v[1]), 1 / (4 * f.scale_ci_v[0]), "1/V")
    k19 = 2 * math.log(19)
    add("bias span P(1) 5 % → 95 %", k19 * f.scale_v, k19 * f.scale_ci_v[0], k19 * f.scale_ci_v[1], "V")
    add("correlation time τ at V50", f.tau_at_v50_s, *f.tau_at_v50_ci_s, "s")
    add("switching rate k_up = k_down at V50", 1 / (2 * f.tau_at_v50_s), 1 / (2 * f.tau_at_v50_ci_s[1]),
        1 / (2 * f.tau_at_v50_ci_s[0]), "1/s")
    k9 = 2 * math.log(9)
    add("bias width P(1) 10 % → 90 %", k9 * f.scale_v, k9 * f.scale_ci_v[0], k9 * f.scale_ci_v[1], "V")
    _mid_bias_rows(add, model, nominal, cellspec)
    rows_nom = cond_points(points, nominal)
    _autocorrelation_rows(add, rows_nom, f, model, nominal)
    if len(rows_nom):
        j = (rows_nom["bias_v"] - f.v50_v).abs().idxmin()
        r = rows_nom.loc[j]
        at = f"simulated point nearest V50 ({r['bias_v'] * 1e3:+.3g} mV)"
        add("mean supply power", r["mean_power_w"], unit="W", note=at)
        # energy per bit as the model states it (its energy block, noisecell.model.energy): that record's
        # power × τ(V50), CI from τ's (the power's own error is far smaller than τ's)
        if model is not None:
            en = model.condition_data(nominal).get("energy") or {}
        else:  # a datasheet of fits without their model document: the same rule on this record
            from ...model.energy import energy_at_v50

            en = energy_at_v50({"sigmoid": {"v50_v": f.v50_v},
                                "tau": {"tau_at_v50_s": f.tau_at_v50_s, "tau_at_v50_ci95_s": list(f.tau_at_v50_ci_s)},
                                "energy": {"at_bias_v": float(r["bias_v"]), "mean_supply_power_w": r["mean_power_w"]}})
        e, e_ci = en.get("energy_per_bit_j"), en.get("energy_per_bit_ci95_j") or [float("nan")] * 2
        if e is not None:
            rec = en.get("at_bias_v")
            at_e = f"record nearest V50 ({rec * 1e3:+.3g} mV)" if rec is not None else at
            add("energy per bit P·τ(V50)", e, *e_ci, "J", note=f"power of the {at_e} × τ(V50)")
            kt = kt_ln2_j(nominal[1])
            add("energy per bit / kT·ln2", e / kt, e_ci[0] / kt, e_ci[1] / kt, "",
                note=f"kT·ln2 = {kt:.4g} J at {nominal[1]:g} °C")
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
        import statsmodels.api as sm

        t = np.array([x.temp_c for x in same])
        v = np.array([x.v50_v for x in same])
        se = np.array([max(_half_se(x.v50_ci_v), 1e-12) for x in same])
        # statsmodels WLS with the stated errors as known (fixed-scale covariance)
        res = sm.WLS(v, sm.add_constant(t - t.mean()), weights=1 / se**2).fit(cov_type="fixed scale")
        slope, s_se = float(res.params[1]), float(res.bse[1])
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
        mm_cond = condition_label(m["corner"], m["temp_c"], m["vdd_v"])
        mm_data = (model.condition_data((m["corner"], m["temp_c"], m["vdd_v"])).get("mismatch") or {}
                   if model is not None else {})
        dist = mm_data.get("distribution")
        if not isinstance(dist, dict):  # schema-v1 block: offset and scale only
            add("mismatch σ(scale)", m["scale_sd_v"], unit="V", cond=mm_cond)
        else:
            # gain and τ-ratio spreads as factors ×/÷ exp(sd); an unresolved spread (CI reaching 0) is
            # stated as its 95 % upper bound, never as an sd of 0 (which would read as "no spread")
            for j, what in ((1, "gain (scale ratio)"), (2, "τ ratio")):
                sd, lo, hi, resolved = spread_interval(dist, j)
                if resolved:
                    add(f"mismatch spread of {what}, factor ×/÷", math.exp(sd), math.exp(lo), math.exp(hi), "", cond=mm_cond,
                        note="de-noised by the per-instance errors")
                else:
                    add(f"mismatch spread of {what}, factor ×/÷: 95 % upper bound", math.exp(hi), unit="", cond=mm_cond,
                        note="not resolved above the instances' estimation noise")
    if validation is not None and len(validation):
        add("held-out check: max |z| P(1)", float(np.nanmax(np.abs(validation["p1_z"]))), unit="",
            note=f"{len(validation)} held-out bias points")
        add("held-out check: max |z| ln τ", float(np.nanmax(np.abs(validation["ln_tau_z"]))), unit="")
    _points_row(add, points)
    return pd.DataFrame(rows)


def _mid_bias_rows(add, model, nominal, cellspec) -> None:
    """P(1) and the flip rate at the bias the cell declares as its mid point (cell.toml ``[bias] mid_v``),
    from the model: where an untrimmed array of these cells would sit. Left out when the model does
    not cover that bias."""
    from ...errors import NoisecellError

    if model is None or cellspec is None or getattr(cellspec, "bias", None) is None:
        return
    mid = float(cellspec.bias.mid_v)
    try:
        p, p_ci = model.p1(mid, nominal), model.p1_ci95(mid, nominal)
        k, k_ci = model.flip_rate(mid, nominal), model.flip_rate_ci95(mid, nominal)
    except NoisecellError:
        return
    at = f"model at the declared mid bias {mid * 1e3:+.4g} mV (cell.toml [bias] mid_v)"
    add("P(1) at the declared mid bias", p, *p_ci, "", note=at)
    add("flip rate at the declared mid bias", k, *k_ci, "1/s", note=at + ": 2·k_up·k_down/(k_up + k_down)")


def _autocorrelation_rows(add, rows_nom, f, model=None, nominal=None) -> None:
    """The measured autocorrelation times of the bit stream at V50 (:mod:`noisecell.analysis.corrtime`),
    next to the rate model's dwell τ: published cells quote the measured one, samplers need the dwell one,
    and a cell with more regular dwells than exponential has a shorter measured time. With the model:
    τ(V50) × the records' measured/dwell ratio (records within ±1.5 scales); without: the records within
    ±0.5 scales of V50 pooled directly."""
    from ...analysis import corrtime
    from ...errors import NoisecellError

    if not len(rows_nom) or "acf_tau_iact_s" not in rows_nom:
        return
    if model is not None:
        def tau_at(v: float) -> float:
            try:
                return float(model.tau(v, nominal))
            except NoisecellError:
                return float("nan")

        pooled = corrtime.scaled_to_v50(rows_nom, tau_at, f.tau_at_v50_s, f.tau_at_v50_ci_s, f.v50_v, f.scale_v)
        how = (f"τ(V50) × the mean ratio of measured time to the rate model's τ at each record's bias over the "
               f"{{n}} records within ±{corrtime.RATIO_SCALES:g} scales of V50 ({{us}} µs); CI: the ratio's "
               "t-interval and τ(V50)'s")
    else:
        pooled = corrtime.near_v50(rows_nom, f.v50_v, f.scale_v)
        how = (f"{{n}} records within ±{corrtime.NEAR_V50_SCALES:g} scales of V50 ({{us}} µs); mean of the records' "
               "values, t-interval from their scatter")
    for d, label in (("exp_fit", "1/e, exponential fit of the ACF"), ("iact", "integrated (IACT)")):
        p = pooled[d]
        if p is None:
            continue
        add(f"autocorrelation time of the bit stream at V50, {label}", p.value_s, *p.ci95_s, "s",
            note=how.format(n=p.n_records, us=f"{p.duration_s * 1e6:.4g}")
            + "; equals τ at V50 for a Markov (exponential-dwell) cell")


def _points_row(add, points) -> None:
    ok = points[points["status"] == "ok"]
    add("operating points simulated", float(len(points)), unit="", cond="all",
        note=f"{int((points['status'] != 'ok').sum())} failed, {int((ok['regime'] != 'bistable').sum())} not bistable")


def _no_model_rows(add, points, nominal) -> None:
    from .fits import _direct_sigmoid

    sel = ((points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
           & np.isclose(points["vdd_v"], nominal[2]) & points["role"].isin(["fit", "pilot"])
           & (points["instance"] < 0) & (points["status"] == "ok"))
    rows = points[sel]
    d = _direct_sigmoid(rows)
    n_fit = int(rows["fitted_regime"].sum()) if "fitted_regime" in rows else 0
    add("calibrated conditions (rate model)", 0.0, note=f"no rate model: {n_fit} of {len(rows)} points at this "
        "condition are of a fitted regime (see Warnings)")
    if d is None:
        return
    note = (f"direct {d['form']} fit of P(1) alone over {len(rows)} points of any regime (no rate model, so no τ); "
            "a fit, not a calibrated model")
    ci = d.get("v50_ci95_v") or (float("nan"), float("nan"))
    add("V50 (bias for P(1) = 0.5)", d["v50_v"], ci[0], ci[1], "V", note=note)
    add("sigmoid scale s (direct fit)", d["scale_v"], unit="V", note="sign: P(1) falls with bias when negative")
