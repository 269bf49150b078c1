"""Trim machinery: DC switching point / gain, balance root finding, table writing, refusals.

DC analyses only (a fraction of a second each): the transient check is exercised in
tests/test_cell_pbit.py.
"""
from __future__ import annotations

import json
import shutil
import tomllib

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


def test_balance_puts_switching_point_mid_rail_and_gain_rises_with_vdd(pbit):
    lo = T.balance(pbit, "tt", 27.0, 0.058)
    hi = T.balance(pbit, "tt", 27.0, 0.070)
    assert lo is not None and hi is not None
    # linear interpolation on a 7-point refined grid of a smooth curve: residual ≪ 1e-3 of VDD
    assert lo.vm_frac == pytest.approx(0.5, abs=1e-3) and hi.vm_frac == pytest.approx(0.5, abs=1e-3)
    # subthreshold inverter gain ≈ (e^{VDD/2V_T} - 1)/n: rises with VDD (by ~25 % over 12 mV at 27 °C)
    assert hi.gain > lo.gain * 1.1


def test_trim_direction_follows_physical_corner_names(pbit):
    """Physical fs = fast N / slow P: the nfets must be weakened (higher TRIM) to rebalance; sf the
    opposite. This fails if the swapped sf/fs model files were read under their file names."""
    vdd = 0.064
    t = {c: T.balance(pbit, c, 27.0, vdd) for c in ("tt", "fs", "sf")}
    assert t["tt"] is not None and t["fs"] is not None
    assert t["fs"].trim_v > t["tt"].trim_v + 0.1
    if t["sf"] is not None:  # slow N may not be balanceable inside the range: then it is reported, not invented
        assert t["sf"].trim_v < t["tt"].trim_v - 0.1


def test_write_table_roundtrip(tmp_path, monkeypatch, pbit):
    src = pbit.cell_dir
    dst = tmp_path / "pbit"
    shutil.copytree(src, dst)
    (dst / "trims.json").unlink(missing_ok=True)
    cell = load_cell(str(dst))
    rows = [{"corner": "tt", "temp_c": 27.0, "ok": True, "value_v": 0.3, "vdd_v": 0.065, "p1": 0.5, "regime": "bistable"},
            {"corner": "ss", "temp_c": -40.0, "ok": False, "value_v": None, "vdd_v": None, "message": "no trim works"}]
    T.write_table(cell, rows, command="test")
    T.write_table(cell, rows, command="test")  # idempotent: the generated block is replaced, not appended
    text = (dst / "cell.toml").read_text()
    assert text.count("[[trim.TRIM.table]]") == 1
    again = load_cell(str(dst))
    assert again.trim["TRIM"].value_for("tt", 27.0) == pytest.approx(0.3)
    assert again.trim["TRIM"].value_for("ss", 27.0) == again.trim["TRIM"].nominal_v  # no ok row: nominal
    stored = T.stored_trims(again)["TRIM"]
    assert {(r["corner"], r["temp_c"]) for r in stored} == {("tt", 27.0), ("ss", -40.0)}
    tomllib.loads(text)


def test_cell_without_balance_table_is_refused(tmp_path):
    dst = tmp_path / "pbit"
    shutil.copytree(load_cell("pbit").cell_dir, dst)
    text = (dst / "cell.toml").read_text().split("[balance]")[0]
    (dst / "cell.toml").write_text(text)
    with pytest.raises(InputError, match=r"cell\.toml: no \[balance\] table"):
        T.balance_spec(load_cell(str(dst)))


def test_trim_cli_rejects_bad_duration(capsys):
    from noisecell.cli import main

    assert main(["trim", "pbit", "--duration", "abc"]) == 2
    assert "--duration" in capsys.readouterr().err
