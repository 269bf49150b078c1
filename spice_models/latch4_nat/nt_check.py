"""Is latch4_nat's flip rate resolved at the default noise step NT = 0.5 ns? (docs/cells.md)

`simulate` warns that the trimmed cell's fastest node (~0.6 ns) is not well below NT = 0.5 ns. This
runs seeded 20 µs records at zero bias at the stored trim for NT = 0.5 ns and 0.25 ns (same seeds),
digitises every one the same way whatever its NT — v_out − v_outb on a common 1 ns grid through a
fixed Schmitt band of ±12 mV around 0 (the stable states sit at ±34 mV; the band characterize derived
from the levels and noise was ±11.5–11.9 mV) — and prints per NT the flip rate, τ = 1/(k_up + k_down)
and P(1), and the ratio 0.25 ns / 0.5 ns. Uncertainties: each seed is an independent replicate, so
the standard error of a pooled ratio comes from the between-seed scatter (delete-one-seed jackknife,
as benchmarks/nt_convergence.py); 95 % CI = ±1.96 SE (on the log of a ratio).

Run from the repo root: ``.venv/bin/python spice_models/latch4_nat/nt_check.py [--seeds 6] [--workers 1]``;
rows go to --out (one JSON line per record; re-running resumes).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GRID_S = 1e-9
BAND_V = 0.012
Z95 = 1.959963984540054


def one(cell, vgp, vdd, nt, seed, duration_s):
    from noisecell.digitize import schmitt
    from noisecell.simulate import job_from_cell
    from noisecell.simulator import run_job

    job = job_from_cell(cell, bias_v=0.0, vdd_v=vdd, trim={"VGP": vgp}, duration_s=duration_s,
                        noise_step_s=nt, seed=seed)
    t0 = time.monotonic()
    wf = run_job(job, timeout_s=3600, retries=1)
    wall = time.monotonic() - t0
    t = wf.time_s
    grid = np.arange(t[0] + 0.1e-6, t[-1], GRID_S)  # 0.1 us settling dropped
    v = np.interp(grid, t, wf.outputs["v_out"] - wf.outputs["v_outb"])
    bits = schmitt(v, 0.0, 2 * BAND_V)
    d = np.diff(bits.astype(np.int8))
    occ = bits[:-1]
    return {"nt": nt, "seed": seed, "duration_s": duration_s, "n_up": int(np.sum(d == 1)),
            "n_down": int(np.sum(d == -1)), "t0": float(np.sum(occ == 0) * GRID_S),
            "t1": float(np.sum(occ == 1) * GRID_S), "wall_s": wall, "job_id": job.job_id()}


def _sums(rows):
    return [sum(r[k] for r in rows) for k in ("n_up", "n_down", "t0", "t1")]


def flip_rate(rows):
    u, d, t0, t1 = _sums(rows)
    return (u + d) / (t0 + t1)


def tau(rows):
    u, d, t0, t1 = _sums(rows)
    return 1.0 / (u / t0 + d / t1)


def p1(rows):
    u, d, t0, t1 = _sums(rows)
    return t1 / (t0 + t1)


def jackknife(stat, *groups):
    """(estimate, SE) of stat(*groups) deleting one seed at a time (the same seed from every group)."""
    seeds = sorted(set.intersection(*[{r["seed"] for r in g} for g in groups]))
    sub = lambda g, keep: [r for r in g if r["seed"] in keep]  # noqa: E731
    est = stat(*[sub(g, set(seeds)) for g in groups])
    n = len(seeds)
    loo = np.array([stat(*[sub(g, set(seeds) - {s}) for g in groups]) for s in seeds])
    return est, float(math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def main(argv=None):
    from noisecell import trim as T
    from noisecell.cells import load_cell
    from noisecell.units import parse_si

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--duration", default="20us")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "nt_check.jsonl"))
    a = ap.parse_args(argv)
    dur = parse_si(a.duration, unit="s", what="--duration")
    cell = load_cell(str(HERE))
    trim, vdd = T.trimmed_point(cell, "tt", 27.0)
    out = Path(a.out)
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.is_file() else []
    have = {(r["nt"], r["seed"], r["duration_s"]) for r in rows}
    todo = [(nt, s) for s in range(1, a.seeds + 1) for nt in (0.5e-9, 0.25e-9) if (nt, s, dur) not in have]

    def run(item):
        r = one(cell, trim["VGP"], vdd, item[0], item[1], dur)
        with out.open("a") as f:
            f.write(json.dumps(r) + "\n")
        return r

    with ThreadPoolExecutor(max_workers=a.workers) as ex:
        rows += list(ex.map(run, todo))
    by = {nt: [r for r in rows if r["nt"] == nt and r["duration_s"] == dur] for nt in (0.5e-9, 0.25e-9)}
    print(f"latch4_nat at VGP {trim['VGP'] * 1e3:.2f} mV, VDD {vdd * 1e3:.2f} mV, bias 0; {a.seeds} seeds x "
          f"{dur * 1e6:g} us per NT; Schmitt band +-{BAND_V * 1e3:g} mV on a {GRID_S * 1e9:g} ns grid")
    for nt, g in by.items():
        f, fse = jackknife(flip_rate, g)
        ta, tse = jackknife(tau, g)
        p, pse = jackknife(p1, g)
        n = sum(r["n_up"] + r["n_down"] for r in g)
        print(f"  NT {nt * 1e9:g} ns: {n} transitions; flip rate {f / 1e6:.3f} +- {Z95 * fse / 1e6:.3f} /us; "
              f"tau {ta * 1e9:.0f} +- {Z95 * tse * 1e9:.0f} ns; P(1) {p:.3f} +- {Z95 * pse:.3f}")
    for name, stat in (("flip rate", flip_rate), ("tau", tau)):
        lr, se = jackknife(lambda a_, b_: math.log(stat(a_) / stat(b_)), by[0.25e-9], by[0.5e-9])
        print(f"  {name} NT 0.25 / 0.5 ns = {math.exp(lr):.3f} [{math.exp(lr - Z95 * se):.3f}, "
              f"{math.exp(lr + Z95 * se):.3f}]")
    print(f"  wall {sum(r['wall_s'] for r in rows):.0f} s summed over {len(rows)} records")


if __name__ == "__main__":
    main()
