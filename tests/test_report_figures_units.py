"""Issue 16 item 7: an empty τ-vs-bias panel labelled mV shows a mV axis; the ACF legend's τ is the
table's τ for the same point."""
import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from noisecell.report import figures as F
from noisecell.report.data import ExampleStream


def _points(regime):
    bias = np.linspace(-0.4, 0.4, 5)  # V, like pbit's ±0.4 V bias range
    return pd.DataFrame({"corner": "tt", "temp_c": 27.0, "vdd_v": 0.1, "bias_v": bias, "status": "ok",
                         "role": "fit", "instance": -1, "regime": regime, "fitted_regime": regime == "bistable",
                         "tau_s": np.where(regime == "bistable", 2e-7, np.nan), "tau_s_ci95_lo": 1e-7,
                         "tau_s_ci95_hi": 3e-7})


def test_empty_tau_panel_has_a_millivolt_axis():
    data = SimpleNamespace(points=_points(np.array(["single_peaked"] * 5)), fits=[], nominal=("tt", 27.0, 0.1))
    fig = F.fig_tau(data)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    # the ±0.4 V of simulated bias in mV: ±400 (the defect: matplotlib's default ±0.055, which under
    # "bias (mV)" reads as volts)
    assert lo <= -400 and hi >= 400 and hi < 500
    assert ax.get_xlabel() == "bias (mV)"
    assert any("not defined" in t.get_text() for t in ax.texts)


def test_tau_panel_with_points_plots_millivolts():
    data = SimpleNamespace(points=_points(np.array(["bistable"] * 5)), fits=[], nominal=("tt", 27.0, 0.1))
    ax = F.fig_tau(data).axes[0]
    xs = np.concatenate([ln.get_xdata() for ln in ax.lines if len(ln.get_xdata())])
    assert xs.min() == -400 and xs.max() == 400


def test_acf_legend_tau_is_the_table_tau():
    rng = np.random.default_rng(1)
    # a Markov stream with τ = 6 ns at 1 ns sampling (flip probability 1/12 per step each way)
    flips = rng.random(200_000) < 1 / 12
    bits = (np.cumsum(flips) % 2).astype(np.uint8)
    table_tau = 6.0e-9
    e = ExampleStream(label="tt 27 °C", corner="tt", temp_c=27.0, vdd_v=0.1, bias_v=0.0, bits=bits,
                      sample_period_s=1e-9, p1=0.5, tau_s=table_tau, rate_up_hz=8.3e7, rate_down_hz=8.3e7,
                      acf_tau_s=30e-9)  # a different estimator / chunk, as in the issue (22–40 ns)
    ax = F.fig_acf([e]).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    table_label = [lab for lab in labels if "(table)" in lab]
    assert table_label, labels
    shown = float(re.search(r"τ = ([0-9.]+) ns", table_label[0]).group(1)) * 1e-9
    assert shown == pytest.approx(table_tau, rel=5e-3)  # 3 significant figures
    # the other τ, if shown, is named as a fit to this ACF, never as "τ" alone
    assert all("(table)" in lab or "τ_fit" in lab or "mV" in lab for lab in labels)
