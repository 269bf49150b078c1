"""Synthetic bit streams whose statistics are known exactly: for tests, benchmarks and users' own checks.

* :func:`markov_chain`: discrete-time two-state chain with stationary P(1) = p and lag-1 correlation rho
  (p01 = (1-rho)·p, p10 = (1-rho)·(1-p)); starts from the stationary distribution.
* :func:`telegraph`: continuous-time random telegraph process with rates k_up, k_down (Hz), built from
  exponential dwell times and sampled every dt (the value held at each sampling instant).
* :func:`modulated_telegraph`: a telegraph whose two rates are both multiplied by a slowly switching
  factor (a crude 1/f-like modulation): not Markov, over-dispersed dwells.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _chain(u, a, b, s0):  # pragma: no cover - compiled
    n = u.size
    x = np.empty(n, np.uint8)
    s = s0
    for i in range(n):
        x[i] = s
        if s == 0:
            s = 1 if u[i] < a else 0
        else:
            s = 0 if u[i] < b else 1
    return x


def markov_chain(n: int, p: float, rho: float, rng: np.random.Generator) -> np.ndarray:
    """n samples (uint8) of the stationary two-state chain with P(1)=p and lag-1 correlation rho (0 ≤ rho < 1)."""
    a = (1 - rho) * p
    b = (1 - rho) * (1 - p)
    s0 = int(rng.random() < p)
    return _chain(rng.random(n), a, b, s0)


def _sample_dwells(n: int, dt: float, dwell_s: np.ndarray, s0: int) -> np.ndarray:
    edges = np.cumsum(dwell_s)
    t = np.arange(n) * dt
    k = np.searchsorted(edges, t, side="right")       # number of completed dwells before each t
    return ((s0 + k) & 1).astype(np.uint8)


def telegraph(n: int, dt: float, k_up: float, k_down: float, rng: np.random.Generator) -> np.ndarray:
    """n samples at period dt (s) of a telegraph with rates k_up (0→1), k_down (1→0) in Hz, stationary start."""
    p1 = k_up / (k_up + k_down)
    s0 = int(rng.random() < p1)
    T = n * dt
    mean_pair = 1 / k_up + 1 / k_down
    m = int(T / mean_pair * 2 * 1.2 + 100)
    while True:
        d = np.empty(m)
        # alternate dwells, the first in state s0 (memoryless: its remaining part is exponential too)
        rate_first, rate_second = (k_down, k_up) if s0 == 1 else (k_up, k_down)
        d[0::2] = rng.exponential(1 / rate_first, size=d[0::2].size)
        d[1::2] = rng.exponential(1 / rate_second, size=d[1::2].size)
        if d.sum() > T:
            return _sample_dwells(n, dt, d, s0)
        m *= 2


def modulated_telegraph(n: int, dt: float, k_up: float, k_down: float, factor: float, k_mod: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Telegraph whose rates are multiplied by ``factor`` or ``1/factor``, switching between the two at
    rate k_mod (Hz, ≪ k_up, k_down): P(1) is unchanged but dwell times are a mixture of exponentials."""
    out = np.empty(n, np.uint8)
    i = 0
    hi = bool(rng.random() < 0.5)
    while i < n:
        seg = int(min(n - i, max(1, rng.exponential(1 / k_mod) / dt)))
        f = factor if hi else 1 / factor
        out[i:i + seg] = telegraph(seg, dt, k_up * f, k_down * f, rng)
        i += seg
        hi = not hi
    return out


def renewal_telegraph(n: int, dt: float, mean_dwell_0_s: float, mean_dwell_1_s: float, shape: float,
                      rng: np.random.Generator, burn_in: int = 40) -> np.ndarray:
    """n samples at period dt (s) of an alternating renewal telegraph with gamma-distributed dwells of
    the given means (s) and ``shape`` (1: the Markov telegraph; > 1: more regular than exponential).

    Its dwell time τ = μ0·μ1/(μ0 + μ1) is what a two-state rate fit reads; its integrated
    autocorrelation time, as an exponential time, is τ/shape (see :mod:`noisecell.analysis.corrtime`).
    The stream starts at a uniform time over ``burn_in`` dwells after ``burn_in`` dwells, so it is
    (nearly) stationary, not at a renewal point."""
    mean_pair = mean_dwell_0_s + mean_dwell_1_s
    m = 2 * (int(n * dt / mean_pair * 1.3) + 2 * burn_in + 10)
    while True:
        d = np.empty(m)
        d[0::2] = rng.gamma(shape, mean_dwell_0_s / shape, size=d[0::2].size)
        d[1::2] = rng.gamma(shape, mean_dwell_1_s / shape, size=d[1::2].size)
        edges = np.cumsum(d)
        t0 = edges[burn_in - 1] + rng.uniform(0.0, edges[2 * burn_in - 1] - edges[burn_in - 1])
        if edges[-1] > t0 + n * dt:
            k = np.searchsorted(edges, t0 + np.arange(n) * dt, side="right")
            return (k & 1).astype(np.uint8)
        m *= 2
