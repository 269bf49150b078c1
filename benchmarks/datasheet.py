#!/usr/bin/env python
"""Simulated and wall time to reach the datasheet targets: sequential design against today's fixed design.

    python benchmarks/datasheet.py [--seeds 6]            # synthetic telegraph cell (pbit-like), ~1 min
    python benchmarks/datasheet.py --cell pbit [--out DIR] [--spec SPEC] [--fixed-cap 0.3]   # ngspice (slow)

Both designs run on the same cell in the same run, with the same estimator (the joint censored-dwell
rate fit, profile-likelihood CIs) and the same targets (default: V50 ±0.5 mV, scale ±5 %, τ(V50)
±10 %, 95 % half-widths), so the only difference is where the records go:

* fixed (baseline, the default spec before issue 14): 5 bias points over the central 45 % of the
  pilot's window (V50 ± ~1.3 scales for pbit), every point extended by one ``--chunk`` per round
  until the targets are met or ``--fixed-cap`` × the sequential design's simulated time is spent
  (then the time still needed is extrapolated with CI half-width ∝ 1/√T, and said so; the ratio is
  then at least the cap);
* sequential: :func:`noisecell.design.run_design` from the same starting guess; with ``--cell``,
  exactly characterize's nominal design (the spec's [design] table, the pilot's records): run in a
  ``characterize --out`` folder of the same spec, its pilot and design resume from the store (the
  design is deterministic), so only the fixed design is simulated, and the sequential design's CPU
  and wall time are those of the characterize run (its datasheet.csv).

Prints each design's simulated time, wall time, rounds and half-widths reached, and the ratio
fixed/sequential in simulated time (target ≥ 3).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from noisecell.design import Budget, DesignJob, DesignSettings, Targets, rate_points, run_design
from noisecell.design_runner import SyntheticTruth
from noisecell.model.ratefit import fit_rates_joint


def fixed_design(runner, biases, chunk_s, targets, cap_s, seed, rate_regimes, log, initial=(), min_record_s=10e-6):
    """Every bias extended by one chunk per round until the targets are met or cap_s is simulated
    (``initial``: records both designs start from, e.g. the pilot's; not counted as simulated). The
    fit takes the records the sequential design's fit would (:func:`noisecell.design.rate_points`
    with the design's shortest chunk ``min_record_s``): the same estimator for both designs."""
    points, simulated, t0, rounds = list(initial), 0.0, time.monotonic(), 0
    fit = None
    while simulated < cap_s:
        jobs = [DesignJob(float(v), chunk_s, seed + 1000 * rounds + i, "fixed") for i, v in enumerate(biases)]
        points += list(runner(rounds, jobs))
        simulated += chunk_s * len(jobs)
        rounds += 1
        try:
            fit = fit_rates_joint(rate_points(points, rate_regimes, min_record_s))
        except Exception:  # noqa: BLE001 - not enough telegraph points yet
            fit = None
        if fit is not None:
            r = targets.ratios(fit)
            log(f"fixed round {rounds}: {simulated * 1e6:.4g} µs; half-width / target "
                + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))
            if max(r.values()) <= 1:
                return fit, simulated, time.monotonic() - t0, rounds, False
    # not met within the cap: half-widths shrink as 1/sqrt(T), so T_needed = T·max(ratio)²
    need = simulated * (max(targets.ratios(fit).values()) ** 2 if fit is not None else math.inf)
    return fit, need, time.monotonic() - t0, rounds, True


def bound_report(model, lo_v, hi_v, targets, fixed_biases, dispersion=1.0, n=53):
    """(bound s, its support [(bias, weight)], the fixed design's information-model time s): the
    minimax allocation (:func:`noisecell.design.optimal_design`) over ``n`` biases in [lo_v, hi_v]
    (where the cell telegraphs) at ``model``'s parameters, and the fixed design's equal allocation."""
    from noisecell.design import design_time, optimal_design

    b = np.linspace(lo_v, hi_v, n)
    t, w = optimal_design(model, b, targets, dispersion)
    sup = [(float(b[i]), float(w[i])) for i in range(n) if w[i] > 0.01]
    return t, sup, design_time(model, fixed_biases, np.ones(len(fixed_biases)), targets, dispersion)


