"""An adaptive point whose chunks disagree on the regime is decided on its whole stored record.

The chunk verdicts are given (as a sweep would have stored them); the waveforms are Langevin paths
whose regime is known by construction (tests/test_regime.py): a bistable double well and a single
well. The pooled verdict must follow the waveforms, not the chunk labels."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from noisecell.sweep.runner import _adaptive_row
from noisecell.sweep.store import Store
from noisecell.waveform import Waveform

from test_regime import DT, double_well, langevin


def _store_chunks(tmp_path, x, n_chunks):
    st = Store(tmp_path / "sweep")
    st.waves.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(x, n_chunks)):
        t = np.arange(len(part)) * DT
        st.write_waveform(f"job.c{k}", Waveform(t, {"v_out": part}, meta={
            "noise_step_s": DT, "readout": {"mode": "single", "threshold_v": 0.0}}))
    return st


def _chunk_rows(n):
    labels = ["bistable", "single_peaked"]
    return [{"job_id": "job", "chunk": k, "simulated_s": 1.0, "n_samples": 1000, "n_ones": 500,
             "regime": labels[k % 2]} for k in range(n)]


def _fake_pool(rows):
    # the regime logic under test needs none of the pooled estimates: a stand-in with the two
    # members _adaptive_row reads
    return SimpleNamespace(to_row=lambda: {"simulated_s": float(len(rows))}, p1_ci_halfwidth=None)


def _row():
    return {"job_id": "job", "status": "ok"}


def test_mixed_chunks_of_a_double_well_are_bistable(tmp_path, monkeypatch):
    import noisecell.sweep.runner as R
    monkeypatch.setattr(R._ad, "pool", _fake_pool)
    st = _store_chunks(tmp_path, langevin(double_well(3.0), 200_000, 1.0, seed=3), 2)
    row = _adaptive_row(_row(), _chunk_rows(2), st)
    assert row["regime"] == "bistable", row["regime_reasons"]
    assert row["regime_chunks"] == "mixed:bistable,single_peaked"
    assert row["regime_reasons"].startswith("whole record (2 chunks")


def test_mixed_chunks_of_a_single_well_are_single_peaked(tmp_path, monkeypatch):
    import noisecell.sweep.runner as R
    monkeypatch.setattr(R._ad, "pool", _fake_pool)
    st = _store_chunks(tmp_path, langevin(lambda x: x + x ** 3, 200_000, 0.0, seed=4), 2)
    row = _adaptive_row(_row(), _chunk_rows(2), st)
    assert row["regime"] == "single_peaked", row["regime_reasons"]


def test_without_stored_waveforms_the_label_stays_mixed(tmp_path, monkeypatch):
    import noisecell.sweep.runner as R
    monkeypatch.setattr(R._ad, "pool", _fake_pool)
    st = Store(tmp_path / "empty")
    row = _adaptive_row(_row(), _chunk_rows(2), st)
    assert row["regime"] == "mixed:bistable,single_peaked"
