"""The cell-declared readout hysteresis reaches the digitiser (strongly biased points show no second
mode in their histogram, so the automatic estimate cannot be relied on there)."""
import numpy as np

from noisecell.cells import load_cell
from noisecell.digitize import digitize_waveform
from noisecell.waveform import Waveform


def _chattering_waveform(hysteresis_v):
    # one state at +20 mV with 5 mV rms white noise, plus a few dips to 0 V: no flip ever happens
    rng = np.random.default_rng(7)
    n = 20000
    v = 0.02 + 0.005 * rng.standard_normal(n)
    v[500::997] = -0.001  # brief excursions across the threshold that a comparator with hysteresis ignores
    meta = {"readout": {"mode": "single", "threshold_v": 0.0}, "sample_period_s": 1e-9}
    if hysteresis_v is not None:
        meta["readout"]["hysteresis_v"] = hysteresis_v
    return Waveform(time_s=np.arange(n) * 1e-9, outputs={"v_out": v}, meta=meta)


def test_declared_hysteresis_suppresses_chatter():
    bits, dig = digitize_waveform(_chattering_waveform(0.012))
    assert dig.hysteresis_v == 0.012
    assert np.count_nonzero(np.diff(bits.bits)) == 0


def test_with_a_zero_band_the_same_trace_chatters():
    # the check above can fail: with a 0 V band and a one-mode histogram, every dip is a "flip"
    bits, dig = digitize_waveform(_chattering_waveform(0.0))
    assert dig.hysteresis_v == 0.0
    assert np.count_nonzero(np.diff(bits.bits)) > 10


def test_without_declared_hysteresis_the_band_comes_from_the_level_noise():
    # no declared band: 3σ of the one level's noise (σ = 5 mV; the MAD estimate of 2e4 samples is good
    # to ~1 %, and the 20 dips move the median negligibly), so the dips 21 mV below the level are
    # 1.1 mV past the threshold but not past its lower band edge at -7.5 mV: no chatter
    bits, dig = digitize_waveform(_chattering_waveform(None))
    assert dig.hysteresis_from == "noise"
    assert abs(dig.hysteresis_v - 0.015) < 0.0015
    assert np.count_nonzero(np.diff(bits.bits)) == 0


def test_generic_cell_declares_its_band():
    cell = load_cell("pbit_generic")
    assert cell.readout.hysteresis_v is not None and 0 < cell.readout.hysteresis_v < 0.04
