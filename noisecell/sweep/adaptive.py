"""Adaptive duration: pool independent chunks of one point until its P(1) CI is narrow enough.

Each chunk is an independent simulation (its own noise seed, derived from the point seed with
SeedSequence) of ``chunk`` seconds. After every chunk the pooled estimate is recomputed from
sufficient statistics; the point stops when its P(1) 95 % CI half-width ≤ target, or when it has
used ``max_duration`` (whole chunks). The decision after chunk k depends only on chunks 0..k, so the
set of chunks — and every number — is the same whatever the executor or the order of completion.

Pooling is the analysis module's (:func:`noisecell.analysis.pool.pool_segments`): the chunks'
sufficient statistics are summed and turned into the same :class:`~noisecell.analysis.StreamEstimates`
a single stream gets (rates with resolved-gated CIs, dwell goodness of fit, ``markov_consistent``,
``lag1_autocorr``, ...), with the between-chunk check on the P(1) interval. This module only decides
when a point has enough chunks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis.estimates import StreamEstimates
from ..analysis.pool import SegmentCounts, pool_segments


def pool(chunks: list[dict]) -> StreamEstimates:
    """The point's estimates from its stored chunk rows (each holding its :class:`SegmentCounts`
    columns and its own estimates, as written by :func:`noisecell.sweep.jobs.execute_in_host`)."""
    return pool_segments([SegmentCounts.from_row(c) for c in chunks], [StreamEstimates.from_row(c) for c in chunks],
                         source=str(chunks[0].get("job_id") or ""), sample_period_s=chunks[0].get("sample_period_s"))


def should_stop(pooled: StreamEstimates, k_done: int, adaptive) -> bool:
    """Stop after ``k_done`` chunks? (min chunks reached and target met, or max chunks used)."""
    if k_done >= adaptive.max_chunks:
        return True
    if k_done < adaptive.min_chunks:
        return False
    return pooled.p1_ci_halfwidth <= adaptive.target_p1_ci_halfwidth


@dataclass(frozen=True)
class AdaptiveReport:
    """Simulated time of the adaptive sweep versus a fixed duration meeting the same worst-point target.

    used_s: total simulated time of all points, s.
    fixed_per_point_s: the fixed duration every point would need for the worst point to reach the
        target, s: the hardest point's time scaled by (its half-width / target)² (CI width ∝ 1/√T),
        i.e. its own used time when it met the target exactly at a chunk boundary.
    fixed_total_s: fixed_per_point_s × points, s. saving: fixed_total_s / used_s.
    points_meeting_target / points: how many points reached the target within max_duration.
    """

    used_s: float
    fixed_per_point_s: float
    fixed_total_s: float
    saving: float
    points: int
    points_meeting_target: int
    worst_job_id: str
    extrapolated: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        return (f"adaptive: {self.used_s * 1e6:.4g} µs simulated in total; a fixed duration meeting the "
                f"worst point's target needs {self.fixed_per_point_s * 1e6:.4g} µs x {self.points} points = "
                f"{self.fixed_total_s * 1e6:.4g} µs -> saving {self.saving:.3g}x; "
                f"{self.points_meeting_target}/{self.points} points met the target"
                + ("; the worst point did not reach the target within max_duration, so the fixed duration is "
                   "extrapolated (CI width ∝ 1/√T) — raise max_duration for a measured comparison"
                   if self.extrapolated else ""))


def report(rows: list[dict], target: float) -> AdaptiveReport | None:
    ok = [r for r in rows if r.get("status") == "ok" and r.get("simulated_s")]
    if not ok:
        return None
    need = []
    for r in ok:
        hw = r.get("p1_ci_halfwidth")
        t = r["simulated_s"]
        if hw is None or not math.isfinite(hw):
            need.append((t, r["job_id"]))
            continue
        # CI half-width scales as 1/sqrt(T) for a stationary stream, so T_needed = T (hw/target)^2;
        # capped below by nothing: a point that met the target early says the fixed run could be shorter
        need.append((t * (hw / target) ** 2, r["job_id"]))
    fixed, worst = max(need)
    used = float(sum(r["simulated_s"] for r in ok))
    n = len(ok)
    met = sum(1 for r in ok if r.get("p1_ci_halfwidth") is not None and r["p1_ci_halfwidth"] <= target)
    wrow = next(r for r in ok if r["job_id"] == worst)
    extrapolated = not (wrow.get("p1_ci_halfwidth") is not None and wrow["p1_ci_halfwidth"] <= target)
    return AdaptiveReport(used, float(fixed), float(fixed * n), float(fixed * n / used) if used else float("nan"),
                          n, met, worst, extrapolated)
