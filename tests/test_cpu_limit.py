"""The per-job CPU-time limit of the simulator layer (noisecell.simulator.host.cpu_limit_s).

A stalled ngspice run (pbit_x5 at cold trims, design/NOTES.md §14) burns CPU until its wall-time
limit; the CPU limit (CPU_LIMIT_FLOOR_S + cpu_per_us × simulated µs) stops it at what the record
could need. Truth: a host payload that never ends by itself (PBKDF2 with 2e9 iterations, ~minutes of
CPU) must be killed at its CPU limit, well before the 120 s wall limit these tests give it, and be
reported as a timeout naming the CPU limit; a payload that ends under its limit returns exactly what it
returns without one. Before the CPU limit existed the looping payload ran to its wall limit and its
error said "wall time" (these tests fail on that code). Nothing here measures speed: the assertions
are about outcomes and messages; the CPU figures come from the host's own accounting.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from noisecell.errors import InputError, SimulationTimeout
from noisecell.simulator import HostPool, SimHost, cpu_limit_s, run_with_retries
from noisecell.simulator import host as host_mod

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
#: a job-like payload part: the CPU limit reads the simulated duration from payload["job"]
SHORT_JOB = SimpleNamespace(duration_s=0.1e-6)
#: never ends by itself (a stalled simulation): ~minutes of CPU
SPIN = {"call": "hashlib:pbkdf2_hmac", "args": ["sha256", b"pw", b"salt", 2_000_000_000], "job": SHORT_JOB}
#: ends by itself after ~0.05 s of CPU, with a deterministic result
QUICK = {"call": "hashlib:pbkdf2_hmac", "args": ["sha256", b"pw", b"salt", 200_000], "job": SHORT_JOB}


def test_limit_is_floor_plus_rate_times_simulated_us(monkeypatch):
    monkeypatch.setattr(host_mod, "CPU_LIMIT_FLOOR_S", 10.0)
    job = SimpleNamespace(duration_s=3e-6)
    assert cpu_limit_s({"job": job}, 4.0) == pytest.approx(10.0 + 12.0, rel=1e-12)
    assert cpu_limit_s({"job": job}) == pytest.approx(10.0 + host_mod.CPU_S_PER_SIMULATED_US * 3, rel=1e-12)
    assert cpu_limit_s({"job": job}, 0) is None                  # 0 switches it off
    assert cpu_limit_s({"call": "os:getpid"}, 4.0) is None      # no job, no simulated time: no limit
    with pytest.raises(InputError, match="cpu_per_us"):
        cpu_limit_s({"job": job}, -1.0)


@pytest.mark.timeout(300)
def test_stalled_job_is_killed_at_its_cpu_limit_and_the_host_recovers(monkeypatch):
    # limit = 0.5 CPU-s + 2 CPU-s/µs × 0.1 µs = 0.7 CPU-s (the parent computes and enforces it)
    monkeypatch.setattr(host_mod, "CPU_LIMIT_FLOOR_S", 0.5)
    limit = cpu_limit_s(SPIN, 2.0)
    assert limit == pytest.approx(0.7, rel=1e-12)
    with HostPool(workers=1, warm_up="os:getpid") as pool:
        pid0 = pool.run({"call": "os:getpid"}, timeout_s=120)["result"]
        res = pool.run(SPIN, timeout_s=120, name="stall", cpu_per_us=2.0)
        assert not res["ok"]
        assert res["error_type"] == "SimulationTimeout"
        assert "CPU limit of 0.7 CPU-s" in res["error"] and "wall time" not in res["error"]
        assert "\n" not in res["error"]                      # one line
        assert res["attempts"] == 1                          # a timeout is not retried
        # its CPU is accounted: at least the limit (a poll every CPU_POLL_S may add a little)
        assert res["cpu_s"] >= limit - 2 * TICK
        # the next job runs on a fresh host, as after a wall-time kill; nothing else is lost
        after = pool.run({"call": "os:getpid"}, timeout_s=120)
        assert after["ok"] and after["result"] != pid0
        # a job that finishes under its limit returns what it returns without one
        limited = pool.run(QUICK, timeout_s=120, cpu_per_us=2.0)
        free = pool.run(QUICK, timeout_s=120, cpu_per_us=0)
        assert limited["ok"] and free["ok"]
        assert limited["result"] == free["result"]


@pytest.mark.timeout(300)
def test_retry_loop_passes_the_limit_to_the_host(monkeypatch):
    monkeypatch.setattr(host_mod, "CPU_LIMIT_FLOOR_S", 0.5)
    host = SimHost(warm_up="os:getpid")
    try:
        with pytest.raises(SimulationTimeout, match="CPU limit") as ei:
            run_with_retries(host, SPIN, timeout_s=120, retries=3, name="stall", cpu_per_us=1.0)
        assert ei.value.retry_record.history == "timeout"
    finally:
        host.close()


def test_sweep_spec_key():
    from noisecell.sweep.spec import parse_spec

    base = {"cell": "pbit_generic", "duration": "2us", "grid": {"bias": [0.0]}}
    assert parse_spec(base, source="s.toml").cpu_per_us is None
    assert "cpu_per_us" not in parse_spec(base, source="s.toml").to_dict()   # manifests unchanged
    assert parse_spec({**base, "cpu_per_us": 2.5}, source="s.toml").cpu_per_us == pytest.approx(2.5, rel=1e-12)
    with pytest.raises(InputError, match=r"s\.toml.*cpu_per_us"):
        parse_spec({**base, "cpu_per_us": -1}, source="s.toml")


#: test fixture (as tests/test_sweep_run.py's): VB > 5 mV gives Vsp a 0.4 fs pulse period, a breakpoint
#: every 0.1 fs: ngspice spins without end, burning CPU (a stall)
SPINNER = """
Vsp nsp 0 PULSE(0 1 0 1e-16 1e-16 1e-16 {VB > 0.005 ? 4e-16 : 10})
Rsp nsp 0 1k
"""


@pytest.mark.timeout(600)
def test_sweep_records_the_cpu_limit_and_keeps_the_other_jobs(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from noisecell.cells import spice_models_dir
    from noisecell.sweep import load

    root = Path(__file__).resolve().parents[1]
    cell = tmp_path / "spinner"
    shutil.copytree(spice_models_dir() / "pbit_generic", cell)
    toml = (cell / "cell.toml").read_text().replace('name = "pbit_generic"', 'name = "pbit_spinner"')
    (cell / "cell.toml").write_text(toml)
    (cell / "pbit_generic.cir").write_text((cell / "pbit_generic.cir").read_text() + SPINNER)
    spec = tmp_path / "s.toml"
    # a wall limit far beyond the CPU limit (10 + 1 x 1 us = 11 CPU-s): only the CPU limit can stop the spin
    spec.write_text(f'cell = "{cell}"\nduration = "1us"\nseed = 2\ntimeout = 1200\ncpu_per_us = 1\nretries = 2\n'
                    "[grid]\nbias = [0.001, 0.008]\n")
    r = subprocess.run([sys.executable, "-m", "noisecell", "sweep", str(spec), "--out", str(tmp_path / "o"),
                        "--workers", "1", "--quiet"], cwd=root, capture_output=True, text=True, timeout=500,
                       env=dict(os.environ, PYTHONPATH=str(root)))
    assert r.returncode == 1, r.stderr
    df = load(tmp_path / "o").set_index("bias_v")
    assert df.loc[0.001, "status"] == "ok"                       # completed work is kept
    hung = df.loc[0.008]
    assert hung["status"] == "failed" and hung["error_type"] == "SimulationTimeout" and hung["attempts"] == 1
    assert "over the job's CPU limit of 11.0 CPU-s" in hung["error"] and "\n" not in hung["error"]
    assert hung["cpu_s"] >= 11.0 - 2 * TICK
