"""Flip counting uses a hysteresis derived from the measured levels and noise (issue 16 item 2):
never an automatic 0 V band, and a slow telegraph is read through the average that reveals it."""
import math

import numpy as np

from noisecell.digitize import digitize_trace
from noisecell.regime import classify_trace
from test_regime import LEVEL_NOISE_TAU_S, STEP_S, ornstein_uhlenbeck, slow_telegraph


def _flips(bits):
    return int(np.count_nonzero(np.diff(bits)))


def test_one_noisy_level_gets_a_band_from_its_noise_and_is_not_a_bit_source():
    """One OU level (σ = 20 mV, τ = 5 ns) centred on the readout threshold: the issue's monostable cell."""
    rng = np.random.default_rng(3)
    sigma = 0.02
    v = ornstein_uhlenbeck(20_000, LEVEL_NOISE_TAU_S, sigma, rng)
    t = np.arange(v.size) * STEP_S
    bits, dig = digitize_trace(t, v, threshold_v=0.0)
    # band = 3σ; the MAD-σ of n_eff = T/(2τ) = 2000 independent values has ~2 % standard error: ±10 %
    assert dig.hysteresis_from == "noise"
    assert abs(dig.hysteresis_v - 3 * sigma) < 0.1 * 3 * sigma
    # the old automatic 0 V band counts every noise wiggle: about one crossing per correlation time
    zero_band = _flips(digitize_trace(t, v, threshold_v=0.0, hysteresis_v=0.0)[0].bits)
    assert zero_band > 1000
    assert _flips(bits.bits) < zero_band / 5
    assert classify_trace(v, t, threshold_v=0.0).regime == "single_peaked"


def test_slow_telegraph_is_read_through_its_average_and_counts_its_real_switches():
    rng = np.random.default_rng(4)
    spacing = 0.05
    n = 40_000
    state, switches = slow_telegraph(n, rng, spacing)
    v = (state - 0.5) * spacing + ornstein_uhlenbeck(n, LEVEL_NOISE_TAU_S, spacing / 3, rng)
    t = np.arange(n) * STEP_S
    bits, dig = digitize_trace(t, v, threshold_v=0.0)
    assert dig.smoothing_s > 0 and dig.hysteresis_from == "slow levels"
    # the same switches as the truth (±2: a noise excursion splitting one true switch on either side)
    assert abs(_flips(bits.bits) - switches) <= 2, (_flips(bits.bits), switches)
    # samples read wrongly: only near the ~11 switches, each blurred over about one averaging window
    # (≤ 128 ns here) on either side: ≤ 11 × 2 × 128 samples ≈ 7 % of 40 000; a chattering or missed
    # level would be wrong on ~50 % of the samples
    assert np.mean(bits.bits != state) < 0.07
    raw = _flips(digitize_trace(t, v, threshold_v=0.0, hysteresis_v=0.0)[0].bits)
    assert raw > 20 * switches  # what the issue's `simulate` printed: hundreds of noise "flips"
    # automatic threshold: the midpoint of the two averaged levels
    _, dig_auto = digitize_trace(t, v)
    assert abs(dig_auto.threshold_v) < spacing / 10
    assert math.isfinite(dig_auto.mode_low_v) and dig_auto.mode_low_v < 0 < dig_auto.mode_high_v


def test_slow_levels_on_one_side_of_the_threshold_get_a_noise_band_not_zero():
    """A slow two-level trace whose levels both sit below the readout threshold (a trimmed latch gone
    to one side: `simulate` printed "a 0 V hysteresis from its noise"): no band fits between the
    levels, so the band comes from the noise — never 0 V."""
    rng = np.random.default_rng(4)
    spacing = 0.05
    n = 40_000
    state, _ = slow_telegraph(n, rng, spacing)
    v = (state - 0.5) * spacing + ornstein_uhlenbeck(n, LEVEL_NOISE_TAU_S, spacing / 3, rng) - 0.06
    t = np.arange(n) * STEP_S
    bits, dig = digitize_trace(t, v, threshold_v=0.0)
    assert dig.hysteresis_v > 0 and dig.hysteresis_from == "noise"
    assert dig.smoothing_s == 0.0
