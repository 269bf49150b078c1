"""Measured captures from a test chip: the on-disk format and its loader.

A measurement folder holds one metadata file, ``measurements.toml``, and the capture files it lists
(bit streams or scope traces). The format is documented in ``measurements/README.md``; in short::

    format = "noisecell-measurements-1"
    cell_id = "chip07-r3c12"          # which physical cell was measured
    cell = "pbit"                     # optional: the noisecell cell it is a measurement of
    instrument = "Keysight DSOX1204G, 10:1 probe"
    synthetic = false                 # true if the data were not measured (then say how in provenance)
    provenance = "who measured it, when, how"
    notes = "free text"

    [defaults]                        # any capture key, applied to every capture that omits it
    temp_c = 27
    vdd_v = "1.8V"
    sample_period_s = "10ns"

    [[capture]]
    file = "captures/bias_m010mV.npy"
    kind = "bits"                     # "bits" (0/1 samples) or "trace" (time, voltage)
    bias_v = "-10mV"
    supply_current_a = "4.1uA"        # optional: mean supply current, for power and energy
    n_samples = 200000                # optional: checked against the file

Quantities are numbers in the SI unit the key ends with (``bias_v = -0.01``) or strings with an SI
prefix and that unit (``bias_v = "-10mV"``); a string with another unit is refused. Everything the
loader cannot use is an :class:`~noisecell.errors.InputError` with one line naming the file and the fix.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .digitize import digitize_trace
from .errors import InputError
from .io import load_bits, load_trace
from .units import parse_si

FORMAT_ID = "noisecell-measurements-1"
METADATA_FILE = "measurements.toml"

# keys, types and descriptions of measurements.toml: noisecell/schemas/measurements-v1.json
#: capture-level quantities -> (unit letter for parse_si, required?)
_QUANTITIES = {
    "bias_v": ("V", True),
    "temp_c": ("C", True),
    "vdd_v": ("V", True),
    "sample_period_s": ("s", True),
    "supply_current_a": ("A", False),
    "threshold_v": ("V", False),
    "hysteresis_v": ("V", False),
}
_CAPTURE_TEXT = {"file": True, "kind": True, "format": False, "notes": False, "cell_id": False,
                 "instrument": False}
_FORMATS = {".npy": "npy", ".bin": "bytes", ".bytes": "bytes", ".packed": "packed", ".csv": "csv",
            ".npz": "npz"}
_BIT_FORMATS = ("npy", "bytes", "packed", "csv")
_TRACE_FORMATS = ("csv", "npz")


@dataclass(frozen=True)
class Capture:
    """One measured capture at one operating point.

    bits: the 0/1 samples (uint8), one per ``sample_period_s`` (s); for traces, the digitised trace.
    trace_time_s, trace_v: the scope trace (s, V) for ``kind == "trace"``; None for bit captures.
    threshold_v, hysteresis_v: comparator used to digitise a trace (V; automatic from the trace's
        bimodal histogram when the metadata omit them); None for bit captures.
    supply_current_a: mean supply current (A) if it was measured, else None.
    """

    file: Path
    kind: str
    format: str
    bias_v: float
    temp_c: float
    vdd_v: float
    sample_period_s: float
    bits: np.ndarray
    cell_id: str
    instrument: str
    notes: str = ""
    supply_current_a: float | None = None
    threshold_v: float | None = None
    hysteresis_v: float | None = None
    trace_time_s: np.ndarray | None = None
    trace_v: np.ndarray | None = None

    @property
    def mean_supply_power_w(self) -> float | None:
        """Mean power drawn from the supply, W (vdd × mean current), or None if no current was measured."""
        if self.supply_current_a is None:
            return None
        return self.vdd_v * self.supply_current_a

    def to_dict(self) -> dict:
        return {"file": str(self.file), "kind": self.kind, "format": self.format, "bias_v": self.bias_v,
                "temp_c": self.temp_c, "vdd_v": self.vdd_v, "sample_period_s": self.sample_period_s,
                "n_samples": int(self.bits.size), "cell_id": self.cell_id, "instrument": self.instrument,
                "supply_current_a": self.supply_current_a, "threshold_v": self.threshold_v,
                "notes": self.notes}


@dataclass(frozen=True)
class MeasurementSet:
    """A loaded measurement folder: dataset metadata plus its captures (sorted by temperature, supply, bias)."""

    root: Path
    cell_id: str
    instrument: str
    synthetic: bool
    provenance: str
    captures: tuple[Capture, ...]
    cell: str | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "cell_id": self.cell_id, "cell": self.cell,
                "instrument": self.instrument, "synthetic": self.synthetic, "provenance": self.provenance,
                "notes": self.notes, **self.extra, "captures": [c.to_dict() for c in self.captures]}

    def summary(self) -> str:
        kind = "SYNTHETIC" if self.synthetic else "measured"
        temps = sorted({c.temp_c for c in self.captures})
        biases = sorted({c.bias_v for c in self.captures})
        return "\n".join([
            f"measurements {self.root} ({kind}): cell_id {self.cell_id}, {len(self.captures)} captures",
            f"  instrument: {self.instrument}",
            f"  bias {min(biases):+.4g} .. {max(biases):+.4g} V ({len(biases)} points), temperatures {temps} °C",
            f"  provenance: {self.provenance}",
        ])


_QTY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(meg|[tgkmuµnpfa]?)\s*([a-zA-Z°]*)\s*$",
                  re.IGNORECASE)


def _quantity(value, key: str, unit: str, where: str) -> float:
    """A number in ``unit`` or a string "<number><SI prefix><unit>"; the unit is required in strings."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{where}: {key} must be a number in {unit} or a string like \"10m{unit}\", got {value!r}")
    if not isinstance(value, str):
        x = float(value)
        if not math.isfinite(x):
            raise InputError(f"{where}: {key} = {value!r} is not finite")
        return x
    m = _QTY.match(value)
    if m is None:
        raise InputError(f"{where}: {key} = {value!r} is not a number with an SI prefix and unit "
                         f"(write e.g. \"10m{unit}\" or a plain number in {unit})")
    mantissa, prefix, trailing = m.groups()
    if not trailing and prefix.lower() == unit.lower():
        # "1A": the regex took the unit letter for the atto prefix
        return float(mantissa)
    if unit == "C":
        # temperatures take no SI prefix: 27, "27C", "27degC", "27°C"
        if not prefix and trailing.lower() in ("c", "degc", "°c"):
            return float(mantissa)
        raise InputError(f"{where}: {key} = {value!r} has the wrong unit; temperatures are in °C (write 27 or \"27C\")")
    if not trailing:
        # a bare "10m" is refused: the author may have meant 10 ms, not 10 mV
        raise InputError(f"{where}: {key} = {value!r} has no unit; write \"{value.strip()}{unit}\" or a plain number in {unit}")
    if trailing.lower() != unit.lower():
        raise InputError(f"{where}: {key} = {value!r} has the wrong unit {trailing!r}; {key} is in {unit}")
    return parse_si(value, unit=unit, what=f"{where}: {key}")


