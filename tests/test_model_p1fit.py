"""Direct P(1) fit of tail points and the per-region statement (noisecell.model.p1fit)."""
from __future__ import annotations

import math

import numpy as np

from noisecell.model.p1fit import P1_SPAN_TARGET, describe_regions, fit_p1_direct, p1_consistency
from noisecell.model.ratefit import PointCounts, fit_rates_joint
from test_model_ratefit import COVERAGE_DT, SCALE, V50, synthetic_points


def tail_point(rng, v, p_true, n_eff):
    """A P(1)-only point (no usable telegraph): P(1) drawn as the readout would measure it, with n_eff."""
    ones = rng.binomial(int(n_eff), p_true)
    return PointCounts(v, COVERAGE_DT, 0, 0, 0, 0, int(n_eff), ones, float(n_eff), "single-peaked")


def logistic(v, v50=V50, s=SCALE):
    return 1 / (1 + math.exp(-(v - v50) / s))


def with_neff(pts):
    # telegraph points: n_eff of a two-state chain, n(1-lam)/(1+lam) with lam = 1 - (k_up+k_down)dt
    out = []
    for p in pts:
        kdt = (p.n_up / max(p.n0_at_risk, 1) + p.n_down / max(p.n1_at_risk, 1))
        lam = max(0.0, 1 - kdt)
        out.append(PointCounts(p.bias_v, p.sample_period_s, p.n_up, p.n_down, p.n0_at_risk, p.n1_at_risk,
                               p.n_samples, p.n_ones, p.n_samples * (1 - lam) / (1 + lam), p.regime))
    return out


def scenario(rng, tail_p_shift=0.0):
    core = with_neff(synthetic_points(rng, V50 + SCALE * np.linspace(-2, 2, 5), 100_000, COVERAGE_DT))
    tails = []
    for z in (-5.0, -4.0, 4.0, 5.0):          # P(1) = 0.0067 … 0.9933 under the logistic truth
        v = V50 + z * SCALE
        p = logistic(v)
        p = min(max(p + (tail_p_shift if z > 0 else 0.0), 0.0), 1.0)
        tails.append(tail_point(rng, v, p, 2000))
    return core, tails


def test_calibrated_range_covers_p1_0p02_to_0p98_with_rate_model_tails():
    rng = np.random.default_rng(4)
    core, tails = scenario(rng)
    fit = fit_rates_joint(core)
    cal = describe_regions(fit, core + tails)
    assert cal.covers_target, cal.summary()
    assert cal.p1_range[0] <= P1_SPAN_TARGET[0] and cal.p1_range[1] >= P1_SPAN_TARGET[1]
    kinds = [r.description for r in cal.regions]
    assert kinds == ["rate model P(1)", "rate model", "rate model P(1)"], cal.summary()
    # the direct fit over every point recovers the truth within its own CI (95 %; deterministic seed)
    d = cal.direct_fit
    assert d.v50.lo <= V50 <= d.v50.hi and d.scale.lo <= SCALE <= d.scale.hi


def test_tails_that_disagree_with_the_rate_model_are_marked_p1_only():
    # the upper tail's P(1) is 0.03 lower than the logistic implies: at n_eff = 2000 per point that is
    # a deviance of ~2·2000·KL ≈ 2000·0.03²/(0.0067·0.99)·... ≫ χ²₂(0.99) = 9.2, so the rate model's
    # P(1) must be rejected on that side and the region described by the direct fit (or nothing)
    rng = np.random.default_rng(4)
    core, tails = scenario(rng, tail_p_shift=-0.03)
    fit = fit_rates_joint(core)
    cal = describe_regions(fit, core + tails)
    upper = cal.regions[-1]
    assert upper.description in ("P(1) only", "none"), cal.summary()
    assert cal.regions[0].description == "rate model P(1)"


def test_consistency_test_can_fail_and_pass():
    rng = np.random.default_rng(2)
    pts = [tail_point(rng, V50 + z * SCALE, logistic(V50 + z * SCALE), 5000) for z in (-4, -3, 3, 4)]
    ok = p1_consistency(pts, lambda v: np.array([logistic(x) for x in v]))
    shifted = p1_consistency(pts, lambda v: np.array([logistic(x, v50=V50 + 0.5 * SCALE) for x in v]))
    assert ok.p_value > 0.01 and shifted.p_value < 1e-6
    f = fit_p1_direct(pts)
    assert f.v50.lo <= V50 <= f.v50.hi
