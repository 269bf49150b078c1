"""Sweep specification: a TOML file (read with :mod:`tomllib`) validated into a frozen :class:`SweepSpec`.

Every key is documented in ``docs/sweeps.md``. Errors are one line naming the spec file, the key and
the fix, raised as :class:`noisecell.errors.InputError` (CLI exit 2).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..units import parse_si

# the keys a spec may contain, their types and descriptions: noisecell/schemas/sweep-spec-v1.json

from ..noise import DEFAULT_NOISE_STEP_S  # noqa: E402  (the NT-convergence study's choice)
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_RETRIES = 2
#: the largest axis product accepted, so that a typo (num = 1e6) fails fast instead of filling a disk
MAX_JOBS = 200_000


@dataclass(frozen=True)
class AdaptiveSpec:
    """Adaptive duration: extend each point in chunks until its P(1) 95 % CI half-width ≤ target.

    target_p1_ci_halfwidth: dimensionless (0 < x < 0.5).
    chunk_s: simulated time per chunk, s.
    max_duration_s: the most simulated time one point may use, s (a whole number of chunks, rounded up).
    min_duration_s: simulated time every point gets before the stopping rule is checked, s.
    """

    target_p1_ci_halfwidth: float
    chunk_s: float
    max_duration_s: float
    min_duration_s: float

    @property
    def min_chunks(self) -> int:
        return max(1, math.ceil(self.min_duration_s / self.chunk_s - 1e-9))

    @property
    def max_chunks(self) -> int:
        return max(self.min_chunks, math.ceil(self.max_duration_s / self.chunk_s - 1e-9))


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. Units: seconds, volts, °C. ``vdd_v`` empty = the cell's nominal supply."""

    cell: str
    duration_s: float | None
    noise_step_s: float
    seed: int
    bias_v: tuple[float, ...]
    temp_c: tuple[float, ...]
    corners: tuple[str, ...]
    vdd_v: tuple[float, ...]
    mismatch_instances: int
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: CPU-time limit of each simulation, CPU-s per simulated µs (None: the simulator's default,
    #: noisecell.simulator.host.CPU_S_PER_SIMULATED_US; 0: none)
    cpu_per_us: float | None = None
    retries: int = DEFAULT_RETRIES
    workers: int | None = None
    executor: str = "local"
    threshold_v: float | None = None
    use_trim: bool = True
    keep_waveforms: bool = True
    params: Mapping[str, float] = field(default_factory=dict)
    adaptive: AdaptiveSpec | None = None
    #: mismatch instances: the bias axis is relative to each instance's DC bias offset (V)
    bias_about_offset: bool = False
    #: explicit trim values (V) replacing the stored trim at every point (e.g. one Monte Carlo
    #: instance's own trim, noisecell.trim.instance_trim); empty = the stored trim
    trim: Mapping[str, float] = field(default_factory=dict)
    source: str = "<spec>"

    def to_dict(self) -> dict:
        """JSON-ready canonical form (stored in the sweep's manifest.json); excludes ``source``."""
        d = asdict(self)
        d.pop("source")
        d["params"] = dict(sorted(self.params.items()))
        if self.trim:
            d["trim"] = dict(sorted(self.trim.items()))
        else:  # absent when unused, so the manifests (and ids) of specs without it are unchanged
            d.pop("trim")
        if self.cpu_per_us is None:  # likewise (the simulator's default applies)
            d.pop("cpu_per_us")
        return d

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def n_points(self) -> int:
        return (len(self.bias_v) * len(self.temp_c) * len(self.corners) * max(1, len(self.vdd_v))
                * max(1, self.mismatch_instances))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<spec>") -> "SweepSpec":
        """Rebuild from :meth:`to_dict` output (manifest); no re-validation of the cell."""
        d = dict(d)
        ad = d.pop("adaptive", None)
        for k in ("bias_v", "temp_c", "corners", "vdd_v"):
            d[k] = tuple(d[k])
        return cls(**d, adaptive=AdaptiveSpec(**ad) if ad else None, source=source)


class _Ctx:
    """Error helper: every message starts with the spec file name."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{self.source}: {key}: {msg}")

    def si(self, key: str, value: Any, unit: str) -> float:
        if isinstance(value, (list, dict)):
            raise self.fail(key, f"expected one value with unit {unit!r} (e.g. \"20u{unit}\"), got {value!r}")
        try:
            return parse_si(value, unit=unit, what=f"{self.source}: {key}")
        except InputError as exc:
            raise InputError(str(exc)) from None

    def positive(self, key: str, value: Any, unit: str) -> float:
        x = self.si(key, value, unit)
        if x <= 0:
            raise self.fail(key, f"must be > 0 {unit}, got {value!r}")
        return x

    def integer(self, key: str, value: Any, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise self.fail(key, f"expected a whole number, got {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be ≥ {minimum}, got {value}")
        return int(value)

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value


def _axis(ctx: _Ctx, key: str, value: Any, unit: str, *, allow_empty: bool = False) -> tuple[float, ...]:
    """A numeric axis: a list of values or a range table {start, stop, num} / {start, stop, step}."""
    if isinstance(value, dict):
        for req in ("start", "stop"):
            if req not in value:
                raise ctx.fail(key, f"a range needs 'start' and 'stop' plus 'num' or 'step' (missing {req!r})")
        start = ctx.si(f"{key}.start", value["start"], unit)
        stop = ctx.si(f"{key}.stop", value["stop"], unit)
        if ("num" in value) == ("step" in value):
            raise ctx.fail(key, "give exactly one of 'num' (number of points) or 'step'")
        if "num" in value:
            num = ctx.integer(f"{key}.num", value["num"], minimum=1)
            if num > MAX_JOBS:
                raise ctx.fail(f"{key}.num", f"{num} points is more than the {MAX_JOBS} a sweep accepts")
            if num == 1 and start != stop:
                raise ctx.fail(key, "num = 1 needs start == stop (or use a list of one value)")
            vals = np.linspace(start, stop, num)
        else:
            step = ctx.si(f"{key}.step", value["step"], unit)
            if step == 0 or (stop - start) * step < 0:
                raise ctx.fail(f"{key}.step", f"step {value['step']!r} never reaches stop from start; "
                                              "give it the sign of (stop - start) and make it non-zero")
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            if n > MAX_JOBS:
                raise ctx.fail(f"{key}.step", f"{n:.3g} points is more than the {MAX_JOBS} a sweep accepts; raise the step")
            vals = start + step * np.arange(n)
        # round away float noise from linspace/arange (1e-15 V is far below any physical meaning),
        # so that ids and seeds do not depend on the last bit of an addition
        out = tuple(float(round(v, 15)) for v in vals)
    elif isinstance(value, list):
        out = tuple(ctx.si(f"{key}[{i}]", v, unit) for i, v in enumerate(value))
    else:
        out = (ctx.si(key, value, unit),)
    if not out and not allow_empty:
        raise ctx.fail(key, "empty axis; give at least one value (or leave the key out for the cell's nominal)")
    if len(set(out)) != len(out):
        raise ctx.fail(key, f"duplicate values in {list(out)}; each point must be distinct")
    return out


def parse_spec(data: Mapping[str, Any], source: str = "<spec>", base_dir: str | os.PathLike | None = None
               ) -> SweepSpec:
    """Validate a spec already read from TOML. ``base_dir`` resolves a relative cell path.

    Structure (keys, types, unknown keys) is checked against ``schemas/sweep-spec-v1.json``; values
    (SI strings, ranges, cross-key rules) here.
    """
    from ..schema import validate

    ctx = _Ctx(source)
    validate(dict(data), "sweep-spec-v1.json", source)

    if "cell" not in data:
        raise ctx.fail("cell", "missing; name a cell from spice_models/ (e.g. cell = \"pbit\") or a path")
    cell = data["cell"]
    if not isinstance(cell, str) or not cell.strip():
        raise ctx.fail("cell", f"expected a cell name or path (a string), got {cell!r}")
    cell = cell.strip()
    if base_dir is not None and ("/" in cell or cell.endswith((".toml", ".cir", ".sp", ".spice"))):
        p = Path(cell)
        if not p.is_absolute():
            cell = str((Path(base_dir) / p).resolve())

    adaptive = None
    duration_s = None
    if "duration" in data:
        duration_s = ctx.positive("duration", data["duration"], "s")
    if "adaptive" in data:
        a = data["adaptive"]
        if not isinstance(a, dict):
            raise ctx.fail("adaptive", "must be a table ([adaptive])")
        for req in ("target_p1_ci_halfwidth", "chunk", "max_duration"):
            if req not in a:
                raise ctx.fail(f"adaptive.{req}", "missing (needed for adaptive duration)")
        tgt = a["target_p1_ci_halfwidth"]
        if isinstance(tgt, bool) or not isinstance(tgt, (int, float)) or not 0 < tgt < 0.5:
            raise ctx.fail("adaptive.target_p1_ci_halfwidth", f"must be a number in (0, 0.5), got {tgt!r}")
        chunk = ctx.positive("adaptive.chunk", a["chunk"], "s")
        mx = ctx.positive("adaptive.max_duration", a["max_duration"], "s")
        # min_duration defaults to the top-level duration when given (the example spec has both):
        # every point gets at least that, adaptive extension happens beyond it. Without either, two
        # chunks: the between-chunk scatter check of the pooled CI needs at least two
        mn = (ctx.positive("adaptive.min_duration", a["min_duration"], "s") if "min_duration" in a
              else (duration_s if duration_s is not None else min(2 * chunk, mx)))
        if mx < chunk:
            raise ctx.fail("adaptive.max_duration", f"{a['max_duration']!r} is shorter than one chunk "
                                                    f"({a['chunk']!r}); make it ≥ chunk")
        if mn > mx:
            raise ctx.fail("adaptive.min_duration", f"the minimum ({mn:g} s) exceeds max_duration ({mx:g} s)")
        adaptive = AdaptiveSpec(float(tgt), chunk, mx, mn)
    elif duration_s is None:
        raise ctx.fail("duration", "missing; give the simulated time per point (e.g. duration = \"20us\") "
                                   "or an [adaptive] table")

    noise_step_s = (ctx.positive("noise_step", data["noise_step"], "s") if "noise_step" in data
                    else DEFAULT_NOISE_STEP_S)
    for key, d in (("duration", duration_s), ("adaptive.chunk", adaptive.chunk_s if adaptive else None)):
        if d is not None and d < 10 * noise_step_s:
            raise ctx.fail(key, f"{d:g} s is fewer than 10 noise steps of {noise_step_s:g} s; lengthen it")
    seed = ctx.integer("seed", data.get("seed", 1), minimum=0)
    if seed >= 2**63:
        raise ctx.fail("seed", "must be < 2**63")
    timeout_s = ctx.positive("timeout", data["timeout"], "s") if "timeout" in data else DEFAULT_TIMEOUT_S
    cpu_per_us = None
    if "cpu_per_us" in data:
        cpu_per_us = data["cpu_per_us"]
        if isinstance(cpu_per_us, bool) or not isinstance(cpu_per_us, (int, float)) or not (
                cpu_per_us >= 0 and math.isfinite(cpu_per_us)):
            raise ctx.fail("cpu_per_us", f"must be >= 0 CPU-s per simulated µs (0: no CPU limit), got {data['cpu_per_us']!r}")
        cpu_per_us = float(cpu_per_us)
    retries = ctx.integer("retries", data.get("retries", DEFAULT_RETRIES), minimum=0)
    workers = ctx.integer("workers", data["workers"], minimum=1) if "workers" in data else None
    executor = data.get("executor", "local")
    if executor not in ("local", "dask"):
        raise ctx.fail("executor", f"expected \"local\" or \"dask\", got {executor!r}")
    threshold_v = ctx.si("threshold", data["threshold"], "V") if "threshold" in data else None
    use_trim = ctx.boolean("use_trim", data.get("use_trim", True))
    keep_waveforms = ctx.boolean("keep_waveforms", data.get("keep_waveforms", True))
    bias_about_offset = ctx.boolean("bias_about_offset", data.get("bias_about_offset", False))

    params_raw = data.get("params", {})
    if not isinstance(params_raw, dict):
        raise ctx.fail("params", "must be a table ([params] NAME = value)")
    params: dict[str, float] = {}
    for k, v in params_raw.items():
        if not (isinstance(k, str) and k.replace("_", "a").isalnum() and not k[0].isdigit()):
            raise ctx.fail(f"params.{k}", "parameter names are identifiers (letters, digits, _)")
        params[k] = ctx.si(f"params.{k}", v, "") if not isinstance(v, str) else _param_value(ctx, k, v)
    trim_raw = data.get("trim", {})
    if not isinstance(trim_raw, dict):
        raise ctx.fail("trim", "must be a table ([trim] NAME = volts)")
    trim_vals: dict[str, float] = {}
    for k, v in trim_raw.items():
        if not (isinstance(k, str) and k.replace("_", "a").isalnum() and not k[0].isdigit()):
            raise ctx.fail(f"trim.{k}", "trim names are identifiers (letters, digits, _)")
        trim_vals[k] = ctx.si(f"trim.{k}", v, "V")

    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise ctx.fail("grid", "must be a table ([grid])")
    bias = _axis(ctx, "grid.bias", grid["bias"], "V") if "bias" in grid else ()
    temps = _axis(ctx, "grid.temperature", grid["temperature"], "C") if "temperature" in grid else ()
    for t in temps:
        if not -273.15 < t < 500:
            raise ctx.fail("grid.temperature", f"{t:g} °C is outside (-273.15, 500) °C")
    corners_raw = grid.get("corner", None)
    corners: tuple[str, ...] = ()
    if corners_raw is not None:
        if isinstance(corners_raw, str):
            corners_raw = [corners_raw]
        if not isinstance(corners_raw, list) or not all(isinstance(c, str) and c.strip() for c in corners_raw):
            raise ctx.fail("grid.corner", f"expected a list of corner names, got {corners_raw!r}")
        if not corners_raw:
            raise ctx.fail("grid.corner", "empty axis; give at least one corner (or leave it out for nominal)")
        corners = tuple(c.strip().lower() for c in corners_raw)
        if len(set(corners)) != len(corners):
            raise ctx.fail("grid.corner", f"duplicate corners in {list(corners)}")
    vdd = _axis(ctx, "grid.vdd", grid["vdd"], "V", allow_empty=True) if "vdd" in grid else ()
    for v in vdd:
        if v <= 0:
            raise ctx.fail("grid.vdd", f"{v:g} V: supply voltages must be > 0")
    mc = ctx.integer("grid.mismatch_instances", grid.get("mismatch_instances", 0), minimum=0)
    if bias_about_offset and not mc:
        raise ctx.fail("bias_about_offset", "applies to mismatch instances only; set grid.mismatch_instances > 0 "
                                            "or remove it")

    spec = SweepSpec(cell=cell, duration_s=duration_s, noise_step_s=noise_step_s, seed=seed, bias_v=bias,
                     temp_c=temps, corners=corners, vdd_v=vdd, mismatch_instances=mc, timeout_s=timeout_s,
                     cpu_per_us=cpu_per_us, retries=retries, workers=workers, executor=executor, threshold_v=threshold_v,
                     use_trim=use_trim, keep_waveforms=keep_waveforms, params=params, adaptive=adaptive,
                     bias_about_offset=bias_about_offset, trim=trim_vals, source=source)
    n = max(1, len(bias)) * max(1, len(temps)) * max(1, len(corners)) * max(1, len(vdd)) * max(1, mc)
    if n > MAX_JOBS:
        raise ctx.fail("grid", f"{n} points exceed the {MAX_JOBS} one sweep accepts; split the sweep")
    return spec


def _param_value(ctx: _Ctx, key: str, v: str) -> float:
    # cell parameters carry their own units (um, fF, ...) documented in the cell; accept a bare SI
    # suffix ("0.42u") or a number, but never an arbitrary string that could reach the netlist
    try:
        return parse_si(v, what=f"{ctx.source}: params.{key}")
    except InputError:
        raise ctx.fail(f"params.{key}", f"cannot read {v!r} as a number (e.g. 0.42 or \"420n\")") from None


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a sweep spec TOML file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such sweep spec file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; a sweep spec is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc}); see docs/sweeps.md for the format") from None
    except RecursionError:
        raise InputError(f"{path}: arrays/tables nested too deeply; a sweep spec needs a few levels "
                         "(see docs/sweeps.md)") from None
    return parse_spec(data, source=str(path), base_dir=path.parent)
