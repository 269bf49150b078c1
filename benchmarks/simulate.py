"""Benchmark: simulation speed of the default cell, noise routes, and noisecell's overhead over ``ngspice -b``.

Prints, in one run (alternating repetitions so machine load affects all modes alike):

1. the two noise-injection routes (noisecell.noise): ``baseline`` = today's portable B-source
   rendering, ``compiled`` = the XSPICE code model. For each, wall and CPU seconds of a short and a
   long run in this process's ngspice; the MARGINAL cost per simulated µs is
   (t_long − t_short)/(d_long − d_short), which subtracts start-up (circuit load, operating point);
   their ratio (issue 12 target: ≥ 4 at NT = 1 ns) and the max |ΔV| between the routes' waveforms.
2. simulated µs per core-second (marginal, CPU time) of the compiled route at the default noise step.
3. noisecell (shared library, in-process and fresh child) vs ``ngspice -b`` on the same generated
   netlist. Target: ratio ≤ 1.05.

    .venv/bin/python benchmarks/simulate.py [--cell pbit] [--short 0.5us] [--long 5us] [--noise-step 1ns]
                                            [--repeat 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noisecell.cells import list_cells, load_cell  # noqa: E402
from noisecell.noise import DEFAULT_NOISE_STEP_S, codemodel_path  # noqa: E402
from noisecell.simulate import job_from_cell  # noqa: E402
from noisecell.simulator import run_job  # noqa: E402
from noisecell.simulator.session import run_job_in_process  # noqa: E402
from noisecell.technology import spice_settings  # noqa: E402
from noisecell.units import parse_si  # noqa: E402

ROUTES = {"baseline": "portable", "compiled": "compiled"}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _ngspice_batch(job, workdir: Path) -> tuple[float, float]:
    """Wall and CPU time of ``ngspice -b`` on job.render_batch(), with the same settings as the shared library."""
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


def _timed(job):
    c0 = time.process_time()
    t0 = time.perf_counter()
    wf = run_job_in_process(job)
    return time.perf_counter() - t0, time.process_time() - c0, wf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default=None, help="cell (default: pbit, else pbit_generic)")
    ap.add_argument("--short", default="0.5us", help="short run, s (start-up reference)")
    ap.add_argument("--long", default="5us", help="long run, s")
    ap.add_argument("--noise-step", default="1ns", help="NT of the route comparison, s")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("ngspice") is None:
        raise SystemExit("ngspice is not on PATH; run `make setup`")
    path, why = codemodel_path()
    if path is None:
        raise SystemExit(f"the compiled noise route is not built ({why}); run `make setup`")
    name = args.cell or ("pbit" if "pbit" in list_cells() else "pbit_generic")
    cell = load_cell(name)
    d_short = parse_si(args.short, unit="s", what="--short")
    d_long = parse_si(args.long, unit="s", what="--long")
    nt = parse_si(args.noise_step, unit="s", what="--noise-step")
    if not d_long > d_short:
        raise SystemExit("--long must exceed --short")

    def job(route, duration, step=nt):
        return dataclasses.replace(job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=duration,
                                                 noise_step_s=step, seed=1), noise_route=route)

    span_us = (d_long - d_short) * 1e6
    print(f"benchmark: cell {name} ({cell.technology}), NT = {nt:g} s, runs of {d_short * 1e6:g} and "
          f"{d_long * 1e6:g} µs, {args.repeat} repetitions, alternating")
    run_job_in_process(job("compiled", d_short))  # warm-up: ngspice, code model, OS file cache
    wall = {(m, d): [] for m in ROUTES for d in ("short", "long")}
    cpu = {k: [] for k in wall}
    waves = {}
    steps = {m: [] for m in ROUTES}
    for _ in range(args.repeat):
        for mode, route in ROUTES.items():
            for tag, d in (("short", d_short), ("long", d_long)):
                w, c, wf = _timed(job(route, d))
                wall[(mode, tag)].append(w)
                cpu[(mode, tag)].append(c)
                if tag == "long":
                    waves[mode] = wf
    med = {k: statistics.median(v) for k, v in wall.items()}
    medc = {k: statistics.median(v) for k, v in cpu.items()}
    marg = {m: (med[(m, "long")] - med[(m, "short")]) / span_us for m in ROUTES}
    margc = {m: (medc[(m, "long")] - medc[(m, "short")]) / span_us for m in ROUTES}
    print("  route      short run   long run    marginal wall   marginal CPU    (per simulated µs, start-up subtracted)")
    for m in ROUTES:
        print(f"  {m:9s} {med[(m, 'short')]:8.3f} s {med[(m, 'long')]:8.3f} s   {marg[m]:8.4f} s/µs   "
              f"{margc[m]:8.4f} s/µs")
    print(f"  speed-up compiled vs baseline (marginal): wall {marg['baseline'] / marg['compiled']:.2f}x, "
          f"CPU {margc['baseline'] / margc['compiled']:.2f}x (target ≥ 4x at NT = 1 ns)")
    a, b = waves["compiled"], waves["baseline"]
    dv = max(float(np.max(np.abs(a.outputs[k] - b.outputs[k]))) for k in b.outputs)
    print(f"  max |ΔV| compiled vs baseline over {d_long * 1e6:g} µs (same seed, all outputs): {dv:.3g} V "
          f"(target ≤ 1 nV)")
    print(f"  all runs (s): " + ", ".join(f"{m} {t}: {[round(x, 3) for x in v]}" for (m, t), v in wall.items()))

    # simulated µs per core-second at the default noise step (compiled route, marginal CPU)
    dflt = DEFAULT_NOISE_STEP_S
    cs, cl = [], []
    for _ in range(args.repeat):
        cs.append(_timed(job("compiled", d_short, dflt))[1])
        cl.append(_timed(job("compiled", d_long, dflt))[1])
    m_cpu = (statistics.median(cl) - statistics.median(cs)) / span_us
    print(f"  default noise step NT = {dflt:g} s, compiled route: {1 / m_cpu:.2f} simulated µs per core-second "
          f"(marginal; whole {d_long * 1e6:g} µs run incl. start-up: {d_long * 1e6 / statistics.median(cl):.2f})")

    # noisecell's overhead over plain ngspice -b on the same (compiled-route) netlist
    jl = job("compiled", d_long)
    t_in, t_child, t_ng, c_in, c_ng = [], [], [], [], []
    with tempfile.TemporaryDirectory() as td:
        for _ in range(args.repeat):
            w, c, _wf = _timed(jl)
            t_in.append(w)
            c_in.append(c)
            w, c = _ngspice_batch(jl, Path(td))
            t_ng.append(w)
            c_ng.append(c)
            t0 = time.perf_counter()
            run_job(jl)
            t_child.append(time.perf_counter() - t0)
    m_in, m_child, m_ng = (statistics.median(x) for x in (t_in, t_child, t_ng))
    print(f"  noisecell in-process {m_in:.3f} s, fresh child {m_child:.3f} s, ngspice -b {m_ng:.3f} s "
          f"({d_long * 1e6:g} µs, compiled route): ratio in-process {m_in / m_ng:.3f}, child {m_child / m_ng:.3f} "
          f"(target ≤ 1.05); CPU ratio {statistics.median(c_in) / statistics.median(c_ng):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
