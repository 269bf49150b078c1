"""Sequential design: place the next bias points and record lengths where they shrink the widest
datasheet CI most, and stop when every target is met or the budget is spent.

Round k (pure planning, :func:`plan_round`): from the current joint rate fit
(:mod:`noisecell.model.ratefit`) the expected Fisher information of a stationary record of length T
at bias V about φ = (ln k50, V50, ln scale, slope_sum) is T·i(V) with

    i(V) = P0·P1/τ · (∇η_up ∇η_upᵀ + ∇η_down ∇η_downᵀ)     (per second; see information_per_second)

(each exit from a state is a Poisson event at rate k·P_state = P0·P1/τ). The information already
held is the same sum over the records taken so far, so the predicted covariance after adding a batch
is (I_now + Σ T·i(V_j))⁻¹ × the fit's dispersion, and the predicted 95 % half-widths of V50 (V),
scale and τ(V50) (relative: z·se of ln scale, ln k50) follow. Each target's "ratio" is predicted
half-width / target. The batch is chosen greedily, one job at a time, each at the candidate bias
that minimises the largest ratio (ties: the sum of squared ratios, then the lower bias): this is the
"shrink the widest CI" rule. The record length T of the round is the shortest of the allowed chunk
lengths with which the batch is predicted to meet every target; the longest when none does (so the
run does not overshoot its target by simulating more than it needs). A batch has at least
``jobs_per_round`` distinct biases (≥ the number of workers: both cores busy).

Once there is a fit, one round also places the two tail points of the calibration (the biases where
the fitted P(1) is 0.015 and 0.985) if no point has been taken past P(1) 0.02 / 0.98 yet, so the
calibrated range covers P(1) 0.02–0.98 (:mod:`noisecell.model.p1fit`).

The loop (:func:`run_design`) runs a round through an injected ``runner`` (side effects live there:
simulation, storage), refits with profile-likelihood CIs, and stops with reason "targets met",
"simulated-time budget spent", "wall-time budget spent" or "round limit". Every decision is a
function of the data, and the runner derives each job's seed from (seed, round, job index), so the
same seed gives the same points and numbers (the wall-time budget is the one exception: it depends
on the machine; use the simulated-time budget for reproducible stopping).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .errors import InputError
from .model.p1fit import MIN_VISITS, P1_SPAN_TARGET, Calibration, describe_regions
from .model.ratefit import PointCounts, RateFit, fit_rates_joint, information_per_second
from .constants import Z95

TAIL_P1 = (0.01, 0.99)
MAX_TAIL_TRIES = 2


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
    """Stop when the simulated time (s) or the wall time (s, None: no limit) or rounds run out."""

    simulated_s: float = 1e-3
    wall_s: float | None = None
    max_rounds: int = 30


@dataclass(frozen=True)
class DesignJob:
    """One simulation to run: bias (V), record length (s), and its seed."""

    bias_v: float
    duration_s: float
    seed: int
    purpose: str = "rates"           # "rates" (chosen for the targets), "tail" (calibration), "start"


@dataclass(frozen=True)
class DesignSettings:
    """Planning settings: targets, budget, jobs per round (≥ workers), allowed record lengths (s,
    ascending), the candidate grid (``n_candidates`` biases over V50 ± ``span_scales`` scales)."""

    targets: Targets = Targets()
    budget: Budget = Budget()
    jobs_per_round: int = 2
    chunk_lengths_s: tuple[float, ...] = (5e-6, 10e-6, 20e-6, 40e-6)
    n_candidates: int = 41
    span_scales: float = 3.5
    seed: int = 1
    tail_points: bool = True
    rate_regimes: tuple[str, ...] = ("bistable",)

    def __post_init__(self):
        if self.jobs_per_round < 1:
            raise InputError("design: jobs_per_round must be ≥ 1")
        if not self.chunk_lengths_s or any(c <= 0 for c in self.chunk_lengths_s):
            raise InputError("design: chunk lengths must be positive")


def _job_seed(seed: int, round_no: int, index: int) -> int:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x44455349, int(round_no), int(index)])
    return int(ss.generate_state(1, np.uint32)[0] & 0x7FFFFFFF)


def held_information(fit: RateFit, points: Sequence[PointCounts],
                     rate_regimes: tuple[str, ...] = ("bistable",)) -> np.ndarray:
    """Expected information about φ of the records already taken (telegraph points)."""
    tot = np.zeros((4, 4))
    for p in points:
        if p.regime in rate_regimes and p.simulated_s > 0:
            tot += information_per_second(fit, p.bias_v) * p.simulated_s
    return tot


def predicted_ratios(fit: RateFit, info: np.ndarray, targets: Targets) -> dict[str, float]:
    """Predicted half-width / target from an information matrix about φ (and the fit's dispersion)."""
    try:
        cov = np.linalg.inv(info) * fit.dispersion
    except np.linalg.LinAlgError:
        return {"v50": math.inf, "scale": math.inf, "tau_v50": math.inf}
    d = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {"v50": Z95 * d[1] / targets.v50_halfwidth_v,
            "scale": math.sinh(Z95 * d[2]) / targets.scale_rel_halfwidth,
            "tau_v50": math.sinh(Z95 * d[0]) / targets.tau_rel_halfwidth}


def _score(r: dict[str, float]) -> tuple[float, float]:
    return max(r.values()), sum(x * x for x in r.values())


#: the design does not place rate records more than this many scales beyond the outermost telegraph
#: record seen so far (a trust region that widens as telegraphs are confirmed further out)
TRUST_SCALES = 0.75


def telegraph_window(points: Sequence[PointCounts], rate_regimes: tuple[str, ...], scale_v: float = 0.0
                     ) -> tuple[float, float]:
    """Open bias interval in which records are expected to telegraph.

    On each side: at most TRUST_SCALES·|scale| beyond the outermost telegraph record; and when a
    record further out did not telegraph (a tilted double well loses its minority level past some
    P(1), and the information the rate model predicts there never arrives), no further than half-way
    from the outermost telegraph record to the innermost such record. Labels of records inside the
    telegraph span are not used (short records can be mislabelled)."""
    tele = [p.bias_v for p in points if p.regime in rate_regimes]
    if not tele:
        return -math.inf, math.inf
    lo_t, hi_t = min(tele), max(tele)
    reach = TRUST_SCALES * abs(scale_v) if scale_v else math.inf
    lo, hi = lo_t - reach, hi_t + reach
    other = [p.bias_v for p in points if p.regime not in rate_regimes]
    below = [v for v in other if v < lo_t]
    above = [v for v in other if v > hi_t]
    if below:
        lo = max(lo, 0.5 * (lo_t + max(below)))
    if above:
        hi = min(hi, 0.5 * (hi_t + min(above)))
    # the telegraph records themselves stay candidates (open interval just outside them)
    return min(lo, lo_t - 1e-12), max(hi, hi_t + 1e-12)


def candidate_biases(fit: RateFit, settings: DesignSettings, bias_limits: tuple[float, float] | None = None,
                     window: tuple[float, float] = (-math.inf, math.inf)) -> np.ndarray:
    s = abs(fit.scale.value)
    c = fit.v50.value + s * np.linspace(-settings.span_scales, settings.span_scales, settings.n_candidates)
    if bias_limits is not None:
        c = c[(c >= bias_limits[0]) & (c <= bias_limits[1])]
    c = c[(c > window[0]) & (c < window[1])]
    return np.round(c, 12)


def greedy_batch(fit: RateFit, info_now: np.ndarray, candidates: np.ndarray, duration_s: float, n_jobs: int,
                 targets: Targets) -> tuple[list[float], dict[str, float]]:
    """n_jobs distinct biases chosen one at a time to minimise the largest predicted ratio."""
    per_s = [information_per_second(fit, float(v)) for v in candidates]
    info = info_now.copy()
    chosen: list[int] = []
    ratios = predicted_ratios(fit, info, targets)
    for _ in range(min(n_jobs, len(candidates))):
        best = None
        for i, v in enumerate(candidates):
            if i in chosen:
                continue
            r = predicted_ratios(fit, info + per_s[i] * duration_s, targets)
            key = (_score(r), float(v))
            if best is None or key < best[0]:
                best = (key, i, r)
        _, i, ratios = best
        chosen.append(i)
        info = info + per_s[i] * duration_s
    return [float(candidates[i]) for i in chosen], ratios


def plan_round(fit: RateFit, points: Sequence[PointCounts], settings: DesignSettings, round_no: int,
               bias_limits: tuple[float, float] | None = None) -> tuple[list[DesignJob], dict[str, float]]:
    """The next batch (see the module docstring) and its predicted ratios after the batch."""
    info_now = held_information(fit, points, settings.rate_regimes)
    cands = candidate_biases(fit, settings, bias_limits,
                             telegraph_window(points, settings.rate_regimes, fit.scale.value))
    if not len(cands):
        raise InputError("design: no candidate bias inside the cell's bias range; widen the range")
    biases, ratios, duration = [], {}, settings.chunk_lengths_s[-1]
    for T in settings.chunk_lengths_s:
        biases, ratios = greedy_batch(fit, info_now, cands, T, settings.jobs_per_round, settings.targets)
        duration = T
        if max(ratios.values()) <= 1:
            break
    jobs = [DesignJob(v, duration, _job_seed(settings.seed, round_no, i)) for i, v in enumerate(biases)]
    if settings.tail_points:
        jobs += tail_jobs(fit, points, settings, round_no, bias_limits, duration)
    return jobs, ratios


def tail_jobs(fit: RateFit, points: Sequence[PointCounts], settings: DesignSettings, round_no: int,
              bias_limits: tuple[float, float] | None = None, duration_s: float | None = None) -> list[DesignJob]:
    """Jobs at the biases where the fitted P(1) is TAIL_P1 (0.01 / 0.99) on each side whose
    calibration (:func:`describe_regions`) does not yet reach P(1) 0.02 / 0.98; record length
    ``duration_s`` (default the shortest chunk; a round's own length keeps its jobs in one batch)."""
    cal = describe_regions(fit, points)
    lo, hi = (cal.p1_range if all(math.isfinite(x) for x in cal.p1_range) else (1.0, 0.0))
    out = []
    for j, (q, missing) in enumerate(((TAIL_P1[0], lo > P1_SPAN_TARGET[0]), (TAIL_P1[1], hi < P1_SPAN_TARGET[1]))):
        if not missing:
            continue
        # bias where the fitted logistic gives P(1) = q (the rate model is logistic near V50)
        v = fit.v50.value + fit.scale.value * math.log(q / (1 - q))
        if bias_limits is not None:
            v = min(max(v, bias_limits[0]), bias_limits[1])
        # long enough for ~2·MIN_VISITS visits to the minority state (rate P0·P1/τ at that bias),
        # else the record carries no P(1) claim (p1fit.effective_n); at most the longest chunk
        p = float(fit.p1(v))
        need = 2 * MIN_VISITS * float(fit.tau_s(v)) / max(p * (1 - p), 1e-12)
        T = min(max(duration_s or settings.chunk_lengths_s[0], need), settings.chunk_lengths_s[-1])
        T = min((c for c in settings.chunk_lengths_s if c >= T), default=settings.chunk_lengths_s[-1])
        out.append(DesignJob(round(v, 12), T, _job_seed(settings.seed, round_no, 100 + j), "tail"))
    return out


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
               bias_limits: tuple[float, float] | None = None) -> list[DesignJob]:
    """Round 0 from a pilot's logistic guess: biases at P(1) ≈ 0.2 … 0.8 (at least 3, so that the
    joint fit has two slopes to fit), the shortest chunk length."""
    n = max(3, settings.jobs_per_round)
    if bias_limits is not None:
        # a scale guess below 1e-3 of the bias range would put every start point at one bias
        floor = 1e-3 * (bias_limits[1] - bias_limits[0])
        if abs(scale_guess) < floor:
            scale_guess = math.copysign(floor, scale_guess or 1.0)
    qs = np.linspace(0.2, 0.8, n)
    vs = v50_guess + scale_guess * np.log(qs / (1 - qs))
    if bias_limits is not None:
        vs = np.clip(vs, bias_limits[0], bias_limits[1])
    return [DesignJob(round(float(v), 12), settings.chunk_lengths_s[0], _job_seed(settings.seed, 0, i), "start")
            for i, v in enumerate(vs)]


