"""analyze_stream end to end: waveform → bits → estimates with energy; CLI output and errors."""
import json
import math

import numpy as np
import pytest

from noisecell.analysis import analyze_stream
from noisecell.analysis.energy import K_B
from noisecell.analysis.markov import min_entropy_rate, resample_chain
from noisecell.analysis.synthetic import markov_chain, telegraph
from noisecell.cli import main
from noisecell.io import load_bits
from noisecell.waveform import Waveform

REQUIRED = ["n_samples", "p1", "p1_ci95", "lag1_autocorr", "n_eff", "tau_samples", "rate_up", "rate_down",
            "tau_s", "rate_up_hz", "rate_down_hz", "h_shannon_rate", "h_min_rate", "rct_cutoff", "apt_cutoff",
            "mean_supply_power_w", "energy_per_flip_j", "energy_per_bit_j"]

DT = 1e-9
K_UP, K_DOWN = 4e6, 6e6
VDD, IDD = 0.06, 1e-6          # V, A: 60 nW


def _waveform(rng, n=400_000):
    bits = telegraph(n, DT, K_UP, K_DOWN, rng)
    t = np.arange(n) * DT
    swing = 0.03 * (2.0 * bits - 1)
    vo = 0.03 + swing + 0.002 * rng.standard_normal(n)
    vb = 0.03 - swing + 0.002 * rng.standard_normal(n)
    wf = Waveform(time_s=t, outputs={"v_out": vo, "v_outb": vb}, supply_currents={"vdd": np.full(n, IDD)},
                  supply_voltages={"vdd": VDD},
                  meta={"readout": {"mode": "differential", "threshold_v": 0.0}, "sample_period_s": DT,
                        "temp_c": 27.0, "bias_v": 0.0})
    return wf, bits


def test_waveform_energy_figures(tmp_path):
    rng = np.random.default_rng(21)
    wf, bits = _waveform(rng)
    p = wf.save_npz(tmp_path / "w.npz")
    bs = load_bits(p)
    # readout noise 2.8 mV on a 120 mV differential swing: the digitised bits are the telegraph
    np.testing.assert_array_equal(bs.bits, bits)
    e = analyze_stream(bs, waveform=Waveform.load_npz(p)).to_dict()
    P = VDD * IDD
    assert e["mean_supply_power_w"] == pytest.approx(P, rel=1e-12)
    flips = e["n_flips"] / (e["n_samples"] * DT)
    assert e["energy_per_flip_j"] == pytest.approx(P / flips, rel=1e-12)
    assert e["energy_per_bit_j"] == pytest.approx(P * e["tau_s"], rel=1e-12)
    kt = K_B * 300.15 * math.log(2)
    assert e["kt_ln2_j"] == pytest.approx(kt, rel=1e-12)
    assert e["energy_per_bit_kt_ln2"] == pytest.approx(P * e["tau_s"] / kt, rel=1e-12)
    # against the truth: tau = 1/(k_up+k_down) = 100 ns -> 6 fJ per bit, within the tau CI
    lo, hi = e["tau_s_ci95"]
    assert P * lo <= P / (K_UP + K_DOWN) <= P * hi
    # energy per min-entropy bit at the 1 ns sampling: P·dt / Hmin, Hmin from the fitted chain
    assert e["energy_per_min_entropy_bit_j"] == pytest.approx(P * DT / e["h_min_rate"], rel=1e-9)
    assert e["h_min_at_entropy_period"] == pytest.approx(e["h_min_rate"], rel=1e-12)


def test_energy_at_a_stated_entropy_period():
    rng = np.random.default_rng(22)
    wf, _ = _waveform(rng, n=200_000)
    from noisecell.digitize import digitize_waveform

    bs, _ = digitize_waveform(wf)
    e = analyze_stream(bs, waveform=wf, entropy_sample_period_s=1e-6).to_dict()
    # sampled every 1 µs = 10 tau the bits are nearly independent (lag-1 e^-10 = 4.5e-5):
    # Hmin -> -log2 max(pi, 1-pi) of the fitted chain's stationary P(1), to ~1e-4 relative
    a, b = resample_chain(e["p01"], e["p10"], 1000)
    assert e["h_min_at_entropy_period"] == pytest.approx(min_entropy_rate(a, b), rel=1e-9)
    pi = e["p01"] / (e["p01"] + e["p10"])
    assert e["h_min_at_entropy_period"] == pytest.approx(-math.log2(max(pi, 1 - pi)), rel=1e-3)
    assert e["energy_per_min_entropy_bit_j"] == pytest.approx(VDD * IDD * 1e-6 / e["h_min_at_entropy_period"], rel=1e-9)


