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
  analysis module's autocorrelation-aware estimate for that chunk — unless the chunks scatter more
  than that allows: with K ≥ 2 chunks the variance of the pooled P(1) is taken as the larger of
  p(1−p)/Σ n_eff_k and the between-chunk estimate s²/K (s² = sample variance of the chunk P(1)s),
  and n_eff = p(1−p)/variance. A cell that switches more slowly than a chunk lasts makes each chunk
  look well-determined on its own; the scatter between independent chunks exposes it.
  ``chunks_consistency_p`` is the chi-square p-value of the chunks against their own n_eff;
* CI: Wilson score interval with n_eff in place of n (the interval the analysis module uses for one
  stream, see :func:`p1_interval`);
* rates: the two-state chain fitted to the summed transition counts (p01 = Σ n_up / Σ samples at risk
  in 0, likewise p10 — the censored-dwell maximum likelihood over all chunks), converted to
  continuous-time rates by the analysis module's embedding, with its exact Poisson (chi-square)
  95 % factors; τ = 1/(k_up+k_down); entropy rates and SP 800-90B cutoffs from the same chain;
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


def pool(chunks: list[dict]) -> dict:
    """Pooled estimates from chunk rows (each with the stream_stats keys, ``n_eff``,
    ``mean_supply_power_w`` and ``duration``)."""
    n = sum(c["n_samples"] for c in chunks)
    ones = sum(c["n_ones"] for c in chunks)
    p1 = ones / n if n else float("nan")
    n_effs = [c.get("n_eff") for c in chunks]
    # a chunk without an n_eff (stuck: analysis refused) contributes its samples as if independent:
    # a constant stream carries no correlation information, and p(1-p)=0 there anyway
    n_eff_within = float(sum(c["n_samples"] if (e is None or not math.isfinite(e)) else e
                             for e, c in zip(n_effs, chunks)))
    n_eff, consistency_p = n_eff_within, float("nan")
    k = len(chunks)
    if k >= 2 and 0 < p1 < 1:
        # Chunks are independent replicates, so their scatter measures Var(P1) whatever the
        # correlation inside a chunk. A process slower than a chunk (a chunk that sits in one state
        # most of the time) fools each chunk's own n_eff; the scatter does not. Use the larger of
        # the two variances of the pooled mean (equal-length chunks: between = s^2 / K).
        ps = [c["n_ones"] / c["n_samples"] for c in chunks]
        var_between = sum((x - p1) ** 2 for x in ps) / (k * (k - 1))
        var_within = p1 * (1 - p1) / n_eff_within
        if var_between > var_within:
            n_eff = p1 * (1 - p1) / var_between
        # chi-square test of the chunks against their own n_eff: small p = chunks disagree more
        # than their within-chunk uncertainty allows (slow or non-stationary switching)
        chi2 = sum((x - p1) ** 2 / (p1 * (1 - p1) / max(ne if ne and math.isfinite(ne) else c["n_samples"], 1e-300))
                   for x, ne, c in zip(ps, n_effs, chunks))
        consistency_p = float(_st.chi2.sf(chi2, k - 1))
    lo, hi = p1_interval(p1, n_eff)
    dt = chunks[0]["sample_period_s"]
    n_up = sum(c["n_up"] for c in chunks)
    n_down = sum(c["n_down"] for c in chunks)
    occ0 = sum(c["occ0_samples"] for c in chunks)
    occ1 = sum(c["occ1_samples"] for c in chunks)
    # the same estimators as one stream (noisecell.analysis): the two-state chain's maximum
    # likelihood from the summed transition counts, its continuous-time embedding for the rates,
    # exact Poisson factors for their CIs, closed-form entropy rates and health-test cutoffs
    from ..analysis.markov import fit_markov
    from ..analysis.rates import embedding_rates, gamma_rate_factor

    mk = fit_markov(n_up, occ0, n_down, occ1)
    ku_dt, kd_dt = embedding_rates(mk.p01, mk.p10)
    k_up, k_down = ku_dt / dt, kd_dt / dt
    fu, fd = gamma_rate_factor(n_up), gamma_rate_factor(n_down)
    up_lo, up_hi = k_up * fu[0], k_up * fu[1]
    dn_lo, dn_hi = k_down * fd[0], k_down * fd[1]
    tau = 1.0 / (k_up + k_down) if (k_up + k_down) > 0 else float("nan")
    duration = sum(c["simulated_s"] for c in chunks)
    powers = [(c.get("mean_supply_power_w"), c["simulated_s"]) for c in chunks]
    p_w = (sum(p * d for p, d in powers if p is not None) / sum(d for p, d in powers if p is not None)
           if any(p is not None for p, _ in powers) else float("nan"))
    flips = n_up + n_down
    flip_rate = flips / (n * dt) if n else float("nan")
    return {
        "p1": p1, "p1_ci95_lo": lo, "p1_ci95_hi": hi, "p1_ci_halfwidth": (hi - lo) / 2, "n_eff": n_eff,
        "n_eff_method": "sum over chunks" if n_eff == n_eff_within else "between-chunk scatter",
        "n_eff_within": n_eff_within, "chunks_consistency_p": consistency_p, "n_samples": n, "n_flips": flips, "n_up": n_up, "n_down": n_down,
        "p01": mk.p01, "p10": mk.p10, "flip_rate_hz": flip_rate, "rate_up_hz": k_up, "rate_up_hz_ci95_lo": up_lo,
        "rate_up_hz_ci95_hi": up_hi, "rate_down_hz": k_down, "rate_down_hz_ci95_lo": dn_lo,
        "rate_down_hz_ci95_hi": dn_hi, "tau_s": tau, "mean_supply_power_w": p_w,
        "energy_per_flip_j": p_w / flip_rate if flip_rate > 0 else float("nan"),
        "energy_per_bit_j": p_w * tau if math.isfinite(tau) else float("nan"),
        "lag1_autocorr_markov": mk.lam, "h_shannon_rate": mk.h_shannon_rate, "h_min_rate": mk.h_min_rate,
        "rct_cutoff": mk.rct_cutoff, "apt_cutoff": mk.apt_cutoff,
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


def ci_halfwidth_from_row(row: dict) -> float:
    lo, hi = row.get("p1_ci95_lo"), row.get("p1_ci95_hi")
    if lo is None or hi is None:
        return float("nan")
    return (hi - lo) / 2

