"""Two-state Markov entropy rates, SP 800-90B cutoffs and the chain fit, against independent computations."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from noisecell.analysis.markov import (apt_cutoff, binary_entropy, fit_markov, min_entropy_rate, rct_cutoff,
                                       shannon_rate)
from noisecell.analysis.runs import scan_runs
from noisecell.analysis.synthetic import markov_chain


def _block_entropy(a, b, k):
    """H(X_1..X_k) in bits by enumerating all 2^k sequences of the stationary chain."""
    P = np.array([[1 - a, a], [b, 1 - b]])
    pi = np.array([b, a]) / (a + b)
    h = 0.0
    for seq in itertools.product((0, 1), repeat=k):
        p = pi[seq[0]]
        for s, t in zip(seq, seq[1:]):
            p *= P[s, t]
        if p > 0:
            h -= p * math.log2(p)
    return h


@pytest.mark.parametrize("a,b", [(0.3, 0.3), (0.05, 0.2), (0.7, 0.6), (0.5, 0.5), (0.01, 0.09)])
def test_shannon_rate_equals_block_entropy_increment(a, b):
    # For a Markov chain H(X_1..X_k) - H(X_1..X_{k-1}) equals the entropy rate exactly for k >= 2.
    inc = _block_entropy(a, b, 9) - _block_entropy(a, b, 8)
    assert shannon_rate(a, b) == pytest.approx(inc, abs=1e-9)


@pytest.mark.parametrize("a,b", [(0.3, 0.3), (0.05, 0.2), (0.7, 0.6), (0.9, 0.8), (0.01, 0.09)])
def test_min_entropy_rate_equals_viterbi_limit(a, b):
    # Most likely sequence of length k by dynamic programming; -log2(max P)/k -> Hmin with an O(1/k)
    # boundary term bounded by |log2 of the initial/transition probabilities| / k.
    logP = np.log2(np.array([[1 - a, a], [b, 1 - b]]))
    k = 4000
    best = np.log2(np.array([b, a]) / (a + b))
    for _ in range(k - 1):
        best = np.max(best[:, None] + logP, axis=0)
    rate = -best.max() / k
    bound = (abs(np.log2(min(a, b, 1 - a, 1 - b))) * 2 + 2) / k
    assert min_entropy_rate(a, b) == pytest.approx(rate, abs=bound)


def test_iid_special_cases():
    for p in (0.1, 0.5, 0.77):
        # i.i.d.: a = p, b = 1 - p
        assert shannon_rate(p, 1 - p) == pytest.approx(binary_entropy(p))
        assert min_entropy_rate(p, 1 - p) == pytest.approx(-math.log2(max(p, 1 - p)))
    assert binary_entropy(0.5) == 1.0 and binary_entropy(0.0) == 0.0


def test_health_test_cutoffs():
    alpha = 2.0 ** -20
    # RCT: C = 1 + ceil(20 / H)
    assert rct_cutoff(1.0, alpha) == 21
    assert rct_cutoff(0.5, alpha) == 41
    assert rct_cutoff(0.3, alpha) == 1 + math.ceil(20 / 0.3)
    # APT: independent check of the defining property with the exact binomial tail:
    # C-1 is the smallest k with P(B > k) <= alpha, B ~ Bin(1024, 2^-H)
    for h in (1.0, 0.8, 0.5, 0.25):
        c = apt_cutoff(h, alpha)
        p = 2.0 ** -h
        assert stats.binom.sf(c - 1, 1024, p) <= alpha < stats.binom.sf(c - 2, 1024, p)
    assert apt_cutoff(1.0, alpha) == 589
    assert rct_cutoff(0.0) is None and apt_cutoff(0.0) is None


@pytest.mark.parametrize("p,rho", [(0.1, 0.0), (0.5, 0.5), (0.9, 0.95), (0.3, 0.8)])
def test_fit_recovers_transition_probabilities(p, rho):
    rng = np.random.default_rng(int(p * 100 + rho * 1000))
    x = markov_chain(200_000, p, rho, rng)
    rs = scan_runs(x)
    mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk)
    a, b = (1 - rho) * p, (1 - rho) * (1 - p)
    # Exact 95 % intervals: each misses with probability 0.05; here a single fixed seed per case, so
    # the check is a smoke test of the estimator, and the coverage tests elsewhere check the rate.
    # A 99.99 % interval (z = 3.9 on the binomial SE) is used so the fixed seed cannot fail by chance.
    for est, true, k, nr in ((mk.p01, a, rs.n_up, rs.n0_at_risk), (mk.p10, b, rs.n_down, rs.n1_at_risk)):
        se = math.sqrt(true * (1 - true) / nr)
        assert abs(est - true) <= 3.9 * se
    assert mk.lam == pytest.approx(rho, abs=3.9 * math.sqrt(a * (1 - a) / rs.n0_at_risk + b * (1 - b) / rs.n1_at_risk))
