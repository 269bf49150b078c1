"""The self-contained HTML report: one file, figures embedded as base64 PNG, opens offline.

Rendered from ``templates/report.html.j2`` by jinja2 with autoescape on, so every string that comes
from a user (cell description, spec, notes, file names, measurement metadata) is escaped by the
template engine; the only markup marked safe is the tables, which pandas writes with its own escaping
(``DataFrame.to_html(escape=True)``). Figures are also written to ``figures/*.png`` and every table
to ``tables/*.csv`` (plain SI floats) beside the report.
"""
from __future__ import annotations

import base64
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
    "conditions": "Per-condition datasheet (corners and temperatures)",
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


def fmt_num(x, digits: int = 4) -> str:
    """A table cell as text: integers whole, floats to ``digits`` figures, NaN as "–", bools yes/no."""
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


def table_html(df: pd.DataFrame, *, max_rows: int | None = None) -> str:
    """``df`` (its first ``max_rows`` rows) as an HTML table written by pandas, cells escaped by pandas
    (``escape=True``), numbers through :func:`fmt_num`."""
    rows = df if max_rows is None else df.head(max_rows)
    shown = rows.astype(object).apply(lambda col: col.map(lambda v: "" if v is None else (
        v if isinstance(v, str) else fmt_num(v))))
    return shown.to_html(index=False, escape=True, border=0, classes="data", na_rep="–")


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


def _note(text, cls: str = "note") -> dict:
    return {"kind": "note", "text": text, "cls": cls}


def _h3(text) -> dict:
    return {"kind": "h3", "text": text}


class _Writer:
    """Writes figures and CSVs next to the report and returns the template blocks that show them."""

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.figures: list[str] = []
        self.tables: list[str] = []

    def figure(self, name: str, fig, caption: str) -> dict:
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig.savefig(buf, format="png")  # tight_layout already ran; "tight" bbox would redraw
        plt.close(fig)
        png = buf.getvalue()
        _atomic_write(self.out / "figures" / f"{name}.png", png)
        self.figures.append(name)
        return {"kind": "figure", "name": name, "caption": caption, "png_b64": base64.b64encode(png).decode("ascii")}

    def table(self, name: str | None, df: pd.DataFrame | None, *, max_rows: int | None = None, show: bool = True,
              display=None) -> list[dict]:
        """The CSV ``tables/<name>.csv`` (all rows, plain SI floats; no CSV when ``name`` is None) and the
        block showing ``display(df)`` (or ``df``)."""
        if df is None:
            return []
        if name is not None:
            _atomic_write(self.out / "tables" / f"{name}.csv", df.to_csv(index=False).encode())
            self.tables.append(name)
        shown = display(df) if display is not None else df
        if shown is None or not len(shown):
            return [_note("(empty)")] + ([{"kind": "table", "show": False, "csv": name}] if name else [])
        from markupsafe import Markup

        n_shown = len(shown) if max_rows is None else min(len(shown), max_rows)
        return [{"kind": "table", "show": show, "csv": name,
                 # pandas escaped every cell and header: the one piece of markup the template trusts
                 "html": Markup(table_html(shown, max_rows=max_rows)),
                 "wide": n_shown > 30 or len(shown.columns) > 12, "more": n_shown < len(shown),
                 "shown": n_shown, "total": len(shown)}]


def _kv(d: dict) -> dict:
    return {"kind": "kv", "rows": [(k, fmt_num(v) if not isinstance(v, str) else v) for k, v in d.items()
                                    if v is not None and v != ""]}


def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("noisecell.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2")


