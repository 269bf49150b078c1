"""Figures of the per-condition (PVT) characterisation and the mismatch distribution (issue 18)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .figures import _empty_note, _legend, plt


def _plain_log(ax) -> None:
    """Log y axis with plain tick numbers (no 10^x labels)."""
    lo, hi = ax.get_ylim()
    # a panel spanning less than a decade (pbit's τ: 100-400 ns) gets 1-1.5-2-3-5-7 ticks, not only 1-2-5
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if hi / max(lo, 1e-300) < 10 else (1.0, 2.0, 5.0)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())

_QUANTITIES = (("v50_v", "v50_ci_lo_v", "v50_ci_hi_v", 1e3, "V50 (mV)"),
               ("scale_v", "scale_ci_lo_v", "scale_ci_hi_v", 1e3, "sigmoid scale (mV)"),
               ("tau_v50_s", "tau_ci_lo_s", "tau_ci_hi_s", 1e9, "τ(V50) (ns)"),
               ("energy_per_bit_j", "energy_per_bit_ci_lo_j", "energy_per_bit_ci_hi_j", 1e18, "energy per bit (aJ)"))


def fig_pvt(table: pd.DataFrame) -> plt.Figure:
    """V50, scale, τ(V50) and energy per bit against temperature, one line per corner, 95 % CIs; corners
    × temperatures that could not be characterised are marked on the V50 panel's axis."""
    fig, axes = plt.subplots(2, 2, figsize=(10.4, 6.6), sharex=True)
    ok = table[table["status"] == "characterised"] if len(table) else table
    bad = table[table["status"] == "NOT characterised"] if len(table) else table
    corners = sorted(set(table["corner"])) if len(table) else []
    colours = {c: f"C{i}" for i, c in enumerate(corners)}
    # corners share temperatures: each corner's points are shifted by a small step so overlapping CIs
    # (and the ×s of five corners at −40 °C) stay readable; the x axis is still the temperature
    span = (float(np.ptp(pd.to_numeric(table["temp_c"], errors="coerce"))) if len(table) else 0.0) or 100.0
    dodge = {c: (i - (len(corners) - 1) / 2) * 0.012 * span for i, c in enumerate(corners)}
    for ax, (col, lo, hi, k, label) in zip(axes.flat, _QUANTITIES):
        any_pt = False
        for c in corners:
            g = ok[ok["corner"] == c].sort_values("temp_c") if len(ok) else ok
            if not len(g) or col not in g:
                continue
            y = pd.to_numeric(g[col], errors="coerce").to_numpy(float) * k
            if not np.isfinite(y).any():
                continue
            ylo = pd.to_numeric(g.get(lo), errors="coerce").to_numpy(float) * k
            yhi = pd.to_numeric(g.get(hi), errors="coerce").to_numpy(float) * k
            err = np.vstack([np.nan_to_num(y - ylo), np.nan_to_num(yhi - y)]).clip(min=0)
            ax.errorbar(g["temp_c"].astype(float) + dodge[c], y, yerr=err, fmt="o-", ms=4, capsize=3,
                        color=colours[c], label=c)
            any_pt = True
        if col == "v50_v" and len(bad):
            for c in corners:
                gb = bad[bad["corner"] == c]
                if len(gb):
                    ax.plot(gb["temp_c"].astype(float) + dodge[c], np.zeros(len(gb)), "x", ms=8, mew=2,
                            color=colours[c], transform=ax.get_xaxis_transform(), clip_on=False)
            ax.plot([], [], "x", ms=8, mew=2, color="0.3", label="not characterised (corner colour)")
        if col in ("tau_v50_s", "energy_per_bit_j") and any_pt:
            ax.set_yscale("log")
            _plain_log(ax)
        if not any_pt:
            _empty_note(ax, "no characterised condition has this figure")
        elif col == "energy_per_bit_j" and not any(c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()
                                                    for c in (lo, hi)):
            ax.text(0.02, 0.02, "no CIs stored for the energy per bit", transform=ax.transAxes, fontsize=7)
        ax.set_ylabel(label)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("temperature (°C)")
        if col == "v50_v":
            # its lower edge holds the ×s and 'best' put the legend over the −40 °C points
            _legend(ax, loc="upper left", ncol=2)
        else:
            _legend(ax, loc="best")
    axes[0, 0].set_title("per-condition datasheet (95 % CIs); ×: not characterised", loc="left")
    fig.tight_layout()
    return fig


def ellipse_points(mean, cov, level: float = 0.95, n: int = 200) -> np.ndarray:
    """(n, 2) points on the ``level`` probability contour of a bivariate normal."""
    from scipy import stats

    r = math.sqrt(stats.chi2.ppf(level, 2))
    w, v = np.linalg.eigh(0.5 * (np.asarray(cov, float) + np.asarray(cov, float).T))
    t = np.linspace(0, 2 * math.pi, n)
    circ = np.stack([np.cos(t), np.sin(t)])
    return (np.asarray(mean, float)[:, None] + v @ (np.sqrt(np.clip(w, 0, None))[:, None] * circ) * r).T


