"""Issue-17 item-2 figures of one characterisation (tt 27 °C), checked against the target box.

Reads a `noisecell characterize` output folder (model.json, datasheet.csv, tables/points.csv) and writes
a CSV (quantity, value, ci_lo, ci_hi, unit, note; plain SI floats) with τ(V50), P·τ(V50), the 10–90 %
width, the model's P(1) and flip rate at the cell's declared mid bias, the flip count of the design
record nearest it, and the design's cost; prints each with the target it is judged against.

Usage (repo root):
    .venv/bin/python spice_models/design/issue17_figures.py OUT_DIR FIGURES.csv [--mid-bias 0]
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scipy import stats  # noqa: E402

from noisecell.model import CellModel  # noqa: E402

#: 10-90 % width of a logistic in scales: 2·ln 9
WIDTH_PER_SCALE = 2 * math.log(9)


def p0p1_range(lo: float, hi: float) -> tuple[float, float]:
    """min and max of P·(1−P) for P in [lo, hi]."""
    ends = [lo * (1 - lo), hi * (1 - hi)]
    top = 0.25 if lo <= 0.5 <= hi else max(ends)
    return min(ends), top


def figures(out: Path, mid_bias_v: float) -> list[dict]:
    m = CellModel.load(str(out / "model.json"))
    ds = {r["quantity"]: r for r in csv.DictReader(open(out / "datasheet.csv", newline=""))}

    def g(q: str) -> tuple[float, float, float]:
        r = ds[q]
        return float(r["value"]), float(r["ci_lo"]), float(r["ci_hi"])

    rows: list[dict] = []

    def add(q, v, lo, hi, unit, note):
        rows.append(dict(quantity=q, value=v, ci_lo=lo, ci_hi=hi, unit=unit, note=note))

    s = g("sigmoid scale s (logistic)")
    add("V50", *g("V50 (bias for P(1) = 0.5)"), "V", "joint rate fit")
    add("logistic scale", *s, "V", "joint rate fit")
    add("tau(V50)", *g("correlation time τ at V50"), "s", "rate model 1/(k_up+k_down) at V50; target <= 100 ns")
    add("energy per bit P*tau(V50)", *g("energy per bit P·τ(V50)"), "J",
        f"datasheet: {ds['energy per bit P·τ(V50)']['note']} (CI from tau(V50) only); target <= 350 aJ")
    add("10-90 % width", *(WIDTH_PER_SCALE * x for x in s), "V", "2 ln 9 logistic scales; target >= 5 mV")
    p, (plo, phi) = m.p1(mid_bias_v), m.p1_ci95(mid_bias_v)
    add(f"P(1) at mid bias {mid_bias_v * 1e3:g} mV (model)", p, plo, phi, "", "target 0.4-0.6")
    t0, (tlo, thi) = m.tau(mid_bias_v), m.tau_ci95(mid_bias_v)
    qlo, qhi = p0p1_range(plo, phi)
    add(f"flip rate at mid bias (model 2 P0 P1 / tau)", 2 * p * (1 - p) / t0, 2 * qlo / thi, 2 * qhi / tlo, "1/s",
        "CI from the ends of the P(1) and tau CIs (conservative); target >= 1 flip/us")
    pts = [r for r in csv.DictReader(open(out / "tables" / "points.csv", newline=""))
           if r["part"].startswith("design-j") and r["regime"] == "bistable"]
    if pts:
        near = min(pts, key=lambda r: abs(float(r["bias_v"]) - mid_bias_v))
        n, dur = float(near["n_flips"]), float(near["duration_s"])
        lo = stats.chi2.ppf(0.025, 2 * n) / 2 if n > 0 else 0.0
        hi = stats.chi2.ppf(0.975, 2 * n + 2) / 2
        add(f"flip rate, design record nearest mid bias ({float(near['bias_v']) * 1e3:+.3f} mV, {dur * 1e6:.0f} us)",
            n / dur, lo / dur, hi / dur, "1/s", f"{int(n)} flips, exact Poisson CI; that record's P(1) "
            f"{float(near['p1']):.3f} [{float(near['p1_ci95_lo']):.3f}, {float(near['p1_ci95_hi']):.3f}]")
    for q in ("mean supply power", "design: simulated time", "design: simulator CPU time", "held-out check",
              "joint rate fit: transitions used"):
        if q in ds:
            r = ds[q]
            add(q, float(r["value"]), float("nan"), float("nan"), r["unit"], r["note"])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="a noisecell characterize output folder")
    ap.add_argument("csv", help="figures CSV to write")
    ap.add_argument("--mid-bias", type=float, default=0.0, help="the cell's declared mid bias (V), [bias] mid_v")
    a = ap.parse_args()
    out = Path(a.out)
    missing = [f for f in ("model.json", "datasheet.csv", "tables/points.csv") if not (out / f).is_file()]
    if missing:
        print(f"issue17_figures: {out} has no {', '.join(missing)}: pass a `noisecell characterize` output folder "
              "whose run wrote a model", file=sys.stderr)
        return 2
    rows = figures(out, a.mid_bias)
    with open(a.csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["quantity", "value", "ci_lo", "ci_hi", "unit", "note"])
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['quantity']}: {r['value']:.4g} [{r['ci_lo']:.4g}, {r['ci_hi']:.4g}] {r['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
