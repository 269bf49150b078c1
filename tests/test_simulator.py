"""The simulator backend: settings, retry policy and its record, crash reruns, batch timeouts, host pool."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from noisecell.errors import SimulationError, SimulationTimeout
from noisecell.simulate import SimulationJob
from noisecell.simulator import HostPool, SimHost, host as host_mod, run_batch
from noisecell.simulator.retry import (CRASH, ERROR, INPUT, OK, RETRY_LADDER, TIMEOUT, Attempt, RetryRecord,
                                       next_rung, run_with_retries)
from noisecell.simulator.settings import ngspice_settings, spiceinit_text, switch_commands

ENTRY = "noisecell.simulator.session:run_payload"


def _rc_job(seed: int = 3) -> SimulationJob:
    # 10 000 noise steps of an RC node: ~0.1-0.5 s of ngspice, long enough to be killed mid-run
    return SimulationJob(cell_name="rc", template="R1 n 0 1k\nC1 n 0 1p\n", params={}, technology="generic",
                         corner="tt", temp_c=27.0, duration_s=1e-6, noise_step_s=1e-10, seed=seed,
                         outputs={"v_out": "n"})


def test_settings_are_per_technology_and_always_single_threaded():
    assert ngspice_settings("generic") == ("set num_threads=1",)
    assert "set ngbehavior=hsa" in ngspice_settings("sky130") and ngspice_settings("sky130")[0] == "set num_threads=1"
    # trim used to write sky130's settings for every technology
    assert "hsa" not in spiceinit_text("generic") and "num_threads=1" in spiceinit_text("generic")
    # a session switching from sky130 to generic drops sky130's variables; a fresh one sets only its own
    back = switch_commands("sky130", "generic")
    assert "unset ngbehavior" in back and "unset ng_nomodcheck" in back and "set num_threads=1" in back
    assert switch_commands(None, "generic") == ["set num_threads=1"]
    assert not any(c.startswith("unset") for c in switch_commands("sky130", "sky130"))


@pytest.mark.parametrize("outcomes, retries, rungs", [
    ((OK,), 2, (0,)),
    ((CRASH, OK), 2, (0, 0)),                    # a crash reruns the same job: same options
    ((CRASH, CRASH, OK), 2, (0, 0, 1)),          # a rung that keeps crashing climbs the ladder
    ((ERROR, OK), 2, (0, 1)),                    # non-convergence climbs
    ((ERROR, CRASH, OK), 2, (0, 1, 1)),
    ((ERROR, ERROR, ERROR), 2, (0, 1, 2)),       # retries = 2: rungs 0..2, then give up
    ((ERROR,), 0, (0,)),
    ((TIMEOUT,), 3, (0,)),                       # a hang is not retried
    ((INPUT,), 3, (0,)),
])
def test_next_rung_is_a_function_of_the_failure_history(outcomes, retries, rungs):
    history: tuple[Attempt, ...] = ()
    for outcome in outcomes:
        rung = next_rung(history, retries)
        history += (Attempt(rung, outcome),)
    assert tuple(a.rung for a in history) == rungs
    assert next_rung(history, retries) is None      # the scripted history is complete
    rec = RetryRecord(history).to_row()
    assert rec["attempts"] == len(outcomes) and rec["retry_rung"] == rungs[-1]
    assert json.loads(rec["retry_options_json"]) == RETRY_LADDER[rungs[-1]]
    assert rec["retry_history"] == ",".join(outcomes)


def _fresh_run(job):
    h = SimHost()
    try:
        return run_with_retries(h, {"entry": ENTRY, "job": job}, timeout_s=120, retries=2, name="ref")
    finally:
        h.close()


@pytest.mark.timeout(300)
def test_crashed_host_reruns_the_same_job_and_records_it(monkeypatch):
    job = _rc_job()
    ref, ref_rec = _fresh_run(job)
    assert ref_rec.history == OK
    h = SimHost()
    crashed = []
    real_send = host_mod._send

    def send_then_segfault(f, obj):
        real_send(f, obj)
        if isinstance(obj, dict) and "job" in obj and not crashed:
            crashed.append(h.proc.pid)
            os.kill(h.proc.pid, signal.SIGSEGV)     # ngspice "crashes" during the first attempt

    monkeypatch.setattr(host_mod, "_send", send_then_segfault)
    try:
        wf, rec = run_with_retries(h, {"entry": ENTRY, "job": job}, timeout_s=120, retries=2, name="crash")
    finally:
        h.close()
    assert crashed and rec.history == "crash,ok" and rec.rung == 0 and rec.solver_options == {}
    assert "died" in rec.attempts[0].error
    # the rerun is the uninterrupted job: bit-identical (before, a crash was retried with method=gear)
    assert wf.meta["options"] == {} and np.array_equal(wf.outputs["v_out"], ref.outputs["v_out"])


class _FailFirst:
    """A host whose first attempt reports non-convergence; later attempts run on the real host."""

    def __init__(self):
        self.real = SimHost()
        self.calls = 0

    def run(self, payload, timeout_s, name="job", cpu_limit_s=None):
        self.calls += 1
        if self.calls == 1:
            raise SimulationError(f"{name}: ngspice did not converge (timestep too small)")
        return self.real.run(payload, timeout_s, name=name, cpu_limit_s=cpu_limit_s)

    def restart(self):
        self.real.restart()

    def close(self):
        self.real.close()


@pytest.mark.timeout(300)
def test_solver_retry_is_recorded_and_reproducible():
    job = _rc_job(seed=4)
    results = []
    for _ in range(2):
        h = _FailFirst()
        try:
            results.append(run_with_retries(h, {"entry": ENTRY, "job": job}, timeout_s=120, retries=2, name="nc"))
        finally:
            h.close()
    (a, ra), (b, rb) = results
    assert ra.history == rb.history == "error,ok" and ra.rung == 1
    assert ra.to_row()["retry_options_json"] == json.dumps({"method": "gear"})
    assert a.meta["options"] == {"method": "gear"}            # the result says which solver made it
    assert np.array_equal(a.outputs["v_out"], b.outputs["v_out"])   # same history -> same numbers
    # and it is exactly the job run with the rung's options from the start
    import dataclasses

    direct, _ = _fresh_run(dataclasses.replace(job, options={"method": "gear"}))
    assert np.array_equal(a.outputs["v_out"], direct.outputs["v_out"])


@pytest.mark.timeout(120)
def test_batch_run_is_killed_at_its_timeout(tmp_path):
    # 1e12 time steps: a run that would take days
    text = "hang\nR1 n 0 1k\nC1 n 0 1p\nI1 0 n DC 1m\n.control\ntran 1f 1 0 1f\nquit\n.endc\n.end\n"
    t0 = time.monotonic()
    with pytest.raises(SimulationTimeout, match="no result after 2 s"):
        run_batch(text, tmp_path, technology="generic", timeout_s=2, name="hang test")
    assert time.monotonic() - t0 < 60
    assert "hsa" not in (tmp_path / ".spiceinit").read_text()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps and "run.cir" not in ps


@pytest.mark.timeout(300)
def test_pool_keeps_its_hosts_across_runs():
    with HostPool(workers=1, warm_up="noisecell.simulator.host:_package_root") as pool:
        first = pool.run({"call": "os:getpid"}, timeout_s=120)
        second = pool.run({"call": "os:getpid"}, timeout_s=120)
        assert first["ok"] and second["ok"] and first["result"] == second["result"]
        from noisecell.sweep.executors import LocalExecutor

        LocalExecutor(pool=pool).close()                   # a borrowed pool outlives the executor
        third = pool.run({"call": "os:getpid"}, timeout_s=120)
        assert third["result"] == first["result"]
    with pytest.raises(ProcessLookupError):
        os.kill(first["result"], 0)                          # closing the pool stops its hosts


@pytest.mark.timeout(400)
def test_sweeps_share_a_pool_across_parts(tmp_path):
    # what a characterisation does with its parts: one HostPool, several sweeps, the same hosts
    from noisecell.sweep import load, run_sweep
    from noisecell.sweep.spec import parse_spec

    spec = parse_spec({"cell": "pbit_generic", "duration": "0.2us", "grid": {"bias": [0.0]}})
    with HostPool(workers=1) as pool:
        a = run_sweep(spec, tmp_path / "a", pool=pool, progress=False)
        b = run_sweep(spec, tmp_path / "b", pool=pool, progress=False)
        assert a.done == b.done == 1 and len(pool.hosts) == 1
        ra, rb = load(tmp_path / "a").iloc[0], load(tmp_path / "b").iloc[0]
        assert ra["host"] == rb["host"]                      # same host process served both parts
        assert ra["p1"] == rb["p1"] and ra["retry_history"] == "ok" and ra["retry_rung"] == 0
        assert pool.hosts[0].proc is not None and pool.hosts[0].proc.poll() is None   # still alive
