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
   the flip rate at least ``min_flips_per_us`` (and, when given, at most ``max_flips_per_us``: a p-bit array
   needs similar τ across PVT, and a chain whose dwells are only a few of its own propagation times long
   is a renewal, not a Markov, telegraph -- pbit_x5 at sf 27 °C, 250 flips/µs: dwell histogram rising
   from 0 to a peak at 1-2 ns, CV 0.8, at NT 0.4, 0.2 and 0.1 ns alike). If the record is frozen or too slow (or one level far to one
   side of the threshold) the supply is lowered by 1.5 % and stages 1–3 repeat; if it is single-peaked
   around the threshold it is raised by 1.5 %; once a
   single-peaked and a frozen supply bracket the window, the supply is bisected; at most
   ``max_iterations`` checks. A check faster than ``max_flips_per_us`` has too little barrier: a latch
   gets more supply (more loop gain); a ``faster_with_supply`` chain is slowest at the design gain's
   supply, so it is bisected down only towards a supply seen too slow/single-peaked, and a chain too
   fast at the design gain's supply fails that aux value (with ``aux_fallback`` the next one, e.g. more
   reverse well bias, is tried). Otherwise the result says that no trim works there, and what was seen.

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
    noise_node = "x"       # optional, with offset = "readout": the chain's amplified input node; instance_trim
                           # then trims each instance's chain gain d(readout)/dV(x) to the nominal's
    aux_fallback = true    # optional: when the checks at that aux value fail, the next aux value that
                           # reaches the gain is checked too (e.g. a smaller reverse well bias that
                           # restores the current of a cold slow corner); the first that passes is kept
    offset = "readout"     # optional: how bias_offset (and instance_trim) finds a mismatched instance's offset: "inverters"
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


