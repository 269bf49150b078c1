"""trim_cell's supply search direction: a latch lowers the supply when a check is too slow or
frozen (more supply = more barrier), a ``faster_with_supply`` cell (pbit_x1: an amplified-noise
chain, no positive feedback) raises it. The DC stages and the transient check are replaced by
synthetic ones (no ngspice), so the test is about the search logic alone: every check reports a
bistable, centred record with 0.5 flips/µs (too slow for the 1 flip/µs target), and the supplies the
search visits must move monotonically in the cell's direction, by the documented step sizes.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from noisecell import trim as T
from noisecell.cells import load_cell

ROOT = Path(__file__).resolve().parents[1]


def _cell(tmp_path, faster: bool):
    d = tmp_path / ("chain" if faster else "latchlike")
    shutil.copytree(ROOT / "spice_models" / "pbit_x1", d)
    toml = d / "cell.toml"
    text = toml.read_text()
    text = text.replace("faster_with_supply = true", f"faster_with_supply = {'true' if faster else 'false'}")
    toml.write_text(text)
    (d / "trims.json").unlink(missing_ok=True)
    return load_cell(str(d))


@pytest.fixture
def synthetic(monkeypatch):
    seen: list[float] = []
    state = {"regime": "bistable", "p1": 0.5}

    def fake_point(cell, corner, temp_c, vdd_v=0.3, **kw):
        return T.DcPoint(trim_v=0.07, vdd_v=vdd_v, vm_frac=0.5, gain=4.85)

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, **kw):
        seen.append(vdd_v)
        # P(1) = 0.5 exactly with 10 transitions: centred, bistable, but 0.5 flips/µs over 20 µs
        p = state["p1"]
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=p,
                           p1_se=0.158 if 0 < p < 1 else float("nan"), flips_per_us=0.5, regime=state["regime"],
                           regime_detail="synthetic", power_w=1e-9,
                           energy_per_flip_j=2e-15)

    # from 0.2 V, so four checks fit in pbit_x1's 0.5 V supply range with the chain's current steps
    monkeypatch.setattr(T, "balanced_gain_point", lambda cell, corner, temp_c, **kw: fake_point(cell, corner, temp_c, 0.2))
    monkeypatch.setattr(T, "balance", lambda cell, corner, temp_c, vdd_v, **kw: fake_point(cell, corner, temp_c, vdd_v))
    monkeypatch.setattr(T, "check", fake_check)
    state["seen"] = seen
    return state


@pytest.mark.parametrize("faster", [True, False])
@pytest.mark.parametrize("regime, p1", [("bistable", 0.5), ("stuck", 0.0)])
def test_too_slow_check_moves_supply_the_cells_way(tmp_path, synthetic, faster, regime, p1):
    synthetic["regime"], synthetic["p1"] = regime, p1
    cell = _cell(tmp_path, faster)
    assert T.balance_spec(cell).faster_with_supply is faster
    res = T.trim_cell(cell, "tt", 27.0, duration_s=20e-6, max_iterations=4)
    assert not res.ok
    seen = synthetic["seen"]
    assert len(seen) == 4
    ratios = [b / a for a, b in zip(seen, seen[1:])]
    if faster:  # chain: up by the current-restoring step for 0.5 of the 1 flip/µs target, each time
        steps = [b - a for a, b in zip(seen, seen[1:])]
        assert steps == pytest.approx([T.slow_supply_step(a, 0.5, 1.0, 27.0) for a in seen[:-1]], rel=1e-12)
    else:  # latch: down by VDD_STEP each time (the exact factor, to 1e-12)
        assert ratios == pytest.approx([1 - T.VDD_STEP] * 3, rel=1e-12)


def test_slow_supply_step_restores_the_current():
    from noisecell.noise import thermal_voltage
    # 0.5 of a 1 flip/µs target with a 1.5x margin: a current factor of 3 = 2 n V_T ln 3 of supply
    assert T.slow_supply_step(0.3, 0.5, 1.0, 27.0) == pytest.approx(2 * 1.5 * thermal_voltage(27.0) * math.log(3.0))
    # colder: a smaller V_T, the same current factor needs less supply
    assert T.slow_supply_step(0.3, 0.5, 1.0, -40.0) < T.slow_supply_step(0.3, 0.5, 1.0, 27.0)
    # a frozen record asks for the capped factor; a nearly fast one for at least SLOW_VDD_STEP
    assert T.slow_supply_step(0.3, 0.0, 1.0, 27.0) == pytest.approx(2 * 1.5 * thermal_voltage(27.0) * math.log(30.0))
    assert T.slow_supply_step(0.3, 0.99, 1.0, 27.0) == pytest.approx(T.SLOW_VDD_STEP * 0.3)


def test_faster_with_supply_must_be_boolean(tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(ROOT / "spice_models" / "pbit_x1", d)
    toml = d / "cell.toml"
    toml.write_text(toml.read_text().replace("faster_with_supply = true", 'faster_with_supply = "yes"'))
    from noisecell.errors import InputError
    with pytest.raises(InputError):
        T.balance_spec(load_cell(str(d)))


@pytest.mark.parametrize("faster", [True, False])
def test_single_level_raises_supply_by_the_cells_gain_step(tmp_path, monkeypatch, faster):
    """A fast but single-peaked check (one level around the threshold: too little gain/barrier)
    raises the supply of both kinds of cell: a chain by CHAIN_GAIN_STEP (no window to find), a latch by
    VDD_STEP (its bistable window is a few % wide)."""
    seen: list[float] = []

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, **kw):
        seen.append(vdd_v)
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=0.5, p1_se=0.05,
                           flips_per_us=5.0, regime="single_peaked", regime_detail="synthetic", power_w=1e-9,
                           energy_per_flip_j=2e-16)

    pt = (lambda v: T.DcPoint(trim_v=0.07, vdd_v=v, vm_frac=0.5, gain=4.85))
    monkeypatch.setattr(T, "balanced_gain_point", lambda cell, corner, temp_c, **kw: pt(0.2))
    monkeypatch.setattr(T, "balance", lambda cell, corner, temp_c, vdd_v, **kw: pt(vdd_v))
    monkeypatch.setattr(T, "check", fake_check)
    T.trim_cell(_cell(tmp_path, faster), "tt", 27.0, duration_s=20e-6, max_iterations=3)
    want = 1 + (T.CHAIN_GAIN_STEP if faster else T.VDD_STEP)
    assert [b / a for a, b in zip(seen, seen[1:])] == pytest.approx([want] * 2, rel=1e-12)
