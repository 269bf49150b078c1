"""Loop gain, dwell time and flip rate of latch4_nat along its trim path (docs/cells.md, the table of
"latch4_nat: from NOT BISTABLE to a model").

The path: the cell as written (VGP 0 V, 66 mV), then VGP balanced at 66 mV (`noisecell.trim.balance`:
switching point at mid-rail), then the supply raised with VGP re-balanced at each step — what
`noisecell trim` walks through. Per point: the DC `cell check` (half gain at the switching point, loop
gain at the metastable point, supply current at a stable state) and transient-noise records at zero
bias (noisecell's own simulate + regime detector: regime, transitions per µs, mean dwell, P(1)).

Run from the repo root: ``.venv/bin/python spice_models/latch4_nat/trim_path.py [--duration 20us]
[--seeds 1 2] [--out trim_path.jsonl]``; two records at a time (the machine's two cores); rows already
in --out are reused (the job is the same: same cell, point, seed, duration, NT). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: supplies of the path after the balance at 66 mV, V (the trim's DC point is ~104.7 mV)
SUPPLIES_V = (0.066, 0.09, 0.1, 0.103, None, 0.106, 0.108, 0.11, 0.114)


def points(cell):
    """[(label, VGP, VDD)] along the path; None in SUPPLIES_V is the stored trim's own point."""
    from noisecell import trim as T

    stored = T.stored_trims(cell)["VGP"][0]
    out = [("as written", 0.0, 0.066)]
    for v in SUPPLIES_V:
        if v is None:
            out.append(("trim (trims.json)", float(stored["value_v"]), float(stored["vdd_v"])))
            continue
        b = T.balance(cell, "tt", 27.0, v)
        out.append((f"balanced at {v * 1e3:g} mV", float(b.trim_v), float(v)))
    return out


def dc_row(cell, vgp, vdd):
    from noisecell.cellcheck import check_cell

    c = check_cell(cell, vdd_v=vdd, trim={"VGP": vgp}, suggest=False)
    meta = [p.loop_gain for p in c.nominal.points if not p.stable]
    idd = [abs(s.current_a) for s in c.sources if s.declared]
    return {"bistable_dc": c.nominal.bistable, "vm_frac": c.nominal.switching_frac[0],
            "half_gain": c.nominal.half_gain[0], "loop_gain_metastable": max(meta) if meta else None,
            "loop_gain_switching": c.nominal.loop_gain_at_switching, "supply_current_a": max(idd) if idd else None}


def tran_row(cell, vgp, vdd, seed, duration_s):
    from noisecell.digitize import readout_signal
    from noisecell.regime import classify_waveform
    from noisecell.simulate import job_from_cell
    from noisecell.simulator import run_job
    import numpy as np

    job = job_from_cell(cell, bias_v=0.0, corner="tt", temp_c=27.0, vdd_v=vdd, trim={"VGP": vgp},
                        duration_s=duration_s, noise_step_s=0.5e-9, seed=seed)
    t0 = time.monotonic()
    wf = run_job(job, timeout_s=1800, retries=1)
    wall = time.monotonic() - t0
    skip = 0.5e-6
    r = classify_waveform(wf, skip_s=skip)
    x, _, thr = readout_signal(wf, source=job.describe())
    keep = wf.time_s >= wf.time_s[0] + skip
    return {"seed": seed, "duration_s": duration_s, "regime": r.regime, "n_transitions": r.n_transitions,
            "flips_per_us": r.n_transitions / (r.duration_s * 1e6), "mean_dwell_s": r.mean_dwell_s,
            "within_state_tau_s": r.within_state_tau_s, "valley_ratio": r.valley_ratio,
            "p1": float(np.mean(x[keep] > (0.0 if thr is None else thr))), "power_w": wf.mean_supply_power_w(),
            "wall_s": wall, "job_id": job.job_id()}


def main(argv=None):
    from noisecell.cells import load_cell
    from noisecell.units import parse_si

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", default="20us")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(HERE / "trim_path.jsonl"))
    a = ap.parse_args(argv)
    dur = parse_si(a.duration, unit="s", what="--duration")
    cell = load_cell(str(HERE))
    out = Path(a.out)
    done = {}
    if out.is_file():
        for ln in out.read_text().splitlines():
            r = json.loads(ln)
            done[(r["label"], r["seed"], r["duration_s"])] = r
    pts = points(cell)
    dc = {lab: dc_row(cell, vgp, vdd) for lab, vgp, vdd in pts}
    todo = [(lab, vgp, vdd, s) for lab, vgp, vdd in pts for s in a.seeds if (lab, s, dur) not in done]

    def one(item):
        lab, vgp, vdd, s = item
        row = {"label": lab, "vgp_v": vgp, "vdd_v": vdd, **dc[lab], **tran_row(cell, vgp, vdd, s, dur)}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    import resource
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as ex:
        for row in ex.map(one, todo):
            done[(row["label"], row["seed"], row["duration_s"])] = row
    print("| point | VGP | VDD | switching pt | half gain | loop gain (metastable) | I(Vdd) | regime (seeds) "
          "| transitions/µs | mean dwell | P(1) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, k=1e3, u="": "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v * k:.3g}{u}"  # noqa: E731
    for lab, vgp, vdd in pts:
        rows = [done[(lab, s, dur)] for s in a.seeds if (lab, s, dur) in done]
        d = dc[lab]
        print(f"| {lab} | {vgp * 1e3:+.1f} mV | {vdd * 1e3:.1f} mV | {d['vm_frac']:.2f} | {d['half_gain']:.3f} | "
              f"{fmt(d['loop_gain_metastable'], 1)} | {fmt(d['supply_current_a'], 1e9, ' nA')} | "
              + ", ".join(r["regime"] for r in rows) + " | "
              + ", ".join(f"{r['flips_per_us']:.2f}" for r in rows) + " | "
              + ", ".join(fmt(r["mean_dwell_s"], 1e9, " ns") for r in rows) + " | "
              + ", ".join(f"{r['p1']:.2f}" for r in rows) + " |")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    print(f"\n{len(todo)} of {len(pts) * len(a.seeds)} records of {dur * 1e6:g} µs at NT 0.5 ns run now: "
          f"{time.monotonic() - t0:.0f} s wall, {cpu:.0f} CPU-s in the simulator hosts")


if __name__ == "__main__":
    main()
