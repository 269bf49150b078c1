"""ACF by FFT against direct sums; integrated autocorrelation time and exponential fit on exact ACFs;
PSD corner against tau over a range of correlation times."""
import numpy as np
import pytest

from noisecell.analysis import analyze_stream
from noisecell.analysis.autocorr import _block_layout, acf_fft, fit_exponential, integrated_act, tau_from_tau_int
from noisecell.analysis.synthetic import markov_chain


def _direct(x, mean, lags, starts, L):
    num = np.zeros(lags + 1)
    cnt = np.zeros(lags + 1)
    for s in starts:
        y = x[s:s + L].astype(float) - mean
        for k in range(lags + 1):
            num[k] += np.dot(y[:L - k], y[k:])
            cnt[k] += L - k
    c = num / cnt
    return c / c[0]


def test_acf_fft_equals_direct_sums_whole_and_blocked():
    x = markov_chain(5000, 0.3, 0.8, np.random.default_rng(1))
    m = x.mean()
    r = acf_fft(x, 40, mean=m)
    assert r.n_used == 5000
    # float32 FFT: rounding ~1e-6 on the normalised ACF
    np.testing.assert_allclose(r.rho, _direct(x, m, 40, [0], 5000), atol=1e-5)
    rb = acf_fft(x, 40, mean=m, block_len=700, max_samples=2100)
    L, starts = _block_layout(5000, 700, 2100)
    assert rb.n_blocks == 3 and rb.block_len == 700
    np.testing.assert_allclose(rb.rho, _direct(x, m, 40, starts, L), atol=1e-5)


@pytest.mark.parametrize("lam", [0.3, 0.9, 0.99])
def test_iact_and_exponential_fit_on_exact_acf(lam):
    k = np.arange(0, 3000)
    rho = lam ** k
    ti, M, conv = integrated_act(rho)
    # Sokal window M >= 5 tau_int truncates sum_{k>M} lam^k = lam^(M+1)/(1-lam): relative error e^-~10
    assert conv and ti == pytest.approx((1 + lam) / (1 - lam), rel=1e-3)
    assert tau_from_tau_int(ti) == pytest.approx(-1 / np.log(lam), rel=2e-3)
    f = fit_exponential(rho, noise_se=1e-6)
    assert f.tau == pytest.approx(-1 / np.log(lam), rel=1e-6) and f.amplitude == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("rho,n", [(0.5, 200_000), (0.9, 400_000), (0.99, 2_000_000)])
def test_psd_corner_agrees_with_tau(rho, n):
    e = analyze_stream(markov_chain(n, 0.4, rho, np.random.default_rng(int(rho * 100))))
    tau = -1 / np.log(rho)
    # the aliased Lorentzian is the exact PSD of the chain, so its tau estimates the true one; the fit's
    # standard error on ln tau is ~1.5 % at these lengths (development runs: 0.010-0.016, ratios
    # 0.97-1.03), so 6 % is 4 SE. analyze_stream's own criterion (3 combined SE + 5 %) must agree.
    assert e.psd_tau_agree is True
    assert e.psd_tau_samples == pytest.approx(tau, rel=0.06)
    assert e.psd_corner_per_sample == pytest.approx(1 / (2 * np.pi * e.psd_tau_samples))
