"""Switching rates, correlation time and dwell-time goodness of fit on telegraph processes of known rates."""

import numpy as np
import pytest

from noisecell.analysis import analyze_stream
from noisecell.analysis.markov import fit_markov
from noisecell.analysis.rates import estimate_rates
from noisecell.analysis.runs import scan_runs
from noisecell.analysis.synthetic import markov_chain, modulated_telegraph, telegraph
from _shared_data import shared_capture


K_UP, K_DOWN = 2e6, 3e6     # Hz
DT = 1e-8                   # s: k·dt = 0.02 / 0.03, well resolved


def test_rate_ci_coverage_continuous_time():
    # R = 600 replicates of a telegraph sampled at DT. The coverage of a correct 95 % interval is
    # estimated with SE sqrt(.95*.05/600) = 0.0089, so [0.92, 0.98] is ±3.4 SE (false failure < 1e-3).
    rng = np.random.default_rng(2024)
    R, n = 600, 50_000
    hit_u = hit_d = hit_tau = 0
    tau_true = 1 / (K_UP + K_DOWN) / DT
    for _ in range(R):
        x = telegraph(n, DT, K_UP, K_DOWN, rng)
        rs = scan_runs(x)
        mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk)
        rt = estimate_rates(rs, mk.p01, mk.p10)
        hit_u += rt.rate_up_ci95[0] <= K_UP * DT <= rt.rate_up_ci95[1]
        hit_d += rt.rate_down_ci95[0] <= K_DOWN * DT <= rt.rate_down_ci95[1]
        # the delta-method tau interval, as analyze_stream computes it
        lam = mk.lam
        se = np.sqrt(mk.p01 * (1 - mk.p01) / rs.n0_at_risk + mk.p10 * (1 - mk.p10) / rs.n1_at_risk) / (lam * abs(np.log(lam)))
        tau = -1 / np.log(lam)
        hit_tau += tau * np.exp(-1.96 * se) <= tau_true <= tau * np.exp(1.96 * se)
    for name, h in (("k_up", hit_u), ("k_down", hit_d), ("tau", hit_tau)):
        assert 0.92 <= h / R <= 0.98, f"{name} coverage {h / R:.3f}"


def test_rate_ci_coverage_coarse_sampling():
    # (k_up + k_down)·dt = 2: about two flips per sample on average; a, b are far from k·dt and the
    # embedding -ln(1-a-b) amplifies their noise (an interval from the flip count alone covered 0.71).
    # R = 600: the band [0.92, 0.98] is ±3.4 SE of a correct 95 % interval, as above.
    rng = np.random.default_rng(31)
    R, n, dt = 600, 20_000, 4e-7
    hit_u = hit_d = unresolved = 0
    for _ in range(R):
        x = telegraph(n, dt, K_UP, K_DOWN, rng)
        rs = scan_runs(x)
        mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk)
        rt = estimate_rates(rs, mk.p01, mk.p10)
        if not rt.resolved:   # lam = e^-2 = 0.135 is ~20 SE above 0: never expected
            unresolved += 1
            continue
        hit_u += rt.rate_up_ci95[0] <= K_UP * dt <= rt.rate_up_ci95[1]
        hit_d += rt.rate_down_ci95[0] <= K_DOWN * dt <= rt.rate_down_ci95[1]
    assert unresolved == 0
    assert 0.92 <= hit_u / R <= 0.98 and 0.92 <= hit_d / R <= 0.98, (hit_u / R, hit_d / R)


def test_analyze_stream_on_telegraph_in_hz():
    rng = np.random.default_rng(5)
    x = telegraph(2_000_000, DT, K_UP, K_DOWN, rng)
    e = analyze_stream(x, sample_period_s=DT)
    # fixed seed: the 95 % CIs contain the truth (each would miss with probability 0.05; this seed is
    # not special, and the coverage test above checks the miss rate itself)
    assert e.rate_up_hz_ci95[0] <= K_UP <= e.rate_up_hz_ci95[1]
    assert e.rate_down_hz_ci95[0] <= K_DOWN <= e.rate_down_hz_ci95[1]
    assert e.tau_s_ci95[0] <= 1 / (K_UP + K_DOWN) <= e.tau_s_ci95[1]
    assert e.p1_ci95[0] <= 0.4 <= e.p1_ci95[1]
    # three tau estimates agree for a Markov process; dwells pass the geometric test
    assert e.tau_iact_agree is True and e.markov_dwells_ok is True and e.markov_consistent is True
    assert e.tau_exp_fit_samples == pytest.approx(e.tau_samples, rel=0.1)
    # PSD corner agrees with tau (the test's own tolerance is inside analyze_stream; also check ~)
    assert e.psd_tau_agree is True
    assert e.psd_corner_hz == pytest.approx((K_UP + K_DOWN) / (2 * np.pi), rel=0.1)


