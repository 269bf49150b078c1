"""Titles of the mismatch scatter: a spread not resolved above the estimation noise is shown as its
upper bound, never as "sd 0" (which would read as "no mismatch")."""
import math

import numpy as np
import pandas as pd

from noisecell.model.instances import estimate_distribution
from noisecell.report import figures_pvt as FP


def _dist(gain_sd, n=30, seed=1, est_sd=0.05):
    rng = np.random.default_rng(seed)
    # offsets 0.2 V sd, ln gain with a true spread gain_sd plus estimation noise est_sd, ln tau ratio 0.1
    x = np.column_stack([rng.normal(0, 0.2, n), rng.normal(0, math.hypot(gain_sd, est_sd), n),
                         rng.normal(0, 0.1, n)])
    est = np.tile(np.diag([1e-6, est_sd ** 2, 1e-6]), (n, 1, 1))
    return estimate_distribution(x, est).to_dict(), x


def test_unresolved_spread_is_an_upper_bound():
    d, _ = _dist(0.0)
    # no true gain spread, estimation noise 0.05: the chi-square lower end (29 dof: 0.63 x the observed
    # variance) minus the estimation variance is > 0 only if the observed variance exceeds 1.58x the
    # noise's (P ~ 2 %); at this seed it does not, so the spread is only bounded
    assert d["sd_ci95"][1][0] == 0.0
    text = FP.spread_text(d, 1)
    assert text.startswith("≤ ×/÷ ") and f"{math.exp(d['sd_ci95'][1][1]):.3g}" in text
    if d["sd"][1] == 0:
        assert FP._rho_text(d, 0, 1) == "n/a"


def test_resolved_spread_has_its_ci():
    d, _ = _dist(0.3)
    # true ln-gain sd 0.3 against noise 0.05 over 30 instances: chi2 lower bound ~0.77 of the variance,
    # far above the estimation variance, so the CI's lower end is > 0
    assert d["sd_ci95"][1][0] > 0
    text = FP.spread_text(d, 1)
    assert text.startswith("×/÷ ") and "[" in text
    off = FP.spread_text(d, 0)
    assert off.endswith("]") and " mV [" in off


def test_scatter_renders_with_both_kinds_of_title():
    for gain_sd in (0.0, 0.3):
        d, x = _dist(gain_sd)
        inst = pd.DataFrame({"offset_v": x[:, 0], "gain": np.exp(x[:, 1]), "tau_ratio": np.exp(x[:, 2]),
                             "offset_ci95_v": [(a - 0.01, a + 0.01) for a in x[:, 0]],
                             "gain_ci95": [(math.exp(b - 0.1), math.exp(b + 0.1)) for b in x[:, 1]],
                             "tau_ratio_ci95": [(math.exp(c - 0.1), math.exp(c + 0.1)) for c in x[:, 2]]})
        fig = FP.fig_mismatch_scatter(inst, d)
        title = fig._suptitle.get_text()
        assert "offset sd " in title and FP.spread_text(d, 1) in title and FP.spread_text(d, 2) in title
        FP.plt.close(fig)


def test_spread_below_the_estimation_noise_is_bounded_by_the_observed_spread():
    """pbit's 35 instances: ln-gain observed variance 0.103 but each instance's fit noisier than that, so
    even the chi-square upper end minus the noise is <= 0: the bound is the observed spread's upper end."""
    from scipy import stats

    n, obs = 35, 0.103
    d = {"sd": [0.2, 0.0, 0.0], "sd_ci95": [[0.17, 0.28], [0.0, 0.0], [0.0, 0.0]], "n_instances": n,
         "observed_covariance": [[0.04, 0, 0], [0, obs, 0], [0, 0, 0.04]]}
    ub = math.sqrt(obs * (n - 1) / stats.chi2.ppf(0.025, n - 1))
    assert FP.spread_text(d, 1).startswith(f"≤ ×/÷ {math.exp(ub):.3g} ")
    assert "×/÷ 1 " not in FP.spread_text(d, 1)


def test_spread_interval_states_an_upper_bound_when_the_spread_is_not_resolved():
    # the datasheet and the figure titles share this: a de-noised sd of 0 must never read as "no spread"
    import math

    import pytest
    from scipy import stats

    from noisecell.model.instances import spread_interval

    n = 30
    obs = [[0.04, 0, 0], [0, 0.01, 0], [0, 0, 0.0025]]
    dist = {"sd": [0.2, 0.0, 0.0], "sd_ci95": [[0.15, 0.27], [0.0, 0.12], [0.0, 0.0]],
            "observed_covariance": obs, "n_instances": n}
    assert spread_interval(dist, 0) == (0.2, 0.15, 0.27, True)
    assert spread_interval(dist, 1) == (0.0, 0.0, 0.12, False)
    sd, lo, hi, resolved = spread_interval(dist, 2)
    # the chi-square upper end of the observed sd (0.05): above it, and the noise-free spread cannot exceed it
    assert not resolved and lo == 0 and hi == pytest.approx(0.05 * math.sqrt((n - 1) / stats.chi2.ppf(0.025, n - 1)))
    assert 0.05 < hi < 0.05 * 1.5
    assert math.isnan(spread_interval({**dist, "n_instances": 1}, 2)[2])
