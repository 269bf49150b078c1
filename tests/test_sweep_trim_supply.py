"""A supply-trimmed cell (pbit) runs each corner/temperature at its stored trimmed supply, not at the
nominal one (at which it is not bistable away from tt/27 °C)."""
import pytest

from noisecell.cells import load_cell
from noisecell.sweep.jobs import expand
from noisecell.sweep.spec import parse_spec
from noisecell.trim import trimmed_point

SPEC = {"cell": "pbit", "duration": "2us", "noise_step": "1ns", "seed": 1,
        "grid": {"bias": [0.0], "temperature": [-40, 85], "corner": ["tt", "ss"], "vdd": []}}


def test_trimmed_supply_per_condition():
    cell = load_cell("pbit")
    jobs = expand(parse_spec(SPEC), cell)
    assert len(jobs) == 4
    vdds = set()
    for j in jobs:
        _, want = trimmed_point(cell, j.conditions["corner"], j.conditions["temp_c"])
        assert j.conditions["vdd_v"] == pytest.approx(want)
        vdds.add(round(j.conditions["vdd_v"], 6))
    # the table differs across these conditions (74 mV at -40 °C vs 163 mV at 85 °C at tt)
    assert len(vdds) == 4


def test_explicit_supply_axis_and_use_trim_false_win():
    cell = load_cell("pbit")
    jobs = expand(parse_spec({**SPEC, "grid": {**SPEC["grid"], "vdd": [0.1]}}), cell)
    assert {j.conditions["vdd_v"] for j in jobs} == {0.1}
    jobs = expand(parse_spec({**SPEC, "use_trim": False}), cell)
    assert {j.conditions["vdd_v"] for j in jobs} == {cell.supplies[cell.main_supply].nominal_v}


def test_bias_about_offset_centres_each_instance_on_its_own_offset():
    """With bias_about_offset, instance k's bias points are its DC offset + the grid, so a cell whose
    mismatch offsets are many sigmoid widths (pbit: ~0.3 V rms vs ~10 mV) is swept where it telegraphs."""
    from noisecell.errors import InputError
    from noisecell.trim import bias_offset

    cell = load_cell("pbit")
    spec = parse_spec({"cell": "pbit", "duration": "2us", "seed": 2, "bias_about_offset": True,
                       "grid": {"bias": [-0.005, 0.005], "mismatch_instances": 2}})
    jobs = expand(spec, cell)
    by_inst = {}
    for j in jobs:
        by_inst.setdefault(j.conditions["mismatch_instance"], []).append(j)
    assert set(by_inst) <= {0, 1} and by_inst  # an instance whose offset is out of range is skipped, not clamped
    for inst, js in by_inst.items():
        c = js[0].conditions
        trim, _ = trimmed_point(cell, c["corner"], c["temp_c"])
        off = bias_offset(cell, c["corner"], c["temp_c"], mismatch_seed=c["mismatch_seed"], trim_v=trim["VGP"],
                          vdd_v=c["vdd_v"])
        assert [j.conditions["bias_v"] for j in js] == pytest.approx([off - 0.005, off + 0.005], abs=1e-8)
        assert all(j.conditions["bias_offset_v"] == pytest.approx(off) for j in js)
    with pytest.raises(InputError, match="bias_about_offset"):
        parse_spec({"cell": "pbit", "duration": "2us", "bias_about_offset": True, "grid": {"bias": [0.0]}})


def test_bias_about_offset_solves_each_instance_at_its_aux_trim(tmp_path, monkeypatch):
    """An instance's DC offset is solved at every trim input its jobs run at: for pbit_x4 ([balance]
    aux_trim VNW, offset = "readout") the spec's explicit VNW (an instance's own trim), not the cell's
    nominal 0.125 V, which the DC netlists had before (only the main trim VGP was passed). ngspice is
    replaced by a recorder whose readout crosses zero at VB = 12 mV."""
    import re
    import shutil
    from pathlib import Path

    from noisecell import trim as T
    from noisecell.sweep import jobs as J

    d = tmp_path / "x4"
    shutil.copytree(Path(__file__).resolve().parents[1] / "spice_models" / "pbit_x4", d,
                    ignore=shutil.ignore_patterns("characterisation"))
    seen = []

    def fake_run_batch(text, workdir, **kw):
        vnw = float(re.search(r"^\.param .*\bVNW=([-0-9.e+]+)", text, re.M).group(1))
        vgp = float(re.search(r"^\.param .*\bVGP=([-0-9.e+]+)", text, re.M).group(1))
        vb = float(re.search(r"^\.param .*\bVB=([-0-9.e+]+)", text, re.M).group(1))
        seen.append((vgp, vnw))
        return f"print\nv(w)-v(in) = {vb - 0.012:.6e}\n"

    monkeypatch.setattr(T, "run_batch", fake_run_batch)
    J._instance_offset.cache_clear()
    spec = parse_spec({"cell": str(d), "duration": "2us", "seed": 2, "bias_about_offset": True,
                       "trim": {"VGP": 0.03, "VNW": 0.8}, "grid": {"bias": [-0.005, 0.005], "mismatch_instances": 1}})
    jobs = expand(spec, load_cell(str(d)))
    J._instance_offset.cache_clear()
    assert seen and set(seen) == {(0.03, 0.8)}, sorted(set(seen))
    assert [j.conditions["bias_v"] for j in jobs] == pytest.approx([0.012 - 0.005, 0.012 + 0.005], abs=2e-5)
