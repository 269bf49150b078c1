"""Trim: find the trim input (and supply) that makes a cell telegraph with P(1) ≈ 0.5 at zero bias.

A symmetric latch has P(1) = 0.5 at zero bias at every global corner by symmetry; what process and
temperature change is whether it telegraphs at all. Its two inverters must be *balanced* (switching
point at mid-rail: with an unbalanced N/P ratio the metastable point moves toward a rail, the loop
gain collapses and the output becomes one noisy level) and its loop gain must be just above 1
(too low: one level; too high: the barrier is many kT and the latch freezes). So the search has
two deterministic stages and one statistical check, in that order:

1. **Balance** (noise-free DC, milliseconds per point): the latch loop is opened by forcing the
   ``v_outb`` node with a DC source and sweeping it across the core supply; the inverter transfer
   V_out(V_in) gives the switching point V_m (V_out = V_in) and the small-signal gain A = -dV_out/dV_in
   there. The trim input is root-found (grid + linear interpolation, then a refined grid) so that
   (V_m - V_low)/VDD = 1/2.
2. **Loop gain** (DC): the supply is root-found so that A at balance equals the cell's design gain
   (``[balance] gain_target``, the gain of the nominal design at its nominal corner; A is a
   property of VDD/V_T and the devices' slope factors, so holding it holds the barrier in kT roughly
   constant across corners and temperature).
3. **Check** (transient noise simulation at zero bias, noisecell.simulate): the regime must be
   bistable (noisecell.regime), P(1) within 3 standard errors of 0.5 (SE = 2p(1-p)/√N for a
   two-state Markov record with N transitions: Var(P̂) = 2p(1-p)τ_c/T with τ_c = p(1-p)·2T/N), and
   the flip rate at least ``min_flips_per_us``. If the record is frozen or too slow (or one level far to one
   side of the threshold) the supply is lowered by 1.5 % and stages 1–3 repeat; if it is single-peaked
   around the threshold it is raised by 1.5 %; once a
   single-peaked and a frozen supply bracket the window, the supply is bisected; at most
   ``max_iterations`` checks. Otherwise the result says that no trim works there, and what was seen.

The cell declares the method's nodes in its ``cell.toml``::

    [balance]
    trim = "TRIM"          # the trim .param searched in stage 1
    low_node = "vl"        # the core's low rail (the forced node is swept from it up by VDD)
    gain_target = 1.9      # stage 2 target
    faster_with_supply = false   # true: every failed check raises the supply (no positive feedback,
                                 # e.g. spice_models/pbit_x1: more supply = more gain and current)
    force_node = "x"       # optional: the node forced by the DC source (default: the v_outb output)
    sense_node = "y"       # optional: the node whose transfer is measured (default: v_out); both or
                           # neither (a chain whose stages differ balances the stage it names)
    aux_trim = "VNW"       # optional second [trim.*] input, set before the balance: the first of
    aux_values = [0.0, 0.3, 0.6]  # these values at which the DC stages 1-2 find a balanced point at
                           # the design gain is kept (e.g. a well bias that keeps fast devices in weak
                           # inversion); stored in trims.json under its own name, like the trim
    aux_fallback = true    # optional: when the checks at that aux value fail, the next aux value that
                           # reaches the gain is checked too (e.g. a smaller reverse well bias that
                           # restores the current of a cold slow corner); the first that passes is kept
    offset = "readout"     # optional: how bias_offset finds a mismatched instance's offset: "inverters"
                           # (default, a latch: equal switching points of its two halves) or "readout"
                           # (a chain: the bias at which the noise-free DC readout crosses its threshold)

Voltages in V, temperatures in °C, times in s.
"""
from __future__ import annotations

import math
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_write
from .errors import InputError, SimulationError, SimulationTimeout
from .simulator.batch import BATCH_TIMEOUT_S, run_batch
from .units import format_si

#: number of points of the DC sweep across the core supply (0.25 mV steps at 60 mV)
DC_POINTS = 241
#: relative supply step between transient checks
VDD_STEP = 0.015
#: relative supply step up for a bistable but too slow check of a ``faster_with_supply`` cell
SLOW_VDD_STEP = 0.15
#: relative supply step up for a single-peaked (not enough gain) but fast check of such a cell: it has
#: no narrow window to find, only a gain to reach (a latch's single level moves by VDD_STEP)
CHAIN_GAIN_STEP = 0.05
#: subthreshold slope factor assumed by the current-restoring supply step of a ``faster_with_supply`` cell
SLOPE_N = 1.5
#: largest current factor one such step asks for (a frozen record says only "much too slow")
MAX_CURRENT_STEP = 30.0


def slow_supply_step(vdd_v: float, flips_per_us: float, min_flips_per_us: float, temp_c: float) -> float:
    """Supply increase (V) after a too-slow check of a ``faster_with_supply`` cell: the flip rate of
    a chain scales with its current, which rises ~exp(ΔVDD / (2 n V_T)) when the amplifiers' V_SG is
    VDD/2, so ΔVDD = 2 n V_T ln(1.5 min / flips) (a 1.5x margin; the factor capped at
    MAX_CURRENT_STEP), and at least SLOW_VDD_STEP of the supply."""
    from .noise import thermal_voltage

    need = min(max(1.5 * min_flips_per_us / max(flips_per_us, 1e-9), 1.0), MAX_CURRENT_STEP)
    return max(SLOW_VDD_STEP * vdd_v, 2 * SLOPE_N * thermal_voltage(temp_c) * math.log(need))


#: |P(1) - 0.5| above which a single-peaked check counts as frozen on one side (see trim_cell)
ONE_SIDED_P1 = 0.3


@dataclass(frozen=True)
class BalanceSpec:
    """The ``[balance]`` table of a cell.toml: trim .param, low-rail node, design loop gain."""

    trim: str | None  # None: the supply alone is trimmed (no balance stage)
    low_node: str
    gain_target: float
    #: every failed check raises the supply (cells without positive feedback, e.g. an amplified-noise
    #: chain, gain speed and gain with supply; a latch freezes) instead of bracketing the window
    faster_with_supply: bool = False
    #: the forced and sensed nodes of the balance transfer (None: the v_outb / v_out outputs)
    force_node: str | None = None
    sense_node: str | None = None
    #: a second trim input chosen per condition before the balance (the first of aux_values that
    #: reaches the design gain), None: none
    aux_trim: str | None = None
    aux_values: tuple[float, ...] = ()
    #: bias_offset's method: "inverters" (a latch) or "readout" (a cell whose DC operating point is unique)
    offset: str = "inverters"
    #: when the checks at one aux value fail, go on to the next aux value that reaches the design gain
    #: (False: the first aux value with a DC point is the only one checked)
    aux_fallback: bool = False


