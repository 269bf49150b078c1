"""The sky130 cell `pbit` (the default until pbit_x5): description, template hygiene, ratings, regimes, mismatch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from noisecell.cells import load_cell
from noisecell.cli import main
from noisecell import netlist as nl
from noisecell import trim as T

#: the nominal design point (cell.toml): supply and load-gate trim at tt, 27 °C
NOM_VDD, NOM_VGP = 0.1045, -0.0745


@pytest.fixture(scope="module")
def pbit():
    return load_cell("pbit")


def test_template_is_a_clean_six_transistor_core_on_a_grounded_substrate(pbit):
    text = " ".join(ln.text for ln in nl.logical_lines(pbit.template)).lower()  # comments dropped
    for forbidden in ("trrandom", "trnoise", ".tran", ".control", ".include", ".lib"):
        assert forbidden not in text, forbidden
    mos = nl.find_mosfets(pbit.template, "sky130")
    assert len(mos) == 6  # ≤ 8 in the noise core
    kinds = {}
    for line in nl.logical_lines(pbit.template):
        if line.text.lower().startswith("x"):
            t = nl.tokens(line.text)
            model = t[5].lower()
            kinds[model] = kinds.get(model, 0) + 1
            if "nfet" in model:
                assert t[4] == "0", f"body of {t[0]} must be the grounded substrate"
            else:  # a pfet's body is its n-well: the supply or one of the two bias wells
                assert t[4].lower() in ("vdd", "nw1", "nw2"), t
    assert kinds == {"sky130_fd_pr__nfet_05v0_nvt": 2, "sky130_fd_pr__pfet_01v8_lvt": 4}


def test_every_terminal_within_rating(pbit):
    """pfet_01v8_lvt is rated 1.8 V (nfet_05v0_nvt 5 V) between any two terminals. The extremes are
    the top of the supply range plus half the bias (a bias well), and the most negative load gate
    (the trim's lower end) against the highest rail."""
    vdd_hi = pbit.supplies["vdd"].range_v[1]
    well_hi = vdd_hi + max(abs(b) for b in pbit.bias.range_v) / 2
    gate_lo, gate_hi = pbit.trim["VGP"].range_v
    worst = max(well_hi - gate_lo, well_hi, gate_hi, vdd_hi - gate_lo)
    assert worst < 1.8
    assert min(pbit.supplies["vdd"].range_v) > 0  # the rails stay above the grounded substrate


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


@pytest.mark.parametrize("vdd, regime", [(0.092, "single_peaked"), (0.120, "stuck")])
def test_regime_below_and_above_the_window(pbit, vdd, regime):
    """Balanced loads; DC loop gain ~0.86 at 92 mV (no bistability: one noisy level) and ~1.35 at
    120 mV (a barrier of many kT: frozen in one state for the whole record). 3 µs is > 100
    within-level correlation times (~25 ns at the nominal point)."""
    dc = T.balance(pbit, "tt", 27.0, vdd)
    assert dc is not None and abs(dc.vm_frac - 0.5) < 1e-3
    chk = T.check(pbit, "tt", 27.0, dc.trim_v, vdd, duration_s=3e-6, seed=11)
    assert chk.regime == regime, chk.regime_detail


def test_mismatch_instances_are_reproducible_and_distinct(pbit):
    def vm(seed):
        return T.dc_points(pbit, "tt", 27.0, [(NOM_VGP, NOM_VDD)], mismatch_seed=seed)[0].vm_frac

    a1, a2, b = vm(101), vm(101), vm(202)
    nominal = T.dc_points(pbit, "tt", 27.0, [(NOM_VGP, NOM_VDD)])[0].vm_frac
    assert a1 == a2  # same .options seed -> the same instance, bit for bit
    assert a1 != b and a1 != nominal
    assert np.isfinite(a1) and np.isfinite(b)


def test_bias_offset_equalises_the_two_half_circuits(pbit):
    """The DC bias offset of a mismatched instance is where both inverters switch at the same
    fraction of the rail; brentq's xtol of 10 µV in VB moves the switching points by < 1e-3 of VDD."""
    vdd, vgp = NOM_VDD, NOM_VGP
    off = T.bias_offset(pbit, "tt", 27.0, mismatch_seed=2, trim_v=vgp, vdd_v=vdd)
    assert off is not None and pbit.bias.range_v[0] < off < pbit.bias.range_v[1]
    a = T.dc_points(pbit, "tt", 27.0, [(vgp, vdd)], bias_v=off, mismatch_seed=2, forced="v_outb")[0]
    b = T.dc_points(pbit, "tt", 27.0, [(vgp, vdd)], bias_v=off, mismatch_seed=2, forced="v_out")[0]
    assert a.vm_frac == pytest.approx(b.vm_frac, abs=1e-3)
    # without mismatch the two halves are identical: the offset is zero (to brentq's tolerance)
    a0 = T.dc_points(pbit, "tt", 27.0, [(vgp, vdd)], forced="v_outb")[0]
    b0 = T.dc_points(pbit, "tt", 27.0, [(vgp, vdd)], forced="v_out")[0]
    assert a0.vm_frac == pytest.approx(b0.vm_frac, abs=1e-6)
