"""model.fit.derived_blocks far from the records: a curved rate model must not overflow the τ grid.

Truth: pbit_x5's nominal (v1 verification run of 2b90edd + switch) had a calibrated range reaching a
stuck pilot record at −200 mV, 60 sigmoid scales from V50, while its joint fit's ln k curved with
c ≈ −2e4 /V²: ln τ there ≈ +800, and exp() raised OverflowError at the end of a 12-minute run.
"""
from __future__ import annotations

import math

import numpy as np

from noisecell.model import ratemodel
from noisecell.model.fit import MAX_ABS_LN_TAU, derived_blocks


def _curved(c=-2e4):
    # ln k_up / ln k_down at V50 = 0: ln(1/(2·80 ns)), logit slope 1/3.2 mV, common curvature c (1/V²)
    lk = math.log(1 / (2 * 80e-9))
    b = 0.5 / 3.2e-3
    return ratemodel.make(0.0, (lk, b, c), (lk, -b, c), np.diag([1e-4, 1.0, 1e-4, 1.0]) * 1e-2)


def test_tau_grid_far_from_the_records_is_finite_and_clipped():
    sig, tau, _ = derived_blocks(_curved(), (-0.2, 0.0157), sample_period_s=None)
    t = np.asarray(tau["tau_s"], float)
    ci = np.asarray(tau["tau_ci95_s"], float)
    assert np.isfinite(t).all() and np.isfinite(ci).all()
    assert t.max() <= math.exp(MAX_ABS_LN_TAU) * (1 + 1e-12) and ci.max() <= 1e30  # the schema's bound
    # near V50 the grid is the model's own value (no clipping where the model is used)
    i = int(np.argmin(np.abs(np.asarray(tau["bias_v"]))))
    assert tau["tau_s"][i] == tau["tau_s"][i] and 50e-9 < tau["tau_s"][i] < 100e-9


def test_tau_grid_spans_the_given_tau_range():
    _, tau, _ = derived_blocks(_curved(), (-0.2, 0.0157), sample_period_s=None, tau_range_v=(-0.01, 0.01))
    assert tau["bias_v"][0] == -0.01 and tau["bias_v"][-1] == 0.01