#: supplies tried between a grid supply where the stages cannot be balanced and its neighbour where they
#: can, when the coarse grid shows no design-gain crossing (balanced_gain_point)
EDGE_POINTS = 5

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
    #: a readout chain's input node whose noise its stages amplify (None: not declared); instance_trim
    #: then holds each instance's chain gain d(readout)/dV(noise_node) at the nominal's
    noise_node: str | None = None


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
    noise = b.get("noise_node")
    if noise is not None and (offset != "readout" or not (isinstance(noise, str) and IDENT.match(noise))):
        raise InputError(f"{path}: [balance] noise_node must be a node name and goes with offset = \"readout\" "
                         f"(the chain's amplified node), got {noise!r}")
    return BalanceSpec(trim, low, float(gain), faster, nodes[0], nodes[1], aux,
                       tuple(float(v) for v in aux_values) if aux else (), offset, fallback, noise)


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
              fixed_trim: dict | None = None, centred_gain: bool = False) -> list[DcPoint]:
    """Open-loop DC figures of ``cell`` at each (trim_v, vdd_v) of ``points``.

    One ngspice batch process; points are applied with ``alterparam`` + ``reset``. With a mismatch
    seed, every point runs in its own process instead, because ``reset`` would redraw the mismatch
    (``.options seed`` makes each process draw the same instance). ``forced``: the output forced by
    the DC source ("v_outb": inverter 1 drives v_out; "v_out": inverter 2 drives v_outb).
    ``timeout_s``: wall s per ngspice batch run (SimulationTimeout after it). ``fixed_trim``: values of
    other trim inputs (e.g. the ``[balance] aux_trim``), held through every point. ``centred_gain``: the
    gain from :func:`_centred_slope` (continuous in the trim and supply, for Newton's method) instead of
    the 6-point window next to the crossing (trim_cell's, kept so stored trims reproduce).
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
            vm, g = _switching_point(vin, vout, v)
            if centred_gain and math.isfinite(vm):
                g = -_centred_slope(vin, vout, vm * v)
            res.append(DcPoint(float(t) if t is not None else float("nan"), float(v), vm, g))
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


def _centred_slope(x: np.ndarray, y: np.ndarray, at: float, half_points: float = 4.0) -> float:
    """dy/dx at ``at`` from a quadratic fit with weights (1 − (d/H)²)² (H = ``half_points`` grid steps),
    so the estimate moves continuously with ``at``. Why: the 6-point window of :func:`_switching_point`
    jumps by one grid point when the crossing passes one, and a mid-rail target sits exactly on a grid
    point (DC_POINTS is odd); pbit_x5's mismatched stages change slope by ~3 % per mV there, so that
    gain jumped 3 % (3.790 → 3.898 for a 0.1 mV supply step, measured) and Newton never met 1e-3."""
    h = half_points * float(np.median(np.diff(x)))
    w = np.clip(1.0 - ((x - at) / h) ** 2, 0.0, None) ** 2
    m = w > 0
    if m.sum() < 4:
        return float("nan")
    c = np.polyfit(x[m] - at, y[m], 2, w=np.sqrt(w[m]))
    return float(c[1])


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
    v = _root([v for v, _ in ok], [p.gain for _, p in ok], bal.gain_target) if len(ok) >= 2 else None
    if v is None:
        # the design gain may be crossed between a supply where the trim cannot balance the stages and
        # the first one where it can (pbit_x5 fs -40 C at VNW -0.1 V: no balance at 150 mV, gain 4.27 at
        # 290 mV against the target 3.8, so the coarse grid saw no crossing): refine every such edge
        fine_ok = []
        for (v0, p0), (v1, p1) in zip(zip(grid, pts), zip(grid[1:], pts[1:])):
            if (p0 is None) != (p1 is None):
                fx = [float(x) for x in np.linspace(v0, v1, EDGE_POINTS + 2)[1:-1]]
                fine_ok += [(x, p) for x, p in zip(fx, (balance(cell, corner, temp_c, x, **kw) for x in fx))
                            if p is not None]
        if not fine_ok:
            return None
        ok = sorted(ok + fine_ok, key=lambda vp: vp[0])
        v = _root([v for v, _ in ok], [p.gain for _, p in ok], bal.gain_target) if len(ok) >= 2 else None
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
              min_flips_per_us: float = 1.0, max_flips_per_us: float = math.inf, max_iterations: int = 5, vdd_grid: Sequence[float] | None = None,
              options: dict | None = None, mismatch_seed: int | None = None,
              progress: Callable[[str], None] | None = None,
              timeout_s: float | None = BATCH_TIMEOUT_S) -> TrimResult:
    """Search the cell's trim (and supply) at (corner, temp_c) — see the module docstring.

    timeout_s: wall s allowed for each ngspice run (DC batch or transient check); SimulationTimeout
    (exit 3) after it. min_flips_per_us, max_flips_per_us: the flip-rate window (1/µs) a passing check's
    zero-bias record must lie in (max inf: no upper bound).
    """
    if not (0 <= min_flips_per_us < max_flips_per_us):
        raise InputError(f"the flip-rate window needs 0 <= min < max flips/µs (got {min_flips_per_us:g} .. "
                         f"{max_flips_per_us:g}): raise --max-flips or lower --min-flips")
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
                      min_flips_per_us=min_flips_per_us, max_flips_per_us=max_flips_per_us,
                      max_iterations=max_iterations, options=options,
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
            mismatch_seed: int | None, say, timeout_s: float | None,
            max_flips_per_us: float = math.inf) -> TrimResult:
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
        too_fast = c.regime == "bistable" and c.flips_per_us > max_flips_per_us
        if c.regime == "bistable" and min_flips_per_us <= c.flips_per_us <= max_flips_per_us and centred:
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
        if too_fast:  # too little barrier: a latch wants more loop gain, a chain less current
            raise_supply = not bal.faster_with_supply
            if bal.faster_with_supply and not math.isfinite(below_v):
                # the design gain's supply (or below it) is already too fast: only another aux value slows it
                break
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
            slow = (c.regime != "single_peaked" or c.flips_per_us < min_flips_per_us) and not too_fast
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
    window = (f"{min_flips_per_us:g}-{max_flips_per_us:g} flips/µs" if math.isfinite(max_flips_per_us)
              else f"≥ {min_flips_per_us:g} flips/µs")
    fast = ("; too fast at the design gain's supply: a slower trim input (aux value) is needed"
            if bal.faster_with_supply and last.regime == "bistable" and last.flips_per_us > max_flips_per_us else "")
    return TrimResult(**base, ok=False, trim_v=tv(dc, vdd), vdd_v=vdd, dc=dc, check=last, attempts=tuple(attempts),
                      message=(f"no trim works: {len(attempts)} checks; the last saw {last.regime} with "
                               f"P(1)={last.p1:.3f}, {last.flips_per_us:.3g} flips/µs (need bistable, P(1)≈0.5, "
                               f"{window}){fast}"))


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
# per-instance DC trim of a mismatched cell: latches (issue 18, H18) and readout chains (issue 17, HI)
@dataclass(frozen=True)
class InstanceTrim:
    """DC trim of one Monte Carlo instance: the balance trim (``trim_param`` = ``trim_v``), the supply
    ``vdd_v`` and the bias ``bias_v`` (the instance's DC offset), Volts.

    ``kind`` is the cell's ``[balance] offset``:

    * "inverters" (a latch): both half-circuits switch at mid-rail (``vm_fracs`` 0.5, equal for the two
      halves) with the design loop gain (geometric mean of the two halves' ``gains`` = ``[balance]
      gain_target``); ``evaluations``: DC evaluations made (two ngspice processes each).
    * "readout" (a chain read against a threshold), with ``[balance] noise_node``: the chain's input (the
      noise node) sits at mid-rail when the readout is at its threshold and the chain gain d readout /
      dV(noise node) there equals the nominal cell's; without it, the balance stage (``[balance]
      force_node`` / ``sense_node``) switches at mid-rail with the nominal's stage gain. ``bias_v``: the
      bias at which the instance's noise-free DC readout crosses its threshold. ``vm_fracs``/``gains``: the
      one balanced transfer's operating point (fraction of VDD) and gain; ``evaluations``: ngspice
      processes (one transfer per Newton evaluation, one readout sweep).
      ``readout_ends_v``: the readout (V, threshold subtracted) at the bias range's two ends in the last
      readout sweep; ``readout_slope``: d readout / d bias at the crossing (V/V).

    ``aux_trim_v``: the other trim inputs, held at their stored values (e.g. pbit_x5's VNW). ``ok`` False:
    no such point inside the trim, supply and bias ranges and the devices' ratings (``message`` says which
    limit, with the numbers seen)."""

    mismatch_seed: int
    ok: bool
    trim_param: str | None
    trim_v: float
    vdd_v: float
    bias_v: float
    vm_fracs: tuple
    gains: tuple
    evaluations: int
    message: str
    kind: str = "inverters"
    aux_trim_v: dict = field(default_factory=dict)
    readout_ends_v: tuple | None = None
    readout_slope: float | None = None

    def to_dict(self) -> dict:
        return _finite(asdict(self))


def instance_trim(cell, corner: str, temp_c: float, *, mismatch_seed: int, start: tuple[float, float, float] | None = None,
                  tol_vm: float = 2e-4, tol_gain: float = 1e-3, tol_bias: float = 1e-4, max_iterations: int = 16,
                  jacobian=None, timeout_s: float | None = BATCH_TIMEOUT_S) -> InstanceTrim:
    """Trim one mismatched instance of a cell with a ``[balance]`` trim: solve for (trim, VDD, bias).
    A cell whose ``[balance] offset`` is "readout" (an inverter chain) goes to :func:`_instance_trim_readout`;
    a latch ("inverters", the default) is solved here so that the instance's two inverters switch at the
    same input (bias = its offset, as :func:`bias_offset`), at mid-rail (the balance of stage 1) and with
    the design gain (stage 2).

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
    ``tol_bias`` (V): readout kind only (how close the bias the balance stage was solved at must be to
    the crossing).
    """
    bal = balance_spec(cell)
    if bal.trim is None:
        raise InputError(f"cell {cell.name}: instance_trim needs a [balance] trim input (a latch or chain balance)")
    if bal.offset == "readout":
        return _instance_trim_readout(cell, bal, corner, temp_c, mismatch_seed=mismatch_seed, start=start,
                                      tol_vm=tol_vm, tol_gain=tol_gain, tol_bias=tol_bias,
                                      max_iterations=max_iterations, jacobian=jacobian, timeout_s=timeout_s)
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

    jac = None if jacobian is None else np.array(jacobian, float)
    if jac is not None and jac.shape != (3, 3):
        jac = None  # not this kind's Jacobian: forward differences instead
    names = [bal.trim, cell.supplies[cell.main_supply].param, cell.bias.param]
    ok, x, f, dc, msg = _newton_broyden(
        ev, x, lims, names, np.array([tol_vm, tol_vm, tol_gain]), jac, max_iterations, lambda p: _xs(bal, p),
        "a half-circuit's transfer does not cross V_out = V_in (no switching point) at ", h=(2e-3, 1e-3, 4e-3))
    a, c = dc
    return InstanceTrim(int(mismatch_seed), ok, bal.trim, float(x[0]), float(x[1]), float(x[2]),
                        (a.vm_frac, c.vm_frac), (a.gain, c.gain), n_eval,
                        f"balanced at {_xs(bal, x)} in {n_eval} DC evaluations" if ok else "no DC trim: " + msg)


def _newton_broyden(ev, x, lims, names, tols, jac, max_iterations: int, where, nan_msg: str, *, h):
    """Damped Newton on ``ev(x) -> (F, aux)`` inside the box ``lims`` (n×2): the Jacobian ``jac`` (None:
    forward differences at the start) updated by Broyden's rank-one steps, a fresh forward-difference
    one after half the steps. Converged when every |F_i| < tols_i. Returns (converged, x, F, aux,
    message) — the message names the limit that stopped it (a range end pushed against twice in a row,
    no switching point, a singular Jacobian, the step budget)."""
    f, aux = ev(x)
    if jac is None and np.all(np.isfinite(f)):
        jac = _fd_jacobian(ev, x, f, lims, h)
    at_limit = 0
    span = lims[:, 1] - lims[:, 0]
    for it in range(max_iterations):
        if not np.all(np.isfinite(f)):
            return False, x, f, aux, nan_msg + where(x)
        if np.all(np.abs(f) < tols):
            return True, x, f, aux, ""
        if it == max_iterations // 2:
            # half the steps spent: the secant Jacobian has drifted (2 of 44 pbit instances crept along
            # for 12 steps, measured): a fresh forward-difference one at the current point
            jac = _fd_jacobian(ev, x, f, lims, h)
        if jac is None or not np.all(np.isfinite(jac)):
            return False, x, f, aux, "the DC transfers lose their switching point next to " + where(x)
        try:
            step = np.linalg.solve(jac, -f)
        except np.linalg.LinAlgError:
            return False, x, f, aux, f"singular balance equations at {where(x)}"
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
            msg = (f"needs {', '.join(pinned)} beyond the cell's range" if pinned else "Newton stalled") + f" (at {where(xn)})"
            f, aux = ev(xn)
            return False, xn, f, aux, msg
        fn, auxn = ev(xn)
        for _ in range(3):
            # a step that lost the switching point (pbit_x5 instance 13 of the default seed: a chain
            # pushed to VDD 198 mV has no crossing left): back along it, halving, before giving up
            if np.all(np.isfinite(fn)):
                break
            step /= 2
            xn = np.clip(x + step, lims[:, 0], lims[:, 1])
            fn, auxn = ev(xn)
        if np.all(np.isfinite(fn)):
            dx, df = xn - x, fn - f
            # Broyden's ("good") update: the secant condition along the step just taken
            jac = jac + np.outer(df - jac @ dx, dx) / float(dx @ dx)
        x, f, aux = xn, fn, auxn
    return False, x, f, aux, f"not converged in {max_iterations} Newton steps (at {where(x)})"


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


def _stage_residuals(cell, corner: str, temp_c: float, p, bias_v: float, target: float, *, mismatch_seed,
                     fixed_trim: dict | None, timeout_s):
    """The readout kind's two balance equations at p = (trim V, VDD V) and ``bias_v``: the balance
    stage's switching point − 0.5 (of VDD) and ln(its gain) − ``target``, with its DcPoint (one process)."""
    d = dc_points(cell, corner, temp_c, [(float(p[0]), float(p[1]))], bias_v=float(bias_v), mismatch_seed=mismatch_seed,
                  forced="v_outb", timeout_s=timeout_s, fixed_trim=fixed_trim, centred_gain=True)[0]
    f = np.array([d.vm_frac - 0.5, math.log(d.gain) - target if d.gain > 0 else float("nan")])
    return f, d


