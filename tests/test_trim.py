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


def test_gain_rises_with_vdd_and_switching_point_stays_mid_rail_at_every_corner(pbit):
    pts = {c: T.dc_points(pbit, c, 27.0, [(None, 0.090), (None, 0.100)]) for c in pbit.corners}
    for c, (lo, hi) in pts.items():
        # subthreshold inverter gain ≈ (e^{VDD/2V_T} - 1)/(2n): +10 mV at 27 °C is ~ +20 %
        assert hi.gain > lo.gain * 1.1, c
        # same device type for pull-down and load: the switching point stays near mid-rail at every
        # corner (a CMOS latch with pfet_01v8_lvt loads moves from 0.0 to 1.0 across the corners)
        assert 0.4 < lo.vm_frac < 0.7 and 0.4 < hi.vm_frac < 0.7, (c, lo, hi)


def test_gain_order_follows_physical_corner_names(pbit):
    """All four devices are nfet_05v0_nvt. Physical fs (fast N) reads parameters_fet_sf.spice, which
    raises the native nfet's leakage ~5x (devscan: 52 vs 11 nA/µm); more current pushes it toward
    moderate inversion and lowers gm/I, so the loop gain at a fixed supply is lowest at fs and highest
    at sf. Reading the swapped files under their own names would reverse the order."""
    g = {c: T.dc_points(pbit, c, 27.0, [(None, 0.094)])[0].gain for c in ("sf", "tt", "fs")}
    assert g["sf"] > g["tt"] > g["fs"], g


def test_write_table_and_trimmed_point(tmp_path, pbit):
    dst = tmp_path / "pbit"
    shutil.copytree(pbit.cell_dir, dst)
    (dst / "trims.json").unlink(missing_ok=True)
    cell = load_cell(str(dst))
    assert T.trimmed_point(cell, "tt", 27.0) == ({}, cell.supplies["vdd"].nominal_v)
    rows = [{"corner": "tt", "temp_c": -40.0, "ok": True, "value_v": 0.072, "vdd_v": 0.072},
            {"corner": "tt", "temp_c": 27.0, "ok": True, "value_v": 0.094, "vdd_v": 0.094},
            {"corner": "ss", "temp_c": 27.0, "ok": False, "value_v": 0.09, "vdd_v": 0.09, "message": "no trim works"},
            {"corner": "ff", "temp_c": 27.0, "ok": False, "value_v": None, "vdd_v": None, "message": "no trim works"}]
    before = (dst / "cell.toml").read_text()
    T.write_table(cell, rows, command="test")
    assert (dst / "cell.toml").read_text() == before  # supply-trimmed cell: the table lives in trims.json
    data = json.loads((dst / "trims.json").read_text())
    assert data["generated_by"] == "test" and len(data["trims"]["VDD"]) == 4
    # linear in temperature between stored rows, nearest row outside them (no extrapolation)
    assert T.trimmed_point(cell, "tt", -6.5)[1] == pytest.approx(0.083)
    assert T.trimmed_point(cell, "tt", 85.0)[1] == pytest.approx(0.094)
    assert T.trimmed_point(cell, "ss", 27.0)[1] == pytest.approx(0.09)  # best estimate of a failed row
    assert T.trimmed_point(cell, "ff", 27.0)[1] == cell.supplies["vdd"].nominal_v  # nothing known


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
