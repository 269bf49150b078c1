"""The waveform: what a simulation (or a scope capture) hands to the analysis stage.

Stored as ``.npz`` with arrays ``time_s`` (s), ``v_out`` (primary output, V), ``i_vdd`` (main supply
current delivered into the cell, A), one ``v_<name>`` per extra output, one ``i_<supply>`` per supply,
and ``meta_json`` (a JSON string: cell, bias_v, corner, temp_c, vdd_v, seed, noise_step_s, job_id,
supply voltages, threshold, ...).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError


def _parse_meta(path: Path, raw) -> dict:
    """The ``meta_json`` record of a waveform file: a JSON object, else an InputError naming the file."""
    fix = "rewrite the file with noisecell simulate or drop the meta_json array"
    text = str(raw)
    try:
        meta = json.loads(text)
    except RecursionError:  # json's C scanner stops at the interpreter's recursion limit
        raise InputError(f"{path}: meta_json is nested too deeply to be a waveform's metadata; {fix}") from None
    except ValueError as exc:
        raise InputError(f"{path}: meta_json is not valid JSON ({str(exc)[:80]}); {fix}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: meta_json is a JSON {type(meta).__name__}, not an object; {fix}")
    sv = meta.get("supply_voltages", {})
    if not isinstance(sv, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sv.values()):
        raise InputError(f"{path}: meta_json supply_voltages must map names to numbers; {fix}")
    return meta


@dataclass(frozen=True)
class Waveform:
    """Sampled transient result.

    time_s: sample times, s (strictly increasing).
    outputs: node voltages, V; the key ``"v_out"`` is the primary output the cell's bit is read from.
    supply_currents: current each supply delivers into the cell, A (positive = power drawn).
    supply_voltages: each supply's voltage, V (same keys as ``supply_currents``).
    meta: JSON-serialisable description of how it was made.
    """

    time_s: np.ndarray
    outputs: dict[str, np.ndarray]
    supply_currents: dict[str, np.ndarray] = field(default_factory=dict)
    supply_voltages: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def v_out(self) -> np.ndarray:
        return self.outputs["v_out"]

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0]) if len(self.time_s) > 1 else 0.0

    def supply_power_w(self) -> np.ndarray:
        """Instantaneous total power drawn from all supplies, W."""
        total = np.zeros_like(self.time_s, dtype=float)
        for name, i in self.supply_currents.items():
            total = total + self.supply_voltages[name] * i
        return total

    def mean_supply_power_w(self) -> float:
        """Time-averaged (trapezoidal, so non-uniform steps are weighted correctly) power, W."""
        p = self.supply_power_w()
        if len(self.time_s) < 2:
            return float(p.mean()) if len(p) else float("nan")
        return float(np.trapezoid(p, self.time_s) / self.duration_s)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename) as compressed .npz."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"time_s": np.asarray(self.time_s)}
        for k, v in self.outputs.items():
            arrays[k if k.startswith("v_") else f"v_{k}"] = np.asarray(v)
        for k, v in self.supply_currents.items():
            arrays[f"i_{k}"] = np.asarray(v)
        meta = dict(self.meta)
        meta["supply_voltages"] = dict(self.supply_voltages)
        arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
        with atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    def readout_signal(self, *, source: str = "waveform") -> tuple[np.ndarray, str, float | None]:
        """The voltage the cell's bit is read from, per ``meta["readout"]``: (volts, mode, threshold V
        or None). Differential: v_out - v_outb; single: v_out (the one place this is computed)."""
        ro = self.meta.get("readout") or {}
        mode = ro.get("mode", "differential" if "v_outb" in self.outputs else "single")
        thr = ro.get("threshold_v")
        if mode == "differential":
            if "v_outb" not in self.outputs:
                raise InputError(f"{source}: readout is differential but the waveform has no v_outb array")
            v = np.asarray(self.outputs["v_out"], float) - np.asarray(self.outputs["v_outb"], float)
        elif mode == "single":
            v = np.asarray(self.outputs["v_out"], float)
        else:
            raise InputError(f"{source}: unknown readout mode {mode!r} (expected 'differential' or 'single')")
        return v, mode, (None if thr is None else float(thr))

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> "Waveform":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise InputError(f"{path}: no such file")
        except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError ...
            raise InputError(f"{path}: not a readable noisecell .npz waveform ({exc.__class__.__name__}: {exc})")
        for key in ("time_s", "v_out"):
            if key not in data:
                raise InputError(f"{path}: missing array {key!r}; a noisecell waveform needs time_s and v_out")
        meta = _parse_meta(path, data.pop("meta_json")) if "meta_json" in data else {}
        supply_voltages = {k: float(v) for k, v in meta.pop("supply_voltages", {}).items()}
        time_s = data.pop("time_s")
        outputs = {k: v for k, v in data.items() if k.startswith("v_")}
        currents = {k[2:]: v for k, v in data.items() if k.startswith("i_")}
        n = len(time_s)
        for k, v in {**outputs, **{f"i_{c}": a for c, a in currents.items()}}.items():
            if v.shape != (n,):
                raise InputError(f"{path}: array {k!r} has shape {v.shape}, expected ({n},) like time_s")
            if not np.all(np.isfinite(v)):
                raise InputError(f"{path}: array {k!r} contains NaN or inf")
        return cls(time_s=time_s, outputs=outputs, supply_currents=currents,
                   supply_voltages=supply_voltages, meta=meta)