def test_coarse_sampling_rates_use_the_embedding():
    # k·dt = 0.4 + 0.6 = 1.0 per sample: many flips hide inside one sample, naive counts (a, b) would
    # underestimate the rates by (1 - e^-1) = 37 %; the embedding inverts that exactly
    rng = np.random.default_rng(8)
    dt = 2e-7
    x = telegraph(400_000, dt, K_UP, K_DOWN, rng)
    e = analyze_stream(x, sample_period_s=dt)
    assert e.rate_up_hz_ci95[0] <= K_UP <= e.rate_up_hz_ci95[1]
    assert e.rate_down_hz_ci95[0] <= K_DOWN <= e.rate_down_hz_ci95[1]
    assert e.p01 < 0.7 * K_UP * dt


def test_uncorrelated_bits_rates_unresolved():
    x = markov_chain(100_000, 0.5, 0.0, np.random.default_rng(1))
    e = analyze_stream(x)
    # lag-1 = 0 ± 0.003 (1/sqrt(n)): tau = -1/ln(lam) is below 0.2 samples unless lam > 0.007 (2.3 SE)
    assert e.tau_samples < 0.2
    # anti-correlated chain (a = b = 0.7, lam = -0.4 ± 0.003): no continuous-time process samples to it
    y = markov_chain(100_000, 0.5, -0.4, np.random.default_rng(2))
    f = analyze_stream(y, sample_period_s=1e-9)
    assert not f.rates_resolved and f.rate_up is None and f.rate_up_hz is None and f.tau_samples == 0.0
    assert any("faster than the sampling" in n for n in f.notes)
    assert f.lag1_autocorr == pytest.approx(-0.4, abs=0.02)
    # an anti-correlated stream's P(1) is *more* precise than binomial: n_eff > n
    assert f.n_eff > y.size


def test_dwell_gof_pvalues_uniform_under_markov():
    # Under the model the GoF p-value is ~uniform: P(p < 0.05) = 0.05. 200 chains, the count of
    # p < 0.05 is Binomial(400, 0.05) for the two states: mean 20, SD 4.4; allow [6, 38] (±4 SD).
    rng = np.random.default_rng(77)
    small = 0
    for _ in range(200):
        x = markov_chain(20_000, 0.4, 0.9, rng)
        rs = scan_runs(x)
        mk = fit_markov(rs.n_up, rs.n0_at_risk, rs.n_down, rs.n1_at_risk)
        rt = estimate_rates(rs, mk.p01, mk.p10)
        small += sum(g.p_value < 0.05 for g in rt.dwell_gof)
    assert 6 <= small <= 38


def test_modulated_rates_flagged_non_markov():
    # rates switch between x3 and /3 at 20 kHz: dwells are a mixture of exponentials whose
    # dispersion index is ~ (mixture variance)/(geometric variance) ≈ 3, far above 1
    rng = np.random.default_rng(9)
    x = modulated_telegraph(1_000_000, 1e-9, K_UP, K_DOWN, 3.0, 2e4, rng)
    e = analyze_stream(x, sample_period_s=1e-9)
    assert e.markov_dwells_ok is False and e.markov_consistent is False
    assert e.dwell_dispersion_0 > 1.5 and e.dwell_dispersion_1 > 1.5
    # long memory is seen by the ACF: its n_eff is used for P(1)
    assert e.n_eff_method == "acf"


def test_ring_oscillator_capture_is_non_markov():
    from noisecell.io import load_bits

    e = analyze_stream(load_bits(shared_capture("ringOsc-nist.bin")))
    # published characteristics of this capture: lag-1 ≈ 0.68, lag-2 ≈ 0.54 (SE ~ 1/sqrt(n_eff) ≈ 0.003)
    assert e.lag1_autocorr == pytest.approx(0.68, abs=0.01)
    assert e.lag2_autocorr == pytest.approx(0.54, abs=0.01)
    # a Markov chain would have lag-2 = lag-1² = 0.46: the dwell test and the tau comparison must see it
    assert e.markov_dwells_ok is False and e.tau_iact_agree is False and e.markov_consistent is False
    assert e.n_eff_method == "acf" and e.tau_int_acf_samples > e.tau_int_markov_samples


def test_true_random_capture_is_unresolved_and_markov_consistent():
    path = shared_capture("truerand_1bit.bin")
    from noisecell.io import load_bits

    e = analyze_stream(load_bits(path))
    # a good physical RNG: lag-1 within 3/sqrt(n) = 0.003 of 0, so no finite switching rate is supported
    assert abs(e.lag1_autocorr) < 0.003
    assert not e.rates_resolved and e.rate_up is None and e.tau_samples_ci95[0] == 0.0
    assert e.markov_dwells_ok is True and e.markov_consistent is True
    # near-full entropy: Hmin = -log2 max(p, 1-p) within the P(1) CI
    assert e.h_min_rate > 0.99 and e.rct_cutoff in (21, 22)
