"""Cell descriptions (cell.toml) and technologies (model lines, sky130 corner labelling)."""
from __future__ import annotations

import re
import shutil
import json
from pathlib import Path

import pytest

from noisecell.cells import list_cells, load_cell, spice_models_dir
from noisecell.errors import InputError, UnsafeNetlistError
from noisecell.technology import corners, model_identity, model_lines, sky130_models_dir

GENERIC = spice_models_dir() / "pbit_generic"


def test_load_generic_cell():
    c = load_cell("pbit_generic")
    assert c.technology == "generic" and c.corners == ("tt",)
    assert c.supplies["vdd"].source == "Vdd" and c.supplies["vdd"].nominal_v == 0.06
    assert c.bias.param == "VB" and c.outputs == {"v_out": "q", "v_outb": "qb"}
    assert c.readout.mode == "differential"
    d = c.to_dict()
    assert d["name"] == "pbit_generic" and d["bias"]["range_v"] == [-0.01, 0.01]
    assert "pbit_generic" in list_cells()
    assert load_cell(str(GENERIC)).name == "pbit_generic"  # by folder
    assert load_cell(str(GENERIC / "cell.toml")).name == "pbit_generic"  # by file


def test_every_cell_in_the_repo_loads():
    for name in list_cells():
        load_cell(name)


def _copy(tmp_path: Path, edit) -> Path:
    d = tmp_path / "c"
    shutil.copytree(GENERIC, d)
    p = d / "cell.toml"
    p.write_text(edit(p.read_text()))
    return d


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace('technology = "generic"', 'technology = "tsmc"'), r"key 'technology'"),
    (lambda s: s.replace('param = "VB"', 'param = "VBX"'), r"key 'bias.param'.*VBX is not defined"),
    (lambda s: s.replace("nominal_v = 0.06", "nominal_v = 0.5"), r"key 'supplies.vdd.nominal_v'"),
    (lambda s: s.replace('source = "Vdd"', 'source = "Vxx"'), r"key 'supplies.vdd.source'"),
    (lambda s: s.replace('range_v = [-0.01, 0.01]', 'range_v = [0.01, -0.01]'), r"key 'bias.range_v'"),
    (lambda s: s.replace('v_out = "q"', 'v_x = "q"'), r"v_out"),
    (lambda s: s.replace('mode = "differential"', 'mode = "diff"'), r"readout.mode"),
    (lambda s: s.replace('corners = ["tt"]', 'corners = ["ss"]'), r"key 'corners'"),
    (lambda s: s.replace("[bias]", "[bias"), r"not valid TOML"),
    (lambda s: s.replace('name = "pbit_generic"\n', ""), r"missing required key 'name'"),
    # issue 13: typos used to be accepted silently; now refused, naming the key and the likely fix
    (lambda s: s.replace("description =", "descripton ="), r"unknown key 'descripton' at top level; did you mean 'description'"),
    (lambda s: s.replace("mid_v = 0.0", "midd_v = 0.0"), r"unknown key 'midd_v' in \[bias\]; did you mean 'mid_v'"),
    (lambda s: s.replace("hysteresis_v = 0.012", "hysteresis_v = -0.012"), r"key 'readout.hysteresis_v': must be ≥ 0, got -0.012"),
    (lambda s: s.replace("threshold_v = 0.0", 'threshold_v = "zero"'), r"key 'readout.threshold_v': expected a number, got 'zero' \(comparator threshold"),
    (lambda s: s.replace("threshold_v = 0.0", "threshold_v = nan"), r"key 'readout.threshold_v'.*finite"),
    (lambda s: s + "[[trim.VREF.table]]\ncorner = 'tt'\ntemp_c = 0.0\nvalue_v = 0.0\n", r"trims.json"),
])
def test_bad_cell_toml_names_file_and_key(tmp_path, edit, match):
    d = _copy(tmp_path, edit)
    with pytest.raises(InputError, match=match) as ei:
        load_cell(str(d))
    msg = str(ei.value)
    assert str(d / "cell.toml") in msg and "\n" not in msg


def test_unsafe_cell_netlist_refused(tmp_path):
    d = _copy(tmp_path, lambda s: s)
    (d / "pbit_generic.cir").write_text((d / "pbit_generic.cir").read_text() + ".control\nshell ls\n.endc\n")
    with pytest.raises(UnsafeNetlistError, match=r"pbit_generic\.cir:\d+"):
        load_cell(str(d))


