"""P(1) with a confidence interval that is honest for autocorrelated bits.

Var(p̂) = p(1-p)·tau_int/n for a stationary stream with integrated autocorrelation time tau_int
(samples), i.e. the binomial variance with the effective sample size n_eff = n / tau_int. For a
two-state Markov chain tau_int = (1+lam)/(1-lam), lam = lag-1 correlation, so n_eff = n(1-lam)/(1+lam).
The interval is Wilson's score interval evaluated at n_eff (it stays inside [0, 1] and behaves near
p = 0 or 1, where the Wald interval undercovers).
"""
from __future__ import annotations

import math

from scipy import stats

Z95 = float(stats.norm.ppf(0.975))


def tau_int_markov(lam: float) -> float:
    """Integrated autocorrelation time of a two-state Markov chain with lag-1 correlation lam, samples."""
    if not math.isfinite(lam):
        return float("nan")
    lam = min(max(lam, -1 + 1e-12), 1 - 1e-12)
    return (1 + lam) / (1 - lam)


def wilson_interval(p: float, n_eff: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed with effective sample size n_eff."""
    if not (n_eff > 0) or not math.isfinite(n_eff):
        return (0.0, 1.0)
    z2 = z * z / n_eff
    centre = (p + z2 / 2) / (1 + z2)
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / (1 + z2)
    return (max(0.0, centre - half), min(1.0, centre + half))


def p1_ci(n1: int, n: int, tau_int: float, z: float = Z95) -> tuple[float, tuple[float, float], float]:
    """(p1, (lo, hi), n_eff): P(1) = n1/n with its Wilson interval at n_eff = n / tau_int."""
    p = n1 / n
    t = float(tau_int) if (math.isfinite(tau_int) and tau_int > 0) else 1.0
    n_eff = n / t
    return p, wilson_interval(p, n_eff, z), n_eff
