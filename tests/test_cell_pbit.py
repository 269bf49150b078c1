"""The default sky130 cell `pbit`: description, template hygiene, ratings, regimes, mismatch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from noisecell.cells import load_cell
from noisecell.cli import main
from noisecell import netlist as nl
from noisecell import trim as T


@pytest.fixture(scope="module")
def pbit():
    return load_cell("pbit")


def test_template_is_a_clean_four_transistor_core_on_a_grounded_substrate(pbit):
    text = " ".join(ln.text for ln in nl.logical_lines(pbit.template)).lower()  # comments dropped
    for forbidden in ("trrandom", "trnoise", ".tran", ".control", ".include", ".lib"):
        assert forbidden not in text, forbidden
    mos = nl.find_mosfets(pbit.template, "sky130")
    assert len(mos) == 4  # ≤ 8 in the noise core
    for line in nl.logical_lines(pbit.template):
        if line.text.lower().startswith("x"):
            t = nl.tokens(line.text)
            assert t[5].lower() == "sky130_fd_pr__nfet_05v0_nvt"
            assert t[4] == "0", f"body of {t[0]} must be the grounded substrate"


def test_every_terminal_within_rating(pbit):
    # nfet_05v0_nvt is rated 5.0 V on every terminal pair; the highest node is VDD + |VB|/2.
    vmax = pbit.supplies["vdd"].range_v[1] + max(abs(b) for b in pbit.bias.range_v) / 2
    assert vmax < 0.5
    assert min(pbit.supplies["vdd"].range_v) > 0  # no negative rail: nothing below the grounded substrate


def test_cell_info_json(capsys):
    assert main(["cell", "info", "pbit", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("name", "technology", "ports", "bias_range_v", "bias_mid_v", "vdd_v", "corners", "trim"):
        assert key in d, key
    assert d["name"] == "pbit" and d["technology"] == "sky130"
    assert d["corners"] == ["tt", "ss", "ff", "sf", "fs"]
    kinds = {p["kind"] for p in d["ports"]}
    assert {"supply", "bias", "output"} <= kinds
    assert main(["cell", "list", "--json"]) == 0
    names = [c["name"] for c in json.loads(capsys.readouterr().out.strip().splitlines()[-1])]
    assert "pbit" in names


@pytest.mark.parametrize("vdd, regime", [(0.080, "single_peaked"), (0.118, "stuck")])
def test_regime_below_and_above_the_window(pbit, vdd, regime):
    """DC loop gain 0.78 at 80 mV (no bistability: one noisy level) and 1.5 at 118 mV (a barrier of
    many kT: frozen in one state for the whole record). 3 µs is > 30 within-level correlation times."""
    chk = T.check(pbit, "tt", 27.0, vdd, vdd, duration_s=3e-6, seed=11)
    assert chk.regime == regime, chk.regime_detail


def test_mismatch_instances_are_reproducible_and_distinct(pbit):
    def vm(seed):
        return T.dc_points(pbit, "tt", 27.0, [(None, 0.094)], mismatch_seed=seed)[0].vm_frac

    a1, a2, b = vm(101), vm(101), vm(202)
    nominal = T.dc_points(pbit, "tt", 27.0, [(None, 0.094)])[0].vm_frac
    assert a1 == a2  # same .options seed -> the same instance, bit for bit
    assert a1 != b and a1 != nominal
    assert np.isfinite(a1) and np.isfinite(b)


def test_bias_offset_equalises_the_two_half_circuits(pbit):
    """The DC bias offset of a mismatched instance is where both inverters switch at the same
    fraction of the rail; brentq's xtol of 10 µV in VB moves the switching points by < 1e-3 of VDD."""
    vdd = 0.094
    off = T.bias_offset(pbit, "tt", 27.0, mismatch_seed=2, vdd_v=vdd)
    assert off is not None and pbit.bias.range_v[0] < off < pbit.bias.range_v[1]
    a = T.dc_points(pbit, "tt", 27.0, [(None, vdd)], bias_v=off, mismatch_seed=2, forced="v_outb")[0]
    b = T.dc_points(pbit, "tt", 27.0, [(None, vdd)], bias_v=off, mismatch_seed=2, forced="v_out")[0]
    assert a.vm_frac == pytest.approx(b.vm_frac, abs=1e-3)
    # without mismatch the two halves are identical: the offset is zero (to brentq's tolerance)
    a0 = T.dc_points(pbit, "tt", 27.0, [(None, vdd)], forced="v_outb")[0]
    b0 = T.dc_points(pbit, "tt", 27.0, [(None, vdd)], forced="v_out")[0]
    assert a0.vm_frac == pytest.approx(b0.vm_frac, abs=1e-6)
