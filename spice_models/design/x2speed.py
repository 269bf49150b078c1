"""Simulation throughput and NT convergence of a cell's flip rate at its trimmed tt 27 °C point.

For each noise step NT (default 0.5 and 0.25 ns) and seed, one transient noise run at zero bias
(noisecell.simulate's job, the compiled noise route when built — the route is printed) of --duration;
per run: ngspice CPU seconds (resource usage of the child processes, so machine load does not enter
except through cache contention), wall seconds, regime transitions (noisecell.regime), P(1) and the
stream's two-state τ. Printed: simulated µs per core-second and flips per core-second per NT, and the
ratio of the flip rates at the two NT with a 95 % CI from the Poisson counts (a rate biased by the
coarser step shows as a ratio away from 1). One JSON line per run in --out.

Usage: nice -n 5 .venv/bin/python spice_models/design/x2speed.py [--cell pbit_x2] [--nt 0.5ns,0.25ns]
       [--seeds 1-2] [--duration 5us] [--out spice_models/design/x2speed.jsonl]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from noisecell.analysis.stream import analyze_waveform  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.noise import resolve_route  # noqa: E402
from noisecell.regime import classify_waveform  # noqa: E402
from noisecell.simulate import job_from_cell  # noqa: E402
from noisecell.simulator import run_job  # noqa: E402
from noisecell.trim import trimmed_point  # noqa: E402
from noisecell.units import parse_si  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="pbit_x2")
    ap.add_argument("--nt", default="0.5ns,0.25ns")
    ap.add_argument("--seeds", default="1-2")
    ap.add_argument("--duration", default="5us")
    ap.add_argument("--bias", default="0")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "x2speed.jsonl"))
    a = ap.parse_args()
    cell = load_cell(a.cell)
    trim, vdd = trimmed_point(cell, cell.nominal_corner, cell.nominal_temp_c)
    dur, bias = parse_si(a.duration, unit="s"), parse_si(a.bias, unit="V")
    lo, _, hi = a.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    nts = [parse_si(x, unit="s") for x in a.nt.split(",")]
    print(f"{cell.name}: VDD {vdd * 1e3:.2f} mV, trims {trim}, route {resolve_route()}, {a.duration} per run", flush=True)
    tot: dict[float, dict] = {}
    for nt in nts:
        for seed in seeds:
            job = job_from_cell(cell, bias_v=bias, vdd_v=vdd, trim=trim, duration_s=dur, noise_step_s=nt, seed=seed)
            c0, w0 = children_cpu(), time.perf_counter()
            wf = run_job(job, retries=1)
            cpu, wall = children_cpu() - c0, time.perf_counter() - w0
            r = classify_waveform(wf, skip_s=0.3e-6)
            est, _ = analyze_waveform(wf)
            d = est.to_dict()
            row = {"cell": cell.name, "noise_step_s": nt, "seed": seed, "duration_s": dur, "cpu_s": cpu, "wall_s": wall,
                   "regime": r.regime, "n_transitions": r.n_transitions, "record_s": r.duration_s, "p1": d.get("p1"),
                   "tau_s": d.get("tau_s"), "tau_s_ci95": d.get("tau_s_ci95"), "markov_consistent": d.get("markov_consistent"),
                   "dwell_dispersion": [d.get("dwell_dispersion_0"), d.get("dwell_dispersion_1")],
                   "load_avg_1min": __import__("os").getloadavg()[0], "route": resolve_route()}
            with open(a.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            t = tot.setdefault(nt, {"cpu": 0.0, "sim": 0.0, "n": 0, "rec": 0.0})
            t["cpu"] += cpu
            t["sim"] += dur
            t["n"] += r.n_transitions
            t["rec"] += r.duration_s
            print(f"  NT {nt * 1e9:.2f} ns seed {seed}: {r.regime}, {r.n_transitions} transitions, P(1) {d.get('p1'):.3f}, "
                  f"tau {(d.get('tau_s') or float('nan')) * 1e9:.1f} ns, {cpu:.1f} CPU-s, {wall:.1f} wall-s "
                  f"(load {row['load_avg_1min']:.1f})", flush=True)
    for nt, t in tot.items():
        print(f"NT {nt * 1e9:.2f} ns: {t['sim'] * 1e6 / t['cpu']:.2f} simulated µs per core-second, "
              f"{t['n'] / t['cpu']:.1f} flips per core-second, flip rate {t['n'] / t['rec'] / 1e6:.2f} /µs "
              f"({t['n']} transitions)")
    if len(nts) >= 2:
        from scipy.stats import beta

        a1, a2 = tot[nts[0]], tot[nts[1]]
        n1, n2 = a1["n"], a2["n"]
        # conditional binomial CI of the count ratio (Poisson), scaled by the record lengths
        lo_, hi_ = beta.ppf(0.025, n1, n2 + 1), beta.ppf(0.975, n1 + 1, n2)
        k = a2["rec"] / a1["rec"]
        ratio = (n1 / a1["rec"]) / (n2 / a2["rec"])
        print(f"flip rate NT {nts[0] * 1e9:.2f} / NT {nts[1] * 1e9:.2f} ns: {ratio:.3f} 95 % CI "
              f"[{lo_ / (1 - lo_) * k:.3f}, {hi_ / (1 - hi_) * k:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
