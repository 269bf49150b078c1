"""Per-instance DC trim of a readout chain (noisecell.trim.instance_trim, ``[balance] offset = "readout"``,
pbit_x5; issue 17). ngspice is replaced by a synthetic DC model whose instances have a known balancing
trim, supply and readout offset: the solver must find them, stay inside the ranges and the devices'
ratings, and report an instance whose offset lies outside the bias range with the readout it saw. One
real pbit_x5 instance is solved too (a few DC processes, < 2 s)."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from noisecell import trim as T
from noisecell.cells import load_cell

X5 = Path(__file__).resolve().parents[1] / "spice_models" / "pbit_x5"
#: the synthetic nominal (no mismatch seed) balances at pbit_x5's stored tt 27 °C trim; every instance at
#: its own (VGP, VDD) with its own readout offset (V). Seeds 11-13 in range, 14 below it, 15 above it.
NOMINAL = {"t": None, "v": None, "b": 0.0}
INSTANCES = {11: {"t": 0.0412, "v": 0.2461, "b": 0.0625}, 12: {"t": -0.0150, "v": 0.2203, "b": -0.1432},
             13: {"t": 0.0600, "v": 0.2550, "b": 0.2711}, 14: {"t": 0.0300, "v": 0.2400, "b": -0.26},
             15: {"t": 0.0300, "v": 0.2400, "b": 0.35}, 16: {"t": 0.0300, "v": 0.2400, "b": -0.19}}
G0 = 3.75          # the stage gain every instance has at its own (t, v): the nominal's at its stored trim
GC0 = 52.0         # the chain gain (noise node x to the readout) likewise; with [balance] noise_node the one held
SLOPE = 30.0       # d readout / d bias at the crossing (V/V)


def _truth(seed):
    return NOMINAL if seed is None else INSTANCES[seed]


def _stage(tr, t, v):
    """Switching point (fraction of VDD) and gain of the balance stage (z forced, w sensed) at (t, v)."""
    return 0.5 + 2.0 * (t - tr["t"]) - 0.5 * (v - tr["v"]), G0 * math.exp(6.0 * (v - tr["v"]) + 3.0 * (t - tr["t"]))


def _chain(tr, t, v):
    """Operating point of the noise node (V) and chain gain at (t, v): both at their nominal values (mid-rail,
    GC0) only at the instance's own (t, v)."""
    return (v * (0.5 + 0.3 * (t - tr["t"]) - 0.2 * (v - tr["v"])),
            GC0 * math.exp(12.0 * (v - tr["v"]) + 4.0 * (t - tr["t"])))


def _crossing(tr, t, v):
    return tr["b"] + 0.5 * (t - tr["t"]) + 0.3 * (v - tr["v"])


