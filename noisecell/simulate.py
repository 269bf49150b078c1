"""Describe one transient-noise simulation of a cell: the job, its rendered netlist and its id.

A :class:`SimulationJob` is everything that determines a run (netlist template, parameter values,
models and corner, temperature, duration, noise step, seeds, extra options). :meth:`SimulationJob.render`
turns it into the exact netlist ngspice runs (deterministic text); :meth:`SimulationJob.job_id` hashes
that text together with the model package identity and :data:`SIM_CODE_VERSION`.

Execution is not here: :mod:`noisecell.simulator` runs jobs (the in-process ngspice session,
persistent simulator hosts with timeouts, kill and the retry ladder, ``ngspice -b`` batch runs).
This module only describes and renders them.

Seeds: the noise seed is applied with ``setseed`` *after* the circuit is loaded, so TRRANDOM noise
depends on it alone; the mismatch seed is ``.option seed=`` in the netlist, read while the models'
AGAUSS mismatch parameters are evaluated during loading. The two are therefore independent: the same
mismatch seed with different noise seeds gives the same device instances (tested).

Output grid: uniform, t_k = k·NT, k = 0..duration/NT (sample_period_s = NT). ngspice's own
``interp`` option is not used (its first/last grid point varies with uic and rounding); instead the
raw solution is read at the grid times, which are all solver time points because every noise
source has a breakpoint at each k·NT and the step is capped at NT (TMAX). Every noise sample is held for exactly NT
and the time step is capped at NT (TMAX), so the grid points are also points the solver visited.

Sign convention: ngspice's i(V) is the current flowing into the source's + terminal; noisecell
reports supply currents as the current the source delivers INTO the cell, i.e. −i(V).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import netlist as nl
from .errors import InputError
from .noise import NoiseConfig, codemodel_controls, increment_lag1_correlation, inject_noise, resolve_route
from .technology import location_free, model_identity, model_lines, spice_settings

#: bump when the rendering or the runner changes results (part of every job id)
SIM_CODE_VERSION = "1"
#: the largest number of output points a single job may produce (memory: 8 bytes × outputs × points)
MAX_POINTS = 200_000_000
#: warn when the fastest node time constant measured at v_out is below this many noise steps
NT_TAU_RATIO = 3.0
#: samples at the start of every simulated record that the analysis does not count. A record starts
#: from the DC operating point, for a symmetric latch its metastable point, and the readout chatters
#: across the threshold until the noise has chosen a state (pbit: 50 transitions in the first 40 ns of
#: 16 fresh 10 µs records at V50, ~3 per record, up to 12; none in excess after 100 ns). The
#: sequential design (noisecell.design_runner) and the sweep's per-record analysis (noisecell.sweep.jobs)
#: both skip them; the stored bits keep them. 100 samples is twice the longest chatter seen. In the
#: design's records (pbit, 59 records) those chatter pairs biased τ(V50) 6 % low and were a third of the
#: excess Pearson X² of the joint fit; the likelihood conditions on the first kept sample, so the cut
#: biases nothing.
SETTLE_SAMPLES = 100


def settled(bits: np.ndarray) -> np.ndarray:
    """``bits`` without their first SETTLE_SAMPLES samples (all of them when the record is shorter
    than 2·SETTLE_SAMPLES: a record that short cannot spare them)."""
    return bits[SETTLE_SAMPLES:] if bits.size >= 2 * SETTLE_SAMPLES else bits


_OPT_VALUE = re.compile(r"^[A-Za-z0-9_.+\-]+$")
_NODE = re.compile(r"^[A-Za-z0-9_.:+\-\[\]<>#]+$")


@dataclass(frozen=True)
class SimulationJob:
    """Everything that determines one transient-noise run.

    cell_name: label. template: validated netlist template (with its .param lines; values come
    from ``params``). params: .param name -> value (validated finite numbers, SI or the cell's unit).
    technology / corner: model set (noisecell.technology). temp_c: °C. duration_s, noise_step_s: s.
    seed: noise seed (setseed, 0 ≤ seed < 2³¹). mismatch_seed: None = no mismatch, else the seed of
    the models' mismatch draws. outputs: output name ("v_out", ...) -> node. supplies: supply name ->
    (voltage source element, voltage V). readout: {"mode", "threshold_v"}. options: extra
    ``.options`` (name -> number or simple word; e.g. {"method": "gear", "reltol": 1e-4}).
    flicker_corner_hz / flicker_min_hz: optional 1/f noise (noisecell.noise). resistor_noise: 4kT/R.
    bias_v / vdd_v: recorded in meta. uic: start from .ic values instead of the operating point
    (None: only when the template has .ic lines). trusted: skip the netlist safety check.
    noise_route: "portable", "compiled", "smooth" or None (= auto: smooth when its code model is built;
    noisecell.noise.resolve_route).
    """

    cell_name: str
    template: str
    params: Mapping[str, float]
    technology: str
    corner: str
    temp_c: float
    duration_s: float
    noise_step_s: float
    seed: int
    mismatch_seed: int | None = None
    outputs: Mapping[str, str] = field(default_factory=lambda: {"v_out": "out"})
    supplies: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    readout: Mapping[str, Any] = field(default_factory=lambda: {"mode": "single", "threshold_v": 0.0})
    options: Mapping[str, str | float] = field(default_factory=dict)
    flicker_corner_hz: float = 0.0
    flicker_min_hz: float | None = None
    resistor_noise: bool = True
    noise: bool = True
    bias_v: float | None = None
    vdd_v: float | None = None
    uic: bool | None = None
    trusted: bool = False
    #: the cell's netlist file, for messages only (not part of the job id)
    source: str = ""
    noise_route: str | None = None

    def __post_init__(self):
        _check_job(self)

    def render(self) -> str:
        """The complete netlist text ngspice runs: models, params, noise sources, options, .tran."""
        body = nl.set_params(self.template, dict(self.params), source=self.cell_name)
        # drop .end (noisecell appends its own lines after the body)
        body = "\n".join(l for l in body.splitlines() if l.strip().lower() != ".end") + "\n"
        has_ic = any(ln.text.lower().startswith(".ic") for ln in nl.logical_lines(body))
        f_min = self.flicker_min_hz if self.flicker_min_hz else 1.0 / self.duration_s
        if self.noise:
            body, _ = inject_noise(body, self.technology, self._noise_config(f_min))
        else:
            body = "\n".join(ln.text for ln in nl.logical_lines(body)) + "\n"
        uic = has_ic if self.uic is None else self.uic
        lines = [f"* noisecell job: cell {self.cell_name}, {self.technology} {self.corner}, {self.temp_c!r} C, "
                 f"seed {self.seed}, mismatch_seed {self.mismatch_seed}"]
        lines += model_lines(self.technology, self.corner, mismatch=self.mismatch_seed is not None, netlist=body)
        lines.append(body.rstrip("\n"))
        opts = {"temp": self.temp_c, "tnom": 27.0}
        if self.mismatch_seed is not None:
            opts["seed"] = int(self.mismatch_seed)
        opts.update({k.lower(): v for k, v in self.options.items()})
        lines.append(".options " + " ".join(f"{k}={_fmt(v)}" for k, v in sorted(opts.items())))
        saves = [f"v({n})" for _, n in sorted(self.outputs.items())]
        saves += [f"i({src})" for _, (src, _v) in sorted(self.supplies.items())]
        lines.append(".save " + " ".join(saves))
        nt = self.noise_step_s
        lines.append(f".tran {nt!r} {self.duration_s!r} 0 {nt!r}{' uic' if uic else ''}")
        lines.append(".end")
        return "\n".join(lines) + "\n"

    def render_batch(self, data_file: str) -> str:
        """The same netlist plus a .control block for ``ngspice -b`` (setseed, run, wrdata, quit)."""
        text = self.render().rstrip("\n")
        assert text.endswith(".end")
        saves = " ".join([f"v({n})" for _, n in sorted(self.outputs.items())]
                         + [f"i({src})" for _, (src, _v) in sorted(self.supplies.items())])
        ctl = [".control", *codemodel_controls(text), f"setseed {int(self.seed)}", "run",
               f"wrdata {data_file} {saves}", "quit", ".endc"]
        return text[:-len(".end")] + "\n".join(ctl) + "\n.end\n"

    def _noise_config(self, f_min: float) -> NoiseConfig:
        return NoiseConfig(noise_step_s=self.noise_step_s, temp_c=self.temp_c,
                           flicker_corner_hz=self.flicker_corner_hz, flicker_min_hz=f_min,
                           resistor_noise=self.resistor_noise, seed=self.seed,
                           route=resolve_route(self.noise_route))

    def noise_report(self):
        """The :class:`noisecell.noise.NoiseReport` of this job (devices, NT, bandwidth)."""
        body = nl.set_params(self.template, dict(self.params), source=self.cell_name)
        f_min = self.flicker_min_hz if self.flicker_min_hz else 1.0 / self.duration_s
        return inject_noise(body, self.technology, self._noise_config(f_min))[1]

    def job_id(self) -> str:
        """sha256 (hex) of the rendered netlist (the lean model file's folder left out:
        technology.location_free), the noise seed, model identity and SIM_CODE_VERSION."""
        h = hashlib.sha256()
        h.update(location_free(self.render()).encode())
        h.update(json.dumps({"seed": int(self.seed), "models": model_identity(self.technology),
                             "code": SIM_CODE_VERSION, "settings": spice_settings(self.technology)},
                            sort_keys=True).encode())
        return h.hexdigest()

    def describe(self) -> str:
        """Short label for messages: cell, bias, corner, temperature, seed and the job id prefix."""
        b = f" bias {self.bias_v:g} V" if self.bias_v is not None else ""
        return (f"job {self.job_id()[:12]} ({self.cell_name}{b}, {self.corner}, {self.temp_c:g} C, "
                f"seed {self.seed})")


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, float) else str(v)
    return str(v)


#: ngspice options that make runs faster by changing the injected noise itself, not just the solver
_STATISTICS_CHANGING_OPTIONS = {
    # measured on an RC node: minbreak merges the TRRANDOM breakpoints, so the noise source is sampled
    # far below its NT and the node variance fell from 2.5e7 to 5.9e3 V^2 (kT/C predicts 2.5e7)
    "minbreak": "it merges the noise sources' breakpoints and removes most of the injected noise; leave it unset",
}


def _check_job(job: SimulationJob) -> None:
    what = f"simulation job {job.cell_name!r}"
    for name, val in (("duration_s", job.duration_s), ("noise_step_s", job.noise_step_s)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val <= 0:
            raise InputError(f"{what}: {name} must be a positive number of seconds, got {val!r}")
    n = job.duration_s / job.noise_step_s
    if n < 10:
        raise InputError(f"{what}: duration {job.duration_s:g} s is under 10 noise steps of {job.noise_step_s:g} s; "
                         "lengthen the duration or shorten the noise step")
    if n > MAX_POINTS:
        raise InputError(f"{what}: {n:.3g} output points exceeds {MAX_POINTS:g}; split the run or raise the noise step")
    if isinstance(job.temp_c, bool) or not isinstance(job.temp_c, (int, float)) or not -273.15 < job.temp_c < 500:
        raise InputError(f"{what}: temp_c {job.temp_c!r} is not a temperature in °C")
    for sname, seed in (("seed", job.seed), ("mismatch_seed", job.mismatch_seed)):
        if seed is None and sname == "mismatch_seed":
            continue
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**31:
            raise InputError(f"{what}: {sname} must be an integer in [0, 2^31), got {seed!r}")
    for k, v in job.params.items():
        nl.validate_param_value(k, v, what=f"{what}: parameter")
    for k, v in job.options.items():
        if not nl.IDENT.match(str(k)):
            raise InputError(f"{what}: option name {k!r} is not an identifier")
        if str(k).lower() in _STATISTICS_CHANGING_OPTIONS:
            raise InputError(f"{what}: option {k!r} is refused: {_STATISTICS_CHANGING_OPTIONS[str(k).lower()]}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not math.isfinite(float(v)):
                raise InputError(f"{what}: option {k}={v!r} is not finite")
        elif not isinstance(v, str) or not _OPT_VALUE.match(v):
            raise InputError(f"{what}: option {k}={v!r} must be a number or a simple word")
    for k, node in job.outputs.items():
        if not nl.IDENT.match(k) or not isinstance(node, str) or not _NODE.match(node):
            raise InputError(f"{what}: output {k!r} -> {node!r} is not a valid name/node")
    if "v_out" not in job.outputs:
        raise InputError(f"{what}: outputs must include the primary output 'v_out'")
    for k, sv in job.supplies.items():
        if not nl.IDENT.match(k) or len(sv) != 2 or not nl.IDENT.match(str(sv[0])):
            raise InputError(f"{what}: supply {k!r} must map to (voltage source element, voltage)")
        nl.validate_param_value(k, sv[1], what=f"{what}: supply voltage")
    if job.flicker_corner_hz < 0 or not math.isfinite(job.flicker_corner_hz):
        raise InputError(f"{what}: flicker_corner_hz must be ≥ 0")
    from .technology import allowed_include_dirs
    nl.check_template(job.template, source=job.cell_name, allowed_dirs=allowed_include_dirs(job.technology),
                      trusted=job.trusted)


def job_from_cell(cell, *, bias_v: float, corner: str | None = None, temp_c: float | None = None,
                  vdd_v: float | None = None, trim: Mapping[str, float] | None = None,
                  params: Mapping[str, float] | None = None, duration_s: float, noise_step_s: float,
                  seed: int, mismatch_seed: int | None = None, options: Mapping[str, str | float] | None = None,
                  flicker_corner_hz: float = 0.0, supply_v: Mapping[str, float] | None = None) -> SimulationJob:
    """Build a job for a :class:`noisecell.cells.CellSpec`, validating every number against the cell's ranges.

    bias_v: V (the bias .param). corner/temp_c: default the cell's nominal. vdd_v: main supply, V
    (default nominal). trim: trim .param -> V (default: the stored value for corner/temperature, else
    nominal). params: other .params (within their min/max). supply_v: other supplies, V.
    """
    where = f"cell {cell.name} ({cell.netlist_path.parent / 'cell.toml'})"

    def in_range(label: str, x: float, lo: float, hi: float, unit: str = "V") -> float:
        x = nl.validate_param_value("value", x, what=label)
        if not lo <= x <= hi:
            raise InputError(f"{where}: {label} {x:g} {unit} is outside the cell's range [{lo:g}, {hi:g}] {unit}")
        return x

    corner = cell.nominal_corner if corner is None else corner
    if corner not in cell.corners:
        raise InputError(f"{where}: corner {corner!r} is not one of the cell's corners {list(cell.corners)}")
    temp_c = cell.nominal_temp_c if temp_c is None else float(temp_c)
    values: dict[str, float] = {}
    bias_v = in_range("bias", bias_v, *cell.bias.range_v)
    values[cell.bias.param] = bias_v
    supplies = {}
    supply_v = dict(supply_v or {})
    main = cell.main_supply
    if vdd_v is not None:
        supply_v[main] = vdd_v
    for sname, s in cell.supplies.items():
        v = in_range(f"supply {sname}", supply_v.pop(sname, s.nominal_v), *s.range_v)
        values[s.param] = v
        supplies[sname] = (s.source, v)
    if supply_v:
        raise InputError(f"{where}: unknown supply {next(iter(supply_v))!r}; the cell has {list(cell.supplies)}")
    trim = dict(trim or {})
    for tname, t in cell.trim.items():
        v = trim.pop(tname) if tname in trim else t.value_for(corner, temp_c)
        values[tname] = in_range(f"trim {tname}", v, *t.range_v)
    if trim:
        raise InputError(f"{where}: unknown trim {next(iter(trim))!r}; the cell has {list(cell.trim) or 'none'}")
    params = dict(params or {})
    for pname, p in cell.params.items():
        v = params.pop(pname) if pname in params else p.nominal
        values[pname] = in_range(f"parameter {pname}", v, p.min, p.max, p.unit)
    if params:
        raise InputError(f"{where}: parameter {next(iter(params))!r} is not settable; settable: "
                         f"{list(cell.params) or 'none'}")
    from .technology import allowed_include_dirs
    nl.check_template(cell.template, source=str(cell.netlist_path),
                      allowed_dirs=[cell.netlist_path.parent] + allowed_include_dirs(cell.technology))
    return SimulationJob(cell_name=cell.name, template=cell.template, params=values, technology=cell.technology,
                         corner=corner, temp_c=temp_c, duration_s=float(duration_s),
                         noise_step_s=float(noise_step_s), seed=int(seed), mismatch_seed=mismatch_seed,
                         outputs=dict(cell.outputs), supplies=supplies,
                         readout={"mode": cell.readout.mode, "threshold_v": cell.readout.threshold_v,
                                  **({"hysteresis_v": cell.readout.hysteresis_v}
                                     if cell.readout.hysteresis_v is not None else {})},
                         options=dict(options or {}), flicker_corner_hz=float(flicker_corner_hz),
                         bias_v=bias_v, vdd_v=supplies[main][1], trusted=True, source=str(cell.netlist_path))


def fast_tau(v: np.ndarray, dt: float) -> float | None:
    """Fastest relaxation time seen at a node, s, from the lag-1 autocorrelation of its increments.

    For an Ornstein-Uhlenbeck node with time constant τ sampled every dt, successive increments have
    correlation ρ = −(1 − a)/2 with a = exp(−dt/τ), so τ = −dt/ln(1 + 2ρ). Intra-well fluctuations
    dominate the increments of a telegraphing cell, so this measures the node's own time constant.
    Returns None when undetermined.
    """
    rho = increment_lag1_correlation(v)
    if rho is None:
        return None
    a = 1 + 2 * rho
    if a <= 0:
        return 0.0
    if a >= 1:
        return math.inf
    return -dt / math.log(a)
