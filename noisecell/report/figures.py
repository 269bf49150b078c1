"""The report's figures (matplotlib, Agg backend). Every function returns a Figure; units on every axis.

Display-only arrays (ACF, dwell-time histograms, PSD) are recomputed here from the example bit
streams with the same definitions the analysis uses; the estimates drawn over them (τ, rates, P(1))
come from the analysis, so a mismatch between curve and data is a visible model check.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import signal  # noqa: E402

from .data import ConditionFit, ExampleStream, ReportData, condition_label, kt_ln2_j  # noqa: E402

plt.rcParams.update({
    "figure.dpi": 100, "savefig.dpi": 110, "font.size": 9.5, "axes.grid": True, "grid.alpha": 0.3,
    "legend.fontsize": 8, "legend.framealpha": 0.85, "axes.titlesize": 10,
})

_NON_BISTABLE = dict(marker="x", color="0.45", linestyle="none", markersize=6)


def _legend(ax, **kw) -> None:
    """A legend only when something is labelled (empty panels stay clean)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _empty_note(ax, text: str) -> None:
    """Say in the panel why it is empty (a blank axis reads as a plotting bug)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35",
            wrap=True)


def _cond_colors(conds) -> dict:
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(conds)}


def _fitted(rows: pd.DataFrame) -> pd.Series:
    """Points the fits used (bistable unless the spec says otherwise)."""
    if "fitted_regime" in rows:
        return rows["fitted_regime"].astype(bool)
    return rows["regime"] == "bistable"


def _ok(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["status"] == "ok"]


def _conditions(points: pd.DataFrame) -> list[tuple]:
    ok = _ok(points)
    keys = ok[["corner", "temp_c", "vdd_v"]].drop_duplicates()
    return sorted(map(tuple, keys.itertuples(index=False)), key=lambda k: (k[0], k[1], k[2]))


def _time_scale(t_max: float) -> tuple[float, str]:
    for scale, unit in ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s")):
        if t_max < 2000 * scale:
            return scale, unit
    return 1.0, "s"


def _bias_mv(x) -> np.ndarray:
    return np.asarray(x, dtype=float) * 1e3


# ---------------------------------------------------------------- display-only statistics
def acf_fft(bits: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation of a 0/1 stream for lags 0..max_lag (biased estimator, via FFT)."""
    x = np.asarray(bits, dtype=float)
    x = x - x.mean()
    n = x.size
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(x, nfft)
    r = np.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1]
    return r / r[0] if r[0] > 0 else np.full(max_lag + 1, np.nan)


