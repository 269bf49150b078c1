"""Sequential design: place each next record (bias and length) where it shrinks the widest datasheet
CI most, keep every core busy, and stop when every target is met or the budget is spent.

Information (:func:`information_per_second`): the expected Fisher information of a stationary record
of length T at bias V about φ = (ln k50, V50, ln scale, slope_sum) is T·i(V) with

    i(V) = P0·P1/τ · (∇η_up ∇η_upᵀ + ∇η_down ∇η_downᵀ)     (per second)

(each exit from a state is a Poisson event at rate k·P_state = P0·P1/τ, which falls in the tails as
the minority state's occupancy does). The predicted covariance after adding records is
(I_held + Σ T·i(V_j))⁻¹ × the fit's dispersion, and the predicted 95 % half-widths of V50 (V),
scale and τ(V50) (relative) follow; each target's "ratio" is predicted half-width / target.

Asynchronous and reproducible (:func:`run_design`): jobs are numbered in submission order and up to
``in_flight`` (default workers + 1: one queued behind the running ones, so a core that finishes
never waits for the planner) are outstanding at once. The plan of job i is a function of the results
of the completed *prefix* of jobs 0..c−1 only (c: how many of the oldest jobs have finished, whatever
the order the younger ones finished in) and of the jobs already submitted; the driver waits for the
oldest outstanding job, never for "any" job. So the same seed gives the same jobs and numbers with
any executor, number of cores or finishing order; only the wall-time and CPU-time budgets depend on
the machine (the simulated-time budget is the reproducible stop).

Each planning step (:class:`Planner`):

* no fit to trust yet (records of at least the shortest chunk have not telegraphed at two biases;
  a fit of a pilot's few-µs records alone can be degenerate): start records at P(1) ≈ 0.2 … 0.8 of
  the pilot's guess (re-centred on every record so far when a batch of them did not give a trusted
  fit, longer each time);
* the rate job: the candidate bias (V50 ± ``span_scales`` scales inside the trust region of records
  that telegraph, :func:`telegraph_window`) that minimises the largest predicted ratio given the
  information held *and* the information the outstanding jobs are expected to bring ("shrink the
  widest CI"); nothing when the outstanding jobs are already predicted to meet every target;
* its length: the remaining simulated time R predicted to reach the targets (greedy look-ahead in
  steps of the shortest chunk) spread over the in-flight slots, but at most half of what the design
  has simulated so far (long records only once the fit has settled), snapped down to the allowed
  chunk lengths — no overshoot, and no short chunks once precision needs long ones;
* tail records at fitted P(1) 0.01 / 0.99 (then 0.005 / 0.995; after an overshoot, midway between it and the outermost counted record), long enough for
  2·MIN_VISITS minority visits, while the calibration (:mod:`noisecell.model.p1fit`) does not yet
  reach P(1) 0.02 / 0.98, at most MAX_TAIL_TRIES per side, once the scale is known to ±25 %.

Stops: "targets met", "simulated-time budget spent", "CPU-time budget spent", "wall-time budget
spent", "job limit", "fit diverged: <why>" (a trusted fit that cannot be planned on, :func:`fit_diverged`,
once the outstanding jobs have not mended it), or "nothing left to plan"; outstanding jobs always
finish and enter the result.
"""
from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .constants import Z95
from .errors import InputError
from .model.p1fit import MIN_VISITS, P1_SPAN_TARGET, Calibration, describe_regions
from .model.ratefit import PointCounts, RateFit, fit_rates_joint, information_per_second

#: fitted P(1) aimed at by the tail records on the first and the second try (per side)
TAIL_P1 = ((0.01, 0.99), (0.005, 0.995))
#: 3, not 2: after an overshoot the next tries bisect between it and the outermost counted record
MAX_TAIL_TRIES = 3
#: tail records wait until the scale is known to this relative half-width
#: (0.25 until 2026-12-02's third session: a P(1) 0.01 aim from a scale known to ±25 % lands anywhere
#: in logit ±1.15, P(1) 0.003-0.03 by the final fit, and a miss costs a second try; at ±10 %:
#: 0.006-0.016. Synthetic benchmark cell, 20 seeds: tail time 146 -> 98 µs per design, with the
#: shortest-chunk multiple lengths of :func:`tail_job`)
TAIL_SCALE_REL = 0.10
#: a rate record beyond every record that telegraphed is a probe of this chunk (index into the
#: allowed lengths). 0 (10 µs) was tried in 2026-12-02's third session: on the benchmark's cell the
#: time beyond the edge fell 99 -> 64 µs per design (20 seeds), but on a cell with a telegraph yield
#: of 0.2 beyond its edge (tests/test_design.py) the records that did not enter the fit rose to 23 %
#: of the design (short probes fail more often and each failure is another probe): kept at 20 µs
PROBE_CHUNK = 1
#: stop when this many jobs failed and they are at least FAILED_STOP_FRACTION of the completed jobs:
#: a condition where ngspice stalls (pbit_x4 ss −40 °C, session 24: 9 of 33 records timed out, 8 of
#: them re-planned at the same −1.66 mV) would otherwise spend its job limit on timeouts, a failed
#: job adding nothing to the fit the next job is planned on
FAILED_STOP_MIN = 4
FAILED_STOP_FRACTION = 0.25


@dataclass(frozen=True)
class Targets:
    """95 % CI half-width targets: V50 in volts, scale and τ(V50) relative to their values."""

    v50_halfwidth_v: float = 0.5e-3
    scale_rel_halfwidth: float = 0.05
    tau_rel_halfwidth: float = 0.10

    def ratios(self, fit: RateFit) -> dict[str, float]:
        """Achieved half-width / target for each target (≤ 1: met)."""
        return {"v50": fit.v50.halfwidth / self.v50_halfwidth_v,
                "scale": fit.scale.rel_halfwidth / self.scale_rel_halfwidth,
                "tau_v50": fit.tau_v50.rel_halfwidth / self.tau_rel_halfwidth}

    def to_dict(self) -> dict:
        return {"v50_halfwidth_v": self.v50_halfwidth_v, "scale_rel_halfwidth": self.scale_rel_halfwidth,
                "tau_rel_halfwidth": self.tau_rel_halfwidth}


@dataclass(frozen=True)
class Budget:
    """Stop submitting when the simulated time (s; reproducible), the simulator CPU time (s, None: no
    limit) or the wall time (s, None: no limit) is spent, or after ``max_jobs`` jobs."""

    simulated_s: float = 1e-3
    wall_s: float | None = None
    max_jobs: int = 400
    cpu_s: float | None = None


