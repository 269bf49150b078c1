"""Benchmark: simulation speed of the default cell and noisecell's overhead over plain ``ngspice -b``.

Prints simulated µs per wall-second and time points per second, and the ratio of noisecell's wall
time to running the very same generated netlist with ``ngspice -b`` (baseline measured in this run,
alternating repetitions so machine load affects both alike). Target: ratio ≤ 1.05.

    .venv/bin/python benchmarks/simulate.py [--cell pbit] [--duration 20us] [--noise-step 1ns] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noisecell.cells import list_cells, load_cell  # noqa: E402
from noisecell.simulate import job_from_cell  # noqa: E402
from noisecell.simulator import run_job  # noqa: E402
from noisecell.simulator.session import run_job_in_process  # noqa: E402
from noisecell.technology import spice_settings  # noqa: E402
from noisecell.units import parse_si  # noqa: E402


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _ngspice_batch(job, workdir: Path) -> tuple[float, float]:
    """Wall time of ``ngspice -b`` on job.render_batch(), with the same settings as the shared library."""
    net = workdir / "job.cir"
    net.write_text(job.render_batch(str(workdir / "out.dat")))
    # same settings as noisecell applies before loading: num_threads=1 and the technology's settings
    (workdir / ".spiceinit").write_text("\n".join(["set num_threads=1"] + spice_settings(job.technology)) + "\n")
    env = dict(os.environ, HOME=str(workdir))
    c0 = _children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run(["ngspice", "-b", str(net)], cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - c0
    if r.returncode != 0 or not (workdir / "out.dat").exists():
        raise SystemExit(f"ngspice -b failed (rc {r.returncode}): {r.stderr[-500:]}")
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default=None, help="cell (default: pbit, else pbit_generic)")
    ap.add_argument("--duration", default="20us")
    ap.add_argument("--noise-step", default="1ns")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("ngspice") is None:
        raise SystemExit("ngspice is not on PATH; run `make setup`")
    name = args.cell or ("pbit" if "pbit" in list_cells() else "pbit_generic")
    cell = load_cell(name)
    duration = parse_si(args.duration, unit="s", what="--duration")
    nt = parse_si(args.noise_step, unit="s", what="--noise-step")
    job = job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=duration, noise_step_s=nt, seed=1)
    points = round(duration / nt) + 1
    print(f"benchmark: cell {name} ({cell.technology}), {duration * 1e6:g} µs at NT = {nt:g} s "
          f"({points} output points), {args.repeat} repetitions, alternating")
    run_job_in_process(job)  # warm-up: loads ngspice (and for sky130 the OS file cache)
    t_in, t_child, t_ng, c_in, c_ng = [], [], [], [], []
    with tempfile.TemporaryDirectory() as td:
        for _ in range(args.repeat):
            c0 = time.process_time()
            t0 = time.perf_counter()
            run_job_in_process(job)
            t_in.append(time.perf_counter() - t0)
            c_in.append(time.process_time() - c0)
            w, c = _ngspice_batch(job, Path(td))
            t_ng.append(w)
            c_ng.append(c)
            t0 = time.perf_counter()
            run_job(job)
            t_child.append(time.perf_counter() - t0)
    m_in, m_child, m_ng = (statistics.median(x) for x in (t_in, t_child, t_ng))
    us = duration * 1e6
    print(f"  noisecell in-process (pool workers):  {m_in:8.3f} s  {us / m_in:8.3f} simulated µs/s  "
          f"{points / m_in:10.0f} points/s")
    print(f"  noisecell run_job (fresh child):      {m_child:8.3f} s  {us / m_child:8.3f} simulated µs/s  "
          f"{points / m_child:10.0f} points/s")
    print(f"  ngspice -b, same netlist (baseline):  {m_ng:8.3f} s  {us / m_ng:8.3f} simulated µs/s  "
          f"{points / m_ng:10.0f} points/s")
    print(f"  ratio noisecell/ngspice -b: in-process {m_in / m_ng:.3f}, fresh child {m_child / m_ng:.3f} "
          f"(target ≤ 1.05)")
    print(f"  CPU time (less sensitive to machine load): in-process {statistics.median(c_in):.3f} s, "
          f"ngspice -b {statistics.median(c_ng):.3f} s, ratio {statistics.median(c_in) / statistics.median(c_ng):.3f}")
    print(f"  all runs (s): in-process {[round(x, 3) for x in t_in]}, child {[round(x, 3) for x in t_child]}, "
          f"ngspice -b {[round(x, 3) for x in t_ng]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
