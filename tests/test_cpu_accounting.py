"""Simulator CPU accounting: a host's CPU time survives its processes (killed at a timeout, restarted),
each task carries its own CPU cost, and a design's figure is its own jobs' sum.

Truth: the host process's own ``time.process_time()`` (clock_gettime, independent of /proc and wait4),
read inside the host before and after a CPU-bound payload. Tolerance: /proc/PID/stat counts whole clock
ticks (1/SC_CLK_TCK s, 10 ms on Linux), one tick per process per reading.

Before the fix the pool-level figure (design_runner.host_cpu_seconds) read only the live processes, so
a restarted or killed host lost its share: a design's "CPU-s" (a difference of two such readings) came
out wrong, even negative (a conditions run logged "-136 CPU-s").
"""
from __future__ import annotations

import math
import os
from types import SimpleNamespace

import pandas as pd
import pytest

from noisecell.design_runner import host_cpu_seconds, sweeps_cpu_seconds
from noisecell.simulator import HostPool

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
#: a CPU-bound stdlib call in the host: PBKDF2 iterations (~0.4 s of CPU here)
BURN = {"call": "hashlib:pbkdf2_hmac", "args": ["sha256", b"pw", b"salt", 2_000_000]}
CPU_NOW = {"call": "time:process_time"}


def _burn_once(pool) -> tuple[float, float, float]:
    """(host CPU of the burn by the host's own clock, the task's cpu_s, the host's CPU so far by its clock)."""
    a = pool.run(CPU_NOW, timeout_s=120)
    b = pool.run(BURN, timeout_s=120)
    c = pool.run(CPU_NOW, timeout_s=120)
    assert a["ok"] and b["ok"] and c["ok"], (a, b, c)
    return c["result"] - a["result"], b["cpu_s"], c["result"]


@pytest.mark.timeout(300)
def test_host_cpu_survives_restarts_and_timeouts():
    with HostPool(workers=1, warm_up="os:getpid") as pool:
        burned, own, totals, last = [], [], [], 0.0
        for _ in range(3):
            b, cpu_task, total_here = _burn_once(pool)
            burned.append(b)
            own.append(cpu_task)
            totals.append(total_here)
            now = host_cpu_seconds(pool)
            assert now >= last - 1e-9          # never decreases
            last = now
            pool.hosts[0].restart()            # the next task starts a fresh process
        assert min(burned) > 20 * TICK, burned   # the payload burns measurable CPU
        for b, c in zip(burned, own):
            # the task's figure holds the burn (it may also hold the host's start-up)
            assert c >= b - 2 * TICK, (b, c)
        # all three processes are counted: their own clocks' totals, to a tick per reading
        after = host_cpu_seconds(pool)
        assert after >= sum(totals) - 2 * len(totals) * TICK, (after, totals)
        # a task killed at its timeout: its CPU is counted, nothing is lost
        before = host_cpu_seconds(pool)
        r = pool.run({"call": "hashlib:pbkdf2_hmac", "args": ["sha256", b"pw", b"salt", 2_000_000_000]}, timeout_s=1.0)
        assert not r["ok"] and "no result after" in r["error"], r
        assert r["cpu_s"] >= 0
        assert host_cpu_seconds(pool) >= before + r["cpu_s"] - 1e-9
        assert host_cpu_seconds(pool) >= before


def test_design_cpu_is_the_sum_of_its_own_jobs():
    # two designs sharing one pool: each counts its jobs' cpu_s, not the pool's total over its lifetime
    mk = lambda xs: SimpleNamespace(dataframe=pd.DataFrame({"cpu_s": xs}))  # noqa: E731
    a = [("design-j000", mk([1.5])), ("design-j001", mk([2.0, None]))]
    assert sweeps_cpu_seconds(a) == pytest.approx(3.5, abs=0)
    assert math.isnan(sweeps_cpu_seconds([("old", SimpleNamespace(dataframe=pd.DataFrame({"p1": [0.5]})))]))
    assert math.isnan(sweeps_cpu_seconds([]))


@pytest.mark.timeout(300)
def test_sweep_rows_carry_their_jobs_cpu(tmp_path):
    from noisecell.sweep import run_sweep

    spec = tmp_path / "sweep.toml"
    spec.write_text('cell = "pbit_generic"\nduration = "1us"\nnoise_step = "1ns"\nseed = 5\ntimeout = 120\n'
                    "[grid]\nbias = { start = -0.002, stop = 0.002, num = 3 }\n")
    with HostPool(workers=2) as pool:
        res = run_sweep(spec, tmp_path / "out", progress=False, pool=pool)
        total = host_cpu_seconds(pool)
    df = res.dataframe
    assert (df["status"] == "ok").all()
    cpu = pd.to_numeric(df["cpu_s"]).to_numpy(float)
    assert (cpu > 0).all()
    # the jobs' figures partition (part of) the hosts' total: they never exceed it
    assert cpu.sum() <= total + 2 * 2 * TICK


@pytest.mark.timeout(300)
def test_a_sweep_runner_design_reports_its_jobs_cpu(tmp_path):
    """run_design measures CPU as cpu_seconds() now minus at its start: the first reading (no job yet)
    must be 0, not NaN, or every design's CPU-s is NaN (the pbit_x5 demo run at 12e8044 logged none)."""
    from noisecell.design import DesignJob
    from noisecell.design_runner import SweepRunner

    r = SweepRunner(cell="pbit_generic", out_dir=tmp_path, shared={"noise_step": "0.5ns", "timeout": 120},
                    corner="tt", temp_c=27.0, workers=1)
    try:
        assert r.cpu_seconds() == 0.0
        got = [r.submit(i, DesignJob(b, 1e-6, 11 + i)).result() for i, b in enumerate((0.0, 1e-3))]
    finally:
        r.close()
    assert all(g is not None for g in got)
    rows = [float(res.dataframe["cpu_s"].iloc[0]) for _, res in r.results]
    assert all(x > 0 for x in rows)
    assert r.cpu_seconds() == pytest.approx(sum(rows), rel=1e-12, abs=0)
