"""The per-point estimate type: :class:`StreamEstimates`, with its confidence intervals (:class:`CI`).

One type for every source of a point's numbers: a single stream (:func:`.stream.analyze_stream`),
independent chunks pooled from their sufficient statistics (:func:`.pool.pool_segments`, the adaptive
sweeps), measured captures. Stores and CSVs hold it as a flat row of plain scalars
(:meth:`StreamEstimates.to_row`: a CI ``x_ci95`` becomes ``x_ci95_lo`` / ``x_ci95_hi``); a row read
back (:meth:`StreamEstimates.from_row`, pandas NaN accepted for "missing") is the same object.
Consumers read fields (``est.rate_up_hz_ci95.lo``, ``est.rate_up_log_se``), never guessed column names.

Standard errors are stored next to their intervals, on the scale the interval is symmetric on
(linear for P(1), natural log for τ and the rates), so nobody rebuilds them from interval widths.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..units import format_si

#: the confidence level of every ``*_ci95`` field
LEVEL = 0.95


def _f(x):
    """Plain float, None for None/NaN/inf (JSON- and Parquet-ready)."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class CI:
    """A confidence interval: one (lo, hi) pair and its level. Unpacks like a pair: ``lo, hi = ci``."""

    lo: float
    hi: float
    level: float = LEVEL

    @classmethod
    def of(cls, pair, level: float = LEVEL) -> "CI | None":
        """A CI from a (lo, hi) pair, a CI or None; None when either end is missing or NaN
        (an interval is whole or absent). Infinite ends are kept (e.g. an unbounded upper limit)."""
        if pair is None:
            return None
        if isinstance(pair, CI):
            return pair
        lo, hi = pair
        if lo is None or hi is None:
            return None
        lo, hi = float(lo), float(hi)
        if math.isnan(lo) or math.isnan(hi):
            return None
        return cls(lo, hi, level)

    @property
    def halfwidth(self) -> float:
        return (self.hi - self.lo) / 2

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def __iter__(self):
        return iter((self.lo, self.hi))

    def __getitem__(self, i):
        return (self.lo, self.hi)[i]

    def __len__(self) -> int:
        return 2

    def to_list(self) -> list:
        return [_f(self.lo) if math.isfinite(self.lo) else self.lo, _f(self.hi) if math.isfinite(self.hi) else self.hi]


def _ci_list(c: CI | None):
    return None if c is None else [float(c.lo), float(c.hi)]


