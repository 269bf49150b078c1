"""P(1) at every bias: the direct fit, the rate model's tails, and which description holds where.

P(1) is a property of the readout, measured at every bias whatever the regime label says: a point
past P(1) ≈ 0.05 / 0.95 may hold too few minority visits for the regime detector to call it a
telegraph (its regime label stays as information) but its P(1) is still data, with an effective
sample size set by its visits to the minority state (:func:`effective_n`). So:

* :func:`fit_p1_direct` fits a logistic P(1)(V) to all points by the effective-sample-size binomial
  likelihood (n_eff·p̂ "successes" of n_eff trials; statsmodels GLM, binomial family, var_weights =
  n_eff: the binomial variance p(1−p)/n_eff is what the readout analysis's autocorrelation-aware
  n_eff means). statsmodels because it is a maintained GLM with standard errors and Pearson χ².
* :func:`p1_consistency` tests a fitted P(1) curve (the rate model's, extrapolated) against points:
  logit residuals with the model's own covariance plus each point's n_eff-binomial variance.
* :func:`describe_regions` says for each bias region which description holds — the rate model
  (fitted to the transitions there), the rate model's P(1) (checked against tail points), or the
  direct P(1) fit only — with the test that says how well, and the calibrated bias range with the
  P(1) it spans.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from ..errors import InputError
from .ratefit import Interval, PointCounts, RateFit

#: tail definition: P(1) below TAIL_P or above 1 − TAIL_P
TAIL_P = 0.05
#: level of the consistency tests that decide which description holds in a region
REGION_ALPHA = 0.01
#: the P(1) span a calibration should cover (issue 14)
P1_SPAN_TARGET = (0.02, 0.98)


@dataclass(frozen=True)
class P1Fit:
    """Logistic P(1) = 1/(1 + exp(−(V − v50)/scale)) fitted to every point's P(1).

    pearson_chi2 / dof / gof_p: goodness of fit (Pearson χ² of the n_eff-binomial residuals);
    n_points: points used; bias_range_v: their span (V).
    """

    v50: Interval
    scale: Interval
    pearson_chi2: float
    dof: int
    gof_p: float
    n_points: int
    bias_range_v: tuple[float, float]
    covariance: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))

    def p1(self, bias_v) -> np.ndarray:
        return 1 / (1 + np.exp(-(np.asarray(bias_v, float) - self.v50.value) / self.scale.value))

    def logit_p1_cov(self, bias_v) -> tuple[np.ndarray, np.ndarray]:
        """ln(P1/P0) at ``bias_v`` and its covariance from the fit (covariance of (v50, ln|scale|))."""
        v = np.atleast_1d(np.asarray(bias_v, float))
        x = v - self.v50.value
        s = self.scale.value
        jac = np.stack([-np.ones_like(x) / s, -x / s], axis=1)
        return x / s, jac @ np.asarray(self.covariance) @ jac.T

    def to_dict(self) -> dict:
        return {"v50_v": self.v50.to_dict(), "scale_v": self.scale.to_dict(), "pearson_chi2": self.pearson_chi2,
                "dof": self.dof, "gof_p": self.gof_p, "n_points": self.n_points,
                "bias_range_v": list(self.bias_range_v)}


#: a record enters the P(1) likelihoods only with at least this many visits to each state
MIN_VISITS = 4


def effective_n(p: PointCounts) -> float | None:
    """Effective sample size of a record's P(1), or None when the record cannot support one.

    A record that visited its minority state fewer than MIN_VISITS times says little about P(1):
    its time in that state is a sum of a handful of dwells (relative variance ~2/visits), and an
    analysis that finds no correlation in a stuck record (n_eff = n) would claim P(1) to ±1/n. So:
    None below MIN_VISITS visits either way; otherwise the two-state chain's n·(1−λ)/(1+λ) with
    λ = 1 − n_up/n0 − n_down/n1 from the record's own counts, capped by the readout analysis's n_eff
    when given (it also sees memory longer than one step)."""
    if p.n_samples <= 0 or min(p.n_up, p.n_down) < MIN_VISITS or p.n0_at_risk <= 0 or p.n1_at_risk <= 0:
        return None
    lam = 1 - p.n_up / p.n0_at_risk - p.n_down / p.n1_at_risk
    lam = min(max(lam, -0.999), 0.999999)
    n = p.n_samples * (1 - lam) / (1 + lam)
    if p.n_eff is not None and math.isfinite(p.n_eff) and p.n_eff > 0:
        n = min(n, p.n_eff)
    return float(n)


def _usable(points: Sequence[PointCounts]) -> list[PointCounts]:
    return [p for p in points if effective_n(p) is not None]


def fit_p1_direct(points: Sequence[PointCounts], level: float = 0.95) -> P1Fit:
    """Direct logistic fit of P(1) vs bias, n_eff-binomial likelihood, over all points (tails included)."""
    import statsmodels.api as sm

    pts = _usable(points)
    if len({p.bias_v for p in pts}) < 2:
        raise InputError("the direct P(1) fit needs points with an effective sample size at 2 or more biases")
    v = np.array([p.bias_v for p in pts])
    y = np.array([p.p1 for p in pts])
    w = np.array([effective_n(p) for p in pts])
    v_ref, v_unit = float(np.mean(v)), float(np.std(v)) or 1e-3
    X = sm.add_constant((v - v_ref) / v_unit)
    with warnings.catch_warnings():
        # separation (all points on one side) is handled below: the slope comes out ~0 or huge and
        # the CIs say so; statsmodels' warning would only repeat it on stderr
        warnings.simplefilter("ignore")
        res = sm.GLM(y, X, family=sm.families.Binomial(), var_weights=w).fit()
    a, b = (float(c) for c in res.params)
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        raise InputError("P(1) does not change with the bias over these points; widen the bias range")
    cov = np.asarray(res.cov_params())
    z = float(stats.norm.ppf(0.5 + level / 2))
    v50 = v_ref - a / b * v_unit
    g = np.array([-1 / b, a / b**2]) * v_unit
    se_v50 = math.sqrt(max(float(g @ cov @ g), 0.0))
    scale = v_unit / b
    se_ln_scale = math.sqrt(max(cov[1, 1], 0.0)) / abs(b)
    lo_s, hi_s = sorted((scale * math.exp(-z * se_ln_scale), scale * math.exp(z * se_ln_scale)))
    chi2 = float(res.pearson_chi2)
    dof = len(pts) - 2
    # covariance of (v50, ln|scale|) by the same delta method
    g2 = np.array([[g[0], g[1]], [0.0, -1 / b]])
    cov2 = g2 @ cov @ g2.T
    return P1Fit(Interval(v50, v50 - z * se_v50, v50 + z * se_v50, level, "Wald (GLM)"),
                 Interval(scale, lo_s, hi_s, level, "Wald on ln scale (GLM)"), chi2, dof,
                 float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan"), len(pts),
                 (float(v.min()), float(v.max())), tuple(tuple(float(c) for c in row) for row in cov2))


@dataclass(frozen=True)
class Consistency:
    """Test of observed P(1) against a model curve: chi2 ~ χ²(dof) when it holds."""

    chi2: float
    dof: int
    p_value: float
    max_abs_z: float

    def to_dict(self) -> dict:
        return asdict(self)


def p1_consistency(points: Sequence[PointCounts], model) -> Consistency:
    """Test observed P(1) against ``model`` (a RateFit or P1Fit: anything with logit_p1_cov).

    On the logit scale, residual r = logit p̂ − logit P_model, with covariance C = the model's own
    (its fit uncertainty, correlated across biases: an extrapolated sigmoid errs coherently) plus
    each point's sampling variance 1/(n_eff·p̂(1−p̂)) (delta method on the n_eff-binomial); the
    statistic rᵀC⁻¹r is χ²(points) when the model holds. Ignoring the model's uncertainty would
    reject a correct rate model in its far tails, where a few % of scale error moves P(1) by more
    than the tail points' sampling error."""
    pts = _usable(points)
    if not pts:
        return Consistency(0.0, 0, float("nan"), float("nan"))
    v = np.array([p.bias_v for p in pts])
    w = np.array([effective_n(p) for p in pts])
    # p̂ kept off 0/1 by half a count of the effective sample (only matters for the variance)
    y = np.clip(np.array([p.p1 for p in pts]), 0.5 / w, 1 - 0.5 / w)
    mu, cov_m = model.logit_p1_cov(v)
    r = np.log(y / (1 - y)) - mu
    cov = cov_m + np.diag(1 / (w * y * (1 - y)))
    chi2 = float(r @ np.linalg.solve(cov, r))
    z = r / np.sqrt(np.diag(cov))
    return Consistency(chi2, len(pts), float(stats.chi2.sf(chi2, len(pts))), float(np.max(np.abs(z))))


