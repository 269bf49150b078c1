"""The datasheet-at-target procedure of ``characterize``: sequential design at the nominal condition,
joint rate fit, calibration, held-out check; and how its numbers enter the model and the datasheet.

Spec table ``[design]`` (all keys optional; defaults in brackets)::

    [design]
    seed = 11                          # design seed [11]: every job's noise seed follows from it
    jobs_per_round = 2                 # workers kept busy (jobs in flight: one more) [2]
    chunks = ["10us", "20us", "40us", "80us"]  # allowed record lengths
    budget_simulated = "2ms"           # stop planning when this much is simulated [2 ms] (reproducible)
    budget_cpu = "600s"                # or when the simulator hosts used this much CPU time [none]
    budget_wall = "300s"               # or after this wall time (safety stop) [none]
    max_jobs = 400                     # at most this many jobs (max_rounds = N: N·(jobs_per_round + 1))
    targets = { v50_halfwidth = "0.5mV", scale_rel_halfwidth = 0.05, tau_rel_halfwidth = 0.10 }
    heldout = { p1 = [0.22, 0.78], p1_halfwidth = 0.03, ln_tau_halfwidth = 0.10, max_duration = "600us" }

The pilot's records (nominal condition) enter the design's fit from the start (``initial``).

The held-out records sit at the biases where the final fit puts P(1) at ``heldout.p1`` (biases the
fit never saw, seeds of their own), each long enough for its own P(1) to reach ±p1_halfwidth and its
ln τ ±ln_tau_halfwidth (:func:`heldout_duration`), capped at max_duration. P(1) 0.22 / 0.78 is where
the two needs meet (nearer 0.5 P(1) needs longer records, further out ln τ does: fewer transitions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats

from .design import Budget, DesignResult, DesignSettings, Targets, guess_from_p1, run_design
from .design_runner import SweepRunner
from .errors import InputError
from .model.heldout import HeldOutCheck, held_out_check
from .model.ratefit import PointCounts, RateFit
from .units import parse_si

DESIGN_KEYS = ("seed", "jobs_per_round", "chunks", "budget_simulated", "budget_cpu", "budget_wall", "max_jobs",
               "max_rounds", "targets", "heldout")
TARGET_KEYS = ("v50_halfwidth", "scale_rel_halfwidth", "tau_rel_halfwidth")
HELDOUT_KEYS = ("p1", "p1_halfwidth", "ln_tau_halfwidth", "max_duration")


@dataclass(frozen=True)
class HeldOutSettings:
    p1: tuple[float, ...] = (0.22, 0.78)
    p1_halfwidth: float = 0.03
    ln_tau_halfwidth: float = 0.10
    max_duration_s: float = 600e-6


def representable_range(fit, rng: list[float], n: int = 2001) -> list[float]:
    """``rng`` (V) cut to the interval around the fit's V50 where its rates are representable
    (|ln k| ≤ cellmodel.MAX_ABS_LN_RATE, what the model validator demands over bias_range_v).
    Why: a calibrated range can reach a far P(1)-only record (pbit_x5's --quick: a pilot record at
    −200 mV, 60 scales out, P(1) 0) where the curved rate model's ln k_up is −908; the model was
    refused and --quick wrote none."""
    from .model.cellmodel import MAX_ABS_LN_RATE

    lo, hi = float(rng[0]), float(rng[1])
    v50 = min(max(float(fit.v50.value), lo), hi)
    out = []
    for end in (lo, hi):
        grid = np.linspace(v50, end, n)
        with np.errstate(over="ignore", invalid="ignore"):
            lu, ld = fit.ln_rates(grid)
        ok = np.isfinite(lu) & np.isfinite(ld) & (np.abs(lu) <= MAX_ABS_LN_RATE) & (np.abs(ld) <= MAX_ABS_LN_RATE)
        bad = np.flatnonzero(~ok)
        out.append(float(end) if not bad.size else float(grid[max(bad[0] - 1, 0)]))
    return out


def parse_design(table: dict, source: str) -> tuple[DesignSettings, HeldOutSettings]:
    """Validate a ``[design]`` table (one-line errors naming the key)."""
    if not isinstance(table, dict):
        raise InputError(f"{source}: [design] must be a table")
    bad = sorted(set(table) - set(DESIGN_KEYS))
    if bad:
        raise InputError(f"{source}: unknown key(s) in [design]: {', '.join(bad)}; allowed: {', '.join(DESIGN_KEYS)}")
    t = table.get("targets", {})
    badt = sorted(set(t) - set(TARGET_KEYS))
    if badt:
        raise InputError(f"{source}: unknown key(s) in design.targets: {', '.join(badt)}; allowed: {', '.join(TARGET_KEYS)}")

    def pos(x, what, unit=None):
        v = parse_si(x, unit=unit, what=f"{source}: {what}")
        if not v > 0:
            raise InputError(f"{source}: {what} must be > 0, got {x!r}")
        return v

    targets = Targets(pos(t.get("v50_halfwidth", "0.5mV"), "design.targets.v50_halfwidth", "V"),
                      pos(t.get("scale_rel_halfwidth", 0.05), "design.targets.scale_rel_halfwidth"),
                      pos(t.get("tau_rel_halfwidth", 0.10), "design.targets.tau_rel_halfwidth"))
    wall, cpu = table.get("budget_wall"), table.get("budget_cpu")
    for k in ("max_jobs", "max_rounds"):
        x = table.get(k, 1)
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise InputError(f"{source}: design.{k} must be an integer ≥ 1, got {x!r}")
    jobs_pr = table.get("jobs_per_round", 2)
    # max_rounds (the round-based design's key): a round was jobs_per_round records plus a tail record
    max_jobs = table.get("max_jobs", int(table["max_rounds"]) * (int(jobs_pr) + 1) if isinstance(jobs_pr, int)
                         and "max_rounds" in table else 400)
    budget = Budget(pos(table.get("budget_simulated", "2ms"), "design.budget_simulated", "s"),
                    None if wall is None else pos(wall, "design.budget_wall", "s"), max_jobs,
                    None if cpu is None else pos(cpu, "design.budget_cpu", "s"))
    chunks = table.get("chunks", ["10us", "20us", "40us", "80us"])
    if not isinstance(chunks, list) or not chunks:
        raise InputError(f"{source}: design.chunks must be a list of record lengths, e.g. [\"10us\", \"20us\"]")
    chunk_s = tuple(sorted(pos(c, "design.chunks", "s") for c in chunks))
    jobs = table.get("jobs_per_round", 2)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"{source}: design.jobs_per_round must be an integer ≥ 1, got {jobs!r}")
    seed = table.get("seed", 11)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{source}: design.seed must be an integer")
    h = table.get("heldout", {})
    badh = sorted(set(h) - set(HELDOUT_KEYS))
    if badh:
        raise InputError(f"{source}: unknown key(s) in design.heldout: {', '.join(badh)}; allowed: {', '.join(HELDOUT_KEYS)}")
    ps = tuple(float(x) for x in h.get("p1", [0.22, 0.78]))
    if any(not 0 < x < 1 for x in ps):
        raise InputError(f"{source}: design.heldout.p1 values must lie strictly between 0 and 1")
    ho = HeldOutSettings(ps, pos(h.get("p1_halfwidth", 0.03), "design.heldout.p1_halfwidth"),
                         pos(h.get("ln_tau_halfwidth", 0.10), "design.heldout.ln_tau_halfwidth"),
                         pos(h.get("max_duration", "600us"), "design.heldout.max_duration", "s"))
    return DesignSettings(targets=targets, budget=budget, jobs_per_round=jobs, chunk_lengths_s=chunk_s,
                          seed=seed), ho


#: held-out records are made this much longer than predicted (scatter of the record's own n_eff and
#: transition counts, ~1/√transitions ≈ 4 %, and of the fit's τ(V))
HELDOUT_MARGIN = 1.15


def heldout_duration(fit: RateFit, bias_v: float, p1_halfwidth: float, cap_s: float,
                     ln_tau_halfwidth: float | None = None) -> float:
    """Record length for P(1) ±p1_halfwidth and (if given) ln τ ±ln_tau_halfwidth at ``bias_v``.

    P(1): a telegraph record of length T holds n_eff ≈ T/(2τ(V)) effective samples, and
    n_eff = (z·√(p(1−p))/hw)². ln τ: the record's se² = (P1² + P0²)/(N/2) from N ≈ 2T·P0P1/τ(V)
    transitions (:func:`noisecell.model.heldout.record_tau`: se² = P1²/n_up + P0²/n_down). The longer
    of the two, × HELDOUT_MARGIN, at most ``cap_s``."""
    p = float(fit.p1(bias_v))
    tau = float(fit.tau_s(bias_v))
    z = float(stats.norm.ppf(0.975))
    t_p1 = 2 * tau * (z * math.sqrt(p * (1 - p)) / p1_halfwidth) ** 2
    t_tau = 0.0
    if ln_tau_halfwidth:
        n_trans = 2 * (p * p + (1 - p) ** 2) * (z / ln_tau_halfwidth) ** 2
        t_tau = n_trans * tau / (2 * p * (1 - p))
    return float(min(cap_s, HELDOUT_MARGIN * max(t_p1, t_tau)))


@dataclass(frozen=True)
class SequentialResult:
    """What the procedure produced: the design outcome, the held-out check, the condition it ran at
    and the sweeps it ran (part name, SweepResult)."""

    design: DesignResult
    heldout: HeldOutCheck | None
    condition: tuple[str, float, float]
    sweeps: tuple = field(default=(), repr=False)
    heldout_sweeps: tuple = field(default=(), repr=False)
    rate_regimes: tuple[str, ...] = ("bistable",)

    def summary(self) -> str:
        lines = [self.design.summary()]
        if self.design.calibration is not None:
            lines.append(self.design.calibration.summary())
        if self.heldout is not None:
            lines.append(self.heldout.summary())
        return "\n".join(lines)

    def datasheet_rows(self, condition_label: str) -> list[dict]:
        """Rows for datasheet.csv (plain SI floats): precision reached vs target, time, stop reason,
        calibrated range, held-out verdict."""
        d, rows = self.design, []

        def add(q, v, lo=float("nan"), hi=float("nan"), unit="", note=""):
            rows.append({"quantity": q, "value": v, "ci_lo": lo, "ci_hi": hi, "unit": unit,
                         "condition": condition_label, "note": note})

        t = d.targets
        if d.fit is not None:
            f = d.fit
            add("V50 95 % CI half-width reached", f.v50.halfwidth, unit="V",
                note=f"target ±{t.v50_halfwidth_v:g} V; {'met' if f.v50.halfwidth <= t.v50_halfwidth_v else 'NOT met'}")
            add("scale 95 % CI half-width reached (relative)", f.scale.rel_halfwidth,
                note=f"target ±{t.scale_rel_halfwidth:g}; {'met' if f.scale.rel_halfwidth <= t.scale_rel_halfwidth else 'NOT met'}")
            add("τ(V50) 95 % CI half-width reached (relative)", f.tau_v50.rel_halfwidth,
                note=f"target ±{t.tau_rel_halfwidth:g}; {'met' if f.tau_v50.rel_halfwidth <= t.tau_rel_halfwidth else 'NOT met'}")
            add("joint rate fit: transitions used", f.n_transitions, note=f"{f.n_points} bias points; deviance "
                f"{f.deviance:.3g} on {f.dof} dof (p = {f.gof_p:.2g}); ln k "
                + (("linear" if f.curvature_per_v2 is None else
                    f"with common curvature {f.curvature_per_v2[0]:.3g} /V² (against straight lines p = "
                    f"{f.common_curvature_test[1]:.2g}; differential curvature F test p = {f.curvature_test[1]:.2g})"
                    if f.curvature_per_v2[0] == f.curvature_per_v2[1] else
                    f"quadratic, curvatures {f.curvature_per_v2[0]:.3g} / {f.curvature_per_v2[1]:.3g} /V² "
                    f"(differential curvature F test p = {f.curvature_test[1]:.2g})")))
        add("design: simulated time", d.simulated_s, unit="s", note=f"{len(d.jobs)} jobs, {len(d.points)} records "
            f"({d.initial_points} from the pilot); stopped: {d.reason}")
        if math.isfinite(d.cpu_s):
            add("design: simulator CPU time", d.cpu_s, unit="s",
                note=f"{d.simulated_s * 1e6 / d.cpu_s:.3g} µs simulated per CPU-second" if d.cpu_s > 0 else "")
        add("design: wall time", d.wall_s, unit="s", note="sequential design incl. refits (machine load dependent)")
        cal = d.calibration
        if cal is not None:
            add("calibrated bias range low", cal.bias_range_v[0], unit="V", note=f"P(1) {cal.p1_range[0]:.3f}")
            add("calibrated bias range high", cal.bias_range_v[1], unit="V", note=f"P(1) {cal.p1_range[1]:.3f}; "
                + ("covers" if cal.covers_target else "does NOT cover") + " P(1) 0.02–0.98")
        if self.heldout is not None:
            h = self.heldout
            add("held-out check", float(h.passed), note=h.summary())
        return rows

    def apply_to_document(self, doc: dict) -> dict:
        """The nominal condition of a fitted model document with the joint fit in place of the
        per-point straight lines: rate_model (the fit's quadratics at V50), sigmoid and τ(V50) with their
        profile-likelihood CIs, bias_range_v = the calibrated range, plus joint_fit / calibration
        blocks. Returns a new document (the input is not modified)."""
        import copy

        from .model.fit import finite_tree, with_joint_fit

        fit = self.design.fit
        if fit is None:
            return doc
        out = copy.deepcopy(doc)
        corner, temp_c, vdd_v = self.condition
        cond = next((c for c in out["conditions"] if c["corner"] == corner and math.isclose(c["temp_c"], temp_c)
                     and math.isclose(c["vdd_v"], vdd_v, rel_tol=1e-9)), None)
        if cond is None:
            return out
        # the loglinear block is the fit itself at reference V50 (schema 2.2: intercepts, slopes and
        # curvatures with their 6×6 covariance, RateFit.rate_model): the rate model crosses at the
        # sigmoid block's V50 with its scale and τ(V50), and away from V50 it is the fit's quadratic,
        # not its tangent (straight tangents were wrong by exp(c·x²): ~7 % at 1.2 scales on pbit_x4).
        # (A straight-line refit of a fit with curvature terms crossed elsewhere: pbit_cs, sigmoid
        # V50 −1.06 mV against the refit's crossing at +0.41 mV, a third of a scale apart.)
        cal = self.design.calibration
        rng = list(cal.bias_range_v) if cal is not None and all(map(math.isfinite, cal.bias_range_v)) \
            else list(fit.bias_range_v)
        rng = representable_range(fit, rng)
        cond.update(with_joint_fit(cond, fit, rng))
        cond["joint_fit"] = finite_tree({**cond["joint_fit"], "targets": self.design.targets.to_dict(),
                                          "achieved_ratios": self.design.ratios(), "stopped": self.design.reason,
                                          "targets_met": self.design.met, "simulated_s": self.design.simulated_s,
                                          "wall_s": self.design.wall_s, "cpu_s": self.design.cpu_s,
                                          "jobs": len(self.design.jobs)})
        if cal is not None:
            cond["calibration"] = finite_tree(cal.to_dict())
        if self.heldout is not None:
            h = self.heldout
            cond["heldout_check"] = finite_tree({"passed": h.passed, "n_precise": h.n_precise, "p1_chi2": h.p1_chi2,
                                                  "p1_p": h.p1_p, "ln_tau_chi2": h.ln_tau_chi2, "ln_tau_p": h.ln_tau_p,
                                                  "alpha": h.alpha, "p1_halfwidth": h.p1_halfwidth,
                                                  "ln_tau_halfwidth": h.ln_tau_halfwidth})
        lo = min(c["bias_range_v"][0] for c in out["conditions"])
        hi = max(c["bias_range_v"][1] for c in out["conditions"])
        out["bias"]["range_v"] = [float(lo), float(hi)]
        return out


def run_sequential(table: dict, *, cell: str, out: Path, shared: dict, corner: str, temp_c: float,
                   bias_limits: tuple[float, float], pilot_bias_v=None, pilot_p1=None, source: str = "spec",
                   workers: int | None = None, retry_failed: bool = False, pool=None,
                   rate_regimes: tuple[str, ...] = ("bistable",), initial=(),
                   log: Callable[[str], None] | None = None) -> SequentialResult:
    """Run the design (jobs into ``out/design-jNNN``) and the held-out records (``out/design-heldout-r00``).
    ``rate_regimes``: the regime labels whose records enter the rate fit (the spec's fit_regimes);
    ``initial``: PointCounts already simulated at this condition (the pilot's), used by the fit."""
    import dataclasses

    settings, ho = parse_design(table, source)
    settings = dataclasses.replace(settings, rate_regimes=tuple(rate_regimes))
    span = bias_limits[1] - bias_limits[0]
    v50_g, scale_g = 0.5 * (bias_limits[0] + bias_limits[1]), span / 20
    if pilot_bias_v is not None and len(pilot_bias_v):
        pv = np.asarray(pilot_bias_v, float)
        # the sigmoid is no wider than a quarter of the pilot's finest grid step around the crossing
        # (repeated pilot biases differ by rounding only: ignore steps below 1e-4 of the bias range)
        steps = np.diff(np.unique(pv))
        steps = steps[steps > 1e-4 * span]
        if steps.size:
            scale_g = min(scale_g, float(steps.min()) / 4)
        v50_g, scale_g = guess_from_p1(pv, np.asarray(pilot_p1, float), v50_g, scale_g, bias_limits)
    runner = SweepRunner(cell, out, shared, corner, float(temp_c), workers=workers, retry_failed=retry_failed,
                         log=log, pool=pool)
    try:
        res = run_design(runner, settings, v50_guess=v50_g, scale_guess=scale_g, bias_limits=bias_limits,
                         initial=initial, log=log)
    finally:
        runner.close()
    sweeps = tuple(sorted(runner.results, key=lambda r: r[0]))
    vdd = _vdd_of(sweeps)
    heldout, h_sweeps = None, ()
    if res.fit is not None and ho.p1 and not res.reason.startswith("fit diverged"):
        f = res.fit
        qs = np.array(ho.p1)
        vs = [float(f"{f.v50.value + f.scale.value * math.log(q / (1 - q)):.9g}") for q in qs]
        vs = [min(max(v, bias_limits[0]), bias_limits[1]) for v in vs]
        durs = [heldout_duration(f, v, ho.p1_halfwidth, ho.max_duration_s, ho.ln_tau_halfwidth) for v in vs]
        from .design import DesignJob

        jobs = [DesignJob(v, max(durs), settings.seed + 7919, "heldout") for v in vs]   # one sweep: one length
        hrun = SweepRunner(cell, out, shared, corner, float(temp_c), workers=workers, retry_failed=retry_failed,
                           log=log, pool=pool, prefix="design-heldout")
        if log:
            log(f"held-out: {len(jobs)} records of {max(durs) * 1e6:.4g} µs at "
                + ", ".join(f"{v * 1e3:+.4g} mV" for v in vs))
        recs = hrun(0, jobs)
        h_sweeps = tuple(hrun.results)
        heldout = held_out_check(f, recs, p1_halfwidth=ho.p1_halfwidth, ln_tau_halfwidth=ho.ln_tau_halfwidth)
    cond = (corner, float(temp_c), vdd if vdd is not None else float("nan"))
    return SequentialResult(res, heldout, cond, sweeps, h_sweeps, settings.rate_regimes)


def _vdd_of(sweeps) -> float | None:
    for _, r in sweeps:
        df = r.dataframe
        if "vdd_v" in df.columns and len(df):
            return float(df["vdd_v"].iloc[0])
    return None
