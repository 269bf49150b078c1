"""Held-out check with teeth: fresh records at biases the fit never saw, each precise enough to catch
a model that is off by a few of its own CI half-widths.

A held-out record counts as *precise* when its own P(1) 95 % half-width is ≤ ``p1_halfwidth``
(default ±0.03) and its ln τ 95 % half-width ≤ ``ln_tau_halfwidth`` (default ±0.10). Only precise
records are judged (the others are listed, with why), so a model cannot pass on records too noisy to
contradict it. P(1) of a record: n_ones/n with the two-state chain's effective sample size
(:func:`noisecell.model.p1fit.effective_n`); τ: 1/(k_up + k_down) from the record's own counts by the
sampled-chain inversion (:func:`noisecell.analysis.rates.embedding_rates`), se(ln τ) by the delta
method from the Poisson counts, se(ln k) = 1/√N.

Judgement: for P(1), the logit residuals of all precise records against the model with covariance
(model's own, correlated across biases) + (each record's sampling variance) give χ² = rᵀC⁻¹r on
``n`` dof; likewise ln τ with the model's ln τ covariance. The check passes when both p-values are
≥ ``alpha`` (0.01): under a correct model it fails with probability ≈ 2·alpha. A model with V50
moved by three of its CI half-widths shifts every logit by ≈ 3·1.96·se(V50)/scale, which at
records of ±0.03 in P(1) is many sampling SEs: it fails (tests/test_model_heldout_teeth.py).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from ..analysis.rates import embedding_rates
from ..constants import Z95
from .p1fit import effective_n, p1_consistency
from .ratefit import PointCounts, RateFit



@dataclass(frozen=True)
class HeldOutRecord:
    """One held-out record: its P(1) and τ with 95 % CIs, the model's, and whether it is precise."""

    bias_v: float
    p1: float
    p1_ci95: tuple[float, float]
    tau_s: float
    tau_ci95_s: tuple[float, float]
    p1_model: float
    tau_model_s: float
    precise: bool
    why_not: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HeldOutCheck:
    """Verdict over the precise records (see the module docstring)."""

    records: tuple[HeldOutRecord, ...]
    n_precise: int
    p1_chi2: float
    p1_p: float
    ln_tau_chi2: float
    ln_tau_p: float
    alpha: float
    passed: bool
    p1_halfwidth: float
    ln_tau_halfwidth: float

    def summary(self) -> str:
        if not self.n_precise:
            return (f"held-out check: none of {len(self.records)} records is precise enough to judge the model "
                    f"(needs P(1) ±{self.p1_halfwidth:g} and ln τ ±{self.ln_tau_halfwidth:g}); lengthen them")
        return (f"held-out check: {self.n_precise} precise records (P(1) ±≤{self.p1_halfwidth:g}, ln τ "
                f"±≤{self.ln_tau_halfwidth:g}): P(1) χ² {self.p1_chi2:.3g} (p = {self.p1_p:.2g}), ln τ χ² "
                f"{self.ln_tau_chi2:.3g} (p = {self.ln_tau_p:.2g}); {'PASS' if self.passed else 'FAIL'} at "
                f"α = {self.alpha:g} each")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["records"] = [r.to_dict() for r in self.records]
        return d


def record_tau(p: PointCounts) -> tuple[float, float]:
    """(τ in s, se of ln τ) of one record from its counts (NaN when it lacks transitions both ways)."""
    if min(p.n_up, p.n_down) < 1 or p.n0_at_risk <= 0 or p.n1_at_risk <= 0:
        return float("nan"), float("nan")
    ku_dt, kd_dt = embedding_rates(p.n_up / p.n0_at_risk, p.n_down / p.n1_at_risk)
    if not (math.isfinite(ku_dt) and math.isfinite(kd_dt)) or ku_dt + kd_dt <= 0:
        return float("nan"), float("nan")
    ks = ku_dt + kd_dt
    se = math.sqrt((ku_dt / ks) ** 2 / p.n_up + (kd_dt / ks) ** 2 / p.n_down)
    return p.sample_period_s / ks, se