def test_keys_without_period_and_stuck_stream():
    e = analyze_stream(markov_chain(10_000, 0.3, 0.5, np.random.default_rng(1))).to_dict()
    for k in REQUIRED:
        assert k in e
    assert e["tau_s"] is None and e["rate_up_hz"] is None and e["mean_supply_power_w"] is None
    s = analyze_stream(np.zeros(1000, np.uint8)).to_dict()
    assert s["p1"] == 0.0 and s["n_flips"] == 0 and s["h_min_rate"] == 0.0 and s["notes"]
    json.dumps(s, allow_nan=False)
    assert "P(1)" in analyze_stream(np.zeros(1000, np.uint8)).summary()


def _cli(args, capsys):
    rc = main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json_matches_api(tmp_path, capsys):
    rng = np.random.default_rng(23)
    x = markov_chain(100_000, 0.4, 0.9, rng)
    p = tmp_path / "bits.bin"
    x.tofile(p)
    rc, out, err = _cli([p, "--sample-period", "2us"], capsys)
    assert rc == 0
    d = json.loads(out.strip().splitlines()[-1])
    for k in REQUIRED[:-3]:
        assert d[k] is not None, k
    api = analyze_stream(load_bits(p, sample_period_s=2e-6)).to_dict()
    assert d == json.loads(json.dumps(api))
    assert d["tau_s"] == pytest.approx(d["tau_samples"] * 2e-6)
    assert d["rate_up_hz"] == pytest.approx(d["rate_up"] / 2e-6)


def test_cli_waveform_has_energy(tmp_path, capsys):
    wf, _ = _waveform(np.random.default_rng(24), n=50_000)
    p = wf.save_npz(tmp_path / "w.npz")
    rc, out, _ = _cli([p], capsys)
    d = json.loads(out)
    assert rc == 0 and all(d[k] is not None for k in REQUIRED)
    assert d["digitization"]["readout"] == "differential"


@pytest.mark.parametrize("content,args,fragment", [
    ("bit\n0\n1\n1,0\n", [], "ragged"),
    ("bit\n0\nnan\n1\n", [], "NaN"),
    ("", [], "no data"),
    ("bit\n0\n1\n", ["--sample-period=-1us"], "positive"),
    ("bit\n0\n1\n", ["--sample-period", "3 parsecs"], "sample-period"),
])
def test_cli_bad_input_exit_2(tmp_path, capsys, content, args, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    rc, out, err = _cli([p, *args], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("noisecell: error:") and fragment in err and err.count("\n") == 1


def test_cli_bad_binary_values(tmp_path, capsys):
    p = tmp_path / "packed_by_mistake.bin"
    p.write_bytes(bytes([0, 1, 0xA5, 1]))
    rc, out, err = _cli([p], capsys)
    assert rc == 2 and str(p) in err and "--format packed" in err
    rc, out, err = _cli([p, "--format", "packed"], capsys)
    assert rc == 0 and json.loads(out)["n_samples"] == 32


def test_analyze_waveform_and_flat_dict():
    from noisecell.analysis import analyze_waveform

    wf, bits = _waveform(np.random.default_rng(25), n=50_000)
    est, dig = analyze_waveform(wf)
    assert est.n_samples == bits.size and dig.readout == "differential"
    assert est.digitization["threshold_v"] == 0.0 and est["p1"] == est.p1
    flat = est.to_flat_dict()
    assert all(not isinstance(v, (list, tuple, dict)) for v in flat.values())
    assert flat["p1_ci95_lo"] == est.p1_ci95[0] and flat["digitization_readout"] == "differential"
    assert "energy/bit" in est.summary()
