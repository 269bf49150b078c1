"""`noisecell cell check` (issue 16 item 1): operating points and their stability from the two
open-loop transfer curves, device ratings, forward-biased junctions, every DC source's power."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from noisecell.cellcheck import (SKY130_RATINGS, LatchState, OperatingPoint, check_device,
                                 latch_operating_points, latch_state, rating_for, verdict)

MONO = Path(__file__).parent / "data" / "cells" / "latch4_mono"
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _tanh_halves(gain, vdd=0.1, n=241):
    """Two identical inverting halves V_out = VDD/2·(1 - tanh(gain·(x - VDD/2)/(VDD/2))): slope
    -gain at mid-rail, so the latch is bistable exactly when gain > 1."""
    x = np.linspace(-0.05 * vdd, 1.05 * vdd, n)
    h = vdd / 2
    y = h * (1 - np.tanh(gain * (x - h) / h))
    return x, y, y.copy()


@pytest.mark.parametrize("gain", [0.6, 0.95])
def test_loop_gain_below_one_has_one_stable_point(gain):
    x, f, g = _tanh_halves(gain)
    pts = latch_operating_points(x, f, g)
    assert len(pts) == 1 and pts[0].stable
    # the symmetric point: q = qb = VDD/2, loop gain = gain² (product of the two slopes)
    assert pts[0].q_v == pytest.approx(0.05, abs=1e-6) and pts[0].loop_gain == pytest.approx(gain ** 2, rel=1e-3)


@pytest.mark.parametrize("gain", [1.2, 2.0, 4.0])
def test_loop_gain_above_one_has_two_stable_states_and_a_metastable_point(gain):
    x, f, g = _tanh_halves(gain)
    pts = latch_operating_points(x, f, g)
    assert [p.stable for p in pts] == [True, False, True]
    meta = pts[1]
    # slopes come from a 5-point least-squares line over ±2 grid steps Δ: for y ≈ a·x - b·x³ that
    # slope is a - b·(34/10)·Δ², and tanh(g·x/h) has b/a = g²/(3h²): relative error (34/30)(gΔ/h)²
    # per half, twice that for the loop gain (0.3 % at g = 4); ×1.5 for the grid offset of the root
    step = x[1] - x[0]
    rel = 1.5 * 2 * (34 / 30) * (gain * step / 0.05) ** 2 + 1e-4
    assert meta.q_v == pytest.approx(0.05, abs=1e-6) and meta.loop_gain == pytest.approx(gain ** 2, rel=rel)
    # the stable states solve u = -tanh(gain·u)… with u = (q - VDD/2)/(VDD/2) and qb mirrored: for
    # the symmetric latch q - VDD/2 = -(qb - VDD/2) and u = tanh(gain·u) (grid interpolation: ≪ 1 %)
    from scipy.optimize import brentq
    u = brentq(lambda u: u - math.tanh(gain * u), 1e-6, 1.0)
    lo, hi = sorted((pts[0], pts[2]), key=lambda p: p.q_v)
    assert hi.q_v == pytest.approx(0.05 * (1 + u), rel=2e-3) and lo.q_v == pytest.approx(0.05 * (1 - u), rel=2e-3)
    st = latch_state(0.1, 0.0, 0.0, x, f, g)
    assert st.bistable and st.switching_frac[0] == pytest.approx(0.5, abs=1e-6)
    assert st.half_gain[0] == pytest.approx(gain, rel=rel)


def test_unbalanced_halves_shift_the_switching_point():
    # a half whose threshold sits at 0.2 VDD (pull-downs outweigh pull-ups)
    vdd = 0.066
    x = np.linspace(-0.05 * vdd, 1.05 * vdd, 241)
    y = vdd / 2 * (1 - np.tanh(3.0 * (x - 0.2 * vdd) / (vdd / 2)))
    st = latch_state(vdd, 0.0, 0.0, x, y, y)
    assert st.switching_frac[0] < 0.3
    status, text, fix = verdict(st, [st], [], [])
    if not st.bistable:
        assert status == "fail" and "unbalanced" in fix and "longer records" in fix


def test_verdict_names_the_supply_window_when_the_range_has_one():
    mono = LatchState(0.06, 0.0, (OperatingPoint(0.03, 0.03, 0.5, True),), (0.5, 0.5), (0.7, 0.7))
    bi = LatchState(0.09, 0.0, (OperatingPoint(0.08, 0.01, 0.3, True), OperatingPoint(0.045, 0.045, 1.5, False),
                                OperatingPoint(0.01, 0.08, 0.3, True)), (0.5, 0.5), (1.2, 1.2))
    status, text, fix = verdict(mono, [mono, bi], [], [])
    assert status == "fail" and text.startswith("NOT BISTABLE") and "90 mV" in fix
    status, text, fix = verdict(mono, [mono], [], [])
    assert "below 1 over the whole supply range" in fix  # balanced but too little gain anywhere
    assert verdict(bi, [bi], [], [])[0] == "ok"


def test_rating_table_and_overvoltage_on_a_3v3_device():
    r = rating_for("sky130", "sky130_fd_pr__nfet_03v3_nvt")
    assert (r.vgs_max, r.vds_max) == (3.3, 3.3)
    assert rating_for("sky130", "sky130_fd_pr__pfet_01v8_lvt").vgs_max == 1.95
    assert rating_for("sky130", "sky130_fd_pr__nfet_05v0_nvt").vds_max == 5.5
    assert rating_for("generic", "nch") is None and rating_for("sky130", "sky130_fd_pr__nfet_unknown") is None
    assert len(SKY130_RATINGS) >= 6
    # the issue's biasing: ~3.5 V gate/drain to body on a 3.3 V device
    dv = check_device("XN1", "sky130_fd_pr__nfet_03v3_nvt", "n", r,
                      [("bias end", {"d": 3.4, "g": 3.5, "s": 0.0, "b": 0.0})])
    assert any("V_GS" in v for v in dv.violations) and any("V_DS" in v for v in dv.violations)
    ok = check_device("XN1", "sky130_fd_pr__nfet_03v3_nvt", "n", r,
                      [("nominal", {"d": 3.2, "g": 3.3, "s": 0.0, "b": 0.0})])
    assert ok.violations == ()
    # forward bias: p+ source 0.066 V above an n-well at -0.234 V
    p = check_device("XP1", "sky130_fd_pr__pfet_01v8", "p", rating_for("sky130", "sky130_fd_pr__pfet_01v8"),
                     [("trim", {"d": 0.03, "g": 0.03, "s": 0.066, "b": -0.234})])
    assert p.forward_v == pytest.approx(0.30)


@needs_ngspice
def test_monostable_designer_cell_is_refused_with_the_reason():
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    res = check_cell(load_cell(str(MONO)))
    assert res.status == "fail" and res.verdict.startswith("NOT BISTABLE")
    assert not res.nominal.bistable and res.nominal.loop_gain_at_switching < 1
    assert res.nominal.switching_frac[0] < 0.35  # the nfets outweigh the pfets
    assert "unbalanced" in res.fix and "longer records" in res.fix
    assert not any(s.bistable for s in res.supply_scan)
    names = {s.name: s for s in res.sources}
    assert names["Vdd"].declared and not names["Vnw"].declared
    d = json.loads(json.dumps(res.to_dict()))
    assert d["status"] == "fail" and d["nominal"]["bistable"] is False and len(d["devices"]) == 4


@needs_ngspice
def test_forward_biased_wells_and_their_power_are_reported():
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    res = check_cell(load_cell(str(MONO)), trim={"VNW": -0.3})
    # the well sits at VDD + VNW + VB, the pfet sources at VDD: forward bias = -VNW - VB, largest
    # at the bias range's low end (-10 mV): exactly 0.31 V, whatever the transistors do
    pj = [j for j in res.junctions if j.what.startswith("XP")]
    assert pj and max(j.forward_v for j in pj) == pytest.approx(0.31, abs=1e-4) and all(j.beyond_limit for j in pj)
    vnw = next(s for s in res.sources if s.name == "Vnw")
    # the forward-biased wells draw current from their source: it delivers power the energy figures miss
    assert vnw.power_w > 0 and any("Vnw" in w and "not a declared" in w for w in res.warnings)


@needs_ngspice
def test_pbit_is_bistable_at_its_trim_and_loop_gain_is_the_product_of_the_halves():
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    res = check_cell(load_cell("pbit"))
    assert res.status in ("ok", "warn") and res.nominal.bistable
    meta = [p for p in res.nominal.points if not p.stable]
    assert len(meta) == 1
    # at the symmetric metastable point (balanced halves) the loop gain is the product of the half
    # gains at their switching points (both are the same point for a balanced symmetric latch):
    # equal within the two 5-point slope fits' rounding (~1 %)
    assert meta[0].loop_gain == pytest.approx(res.nominal.loop_gain_at_switching, rel=0.02)
    assert all(not d.violations for d in res.devices)


@needs_ngspice
def test_cell_check_command_prints_verdict_and_json(capsys):
    from noisecell.cli import main

    assert main(["cell", "check", str(MONO), "--json"]) == 0
    out = capsys.readouterr()
    d = json.loads(out.out.strip().splitlines()[-1])
    assert d["status"] == "fail" and out.err.splitlines()[0].startswith("cell check latch4_mono")
    assert "NOT BISTABLE" in out.err.splitlines()[0]


@needs_ngspice
def test_characterize_refuses_a_monostable_cell_before_simulating(tmp_path, capsys):
    from noisecell.cli import main

    out = tmp_path / "rep"
    assert main(["characterize", str(MONO), "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "NOT BISTABLE" in err and "unbalanced" in err and "--skip-check" in err
    assert not (out / "sweep").exists()  # nothing was simulated


def test_outputs_without_a_feedback_loop_are_not_judged_as_a_latch():
    """An amplifier chain (v_out = inverter(v_outb), v_outb driven from elsewhere): forcing v_out does
    not move v_outb, so there is no loop and no bistability verdict — not a refusal."""
    x, f, _ = _tanh_halves(5.0)
    g = np.full_like(x, 0.052)
    st = latch_state(0.1, 0.0, 0.0, x, f, g)
    assert not st.loop
    status, text, fix = verdict(st, [st], [], [])
    assert status == "ok" and fix is None and "no feedback loop" in text


def test_a_weak_symmetric_latch_is_still_a_loop_and_refused():
    # both halves nearly flat (gain 0.04 at a switching point near a rail): monostable, not "no loop"
    x, f, g = _tanh_halves(0.04)
    st = latch_state(0.1, 0.0, 0.0, x, f, g)
    assert st.loop and not st.bistable
    assert verdict(st, [st], [], [])[0] == "fail"


@needs_ngspice
def test_guide_example_cell_is_bistable_at_its_stored_trim():
    """docs/cells.md walks through pbit_cs: the check must agree with the transient trim check that
    found it telegraphing at its stored supply (two stable states around one metastable point)."""
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    res = check_cell(load_cell("pbit_cs"))
    assert res.status == "ok" and res.nominal.bistable
    assert [p.stable for p in res.nominal.points] == [True, False, True]
    assert res.bistable_range_v is not None and res.bistable_range_v[0] > res.supply_scan[0].vdd_v


@needs_ngspice
def test_trimmed_designer_cell_is_bistable_within_ratings_and_the_models_limit():
    """tests/data/cells/latch4_trim, the shipped trim of the designer's cell (docs/cells.md): bistable at
    its nominal point, every terminal within rating, the pfet junctions forward but within sky130's
    0.1 V limit (status warn, not fail); the issue's own trim (-0.30 V) goes beyond that limit."""
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    cell = load_cell(str(MONO.parent / "latch4_trim"))
    res = check_cell(cell)
    assert res.status == "warn" and res.nominal.bistable, res.verdict
    assert not any(d.violations for d in res.devices)
    assert res.junctions and all(not j.beyond_limit and 0.05 < j.forward_v <= 0.1 for j in res.junctions)
    assert "within the models' limit" in res.verdict
    issue = check_cell(cell, trim={"VNW": -0.30}, vdd_v=0.076)
    assert any(j.beyond_limit for j in issue.junctions) and "beyond the models' limit" in issue.verdict
