"""Sweep spec → jobs with content-addressed ids, and the work one job does inside a simulator host.

A sweep **point** is one combination of (corner, temperature, supply, mismatch instance, bias). Its
**job id** is a sha256 over everything that determines its stored results:

* the simulation job's own id (:meth:`noisecell.simulate.SimulationJob.job_id`: the complete rendered
  netlist — parameters, models, noise sources, seeds, ``.tran`` — plus the model package identity
  and version and the simulation code version),
* the analysis settings (readout threshold override, analysis code version = noisecell version),
* for adaptive points the adaptive settings (target, chunk, max/min duration),
* :data:`SWEEP_CODE_VERSION` (bumped whenever this module changes what a result row holds).

Seeds (all through :class:`numpy.random.SeedSequence`, range 1..2**31-1 as ngspice ``setseed`` wants):

* noise seed of a point = f(spec seed, hash of the point's conditions) — adding points to a grid does
  not change the seeds (hence the ids) of the points already there;
* mismatch seed of instance i = f(spec seed, i) — the *same* physical instance at every bias,
  temperature, supply and corner;
* adaptive chunk k of a point = f(point seed, k).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RegimeError
from .spec import SweepSpec

SWEEP_CODE_VERSION = "sweep-1"
_SEED_MAX = 2**31 - 1


def derive_seed(seed: int, *words: int) -> int:
    """A seed in 1..2**31-1 derived from ``seed`` and integer ``words`` (SeedSequence spawn key)."""
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(w) for w in words)).generate_state(1, np.uint32)
    return int(state[0]) % (_SEED_MAX - 1) + 1


def _words(obj: Any) -> tuple[int, ...]:
    h = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).digest()
    return tuple(int.from_bytes(h[i:i + 4], "big") for i in range(0, 16, 4))


def mismatch_seed(spec_seed: int, instance: int) -> int:
    return derive_seed(spec_seed, 0x4D4D, instance)


def chunk_seed(point_seed: int, k: int) -> int:
    return derive_seed(point_seed, 0x4348, k)


@dataclass(frozen=True)
class SweepJob:
    """One sweep point, ready to run.

    conditions: JSON-ready dict (cell, corner, temp_c, vdd_v, bias_v, mismatch_instance,
        mismatch_seed, seed, duration_s, noise_step_s, trim_json, index, job_id) — the manifest row.
    sim_job: the SimulationJob to run (adaptive: chunk 0).
    analysis: analysis settings (part of the id).
    """

    job_id: str
    index: int
    conditions: dict
    sim_job: Any
    analysis: dict
    chunk_jobs: tuple = ()

    def payload(self, keep_waveform: bool, k: int | None = None) -> dict:
        job = self.sim_job if k is None else self.chunk_jobs[k]
        return {"entry": "noisecell.sweep.jobs:execute_in_host", "job": job, "analysis": self.analysis, "keep_waveform": keep_waveform,
                "expected_sim_id": job.job_id(),
                "name": f"job {self.job_id[:12]} (#{self.index}{'' if k is None else f' chunk {k}'})"}


#: modules whose source determines a stored result (simulation, digitisation, regime, analysis,
#: pooling); their content hash is part of every job id, so results made by other code are never
#: mistaken for these
RESULT_MODULES = ("cells.py", "technology.py", "netlist.py", "noise.py", "simulate.py",
                  "simulator/session.py", "simulator/settings.py", "waveform.py",
                  "units.py", "io.py", "digitize.py", "regime.py", "analysis", "sweep/jobs.py",
                  "sweep/adaptive.py")


def source_fingerprint() -> str:
    """sha256 (16 hex) of the source of :data:`RESULT_MODULES` as it is on disk now."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in RESULT_MODULES:
        p = root / name
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`source_fingerprint` when first called in this process: a simulator host calls it as
    it imports the code, so it describes the code the host actually runs."""
    return source_fingerprint()


def analysis_settings(spec: SweepSpec) -> dict:
    from .. import __version__

    return {"threshold_v": spec.threshold_v, "noisecell_version": __version__, "code": source_fingerprint()}


def _trim_for(cell, spec: SweepSpec, corner: str, temp_c: float) -> dict[str, float]:
    """Stored trim (interpolated in temperature) when enabled, else each trim's nominal value.

    A cell trimmed by noisecell.trim (a ``[balance]`` table) takes trim and supply from the same
    trims.json row (:func:`noisecell.trim.trimmed_point`), so a corner whose check failed still gets
    the pair the search ended on, not the nearest passing row's trim with another row's supply."""
    out = {name: (t.value_for(corner, temp_c) if spec.use_trim else t.nominal_v) for name, t in cell.trim.items()}
    unknown = sorted(set(spec.trim) - set(cell.trim))
    if unknown:
        raise InputError(f"{spec.source}: trim.{unknown[0]}: cell {cell.name} has no such trim input "
                         f"(its trims: {', '.join(cell.trim) or 'none'})")
    if spec.use_trim and cell.trim:
        from ..trim import trimmed_point
        try:
            stored, _ = trimmed_point(cell, corner, temp_c)
        except InputError:  # no [balance] table: the cell.toml tables are the trim
            stored = {}
        out.update(stored)
    out.update(spec.trim)  # explicit values win (range-checked by job_from_cell)
    return out


@lru_cache(maxsize=256)
def _instance_offset(cell_dir: str, corner: str, temp_c: float, mseed: int, trim_json: str, vdd_v: float) -> float | None:
    """DC bias offset (V) of one mismatch instance (noisecell.trim.bias_offset), cached per process.

    ``trim_json``: every trim input's value at the instance's jobs (the stored trim, or the spec's
    explicit ``trim``, e.g. the instance's own); the DC solve runs at all of them, the balance trim as
    ``trim_v`` and the others (the ``[balance] aux_trim``, pbit_x4's VNW) as ``fixed_trim``, so the
    offset is the one of the circuit the jobs simulate (before, the others took their nominal values)."""
    from ..cells import load_cell
    from ..trim import balance_spec, bias_offset

    cell = load_cell(cell_dir)
    bal = balance_spec(cell)
    trim = json.loads(trim_json)
    others = {k: float(v) for k, v in trim.items() if k != bal.trim}
    return bias_offset(cell, corner, temp_c, mismatch_seed=mseed, trim_v=trim.get(bal.trim) if bal.trim else None,
                       vdd_v=vdd_v, fixed_trim=others or None)


def _supplies_for(cell, spec: SweepSpec, corner: str, temp_c: float) -> tuple[float, ...]:
    """The supply axis at (corner, temp_c): the spec's values; else, for a cell whose trim is its
    supply (a ``[balance]`` table and a stored trim table, e.g. pbit), the stored trimmed supply —
    a supply-trimmed cell run at its nominal supply away from tt/27 °C is simply not bistable;
    else the nominal supply."""
    main = cell.supplies[cell.main_supply]
    if spec.vdd_v:
        return tuple(spec.vdd_v)
    if spec.use_trim:
        from ..trim import trimmed_point
        try:
            _, vdd = trimmed_point(cell, corner, temp_c)
        except InputError:  # the cell has no [balance] table: its supply is not a trim
            vdd = main.nominal_v
        return (float(vdd),)
    return (main.nominal_v,)


def expand(spec: SweepSpec, cell=None, progress=None) -> list[SweepJob]:
    """All points of ``spec`` in a fixed order (corner, temperature, vdd, instance, bias — bias fastest).

    progress: optional ``callback(done, total)`` after each point (total: the grid's size, points
    skipped for their bias offset included); rendering a job costs ~1 ms, so a grid near the cap
    takes minutes and the runner reports it.
    """
    from ..cells import load_cell
    from ..simulate import job_from_cell

    if cell is None:
        try:
            cell = load_cell(spec.cell)
        except InputError as exc:
            raise InputError(f"{spec.source}: cell: {exc}") from None
    corners = spec.corners or (cell.nominal_corner,)
    for c in corners:
        if c not in cell.corners:
            raise InputError(f"{spec.source}: grid.corner: cell {cell.name} offers corners "
                             f"{', '.join(cell.corners)}, not {c!r}")
    temps = spec.temp_c or (cell.nominal_temp_c,)
    main = cell.supplies[cell.main_supply]
    vdds = spec.vdd_v or (main.nominal_v,)
    for v in vdds:
        if not main.range_v[0] <= v <= main.range_v[1]:
            raise InputError(f"{spec.source}: grid.vdd: {v:g} V is outside cell {cell.name}'s supply range "
                             f"{main.range_v[0]:g}..{main.range_v[1]:g} V")
    biases = spec.bias_v or (cell.bias.mid_v,)
    lo, hi = cell.bias.range_v
    for b in biases:
        if not lo - 1e-12 <= b <= hi + 1e-12:
            raise InputError(f"{spec.source}: grid.bias: {b:g} V is outside cell {cell.name}'s bias range "
                             f"{lo:g}..{hi:g} V; narrow the axis")
    if spec.mismatch_instances and cell.technology == "generic":
        raise InputError(f"{spec.source}: grid.mismatch_instances: cell {cell.name} uses generic model cards "
                         "without mismatch statistics; set mismatch_instances = 0 or use a PDK cell (e.g. pbit)")
    for p in spec.params:
        if p not in cell.params:
            known = ", ".join(cell.params) or "none"
            raise InputError(f"{spec.source}: params.{p}: cell {cell.name} has no such parameter (known: {known})")
    instances = list(range(spec.mismatch_instances)) if spec.mismatch_instances else [None]
    analysis = analysis_settings(spec)
    adaptive = asdict(spec.adaptive) if spec.adaptive else None
    jobs: list[SweepJob] = []
    n_total = len(corners) * len(temps) * len(instances) * len(biases) * max(1, len(spec.vdd_v or ()))
    n_done = 0
    ids: set[str] = set()
    skipped: dict[str, int] = {}  # reason -> points not simulated for it
    for corner in corners:
        for temp in temps:
            trim = _trim_for(cell, spec, corner, temp)
            for vdd in _supplies_for(cell, spec, corner, temp):
                for inst in instances:
                    mseed = None if inst is None else mismatch_seed(spec.seed, inst)
                    offset = 0.0
                    if spec.bias_about_offset and inst is not None:
                        try:
                            off = _instance_offset(str(cell.cell_dir or cell.netlist_path.parent), corner, float(temp),
                                                   mseed, json.dumps(trim, sort_keys=True), float(vdd))
                        except InputError as exc:
                            raise InputError(f"{spec.source}: bias_about_offset: {exc}") from None
                        if off is None:
                            why = (f"instance {inst} at {corner} {temp:g} °C ({len(biases)} points): its bias offset "
                                   f"is outside the cell's bias range {lo:g}..{hi:g} V")
                            skipped[why] = len(biases)
                            continue
                        offset = off
                    for rel_bias in biases:
                        n_done += 1
                        if progress is not None:
                            progress(min(n_done, n_total), n_total)
                        bias = float(f"{rel_bias + offset:.9g}")
                        if not lo - 1e-12 <= bias <= hi + 1e-12:
                            skipped[f"instance {inst} at {corner} {temp:g} °C: bias {bias:g} V (offset {offset:g} V "
                                    f"+ {rel_bias:g} V) is outside the bias range"] = 1
                            continue
                        cond_key = {"cell": cell.name, "corner": corner, "temp_c": temp, "vdd_v": vdd,
                                    "bias_v": bias, "mismatch_instance": inst, "params": dict(spec.params)}
                        seed = derive_seed(spec.seed, 0x4E53, *_words(cond_key))

                        def make(duration_s: float, s: int):
                            try:
                                return job_from_cell(cell, bias_v=bias, corner=corner, temp_c=temp, vdd_v=vdd,
                                                     trim=trim or None, params=dict(spec.params) or None,
                                                     duration_s=duration_s, noise_step_s=spec.noise_step_s,
                                                     seed=s, mismatch_seed=mseed, options=None)
                            except InputError as exc:
                                raise InputError(f"{spec.source}: point corner={corner} temp={temp:g} °C "
                                                 f"vdd={vdd:g} V bias={bias:g} V: {exc}") from None

                        if spec.adaptive:
                            chunk_jobs = tuple(make(spec.adaptive.chunk_s, chunk_seed(seed, k))
                                               for k in range(spec.adaptive.max_chunks))
                            sim = chunk_jobs[0]
                            duration = None
                        else:
                            chunk_jobs = ()
                            sim = make(spec.duration_s, seed)
                            duration = spec.duration_s
                        job_id = hashlib.sha256(json.dumps({
                            "sweep_code": SWEEP_CODE_VERSION, "sim": sim.job_id(), "seed": seed,
                            "mismatch_seed": mseed, "analysis": analysis, "adaptive": adaptive,
                        }, sort_keys=True).encode()).hexdigest()
                        if job_id in ids:  # cannot happen with distinct axis values; guard the store anyway
                            raise InputError(f"{spec.source}: two points produce the same job; remove duplicates")
                        ids.add(job_id)
                        cond = {"index": len(jobs), "job_id": job_id, "cell": cell.name, "corner": corner,
                                "temp_c": float(temp), "vdd_v": float(vdd), "bias_v": float(bias),
                                "mismatch_instance": -1 if inst is None else int(inst),
                                "mismatch_seed": mseed, "seed": seed, "duration_s": duration,
                                "noise_step_s": spec.noise_step_s,
                                "trim_json": json.dumps(trim, sort_keys=True)}
                        if spec.bias_about_offset and inst is not None:
                            cond["bias_offset_v"] = float(offset)
                        jobs.append(SweepJob(job_id, len(jobs), cond, sim, analysis, chunk_jobs))
    if skipped:
        import warnings
        warnings.warn(f"{spec.source}: {sum(skipped.values())} point(s) not simulated: " + "; ".join(skipped),
                      stacklevel=2)
    return jobs


# --- inside the simulator host --------------------------------------------------------------
def warm_up() -> None:
    """Import the heavy modules once per host so the first job's timeout is not spent importing."""
    from .. import digitize  # noqa: F401
    from ..simulator import session

    code_fingerprint()  # the code this host imports now, before any file could change under it
    session.warm_up()
    try:
        from ..analysis import analyze_stream  # noqa: F401
    except ImportError:
        pass


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested estimates → flat columns: dicts become ``a_b``, [lo, hi] pairs ``x_lo``/``x_hi``,
    other lists JSON text, numpy scalars Python scalars, None stays None."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "_"))
        elif isinstance(v, (list, tuple)) and len(v) == 2 and all(
                x is None or isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in v):
            out[key + "_lo"] = None if v[0] is None else float(v[0])
            out[key + "_hi"] = None if v[1] is None else float(v[1])
        elif isinstance(v, (list, tuple, np.ndarray)):
            out[key] = json.dumps(np.asarray(v).tolist() if isinstance(v, np.ndarray) else list(v))
        elif isinstance(v, np.generic):
            out[key] = v.item()
        else:
            out[key] = v
    return out


def stream_stats(bits: np.ndarray, sample_period_s: float) -> dict:
    """Sufficient statistics of a chunk for pooling (:class:`noisecell.analysis.pool.SegmentCounts`
    columns: counts, transitions, samples at risk, complete-dwell histogram) and its sample period, s."""
    from ..analysis.pool import SegmentCounts

    return {**SegmentCounts.from_bits(np.asarray(bits, dtype=np.uint8)).to_row(),
            "sample_period_s": float(sample_period_s)}


def _regime(wf, bits) -> dict:
    try:
        from .. import regime as _rg
    except ImportError:
        return {}
    fn = getattr(_rg, "classify_waveform", None) or getattr(_rg, "detect_regime", None) or getattr(_rg, "classify", None)
    if fn is None:
        return {}
    try:
        r = fn(wf)
    except Exception as exc:  # noqa: BLE001 - a regime failure must not lose the simulation
        return {"regime": None, "regime_error": f"{type(exc).__name__}: {exc}"}
    d = r.to_dict() if hasattr(r, "to_dict") else {"regime": str(r)}
    reasons = d.get("reasons")
    out = {"regime": d.get("regime", d.get("kind")),
           "regime_reasons": "; ".join(map(str, reasons)) if isinstance(reasons, (list, tuple)) else reasons}
    # the evidence worth a column; the full verdict is recomputable from the stored waveform
    for k in ("valley_ratio", "minor_mode_fraction", "n_transitions", "mean_dwell_s", "dwell_ratio",
              "fraction_above_threshold"):
        if k in d:
            v = d[k]
            out[f"regime_{k}"] = v.item() if isinstance(v, np.generic) else v
    return out


def execute_in_host(payload: dict) -> dict:
    """Simulate, digitise, classify and analyse one job (runs inside a simulator host).

    ``payload["rung"]``: the retry-ladder rung whose options the job carries (noisecell.simulator.retry).
    """
    from ..simulator.session import run_job_in_process

    job = payload["job"]
    analysis = payload["analysis"]
    if analysis.get("code") not in (None, code_fingerprint()):
        raise InputError(f"{payload.get('name', 'job')}: this worker runs different noisecell code than the sweep "
                         "driver (files changed during the sweep, or another version on the cluster); "
                         "restart the sweep with one noisecell version everywhere")
    expected = payload.get("expected_sim_id")
    if expected is not None and payload.get("rung", 0) == 0 and job.job_id() != expected:
        # the job id was computed by the driver; a host that renders a different netlist runs other
        # code or models (files changed while the sweep ran): storing its result under this id
        # would break content addressing
        raise InputError(f"{payload.get('name', 'job')}: this worker renders a different netlist than the "
                              "sweep driver (noisecell or model files changed during the sweep); restart the sweep")
    wf = run_job_in_process(job)
    return analyse_record(wf, job, analysis, keep_waveform=payload.get("keep_waveform", True))


def analyse_record(wf, job, analysis: dict, *, keep_waveform: bool = True) -> dict:
    """Digitise, classify and analyse the waveform ``wf`` of simulation ``job`` (a SimulationJob): the
    result dict of :func:`execute_in_host`. Also how the runner re-analyses a stored waveform whose
    row was made by other analysis code (runner: rows keyed by job ids that include the code)."""
    from ..digitize import digitize_waveform

    bits, dig = digitize_waveform(wf, threshold_v=analysis.get("threshold_v"))
    row: dict[str, Any] = {"sim_job_id": job.job_id(), "options_json": json.dumps(dict(job.options or {}), sort_keys=True)}
    row.update(flatten(dig.to_dict(), "digitize_"))
    row.update(_regime(wf, bits))
    # the estimates (and the chunk statistics pooling sums) leave out the start-up settling of the
    # record (noisecell.simulate.SETTLE_SAMPLES: chatter at the metastable point); the stored bits keep it
    import dataclasses

    from ..simulate import settled

    counted = dataclasses.replace(bits, bits=settled(bits.bits))
    row["settle_samples"] = int(bits.bits.size - counted.bits.size)
    stats = stream_stats(counted.bits, dig.sample_period_s)
    try:
        from ..analysis import analyze_stream

        est = analyze_stream(counted, waveform=wf)
        row.update(est.to_row())
        row["analysis_error"] = None
    except (RegimeError, InputError, ImportError) as exc:
        # e.g. a stuck point: the simulation is valid and kept; the estimates that need flips are not
        row["analysis_error"] = str(exc)
        row["p1"] = stats["n_ones"] / max(1, stats["n_samples"])
        row["mean_supply_power_w"] = wf.mean_supply_power_w()
    return {"row": row, "stats": stats, "bits": np.packbits(bits.bits), "n_bits": int(bits.bits.size),
            "sample_period_s": dig.sample_period_s,
            "waveform": wf if keep_waveform else None,
            "simulated_s": float(job.duration_s)}
