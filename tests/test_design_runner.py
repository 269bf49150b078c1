"""design_runner.record_counts: the start-up settling of a record is not counted as transitions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from noisecell.analysis.runs import scan_runs
from noisecell.analysis.synthetic import telegraph
from noisecell.design_runner import SETTLE_SAMPLES, record_counts
from noisecell.model.ratefit import PointCounts, fit_rates_joint

# truth as in tests/test_model_ratefit.py: V50 +0.5 mV, scale 3 mV, τ(V50) 250 ns, sampled at τ/50
V50, SCALE, TAU50, SLOPE_SUM = 0.5e-3, 3e-3, 250e-9, 50.0
DT = TAU50 / 50
BIASES = V50 + SCALE * np.linspace(-2.2, 2.2, 7)


def rates(v):
    x = v - V50
    k50 = 1 / (2 * TAU50)
    return (k50 * math.exp(0.5 * (SLOPE_SUM + 1 / SCALE) * x), k50 * math.exp(0.5 * (SLOPE_SUM - 1 / SCALE) * x))


def with_startup_chatter(bits: np.ndarray, rng, n_pairs: int = 6) -> np.ndarray:
    """The record as the simulator gives it: it starts at the metastable point, and the readout
    chatters across the threshold for the first ~50 samples (runs of 1-4 samples, as on pbit)."""
    b = bits.copy()
    pos = 0
    for _ in range(n_pairs):
        for _ in range(2):
            run = int(rng.integers(1, 5))
            b[pos:pos + run] = 1 - b[pos + run]
            pos += run
        pos += int(rng.integers(0, 3))
    return b


def test_startup_chatter_is_not_counted():
    # 7 biases x 8 records of 4000 samples (80 τ(V50) each, ~1760 transitions in all). Each record
    # starts with 6 glitch pairs (12 spurious transitions on top of ~31 real ones). Counted, they put
    # τ(V50) 20 % low (200 ns), far outside its ±4.5 % profile interval (asserted below on the same
    # records, so the scenario can tell the cut from no cut); cut, the 95 % intervals must hold the
    # truth (each misses with probability 5 %; fixed seed, deterministic).
    rng = np.random.default_rng(41)
    kept, raw = [], []
    for v in BIASES:
        ku, kd = rates(v)
        for _ in range(8):
            b = with_startup_chatter(telegraph(4000, DT, ku, kd, rng), rng)
            kept.append(record_counts(b, DT, v))
            raw.append(PointCounts.from_runstats(v, DT, scan_runs(b)))
    f = fit_rates_joint(kept, allow_curvature=False)
    assert f.tau_v50.lo <= TAU50 <= f.tau_v50.hi, f.summary()
    assert f.v50.lo <= V50 <= f.v50.hi and f.scale.lo <= SCALE <= f.scale.hi, f.summary()
    bad = fit_rates_joint(raw, allow_curvature=False)
    assert not bad.tau_v50.lo <= TAU50 <= bad.tau_v50.hi, "the scenario must bias an uncut fit"


def test_record_counts_keeps_short_records_whole():
    rng = np.random.default_rng(2)
    b = telegraph(2 * SETTLE_SAMPLES - 1, DT, 1e6, 1e6, rng)
    p = record_counts(b, DT, 0.0)
    assert p.n_samples == b.size
    b = telegraph(5 * SETTLE_SAMPLES, DT, 1e6, 1e6, rng)
    p = record_counts(b, DT, 0.0)
    assert p.n_samples == b.size - SETTLE_SAMPLES
    assert p.n_ones == int(b[SETTLE_SAMPLES:].sum())
    # the record's length is what the design compares with its chunks (a 10 µs record is a 10 µs
    # chunk; with the cut samples left out, trusted() and the trust region took it for a shorter one)
    assert p.simulated_s == pytest.approx(b.size * DT, rel=1e-12)
