"""The pilot refuses a sigmoid fit to frozen or non-monotonic points and says so (issue 16 item 4)."""
import numpy as np

from noisecell.regime import sigmoid_points
from noisecell.report.characterize import pilot_window

BIAS = np.linspace(-8e-3, 8e-3, 9)


def test_frozen_non_monotonic_points_are_refused():
    # the 3 µs pilot: a latch that froze in whichever state it started in, so P(1) jumps
    # between 0 and 1 (and a fraction where it froze mid-record) with no order in bias
    p = np.array([0.0, 1.0, 0.2, 0.7, 0.0, 1.0, 1.0, 0.0, 1.0])
    regime = ["stuck"] * 9
    sp = sigmoid_points(BIAS, p, regime=regime)
    assert sp.refusal and "no sigmoid fitted" in sp.refusal
    assert "non-monotonic" in sp.refusal or "frozen" in sp.refusal
    assert not sp.usable[2] and not sp.usable[3]  # mid-record freezes is never a sigmoid sample
    # what the pilot did before: a "V50" from whatever points lie inside (0.02, 0.98)
    window, note = pilot_window(BIAS, p, 4.0, -8e-3, 8e-3)
    assert window is not None  # it would have laid the bias points out around a meaningless crossing


def test_nothing_telegraphs_and_no_bracket_is_frozen():
    p = np.array([0.0, 0.0, 0.3, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0])
    sp = sigmoid_points(BIAS, p, regime=["stuck"] * 9)
    assert sp.refusal and "frozen" in sp.refusal


def test_a_real_sigmoid_with_binomial_noise_is_accepted():
    """P(1) = logistic((V - 1 mV)/2 mV) estimated from n_eff = 400 independent samples per point with
    Wilson-like ±1.96·SE intervals: a monotone truth only shows a 'reversal' if two neighbours' errors
    jointly exceed their two half-widths (> 2.8σ of the difference): ≲ 1 % for the 36 pairs together."""
    rng = np.random.default_rng(16)
    truth = 1 / (1 + np.exp(-(BIAS - 1e-3) / 2e-3))
    n = 400
    p = rng.binomial(n, truth) / n
    se = np.sqrt(np.maximum(p * (1 - p), 1 / n) / n)
    sp = sigmoid_points(BIAS, p, p - 1.96 * se, p + 1.96 * se, ["bistable"] * 9)
    assert sp.refusal is None and all(sp.usable)


def test_steep_sigmoid_with_stuck_tails_is_a_bracket_not_a_refusal():
    p = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=float)
    sp = sigmoid_points(BIAS, p, regime=["stuck"] * 9)
    assert sp.refusal is None and all(sp.usable)
    window, note = pilot_window(BIAS[list(sp.usable)], p, 4.0, -8e-3, 8e-3)
    assert window is not None and "steeper than the pilot grid" in note


def test_single_peaked_points_are_left_out_of_the_fit():
    p = np.array([0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.45, 0.99, 1.0])
    regime = ["stuck", "bistable", "bistable", "bistable", "bistable", "bistable", "single_peaked", "bistable", "stuck"]
    sp = sigmoid_points(BIAS, p, regime=regime)
    assert sp.refusal is None and sp.usable[6] is False and "single_peaked" in sp.excluded


def test_a_falling_sigmoid_gets_a_window_too():
    # P(1) falling with bias (pbit_generic, pbit_cs): the pilot used to report "does not cross 0.5"
    p = np.array([1.0, 1.0, 1.0, 0.98, 0.6, 0.1, 0.0, 0.0, 0.0])
    window, note = pilot_window(BIAS, p, 4.0, -8e-3, 8e-3)
    assert window is not None and window[0] < 2.5e-3 < window[1]  # P(1) = 0.6 at 2 mV, 0.1 at 4 mV
    rising, _ = pilot_window(BIAS, 1 - p, 4.0, -8e-3, 8e-3)
    assert window == rising  # the same crossing, seen from the other side