@dataclass(frozen=True)
class DesignJob:
    """One simulation to run: bias (V), record length (s), and its seed."""

    bias_v: float
    duration_s: float
    seed: int
    purpose: str = "rates"           # "rates" (chosen for the targets), "tail" (calibration), "start"


@dataclass(frozen=True)
class DesignSettings:
    """Planning settings: targets, budget, ``jobs_per_round`` = the workers kept busy (jobs in flight:
    ``in_flight``, default jobs_per_round + 1), allowed record lengths (s, ascending), the candidate
    grid (``n_candidates`` biases over V50 ± ``span_scales`` scales); ``yield_weighting``: weight each
    bias's expected information by its expected telegraph yield (:func:`telegraph_yield`)."""

    targets: Targets = Targets()
    budget: Budget = Budget()
    jobs_per_round: int = 2
    chunk_lengths_s: tuple[float, ...] = (10e-6, 20e-6, 40e-6, 80e-6)
    n_candidates: int = 41
    span_scales: float = 3.5
    seed: int = 1
    tail_points: bool = True
    rate_regimes: tuple[str, ...] = ("bistable",)
    in_flight: int | None = None
    yield_weighting: bool = True

    def __post_init__(self):
        if self.jobs_per_round < 1:
            raise InputError("design: jobs_per_round must be ≥ 1")
        if self.in_flight is not None and self.in_flight < 1:
            raise InputError("design: in_flight must be ≥ 1")
        if not self.chunk_lengths_s or any(c <= 0 for c in self.chunk_lengths_s):
            raise InputError("design: chunk lengths must be positive")

    @property
    def lag(self) -> int:
        return self.in_flight or self.jobs_per_round + 1


def _job_seed(seed: int, round_no: int, index: int) -> int:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x44455349, int(round_no), int(index)])
    return int(ss.generate_state(1, np.uint32)[0] & 0x7FFFFFFF)


def held_information(fit: RateFit, points: Sequence[PointCounts]) -> np.ndarray:
    """Expected information about φ of the records already taken (the rate fit's records)."""
    tot = np.zeros((n_params(fit),) * 2)
    for p in points:
        if p.simulated_s > 0:
            tot += information_per_second(fit, p.bias_v) * p.simulated_s
    return tot


def n_params(fit: RateFit) -> int:
    """Size of :func:`information_per_second` for ``fit``: 4, 5 with the common curvature, 6 with both."""
    c = fit.curvature_per_v2
    return 4 if c is None else 5 if c[0] == c[1] else 6


def predicted_ratios(fit: RateFit, info: np.ndarray, targets: Targets) -> dict[str, float]:
    """Predicted half-width / target from an information matrix about φ (and the fit's dispersion).
    A singular or non-finite information matrix, or a variance so large that the relative half-width
    overflows (a diverged fit: scale → ∞ puts no information on ln scale), gives inf, never an error."""
    inf = {"v50": math.inf, "scale": math.inf, "tau_v50": math.inf}
    try:
        cov = np.linalg.inv(info) * fit.dispersion
    except np.linalg.LinAlgError:
        return inf
    d = np.diag(cov)
    if not np.all(np.isfinite(d)):
        return inf
    d = np.sqrt(np.clip(d, 0, None))

    def rel(x: float) -> float:
        return math.sinh(x) if x < 700 else math.inf      # sinh overflows past ~710

    return {"v50": Z95 * d[1] / targets.v50_halfwidth_v,
            "scale": rel(Z95 * d[2]) / targets.scale_rel_halfwidth,
            "tau_v50": rel(Z95 * d[0]) / targets.tau_rel_halfwidth}


def fit_diverged(fit: RateFit, held: np.ndarray, targets: Targets,
                 bias_limits: tuple[float, float] | None = None) -> str | None:
    """Why a trusted rate fit cannot be planned on (None: it can): non-finite V50, scale or τ(V50); a
    logistic scale wider than the whole bias range (P(1) hardly depends on the bias in these records:
    few transitions per record, or a cell the bias does not steer); or records whose expected
    information about φ is singular (:func:`predicted_ratios` infinite)."""
    vals = {"V50": fit.v50.value, "scale": fit.scale.value, "τ(V50)": fit.tau_v50.value}
    bad = [k for k, v in vals.items() if not math.isfinite(v)]
    if bad or fit.scale.value == 0:
        return "non-finite " + ", ".join(bad or ["scale (0)"]) + " (" + \
            ", ".join(f"{k} {v:.3g}" for k, v in vals.items()) + ")"
    if bias_limits is not None and abs(fit.scale.value) > bias_limits[1] - bias_limits[0]:
        return (f"logistic scale {fit.scale.value * 1e3:.4g} mV is wider than the whole bias range "
                f"({bias_limits[0]:g} .. {bias_limits[1]:g} V): P(1) hardly depends on the bias in these "
                f"{fit.n_points} records ({fit.n_transitions} transitions)")
    r = predicted_ratios(fit, held, targets)
    if not all(math.isfinite(x) for x in r.values()):
        return (f"the records' information about V50, ln scale and ln τ is singular or overflows (scale "
                f"{fit.scale.value * 1e3:.4g} mV, {fit.n_points} records, {fit.n_transitions} transitions)")
    return None


def _score(r: dict[str, float]) -> tuple[float, float]:
    return max(r.values()), sum(x * x for x in r.values())


#: the design does not place rate records more than this many scales beyond the outermost telegraph
#: record seen so far (a trust region that widens as telegraphs are confirmed further out)
TRUST_SCALES = 0.75


#: telegraph-yield prior (:func:`telegraph_yield`): P(a record enters the rate fit) at d scales from
#: V50 is 1/(1 + exp((d − EDGE)/WIDTH)) a priori, worth YIELD_PRIOR_RECORDS records. A tilted double
#: well loses its minority level somewhere in the tails; on pbit records within 3 scales entered the
#: fit 83-100 % of the time (62 records), beyond 3 scales 14-25 % (15 records), so the prior is ~0.9
#: at 2.7 scales, ½ at 3.25 and 0.1 at 3.8. It is weak (2 records): the cell's own records decide.
#: What a wrong prior costs is asymmetric: the scale information per second at 3.5 scales is only
#: ~1.25× that at 2.5, while a record that does not telegraph brings none.
YIELD_PRIOR_EDGE_SCALES = 3.25
YIELD_PRIOR_WIDTH_SCALES = 0.25
YIELD_PRIOR_RECORDS = 2.0
#: records count towards the yield at distance d with a Gaussian weight of this width (in scales)
YIELD_KERNEL_SCALES = 0.4