def dwell_times(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dwell lengths (samples) in state 0 and in state 1, first and last (censored) dwells dropped."""
    b = np.asarray(bits, dtype=np.int8)
    edges = np.flatnonzero(np.diff(b)) + 1
    if edges.size < 2:
        return np.array([], int), np.array([], int)
    lengths = np.diff(edges)
    states = b[edges[:-1]]
    return lengths[states == 0], lengths[states == 1]


# ---------------------------------------------------------------- figures
def fig_traces(examples: list[ExampleStream]) -> plt.Figure:
    """Readout signal vs time with the comparator threshold (and hysteresis band), plus the clocked bits."""
    with_trace = [e for e in examples if e.time_s is not None]
    n = max(1, len(with_trace))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.1 * n + 0.6), squeeze=False)
    if not with_trace:
        axes[0, 0].text(0.5, 0.5, "no analog traces kept (bit streams only)", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
        return fig
    for ax, e in zip(axes[:, 0], with_trace):
        t = e.time_s - e.time_s[0]
        # show about 40 correlation times, so the telegraph is visible, but not more than the trace
        span = min(t[-1], max(40 * e.tau_s if np.isfinite(e.tau_s) else t[-1], 200 * e.sample_period_s))
        m = t <= span
        scale, unit = _time_scale(span)
        ax.plot(t[m] / scale, e.v_read[m], lw=0.6, color="C0", label="readout signal")
        if e.threshold_v is not None:
            ax.axhline(e.threshold_v, color="C3", lw=1.0, ls="--",
                       label=f"threshold {e.threshold_v * 1e3:.3g} mV")
            if e.hysteresis_v > 0:
                ax.axhspan(e.threshold_v - e.hysteresis_v / 2, e.threshold_v + e.hysteresis_v / 2,
                           color="C3", alpha=0.12, label=f"hysteresis ±{e.hysteresis_v * 5e2:.3g} mV")
        nb = min(e.bits.size, int(span / e.sample_period_s) + 1)
        tb = np.arange(nb) * e.sample_period_s
        lo, hi = np.percentile(e.v_read[m], [1, 99])
        ax.step(tb / scale, lo + (hi - lo) * e.bits[:nb], where="post", color="C2", lw=0.8, alpha=0.8,
                label=f"bits (clock {e.sample_period_s * 1e9:.3g} ns)")
        ax.set_ylabel("readout (V)")
        ax.set_title(f"{e.label}: bias {e.bias_v * 1e3:+.3g} mV, P(1) = {e.p1:.3f}", loc="left")
        _legend(ax, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    fig.tight_layout()
    return fig


def _groups(data: ReportData) -> list[tuple[str, list[tuple]]]:
    """Panels: the nominal corner at every temperature/supply; the nominal temperature at every corner."""
    corner0, temp0, vdd0 = data.nominal
    conds = _conditions(data.points[data.points["instance"].fillna(-1) < 0]
                        if "instance" in data.points else data.points)
    a = [c for c in conds if c[0] == corner0]
    b = [c for c in conds if c[1] == temp0 and c[2] == vdd0]
    panels = [(f"corner {corner0}: temperatures and supplies", a)]
    if len(b) > 1:
        panels.append((f"{temp0:g} °C, {vdd0:g} V: corners", b))
    others = [c for c in conds if c not in a and c not in b]
    if others:
        panels.append(("other conditions", others))
    return panels


def _fit_for(fits: list[ConditionFit], cond) -> ConditionFit | None:
    for f in fits:
        if (f.corner, f.temp_c, f.vdd_v) == tuple(cond):
            return f
    return None


def _fit_x(f: ConditionFit, rows: pd.DataFrame) -> np.ndarray:
    """Bias grid for a fitted curve: the model's validated range (no extrapolation), V."""
    lo = f.extra.get("bias_range_lo_v", rows["bias_v"].min())
    hi = f.extra.get("bias_range_hi_v", rows["bias_v"].max())
    return np.linspace(lo, hi, 300)


def _cond_rows(points: pd.DataFrame, cond) -> pd.DataFrame:
    ok = _ok(points)
    if "role" in ok:
        ok = ok[ok["role"].isin(["fit", "measured"])]  # held-out and pilot points have their own places
    sel = (ok["corner"] == cond[0]) & (ok["temp_c"] == cond[1]) & (ok["vdd_v"] == cond[2])
    if "instance" in ok:
        sel &= ok["instance"].fillna(-1) < 0
    return ok[sel].sort_values("bias_v")


def fig_p1(data: ReportData) -> plt.Figure:
    """P(1) vs bias with 95 % CIs (correlation-aware) and the fitted sigmoid per condition."""
    panels = _groups(data)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, (title, conds) in zip(axes[0], panels):
        colors = _cond_colors(conds)
        for cond in conds:
            rows = _cond_rows(data.points, cond)
            bi = rows[_fitted(rows)]
            nb = rows[~_fitted(rows)]
            col = colors[cond]
            yerr = np.vstack([bi["p1"] - bi["p1_ci95_lo"], bi["p1_ci95_hi"] - bi["p1"]]).clip(min=0)
            ax.errorbar(_bias_mv(bi["bias_v"]), bi["p1"], yerr=yerr, fmt="o", ms=3.5, color=col, capsize=2,
                        label=condition_label(*cond))
            if len(nb):
                ax.plot(_bias_mv(nb["bias_v"]), nb["p1"], **_NON_BISTABLE)
            f = _fit_for(data.fits, cond)
            if f is not None and f.p1_curve is not None and len(rows):
                x = _fit_x(f, rows)
                ax.plot(_bias_mv(x), f.p1_curve(x), color=col, lw=1.2)
                direct = f.extra.get("_direct_curve")
                if direct is not None:
                    ax.plot(_bias_mv(x), direct(x), color=col, lw=0.9, ls="--")
        ax.plot([], [], **_NON_BISTABLE, label="not fitted (regime not bistable)")
        ax.plot([], [], color="0.3", lw=1.2, label="rate model (fitted ln k_up, ln k_down)")
        ax.plot([], [], color="0.3", lw=0.9, ls="--", label="direct sigmoid fit (best AIC)")
        ax.set_xlabel("bias (mV)")
        ax.set_ylabel("P(1)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(title, loc="left")
        _legend(ax, loc="upper left")
    fig.tight_layout()
    return fig


def fig_tau(data: ReportData) -> plt.Figure:
    """Correlation time τ vs bias with 95 % CIs and the rate-model τ(bias), log scale."""
    panels = _groups(data)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, (title, conds) in zip(axes[0], panels):
        colors = _cond_colors(conds)
        shown, bias_seen, tau_seen = 0, [], []
        for cond in conds:
            rows = _cond_rows(data.points, cond)
            bias_seen.extend(rows["bias_v"].astype(float).tolist())
            rows = rows[_fitted(rows) & np.isfinite(rows["tau_s"].astype(float))]
            if not len(rows):
                continue
            shown += 1
            tau_seen.extend((rows["tau_s"].astype(float) * 1e9).tolist())
            col = colors[cond]
            yerr = np.vstack([rows["tau_s"] - rows["tau_s_ci95_lo"], rows["tau_s_ci95_hi"] - rows["tau_s"]]) * 1e9
            ax.errorbar(_bias_mv(rows["bias_v"]), rows["tau_s"] * 1e9, yerr=np.nan_to_num(yerr.clip(min=0)),
                        fmt="o", ms=3.5, color=col, capsize=2, label=condition_label(*cond))
            f = _fit_for(data.fits, cond)
            if f is not None and f.tau_curve is not None:
                x = _fit_x(f, rows)
                ax.plot(_bias_mv(x), f.tau_curve(x) * 1e9, color=col, lw=1.2)
        if shown:
            ax.plot([], [], color="0.3", lw=1.2, label="rate model 1/(k_up+k_down)")
            ax.set_yscale("log")
            # the records set the axis: the model curve over a calibrated range that reaches a far
            # P(1)-only record runs to τ ~ 1e30 s there (and broke the layout: pbit_x5 --quick)
            t = np.asarray(tau_seen, float)
            t = t[np.isfinite(t) & (t > 0)]
            if t.size:
                ax.set_ylim(t.min() / 10, t.max() * 10)
        else:
            # nothing to draw: without this the axis keeps matplotlib's default limits, which under a
            # "bias (mV)" label read as a volts-scale axis (issue 16); show the simulated bias range in mV
            if bias_seen:
                lo, hi = _bias_mv([min(bias_seen), max(bias_seen)])
                pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.05
                ax.set_xlim(lo - pad, hi + pad)
            ax.set_yticks([])
            _empty_note(ax, "no telegraphing point: τ is a dwell time and is not defined for single-peaked "
                            "or stuck points")
        ax.set_xlabel("bias (mV)")
        ax.set_ylabel("correlation time τ (ns)")
        ax.set_title(title, loc="left")
        _legend(ax, loc="best")
    fig.tight_layout()
    return fig


def fig_acf(examples: list[ExampleStream]) -> plt.Figure:
    """ACF of example streams (log y) with exp(−lag/τ) from the fit."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, e in enumerate(examples):
        tau_samples = e.tau_s / e.sample_period_s if np.isfinite(e.tau_s) else 50
        max_lag = int(min(max(5 * tau_samples, 10), e.bits.size // 4))
        r = acf_fft(e.bits, max_lag)
        lag_s = np.arange(max_lag + 1) * e.sample_period_s
        col = f"C{i % 10}"
        pos = r > 0
        ax.plot(lag_s[pos] * 1e9, r[pos], ".", ms=2.5, color=col,
                label=f"{e.label}, {e.bias_v * 1e3:+.3g} mV")
        # the legend's τ is the table's τ for this point (issue 16: the legend showed the exponential
        # fit to one chunk's ACF, 22–40 ns, next to a table saying 5–7 ns); the fit to the ACF drawn
        # here is shown as well, dashed and labelled as such, when it differs
        if np.isfinite(e.tau_s):
            ax.plot(lag_s * 1e9, np.exp(-lag_s / e.tau_s), "-", color=col, lw=1.0,
                    label=f"exp(−lag/τ), τ = {e.tau_s * 1e9:.3g} ns (table)")
        if np.isfinite(e.acf_tau_s) and not (np.isfinite(e.tau_s) and abs(e.acf_tau_s / e.tau_s - 1) < 0.05):
            ax.plot(lag_s * 1e9, np.exp(-lag_s / e.acf_tau_s), "--", color=col, lw=0.8,
                    label=f"exponential fit to this ACF, τ_fit = {e.acf_tau_s * 1e9:.3g} ns")
    ax.set_yscale("log")
    ax.set_ylim(1e-2, 1.2)
    ax.set_xlabel("lag (ns)")
    ax.set_ylabel("autocorrelation")
    ax.set_title("autocorrelation of the bit stream with the exponential fit", loc="left")
    _legend(ax, loc="upper right")
    fig.tight_layout()
    return fig


def fig_dwell(examples: list[ExampleStream]) -> plt.Figure:
    """Dwell-time histograms (density, log y) in 0 and in 1 with the exponential of the ML rate."""
    n = len(examples)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(4.2 * max(n, 1), 3.6), squeeze=False)
    for ax, e in zip(axes[0], examples):
        d0, d1 = dwell_times(e.bits)
        for d, rate, name, col in ((d0, e.rate_up_hz, "in 0 (leaves at k_up)", "C0"),
                                   (d1, e.rate_down_hz, "in 1 (leaves at k_down)", "C1")):
            if d.size < 2:
                continue
            t = d * e.sample_period_s * 1e9
            # Rice rule 2·n^(1/3) bins, 5..40, so sparse dwell sets are not mostly empty bins
            nb = int(min(40, max(5, round(2 * d.size ** (1 / 3)))))
            bins = np.linspace(0, np.percentile(t, 99.5), nb + 1)
            ax.hist(t, bins=bins, density=True, histtype="step", color=col, lw=1.2,
                    label=f"dwell {name}, n = {d.size}")
            if np.isfinite(rate) and rate > 0:
                k = rate * 1e-9  # per ns
                ax.plot(bins, k * np.exp(-k * bins), "--", color=col, lw=1.0,
                        label=f"exp., k = {rate:.3g} /s")
        if not ax.patches:
            _empty_note(ax, "fewer than 2 completed dwells in either state:\nno dwell-time histogram")
        else:
            ax.set_yscale("log")
        ax.set_xlabel("dwell time (ns)")
        ax.set_ylabel("probability density (1/ns)")
        ax.set_title(f"{e.label}, {e.bias_v * 1e3:+.3g} mV", loc="left")
        _legend(ax, loc="upper right")
    fig.tight_layout()
    return fig


def fig_psd(examples: list[ExampleStream]) -> plt.Figure:
    """One-sided Welch PSD of the 0/1 stream with the telegraph Lorentzian 4p(1−p)τ/(1+(2πfτ)²)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, e in enumerate(examples):
        fs = 1.0 / e.sample_period_s
        nper = int(min(e.bits.size, max(256, 2 ** int(math.log2(max(e.bits.size // 16, 256))))))
        f, pxx = signal.welch(e.bits.astype(float), fs=fs, nperseg=nper, detrend="constant")
        col = f"C{i % 10}"
        m = f > 0
        ax.loglog(f[m], pxx[m], lw=0.8, color=col, alpha=0.8, label=f"{e.label}, {e.bias_v * 1e3:+.3g} mV")
        tau = e.psd_tau_s if np.isfinite(e.psd_tau_s) else e.tau_s
        if np.isfinite(tau):
            lor = 4 * e.p1 * (1 - e.p1) * tau / (1 + (2 * np.pi * f[m] * tau) ** 2)
            ax.loglog(f[m], lor, "--", color=col, lw=1.2,
                      label=f"Lorentzian, f_c = 1/(2πτ) = {1 / (2 * np.pi * tau):.3g} Hz")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD of the bit (1/Hz)")
    ax.set_title("power spectral density with the Lorentzian of the fitted τ", loc="left")
    _legend(ax, loc="lower left")
    fig.tight_layout()
    return fig


def fig_energy(data: ReportData) -> plt.Figure:
    """Mean supply power and energy per bit vs bias, with the kT·ln 2 line at each temperature."""
    corner0, temp0, vdd0 = data.nominal
    conds = [c for c in _conditions(data.points) if c[0] == corner0 or (c[1] == temp0 and c[2] == vdd0)]
    colors = _cond_colors(conds)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 4.0))
    temps = set()
    for cond in conds:
        rows = _cond_rows(data.points, cond)
        rows = rows[np.isfinite(rows["mean_power_w"].astype(float))]
        if not len(rows):
            continue
        col = colors[cond]
        a1.plot(_bias_mv(rows["bias_v"]), rows["mean_power_w"] * 1e9, "o-", ms=3, lw=1, color=col,
                label=condition_label(*cond))
        bi = rows[_fitted(rows) & np.isfinite(rows["energy_per_bit_j"].astype(float))]
        a2.plot(_bias_mv(bi["bias_v"]), bi["energy_per_bit_j"], "o-", ms=3, lw=1, color=col,
                label=condition_label(*cond))
        temps.add(cond[1])
    has_energy = bool(a2.lines) and any(len(l.get_xdata()) for l in a2.lines)
    ymax = a2.get_ylim()[1] if has_energy else 1e-15
    if not has_energy:
        a2.set_xlim(a1.get_xlim())
        _empty_note(a2, "no telegraphing point with a resolved τ:\nenergy per bit P·τ is undefined")
    # one line per temperature, one label for the band (the lines are within a factor 1.6 of each
    # other from -40 to 85 °C, so separate labels would print on top of each other)
    for t in sorted(temps):
        a2.axhline(kt_ln2_j(t), color="k", ls=":", lw=1.0)
    if temps:
        ts = sorted(temps)
        which = f"{ts[0]:g} °C" if len(ts) == 1 else f"{ts[0]:g} … {ts[-1]:g} °C"
        a2.text(0.01, kt_ln2_j(ts[-1]), f" kT·ln2 at {which}", fontsize=7, va="bottom",
                transform=a2.get_yaxis_transform())
        a2.set_ylim(kt_ln2_j(ts[0]) / 3, ymax * 3)
    pw = [y for l in a1.lines for y in np.asarray(l.get_ydata(), float) if np.isfinite(y) and y > 0]
    if pw and max(pw) / min(pw) > 20:  # conditions decades apart (e.g. -40 vs 85 °C): log scale
        a1.set_yscale("log")
    a1.set_xlabel("bias (mV)")
    a1.set_ylabel("mean supply power (nW)")
    a1.set_title("power drawn from the supplies", loc="left")
    _legend(a1, loc="best")
    a2.set_yscale("log")
    a2.set_xlabel("bias (mV)")
    a2.set_ylabel("energy per bit P·τ (J)")
    a2.set_title("energy per bit (one bit per correlation time)", loc="left")
    _legend(a2, loc="best")
    fig.tight_layout()
    return fig


def fig_entropy(data: ReportData) -> plt.Figure:
    """Shannon and min-entropy rate per sample (Markov model) and SP 800-90B h_original vs bias."""
    corner0, temp0, vdd0 = data.nominal
    rows = _cond_rows(data.points, (corner0, temp0, vdd0))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    x = _bias_mv(rows["bias_v"])
    ax.plot(x, rows["h_shannon_rate"], "o-", ms=3, label="Shannon entropy rate (Markov model)")
    ax.plot(x, rows["h_min_rate"], "s-", ms=3, label="min-entropy rate (Markov model)")
    if "h_original" in rows and np.isfinite(rows["h_original"].astype(float)).any():
        # only the points assessed at the stated clock share this axis's per-sample unit
        same = np.isclose(rows.get("h_original_period_s", np.nan), rows.get("entropy_period_s", np.nan))
        if same.any():
            ax.plot(x[same], rows["h_original"][same], "^", ms=5, label="SP 800-90B h_original (non-IID track)")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("bias (mV)")
    ax.set_ylabel("entropy (bits per sample)")
    col = "entropy_period_s" if "entropy_period_s" in rows else "sample_period_s"
    sp = rows[col].dropna()
    per = f", bit clock {sp.iloc[0] * 1e9:.4g} ns" if len(sp) else ""
    ax.set_title(f"entropy at {condition_label(corner0, temp0, vdd0)}{per}", loc="left")
    _legend(ax, loc="lower center")
    fig.tight_layout()
    return fig


def fig_mismatch(mm: pd.DataFrame) -> plt.Figure:
    """Monte Carlo mismatch: V50 vs scale per instance, and the V50 histogram."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    ok = mm[np.isfinite(mm["v50_v"].astype(float))]
    yerr = None
    if "scale_ci95_v" in ok and len(ok):
        # the per-instance scale CI (the V50 CIs, ~±2 mV on pbit, are narrower than the markers at ±300 mV)
        sc = ok["scale_v"].astype(float).to_numpy()
        lo = np.array([c[0] if isinstance(c, (list, tuple)) and len(c) == 2 else np.nan for c in ok["scale_ci95_v"]], float)
        hi = np.array([c[1] if isinstance(c, (list, tuple)) and len(c) == 2 else np.nan for c in ok["scale_ci95_v"]], float)
        yerr = np.nan_to_num(np.vstack([sc - lo, hi - sc])).clip(min=0) * 1e3
    a1.errorbar(ok["v50_v"] * 1e3, ok["scale_v"] * 1e3,
                xerr=np.vstack([ok["v50_v"] - ok["v50_lo_v"], ok["v50_hi_v"] - ok["v50_v"]]).clip(min=0) * 1e3,
                yerr=yerr, fmt="o", ms=4, capsize=2, label="Monte Carlo instance (95 % CI)")
    if yerr is not None:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        a1.set_yscale("log")  # scale CIs are multiplicative (pbit instances: ×/÷ 2-5)
        a1.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a1.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        a1.yaxis.set_minor_formatter(NullFormatter())
    a1.set_xlabel("V50 (mV)")
    a1.set_ylabel("sigmoid scale (mV)")
    a1.set_title("mismatch: midpoint and scale per instance", loc="left")
    _legend(a1, loc="best")
    a2.hist(ok["v50_v"] * 1e3, bins=max(5, int(math.sqrt(len(ok))) + 2), color="C0", alpha=0.7)
    a2.set_xlabel("V50 (mV)")
    a2.set_ylabel("instances")
    a2.set_title(f"V50 spread over {len(ok)} instances", loc="left")
    fig.tight_layout()
    return fig


def fig_validation(val: pd.DataFrame) -> plt.Figure:
    """Model predictions vs fresh SPICE runs at held-out bias points (P(1) and τ), with 95 % CIs."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    x = _bias_mv(val["bias_v"])
    a1.errorbar(x, val["p1_spice"], yerr=np.vstack([val["p1_spice"] - val["p1_spice_lo"],
                                                    val["p1_spice_hi"] - val["p1_spice"]]).clip(min=0),
                fmt="o", ms=4, capsize=2, label="SPICE at held-out bias (95 % CI)")
    a1.plot(x, val["p1_model"], "s", mfc="none", ms=7, color="C3", label="model prediction")
    a1.set_xlabel("bias (mV)")
    a1.set_ylabel("P(1)")
    a1.set_title("held-out P(1)", loc="left")
    _legend(a1, loc="best")
    a2.errorbar(x, val["tau_spice_s"] * 1e9,
                yerr=np.nan_to_num(np.vstack([val["tau_spice_s"] - val["tau_spice_lo_s"],
                                              val["tau_spice_hi_s"] - val["tau_spice_s"]]).clip(min=0)) * 1e9,
                fmt="o", ms=4, capsize=2, label="SPICE (95 % CI)")
    a2.plot(x, val["tau_model_s"] * 1e9, "s", mfc="none", ms=7, color="C3", label="model prediction")
    a2.set_yscale("log")
    a2.set_xlabel("bias (mV)")
    a2.set_ylabel("τ (ns)")
    a2.set_title("held-out correlation time", loc="left")
    _legend(a2, loc="best")
    fig.tight_layout()
    return fig


def fig_comparison(sim: ConditionFit, meas: ConditionFit, meas_points: pd.DataFrame) -> plt.Figure:
    """Measured P(1) and τ vs bias (95 % CIs) against the simulated model at the matching condition."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 3.9))
    mp = meas_points.sort_values("bias_v")
    a1.errorbar(_bias_mv(mp["bias_v"]), mp["p1"], yerr=np.vstack([mp["p1"] - mp["p1_ci95_lo"],
                                                                    mp["p1_ci95_hi"] - mp["p1"]]).clip(min=0),
                fmt="o", ms=4, capsize=2, color="C1", label="measured (95 % CI)")
    xm, xs = _fit_x(meas, mp), _fit_x(sim, mp)
    if meas.p1_curve is not None:
        a1.plot(_bias_mv(xm), meas.p1_curve(xm), color="C1", lw=1.2, label="fit to measurement")
    if sim.p1_curve is not None:
        a1.plot(_bias_mv(xs), sim.p1_curve(xs), color="C0", lw=1.2, ls="--", label=f"simulation ({sim.label})")
    a1.set_xlabel("bias (mV)")
    a1.set_ylabel("P(1)")
    a1.set_title("P(1): simulation vs measurement", loc="left")
    _legend(a1, loc="upper left")
    ok = mp[np.isfinite(mp["tau_s"].astype(float))]
    a2.errorbar(_bias_mv(ok["bias_v"]), ok["tau_s"] * 1e9,
                yerr=np.nan_to_num(np.vstack([ok["tau_s"] - ok["tau_s_ci95_lo"], ok["tau_s_ci95_hi"] - ok["tau_s"]]).clip(min=0))
                * 1e9, fmt="o", ms=4, capsize=2, color="C1", label="measured (95 % CI)")
    if meas.tau_curve is not None:
        a2.plot(_bias_mv(xm), meas.tau_curve(xm) * 1e9, color="C1", lw=1.2, label="fit to measurement")
    if sim.tau_curve is not None:
        a2.plot(_bias_mv(xs), sim.tau_curve(xs) * 1e9, color="C0", lw=1.2, ls="--", label="simulation")
    a2.set_yscale("log")
    a2.set_xlabel("bias (mV)")
    a2.set_ylabel("τ (ns)")
    a2.set_title("correlation time: simulation vs measurement", loc="left")
    _legend(a2, loc="best")
    fig.tight_layout()
    return fig
