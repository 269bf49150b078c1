"""The pilot's stages (report/procedures/pilot.py): a mid-centred first stage, the whole range only
when needed, narrowing onto a steep crossing; simulated against logistic P(1) truths."""
from __future__ import annotations

import numpy as np
import pytest

from noisecell.report.procedures.pilot import FIRST_SPAN, first_grid, next_stage, pilot_window

MARGIN, NUM = 3.0, 7


def plan(lo, hi, mid, v50, scale, max_stages=4):
    """The stages the pilot runs on a cell whose P(1) is exactly logistic((V − v50)/scale) (no
    sampling noise: the planning is what is tested), and the window it ends with."""
    grid, stages = first_grid(lo, hi, mid, NUM), []
    seen_v, seen_p = [], []
    for k in range(max_stages):
        stages.append(grid)
        seen_v += grid
        seen_p += [float(1 / (1 + np.exp(-(v - v50) / scale))) for v in grid]
        window, note = pilot_window(np.array(seen_v), np.array(seen_p), MARGIN, lo, hi)
        grid, _ = next_stage(grid, k == 0, window, note, lo, hi, NUM)
        if grid is None:
            break
    return stages, window


def test_first_grid_is_mid_centred_and_geometric():
    g = first_grid(-0.4, 0.4, 0.0, 7)
    assert g == [-0.04, -0.0133333333, -0.00444444444, 0.0, 0.00444444444, 0.0133333333, 0.04]
    assert max(abs(x) for x in g) == pytest.approx(FIRST_SPAN * 0.4)
    # an off-centre mid near an end: clipped, duplicates merged
    g = first_grid(-0.01, 0.4, 0.0, 7)
    assert min(g) == -0.01 and len(g) == len(set(g))


def test_pbit_like_sigmoid_takes_one_stage_and_no_far_tail_record():
    # pbit: ±0.4 V range, V50 −0.3 mV, scale 2.9 mV (tt 27 °C): the first stage's ±4.4 mV points sit
    # at P(1) ≈ 0.2 / 0.8, so its logit line gives V50 and the scale at once; nothing beyond ±40 mV
    # (the old evenly spaced first stage simulated ±0.4 V, ±0.27 V, ... and needed 4 stages)
    stages, window = plan(-0.4, 0.4, 0.0, -0.3e-3, 2.9e-3)
    assert len(stages) == 1 and max(abs(v) for v in stages[0]) <= 0.04 + 1e-12
    lo, hi, _ = window
    assert lo <= -0.3e-3 - 2.9e-3 * MARGIN + 1e-9 and hi >= -0.3e-3 + 2.9e-3 * MARGIN - 1e-9
    assert hi - lo < 0.03


def test_pbit_x2_like_sigmoid_inside_a_wide_range():
    # pbit_x2: ±0.3 V, logistic scale ≈ 2 mV (5–95 % width 11.8 mV), V50 a few mV off mid
    stages, window = plan(-0.3, 0.3, 0.0, 4e-3, 2e-3)
    assert len(stages) <= 2 and all(max(abs(v) for v in s) <= 0.03 + 1e-12 for s in stages)
    assert window[0] < 4e-3 < window[1] and window[1] - window[0] < 0.05


def test_crossing_far_from_mid_falls_back_to_the_whole_range():
    # V50 at +150 mV (an untrimmed condition): the first stage sees P(1) ≈ 0 everywhere, the second
    # is the evenly spaced whole range, then the pilot narrows onto the crossing
    stages, window = plan(-0.4, 0.4, 0.0, 0.15, 2.9e-3)
    assert stages[1] == [float(f"{x:.9g}") for x in np.linspace(-0.4, 0.4, NUM)]
    assert len(stages) >= 3 and window is not None and window[0] < 0.15 < window[1]


def test_wide_sigmoid_gets_the_whole_range():
    # pbit_cs-like: ±20 mV range, scale 4 mV, so the first stage (±2 mV) sees only P(1) 0.38–0.62;
    # its window (V50 ± 3 scales) reaches beyond it, and the whole range is simulated next
    stages, window = plan(-0.02, 0.02, 0.0, -0.9e-3, -4e-3)
    assert len(stages) == 2 and stages[1][0] == -0.02 and stages[1][-1] == 0.02


def test_a_condition_pilot_with_its_own_start_window_never_jumps_to_the_whole_range(tmp_path, monkeypatch):
    """A condition's pilot (start_window: the nominal's window widened) whose sigmoid is wider than that
    window is located by the stage's own fit; the mid-centred first stage's "whole range next" step
    would lay 7 records over pbit_x4's −0.2 … +0.3 V, where all but one are stuck (session 24, tt −40 °C)."""
    from types import SimpleNamespace

    import pandas as pd

    import noisecell.sweep as sweep_pkg
    from noisecell.cells import load_cell
    from noisecell.report.procedures.pilot import run_pilot

    v50 = 0.5e-3
    scales = [7e-3]                      # a sigmoid wider than the ±20 mV start window's 3-scale margin
    grids = []

    def fake_run_sweep(spec, out, **kw):
        b = np.asarray(spec.bias_v, float)
        grids.append(b)
        p = 1 / (1 + np.exp(-(b - v50) / scales[-1]))
        return SimpleNamespace(total=len(b), failed=0, dataframe=pd.DataFrame({
            "status": "ok", "bias_v": b, "p1": p, "p1_ci95_lo": np.clip(p - 0.05, 0, 1),
            "p1_ci95_hi": np.clip(p + 0.05, 0, 1), "regime": np.where((p > 0.02) & (p < 0.98), "bistable", "stuck")}))

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake_run_sweep)
    cell = load_cell("pbit_x4")
    spec = SimpleNamespace(pilot={"num": 7, "duration": "3us", "margin": 3}, shared={"noise_step": "0.4ns"},
                           cell="pbit_x4", source="test")
    start = (-19.5e-3, 20.4e-3)
    res = run_pilot(spec, cell, tmp_path, 1, False, corner="tt", temp_c=-40.0, prefix="pilot-tt-40C",
                    start_window=start)
    for g in grids:
        assert g.min() >= start[0] - 1e-12 and g.max() <= start[1] + 1e-12
    assert res.window is not None and res.window[0] < v50 < res.window[1]
    # without a start window (the nominal pilot: ±30 mV first stage) a sigmoid wider than the first
    # stage still gets the whole range next
    grids.clear()
    scales.append(15e-3)
    run_pilot(spec, cell, tmp_path / "nominal", 1, False)
    assert min(g.min() for g in grids) == pytest.approx(cell.bias.range_v[0], abs=1e-9)
