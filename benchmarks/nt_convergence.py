"""NT-convergence study of the default cell (issue 12 item 2): how the datasheet's quantities move with
the noise step NT, and what NT → 0 gives.

For each NT (default 0.25, 0.5, 1, 2 ns) and bias (V50 ≈ the cell's mid bias, and ±delta around it)
many seeded jobs run on the compiled noise route (same results as the portable one, ~5x faster).
Every waveform is digitised the same way whatever its NT — sampled on one common grid (default
2 ns, a multiple of every NT, so each sample is a solver time point), the cell's Schmitt band
(threshold and hysteresis from cell.toml) — so only the physics can depend on NT. Per job it
stores, after dropping the first ``--settle`` of the run: up/down transition counts and the time
spent in each state. Pooled over seeds:

* flip rate f = (n_up + n_down)/T;  k_up = n_up/T_0, k_down = n_down/T_1 (dwell-time rates);
* τ = 1/(k_up + k_down) (the telegraph's correlation time), P(1) = T_1/T, at the mid bias;
* slopes d ln k / dV_B from a weighted straight-line fit over the three biases.

Uncertainties: each job is an independent replicate (own seed), so the standard error of a pooled
ratio estimator comes from the between-job scatter (delete-one-job jackknife), which includes the
telegraph's own correlations without modelling them; 95 % CI = ±1.96 SE.

Noise routes (``--routes``, default ``compiled``): each variant is a route of noisecell.noise,
``compiled`` (TRRANDOM unit sources, breakpoint at every NT), ``portable``, or ``smooth`` (the
breakpoint-free interpolated noise of the nc_unit code model); ``smooth/m`` is the smooth route with
m solver points forced per NT (noise.SMOOTH_SUBSTEPS = m: the noise bandwidth stays 1/(2NT), the
solver step becomes NT/m), which separates the noise's own resolution from the solver's;
``smooth/a`` the align mode (SMOOTH_SUBSTEPS = -1: a breakpoint only to get back onto the grid, so
steps are trapezoidal rather than the backward-Euler step ngspice takes after every breakpoint). Every
variant runs the same seeds, biases and NTs, round-robin, so stopping early leaves all of them with
about the same data; ``--reference`` (default the first variant) is the one the others are
compared with: the ratio of flip rate, τ and P(1) at the same NT and at the reference's finest NT,
with a 95 % CI from the two independent jackknife SEs (delta method on the log).

NT → 0: Richardson extrapolation from the two finest steps assuming an error ∝ NT^p, with p taken
as 1 and as 2, and weighted straight-line fits of the quantity against NT and against NT² over all
steps (all printed; with the precision reached the data cannot tell p).

Results go to ``--out`` (one JSON line per job; re-running resumes, skipping done jobs), and the
table is printed. Sized by --seeds and --duration; the job order is round-robin (seed outer loop),
so stopping early leaves every (NT, bias) with about the same amount of data.

    nice -n 19 .venv/bin/python benchmarks/nt_convergence.py [--seeds 20] [--duration 10us] [--workers 1]
           [--steps 0.25n,0.5n,1n,2n] [--routes compiled,smooth@0.25n,smooth/2] [--reference compiled]
           [--delta 10mV] [--mid-only] [--out benchmarks/results/nt_convergence.jsonl]
           [--table-only]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noisecell.cells import load_cell  # noqa: E402
from noisecell.digitize import schmitt  # noqa: E402
from noisecell.units import parse_si  # noqa: E402

Z95 = 1.959963984540054


def _variant(v: str) -> tuple[str, int]:
    """"smooth/2" -> ("smooth", 2); "smooth/a" -> ("smooth", -1) (align mode); "compiled" -> ("compiled", 1)."""
    route, _, m = v.partition("/")
    return route, (-1 if m == "a" else int(m or 1))


def _row_variant(r: dict) -> str:
    return r.get("variant") or r.get("route") or "compiled"


def _run_one(cell_name: str, bias_v: float, nt: float, seed: int, duration_s: float, grid_s: float,
             settle_s: float, variant: str = "compiled") -> dict:
    import dataclasses
    import noisecell.noise as noise
    from noisecell.simulate import job_from_cell
    from noisecell.simulator.session import run_job_in_process
    route, substeps = _variant(variant)
    noise.SMOOTH_SUBSTEPS = substeps  # this worker process's setting (a module constant of the route)
    cell = load_cell(cell_name)
    job = dataclasses.replace(job_from_cell(cell, bias_v=bias_v, duration_s=duration_s, noise_step_s=nt,
                                            seed=seed), noise_route=route)
    t0 = time.process_time()
    wf = run_job_in_process(job)
    cpu = time.process_time() - t0
    k = int(round(grid_s / nt))
    first = int(round(settle_s / nt))
    v = wf.outputs["v_out"] - (wf.outputs["v_outb"] if cell.readout.mode == "differential" else 0.0)
    v = v[first::k]
    bits = schmitt(v, cell.readout.threshold_v, cell.readout.hysteresis_v or 0.0)
    d = np.diff(bits.astype(np.int8))
    occ = bits[:-1]  # state during each grid interval
    return {"nt": nt, "bias": bias_v, "seed": seed, "duration_s": duration_s, "grid_s": grid_s,
            "settle_s": settle_s, "n_up": int(np.sum(d == 1)), "n_down": int(np.sum(d == -1)),
            "t0": float(np.sum(occ == 0) * grid_s), "t1": float(np.sum(occ == 1) * grid_s),
            "fast_tau_s": wf.meta.get("fast_tau_est_s"), "route": (wf.meta.get("noise") or {}).get("route"),
            "variant": variant, "solver_points": wf.meta.get("solver_points"),
            "cpu_s": cpu, "wall_s": wf.meta.get("wall_time_s")}


def _jackknife(rows: list[dict], stat) -> tuple[float, float]:
    """(estimate, standard error) of stat(rows) by the delete-one-job jackknife."""
    est = stat(rows)
    n = len(rows)
    if n < 3:
        return est, float("nan")
    loo = np.array([stat(rows[:i] + rows[i + 1:]) for i in range(n)])
    return est, float(math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def _sums(rows):
    return (sum(r["n_up"] for r in rows), sum(r["n_down"] for r in rows),
            sum(r["t0"] for r in rows), sum(r["t1"] for r in rows))


def flip_rate(rows):
    u, d, t0, t1 = _sums(rows)
    return (u + d) / (t0 + t1)


def k_up(rows):
    u, d, t0, t1 = _sums(rows)
    return u / t0 if t0 > 0 else float("nan")


def k_down(rows):
    u, d, t0, t1 = _sums(rows)
    return d / t1 if t1 > 0 else float("nan")


def tau(rows):
    return 1.0 / (k_up(rows) + k_down(rows))


def p1(rows):
    u, d, t0, t1 = _sums(rows)
    return t1 / (t0 + t1)


def _slope(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Weighted straight-line slope of y(x) and its SE; points (x, y, se_y)."""
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    w = 1 / np.array([p[2] for p in points]) ** 2
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    b = np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx
    return float(b), float(math.sqrt(1 / sxx))


