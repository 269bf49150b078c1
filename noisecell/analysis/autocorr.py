"""Autocorrelation of a bit stream by FFT, its correlation time, and the integrated autocorrelation time.

For long streams the ACF is computed on a bounded, evenly spread subset: ``n_blocks`` blocks of
``block_len`` samples (covering the whole stream when it is short enough). Each block's lagged sums
come from one zero-padded real FFT, with the *global* mean subtracted, and are pooled, so lags up to
``max_lag`` (≪ block_len) are estimated without the per-block mean bias. Memory and time are bounded
independently of the stream length.

Three estimates of the correlation time τ (samples) of an exponential ACF ``rho_k = exp(-k/τ)``:

* ``tau_exp_fit``: least-squares fit of ``A·exp(-k/τ)`` over the lags where the ACF stands clear of
  its noise (A is free: A < 1 betrays a fast non-Markov component);
* ``tau_iact``: from the integrated autocorrelation time ``tau_int = 1 + 2·Σ rho_k`` (Sokal's adaptive
  window: the smallest M with M ≥ c·tau_int(M), c = 5), converted with the exponential identity
  ``tau_int = (1+lam)/(1-lam)``, ``lam = exp(-1/τ)``;
* (in rates/markov) the two-state Markov fit ``-1/ln(lam)`` from lag 1 only.

For a Markov stream all three agree; their disagreement is evidence of non-Markov dynamics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.optimize import curve_fit

DEFAULT_MAX_SAMPLES = 1 << 21
SOKAL_C = 5.0


@dataclass(frozen=True)
class ACFResult:
    """rho[k] for k = 0..max_lag (rho[0] = 1); n_used: samples the ACF was computed from;
    block_len, n_blocks: the subset layout."""

    rho: np.ndarray
    n_used: int
    block_len: int
    n_blocks: int


def _block_layout(n: int, block_len: int, max_samples: int) -> tuple[int, np.ndarray]:
    block_len = int(min(block_len, n))
    n_blocks = max(1, min(n // block_len, max_samples // block_len))
    if n_blocks * block_len >= n - block_len:
        # the stream is (nearly) covered: contiguous blocks
        n_blocks = n // block_len
        starts = np.arange(n_blocks) * block_len
    else:
        starts = np.linspace(0, n - block_len, n_blocks).astype(np.int64)
    return block_len, starts


def acf_fft(bits: np.ndarray, max_lag: int, *, mean: float | None = None, block_len: int | None = None,
            max_samples: int = DEFAULT_MAX_SAMPLES) -> ACFResult:
    """Normalised autocorrelation rho[0..max_lag] of a 0/1 (or real) stream via FFT on blocks.

    max_lag: largest lag, samples. mean: the stream mean (default: computed). block_len: samples per
    block (default: whole stream if ≤ max_samples, else ≥ 8·max_lag). max_samples: bound on the
    samples read.
    """
    x = np.asarray(bits)
    n = x.size
    max_lag = int(max(1, min(max_lag, n - 1)))
    if mean is None:
        mean = float(np.mean(x, dtype=np.float64))
    if block_len is None:
        block_len = n if n <= max_samples else max(8 * max_lag, 1 << 16)
    block_len = max(int(block_len), max_lag + 1)
    block_len, starts = _block_layout(n, block_len, max(max_samples, block_len))
    nfft = sfft.next_fast_len(block_len + max_lag, real=True)
    acc = np.zeros(max_lag + 1)
    # A few blocks per batch: bounded memory (~1 M floats per batch). Single precision halves the FFT
    # time; its rounding (~1e-7 relative per product, ~1e-6 on the normalised ACF) is far below the
    # ACF's statistical error (~1/sqrt(n_used) >= 5e-4).
    batch = max(1, (1 << 20) // nfft)
    for s in range(0, len(starts), batch):
        idx = starts[s:s + batch]
        seg = np.empty((len(idx), nfft), dtype=np.float32)
        seg[:, block_len:] = 0.0
        for j, st in enumerate(idx):
            seg[j, :block_len] = x[st:st + block_len]
        seg[:, :block_len] -= mean
        f = sfft.rfft(seg, axis=1)
        r = sfft.irfft(f.real ** 2 + f.imag ** 2, n=nfft, axis=1)[:, :max_lag + 1]
        acc += r.sum(axis=0, dtype=np.float64)
    pairs = len(starts) * (block_len - np.arange(max_lag + 1))
    cov = acc / pairs
    rho = cov / cov[0] if cov[0] > 0 else np.full(max_lag + 1, np.nan)
    return ACFResult(rho=rho, n_used=int(len(starts) * block_len), block_len=int(block_len),
                     n_blocks=int(len(starts)))


def integrated_act(rho: np.ndarray, c: float = SOKAL_C) -> tuple[float, int, bool]:
    """Integrated autocorrelation time tau_int = 1 + 2·Σ_{k=1..M} rho_k with Sokal's window.

    Returns (tau_int, M, converged); converged is False when the window reached the last lag given
    (then tau_int is a lower bound: compute more lags).
    """
    if rho.size < 2 or not np.isfinite(rho[1]):
        return float("nan"), 0, False
    taus = 1.0 + 2.0 * np.cumsum(rho[1:])
    m = np.arange(1, rho.size)
    ok = m >= c * taus
    if ok.any():
        i = int(np.argmax(ok))
        return float(max(taus[i], 1e-12)), int(m[i]), True
    return float(taus[-1]), int(m[-1]), False


def tau_from_tau_int(tau_int: float) -> float:
    """Exponential correlation time (samples) whose ACF exp(-k/τ) has this integrated time."""
    if not np.isfinite(tau_int) or tau_int <= 1.0:
        return 0.0
    lam = (tau_int - 1.0) / (tau_int + 1.0)
    return float(-1.0 / np.log(lam))


@dataclass(frozen=True)
class ExpFit:
    """Fit rho_k ≈ amplitude·exp(-k/tau) over lags 1..n_lags. tau in samples; tau_se from the fit."""

    tau: float
    tau_se: float
    amplitude: float
    n_lags: int


def fit_exponential(rho: np.ndarray, noise_se: float) -> ExpFit:
    """Exponential fit of the ACF over lags 1..K, K = last lag before rho falls below
    max(exp(-3)·rho_1, 3·noise_se) (beyond that the ACF is mostly noise and drags the fit)."""
    if rho.size < 2 or not np.isfinite(rho[1]) or rho[1] <= max(3 * noise_se, 0.0):
        return ExpFit(0.0 if rho.size > 1 and np.isfinite(rho[1]) else float("nan"), float("nan"), float("nan"), 0)
    floor = max(np.exp(-3.0) * rho[1], 3.0 * noise_se)
    below = np.flatnonzero(rho[1:] < floor)
    K = int(below[0]) if below.size else rho.size - 1
    if K < 3:
        # one or two usable lags: the exponential is pinned by rho_1 alone (A = 1)
        tau = float(-1.0 / np.log(min(rho[1], 1 - 1e-12)))
        return ExpFit(tau, float("nan"), 1.0, max(K, 1))
    k = np.arange(1, K + 1, dtype=float)
    y = rho[1:K + 1]
    tau0 = float(-1.0 / np.log(min(max(rho[1], 1e-6), 1 - 1e-12)))
    try:
        popt, pcov = curve_fit(lambda kk, A, t: A * np.exp(-kk / t), k, y, p0=(1.0, max(tau0, 0.1)),
                               bounds=([0.0, 1e-6], [2.0, np.inf]), maxfev=2000)
        se = float(np.sqrt(pcov[1, 1])) if np.all(np.isfinite(pcov)) else float("nan")
        return ExpFit(float(popt[1]), se, float(popt[0]), K)
    except (RuntimeError, ValueError):
        return ExpFit(tau0, float("nan"), 1.0, K)
