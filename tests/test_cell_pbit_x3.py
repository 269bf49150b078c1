"""The issue-17 cell `pbit_x3` (pbit_x2's chain with its pfet wells 0.3 V reverse-biased): template
hygiene, ratings from the declared ranges (including the pfet models' forward body-bias limit that
`noisecell cell check` applies), the trim search order, and — with ngspice — that the nominal point
in cell.toml is the balanced point at the design gain, which is what the characterisation and the
stored tt 27 °C trim start from."""
from __future__ import annotations

import shutil

import pytest

from noisecell import cellcheck
from noisecell import netlist as nl
from noisecell import trim as T
from noisecell.cells import load_cell


@pytest.fixture(scope="module")
def x3():
    return load_cell("pbit_x3")


def _rating(model: str):
    for pat, r in cellcheck.SKY130_RATINGS:
        if pat.match(model):
            return r
    raise AssertionError(model)


def test_template_is_pbit_x2s_eight_transistor_chain_on_a_grounded_substrate(x3):
    text = " ".join(ln.text for ln in nl.logical_lines(x3.template)).lower()  # comments dropped
    for forbidden in ("trrandom", "trnoise", ".tran", ".control", ".include", ".lib"):
        assert forbidden not in text, forbidden
    assert len(nl.find_mosfets(x3.template, "sky130")) == 8  # ≤ 8 in the noise core
    x2 = load_cell("pbit_x2")

    def devices(cell):
        return sorted(nl.tokens(ln.text)[:6] for ln in nl.logical_lines(cell.template) if ln.text.lower().startswith("x"))

    assert devices(x3) == devices(x2)  # the same circuit: only the operating point differs
    for t in devices(x3):
        if "nfet" in t[5]:
            assert t[4] == "0", f"body of {t[0]} must be the grounded substrate"


def test_every_terminal_within_rating_and_the_models_forward_bias_limit(x3):
    """The largest terminal difference is stage 1's well (VDD + VNW + VB, all at their tops) against a
    drain at 0; the most forward-biased pfet junction is a well at VNW's lower end below its source
    at VB = 0 (stage 1's well is further below only for VB < 0, by at most 0.3 V more: noted in
    cell.toml; at the nominal VNW = 0.3 V that needs VB < -0.3 V, outside the range)."""
    p = _rating("sky130_fd_pr__pfet_01v8_lvt")
    vdd_hi = x3.supplies["vdd"].range_v[1]
    vnw_lo, vnw_hi = x3.trim["VNW"].range_v
    vb_hi = max(x3.bias.range_v)
    assert vdd_hi + vnw_hi + vb_hi <= 1.8  # the pfet's rated 1.8 V (cell check allows up to 1.95)
    assert -vnw_lo <= p.vbs_forward_max  # VNW >= -0.1 V: the wells' own forward bias within the models' limit
    assert all(vnw_lo <= v <= vnw_hi for v in T.balance_spec(x3).aux_values)
    assert min(x3.supplies["vdd"].range_v) > 0


def test_trim_tries_the_design_well_bias_first_then_more_current_then_more_gain(x3):
    bal = T.balance_spec(x3)
    assert bal.aux_trim == "VNW" and bal.aux_fallback
    vals = list(bal.aux_values)
    assert vals[0] == pytest.approx(x3.trim["VNW"].nominal_v)  # the nominal point is what tt 27 °C finds first
    k = next(i for i, v in enumerate(vals) if v > vals[0])  # first value above the nominal
    assert vals[1:k] == sorted(vals[1:k], reverse=True) and all(v < vals[0] for v in vals[1:k])  # less reverse bias
    assert vals[k:] == sorted(vals[k:]) and all(v > vals[0] for v in vals[k:])  # then more


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_nominal_point_is_balanced_at_the_design_gain(x3):
    """cell.toml's nominal VGP/VDD (with VNW = 0.3 V) is trim stage 1-2's point at tt 27 °C: the
    inverters switch at VDD/2 (the DC root is found to < 1e-3 of VDD; cell.toml holds VGP to 0.1 mV,
    which moves the switching point by < 2e-3 of VDD) and the stage gain is the design's 5.2 (the
    supply is held to 0.01 mV; the gain moves 0.2 % per mV there)."""
    bal = T.balance_spec(x3)
    vgp, vdd = x3.trim["VGP"].nominal_v, x3.supplies["vdd"].nominal_v
    p = T.dc_points(x3, "tt", 27.0, [(vgp, vdd)], fixed_trim={"VNW": x3.trim["VNW"].nominal_v})[0]
    assert p.vm_frac == pytest.approx(0.5, abs=3e-3)
    assert p.gain == pytest.approx(bal.gain_target, rel=0.01)
    # and the well bias is what brings the gain there at this supply: with pbit_x2's VNW = 0 the same
    # supply gives a lower gain at balance (pbit_x2 needs 337 mV for 5.2)
    b0 = T.balance(x3, "tt", 27.0, vdd, fixed_trim={"VNW": 0.0})
    assert b0 is not None and b0.gain < bal.gain_target - 0.2