class FakeNgspice:
    """run_batch replacement: answers dc_points' forced-z transfers and readout_sweep's Vnw1 sweeps from
    the synthetic model, counting processes."""

    def __init__(self, cell):
        stored, vdd = T.trimmed_point(cell, "tt", 27.0)
        NOMINAL.update(t=stored["VGP"], v=vdd)
        self.calls = []

    def __call__(self, text, workdir, **kw):
        wd = Path(workdir)
        m = re.search(r"^\.options .*\bseed=(\d+)", text, re.M)
        seed = int(m.group(1)) if m else None
        tr = _truth(seed)
        par = {k: float(v) for ln in re.findall(r"^\.param .*$", text, re.M)
               for k, v in re.findall(r"\b(VDD|VB|VGP|VNW)=([-0-9.e+]+)", ln)}
        forced = re.search(r"^Vnc_force (\w+) ", text, re.M)
        self.calls.append((seed, "sweep" if not forced else "chain" if forced.group(1) == "x" else "force"))
        ctl = text.split(".control", 1)[1].splitlines()
        cur = dict(par)
        for ln in ctl:
            a = re.match(r"alterparam (\w+)=([-0-9.e+]+)", ln)
            if a:
                cur[a.group(1)] = float(a.group(2))
            d = re.match(r"dc (\S+) ([-0-9.e+]+) ([-0-9.e+]+) ([-0-9.e+]+)", ln)
            if d:
                src, lo, hi, step = d.group(1), *map(float, d.groups()[1:])
                xs = np.arange(lo, hi + 0.5 * step, step)
            w = re.match(r"wrdata (\S+) (.*)$", ln)
            if w:
                t, v = cur["VGP"], cur["VDD"]
                if src == "Vnc_force" and forced.group(1) == "x":
                    x0, gain = _chain(tr, t, v)
                    np.savetxt(wd / w.group(1), np.column_stack([xs, np.clip(-gain * (xs - x0), -0.11, 0.11)]))
                elif src == "Vnc_force":
                    assert forced.group(1) == "z"
                    frac, gain = _stage(tr, t, v)
                    vm = frac * v
                    col = np.clip(vm + gain * (vm - xs), 0.0, v)
                    np.savetxt(wd / w.group(1), np.column_stack([xs, col]))
                else:
                    assert src.lower() == "vnw1", src
                    b = xs - (v + cur["VNW"])
                    r = np.clip(SLOPE * (b - _crossing(tr, t, v)), -0.11, 0.11)
                    node = {"gp": t, "in": v / 2, "nw": v + cur["VNW"], "vdd": v, "w": v / 2, "x": v / 2, "y": v / 2,
                            "z": v / 2}
                    cols = [xs, r]
                    for vec in w.group(2).split()[1:]:
                        n = re.match(r"v\((\w+)\)", vec).group(1)
                        cols.append(xs if n == "nw1" else np.full_like(xs, node[n]))
                    np.savetxt(wd / w.group(1), np.column_stack(cols))
        return "ngspice done\n"

    def count(self, seed):
        return sum(1 for s, _ in self.calls if s == seed)


@pytest.fixture(params=["chain", "stage"])
def x5(tmp_path, monkeypatch, request):
    """pbit_x5 copy; "stage": without ``[balance] noise_node`` (the balance stage's gain is held)."""
    d = tmp_path / "x5"
    shutil.copytree(X5, d, ignore=shutil.ignore_patterns("characterisation"))
    if request.param == "stage":
        toml = d / "cell.toml"
        toml.write_text(toml.read_text().replace('noise_node = "x"', ""))
    cell = load_cell(str(d))
    fake = FakeNgspice(cell)
    monkeypatch.setattr(T, "run_batch", fake)
    T._NOMINAL_GAIN.clear()
    yield cell, fake
    T._NOMINAL_GAIN.clear()


def test_each_instance_gets_its_own_trim_supply_and_readout_offset(x5):
    cell, fake = x5
    chain = T.balance_spec(cell).noise_node == "x"
    assert T.nominal_stage_gain(cell, "tt", 27.0) == pytest.approx(G0, rel=1e-4)
    if chain:
        assert T.nominal_chain_gain(cell, "tt", 27.0) == pytest.approx(GC0, rel=1e-4)
    jac = T.balance_jacobian(cell, "tt", 27.0)
    assert jac.shape == (2, 2)
    for seed in (11, 12, 13):
        before = fake.count(seed)
        r = T.instance_trim(cell, "tt", 27.0, mismatch_seed=seed, jacobian=jac)
        tr = INSTANCES[seed]
        assert r.ok, r.message
        assert r.kind == "readout" and r.trim_param == "VGP" and r.aux_trim_v == {"VNW": pytest.approx(0.1, abs=0)}
        # the solver stops at |vm − ½| < 2e-4 and |ln g − ln G0| < 1e-3; the model's Jacobian bounds the
        # trim and supply errors that leaves to ~0.2 mV
        assert r.trim_v == pytest.approx(tr["t"], abs=3e-4) and r.vdd_v == pytest.approx(tr["v"], abs=3e-4)
        # chain: the noise node at mid-rail with the nominal chain gain; stage: the balance stage's
        assert abs(r.vm_fracs[0] - 0.5) < 2e-4 and abs(math.log(r.gains[0] / (GC0 if chain else G0))) < 1e-3
        x0, g = (_chain if chain else _stage)(tr, r.trim_v, r.vdd_v)
        assert (x0 / r.vdd_v if chain else x0) == pytest.approx(r.vm_fracs[0], abs=2e-5)
        # the offset: the readout crossing at the solved point, interpolated on the 0.25 mV sweep (exact for
        # a linear readout up to the solver's trim error times the crossing's sensitivity)
        assert r.bias_v == pytest.approx(_crossing(tr, r.trim_v, r.vdd_v), abs=1e-6)
        assert r.bias_v == pytest.approx(tr["b"], abs=3e-4)
        assert r.readout_slope == pytest.approx(SLOPE, rel=1e-6)
        # as cheap as the latch version: one process per evaluation (the chain's transfer, or the balance
        # stage's) and one readout sweep
        assert r.evaluations == fake.count(seed) - before <= 10
        kinds = [k for s, k in fake.calls if s == seed]
        assert kinds.count("sweep") == 1 and kinds.count("chain" if chain else "force") == r.evaluations - 1


