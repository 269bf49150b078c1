"""analyze_stream: every per-stream estimate of a bit cell, with uncertainties and model checks.

Cost: one O(n) numba pass (:mod:`.runs`) plus FFT work on a bounded subset (ACF, Welch PSD), so the
time is ~linear in n and the extra memory is bounded (a few tens of MB) whatever n is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ..errors import InputError
from ..units import format_si
from .autocorr import DEFAULT_MAX_SAMPLES, fit_exponential, tau_from_tau_int
from .energy import energy_estimates
from .markov import DEFAULT_ALPHA, fit_markov
from .p1 import Z95, estimate_p1
from .psd import fit_lorentzian
from .rates import estimate_rates
from .runs import scan_runs

#: |z| beyond which two estimates of the same quantity are said to disagree
AGREE_Z = 3.0


def _f(x):
    """JSON-ready float: None for NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pair(p):
    return None if p is None else [_f(p[0]), _f(p[1])]


@dataclass(frozen=True)
class StreamEstimates:
    """Every per-stream result (SI units; None where not applicable, e.g. Hz values without a sample
    period, energies without a waveform). ``to_dict()`` is the JSON object ``noisecell analyze``
    prints; ``to_flat_dict()`` splits CIs into ``_lo``/``_hi`` scalars for tables. Key names are stable.
    ``est["p1"]`` works as well as ``est.p1``.
    """

    # -- identity
    source: str = ""
    n_samples: int = 0
    sample_period_s: float | None = None            # s
    # -- P(1) with the autocorrelation-aware CI
    p1: float | None = None
    p1_ci95: list[float] | None = None
    n_eff: float | None = None                       # effective number of independent samples
    n_eff_method: str = "markov"                     # which tau_int was used: "markov" or "acf"
    tau_int_samples: float | None = None             # integrated autocorrelation time used, samples
    tau_int_markov_samples: float | None = None      # (1+lam)/(1-lam) of the fitted chain
    tau_int_acf_samples: float | None = None         # Sokal-windowed sum of the FFT ACF
    # -- autocorrelation and correlation time
    lag1_autocorr: float | None = None               # exact, whole stream
    lag2_autocorr: float | None = None               # from the FFT ACF
    tau_samples: float | None = None                 # two-state Markov fit -1/ln(lam); 0 = not resolved
    tau_samples_ci95: list[float] | None = None
    tau_exp_fit_samples: float | None = None         # exponential fit of the ACF
    tau_exp_fit_amplitude: float | None = None       # its amplitude (1 for Markov)
    tau_iact_samples: float | None = None            # from tau_int via the exponential identity
    tau_iact_agree: bool | None = None               # IACT tau consistent with the Markov tau (|z| < 3)
    tau_s: float | None = None                       # s
    tau_s_ci95: list[float] | None = None
    tau_exp_fit_s: float | None = None
    tau_iact_s: float | None = None
    # -- two-state chain and switching rates
    p01: float | None = None                         # P(0->1) per sample
    p10: float | None = None                         # P(1->0) per sample
    p01_ci95: list[float] | None = None
    p10_ci95: list[float] | None = None
    rate_up: float | None = None                     # k_up·dt (continuous-time rate per sample)
    rate_down: float | None = None                   # k_down·dt
    rate_up_ci95: list[float] | None = None
    rate_down_ci95: list[float] | None = None
    rate_up_hz: float | None = None                  # Hz
    rate_down_hz: float | None = None                # Hz
    rate_up_hz_ci95: list[float] | None = None
    rate_down_hz_ci95: list[float] | None = None
    rates_resolved: bool = False                     # False unless lag-1 is significantly > 0
    n_flips: int = 0
    n_up: int = 0
    n_down: int = 0
    flip_rate_hz: float | None = None                # observed flips per second
    # -- dwell times and Markov checks
    n_dwells_0: int = 0                              # complete dwells (first/last excluded: censored)
    n_dwells_1: int = 0
    mean_dwell_0_samples: float | None = None
    mean_dwell_1_samples: float | None = None
    dwell_gof_p_0: float | None = None               # chi-square vs geometric dwell law
    dwell_gof_p_1: float | None = None
    dwell_dispersion_0: float | None = None          # observed / geometric variance (1 = Markov)
    dwell_dispersion_1: float | None = None
    markov_dwells_ok: bool | None = None             # both p-values >= 1e-3
    markov_consistent: bool = True                   # dwells OK and IACT tau agrees
    # -- PSD
    psd_corner_per_sample: float | None = None       # cycles/sample
    psd_corner_hz: float | None = None               # Hz
    psd_tau_samples: float | None = None
    psd_tau_ratio: float | None = None               # PSD tau / Markov tau
    psd_tau_agree: bool | None = None
    tau_corner_hz: float | None = None               # 1/(2π tau_s), for comparison
    # -- entropy and SP 800-90B health tests
    h_shannon_rate: float | None = None              # bits/sample
    h_min_rate: float | None = None                  # bits/sample
    rct_cutoff: int | None = None
    apt_cutoff: int | None = None                    # W = 1024
    health_alpha: float | None = None
    # -- bookkeeping
    acf_samples_used: int = 0
    psd_samples_used: int = 0
    temp_c: float | None = None                      # °C
    # -- energy (waveform input only)
    mean_supply_power_w: float | None = None         # W
    energy_per_flip_j: float | None = None           # J
    energy_per_bit_j: float | None = None            # J, P·tau
    energy_per_min_entropy_bit_j: float | None = None  # J, P·T/Hmin(T)
    entropy_sample_period_s: float | None = None     # T, s
    h_min_at_entropy_period: float | None = None     # bits/sample at T
    kt_ln2_j: float | None = None                    # J
    energy_per_flip_kt_ln2: float | None = None
    energy_per_bit_kt_ln2: float | None = None
    energy_per_min_entropy_bit_kt_ln2: float | None = None
    digitization: dict | None = None                 # how a trace was digitised (traces/waveforms)
    notes: tuple[str, ...] = ()

    @property
    def values(self) -> dict:
        return self.to_dict()

    def __getitem__(self, key):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["notes"] = list(self.notes)
        return d

    def to_flat_dict(self) -> dict:
        """Scalars only (for table/Parquet columns): each CI becomes ``<key>_lo`` and ``<key>_hi``,
        the digitization dict ``digitization_<field>``; notes are joined with "; "."""
        out = {}
        for k, v in self.to_dict().items():
            if k.endswith("_ci95"):
                out[f"{k}_lo"], out[f"{k}_hi"] = (v[0], v[1]) if v else (None, None)
            elif k == "notes":
                out[k] = "; ".join(v)
            elif k == "digitization":
                for kk, vv in (v or {}).items():
                    out[f"digitization_{kk}"] = vv
            else:
                out[k] = v
        return out

    def summary(self) -> str:
        d = self.to_dict()
        sp = d.get("sample_period_s")

        def ci(k, fmt="{:.6g}"):
            c = d.get(k)
            return "" if not c or c[0] is None else f"  95% CI [{fmt.format(c[0])}, {fmt.format(c[1])}]"

        lines = [f"Stream: {d.get('source') or '(array)'}  —  {d['n_samples']} samples"
                 + (f" at {format_si(sp, 's')}" if sp else " (sample period unknown)")]
        lines.append(f"  P(1)            {d['p1']:.6g}{ci('p1_ci95')}   n_eff {_fmt(d['n_eff'])} "
                     f"(tau_int {_fmt(d['tau_int_samples'])} samples, from {d['n_eff_method']})")
        lines.append(f"  lag-1 corr      {_fmt(d['lag1_autocorr'])}    lag-2 {_fmt(d.get('lag2_autocorr'))}")
        lines.append(f"  tau (Markov)    {_fmt(d['tau_samples'])} samples{ci('tau_samples_ci95')}")
        lines.append(f"  tau (ACF fit)   {_fmt(d['tau_exp_fit_samples'])} samples (amplitude {_fmt(d['tau_exp_fit_amplitude'])});"
                     f"  tau (IACT) {_fmt(d['tau_iact_samples'])} samples")
        if sp:
            lines.append(f"  tau             {_fmt_si(d['tau_s'], 's')}{ci('tau_s_ci95', '{:.4g}')}")
            lines.append(f"  k_up            {_fmt_si(d['rate_up_hz'], 'Hz')}{ci('rate_up_hz_ci95', '{:.4g}')}")
            lines.append(f"  k_down          {_fmt_si(d['rate_down_hz'], 'Hz')}{ci('rate_down_hz_ci95', '{:.4g}')}")
        else:
            lines.append(f"  k_up·dt         {_fmt(d['rate_up'])}{ci('rate_up_ci95')}")
            lines.append(f"  k_down·dt       {_fmt(d['rate_down'])}{ci('rate_down_ci95')}")
        if not d["rates_resolved"]:
            lines.append("  (lag-1 correlation not significantly > 0: switching may be faster than sampling, rates not resolved)")
        lines.append(f"  flips           {d['n_flips']} ({d['n_up']} up, {d['n_down']} down)")
        lines.append(f"  dwell GoF       p0 {_fmt(d['dwell_gof_p_0'])}, p1 {_fmt(d['dwell_gof_p_1'])}; dispersion "
                     f"{_fmt(d['dwell_dispersion_0'])}, {_fmt(d['dwell_dispersion_1'])} -> "
                     f"{'Markov OK' if d['markov_dwells_ok'] else ('NON-MARKOV dwells' if d['markov_dwells_ok'] is False else 'n/a')}")
        lines.append(f"  PSD corner      {_fmt(d['psd_corner_hz'] if sp else d['psd_corner_per_sample'])}"
                     f" {'Hz' if sp else 'cycles/sample'}; tau ratio PSD/Markov {_fmt(d['psd_tau_ratio'])}"
                     f" -> {'agrees' if d['psd_tau_agree'] else 'DISAGREES' if d['psd_tau_agree'] is False else 'n/a'}")
        lines.append(f"  entropy rate    Shannon {_fmt(d['h_shannon_rate'])}, min {_fmt(d['h_min_rate'])} bit/sample")
        lines.append(f"  SP 800-90B      RCT cutoff {d['rct_cutoff']}, APT cutoff {d['apt_cutoff']} (W=1024, alpha={d['health_alpha']:.3g})")
        lines.append(f"  Markov model    {'consistent' if d['markov_consistent'] else 'NOT consistent (see dwell GoF / tau agreement)'}")
        if d.get("mean_supply_power_w") is not None:
            kt = d.get("kt_ln2_j")
            lines.append(f"  supply power    {_fmt_si(d['mean_supply_power_w'], 'W')}")
            for k, name in (("energy_per_flip", "energy/flip"), ("energy_per_bit", "energy/bit (P·tau)"),
                            ("energy_per_min_entropy_bit", "energy/min-entropy bit")):
                extra = f" = {d[k + '_kt_ln2']:.4g} kT·ln2" if kt and d.get(k + "_kt_ln2") is not None else ""
                lines.append(f"  {name:<15} {_fmt_si(d[k + '_j'], 'J')}{extra}")
        for note in d.get("notes", []):
            lines.append(f"  note: {note}")
        return "\n".join(lines)


