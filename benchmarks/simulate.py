"""Benchmark: simulation speed of the default cell, the three noise routes, per-job start-up, and noisecell's overhead over ``ngspice -b``.

Prints, in one run (alternating repetitions so machine load affects all modes alike):

1. the noise-injection routes (noisecell.noise) at the same NT (default: the default noise step):
   ``baseline`` = the portable B-source rendering, ``compiled`` = the XSPICE code model nc_chan
   with TRRANDOM unit sources (a breakpoint per NT), ``smooth`` = nc_chan fed by the breakpoint-free
   nc_unit sources (plus ``smooth`` at each ``--smooth-steps`` NT, since that route may need a finer
   NT for the same accuracy: benchmarks/nt_convergence.py). For each: wall and CPU seconds of a
   short and a long run in this process's ngspice; the MARGINAL cost per simulated µs
   (t_long − t_short)/(d_long − d_short), which subtracts start-up; solver time points per noise
   step; simulated µs per core-second (marginal CPU); the start-up per job (the intercept
   t_short − marginal·d_short: netlist parse, sky130 model load, operating point); ratios compiled
   vs baseline and smooth vs compiled; the max |ΔV| compiled vs baseline (same time points, ≤ 1 nV).
2. per-job start-up in more detail: loading the netlist (the sky130 model cards) and the operating
   point timed apart, in-process, and a fresh simulator host per job (Python + PySpice + ngspice start);
   and the lean model file (noisecell.technology.lean_fet_file) against the whole models_fet.spice
   (the baseline, NOISECELL_LEAN_MODELS=0), alternating in this process: CPU-s of loading the netlist
   and of a whole short job, and whether the two waveforms are bit-identical (``--startup-only``: this
   part alone).
3. noisecell (shared library, in-process and fresh child) vs ``ngspice -b`` on the same generated
   netlist (compiled route). Target: ratio ≤ 1.05.

    .venv/bin/python benchmarks/simulate.py [--cell pbit] [--short 0.5us] [--long 5us] [--noise-step 0.5ns]
                                            [--smooth-steps 0.25ns] [--repeat 3] [--skip-baseline]
                                            [--startup-only] [--mismatch-seed N]
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
from noisecell.technology import LEAN_MODELS_ENV, spice_settings  # noqa: E402
from noisecell.units import parse_si  # noqa: E402

import logging  # noqa: E402

# the per-job NT warning (pbit at NT 0.4 ns) would repeat on every timed run
logging.getLogger("noisecell.simulate").setLevel(logging.ERROR)



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


def _variants(nt: float, smooth_steps: list[float], skip_baseline: bool) -> list[tuple[str, str, float]]:
    """(label, route, NT) of every timed variant."""
    out = [] if skip_baseline else [("baseline", "portable", nt)]
    out += [("compiled", "compiled", nt), ("smooth", "smooth", nt)]
    out += [(f"smooth@{x * 1e9:g}ns", "smooth", x) for x in smooth_steps if x != nt]
    return out


def _startup_parts(job) -> tuple[float, float, float]:
    """Wall seconds of (load the netlist, operating point, the rest of ``run``) for one job, in this
    process's ngspice (the same calls as run_job_in_process, timed apart)."""
    from noisecell.simulator import session as ss
    netlist = job.render()
    ng = ss._ngspice()
    ss._prepare(job.technology)
    ss._load_codemodel(netlist)
    t0 = time.perf_counter()
    ng.load_circuit("\n".join(l for l in netlist.splitlines() if l))
    t1 = time.perf_counter()
    ss._command(f"setseed {int(job.seed)}")
    ss._command("op")
    t2 = time.perf_counter()
    ss._command("run")
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def _load_cpu(job) -> float:
    """CPU seconds of loading ``job``'s netlist (model cards included) into this process's ngspice."""
    from noisecell.simulator import session as ss
    netlist = job.render()
    ng = ss._ngspice()
    ss._prepare(job.technology)
    ss._load_codemodel(netlist)
    c0 = time.process_time()
    ng.load_circuit("\n".join(l for l in netlist.splitlines() if l))
    return time.process_time() - c0