def test_an_offset_outside_the_bias_range_is_reported_with_the_readout_seen(x5):
    cell, _ = x5
    jac = T.balance_jacobian(cell, "tt", 27.0)
    for seed, side, end in ((14, "below", -0.2), (15, "above", 0.3)):
        r = T.instance_trim(cell, "tt", 27.0, mismatch_seed=seed, jacobian=jac)
        assert not r.ok
        assert f"the offset lies {side} the bias range VB [-0.2, 0.3] V" in r.message, r.message
        assert r.bias_v == end
        # the balance itself was found; what is missing is bias range: the readout at both ends is given
        assert r.trim_v == pytest.approx(INSTANCES[seed]["t"], abs=3e-4)
        sign = 1 if side == "below" else -1
        assert r.readout_ends_v == (pytest.approx(sign * 0.11, abs=0), pytest.approx(sign * 0.11, abs=0))
        assert "readout +110.0 mV at VB -0.2 V" in r.message if side == "below" else "-110.0 mV at VB -0.2 V" in r.message
        assert r.to_dict()["readout_slope"] is None


def test_a_crossing_that_forward_biases_a_well_is_refused_by_the_rating(x5, tmp_path):
    """Widen the bias range below pbit_x5's forward limit: an instance crossing at VB = −0.19 V with VNW
    0.1 V is fine (stage 1's well 0.09 V below its source: inside the pfet's 0.1 V), one at −0.26 V is
    not (0.16 V forward) — the solver must refuse it although it lies inside the (widened) range."""
    cell, _ = x5
    toml = Path(cell.cell_dir) / "cell.toml"
    toml.write_text(toml.read_text().replace("range_v = [-0.2, 0.3]\nmid_v = 0.0", "range_v = [-0.3, 0.3]\nmid_v = 0.0"))
    wide = load_cell(str(cell.cell_dir))
    assert wide.bias.range_v == (-0.3, 0.3) or list(wide.bias.range_v) == [-0.3, 0.3]
    ok = T.instance_trim(wide, "tt", 27.0, mismatch_seed=16)
    assert ok.ok, ok.message
    bad = T.instance_trim(wide, "tt", 27.0, mismatch_seed=14)
    assert not bad.ok and "exceeds its rating" in bad.message and "XP1" in bad.message, bad.message
    assert bad.bias_v == pytest.approx(-0.26, abs=3e-4)


