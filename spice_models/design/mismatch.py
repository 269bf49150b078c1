"""Per-instance bias offsets of the default cell under the PDK's mismatch models (DC method).

For each mismatch seed (sky130 MC_MM_SWITCH=1, `.options seed=<seed>`: the same seed draws the
same instance), noisecell.trim.bias_offset finds the bias VB at which the instance's two half
circuits switch at the same input — the offset that instance needs for P(1) = 0.5 — at the stored
trimmed supply for (corner, temperature). Prints one line per seed and the spread.

Usage: python spice_models/design/mismatch.py [--seeds 1-20] [--corner tt] [--temp 27]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

from noisecell.cells import load_cell
from noisecell.trim import bias_offset, trimmed_point


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="pbit")
    ap.add_argument("--seeds", default="1-20")
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--temp", type=float, default=27.0)
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    cell = load_cell(a.cell)
    trim, vdd = trimmed_point(cell, a.corner, a.temp)
    print(f"cell {cell.name} {a.corner} {a.temp:g} C, VDD {vdd * 1e3:.2f} mV, bias range {cell.bias.range_v} V")
    offs = []
    for s in seeds:
        t0 = time.perf_counter()
        off = bias_offset(cell, a.corner, a.temp, mismatch_seed=s, vdd_v=vdd)
        print(f"  seed {s:4d}: bias offset {'outside the bias range' if off is None else f'{off * 1e3:+.2f} mV'}"
              f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
        if off is not None:
            offs.append(off)
    if len(offs) > 1:
        print(f"{len(offs)} of {len(seeds)} instances inside the range; mean {statistics.mean(offs) * 1e3:+.2f} mV, "
              f"std {statistics.stdev(offs) * 1e3:.2f} mV, max |offset| {max(map(abs, offs)) * 1e3:.2f} mV")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