def summarise(rows: list[dict], mid: float) -> dict:
    """{nt: {quantity: (estimate, se)}} for the five datasheet quantities."""
    out = {}
    for nt in sorted({r["nt"] for r in rows}):
        at = [r for r in rows if r["nt"] == nt]
        mid_rows = [r for r in at if abs(r["bias"] - mid) < 1e-12]
        q = {"jobs": (len(at), 0.0), "sim_us": (sum(r["duration_s"] - r["settle_s"] for r in at) * 1e6, 0.0),
             "cpu_s_per_us": (sum(r["cpu_s"] for r in at) / (sum(r["duration_s"] for r in at) * 1e6), 0.0)}
        if mid_rows:
            q["flip_rate_per_us"] = tuple(x * 1e-6 for x in _jackknife(mid_rows, flip_rate))
            q["tau_ns"] = tuple(x * 1e9 for x in _jackknife(mid_rows, tau))
            q["p1"] = _jackknife(mid_rows, p1)
            q["flips_mid"] = (sum(r["n_up"] + r["n_down"] for r in mid_rows), 0.0)
        for name, fn in (("slope_ln_kup_per_v", k_up), ("slope_ln_kdown_per_v", k_down)):
            pts = []
            for b in sorted({r["bias"] for r in at}):
                rb = [r for r in at if r["bias"] == b]
                est, se = _jackknife(rb, fn)
                if len(rb) >= 3 and est > 0 and math.isfinite(se) and se > 0:
                    pts.append((b, math.log(est), se / est))
            if len(pts) >= 2:
                q[name] = _slope(pts)
        out[nt] = q
    return out


def richardson(s: dict, name: str, p: float) -> tuple[float, float] | None:
    """NT → 0 limit from the two finest steps, error ∝ NT^p: L = (r^p·A(h) − A(rh))/(r^p − 1)."""
    nts = [nt for nt in sorted(s) if name in s[nt]]
    if len(nts) < 2:
        return None
    h1, h2 = nts[0], nts[1]
    (a1, e1), (a2, e2) = s[h1][name], s[h2][name]
    rp = (h2 / h1) ** p
    return (rp * a1 - a2) / (rp - 1), math.sqrt((rp * e1) ** 2 + e2 ** 2) / (rp - 1)


