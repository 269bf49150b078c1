"""P(1) with a confidence interval that is honest for autocorrelated bits.

Var(p̂) = p(1-p)·tau_int/n for a stationary stream with integrated autocorrelation time tau_int
(samples), i.e. the binomial variance with the effective sample size n_eff = n / tau_int. For a
two-state Markov chain tau_int = (1+lam)/(1-lam), lam = lag-1 correlation, so n_eff = n(1-lam)/(1+lam).
The interval is Wilson's score interval evaluated at n_eff (it stays inside [0, 1] and behaves near
p = 0 or 1, where the Wald interval undercovers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..constants import Z95  # re-exported: analysis.p1.Z95



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


@dataclass(frozen=True)
class P1Estimate:
    """P(1) with its autocorrelation-aware 95 % CI.

    tau_int: integrated autocorrelation time used (samples) = max(tau_int_markov, tau_int_acf): the
    Markov value is the most precise when the chain is Markov; the ACF value (Sokal window) also
    catches longer memory, so taking the larger never understates the uncertainty.
    method: which one was used ("markov" or "acf"). acf: the ACFResult computed on the way (reused).
    """

    p1: float
    ci95: tuple[float, float]
    n_eff: float
    tau_int: float
    method: str
    tau_int_markov: float
    tau_int_acf: float
    iact_window: int
    iact_converged: bool
    acf: object = None

    def summary(self) -> str:
        return (f"P(1) = {self.p1:.6g}, 95% CI [{self.ci95[0]:.6g}, {self.ci95[1]:.6g}], n_eff {self.n_eff:.4g} "
                f"(tau_int {self.tau_int:.4g} samples from {self.method})")


def estimate_p1(bits, *, runs=None, lam: float | None = None, max_lag: int | None = None,
                max_fft_samples: int | None = None) -> P1Estimate:
    """P(1) of a 0/1 stream with n_eff from max(Markov, ACF) integrated autocorrelation time.

    runs: a precomputed :class:`.runs.RunStats` (else computed); lam: the lag-1 correlation of the
    fitted chain (else from runs); max_lag: ACF lags to compute (default 30·tau + 64).
    """
    from .autocorr import DEFAULT_MAX_SAMPLES, acf_fft, integrated_act
    from .runs import scan_runs

    x = np.asarray(bits)
    rs = runs if runs is not None else scan_runs(x)
    n = rs.n
    if lam is None:
        a = rs.n_up / rs.n0_at_risk if rs.n0_at_risk else 0.0
        b = rs.n_down / rs.n1_at_risk if rs.n1_at_risk else 0.0
        lam = 1.0 - a - b
    mfs = DEFAULT_MAX_SAMPLES if max_fft_samples is None else int(max_fft_samples)
    p = rs.n1 / n
    if rs.n1 == 0 or rs.n1 == n:
        return P1Estimate(p, wilson_interval(p, n), float(n), 1.0, "markov", 1.0, float("nan"), 0, False, None)
    ti_m = tau_int_markov(lam)
    tau_m = -1.0 / math.log(lam) if 0 < lam < 1 else 1.0
    if max_lag is None:
        # lags up to 30 tau (Sokal's window needs ~10 tau); capped so one FFT block stays bounded in
        # memory (a longer tau then leaves the window unconverged: noted, and the Markov value is used)
        max_lag = int(min(n - 1, max(64, math.ceil(30 * tau_m) + 64), max(64, mfs // 4)))
    block = n if n <= mfs else int(min(n, max(1 << 16, 2 ** math.ceil(math.log2(8 * max_lag)))))
    acf = acf_fft(x, max_lag, mean=p, block_len=block, max_samples=mfs)
    ti_a, M, conv = integrated_act(acf.rho)
    if math.isfinite(ti_a) and ti_a > ti_m:
        ti, method = ti_a, "acf"
    else:
        ti, method = ti_m, "markov"
    p, ci, n_eff = p1_ci(rs.n1, n, ti)
    return P1Estimate(p, ci, n_eff, ti, method, ti_m, ti_a, M, conv, acf)