def prior_yield(d_scales) -> np.ndarray:
    """Prior probability that a record at ``d_scales`` scales from V50 enters the rate fit."""
    d = np.abs(np.asarray(d_scales, float))
    return 1.0 / (1.0 + np.exp((d - YIELD_PRIOR_EDGE_SCALES) / YIELD_PRIOR_WIDTH_SCALES))


def telegraph_yield(fit: RateFit, biases, points: Sequence[PointCounts], fit_points: Sequence[PointCounts],
                    min_record_s: float = 0.0) -> np.ndarray:
    """Expected telegraph yield at each of ``biases`` (V): the fraction of the records (of at least
    ``min_record_s``) at a similar distance |V − V50|/|scale| from the fit's V50 that entered the rate
    fit (``fit_points``, matched by identity), kernel-weighted (YIELD_KERNEL_SCALES) and shrunk
    towards :func:`prior_yield` (a Beta prior worth YIELD_PRIOR_RECORDS records). Pure function of
    the records and the fit, so the plan stays reproducible. Both sides of V50 pool (few records
    per side; the distance is in scales of the fit)."""
    s = abs(fit.scale.value)
    v50 = fit.v50.value
    d = np.abs(np.asarray(biases, float) - v50) / s
    m0 = prior_yield(d)
    recs = [p for p in points if p.simulated_s >= min_record_s * (1 - 1e-6)]
    if not recs or not (s > 0 and math.isfinite(s)):
        return m0
    infit = {id(p) for p in fit_points}
    di = np.array([abs(p.bias_v - v50) / s for p in recs])
    ei = np.array([1.0 if id(p) in infit else 0.0 for p in recs])
    w = np.exp(-0.5 * ((d[:, None] - di[None, :]) / YIELD_KERNEL_SCALES) ** 2)
    return (YIELD_PRIOR_RECORDS * m0 + w @ ei) / (YIELD_PRIOR_RECORDS + w.sum(axis=1))


def telegraph_window(points: Sequence[PointCounts], rate_regimes: tuple[str, ...], scale_v: float = 0.0,
                     min_record_s: float = 0.0) -> tuple[float, float]:
    """Open bias interval in which records are expected to telegraph.

    Only records of at least ``min_record_s`` count (a pilot's few-µs record is too short to show
    a minority level that is there, or to be trusted when it shows one), unless no such record
    telegraphed yet. On each side: at most TRUST_SCALES·|scale| beyond the outermost telegraph
    record; and when a record further out did not telegraph (a tilted double well loses its minority
    level past some P(1), and the information the rate model predicts there never arrives), no
    further than half-way from the outermost telegraph record to the innermost such record. Labels
    of records inside the telegraph span are not used (short records can be mislabelled)."""
    long = [p for p in points if p.simulated_s >= min_record_s * (1 - 1e-6)]
    tele = [p.bias_v for p in long if p.regime in rate_regimes] or \
        [p.bias_v for p in points if p.regime in rate_regimes]
    if not tele:
        return -math.inf, math.inf
    lo_t, hi_t = min(tele), max(tele)
    reach = TRUST_SCALES * abs(scale_v) if scale_v else math.inf
    lo, hi = lo_t - reach, hi_t + reach
    other = [p.bias_v for p in long if p.regime not in rate_regimes]
    below = [v for v in other if v < lo_t]
    above = [v for v in other if v > hi_t]
    if below:
        lo = max(lo, 0.5 * (lo_t + max(below)))
    if above:
        hi = min(hi, 0.5 * (hi_t + min(above)))
    # the telegraph records themselves stay candidates (open interval just outside them)
    return min(lo, lo_t - 1e-12), max(hi, hi_t + 1e-12)


def rate_points(points: Sequence[PointCounts], rate_regimes: tuple[str, ...], min_record_s: float
                ) -> list[PointCounts]:
    """The records of the joint rate fit: those labelled with a rate regime, and records with another
    label inside the bias span of records (≥ ``min_record_s``) that telegraphed, when they hold at
    least MIN_VISITS transitions each way. A double well does not vanish and reappear with the bias:
    between two telegraphing biases an other label is the detector's scatter (pbit: at P(1) ≈ 0.9 an
    80 µs record with 44 / 43 transitions was labelled single-peaked, its neighbours bistable), and
    dropping such records drops the scale information the design put there. Outside the span the
    label holds (no extrapolation of the rate model into a region where the cell may not telegraph)."""
    lo, hi = confirmed_span(points, rate_regimes, min_record_s)
    return [p for p in points if p.regime in rate_regimes
            or (lo <= p.bias_v <= hi and min(p.n_up, p.n_down) >= MIN_VISITS)]


def confirmed_span(points: Sequence[PointCounts], rate_regimes: tuple[str, ...], min_record_s: float
                   ) -> tuple[float, float]:
    """Bias span of the records of at least ``min_record_s`` that telegraphed (empty: (inf, -inf))."""
    tele = [p.bias_v for p in points if p.regime in rate_regimes and p.simulated_s >= min_record_s * (1 - 1e-6)]
    return (min(tele), max(tele)) if tele else (math.inf, -math.inf)


def candidate_biases(fit: RateFit, settings: DesignSettings, bias_limits: tuple[float, float] | None = None,
                     window: tuple[float, float] = (-math.inf, math.inf)) -> np.ndarray:
    s = abs(fit.scale.value)
    c = fit.v50.value + s * np.linspace(-settings.span_scales, settings.span_scales, settings.n_candidates)
    if bias_limits is not None:
        c = c[(c >= bias_limits[0]) & (c <= bias_limits[1])]
    c = c[(c > window[0]) & (c < window[1])]
    return np.round(c, 12)


def missing_tails(fit: RateFit, points: Sequence[PointCounts]) -> tuple[bool, bool]:
    """(low side, high side): whether the calibration (:func:`describe_regions`) of ``points`` does
    not yet reach P(1) 0.02 / 0.98 on that side."""
    cal = describe_regions(fit, points)
    lo, hi = (cal.p1_range if all(math.isfinite(x) for x in cal.p1_range) else (1.0, 0.0))
    return lo > P1_SPAN_TARGET[0], hi < P1_SPAN_TARGET[1]