def fit_limit(s: dict, name: str, p: float) -> tuple[float, float] | None:
    """NT → 0 limit a from a weighted straight-line fit of the quantity against NT^p over every step."""
    pts = [(nt ** p, *s[nt][name]) for nt in sorted(s) if name in s[nt] and math.isfinite(s[nt][name][1])
           and s[nt][name][1] > 0]
    if len(pts) < 3:
        return None
    x = np.array([q[0] for q in pts])
    y = np.array([q[1] for q in pts])
    w = 1 / np.array([q[2] for q in pts]) ** 2
    a_mat = np.vstack([np.ones_like(x), x]).T
    cov = np.linalg.inv(a_mat.T @ (w[:, None] * a_mat))
    coef = cov @ a_mat.T @ (w * y)
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


QUANTITIES = [("flip_rate_per_us", "flip rate (/µs)"), ("tau_ns", "τ at V50 (ns)"), ("p1", "P(1) at V50"),
              ("slope_ln_kup_per_v", "d ln k_up/dV_B (/V)"), ("slope_ln_kdown_per_v", "d ln k_down/dV_B (/V)")]


def table(rows: list[dict], mid: float) -> str:
    """The per-NT table of every variant (one block each)."""
    variants = list(dict.fromkeys(_row_variant(r) for r in rows))
    return "\n\n".join(f"variant {v}:\n" + _table1([r for r in rows if _row_variant(r) == v], mid)
                       for v in variants)