def _fmt(x):
    return "n/a" if x is None else f"{x:.6g}"


def _fmt_si(x, unit):
    return "n/a" if x is None else format_si(x, unit)


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
    n = rs.n
    mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk, alpha=alpha)
    a, b, lam = mk.p01, mk.p10, mk.lam
    p_hat = rs.n1 / n
    # exact empirical lag-1 autocorrelation over the whole stream, from the counts
    n11 = rs.n1_at_risk - rs.n_down
    var = p_hat * (1 - p_hat)
    lag1 = ((n11 / (n - 1)) - p_hat * p_hat) / var if var > 0 else float("nan")

    # --- Markov correlation time with a delta-method CI on ln(tau) ---
    tau_m = -1.0 / math.log(lam) if 0 < lam < 1 else (0.0 if lam <= 0 else float("inf"))
    tau_ci = (None, None)
    tau_log_se = float("nan")
    if 0 < lam < 1 and rs.n0_at_risk > 0 and rs.n1_at_risk > 0:
        lam_var = a * (1 - a) / rs.n0_at_risk + b * (1 - b) / rs.n1_at_risk
        tau_log_se = math.sqrt(lam_var) / (lam * abs(math.log(lam)))
        tau_ci = (tau_m * math.exp(-Z95 * tau_log_se), tau_m * math.exp(Z95 * tau_log_se))
        lam_lo, lam_hi = lam - Z95 * math.sqrt(lam_var), lam + Z95 * math.sqrt(lam_var)
        if lam_lo <= 0:
            # lag-1 not significantly positive: tau is compatible with 0
            tau_ci = (0.0, -1.0 / math.log(lam_hi) if lam_hi < 1 else float("inf"))

    # --- P(1), ACF on a bounded subset, integrated autocorrelation time, exponential fit ---
    tg = tau_m if math.isfinite(tau_m) and tau_m > 0 else 1.0
    pe = estimate_p1(x, runs=rs, lam=lam, max_fft_samples=max_fft_samples)
    p1, p1ci, n_eff, ti, method, ti_m = pe.p1, pe.ci95, pe.n_eff, pe.tau_int, pe.method, pe.tau_int_markov
    acf, tau_int_acf, M = pe.acf, pe.tau_int_acf, pe.iact_window
    tau_exp = amp = tau_iact = lag2 = tau_iact_log_se = float("nan")
    if acf is not None:
        if not pe.iact_converged:
            notes.append(f"integrated autocorrelation window did not converge within {acf.rho.size - 1} lags "
                         "(stream too short for its correlation time); tau_int from the ACF is a lower bound")
        tau_iact = tau_from_tau_int(tau_int_acf)
        # Madras-Sokal: var(tau_int) ≈ 2(2M+1)/N · tau_int²; propagated to the exponential tau
        if M > 0 and tau_int_acf > 1 and tau_iact > 0:
            rel = math.sqrt(2 * (2 * M + 1) / acf.n_used)
            t_hi = tau_from_tau_int(tau_int_acf * 1.01)
            g = (math.log(t_hi) - math.log(tau_iact)) / math.log(1.01) if t_hi > 0 else 1.0
            tau_iact_log_se = rel * g
        noise = math.sqrt(max(tau_int_acf, 1.0) / acf.n_used)
        ef = fit_exponential(acf.rho, noise)
        tau_exp, amp = ef.tau, ef.amplitude
        lag2 = float(acf.rho[2]) if acf.rho.size > 2 else float("nan")
    if rs.n1 == 0 or rs.n1 == n:
        notes.append("stream is stuck at one value: no switching observed")

    # --- rates and dwell-time goodness of fit ---
    rt = estimate_rates(rs, a, b)
    if not rt.resolved and var > 0:
        notes.append("lag-1 correlation not significantly > 0: switching may be faster than the sampling; "
                     "rates are not resolved")

    # --- PSD corner vs tau ---
    psd = fit_lorentzian(x, tg, max_samples=max_fft_samples) if var > 0 and n >= 64 else None
    psd_ratio = psd_agree = None
    if psd is not None and psd.ok and rt.resolved and tau_m > 0 and math.isfinite(tau_m):
        psd_ratio = psd.tau_samples / tau_m
        se = math.hypot(psd.corner_log_se, tau_log_se if math.isfinite(tau_log_se) else 0.0)
        # 5 % allowance for Welch/Hann leakage bias near the corner (segments are >= 64 tau long)
        psd_agree = bool(abs(math.log(psd_ratio)) <= AGREE_Z * se + math.log(1.05)) if math.isfinite(se) else None

    # --- Markov consistency: dwells geometric, and ACF-integrated tau equal to lag-1 tau ---
    iact_agree = None
    if math.isfinite(tau_iact) and tau_iact > 0 and tau_m > 0 and math.isfinite(tau_m) and math.isfinite(tau_iact_log_se):
        se = math.hypot(tau_iact_log_se, tau_log_se if math.isfinite(tau_log_se) else 0.0)
        iact_agree = bool(abs(math.log(tau_iact / tau_m)) <= AGREE_Z * se)
    markov_ok = (rt.markov_dwells_ok is not False) and (iact_agree is not False)

    def hz(k):
        return None if dt is None else _f(k / dt)

    def hz_pair(c):
        return None if dt is None or c[0] is None or not math.isfinite(c[0]) else [c[0] / dt, c[1] / dt]

    g0, g1 = rt.dwell_gof
    v = {
        "source": bs.source, "n_samples": n, "sample_period_s": _f(dt),
        "p1": p1, "p1_ci95": _pair(p1ci), "n_eff": _f(n_eff), "n_eff_method": method,
        "tau_int_samples": _f(ti), "tau_int_markov_samples": _f(ti_m), "tau_int_acf_samples": _f(tau_int_acf),
        "lag1_autocorr": _f(lag1), "lag2_autocorr": _f(lag2),
        "tau_samples": _f(tau_m), "tau_samples_ci95": _pair(tau_ci) if tau_ci[0] is not None else None,
        "tau_exp_fit_samples": _f(tau_exp), "tau_exp_fit_amplitude": _f(amp), "tau_iact_samples": _f(tau_iact),
        "tau_iact_agree": iact_agree,
        "tau_s": None if dt is None else _f(tau_m * dt),
        "tau_s_ci95": None if dt is None or tau_ci[0] is None else [tau_ci[0] * dt, tau_ci[1] * dt],
        "tau_exp_fit_s": None if dt is None else _f(tau_exp * dt),
        "tau_iact_s": None if dt is None else _f(tau_iact * dt),
        "p01": _f(a), "p10": _f(b), "p01_ci95": _pair(mk.p01_ci95), "p10_ci95": _pair(mk.p10_ci95),
        "rate_up": _f(rt.rate_up), "rate_down": _f(rt.rate_down),
        "rate_up_ci95": _pair(rt.rate_up_ci95) if rt.resolved else None,
        "rate_down_ci95": _pair(rt.rate_down_ci95) if rt.resolved else None,
        "rate_up_hz": hz(rt.rate_up), "rate_down_hz": hz(rt.rate_down),
        "rate_up_hz_ci95": hz_pair(rt.rate_up_ci95) if rt.resolved else None,
        "rate_down_hz_ci95": hz_pair(rt.rate_down_ci95) if rt.resolved else None,
        "rates_resolved": rt.resolved,
        "n_flips": rs.n_flips, "n_up": rs.n_up, "n_down": rs.n_down,
        "flip_rate_hz": None if dt is None else rs.n_flips / (n * dt),
        "n_dwells_0": g0.n_dwells, "n_dwells_1": g1.n_dwells,
        "mean_dwell_0_samples": _f(g0.mean_samples), "mean_dwell_1_samples": _f(g1.mean_samples),
        "dwell_gof_p_0": _f(g0.p_value), "dwell_gof_p_1": _f(g1.p_value),
        "dwell_dispersion_0": _f(g0.dispersion), "dwell_dispersion_1": _f(g1.dispersion),
        "markov_dwells_ok": rt.markov_dwells_ok, "markov_consistent": bool(markov_ok),
        "psd_corner_per_sample": _f(psd.corner) if psd else None,
        "psd_corner_hz": None if (dt is None or psd is None) else _f(psd.corner / dt),
        "psd_tau_samples": _f(psd.tau_samples) if psd else None,
        "psd_tau_ratio": _f(psd_ratio), "psd_tau_agree": psd_agree,
        "tau_corner_hz": None if dt is None or not (tau_m > 0 and math.isfinite(tau_m)) else 1 / (2 * math.pi * tau_m * dt),
        "h_shannon_rate": mk.h_shannon_rate, "h_min_rate": _f(mk.h_min_rate),
        "rct_cutoff": mk.rct_cutoff, "apt_cutoff": mk.apt_cutoff, "health_alpha": alpha,
        "acf_samples_used": acf.n_used if acf else 0, "psd_samples_used": psd.n_used if psd else 0,
        "temp_c": _f(temp_c),
        "mean_supply_power_w": None, "energy_per_flip_j": None, "energy_per_bit_j": None,
        "energy_per_min_entropy_bit_j": None, "entropy_sample_period_s": None, "h_min_at_entropy_period": None,
        "kt_ln2_j": None, "energy_per_flip_kt_ln2": None, "energy_per_bit_kt_ln2": None,
        "energy_per_min_entropy_bit_kt_ln2": None,
    }
    if waveform is not None:
        if dt is None:
            raise InputError(f"{src}: energy figures need the sample period of the bits")
        power = waveform.mean_supply_power_w()
        if not waveform.supply_currents:
            notes.append("waveform has no supply currents: energy figures unavailable")
        else:
            tau_for_energy = tau_m * dt if rt.resolved and tau_m > 0 else float("nan")
            if not math.isfinite(tau_for_energy):
                notes.append("energy per bit (P·tau) unavailable: tau is not resolved at this sampling period")
            en = energy_estimates(power, rs.n_flips / (n * dt), tau_for_energy, a, b, dt,
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
    if "digitization" in meta:
        v["digitization"] = dict(meta["digitization"])
    v["notes"] = tuple(notes)
    return StreamEstimates(**v)


def analyze_waveform(wf, *, threshold_v: float | None = None, hysteresis_v: float | None = None,
                     sample_period_s: float | None = None, **kwargs):
    """Digitise a :class:`noisecell.waveform.Waveform` (see :func:`noisecell.digitize.digitize_waveform`)
    and analyse it with its energy figures. Returns ``(StreamEstimates, Digitization)``; the
    estimates' dict also carries ``digitization``."""
    from ..digitize import digitize_waveform

    bs, dig = digitize_waveform(wf, threshold_v=threshold_v, hysteresis_v=hysteresis_v,
                                sample_period_s=sample_period_s)
    return analyze_stream(bs, waveform=wf, **kwargs), dig