def decompose(res) -> dict:
    """Where a sequential design's simulated time went (s): start records, tail records, rate records
    that did not enter the rate fit (beyond the telegraph edge), rate records in the fit up to the
    job after which the completed prefix first met every target, and the jobs after it (outstanding
    when the targets were met); plus the time allocation of the useful rate records (for
    :func:`noisecell.design.design_time`)."""
    fit_ids = {id(p) for p in res.fit_points}
    own = list(zip(res.jobs, res.points[res.initial_points:]))
    met_at = next((r.index for r in res.jobs if r.achieved and max(r.achieved.values()) <= 1), None)
    out = {"start": 0.0, "tail": 0.0, "not_in_fit": 0.0, "rates_in_fit": 0.0, "after_met": 0.0}
    useful = []
    for r, p in own:
        d = r.job.duration_s
        if met_at is not None and r.index > met_at:
            out["after_met"] += d
        elif r.job.purpose in ("start", "tail"):
            out[r.job.purpose] += d
        elif id(p) in fit_ids:
            out["rates_in_fit"] += d
            useful.append((r.job.bias_v, d))
        else:
            out["not_in_fit"] += d
    out["useful"] = useful
    return out


def tail_simulated_s(res) -> float:
    """Simulated time (s) of a design's calibration tail records (the fixed design has none)."""
    return sum(r.job.duration_s for r in res.jobs if r.job.purpose == "tail")


