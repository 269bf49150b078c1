"""The datasheet-at-target procedure of ``characterize``: sequential design at the nominal condition,
joint rate fit, calibration, held-out check; and how its numbers enter the model and the datasheet.

Spec table ``[design]`` (all keys optional; defaults in brackets)::

    [design]
    seed = 11                          # design seed [11]: every job's noise seed follows from it
    jobs_per_round = 2                 # ≥ workers: both cores busy [2]
    chunks = ["10us", "20us", "40us"]  # allowed record lengths per round
    budget_simulated = "2ms"           # stop when this much is simulated [2 ms]
    budget_wall = "300s"               # or after this wall time (machine-dependent) [none]
    max_rounds = 30
    targets = { v50_halfwidth = "0.5mV", scale_rel_halfwidth = 0.05, tau_rel_halfwidth = 0.10 }
    heldout = { p1 = [0.3, 0.7], p1_halfwidth = 0.03, ln_tau_halfwidth = 0.10, max_duration = "600us" }

The held-out records sit at the biases where the final fit puts P(1) at ``heldout.p1`` (biases the
fit never saw, seeds of their own), each long enough for its own P(1) to reach ±p1_halfwidth:
n_eff = (1.96·√(p(1−p))/hw)², and a telegraph record of length T holds n_eff ≈ T/(2τ(V)), so
T = 2·τ(V)·n_eff × 1.25 (margin for the scatter of τ), capped at max_duration.
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

DESIGN_KEYS = ("seed", "jobs_per_round", "chunks", "budget_simulated", "budget_wall", "max_rounds", "targets",
               "heldout")
TARGET_KEYS = ("v50_halfwidth", "scale_rel_halfwidth", "tau_rel_halfwidth")
HELDOUT_KEYS = ("p1", "p1_halfwidth", "ln_tau_halfwidth", "max_duration")


@dataclass(frozen=True)
class HeldOutSettings:
    p1: tuple[float, ...] = (0.3, 0.7)
    p1_halfwidth: float = 0.03
    ln_tau_halfwidth: float = 0.10
    max_duration_s: float = 600e-6


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
    wall = table.get("budget_wall")
    budget = Budget(pos(table.get("budget_simulated", "2ms"), "design.budget_simulated", "s"),
                    None if wall is None else pos(wall, "design.budget_wall", "s"),
                    int(table.get("max_rounds", 30)))
    chunks = table.get("chunks", ["10us", "20us", "40us"])
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
    ps = tuple(float(x) for x in h.get("p1", [0.3, 0.7]))
    if any(not 0 < x < 1 for x in ps):
        raise InputError(f"{source}: design.heldout.p1 values must lie strictly between 0 and 1")
    ho = HeldOutSettings(ps, pos(h.get("p1_halfwidth", 0.03), "design.heldout.p1_halfwidth"),
                         pos(h.get("ln_tau_halfwidth", 0.10), "design.heldout.ln_tau_halfwidth"),
                         pos(h.get("max_duration", "600us"), "design.heldout.max_duration", "s"))
    return DesignSettings(targets=targets, budget=budget, jobs_per_round=jobs, chunk_lengths_s=chunk_s,
                          seed=seed), ho


def heldout_duration(fit: RateFit, bias_v: float, p1_halfwidth: float, cap_s: float) -> float:
    p = float(fit.p1(bias_v))
    z = float(stats.norm.ppf(0.975))
    n_eff = (z * math.sqrt(p * (1 - p)) / p1_halfwidth) ** 2
    return float(min(cap_s, 1.25 * 2 * float(fit.tau_s(bias_v)) * n_eff))


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
                + ("quadratic" if f.curvature_per_v2 else "linear") + f" (curvature LR p = {f.curvature_test[1]:.2g})")
        add("design: simulated time", d.simulated_s, unit="s", note=f"{len(d.rounds)} rounds, {len(d.points)} records; "
            f"stopped: {d.reason}")
        add("design: wall time", d.wall_s, unit="s", note="sequential design rounds incl. refits")
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
        per-point straight lines: rate_model (loglinear at V50), sigmoid and τ(V50) with their
        profile-likelihood CIs, bias_range_v = the calibrated range, plus joint_fit / calibration
        blocks. Returns a new document (the input is not modified)."""
        import copy

        from .model.fit import derived_blocks, loglinear_rate_model

        fit = self.design.fit
        if fit is None:
            return doc
        out = copy.deepcopy(doc)
        corner, temp_c, vdd_v = self.condition
        cond = next((c for c in out["conditions"] if c["corner"] == corner and math.isclose(c["temp_c"], temp_c)
                     and math.isclose(c["vdd_v"], vdd_v, rel_tol=1e-9)), None)
        if cond is None:
            return out
        lin = fit
        if fit.curvature_per_v2 is not None:
            from .model.ratefit import fit_rates_joint

            lin = fit_rates_joint([p for p in self.design.points if p.regime in self.rate_regimes],
                                  allow_curvature=False)
        rm = loglinear_rate_model(lin.reference_bias_v, lin.ln_k_up, lin.ln_k_down, lin.covariance)
        cal = self.design.calibration
        rng = list(cal.bias_range_v) if cal is not None and all(map(math.isfinite, cal.bias_range_v)) \
            else list(fit.bias_range_v)
        sig, tau, ent = derived_blocks(rm, rng, sample_period_s=cond["entropy"].get("sample_period_s"))

        def ci(iv):
            return [float(iv.lo), float(iv.hi)] if math.isfinite(iv.lo) and math.isfinite(iv.hi) else None

        sig.update(v50_v=float(fit.v50.value), v50_ci95_v=ci(fit.v50), scale_v=float(fit.scale.value),
                   scale_ci95_v=ci(fit.scale), direct_fit=cond["sigmoid"].get("direct_fit"))
        tau.update(tau_at_v50_s=float(fit.tau_v50.value), tau_at_v50_ci95_s=ci(fit.tau_v50))
        for k in ("h_min_measured_per_bit",):
            ent[k] = cond["entropy"].get(k)
        cond.update(rate_model=rm, sigmoid=sig, tau=tau, entropy=ent, bias_range_v=[float(rng[0]), float(rng[1])])
        cond["joint_fit"] = _finite_tree({**fit.to_dict(), "targets": self.design.targets.to_dict(),
                                          "achieved_ratios": self.design.ratios(), "stopped": self.design.reason,
                                          "targets_met": self.design.met, "simulated_s": self.design.simulated_s,
                                          "wall_s": self.design.wall_s, "rounds": len(self.design.rounds)})
        if cal is not None:
            cond["calibration"] = _finite_tree(cal.to_dict())
        if self.heldout is not None:
            h = self.heldout
            cond["heldout_check"] = _finite_tree({"passed": h.passed, "n_precise": h.n_precise, "p1_chi2": h.p1_chi2,
                                                  "p1_p": h.p1_p, "ln_tau_chi2": h.ln_tau_chi2, "ln_tau_p": h.ln_tau_p,
                                                  "alpha": h.alpha, "p1_halfwidth": h.p1_halfwidth,
                                                  "ln_tau_halfwidth": h.ln_tau_halfwidth})
        lo = min(c["bias_range_v"][0] for c in out["conditions"])
        hi = max(c["bias_range_v"][1] for c in out["conditions"])
        out["bias"]["range_v"] = [float(lo), float(hi)]
        return out