def tail_job(fit: RateFit, side: int, try_no: int, settings: DesignSettings, index: int,
             bias_limits: tuple[float, float] | None = None,
             points: Sequence[PointCounts] = ()) -> DesignJob:
    """The record at the bias where the fitted P(1) is TAIL_P1[try_no][side] (side 0: low, 1: high),
    long enough for ~2·MIN_VISITS visits to the minority state (rate P0·P1/τ there), else the record
    carries no P(1) claim (p1fit.effective_n); at most the longest chunk.

    The bias solves the fitted rate model's P(1)(v) = q (its curvatures included), outward from V50.
    A cell whose P(1) falls faster in the tails than any fitted model (pbit_x5: the logistic aim at
    0.01 landed at P(1) 0.001 with one minority visit, and the next try at 0.005 went further out)
    is bracketed by the records: when ``points`` hold a record on that side, beyond the outermost
    one with MIN_VISITS visits each way, that saw fewer (an overshoot), and the aim lies at or past
    it, the record goes midway between the two (bisection on later tries). On a later try whose
    outermost counted record fell short of q (the model under-reached), the aim is the secant in
    logit P(1) from V50 through that record. Records aimed by the records are sized for P(1) = q."""
    q = TAIL_P1[min(try_no, len(TAIL_P1) - 1)][side]
    sgn = 1.0 if side else -1.0
    v = bias_at_p1(fit, q, side, bias_limits)
    p = float(fit.p1(v))
    outer = outermost_counted(points, fit.v50.value, side)
    if outer is not None and try_no > 0:
        # a counted record short of q on this side (the model under-reached): the secant in logit from
        # V50 (logit 0) through that record, which follows a tail steeper or shallower than the model
        v_o, p_o = outer
        lo = math.log(p_o / (1 - p_o))
        if lo * sgn > 0 and abs(lo) < abs(math.log(q / (1 - q))):
            v = fit.v50.value + (v_o - fit.v50.value) * math.log(q / (1 - q)) / lo
            if bias_limits is not None:
                v = min(max(v, bias_limits[0]), bias_limits[1])
            p = q
    bracket = tail_bracket(points, fit, side, TAIL_P1[0][side])
    if bracket is not None:
        v_in, v_over = bracket
        if (v - v_over) * sgn >= 0:
            v = 0.5 * (v_in + v_over)
            p = q
    need = 2 * MIN_VISITS * float(fit.tau_s(v)) / max(p * (1 - p), 1e-12)
    # a whole number of shortest chunks ≥ need (not the next allowed chunk: 56 µs needed took 80),
    # at most the longest chunk
    step = settings.chunk_lengths_s[0]
    T = min(step * math.ceil(need / step - 1e-9), settings.chunk_lengths_s[-1])
    return DesignJob(round(v, 12), T, _job_seed(settings.seed, index, 0), "tail")


def bias_at_p1(fit: RateFit, q: float, side: int, bias_limits: tuple[float, float] | None = None) -> float:
    """Bias (V) on ``side`` (0: below V50, 1: above) where the fitted model's P(1) first reaches ``q``
    going outward from V50 (the curved rate model's own P(1), not its logistic tangent); the logistic
    V50 + scale·logit(q) when the model never reaches q within the limits (or 4× that distance)."""
    v50, scale = fit.v50.value, fit.scale.value
    logistic = v50 + scale * math.log(q / (1 - q))
    far = v50 + 4 * (logistic - v50)
    if bias_limits is not None:
        logistic = min(max(logistic, bias_limits[0]), bias_limits[1])
        far = min(max(far, bias_limits[0]), bias_limits[1])
    grid = np.linspace(v50, far, 801)
    with np.errstate(over="ignore", invalid="ignore"):
        beyond = (fit.p1(grid) <= q) if side == 0 else (fit.p1(grid) >= q)
    hit = np.flatnonzero(beyond)
    if not hit.size or hit[0] == 0:
        return logistic
    a, b = float(grid[hit[0] - 1]), float(grid[hit[0]])
    for _ in range(40):  # bisection inside the first grid cell that crosses q
        m = 0.5 * (a + b)
        reached = (float(fit.p1(m)) <= q) if side == 0 else (float(fit.p1(m)) >= q)
        a, b = (a, m) if reached else (m, b)
    return 0.5 * (a + b)


def outermost_counted(points: Sequence[PointCounts], v50: float, side: int) -> tuple[float, float] | None:
    """(bias V, P(1)) of the record furthest from ``v50`` on ``side`` with ≥ MIN_VISITS transitions
    each way and 0 < P(1) < 1, or None."""
    sgn = 1.0 if side else -1.0
    ok = [pt for pt in points if pt.n_samples and (pt.bias_v - v50) * sgn > 0
          and min(pt.n_up, pt.n_down) >= MIN_VISITS and 0 < pt.p1 < 1]
    if not ok:
        return None
    pt = max(ok, key=lambda x: x.bias_v * sgn)
    return pt.bias_v, pt.p1


def tail_bracket(points: Sequence[PointCounts], fit: RateFit, side: int, q: float) -> tuple[float, float] | None:
    """(outermost bias with ≥ MIN_VISITS transitions each way, innermost bias beyond it that saw
    fewer and whose P(1) is beyond q, in a record long enough to expect MIN_VISITS minority visits
    at P(1) = q (τ of ``fit`` at the outermost counted
    bias): an overshoot, not a
    short record) on ``side`` of the fit's V50 (V), or None when either is missing."""
    v50 = fit.v50.value
    sgn = 1.0 if side else -1.0
    mine = [pt for pt in points if pt.n_samples and (pt.bias_v - v50) * sgn > 0]
    counted = [pt.bias_v for pt in mine if min(pt.n_up, pt.n_down) >= MIN_VISITS]
    if not counted:
        return None
    v_in = max(counted, key=lambda b: b * sgn)
    # τ where the records are (the fit's extrapolation past them can be anything: a curved ln k)
    tau_in = float(fit.tau_s(v_in))
    over = [pt.bias_v for pt in mine if (pt.bias_v - v_in) * sgn > 0 and min(pt.n_up, pt.n_down) < MIN_VISITS
            and ((pt.p1 < q) if side == 0 else (pt.p1 > q))
            and pt.simulated_s * q * (1 - q) >= MIN_VISITS * tau_in]
    if not over:
        return None
    return v_in, min(over, key=lambda b: b * sgn)


def _p1_guess(points: Sequence[PointCounts], v50: float, scale: float,
              bias_limits: tuple[float, float] | None, rate_regimes: tuple[str, ...] = ("bistable",)
              ) -> tuple[float, float]:
    """A rough (V50, scale) for placing start points only. Records that telegraph are trusted first
    (a frozen or one-level record's P(1) is wherever it happened to sit); with a single telegraph
    bias the scale guess is halved (the start points around it did not telegraph: the sigmoid is
    narrower than guessed)."""
    tele = [p for p in points if p.n_samples and p.regime in rate_regimes]
    use = tele or [p for p in points if p.n_samples]
    v = np.array([p.bias_v for p in use])
    p1 = np.array([p.p1 for p in use])
    if tele and len({p.bias_v for p in tele}) == 1:
        scale = 0.5 * scale
    return guess_from_p1(v, p1, v50, scale, bias_limits)


