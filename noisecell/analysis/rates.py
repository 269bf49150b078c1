"""Switching rates from dwell times, with confidence intervals and a goodness-of-fit check.

Model: the cell is a continuous-time two-state process with rates k_up (0→1) and k_down (1→0),
sampled every dt. Sampled, it is exactly a two-state Markov chain with
``lam = 1 - a - b = exp(-(k_up + k_down)·dt)`` and ``a/(a+b) = k_up/(k_up+k_down)``, so

    k_up·dt = a/(a+b) · (-ln lam),   k_down·dt = b/(a+b) · (-ln lam),   tau = 1/(k_up+k_down).

This inversion stays right when several flips can happen within one sample (it reduces to
k·dt ≈ a, b when a, b ≪ 1). The MLE of (a, b) from dwell times with the first and last dwell
censored equals the transition-count MLE (each dwell contributes its stays and, when complete, one
exit), computed in one pass by :mod:`.runs`. When lam is not significantly above 0 the samples are
(compatible with) uncorrelated or anti-correlated: the switching may be faster than the sampling and
the rates are not resolved (NaN).

Rate CIs: the union of (i) the exact Poisson/gamma interval for the number of exits N in the time
at risk (the exponential-dwell likelihood), ``k̂·[χ²(0.025; 2N)/(2N), χ²(0.975; 2N+2)/(2N)]``, exact
for finely sampled exponential dwells and for few events, and (ii) the delta-method interval on
ln k through the embedding with the binomial variances of (a, b), which is what matters when the
sampling is coarse (k·dt ≳ 0.3) and -ln(1-a-b) amplifies the noise of a and b.

Dwell goodness of fit: the complete dwells of each state are compared with the geometric
distribution of the fitted chain (the exact dwell law of a sampled Markov process) by a chi-square
test on bins of equal expected count (≥ 5 per bin). Rates modulated by slow (1/f) fluctuations give
a mixture of geometric laws — over-dispersed dwells — which the test flags; the dispersion index
(observed variance / geometric variance) says how far from Markov.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ..constants import Z95
from .runs import RunStats

GOF_ALPHA = 1e-3


def gamma_rate_factor(n_events: int, level: float = 0.95) -> tuple[float, float]:
    """Relative CI factors (lo, hi) for a Poisson rate with n_events observed in a fixed time."""
    q = (1 - level) / 2
    if n_events <= 0:
        return 0.0, float("inf")
    lo = stats.chi2.ppf(q, 2 * n_events) / (2 * n_events)
    hi = stats.chi2.ppf(1 - q, 2 * n_events + 2) / (2 * n_events)
    return float(lo), float(hi)


def embedding_rates(a: float, b: float) -> tuple[float, float]:
    """(k_up·dt, k_down·dt) of the continuous-time process whose sampling gives the chain (a, b).
    NaN when lam = 1-a-b ≤ 0 (no continuous-time embedding: switching not resolved)."""
    lam = 1.0 - a - b
    if a + b <= 0:
        return 0.0, 0.0
    if lam <= 0:
        return float("nan"), float("nan")
    k = -math.log(lam)
    return a / (a + b) * k, b / (a + b) * k


@dataclass(frozen=True)
class DwellGoF:
    """Chi-square test of one state's complete dwells against the fitted geometric law.

    state: 0 or 1. n_dwells: complete dwells tested. mean_samples: their mean length, samples.
    chi2, dof, p_value: the test (NaN when fewer than 3 bins could be formed). dispersion: observed
    variance / geometric variance (1 for Markov; > 1 over-dispersed, e.g. 1/f-modulated rates).
    """

    state: int
    n_dwells: int
    mean_samples: float
    chi2: float
    dof: int
    p_value: float
    dispersion: float

    def to_dict(self) -> dict:
        return asdict(self)


def dwell_gof(rs: RunStats, state: int, exit_prob: float, max_bins: int = 50) -> DwellGoF:
    """Goodness of fit of the complete dwells in ``state`` to Geometric(exit_prob) (lengths ≥ 1)."""
    lengths, counts = rs.dwell_counts(state)
    nd = int(counts.sum())
    if nd == 0 or not (0 < exit_prob <= 1):
        return DwellGoF(state, nd, float("nan"), float("nan"), 0, float("nan"), float("nan"))
    mean = float((lengths * counts).sum() / nd)
    var = float(((lengths - mean) ** 2 * counts).sum() / max(nd - 1, 1))
    geo_var = (1 - exit_prob) / exit_prob ** 2
    disp = var / geo_var if geo_var > 0 else float("nan")
    q = 1.0 - exit_prob
    n_bins = int(min(max_bins, nd // 5))
    if n_bins < 3 or q <= 0:
        return DwellGoF(state, nd, mean, float("nan"), 0, float("nan"), disp)
    # Bin edges at the geometric quantiles (integers, deduplicated): equal expected counts as far as
    # the discreteness allows; then merge bins until each expects >= 5.
    probs = np.linspace(0, 1, n_bins + 1)[1:-1]
    cuts = np.unique(np.ceil(np.log1p(-probs) / np.log(q)).astype(np.int64))
    cuts = cuts[cuts >= 1]
    edges = np.concatenate([[1], cuts + 1])       # bin i covers [edges[i], edges[i+1]-1]; last is open
    edges = np.unique(edges)

    def sf(L):  # P(dwell >= L)
        return q ** (L - 1)

    exp_p = np.append(sf(edges[:-1]) - sf(edges[1:]), sf(edges[-1]))
    obs = np.add.reduceat(np.bincount(np.searchsorted(edges, lengths, side="right") - 1,
                                      weights=counts, minlength=edges.size), np.arange(edges.size))
    expected = exp_p * nd
    # merge adjacent bins with expected < 5
    o_m, e_m = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(obs, expected):
        o_acc += o
        e_acc += e
        if e_acc >= 5:
            o_m.append(o_acc)
            e_m.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 and e_m:
        o_m[-1] += o_acc
        e_m[-1] += e_acc
    if len(e_m) < 3:
        return DwellGoF(state, nd, mean, float("nan"), 0, float("nan"), disp)
    o_m = np.array(o_m)
    e_m = np.array(e_m)
    chi2 = float(((o_m - e_m) ** 2 / e_m).sum())
    dof = len(e_m) - 2                 # one parameter (the exit probability) fitted
    return DwellGoF(state, nd, mean, chi2, dof, float(stats.chi2.sf(chi2, dof)), disp)


@dataclass(frozen=True)
class RateEstimates:
    """Switching rates per sample (k·dt) and, when dt is known, in Hz, with 95 % CIs.

    resolved: False unless the lag-1 correlation is significantly > 0 (95 %): otherwise the switching
        may be faster than the sampling and the rates are NaN.
    dwell_gof: one DwellGoF per state; markov_dwells_ok: no state rejects the geometric law at GOF_ALPHA.
    """

    rate_up: float
    rate_down: float
    rate_up_ci95: tuple[float, float]
    rate_down_ci95: tuple[float, float]
    resolved: bool
    dwell_gof: tuple[DwellGoF, DwellGoF]
    markov_dwells_ok: bool | None


def embedding_log_se(a: float, b: float, n0: int, n1: int) -> tuple[float, float]:
    """Delta-method standard errors of ln(k_up·dt) and ln(k_down·dt) from the binomial variances of
    a (n0 trials) and b (n1 trials). Reduces to 1/sqrt(N_up), 1/sqrt(N_down) for fine sampling and
    grows when coarse sampling makes -ln(1-a-b) steep."""
    lam = 1.0 - a - b
    if not (a > 0 and b > 0 and lam > 0 and n0 > 0 and n1 > 0):
        return float("nan"), float("nan")
    L = -math.log(lam)
    va, vb = a * (1 - a) / n0, b * (1 - b) / n1
    common = 1.0 / (L * lam) - 1.0 / (a + b)          # d ln(L/(a+b)) / da = same for db
    su = math.sqrt((1.0 / a + common) ** 2 * va + common ** 2 * vb)
    sd = math.sqrt(common ** 2 * va + (1.0 / b + common) ** 2 * vb)
    return su, sd


def _union_factor(gamma: tuple[float, float], log_se: float) -> tuple[float, float]:
    if not math.isfinite(log_se):
        return gamma
    z = Z95
    return min(gamma[0], math.exp(-z * log_se)), max(gamma[1], math.exp(z * log_se))


def estimate_rates(rs: RunStats, a: float, b: float) -> RateEstimates:
    ku, kd = embedding_rates(a, b)
    # Resolved only when the lag-1 correlation is significantly positive: if its 95 % interval
    # reaches 0 the data are compatible with arbitrarily fast switching, and a finite rate (or a
    # finite upper CI bound) would be a number the data do not support.
    lam = 1.0 - a - b
    lam_se = math.sqrt(a * (1 - a) / rs.n0_at_risk + b * (1 - b) / rs.n1_at_risk) \
        if rs.n0_at_risk > 0 and rs.n1_at_risk > 0 else float("nan")
    significant = bool(np.isfinite(lam_se) and lam - Z95 * lam_se > 0)
    resolved = bool(np.isfinite(ku) and np.isfinite(kd) and significant)
    if not resolved:
        ku = kd = float("nan")
    # Relative CI: the wider of the exact gamma interval on the exit count (right for fine sampling
    # and few events) and the delta-method interval through the embedding (right for coarse sampling,
    # where the gamma interval alone undercovers: 0.71 at (k_up + k_down)·dt = 2 in our tests).
    su, sd = embedding_log_se(a, b, rs.n0_at_risk, rs.n1_at_risk)
    fu = _union_factor(gamma_rate_factor(rs.n_up), su)
    fd = _union_factor(gamma_rate_factor(rs.n_down), sd)
    ci_u = (ku * fu[0], ku * fu[1]) if resolved else (float("nan"), float("nan"))
    ci_d = (kd * fd[0], kd * fd[1]) if resolved else (float("nan"), float("nan"))
    if resolved and rs.n_up == 0:
        # no exit observed from state 0: only an upper bound from the time at risk
        ci_u = (0.0, float(stats.chi2.ppf(0.975, 2) / 2 / max(rs.n0_at_risk, 1)))
    if resolved and rs.n_down == 0:
        ci_d = (0.0, float(stats.chi2.ppf(0.975, 2) / 2 / max(rs.n1_at_risk, 1)))
    g0 = dwell_gof(rs, 0, a)
    g1 = dwell_gof(rs, 1, b)
    ps = [g.p_value for g in (g0, g1) if np.isfinite(g.p_value)]
    ok = None if not ps else bool(min(ps) >= GOF_ALPHA)
    return RateEstimates(float(ku), float(kd), ci_u, ci_d, resolved, (g0, g1), ok)
