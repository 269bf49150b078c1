"""The designer's latch of issue 16's "Done when", end to end on real ngspice runs (spice_models/latch4_nat,
docs/cells.md "latch4_nat: from NOT BISTABLE to a model"): as first written (its cell.toml's nominal
values, no trims.json) `cell check` refuses it and its fix names the trim, the direction and the
amount; that fix is the point `noisecell trim` stored; a record of the cell as written gets no per-bit
figure, a record of the trimmed cell does."""
import json
import math
import shutil
from pathlib import Path

import pytest

from noisecell.cli import main

CELL = Path(__file__).resolve().parent.parent / "spice_models" / "latch4_nat"
MONO = Path(__file__).parent / "data" / "cells" / "latch4_mono"
pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _as_written(tmp_path: Path) -> Path:
    """The cell folder without its trims.json: the designer's first version."""
    d = tmp_path / "mylatch"
    shutil.copytree(CELL, d)
    (d / "trims.json").unlink()
    return d


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_check_of_the_cell_as_written_gives_the_trim_that_trim_stored(tmp_path):
    from noisecell import trim as T
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    res = check_cell(load_cell(str(_as_written(tmp_path))))
    assert res.status == "fail" and not res.nominal.bistable
    # the reason: pull-downs outweigh the loads (switching point far below mid-rail), loop gain < 1
    assert res.nominal.switching_frac[0] < 0.5 - 0.15 and res.nominal.loop_gain_at_switching < 1
    s = res.suggestion
    assert s is not None and s.works and s.status != "fail", s
    # stronger loads (lower gate voltage) raise the switching point: the fix must lower VGP
    assert s.trim == "VGP" and s.trim_to_v < s.trim_from_v and "lower VGP by" in res.fix
    assert s.vdd_to_v > s.vdd_from_v and "raise the supply" in res.fix
    # the method's own tolerances: the balance is root-found on a refined grid to a few 1e-3 of VDD,
    # the supply to the gain target within the DC gain's grid rounding (~1 %)
    assert abs(s.vm_frac_to - 0.5) < 0.01 and abs(s.gain_to / s.gain_target - 1) < 0.02
    # the same DC method as `noisecell trim`, whose stored row (trims.json, checked bistable by a noise
    # run) this must reproduce: same code, same inputs, so equal to the DC grid's resolution
    row = T.stored_trims(load_cell(str(CELL)))["VGP"][0]
    assert row["ok"] and row["regime"] == "bistable"
    assert math.isclose(s.trim_to_v, row["value_v"], abs_tol=1e-4)
    assert math.isclose(s.vdd_to_v, row["vdd_v"], rel_tol=1e-3)
    # and `cell check` of the shipped (trimmed) cell agrees: bistable, every terminal within its rating
    trimmed = check_cell(load_cell(str(CELL)))
    assert trimmed.nominal.bistable and trimmed.status == "ok" and trimmed.suggestion is None
    assert not any(d.violations for d in trimmed.devices) and not trimmed.junctions


def test_a_trim_that_cannot_balance_is_not_offered_as_a_fix(tmp_path):
    """latch4_mono with a [balance] table on its common-well trim: no VNW in its range balances it,
    and the fix says so instead of naming a point."""
    from noisecell.cellcheck import check_cell
    from noisecell.cells import load_cell

    d = tmp_path / "mono"
    shutil.copytree(MONO, d)
    with open(d / "cell.toml", "a", encoding="utf-8") as f:
        f.write('\n[balance]\ntrim = "VNW"\nlow_node = "0"\ngain_target = 1.08\n')
    res = check_cell(load_cell(str(d)))
    assert res.status == "fail" and res.suggestion is not None and not res.suggestion.works
    assert res.suggestion.vdd_to_v is None and "cannot balance" in res.fix


def test_cell_as_written_gets_no_per_bit_figures_and_the_trimmed_one_does(tmp_path, capsys):
    mine = _as_written(tmp_path)
    # as written: 3 us is ~100 of its fastest node's relaxation times; one level, whatever the length
    assert main(["simulate", str(mine), "--bias", "0", "--duration", "3us", "--seed", "1",
                 "--out", str(tmp_path / "w.npz")]) == 0
    d = _json(capsys)
    assert d["regime"] != "bistable" and d["flips"] is None
    assert d["not_a_bit_source"] and "lower VGP by" in d["not_a_bit_source"]
    assert main(["analyze", str(tmp_path / "w.npz")]) == 0
    a = _json(capsys)
    assert a["energy_per_bit_j"] is None and a["tau_s"] is None and a["energy_per_flip_j"] is None
    # trimmed (the stored trims.json row: 1.79 flips/us in its 10 us check): 20 us holds ~36
    # transitions (Poisson sd 6), far above the regime detector's minimum of 2 and enough dwells for
    # its surrogate test; seeded, so the run is the same every time
    assert main(["simulate", str(CELL), "--bias", "0", "--duration", "20us", "--seed", "2",
                 "--out", str(tmp_path / "t.npz")]) == 0
    d = _json(capsys)
    assert d["regime"] == "bistable" and d["not_a_bit_source"] is None and d["flips"] >= 10
    assert main(["analyze", str(tmp_path / "t.npz")]) == 0
    a = _json(capsys)
    assert a["energy_per_bit_j"] > 0 and a["tau_s"] > 0 and a["energy_per_flip_j"] > 0


