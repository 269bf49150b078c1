"""Adaptive duration: pool independent chunks of one point until its P(1) CI is narrow enough.

Each chunk is an independent simulation (its own noise seed, derived from the point seed with
SeedSequence) of ``chunk`` seconds. After every chunk the pooled estimate is recomputed from
sufficient statistics; the point stops when its P(1) 95 % CI half-width ≤ target, or when it has
used ``max_duration`` (whole chunks). The decision after chunk k depends only on chunks 0..k, so the
set of chunks — and every number — is the same whatever the executor or the order of completion.

Pooling (chunks are independent, so sums of independent statistics):

* P(1) = Σ ones / Σ samples (the chunks have equal length, so this is also the n_eff-weighted mean
  when their correlation is the same);
* n_eff = Σ n_eff_k (effective sample sizes of independent blocks add), each n_eff_k from the
  analysis module's autocorrelation-aware estimate for that chunk;
* CI: Wilson score interval with n_eff in place of n (the interval the analysis module uses for one
  stream, see :func:`p1_interval`);
* rates: k_up = Σ n_up / (Σ time in 0), k_down = Σ n_down / (Σ time in 1) — the censored-exponential
  maximum likelihood over all chunks; exact Poisson (chi-square) 95 % intervals; τ = 1/(k_up+k_down);
* power: duration-weighted mean; energy per flip = P / flip rate, energy per bit = P·τ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _st

Z95 = float(_st.norm.ppf(0.975))


def p1_interval(p: float, n_eff: float) -> tuple[float, float]:
    """95 % interval for P(1) from an estimate ``p`` with effective sample size ``n_eff``.

    Uses the analysis module's interval function when it exposes one (so a pooled point and a
    single stream are judged alike), else the Wilson score interval with n_eff.
    """
    try:
        from ..analysis import p1 as _p1mod  # type: ignore

        fn = getattr(_p1mod, "wilson_interval", None)
        if fn is not None:
            lo, hi = fn(p, n_eff)
            return float(lo), float(hi)
    except ImportError:
        pass
    if not n_eff or n_eff <= 0 or not math.isfinite(n_eff):
        return 0.0, 1.0
    z2 = Z95 * Z95
    den = 1 + z2 / n_eff
    centre = (p + z2 / (2 * n_eff)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff * n_eff)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_rate_interval(n: int, exposure_s: float) -> tuple[float, float]:
    """Exact 95 % interval of a rate from ``n`` events in ``exposure_s`` seconds (Garwood), 1/s."""
    if exposure_s <= 0:
        return float("nan"), float("nan")
    lo = 0.0 if n == 0 else _st.chi2.ppf(0.025, 2 * n) / (2 * exposure_s)
    hi = _st.chi2.ppf(0.975, 2 * n + 2) / (2 * exposure_s)
    return float(lo), float(hi)


def pool(chunks: list[dict]) -> dict:
    """Pooled estimates from chunk rows (each with the stream_stats keys, ``n_eff``,
    ``mean_supply_power_w`` and ``duration``)."""
    n = sum(c["n_samples"] for c in chunks)
    ones = sum(c["n_ones"] for c in chunks)
    p1 = ones / n if n else float("nan")
    n_effs = [c.get("n_eff") for c in chunks]
    # a chunk without an n_eff (stuck: analysis refused) contributes its samples as if independent:
    # a constant stream carries no correlation information, and p(1-p)=0 there anyway
    n_eff = float(sum(c["n_samples"] if (e is None or not math.isfinite(e)) else e for e, c in zip(n_effs, chunks)))
    lo, hi = p1_interval(p1, n_eff)
    dt = chunks[0]["sample_period_s"]
    t0 = sum(c["occ0_samples"] for c in chunks) * dt
    t1 = sum(c["occ1_samples"] for c in chunks) * dt
    n_up = sum(c["n_up"] for c in chunks)
    n_down = sum(c["n_down"] for c in chunks)
    k_up = n_up / t0 if t0 > 0 else float("nan")
    k_down = n_down / t1 if t1 > 0 else float("nan")
    up_lo, up_hi = poisson_rate_interval(n_up, t0)
    dn_lo, dn_hi = poisson_rate_interval(n_down, t1)
    tau = 1.0 / (k_up + k_down) if (k_up + k_down) > 0 else float("nan")
    duration = sum(c["simulated_s"] for c in chunks)
    powers = [(c.get("mean_supply_power_w"), c["simulated_s"]) for c in chunks]
    p_w = (sum(p * d for p, d in powers if p is not None) / sum(d for p, d in powers if p is not None)
           if any(p is not None for p, _ in powers) else float("nan"))
    flips = n_up + n_down
    flip_rate = flips / (n * dt) if n else float("nan")
    return {
        "p1": p1, "p1_ci95_lo": lo, "p1_ci95_hi": hi, "p1_ci_halfwidth": (hi - lo) / 2, "n_eff": n_eff,
        "n_samples": n, "flips": flips, "rate_up_hz": k_up, "rate_up_hz_ci95_lo": up_lo,
        "rate_up_hz_ci95_hi": up_hi, "rate_down_hz": k_down, "rate_down_hz_ci95_lo": dn_lo,
        "rate_down_hz_ci95_hi": dn_hi, "tau_s": tau, "mean_supply_power_w": p_w,
        "energy_per_flip_j": p_w / flip_rate if flip_rate > 0 else float("nan"),
        "energy_per_bit_j": p_w * tau if math.isfinite(tau) else float("nan"),
        "chunks": len(chunks), "simulated_s": duration, "sample_period_s": dt,
    }


def should_stop(pooled: dict, k_done: int, adaptive) -> bool:
    """Stop after ``k_done`` chunks? (min chunks reached and target met, or max chunks used)."""
    if k_done >= adaptive.max_chunks:
        return True
    if k_done < adaptive.min_chunks:
        return False
    return pooled["p1_ci_halfwidth"] <= adaptive.target_p1_ci_halfwidth


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

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        return (f"adaptive: {self.used_s * 1e6:.4g} µs simulated in total; a fixed duration meeting the "
                f"worst point's target needs {self.fixed_per_point_s * 1e6:.4g} µs x {self.points} points = "
                f"{self.fixed_total_s * 1e6:.4g} µs -> saving {self.saving:.3g}x; "
                f"{self.points_meeting_target}/{self.points} points met the target")


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
    return AdaptiveReport(used, float(fixed), float(fixed * n), float(fixed * n / used) if used else float("nan"),
                          n, met, worst)


def ci_halfwidth_from_row(row: dict) -> float:
    lo, hi = row.get("p1_ci95_lo"), row.get("p1_ci95_hi")
    if lo is None or hi is None:
        return float("nan")
    return (hi - lo) / 2