def _readout_residuals(cell, bal: BalanceSpec, corner: str, temp_c: float, p, bias_v: float, target: float, *,
                       mismatch_seed, fixed_trim: dict | None, timeout_s):
    """The readout kind's two equations at p = (trim V, VDD V), one ngspice process: with ``[balance]
    noise_node`` the chain's (:func:`chain_point`): its input's operating point − ½ (of VDD: the noise
    node at mid-rail when the readout sits at its threshold) and ln(chain gain) − ``target``; else the
    balance stage's switching point − ½ and ln(its gain) − ``target``. Returns (F, (DcPoint | None,
    ChainPoint | None)). Why the chain's balance: at the balance stage's, pbit_x5 instances whose noise
    node sat at 0.6-0.95 of VDD gave 0-2 bistable records of 4 (stage 1's pfet near its linear region),
    those at 0.3-0.5 3-4 (16 µs records, 42 instances, measured)."""
    if bal.noise_node is None:
        f, d = _stage_residuals(cell, corner, temp_c, p, bias_v, target, mismatch_seed=mismatch_seed,
                                fixed_trim=fixed_trim, timeout_s=timeout_s)
        return f, (d, None)
    c = chain_point(cell, corner, temp_c, float(p[0]), float(p[1]), bias_v=bias_v, mismatch_seed=mismatch_seed,
                    fixed_trim=fixed_trim, timeout_s=timeout_s)
    f = np.array([c.input_frac - 0.5, math.log(c.gain) - target if c.gain > 0 else float("nan")])
    return f, (None, c)


