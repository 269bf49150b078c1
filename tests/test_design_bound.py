"""The information bound of the datasheet benchmark (noisecell.design.optimal_design / design_time)."""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from noisecell.design import Targets, design_time, information_per_second, optimal_design, predicted_ratios
from noisecell.design_runner import SyntheticRunner, SyntheticTruth


CELL = SyntheticRunner()
TRUTH = SyntheticTruth(CELL)
TARGETS = Targets(0.5e-3, 0.05, 0.10)
GRID = CELL.v50_v + CELL.scale_v * np.linspace(-2.6, 2.6, 27)


def test_design_time_is_the_time_at_which_the_predicted_ratios_reach_one():
    # independent route: predicted_ratios of T·M(w) (the design's own prediction) has max ratio 1 at T
    w = np.linspace(1, 2, len(GRID))
    t = design_time(TRUTH, GRID, w, TARGETS)
    m = sum(wi / w.sum() * information_per_second(TRUTH, float(v)) for v, wi in zip(GRID, w))
    r = predicted_ratios(SimpleNamespace(dispersion=1.0), t * m, TARGETS)
    assert max(r.values()) == pytest.approx(1.0, rel=1e-9)
    # the dispersion multiplies the time
    assert design_time(TRUTH, GRID, w, TARGETS, 1.3) == pytest.approx(1.3 * t, rel=1e-12)


def test_bound_beats_every_other_allocation_and_matches_a_brute_force_search():
    t, w = optimal_design(TRUTH, GRID, TARGETS)
    assert w.sum() == pytest.approx(1) and np.all(w >= 0)
    assert design_time(TRUTH, GRID, w, TARGETS) == pytest.approx(t)
    rng = np.random.default_rng(5)
    for _ in range(200):                       # random allocations on the same biases
        assert design_time(TRUTH, GRID, rng.dirichlet(np.full(len(GRID), 0.3)), TARGETS) >= t * (1 - 1e-6)
    # brute force over every 2- and 3-point support of a coarser grid, weights on a 1/20 lattice
    coarse = GRID[::2]
    best = math.inf
    for k in (2, 3):
        for idx in itertools.combinations(range(len(coarse)), k):
            for ws in itertools.product(range(1, 20), repeat=k - 1):
                if sum(ws) >= 20:
                    continue
                ww = np.array(list(ws) + [20 - sum(ws)], float)
                best = min(best, design_time(TRUTH, coarse[list(idx)], ww, TARGETS))
    # the coarse grid is a subset of GRID: the bound is at most the brute force's best, and the
    # brute force (lattice 1/20) gets within a few per cent of it
    assert t <= best * (1 + 1e-6)
    assert best <= 1.05 * t, (best, t)


def test_bound_puts_the_scale_information_at_the_telegraph_edge():
    # the scale target binds; its information per second grows out to ~4 scales, so on V50 ± 2.6
    # scales the minimax allocation sits at both ends, and widening the window lowers the bound
    t, w = optimal_design(TRUTH, GRID, TARGETS)
    d = (GRID - CELL.v50_v) / CELL.scale_v
    assert w[np.abs(d) > 2.4].sum() > 0.95
    wide = CELL.v50_v + CELL.scale_v * np.linspace(-3.2, 3.2, 33)
    assert optimal_design(TRUTH, wide, TARGETS)[0] < t
    # the fixed design of the benchmark (5 points over ±1.35 scales) needs ~4.5x the bound
    fixed = CELL.v50_v + CELL.scale_v * 1.35 * np.linspace(-1, 1, 5)
    assert 3.0 < design_time(TRUTH, fixed, np.ones(5), TARGETS) / t < 6.0
