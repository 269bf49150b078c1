"""`noisecell validate` / `sample` exit codes and outputs, and the tabulated rate model."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from noisecell.cli import main
from noisecell.model import CellModel
from noisecell.model.fit import build_condition, build_document, derived_blocks, loglinear_rate_model, synthetic_model


@pytest.fixture()
def model_file(tmp_path):
    m = synthetic_model(scale_v=-1e-3, tau_v50_s=1e-7, bias_range_v=(-4e-3, 4e-3), mismatch=(2e-4, 0.05, 0.0))
    return m.save(tmp_path / "m.json")


def test_validate_exit_codes(model_file, tmp_path, capsys):
    assert main(["validate", str(model_file)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["valid"] is True
    doc = json.loads(model_file.read_text())
    doc["conditions"][0]["rate_model"]["covariance"][0][1] = 5.0  # no longer symmetric
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "covariance" in err and "symmetric" in err
    assert main(["validate", str(tmp_path / "none.json")]) == 1


def test_sample_writes_npy_with_documented_shapes(model_file, tmp_path, capsys):
    out = tmp_path / "b.npy"
    assert main(["sample", str(model_file), "--bias=-0.5m", "--n", "200", "--dt", "50ns", "--out", str(out)]) == 0
    one = np.load(out)
    assert one.shape == (200,) and one.dtype == np.uint8
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["p1_model"] == pytest.approx(1 / (1 + math.exp(-0.5)), rel=1e-9)  # falling sigmoid
    assert main(["sample", str(model_file), "--bias", "0", "--n", "100", "--dt", "50ns", "--cells", "5",
                 "--seed", "3", "--out", str(out)]) == 0
    five = np.load(out)
    assert five.shape == (5, 100)
    assert main(["sample", str(model_file), "--bias", "0", "--n", "100", "--dt", "50ns", "--cells", "5",
                 "--seed", "3", "--out", str(out)]) == 0
    assert np.array_equal(np.load(out), five)  # same seed, same bits
    # out of range: one-line error, exit 2, nothing written
    out2 = tmp_path / "c.npy"
    assert main(["sample", str(model_file), "--bias", "9m", "--n", "10", "--dt", "1us", "--out", str(out2)]) == 2
    assert "outside the validated range" in capsys.readouterr().err and not out2.exists()


def test_table_rate_model_interpolates_in_ln_k():
    grid = [-2e-3, 0.0, 2e-3]
    lu = [12.0, 14.0, 17.0]
    ld = [16.0, 14.0, 13.0]
    table = {"kind": "table", "bias_v": grid, "ln_k_up": lu, "ln_k_down": ld,
             "ln_k_up_se": [0.1] * 3, "ln_k_down_se": [0.1] * 3, "interpolation": "linear_in_ln_k"}
    # derived blocks come from a loglinear stand-in; the table is what the model evaluates
    sig, tau, ent = derived_blocks(loglinear_rate_model(0.0, (14.0, 1250.0), (14.0, -1000.0)), (-2e-3, 2e-3),
                                   sample_period_s=None)
    cond = {**build_condition(corner="tt", temp_c=27, vdd_v=0.06, bias_range_v=(-2e-3, 2e-3),
                              rate_model=loglinear_rate_model(0.0, (14.0, 1250.0), (14.0, -1000.0))),
            "rate_model": table}
    doc = build_document(name="tab", conditions=[cond], nominal={"corner": "tt", "temp_c": 27, "vdd_v": 0.06},
                         bias_param="VB", source="synthetic")
    m = CellModel(doc)
    ku, kd = m.rates(1e-3)
    assert math.log(ku) == pytest.approx(15.5) and math.log(kd) == pytest.approx(13.5)
    assert m.p1(0.0) == pytest.approx(0.5)
    assert m.tau(0.0) == pytest.approx(1 / (2 * math.exp(14.0)))
    lo, hi = m.p1_ci95(1e-3)
    assert lo < m.p1(1e-3) < hi
    bits = m.sample(1e-3, 2000, 1e-7, seed=0, cells=50, mismatch=False)
    assert bits.shape == (50, 2000)
