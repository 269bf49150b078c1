"""Mismatch of pbit_x1 (or another chain cell) from sky130's mismatch models: offsets and gain spread.

1. Offsets (DC, noise-free): for each mismatch seed (sky130 MC_MM_SWITCH=1, `.options seed`: the same
   seed draws the same instance), the bias at which the instance's readout pair crosses
   (noisecell.trim.bias_offset with the cell's `[balance] offset = "readout"`, the same as
   x1search.chain_offset: v_out = v_outb on the chain's steep DC transfer) — the bias that centres
   that instance's sigmoid. At the stored trimmed point of tt 27 °C (every stored trim, e.g. VGP and VNW).
   σ with its 95 % chi-square CI.
2. Gain spread (transient, a subset): each of the first --sigmoid-instances instances is run at its
   own offset and at ±Δ around it (noisecell.simulate, --noise-step); the logistic scale comes from
   the three P(1) (x1search.logistic_scale). The spread of ln(scale) across instances, minus the mean
   estimation variance of each ln(scale) (delta method from the two-state SE of each P(1),
   2p(1-p)/sqrt(N)), is the instances' gain spread; its CI is a bootstrap over instances.

Offsets are stated in V of bias and in units of the NOMINAL cell's sigmoid scale (--scale, from its
characterisation), and the per-cell offset-trim range an array needs (±3σ and the extremes seen).

Usage: nice -n 19 .venv/bin/python spice_models/design/x1mismatch.py [--cell spice_models/pbit_x1]
    [--seeds 1-30] [--sigmoid-instances 6] [--delta 4m] [--duration 6us] [--scale 2.6m]
    [--out spice_models/design/x1mismatch.json]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import x1search as X  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.regime import classify_waveform  # noqa: E402
from noisecell.simulate import job_from_cell  # noqa: E402
from noisecell.trim import bias_offset, trimmed_point  # noqa: E402
from noisecell.units import parse_si  # noqa: E402


def sweep_offset(cell, *, mismatch_seed: int, trim: dict, vdd_v: float, source: str, step_v: float = 5e-4,
                 mismatch: bool = True) -> float | None:
    """The same offset as noisecell.trim.bias_offset ("readout"), from ONE ngspice process: a DC sweep of
    the voltage source ``source`` through which (alone) the bias acts — its value at zero bias ± the
    bias range — and the linear-interpolated crossing of V(v_out) - V(v_outb) with the readout
    threshold. (bias_offset root-finds with one process per evaluation, ~12 per instance, because
    its method must work for any cell.) None outside the bias range. ``mismatch=False``: the nominal
    circuit's offset (a deliberately unbalanced design's centre; the seed is then unused)."""
    import re
    import tempfile

    import numpy as np

    from noisecell import netlist as nl
    from noisecell import trim as T
    from noisecell.simulator.batch import run_batch
    from noisecell.technology import model_lines

    vals = T._cell_values(cell, corner="tt", temp_c=27.0, bias_v=0.0, vdd_v=vdd_v, trim=trim, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    # the source's value at zero bias: evaluate its expression with the job's params
    line = next(ln for ln in body.splitlines() if ln.split() and ln.split()[0].lower() == source.lower())
    expr = re.search(r"\{(.+)\}", line).group(1)
    v0 = float(eval(expr, {}, {k: float(v) for k, v in vals.items()}))  # noqa: S307 (the cell's own .param arithmetic)
    lo, hi = cell.bias.range_v
    o, ob = cell.outputs["v_out"], cell.outputs["v_outb"]
    with tempfile.TemporaryDirectory(prefix="x2off-") as td:
        dat = f"{td}/s.dat"
        text = "\n".join(["* chain offset sweep", *model_lines(cell.technology, "tt", mismatch=mismatch), body,
                          f".options temp=27.0 tnom=27.0 seed={int(mismatch_seed)}", ".control", "set wr_singlescale",
                          f"dc {source} {v0 + lo!r} {v0 + hi!r} {step_v!r}", f"wrdata {dat} v({o})-v({ob})", "quit",
                          ".endc", ".end"]) + "\n"
        run_batch(text, td, technology=cell.technology, timeout_s=300, name=f"{cell.name} offset sweep")
        d = np.loadtxt(dat)
    b, f = d[:, 0] - v0, d[:, 1] - float(cell.readout.threshold_v or 0.0)
    k = np.nonzero(np.diff(np.sign(f)) != 0)[0]
    if not len(k):
        return None
    i = int(k[0])
    return float(b[i] + (b[i + 1] - b[i]) * f[i] / (f[i] - f[i + 1]))


def _run(args) -> dict:
    cellpath, seed_mm, bias, vdd, trim, dur, nt, timeout = args
    from noisecell.errors import SimulationError
    from noisecell.simulator import run_job

    cell = load_cell(cellpath)
    job = job_from_cell(cell, bias_v=bias, vdd_v=vdd, trim=trim, duration_s=dur, noise_step_s=nt, seed=seed_mm,
                        mismatch_seed=seed_mm)
    t0 = time.process_time()
    try:
        wf = run_job(job, retries=1, timeout_s=timeout)  # one non-convergence rung (Gear), as sweeps allow
    except SimulationError as exc:  # a stalled/failed run is recorded, not the end of the study
        return {"mismatch_seed": seed_mm, "bias_v": bias, "p1": None, "p1_se": None, "regime": "failed",
                "error": str(exc)[:200], "n_transitions": 0, "flips_per_us": float("nan"), "power_w": float("nan")}
    r = classify_waveform(wf, skip_s=0.3e-6)
    p, n = r.fraction_above_threshold, r.n_transitions
    se = 2 * p * (1 - p) / math.sqrt(n) if (0 < p < 1 and n > 0) else None
    return {"mismatch_seed": seed_mm, "bias_v": bias, "p1": p, "p1_se": se, "regime": r.regime, "n_transitions": n,
            "flips_per_us": n / (r.duration_s * 1e6), "power_w": wf.mean_supply_power_w(),
            "wall_s": wf.meta.get("wall_s") if isinstance(getattr(wf, "meta", None), dict) else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default=str(HERE.parent / "pbit_x1"))
    ap.add_argument("--seeds", default="1-30")
    ap.add_argument("--sigmoid-instances", type=int, default=6)
    ap.add_argument("--delta", default="4m", help="bias step around each instance's offset (V)")
    ap.add_argument("--duration", default="6us")
    ap.add_argument("--scale", default=None, help="nominal logistic scale (V) to express offsets in")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--noise-step", default="0.5ns")
    ap.add_argument("--timeout", default="90s", help="wall time per transient run (a stalled run is recorded as failed)")
    ap.add_argument("--sweep-source", default=None, help="voltage source through which alone the bias acts (pbit_x2: "
                    "Vnw1): offsets from one DC sweep per instance instead of bias_offset's root finding")
    ap.add_argument("--points", type=int, default=3, choices=(2, 3),
                    help="transient points per instance: 3 = offset and ±delta, 2 = ±delta only (the scale needs only those)")
    ap.add_argument("--out", default=str(HERE / "x1mismatch.json"))
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    cell = load_cell(a.cell)
    trim, vdd = trimmed_point(cell, "tt", 27.0)
    print(f"cell {cell.name} tt 27 C: VDD {vdd * 1e3:.2f} mV, trim {trim}, bias range {cell.bias.range_v} V", flush=True)
    offs: dict[int, float | None] = {}
    for s in seeds:
        t0 = time.perf_counter()
        offs[s] = (sweep_offset(cell, mismatch_seed=s, trim=trim, vdd_v=vdd, source=a.sweep_source) if a.sweep_source
                   else bias_offset(cell, "tt", 27.0, mismatch_seed=s, trim_v=trim.get("VGP"), vdd_v=vdd))
        print(f"  seed {s:3d}: offset {'outside the bias range' if offs[s] is None else '%+.2f mV' % (offs[s] * 1e3)}"
              f" ({time.perf_counter() - t0:.1f} s)", flush=True)
    good = [o for o in offs.values() if o is not None]
    res: dict = {"cell": cell.name, "corner": "tt", "temp_c": 27.0, "vdd_v": vdd, "trim": trim,
                 "offsets_v": {str(k): v for k, v in offs.items()}, "n_instances": len(seeds), "n_in_range": len(good)}
    if len(good) >= 2:
        from scipy.stats import chi2

        sd = statistics.stdev(good)
        k = len(good) - 1
        ci = [sd * math.sqrt(k / chi2.ppf(0.975, k)), sd * math.sqrt(k / chi2.ppf(0.025, k))]
        res.update({"offset_mean_v": statistics.mean(good), "offset_sd_v": sd, "offset_sd_ci95_v": ci,
                    "offset_min_v": min(good), "offset_max_v": max(good)})
        print(f"offset σ 95 % CI [{ci[0] * 1e3:.1f}, {ci[1] * 1e3:.1f}] mV (chi-square, {k + 1} instances)", flush=True)
        print(f"{len(good)} of {len(seeds)} in range: mean {statistics.mean(good) * 1e3:+.1f} mV, "
              f"σ {sd * 1e3:.1f} mV, range {min(good) * 1e3:+.1f} … {max(good) * 1e3:+.1f} mV", flush=True)
    delta = parse_si(a.delta, unit="V")
    dur = parse_si(a.duration, unit="s")
    sub = [s for s in seeds if offs[s] is not None][: a.sigmoid_instances]
    nt = parse_si(a.noise_step, unit="s")
    tmo = parse_si(a.timeout, unit="s")
    jobs = [(a.cell, s, min(max(offs[s] + k * delta, cell.bias.range_v[0]), cell.bias.range_v[1]), vdd, trim, dur, nt, tmo)
            for s in sub for k in ((-1, 0, 1) if a.points == 3 else (-1, 1))]
    if jobs:
        with Pool(a.workers, maxtasksperchild=1) as pool:
            runs = pool.map(_run, jobs)
        per = []
        res["failed_runs"] = [{k: r[k] for k in ("mismatch_seed", "bias_v", "error")} for r in runs if r["regime"] == "failed"]
        for s in sub:
            mine = [r for r in runs if r["mismatch_seed"] == s and r["regime"] != "failed"]
            sc = X.logistic_scale([(r["bias_v"], r["p1"]) for r in mine])
            at = next((r for r in mine if abs(r["bias_v"] - offs[s]) < 1e-12),
                      {"p1": float("nan"), "regime": "not run", "flips_per_us": float("nan")})
            per.append({"mismatch_seed": s, "offset_v": offs[s], "scale_v": sc, "p1_at_offset": at["p1"],
                        "regime_at_offset": at["regime"], "flips_per_us_at_offset": at["flips_per_us"], "runs": mine})
            print(f"  seed {s:3d}: scale {'-' if sc is None else '%.2f mV' % (sc * 1e3)}, at its offset P(1)="
                  f"{at['p1']:.3f} ({at['regime']}, {at['flips_per_us']:.1f} flips/µs)", flush=True)
        res["sigmoid_instances"] = per
        for p in per:  # estimation variance of ln(scale): delta method on the two outer points' logits
            srt = sorted(p["runs"], key=lambda r: r["bias_v"])
            lo_, hi_ = srt[0], srt[-1]
            ok = all(r["p1_se"] and 0.005 < r["p1"] < 0.995 for r in (lo_, hi_))
            if ok and p["scale_v"]:
                dl = math.log(hi_["p1"] / (1 - hi_["p1"])) - math.log(lo_["p1"] / (1 - lo_["p1"]))
                var = sum((r["p1_se"] / (r["p1"] * (1 - r["p1"]))) ** 2 for r in (lo_, hi_))
                p["ln_scale_se"] = math.sqrt(var) / abs(dl) if dl else None
            else:
                p["ln_scale_se"] = None
        scs = [p["scale_v"] for p in per if p["scale_v"] is not None]
        if len(scs) >= 2:
            import numpy as np

            res["scale_mean_v"], res["scale_sd_v"] = statistics.mean(scs), statistics.stdev(scs)
            ln = np.log(scs)
            ses = [p["ln_scale_se"] for p in per if p["scale_v"] is not None and p.get("ln_scale_se")]
            est_var = float(np.mean(np.square(ses))) if ses else float("nan")
            rng = np.random.default_rng(1)
            boots = [np.std(rng.choice(ln, len(ln)), ddof=1) for _ in range(2000)]
            res["ln_scale_sd"] = float(np.std(ln, ddof=1))
            res["ln_scale_sd_ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
            res["ln_scale_estimation_sd"] = math.sqrt(est_var) if est_var == est_var else None
            res["gain_spread_sd"] = math.sqrt(max(res["ln_scale_sd"] ** 2 - est_var, 0.0)) if est_var == est_var else None
            print(f"scale over {len(scs)} instances: mean {res['scale_mean_v'] * 1e3:.2f} mV, "
                  f"σ {res['scale_sd_v'] * 1e3:.2f} mV ({res['scale_sd_v'] / res['scale_mean_v']:.0%}); σ ln(scale) "
                  f"{res['ln_scale_sd']:.2f} [{res['ln_scale_sd_ci95'][0]:.2f}, {res['ln_scale_sd_ci95'][1]:.2f}], of which "
                  f"estimation {res['ln_scale_estimation_sd']}: gain spread {res['gain_spread_sd']}", flush=True)
    nominal = parse_si(a.scale, unit="V") if a.scale else res.get("scale_mean_v")
    if nominal and "offset_sd_v" in res:
        res["nominal_scale_v"] = nominal
        res["offset_sd_scales"] = res["offset_sd_v"] / nominal
        res["trim_range_3sigma_v"] = [res["offset_mean_v"] - 3 * res["offset_sd_v"], res["offset_mean_v"] + 3 * res["offset_sd_v"]]
        print(f"offset σ = {res['offset_sd_scales']:.1f} sigmoid scales (scale {nominal * 1e3:.2f} mV); per-cell "
              f"offset trim for ±3σ: {res['trim_range_3sigma_v'][0] * 1e3:+.0f} … {res['trim_range_3sigma_v'][1] * 1e3:+.0f} mV",
              flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