def one_run(args, targets, seed, log) -> dict:
    """Both designs once on the cell chosen by ``args`` (the synthetic one, or --cell), seed ``seed``."""
    pool = None
    if args.cell is None:
        from noisecell.design_runner import SyntheticRunner

        truth = SyntheticRunner(bistable_within=2.6)      # pbit: minority level lost past P(1) ≈ 0.07/0.93
        mk = lambda tag: SyntheticRunner(bistable_within=2.6)  # noqa: E731 - same cell for both designs
        v50_guess, scale_guess = truth.v50_v + 0.3 * truth.scale_v, 1.3 * truth.scale_v
        window = (truth.v50_v - 3 * truth.scale_v, truth.v50_v + 3 * truth.scale_v)
        limits = (truth.v50_v - 0.4, truth.v50_v + 0.4)
        rate_regimes = ("bistable",)
        initial = []
        chunks = (10e-6, 20e-6, 40e-6, 80e-6)
        what = "synthetic telegraph cell (V50 +0.5 mV, scale 3 mV, τ(V50) 250 ns, dt 10 ns)"
    else:
        from noisecell.cells import load_cell
        from noisecell.design_runner import SweepRunner, points_from_sweep
        from noisecell.report.procedures.design import run_design as run_nominal_design
        from noisecell.report.procedures.pilot import run_pilot
        from noisecell.report.procedures.spec import load_char_spec
        from noisecell.sequential import parse_design
        from noisecell.simulator.pool import HostPool

        out = Path(args.out)
        spec = load_char_spec(args.spec, quick=False, cell_name=args.cell)
        if spec.design is None:
            raise SystemExit(f"{spec.source}: no [design] table: the benchmark runs the spec's sequential design")
        cellspec = load_cell(spec.cell)
        pool = HostPool(args.workers)
        pilot = run_pilot(spec, cellspec, out, args.workers, False, pool=pool)
        log(pilot.note)
        win = pilot.window
        initial = [p for n, r in zip(pilot.stage_names, pilot.sweeps) for p in points_from_sweep(out / "sweep" / n, r, n)]
        dsettings = parse_design(spec.design, spec.source)[0]
        targets, chunks = dsettings.targets, dsettings.chunk_lengths_s
        shared = {k: v for k, v in spec.shared.items() if k != "adaptive"}
        mk = lambda tag: SweepRunner(spec.cell, out / "sweep", shared, cellspec.nominal_corner,  # noqa: E731
                                     float(cellspec.nominal_temp_c), workers=args.workers, pool=pool, prefix=tag)
        rate_regimes = ("bistable",)
        what = f"cell {args.cell} at {cellspec.nominal_corner}/{cellspec.nominal_temp_c:g} °C"

    print(f"datasheet benchmark on the {what}, seed {seed}; targets V50 ±{targets.v50_halfwidth_v * 1e3:g} mV, "
          f"scale ±{100 * targets.scale_rel_halfwidth:g} %, τ(V50) ±{100 * targets.tau_rel_halfwidth:g} %")
    t0 = time.monotonic()
    if args.cell is None:
        settings = DesignSettings(targets=targets, budget=Budget(simulated_s=args.budget), jobs_per_round=args.workers,
                                  chunk_lengths_s=chunks, seed=seed, rate_regimes=rate_regimes)
        seq = run_design(mk("seq"), settings, v50_guess=v50_guess, scale_guess=scale_guess, bias_limits=limits,
                         initial=initial, log=log)
    else:
        # exactly characterize's nominal design (its [design] table, the pilot's records, the same job
        # names): in an OUT folder where `characterize` already ran, every job resumes from the store
        seq = run_nominal_design(spec, cellspec, out, pilot, args.workers, False, pool=pool)[0].design
        window = (win[0], win[1]) if win else (seq.fit.v50.value - 3 * abs(seq.fit.scale.value),
                                               seq.fit.v50.value + 3 * abs(seq.fit.scale.value))
    seq_wall = time.monotonic() - t0
    print(seq.summary())
    centre, half = 0.5 * (window[0] + window[1]), 0.5 * (window[1] - window[0])
    biases = np.round(centre + 0.45 * half * np.linspace(-1, 1, 5), 9)
    cap = args.fixed_cap * seq.simulated_s
    fixed_runner = mk("fixed")
    c0 = fixed_runner.cpu_seconds() if hasattr(fixed_runner, "cpu_seconds") else float("nan")
    if hasattr(fixed_runner, "cpu_seconds") and not math.isfinite(c0):
        c0 = 0.0          # no simulator host started yet (the sequential design resumed from the store)
    ffit, f_sim, f_wall, f_rounds, extrap = fixed_design(fixed_runner, biases, args.chunk, targets, cap,
                                                         seed + 50_000, rate_regimes, log, initial, chunks[0])
    f_cpu = (fixed_runner.cpu_seconds() - c0) if hasattr(fixed_runner, "cpu_seconds") else float("nan")
    fr = targets.ratios(ffit) if ffit is not None else {}
    print(f"fixed design: 5 points {biases[0] * 1e3:+.3f} … {biases[-1] * 1e3:+.3f} mV, {f_rounds} rounds of "
          f"{args.chunk * 1e6:g} µs each; " + ("targets NOT met within the cap: simulated time needed "
          f"extrapolated (CI ∝ 1/√T) to {f_sim * 1e6:.4g} µs" if extrap else f"targets met after {f_sim * 1e6:.4g} µs")
          + f"; wall {f_wall:.1f} s; half-width / target at the end: "
          + ", ".join(f"{k} {v:.2f}" for k, v in fr.items()))
    # where the sequential design's time went, and the information bound (docs/datasheet.md)
    from noisecell.design import design_time

    dec = decompose(seq)
    if args.cell is None:
        model, disp = SyntheticTruth(truth), 1.0
        edge = truth.bistable_within * truth.scale_v
        lo_e, hi_e = truth.v50_v - edge, truth.v50_v + edge
        at = "the true parameters, biases where the cell telegraphs (V50 ± 2.6 scales), φ = 1"
    else:
        from noisecell.design import confirmed_span

        model, disp = seq.fit, max(1.0, seq.fit.dispersion)
        lo_e, hi_e = confirmed_span(seq.points, rate_regimes, chunks[0])
        at = (f"the sequential fit's parameters, biases in its telegraph span {lo_e * 1e3:+.2f} … {hi_e * 1e3:+.2f} mV, "
              f"φ = {disp:.2f}")
    bound, support, fixed_model = bound_report(model, lo_e, hi_e, targets, biases, disp)
    ub, uw = zip(*dec["useful"]) if dec["useful"] else ((), ())
    alloc = design_time(model, ub, uw, targets, disp) if ub else float("nan")
    print(f"information bound at {at}: {bound * 1e6:.4g} µs (minimax allocation: "
          + ", ".join(f"{w:.2f} at {(v - model.v50.value) / model.scale.value:+.2f} scales" for v, w in support)
          + f"); the fixed design's allocation needs {fixed_model * 1e6:.4g} µs by the same model (bound / fixed: "
          f"ratio ≤ {fixed_model / bound:.3g})")
    print("sequential design's time: " + ", ".join(f"{k} {v * 1e6:.4g} µs" for k, v in dec.items() if k != "useful")
          + f"; its useful rate records' allocation needs {alloc * 1e6:.4g} µs by the model")
    tail = tail_simulated_s(seq)
    ratio = f_sim / seq.simulated_s if seq.met else float("nan")
    ratio_rates = f_sim / (seq.simulated_s - tail) if seq.met else float("nan")
    print(f"sequential: {seq.simulated_s * 1e6:.4g} µs simulated (of which {tail * 1e6:.4g} µs calibration tail "
          f"records, which the fixed design does not take), {seq_wall:.1f} s wall, {seq.cpu_s:.4g} simulator "
          f"CPU-s, {len(seq.jobs)} jobs, stopped: {seq.reason}; fixed: {f_cpu:.4g} simulator CPU-s for the "
          f"{f_rounds * len(biases) * args.chunk * 1e6:.4g} µs it simulated; load average {os.getloadavg()[0]:.2f}")
    print(f"ratio fixed / sequential in simulated time: {ratio:.3g} (without the sequential design's tail "
          f"records: {ratio_rates:.3g})" + (" (fixed design extrapolated beyond its cap of "
          f"{args.fixed_cap:g}×)" if extrap else "") + "; target ≥ 3")
    if pool is not None:
        pool.close()
    return {"seed": seed, "sequential_simulated_s": seq.simulated_s, "sequential_tail_s": tail,
            "sequential_wall_s": seq_wall, "sequential_met": seq.met, "sequential_cpu_s": seq.cpu_s,
            "fixed_simulated_s": f_sim, "fixed_wall_s": f_wall, "fixed_cpu_s": f_cpu, "fixed_extrapolated": extrap,
            "ratio": ratio, "ratio_without_tails": ratio_rates, "bound_s": bound, "fixed_model_s": fixed_model,
            "useful_allocation_s": alloc, **{f"seq_{k}_s": v for k, v in dec.items() if k != "useful"}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default=None, help="a cell to simulate (default: the synthetic telegraph cell)")
    ap.add_argument("--out", default="bench-datasheet", help="folder for the sweeps of --cell (a characterize "
                    "--out folder of the same spec: its pilot and nominal design resume from the store)")
    ap.add_argument("--spec", default=None, help="characterisation spec for --cell (default: the package's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--seeds", type=int, default=6, help="synthetic cell: run seeds seed … seed+N−1 and report the "
                    "ratio of the summed simulated times with a CI over seeds (default 6; --cell: one run)")
    ap.add_argument("--v50-halfwidth", type=float, default=0.5e-3, help="V50 target, V (default 0.5 mV; "
                    "synthetic cell only: --cell uses its spec's [design] targets)")
    ap.add_argument("--scale-rel", type=float, default=0.05, help="scale target, relative (default 0.05)")
    ap.add_argument("--tau-rel", type=float, default=0.10, help="τ(V50) target, relative (default 0.10)")
    ap.add_argument("--chunk", type=float, default=20e-6, help="fixed design's record extension per round, s")
    ap.add_argument("--budget", type=float, default=3e-3, help="sequential design's simulated-time budget, s")
    ap.add_argument("--fixed-cap", type=float, default=4.0, help="fixed design stops at this multiple of the "
                    "sequential simulated time (then extrapolates)")
    args = ap.parse_args(argv)
    targets = Targets(args.v50_halfwidth, args.scale_rel, args.tau_rel)
    log = (lambda m: print(m, file=sys.stderr, flush=True))
    seeds = [args.seed] if args.cell is not None else [args.seed + i for i in range(max(1, args.seeds))]
    runs = [one_run(args, targets, s, log) for s in seeds]
    out = {"runs": runs}
    if len(runs) > 1:
        # one design's simulated time to the targets varies from seed to seed (±20 %): the ratio of the
        # summed times over seeds, with a 95 % CI from the seeds' per-run ratios on the log scale
        # (t-interval of the mean log ratio), says more than one seed's ratio
        from scipy import stats

        ok = [r for r in runs if r["sequential_met"]]
        seq_t = sum(r["sequential_simulated_s"] for r in ok)
        fix_t = sum(r["fixed_simulated_s"] for r in ok)
        lr = np.log([r["ratio"] for r in ok])
        n = len(lr)
        half = stats.t.ppf(0.975, n - 1) * lr.std(ddof=1) / math.sqrt(n) if n > 1 else math.inf
        gm = math.exp(lr.mean()) if n else float("nan")
        print(f"over {len(runs)} seeds ({n} met their targets): sequential {seq_t / max(n, 1) * 1e6:.4g} µs, fixed "
              f"{fix_t / max(n, 1) * 1e6:.4g} µs mean simulated time; ratio of the sums {fix_t / seq_t:.3g}; geometric "
              f"mean ratio {gm:.3g} [{math.exp(lr.mean() - half):.3g}, {math.exp(lr.mean() + half):.3g}] (95 % CI over "
              f"seeds); per seed " + ", ".join(f"{r['ratio']:.2f}" for r in runs) + "; target ≥ 3")
        keys = ["start", "tail", "not_in_fit", "rates_in_fit", "after_met"]
        mean = {k: float(np.mean([r[f"seq_{k}_s"] for r in runs])) for k in keys}
        bound = float(np.mean([r["bound_s"] for r in runs]))
        fixed_model = float(np.mean([r["fixed_model_s"] for r in runs]))
        alloc = float(np.mean([r["useful_allocation_s"] for r in runs]))
        print("mean sequential time per seed: " + ", ".join(f"{k} {v * 1e6:.4g} µs" for k, v in mean.items())
              + f"; the useful rate records' allocation needs {alloc * 1e6:.4g} µs by the information model, the "
              f"bound {bound * 1e6:.4g} µs, the fixed design's allocation {fixed_model * 1e6:.4g} µs (fixed / bound "
              f"{fixed_model / bound:.3g}: the largest ratio any design can reach on this cell by the model)")
        out.update(ratio_of_sums=fix_t / seq_t if seq_t else float("nan"), geometric_mean_ratio=gm,
                   ratio_ci=(math.exp(lr.mean() - half), math.exp(lr.mean() + half)), mean_decomposition_s=mean,
                   bound_s=bound, fixed_model_s=fixed_model)
    return out


if __name__ == "__main__":
    main()
