"""Why the issue's designer latch (tests/data/cells/latch4_trim: nfet_01v8_lvt W 10 µm against
pfet_01v8 W 0.42 µm, cross-coupled inverters) cannot be trimmed to µs dwells (docs/cells.md).

For each common n-well offset VNW (negative: the pfets' source–well junctions forward; positive:
reverse, which weakens the pfets and lets the supply rise), the supply at which the DC loop gain at
the switching point is 1.03 (latch4_trim's trimmed gain) is bisected with `cell check`, and the
supply current there is read. Dwell ≈ (C/g)·exp(barrier/noise): at a fixed loop gain the barrier in
kT is roughly fixed, so the current per node capacitance sets the dwell. DC only (seconds).

Run from the repo root: ``.venv/bin/python spice_models/latch4_nat/designer_dc.py``. The cell is copied to
a temporary folder with VNW's range widened to [-0.1, +0.4] V and the supply's to [0.04, 0.6] V
(both inside the 1.8 V devices' ratings; cell check reports every junction).
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "tests" / "data" / "cells" / "latch4_trim"
GAIN = 1.03
VNW_V = (-0.09, -0.05, 0.0, 0.1, 0.2, 0.3, 0.4)


def main():
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    with tempfile.TemporaryDirectory() as td:
        d = Path(td) / "latch4_trim"
        shutil.copytree(CELL, d)
        t = (d / "cell.toml").read_text()
        t = re.sub(r"range_v = \[0\.064, 0\.076\]", "range_v = [0.04, 0.6]", t)
        t = re.sub(r"range_v = \[-0\.4, 0\.0\]", "range_v = [-0.1, 0.4]", t)
        (d / "cell.toml").write_text(t)
        cell = load_cell(str(d))

        def at(vdd, vnw):
            return check_cell(cell, vdd_v=vdd, trim={"VNW": vnw}, suggest=False)

        print(f"| VNW | VDD at loop gain {GAIN} | switching point | I(Vdd) at a stable state | bistable (DC) | worst junction |")
        print("|---|---|---|---|---|---|")
        for vnw in VNW_V:
            lo, hi = 0.04, 0.6
            g = lambda c: c.nominal.loop_gain_at_switching  # noqa: E731
            if g(at(hi, vnw)) < GAIN or g(at(lo, vnw)) > GAIN:
                print(f"| {vnw:+.2f} V | not in [{lo}, {hi}] V | | | | |")
                continue
            for _ in range(14):  # 0.56 V / 2^14: 34 µV
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if g(at(mid, vnw)) < GAIN else (lo, mid)
            c = at(hi, vnw)
            idd = max(abs(s.current_a) for s in c.sources if s.declared)
            j = max(c.junctions, key=lambda j: j.forward_v, default=None)
            jt = f"{j.what} {j.forward_v:.3f} V" if j else "none > 50 mV"
            print(f"| {vnw:+.2f} V | {hi * 1e3:.2f} mV | {c.nominal.switching_frac[0]:.2f} | {idd * 1e12:.3g} pA | "
                  f"{c.nominal.bistable} | {jt} |")


if __name__ == "__main__":
    main()