@dataclass(frozen=True)
class RoundRecord:
    """One round: the jobs, the simulated time and wall time so far (s), the achieved ratios after
    the round (None before a fit was possible) and the ratios the plan predicted."""

    round_no: int
    jobs: tuple[DesignJob, ...]
    simulated_s: float
    wall_s: float
    achieved: dict | None
    predicted: dict | None

    def to_dict(self) -> dict:
        return {"round": self.round_no, "jobs": [j.__dict__ for j in self.jobs], "simulated_s": self.simulated_s,
                "wall_s": self.wall_s, "achieved_ratios": self.achieved, "predicted_ratios": self.predicted}


@dataclass(frozen=True)
class DesignResult:
    """Outcome: the final fit and calibration, every point, the rounds, why it stopped, and the
    simulated (s) and wall (s) time it took; ``met`` says whether every target was reached."""

    fit: RateFit | None
    calibration: Calibration | None
    points: tuple[PointCounts, ...]
    rounds: tuple[RoundRecord, ...]
    reason: str
    met: bool
    simulated_s: float
    wall_s: float
    targets: Targets
    notes: tuple[str, ...] = field(default=())

    def ratios(self) -> dict[str, float] | None:
        return self.targets.ratios(self.fit) if self.fit else None

    def summary(self) -> str:
        from .units import format_si

        head = (f"sequential design: {len(self.rounds)} rounds, {len(self.points)} records, "
                f"{format_si(self.simulated_s, 's')} simulated, {self.wall_s:.0f} s wall; stopped: {self.reason}")
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
                "wall_s": self.wall_s, "targets": self.targets.to_dict(),
                "achieved_ratios": self.ratios(), "rounds": [r.to_dict() for r in self.rounds],
                "notes": list(self.notes)}