def comparison(rows: list[dict], mid: float, reference: str) -> str:
    """Ratios variant/reference of flip rate, τ and P(1) at V50, at the same NT and against the
    reference's finest NT, with 95 % CIs (independent jackknife SEs, delta method on the log)."""
    ref = summarise([r for r in rows if _row_variant(r) == reference], mid)
    if not ref:
        return f"(no rows of the reference variant {reference})"
    finest = min(nt for nt in ref if "flip_rate_per_us" in ref[nt])
    lines = [f"ratios to {reference} (95 % CI); 'vs finest' = against {reference} at NT = {finest * 1e9:g} ns",
             "| variant | NT (ns) | points/NT | CPU s/µs | flip rate | τ at V50 | P(1) at V50 | flip rate vs finest | τ vs finest |",
             "|---|---|---|---|---|---|---|---|---|"]

    def ratio(a, b) -> str:
        (ea, sa), (eb, sb) = a, b
        r = ea / eb
        se = math.sqrt((sa / ea) ** 2 + (sb / eb) ** 2)
        return f"{r:.3f} [{r * math.exp(-Z95 * se):.3f}, {r * math.exp(Z95 * se):.3f}]"

    for v in dict.fromkeys(_row_variant(r) for r in rows):
        at_v = [r for r in rows if _row_variant(r) == v]
        s = summarise(at_v, mid)
        for nt in sorted(s):
            q = s[nt]
            if "flip_rate_per_us" not in q:
                continue
            pts = [r["solver_points"] / (r["duration_s"] / r["nt"]) for r in at_v
                   if r["nt"] == nt and r.get("solver_points")]
            cells = [v, f"{nt * 1e9:g}", f"{np.mean(pts):.2f}" if pts else "—", f"{q['cpu_s_per_us'][0]:.3f}"]
            same = ref.get(nt)
            for key in ("flip_rate_per_us", "tau_ns", "p1"):
                cells.append(ratio(q[key], same[key]) if same and key in same and v != reference else "—")
            for key in ("flip_rate_per_us", "tau_ns"):
                cells.append(ratio(q[key], ref[finest][key]) if not (v == reference and nt == finest) else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table1(rows: list[dict], mid: float) -> str:
    s = summarise(rows, mid)
    nts = sorted(s)
    lines = ["| quantity | " + " | ".join(f"NT = {nt * 1e9:g} ns" for nt in nts)
             + " | NT→0 (Richardson p=1) | NT→0 (p=2) | NT→0 (fit a+b·NT, all steps) | NT→0 (fit a+b·NT²) |",
             "|---|" + "---|" * (len(nts) + 4)]
    for key, label in QUANTITIES:
        cells = []
        for nt in nts:
            if key in s[nt]:
                e, se = s[nt][key]
                cells.append(f"{e:.4g} ± {Z95 * se:.2g}")
            else:
                cells.append("—")
        for p in (1, 2):
            r = richardson(s, key, p)
            cells.append("—" if r is None else f"{r[0]:.4g} ± {Z95 * r[1]:.2g}")
        for p in (1, 2):
            r = fit_limit(s, key, p)
            cells.append("—" if r is None else f"{r[0]:.4g} ± {Z95 * r[1]:.2g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| jobs / simulated µs | " + " | ".join(
        f"{s[nt]['jobs'][0]} / {s[nt]['sim_us'][0]:.0f}" for nt in nts) + " | | | | |")
    lines.append("| flips at V50 | " + " | ".join(f"{s[nt].get('flips_mid', (0, 0))[0]}" for nt in nts) + " | | | | |")
    lines.append("| CPU s per simulated µs | " + " | ".join(f"{s[nt]['cpu_s_per_us'][0]:.3f}" for nt in nts) + " | | | | |")
    taus = {nt: [r["fast_tau_s"] for r in rows if r["nt"] == nt and r["fast_tau_s"]] for nt in nts}
    lines.append("| fast τ at v_out (ns, median) | " + " | ".join(
        f"{np.median(taus[nt]) * 1e9:.3g}" if taus[nt] else "—" for nt in nts) + " | | | | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="pbit")
    ap.add_argument("--steps", default="0.25n,0.5n,1n,2n")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--duration", default="10us", help="per job, s")
    ap.add_argument("--settle", default="0.1us", help="dropped at the start of every job, s")
    ap.add_argument("--grid", default="2ns", help="common digitisation grid, s (a multiple of every step)")
    ap.add_argument("--delta", default="10mV", help="bias offset of the slope points, V")
    ap.add_argument("--mid-weight", type=int, default=2, help="jobs at the mid bias per job at each side")
    ap.add_argument("--mid-only", action="store_true",
                    help="only mid-bias jobs (flip rate, τ, P(1)); the slopes keep the jobs already stored")
    ap.add_argument("--routes", default="compiled",
                    help="comma-separated variants: compiled, portable, smooth, smooth/m (m solver points per NT), "
                         "each optionally @NT (that step only; else every --steps)")
    ap.add_argument("--reference", default=None, help="variant the others are compared with (default: the first)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "nt_convergence.jsonl"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    cell = load_cell(args.cell)
    mid = cell.bias.mid_v
    steps = [parse_si(x, unit="s", what="--steps") for x in args.steps.split(",")]
    duration = parse_si(args.duration, unit="s", what="--duration")
    settle = parse_si(args.settle, unit="s", what="--settle")
    grid = parse_si(args.grid, unit="s", what="--grid")
    delta = parse_si(args.delta, unit="V", what="--delta")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(l) for l in out.read_text().splitlines() if l.strip()] if out.exists() else []
    plan: dict[str, list[float]] = {}  # variant -> its NTs ("smooth@0.25n" runs that NT only)
    for item in (x.strip() for x in args.routes.split(",") if x.strip()):
        v, _, at = item.partition("@")
        plan.setdefault(v, [])
        for nt in ([parse_si(at, unit="s", what="--routes")] if at else steps):
            if nt not in plan[v]:
                plan[v].append(nt)
    variants = list(plan)
    for v in variants:
        route, m = _variant(v)
        if route not in ("compiled", "portable", "smooth") or m == 0 or m < -1 or (m != 1 and route != "smooth"):
            raise SystemExit(f"--routes: {v!r} is not compiled, portable, smooth, smooth/m (m ≥ 1) or smooth/a")
    done = {(_row_variant(r), r["nt"], r["bias"], r["seed"]) for r in rows}
    for nt in {nt for v in variants for nt in plan[v]}:
        if abs(grid / nt - round(grid / nt)) > 1e-9:
            raise SystemExit(f"--grid {grid:g} s is not a multiple of the step {nt:g} s")
    if not args.table_only:
        todo = []
        for seed in range(1, args.seeds + 1):
            for v in variants:
                for nt in plan[v]:
                    biases = [mid] * args.mid_weight + ([] if args.mid_only else [mid - delta, mid + delta])
                    for i, b in enumerate(biases):
                        s = seed * 10 + i  # distinct seed per job; mid-bias repeats get their own
                        if (v, nt, b, s) not in done:
                            todo.append((args.cell, b, nt, s, duration, grid, settle, v))
        print(f"nt_convergence: {len(todo)} jobs to run ({len(done)} done), {args.workers} worker(s)", flush=True)
        with out.open("a") as fh, ProcessPoolExecutor(max_workers=args.workers) as ex:
            futs = {ex.submit(_run_one, *t): t for t in todo}
            for n, f in enumerate(as_completed(futs), 1):
                r = f.result()
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                rows.append(r)
                if n % 10 == 0:
                    print(f"  {n}/{len(todo)} jobs", flush=True)
    print(f"cell {args.cell}, mid bias {mid:g} V, slope points ±{delta:g} V, grid {grid:g} s, "
          f"95 % CIs (jackknife over jobs)")
    print(table(rows, mid))
    print()
    print(comparison(rows, mid, args.reference or variants[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
