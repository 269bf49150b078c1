"""Two-state Markov chain: fit from transition counts, entropy rates, SP 800-90B §4.4 health-test cutoffs.

The chain moves 0→1 with probability ``a`` and 1→0 with probability ``b`` per sample. Its stationary
P(1) is ``a/(a+b)``, its lag-k autocorrelation is ``lam**k`` with ``lam = 1 - a - b``.

Entropy rates per sample (bits) of the stationary chain:

* Shannon: ``H = pi0*h(a) + pi1*h(b)`` with ``h`` the binary entropy function.
* Min-entropy: ``-log2`` of the largest per-sample geometric-mean probability of an infinitely long
  most-likely sequence. For two states the most likely long sequences are all-0 (``1-a`` per sample),
  all-1 (``1-b``) or alternating (``sqrt(a*b)``), so ``Hmin = -log2 max(1-a, 1-b, sqrt(a*b))``.
  For i.i.d. bits (``a = 1-b = p``) it reduces to ``-log2 max(p, 1-p)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

DEFAULT_ALPHA = 2.0 ** -20
APT_WINDOW_BINARY = 1024


def binary_entropy(p: float) -> float:
    """h(p) = -p log2 p - (1-p) log2 (1-p), bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-p * math.log2(p) - (1 - p) * math.log2(1 - p))


def shannon_rate(a: float, b: float) -> float:
    """Shannon entropy rate of the stationary two-state chain, bits per sample."""
    if a + b <= 0:
        return 0.0
    pi1 = a / (a + b)
    return (1 - pi1) * binary_entropy(a) + pi1 * binary_entropy(b)


def min_entropy_rate(a: float, b: float) -> float:
    """Asymptotic min-entropy rate of the two-state chain, bits per sample (see module docstring)."""
    m = max(1.0 - a, 1.0 - b, math.sqrt(max(a, 0.0) * max(b, 0.0)))
    return float(-math.log2(m)) if m > 0 else float("inf")


def rct_cutoff(h_min: float, alpha: float = DEFAULT_ALPHA) -> int | None:
    """SP 800-90B §4.4.1 repetition count test cutoff C = 1 + ceil(-log2(alpha) / H). None if H = 0."""
    if not h_min > 0:
        return None
    return int(1 + math.ceil(-math.log2(alpha) / h_min - 1e-12))


def apt_cutoff(h_min: float, alpha: float = DEFAULT_ALPHA, window: int = APT_WINDOW_BINARY) -> int | None:
    """SP 800-90B §4.4.2 adaptive proportion test cutoff: C = 1 + CRITBINOM(W, 2^-H, 1 - alpha).

    CRITBINOM(W, p, 1-alpha) is the smallest k with P(B <= k) >= 1 - alpha, B ~ Binomial(W, p); the
    test fails when a window's first sample recurs C or more times. None if H = 0 (cutoff would be W+1).
    """
    if not h_min > 0:
        return None
    p = min(2.0 ** -h_min, 1.0)
    # isf works on the upper tail directly: no cancellation in 1 - alpha for tiny alpha
    k = int(stats.binom.isf(alpha, window, p))
    while stats.binom.sf(k, window, p) > alpha:      # guard against isf rounding at the boundary
        k += 1
    while k > 0 and stats.binom.sf(k - 1, window, p) <= alpha:
        k -= 1
    return min(1 + k, window)


@dataclass(frozen=True)
class MarkovFit:
    """Maximum-likelihood two-state Markov chain from transition counts.

    p01 / p10: transition probabilities 0→1 / 1→0 per sample, with exact (Clopper-Pearson) 95 % CIs.
    lam: lag-1 autocorrelation of the chain, 1 - p01 - p10. p1_stationary = p01/(p01+p10).
    h_shannon_rate / h_min_rate: bits per sample. rct_cutoff / apt_cutoff: SP 800-90B §4.4 at alpha.
    """

    p01: float
    p10: float
    p01_ci95: tuple[float, float]
    p10_ci95: tuple[float, float]
    lam: float
    p1_stationary: float
    h_shannon_rate: float
    h_min_rate: float
    alpha: float
    rct_cutoff: int | None
    apt_cutoff: int | None
    n_up: int
    n_down: int
    n0_at_risk: int
    n1_at_risk: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["p01_ci95"] = list(self.p01_ci95)
        d["p10_ci95"] = list(self.p10_ci95)
        return d

    def summary(self) -> str:
        return "\n".join([
            "Two-state Markov fit",
            f"  p(0->1) {self.p01:.6g}  95% CI [{self.p01_ci95[0]:.6g}, {self.p01_ci95[1]:.6g}]  ({self.n_up} of {self.n0_at_risk})",
            f"  p(1->0) {self.p10:.6g}  95% CI [{self.p10_ci95[0]:.6g}, {self.p10_ci95[1]:.6g}]  ({self.n_down} of {self.n1_at_risk})",
            f"  lag-1 correlation {self.lam:.6g}; stationary P(1) {self.p1_stationary:.6g}",
            f"  entropy rate: Shannon {self.h_shannon_rate:.6g}, min {self.h_min_rate:.6g} bit/sample",
            f"  SP 800-90B cutoffs (alpha={self.alpha:.3g}): RCT {self.rct_cutoff}, APT(W=1024) {self.apt_cutoff}",
        ])


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial CI for k successes in n trials."""
    if n <= 0:
        return (0.0, 1.0)
    q = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(q, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - q, k + 1, n - k))
    return (lo, hi)


def fit_markov(n_up: int, n0_at_risk: int, n_down: int, n1_at_risk: int, *,
               alpha: float = DEFAULT_ALPHA) -> MarkovFit:
    """MLE of the chain from transition counts (equivalently: from dwell times with the first and last
    dwell right/left-censored: each dwell contributes its observed stays and, if complete, its exit)."""
    a = n_up / n0_at_risk if n0_at_risk > 0 else float("nan")
    b = n_down / n1_at_risk if n1_at_risk > 0 else float("nan")
    if not (np.isfinite(a) and np.isfinite(b)):
        # a stream that never visits one state: the chain is stuck there
        a = 0.0 if not np.isfinite(a) else a
        b = 0.0 if not np.isfinite(b) else b
    lam = 1.0 - a - b
    p1s = a / (a + b) if a + b > 0 else (1.0 if n1_at_risk > 0 else 0.0)
    hs = shannon_rate(a, b)
    hm = min_entropy_rate(a, b)
    return MarkovFit(p01=float(a), p10=float(b), p01_ci95=clopper_pearson(n_up, n0_at_risk),
                     p10_ci95=clopper_pearson(n_down, n1_at_risk), lam=float(lam), p1_stationary=float(p1s),
                     h_shannon_rate=hs, h_min_rate=hm, alpha=float(alpha), rct_cutoff=rct_cutoff(hm, alpha),
                     apt_cutoff=apt_cutoff(hm, alpha), n_up=int(n_up), n_down=int(n_down),
                     n0_at_risk=int(n0_at_risk), n1_at_risk=int(n1_at_risk))


def resample_chain(a: float, b: float, k: float) -> tuple[float, float]:
    """Transition probabilities of the chain observed every ``k`` samples (k may be fractional when the
    chain is the sampling of a continuous-time process with lam > 0)."""
    lam = 1.0 - a - b
    if a + b <= 0:
        return 0.0, 0.0
    if lam < 0 and abs(k - round(k)) > 1e-9:
        raise ValueError("an anti-correlated chain has no continuous-time embedding; k must be an integer")
    lam_k = lam ** k
    pi1 = a / (a + b)
    return pi1 * (1 - lam_k), (1 - pi1) * (1 - lam_k)
