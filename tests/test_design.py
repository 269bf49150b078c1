"""Sequential design (noisecell.design) on synthetic telegraph cells with known rates."""
from __future__ import annotations

import math

import numpy as np
import pytest

from noisecell.analysis.runs import scan_runs
from noisecell.analysis.synthetic import telegraph
from noisecell.design import Budget, DesignSettings, Targets, run_design
from noisecell.errors import InputError
from noisecell.model.ratefit import PointCounts
from test_model_ratefit import SCALE, TAU50, V50, true_rates

DT = TAU50 / 25


def synthetic_runner(calls, bistable_within=math.inf):
    """Runner with a synthetic telegraph cell: each job's record from its own seed (deterministic).
    Records further than ``bistable_within`` scales from V50 are labelled single-peaked whatever
    they hold (a tilted double well that lost its minority level)."""
    def run(round_no, jobs):
        calls.append([(j.bias_v, j.duration_s, j.seed, j.purpose) for j in jobs])
        out = []
        for j in jobs:
            rng = np.random.default_rng(j.seed)
            ku, kd = true_rates(j.bias_v)
            n = max(2, int(round(j.duration_s / DT)))
            rs = scan_runs(telegraph(n, DT, ku, kd, rng))
            lam = max(0.0, 1 - (ku + kd) * DT)
            regime = "bistable" if min(rs.n_up, rs.n_down) >= 3 else "single-peaked"
            if abs(j.bias_v - V50) > bistable_within * SCALE:
                regime = "single-peaked"
            out.append(PointCounts.from_runstats(j.bias_v, DT, rs, n_eff=rs.n * (1 - lam) / (1 + lam), regime=regime))
        return out
    return run


# targets loose enough for a test (~100 µs simulated of a 250 ns telegraph, ~1000 transitions)
TARGETS = Targets(v50_halfwidth_v=0.5e-3, scale_rel_halfwidth=0.15, tau_rel_halfwidth=0.10)


def settings(seed=1, budget_s=2e-3, **kw):
    return DesignSettings(targets=TARGETS, budget=Budget(simulated_s=budget_s), jobs_per_round=2,
                          chunk_lengths_s=(5e-6, 10e-6, 20e-6, 40e-6), seed=seed, **kw)


def test_design_meets_targets_and_calibrates_the_tails():
    calls = []
    res = run_design(synthetic_runner(calls), settings(), v50_guess=V50 + 1e-3, scale_guess=2 * SCALE)
    assert res.reason == "targets met" and res.met, res.summary()
    r = res.ratios()
    assert max(r.values()) <= 1
    # the truth inside the final CIs (95 %, fixed seed)
    assert res.fit.v50.lo <= V50 <= res.fit.v50.hi and res.fit.tau_v50.lo <= TAU50 <= res.fit.tau_v50.hi
    assert res.calibration.covers_target, res.calibration.summary()
    # every round keeps both cores busy: at least 2 distinct biases
    for c in calls:
        assert len({b for b, _, _, _ in c}) >= 2
    assert res.simulated_s == pytest.approx(sum(d for c in calls for _, d, _, _ in c))


def test_same_seed_same_points_and_numbers_other_seed_differs():
    a_calls, b_calls, c_calls = [], [], []
    a = run_design(synthetic_runner(a_calls), settings(seed=5), v50_guess=V50, scale_guess=SCALE)
    b = run_design(synthetic_runner(b_calls), settings(seed=5), v50_guess=V50, scale_guess=SCALE)
    c = run_design(synthetic_runner(c_calls), settings(seed=6), v50_guess=V50, scale_guess=SCALE)
    assert a_calls == b_calls
    assert a.fit.v50 == b.fit.v50 and a.fit.tau_v50 == b.fit.tau_v50 and a.reason == b.reason
    assert a_calls != c_calls


def test_budget_spent_is_said():
    res = run_design(synthetic_runner([]), settings(budget_s=30e-6), v50_guess=V50, scale_guess=SCALE)
    assert res.reason == "simulated-time budget spent" and not res.met
    assert res.simulated_s <= 30e-6 * (1 + 1e-9)


def test_design_puts_scale_information_off_centre():
    # with only the scale target left (V50 and τ loose), the chosen rate points must sit away from
    # V50: the information on ln scale at bias V is ∝ (V - V50)², zero at V50 itself
    calls = []
    tg = Targets(v50_halfwidth_v=10e-3, scale_rel_halfwidth=0.08, tau_rel_halfwidth=1.0)
    s = DesignSettings(targets=tg, budget=Budget(simulated_s=3e-3), jobs_per_round=2, seed=3, tail_points=False)
    res = run_design(synthetic_runner(calls), s, v50_guess=V50, scale_guess=SCALE)
    later = [abs(b - V50) / SCALE for c in calls for b, _, _, why in c if why == "rates"]
    assert later and min(later) > 0.8, later
    assert res.met, res.summary()


def test_bad_settings():
    with pytest.raises(InputError):
        DesignSettings(jobs_per_round=0)


def test_design_learns_where_the_cell_stops_telegraphing():
    # past 1.2 scales (P(1) ≈ 0.23 / 0.77) the records are not telegraphs: information the model
    # predicts there never arrives, so the design must stop asking for it there (no rate job beyond
    # the innermost non-telegraph record on its side) and still meet V50/τ targets inside
    calls = []
    tg = Targets(v50_halfwidth_v=0.6e-3, scale_rel_halfwidth=0.5, tau_rel_halfwidth=0.15)
    s = DesignSettings(targets=tg, budget=Budget(simulated_s=2e-3), jobs_per_round=2, seed=2)
    res = run_design(synthetic_runner(calls, bistable_within=1.2), s, v50_guess=V50, scale_guess=SCALE)
    assert res.met, res.summary()
    rounds = [c for c in calls if any(why == "rates" for *_, why in c)]
    assert len(rounds) >= 2
    last = [abs(b - V50) / SCALE for b, _, _, why in rounds[-1] if why == "rates"]
    assert all(x <= 1.2 + 3.5 * 2 / 40 for x in last), last      # inside the window (one grid step slack)


def test_design_recovers_from_a_start_guess_far_off():
    # the pilot's guess 20 mV (~7 scales) off and 10 % too wide, the cell telegraphing only within
    # 2.6 scales: the start rounds must re-centre on the records that telegraph (not on frozen
    # records' P(1)) and the design still meets its targets within the budget
    from noisecell.design_runner import SyntheticRunner

    r = SyntheticRunner(bistable_within=2.6)
    s = DesignSettings(targets=Targets(0.5e-3, 0.15, 0.15), budget=Budget(simulated_s=1e-3), seed=2)
    res = run_design(r, s, v50_guess=r.v50_v + 0.02, scale_guess=3.3e-3, bias_limits=(-0.4, 0.4))
    assert res.met, res.summary()
    assert res.fit.v50.lo <= r.v50_v <= res.fit.v50.hi


def test_start_points_are_spread_even_for_a_degenerate_scale_guess():
    from noisecell.design import start_jobs

    jobs = start_jobs(0.0, 1e-12, DesignSettings(), bias_limits=(-0.4, 0.4))
    vs = sorted(j.bias_v for j in jobs)
    assert min(np.diff(vs)) >= 0.5e-3       # at least ~1e-3 of the 0.8 V range times logit spacing
