"""Direct P(1) fit of tail points and the per-region statement (noisecell.model.p1fit)."""
from __future__ import annotations

import math

import numpy as np

from noisecell.model.p1fit import P1_SPAN_TARGET, describe_regions, effective_n, fit_p1_direct, p1_consistency
from noisecell.model.ratefit import PointCounts, fit_rates_joint
from noisecell.analysis.runs import scan_runs
from noisecell.analysis.synthetic import telegraph
from test_model_ratefit import COVERAGE_DT, SCALE, V50, synthetic_points, true_rates


def tail_point(rng, v, n_samples=400_000, v_shift=0.0):
    """A tail record: a telegraph with the true rates at v + v_shift, labelled single-peaked (the regime
    detector's verdict on so few minority visits; P(1) is still data)."""
    ku, kd = true_rates(v + v_shift)
    rs = scan_runs(telegraph(n_samples, COVERAGE_DT, ku, kd, rng))
    return PointCounts.from_runstats(v, COVERAGE_DT, rs, regime="single-peaked")


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


def scenario(rng, upper_shift_v=0.0):
    core = with_neff(synthetic_points(rng, V50 + SCALE * np.linspace(-2, 2, 5), 100_000, COVERAGE_DT))
    # P(1) = 0.018, 0.0067 below and 0.982, 0.9933 above under the logistic truth; ~30-80 minority visits
    tails = [tail_point(rng, V50 + z * SCALE, v_shift=(upper_shift_v if z > 0 else 0.0))
             for z in (-5.0, -4.0, 4.0, 5.0)]
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
    # the upper tail records come from a cell whose V50 sits 1.5 scales higher there (P(1) at z = 4 is
    # 0.92 instead of 0.982): with ~10^3 effective samples per point the deviance is ~10^2 ≫
    # χ²₂(0.99) = 9.2, so the rate model's P(1) must be rejected on that side
    rng = np.random.default_rng(4)
    core, tails = scenario(rng, upper_shift_v=-1.5 * SCALE)
    fit = fit_rates_joint(core)
    cal = describe_regions(fit, core + tails)
    upper = cal.regions[-1]
    assert upper.description in ("P(1) only", "none"), cal.summary()
    assert cal.regions[0].description == "rate model P(1)"


class KnownLogistic:
    """An exactly known sigmoid (no fit uncertainty)."""

    def __init__(self, v50):
        self.v50 = v50

    def logit_p1_cov(self, v):
        v = np.asarray(v, float)
        return (v - self.v50) / SCALE, np.zeros((v.size, v.size))


def test_consistency_test_can_fail_and_pass():
    rng = np.random.default_rng(2)
    pts = [tail_point(rng, V50 + z * SCALE) for z in (-4, -3, 3, 4)]
    ok = p1_consistency(pts, KnownLogistic(V50))
    shifted = p1_consistency(pts, KnownLogistic(V50 + 0.5 * SCALE))
    assert ok.p_value > 0.01 and shifted.p_value < 1e-6
    f = fit_p1_direct(pts)
    assert f.v50.lo <= V50 <= f.v50.hi


def test_records_with_few_minority_visits_carry_no_p1_claim():
    # a stuck record (no transition) or one with 2 visits: the readout analysis may report n_eff = n,
    # but such a record must not enter the P(1) likelihoods
    stuck = PointCounts(0.01, COVERAGE_DT, 0, 0, 4000, 0, 4001, 0, 4001.0, "stuck")
    few = PointCounts(0.01, COVERAGE_DT, 2, 2, 3900, 100, 4001, 100, 4001.0, "single-peaked")
    assert effective_n(stuck) is None and effective_n(few) is None
    ok = PointCounts(0.01, COVERAGE_DT, 20, 20, 3900, 100, 4001, 100, 4001.0, "single-peaked")
    assert 0 < effective_n(ok) < 4001