def _readout_target(cell, bal: BalanceSpec, corner: str, temp_c: float, timeout_s) -> float:
    return math.log(nominal_chain_gain(cell, corner, temp_c, timeout_s=timeout_s) if bal.noise_node
                    else nominal_stage_gain(cell, corner, temp_c, timeout_s=timeout_s))


def _fd_jacobian(ev, x, f, lims, h=(2e-3, 1e-3, 4e-3)):
    """Forward-difference Jacobian of the balance equations at ``x`` (steps ~1 % of each range: the
    transfers are smooth on that scale; a step past a range end is taken backwards)."""
    n = len(x)
    jac = np.empty((len(f), n))
    for j in range(n):
        xp = np.array(x, float)
        xp[j] += h[j] if xp[j] + h[j] <= lims[j, 1] else -h[j]
        fp, _ = ev(xp)
        jac[:, j] = (fp - f) / (xp[j] - x[j])
    return jac


def balance_jacobian(cell, corner: str, temp_c: float, *, mismatch_seed: int | None = None,
                     at: tuple[float, float, float] | None = None, timeout_s: float | None = BATCH_TIMEOUT_S):
    """Jacobian of the balance equations of :func:`instance_trim` at ``at`` (trim, VDD, bias; default: the
    stored trim, zero bias) — without mismatch by default: the starting Jacobian every instance then
    updates. A latch: 3×3 (rows: mean balance, asymmetry, ln gain; columns: trim, VDD, bias, per V). A
    readout chain: 2×2 (rows: the balance stage's switching point, ln gain; columns: trim, VDD), at the
    other trim inputs' stored values."""
    bal = balance_spec(cell)
    stored, vdd0 = trimmed_point(cell, corner, temp_c)
    if at is None:
        at = (stored.get(bal.trim, cell.trim[bal.trim].nominal_v), vdd0, 0.0)
    if bal.offset == "readout":
        target = _readout_target(cell, bal, corner, temp_c, timeout_s)
        lims = np.array([cell.trim[bal.trim].range_v, cell.supplies[cell.main_supply].range_v], float)
        fixed = {k: v for k, v in stored.items() if k != bal.trim} or None

        def ev2(p):
            return _readout_residuals(cell, bal, corner, temp_c, p, at[2], target, mismatch_seed=mismatch_seed,
                                      fixed_trim=fixed, timeout_s=timeout_s)

        x = np.asarray(at[:2], float)
        f, _ = ev2(x)
        return _fd_jacobian(ev2, x, f, lims, h=(2e-3, 1e-3))
    lims = np.array([cell.trim[bal.trim].range_v, cell.supplies[cell.main_supply].range_v, cell.bias.range_v], float)
    target = math.log(bal.gain_target)

    def ev(p):
        return _balance_residuals(cell, corner, temp_c, p, target, mismatch_seed=mismatch_seed, timeout_s=timeout_s)

    x = np.asarray(at, float)
    f, _ = ev(x)
    return _fd_jacobian(ev, x, f, lims)


def _xs(bal: BalanceSpec, x) -> str:
    return f"{bal.trim} {x[0] * 1e3:+.2f} mV, VDD {x[1] * 1e3:.2f} mV, bias {x[2] * 1e3:+.1f} mV"


# ---- readout chains ([balance] offset = "readout")
#: bias step of the readout sweep (V): the DC crossing is interpolated between points 0.25 mV apart
#: (pbit_x5: the crossing moves by < 5 µV between 0.5 mV and 0.1 mV steps, measured on one instance;
#: its sigmoid scale is 3.2 mV)
READOUT_STEP_V = 2.5e-4


@dataclass(frozen=True)
class ReadoutSweep:
    """The noise-free DC readout of one instance against its bias (one ngspice process).

    crossing_v: bias (V) where the readout crosses its threshold, None when it does not inside the
    bias range. ends_v: readout (V, threshold subtracted) at the range's low and high end. slope: d
    readout / d bias at the crossing (V/V). node_v: every MOSFET node's voltage (V from ground) at the
    crossing ({} when there is none, or when the bias could not be swept as a source)."""

    crossing_v: float | None
    ends_v: tuple[float, float]
    slope: float | None
    node_v: dict


