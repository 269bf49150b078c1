"""The supply-window bracketing and the flip criterion's power (spice_models/design/chain_supply_window.py)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spice_models" / "design"))

import chain_supply_window as W  # noqa: E402


def _truth(lo, hi):
    calls = []

    def run(v):
        calls.append(v)
        return lo <= v <= hi

    return run, calls


def test_bracket_edges_finds_a_known_interval_to_the_stated_resolution():
    run, calls = _truth(0.2213, 0.2871)
    e = W.bracket_edges(0.240, 0.012, 0.15, 0.85, 10, run, centre_ok=True, bisect=3)
    for side, edge in (("low", 0.2213), ("high", 0.2871)):
        inside, outside, res = (e[side][k] for k in ("last_telegraphing_v", "first_failing_v", "resolution_v"))
        assert res == pytest.approx(0.012 / 8, rel=1e-9, abs=0)
        assert min(inside, outside) <= edge <= max(inside, outside)  # the true edge is bracketed
        assert abs(inside - outside) == pytest.approx(res, rel=1e-9, abs=0)
        assert run(inside) and not run(outside)
    # below: 228 in, 216 out + 3 halvings; above: 252/264/276 in, 288 out + 3; the 4 run()s of the loop
    assert len(calls) == (2 + 3) + (4 + 3) + 4


def test_bracket_edges_reports_why_a_side_is_open():
    run, _ = _truth(0.0, 10.0)
    e = W.bracket_edges(0.5, 0.1, 0.15, 0.85, 10, run, centre_ok=True, bisect=2)
    assert e["low"]["first_failing_v"] == "supply range end" and e["low"]["resolution_v"] is None
    assert e["low"]["last_telegraphing_v"] == pytest.approx(0.2, abs=1e-12)
    e = W.bracket_edges(0.5, 0.01, 0.15, 0.85, 3, run, centre_ok=True, bias_ok=lambda v: v > 0.48)
    assert e["low"]["first_failing_v"] == "DC offset outside the bias range"
    assert e["high"]["first_failing_v"] == "not within 3 steps"
    # the window is the interval contiguous with the centre: a centre that does not telegraph has none
    # (a telegraphing interval beyond a failing step is not joined to it), and nothing is bisected
    run, _ = _truth(0.6, 0.7)
    e = W.bracket_edges(0.5, 0.05, 0.15, 0.85, 10, run, centre_ok=False, bisect=2)
    for side in ("low", "high"):
        assert e[side]["last_telegraphing_v"] is None and e[side]["resolution_v"] is None
    assert e["high"]["first_failing_v"] == pytest.approx(0.55, abs=1e-12)


def test_flip_power_matches_a_simulated_poisson_count():
    rng = np.random.default_rng(7)
    dur = 24e-6
    for rate in (0.9, 1.2, 1.5):
        n = rng.poisson(rate * 24, 200_000)
        emp = np.mean(n >= 24)
        se = math.sqrt(emp * (1 - emp) / len(n))
        assert W.flip_power(rate, dur) == pytest.approx(emp, abs=5 * se)
    r90 = W.rate_for_power(0.9, dur)
    assert W.flip_power(r90, dur) == pytest.approx(0.9, abs=1e-6)
    assert 1.0 < r90 < 1.5  # 24 expected flips are not enough for 90 %: ~30 are
