"""Per-instance DC trim of a mismatched latch (noisecell.trim.instance_trim, issue 18) and the sweep-spec
``trim`` table that runs an instance at its own trim. DC analyses only (a fraction of a second each)."""
from __future__ import annotations

import math

import pytest

from noisecell import trim as T
from noisecell.cells import load_cell
from noisecell.errors import InputError
from noisecell.sweep.jobs import expand, mismatch_seed
from noisecell.sweep.spec import parse_spec


@pytest.fixture(scope="module")
def pbit():
    return load_cell("pbit")


@pytest.fixture(scope="module")
def jac(pbit):
    return T.balance_jacobian(pbit, "tt", 27.0)


def _halves(cell, r):
    kw = dict(bias_v=r.bias_v, mismatch_seed=r.mismatch_seed)
    a = T.dc_points(cell, "tt", 27.0, [(r.trim_v, r.vdd_v)], forced="v_outb", **kw)[0]
    b = T.dc_points(cell, "tt", 27.0, [(r.trim_v, r.vdd_v)], forced="v_out", **kw)[0]
    return a, b


def test_a_mismatched_instance_is_balanced_symmetric_and_at_the_design_gain(pbit, jac):
    ms = mismatch_seed(2, 1)
    # at the nominal trim and zero bias this instance is far from balance (the reason for the trim)
    stored, vdd0 = T.trimmed_point(pbit, "tt", 27.0)
    a0 = T.dc_points(pbit, "tt", 27.0, [(stored["VGP"], vdd0)], mismatch_seed=ms, forced="v_outb")[0]
    assert abs(a0.vm_frac - 0.5) > 0.05
    r = T.instance_trim(pbit, "tt", 27.0, mismatch_seed=ms, jacobian=jac)
    assert r.ok, r.message
    # an independent evaluation at the result: both halves switch at mid-rail, at the same input
    # (|Δ| well inside the tolerances the solver stops at: 2e-4 of VDD), at the design loop gain
    a, b = _halves(pbit, r)
    assert abs(0.5 * (a.vm_frac + b.vm_frac) - 0.5) < 5e-4 and abs(a.vm_frac - b.vm_frac) < 5e-4
    assert math.sqrt(a.gain * b.gain) == pytest.approx(T.balance_spec(pbit).gain_target, rel=3e-3)
    lo, hi = pbit.bias.range_v
    assert lo < r.bias_v < hi and r.bias_v != 0.0
    # the Broyden updates keep it cheap: a handful of evaluations, not a Jacobian per step
    assert r.evaluations <= 12


def test_an_instance_whose_offset_is_beyond_the_bias_range_is_refused_with_the_reason(pbit, jac):
    r = T.instance_trim(pbit, "tt", 27.0, mismatch_seed=mismatch_seed(2, 0), jacobian=jac)
    assert not r.ok and "VB beyond the cell's range" in r.message
    # the bias sits at the range end it pushed against, where the halves still differ
    assert abs(r.bias_v) == pytest.approx(0.4) and abs(r.vm_fracs[0] - r.vm_fracs[1]) > 1e-3


def test_sweep_trim_table_sets_the_trim_of_every_point_and_is_checked(pbit):
    base = {"cell": "pbit", "duration": "1us", "grid": {"bias": [0.0], "mismatch_instances": 1}}
    (job,) = expand(parse_spec({**base, "trim": {"VGP": "-44.8mV"}}), pbit)
    assert job.conditions["trim_json"] == '{"VGP": -0.0448}'
    assert dict(job.sim_job.params)["VGP"] == pytest.approx(-0.0448)
    (plain,) = expand(parse_spec(base), pbit)
    assert dict(plain.sim_job.params)["VGP"] == pytest.approx(T.trimmed_point(pbit, "tt", 27.0)[0]["VGP"])
    # a spec without the key keeps its canonical form (old sweep folders resume)
    assert "trim" not in parse_spec(base).to_dict()
    with pytest.raises(InputError, match="no such trim input"):
        expand(parse_spec({**base, "trim": {"VXX": 0.1}}), pbit)
    with pytest.raises(InputError, match="VGP"):
        expand(parse_spec({**base, "trim": {"VGP": 5.0}}), pbit)      # outside [trim.VGP] range_v