def _finite_tree(x):
    """JSON-ready copy with non-finite floats as None (the model schema admits finite numbers only)."""
    if isinstance(x, dict):
        return {k: _finite_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_tree(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def run_sequential(table: dict, *, cell: str, out: Path, shared: dict, corner: str, temp_c: float,
                   bias_limits: tuple[float, float], pilot_bias_v=None, pilot_p1=None, source: str = "spec",
                   workers: int | None = None, retry_failed: bool = False, pool=None,
                   rate_regimes: tuple[str, ...] = ("bistable",),
                   log: Callable[[str], None] | None = None) -> SequentialResult:
    """Run the design (rounds into ``out/design-rNN``) and the held-out records (``out/design-heldout``).
    ``rate_regimes``: the regime labels whose records enter the rate fit (the spec's fit_regimes)."""
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
    res = run_design(runner, settings, v50_guess=v50_g, scale_guess=scale_g, bias_limits=bias_limits, log=log)
    sweeps = tuple(runner.results)
    vdd = _vdd_of(sweeps)
    heldout, h_sweeps = None, ()
    if res.fit is not None and ho.p1:
        f = res.fit
        qs = np.array(ho.p1)
        vs = [float(f"{f.v50.value + f.scale.value * math.log(q / (1 - q)):.9g}") for q in qs]
        vs = [min(max(v, bias_limits[0]), bias_limits[1]) for v in vs]
        durs = [heldout_duration(f, v, ho.p1_halfwidth, ho.max_duration_s) for v in vs]
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
