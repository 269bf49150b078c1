"""Digitisation: Schmitt trigger, automatic threshold, clocked sampling."""
import numpy as np
import pytest

from noisecell.digitize import auto_threshold, digitize_trace, digitize_waveform, examine_histogram, schmitt
from noisecell.errors import InputError, RegimeError
from noisecell.waveform import Waveform


def test_schmitt_hysteresis_holds_state_inside_band():
    v = np.array([0.0, 0.6, 0.45, 0.55, 1.0, 0.55, 0.45, 0.3, 0.55, 0.0])
    # band 0.4..0.6: rises only above 0.6, falls only below 0.4
    np.testing.assert_array_equal(schmitt(v, 0.5, 0.2), [0, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(schmitt(v, 0.5, 0.0), [0, 1, 0, 1, 1, 1, 0, 0, 1, 0])


def test_auto_threshold_finds_valley_asymmetric_modes():
    rng = np.random.default_rng(11)
    # 10 % of samples in the upper mode at 0.3 V, 90 % at -0.1 V, sigma 0.02 V
    v = np.where(rng.random(200_000) < 0.1, 0.3, -0.1) + 0.02 * rng.standard_normal(200_000)
    thr, hyst = auto_threshold(v)
    # the valley of two well separated Gaussians lies between them, far (> 5 sigma) from both modes
    assert -0.1 + 5 * 0.02 < thr < 0.3 - 5 * 0.02
    # hysteresis = 3 sigma = 0.06 V, within histogram-bin resolution (0.5 V / 256 bins = 2 mV) and the
    # MAD's sampling error (~1 % at 2e5 samples)
    assert 0.055 < hyst < 0.065


def test_unimodal_raises_regime_error():
    v = np.random.default_rng(1).standard_normal(10_000)
    est = examine_histogram(v)
    assert not est.bimodal and est.reason
    with pytest.raises(RegimeError):
        auto_threshold(v)
    with pytest.raises(RegimeError):
        digitize_trace(np.arange(v.size) * 1e-9, v)
    # a given threshold still works on a unimodal trace
    bs, dig = digitize_trace(np.arange(v.size) * 1e-9, v, threshold_v=0.0)
    assert not dig.threshold_auto and abs(bs.bits.mean() - 0.5) < 0.03


def test_clocked_sampling_and_nonuniform_grid():
    t = np.array([0.0, 1.0, 2.5, 3.0, 4.2, 6.0])
    v = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    with pytest.raises(InputError, match="sample period"):
        digitize_trace(t, v, threshold_v=0.5)
    bs, dig = digitize_trace(t, v, threshold_v=0.5, sample_period_s=1.0)
    # clock edges at 0..6 s; value held = last sample at or before the edge
    np.testing.assert_array_equal(bs.bits, [0, 1, 1, 0, 0, 1, 0])
    assert dig.n_bits == 7 and bs.sample_period_s == 1.0
    with pytest.raises(InputError, match="strictly increasing"):
        digitize_trace(t[::-1], v, threshold_v=0.5)


def test_waveform_single_and_differential():
    rng = np.random.default_rng(5)
    state = np.repeat(rng.random(100) < 0.5, 40).astype(np.uint8)
    t = np.arange(state.size) * 2e-9
    vo = 0.05 + 0.04 * (2.0 * state - 1) + 0.004 * rng.standard_normal(t.size)
    vb = 0.05 - 0.04 * (2.0 * state - 1) + 0.004 * rng.standard_normal(t.size)
    wf = Waveform(time_s=t, outputs={"v_out": vo, "v_outb": vb},
                  meta={"readout": {"mode": "differential", "threshold_v": 0.0}})
    bs, dig = digitize_waveform(wf)
    np.testing.assert_array_equal(bs.bits, state)
    assert dig.readout == "differential" and dig.threshold_v == 0.0 and dig.sample_period_s == pytest.approx(2e-9)
    wf1 = Waveform(time_s=t, outputs={"v_out": vo}, meta={"readout": {"mode": "single"}})
    bs1, dig1 = digitize_waveform(wf1)
    np.testing.assert_array_equal(bs1.bits, state)
    assert dig1.threshold_auto and abs(dig1.threshold_v - 0.05) < 0.02
    bad = Waveform(time_s=t, outputs={"v_out": vo}, meta={"readout": {"mode": "differential"}})
    with pytest.raises(InputError, match="v_outb"):
        digitize_waveform(bad)
    assert "threshold" in dig.summary()


def test_off_centre_given_threshold_keeps_band_outside_modes():
    rng = np.random.default_rng(9)
    state = np.repeat(rng.random(200) < 0.5, 50).astype(np.uint8)
    v = 0.1 * state + 0.01 * rng.standard_normal(state.size)      # modes 0 and 0.1 V
    bs, dig = digitize_trace(np.arange(v.size) * 1e-9, v, threshold_v=0.085)
    # room to the upper mode is 0.015 V; the band edge may go 2/3 of the way to the *detected* mode,
    # which a 256-bin histogram of 5000 noisy samples places within ~0.5 sigma (0.005 V) of 0.1 V:
    # the upper edge stays below 0.085 + (2/3)(0.015 + 0.005) = 0.0983 V, i.e. below the true mode
    assert 0 < dig.hysteresis_v and 0.085 + dig.hysteresis_v / 2 < 0.0984
    # not stuck: the comparator still follows the telegraph (except near edges where the noisy
    # upper mode dips under 0.085 - 0.01: 2.5 sigma, P ≈ 0.6 % per sample; allow 3 %)
    assert np.mean(bs.bits != state) < 0.03
    _, dig_out = digitize_trace(np.arange(v.size) * 1e-9, v, threshold_v=0.2)
    assert dig_out.hysteresis_v == 0.0
