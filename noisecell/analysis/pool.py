"""Independent records of one point, pooled into one :class:`~.estimates.StreamEstimates`.

An adaptive sweep simulates a point as K independent chunks (own noise seeds). Each chunk stores its
sufficient statistics (:class:`SegmentCounts`: counts, transitions, samples at risk and the histogram
of complete dwell lengths — a few hundred integers) next to its own estimates. Pooling sums the counts
and hands them to the same assembly step as one stream (:func:`.stream.assemble`), so the chain, τ,
the rates with their resolved-gated union CIs and standard errors, the dwell goodness of fit,
``markov_consistent``, ``lag1_autocorr``, the entropy rates and the energy figures are *the analysis
module's*, computed from all chunks at once. With one chunk the result is ``analyze_stream`` of it.

What cannot be summed is combined from the chunks' own estimates:

* P(1) = Σ ones / Σ samples; n_eff = Σ n_eff_k (effective sizes of independent blocks add) unless the
  chunks scatter more than that allows: with K ≥ 2 the variance of the pooled P(1) is the larger of
  p(1−p)/Σ n_eff_k and the between-chunk estimate s²/K, n_eff = p(1−p)/variance (a cell slower than a
  chunk makes each chunk look well determined; the scatter between independent chunks exposes it).
  ``chunks_consistency_p``: chi-square p of the chunk P(1)s against their own n_eff. CI: Wilson at n_eff.
* ACF figures (τ_int from the ACF, τ from the IACT, the exponential fit, lag-2): sample-weighted means
  of the chunks' values; the IACT's ln-SE combines as sqrt(Σ w_k² se_k²).
* PSD corner: inverse-variance weighted mean of the chunks' ln corners.
* supply power: sample-weighted mean (chunks of one point have equal length).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from .autocorr import tau_from_tau_int
from .estimates import StreamEstimates, _f
from .markov import DEFAULT_ALPHA
from .counts import SegmentCounts
from .p1 import tau_int_markov, wilson_interval
from .stream import OWN_NOTES, AcfPart, P1Part, PsdPart, assemble


def _wmean(vals: Sequence, weights: Sequence[float]) -> float:
    got = [(float(v), w) for v, w in zip(vals, weights) if v is not None and math.isfinite(float(v))]
    if not got:
        return float("nan")
    return sum(v * w for v, w in got) / sum(w for _, w in got)


def pool_p1(counts: Sequence[SegmentCounts], n_effs: Sequence[float | None]):
    """Pooled (p1, ci95, n_eff, method, n_eff_within, consistency_p) of independent records (see the
    module docstring). A record without an n_eff (stuck: the analysis refused it) counts its samples as
    independent: a constant record carries no correlation information, and p(1−p) = 0 there anyway."""
    n = sum(c.n for c in counts)
    ones = sum(c.n1 for c in counts)
    p1 = ones / n if n else float("nan")
    eff = [c.n if (e is None or not math.isfinite(e)) else float(e) for e, c in zip(n_effs, counts)]
    n_eff_within = float(sum(eff))
    n_eff, consistency_p, method = n_eff_within, None, "sum over chunks"
    k = len(counts)
    if k >= 2 and 0 < p1 < 1:
        ps = [c.n1 / c.n for c in counts]
        # equal-length independent replicates: their scatter measures Var(P1) whatever the
        # correlation inside a chunk
        var_between = sum((x - p1) ** 2 for x in ps) / (k * (k - 1))
        var_within = p1 * (1 - p1) / n_eff_within
        if var_between > var_within:
            n_eff, method = p1 * (1 - p1) / var_between, "between-chunk scatter"
        chi2 = sum((x - p1) ** 2 / (p1 * (1 - p1) / max(e, 1e-300)) for x, e in zip(ps, eff))
        consistency_p = float(stats.chi2.sf(chi2, k - 1))
    return p1, wilson_interval(p1, n_eff), n_eff, method, n_eff_within, consistency_p


def pool_segments(counts: Sequence[SegmentCounts], estimates: Sequence[StreamEstimates], *, source: str = "",
                  sample_period_s: float | None = None) -> StreamEstimates:
    """One point's estimates from K independent records: ``counts[k]`` and ``estimates[k]`` (that
    record's own :class:`StreamEstimates`, e.g. read back with ``from_row``) describe record k."""
    if not counts or len(counts) != len(estimates):
        raise ValueError("pool_segments needs one SegmentCounts per StreamEstimates, at least one")
    k = len(counts)
    total = SegmentCounts.merge(counts)
    dt = sample_period_s if sample_period_s is not None else next(
        (e.sample_period_s for e in estimates if e.sample_period_s), None)
    w = [c.n for c in counts]
    if k == 1:
        e = estimates[0]
        if e.n_eff is not None:
            p1 = P1Part(e.p1, tuple(e.p1_ci95) if e.p1_ci95 else wilson_interval(e.p1, e.n_eff), e.n_eff,
                        e.tau_int_samples if e.tau_int_samples is not None else float("nan"), e.n_eff_method,
                        e.tau_int_markov_samples if e.tau_int_markov_samples is not None else float("nan"))
            n_within, cons = None, None
        else:
            k1 = pool_p1(counts, [None])
            p1 = P1Part(k1[0], k1[1], k1[2], 1.0, "markov", 1.0)
            n_within, cons = None, None
    else:
        p, ci, n_eff, method, n_within, cons = pool_p1(counts, [e.n_eff for e in estimates])
        lam = 1.0 - (total.n_up / total.n0_at_risk if total.n0_at_risk else 0.0) \
            - (total.n_down / total.n1_at_risk if total.n1_at_risk else 0.0)
        stuck = total.n1 in (0, total.n)
        p1 = P1Part(p, ci, n_eff, total.n / n_eff if n_eff > 0 else float("nan"), method,
                    1.0 if stuck else tau_int_markov(lam))

    # ACF figures: sample-weighted means of the records' own values
    ti_acf = _wmean([e.tau_int_acf_samples for e in estimates], w)
    with_se = [(wi, e.tau_iact_log_se) for wi, e in zip(w, estimates)
               if e.tau_iact_log_se is not None and e.tau_int_acf_samples is not None]
    if with_se:
        wt = sum(x for x, _ in with_se)
        iact_se = math.sqrt(sum((x / wt) ** 2 * s * s for x, s in with_se))
    else:
        iact_se = float("nan")
    acf = AcfPart(ti_acf, tau_from_tau_int(ti_acf) if math.isfinite(ti_acf) else float("nan"), iact_se,
                  _wmean([e.tau_exp_fit_samples for e in estimates], w),
                  _wmean([e.tau_exp_fit_amplitude for e in estimates], w),
                  _wmean([e.lag2_autocorr for e in estimates], w),
                  int(sum(e.acf_samples_used for e in estimates)))
    if k == 1:
        e = estimates[0]
        acf = AcfPart(*(float("nan") if v is None else v for v in (
            e.tau_int_acf_samples, e.tau_iact_samples, e.tau_iact_log_se, e.tau_exp_fit_samples,
            e.tau_exp_fit_amplitude, e.lag2_autocorr)), e.acf_samples_used)

    # PSD: inverse-variance weighted ln corner over the records that fitted one
    fits = [(e.psd_corner_per_sample, e.psd_corner_log_se) for e in estimates
            if e.psd_corner_per_sample and e.psd_corner_log_se and e.psd_corner_log_se > 0
            and math.isfinite(e.psd_corner_log_se) and e.psd_tau_samples]
    computed = any(e.psd_corner_per_sample is not None or e.psd_tau_samples is not None for e in estimates)
    if k == 1:
        e = estimates[0]
        psd = PsdPart(*(float("nan") if v is None else v for v in (
            e.psd_corner_per_sample, e.psd_corner_log_se, e.psd_tau_samples)),
            ok=e.psd_tau_samples is not None and e.psd_tau_samples > 0 and e.psd_corner_per_sample is not None
            and math.isfinite(e.psd_corner_per_sample), n_used=e.psd_samples_used, computed=computed)
    elif fits:
        iv = [1 / s ** 2 for _, s in fits]
        ln_c = sum(math.log(c) * x for (c, _), x in zip(fits, iv)) / sum(iv)
        corner = math.exp(ln_c)
        psd = PsdPart(corner, 1 / math.sqrt(sum(iv)), 1 / (2 * math.pi * corner), True,
                      int(sum(e.psd_samples_used for e in estimates)), True)
    else:
        psd = PsdPart(n_used=int(sum(e.psd_samples_used for e in estimates)), computed=computed)

    powers = [e.mean_supply_power_w for e in estimates]
    power = _wmean(powers, w)
    power = power if math.isfinite(power) else None
    energy = power is not None and any(e.energy_per_flip_j is not None or e.kt_ln2_j is not None
                                       or e.energy_per_bit_j is not None for e in estimates)
    notes = list(dict.fromkeys(n for e in estimates for n in e.notes if n not in OWN_NOTES))
    temp_c = next((e.temp_c for e in estimates if e.temp_c is not None), None)
    alpha = next((e.health_alpha for e in estimates if e.health_alpha is not None), DEFAULT_ALPHA)
    dig = next((e.digitization for e in estimates if e.digitization), None)
    return assemble(total, p1, acf, psd, source=source, sample_period_s=dt, temp_c=temp_c, alpha=alpha,
                    power_w=power, energy_wanted=energy, notes=notes, digitization=dig,
                    chunks=k, n_eff_within=_f(n_within), chunks_consistency_p=_f(cons))