@dataclass(frozen=True)
class StreamEstimates:
    """Every per-point result (SI units; None where not applicable, e.g. Hz values without a sample
    period, energies without a waveform). ``to_dict()`` is the JSON object ``noisecell analyze``
    prints (CIs as ``[lo, hi]``); ``to_row()`` / ``from_row()`` the flat table form. Key names are
    stable. ``est["p1"]`` works as well as ``est.p1``.

    A pooled point (``chunks`` > 1) is K independent records of the same condition; its fields mean
    the same as a single stream's (see :mod:`.pool` for how each is combined).
    """

    # -- identity
    source: str = ""
    n_samples: int = 0
    sample_period_s: float | None = None            # s
    # -- P(1) with the autocorrelation-aware CI
    p1: float | None = None
    p1_ci95: CI | None = None
    p1_se: float | None = None                       # Wilson 95 % half-width / z (stays > 0 at P(1) = 0, 1)
    n_eff: float | None = None                       # effective number of independent samples
    n_eff_method: str = "markov"                     # "markov", "acf"; pooled: "sum over chunks", "between-chunk scatter"
    tau_int_samples: float | None = None             # integrated autocorrelation time used, samples
    tau_int_markov_samples: float | None = None      # (1+lam)/(1-lam) of the fitted chain
    tau_int_acf_samples: float | None = None         # Sokal-windowed sum of the FFT ACF
    # -- autocorrelation and correlation time
    lag1_autocorr: float | None = None               # exact, whole stream (pooled: within chunks)
    lag2_autocorr: float | None = None               # from the FFT ACF
    tau_samples: float | None = None                 # two-state Markov fit -1/ln(lam); 0 = not resolved
    tau_samples_ci95: CI | None = None
    tau_log_se: float | None = None                  # SE of ln tau (delta method through lam)
    tau_exp_fit_samples: float | None = None         # exponential fit of the ACF
    tau_exp_fit_amplitude: float | None = None       # its amplitude (1 for Markov)
    tau_iact_samples: float | None = None            # from tau_int via the exponential identity
    tau_iact_log_se: float | None = None             # SE of ln tau_iact (Madras-Sokal)
    tau_iact_agree: bool | None = None               # IACT tau consistent with the Markov tau (|z| < 3)
    tau_s: float | None = None                       # s
    tau_s_ci95: CI | None = None
    tau_exp_fit_s: float | None = None
    tau_iact_s: float | None = None
    # -- two-state chain and switching rates
    p01: float | None = None                         # P(0->1) per sample
    p10: float | None = None                         # P(1->0) per sample
    p01_ci95: CI | None = None
    p10_ci95: CI | None = None
    rate_up: float | None = None                     # k_up·dt (continuous-time rate per sample)
    rate_down: float | None = None                   # k_down·dt
    rate_up_ci95: CI | None = None
    rate_down_ci95: CI | None = None
    rate_up_log_se: float | None = None              # SE of ln k_up: the 95 % CI's half-width in ln k / z
    rate_down_log_se: float | None = None            # SE of ln k_down, likewise
    rate_up_hz: float | None = None                  # Hz
    rate_down_hz: float | None = None                # Hz
    rate_up_hz_ci95: CI | None = None
    rate_down_hz_ci95: CI | None = None
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
    psd_corner_log_se: float | None = None           # SE of ln corner
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
    chunks: int = 1                                  # independent records pooled into this point
    n_eff_within: float | None = None                # pooled: Σ of the chunks' own n_eff
    chunks_consistency_p: float | None = None        # pooled: chi-square p of the chunk P(1)s (K ≥ 2)
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

    def __post_init__(self):
        # (lo, hi) lists (JSON, older callers) become CIs; notes become a tuple
        for f in _CI_FIELDS:
            v = getattr(self, f)
            if v is not None and not isinstance(v, CI):
                object.__setattr__(self, f, CI.of(v))
        if not isinstance(self.notes, tuple):
            object.__setattr__(self, "notes", tuple(self.notes or ()))

    @property
    def values(self) -> dict:
        return self.to_dict()

    @property
    def p1_ci_halfwidth(self) -> float:
        """Half-width of the P(1) 95 % CI (NaN without a CI): what adaptive sweeps stop on."""
        return self.p1_ci95.halfwidth if self.p1_ci95 is not None else float("nan")

    def __getitem__(self, key):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for f in _CI_FIELDS:
            d[f] = _ci_list(d[f])
        d["notes"] = list(self.notes)
        return d

    def to_row(self) -> dict:
        """Scalars only (store and table columns): each CI ``x_ci95`` becomes ``x_ci95_lo`` and
        ``x_ci95_hi``, the digitization dict ``digitization_<field>``; notes are joined with "; "."""
        out: dict[str, Any] = {}
        for f in fields(self):
            k, v = f.name, getattr(self, f.name)
            if k in _CI_FIELDS:
                out[f"{k}_lo"], out[f"{k}_hi"] = (float(v.lo), float(v.hi)) if v is not None else (None, None)
            elif k == "notes":
                out[k] = "; ".join(v)
            elif k == "digitization":
                for kk, vv in (v or {}).items():
                    out[f"digitization_{kk}"] = json.dumps(vv) if isinstance(vv, (list, tuple, dict)) else vv
            else:
                out[k] = v
        return out

    #: the old name of :meth:`to_row`
    to_flat_dict = to_row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "StreamEstimates":
        """The object a :meth:`to_row` row (or a store / CSV row holding those columns among others)
        describes. Missing columns take the field defaults; NaN means None."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            k = f.name
            if k in _CI_FIELDS:
                kw[k] = CI.of((_f_or_inf(row.get(f"{k}_lo")), _f_or_inf(row.get(f"{k}_hi"))))
            elif k == "notes":
                v = row.get("notes")
                kw[k] = tuple(s for s in v.split("; ") if s) if isinstance(v, str) else ()
            elif k == "digitization":
                dig = {kk[len("digitization_"):]: _plain(vv) for kk, vv in row.items()
                       if isinstance(kk, str) and kk.startswith("digitization_")}
                kw[k] = dig or None
            elif k in row:
                kw[k] = _coerce(_FIELD_KINDS[k], row[k], f.default)
        return cls(**kw)

    def summary(self) -> str:
        d = self.to_dict()
        sp = d.get("sample_period_s")

        def ci(k, fmt="{:.6g}"):
            c = d.get(k)
            return "" if not c or c[0] is None else f"  95% CI [{fmt.format(c[0])}, {fmt.format(c[1])}]"

        lines = [f"Stream: {d.get('source') or '(array)'}  —  {d['n_samples']} samples"
                 + (f" at {format_si(sp, 's')}" if sp else " (sample period unknown)")
                 + (f", pooled from {self.chunks} independent chunks" if self.chunks > 1 else "")]
        lines.append(f"  P(1)            {_fmt(d['p1'])}{ci('p1_ci95')}   n_eff {_fmt(d['n_eff'])} "
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
        alpha = d["health_alpha"]
        lines.append(f"  SP 800-90B      RCT cutoff {d['rct_cutoff']}, APT cutoff {d['apt_cutoff']} (W=1024, alpha="
                     f"{'n/a' if alpha is None else format(alpha, '.3g')})")
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


_CI_FIELDS = tuple(f.name for f in fields(StreamEstimates) if f.name.endswith("_ci95"))


def _kind(annotation: str) -> str:
    a = str(annotation)
    if a.startswith("bool"):
        return "bool"
    if a.startswith("int"):
        return "int"
    if a.startswith("float"):
        return "float"
    if a.startswith("str"):
        return "str"
    return "any"


_FIELD_KINDS = {f.name: _kind(f.type) for f in fields(StreamEstimates)}


def _is_missing(v) -> bool:
    if v is None:
        return True
    try:
        return isinstance(v, float) and math.isnan(v) or (hasattr(v, "dtype") and bool(v != v))
    except (TypeError, ValueError):
        return False


def _f_or_inf(v):
    """Like :func:`_f` but keeps ±inf (an interval may be unbounded on one side)."""
    if _is_missing(v):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _plain(v):
    if _is_missing(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _coerce(kind: str, v, default):
    if _is_missing(v):
        # a bool/int field without a value: its default (e.g. rates_resolved False, counts 0)
        return default if kind in ("bool", "int", "str") and default is not None else None
    if hasattr(v, "item"):
        v = v.item()
    if kind == "bool":
        return bool(v)
    if kind == "int":
        return int(v)
    if kind == "float":
        return _f_or_inf(v)
    if kind == "str":
        return str(v)
    return v


def _fmt(x):
    return "n/a" if x is None else f"{x:.6g}"


def _fmt_si(x, unit):
    return "n/a" if x is None else format_si(x, unit)