def test_two_points_in_the_same_tail_are_no_reversal():
    # pbit's pilot (smooth route, 3 µs records): -17.8 mV held 30 ns of state 1 (P(1) 0.0096, 95 %
    # interval [0.001, 0.085]) and -16.3 mV none ([0, 0.0005]): disjoint intervals "against the
    # trend", but both are the P(1) ≈ 0 tail; the pilot was refused and gave no window
    bias = np.array([-17.78, -16.30, -12.84, -2.96, 1.98, 6.91, 13.33]) * 1e-3
    p = np.array([0.0096, 0.0, 0.040, 0.238, 0.525, 0.984, 1.0])
    lo = np.array([0.001, 0.0, 0.0044, 0.048, 0.203, 0.943, 0.9995])
    hi = np.array([0.085, 0.0005, 0.287, 0.659, 0.827, 0.9955, 1.0])
    reg = ["single_peaked", "stuck", "bistable", "bistable", "bistable", "single_peaked", "stuck"]
    sp = sigmoid_points(bias, p, lo, hi, reg)
    assert sp.refusal is None and all(sp.usable), sp
    # a reversal between the tails and the middle is still one: the same points with the P(1) ≈ 0.5
    # record's interval moved wholly below the P(1) 0.04 record's
    lo2, hi2, p2 = lo.copy(), hi.copy(), p.copy()
    p2[4], lo2[4], hi2[4] = 0.003, 0.001, 0.004
    assert sigmoid_points(bias, p2, lo2, hi2, reg).refusal is not None


def test_a_stuck_record_only_shows_its_majority_state():
    # the demo's pilots on main f0f7213 (3 µs records, pbit, τ 0.3-1 µs): a record that never left one
    # state carries the iid interval [0, 0.0005] (it cannot show its correlation time); next to it a
    # record with one excursion reads 0.04 [0.004, 0.29]. Both say "below 0.5": no reversal. The
    # nominal pilot (stage 3) and ss 27 °C's (P(1) 1.00 at +8.9 mV, 0.91 [0.52, 0.99] at +13.3 mV) were
    # refused as non-monotonic on exactly this.
    bias = np.array([-17.78, -12.84, -7.90, -2.96, 1.98, 6.91, 11.85]) * 1e-3
    p = np.array([0.0097, 0.0409, 0.0, 0.2278, 0.5306, 0.9893, 0.8653])
    lo = np.array([0.0010, 0.0044, 0.0, 0.0456, 0.1056, 0.9068, 0.5193])
    hi = np.array([0.0856, 0.2899, 0.0005, 0.6454, 0.9154, 0.9989, 0.9745])
    reg = ["single_peaked", "bistable", "single_peaked", "bistable", "bistable", "single_peaked", "bistable"]
    assert sigmoid_points(bias, p, lo, hi, reg).refusal is None
    # ss 27 °C, both stages together: stuck at 1 at +8.9 mV (stage 2), 0.91 at +13.3 mV (stage 1)
    bias = np.array([-13.33, -8.889, -4.44, 0.0, 4.44, 8.889, 13.33]) * 1e-3
    p = np.array([0.0, 0.0022, 0.319, 0.700, 0.776, 1.0, 0.913])
    lo = np.array([0.0, 0.0004, 0.076, 0.350, 0.445, 0.9995, 0.523])
    hi = np.array([0.0005, 0.0121, 0.726, 0.910, 0.937, 1.0, 0.990])
    reg = ["stuck", "single_peaked", "single_peaked", "single_peaked", "single_peaked", "single_peaked", "bistable"]
    assert sigmoid_points(bias, p, lo, hi, reg).refusal is None
    # still reversals: stuck at 1 below stuck at 0, and stuck at 1 below a telegraph wholly under 0.5
    two = sigmoid_points(np.array([-5e-3, 0.0, 5e-3, 10e-3]), np.array([0.0, 1.0, 0.0, 1.0]),
                         regime=["stuck"] * 4)
    assert two.refusal and "non-monotonic" in two.refusal
    low = sigmoid_points(np.array([-10e-3, -5e-3, 0.0, 5e-3]), np.array([0.0, 1.0, 0.3, 0.9]),
                         np.array([0.0, 0.9995, 0.1, 0.7]), np.array([0.0005, 1.0, 0.45, 0.97]),
                         ["stuck", "stuck", "bistable", "bistable"])
    assert low.refusal and "non-monotonic" in low.refusal