def _eval_expr(expr: str, values: dict) -> float:
    """Value of a netlist ``{...}`` expression made of numbers, .param names (case-insensitive) and
    + − × ÷ (ValueError for anything else: the caller then does not treat the source as linear)."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.USub: operator.neg, ast.UAdd: operator.pos}
    names = {str(k).lower(): float(v) for k, v in values.items()}

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return float(n.value)
        if isinstance(n, ast.Name) and n.id.lower() in names:
            return names[n.id.lower()]
        if isinstance(n, ast.BinOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.operand))
        raise ValueError(f"not a plain arithmetic expression: {expr!r}")

    try:
        return float(ev(ast.parse(expr.strip(), mode="eval")))
    except SyntaxError as exc:
        raise ValueError(str(exc)) from None


def bias_source(cell, values: dict) -> tuple[str, float, float] | None:
    """(source name, its value at bias 0 V, dV_source/dV_bias) when the bias .param acts through exactly
    one top-level voltage source, linearly (pbit_x5: ``Vnw1 nw1 0 {VDD+VNW+VB}``), so that one DC sweep
    of that source is a sweep of the bias; None otherwise (another element or .param uses it, or the
    expression is not plain arithmetic). ``values``: every .param's value."""
    import re

    from . import netlist as nl

    name = cell.bias.param
    pat = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", re.I)
    users = []
    for ln in nl.logical_lines(cell.template):
        if ln.text.lower().startswith(".param"):
            if any(pat.search(v) for _n, v in nl._param_assignments(ln.text)):
                return None  # another .param is defined through the bias
            continue
        if pat.search(ln.text):
            users.append(ln)
    if len(users) != 1 or users[0].scope is not None or not users[0].text[:1].lower() == "v":
        return None
    groups = re.findall(r"\{([^{}]*)\}", users[0].text)
    if len(groups) != 1 or not pat.search(groups[0]):
        return None
    try:
        at = [_eval_expr(groups[0], {**values, name: b}) for b in (0.0, 0.1, -0.1)]
    except (ValueError, ZeroDivisionError):
        return None
    k = (at[1] - at[2]) / 0.2
    if k == 0 or abs((at[1] - at[0]) - 0.1 * k) > 1e-9 * max(1.0, abs(at[0])):
        return None  # not linear in the bias
    return nl.tokens(users[0].text)[0], at[0], k


def readout_sweep(cell, corner: str, temp_c: float, *, trim_v: float | None, vdd_v: float, mismatch_seed: int | None = None,
                  fixed_trim: dict | None = None, step_v: float = READOUT_STEP_V,
                  timeout_s: float | None = BATCH_TIMEOUT_S) -> ReadoutSweep:
    """The instance's noise-free DC readout (V(v_out) − V(v_outb), or V(v_out), minus the readout
    threshold) across the whole bias range in ONE ngspice process: a DC sweep of the voltage source
    through which the bias acts (:func:`bias_source`), with every MOSFET node written so the devices'
    terminal voltages at the crossing can be checked against their ratings. A cell whose bias does not
    act through one source falls back to root-finding with one process per evaluation (``_readout_offset``,
    ~12 processes; no node voltages)."""
    from . import netlist as nl
    from .technology import model_lines

    bal = balance_spec(cell)
    lo, hi = cell.bias.range_v
    thr = float(cell.readout.threshold_v or 0.0)
    trim = {**(fixed_trim or {}), **({bal.trim: trim_v} if bal.trim and trim_v is not None else {})}
    vals = _cell_values(cell, corner=corner, temp_c=temp_c, bias_v=0.0, vdd_v=vdd_v, trim=trim or None, params=None)
    src = bias_source(cell, vals)
    if src is None:
        ends = tuple(readout_dc(cell, corner, temp_c, b, trim_v=trim_v, vdd_v=vdd_v, mismatch_seed=mismatch_seed,
                                timeout_s=timeout_s, fixed_trim=fixed_trim) for b in (lo, hi))
        c = _readout_offset(cell, corner, temp_c, mismatch_seed=mismatch_seed, trim_v=trim_v, vdd_v=vdd_v,
                            fixed_trim=fixed_trim)
        return ReadoutSweep(c, ends, None, {})
    name, s0, k = src
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    o, ob = cell.outputs["v_out"], cell.outputs.get("v_outb")
    expr = f"v({o})-v({ob})" if ob else f"v({o})"
    mos = [m for m in nl.find_mosfets(cell.template, cell.technology) if m.scope is None]
    nodes = sorted({n.lower() for m in mos for n in (m.drain, m.gate, m.source, m.bulk)} - {"0", "gnd"})
    s_a, s_b = sorted((s0 + k * lo, s0 + k * hi))
    step = abs(k) * float(step_v)
    opts = f".options temp={float(temp_c)!r} tnom=27.0" + (f" seed={int(mismatch_seed)}" if mismatch_seed is not None else "")
    with tempfile.TemporaryDirectory(prefix="noisecell-readout-") as td:
        dat = Path(td) / "r.dat"
        text = "\n".join([f"* noisecell readout sweep: {cell.name} {corner} {temp_c:g} C",
                          *model_lines(cell.technology, corner, mismatch=mismatch_seed is not None, netlist=body), body, opts,
                          ".control", "set wr_singlescale", f"dc {name} {s_a!r} {s_b + 0.5 * step!r} {step!r}",
                          f"wrdata {dat.name} {expr} " + " ".join(f"v({n})" for n in nodes), "quit", ".endc", ".end"]) + "\n"
        log = run_batch(text, td, technology=cell.technology, timeout_s=timeout_s, filename="readout.cir",
                        name=f"DC readout sweep of cell {cell.name} ({corner}, {temp_c:g} C)")
        if not dat.is_file():
            tail = " ".join(log.strip().splitlines()[-3:])
            raise SimulationError(f"DC readout sweep of cell {cell.name} ({corner}, {temp_c:g} C) failed: {tail}")
        d = np.atleast_2d(np.loadtxt(dat))
    # wr_singlescale: the source value, then the readout, then each node
    b = lo + (d[:, 0] - (s0 + k * lo)) / k
    order = np.argsort(b)
    d, b = d[order], b[order]
    r = d[:, 1] - thr
    ends = (float(np.interp(lo, b, r)), float(np.interp(hi, b, r)))
    s = np.nonzero(np.diff(np.sign(r)) != 0)[0]
    if not len(s):
        return ReadoutSweep(None, ends, None, {})
    i = int(s[0])
    w = r[i] / (r[i] - r[i + 1])
    cross = float(b[i] + w * (b[i + 1] - b[i]))
    node_v = {n: float(d[i, 2 + j] + w * (d[i + 1, 2 + j] - d[i, 2 + j])) for j, n in enumerate(nodes)}
    slope = float((r[i + 1] - r[i]) / (b[i + 1] - b[i]))
    return ReadoutSweep(cross, ends, slope, node_v)


