"""The characterisation procedures without SPICE: the model procedure fits every condition exactly once
and leaves out (and names) a condition that cannot be fitted; the validation and datasheet results."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from noisecell.analysis import analyze_stream
from noisecell.analysis.synthetic import telegraph
from noisecell.cells import load_cell
from noisecell.io import BitStream
from noisecell.report.procedures import fits as fits_mod
from noisecell.report.procedures.datasheet import make_datasheet
from noisecell.report.procedures.points import normalise_rows
from noisecell.report.procedures.validation import validate

DT = 1e-9
IDENT = {"netlist_sha256": None, "model_package": None, "ngspice": None, "sweep_id": None}


def _row(rng, temp_c: float, bias_v: float, bits: np.ndarray) -> dict:
    est = analyze_stream(BitStream(bits=bits, sample_period_s=DT, source="s", meta={}), temp_c=temp_c)
    return {"job_id": f"{temp_c}-{bias_v}", "corner": "tt", "temp_c": temp_c, "vdd_v": 0.06, "bias_v": bias_v,
            "mismatch_instance": -1, "status": "ok", "regime": "bistable", "simulated_s": bits.size * DT,
            **est.to_row()}


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(21)
    k0, s = 1.5e7, 2e-3
    rows = []
    for b in (-3e-3, -1e-3, 1e-3, 3e-3):
        ku, kd = k0 * math.exp(b / (2 * s)), k0 * math.exp(-b / (2 * s))
        rows.append(_row(rng, 27.0, b, telegraph(200_000, DT, ku, kd, rng)))
        # 85 °C: i.i.d. bits, lag-1 not significantly > 0, so no resolved rate: cannot be fitted
        rows.append(_row(rng, 85.0, b, (rng.random(50_000) < 0.5).astype(np.uint8)))
    raw = pd.DataFrame(rows)
    raw["part"], raw["role"] = "main", "fit"
    points = normalise_rows(raw, "main", "fit")
    points["fitted_regime"] = True
    return points, raw


def test_each_condition_is_fitted_once_and_the_unfittable_one_is_named(table, tmp_path, monkeypatch):
    from noisecell.model import fit as model_fit

    calls = []
    real = model_fit.fit_rates

    def counting(df, *a, **k):
        calls.append(tuple(sorted(set(df["temp_c"]))))
        return real(df, *a, **k)

    monkeypatch.setattr(model_fit, "fit_rates", counting)
    points, raw = table
    res = fits_mod.fit_model(points, raw, load_cell("pbit_generic"), IDENT, ("tt", 27.0, 0.06), tmp_path)
    # the old flow fitted every condition twice (a trial fit per condition, then the whole sweep again)
    assert sorted(calls) == [(27.0,), (85.0,)]
    assert [c for c, _ in res.dropped] == [("tt", 85.0, 0.06)]
    # each i.i.d. point has its lag-1 correlation significantly > 0 (rates "resolved") with probability
    # 2.5 %, so fewer than the 3 points a rate model needs are usable
    assert "usable bias point(s)" in res.dropped[0][1] and "only 3 " not in res.dropped[0][1]
    assert any("tt 85 °C 0.06 V left out of the model" in w for w in res.warnings)
    assert res.model is not None and (tmp_path / "model.json").exists()
    assert [(f.corner, f.temp_c, f.vdd_v) for f in res.fits] == [("tt", 27.0, 0.06)]
    assert res.nominal == ("tt", 27.0, 0.06)
    # truth: V50 = 0 (k_up = k_down there), logistic scale s = 2 mV; 4 points with ln k SE ≈ 0.015:
    # the V50 CI must hold 0 and the scale CI 2 mV (each fails with probability 5 %; seeded, fixed draw)
    f = res.fits[0]
    assert f.v50_ci_v[0] <= 0.0 <= f.v50_ci_v[1]
    assert f.scale_ci_v[0] <= s_true() <= f.scale_ci_v[1]
    assert "V50" in res.summary()


def s_true() -> float:
    return 2e-3


def test_datasheet_and_validation_results(table, tmp_path):
    points, raw = table
    res = fits_mod.fit_model(points, raw, load_cell("pbit_generic"), IDENT, ("tt", 27.0, 0.06), tmp_path)
    val = validate(res.model, points, res.nominal)
    assert val.table is None and val.consistent is None and "held-out" in val.note.lower()
    ds = make_datasheet(points, res.fits, res.model, res.nominal, None, None, float("nan"), load_cell("pbit_generic"))
    t = ds.table.set_index("quantity")
    assert t.loc["V50 (bias for P(1) = 0.5)", "value"] == pytest.approx(res.fits[0].v50_v)
    assert t["value"].notna().all()
    text = ds.display_table().set_index("quantity").loc["V50 (bias for P(1) = 0.5)", "value [95 % CI]"]
    assert text.endswith("]") and ("mV" in text or "µV" in text)
