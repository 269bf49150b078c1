"""Measurement folders: the shipped example loads and matches its recorded truth; malformed folders are
rejected with one-line errors that name the file."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from noisecell.errors import InputError
from noisecell.measurements import load_measurements

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "measurements" / "synthetic-pbit-example"


def test_example_loads_and_matches_truth():
    ms = load_measurements(EXAMPLE)
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    assert ms.synthetic is True and "SYNTHETIC" in ms.provenance
    bits_caps = [c for c in ms.captures if c.kind == "bits"]
    assert len(bits_caps) == len(truth["points"])
    by_bias = {round(p["bias_v"], 9): p for p in truth["points"]}
    # The sampled telegraph is a two-state Markov chain whose ACF is rho^k with rho = exp(-dt/tau),
    # so var(mean) = p(1-p)/n * (1+rho)/(1-rho) (large n). 11 independent captures are checked at
    # once: a family-wise false-alarm rate of 1e-3 needs |z| < Phi^-1(1 - 1e-3/22) = 3.9 per capture.
    z_max = stats.norm.ppf(1 - 1e-3 / (2 * len(bits_caps)))
    for c in bits_caps:
        t = by_bias[round(c.bias_v, 9)]
        rho = math.exp(-c.sample_period_s / t["tau_s"])
        sd = math.sqrt(t["p1"] * (1 - t["p1"]) / c.bits.size * (1 + rho) / (1 - rho))
        z = (c.bits.mean() - t["p1"]) / sd
        assert abs(z) < z_max, (c.file.name, c.bits.mean(), t["p1"], z)
        assert c.temp_c == truth["temp_c"] and c.vdd_v == truth["vdd_v"]
        assert c.sample_period_s == pytest.approx(truth["sample_period_s"], rel=1e-12)
        assert c.supply_current_a == pytest.approx(t["supply_current_a"], rel=1e-9)


def test_example_trace_is_digitised_at_the_bit_clock():
    ms = load_measurements(EXAMPLE)
    (tr,) = [c for c in ms.captures if c.kind == "trace"]
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    n_expected = int(math.floor(truth["trace"]["duration_s"] / tr.sample_period_s - 1e-9)) + 1
    assert abs(tr.bits.size - n_expected) <= 1
    assert tr.threshold_v == pytest.approx(truth["vdd_v"] / 2)
    # the trace's noise (1.5 mV rms) is far below the 47 mV threshold distance: the digitised bits
    # must be a real telegraph, neither stuck nor chattering every sample
    flips = np.count_nonzero(np.diff(tr.bits))
    assert 0.05 * tr.bits.size < tr.bits.mean() * tr.bits.size < 0.95 * tr.bits.size
    assert 10 < flips < 0.5 * tr.bits.size


# ---------------------------------------------------------------- malformed folders
@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "m"
    (d / "captures").mkdir(parents=True)
    np.save(d / "captures" / "a.npy", (np.arange(1000) % 7 < 3).astype(np.uint8))
    return d


BASE = """format = "noisecell-measurements-1"
cell_id = "c1"
instrument = "scope"
synthetic = false
provenance = "bench, 2026-11-01"
[defaults]
temp_c = 27
vdd_v = "1.8V"
sample_period_s = "10ns"
"""
CAP = """[[capture]]
file = "captures/a.npy"
kind = "bits"
bias_v = "-5mV"
"""


def _write(d: Path, text: str) -> Path:
    (d / "measurements.toml").write_text(text)
    return d


def _err(d) -> str:
    with pytest.raises(InputError) as ei:
        load_measurements(d)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_valid_minimal_folder(folder):
    ms = load_measurements(_write(folder, BASE + CAP))
    (c,) = ms.captures
    assert c.bias_v == pytest.approx(-5e-3) and c.sample_period_s == pytest.approx(1e-8)
    assert c.bits.size == 1000 and c.supply_current_a is None


def test_missing_folder(tmp_path):
    assert "no such measurement folder" in _err(tmp_path / "nope")


def test_missing_metadata(folder):
    msg = _err(folder)
    assert "measurements.toml" in msg and "missing metadata" in msg


def test_bad_toml(folder):
    assert "not valid TOML" in _err(_write(folder, BASE + "[[capture]\n"))


def test_unknown_dataset_key(folder):
    msg = _err(_write(folder, "colour = 'red'\n" + BASE + CAP))
    assert "unknown key" in msg and "colour" in msg and "measurements.toml" in msg


def test_unknown_capture_key(folder):
    msg = _err(_write(folder, BASE + CAP + "gain = 3\n"))
    assert "unknown key" in msg and "gain" in msg and "captures/a.npy" in msg


def test_missing_required_key(folder):
    msg = _err(_write(folder, BASE.replace('sample_period_s = "10ns"\n', "") + CAP))
    assert "sample_period_s" in msg and "missing" in msg


def test_missing_dataset_key(folder):
    msg = _err(_write(folder, BASE.replace('instrument = "scope"\n', "") + CAP))
    assert "instrument" in msg


@pytest.mark.parametrize("value, needle", [('"-5mA"', "wrong unit"), ('"-5m"', "no unit"),
                                           ('"five"', "not a number"), ("true", "expected a number or a string")])
def test_wrong_units(folder, value, needle):
    msg = _err(_write(folder, BASE + CAP.replace('"-5mV"', value)))
    assert needle in msg and "bias_v" in msg


def test_wrong_temperature_unit(folder):
    msg = _err(_write(folder, BASE.replace("temp_c = 27", 'temp_c = "300K"') + CAP))
    assert "temp_c" in msg and "wrong unit" in msg


def test_missing_capture_file(folder):
    msg = _err(_write(folder, BASE + CAP.replace("a.npy", "b.npy")))
    assert "b.npy" in msg and "does not exist" in msg


def test_file_outside_folder(folder):
    msg = _err(_write(folder, BASE + CAP.replace("captures/a.npy", "../x.npy")))
    assert "inside the measurement folder" in msg


def test_mismatched_n_samples(folder):
    msg = _err(_write(folder, BASE + CAP + "n_samples = 999\n"))
    assert "a.npy" in msg and "999" in msg and "1000" in msg


def test_nan_in_bits(folder):
    x = np.zeros(100)
    x[17] = np.nan
    np.save(folder / "captures" / "a.npy", x)
    msg = _err(_write(folder, BASE + CAP))
    assert "a.npy" in msg and "NaN" in msg


def test_non_binary_values(folder):
    np.save(folder / "captures" / "a.npy", np.array([0, 1, 2, 1], dtype=np.int16))
    msg = _err(_write(folder, BASE + CAP))
    assert "a.npy" in msg and "0 or 1" in msg


def test_trace_with_ragged_rows(folder):
    (folder / "captures" / "t.csv").write_text("time_s,voltage_v\n0,0.1\n1e-9,1.7\n2e-9\n3e-9,0.1\n")
    text = BASE + CAP.replace("a.npy", "t.csv").replace('kind = "bits"', 'kind = "trace"')
    msg = _err(_write(folder, text))
    assert "t.csv" in msg


def test_trace_nan(folder):
    rows = "\n".join(f"{i * 1e-9},{'nan' if i == 5 else (1.8 if (i // 10) % 2 else 0.0)}" for i in range(100))
    (folder / "captures" / "t.csv").write_text("time_s,voltage_v\n" + rows + "\n")
    text = BASE + CAP.replace("a.npy", "t.csv").replace('kind = "bits"', 'kind = "trace"')
    msg = _err(_write(folder, text))
    assert "t.csv" in msg and ("NaN" in msg or "nan" in msg)


def test_trace_declared_as_bits(folder):
    rows = "\n".join(f"{i * 1e-9},{1.8 if (i // 10) % 2 else 0.0}" for i in range(100))
    (folder / "captures" / "t.csv").write_text("time_s,voltage_v\n" + rows + "\n")
    msg = _err(_write(folder, BASE + CAP.replace("a.npy", "t.csv")))
    assert "kind = \"trace\"" in msg


def test_synthetic_needs_provenance(folder):
    text = BASE.replace("synthetic = false", "synthetic = true").replace('"bench, 2026-11-01"', '"x"')
    msg = _err(_write(folder, text + CAP))
    assert "provenance" in msg


def test_no_captures(folder):
    msg = _err(_write(folder, BASE))
    assert "capture" in msg


def test_bad_kind_and_format(folder):
    assert "kind" in _err(_write(folder, BASE + CAP.replace('"bits"', '"scope"')))
    msg = _err(_write(folder, BASE + CAP + 'format = "npz"\n'))
    assert "npz" in msg and "not available" in msg


def test_duplicate_file(folder):
    assert "listed twice" in _err(_write(folder, BASE + CAP + CAP))


def test_copy_of_example_is_self_contained(tmp_path):
    # the example folder must not depend on where it lives (relative file names only)
    dst = tmp_path / "copy"
    shutil.copytree(EXAMPLE, dst)
    assert len(load_measurements(dst).captures) == len(load_measurements(EXAMPLE).captures)