def _rc_cell(d, elements: str):
    """A generic-technology test cell in folder ``d``: supply Vdd (VDD 0.1 V), bias VB, outputs q / qb,
    and the circuit ``elements``."""
    (d / "rc.cir").write_text("* RC node\n.param VDD=0.1 VB=0\nVdd vdd 0 {VDD}\n" + elements + ".end\n")
    (d / "cell.toml").write_text(
        f'name = "{d.name}"\ntechnology = "generic"\nnetlist = "rc.cir"\ncorners = ["tt"]\n'
        'nominal = { corner = "tt", temp_c = 27.0 }\n[supplies.vdd]\nsource = "Vdd"\nparam = "VDD"\n'
        'nominal_v = 0.1\nrange_v = [0.05, 0.2]\n[bias]\nparam = "VB"\nrange_v = [-0.01, 0.01]\n'
        '[outputs]\nv_out = "q"\nv_outb = "qb"\n')
    return d


def test_node_time_constant_of_an_rc_node_is_rc(tmp_path):
    """node_time_constants on a node of known truth: v_out = R ∥ C to ground (R 1 MΩ, C 1 pF: τ = 1 µs),
    v_outb held. The corner is interpolated on a 10-per-decade grid, within 0.7 % for one pole (the
    function's docstring derives it); 1 % allowed. With C = 2 pF the answer must double."""
    from noisecell.cellcheck import OperatingPoint, node_time_constants
    from noisecell.cells import load_cell

    for c_pf in (1, 2):
        d = tmp_path / f"rc{c_pf}"
        d.mkdir()
        cell = load_cell(str(_rc_cell(d, f"R1 q 0 1meg\nC1 q 0 {c_pf}p\nR2 qb vdd 1meg\n")))
        taus = node_time_constants(cell, corner="tt", temp_c=27.0, values={"VDD": 0.1, "VB": 0.0},
                                   states=(OperatingPoint(0.0, 0.05, 0.5, True),))
        assert len(taus) == 1 and math.isclose(taus[0], c_pf * 1e-6, rel_tol=0.01), taus


def test_node_time_constant_when_v_outb_is_an_ideal_source_node(tmp_path):
    """A single-ended readout's reference node (v_outb driven by the cell's own ideal source to ground,
    as pbit_x4's VDD/2 node) is AC ground already: the check must not add a second source in parallel
    (ngspice aborted the ac run: 'no such vector'). Same R ∥ C truth, τ = 1 µs within 1 %."""
    from noisecell.cellcheck import OperatingPoint, node_time_constants
    from noisecell.cells import load_cell

    d = tmp_path / "rcref"
    d.mkdir()
    cell = load_cell(str(_rc_cell(d, "Vin qb 0 {VDD/2}\nR1 q qb 1meg\nC1 q 0 1p\n")))
    taus = node_time_constants(cell, corner="tt", temp_c=27.0, values={"VDD": 0.1, "VB": 0.0},
                               states=(OperatingPoint(0.05, 0.05, 0.5, True), OperatingPoint(0.05, 0.05, 0.5, True)))
    assert len(taus) == 2 and all(math.isclose(t, 1e-6, rel_tol=0.01) for t in taus), taus


def test_check_warns_that_the_designer_latch_is_slow_and_not_the_trimmed_native_one():
    """latch4_trim's nodes (10 µm lvt nfets, pA) relax in tens of µs: `cell check` warns (its dwells
    were measured at 50-110 ms); latch4_nat's (native/lvt devices, 46 nA) in ns: no warning."""
    from noisecell.cellcheck import SLOW_NODE_S, check_cell
    from noisecell.cells import load_cell

    slow = check_cell(load_cell(str(MONO.parent / "latch4_trim")))
    assert slow.node_tau_s and min(slow.node_tau_s) > SLOW_NODE_S
    assert any("relaxes in" in w for w in slow.warnings)
    fast = check_cell(load_cell(str(CELL)))
    assert fast.node_tau_s and max(fast.node_tau_s) < SLOW_NODE_S / 100
    assert not any("relaxes in" in w for w in fast.warnings)
