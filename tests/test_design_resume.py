"""A resumed characterisation whose pilot moved re-plans its design sweeps: the design's one-point
sweeps (``design-jNNN``, characterize-owned) adopt the new job's spec instead of refusing the folder
as "a sweep of a different spec" (which suggested --update-spec, an option characterize lacks), and a
job whose record is already stored is not simulated again."""
from __future__ import annotations

import json

from noisecell.design import DesignJob
from noisecell.design_runner import SweepRunner
from noisecell.sweep.store import Store


def _runner(out):
    return SweepRunner(cell="pbit_generic", out_dir=out, shared={"noise_step": "0.5ns"}, corner="tt",
                       temp_c=27.0, workers=1)


def _run(out, job):
    r = _runner(out)
    try:
        got = r.submit(0, job).result()
    finally:
        r.close()
    return got, r.results[-1][1]


def test_design_job_folder_of_a_moved_pilot_is_replanned(tmp_path):
    first = DesignJob(0.0, 1e-6, 11)
    got, res = _run(tmp_path, first)
    assert got is not None and res.ran == 1
    # resume with the pilot moved: job 0 is now at another bias
    moved = DesignJob(2e-3, 1e-6, 11)
    got, res = _run(tmp_path, moved)
    assert got is not None and got.bias_v == 2e-3 and res.ran == 1 and res.done == 1
    manifest = json.loads(Store(tmp_path / "design-j000").manifest_path.read_text())
    assert [j["bias_v"] for j in manifest["jobs"]] == [2e-3]
    # and back: the first record is still stored (content-addressed job ids), so nothing runs again
    got, res = _run(tmp_path, first)
    assert got is not None and got.bias_v == 0.0 and res.ran == 0 and res.skipped == 1