def test_the_rating_check_and_side_helpers():
    cell = load_cell(str(X5))
    vdd, vnw = 0.235, 0.1
    base = {"gp": 0.0245, "in": vdd / 2, "nw": vdd + vnw, "vdd": vdd, "w": vdd / 2, "x": vdd / 2, "y": vdd / 2, "z": vdd / 2}
    assert T.rating_violations(cell, {**base, "nw1": vdd + vnw - 0.2}) == []          # VNW + VB = −0.1: at the limit
    (v,) = T.rating_violations(cell, {**base, "nw1": vdd + vnw - 0.25})
    assert v.startswith("XP1 junction forward-biased by 0.15 V")
    assert T.rating_violations(cell, {}) == []
    assert T._side(0.1, 0.1, True) == "below" and T._side(0.1, 0.1, False) == "above"
    assert T._side(-0.1, -0.1, True) == "above" and T._side(-0.1, -0.1, False) == "below"
    assert T._side(-0.1, 0.1, True) is None and T._side(float("nan"), 0.1, True) is None


def test_bias_source_is_found_only_when_the_bias_acts_through_one_linear_source(tmp_path):
    cell = load_cell(str(X5))
    vals = T._cell_values(cell, corner="tt", temp_c=27.0, bias_v=0.0, vdd_v=0.235, trim=None, params=None)
    name, v0, k = T.bias_source(cell, vals)
    assert name == "Vnw1" and k == pytest.approx(1.0, abs=1e-12) and v0 == pytest.approx(0.235 + vals["VNW"], abs=1e-12)
    d = tmp_path / "x5b"
    shutil.copytree(X5, d, ignore=shutil.ignore_patterns("characterisation"))
    cir = d / "pbit_x5.cir"
    cir.write_text(cir.read_text().replace("Cw w 0 0.1f", "Cw w 0 0.1f\nVextra ex 0 {2*VB}\nRex ex 0 1meg"))
    other = load_cell(str(d))
    assert T.bias_source(other, vals) is None  # two sources: a sweep of one is not a sweep of the bias
    with pytest.raises(ValueError):
        T._eval_expr("VDD**2", {"VDD": 1.0})


def test_one_real_pbit_x5_instance():
    """ngspice itself, pbit_x5 instance mismatch_seed(instance_seed(2, 0), 0) at tt 27 °C: balanced, and an
    independent check at the result — the balance stage at mid-rail with the nominal stage gain, and the
    DC readout changing sign across the solved bias."""
    from noisecell.report.procedures.mismatch import instance_seed
    from noisecell.sweep.jobs import mismatch_seed

    cell = load_cell(str(X5))
    ms = mismatch_seed(instance_seed(2, 0), 0)
    r = T.instance_trim(cell, "tt", 27.0, mismatch_seed=ms, jacobian=T.balance_jacobian(cell, "tt", 27.0))
    assert r.ok, r.message
    # the chain (x forced, the readout sensed): x at mid-rail when the readout sits at its threshold, with the
    # nominal's chain gain (52.9 at tt 27 °C with the centred slope; this instance's stage-balanced trim alone
    # gave 29.5, x at 0.45 of VDD)
    g0 = T.nominal_chain_gain(cell, "tt", 27.0)
    assert 45 < g0 < 60
    c = T.chain_point(cell, "tt", 27.0, r.trim_v, r.vdd_v, bias_v=r.bias_v, mismatch_seed=ms, fixed_trim=r.aux_trim_v)
    assert abs(c.input_frac - 0.5) < 2e-4 and abs(math.log(c.gain / g0)) < 1e-3 and r.vdd_v > 0.26
    # at the stored trim this instance is unbalanced (why it is re-trimmed)
    stored, vdd0 = T.trimmed_point(cell, "tt", 27.0)
    d0 = T.dc_points(cell, "tt", 27.0, [(stored["VGP"], vdd0)], mismatch_seed=ms, fixed_trim={"VNW": stored["VNW"]})[0]
    assert abs(d0.vm_frac - 0.5) > 0.05
    lo, hi = (T.readout_dc(cell, "tt", 27.0, r.bias_v + s, trim_v=r.trim_v, vdd_v=r.vdd_v, mismatch_seed=ms,
                           fixed_trim=r.aux_trim_v) for s in (-1e-3, 1e-3))
    assert lo < 0 < hi
    # from the nominal Jacobian, as the mismatch procedure calls it: 7 processes measured
    assert r.evaluations <= 10