def guess_from_p1(v: np.ndarray, p1: np.ndarray, v50: float, scale: float,
                  bias_limits: tuple[float, float] | None = None) -> tuple[float, float]:
    """(V50, scale) guess from raw (bias, P(1)) pairs: a line through the logits of the records with
    0.02 < P(1) < 0.98 when there are two biases; with one, V50 = V − scale·logit(P) at the given
    scale; else the midpoint of the 0.5 crossing with a quarter of its bracket as scale; else the old
    guess widened 1.5×."""
    ok = np.isfinite(v) & np.isfinite(p1)
    v, p1 = np.asarray(v, float)[ok], np.asarray(p1, float)[ok]
    if not v.size:
        return v50, 1.5 * scale

    def clip(x):
        return min(max(x, bias_limits[0]), bias_limits[1]) if bias_limits is not None else x

    inner = (p1 > 0.02) & (p1 < 0.98)
    vi, pi = v[inner], p1[inner]
    if len(np.unique(vi)) >= 2:
        b, a = np.polyfit(vi, np.log(pi / (1 - pi)), 1)
        if b != 0 and math.isfinite(b) and abs(1 / b) <= 4 * abs(scale):
            return float(clip(-a / b)), float(1 / b)
    order = np.argsort(v)
    vs, ps = v[order], p1[order]
    sgn = math.copysign(1.0, scale)
    for i in range(len(vs) - 1):
        if (ps[i] - 0.5) * (ps[i + 1] - 0.5) < 0:
            sgn = 1.0 if ps[i + 1] > ps[i] else -1.0
            scale = sgn * min(abs(scale), max(abs(vs[i + 1] - vs[i]) / 4, 1e-9))
            break
    if vi.size:
        j = int(np.argmin(np.abs(pi - 0.5)))
        return float(clip(vi[j] - scale * math.log(pi[j] / (1 - pi[j])))), float(scale)
    for i in range(len(vs) - 1):
        if (ps[i] - 0.5) * (ps[i + 1] - 0.5) < 0:
            return float(0.5 * (vs[i] + vs[i + 1])), float(scale)
    return v50, 1.5 * scale


def start_jobs(v50_guess: float, scale_guess: float, settings: DesignSettings,
               bias_limits: tuple[float, float] | None = None, *, duration_s: float | None = None,
               first_index: int = 0) -> list[DesignJob]:
    """Start records from a pilot's logistic guess: biases at P(1) ≈ 0.2 … 0.8 (at least 3, so that
    the joint fit has two slopes to fit, and at least the jobs in flight), the shortest chunk length
    unless ``duration_s``; job numbers (seeds) from ``first_index`` on."""
    n = max(3, settings.lag)
    if bias_limits is not None:
        # a scale guess below 1e-3 of the bias range would put every start point at one bias
        floor = 1e-3 * (bias_limits[1] - bias_limits[0])
        if abs(scale_guess) < floor:
            scale_guess = math.copysign(floor, scale_guess or 1.0)
    qs = np.linspace(0.2, 0.8, n)
    vs = v50_guess + scale_guess * np.log(qs / (1 - qs))
    if bias_limits is not None:
        vs = np.clip(vs, bias_limits[0], bias_limits[1])
    T = duration_s or settings.chunk_lengths_s[0]
    return [DesignJob(round(float(v), 12), T, _job_seed(settings.seed, first_index + i, 0), "start")
            for i, v in enumerate(vs)]


def expected_information(fit: RateFit, jobs: Sequence[DesignJob], window: tuple[float, float],
                         yields: Sequence[float] | None = None) -> np.ndarray:
    """Information about φ the (outstanding) ``jobs`` are expected to bring: only those inside the
    telegraph window (outside it the record may not telegraph and bring none), each × its expected
    telegraph yield (``yields``, one per job; None: 1)."""
    tot = np.zeros((n_params(fit),) * 2)
    for i, j in enumerate(jobs):
        if window[0] < j.bias_v < window[1]:
            y = 1.0 if yields is None else float(yields[i])
            tot += information_per_second(fit, j.bias_v) * j.duration_s * y
    return tot


def _corrected(r: dict[str, float], corr: dict[str, float] | None) -> dict[str, float]:
    return {k: v * corr.get(k, 1.0) for k, v in r.items()} if corr else r


def remaining_time(fit: RateFit, info: np.ndarray, per_s: Sequence[np.ndarray], step_s: float,
                   targets: Targets, cap_s: float, corr: dict[str, float] | None = None) -> float:
    """Simulated time still needed to reach every target (predicted, ratios scaled by ``corr``):
    records of ``step_s`` added greedily at the best candidate until the predicted ratios are all ≤ 1,
    at most ``cap_s``."""
    info = info.copy()
    spent = 0.0

    def pr(m):
        return _corrected(predicted_ratios(fit, m, targets), corr)

    while spent < cap_s:
        if max(pr(info).values()) <= 1:
            return spent
        best = min(range(len(per_s)), key=lambda i: _score(pr(info + per_s[i] * step_s)))
        info = info + per_s[best] * step_s
        spent += step_s
    return cap_s


def target_variances(fit: RateFit, targets: Targets) -> np.ndarray:
    """Largest variances of (ln k50, V50, ln scale) that meet ``targets`` (95 % half-widths: τ and
    scale relative, sinh(Z·σ) on the log scale as :func:`predicted_ratios`; V50 in volts)."""
    return np.array([(math.asinh(targets.tau_rel_halfwidth) / Z95) ** 2,
                     (targets.v50_halfwidth_v / Z95) ** 2,
                     (math.asinh(targets.scale_rel_halfwidth) / Z95) ** 2])


def design_time(fit: RateFit, biases, weights, targets: Targets, dispersion: float = 1.0) -> float:
    """Simulated time (s) a design that spends the fractions ``weights`` of its time at ``biases`` (V)
    needs to meet every target, by the expected information at ``fit`` (each record telegraphs;
    dispersion ``dispersion``): max_k [M(w)⁻¹]_kk·φ / var_k (:func:`target_variances`), M(w) the
    information per second of the mixture. inf when M(w) is singular."""
    w = np.asarray(weights, float)
    w = w / w.sum()
    m = sum(wi * information_per_second(fit, float(v)) for v, wi in zip(biases, w) if wi > 0)
    try:
        cov = np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return math.inf
    d = np.diag(cov)[:3]
    if np.any(d <= 0) or not np.all(np.isfinite(d)):
        return math.inf
    return float(np.max(d * dispersion / target_variances(fit, targets)))


