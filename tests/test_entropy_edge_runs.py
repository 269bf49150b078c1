"""Predictor estimates where the longest run of correct predictions is short for the success rate
(seen on a real pbit stream): the local-run probability underflows and must not crash."""
import math

import pytest

from noisecell.entropy.sp80090b import _log_no_long_run, prediction_estimate


@pytest.mark.parametrize("p,r", [(0.9, 2), (0.99, 5), (0.999, 50)])
def test_short_runs_give_negligible_probability(p, r):
    # P(no run of r successes in 1e6 trials) with p^r >> 1e-6 is astronomically small
    assert _log_no_long_run(p, r, 10**6) < math.log(1e-100)


def test_prediction_estimate_with_short_longest_run():
    est = prediction_estimate("lag", "6.3.8", correct=990_000, n=1_000_000, longest_run=3)
    # P_global' bounds the estimate; P_local is not needed when runs are short
    assert est.details["p_local"] is None
    assert est.min_entropy == pytest.approx(-math.log2(est.details["p_global_upper"]))


def test_long_runs_still_use_the_closed_form():
    # the same function stays finite where the standard's root is the right one
    v = _log_no_long_run(0.5, 40, 10**6)
    assert math.isfinite(v) and math.log(0.99) < v < 0
