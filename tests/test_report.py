"""The report without SPICE: measured-data fits against known truth, the simulation-versus-measurement
comparison against a model with known parameters, and the HTML (every section, escaping, offline)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from noisecell.cells import load_cell
from noisecell.measurements import load_measurements
from noisecell.model import CellModel
from noisecell.model.fit import synthetic_model
from noisecell.report.procedures.datasheet import make_datasheet
from noisecell.report.procedures.fits import condition_fit
from noisecell.report.procedures.measured import compare_measured
from noisecell.report.procedures.streams import entropy_columns
from noisecell.report.data import ExampleStream, ReportData
from noisecell.report.html import SECTIONS, render

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "measurements" / "synthetic-pbit-example"
COND = ("tt", 27.0, 0.094)
# simulated stand-in with known parameters at the pbit's nominal condition
SIM_V50, SIM_SCALE, SIM_TAU = 0.0, 0.008, 90e-9


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("meas")
    ms = load_measurements(EXAMPLE)
    sim = synthetic_model(name="sim", v50_v=SIM_V50, scale_v=SIM_SCALE, tau_v50_s=SIM_TAU,
                          bias_range_v=(-0.03, 0.03), vdd_v=COND[2], rel_se=0.01)
    sim_fit = condition_fit(sim, COND, pd.DataFrame(columns=["bias_v", "p1", "n_eff"]))
    res = compare_measured(ms, out, sim, [sim_fit], COND, load_cell("pbit"))
    comp, info, mpath, warns = res.comparison, res.info, res.model_path, res.warnings
    return ms, sim, comp, info, mpath, warns, out


def _z(est, ci, truth):
    se = (ci[1] - ci[0]) / (2 * 1.959963984540054)
    return (est - truth) / se


def test_measured_model_recovers_truth(measured):
    ms, sim, comp, info, mpath, warns, out = measured
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    assert mpath is not None and mpath.exists()
    doc = json.loads(mpath.read_text())
    assert doc["provenance"]["source"] == "measurement"
    assert "SYNTHETIC" in doc["provenance"]["notes"]
    m = comp.meas
    # three estimates checked at once, each against its own 95 % CI: a family-wise false alarm of
    # 1e-3 allows |z| < Phi^-1(1 - 1e-3/6) = 3.59 (Bonferroni)
    zc = stats.norm.ppf(1 - 1e-3 / 6)
    assert abs(_z(m.v50_v, m.v50_ci_v, truth["v50_v"])) < zc
    assert abs(_z(math.log(m.scale_v), np.log(m.scale_ci_v), math.log(truth["logistic_scale_v"]))) < zc
    assert abs(_z(math.log(m.tau_at_v50_s), np.log(m.tau_at_v50_ci_s), math.log(truth["tau_at_v50_s"]))) < zc


def test_comparison_rows_are_the_known_differences(measured):
    ms, sim, comp, info, mpath, warns, out = measured
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    rows = {r["quantity"].split(" (")[0]: r for r in comp.rows}
    shift = rows["V50 shift"]
    # as above: family-wise |z| < 3.59 for the three compared quantities
    assert abs(_z(shift["difference_or_ratio"], (shift["ci_lo"], shift["ci_hi"]), truth["v50_v"] - SIM_V50)) < 3.59
    slope = rows["slope ratio dP/dV"]
    assert slope["difference_or_ratio"] == pytest.approx(SIM_SCALE / comp.meas.scale_v, rel=1e-9)
    # the true slope ratio must lie within the reported CI widened to the family-wise 3.59 sigma
    half = math.log(slope["ci_hi"] / slope["ci_lo"]) / 2 * 3.59 / 1.96
    assert abs(math.log(slope["difference_or_ratio"] / (SIM_SCALE / truth["logistic_scale_v"]))) < half
    tau = rows["τ at V50 ratio"]
    half = math.log(tau["ci_hi"] / tau["ci_lo"]) / 2 * 3.59 / 1.96
    assert abs(math.log(tau["difference_or_ratio"] / (truth["tau_at_v50_s"] / SIM_TAU))) < half
    # measured power near V50 is vdd × the recorded current of the capture nearest V50
    p = rows["mean supply power near V50"]["measured"]
    currents = [pt["supply_current_a"] for pt in truth["points"]]
    assert min(currents) * truth["vdd_v"] <= p <= max(currents) * truth["vdd_v"]
    assert info["synthetic"].startswith("YES")


def _report_data(measured, title: str) -> ReportData:
    """A complete ReportData from the measured example (standing in for simulated points)."""
    ms, sim, comp, info, mpath, warns, out = measured
    pts = comp.meas_points.copy()
    pts["corner"] = "tt"
    pts["role"] = "fit"
    pts["fitted_regime"] = pts["regime"] == "bistable"
    entropy_columns(pts, out, 60e-9, False, COND)
    fits = [condition_fit(CellModel.load(mpath), ("measured", 27.0, 0.094), pts)]
    fits[0].corner = "tt"
    cap = next(c for c in ms.captures if c.kind == "trace")
    big = next(c for c in ms.captures if c.kind == "bits" and abs(c.bias_v - 0.004) < 1e-9)
    ex = [ExampleStream(label="tt 27 °C", corner="tt", temp_c=27.0, vdd_v=0.094, bias_v=cap.bias_v, bits=cap.bits,
                        sample_period_s=cap.sample_period_s, p1=0.4, tau_s=60e-9, rate_up_hz=5e6, rate_down_hz=7e6,
                        time_s=cap.trace_time_s, v_read=cap.trace_v, threshold_v=cap.threshold_v,
                        hysteresis_v=cap.hysteresis_v),
          ExampleStream(label="tt 27 °C", corner="tt", temp_c=27.0, vdd_v=0.094, bias_v=big.bias_v, bits=big.bits,
                        sample_period_s=big.sample_period_s, p1=0.5, tau_s=60e-9, rate_up_hz=8e6, rate_down_hz=8e6)]
    mm = pd.DataFrame({"instance": [0, 1, 2], "v50_v": [0.001, -0.002, 0.0005], "scale_v": [0.007, 0.0075, 0.0068],
                       "v50_lo_v": [0.0005, -0.0025, 0.0], "v50_hi_v": [0.0015, -0.0015, 0.001]})
    val = pd.DataFrame({"bias_v": [0.002, 0.006], "p1_spice": [0.45, 0.6], "p1_spice_lo": [0.4, 0.55],
                        "p1_spice_hi": [0.5, 0.65], "p1_model": [0.43, 0.61], "p1_z": [0.5, -0.3],
                        "tau_spice_s": [6e-8, 5.8e-8], "tau_spice_lo_s": [5e-8, 5e-8], "tau_spice_hi_s": [7e-8, 7e-8],
                        "tau_model_s": [6.1e-8, 5.9e-8], "ln_tau_z": [0.2, 0.1]})
    sheet = make_datasheet(pts, fits, None, COND, None, val, 60e-9, load_cell("pbit"))
    ds = sheet.table
    return ReportData(title=title, cell={"name": "pbit", "description": "<b>desc</b> & <script>alert(2)</script>"},
                      provenance={"created_utc": "2026-01-01T00:00:00Z", "noisecell_version": "test",
                                  "spec_text": "title = \"<script>alert(3)</script>\""},
                      points=pts, fits=fits, examples=ex, datasheet=ds, nominal=COND, mismatch=mm,
                      mismatch_summary=pd.DataFrame({"n_instances": [3]}), validation=val, validation_note="v <ok>",
                      comparison=comp, measurement_info=info, warnings=["a <warning>"],
                      datasheet_display=sheet.display_table())


def test_html_has_every_section_and_escapes_user_strings(measured, tmp_path):
    data = _report_data(measured, "<script>alert(1)</script> report")
    path = render(data, tmp_path)
    html = path.read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f"<section id='{sid}'>" in html, sid
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;desc&lt;/b&gt;" in html and "a &lt;warning&gt;" in html
    # self-contained: every image is embedded, nothing is fetched
    srcs = re.findall(r"src='([^']*)'", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href|src)=['\"]https?:", html)
    pngs = sorted(p.stem for p in (tmp_path / "figures").glob("*.png"))
    assert len(srcs) == len(pngs)
    for need in ("traces", "p1_vs_bias", "acf", "tau_vs_bias", "dwell", "psd", "energy", "entropy", "mismatch",
                 "validation", "sim_vs_meas"):
        assert need in pngs, need
    # every table shown is also a CSV that reads back with the same number of rows
    for name in ("datasheet", "points", "fits", "energy", "entropy", "validation", "sim_vs_meas", "measured_points"):
        df = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        assert len(df) > 0, name
    ds = pd.read_csv(tmp_path / "tables" / "datasheet.csv")
    for q in ("V50 (bias for P(1) = 0.5)", "correlation time τ at V50", "energy per bit P·τ(V50)",
              "min-entropy rate", "repetition count test cutoff C"):
        assert q in set(ds["quantity"]), q


def test_datasheet_energy_is_power_times_tau(measured):
    data = _report_data(measured, "t")
    ds = data.datasheet.set_index("quantity")
    e = ds.loc["energy per bit P·τ(V50)", "value"]
    p = ds.loc["mean supply power", "value"]
    tau = ds.loc["correlation time τ at V50", "value"]
    assert e == pytest.approx(p * tau, rel=1e-12)
    kt = 1.380649e-23 * 300.15 * math.log(2)
    assert ds.loc["energy per bit / kT·ln2", "value"] == pytest.approx(e / kt, rel=1e-9)