def _side(r_lo: float, r_hi: float, rising: bool) -> str | None:
    """Which side of the bias range the crossing of a readout that does not cross inside it lies on:
    ``rising`` (the nominal cell's readout rises with the bias) and positive at both ends → below the
    range (and so on); None when the ends do not say (not finite, or of opposite signs)."""
    if not (math.isfinite(r_lo) and math.isfinite(r_hi)):
        return None
    if r_lo > 0 and r_hi > 0:
        return "below" if rising else "above"
    if r_lo < 0 and r_hi < 0:
        return "above" if rising else "below"
    return None


def rating_violations(cell, node_v: dict) -> list[str]:
    """Every top-level MOSFET's terminal voltages at the node voltages ``node_v`` ({node (lower case): V})
    against its rating (noisecell.ratings: |V_GS|, |V_DS|, ... and the source/drain–body forward
    limit); one string per violation, [] when none (or no rating/voltages known)."""
    from . import netlist as nl
    from .ratings import check_device, rating_for

    if not node_v:
        return []
    out = []
    for m in nl.find_mosfets(cell.template, cell.technology):
        if m.scope is not None:
            continue
        rating = rating_for(cell.technology, m.model)
        t = {k: (0.0 if n.lower() in ("0", "gnd") else node_v.get(n.lower()))
             for k, n in zip("dgsb", (m.drain, m.gate, m.source, m.bulk))}
        if rating is None or any(v is None for v in t.values()):
            continue
        dv = check_device(m.name, m.model, m.polarity, rating, [("at the trimmed point", t)])
        out += [f"{m.name} {v}" for v in dv.violations]
        if dv.forward_v > rating.vbs_forward_max + 1e-9:
            out.append(f"{m.name} junction forward-biased by {dv.forward_v:.3g} V > {rating.vbs_forward_max:g} V")
    return out


#: points of the chain transfer (noise node forced across the supply): 0.1 mV steps at 240 mV, so that a
#: chain gain of ~50 leaves ~40 points inside its linear region (±2 mV of the noise node)
CHAIN_POINTS = 2401


@dataclass(frozen=True)
class ChainPoint:
    """The chain's DC transfer from its noise node to the readout (the node forced across the supply):
    ``input_frac`` = the noise node's voltage at which the readout crosses its threshold (fraction of
    VDD; NaN when it does not), ``gain`` = |d readout / dV(noise node)| there (:func:`_centred_slope`)."""

    input_frac: float
    gain: float