def test_unknown_cell_lists_available():
    with pytest.raises(InputError, match="available cells: .*pbit_generic"):
        load_cell("no_such_cell")


def test_trim_table_interpolates_in_temperature(tmp_path):
    extra = """
[trim.VREF]
nominal_v = 0.0
range_v = [-0.01, 0.01]
description = "test"
"""
    d = _copy(tmp_path, lambda s: s.replace('VREF = { nominal = 0.0, min = -0.01, max = 0.01, unit = "V" }', "") + extra)
    # trims.json is where stored trims live; a failed row's value is never used as the trim
    rows = [{"corner": "tt", "temp_c": 0.0, "ok": True, "value_v": 0.002},
            {"corner": "tt", "temp_c": 100.0, "ok": True, "value_v": 0.004},
            {"corner": "tt", "temp_c": 50.0, "ok": False, "value_v": 0.009}]
    (d / "trims.json").write_text(json.dumps({"trims": {"VREF": rows}}))
    t = load_cell(str(d)).trim["VREF"]
    assert t.value_for("tt", 50.0) == pytest.approx(0.003)
    assert t.value_for("tt", -40.0) == pytest.approx(0.002)  # not extrapolated
    assert t.value_for("ss", 27.0) == 0.0  # no entry: nominal


def test_generic_and_sky130_model_lines():
    assert model_lines("generic", "tt", mismatch=False) == []
    assert model_identity("generic") == {"package": None}
    assert model_identity("sky130") == {"package": "sky130", "version": "0.15.3"}
    lines = model_lines("sky130", "sf", mismatch=True)
    assert "MC_MM_SWITCH=1" in lines[1]
    incs = [l for l in lines if l.startswith(".include")]
    assert len(incs) == 5 and all(Path(l.split('"')[1]).is_file() for l in incs)
    with pytest.raises(InputError, match="corner"):
        model_lines("sky130", "xx", mismatch=False)
    assert corners("sky130") == ("tt", "ss", "ff", "sf", "fs")


def _shift(fname: str, dev: str) -> float:
    text = (sky130_models_dir() / fname).read_text()
    m = re.search(rf"sw_vth0_sky130_fd_pr__{dev} = \{{0\.0\+corner_factor\*([-0-9.e]+)\}}", text)
    return float(m.group(1))


@pytest.mark.parametrize("corner, n_slow, p_slow", [("ss", True, True), ("ff", False, False),
                                                     ("sf", True, False), ("fs", False, True)])
def test_sky130_corner_files_match_physical_labels(corner, n_slow, p_slow):
    # nfet: delvto > 0 raises Vth (slow); pfet: delvto < 0 makes Vth more negative (slow). The package's
    # sf/fs files are swapped, which technology.py corrects; if upstream fixes it, this fails.
    fname = [l for l in model_lines("sky130", corner, mismatch=False) if l.startswith(".include") and "parameters_fet_" in l][0]
    fname = Path(fname.split('"')[1]).name
    assert (_shift(fname, "nfet_01v8") > 0) == n_slow
    assert (_shift(fname, "pfet_01v8") < 0) == p_slow


def test_noisecell_spice_models_adds_folders_to_the_built_in_cells(tmp_path, monkeypatch):
    """$NOISECELL_SPICE_MODELS adds folders (':'-separated) before the built-in spice_models/; it used
    to replace them, so `cell list` lost pbit as soon as a designer pointed it at their own folder."""
    import os
    import shutil

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    shutil.copytree(GENERIC, mine / "mycell")
    text = (mine / "mycell" / "cell.toml").read_text()
    (mine / "mycell" / "cell.toml").write_text(text.replace('name = "pbit_generic"', 'name = "mycell"'))
    shutil.copytree(GENERIC, theirs / "othercell")
    monkeypatch.setenv("NOISECELL_SPICE_MODELS", os.pathsep.join([str(mine), str(theirs)]))
    names = list_cells()
    assert {"mycell", "othercell", "pbit", "pbit_generic"} <= set(names)
    assert load_cell("pbit").name == "pbit" and load_cell("mycell").name == "mycell"
    assert load_cell("othercell").netlist_path.parent == theirs / "othercell"
