"""trim_cell's upper flip-rate bound (``max_flips_per_us``, `noisecell trim --max-flips`).

pbit_x5's hot/fast pairs (ff 85, sf 27, sf 85 °C) were trimmed at the design gain with no upper bound
and came out at 87-112 flips/µs (τ 1.5-2.2 ns, 40-50x the nominal's 80 ns, at 1.3-6.7 µW): their
records are renewal, not Markov, telegraphs and an array of such cells has no common τ. With a bound a
too-fast check fails: a chain (``faster_with_supply``) is slowest at the design gain's supply, so the
aux value fails and the next (more reverse well bias) is tried; a chain whose too-slow and too-fast
supplies bracket the window is bisected; a latch gets more supply (more barrier). DC stages and the
transient check are synthetic (no ngspice): the flip rate is a known function of VNW and VDD.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from noisecell import trim as T
from noisecell.cells import load_cell
from noisecell.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _cell(tmp_path, faster: bool = True, aux="[0.1, 0.0, 0.3, 0.6]"):
    d = tmp_path / "x2"
    shutil.copytree(ROOT / "spice_models" / "pbit_x2", d)
    (d / "trims.json").unlink(missing_ok=True)
    t = (d / "cell.toml").read_text().replace("aux_values = [0.0, -0.1, 0.3, 0.6]", f"aux_values = {aux}")
    if not faster:
        t = t.replace("faster_with_supply = true", "faster_with_supply = false")
    (d / "cell.toml").write_text(t)
    return load_cell(str(d))


def _fake(monkeypatch, flips, regime=lambda vnw, vdd: "bistable"):
    """DC point at 0.5 V for every VNW; checks report ``flips(vnw, vdd)`` flips/µs, centred P(1)."""
    seen = []
    monkeypatch.setattr(T, "balanced_gain_point",
                        lambda cell, corner, temp_c, fixed_trim=None, **kw: T.DcPoint(0.2, 0.5, 0.5, 5.2))
    monkeypatch.setattr(T, "balance",
                        lambda cell, corner, temp_c, vdd_v, fixed_trim=None, **kw: T.DcPoint(0.2, vdd_v, 0.5, 5.2))

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, fixed_trim=None, **kw):
        vnw = (fixed_trim or {}).get("VNW", 0.0)
        seen.append((vnw, round(vdd_v, 6)))
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=0.5, p1_se=0.03,
                           flips_per_us=flips(vnw, vdd_v), regime=regime(vnw, vdd_v), regime_detail="synthetic",
                           power_w=1e-8, energy_per_flip_j=1e-15)

    monkeypatch.setattr(T, "check", fake_check)
    return seen


# more reverse well bias, fewer flips (pbit_x5 ff 85 C measured: VNW 0.3/0.45/0.6/0.8 V -> 96/80/58/45 flips/µs)
RATE = {0.1: 110.0, 0.0: 140.0, 0.3: 70.0, 0.6: 35.0}


def test_a_too_fast_chain_goes_on_to_a_slower_aux_value(tmp_path, monkeypatch):
    cell = _cell(tmp_path)
    seen = _fake(monkeypatch, lambda vnw, vdd: RATE[vnw])
    res = T.trim_cell(cell, "ff", 85.0, duration_s=1e-6, max_flips_per_us=50.0)
    assert res.ok and res.aux_trim_v == {"VNW": 0.6} and res.check.flips_per_us == 35.0
    # one check per too-fast aux value (the design gain's supply is the chain's slowest point), in order
    assert seen == [(0.1, 0.5), (0.0, 0.5), (0.3, 0.5), (0.6, 0.5)]
    assert "VNW = 0.3 V failed" in res.message and "70 flips/µs" in res.message and "1-50 flips/µs" in res.message
    # no bound (the old behaviour): the first aux value passes at 110 flips/µs
    seen.clear()
    res0 = T.trim_cell(cell, "ff", 85.0, duration_s=1e-6)
    assert res0.ok and res0.aux_trim_v == {"VNW": 0.1} and seen == [(0.1, 0.5)]


def test_no_aux_value_slow_enough_fails_and_says_so(tmp_path, monkeypatch):
    cell = _cell(tmp_path, aux="[0.1, 0.3]")
    _fake(monkeypatch, lambda vnw, vdd: RATE[vnw])
    res = T.trim_cell(cell, "sf", 27.0, duration_s=1e-6, max_flips_per_us=50.0)
    assert not res.ok and res.aux_trim_v == {"VNW": 0.3}
    assert "too fast at the design gain's supply" in res.message and "VNW = 0.1 V failed" in res.message
    row = T.row_from_result(res)
    assert row["ok"] is False and row["flips_per_us"] == 70.0


def test_a_chain_bracketed_between_too_slow_and_too_fast_is_bisected(tmp_path, monkeypatch):
    """Too slow at the design gain's 0.5 V, too fast after the current step up: the next supply is the
    middle of the two, where the synthetic rate (rising with VDD) is inside the window."""
    cell = _cell(tmp_path, aux="[0.1]")
    seen = _fake(monkeypatch, lambda vnw, vdd: 0.5 if vdd < 0.51 else (80.0 if vdd > 0.55 else 20.0))
    res = T.trim_cell(cell, "ss", -40.0, duration_s=1e-6, min_flips_per_us=1.0, max_flips_per_us=50.0,
                      max_iterations=4)
    v = [x[1] for x in seen]
    assert len(v) == 3 and v[1] > 0.55 and v[2] == pytest.approx(0.5 * (v[0] + v[1]), rel=1e-9, abs=0)
    assert res.ok and res.check.flips_per_us == 20.0


def test_a_too_fast_latch_gets_more_supply(tmp_path, monkeypatch):
    cell = _cell(tmp_path, faster=False, aux="[0.1]")
    seen = _fake(monkeypatch, lambda vnw, vdd: 100.0 if vdd < 0.505 else 10.0)
    res = T.trim_cell(cell, "tt", 85.0, duration_s=1e-6, max_flips_per_us=50.0, max_iterations=3)
    assert res.ok and [x[1] for x in seen] == [0.5, round(0.5 * (1 + T.VDD_STEP), 6)]


@pytest.mark.parametrize("lo, hi", [(10.0, 10.0), (20.0, 5.0)])
def test_an_empty_window_is_refused(tmp_path, lo, hi):
    with pytest.raises(InputError, match="flip-rate window"):
        T.trim_cell(_cell(tmp_path), "tt", 27.0, min_flips_per_us=lo, max_flips_per_us=hi)


def test_cli_refuses_max_flips_not_above_min_flips(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "noisecell", "trim", "pbit_x5", "--min-flips", "10",
                        "--max-flips", "5"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "--max-flips" in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_the_gain_crossing_next_to_the_balance_edge_is_found(tmp_path, monkeypatch):
    """pbit_x5 fs -40 C at VNW -0.1 V: no balance at the grid's 150 mV, gain 4.27 at 290 mV (target
    3.8), so the 6-point supply grid saw no crossing and the aux value was skipped. Synthetic DC:
    balance exists from 200 mV up, gain = target - 0.8 + 10 (VDD - 0.2 V) for VDD in V, so the design
    gain is reached at 280 mV, between the grid's 150 (unbalanced) and 290 mV; before the fix: None."""
    cell = _cell(tmp_path)
    gain_target = T.balance_spec(cell).gain_target
    calls = []

    def fake_balance(cell, corner, temp_c, vdd_v, fixed_trim=None, **kw):
        calls.append(vdd_v)
        if vdd_v < 0.2:
            return None
        return T.DcPoint(trim_v=0.1, vdd_v=vdd_v, vm_frac=0.5, gain=gain_target - 0.8 + 10.0 * (vdd_v - 0.2))

    monkeypatch.setattr(T, "balance", fake_balance)
    grid = [0.15, 0.29, 0.43, 0.57, 0.71, 0.85]
    dc = T.balanced_gain_point(cell, "fs", -40.0, vdd_grid=grid)
    assert dc is not None
    want = 0.28
    # the gain is linear in VDD: the interpolated root is exact up to float rounding
    assert dc.vdd_v == pytest.approx(want, rel=1e-9, abs=0) and dc.gain == pytest.approx(gain_target, rel=1e-9, abs=0)
    # the refinement only ran between 0.15 and 0.29 V (the balance edge), EDGE_POINTS supplies
    assert sum(0.15 < v < 0.29 for v in calls[len(grid):len(grid) + T.EDGE_POINTS]) == T.EDGE_POINTS