@dataclass(frozen=True)
class Region:
    """One bias region and the description that holds there.

    description: "rate model" (transitions fitted here), "rate model P(1)" (the rate model's P(1)
    extrapolated and confirmed by the P(1) points here; τ there is an extrapolation), "P(1) only"
    (the direct P(1) fit; the rate model's P(1) is rejected here) or "none" (nothing fits).
    test / p_value: the test that says how well; p1_range: model P(1) at the region's ends.
    """

    bias_v: tuple[float, float]
    description: str
    n_points: int
    test: str
    p_value: float
    p1_range: tuple[float, float]

    def to_dict(self) -> dict:
        return {"bias_v": list(self.bias_v), "description": self.description, "n_points": self.n_points,
                "test": self.test, "p_value": None if not math.isfinite(self.p_value) else self.p_value,
                "p1_range": list(self.p1_range)}


@dataclass(frozen=True)
class Calibration:
    """Regions (bias ascending), the calibrated bias range (union of regions whose description
    holds), the P(1) it spans, and whether that span covers P1_SPAN_TARGET."""

    regions: tuple[Region, ...]
    bias_range_v: tuple[float, float]
    p1_range: tuple[float, float]
    covers_target: bool
    direct_fit: P1Fit | None

    def to_dict(self) -> dict:
        return {"regions": [r.to_dict() for r in self.regions], "bias_range_v": list(self.bias_range_v),
                "p1_range": list(self.p1_range), "p1_span_target": list(P1_SPAN_TARGET),
                "covers_target": self.covers_target,
                "direct_fit": self.direct_fit.to_dict() if self.direct_fit else None}

    def summary(self) -> str:
        lines = [f"calibrated bias range {self.bias_range_v[0]:+.4g} … {self.bias_range_v[1]:+.4g} V, "
                 f"P(1) {self.p1_range[0]:.3f} … {self.p1_range[1]:.3f} "
                 f"({'covers' if self.covers_target else 'does NOT cover'} {P1_SPAN_TARGET[0]}–{P1_SPAN_TARGET[1]})"]
        for r in self.regions:
            lines.append(f"  {r.bias_v[0]:+.4g} … {r.bias_v[1]:+.4g} V: {r.description} "
                         f"({r.n_points} points; {r.test} p = {r.p_value:.2g}; P(1) {r.p1_range[0]:.3f}–{r.p1_range[1]:.3f})")
        return "\n".join(lines)


