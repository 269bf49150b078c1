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
    # the table differs across these conditions (72 mV at -40 °C vs ~130 mV at 85 °C at tt)
    assert len(vdds) == 4


def test_explicit_supply_axis_and_use_trim_false_win():
    cell = load_cell("pbit")
    jobs = expand(parse_spec({**SPEC, "grid": {**SPEC["grid"], "vdd": [0.1]}}), cell)
    assert {j.conditions["vdd_v"] for j in jobs} == {0.1}
    jobs = expand(parse_spec({**SPEC, "use_trim": False}), cell)
    assert {j.conditions["vdd_v"] for j in jobs} == {cell.supplies[cell.main_supply].nominal_v}