def spread_text(dist: dict, j: int) -> str:
    """The de-noised spread of variable ``j`` of a mismatch distribution for a title, with its 95 % CI;
    when the CI's lower end is 0 the spread is not resolved above the instances' estimation noise and
    only its upper bound is known: "≤ upper (95 %)" (an sd of 0 alone would read as "no spread").
    Offsets in mV; ln gain / ln τ ratio as a factor ×/÷ exp(sd)."""
    from ..model.instances import spread_interval

    sd, lo, hi, resolved = spread_interval(dist, j)
    if j == 0:
        f = lambda x: f"{x * 1e3:.3g}"  # noqa: E731
        unit, pre = " mV", ""
    else:
        f = lambda x: f"{math.exp(x):.3g}"  # noqa: E731
        unit, pre = "", "×/÷ "
    if resolved:
        return f"{pre}{f(sd)}{unit} [{f(lo)}, {f(hi)}]"
    if not math.isfinite(hi):
        return "not resolved"
    if float(dist["sd_ci95"][j][1]) > 0:
        return f"≤ {pre}{f(hi)}{unit} (95 %, not resolved)"
    return f"≤ {pre}{f(hi)}{unit} (95 %, observed spread: the estimates' noise exceeds it)"


def _rho_text(dist: dict, j: int, k: int) -> str:
    """Correlation of a title; "n/a" when either spread de-noised to zero (the correlation is undefined)."""
    if not (float(dist["sd"][j]) > 0 and float(dist["sd"][k]) > 0):
        return "n/a"
    return f"{float(dist['correlation'][j][k]):+.2f}"


def fig_mismatch_scatter(inst: pd.DataFrame, dist: dict | None) -> plt.Figure:
    """Offset against gain per Monte Carlo instance (95 % CIs) with the fitted joint distribution's 95 %
    ellipse (de-noised: the spread of the cells, not of their estimates), and τ ratio against offset."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 4.2))
    if inst is None or not len(inst) or "offset_v" not in inst:
        for a in (a1, a2):
            _empty_note(a, "no per-instance offsets (schema-v1 mismatch block or no Monte Carlo)")
        return fig
    off = inst["offset_v"].astype(float).to_numpy() * 1e3
    g = inst["gain"].astype(float).to_numpy()
    olo, ohi = (np.array([c[i] for c in inst["offset_ci95_v"]], float) * 1e3 for i in (0, 1))
    glo, ghi = (np.array([c[i] for c in inst["gain_ci95"]], float) for i in (0, 1))
    a1.errorbar(off, g, xerr=np.vstack([off - olo, ohi - off]).clip(min=0),
                yerr=np.vstack([g - glo, ghi - g]).clip(min=0), fmt="o", ms=4, capsize=2, alpha=0.8,
                label=f"instance (95 % CI), n = {len(inst)}")
    if dist:
        m = np.asarray(dist["mean"], float)
        c = np.asarray(dist["covariance"], float)
        e = ellipse_points(m[:2], c[:2, :2])
        a1.plot(e[:, 0] * 1e3, np.exp(e[:, 1]), "-", color="C3", label="fitted distribution, 95 % of cells")
        a1.plot([m[0] * 1e3], [math.exp(m[1])], "+", ms=12, mew=2, color="C3", label="fitted mean")
        fig.suptitle(f"{dist.get('n_instances', len(inst))} instances: offset sd {spread_text(dist, 0)}, "
                     f"ρ(offset, gain) = {_rho_text(dist, 0, 1)}, ρ(offset, τ) = {_rho_text(dist, 0, 2)}\n"
                     f"gain sd {spread_text(dist, 1)}; τ ratio sd {spread_text(dist, 2)}", fontsize=9, x=0.01,
                     ha="left")
    a1.set_title("offset and gain", loc="left")
    a2.set_title("offset and τ ratio", loc="left")
    a1.set_yscale("log")
    _plain_log(a1)
    a1.set_xlabel("offset V50 − V50(nominal) (mV)")
    a1.set_ylabel("gain = scale / scale(nominal)")
    _legend(a1, loc="best")
    r = inst["tau_ratio"].astype(float).to_numpy()
    rlo, rhi = (np.array([c[i] for c in inst["tau_ratio_ci95"]], float) for i in (0, 1))
    a2.errorbar(off, r, yerr=np.vstack([r - rlo, rhi - r]).clip(min=0), fmt="o", ms=4, capsize=2, color="C2")
    if dist:
        m, c = np.asarray(dist["mean"], float), np.asarray(dist["covariance"], float)
        e = ellipse_points(m[[0, 2]], c[np.ix_([0, 2], [0, 2])])
        a2.plot(e[:, 0] * 1e3, np.exp(e[:, 1]), "-", color="C3", label="fitted distribution, 95 %")
    a2.set_yscale("log")
    _plain_log(a2)
    a2.set_xlabel("offset (mV)")
    a2.set_ylabel("τ ratio = τ(V50ᵢ) / τ(V50 nominal)")
    _legend(a2, loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.91) if dist else None)
    return fig