def optimal_design(fit: RateFit, biases, targets: Targets, dispersion: float = 1.0
                   ) -> tuple[float, np.ndarray]:
    """The information bound (module docstring of benchmarks/datasheet.py): the minimax allocation of
    simulated time over the candidate ``biases`` (V) for the three targets at the parameters of
    ``fit``, i.e. min over weights w of :func:`design_time`. Returns (time in s, weights).

    min_w max_k c_kᵀM(w)⁻¹c_k / var_k is convex in w (M⁻¹ is matrix-convex, M linear in w); solved
    as min t s.t. each target's ratio ≤ t on the simplex (SLSQP, analytic gradients), from a
    uniform start. The result is only as good as the information model (fine sampling, Markov counts
    with dispersion ``dispersion``, every record at ``biases`` telegraphs)."""
    from scipy.optimize import minimize

    v = np.asarray(biases, float)
    info = np.array([information_per_second(fit, float(x)) for x in v])
    lim = target_variances(fit, targets) / dispersion
    n = len(v)

    def parts(w):
        m = np.tensordot(w, info, axes=1)
        c = np.linalg.inv(m)
        g = np.diag(c)[:3] / lim
        # d(M⁻¹)_kk / dw_i = −(M⁻¹ I_i M⁻¹)_kk = −(I_i c_k)·c_k, c_k the k-th column of M⁻¹
        grad = -np.einsum("ka,iab,kb->ki", c[:3], info, c[:3]) / lim[:, None]
        return g, grad

    x0 = np.append(np.full(n, 1.0 / n), parts(np.full(n, 1.0 / n))[0].max())
    cons = [{"type": "eq", "fun": lambda x: x[:n].sum() - 1, "jac": lambda x: np.append(np.ones(n), 0.0)}]
    for k in range(3):
        cons.append({"type": "ineq", "fun": (lambda x, k=k: x[n] - parts(x[:n])[0][k]),
                     "jac": (lambda x, k=k: np.append(-parts(x[:n])[1][k], 1.0))})
    res = minimize(lambda x: x[n], x0, jac=lambda x: np.append(np.zeros(n), 1.0), method="SLSQP",
                   bounds=[(0, 1)] * n + [(0, None)], constraints=cons, options={"maxiter": 500, "ftol": 1e-12})
    w = np.clip(res.x[:n], 0, None)
    w /= w.sum()
    return design_time(fit, v, w, targets, dispersion), w


@dataclass(frozen=True)
class JobRecord:
    """One design job: its number, what it was (bias, length, seed, purpose), how many of the oldest
    jobs had finished when it was planned (its plan depends on those only), the ratios predicted
    when it was planned (None without a fit), the simulated time planned up to and including it, and
    after it finished (in prefix order) the achieved ratios, the wall (s) and CPU (s) time so far."""

    index: int
    job: DesignJob
    planned_after: int
    predicted: dict | None
    simulated_s: float
    achieved: dict | None = None
    wall_s: float = float("nan")
    cpu_s: float = float("nan")
    ok: bool = True

    def to_dict(self) -> dict:
        return {"index": self.index, **self.job.__dict__, "planned_after": self.planned_after,
                "predicted_ratios": self.predicted, "simulated_s": self.simulated_s,
                "achieved_ratios": self.achieved, "wall_s": self.wall_s, "cpu_s": self.cpu_s, "ok": self.ok}


