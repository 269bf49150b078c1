"""analyze_stream: every per-stream estimate of a bit cell, with uncertainties and model checks.

Cost: one O(n) numba pass (:mod:`.runs`) plus FFT work on a bounded subset (ACF, Welch PSD), so the
time is ~linear in n and the extra memory is bounded (a few tens of MB) whatever n is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .autocorr import DEFAULT_MAX_SAMPLES, fit_exponential, tau_from_tau_int
from .counts import SegmentCounts
from .energy import energy_estimates
from .markov import DEFAULT_ALPHA, fit_markov
from .estimates import CI, StreamEstimates, _f
from .p1 import Z95, estimate_p1
from .psd import fit_lorentzian
from .rates import estimate_rates
from .runs import scan_runs

#: |z| beyond which two estimates of the same quantity are said to disagree
AGREE_Z = 3.0


#: notes the shared assembly step writes itself (a pooled point re-derives them from its pooled counts)
STUCK_NOTE = "stream is stuck at one value: no switching observed"
UNRESOLVED_NOTE = ("lag-1 correlation not significantly > 0: switching may be faster than the sampling; "
                   "rates are not resolved")
ENERGY_TAU_NOTE = "energy per bit (P·tau) unavailable: tau is not resolved at this sampling period"
NO_SUPPLY_NOTE = "waveform has no supply currents: energy figures unavailable"
OWN_NOTES = (STUCK_NOTE, UNRESOLVED_NOTE, ENERGY_TAU_NOTE)


@dataclass(frozen=True)
class P1Part:
    """P(1) and its effective sample size, however obtained (one stream's ACF/Markov tau_int, or
    independent chunks summed with the between-chunk check)."""

    p1: float
    ci95: tuple[float, float]
    n_eff: float
    tau_int: float
    method: str
    tau_int_markov: float = float("nan")


@dataclass(frozen=True)
class AcfPart:
    """What the FFT autocorrelation of the stream(s) says (NaN where not computed)."""

    tau_int_acf: float = float("nan")
    tau_iact: float = float("nan")
    tau_iact_log_se: float = float("nan")
    tau_exp: float = float("nan")
    amplitude: float = float("nan")
    lag2: float = float("nan")
    n_used: int = 0


@dataclass(frozen=True)
class PsdPart:
    """The Lorentzian fit of the PSD: corner (cycles/sample), its ln-SE, tau (samples)."""

    corner: float = float("nan")
    corner_log_se: float = float("nan")
    tau_samples: float = float("nan")
    ok: bool = False
    n_used: int = 0
    computed: bool = False


def analyze_stream(bits, *, waveform=None, temp_c: float | None = None, sample_period_s: float | None = None,
                   alpha: float = DEFAULT_ALPHA, entropy_sample_period_s: float | None = None,
                   max_fft_samples: int = DEFAULT_MAX_SAMPLES) -> StreamEstimates:
    """Per-stream estimates of a bit cell.

    bits: a :class:`noisecell.io.BitStream` or a 1-D array of 0/1.
    waveform: the :class:`noisecell.waveform.Waveform` the bits came from (for the energy figures).
    temp_c: temperature, °C (default: from the stream's or waveform's meta) for kT·ln2 units.
    sample_period_s: time between samples, s (default: the BitStream's).
    alpha: false-alarm probability of the SP 800-90B health tests (default 2^-20).
    entropy_sample_period_s: sampling period for the energy per min-entropy bit (default: sample_period_s).
    max_fft_samples: bound on the samples the ACF and PSD read (they use an evenly spread subset).
    """
    from ..io import BitStream

    if isinstance(bits, BitStream):
        bs = bits
    else:
        bs = BitStream(bits=np.asarray(bits), sample_period_s=None, source="", meta={})
    x = bs.bits
    src = bs.source or "bits"
    dt = sample_period_s if sample_period_s is not None else bs.sample_period_s
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise InputError(f"{src}: sample period must be a positive number of seconds, got {dt!r}")
    meta = dict(bs.meta)
    if waveform is not None:
        meta = {**waveform.meta, **meta}
    if temp_c is None and meta.get("temp_c") is not None:
        temp_c = float(meta["temp_c"])
    notes: list[str] = []

    rs = scan_runs(x, source=src)
    counts = SegmentCounts.from_runs(rs)
    mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk, alpha=alpha)
    lam = mk.lam
    tau_m = -1.0 / math.log(lam) if 0 < lam < 1 else (0.0 if lam <= 0 else float("inf"))

    # --- P(1), ACF on a bounded subset, integrated autocorrelation time, exponential fit ---
    pe = estimate_p1(x, runs=rs, lam=lam, max_fft_samples=max_fft_samples)
    p1 = P1Part(pe.p1, pe.ci95, pe.n_eff, pe.tau_int, pe.method, pe.tau_int_markov)
    acf = AcfPart()
    if pe.acf is not None:
        a_res, M, tau_int_acf = pe.acf, pe.iact_window, pe.tau_int_acf
        if not pe.iact_converged:
            notes.append(f"integrated autocorrelation window did not converge within {a_res.rho.size - 1} lags "
                         "(stream too short for its correlation time); tau_int from the ACF is a lower bound")
        tau_iact = tau_from_tau_int(tau_int_acf)
        tau_iact_log_se = float("nan")
        # Madras-Sokal: var(tau_int) ≈ 2(2M+1)/N · tau_int²; propagated to the exponential tau
        if M > 0 and tau_int_acf > 1 and tau_iact > 0:
            rel = math.sqrt(2 * (2 * M + 1) / a_res.n_used)
            t_hi = tau_from_tau_int(tau_int_acf * 1.01)
            g = (math.log(t_hi) - math.log(tau_iact)) / math.log(1.01) if t_hi > 0 else 1.0
            tau_iact_log_se = rel * g
        noise = math.sqrt(max(tau_int_acf, 1.0) / a_res.n_used)
        ef = fit_exponential(a_res.rho, noise)
        acf = AcfPart(tau_int_acf, tau_iact, tau_iact_log_se, ef.tau, ef.amplitude,
                      float(a_res.rho[2]) if a_res.rho.size > 2 else float("nan"), a_res.n_used)

    # --- PSD corner (compared with tau in the assembly) ---
    psd = PsdPart()
    var = p1.p1 * (1 - p1.p1)
    if var > 0 and rs.n >= 64:
        tg = tau_m if math.isfinite(tau_m) and tau_m > 0 else 1.0
        f = fit_lorentzian(x, tg, max_samples=max_fft_samples)
        psd = PsdPart(f.corner, f.corner_log_se, f.tau_samples, bool(f.ok), f.n_used, True)

    power = None
    if waveform is not None:
        if dt is None:
            raise InputError(f"{src}: energy figures need the sample period of the bits")
        if not waveform.supply_currents:
            notes.append(NO_SUPPLY_NOTE)
        else:
            power = waveform.mean_supply_power_w()
    return assemble(counts, p1, acf, psd, source=bs.source, sample_period_s=dt, temp_c=temp_c, alpha=alpha,
                    power_w=power, energy_wanted=waveform is not None and bool(waveform.supply_currents),
                    entropy_sample_period_s=entropy_sample_period_s, notes=notes,
                    digitization=dict(meta["digitization"]) if "digitization" in meta else None)


def assemble(counts, p1: P1Part, acf: AcfPart, psd: PsdPart, *, source: str, sample_period_s: float | None,
             temp_c: float | None, alpha: float = DEFAULT_ALPHA, power_w: float | None = None,
             energy_wanted: bool = False, entropy_sample_period_s: float | None = None,
             notes: list[str] | tuple[str, ...] = (), digitization: dict | None = None,
             **pooled) -> StreamEstimates:
    """The estimates implied by transition/dwell counts (a :class:`.pool.SegmentCounts` of one stream
    or of independent chunks summed) and the P(1), ACF and PSD parts: the one place where a point's
    chain, τ, rates, their CIs and standard errors, the Markov checks and the energy figures are made.
    ``pooled``: the pooling bookkeeping fields (chunks, n_eff_within, chunks_consistency_p)."""
    dt = sample_period_s
    notes = list(notes)
    n = counts.n
    mk = fit_markov(counts.n_up, counts.n0_at_risk, counts.n_down, counts.n1_at_risk, alpha=alpha)
    a, b, lam = mk.p01, mk.p10, mk.lam
    p_hat = counts.n1 / n
    # exact empirical lag-1 autocorrelation from the counts (pairs of successive samples within a record)
    n11 = counts.n1_at_risk - counts.n_down
    var = p_hat * (1 - p_hat)
    lag1 = ((n11 / counts.n_pairs) - p_hat * p_hat) / var if var > 0 and counts.n_pairs > 0 else float("nan")

    # --- Markov correlation time with a delta-method CI on ln(tau) ---
    tau_m = -1.0 / math.log(lam) if 0 < lam < 1 else (0.0 if lam <= 0 else float("inf"))
    tau_ci = (None, None)
    tau_log_se = float("nan")
    if 0 < lam < 1 and counts.n0_at_risk > 0 and counts.n1_at_risk > 0:
        lam_var = a * (1 - a) / counts.n0_at_risk + b * (1 - b) / counts.n1_at_risk
        tau_log_se = math.sqrt(lam_var) / (lam * abs(math.log(lam)))
        tau_ci = (tau_m * math.exp(-Z95 * tau_log_se), tau_m * math.exp(Z95 * tau_log_se))
        lam_lo, lam_hi = lam - Z95 * math.sqrt(lam_var), lam + Z95 * math.sqrt(lam_var)
        if lam_lo <= 0:
            # lag-1 not significantly positive: tau is compatible with 0
            tau_ci = (0.0, -1.0 / math.log(lam_hi) if lam_hi < 1 else float("inf"))
    if counts.n1 == 0 or counts.n1 == n:
        notes.append(STUCK_NOTE)

    # --- rates and dwell-time goodness of fit ---
    rt = estimate_rates(counts, a, b)
    if not rt.resolved and var > 0:
        notes.append(UNRESOLVED_NOTE)

    # --- PSD corner vs tau ---
    psd_ratio = psd_agree = None
    if psd.ok and rt.resolved and tau_m > 0 and math.isfinite(tau_m):
        psd_ratio = psd.tau_samples / tau_m
        se = math.hypot(psd.corner_log_se, tau_log_se if math.isfinite(tau_log_se) else 0.0)
        # 5 % allowance for Welch/Hann leakage bias near the corner (segments are >= 64 tau long)
        psd_agree = bool(abs(math.log(psd_ratio)) <= AGREE_Z * se + math.log(1.05)) if math.isfinite(se) else None

    # --- Markov consistency: dwells geometric, and ACF-integrated tau equal to lag-1 tau ---
    iact_agree = None
    tau_iact = acf.tau_iact
    if (math.isfinite(tau_iact) and tau_iact > 0 and tau_m > 0 and math.isfinite(tau_m)
            and math.isfinite(acf.tau_iact_log_se)):
        se = math.hypot(acf.tau_iact_log_se, tau_log_se if math.isfinite(tau_log_se) else 0.0)
        iact_agree = bool(abs(math.log(tau_iact / tau_m)) <= AGREE_Z * se)
    markov_ok = (rt.markov_dwells_ok is not False) and (iact_agree is not False)

    def hz(k):
        return None if dt is None else _f(k / dt)

    def hz_pair(c):
        return None if dt is None or c[0] is None or not math.isfinite(c[0]) else [c[0] / dt, c[1] / dt]

    def ln_se(k, c):
        # the rate CI is asymmetric in k, symmetric enough in ln k: its half-width there / z
        if not (rt.resolved and k > 0 and c[0] > 0 and math.isfinite(c[1])):
            return None
        return _f((math.log(c[1]) - math.log(c[0])) / (2 * Z95))

    p_ci = _pair(p1.ci95)
    g0, g1 = rt.dwell_gof
    v = {
        "source": source, "n_samples": n, "sample_period_s": _f(dt),
        "p1": p1.p1, "p1_ci95": p_ci, "p1_se": None if p_ci is None else _f((p_ci[1] - p_ci[0]) / (2 * Z95)),
        "n_eff": _f(p1.n_eff), "n_eff_method": p1.method,
        "tau_int_samples": _f(p1.tau_int), "tau_int_markov_samples": _f(p1.tau_int_markov),
        "tau_int_acf_samples": _f(acf.tau_int_acf),
        "lag1_autocorr": _f(lag1), "lag2_autocorr": _f(acf.lag2),
        "tau_samples": _f(tau_m), "tau_samples_ci95": _pair(tau_ci) if tau_ci[0] is not None else None,
        "tau_log_se": _f(tau_log_se),
        "tau_exp_fit_samples": _f(acf.tau_exp), "tau_exp_fit_amplitude": _f(acf.amplitude),
        "tau_iact_samples": _f(tau_iact), "tau_iact_log_se": _f(acf.tau_iact_log_se),
        "tau_iact_agree": iact_agree,
        "tau_s": None if dt is None else _f(tau_m * dt),
        "tau_s_ci95": None if dt is None or tau_ci[0] is None else [tau_ci[0] * dt, tau_ci[1] * dt],
        "tau_exp_fit_s": None if dt is None else _f(acf.tau_exp * dt),
        "tau_iact_s": None if dt is None else _f(tau_iact * dt),
        "p01": _f(a), "p10": _f(b), "p01_ci95": _pair(mk.p01_ci95), "p10_ci95": _pair(mk.p10_ci95),
        "rate_up": _f(rt.rate_up), "rate_down": _f(rt.rate_down),
        "rate_up_ci95": _pair(rt.rate_up_ci95) if rt.resolved else None,
        "rate_down_ci95": _pair(rt.rate_down_ci95) if rt.resolved else None,
        "rate_up_log_se": ln_se(rt.rate_up, rt.rate_up_ci95),
        "rate_down_log_se": ln_se(rt.rate_down, rt.rate_down_ci95),
        "rate_up_hz": hz(rt.rate_up), "rate_down_hz": hz(rt.rate_down),
        "rate_up_hz_ci95": hz_pair(rt.rate_up_ci95) if rt.resolved else None,
        "rate_down_hz_ci95": hz_pair(rt.rate_down_ci95) if rt.resolved else None,
        "rates_resolved": rt.resolved,
        "n_flips": counts.n_flips, "n_up": counts.n_up, "n_down": counts.n_down,
        "flip_rate_hz": None if dt is None else counts.n_flips / (n * dt),
        "n_dwells_0": g0.n_dwells, "n_dwells_1": g1.n_dwells,
        "mean_dwell_0_samples": _f(g0.mean_samples), "mean_dwell_1_samples": _f(g1.mean_samples),
        "dwell_gof_p_0": _f(g0.p_value), "dwell_gof_p_1": _f(g1.p_value),
        "dwell_dispersion_0": _f(g0.dispersion), "dwell_dispersion_1": _f(g1.dispersion),
        "markov_dwells_ok": rt.markov_dwells_ok, "markov_consistent": bool(markov_ok),
        "psd_corner_per_sample": _f(psd.corner) if psd.computed else None,
        "psd_corner_log_se": _f(psd.corner_log_se) if psd.computed else None,
        "psd_corner_hz": None if (dt is None or not psd.computed) else _f(psd.corner / dt),
        "psd_tau_samples": _f(psd.tau_samples) if psd.computed else None,
        "psd_tau_ratio": _f(psd_ratio), "psd_tau_agree": psd_agree,
        "tau_corner_hz": None if dt is None or not (tau_m > 0 and math.isfinite(tau_m)) else 1 / (2 * math.pi * tau_m * dt),
        "h_shannon_rate": mk.h_shannon_rate, "h_min_rate": _f(mk.h_min_rate),
        "rct_cutoff": mk.rct_cutoff, "apt_cutoff": mk.apt_cutoff, "health_alpha": alpha,
        "acf_samples_used": acf.n_used, "psd_samples_used": psd.n_used,
        "temp_c": _f(temp_c),
    }
    if energy_wanted and power_w is not None and dt is not None:
        tau_for_energy = tau_m * dt if rt.resolved and tau_m > 0 else float("nan")
        if not math.isfinite(tau_for_energy):
            notes.append(ENERGY_TAU_NOTE)
        en = energy_estimates(power_w, counts.n_flips / (n * dt), tau_for_energy, a, b, dt,
                              entropy_sample_period_s=entropy_sample_period_s, temp_c=temp_c)
        v.update({
            "mean_supply_power_w": _f(en.mean_supply_power_w), "energy_per_flip_j": _f(en.energy_per_flip_j),
            "energy_per_bit_j": _f(en.energy_per_bit_j),
            "energy_per_min_entropy_bit_j": _f(en.energy_per_min_entropy_bit_j),
            "entropy_sample_period_s": _f(en.entropy_sample_period_s),
            "h_min_at_entropy_period": _f(en.h_min_at_period), "kt_ln2_j": _f(en.kt_ln2_j),
            "energy_per_flip_kt_ln2": _f(en.energy_per_flip_kt_ln2),
            "energy_per_bit_kt_ln2": _f(en.energy_per_bit_kt_ln2),
            "energy_per_min_entropy_bit_kt_ln2": _f(en.energy_per_min_entropy_bit_kt_ln2),
        })
    elif power_w is not None:
        v["mean_supply_power_w"] = _f(power_w)
    v["digitization"] = digitization
    v["notes"] = tuple(notes)
    v.update(pooled)
    return StreamEstimates(**v)


def _pair(p):
    return None if p is None else [_f(p[0]), _f(p[1])]


def analyze_waveform(wf, *, threshold_v: float | None = None, hysteresis_v: float | None = None,
                     sample_period_s: float | None = None, **kwargs):
    """Digitise a :class:`noisecell.waveform.Waveform` (see :func:`noisecell.digitize.digitize_waveform`)
    and analyse it with its energy figures. Returns ``(StreamEstimates, Digitization)``; the
    estimates' dict also carries ``digitization``."""
    from ..digitize import digitize_waveform

    bs, dig = digitize_waveform(wf, threshold_v=threshold_v, hysteresis_v=hysteresis_v,
                                sample_period_s=sample_period_s)
    return analyze_stream(bs, waveform=wf, **kwargs), dig
