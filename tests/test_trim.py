"""Trim machinery: DC switching point / gain, balance root finding, table writing, refusals.

DC analyses only (a fraction of a second each): the transient check is exercised in
tests/test_cell_pbit.py.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from noisecell.cells import load_cell
from noisecell.errors import InputError
from noisecell import trim as T


@pytest.fixture(scope="module")
def pbit():
    return load_cell("pbit")


def test_switching_point_of_a_known_transfer():
    # Ideal inverter with gain 2 around 30 mV on a 60 mV rail: V_out = 30 mV - 2 (V_in - 30 mV), clipped.
    vin = np.linspace(0, 0.06, 241)
    vout = np.clip(0.03 - 2 * (vin - 0.03), 0, 0.06)
    frac, gain = T._switching_point(vin, vout, 0.06)
    assert frac == pytest.approx(0.5, abs=1e-9)
    assert gain == pytest.approx(2.0, rel=1e-9)
    # A transfer that never crosses V_out = V_in (stuck output) has no switching point.
    f2, g2 = T._switching_point(vin, np.full_like(vin, 0.07), 0.06)
    assert np.isnan(f2) and np.isnan(g2)


def test_root_helper():
    assert T._root([0, 1, 2], [0.2, 0.4, 0.8], 0.6) == pytest.approx(1.5)
    assert T._root([0, 1], [0.7, 0.9], 0.5) is None
    assert T._root([0, 1, 2], [float("nan"), 0.4, 0.8], 0.6) == pytest.approx(1.5)


def test_balance_exists_at_every_corner_and_gain_rises_with_vdd(pbit):
    """At every corner a load-gate voltage VGP inside the trim range puts the switching point at
    mid-rail, and at balance the loop gain rises with the supply (subthreshold inverter gain grows
    roughly like e^{VDD/2nV_T}: +10 mV at 27 °C is ≳ +10 %). Not balanced (VGP left at its nominal
    value), the pfet-heavy or nfet-heavy corners move the switching point toward a rail."""
    lo_t, hi_t = pbit.trim["VGP"].range_v
    for c in pbit.corners:
        lo, hi = T.balance(pbit, c, 27.0, 0.095), T.balance(pbit, c, 27.0, 0.105)
        assert lo is not None and hi is not None, c
        assert lo_t < lo.trim_v < hi_t and abs(lo.vm_frac - 0.5) < 2e-3 and abs(hi.vm_frac - 0.5) < 2e-3, c
        assert hi.gain > lo.gain * 1.1, (c, lo, hi)
    nominal = pbit.trim["VGP"].nominal_v
    off = {c: T.dc_points(pbit, c, 27.0, [(nominal, 0.1045)])[0].vm_frac for c in ("fs", "sf")}
    assert off["fs"] < 0.4 and off["sf"] > 0.6, off


def test_balance_direction_follows_physical_corner_names(pbit):
    """Physical fs (fast N, slow P) reads parameters_fet_sf.spice (noisecell.technology swaps the
    file names: see spice_models/design/NOTES.md §1). Against stronger native pull-downs and weaker
    pfet_01v8_lvt loads (|V_th| up ~150 mV in that file) the balance needs a much more negative load
    gate than at tt; physical sf needs a less negative one. Reading the files under their own
    labels would reverse both."""
    v = {c: T.balance(pbit, c, 27.0, 0.1045).trim_v for c in ("fs", "tt", "sf")}
    assert v["fs"] < v["tt"] - 0.05 and v["sf"] > v["tt"] + 0.05, v


def test_write_table_and_trimmed_point(tmp_path, pbit):
    dst = tmp_path / "pbit"
    shutil.copytree(pbit.cell_dir, dst)
    (dst / "trims.json").unlink(missing_ok=True)
    hand = (dst / "cell.toml").read_text()
    cell = load_cell(str(dst))
    assert cell.trim["VGP"].table == ()  # trims.json is the only store: without it, no stored values
    assert T.trimmed_point(cell, "tt", 27.0) == ({"VGP": cell.trim["VGP"].nominal_v}, cell.supplies["vdd"].nominal_v)
    rows = [{"corner": "tt", "temp_c": -40.0, "ok": True, "value_v": -0.12, "vdd_v": 0.08},
            {"corner": "tt", "temp_c": 27.0, "ok": True, "value_v": -0.07, "vdd_v": 0.104},
            {"corner": "ss", "temp_c": 27.0, "ok": False, "value_v": -0.2, "vdd_v": 0.09, "message": "no trim works"},
            {"corner": "ff", "temp_c": 27.0, "ok": False, "value_v": None, "vdd_v": None, "message": "no trim works"}]
    T.write_table(cell, rows, command="test")
    assert (dst / "cell.toml").read_text() == hand  # cell.toml is never rewritten
    data = json.loads((dst / "trims.json").read_text())
    assert data["generated_by"] == "test" and len(data["trims"]["VGP"]) == 4
    cell = load_cell(str(dst))
    # the loader's stored values are the passing rows of trims.json, and only those
    assert sorted((e.corner, e.temp_c, e.value_v) for e in cell.trim["VGP"].table) == \
        [("tt", -40.0, -0.12), ("tt", 27.0, -0.07)]
    # linear in temperature between stored rows, nearest row outside them (no extrapolation)
    trim, vdd = T.trimmed_point(cell, "tt", -6.5)
    assert vdd == pytest.approx(0.092) and trim["VGP"] == pytest.approx(-0.095)
    assert T.trimmed_point(cell, "tt", 85.0) == ({"VGP": pytest.approx(-0.07)}, pytest.approx(0.104))
    assert T.trimmed_point(cell, "ss", 27.0)[1] == pytest.approx(0.09)  # best estimate of a failed row
    # a failed row at its own temperature beats a passing row at another one
    rows2 = rows + [{"corner": "ss", "temp_c": 85.0, "ok": True, "value_v": -0.1, "vdd_v": 0.14}]
    T.write_table(cell, rows2, command="test")
    cell = load_cell(str(dst))
    assert T.trimmed_point(cell, "ss", 27.0) == ({"VGP": pytest.approx(-0.2)}, pytest.approx(0.09))
    assert T.trimmed_point(cell, "ff", 27.0)[1] == cell.supplies["vdd"].nominal_v  # nothing known
    # the job builder takes the stored trim for the condition when none is given
    from noisecell.simulate import job_from_cell
    job = job_from_cell(cell, bias_v=0.0, corner="tt", temp_c=-40.0, duration_s=1e-6, noise_step_s=1e-9, seed=1)
    assert job.params["VGP"] == pytest.approx(-0.12)


def test_cell_without_balance_table_is_refused(tmp_path):
    dst = tmp_path / "pbit"
    shutil.copytree(load_cell("pbit").cell_dir, dst)
    text = (dst / "cell.toml").read_text().split("[balance]")[0].replace("# `noisecell trim`", "#")
    (dst / "cell.toml").write_text(text)
    with pytest.raises(InputError, match=r"cell\.toml: no \[balance\] table"):
        T.balance_spec(load_cell(str(dst)))


def test_trim_cli_rejects_bad_duration(capsys):
    from noisecell.cli import main

    assert main(["trim", "pbit", "--duration", "abc"]) == 2
    assert "--duration" in capsys.readouterr().err
