"""Bit-stream loaders: measured or simulated captures → :class:`BitStream`.

Formats (guessed from the file extension when not given):

==========  ==========================================================================================
``npy``     NumPy array of 0/1, any integer or bool dtype (floats accepted only if exactly 0.0/1.0)
``bytes``   raw binary, one sample per byte, values 0x00/0x01 (NIST SP 800-90B convention; ``.bin``)
``packed``  raw binary, 8 samples per byte, most significant bit first (NIST SP 800-22 convention)
``csv``     one column of 0/1 bits (optional header), or ``time,voltage`` columns (header names such as
            ``time``/``t``/``time_s`` and ``v``/``voltage``/``v_out``) which are digitised
``npz``     noisecell :class:`~noisecell.waveform.Waveform`, digitised by its ``meta["readout"]``
==========  ==========================================================================================

Every problem with a file raises :class:`~noisecell.errors.InputError` with one line naming the file,
the problem and the fix (the CLI turns it into exit code 2).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .bitstream import BitStream  # re-exported: noisecell.io.BitStream
from .digitize import digitize_trace, digitize_waveform, readout_signal
from .errors import InputError
from .waveform import Waveform

FORMATS = ("npy", "bytes", "packed", "csv", "npz")
_EXT = {".npy": "npy", ".bin": "bytes", ".bytes": "bytes", ".dat": "bytes", ".packed": "packed",
        ".csv": "csv", ".txt": "csv", ".npz": "npz"}
_TIME_NAMES = {"time", "t", "time_s", "times", "time(s)", "t_s", "second", "seconds", "s"}
_VOLT_NAMES = {"v", "voltage", "v_out", "vout", "volts", "voltage_v", "v(out)", "out", "v_diff", "vdiff"}
_BIT_NAMES = {"bit", "bits", "b", "value", "sample", "out_bit", "q"}


def guess_format(path: str | os.PathLike) -> str:
    """Format name from the extension; raises InputError naming the choices when unknown."""
    ext = Path(path).suffix.lower()
    if ext not in _EXT:
        raise InputError(f"{path}: cannot tell the format from extension {ext!r}; "
                         f"give --format ({'|'.join(FORMATS)})")
    return _EXT[ext]


def _check_period(path, sample_period_s):
    if sample_period_s is None:
        return None
    try:
        sp = float(sample_period_s)
    except (TypeError, ValueError):
        raise InputError(f"{path}: sample period {sample_period_s!r} is not a number of seconds")
    if not np.isfinite(sp) or sp <= 0:
        raise InputError(f"{path}: sample period must be a positive number of seconds, got {sample_period_s!r}")
    return sp


def _as_bits(path, arr: np.ndarray, what: str) -> np.ndarray:
    """Validate 0/1 content and return a contiguous uint8 array (no copy when already uint8)."""
    if arr.size == 0:
        raise InputError(f"{path}: {what} is empty; a bit stream needs at least 2 samples")
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr.reshape(-1)).view(np.uint8)
    if arr.dtype.kind == "f":
        bad_nan = ~np.isfinite(arr)
        if bad_nan.any():
            i = int(np.flatnonzero(bad_nan.reshape(-1))[0])
            raise InputError(f"{path}: {what} has NaN/inf at sample {i}; bits must be 0 or 1")
    elif arr.dtype.kind not in "iu":
        raise InputError(f"{path}: {what} has dtype {arr.dtype}; expected integer or bool 0/1 values")
    flat = arr.reshape(-1)
    if flat.dtype == np.uint8 and (flat.size == 0 or int(flat.max()) <= 1):
        # fast path without temporaries: large captures stay at 1 byte per sample while loading
        return np.ascontiguousarray(flat)
    bad = (flat != 0) & (flat != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: {what} has value {flat[i].item()!r} at sample {i}; bits must be 0 or 1"
                         + (" (one byte per sample; for packed 8-bits-per-byte files use --format packed)"
                            if what == "byte stream" else ""))
    if flat.dtype == np.uint8:
        return np.ascontiguousarray(flat)
    return flat.astype(np.uint8)


def _read_raw(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a bit-stream file")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})")


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=None)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc.__class__.__name__}: {exc})")
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: expected a single .npy array (for waveforms use --format npz)")
    if arr.ndim > 1 and sum(s > 1 for s in arr.shape) > 1:
        raise InputError(f"{path}: array has shape {arr.shape}; expected a 1-D stream of 0/1 bits")
    return _as_bits(path, arr, "array")


def _read_csv_table(path: Path):
    """(column names or None, float 2-D array). Rejects ragged rows, non-numbers, NaN with the line number."""
    import csv

    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})")
    with fh:
        try:
            sample = fh.read(4096)
            fh.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(fh, dialect)
            header = None
            rows: list[list[str]] = []
            linenos: list[int] = []
            width = None
            for lineno, row in enumerate(reader, start=1):
                row = [c.strip() for c in row]
                if not row or all(c == "" for c in row) or row[0].startswith("#"):
                    continue
                if header is None and width is None:
                    try:
                        [float(c) for c in row]
                    except ValueError:
                        header = [c.lower() for c in row]
                        width = len(row)
                        continue
                if width is None:
                    width = len(row)
                if len(row) != width:
                    raise InputError(f"{path}: line {lineno} has {len(row)} fields, expected {width} "
                                     f"(ragged CSV); fix or remove that line")
                rows.append(row)
                linenos.append(lineno)
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a text CSV file (binary content); for raw bytes use --format bytes or packed")
    if not rows:
        raise InputError(f"{path}: no data rows; a CSV needs a bit column or time,voltage columns")
    try:
        data = np.array(rows, dtype=float)
    except ValueError:
        for i, row in enumerate(rows):
            for c in row:
                try:
                    float(c)
                except ValueError:
                    raise InputError(f"{path}: line {linenos[i]} has non-numeric field {c!r}; "
                                     "only numbers are allowed below the header")
        raise
    bad = ~np.isfinite(data)
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        raise InputError(f"{path}: line {linenos[r]} contains NaN or inf; remove or fix it")
    return header, data


def _csv_columns(path: Path, header, data):
    """Decide between a bit column and time,voltage: returns ("bits", col) or ("trace", t_col, v_col)."""
    ncol = data.shape[1]
    if header is not None:
        names = header
        t = next((i for i, n in enumerate(names) if n in _TIME_NAMES), None)
        v = next((i for i, n in enumerate(names) if n in _VOLT_NAMES or n.startswith("v(")), None)
        b = next((i for i, n in enumerate(names) if n in _BIT_NAMES), None)
        if b is not None:
            return ("bits", b)
        if t is not None and v is not None:
            return ("trace", t, v)
        if ncol == 1:
            return ("bits", 0)
        if ncol == 2 and t is not None:
            return ("trace", t, 1 - t)
        raise InputError(f"{path}: cannot tell which columns hold the data from header {header}; "
                         "name them 'bit', or 'time' and 'voltage'")
    if ncol == 1:
        return ("bits", 0)
    if ncol == 2:
        return ("trace", 0, 1)
    raise InputError(f"{path}: {ncol} unnamed columns; give a header naming 'bit', or 'time' and 'voltage'")


def load_trace(path: str | os.PathLike, format: str | None = None):
    """Analog trace from a ``time,voltage`` CSV or a noisecell ``.npz``: ``(time_s, volts, meta)``.

    For ``.npz`` the voltage is the readout signal (``v_out - v_outb`` for a differential readout).
    """
    path = Path(path)
    fmt = format or guess_format(path)
    if fmt == "npz":
        wf = Waveform.load_npz(path)
        v, mode, thr = readout_signal(wf, source=str(path))
        return np.asarray(wf.time_s, float), v, {**wf.meta, "readout_mode": mode}
    if fmt == "csv":
        header, data = _read_csv_table(path)
        kind = _csv_columns(path, header, data)
        if kind[0] != "trace":
            raise InputError(f"{path}: holds a bit column, not a time,voltage trace")
        return data[:, kind[1]], data[:, kind[2]], {"format": "csv"}
    raise InputError(f"{path}: format {fmt!r} holds bits, not an analog trace; use csv or npz")


def load_bits(path: str | os.PathLike, format: str | None = None, *, sample_period_s: float | None = None,
              threshold_v: float | None = None, hysteresis_v: float | None = None) -> BitStream:
    """Load a bit stream (see the module docstring for the formats).

    sample_period_s: time between samples, s. For bit files it is recorded (None: unknown); for
        traces (csv time,voltage or npz) it is the clock of the sampler (None: the trace's own step,
        or the waveform's ``meta["sample_period_s"]``).
    threshold_v, hysteresis_v: comparator settings for traces, V (None: automatic; see digitize).
    """
    path = Path(path)
    fmt = (format or guess_format(path)).lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    sp = _check_period(path, sample_period_s)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a bit-stream file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    meta: dict = {"format": fmt, "path": str(path)}
    if fmt == "npy":
        bits = _load_npy(path)
    elif fmt == "bytes":
        bits = _as_bits(path, _read_raw(path), "byte stream")
    elif fmt == "packed":
        raw = _read_raw(path)
        if raw.size == 0:
            raise InputError(f"{path}: file is empty; a bit stream needs at least 2 samples")
        bits = np.unpackbits(raw, bitorder="big")
    elif fmt == "csv":
        header, data = _read_csv_table(path)
        kind = _csv_columns(path, header, data)
        if kind[0] == "bits":
            bits = _as_bits(path, data[:, kind[1]], "bit column")
        else:
            bs, _ = digitize_trace(data[:, kind[1]], data[:, kind[2]], threshold_v=threshold_v,
                                   hysteresis_v=hysteresis_v, sample_period_s=sp, source=str(path),
                                   meta=meta)
            return _at_least_two(path, bs, sp)
    else:  # npz
        wf = Waveform.load_npz(path)
        bs, _ = digitize_waveform(wf, threshold_v=threshold_v, hysteresis_v=hysteresis_v,
                                  sample_period_s=sp, source=str(path))
        return _at_least_two(path, BitStream(bits=bs.bits, sample_period_s=bs.sample_period_s, source=str(path),
                                             meta={**bs.meta, "format": "npz", "path": str(path)}), sp)
    if bits.size < 2:
        raise InputError(f"{path}: holds {bits.size} sample(s); a bit stream needs at least 2")
    return BitStream(bits=bits, sample_period_s=sp, source=str(path), meta=meta)


def _at_least_two(path: Path, bs: BitStream, sample_period_s: float | None) -> BitStream:
    """A digitised trace must give a stream (found by tests/test_fuzz.py: a 200 ns trace read with a
    1 µs sampler gave one sample)."""
    if bs.bits.size < 2:
        why = (f" at a {sample_period_s:g} s sample period; shorten --sample-period" if sample_period_s
               else "; the trace is too short")
        raise InputError(f"{path}: the trace digitises to {bs.bits.size} sample(s){why} (a bit stream needs at least 2)")
    return bs
