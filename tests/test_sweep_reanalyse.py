"""Resuming a sweep folder after an analysis change: the stored records are re-analysed by the current
code from their stored waveforms, not simulated again, and no row of the old analysis is read.

A job id covers the analysis code (sweep.jobs.analysis_settings: a hash of the result-shaping
modules), so after a change every stored row is of another id. The change is made here in the driver
only (its code fingerprint, and for the second test the settling cut): a job sent to a simulator host
would then fail the host's "different noisecell code" check, so a resumed run that simulated anything
again shows failed jobs; one that re-analyses shows none and 0 s simulated. Real ngspice runs of
pbit_generic (6 records of 1 µs)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisecell.sweep import jobs as J
from noisecell.sweep import run_sweep
from noisecell.sweep.store import PROVENANCE_COLUMNS, Store

SPEC = """\
cell = "pbit_generic"
duration = "1us"
noise_step = "1ns"
seed = 5
timeout = 120
[grid]
bias = { start = -0.002, stop = 0.002, num = 3 }
vdd = [0.055, 0.06]
"""
N_JOBS = 6
#: columns that name the job (its id covers the analysis code) or how the row was made
ID_COLUMNS = ("job_id", "index")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    d = tmp_path_factory.mktemp("reanalyse")
    spec = d / "sweep.toml"
    spec.write_text(SPEC)
    out = d / "first"
    res = run_sweep(spec, out, workers=1, executor="local", progress=False)
    assert res.ok and res.done == N_JOBS
    return spec, out, res


def _by_sim(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in df.columns if c not in PROVENANCE_COLUMNS + ID_COLUMNS]
    return df[cols].sort_values("sim_job_id").reset_index(drop=True)


def _resume_with_other_code(first, tmp_path, monkeypatch, settle=None):
    spec, out, res = first
    again = tmp_path / "again"
    shutil.copytree(out, again)
    monkeypatch.setattr(J, "source_fingerprint", lambda: "other-analysis-code")
    if settle is not None:
        import noisecell.simulate as S

        monkeypatch.setattr(S, "SETTLE_SAMPLES", settle)
    return run_sweep(spec, again, workers=1, executor="local", progress=False), again


def test_resume_after_an_analysis_change_reanalyses_the_stored_records(first, tmp_path, monkeypatch):
    spec, out, res0 = first
    res, again = _resume_with_other_code(first, tmp_path, monkeypatch)
    assert res.failed == 0 and res.done == N_JOBS and res.reanalysed == N_JOBS, res.summary()
    assert res.simulated_s == 0 and res.skipped == 0
    new, old = res.dataframe, res0.dataframe
    assert not set(new["job_id"]) & set(old["job_id"])  # every id changed: no old row is read
    assert set(new["reanalysed_from"]) == set(old["job_id"])
    # the same analysis of the same records: every non-provenance column equal to the first run's
    pd.testing.assert_frame_equal(_by_sim(new), _by_sim(old), check_dtype=False)
    st = Store(again)
    for _, r in new.iterrows():
        a, _ = st.read_bits(r["job_id"])
        b, _ = st.read_bits(r["reanalysed_from"])
        assert np.array_equal(a, b)


def test_the_rows_are_those_of_the_current_analysis(first, tmp_path, monkeypatch):
    """With the settling cut changed too, each re-analysed row is the current code's analysis of the
    stored record (settle_samples 300, and its flips counted after the cut), not the stored row."""
    from noisecell.analysis.runs import scan_runs

    res, again = _resume_with_other_code(first, tmp_path, monkeypatch, settle=300)
    assert res.failed == 0 and res.reanalysed == N_JOBS and res.simulated_s == 0, res.summary()
    df = res.dataframe
    assert (df["settle_samples"] == 300).all()
    old = first[2].dataframe.set_index("job_id")
    st = Store(again)
    for _, r in df.iterrows():
        bits, _ = st.read_bits(r["job_id"])
        rs = scan_runs(bits[300:])
        assert r["n_up"] + r["n_down"] == rs.n_up + rs.n_down
        assert old.loc[r["reanalysed_from"], "settle_samples"] == 100


def test_a_row_without_its_waveform_is_simulated_again(first, tmp_path, monkeypatch):
    """No stored waveform (keep_waveforms = false, or deleted): that record is simulated again, which
    here the host refuses (its code differs from the patched driver's), so it shows as failed."""
    spec, out, res0 = first
    gone = res0.dataframe["job_id"].iloc[0]
    src = tmp_path / "src"
    shutil.copytree(out, src)
    (src / "waves" / f"{gone}.npz").unlink()
    res, _ = _resume_with_other_code((spec, src, res0), tmp_path, monkeypatch)
    assert res.reanalysed == N_JOBS - 1 and res.failed == 1, res.summary()
    assert "different noisecell code" in res.failures[0][1]
