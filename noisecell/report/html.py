"""The self-contained HTML report: one file, figures embedded as base64 PNG, opens offline.

Every string that comes from a user (cell description, spec, notes, file names, measurement
metadata) goes through :func:`html.escape`. Figures are also written to ``figures/*.png`` and every
table to ``tables/*.csv`` beside the report.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures as F
from .data import ReportData

#: section id -> heading, in report order (tests check that each is present)
SECTIONS = {
    "summary": "Datasheet summary",
    "cell": "Cell and conditions",
    "traces": "Example transient traces",
    "p1": "P(1) versus bias",
    "acf": "Autocorrelation and correlation time",
    "dwell": "Dwell times",
    "psd": "Power spectral density",
    "energy": "Power and energy per bit",
    "entropy": "Entropy and health tests",
    "mismatch": "Mismatch spread",
    "validation": "Model versus held-out simulations",
    "comparison": "Simulation versus measurement",
    "points": "All operating points",
    "warnings": "Warnings and failures",
}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
 padding:1em 2em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.1em} h2{border-bottom:2px solid #345;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0} th,td{border:1px solid #ccc;padding:2px 6px;
 text-align:right} th{background:#eef2f6} td.l,th.l{text-align:left} img{max-width:100%;display:block;margin:.5em 0}
.note{color:#444;font-size:.9em} .warn{color:#a33} .sub{color:#666} nav a{margin-right:.8em;font-size:.9em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em} .scroll{max-height:460px;overflow:auto}
"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def fmt_num(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(x):
            return "–" if math.isnan(x) else str(x)
        if x == 0:
            return "0"
        if 1e-3 <= abs(x) < 1e5:
            return f"{x:.{digits}g}"
        return f"{x:.{digits - 1}e}"
    return str(x)


def table_html(df: pd.DataFrame, *, max_rows: int | None = None, text_cols: tuple[str, ...] = ()) -> str:
    if df is None or not len(df):
        return "<p class='note'>(empty)</p>"
    rows = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th class='l'>{esc(c)}</th>" if (c in text_cols or rows[c].dtype == object)
                   else f"<th>{esc(c)}</th>" for c in rows.columns)
    body = []
    for r in rows.itertuples(index=False):
        cells = []
        for c, v in zip(rows.columns, r):
            if isinstance(v, str) or c in text_cols:
                cells.append(f"<td class='l'>{esc('' if v is None else v)}</td>")
            else:
                cells.append(f"<td>{esc(fmt_num(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = "" if max_rows is None or len(df) <= max_rows else \
        f"<p class='note'>first {max_rows} of {len(df)} rows; all rows in the CSV.</p>"
    wrap = "scroll" if len(rows) > 30 or len(rows.columns) > 12 else "plain"
    return f"<div class='{wrap}'><table><tr>{head}</tr>{''.join(body)}</table></div>{more}"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Writer:
    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.figures: list[str] = []
        self.tables: list[str] = []

    def figure(self, name: str, fig, caption: str) -> str:
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig.savefig(buf, format="png")  # tight_layout already ran; "tight" bbox would redraw
        plt.close(fig)
        png = buf.getvalue()
        _atomic_write(self.out / "figures" / f"{name}.png", png)
        self.figures.append(name)
        b64 = base64.b64encode(png).decode("ascii")
        return (f"<figure><img alt='{esc(name)}' src='data:image/png;base64,{b64}'>"
                f"<figcaption class='note'>{caption} <span class='sub'>(figures/{esc(name)}.png)</span>"
                f"</figcaption></figure>")

    def table(self, name: str, df: pd.DataFrame | None, *, max_rows: int | None = None, show: bool = True,
              display=None) -> str:
        if df is None:
            return ""
        _atomic_write(self.out / "tables" / f"{name}.csv", df.to_csv(index=False).encode())
        self.tables.append(name)
        link = f"<p class='sub'>CSV: tables/{esc(name)}.csv (complete)</p>"
        shown = display(df) if display is not None else df
        return (table_html(shown, max_rows=max_rows) + link) if show else link


def _section(sid: str, body: str) -> str:
    return f"<section id='{sid}'><h2>{esc(SECTIONS[sid])}</h2>\n{body}\n</section>"


def _kv(d: dict) -> str:
    rows = "".join(f"<tr><th class='l'>{esc(k)}</th><td class='l'>{esc(fmt_num(v) if not isinstance(v, str) else v)}"
                   f"</td></tr>" for k, v in d.items() if v is not None and v != "")
    return f"<table>{rows}</table>"


def render(data: ReportData, out_dir: str | os.PathLike) -> Path:
    """Write ``report.html``, ``figures/*.png`` and ``tables/*.csv`` into ``out_dir``; return the report path."""
    out = Path(out_dir)
    w = _Writer(out)
    parts: list[str] = []
    nom = data.nominal
    nominal_label = f"{nom[0]} {nom[1]:g} °C {nom[2]:g} V"

    # datasheet first: it is what a reviewer reads
    parts.append(_section("summary", (
        f"<p class='note'>Headline figures at the nominal condition ({esc(nominal_label)}) unless the row says "
        "otherwise. Intervals are two-sided 95 % confidence intervals that account for the autocorrelation "
        "of the bit stream (see the analysis documentation).</p>") + w.table("datasheet", data.datasheet)))

    prov = dict(data.provenance)
    spec_text = prov.pop("spec_text", "")
    cell_body = "<h3>Cell</h3>" + _kv(data.cell) + "<h3>Provenance</h3>" + _kv(prov)
    if data.sweep_summary is not None:
        cell_body += "<h3>Sweep</h3>" + w.table("sweep_parts", data.sweep_summary)
    if spec_text:
        cell_body += f"<h3>Characterisation spec</h3><pre>{esc(spec_text)}</pre>"
    if data.measurement_info:
        cell_body += "<h3>Measured data</h3>" + _kv({k: v for k, v in data.measurement_info.items()
                                                     if not k.startswith("_")})
    parts.append(_section("cell", cell_body))

    ex = data.examples
    parts.append(_section("traces", w.figure(
        "traces", F.fig_traces(ex),
        "Readout signal (differential or single-ended, as the cell's readout defines) with the comparator "
        "threshold and its hysteresis band; green: the clocked bits (scaled to the signal range).")
        if ex else "<p class='note'>No example streams.</p>"))

    parts.append(_section("p1", w.figure(
        "p1_vs_bias", F.fig_p1(data),
        "P(1) with 95 % CIs from the effective sample size. Solid: the sigmoid implied by the log-linear "
        "fits of the switching rates (the model); dashed: the sigmoid fitted to P(1) alone (lowest AIC of "
        "logistic, probit, tanh). Grey crosses: points whose regime is not fitted (single-peaked or stuck).") + "<h3>Sigmoid and rate-model fits per condition</h3>"
        + w.table("fits", _fits_table(data))))

    acf_body = ""
    if ex:
        acf_body += w.figure("acf", F.fig_acf(ex),
                             "Autocorrelation of the bit stream (dots) and exp(−lag/τ) with the fitted τ (lines).")
    acf_body += w.figure("tau_vs_bias", F.fig_tau(data),
                         "Correlation time τ per point (95 % CI) and the rate model τ = 1/(k_up + k_down) "
                         "from the log-linear fits of the switching rates.")
    parts.append(_section("acf", acf_body))
    parts.append(_section("dwell", w.figure(
        "dwell", F.fig_dwell(ex),
        "Dwell-time densities (first and last dwells, which are censored, left out) and the exponential "
        "with the maximum-likelihood rate. Straight lines on this log scale mean Markov (memoryless) "
        "switching; curvature flags non-Markov behaviour.") if ex else "<p class='note'>No example streams.</p>"))
    parts.append(_section("psd", w.figure(
        "psd", F.fig_psd(ex),
        "Welch PSD of the 0/1 bit (one-sided) and the random-telegraph Lorentzian 4p(1−p)τ/(1+(2πfτ)²) "
        "with the stream's τ; no parameter is fitted to the PSD for the dashed line.")
        if ex else "<p class='note'>No example streams.</p>"))

    energy_cols = ["corner", "temp_c", "vdd_v", "bias_v", "regime", "mean_power_w", "energy_per_flip_j",
                   "energy_per_bit_j", "energy_per_bit_kTln2"]
    parts.append(_section("energy", w.figure(
        "energy", F.fig_energy(data),
        "Mean power drawn from all of the cell's supplies, and energy per bit = P·τ (one bit per correlation "
        "time). Dotted: the Landauer limit kT·ln 2 at each temperature.")
        + w.table("energy", _sel(data.points, energy_cols), max_rows=40)))

    ent_cols = ["corner", "temp_c", "vdd_v", "bias_v", "regime", "entropy_period_s", "h_shannon_rate",
                "h_min_rate", "rct_cutoff", "apt_cutoff", "h_original", "h_original_period_s", "h_original_n"]
    parts.append(_section("entropy", w.figure(
        "entropy", F.fig_entropy(data),
        "Entropy per sample at the stated bit clock: closed forms of the two-state Markov model with each "
        "point's rates, and the SP 800-90B non-IID min-entropy h_original where the decimated stream was long "
        "enough (≥ 6012 samples; otherwise h_original is given in the table at the simulation's own sample "
        "period, column h_original_period_s).")
        + (f"<p class='note'>{esc(data.entropy_note)}</p>" if data.entropy_note else "")
        + "<p class='note'>Health-test cutoffs (SP 800-90B §4.4): repetition count test C and adaptive "
          "proportion test C for window W = 1024, false-alarm probability α = 2<sup>−20</sup>, from the "
          "per-point min-entropy.</p>"
        + w.table("entropy", _sel(data.points[data.points["corner"] == nom[0]], ent_cols), max_rows=40)))

    if data.mismatch is not None and len(data.mismatch):
        mm_body = (w.figure("mismatch", F.fig_mismatch(data.mismatch),
                            "Sigmoid midpoint and scale fitted separately for every Monte Carlo mismatch "
                            "instance (PDK mismatch models, one seed per instance).")
                   + w.table("mismatch_summary", data.mismatch_summary)
                   + w.table("mismatch_instances", data.mismatch, max_rows=30))
    else:
        mm_body = "<p class='note'>No mismatch Monte Carlo in this run (the spec has no mismatch part).</p>"
    parts.append(_section("mismatch", mm_body))

    if data.validation is not None and len(data.validation):
        v_body = (f"<p class='note'>{esc(data.validation_note)}</p>"
                  + w.figure("validation", F.fig_validation(data.validation),
                             "The model was fitted without these bias points; fresh SPICE runs there "
                             "(own seeds) against the model's prediction.")
                  + w.table("validation", data.validation))
    else:
        v_body = f"<p class='note'>{esc(data.validation_note or 'No held-out points in this run.')}</p>"
    parts.append(_section("validation", v_body))

    c = data.comparison
    if c is not None:
        c_body = (w.figure("sim_vs_meas", F.fig_comparison(c.sim, c.meas, c.meas_points),
                           "Measured streams analysed exactly like the simulated ones, the same model forms "
                           "fitted to them, against the simulation at the matching condition.")
                  + w.table("sim_vs_meas", pd.DataFrame(c.rows))
                  + w.table("measured_points", c.meas_points, max_rows=40))
    elif data.measurement_info:
        c_body = ("<p class='note'>The measured captures were analysed and fitted (tables below, model in "
                  "model_measured.json), but no simulated condition has their temperature and supply, so no "
                  "comparison is made (see Warnings).</p>")
        mf = data.measurement_info.get("_fit")
        if mf is not None:
            c_body += w.table("measured_fit", pd.DataFrame([mf.to_row()]))
        mp = data.measurement_info.get("_points")
        if mp is not None:
            c_body += w.table("measured_points", mp, max_rows=40)
    else:
        c_body = "<p class='note'>No measured data given (use --measurements DIR).</p>"
    parts.append(_section("comparison", c_body))

    parts.append(_section("points", w.table("points", data.points, max_rows=60, display=_short)))
    warn = "".join(f"<li class='warn'>{esc(x)}</li>" for x in data.warnings)
    parts.append(_section("warnings", f"<ul>{warn}</ul>" if warn else "<p class='note'>None.</p>"))

    nav = "".join(f"<a href='#{k}'>{esc(v)}</a>" for k, v in SECTIONS.items())
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(data.title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{esc(data.title)}</h1>"
           f"<p class='sub'>generated {esc(data.provenance.get('created_utc', ''))} by noisecell "
           f"{esc(data.provenance.get('noisecell_version', ''))}</p><nav>{nav}</nav>"
           + "\n".join(parts) + "</body></html>")
    path = out / "report.html"
    _atomic_write(path, doc.encode("utf-8"))
    return path


def _sel(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    ok = df[df["status"] == "ok"] if "status" in df else df
    if "role" in ok:
        ok = ok[ok["role"] != "pilot"]  # the pilot's short coarse runs are in the points table only
    ok = ok.sort_values([c for c in ("corner", "temp_c", "vdd_v", "bias_v") if c in ok.columns])
    return ok[[c for c in cols if c in ok.columns]]


def _short(df: pd.DataFrame) -> pd.DataFrame:
    """Display copy of the points table: job ids and error texts shortened (the CSV keeps them whole)."""
    d = df.copy()
    if "job_id" in d:
        d["job_id"] = d["job_id"].astype(str).str[:12]
    if "error" in d:
        d["error"] = d["error"].map(lambda e: "" if e is None or (isinstance(e, float) and math.isnan(e))
                                    else (str(e)[:60] + "…" if len(str(e)) > 60 else str(e)))
    return d


def _fits_table(data: ReportData) -> pd.DataFrame:
    return pd.DataFrame([f.to_row() for f in data.fits])
