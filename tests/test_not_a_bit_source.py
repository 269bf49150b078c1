"""A cell that does not telegraph gets no per-bit figure (issue 16 item 2): `simulate`'s summary and
`analyze` say what was seen and why it is not a bit source; a telegraph keeps its flips."""
import json

import numpy as np

from noisecell.cli import main
from noisecell.commands.simulate import summarize
from noisecell.waveform import Waveform
from test_regime import LEVEL_NOISE_TAU_S, STEP_S, ornstein_uhlenbeck, slow_telegraph


def _waveform(v):
    n = v.size
    return Waveform(time_s=np.arange(n) * STEP_S, outputs={"v_out": v},
                    meta={"readout": {"mode": "single", "threshold_v": 0.0}, "noise_step_s": STEP_S,
                          "duration_s": n * STEP_S, "temp_c": 27.0},
                    supply_currents={"vdd": np.full(n, 1e-7)}, supply_voltages={"vdd": 0.066})


def test_chattering_monostable_cell_has_no_flips_and_says_why():
    # one OU level on the threshold: what the monostable latch produced (514–634 "flips")
    v = ornstein_uhlenbeck(20_000, LEVEL_NOISE_TAU_S, 0.02, np.random.default_rng(5))
    s = summarize(_waveform(v))
    assert s["regime"] == "single_peaked"
    assert s["flips"] is None
    assert s["hysteresis_v"] > 0  # derived from the level's noise, not a 0 V band
    assert s["not_a_bit_source"].startswith("not a bit source") and "chattering" in s["not_a_bit_source"]
    assert "cell check" in s["not_a_bit_source"]


def test_stuck_cell_says_stuck():
    v = 0.03 + ornstein_uhlenbeck(20_000, LEVEL_NOISE_TAU_S, 0.002, np.random.default_rng(6))
    s = summarize(_waveform(v))
    assert s["regime"] == "stuck" and s["flips"] is None and "stuck" in s["not_a_bit_source"]


def test_slow_telegraph_keeps_its_flips():
    rng = np.random.default_rng(7)
    state, switches = slow_telegraph(40_000, rng, 0.05)
    v = (state - 0.5) * 0.05 + ornstein_uhlenbeck(40_000, LEVEL_NOISE_TAU_S, 0.05 / 3, rng)
    s = summarize(_waveform(v))
    assert s["regime"] == "bistable" and s["not_a_bit_source"] is None
    assert abs(s["flips"] - switches) <= 2  # as in test_digitize_hysteresis


def test_analyze_blanks_per_bit_figures_of_a_chattering_cell(tmp_path, capsys):
    v = ornstein_uhlenbeck(20_000, LEVEL_NOISE_TAU_S, 0.02, np.random.default_rng(8))
    path = _waveform(v).save_npz(tmp_path / "run.npz")
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr()
    d = json.loads(out.out.strip().splitlines()[-1])
    assert d["regime"] == "single_peaked" and "not a bit source" in d["not_a_bit_source"]
    assert d["energy_per_bit_j"] is None and d["energy_per_flip_j"] is None and d["tau_s"] is None
    assert "not a bit source" in out.err
