"""Regime detection on processes whose regime is known by construction.

The physical test cases are overdamped Langevin particles, dx = -U'(x) dt + sqrt(2 kT dt) ξ (kT = 1,
mobility 1), in a double well U = ΔU (x² - 1)² (bistable, barrier ΔU), in a single well (one level)
and in a well far from the readout threshold (stuck). These are the three behaviours of a latch
above, below and far from its bifurcation, with no ngspice needed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from noisecell.errors import InputError, RegimeError
from noisecell.regime import DWELL_RATIO_MIN, classify_bits, classify_trace

DT = 0.005  # time unit of the Langevin tests; one sample per step


def langevin(dU, n, x0, seed, dt=DT):
    """Euler–Maruyama path of dx = -dU(x) dt + sqrt(2 dt) ξ (kT = 1)."""
    rng = np.random.default_rng(seed)
    kicks = rng.standard_normal(n) * math.sqrt(2 * dt)
    x = np.empty(n)
    xi = x0
    for i in range(n):
        xi = xi - dU(xi) * dt + kicks[i]
        x[i] = xi
    return x


def double_well(barrier):
    return lambda x: barrier * 4 * x * (x * x - 1)  # U = barrier (x²-1)²


def test_double_well_is_bistable_and_dwell_matches_kramers():
    barrier = 4.0
    x = langevin(double_well(barrier), 400_000, 1.0, seed=1)
    r = classify_trace(x, sample_period_s=DT)
    assert r.regime == "bistable", r.summary()
    assert r.modes_v[0] == pytest.approx(-1.0, abs=0.15) and r.modes_v[1] == pytest.approx(1.0, abs=0.15)
    assert r.dwell_ratio > DWELL_RATIO_MIN
    # Overdamped Kramers: k = sqrt(U''(min)·|U''(top)|)/(2π) · e^{-ΔU}, U''(±1) = 8ΔU, U''(0) = -4ΔU.
    k = math.sqrt(8 * barrier * 4 * barrier) / (2 * math.pi) * math.exp(-barrier)
    # ~130 transitions: counting error 1/sqrt(130) ≈ 9 % (3σ = 26 %); Kramers' formula itself is
    # accurate to O(kT/ΔU) = 25 % at ΔU = 4 kT, and the Euler step (dt·U'' ≤ 0.16) adds a few %.
    # So the mean dwell must be within a factor 1.6 of 1/k; a dwell estimator counting noise
    # chatter (2-10× too many transitions) or missing transitions fails this.
    assert 1 / 1.6 < r.mean_dwell_s * k < 1.6, (r.mean_dwell_s, 1 / k)


def test_single_well_is_single_peaked_and_refused():
    # U = x²/2 + x⁴/4: one level, straddling the threshold 0.
    x = langevin(lambda x: x + x ** 3, 200_000, 0.0, seed=2)
    r = classify_trace(x, sample_period_s=DT)
    assert r.regime == "single_peaked", r.summary()
    assert 0.4 < r.fraction_above_threshold < 0.6
    with pytest.raises(RegimeError, match="single_peaked"):
        r.require_bistable("a P(1) sigmoid")


def test_shallow_double_well_below_one_kT_is_not_bistable():
    # Barrier 0.3 kT: the distribution ∝ e^{-U/kT} is flat-topped, not two levels (valley/peak 0.74).
    x = langevin(double_well(0.3), 200_000, 0.0, seed=3)
    assert classify_trace(x, sample_period_s=DT).regime == "single_peaked"


def test_far_well_is_stuck_high_and_low():
    x = langevin(lambda x: 20 * (x - 3.0), 100_000, 3.0, seed=4)  # σ = 1/sqrt(20) = 0.22, 13σ from 0
    r = classify_trace(x, sample_period_s=DT)
    assert (r.regime, r.level) == ("stuck", "high"), r.summary()
    r2 = classify_trace(-x, sample_period_s=DT)
    assert (r2.regime, r2.level) == ("stuck", "low")
    with pytest.raises(RegimeError, match="stuck"):
        r.require_bistable("tau")


def test_frozen_latch_is_stuck_not_bistable():
    # Barrier 15 kT: Kramers dwell ≈ 1e5 time units ≫ this 500-unit record: the latch never flips.
    x = langevin(double_well(15.0), 100_000, 1.0, seed=5)
    r = classify_trace(x, sample_period_s=DT)
    assert (r.regime, r.level) == ("stuck", "high"), r.summary()


def test_constant_trace_and_bits():
    r = classify_trace(np.full(1000, 0.03), sample_period_s=1e-9)
    assert (r.regime, r.level) == ("stuck", "high")
    assert classify_bits(np.zeros(100, dtype=np.uint8)).level == "low"
    with pytest.raises(RegimeError):
        classify_bits(np.array([0, 1, 1, 0]))


def test_nonuniform_time_is_resampled_and_bad_input_rejected():
    rng = np.random.default_rng(6)
    x = langevin(double_well(4.0), 200_000, 1.0, seed=6)
    t = np.arange(len(x)) * DT
    keep = np.sort(rng.choice(len(x), size=len(x) // 2, replace=False))  # adaptive-step-like sampling
    r = classify_trace(x[keep], t[keep], sample_period_s=DT)
    assert r.regime == "bistable"
    d = r.to_dict()
    assert d["regime"] == "bistable" and isinstance(d["reasons"], list)
    with pytest.raises(InputError):
        classify_trace(np.array([0.0, np.nan] * 20), sample_period_s=1e-9)
    with pytest.raises(InputError):
        classify_trace(np.zeros(100))  # neither times nor a sample period


def test_tilted_double_well_stays_bistable():
    """A bias tilts the double well: U = ΔU (x²-1)² - F x. With ΔU = 1.5 kT and F = 1 the minority
    well (x ≈ -1) holds ~16 % of the time and its own barrier drops to ΔU - 2F ≈ 0 .. ΔU - F, so
    valley/minor-mode height exceeds 0.5 although both states stay metastable (~440 transitions,
    dwell ≈ 40 τ_w). valley/sqrt(h_a·h_b) ≈ e^{-ΔU} does not depend on F to first order (the linear
    term cancels between the two modes placed symmetrically about the valley) and calls it bistable.
    Without tilt the same well is bistable by the plain ratio; with F = 1.3 it is single-peaked."""
    barrier, force = 1.5, 1.0
    x = langevin(lambda x: barrier * 4 * x * (x * x - 1) - force, 600_000, 1.0, seed=5)
    r = classify_trace(x, sample_period_s=DT)
    assert 0.03 < 1 - r.fraction_above_threshold < 0.3
    assert r.regime == "bistable", r.summary()
    assert r.valley_ratio > 0.5  # the plain test alone would have refused it
    assert r.dwell_ratio > DWELL_RATIO_MIN
    r0 = classify_trace(langevin(double_well(barrier), 600_000, 1.0, seed=5), sample_period_s=DT)
    assert r0.regime == "bistable" and r0.valley_ratio <= 0.5, r0.summary()


def test_single_well_with_a_far_shoulder_is_not_made_bistable_by_the_tilt_correction():
    """One level (harmonic well) plus rare excursions: the correction only applies with ≥ 5 % of the
    time in the minority level and ≥ 10 transitions, so a thin tail is never a second state."""
    x = langevin(lambda x: 2 * x, 300_000, 0.0, seed=6)
    r = classify_trace(x + 1.0, sample_period_s=DT)  # one level, 1 V above the threshold 0
    assert r.regime in ("single_peaked", "stuck"), r.summary()