def render(data: ReportData, out_dir: str | os.PathLike) -> Path:
    """Write ``report.html``, ``figures/*.png`` and ``tables/*.csv`` into ``out_dir``; return the report path."""
    out = Path(out_dir)
    w = _Writer(out)
    sec: dict[str, list[dict]] = {k: [] for k in SECTIONS}
    nom = data.nominal
    nominal_label = f"{nom[0]} {nom[1]:g} °C {nom[2]:g} V"
    no_examples = [_note("No example streams.")]

    # datasheet first: it is what a reviewer reads (shown in engineering notation; the CSV keeps SI floats)
    sec["summary"] += [_note(f"Headline figures at the nominal condition ({nominal_label}) unless the row says "
                             "otherwise. Intervals are two-sided 95 % confidence intervals that account for the "
                             "autocorrelation of the bit stream (see the analysis documentation).")]
    sec["summary"] += w.table("datasheet", data.datasheet,
                              display=(lambda _: data.datasheet_display) if data.datasheet_display is not None else None)

    prov = dict(data.provenance)
    spec_text = prov.pop("spec_text", "")
    cell = sec["cell"]
    cell += [_h3("Cell"), _kv(data.cell), _h3("Provenance"), _kv(prov)]
    if data.sweep_summary is not None:
        cell += [_h3("Sweep")] + w.table("sweep_parts", data.sweep_summary)
    if spec_text:
        cell += [_h3("Characterisation spec"), {"kind": "pre", "text": spec_text}]
    if data.measurement_info:
        cell += [_h3("Measured data"), _kv({k: v for k, v in data.measurement_info.items() if not k.startswith("_")})]

    if data.conditions is not None and len(data.conditions):
        from . import figures_pvt as FP

        sec["conditions"] += [_note("Every corner × temperature with its own pilot and sequential design (record "
                                    "lengths and budget in units of its own τ), the nominal condition included; rows "
                                    "'NOT characterised' say what the pilot or design saw; 'interpolation' rows are "
                                    "the held-out-temperature checks of the model's temperature interpolation."),
                              w.figure("pvt", FP.fig_pvt(data.conditions),
                                       "V50, sigmoid scale, τ(V50) and energy per bit (P·τ) against temperature for "
                                       "each corner, 95 % CIs (the model's per-condition values).")]
        sec["conditions"] += w.table("conditions", data.conditions)
    else:
        sec["conditions"].append(_note("Only the conditions of the parts (no [conditions] table in the spec)."))

    ex = data.examples
    sec["traces"] += [w.figure(
        "traces", F.fig_traces(ex),
        "Readout signal (differential or single-ended, as the cell's readout defines) with the comparator "
        "threshold and its hysteresis band; green: the clocked bits (scaled to the signal range).")] if ex else no_examples

    sec["p1"] += [w.figure(
        "p1_vs_bias", F.fig_p1(data),
        "P(1) with 95 % CIs from the effective sample size. Solid: the sigmoid implied by the log-linear "
        "fits of the switching rates (the model); dashed: the sigmoid fitted to P(1) alone (lowest AIC of "
        "logistic, probit, tanh). Grey crosses: points whose regime is not fitted (single-peaked or stuck)."),
        _h3("Sigmoid and rate-model fits per condition")] + w.table("fits", _fits_table(data))

    if ex:
        sec["acf"].append(w.figure("acf", F.fig_acf(ex),
                                   "Autocorrelation of the bit stream (dots) and exp(−lag/τ) with the fitted τ (lines)."))
    sec["acf"].append(w.figure("tau_vs_bias", F.fig_tau(data),
                               "Correlation time τ per point (95 % CI) and the rate model τ = 1/(k_up + k_down) "
                               "from the log-linear fits of the switching rates."))
    sec["dwell"] += [w.figure(
        "dwell", F.fig_dwell(ex),
        "Dwell-time densities (first and last dwells, which are censored, left out) and the exponential "
        "with the maximum-likelihood rate. Straight lines on this log scale mean Markov (memoryless) "
        "switching; curvature flags non-Markov behaviour.")] if ex else no_examples
    sec["psd"] += [w.figure(
        "psd", F.fig_psd(ex),
        "Welch PSD of the 0/1 bit (one-sided) and the random-telegraph Lorentzian 4p(1−p)τ/(1+(2πfτ)²) "
        "with the stream's τ; no parameter is fitted to the PSD for the dashed line.")] if ex else no_examples

    energy_cols = ["corner", "temp_c", "vdd_v", "bias_v", "regime", "mean_power_w", "energy_per_flip_j",
                   "energy_per_bit_j", "energy_per_bit_kTln2"]
    sec["energy"] += [w.figure(
        "energy", F.fig_energy(data),
        "Mean power drawn from the cell's declared supplies ([supplies] of cell.toml; other DC sources such as "
        "wells are not counted, see the warnings for what `cell check` finds they draw), and energy per bit = "
        "P·τ (one bit per correlation "
        "time). Dotted: the Landauer limit kT·ln 2 at each temperature.")] + w.table(
        "energy", _sel(data.points, energy_cols), max_rows=40)

    ent_cols = ["corner", "temp_c", "vdd_v", "bias_v", "regime", "entropy_period_s", "h_shannon_rate",
                "h_min_rate", "rct_cutoff", "apt_cutoff", "h_original", "h_original_period_s", "h_original_n"]
    sec["entropy"] += [w.figure(
        "entropy", F.fig_entropy(data),
        "Entropy per sample at the stated bit clock: closed forms of the two-state Markov model with each "
        "point's rates, and the SP 800-90B non-IID min-entropy h_original where the decimated stream was long "
        "enough (≥ 6012 samples; otherwise h_original is given in the table at the simulation's own sample "
        "period, column h_original_period_s).")]
    if data.entropy_note:
        sec["entropy"].append(_note(data.entropy_note))
    sec["entropy"].append(_note("Health-test cutoffs (SP 800-90B §4.4): repetition count test C and adaptive "
                                "proportion test C for window W = 1024, false-alarm probability α = 2⁻²⁰, from "
                                "the per-point min-entropy."))
    sec["entropy"] += w.table("entropy", _sel(data.points[data.points["corner"] == nom[0]], ent_cols), max_rows=40)

    if data.mismatch is not None and len(data.mismatch):
        from . import figures_pvt as FP

        shown = data.mismatch.drop(columns=[c for c in ("estimation_covariance",) if c in data.mismatch])
        if "offset_v" in data.mismatch:
            sec["mismatch"] += [w.figure("mismatch_scatter", FP.fig_mismatch_scatter(data.mismatch,
                                                                                 data.mismatch_distribution),
                                         "Offset against gain (left) and τ ratio against offset (right) of every "
                                         "Monte Carlo instance against the nominal cell, 95 % CIs from each "
                                         "instance's own rate fit; red: the 95 % ellipse of the fitted joint "
                                         "normal distribution (de-noised: the spread of the cells, not of their "
                                         "estimates) that the model's sampler draws from.")]
            if data.mismatch_distribution:
                d = data.mismatch_distribution
                rows = []
                for j, name in enumerate(d["variables"]):
                    rows.append({"variable": name, "mean": d["mean"][j], "mean_ci_lo": d["mean_ci95"][j][0],
                                 "mean_ci_hi": d["mean_ci95"][j][1], "sd": d["sd"][j], "sd_ci_lo": d["sd_ci95"][j][0],
                                 "sd_ci_hi": d["sd_ci95"][j][1],
                                 **{f"corr_{v}": d["correlation"][j][k] for k, v in enumerate(d["variables"])}})
                sec["mismatch"] += w.table("mismatch_distribution", pd.DataFrame(rows))
        sec["mismatch"] += ([w.figure("mismatch", F.fig_mismatch(data.mismatch),
                                      "Sigmoid midpoint and scale fitted separately for every Monte Carlo mismatch "
                                      "instance (PDK mismatch models, one seed per instance).")]
                            + w.table("mismatch_summary", data.mismatch_summary)
                            + w.table("mismatch_instances", shown, max_rows=30))
    else:
        sec["mismatch"].append(_note("No mismatch Monte Carlo in this run (the spec has no mismatch part)."))

    if data.validation is not None and len(data.validation):
        sec["validation"] += ([_note(data.validation_note),
                               w.figure("validation", F.fig_validation(data.validation),
                                        "The model was fitted without these bias points; fresh SPICE runs there "
                                        "(own seeds) against the model's prediction.")]
                              + w.table("validation", data.validation))
    else:
        sec["validation"].append(_note(data.validation_note or "No held-out points in this run."))

    c = data.comparison
    comp = sec["comparison"]
    if c is not None:
        comp += ([w.figure("sim_vs_meas", F.fig_comparison(c.sim, c.meas, c.meas_points),
                           "Measured streams analysed exactly like the simulated ones, the same model forms "
                           "fitted to them, against the simulation at the matching condition.")]
                 + w.table("sim_vs_meas", pd.DataFrame(c.rows))
                 + w.table("measured_points", c.meas_points, max_rows=40))
    elif data.measurement_info:
        comp.append(_note("The measured captures were analysed and fitted (tables below, model in "
                          "model_measured.json), but no simulated condition has their temperature and supply, so no "
                          "comparison is made (see Warnings)."))
        mf = data.measurement_info.get("_fit")
        if mf is not None:
            comp += w.table("measured_fit", pd.DataFrame([mf.to_row()]))
        mp = data.measurement_info.get("_points")
        if mp is not None:
            comp += w.table("measured_points", mp, max_rows=40)
    else:
        comp.append(_note("No measured data given (use --measurements DIR)."))

    sec["points"] += w.table("points", data.points, max_rows=60, display=_short)
    sec["warnings"].append({"kind": "list", "cls": "warn", "rows": list(data.warnings)})

    doc = _template().render(
        title=data.title, created=data.provenance.get("created_utc", ""),
        version=data.provenance.get("noisecell_version", ""),
        sections=[{"id": k, "title": SECTIONS[k], "blocks": sec[k]} for k in SECTIONS])
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
