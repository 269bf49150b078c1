"""Item 4 of issue 17 (NOTES §11): the offset against energy/speed trade, from the round-5 TRADE rows.

Reads the ``x3_t_*`` rows of x1search.jsonl (written by ``x1search.py x3_t_ref x3_t_s1w2 ...
--mismatch-seeds 12``: the same mismatch seeds for every row) and prints, per candidate, the DC offset
σ over its instances with the 95 % chi-square CI, the σ relative to the baseline row on the SAME
instances (sky130's mismatch draws are N(0,1) per device scaled by its area, so a seed is the same
instance in every row: the ratio's CI is a bootstrap over instances, much tighter than the ratio of two
independent chi-square intervals), the 3-point logistic scale and hence σ in scales, and the zero-bias
τ, power and P·τ of its transient runs (τ's CI from the stream analysis).

Usage: .venv/bin/python spice_models/design/x3trade.py [--rows spice_models/design/x1search.jsonl]
       [--baseline x3_t_ref] [--boot 4000] [--seed 1]
   run the rows first (x1search's search with the offsets from one DC sweep of stage 1's well source
   per instance, x1mismatch.sweep_offset, instead of a root search):
       .venv/bin/python spice_models/design/x3trade.py --run x3_t_ref x3_t_s1w2 ... --mismatch-seeds 16
       [--duration 8us] [--workers 1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from x1search import WIDTH_PER_SCALE, logistic_scale  # noqa: E402


def sd_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Sample σ (ddof 1) of ``x`` with its chi-square CI (normal offsets), V."""
    n = len(x)
    s = float(np.std(x, ddof=1))
    a = (1 - level) / 2
    return s, s * np.sqrt((n - 1) / stats.chi2.ppf(1 - a, n - 1)), s * np.sqrt((n - 1) / stats.chi2.ppf(a, n - 1))


def paired_ratio(x: np.ndarray, y: np.ndarray, *, boot: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """σ(x)/σ(y) over the same instances, with a percentile-bootstrap 95 % CI (resampling instances)."""
    r = float(np.std(x, ddof=1) / np.std(y, ddof=1))
    idx = rng.integers(0, len(x), size=(boot, len(x)))
    rb = np.std(x[idx], axis=1, ddof=1) / np.std(y[idx], axis=1, ddof=1)
    lo, hi = np.percentile(rb, [2.5, 97.5])
    return r, float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=str(HERE / "x1search.jsonl"))
    ap.add_argument("--baseline", default="x3_t_ref")
    ap.add_argument("--boot", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--run", nargs="*", default=None, help="TRADE candidates to simulate first (rows appended to --rows)")
    ap.add_argument("--mismatch-seeds", type=int, default=16)
    ap.add_argument("--duration", default="8us")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    if a.run:
        import tempfile

        import x1search as X
        from x1mismatch import sweep_offset

        from noisecell.units import parse_si

        def off(cell, s, trim_v, vdd_v):
            return sweep_offset(cell, mismatch_seed=s, trim={"VGP": trim_v}, vdd_v=vdd_v, source="Vnw1")

        with tempfile.TemporaryDirectory(prefix="x3trade-") as td:
            for n in a.run:
                for row in X.search(X.CANDIDATES[n], Path(td), dur=parse_si(a.duration, unit="s"), seed=1,
                                    n_mm=a.mismatch_seeds, workers=a.workers, say=lambda m: print(m, flush=True),
                                    nt=0.5e-9, offset_fn=off):
                    with open(a.rows, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
    rows = {}
    for ln in Path(a.rows).read_text().splitlines():
        if ln.strip():
            r = json.loads(ln)
            if r["candidate"].startswith("x3_t_") and r.get("vdd_rel") == 1.0:
                rows[r["candidate"]] = r  # the last row of each candidate wins
    if a.baseline not in rows:
        print(f"x3trade: no {a.baseline} row in {a.rows}; run x1search.py {a.baseline} ... first", file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    base = rows[a.baseline]
    print("| candidate | what | offset σ (mV) [95 % CI] | σ / baseline's, same instances [95 % CI] | logistic scale (mV) | "
          "σ in scales | 10–90 % width (mV) | τ at 0 bias (ns) [95 % CI] | power (nW) | P·τ (aJ) | P·τ / baseline's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        offs = r["mismatch_offsets_v"]
        bo = base["mismatch_offsets_v"]
        keep = [i for i in range(min(len(offs), len(bo))) if offs[i] is not None and bo[i] is not None]
        x, y = np.array([offs[i] for i in keep]), np.array([bo[i] for i in keep])
        s, lo, hi = sd_ci(x)
        ratio = paired_ratio(x, y, boot=a.boot, rng=rng) if name != a.baseline else (1.0, 1.0, 1.0)
        z = r["zero_bias"]
        runs = [q for q in [z, *r.get("sigmoid_runs", [])] if q.get("regime") != "failed"]
        sc = logistic_scale([(q["bias_v"], q["p1"]) for q in runs]) if len(runs) >= 2 else None
        e, e0 = z.get("energy_per_bit_j"), base["zero_bias"].get("energy_per_bit_j")
        ci = z.get("tau_s_ci95") or [float("nan")] * 2
        print(f"| {name} ({len(keep)} instances) | {r['note']} | {s * 1e3:.1f} [{lo * 1e3:.1f}, {hi * 1e3:.1f}] | "
              f"{ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}] | {'—' if sc is None else f'{sc * 1e3:.2f}'} | "
              f"{'—' if sc is None else f'{s / sc:.0f}'} | {'—' if sc is None else f'{WIDTH_PER_SCALE * sc * 1e3:.1f}'} | "
              f"{z['tau_s'] * 1e9:.0f} [{ci[0] * 1e9:.0f}, {ci[1] * 1e9:.0f}] ({z['regime']}) | {z['power_w'] * 1e9:.2f} | "
              f"{'—' if e is None else f'{e * 1e18:.0f}'} | {'—' if (e is None or not e0) else f'{e / e0:.2f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