def lean_vs_full(job_short, repeat: int) -> None:
    """Start-up CPU-s with the lean model file vs the whole models_fet.spice (baseline), alternating."""
    def with_env(value, fn, *a):
        old = os.environ.get(LEAN_MODELS_ENV)
        os.environ[LEAN_MODELS_ENV] = value
        try:
            return fn(*a)
        finally:
            if old is None:
                os.environ.pop(LEAN_MODELS_ENV, None)
            else:
                os.environ[LEAN_MODELS_ENV] = old

    if job_short.technology != "sky130":
        print(f"  lean model file: not applicable ({job_short.technology} cell: its models are inside the netlist)")
        return
    load = {"0": [], "1": []}
    whole = {"0": [], "1": []}
    waves = {}
    for _ in range(repeat):
        for mode in ("0", "1"):
            load[mode].append(with_env(mode, _load_cpu, job_short))
            _w, c, wf = with_env(mode, _timed, job_short)
            whole[mode].append(c)
            waves[mode] = wf
    same = all(np.array_equal(waves["0"].outputs[k], waves["1"].outputs[k]) for k in waves["0"].outputs) and \
        all(np.array_equal(waves["0"].supply_currents[k], waves["1"].supply_currents[k]) for k in waves["0"].supply_currents)
    lf, ll = statistics.median(load["0"]), statistics.median(load["1"])
    wf_, wl = statistics.median(whole["0"]), statistics.median(whole["1"])
    print(f"  lean model file vs whole models_fet.spice (baseline), {job_short.noise_route or 'auto'} route, "
          f"mismatch seed {job_short.mismatch_seed}, "
          f"{repeat} alternating repetitions, median CPU-s:")
    print(f"    load netlist: whole {lf:.3f} s, lean {ll:.3f} s: saves {lf - ll:.3f} CPU-s per job "
          f"(ratio {ll / lf:.3f})")
    print(f"    whole job of {job_short.duration_s * 1e6:g} µs: whole {wf_:.3f} s, lean {wl:.3f} s "
          f"(ratio {wl / wf_:.3f}); waveforms bit-identical: {same}")
    print(f"    all load CPU-s: whole {[round(x, 3) for x in load['0']]}, lean {[round(x, 3) for x in load['1']]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default=None, help="cell (default: pbit, else pbit_generic)")
    ap.add_argument("--short", default="0.5us", help="short run, s (start-up reference)")
    ap.add_argument("--long", default="5us", help="long run, s")
    ap.add_argument("--noise-step", default=None, help="NT of the route comparison, s (default: the default NT)")
    ap.add_argument("--smooth-steps", default="0.25ns", help="further NTs of the smooth route (comma-separated)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-baseline", action="store_true", help="leave out the (slow) portable route")
    ap.add_argument("--startup-only", action="store_true", help="only the lean-vs-whole model start-up part")
    ap.add_argument("--mismatch-seed", type=int, default=None, help="start-up part: a mismatch instance (sky130 AGAUSS draws on)")
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
    nt = parse_si(args.noise_step, unit="s", what="--noise-step") if args.noise_step else DEFAULT_NOISE_STEP_S
    smooth_steps = [parse_si(x, unit="s", what="--smooth-steps") for x in args.smooth_steps.split(",") if x.strip()]
    if not d_long > d_short:
        raise SystemExit("--long must exceed --short")

    def job(route, duration, step=nt):
        return dataclasses.replace(job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=duration,
                                                 noise_step_s=step, seed=1), noise_route=route)

    if args.startup_only:
        load = os.getloadavg()
        print(f"benchmark: cell {name} ({cell.technology}), NT = {nt:g} s, start-up only; load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        run_job_in_process(job(None, d_short))  # warm-up: ngspice, code model, OS file cache
        lean_vs_full(dataclasses.replace(job(None, d_short), mismatch_seed=args.mismatch_seed), args.repeat)
        load = os.getloadavg()
        print(f"  load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        return 0
    variants = _variants(nt, smooth_steps, args.skip_baseline)
    span_us = (d_long - d_short) * 1e6
    load = os.getloadavg()
    print(f"benchmark: cell {name} ({cell.technology}), NT = {nt:g} s, runs of {d_short * 1e6:g} and "
          f"{d_long * 1e6:g} µs, {args.repeat} repetitions, alternating; load average {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    run_job_in_process(job("compiled", d_short))  # warm-up: ngspice, code model, OS file cache
    wall = {(v[0], d): [] for v in variants for d in ("short", "long")}
    cpu = {k: [] for k in wall}
    points = {v[0]: [] for v in variants}
    waves = {}
    for _ in range(args.repeat):
        for label, route, step in variants:
            for tag, d in (("short", d_short), ("long", d_long)):
                w, c, wf = _timed(job(route, d, step))
                wall[(label, tag)].append(w)
                cpu[(label, tag)].append(c)
                if tag == "long":
                    waves[label] = wf
                    points[label].append(wf.meta["solver_points"] / (d / nt))
    med = {k: statistics.median(v) for k, v in wall.items()}
    medc = {k: statistics.median(v) for k, v in cpu.items()}
    marg = {v[0]: (med[(v[0], "long")] - med[(v[0], "short")]) / span_us for v in variants}
    margc = {v[0]: (medc[(v[0], "long")] - medc[(v[0], "short")]) / span_us for v in variants}
    print("  variant          NT      short     long      marginal wall  marginal CPU  points per  sim. µs per  start-up per job")
    print("                                                (per simulated µs, start-up subtracted)  NT of {:g} s  core-second  wall / CPU".format(nt))
    for label, route, step in variants:
        su_w = med[(label, "short")] - marg[label] * d_short * 1e6
        su_c = medc[(label, "short")] - margc[label] * d_short * 1e6
        print(f"  {label:14s} {step * 1e9:5.3g} ns {med[(label, 'short')]:7.3f} s {med[(label, 'long')]:7.3f} s "
              f"{marg[label]:9.4f} s/µs  {margc[label]:9.4f} s/µs  {statistics.median(points[label]):8.2f}"
              f"   {1 / margc[label]:8.2f}     {su_w:6.3f} s / {su_c:6.3f} s")
    if "baseline" in marg:
        print(f"  speed-up compiled vs baseline (marginal): wall {marg['baseline'] / marg['compiled']:.2f}x, "
              f"CPU {margc['baseline'] / margc['compiled']:.2f}x")
        a, b = waves["compiled"], waves["baseline"]
        dv = max(float(np.max(np.abs(a.outputs[k] - b.outputs[k]))) for k in b.outputs)
        print(f"  max |ΔV| compiled vs baseline over {d_long * 1e6:g} µs (same seed, all outputs): {dv:.3g} V "
              f"(target ≤ 1 nV)")
    for label, _route, step in variants:
        if label.startswith("smooth"):
            print(f"  speed-up {label} (NT {step * 1e9:g} ns) vs compiled (NT {nt * 1e9:g} ns), marginal: wall "
                  f"{marg['compiled'] / marg[label]:.2f}x, CPU {margc['compiled'] / margc[label]:.2f}x; "
                  f"solver points {statistics.median(points['compiled']) / statistics.median(points[label]):.2f}x fewer")
    print(f"  all runs (s): " + ", ".join(f"{m} {t}: {[round(x, 3) for x in v]}" for (m, t), v in wall.items()))

    # per-job start-up: netlist load (model cards), operating point, transient; and a fresh host
    parts = {r: [] for r in ("compiled", "smooth")}
    for _ in range(args.repeat):
        for r in parts:
            parts[r].append(_startup_parts(job(r, d_short)))
    for r, xs in parts.items():
        ld, op, tr = (statistics.median(x[i] for x in xs) for i in range(3))
        print(f"  start-up, {r} route, in-process: load netlist {ld:.3f} s, operating point {op:.3f} s, "
              f"transient of {d_short * 1e6:g} µs {tr:.3f} s (wall)")

    lean_vs_full(job(None, d_short), args.repeat)

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
          f"(target ≤ 1.05); CPU ratio {statistics.median(c_in) / statistics.median(c_ng):.3f}; "
          f"a fresh host costs {m_child - m_in:.3f} s more per job")
    load = os.getloadavg()
    print(f"  load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