def describe_regions(rate_fit: RateFit | None, points: Sequence[PointCounts]) -> Calibration:
    """Which description holds where (see module docstring).

    The rate region is the span of the points in the rate fit, judged by its deviance test. Points
    outside it (the tails) are judged on each side separately: the rate model's P(1) holds there
    when its deviance against those points is not rejected at REGION_ALPHA; otherwise the direct
    P(1) fit does when it is not rejected against the same points; otherwise nothing holds and the
    region is left out of the calibrated range.
    """
    pts = sorted(points, key=lambda p: p.bias_v)
    direct = None
    try:
        direct = fit_p1_direct(pts)
    except InputError:
        direct = None
    regions: list[Region] = []
    if rate_fit is not None:
        lo, hi = rate_fit.bias_range_v
        core_ok = not (math.isfinite(rate_fit.gof_p) and rate_fit.gof_p < REGION_ALPHA)
        pr = tuple(float(x) for x in rate_fit.p1(np.array([lo, hi])))
        regions.append(Region((lo, hi), "rate model" if core_ok else "rate model (quasi-likelihood: over-dispersed)",
                              rate_fit.n_points, "deviance vs saturated", rate_fit.gof_p, (min(pr), max(pr))))
        sides = [[p for p in pts if p.bias_v < lo - 1e-12], [p for p in pts if p.bias_v > hi + 1e-12]]
    else:
        sides = [pts]
    for side in sides:
        side = _usable(side)
        if not side:
            continue
        v = (side[0].bias_v, side[-1].bias_v)
        if rate_fit is not None:
            c = p1_consistency(side, rate_fit)
            if not (c.p_value < REGION_ALPHA):
                pr = tuple(float(x) for x in rate_fit.p1(np.array(v)))
                regions.append(Region(v, "rate model P(1)", len(side), "logit χ² (model + n_eff-binomial variance)", c.p_value,
                                      (min(pr), max(pr))))
                continue
        if direct is not None:
            c = p1_consistency(side, direct)
            pr = tuple(float(x) for x in direct.p1(np.array(v)))
            regions.append(Region(v, "P(1) only" if not (c.p_value < REGION_ALPHA) else "none", len(side),
                                  "logit χ² vs direct fit", c.p_value, (min(pr), max(pr))))
    regions.sort(key=lambda r: r.bias_v[0])
    good = [r for r in regions if r.description != "none"]
    if not good:
        return Calibration(tuple(regions), (float("nan"), float("nan")), (float("nan"), float("nan")), False, direct)
    # contiguous run of good regions around the rate region (a rejected region breaks the range)
    bias_range = (min(r.bias_v[0] for r in good), max(r.bias_v[1] for r in good))
    p_lo = min(r.p1_range[0] for r in good)
    p_hi = max(r.p1_range[1] for r in good)
    covers = p_lo <= P1_SPAN_TARGET[0] and p_hi >= P1_SPAN_TARGET[1]
    return Calibration(tuple(regions), bias_range, (p_lo, p_hi), covers, direct)