@dataclass(frozen=True)
class DesignResult:
    """Outcome: the final fit and calibration, every point, the jobs, why it stopped, and the
    simulated (s), wall (s) and simulator CPU (s; NaN when the runner cannot tell) time it took;
    ``met`` says whether every target was reached; ``fit_points``: the records of the rate fit
    (:func:`rate_points`); ``idle_waits``: how often the driver waited with
    fewer jobs outstanding than workers (a core idle by the plan's choice, e.g. when the outstanding
    jobs were predicted to meet the targets)."""

    fit: RateFit | None
    calibration: Calibration | None
    points: tuple[PointCounts, ...]
    jobs: tuple[JobRecord, ...]
    reason: str
    met: bool
    simulated_s: float
    wall_s: float
    targets: Targets
    notes: tuple[str, ...] = field(default=())
    cpu_s: float = float("nan")
    initial_points: int = 0
    idle_waits: int = 0
    fit_points: tuple[PointCounts, ...] = ()

    def ratios(self) -> dict[str, float] | None:
        return self.targets.ratios(self.fit) if self.fit else None

    @property
    def rounds(self) -> tuple[JobRecord, ...]:
        """The jobs (one planning step each; the name of the round-based design's field)."""
        return self.jobs

    def summary(self) -> str:
        from .units import format_si

        cpu = f", {self.cpu_s:.0f} CPU-s" if math.isfinite(self.cpu_s) else ""
        rate = (f" ({self.simulated_s * 1e6 / self.cpu_s:.2f} µs per CPU-s)"
                if math.isfinite(self.cpu_s) and self.cpu_s > 0 else "")
        head = (f"sequential design: {len(self.jobs)} jobs ({self.initial_points} pilot records reused), "
                f"{format_si(self.simulated_s, 's')} simulated, {self.wall_s:.0f} s wall{cpu}{rate}; "
                f"stopped: {self.reason}")
        if self.fit is None:
            return head + "\n  no rate fit"
        f, t = self.fit, self.targets
        lines = [head,
                 f"  V50 ±{format_si(f.v50.halfwidth, 'V')} (target ±{format_si(t.v50_halfwidth_v, 'V')})",
                 f"  scale ±{100 * f.scale.rel_halfwidth:.1f} % (target ±{100 * t.scale_rel_halfwidth:.1f} %)",
                 f"  τ(V50) ±{100 * f.tau_v50.rel_halfwidth:.1f} % (target ±{100 * t.tau_rel_halfwidth:.1f} %)"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def to_dict(self) -> dict:
        return {"reason": self.reason, "targets_met": self.met, "simulated_s": self.simulated_s,
                "wall_s": self.wall_s, "cpu_s": self.cpu_s if math.isfinite(self.cpu_s) else None,
                "targets": self.targets.to_dict(), "achieved_ratios": self.ratios(), "idle_waits": self.idle_waits,
                "jobs": [r.to_dict() for r in self.jobs], "notes": list(self.notes)}


class Planner:
    """The planning rules of the module docstring as a deterministic function of (completed prefix,
    jobs submitted). ``initial``: records already available (a pilot's), in the fit from the start."""

    def __init__(self, settings: DesignSettings, v50_guess: float, scale_guess: float,
                 bias_limits: tuple[float, float] | None, initial: Sequence[PointCounts] = ()):
        self.s = settings
        self.limits = bias_limits
        self.v50_guess, self.scale_guess = v50_guess, scale_guess
        self.initial = list(initial)
        self.points: list[PointCounts] = list(initial)
        self.fit: RateFit | None = None
        self.start_batches = 0
        self.start_queue: list[DesignJob] = []
        self.tail_tries = [0, 0]
        self.corr: dict[str, float] | None = None
        self.fit_points: list[PointCounts] = []
        #: the stop reason "fit diverged: ..." when the last planning step had nothing to plan on
        self.diverged: str | None = None
        self.refit()

    def refit(self) -> None:
        self.fit_points = rate_points(self.points, self.s.rate_regimes, self.s.chunk_lengths_s[0])
        try:
            self.fit = fit_rates_joint(self.fit_points)
        except InputError:
            self.fit = None

    def add(self, record: PointCounts | None) -> None:
        """The next job of the completed prefix finished (None: it failed)."""
        if record is not None:
            self.points.append(record)
            self.refit()

    def trusted(self) -> bool:
        """A fit to plan with: records of at least the shortest chunk telegraphed at two biases or
        more. A fit of short pilot records alone can be degenerate (pbit: V50 ±70 mV, τ ±10³¹ %):
        planning on it put every record where the cell never telegraphs."""
        if self.fit is None:
            return False
        lo, hi = confirmed_span(self.points, self.s.rate_regimes, self.s.chunk_lengths_s[0])
        return hi > lo

    def met(self) -> bool:
        return self.fit is not None and max(self.s.targets.ratios(self.fit).values()) <= 1

    def window(self) -> tuple[float, float]:
        return telegraph_window(self.points, self.s.rate_regimes, self.fit.scale.value if self.fit else 0.0,
                                self.s.chunk_lengths_s[0])

    def next(self, index: int, pending: Sequence[DesignJob], simulated_design_s: float,
             left_s: float) -> tuple[DesignJob | None, dict | None]:
        """Job number ``index`` (None: nothing to submit now) and the ratios predicted with it.
        ``pending``: jobs submitted and not yet in the completed prefix; ``simulated_design_s``: the
        design's own simulated time of the completed prefix; ``left_s``: budget not yet planned."""
        s = self.s
        self.diverged = None
        if not self.trusted():
            if not self.start_queue:
                if pending:
                    return None, None             # wait: the outstanding start records may give a fit
                if self.start_batches:
                    # no two telegraph biases yet: re-centre on the direct P(1) of every record so far
                    # (P(1) is measured whatever the regime) and take longer records there
                    self.v50_guess, self.scale_guess = _p1_guess(self.points, self.v50_guess, self.scale_guess,
                                                                 self.limits, s.rate_regimes)
                T = s.chunk_lengths_s[min(self.start_batches, len(s.chunk_lengths_s) - 1)]
                self.start_queue = start_jobs(self.v50_guess, self.scale_guess, s, self.limits, duration_s=T,
                                              first_index=index)
                self.start_batches += 1
            j = self.start_queue.pop(0)
            return DesignJob(j.bias_v, j.duration_s, _job_seed(s.seed, index, 0), "start"), None
        self.start_queue = []
        fit = self.fit
        win = self.window()
        held = held_information(fit, self.fit_points)
        why = fit_diverged(fit, held, s.targets, self.limits)
        if why is not None:
            # nothing to plan on: wait for the outstanding records (they may mend the fit), else stop
            self.diverged = None if pending else f"fit diverged: {why}"
            return None, None
        info = held + expected_information(fit, pending, win, self.yields([j.bias_v for j in pending]))
        # the information-based prediction calibrated by what the fit achieves now (profile-likelihood
        # intervals, dispersion, curvature terms): each ratio scaled by achieved / predicted-from-held
        base = predicted_ratios(fit, held, s.targets)
        ach = s.targets.ratios(fit)
        corr = {k: min(max(ach[k] / base[k], 0.5), 4.0) if math.isfinite(ach[k]) and 0 < base[k] < math.inf
                else 1.0 for k in base}
        self.corr = corr
        now = self.predict(info)
        if max(now.values()) <= 1 and index >= s.lag:
            # (the design takes at least `lag` records of its own: the pilot's short records alone
            # are no datasheet)
            return self._tail(index, pending, force=True), now
        tail = self._tail(index, pending)
        if tail is not None:
            return tail, now
        cands = candidate_biases(fit, s, self.limits, win)
        if not len(cands):
            if not len(candidate_biases(fit, s, self.limits)):
                raise InputError("design: no candidate bias inside the cell's bias range; widen the range")
            # inside the range, but the grid (V50 ± span·scale) jumps over the window where the records
            # telegraph: the fit's scale is far wider than the records' bias dependence
            self.diverged = None if pending else (
                f"fit diverged: V50 {fit.v50.value * 1e3:+.4g} mV, scale {fit.scale.value * 1e3:.4g} mV "
                f"[{fit.scale.lo * 1e3:.3g}, {fit.scale.hi * 1e3:.3g}] put no candidate bias inside the telegraph "
                f"window {win[0] * 1e3:+.4g} .. {win[1] * 1e3:+.4g} mV ({fit.n_points} records, "
                f"{fit.n_transitions} transitions)")
            return None, None
        ys = self.yields(cands)
        per_s = [information_per_second(fit, float(v)) * float(y) for v, y in zip(cands, ys)]
        chunks = s.chunk_lengths_s
        cap = max(left_s, chunks[0])
        need = remaining_time(fit, info, per_s, max(chunks[0], cap / 60), s.targets, cap, corr)
        want = max(chunks[0], min(need / s.lag, 0.5 * simulated_design_s))
        T = max((c for c in chunks if c <= want * (1 + 1e-9)), default=chunks[0])
        best = min(range(len(cands)), key=lambda i: (_score(self.predict(info + per_s[i] * T)), float(cands[i])))
        v = float(cands[best])
        lo, hi = confirmed_span(self.points, s.rate_regimes, chunks[0])
        if not lo <= v <= hi:
            # beyond every record that telegraphed: a short probe first (the cell may have lost its
            # minority level there), a long record only once the probe telegraphed
            T = min(T, chunks[min(PROBE_CHUNK, len(chunks) - 1)])
        return DesignJob(v, T, _job_seed(s.seed, index, 0), "rates"), self.predict(info + per_s[best] * T)

    def yields(self, biases) -> np.ndarray:
        """Expected telegraph yield at ``biases`` (all 1 without ``yield_weighting``)."""
        if not self.s.yield_weighting or self.fit is None:
            return np.ones(len(biases))
        return telegraph_yield(self.fit, biases, self.points, self.fit_points, self.s.chunk_lengths_s[0])

    def predict(self, info: np.ndarray) -> dict[str, float]:
        return _corrected(predicted_ratios(self.fit, info, self.s.targets), self.corr)

    def _tail(self, index: int, pending: Sequence[DesignJob], force: bool = False) -> DesignJob | None:
        s, fit = self.s, self.fit
        if not s.tail_points or fit is None:
            return None
        if not force and fit.scale.rel_halfwidth > TAIL_SCALE_REL:
            return None
        missing = missing_tails(fit, self.points)
        for side in (0, 1):
            if not missing[side] or self.tail_tries[side] >= MAX_TAIL_TRIES:
                continue
            if any(j.purpose == "tail" and (j.bias_v > fit.v50.value) == bool(side) for j in pending):
                continue
            job = tail_job(fit, side, self.tail_tries[side], s, index, self.limits, self.points)
            self.tail_tries[side] += 1
            return job
        return None


class _Done:
    """A runner without ``submit``: ``runner(index, [job])`` run at once (results are the same; the
    cores are as busy as that runner keeps them)."""

    def __init__(self, runner):
        self.runner = runner

    def submit(self, index: int, job: DesignJob) -> Future:
        f: Future = Future()
        try:
            got = list(self.runner(index, [job]))
            f.set_result(got[0] if got else None)
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            f.set_exception(exc)
        return f


Runner = Callable[[int, Sequence[DesignJob]], Sequence[PointCounts]]


def run_design(runner, settings: DesignSettings, *, v50_guess: float, scale_guess: float,
               bias_limits: tuple[float, float] | None = None, initial: Sequence[PointCounts] = (),
               clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None
               ) -> DesignResult:
    """Plan, submit and collect jobs until every target is met or the budget is spent (module docstring).

    ``runner``: either has ``submit(index, job) -> Future`` (of a PointCounts, or None when the job
    failed) and optionally ``cpu_seconds()`` (simulator CPU time used so far), or is a callable
    ``runner(index, [job]) -> [PointCounts]`` run synchronously. ``initial``: records already
    available (e.g. a pilot's), used by the fit and the trust region but not counted in the design's
    simulated time. ``v50_guess``/``scale_guess`` (V) place the start records when ``initial``
    cannot be fitted.
    """
    submitter = runner if hasattr(runner, "submit") else _Done(runner)
    cpu_now = getattr(runner, "cpu_seconds", None)
    cpu0 = cpu_now() if cpu_now else float("nan")
    t0 = clock()
    s, b = settings, settings.budget
    plan = Planner(s, v50_guess, scale_guess, bias_limits, initial)
    jobs: list[DesignJob] = []
    futures: list[Future] = []
    records: list[JobRecord] = []
    planned_s = 0.0          # design simulated time submitted
    done_s = 0.0             # ... of the completed prefix
    c = 0                    # completed prefix length
    stop: str | None = None
    idle_waits = 0

    def cpu() -> float:
        return cpu_now() - cpu0 if cpu_now else float("nan")

    try:
        while True:
            while stop is None and len(jobs) - c < s.lag:
                n_failed = sum(1 for r in records[:c] if not r.ok)
                if n_failed >= FAILED_STOP_MIN and n_failed >= FAILED_STOP_FRACTION * c:
                    stop = f"simulations failed: {n_failed} of {c} jobs"
                    break
                if len(jobs) >= b.max_jobs:
                    stop = "job limit"
                    break
                left = b.simulated_s - planned_s
                if left <= b.simulated_s * 1e-9:
                    stop = "simulated-time budget spent"
                    break
                if b.wall_s is not None and clock() - t0 >= b.wall_s:
                    stop = "wall-time budget spent"
                    break
                if b.cpu_s is not None and cpu() >= b.cpu_s:
                    stop = "CPU-time budget spent"
                    break
                job, predicted = plan.next(len(jobs), jobs[c:], done_s, left)
                if job is None:
                    stop = plan.diverged
                    break
                if job.duration_s > left:      # never plan past the simulated-time budget
                    job = DesignJob(job.bias_v, left, job.seed, job.purpose)
                jobs.append(job)
                planned_s += job.duration_s
                records.append(JobRecord(len(jobs) - 1, job, c, predicted, planned_s))
                futures.append(submitter.submit(len(jobs) - 1, job))
            if c == len(jobs):
                break                          # nothing outstanding and nothing to plan
            if len(jobs) - c < s.jobs_per_round:
                idle_waits += 1                # a core left idle by the plan (not by the machine)
            got = futures[c].result()          # the oldest outstanding job, whatever finished first
            plan.add(got)
            done_s += jobs[c].duration_s
            ach = s.targets.ratios(plan.fit) if plan.fit else None
            records[c] = dataclasses.replace(records[c], achieved=ach, wall_s=clock() - t0, cpu_s=cpu(), ok=got is not None)
            if log:
                j = jobs[c]
                log(f"design job {c}: {j.purpose} {j.bias_v * 1e3:+.3f} mV / {j.duration_s * 1e6:.3g} µs"
                    + ("" if got is not None else " FAILED") + (f" ({got.regime})" if got is not None else "")
                    + ("; half-width / target: " + ", ".join(f"{k} {v:.2f}" for k, v in ach.items())
                       if ach else "; no rate fit yet"))
            c += 1
    finally:
        for f in futures[c:]:
            f.cancel()
    fit = plan.fit
    met = plan.met()
    if met:
        reason = "targets met"
    else:
        reason = stop or "nothing left to plan"
    notes: list[str] = []
    cal = describe_regions(fit, plan.points) if fit is not None else None
    if cal is not None and not cal.covers_target:
        notes.append(f"calibrated P(1) span {cal.p1_range[0]:.3f}–{cal.p1_range[1]:.3f} does not reach "
                     f"{P1_SPAN_TARGET[0]}–{P1_SPAN_TARGET[1]}")
    if fit is None:
        notes.append("no job produced telegraph points at two biases with transitions both ways")
    return DesignResult(fit, cal, tuple(plan.points), tuple(records), reason, met, planned_s, clock() - t0,
                        s.targets, tuple(notes), cpu(), len(plan.initial), idle_waits, tuple(plan.fit_points))
