"""Speed of the default cell: simulated µs per wall second and ngspice time points per noise step,
for a few integration settings, with the statistics each one produces (same noise seed).

Each variant renders the same noisecell job (noisecell.simulate.job_from_cell, nominal corner and
trimmed supply) and runs it in `ngspice -b` with `rusage` to read the accepted time points. All
variants run in this process one after another, so their wall times are comparable with each other
(the baseline is the first row); absolute speeds depend on the machine's load.

Usage: python spice_models/design/speed.py [--duration 10u] [--seed 1] [--cell pbit]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from noisecell.cells import load_cell
from noisecell.regime import classify_trace
from noisecell.simulate import job_from_cell
from noisecell.technology import spice_settings
from noisecell.trim import trimmed_point
from noisecell.units import parse_si

VARIANTS = [
    ("trap (ngspice default)", {}),
    ("gear", {"method": "gear"}),
    ("gear, maxord=2", {"method": "gear", "maxord": 2}),
    ("trap, reltol=1e-2", {"reltol": 1e-2}),
    ("trap, trtol=40", {"trtol": 40}),
    ("gear, reltol=1e-2", {"method": "gear", "reltol": 1e-2}),
]


def run_variant(cell, opts: dict, duration: float, seed: int, nt: float) -> dict:
    trim, vdd = trimmed_point(cell, cell.nominal_corner, cell.nominal_temp_c)
    job = job_from_cell(cell, bias_v=0.0, vdd_v=vdd, trim=trim or None, duration_s=duration, noise_step_s=nt,
                        seed=seed, options=opts)
    text = job.render_batch("out.dat").replace("\nrun\n", "\nrun\nrusage tranpoints traniter trantime\n")
    with tempfile.TemporaryDirectory() as td:
        Path(td, ".spiceinit").write_text("\n".join(spice_settings(cell.technology) + ["set num_threads=1"]) + "\n")
        Path(td, "job.cir").write_text(text)
        t0 = time.perf_counter()
        r = subprocess.run(["ngspice", "-b", "job.cir"], cwd=td, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
        out = r.stdout + r.stderr
        m = re.search(r"Transient timepoints\s*=\s*(\d+)", out)
        points = int(m.group(1)) if m else None
        d = np.loadtxt(Path(td, "out.dat"))
    t, q, qb = d[:, 0], d[:, 1], d[:, 3]
    x = q - qb
    reg = classify_trace(x, t, sample_period_s=nt, skip_s=0.5e-6)
    return {"wall_s": wall, "us_per_s": duration * 1e6 / wall, "points": points,
            "points_per_step": points / (duration / nt) if points else float("nan"),
            "p1": float(np.mean(x > 0)), "std_mv": float(np.std(x) * 1e3), "regime": reg.regime,
            "transitions": reg.n_transitions, "tau_w_ns": reg.within_state_tau_s * 1e9,
            "x": np.interp(np.arange(0.5e-6, duration, nt), t, x)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="pbit")
    ap.add_argument("--duration", default="10u")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nt", default="1n")
    a = ap.parse_args()
    cell = load_cell(a.cell)
    dur, nt = parse_si(a.duration, unit="s"), parse_si(a.nt, unit="s")
    base = None
    print(f"cell {cell.name}, {a.duration} at NT={a.nt}, seed {a.seed}")
    print(f"{'variant':24s} {'us/s':>6s} {'ratio':>6s} {'pts/step':>8s} {'P(1)':>6s} {'std mV':>7s} "
          f"{'regime':>13s} {'trans':>5s} {'tau_w ns':>8s} {'rms dev vs base mV':>18s}")
    for name, opts in VARIANTS:
        r = run_variant(cell, opts, dur, a.seed, nt)
        if base is None:
            base = r
        n = min(len(r["x"]), len(base["x"]))
        dev = float(np.sqrt(np.mean((r["x"][:n] - base["x"][:n]) ** 2)) * 1e3)
        print(f"{name:24s} {r['us_per_s']:6.2f} {base['wall_s'] / r['wall_s']:6.2f} {r['points_per_step']:8.2f} "
              f"{r['p1']:6.3f} {r['std_mv']:7.2f} {r['regime']:>13s} {r['transitions']:5d} {r['tau_w_ns']:8.1f} "
              f"{dev:18.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