@dataclass(frozen=True)
class DcPoint:
    """Open-loop DC inverter figures at one (trim, vdd): switching point and gain.

    trim_v, vdd_v: V. vm_frac: (V_m - V_low)/VDD (0.5 = balanced; NaN if the transfer never crosses
    V_out = V_in). gain: -dV_out/dV_in at V_m (the latch is bistable without noise when > 1).
    """

    trim_v: float
    vdd_v: float
    vm_frac: float
    gain: float


@dataclass(frozen=True)
class TrimCheck:
    """Transient check at zero bias: P(1) with its standard error, flip rate, regime."""

    trim_v: float
    vdd_v: float
    duration_s: float
    seed: int
    p1: float
    p1_se: float
    flips_per_us: float
    regime: str
    regime_detail: str
    power_w: float
    energy_per_flip_j: float


@dataclass(frozen=True)
class TrimResult:
    """Outcome of :func:`trim_cell`.

    ok: a trim was found that passed the transient check. trim_param / trim_v / vdd_v: the values
    (V). dc: the DC figures at that point. check: the last transient check (None if none ran).
    attempts: every transient check made, in order. message: one line for users.
    """

    cell: str
    corner: str
    temp_c: float
    ok: bool
    trim_param: str
    trim_v: float
    vdd_v: float
    dc: DcPoint | None
    check: TrimCheck | None
    attempts: tuple[TrimCheck, ...] = ()
    message: str = ""
    mismatch_seed: int | None = None
    bias_offset_v: float | None = None
    #: the ``[balance] aux_trim`` value used ({} for cells without one)
    aux_trim_v: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attempts"] = [asdict(a) for a in self.attempts]
        return _finite(d)

    def summary(self) -> str:
        head = f"trim {self.cell} at {self.corner}, {self.temp_c:g} °C" + (
            f", mismatch seed {self.mismatch_seed}" if self.mismatch_seed is not None else "")
        lines = [head, f"  {'OK' if self.ok else 'NO TRIM'}: {self.message}",
                 (f"  {self.trim_param} = {self.trim_v:.4f} V, " if self.trim_param != "VDD" else "  ")
                 + "".join(f"{k} = {v:.4f} V, " for k, v in self.aux_trim_v.items())
                 + f"VDD = {format_si(self.vdd_v, 'V')}"]
        if self.dc:
            lines.append(f"  DC: switching point at {self.dc.vm_frac:.3f} of VDD, loop-half gain {self.dc.gain:.3f}")
        if self.bias_offset_v is not None:
            lines.append(f"  bias offset for P(1)=0.5: {format_si(self.bias_offset_v, 'V')}")
        for a in self.attempts:
            extra = f" {self.trim_param}={a.trim_v:.4f}" if self.trim_param != "VDD" else ""
            lines.append(f"  check VDD={format_si(a.vdd_v, 'V')}{extra}: {a.regime}, "
                         f"P(1)={a.p1:.3f}±{a.p1_se:.3f}, {a.flips_per_us:.3g} flips/µs over "
                         f"{format_si(a.duration_s, 's')}, {format_si(a.power_w, 'W')}")
        return "\n".join(lines)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def balance_spec(cell) -> BalanceSpec:
    """Read the ``[balance]`` table of ``cell`` (a CellSpec); InputError naming the file if absent/bad."""
    path = Path(cell.cell_dir or cell.netlist_path.parent) / "cell.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    b = raw.get("balance")
    if not isinstance(b, dict):
        raise InputError(f"{path}: no [balance] table (trim, low_node, gain_target); this cell cannot be "
                         "trimmed automatically — see noisecell/trim.py for the method")
    trim, low, gain = b.get("trim") or None, b.get("low_node"), b.get("gain_target")
    if trim is not None and trim not in cell.trim:
        raise InputError(f"{path}: [balance] trim = {trim!r} is not one of the cell's [trim.*] inputs {list(cell.trim)}")
    from .netlist import IDENT
    if not isinstance(low, str) or not (low == "0" or IDENT.match(low)):
        raise InputError(f"{path}: [balance] low_node must be a node name, got {low!r}")
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 1.0 < float(gain) < 20.0:
        raise InputError(f"{path}: [balance] gain_target must be a number in (1, 20), got {gain!r}")
    if "v_outb" not in cell.outputs:
        raise InputError(f"{path}: the balance method needs a differential cell (outputs v_out and v_outb)")
    faster = b.get("faster_with_supply", False)
    if not isinstance(faster, bool):
        raise InputError(f"{path}: [balance] faster_with_supply must be true or false, got {faster!r}")
    nodes = [b.get("force_node"), b.get("sense_node")]
    if (nodes[0] is None) != (nodes[1] is None):
        raise InputError(f"{path}: [balance] force_node and sense_node go together (give both or neither)")
    for n in nodes:
        if n is not None and not (isinstance(n, str) and IDENT.match(n)):
            raise InputError(f"{path}: [balance] force_node/sense_node must be node names, got {n!r}")
    aux, aux_values = b.get("aux_trim"), b.get("aux_values")
    if aux is not None:
        if aux not in cell.trim or aux == trim:
            raise InputError(f"{path}: [balance] aux_trim = {aux!r} must be one of the cell's other [trim.*] inputs "
                             f"{[t for t in cell.trim if t != trim]}")
        lo, hi = cell.trim[aux].range_v
        if aux_values is None:
            aux_values = [cell.trim[aux].nominal_v]
        if (not isinstance(aux_values, list) or not aux_values
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi for v in aux_values)):
            raise InputError(f"{path}: [balance] aux_values must be a non-empty list of voltages inside "
                             f"[trim.{aux}] range_v [{lo}, {hi}], got {aux_values!r}")
    elif aux_values is not None:
        raise InputError(f"{path}: [balance] aux_values without aux_trim; name the trim input they are for")
    offset = b.get("offset", "inverters")
    if offset not in ("inverters", "readout"):
        raise InputError(f"{path}: [balance] offset must be \"inverters\" (a latch) or \"readout\" (a chain), got {offset!r}")
    fallback = b.get("aux_fallback", False)
    if not isinstance(fallback, bool) or (fallback and aux is None):
        raise InputError(f"{path}: [balance] aux_fallback must be true or false and needs aux_trim/aux_values, "
                         f"got {fallback!r}")
    return BalanceSpec(trim, low, float(gain), faster, nodes[0], nodes[1], aux,
                       tuple(float(v) for v in aux_values) if aux else (), offset, fallback)


def _cell_values(cell, *, corner: str, temp_c: float, bias_v: float, vdd_v: float | None,
                 trim: dict | None, params: dict | None) -> dict[str, float]:
    """The validated .param values of a job (reuses job_from_cell's range checks)."""
    from .simulate import job_from_cell

    job = job_from_cell(cell, bias_v=bias_v, corner=corner, temp_c=temp_c, vdd_v=vdd_v, trim=trim,
                        params=params, duration_s=1e-6, noise_step_s=1e-9, seed=0)
    return dict(job.params)


