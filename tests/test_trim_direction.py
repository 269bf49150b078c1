"""trim_cell's supply search direction: a latch lowers the supply when a check is too slow or
frozen (more supply = more barrier), a ``faster_with_supply`` cell (pbit_x1: an amplified-noise
chain, no positive feedback) raises it. The DC stages and the transient check are replaced by
synthetic ones (no ngspice), so the test is about the search logic alone: every check reports a
bistable, centred record with 0.5 flips/µs (too slow for the 1 flip/µs target), and the supplies the
search visits must move monotonically in the cell's direction, by the documented step sizes.
"""
from __future__ import annotations

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

    monkeypatch.setattr(T, "balanced_gain_point", lambda cell, corner, temp_c, **kw: fake_point(cell, corner, temp_c, 0.3))
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
    # latch: down by VDD_STEP each time; chain: up by SLOW_VDD_STEP (the exact factors, to 1e-12)
    want = 1 + T.SLOW_VDD_STEP if faster else 1 - T.VDD_STEP
    assert ratios == pytest.approx([want] * 3, rel=1e-12)


def test_faster_with_supply_must_be_boolean(tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(ROOT / "spice_models" / "pbit_x1", d)
    toml = d / "cell.toml"
    toml.write_text(toml.read_text().replace("faster_with_supply = true", 'faster_with_supply = "yes"'))
    from noisecell.errors import InputError
    with pytest.raises(InputError):
        T.balance_spec(load_cell(str(d)))
