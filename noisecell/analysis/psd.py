"""Power spectral density (Welch) of the bit stream and its Lorentzian fit.

A random telegraph signal with correlation time τ has the Lorentzian PSD S(f) = S0 / (1 + (f/fc)²)
with corner fc = 1/(2π τ). Sampled every dt, the spectrum folds into the aliased form

    S(f) = C · (1 - lam²) / (1 - 2 lam cos(2π f dt) + lam²),   lam = exp(-dt/τ),

which is the exact PSD of a sampled two-state Markov chain and tends to the Lorentzian when τ ≫ dt.
The fit is done on log S (Welch estimates have a roughly constant relative error, so log-space
least squares weights all frequencies alike); the corner it gives is compared with the τ from the
dwell-time (Markov) fit: ``agree`` when their log-ratio is within 3 combined standard errors plus a
5 % allowance for the finite-window (Hann) leakage of Welch estimates near the corner.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal
from scipy.optimize import least_squares

DEFAULT_MAX_SAMPLES = 1 << 22
MAX_SEGMENTS = 256


@dataclass(frozen=True)
class PSDFit:
    """corner_hz (or per-sample corner, cycles/sample, when dt is unknown), its SE on the log scale,
    tau_samples from the fit, n_segments averaged, nperseg, n_used samples."""

    corner: float
    corner_log_se: float
    tau_samples: float
    level: float
    nperseg: int
    n_segments: int
    n_used: int
    ok: bool

    def to_dict(self) -> dict:
        return asdict(self)


def welch_psd(bits: np.ndarray, *, nperseg: int, max_samples: int = DEFAULT_MAX_SAMPLES):
    """One-sided PSD (per sample: frequencies in cycles/sample) of the first max_samples samples."""
    x = np.asarray(bits[:max_samples], dtype=np.float32)
    nperseg = int(min(nperseg, x.size))
    f, s = signal.welch(x, fs=1.0, window="hann", nperseg=nperseg, noverlap=nperseg // 2,
                        detrend="constant", scaling="density")
    n_seg = max(1, (x.size - nperseg) // (nperseg - nperseg // 2) + 1)
    return f, s, n_seg, int(x.size)


def _model(params, f):
    logc, lam = params
    return logc + np.log1p(-lam * lam) - np.log(1 - 2 * lam * np.cos(2 * np.pi * f) + lam * lam)


def fit_lorentzian(bits: np.ndarray, tau_guess: float, *, max_samples: int = DEFAULT_MAX_SAMPLES) -> PSDFit:
    """Welch PSD and aliased-Lorentzian fit. tau_guess (samples) sets the segment length (≥ 64 τ so
    the corner is resolved by many frequency bins) and the starting point."""
    n = int(np.asarray(bits).size)
    tg = tau_guess if np.isfinite(tau_guess) and tau_guess > 0 else 1.0
    nperseg = int(2 ** np.ceil(np.log2(max(256.0, 64.0 * tg))))
    nperseg = min(nperseg, max(16, min(n, max_samples) // 8))
    if nperseg < 16 or n < 64:
        return PSDFit(float("nan"), float("nan"), float("nan"), float("nan"), nperseg, 0, n, False)
    # scipy's Welch loops over segments in Python: cap their number (256 segments already give the
    # log-PSD a per-bin standard error of ~6 %, and the corner fit uses ~100 bins) so the cost stays bounded for short segments
    max_samples = int(min(max_samples, MAX_SEGMENTS * (nperseg // 2) + nperseg // 2))
    f, s, n_seg, n_used = welch_psd(bits, nperseg=nperseg, max_samples=max_samples)
    # Fit up to 10x the expected corner: the corner is set by the spectrum around it, and the many
    # linearly spaced bins far above it would otherwise dominate the least squares.
    f_max = max(10.0 / (2 * np.pi * tg), 16.0 / nperseg)
    keep = (f > 0) & (s > 0) & (f <= f_max)
    f, s = f[keep], s[keep]
    if f.size < 4:
        return PSDFit(float("nan"), float("nan"), float("nan"), float("nan"), nperseg, n_seg, n_used, False)
    y = np.log(s)
    lam0 = float(np.clip(np.exp(-1.0 / tg), 1e-3, 1 - 1e-9))
    c0 = float(np.median(y - _model((0.0, lam0), f)))
    try:
        res = least_squares(lambda p: _model(p, f) - y, x0=(c0, lam0),
                            bounds=([-np.inf, -0.999999], [np.inf, 1 - 1e-12]), method="trf")
    except ValueError:
        return PSDFit(float("nan"), float("nan"), float("nan"), float("nan"), nperseg, n_seg, n_used, False)
    logc, lam = res.x
    if lam <= 0:
        return PSDFit(float("nan"), float("nan"), 0.0, float(np.exp(logc)), nperseg, n_seg, n_used, False)
    tau = -1.0 / np.log(lam)
    # covariance from the Jacobian and the residual variance of the log-spectrum
    J = res.jac
    dof = max(f.size - 2, 1)
    s2 = float((res.fun ** 2).sum() / dof)
    try:
        cov = np.linalg.inv(J.T @ J) * s2
        lam_se = float(np.sqrt(cov[1, 1]))
    except np.linalg.LinAlgError:
        lam_se = float("nan")
    # tau = -1/ln(lam): d ln tau / d lam = -1/(lam ln lam)
    log_se = abs(lam_se / (lam * np.log(lam)))
    corner = 1.0 / (2 * np.pi * tau)
    return PSDFit(float(corner), float(log_se), float(tau), float(np.exp(logc)), nperseg, n_seg, n_used, True)