def dc_points(cell, corner: str, temp_c: float, points: Sequence[tuple[float, float]], *, bias_v: float = 0.0,
              mismatch_seed: int | None = None, params: dict | None = None,
              forced: str = "v_outb", timeout_s: float | None = BATCH_TIMEOUT_S,
              fixed_trim: dict | None = None) -> list[DcPoint]:
    """Open-loop DC figures of ``cell`` at each (trim_v, vdd_v) of ``points``.

    One ngspice batch process; points are applied with ``alterparam`` + ``reset``. With a mismatch
    seed, every point runs in its own process instead, because ``reset`` would redraw the mismatch
    (``.options seed`` makes each process draw the same instance). ``forced``: the output forced by
    the DC source ("v_outb": inverter 1 drives v_out; "v_out": inverter 2 drives v_outb).
    ``timeout_s``: wall s per ngspice batch run (SimulationTimeout after it). ``fixed_trim``: values of
    other trim inputs (e.g. the ``[balance] aux_trim``), held through every point.
    """
    from . import netlist as nl
    from .technology import model_lines

    bal = balance_spec(cell)
    if not points:
        return []
    sensed = "v_out" if forced == "v_outb" else "v_outb"
    t0, v0 = points[0]
    tr = (lambda t: {**(fixed_trim or {}), **({bal.trim: t} if bal.trim else {})} or None)
    base = _cell_values(cell, corner=corner, temp_c=temp_c, bias_v=bias_v, vdd_v=v0, trim=tr(t0), params=params)
    supply = cell.supplies[cell.main_supply].param
    for t, v in points:  # range checks for every point
        _cell_values(cell, corner=corner, temp_c=temp_c, bias_v=bias_v, vdd_v=v, trim=tr(t), params=params)
    body = nl.set_params(cell.template, base, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    opts = f".options temp={float(temp_c)!r} tnom=27.0" + (f" seed={int(mismatch_seed)}" if mismatch_seed is not None else "")
    head = [f"* noisecell trim DC: {cell.name} {corner} {temp_c:g} C", *model_lines(cell.technology, corner,
            mismatch=mismatch_seed is not None, netlist=body), body, opts,
            f"Vnc_force {_node(cell, bal, forced)} {bal.low_node} DC 0"]
    out_node, low = _node(cell, bal, sensed), bal.low_node

    def block(i: int, t: float | None, v: float) -> list[str]:
        v = float(v)  # numpy scalars would print as np.float64(...)
        step = v / (DC_POINTS - 1)
        alt = [f"alterparam {bal.trim}={float(t)!r}"] if bal.trim else []
        return alt + [f"alterparam {supply}={v!r}", "reset",
                f"dc Vnc_force 0 {v!r} {step!r}",
                     f"wrdata p{i}.dat v({out_node})" + (f" v({low})" if low != "0" else "")]

    with tempfile.TemporaryDirectory(prefix="noisecell-trim-") as td:
        wd = Path(td)
        groups = [list(enumerate(points))] if mismatch_seed is None else [[(i, p)] for i, p in enumerate(points)]
        for g in groups:
            ctl = [".control", "set wr_singlescale"]
            for i, (t, v) in g:
                ctl += block(i, t, v)
            ctl += ["quit", ".endc", ".end"]
            log = run_batch("\n".join(head + ctl) + "\n", wd, technology=cell.technology, timeout_s=timeout_s,
                            name=f"DC trim analysis of cell {cell.name} ({corner}, {temp_c:g} C)", filename="dc.cir")
            for i, _ in g:
                if not (wd / f"p{i}.dat").is_file():
                    tail = " ".join(log.strip().splitlines()[-3:])
                    raise SimulationError(f"DC trim analysis of cell {cell.name} ({corner}, {temp_c:g} C) failed: {tail}")
        res = []
        for i, (t, v) in enumerate(points):
            d = np.loadtxt(wd / f"p{i}.dat")
            vin, vout = d[:, 0], d[:, 1] - (d[:, 2] if low != "0" else 0.0)
            res.append(DcPoint(float(t) if t is not None else float("nan"), float(v), *_switching_point(vin, vout, v)))
    return res


def _node(cell, bal: BalanceSpec, port: str) -> str:
    """Netlist node of the balance transfer's ``port`` ("v_out" sensed / "v_outb" forced by default): the
    cell's output, or ``[balance] sense_node`` / ``force_node`` when given (the reversed transfer, as
    bias_offset uses, swaps them)."""
    if bal.force_node is None:
        return cell.outputs[port]
    return bal.sense_node if port == "v_out" else bal.force_node


def _switching_point(vin: np.ndarray, vout: np.ndarray, vdd: float) -> tuple[float, float]:
    """(V_m/VDD, -dV_out/dV_in at V_m) of an inverter transfer; NaNs if it never crosses V_out = V_in."""
    f = vout - vin
    s = np.nonzero(np.diff(np.sign(f)) != 0)[0]
    if len(s) == 0:
        return float("nan"), float("nan")
    k = int(s[0])
    frac = f[k] / (f[k] - f[k + 1])
    vm = vin[k] + frac * (vin[k + 1] - vin[k])
    # gain from a 5-point centred fit so the 0.25 mV grid's rounding does not enter
    lo, hi = max(k - 2, 0), min(k + 4, len(vin))
    slope = np.polyfit(vin[lo:hi], vout[lo:hi], 1)[0]
    return float(vm / vdd), float(-slope)


def _root(xs: Sequence[float], ys: Sequence[float], target: float) -> float | None:
    """First x where the piecewise-linear y(x) crosses ``target`` (NaN points skipped)."""
    pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if (y0 - target) == 0:
            return x0
        if (y0 - target) * (y1 - target) < 0:
            return x0 + (target - y0) * (x1 - x0) / (y1 - y0)
    if pts and pts[-1][1] == target:
        return pts[-1][0]
    return None


def balance(cell, corner: str, temp_c: float, vdd_v: float, *, grid: int = 14, **kw) -> DcPoint | None:
    """Trim value that puts the switching point at mid-rail at supply ``vdd_v`` (None if out of range)."""
    bal = balance_spec(cell)
    if bal.trim is None:  # nothing to balance with: the DC figures at this supply
        p = dc_points(cell, corner, temp_c, [(None, vdd_v)], **kw)[0]
        return p if math.isfinite(p.vm_frac) else None
    lo, hi = cell.trim[bal.trim].range_v
    xs = [float(x) for x in np.linspace(lo, hi, grid)]
    pts = dc_points(cell, corner, temp_c, [(x, vdd_v) for x in xs], **kw)
    x = _root(xs, [p.vm_frac for p in pts], 0.5)
    if x is None:
        return None
    h = (hi - lo) / (grid - 1)
    xs2 = [float(min(max(x + h * f, lo), hi)) for f in np.linspace(-0.6, 0.6, 7)]
    pts2 = dc_points(cell, corner, temp_c, [(x2, vdd_v) for x2 in xs2], **kw)
    x2 = _root(xs2, [p.vm_frac for p in pts2], 0.5)
    x = x if x2 is None else x2
    return dc_points(cell, corner, temp_c, [(x, vdd_v)], **kw)[0]


def balanced_gain_point(cell, corner: str, temp_c: float, *, vdd_grid: Sequence[float] | None = None,
                        **kw) -> DcPoint | None:
    """Balanced trim and the supply at which the open-loop gain equals the design gain (stages 1-2)."""
    bal = balance_spec(cell)
    s = cell.supplies[cell.main_supply]
    grid = list(vdd_grid) if vdd_grid is not None else list(np.linspace(s.range_v[0], s.range_v[1], 6))
    pts = [balance(cell, corner, temp_c, v, **kw) for v in grid]
    ok = [(v, p) for v, p in zip(grid, pts) if p is not None]
    if len(ok) < 2:
        return None
    v = _root([v for v, _ in ok], [p.gain for _, p in ok], bal.gain_target)
    if v is None:
        return None
    # refine on a grid one coarse step wide around the first estimate (the gain is convex in VDD)
    h = (grid[-1] - grid[0]) / max(len(grid) - 1, 1)
    fine = [float(min(max(v + h * f, s.range_v[0]), s.range_v[1])) for f in np.linspace(-0.5, 0.5, 6)]
    pf = [balance(cell, corner, temp_c, x, **kw) for x in fine]
    okf = [(x, p) for x, p in zip(fine, pf) if p is not None]
    v2 = _root([x for x, _ in okf], [p.gain for _, p in okf], bal.gain_target) if len(okf) >= 2 else None
    return balance(cell, corner, temp_c, v if v2 is None else v2, **kw)


def check(cell, corner: str, temp_c: float, trim_v: float, vdd_v: float, *, duration_s: float, seed: int,
          noise_step_s: float = 1e-9, bias_v: float = 0.0, mismatch_seed: int | None = None,
          options: dict | None = None, timeout_s: float | None = None, fixed_trim: dict | None = None) -> TrimCheck:
    """Transient noise run at ``bias_v``: P(1), its SE, flip rate, regime (stage 3)."""
    from .digitize import readout_signal
    from .regime import classify_waveform
    from .simulate import job_from_cell
    from .simulator import run_job

    bal = balance_spec(cell)
    job = job_from_cell(cell, bias_v=bias_v, corner=corner, temp_c=temp_c, vdd_v=vdd_v,
                        trim={**(fixed_trim or {}), **({bal.trim: trim_v} if bal.trim else {})} or None,
                        duration_s=duration_s, noise_step_s=noise_step_s, seed=seed, mismatch_seed=mismatch_seed,
                        options=options)
    # one rung of the non-convergence ladder (Gear), as sweeps allow: a cell whose saturated stage
    # trips ngspice's step control once must not end a whole trim table
    wf = run_job(job, timeout_s=timeout_s, retries=1)
    skip = min(0.5e-6, 0.05 * duration_s)  # settling from the operating point
    r = classify_waveform(wf, skip_s=skip)
    x, _, thr = readout_signal(wf, source=job.describe())  # the cell's own readout (one helper for all)
    keep = wf.time_s >= wf.time_s[0] + skip
    p1 = float(np.mean(x[keep] > (cell.readout.threshold_v if thr is None else thr)))
    n = max(r.n_transitions, 1)
    se = 2 * p1 * (1 - p1) / math.sqrt(n) if 0 < p1 < 1 else float("nan")
    flips = r.n_transitions / (r.duration_s * 1e6)
    power = wf.mean_supply_power_w()
    epf = power / (flips * 1e6) if flips > 0 else float("nan")
    return TrimCheck(trim_v=float(trim_v), vdd_v=float(vdd_v), duration_s=float(duration_s), seed=int(seed), p1=p1,
                     p1_se=float(se), flips_per_us=float(flips), regime=r.regime, regime_detail=r.describe(),
                     power_w=float(power), energy_per_flip_j=float(epf))


def trim_cell(cell, corner: str, temp_c: float, *, duration_s: float = 10e-6, seed: int = 1,
              min_flips_per_us: float = 1.0, max_iterations: int = 5, vdd_grid: Sequence[float] | None = None,
              options: dict | None = None, mismatch_seed: int | None = None,
              progress: Callable[[str], None] | None = None,
              timeout_s: float | None = BATCH_TIMEOUT_S) -> TrimResult:
    """Search the cell's trim (and supply) at (corner, temp_c) — see the module docstring.

    timeout_s: wall s allowed for each ngspice run (DC batch or transient check); SimulationTimeout
    (exit 3) after it.
    """
    bal = balance_spec(cell)
    say = progress or (lambda s: None)
    s = cell.supplies[cell.main_supply]
    say(f"{corner} {temp_c:g} C: DC balance and loop gain")
    failed: list[TrimResult] = []  # checked aux values that did not pass (aux_fallback)
    for a in (bal.aux_values if bal.aux_trim else (None,)):
        # the first aux value at which stages 1-2 reach a balanced point at the design gain (with
        # aux_fallback: each such value in turn until one passes its checks)
        fixed = {} if a is None else {bal.aux_trim: a}
        if a is not None:
            say(f"  {bal.aux_trim} = {a:g} V")
        dc = balanced_gain_point(cell, corner, temp_c, vdd_grid=vdd_grid, mismatch_seed=mismatch_seed,
                                 timeout_s=timeout_s, fixed_trim=fixed or None)
        if dc is None:
            continue
        res = _checks(cell, bal, corner, temp_c, dc, fixed, duration_s=duration_s, seed=seed,
                      min_flips_per_us=min_flips_per_us, max_iterations=max_iterations, options=options,
                      mismatch_seed=mismatch_seed, say=say, timeout_s=timeout_s)
        if res.ok or not bal.aux_fallback:
            return _with_earlier(res, failed, bal)
        failed.append(res)
    if failed:  # every aux value with a DC point was checked and failed: the last one's result
        return _with_earlier(failed[-1], failed[:-1], bal)
    base = dict(cell=cell.name, corner=corner, temp_c=float(temp_c), trim_param=bal.trim or s.param,
                mismatch_seed=mismatch_seed, aux_trim_v=fixed)
    within = (f"{bal.trim} {list(cell.trim[bal.trim].range_v)} V and " if bal.trim else "")
    if bal.aux_trim:
        within += f"{bal.aux_trim} at any of {list(bal.aux_values)} V and "
    return TrimResult(**base, ok=False, trim_v=float("nan"), vdd_v=float("nan"), dc=None, check=None,
                      message=(f"no trim works: within {within}VDD {list(s.range_v)} V the latch does not "
                               f"reach loop gain {bal.gain_target:g} with its switching point inside the rail"))


def _with_earlier(res: TrimResult, failed: list[TrimResult], bal: BalanceSpec) -> TrimResult:
    """``res`` with the aux values checked before it (and how each failed) named in its message."""
    if not failed:
        return res
    also = "; ".join(f"{bal.aux_trim} = {f.aux_trim_v[bal.aux_trim]:g} V failed ({f.message})" for f in failed)
    return replace(res, message=f"{res.message} [before: {also}]")


def _checks(cell, bal: BalanceSpec, corner: str, temp_c: float, dc: DcPoint, fixed: dict, *, duration_s: float,
            seed: int, min_flips_per_us: float, max_iterations: int, options: dict | None,
            mismatch_seed: int | None, say, timeout_s: float | None) -> TrimResult:
    """Stage 3 of trim_cell at one aux value ``fixed``: transient checks from the DC point ``dc``."""
    s = cell.supplies[cell.main_supply]
    base = dict(cell=cell.name, corner=corner, temp_c=float(temp_c), trim_param=bal.trim or s.param,
                mismatch_seed=mismatch_seed, aux_trim_v=fixed)
    tv = (lambda d, v: d.trim_v if bal.trim else v)
    attempts: list[TrimCheck] = []
    vdd = dc.vdd_v
    # Bracket on the supply: below_v = highest VDD seen single-peaked (barrier too low), above_v =
    # lowest VDD seen frozen/too slow (barrier too high). Until both are known the supply moves by
    # VDD_STEP; then it bisects, because the bistable window is only a few % of VDD wide.
    below_v, above_v = -math.inf, math.inf
    for it in range(max_iterations):
        also = f"{bal.trim}={tv(dc, vdd):.5g} V, " if bal.trim else ""
        say(f"  check {it + 1}: {also}VDD={vdd * 1e3:.2f} mV, {duration_s * 1e6:g} µs")
        try:
            c = check(cell, corner, temp_c, tv(dc, vdd), vdd, duration_s=duration_s, seed=seed + it, options=options,
                      mismatch_seed=mismatch_seed, timeout_s=timeout_s, fixed_trim=fixed or None)
        except SimulationTimeout as e:
            # a record that stalls the simulator (pbit_x4 at ss -40 C: 10 µs gave no result in 1200 s, the
            # other checks take seconds) is a failed check at this aux value, not the end of the whole
            # trim (`--all` lost every later pair); the next aux value is still tried (aux_fallback)
            nan = float("nan")
            attempts.append(TrimCheck(trim_v=float(tv(dc, vdd)), vdd_v=float(vdd), duration_s=float(duration_s),
                                      seed=int(seed + it), p1=nan, p1_se=nan, flips_per_us=nan, regime="stalled",
                                      regime_detail=f"no result: {e}", power_w=nan, energy_per_flip_j=nan))
            say(f"    stalled: {e}")
            break
        attempts.append(c)
        say(f"    {c.regime}: P(1)={c.p1:.3f}±{c.p1_se:.3f}, {c.flips_per_us:.3g} flips/µs")
        centred = math.isfinite(c.p1_se) and abs(c.p1 - 0.5) <= 3 * c.p1_se
        if c.regime == "bistable" and c.flips_per_us >= min_flips_per_us and centred:
            return TrimResult(**base, ok=True, trim_v=tv(dc, vdd), vdd_v=vdd, dc=dc, check=c, attempts=tuple(attempts),
                              message=(f"bistable, P(1)={c.p1:.3f}±{c.p1_se:.3f}, {c.flips_per_us:.3g} flips/µs "
                                       f"at VDD={vdd * 1e3:.2f} mV"))
        # A single level far to one side of the threshold is a latch frozen in one state whose record
        # also holds a short excursion (the settling from the operating point, or one brief visit):
        # too much barrier, like "stuck". A single level of a latch below the window straddles the
        # threshold (P(1) near 0.5 by symmetry).
        one_sided = c.regime == "single_peaked" and abs(c.p1 - 0.5) > ONE_SIDED_P1
        # A cell without positive feedback has no "too much barrier": a single level lacks gain, a
        # frozen/one-sided or slow record lacks current (its noise is slower than the record), and
        # both come with more supply.
        raise_supply = (c.regime == "single_peaked" and not one_sided) or bal.faster_with_supply
        if raise_supply:
            below_v = max(below_v, vdd)
        else:  # stuck/frozen, too slow, or off-centre (a slow latch that stayed long on one side)
            above_v = min(above_v, vdd)
        if math.isfinite(below_v) and math.isfinite(above_v):
            if above_v - below_v < 2e-4:  # 0.2 mV: finer than any supply is set
                break
            nv = 0.5 * (below_v + above_v)
        else:
            # a too-slow chain needs current, which rises only ~exp(ΔVDD/2nV_T): a bigger step
            slow = c.regime != "single_peaked" or c.flips_per_us < min_flips_per_us
            if raise_supply and bal.faster_with_supply and slow:
                nv = vdd + slow_supply_step(vdd, c.flips_per_us, min_flips_per_us, temp_c)
            elif raise_supply:
                nv = vdd * (1 + (CHAIN_GAIN_STEP if bal.faster_with_supply else VDD_STEP))
            else:
                nv = vdd * (1 - VDD_STEP)
        if not s.range_v[0] <= nv <= s.range_v[1]:
            break
        nb = balance(cell, corner, temp_c, nv, mismatch_seed=mismatch_seed, timeout_s=timeout_s, fixed_trim=fixed or None)
        if nb is None:
            break
        dc, vdd = nb, nv
    last = attempts[-1]
    if math.isfinite(below_v) and math.isfinite(above_v):  # best estimate: the middle of the bracket
        vdd = 0.5 * (below_v + above_v)
    if last.regime == "stalled":
        return TrimResult(**base, ok=False, trim_v=tv(dc, vdd), vdd_v=vdd, dc=dc, check=last, attempts=tuple(attempts),
                          message=(f"no trim works: {len(attempts)} checks; the last gave no record "
                                   f"(VDD={vdd * 1e3:.2f} mV: {last.regime_detail})"))
    return TrimResult(**base, ok=False, trim_v=tv(dc, vdd), vdd_v=vdd, dc=dc, check=last, attempts=tuple(attempts),
                      message=(f"no trim works: {len(attempts)} checks; the last saw {last.regime} with "
                               f"P(1)={last.p1:.3f}, {last.flips_per_us:.3g} flips/µs (need bistable, P(1)≈0.5, "
                               f"≥ {min_flips_per_us:g} flips/µs)"))


def bias_offset(cell, corner: str, temp_c: float, *, mismatch_seed: int, trim_v: float | None = None,
                vdd_v: float | None = None, fixed_trim: dict | None = None) -> float | None:
    """Bias (V) at which a mismatched instance's two inverters switch at the same input (DC).

    For the symmetric latch P(1) = 0.5 where the two half-circuits are identical; with mismatch the
    bias that equalises their switching points (V_m of inverter 1 forced from v_outb = V_m of
    inverter 2 forced from v_out) is the offset the instance needs, to first order. None when the
    root is outside the bias range. ``fixed_trim``: the other trim inputs' values (e.g. the ``[balance]
    aux_trim`` a trim_cell result used); inputs not given take their stored/nominal values.
    """
    bal = balance_spec(cell)
    if bal.trim is not None and trim_v is None:
        trim_v = cell.trim[bal.trim].value_for(corner, temp_c)
    if vdd_v is None:
        vdd_v = trimmed_point(cell, corner, temp_c)[1]
    lo, hi = cell.bias.range_v
    if bal.offset == "readout":
        return _readout_offset(cell, corner, temp_c, mismatch_seed=mismatch_seed, trim_v=trim_v, vdd_v=vdd_v,
                               fixed_trim=fixed_trim)

    def diff(b: float) -> float:
        a = dc_points(cell, corner, temp_c, [(trim_v, vdd_v)], bias_v=b, mismatch_seed=mismatch_seed, forced="v_outb",
                      fixed_trim=fixed_trim)[0]
        c = dc_points(cell, corner, temp_c, [(trim_v, vdd_v)], bias_v=b, mismatch_seed=mismatch_seed, forced="v_out",
                      fixed_trim=fixed_trim)[0]
        return a.vm_frac - c.vm_frac

    from scipy.optimize import brentq

    flo, fhi = diff(lo), diff(hi)
    if not (math.isfinite(flo) and math.isfinite(fhi)) or flo * fhi > 0:
        return None
    return float(brentq(diff, lo, hi, xtol=1e-5))


def readout_dc(cell, corner: str, temp_c: float, bias_v: float, *, trim_v: float | None, vdd_v: float,
               mismatch_seed: int | None = None, timeout_s: float | None = BATCH_TIMEOUT_S,
               fixed_trim: dict | None = None) -> float:
    """Noise-free DC operating point of the readout, V(v_out) - V(v_outb) (differential) or V(v_out) -
    threshold (single-ended), at ``bias_v``: one ngspice process (a reset would redraw the mismatch).
    Meaningful for cells with one operating point (a chain); a latch's is its metastable point.
    ``fixed_trim``: values of the other trim inputs (e.g. the ``[balance] aux_trim``); those not given
    take their stored/nominal values."""
    from . import netlist as nl
    from .technology import model_lines

    bal = balance_spec(cell)
    trim = {**(fixed_trim or {}), **({bal.trim: trim_v} if bal.trim and trim_v is not None else {})}
    vals = _cell_values(cell, corner=corner, temp_c=temp_c, bias_v=bias_v, vdd_v=vdd_v, trim=trim or None, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    o = cell.outputs["v_out"]
    ob = cell.outputs.get("v_outb")
    expr = f"v({o})-v({ob})" if ob else f"v({o})"
    opts = f".options temp={float(temp_c)!r} tnom=27.0" + (f" seed={int(mismatch_seed)}" if mismatch_seed is not None else "")
    text = "\n".join([f"* noisecell readout DC: {cell.name}", *model_lines(cell.technology, corner,
                      mismatch=mismatch_seed is not None, netlist=body), body, opts, ".control", "op", f"print {expr}", "quit",
                      ".endc", ".end"]) + "\n"
    with tempfile.TemporaryDirectory(prefix="noisecell-offset-") as td:
        out = run_batch(text, td, technology=cell.technology, timeout_s=timeout_s,
                        name=f"DC readout of cell {cell.name} ({corner}, {temp_c:g} C)")
    import re
    m = re.search(r"= (-?[0-9.]+e[-+][0-9]+)", out.split("print")[-1] if "print" in out else out)
    if not m:
        tail = " ".join(out.strip().splitlines()[-3:])
        raise SimulationError(f"DC readout of cell {cell.name} ({corner}, {temp_c:g} C): no operating point ({tail})")
    thr = float(cell.readout.threshold_v or 0.0)
    return float(m.group(1)) - thr


def _readout_offset(cell, corner: str, temp_c: float, *, mismatch_seed: int, trim_v: float | None,
                    vdd_v: float, fixed_trim: dict | None = None) -> float | None:
    """Bias at which the instance's noise-free DC readout crosses its threshold (``[balance] offset =
    "readout"``): the centre of its sigmoid to first order for a cell whose DC transfer from bias to
    the readout is monotonic and steep (an amplified-noise chain). None outside the bias range."""
    from scipy.optimize import brentq

    lo, hi = cell.bias.range_v
    f = (lambda b: readout_dc(cell, corner, temp_c, b, trim_v=trim_v, vdd_v=vdd_v, mismatch_seed=mismatch_seed,
                              fixed_trim=fixed_trim))
    flo, fhi = f(lo), f(hi)
    if not (math.isfinite(flo) and math.isfinite(fhi)) or flo * fhi > 0:
        return None
    return float(brentq(f, lo, hi, xtol=1e-5))


# ----------------------------------------------------------------------------------------------
# the stored trim table: spice_models/<cell>/trims.json, the one place trims live (cells.TRIMS_FILE)
TABLE_TEMPS_C = (-40.0, 27.0, 85.0)


def trims_path(cell) -> Path:
    from .cells import TRIMS_FILE

    return Path(cell.cell_dir or cell.netlist_path.parent) / TRIMS_FILE


def stored_trims(cell) -> dict[str, list[dict]]:
    """Rows of the cell's trims.json ({trim param: [row, ...]}); {} when the cell has none."""
    from .cells import read_trims_json

    return read_trims_json(trims_path(cell).parent).get("trims", {})


def row_from_result(res: TrimResult) -> dict:
    c = res.check
    row = {"corner": res.corner, "temp_c": res.temp_c, "ok": res.ok, "message": res.message,
           "value_v": res.trim_v, "vdd_v": res.vdd_v,
           "dc_vm_frac": res.dc.vm_frac if res.dc else None, "dc_gain": res.dc.gain if res.dc else None}
    if res.aux_trim_v:
        row["aux_trims"] = dict(res.aux_trim_v)
    if c is not None:
        row.update({"p1": round(c.p1, 4), "p1_se": round(c.p1_se, 4) if math.isfinite(c.p1_se) else None,
                    "flips_per_us": round(c.flips_per_us, 4), "regime": c.regime, "power_w": c.power_w,
                    "energy_per_flip_j": c.energy_per_flip_j if math.isfinite(c.energy_per_flip_j) else None,
                    "check_duration_s": c.duration_s, "check_seed": c.seed, "checks": len(res.attempts)})
        bist = [a for a in res.attempts if a.regime == "bistable"]
        if bist:  # the fastest bistable point seen, even when it missed the flip-rate target
            b = max(bist, key=lambda a: a.flips_per_us)
            row["best_bistable"] = {"vdd_v": b.vdd_v, "p1": round(b.p1, 4), "flips_per_us": round(b.flips_per_us, 4),
                                    "power_w": b.power_w}
    return _finite(row)


def write_table(cell, rows: list[dict], *, command: str) -> Path:
    """Write ``rows`` to the cell's trims.json (atomically), the one place trims are stored: the
    loader (:func:`noisecell.cells.load_cell`) takes the passing rows' values from it."""
    import json
    from importlib.metadata import version

    from .technology import model_identity

    bal = balance_spec(cell)
    rows = sorted(rows, key=lambda r: (r["corner"], r["temp_c"]))
    trims = {bal.trim or cell.supplies[cell.main_supply].param: rows}
    if bal.aux_trim:  # the aux input's own rows, so the loader sets it like any stored trim
        trims[bal.aux_trim] = [
            {"corner": r["corner"], "temp_c": r["temp_c"], "ok": r["ok"], "vdd_v": r.get("vdd_v"),
             "value_v": (r.get("aux_trims") or {}).get(bal.aux_trim),
             "message": f"set with the {bal.trim or 'supply'} trim of this row ([balance] aux_trim)"} for r in rows]
    data = {"cell": cell.name, "generated_by": command, "noisecell": version("noisecell") if _has_dist() else None,
            "models": model_identity(cell.technology), "method": "noisecell/trim.py (DC balance + loop gain, transient check)",
            "trims": trims}
    from .schema import validate

    validate(data, "trims-v1.json", str(trims_path(cell)))  # never write a table the loader would refuse
    atomic_write(trims_path(cell), json.dumps(data, indent=1, sort_keys=True) + "\n")
    return trims_path(cell)


def _has_dist() -> bool:
    try:
        from importlib.metadata import version
        version("noisecell")
        return True
    except Exception:
        return False


def trimmed_point(cell, corner: str, temp_c: float) -> tuple[dict[str, float], float]:
    """(trim .param values, supply V) stored for (corner, temp_c): linear interpolation in
    temperature between the table's rows (passing rows and the best estimates of failed ones), the
    nearest row outside them (no extrapolation); the cell's nominal values when the corner has no
    row with a supply."""
    bal = balance_spec(cell)
    s = cell.supplies[cell.main_supply]
    key = bal.trim or s.param
    allrows = [r for r in stored_trims(cell).get(key, []) if r.get("corner") == corner
               and isinstance(r.get("vdd_v"), (int, float))]
    # Every row with a supply: a failed row's best estimate (DC loop-gain supply, or the middle of the
    # single-peaked/frozen bracket) at this temperature is far closer than a passing row at another
    # temperature — the supply that balances the loop gain scales roughly with absolute temperature,
    # so the 85 °C supply run at 27 °C is frozen.
    rows = sorted((float(r["temp_c"]), r) for r in allrows)
    nominal_trim = {bal.trim: cell.trim[bal.trim].nominal_v} if bal.trim else {}
    if bal.aux_trim:
        nominal_trim[bal.aux_trim] = cell.trim[bal.aux_trim].nominal_v
    if not rows:
        return nominal_trim, s.nominal_v

    def at(r):
        vals = {bal.trim: float(r["value_v"])} if bal.trim else {}
        if bal.aux_trim:  # a row without a DC point has no aux value: the nominal
            a = (r.get("aux_trims") or {}).get(bal.aux_trim)
            vals[bal.aux_trim] = float(a) if isinstance(a, (int, float)) else cell.trim[bal.aux_trim].nominal_v
        return vals, float(r["vdd_v"])

    if temp_c <= rows[0][0]:
        return at(rows[0][1])
    if temp_c >= rows[-1][0]:
        return at(rows[-1][1])
    for (t0, r0), (t1, r1) in zip(rows, rows[1:]):
        if t0 <= temp_c <= t1:
            w = 0.0 if t1 == t0 else (temp_c - t0) / (t1 - t0)
            (a0, v0), (a1, v1) = at(r0), at(r1)
            return {k: a0[k] + w * (a1[k] - a0[k]) for k in a0}, v0 + w * (v1 - v0)
    return at(rows[-1][1])  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# per-instance DC trim of a mismatched latch (issue 18; added by H18, additive)
@dataclass(frozen=True)
class InstanceTrim:
    """DC trim of one Monte Carlo instance: the balance trim (``trim_param`` = ``trim_v``), the supply
    ``vdd_v`` and the bias ``bias_v`` (the instance's DC offset) at which both half-circuits switch at
    mid-rail (``vm_frac`` 0.5, equal for the two halves) with the design loop gain (geometric mean of
    the two halves' gains = ``[balance] gain_target``). ``ok`` False: no such point inside the trim,
    supply and bias ranges (``message`` says which limit). ``evaluations``: DC evaluations made (two
    ngspice processes each). Volts; ``gains``/``vm_fracs`` of the two halves at the result."""

    mismatch_seed: int
    ok: bool
    trim_param: str | None
    trim_v: float
    vdd_v: float
    bias_v: float
    vm_fracs: tuple[float, float]
    gains: tuple[float, float]
    evaluations: int
    message: str

    def to_dict(self) -> dict:
        return _finite(asdict(self))


def instance_trim(cell, corner: str, temp_c: float, *, mismatch_seed: int, start: tuple[float, float, float] | None = None,
                  tol_vm: float = 2e-4, tol_gain: float = 1e-3, max_iterations: int = 16,
                  jacobian=None, timeout_s: float | None = BATCH_TIMEOUT_S) -> InstanceTrim:
    """Trim one mismatched instance of a latch with a ``[balance]`` trim: solve for (trim, VDD, bias) so
    that the instance's two inverters switch at the same input (bias = its offset, as
    :func:`bias_offset`), at mid-rail (the balance of stage 1) and with the design gain (stage 2).

    Why all three: with the PDK's mismatch a minimum-size pbit instance is not only asymmetric (the
    bias offset) but also unbalanced as a whole (its switching point sits at 0.60-0.65 of VDD at the
    nominal trim, measured on 4 instances at tt 27 °C), which lowers its loop gain (0.93-1.01 against
    1.083): at the nominal trim such an instance is single-peaked at every bias. Newton's method on
    F = (mean V_m/VDD − ½, V_m1/VDD − V_m2/VDD, ln √(A1·A2) − ln A_target) (the three equations are
    nearly decoupled: trim → balance, bias → symmetry, supply → gain), steps clipped to the ranges,
    the Jacobian from forward differences once (or ``jacobian``, e.g. the nominal cell's from
    :func:`balance_jacobian`: instances differ little in it) and then Broyden's rank-one updates, so
    an instance costs about one evaluation per step. Each evaluation is two DC transfers (each half
    forced) in their own ngspice processes, because a ``reset`` would redraw the mismatch.
    ``start``: (trim, VDD, bias), default the stored trim at (corner, temp_c) and zero bias.
    """
    bal = balance_spec(cell)
    if bal.trim is None:
        raise InputError(f"cell {cell.name}: instance_trim needs a [balance] trim input (a latch balance)")
    if bal.offset != "inverters":
        raise InputError(f"cell {cell.name}: instance_trim is for latches ([balance] offset = \"inverters\")")
    lims = np.array([cell.trim[bal.trim].range_v, cell.supplies[cell.main_supply].range_v, cell.bias.range_v], float)
    if start is None:
        stored, vdd0 = trimmed_point(cell, corner, temp_c)
        start = (stored.get(bal.trim, cell.trim[bal.trim].nominal_v), vdd0, 0.0)
    x = np.clip(np.asarray(start, float), lims[:, 0], lims[:, 1])
    target = math.log(bal.gain_target)
    n_eval = 0

    def ev(p):
        nonlocal n_eval
        n_eval += 1
        return _balance_residuals(cell, corner, temp_c, p, target, mismatch_seed=mismatch_seed, timeout_s=timeout_s)

    f, dc = ev(x)
    jac = None if jacobian is None else np.array(jacobian, float)
    if jac is None and np.all(np.isfinite(f)):
        jac = _fd_jacobian(ev, x, f, lims)
    msg = ""
    at_limit = 0
    span = lims[:, 1] - lims[:, 0]
    names = [bal.trim, cell.supplies[cell.main_supply].param, cell.bias.param]
    for it in range(max_iterations):
        if not np.all(np.isfinite(f)):
            msg = "a half-circuit's transfer does not cross V_out = V_in (no switching point) at " + _xs(bal, x)
            break
        if abs(f[0]) < tol_vm and abs(f[1]) < tol_vm and abs(f[2]) < tol_gain:
            a, c = dc
            return InstanceTrim(int(mismatch_seed), True, bal.trim, float(x[0]), float(x[1]), float(x[2]),
                                (a.vm_frac, c.vm_frac), (a.gain, c.gain), n_eval,
                                f"balanced at {_xs(bal, x)} in {n_eval} DC evaluations")
        if it == max_iterations // 2:
            # half the steps spent: the secant Jacobian has drifted (2 of 44 pbit instances crept along
            # for 12 steps, measured): a fresh forward-difference one at the current point
            jac = _fd_jacobian(ev, x, f, lims)
        if jac is None or not np.all(np.isfinite(jac)):
            msg = "the DC transfers lose their switching point next to " + _xs(bal, x)
            break
        try:
            step = np.linalg.solve(jac, -f)
        except np.linalg.LinAlgError:
            msg = f"singular balance equations at {_xs(bal, x)}"
            break
        # damp steps larger than a quarter of a range (Newton far from the root)
        k = float(np.max(np.abs(step) / (0.25 * span)))
        if k > 1:
            step /= k
        xn = np.clip(x + step, lims[:, 0], lims[:, 1])
        pinned = [n for n, v, s_, (lo, hi) in zip(names, xn, step, lims)
                  if (v <= lo + 1e-9 and s_ < 0) or (v >= hi - 1e-9 and s_ > 0)]
        at_limit = at_limit + 1 if pinned else 0
        if at_limit >= 2 or np.allclose(xn, x, rtol=0, atol=1e-7):
            # two Newton steps in a row pushing past a range end: the root lies beyond it
            msg = (f"needs {', '.join(pinned)} beyond the cell's range" if pinned else "Newton stalled") + f" (at {_xs(bal, xn)})"
            x = xn
            f, dc = ev(x)
            break
        fn, dcn = ev(xn)
        if np.all(np.isfinite(fn)):
            dx, df = xn - x, fn - f
            # Broyden's ("good") update: the secant condition along the step just taken
            jac = jac + np.outer(df - jac @ dx, dx) / float(dx @ dx)
        x, f, dc = xn, fn, dcn
    else:
        msg = f"not converged in {max_iterations} Newton steps (at {_xs(bal, x)})"
    a, c = dc
    return InstanceTrim(int(mismatch_seed), False, bal.trim, float(x[0]), float(x[1]), float(x[2]),
                        (a.vm_frac, c.vm_frac), (a.gain, c.gain), n_eval, "no DC trim: " + msg)


def _balance_residuals(cell, corner: str, temp_c: float, p, target: float, *, mismatch_seed, timeout_s):
    """The three balance equations at p = (trim V, VDD V, bias V): mean switching point − 0.5 (of VDD),
    the two halves' switching-point difference, and ln(loop-half gain) − ``target``; with the two DC
    points (each half driven) they came from."""
    t, v, b = (float(q) for q in p)
    a, c = (dc_points(cell, corner, temp_c, [(t, v)], bias_v=b, mismatch_seed=mismatch_seed, forced=node,
                      timeout_s=timeout_s)[0] for node in ("v_outb", "v_out"))
    g = a.gain * c.gain
    f = np.array([0.5 * (a.vm_frac + c.vm_frac) - 0.5, a.vm_frac - c.vm_frac,
                  0.5 * math.log(g) - target if g > 0 else float("nan")])
    return f, (a, c)


def _fd_jacobian(ev, x, f, lims, h=(2e-3, 1e-3, 4e-3)):
    """Forward-difference Jacobian of the balance equations at ``x`` (steps ~1 % of each range: the
    transfers are smooth on that scale; a step past a range end is taken backwards)."""
    jac = np.empty((3, 3))
    for j in range(3):
        xp = np.array(x, float)
        xp[j] += h[j] if xp[j] + h[j] <= lims[j, 1] else -h[j]
        fp, _ = ev(xp)
        jac[:, j] = (fp - f) / (xp[j] - x[j])
    return jac


def balance_jacobian(cell, corner: str, temp_c: float, *, mismatch_seed: int | None = None,
                     at: tuple[float, float, float] | None = None, timeout_s: float | None = BATCH_TIMEOUT_S):
    """Jacobian (3×3, rows: mean balance, asymmetry, ln gain; columns: trim, VDD, bias, per V) of the
    balance equations of :func:`instance_trim` at ``at`` (default: the stored trim, zero bias) —
    without mismatch by default: the starting Jacobian every instance then updates."""
    bal = balance_spec(cell)
    lims = np.array([cell.trim[bal.trim].range_v, cell.supplies[cell.main_supply].range_v, cell.bias.range_v], float)
    if at is None:
        stored, vdd0 = trimmed_point(cell, corner, temp_c)
        at = (stored.get(bal.trim, cell.trim[bal.trim].nominal_v), vdd0, 0.0)
    target = math.log(bal.gain_target)

    def ev(p):
        return _balance_residuals(cell, corner, temp_c, p, target, mismatch_seed=mismatch_seed, timeout_s=timeout_s)

    x = np.asarray(at, float)
    f, _ = ev(x)
    return _fd_jacobian(ev, x, f, lims)


def _xs(bal: BalanceSpec, x) -> str:
    return f"{bal.trim} {x[0] * 1e3:+.2f} mV, VDD {x[1] * 1e3:.2f} mV, bias {x[2] * 1e3:+.1f} mV"
