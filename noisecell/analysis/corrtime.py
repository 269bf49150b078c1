"""The bit stream's measured autocorrelation time at V50, from a condition's records.

The rate model's τ = 1/(k_up + k_down) is the *dwell* (two-state Markov) time: what a sampler that
draws exponential dwells needs. A cell whose dwells are more regular than exponential (a thresholded,
low-passed noise node cannot flip back at once) decorrelates faster than that: its ACF falls below
exp(−t/τ) and, for gamma-distributed dwells of shape m, its integrated time is τ/m exactly (alternating
renewal process: ∫C dt = (μ0²σ1² + μ1²σ0²)/(μ0+μ1)³). Published cells quote the measured
autocorrelation time, so the datasheet states both measured definitions next to the dwell τ:

* ``exp_fit``: the 1/e time of an exponential fitted to the ACF (:func:`.autocorr.fit_exponential`);
* ``iact``: the integrated autocorrelation time (Sokal's window) converted with the exponential
  identity (:func:`.autocorr.tau_from_tau_int`), the time that sets a sampler's effective sample size.

For a Markov stream all three agree. Each record gives its own estimate; pooled values are
sample-weighted means with a Student-t interval from the scatter *between* records (each record's own
error estimate is not used: the IACT's Madras–Sokal SE overstates it by 15–25 % on synthetic telegraphs
and the exponential fit has none), so the interval is as honest as the records are independent. The
datasheet uses :func:`scaled_to_v50` (τ(V50) × the records' measured/dwell ratio, records over ±1.5
scales); :func:`near_v50` pools the records within ±0.5 scales directly, for tables without a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: records within this many sigmoid scales of V50 (P(1) 0.38–0.62) enter the pooled figures
NEAR_V50_SCALES = 0.5
#: fewest records for a between-record interval
MIN_RECORDS = 3

DEFINITIONS = {"exp_fit": "1/e time of an exponential fitted to the ACF",
               "iact": "integrated autocorrelation time (Sokal window), as an exponential time"}


@dataclass(frozen=True)
class PooledTime:
    """A pooled correlation time: value and 95 % CI (s), from ``n_records`` records of ``duration_s`` in all."""

    definition: str
    value_s: float
    ci95_s: tuple[float, float]
    n_records: int
    duration_s: float

    def summary(self) -> str:
        return (f"{DEFINITIONS[self.definition]}: {self.value_s * 1e9:.4g} ns "
                f"[{self.ci95_s[0] * 1e9:.4g}, {self.ci95_s[1] * 1e9:.4g}] from {self.n_records} records")


def pooled_time(values_s, weights, definition: str, duration_s: float = float("nan")) -> PooledTime | None:
    """Weighted mean of per-record times (s) with a t-interval from their scatter; None below
    :data:`MIN_RECORDS` usable (finite, positive) values. ``weights``: e.g. samples per record."""
    v = np.asarray(values_s, float)
    w = np.asarray(weights, float)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(w) & (w > 0)
    v, w = v[ok], w[ok]
    n = v.size
    if n < MIN_RECORDS:
        return None
    w = w / w.sum()
    mean = float(np.sum(w * v))
    # variance of a weighted mean of independent values with a common variance, from the residuals
    # (reduces to s²/n for equal weights)
    var = float(np.sum(w**2 * (v - mean) ** 2)) * n / (n - 1)
    half = float(stats.t.ppf(0.975, n - 1)) * math.sqrt(var)
    return PooledTime(definition, mean, (max(mean - half, 0.0), mean + half), n, duration_s)


def _within(points, v50_v: float, scale_v: float, scales: float):
    """The rows within ``scales`` sigmoid scales of V50, their weights (samples) and total duration (s)."""
    sel = points[(points["bias_v"] - v50_v).abs() <= scales * abs(scale_v)]
    return sel, sel["n_samples"].astype(float).to_numpy(), float(np.nansum(sel["duration_s"].astype(float)))


def near_v50(points, v50_v: float, scale_v: float, *, scales: float = NEAR_V50_SCALES) -> dict[str, PooledTime | None]:
    """Both measured autocorrelation times from the rows of a per-point table (columns ``bias_v``,
    ``n_samples``, ``duration_s``, ``acf_tau_exp_fit_s``, ``acf_tau_iact_s``) within ``scales`` sigmoid
    scales of V50 (V); the rows are taken as given (select the condition, role and regime first)."""
    sel, w, dur = _within(points, v50_v, scale_v, scales)
    return {d: pooled_time(sel[f"acf_tau_{d}_s"].astype(float).to_numpy(), w, d, dur) for d in DEFINITIONS}


#: records within this many sigmoid scales of V50 enter :func:`scaled_to_v50` (P(1) 0.18–0.82)
RATIO_SCALES = 1.5


def scaled_to_v50(points, tau_at, tau_v50_s: float, tau_v50_ci_s: tuple[float, float], v50_v: float,
                  scale_v: float, *, scales: float = RATIO_SCALES) -> dict[str, PooledTime | None]:
    """Both measured autocorrelation times *at* V50, from every record within ``scales`` sigmoid scales:
    τ(V50) × the mean ratio of each record's measured time to the rate model's dwell τ at its own bias
    (``tau_at``: bias in V → τ in s). A design puts few records at V50 itself (the flanks carry the
    slope information: pbit's demo has 2 bistable records within ±0.5 scales), while the ratio — how much
    faster the stream decorrelates than its dwells — is a property of the dwell shape that varies far
    less with bias than τ does. Interval: the ratio's t-interval (:func:`pooled_time`) and τ(V50)'s CI,
    relative half-widths added in quadrature. Columns as :func:`near_v50`."""
    sel, w, dur = _within(points, v50_v, scale_v, scales)
    model_tau = np.array([tau_at(float(b)) for b in sel["bias_v"]], float)
    rel_tau = (tau_v50_ci_s[1] - tau_v50_ci_s[0]) / (2 * tau_v50_s)
    out: dict[str, PooledTime | None] = {}
    for d in DEFINITIONS:
        r = pooled_time(sel[f"acf_tau_{d}_s"].astype(float).to_numpy() / model_tau, w, d, dur)
        if r is None or not math.isfinite(rel_tau):
            out[d] = None
            continue
        rel = math.hypot((r.ci95_s[1] - r.ci95_s[0]) / (2 * r.value_s), rel_tau)
        v = tau_v50_s * r.value_s
        out[d] = PooledTime(d, v, (max(v * (1 - rel), 0.0), v * (1 + rel)), r.n_records, dur)
    return out
