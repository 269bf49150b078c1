"""pbit_x5's DC readout offsets over 30 sky130 mismatch instances (writes pbit_x5/mismatch.json).

One DC sweep of Vnw1 (stage 1's well: the bias) per instance, `design/x1mismatch.sweep_offset` (the
crossing of V(w) − V(in)), at the cell.toml trims; the same method as pbit_x4/mismatch.json. Instances
whose offset lies outside the bias range are None (censored: σ biased low); σ's CI is χ² on those in
range; σ in sigmoid scales uses SCALE (the characterisation's logistic scale).

Usage (repo root): .venv/bin/python spice_models/pbit_x5/mismatch.py SCALE_V OUT.json
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "design"))

from scipy import stats  # noqa: E402

import x1mismatch as M  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402

SEEDS = range(1, 31)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    scale = float(sys.argv[1])
    cell = load_cell(str(HERE))
    trim = {k: t.nominal_v for k, t in cell.trim.items()}
    vdd = cell.supplies["vdd"].nominal_v
    t0 = time.perf_counter()
    offs = [M.sweep_offset(cell, mismatch_seed=s, trim=trim, vdd_v=vdd, source="Vnw1") for s in SEEDS]
    good = [o for o in offs if o is not None]
    sd, n = statistics.stdev(good), len(good)
    ci = [sd * ((n - 1) / stats.chi2.ppf(q, n - 1)) ** 0.5 for q in (0.975, 0.025)]
    out = {"cell": cell.name, "seeds": list(SEEDS), "offsets_v": offs, "n_in_range": n, "sd_v": sd,
           "mean_v": statistics.mean(good), "wall_s": time.perf_counter() - t0, "sd_ci95_v": [float(c) for c in ci],
           "sigmoid_scale_v": scale, "sd_scales": sd / scale, "trim": trim, "vdd_v": vdd,
           "outside_range_seeds": [s for s, o in zip(SEEDS, offs) if o is None],
           "note": "offsets: x1mismatch.sweep_offset (readout crossing w = VDD/2, one DC sweep of Vnw1 per sky130 "
                   "mismatch instance) at the cell.toml trims; instances outside the bias range are None (censored: "
                   "sd biased low); sd CI: chi2 on those in range; scale: the seed-1 default-flow run's"}
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1) + "\n")
    print(f"σ {sd * 1e3:.1f} mV [{ci[0] * 1e3:.1f}, {ci[1] * 1e3:.1f}] over {n} of {len(offs)} in range = "
          f"{sd / scale:.1f} scales, mean {out['mean_v'] * 1e3:+.1f} mV ({out['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