def chain_point(cell, corner: str, temp_c: float, trim_v: float, vdd_v: float, *, bias_v: float = 0.0,
                mismatch_seed: int | None = None, fixed_trim: dict | None = None,
                timeout_s: float | None = BATCH_TIMEOUT_S) -> ChainPoint:
    """:class:`ChainPoint` of a readout chain with ``[balance] noise_node`` (one ngspice process): a DC
    source forces the noise node from the low rail up by VDD in CHAIN_POINTS steps; the stages after it
    see only its voltage (gate inputs), so the transfer is theirs at the operating point the bias sets."""
    from . import netlist as nl
    from .technology import model_lines

    bal = balance_spec(cell)
    trim = {**(fixed_trim or {}), **({bal.trim: trim_v} if bal.trim else {})}
    vals = _cell_values(cell, corner=corner, temp_c=temp_c, bias_v=bias_v, vdd_v=vdd_v, trim=trim or None, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    o, ob = cell.outputs["v_out"], cell.outputs.get("v_outb")
    expr = f"v({o})-v({ob})" if ob else f"v({o})"
    v = float(vdd_v)
    step = v / (CHAIN_POINTS - 1)
    opts = f".options temp={float(temp_c)!r} tnom=27.0" + (f" seed={int(mismatch_seed)}" if mismatch_seed is not None else "")
    with tempfile.TemporaryDirectory(prefix="noisecell-chain-") as td:
        dat = Path(td) / "c.dat"
        text = "\n".join([f"* noisecell chain transfer: {cell.name} {corner} {temp_c:g} C",
                          *model_lines(cell.technology, corner, mismatch=mismatch_seed is not None, netlist=body), body, opts,
                          f"Vnc_force {bal.noise_node} {bal.low_node} DC 0", ".control", "set wr_singlescale",
                          f"dc Vnc_force 0 {v!r} {step!r}", f"wrdata {dat.name} {expr}", "quit", ".endc", ".end"]) + "\n"
        log = run_batch(text, td, technology=cell.technology, timeout_s=timeout_s, filename="chain.cir",
                        name=f"DC chain transfer of cell {cell.name} ({corner}, {temp_c:g} C)")
        if not dat.is_file():
            tail = " ".join(log.strip().splitlines()[-3:])
            raise SimulationError(f"DC chain transfer of cell {cell.name} ({corner}, {temp_c:g} C) failed: {tail}")
        d = np.atleast_2d(np.loadtxt(dat))
    xin, r = d[:, 0], d[:, 1] - float(cell.readout.threshold_v or 0.0)
    k = np.nonzero(np.diff(np.sign(r)) != 0)[0]
    if not len(k):
        return ChainPoint(float("nan"), float("nan"))
    i = int(k[0])
    x0 = float(xin[i] + (xin[i + 1] - xin[i]) * r[i] / (r[i] - r[i + 1]))
    return ChainPoint(x0 / v, abs(_centred_slope(xin, r, x0)))


def _nominal_at_stored_trim(cell, corner: str, temp_c: float, what: str, compute):
    """``compute(stored_trims, fixed_trims, vdd0)`` for the cell WITHOUT mismatch at its stored trim
    (corner, temp_c), cached per (``what``, cell, stored point): the nominal figures instances are trimmed to.
    ``fixed_trims``: the stored trims other than the balance trim (None when there are none)."""
    stored, vdd0 = trimmed_point(cell, corner, temp_c)
    key = (what, str(cell.cell_dir or cell.netlist_path.parent), cell.template, corner, float(temp_c),
           tuple(sorted((k, float(v)) for k, v in stored.items())), float(vdd0))
    if key not in _NOMINAL_GAIN:
        bal = balance_spec(cell)
        fixed = {k: float(v) for k, v in stored.items() if k != bal.trim} or None
        _NOMINAL_GAIN[key] = compute(stored, fixed, vdd0)
    return _NOMINAL_GAIN[key]


def nominal_chain_gain(cell, corner: str, temp_c: float, *, timeout_s: float | None = BATCH_TIMEOUT_S) -> float:
    """The chain gain (:func:`chain_point`) of the cell WITHOUT mismatch at its stored trim (corner,
    temp_c): the gain each instance of a chain with ``[balance] noise_node`` is trimmed to (pbit_x5 tt
    27 °C: 52.9; its instances at their stage-balanced trim 18-61, measured). Cached per stored point."""
    bal = balance_spec(cell)

    def compute(stored, fixed, vdd0):
        c = chain_point(cell, corner, temp_c, stored.get(bal.trim), vdd0, fixed_trim=fixed, timeout_s=timeout_s)
        if not (math.isfinite(c.gain) and c.gain > 0):
            raise SimulationError(f"cell {cell.name} ({corner}, {temp_c:g} C): the chain's readout does not cross its "
                                  f"threshold as {bal.noise_node} is swept at the stored trim, so no chain gain to trim to")
        return float(c.gain)

    return _nominal_at_stored_trim(cell, corner, temp_c, "chain", compute)


def nominal_stage_gain(cell, corner: str, temp_c: float, *, timeout_s: float | None = BATCH_TIMEOUT_S) -> float:
    """The balance stage's gain (:func:`_centred_slope`) of the cell WITHOUT mismatch at its stored trim
    (corner, temp_c), zero bias: the gain a readout chain's instance is trimmed to, so that every instance
    has the stage gain of the nominal condition its offset, gain and τ ratio are measured against. (The
    stored trim met ``[balance] gain_target`` with trim_cell's window estimate, which sits ~1.4 % above
    the centred one there: pbit_x5 tt 27 °C 3.807 against 3.753, measured.) Cached per stored point."""
    bal = balance_spec(cell)

    def compute(stored, fixed, vdd0):
        d = dc_points(cell, corner, temp_c, [(stored.get(bal.trim), vdd0)], forced="v_outb", timeout_s=timeout_s,
                      fixed_trim=fixed, centred_gain=True)[0]
        if not (math.isfinite(d.gain) and d.gain > 0):
            raise SimulationError(f"cell {cell.name} ({corner}, {temp_c:g} C): the balance stage has no switching point "
                                  f"at the stored trim ({stored}, VDD {vdd0:g} V), so no stage gain to trim instances to")
        return float(d.gain)

    return _nominal_at_stored_trim(cell, corner, temp_c, "stage", compute)


def _nominal_rising(cell, corner: str, temp_c: float, *, timeout_s: float | None = BATCH_TIMEOUT_S) -> bool:
    """Whether the cell's readout rises with its bias (the nominal cell's readout sweep at the stored trim;
    cached): says on which side of the bias range an instance's out-of-range offset lies."""
    bal = balance_spec(cell)

    def compute(stored, fixed, vdd0):
        rs = readout_sweep(cell, corner, temp_c, trim_v=stored.get(bal.trim), vdd_v=vdd0, fixed_trim=fixed,
                           timeout_s=timeout_s)
        return bool(rs.slope > 0) if rs.slope is not None else bool(rs.ends_v[1] >= rs.ends_v[0])

    return _nominal_at_stored_trim(cell, corner, temp_c, "rising", compute)


_NOMINAL_GAIN: dict = {}


def _instance_trim_readout(cell, bal: BalanceSpec, corner: str, temp_c: float, *, mismatch_seed: int, start,
                           tol_vm: float, tol_gain: float, tol_bias: float, max_iterations: int, jacobian,
                           timeout_s) -> InstanceTrim:
    """Trim one mismatched instance of a chain read against a threshold (``[balance] offset = "readout"``,
    e.g. pbit_x4/pbit_x5). With ``[balance] noise_node`` (pbit_x5: x): the balance trim so that the noise
    node sits at mid-rail when the readout is at its threshold, the supply so that the chain gain there is
    the nominal cell's (:func:`nominal_chain_gain`; one :func:`chain_point` process per evaluation) — the
    chain balanced as a whole, like the latch's two halves. Without it: the balance stage (``force_node``
    → ``sense_node``, the transfer `noisecell trim` balances) at mid-rail with the nominal's stage gain
    (:func:`nominal_stage_gain`), the DC stages 1-2 of :func:`trim_cell` on this instance. Then the bias
    at which the instance's DC readout crosses its threshold (its offset, as :func:`bias_offset`'s
    "readout" method). Measured on pbit_x5 (tt 27 °C, 42 instances, 16 µs records): at the balance stage's
    trim the chain gains were 18-61 (nominal 50.5) and instances whose x sat at 0.6-0.95 of VDD gave 0-2
    bistable records of 4, those at 0.3-0.5 3-4 — hence the chain's own balance.

    The two balance equations do not involve the bias for pbit_x5 (the forced node's stages do not see
    stage 1's well), so the bias is eliminated: the 2×2 Newton-Broyden of :func:`instance_trim` runs at the
    bias of the last readout crossing (zero at first), then one readout sweep (:func:`readout_sweep`) at
    the solution gives the crossing; if it moved by more than ``tol_bias`` from the bias the stage was
    solved at, the stage is re-checked there (for pbit_x5 one evaluation that is already converged).
    About N + 2 ngspice processes for N Newton evaluations. The other trim inputs (the ``[balance]
    aux_trim``) stay at their stored values. Not ok: no balanced point inside the trim and supply ranges,
    a crossing outside the bias range (the readout at both range ends is given), or a device beyond its
    rating at the trimmed operating point."""
    stored, vdd0 = trimmed_point(cell, corner, temp_c)
    fixed = {k: float(v) for k, v in stored.items() if k != bal.trim}
    supply = cell.supplies[cell.main_supply]
    lims = np.array([cell.trim[bal.trim].range_v, supply.range_v], float)
    blo, bhi = cell.bias.range_v
    if start is None:
        start = (stored.get(bal.trim, cell.trim[bal.trim].nominal_v), vdd0, 0.0)
    x = np.clip(np.asarray(start[:2], float), lims[:, 0], lims[:, 1])
    bias = min(max(float(start[2]), blo), bhi)
    target = _readout_target(cell, bal, corner, temp_c, timeout_s)
    n_proc = 0

    def ev(p):
        nonlocal n_proc
        n_proc += 1
        return _readout_residuals(cell, bal, corner, temp_c, p, bias, target, mismatch_seed=mismatch_seed,
                                  fixed_trim=fixed or None, timeout_s=timeout_s)

    def sweep(p):
        nonlocal n_proc
        n_proc += 1
        return readout_sweep(cell, corner, temp_c, trim_v=float(p[0]), vdd_v=float(p[1]), mismatch_seed=mismatch_seed,
                             fixed_trim=fixed or None, timeout_s=timeout_s)

    def where(p):
        return f"{bal.trim} {p[0] * 1e3:+.2f} mV, VDD {p[1] * 1e3:.2f} mV, bias {bias * 1e3:+.1f} mV"

    jac = None if jacobian is None else np.array(jacobian, float)
    if jac is not None and jac.shape != (2, 2):
        jac = None  # not this kind's Jacobian: forward differences instead
    names = [bal.trim, supply.param]
    rs, rs_x = None, None
    ok, msg, d = False, "", None
    for _ in range(4):
        ok, x, f, d, msg = _newton_broyden(
            ev, x, lims, names, np.array([tol_vm, tol_gain]), jac, max_iterations, where,
            "the balance stage's (or the chain's) transfer does not cross (no switching point) at ", h=(2e-3, 1e-3))
        if rs is None or not np.array_equal(rs_x, x):
            rs, rs_x = sweep(x), np.array(x)
        if not ok or rs.crossing_v is None or abs(rs.crossing_v - bias) <= tol_bias:
            break
        bias = rs.crossing_v  # the stage again at the instance's own bias (a cell whose stage sees it)
    else:
        ok, msg = False, f"the balance and the readout crossing did not settle together (at {where(x)})"
    ends = f"readout {rs.ends_v[0] * 1e3:+.1f} mV at {cell.bias.param} {blo:g} V, {rs.ends_v[1] * 1e3:+.1f} mV at {bhi:g} V"
    d, c = d
    common = dict(mismatch_seed=int(mismatch_seed), trim_param=bal.trim, trim_v=float(x[0]), vdd_v=float(x[1]),
                  vm_fracs=(d.vm_frac,) if c is None else (c.input_frac,),
                  gains=(d.gain,) if c is None else (c.gain,), evaluations=n_proc, kind="readout",
                  aux_trim_v=fixed, readout_ends_v=tuple(rs.ends_v), readout_slope=rs.slope)
    if not ok:
        b = rs.crossing_v if rs.crossing_v is not None else float("nan")
        return InstanceTrim(**common, ok=False, bias_v=b, message=f"no DC trim: {msg}; {ends}")
    if rs.crossing_v is None:
        sd = _side(*rs.ends_v, _nominal_rising(cell, corner, temp_c, timeout_s=timeout_s))
        side = {"below": blo, "above": bhi}.get(sd)
        where_off = (f"the offset lies {sd} the bias range {cell.bias.param} [{blo:g}, {bhi:g}] V" if sd
                     else f"the readout does not cross its threshold inside {cell.bias.param} [{blo:g}, {bhi:g}] V")
        return InstanceTrim(**common, ok=False, bias_v=float("nan") if side is None else float(side),
                            message=f"no DC trim: needs {cell.bias.param} beyond the cell's range: {where_off} "
                                    f"(balanced at {where(x)}; {ends})")
    bad = rating_violations(cell, rs.node_v)
    xs = f"{bal.trim} {x[0] * 1e3:+.2f} mV, VDD {x[1] * 1e3:.2f} mV, {cell.bias.param} {rs.crossing_v * 1e3:+.2f} mV"
    if bad:
        return InstanceTrim(**common, ok=False, bias_v=float(rs.crossing_v),
                            message=f"no DC trim: at {xs} a device exceeds its rating: {'; '.join(bad)}")
    return InstanceTrim(**common, ok=True, bias_v=float(rs.crossing_v),
                        message=f"balanced at {xs} in {n_proc} DC processes")