def ln_tau_cov(fit: RateFit, bias_v) -> tuple[np.ndarray, np.ndarray]:
    """ln τ(V) = −ln(k_up + k_down) of the fit and its covariance across the biases (delta method on
    the fit's (V50, ln|scale|, ln k50, slope_sum[, curvatures]) covariance)."""
    v = np.atleast_1d(np.asarray(bias_v, float))
    lu, ld = fit.ln_rates(v)
    wu = 1 / (1 + np.exp(ld - lu))               # k_up/(k_up + k_down)
    wd = 1 - wu
    x = v - fit.v50.value
    s = fit.scale.value
    bu = 0.5 * (fit.slope_sum_per_v + 1 / s)
    bd = 0.5 * (fit.slope_sum_per_v - 1 / s)
    cu, cd = fit.curvature_per_v2 or (0.0, 0.0)
    k = len(fit.phi_covariance)
    jac = np.zeros((v.size, k))
    jac[:, 0] = wu * (-bu - 2 * cu * x) + wd * (-bd - 2 * cd * x)
    jac[:, 1] = wu * (-0.5 * x / s) + wd * (0.5 * x / s)
    jac[:, 2] = 1.0
    jac[:, 3] = 0.5 * x
    if k > 4:
        jac[:, 4], jac[:, 5] = wu * x * x, wd * x * x
    jac = -jac
    return -np.logaddexp(lu, ld), jac @ np.asarray(fit.phi_covariance, float) @ jac.T


def held_out_check(fit: RateFit, records: Sequence[PointCounts], *, p1_halfwidth: float = 0.03,
                   ln_tau_halfwidth: float = 0.10, alpha: float = 0.01) -> HeldOutCheck:
    """Judge ``fit`` on held-out ``records`` (see the module docstring)."""
    out: list[HeldOutRecord] = []
    precise: list[PointCounts] = []
    taus: list[tuple[float, float, float]] = []
    for r in sorted(records, key=lambda p: p.bias_v):
        ne = effective_n(r)
        p = r.p1
        if ne is None:
            ci = (float("nan"), float("nan"))
            hw_p = math.inf
        else:
            hw_p = Z95 * math.sqrt(max(p * (1 - p), 0.25 / ne) / ne)
            ci = (max(0.0, p - hw_p), min(1.0, p + hw_p))
        tau, se_lt = record_tau(r)
        hw_t = Z95 * se_lt if math.isfinite(se_lt) else math.inf
        why = []
        if not hw_p <= p1_halfwidth:
            why.append(f"P(1) ±{hw_p:.3g} > ±{p1_halfwidth:g}")
        if not hw_t <= ln_tau_halfwidth:
            why.append(f"ln τ ±{hw_t:.3g} > ±{ln_tau_halfwidth:g}")
        tci = (tau * math.exp(-hw_t), tau * math.exp(hw_t)) if math.isfinite(hw_t) else (float("nan"), float("nan"))
        ok = not why
        out.append(HeldOutRecord(r.bias_v, p, ci, tau, tci, float(fit.p1(r.bias_v)), float(fit.tau_s(r.bias_v)),
                                 ok, "; ".join(why)))
        if ok:
            precise.append(r)
            taus.append((r.bias_v, math.log(tau), se_lt))
    if not precise:
        return HeldOutCheck(tuple(out), 0, float("nan"), float("nan"), float("nan"), float("nan"), alpha, False,
                            p1_halfwidth, ln_tau_halfwidth)
    c = p1_consistency(precise, fit)
    v = np.array([t[0] for t in taus])
    mu, cov_m = ln_tau_cov(fit, v)
    res = np.array([t[1] for t in taus]) - mu
    cov = cov_m + np.diag([t[2] ** 2 for t in taus])
    chi2_t = float(res @ np.linalg.solve(cov, res))
    p_t = float(stats.chi2.sf(chi2_t, len(taus)))
    passed = bool(c.p_value >= alpha and p_t >= alpha)
    return HeldOutCheck(tuple(out), len(precise), c.chi2, c.p_value, chi2_t, p_t, alpha, passed,
                        p1_halfwidth, ln_tau_halfwidth)


def shifted_fit(fit: RateFit, dv50_v: float) -> RateFit:
    """The same fit with V50 moved by ``dv50_v`` (V), claiming the same precision: for the check's
    own test of power."""
    import dataclasses

    iv = fit.v50
    return dataclasses.replace(fit, v50=dataclasses.replace(iv, value=iv.value + dv50_v, lo=iv.lo + dv50_v,
                                                            hi=iv.hi + dv50_v))
