"""sequential.representable_range: the calibrated range written to a model stops where the fit's
rates stop being representable (the validator's |ln k| ≤ MAX_ABS_LN_RATE), so a far P(1)-only record
cannot make the whole model invalid (pbit_x5 --quick: a pilot record at −200 mV, ln k_up −908)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from noisecell.model.cellmodel import MAX_ABS_LN_RATE
from noisecell.sequential import representable_range


def _fit(c: float):
    lk, b = math.log(1 / (2 * 80e-9)), 0.5 / 3.2e-3

    def ln_rates(v):
        x = np.asarray(v, float) - 0.4e-3
        return lk + b * x + c * x * x, lk - b * x + c * x * x
    return SimpleNamespace(v50=SimpleNamespace(value=0.4e-3), ln_rates=ln_rates)


def test_range_is_cut_where_ln_k_leaves_the_representable_band():
    fit = _fit(-2.5e4)
    lo, hi = representable_range(fit, [-0.2, 0.0156])
    assert hi == 0.0156                        # inside the band: unchanged
    assert -0.2 < lo < -0.1
    lu, ld = fit.ln_rates(np.array([lo]))
    assert max(abs(lu[0]), abs(ld[0])) <= MAX_ABS_LN_RATE
    lu2, ld2 = fit.ln_rates(np.array([lo - 2e-4]))  # one grid step further out is beyond it
    assert max(abs(lu2[0]), abs(ld2[0])) > MAX_ABS_LN_RATE


def test_range_inside_the_band_is_kept():
    assert representable_range(_fit(-2e3), [-0.2, 0.0156]) == [-0.2, 0.0156]
