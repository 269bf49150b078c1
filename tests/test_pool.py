"""One estimate type for single streams and pooled chunks (issue 13, item 1/6).

* a chunk row written to the store and pooled alone is exactly ``analyze_stream`` of its bits;
* pooled chunks get the analysis module's resolved-gated rate CIs, dwell goodness of fit and
  ``markov_consistent`` (the adaptive path used to bypass them);
* the model fit's non-Markov filter acts on a sweep table holding a pooled non-Markov point;
* the flat row ↔ object round trip is lossless.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from noisecell.analysis import analyze_stream
from noisecell.analysis.estimates import CI, StreamEstimates
from noisecell.analysis.pool import SegmentCounts, pool_segments
from noisecell.analysis.synthetic import markov_chain, modulated_telegraph, telegraph
from noisecell.io import BitStream
from noisecell.sweep.adaptive import pool

DT = 1e-9


def _store_roundtrip(row: dict) -> dict:
    """Through Parquet exactly as the sweep store writes and reads a chunk row."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row]), buf)
    return pq.read_table(io.BytesIO(buf.getvalue())).to_pylist()[0]


def _chunk_row(bits: np.ndarray, k: int = 0) -> dict:
    est = analyze_stream(BitStream(bits=bits, sample_period_s=DT, source="job", meta={}))
    return _store_roundtrip({"job_id": "job", "chunk": k, "simulated_s": bits.size * DT,
                             **SegmentCounts.from_bits(bits).to_row(), "sample_period_s": DT, **est.to_row()})


def test_one_pooled_chunk_is_analyze_stream_of_its_bits():
    rng = np.random.default_rng(5)
    bits = telegraph(300_000, DT, 1.5e7, 2.5e7, rng)
    direct = analyze_stream(BitStream(bits=bits, sample_period_s=DT, source="job", meta={}))
    pooled = pool([_chunk_row(bits)])
    # every field is the analysis module's, computed again from the stored sufficient statistics
    # (counts, dwell histogram) and the stored ACF/PSD figures: equal, not approximately equal
    d, p = direct.to_dict(), pooled.to_dict()
    assert set(d) == set(p)
    diff = {k: (d[k], p[k]) for k in d if d[k] != p[k]}
    assert diff == {}
    assert pooled.chunks == 1 and pooled.markov_consistent is direct.markov_consistent


def test_row_roundtrip_is_lossless():
    rng = np.random.default_rng(6)
    est = analyze_stream(BitStream(bits=markov_chain(50_000, 0.3, 0.9, rng), sample_period_s=DT,
                                   source="s", meta={"digitization": {"threshold_v": 0.0, "readout": "single"}}))
    assert StreamEstimates.from_row(_store_roundtrip(est.to_row())) == est
    # and through a pandas table (NaN for missing values), as the report reads a sweep
    row = pd.DataFrame([est.to_row()]).to_dict("records")[0]
    assert StreamEstimates.from_row(row) == est
    assert isinstance(est.p1_ci95, CI) and est.p1_ci95.level == 0.95
    assert est.p1_ci95.lo < est.p1 < est.p1_ci95.hi
    lo, hi = est.rate_up_hz_ci95          # a CI unpacks like a pair
    assert est.rate_up_log_se == pytest.approx((math.log(hi) - math.log(lo)) / (2 * 1.959963984540054))


def test_pooled_rates_are_gated_on_resolution():
    """i.i.d. bits: the lag-1 correlation is not significantly > 0, so the switching may be faster than
    the sampling and the analysis gives no rate and no rate CI. The old adaptive pool gave gamma CIs
    (from the flip count alone) for such a point."""
    rng = np.random.default_rng(7)
    rows = [_chunk_row((rng.random(20_000) < 0.4).astype(np.uint8), k) for k in range(4)]
    P = pool(rows)
    assert P.chunks == 4 and P.rates_resolved is False
    assert P.rate_up_hz is None and P.rate_up_hz_ci95 is None and P.rate_up_log_se is None
    # lag-1 correlation of i.i.d. bits: sd 1/sqrt(80k) = 0.0035; 5 sd = 0.018
    assert abs(P.lag1_autocorr) < 0.018