Runner = Callable[[int, Sequence[DesignJob]], Sequence[PointCounts]]


def run_design(runner: Runner, settings: DesignSettings, *, v50_guess: float, scale_guess: float,
               bias_limits: tuple[float, float] | None = None, initial: Sequence[PointCounts] = (),
               clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None
               ) -> DesignResult:
    """Run rounds until every target is met or the budget is spent (see the module docstring).

    ``runner(round_no, jobs)`` simulates the jobs (in parallel) and returns one PointCounts per
    finished job (failed jobs are simply missing). ``initial``: records already available (e.g. a
    pilot's). ``v50_guess``/``scale_guess`` (V) seed round 0 when ``initial`` cannot be fitted.
    """
    t0 = clock()
    points: list[PointCounts] = list(initial)
    rounds: list[RoundRecord] = []
    notes: list[str] = []
    fit: RateFit | None = None
    reason = "round limit"
    b = settings.budget
    simulated = float(sum(p.simulated_s for p in points))

    def refit() -> RateFit | None:
        tele = [p for p in points if p.regime in settings.rate_regimes]
        try:
            return fit_rates_joint(tele)
        except InputError:
            return None

    fit = refit()
    tails_only, tail_rounds = False, 0
    tail_tries: dict[int, int] = {}
    for round_no in range(b.max_rounds):
        if fit is None:
            if round_no > 0:
                # no two telegraph points yet: re-centre on the direct P(1) fit of every point so far
                # (P(1) is measured whatever the regime) and take longer records there
                v50_guess, scale_guess = _p1_guess(points, v50_guess, scale_guess, bias_limits, settings.rate_regimes)
            jobs, predicted = start_jobs(v50_guess, scale_guess, settings, bias_limits), None
            jobs = [DesignJob(j.bias_v, settings.chunk_lengths_s[min(round_no, len(settings.chunk_lengths_s) - 1)],
                              _job_seed(settings.seed, round_no, i), "start") for i, j in enumerate(jobs)]
        elif settings.tail_points and tails_only:
            jobs, predicted = tail_jobs(fit, points, settings, round_no, bias_limits), None
        else:
            jobs, predicted = plan_round(fit, points, settings, round_no, bias_limits)
        # at most MAX_TAIL_TRIES tail records per side: a cell whose tail never yields enough visits
        # within the longest chunk is reported as such instead of being simulated forever
        kept = []
        for j in jobs:
            if j.purpose == "tail" and fit is not None:
                side = 1 if j.bias_v > fit.v50.value else -1
                if tail_tries.get(side, 0) >= MAX_TAIL_TRIES:
                    continue
                tail_tries[side] = tail_tries.get(side, 0) + 1
            kept.append(j)
        jobs = kept
        if not jobs:
            reason = "targets met" if (fit is not None and max(settings.targets.ratios(fit).values()) <= 1) \
                else "nothing left to plan"
            break
        # never plan past the simulated-time budget: shorten the round's records to what is left
        left = b.simulated_s - simulated
        if left <= 0:
            reason = "simulated-time budget spent"
            break
        need = sum(j.duration_s for j in jobs)
        if need > left:
            f = left / need
            jobs = [DesignJob(j.bias_v, j.duration_s * f, j.seed, j.purpose) for j in jobs]
        got = list(runner(round_no, jobs))
        points.extend(got)
        simulated += sum(j.duration_s for j in jobs)
        fit = refit()
        achieved = settings.targets.ratios(fit) if fit else None
        wall = clock() - t0
        rounds.append(RoundRecord(round_no, tuple(jobs), simulated, wall, achieved, predicted))
        if log:
            log(f"design round {round_no}: {len(jobs)} jobs at "
                + ", ".join(f"{j.bias_v * 1e3:+.3f} mV/{j.duration_s * 1e6:.3g} µs" for j in jobs)
                + (f"; half-width / target: " + ", ".join(f"{k} {v:.2f}" for k, v in achieved.items())
                   if achieved else "; no rate fit yet"))
        if achieved and max(achieved.values()) <= 1:
            if settings.tail_points and fit is not None and tail_rounds < 2:
                if tail_jobs(fit, points, settings, round_no + 1, bias_limits) and simulated < b.simulated_s:
                    tails_only = True      # the next round takes only the tail points still missing
                    tail_rounds += 1
                    continue
            reason = "targets met"
            break
        if simulated >= b.simulated_s * (1 - 1e-9):
            reason = "simulated-time budget spent"
            break
        if b.wall_s is not None and wall >= b.wall_s:
            reason = "wall-time budget spent"
            break
    met = bool(fit is not None and max(settings.targets.ratios(fit).values()) <= 1)
    cal = describe_regions(fit, points) if fit is not None else None
    if cal is not None and not cal.covers_target:
        notes.append(f"calibrated P(1) span {cal.p1_range[0]:.3f}–{cal.p1_range[1]:.3f} does not reach "
                     f"{P1_SPAN_TARGET[0]}–{P1_SPAN_TARGET[1]}")
    if fit is None:
        notes.append("no round produced telegraph points at two biases with transitions both ways")
    return DesignResult(fit, cal, tuple(points), tuple(rounds), reason, met, simulated, clock() - t0,
                        settings.targets, tuple(notes))
