"""`noisecell fit` fits only the rows the regime detector called bistable, as `characterize` does.

The "rates" of a single-peaked record are crossings of one noisy level, not well-to-well switching; on
pbit_x4's 7 × 24 µs fixed grid the three single-peaked tail rows, fitted too, lifted τ(V50) from
89.8 to 99.7 ns (seed 1; seed 2: 88.9 → 100.9 ns). Here: synthetic telegraphs with known log-linear
rates at four bistable biases, plus two tail rows labelled single-peaked whose crossings come 4× as
often as the true switching would."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd

from noisecell.analysis import analyze_stream
from noisecell.analysis.synthetic import telegraph
from noisecell.model.fit import fit_sweep, fit_sweep_dir

DT = 1e-9
K50 = 2e6            # k_up = k_down at V50 = 0: τ(V50) = 1/(2·K50) = 250 ns
SCALE = 3e-3


def _row(v, factor, regime, rng, n=400_000):
    ku = K50 * math.exp(0.5 * v / SCALE) * factor
    kd = K50 * math.exp(-0.5 * v / SCALE) * factor
    est = analyze_stream(telegraph(n, DT, ku, kd, rng), sample_period_s=DT)
    return {**est.to_row(), "corner": "tt", "temp_c": 27.0, "vdd_v": 0.1, "bias_v": v, "status": "ok",
            "regime": regime, "seed": 1}


def _table(seed):
    rng = np.random.default_rng(seed)
    rows = [_row(v, 1.0, "bistable", rng) for v in (-3e-3, -1e-3, 1e-3, 3e-3)]
    rows += [_row(v, 4.0, "single_peaked", rng) for v in (-7.5e-3, 7.5e-3)]
    return pd.DataFrame(rows)


def test_single_peaked_rows_are_not_fitted():
    df = _table(5)
    tau_true = 1 / (2 * K50)
    only = fit_sweep(df, regimes=("bistable",), require_markov=False)["conditions"][0]
    ref = fit_sweep(df[df["regime"] == "bistable"], require_markov=False)["conditions"][0]
    every = fit_sweep(df, require_markov=False)["conditions"][0]
    t, (lo, hi) = only["tau"]["tau_at_v50_s"], only["tau"]["tau_at_v50_ci95_s"]
    assert t == ref["tau"]["tau_at_v50_s"]
    assert only["goodness_of_fit"]["n_points"] == 4 and every["goodness_of_fit"]["n_points"] == 6
    # the bistable rows' fit covers the truth (95 % CI; fixed seed)
    assert lo <= tau_true <= hi, (t, lo, hi)
    # with the tails fitted too the straight lines are pulled by rates 4x too high: tau(V50) leaves its CI
    assert not lo <= every["tau"]["tau_at_v50_s"] <= hi, (every["tau"]["tau_at_v50_s"], lo, hi)


def test_no_row_of_the_regime_is_a_one_line_error():
    import pytest

    from noisecell.errors import InputError

    df = _table(6)
    df["regime"] = "stuck"
    with pytest.raises(InputError, match="no row of regime bistable"):
        fit_sweep(df, regimes=("bistable",), what="sweep-x")


def test_fit_command_defaults_to_bistable_rows():
    assert inspect.signature(fit_sweep_dir).parameters["regimes"].default == ("bistable",)
    import argparse

    from noisecell.commands import fit as fit_cmd

    p = argparse.ArgumentParser()
    fit_cmd.add_arguments(p)
    assert p.parse_args(["d", "--out", "m.json"]).all_regimes is False
    assert p.parse_args(["d", "--out", "m.json", "--all-regimes"]).all_regimes is True