def test_pooled_chunks_keep_the_markov_checks():
    """Chunks of a Markov telegraph pool to a Markov point whose rates cover the truth; chunks of a
    rate-modulated telegraph (dwells a mixture of exponentials) pool to a non-Markov point."""
    rng = np.random.default_rng(8)
    ku, kd = 1.0e7, 2.0e7
    rows = [_chunk_row(telegraph(200_000, DT, ku, kd, rng), k) for k in range(4)]
    good = pool(rows)
    # 800k samples at (ku+kd)·dt = 0.03: ≈ 5300 up transitions, ln-SE ≈ 0.014; the 95 % CI misses the
    # truth with probability 5 % per rate (seeded: a fixed draw, checked once)
    truth_u = ku  # the sampled telegraph's embedding rates are the continuous-time rates
    assert good.rates_resolved and good.rate_up_hz_ci95.contains(truth_u)
    assert good.rate_down_hz_ci95.contains(kd)
    # 6 % margin = 4 ln-SE: the point estimates, not only their intervals
    assert good.rate_up_hz == pytest.approx(ku, rel=0.06) and good.rate_down_hz == pytest.approx(kd, rel=0.06)
    # dwell GoF on the pooled histogram: a Markov point fails it with probability ≤ 2e-3 (two tests at 1e-3)
    assert good.markov_dwells_ok is True and good.markov_consistent is True
    # complete dwells of independent chunks add (each chunk's first and last dwell are censored)
    assert good.n_dwells_0 == sum(r["n_dwells_0"] for r in rows)
    # rates ×3 and ÷3 alternately (switching at 50 kHz): dispersion index ≈ 3, GoF p ≈ 0 (see
    # tests/test_analysis_rates.py for the single-stream version)
    bad = pool([_chunk_row(modulated_telegraph(250_000, DT, ku, kd, 3.0, 5e4, rng), k) for k in range(4)])
    assert bad.markov_dwells_ok is False and bad.markov_consistent is False
    assert bad.dwell_dispersion_0 > 1.5


def _pooled_point(bias_v: float, bits_chunks: list[np.ndarray]) -> dict:
    est = pool([_chunk_row(b, k) for k, b in enumerate(bits_chunks)])
    return {"corner": "tt", "temp_c": 27.0, "vdd_v": 0.06, "bias_v": bias_v, "status": "ok",
            "mismatch_instance": -1, **est.to_row()}


def test_non_markov_filter_acts_on_a_pooled_sweep():
    """The model fit leaves out points the analysis flags as non-Markov. With pooled (adaptive) points
    the flag used to be missing, so the filter was silently off."""
    from noisecell.model.fit import fit_rates

    rng = np.random.default_rng(9)
    k0, s = 1.5e7, 2e-3
    rows = []
    for i, b in enumerate((-3e-3, -1.5e-3, 0.0, 1.5e-3, 3e-3)):
        ku, kd = k0 * math.exp(b / (2 * s)), k0 * math.exp(-b / (2 * s))
        if i == 2:
            chunks = [modulated_telegraph(250_000, DT, ku, kd, 3.0, 5e4, rng) for _ in range(3)]
        else:
            chunks = [telegraph(250_000, DT, ku, kd, rng) for _ in range(3)]
        rows.append(_pooled_point(b, chunks))
    df = pd.DataFrame(rows)
    assert df["markov_consistent"].tolist() == [True, True, False, True, True]
    rm, det = fit_rates(df)
    assert det["n_excluded_non_markov"] == 1 and not det["used"][2] and det["used"].sum() == 4
    _, det_all = fit_rates(df, require_markov=False)
    assert det_all["n_excluded_non_markov"] == 0 and det_all["used"].sum() == 5
    # the slope of ln k_up is 1/(2 s) = 250 /V; 4 points, each ln k with SE ≈ 0.02 over ±3 mV:
    # slope SE ≈ 0.02 / (3e-3 · sqrt(2.5)) ≈ 4 /V; 25 /V is > 5 SE
    assert rm["ln_k_up"]["slope_per_v"] == pytest.approx(1 / (2 * s), abs=25)


def test_pool_segments_needs_matching_inputs():
    with pytest.raises(ValueError):
        pool_segments([], [])
