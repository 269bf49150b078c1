"""Held-out check (noisecell.model.heldout) on synthetic telegraphs: passes the right model, fails a
model with V50 moved by three of its CI half-widths, refuses to judge on imprecise records."""
from __future__ import annotations

import numpy as np

from noisecell.model.heldout import held_out_check, shifted_fit
from noisecell.model.ratefit import fit_rates_joint
from test_model_ratefit import COVERAGE_BIASES, COVERAGE_DT, SCALE, V50, synthetic_points

# Held-out biases at P(1) ≈ 0.3, 0.5, 0.7, each 300k samples at τ/50 = 6000 τ(V50): n_eff =
# n(1−λ)/(1+λ) ≈ n·dt/(2τ) ≈ 3000, so the P(1) half-width is 1.96·sqrt(0.25/3000) ≈ 0.018 (≤ 0.03)
# and ~2400 transitions give ln τ ±1.96·sqrt(1/2400·(1/2)) ≈ ±0.03 (≤ 0.10): precise records.
HELD_OUT = V50 + SCALE * np.array([-0.85, 0.1, 0.85])


def fitted_and_heldout(seed):
    rng = np.random.default_rng(seed)
    fit = fit_rates_joint(synthetic_points(rng, COVERAGE_BIASES, 60_000, COVERAGE_DT))
    held = synthetic_points(rng, HELD_OUT, 300_000, COVERAGE_DT)
    return fit, held


def test_right_model_passes_with_precise_records():
    fit, held = fitted_and_heldout(31)
    chk = held_out_check(fit, held)
    assert chk.n_precise == 3, chk.summary()
    assert all(r.precise for r in chk.records)
    assert max(r.p1_ci95[1] - r.p1_ci95[0] for r in chk.records) / 2 <= 0.03
    # fails with probability ≈ 2 % for a correct model (two tests at α = 1 %); fixed seed
    assert chk.passed, chk.summary()


def test_model_with_v50_moved_by_three_halfwidths_fails():
    fit, held = fitted_and_heldout(31)
    for sign in (-1, 1):
        bad = shifted_fit(fit, sign * 3 * fit.v50.halfwidth)
        chk = held_out_check(bad, held)
        assert chk.n_precise == 3
        assert not chk.passed and chk.p1_p < chk.alpha, chk.summary()


def test_imprecise_records_are_not_judged():
    rng = np.random.default_rng(8)
    fit = fit_rates_joint(synthetic_points(rng, COVERAGE_BIASES, 60_000, COVERAGE_DT))
    short = synthetic_points(rng, HELD_OUT, 5_000, COVERAGE_DT)     # n_eff ≈ 50: P(1) ±0.14
    chk = held_out_check(shifted_fit(fit, 10 * fit.v50.halfwidth), short)
    assert chk.n_precise == 0 and not chk.passed
    assert "precise" in chk.summary()
    assert all("P(1)" in r.why_not for r in chk.records)
