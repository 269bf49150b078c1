"""Bit-stream loaders: every format round-trips exactly; every bad file is a one-line InputError."""
import numpy as np
import pytest

from noisecell.errors import InputError
from noisecell.io import BitStream, guess_format, load_bits, load_trace
from noisecell.waveform import Waveform


@pytest.fixture
def bits():
    return (np.random.default_rng(7).random(1003) < 0.3).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.uint16, bool, np.float64])
def test_npy_any_int_dtype(tmp_path, bits, dtype):
    p = tmp_path / "x.npy"
    np.save(p, bits.astype(dtype))
    bs = load_bits(p, sample_period_s=1e-9)
    assert isinstance(bs, BitStream) and bs.bits.dtype == np.uint8
    np.testing.assert_array_equal(bs.bits, bits)
    assert bs.sample_period_s == 1e-9 and bs.source == str(p)


def test_bytes_and_packed(tmp_path, bits):
    bits.tofile(tmp_path / "x.bin")
    np.testing.assert_array_equal(load_bits(tmp_path / "x.bin").bits, bits)
    np.packbits(bits).tofile(tmp_path / "x.dat")
    out = load_bits(tmp_path / "x.dat", format="packed").bits
    # MSB-first: 1003 bits occupy 126 bytes; the 5 pad bits at the end are zeros
    assert out.size == 1008
    np.testing.assert_array_equal(out[:1003], bits)
    # MSB first, explicitly: 0b10000000 -> 1,0,0,0,0,0,0,0
    (tmp_path / "m.packed").write_bytes(bytes([0x80, 0x01]))
    np.testing.assert_array_equal(load_bits(tmp_path / "m.packed").bits, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])


def test_csv_bit_column_with_and_without_header(tmp_path, bits):
    (tmp_path / "h.csv").write_text("bit\n" + "\n".join(map(str, bits)) + "\n")
    (tmp_path / "n.csv").write_text("\n".join(map(str, bits)) + "\n")
    (tmp_path / "t.csv").write_text("time,bit\n" + "\n".join(f"{i},{b}" for i, b in enumerate(bits)) + "\n")
    for name in ("h.csv", "n.csv", "t.csv"):
        np.testing.assert_array_equal(load_bits(tmp_path / name).bits, bits)


def assert_same_up_to_edge_delay(got, want):
    """Equal except, possibly, a sample just after a transition: with hysteresis the comparator switches
    only when the new level clears the far band edge, which a noisy first sample may miss."""
    bad = np.flatnonzero(got != want)
    assert np.all(bad > 0) and np.all(want[bad] != want[bad - 1]), bad


def _telegraph_trace(rng, n_dwell=200, per=50, noise=0.01):
    state = np.repeat(rng.random(n_dwell) < 0.5, per).astype(np.uint8)
    t = np.arange(state.size) * 1e-9
    v = 0.1 * state + noise * rng.standard_normal(t.size)
    return t, v, state


def test_csv_time_voltage_is_digitised(tmp_path):
    t, v, state = _telegraph_trace(np.random.default_rng(3))
    p = tmp_path / "trace.csv"
    p.write_text("time_s,voltage\n" + "\n".join(f"{a:.12g},{b:.6g}" for a, b in zip(t, v)))
    bs = load_bits(p)
    # noise sigma 0.01 V vs half-separation 0.05 V: inside a dwell a 5-sigma excursion is needed to
    # reach the threshold (P ~ 3e-7 per sample, 10k samples), so only edge samples may differ
    assert_same_up_to_edge_delay(bs.bits, state)
    assert bs.meta["digitization"]["threshold_auto"] is True
    assert abs(bs.sample_period_s - 1e-9) < 1e-18
    tt, vv, _ = load_trace(p)
    assert tt.size == vv.size == t.size


def test_npz_waveform_differential(tmp_path):
    t, v, state = _telegraph_trace(np.random.default_rng(4))
    wf = Waveform(time_s=t, outputs={"v_out": v, "v_outb": 0.1 - v},
                  meta={"readout": {"mode": "differential", "threshold_v": 0.0}, "sample_period_s": 1e-9,
                        "temp_c": 27.0})
    p = wf.save_npz(tmp_path / "w.npz")
    bs = load_bits(p)
    assert_same_up_to_edge_delay(bs.bits, state)
    assert bs.meta["temp_c"] == 27.0 and bs.meta["digitization"]["readout"] == "differential"
    bs2 = load_bits(p, sample_period_s=1e-8)  # clocked every 10 trace steps
    assert_same_up_to_edge_delay(bs2.bits, state[::10])


@pytest.mark.parametrize("name,content,fragment", [
    ("ragged.csv", "time,voltage\n0,1\n1,2,3\n", "ragged"),
    ("short.csv", "a,b\n1,2\n3\n", "ragged"),
    ("nan.csv", "bit\n0\n1\nnan\n", "NaN"),
    ("empty.csv", "", "no data"),
    ("header_only.csv", "bit\n", "no data"),
    ("values.csv", "bit\n0\n1\n2\n", "0 or 1"),
    ("text.csv", "bit\n0\nx\n", "non-numeric"),
])
def test_bad_csv(tmp_path, name, content, fragment):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(InputError) as e:
        load_bits(p)
    msg = str(e.value)
    assert str(p) in msg and fragment in msg and "\n" not in msg


def test_bad_binary_and_npy(tmp_path):
    cases = {}
    (tmp_path / "empty.bin").write_bytes(b"")
    cases["empty.bin"] = "empty"
    (tmp_path / "vals.bin").write_bytes(bytes([0, 1, 7]))
    cases["vals.bin"] = "0 or 1"
    np.save(tmp_path / "nan.npy", np.array([0.0, 1.0, np.nan]))
    cases["nan.npy"] = "NaN"
    np.save(tmp_path / "two.npy", np.array([0, 2, 1]))
    cases["two.npy"] = "0 or 1"
    np.save(tmp_path / "empty.npy", np.array([], dtype=np.uint8))
    cases["empty.npy"] = "empty"
    np.save(tmp_path / "mat.npy", np.zeros((3, 4), dtype=np.uint8))
    cases["mat.npy"] = "1-D"
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases["junk.npy"] = "not a readable"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases["junk.npz"] = "not a readable"
    for name, frag in cases.items():
        with pytest.raises(InputError) as e:
            load_bits(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and frag in str(e.value), str(e.value)
    with pytest.raises(InputError, match="no such file"):
        load_bits(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="--format"):
        guess_format(tmp_path / "x.weird")
    with pytest.raises(InputError, match="positive"):
        load_bits(tmp_path / "vals.bin", sample_period_s=-1)