def _read_metadata(root: Path) -> dict:
    path = root / METADATA_FILE
    if not root.exists():
        raise InputError(f"{root}: no such measurement folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; --measurements takes a folder holding {METADATA_FILE}")
    if not path.is_file():
        raise InputError(f"{path}: missing metadata file; a measurement folder needs {METADATA_FILE} "
                         f"(see measurements/README.md)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc})")
    except RecursionError:
        raise InputError(f"{path}: arrays/tables nested too deeply; see measurements/README.md for the format") from None


def load_measurements(folder: str | Path) -> MeasurementSet:
    """Load and validate a measurement folder (``measurements.toml`` plus capture files).

    Every malformed case raises :class:`InputError` with one line naming the file and the fix:
    missing metadata, unknown keys, missing required keys, wrong units, missing capture file,
    unreadable file, values other than 0/1, NaN/inf, lengths that disagree, empty captures.
    """
    root = Path(folder)
    meta = _read_metadata(root)
    mpath = root / METADATA_FILE
    if hasattr(meta.get("date"), "isoformat"):  # a TOML date: kept as text
        meta["date"] = meta["date"].isoformat()
    from .schema import validate

    validate(meta, "measurements-v1.json", str(mpath))  # keys, types, enums; unknown keys refused
    if meta["synthetic"] and len(meta["provenance"].strip()) < 20:
        raise InputError(f"{mpath}: synthetic = true needs a provenance that says how the data were made")
    defaults = meta.get("defaults", {})
    captures_raw = meta["capture"]
    captures = []
    seen_files: set[str] = set()
    for i, raw in enumerate(captures_raw):
        where = f"{mpath} [[capture]] #{i + 1}"
        where = f"{mpath} [[capture]] #{i + 1} ({raw['file']})" if "file" in raw else where
        entry = {**defaults, **raw}
        for key, req in {**_CAPTURE_TEXT, **{k: r for k, (_, r) in _QUANTITIES.items()}}.items():
            if req and key not in entry:
                raise InputError(f"{where}: missing required key {key} (set it here or in [defaults])")
        q = {k: (_quantity(entry[k], k, unit, where) if k in entry else None)
             for k, (unit, _) in _QUANTITIES.items()}
        if q["sample_period_s"] <= 0:
            raise InputError(f"{where}: sample_period_s must be > 0, got {entry['sample_period_s']!r}")
        if q["vdd_v"] <= 0:
            raise InputError(f"{where}: vdd_v must be > 0, got {entry['vdd_v']!r}")
        if not -273.15 < q["temp_c"] < 1000:
            raise InputError(f"{where}: temp_c = {q['temp_c']} °C is not a plausible temperature")
        if q["supply_current_a"] is not None and q["supply_current_a"] < 0:
            raise InputError(f"{where}: supply_current_a must be >= 0 (current drawn from the supply)")
        if q["hysteresis_v"] is not None and q["hysteresis_v"] < 0:
            raise InputError(f"{where}: hysteresis_v must be >= 0")
        n_declared = entry.get("n_samples")
        n_declared = None if n_declared is None else int(n_declared)
        kind = entry["kind"]
        rel = entry["file"]
        fpath = (root / rel)
        try:
            inside = fpath.resolve().is_relative_to(root.resolve())
        except OSError:
            inside = False
        if Path(rel).is_absolute() or not inside:
            raise InputError(f"{where}: file must be a path inside the measurement folder, got {rel!r}")
        if rel in seen_files:
            raise InputError(f"{where}: file {rel!r} is listed twice")
        seen_files.add(rel)
        if not fpath.is_file():
            raise InputError(f"{fpath}: capture file listed in {mpath} does not exist; fix the file name or add the file")
        fmt = entry.get("format") or _FORMATS.get(fpath.suffix.lower())
        if fmt is None:
            raise InputError(f"{where}: cannot infer the format from {fpath.suffix!r}; set format to one of "
                             f"{', '.join(sorted(set(_FORMATS.values())))}")
        allowed_fmt = _BIT_FORMATS if kind == "bits" else _TRACE_FORMATS
        if fmt not in allowed_fmt:
            raise InputError(f"{where}: format {fmt!r} is not available for kind {kind!r}; use one of {', '.join(allowed_fmt)}")
        trace_t = trace_v = None
        threshold = hysteresis = None
        if kind == "bits":
            bs = load_bits(fpath, fmt)
            if "digitization" in bs.meta:
                raise InputError(f"{fpath}: holds a time,voltage trace but kind = \"bits\" in {mpath}; "
                                 f"set kind = \"trace\"")
            bits = bs.bits
            if fmt == "packed" and n_declared is not None:
                # packed files are padded to whole bytes: n_samples says where the stream ends
                if not bits.size - 8 < n_declared <= bits.size:
                    raise InputError(f"{fpath}: holds {bits.size} packed bits but n_samples = {n_declared} in "
                                     f"{mpath}; fix n_samples or the file")
                bits = bits[:n_declared]
            if n_declared is not None and n_declared != bits.size:
                raise InputError(f"{fpath}: holds {bits.size} samples but n_samples = {n_declared} in {mpath}; "
                                 f"fix n_samples or the file")
        else:
            trace_t, trace_v, _ = load_trace(fpath, fmt)
            if trace_t.size != trace_v.size:
                raise InputError(f"{fpath}: time has {trace_t.size} points but voltage has {trace_v.size}; "
                                 f"they must match")
            if n_declared is not None and n_declared != trace_t.size:
                raise InputError(f"{fpath}: the trace has {trace_t.size} points but n_samples = {n_declared} in "
                                 f"{mpath}; fix n_samples or the file")
            bs, dig = digitize_trace(trace_t, trace_v, threshold_v=q["threshold_v"],
                                     hysteresis_v=q["hysteresis_v"], sample_period_s=q["sample_period_s"],
                                     source=str(fpath))
            bits = bs.bits
            threshold, hysteresis = dig.threshold_v, dig.hysteresis_v
        if bits.size < 2:
            raise InputError(f"{fpath}: fewer than 2 samples; the capture is empty or truncated")
        captures.append(Capture(
            file=fpath, kind=kind, format=fmt, bias_v=q["bias_v"], temp_c=q["temp_c"], vdd_v=q["vdd_v"],
            sample_period_s=q["sample_period_s"], bits=bits,
            cell_id=entry.get("cell_id", meta["cell_id"]), instrument=entry.get("instrument", meta["instrument"]),
            notes=entry.get("notes", ""), supply_current_a=q["supply_current_a"], threshold_v=threshold,
            hysteresis_v=hysteresis,
            trace_time_s=trace_t, trace_v=trace_v))
    keys = [(c.temp_c, c.vdd_v, c.bias_v) for c in captures]
    order = sorted(range(len(captures)), key=lambda j: keys[j])
    extra = {k: meta[k] for k in ("date", "operator") if k in meta}
    return MeasurementSet(root=root, cell_id=meta["cell_id"], instrument=meta["instrument"],
                          synthetic=meta["synthetic"], provenance=meta["provenance"],
                          captures=tuple(captures[j] for j in order), cell=meta.get("cell"),
                          notes=meta.get("notes", ""), extra=extra)
