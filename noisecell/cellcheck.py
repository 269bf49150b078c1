"""`noisecell cell check`: can this cell be a bit source at all? A noise-free DC look, in seconds.

A p-bit latch telegraphs only if its two halves form a loop with more than one stable state. That is
a DC property, so it is checked before any transient-noise run (and at the start of `characterize`
and `trim`), together with the things that make a simulated cell unbuildable:

1. **Operating points and their stability.** The loop is opened by forcing one output node with a
   DC source (through 1 mΩ; the other node's forcing source is parked behind 1 TΩ) and sweeping it
   from the low rail across the supply: f(x) = V(v_out) with v_outb forced to x, g(x) = V(v_outb)
   with v_out forced to x. The closed loop's operating points are the solutions of
   qb = g(f(qb)); each has the loop gain L = f'(qb)·g'(q) (a product of the two halves' negative
   slopes). L < 1: stable; L > 1: unstable (the metastable point between two stable states). A cell
   with two stable points is bistable; one stable point means monostable — no noise, record
   length or bias makes it telegraph.
2. **Switching point and half gain** of each half (V_out = V_in; -dV_out/dV_in there), as the
   fraction of the supply above the low rail: 0.5 is balanced. A loop-half gain below 1, or a
   switching point far from mid-rail (pull-downs outweighing pull-ups), explains a monostable cell.
3. **Bistability over the supply range** (the main supply's ``range_v``, 7 points, same trim).
4. **Every device's terminal voltages** at every stable operating point, at the nominal supply and
   at the top of the supply range, at the middle and both ends of the bias range, against the PDK's
   rated voltages (:data:`SKY130_RATINGS`); **forward-biased junctions** (source/drain–body of
   each device, n-well–substrate).
5. **Every DC source's power** at the stable points (``-V·I`` of every top-level V source), marking
   the sources that are not declared ``[supplies]`` and so not counted in the energy figures.

Voltages in V, currents in A, powers in W. Pure analysis functions (``latch_operating_points``,
``check_device``) are separate from the ngspice run (``check_cell``).
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, SimulationError
# device ratings live in noisecell.ratings (trim checks instance trims against them without importing
# the cell check); re-exported here, where they were first defined
from .ratings import SKY130_RATINGS, DeviceRating, DeviceVoltages, check_device, rating_for  # noqa: F401
from .units import format_si

#: points of each forced DC sweep (the transfer curves are smooth; 0.4 % of the supply per step)
SWEEP_POINTS = 241
#: supplies scanned across the main supply's range for "bistable over the supply range"
SUPPLY_SCAN_POINTS = 7
#: a switching point further than this from mid-rail (fraction of the supply) is "unbalanced"
UNBALANCED_FRACTION = 0.15
#: an output whose largest |dV/dV| with respect to the other output's forced voltage is below this,
#: and below 2 % of the other direction's, does not close a loop with it (a real half has a gain of
#: order 1; leakage couplings are ≪ 0.01)
NO_LOOP_GAIN = 0.05
#: an output node slower than this (its relaxation time C/g at a stable state, the other output held)
#: gets a warning: near loop gain 1 the dwells are hundreds to thousands of node times (measured at
#: their trims: latch4_nat 1.0–1.8 ns → 0.34–0.56 µs dwells, ~200–500×; pbit 1.1–2.1 ns → ~0.56 µs
#: (2τ(V50)), ~300–500×; latch4_trim 39–60 µs → 50–110 ms, ~800–2800×), so above 1 µs they are
#: ≳ 0.1 ms — records of seconds at a µs noise step, not a minutes-long characterisation
SLOW_NODE_S = 1e-6
#: forward bias below this is not reported: the junction current is < e^(0.05/0.0259) ≈ 7× its
#: reverse saturation current, i.e. still leakage
FORWARD_REPORT_V = 0.05


# ============================================================================ pure analysis
@dataclass(frozen=True)
class OperatingPoint:
    """One closed-loop DC solution: node voltages q (v_out) and qb (v_outb), V; its loop gain
    L = f'(qb)·g'(q); stable when L < 1."""

    q_v: float
    qb_v: float
    loop_gain: float
    stable: bool


def _slope(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """dy/dx at ``at`` from a local linear fit over ±2 grid steps (the grid's rounding stays out)."""
    k = int(np.clip(np.searchsorted(x, at), 2, len(x) - 3))
    return float(np.polyfit(x[k - 2:k + 3], y[k - 2:k + 3], 1)[0])


def latch_operating_points(x: np.ndarray, f: np.ndarray, g: np.ndarray) -> list[OperatingPoint]:
    """Closed-loop operating points of a latch from its two open-loop transfer curves.

    x: forced node voltages, V (increasing); f: V(v_out) with v_outb forced to x; g: V(v_outb) with
    v_out forced to x. Solutions of qb = g(f(qb)) on the grid (linear interpolation between sign
    changes), lowest qb first.
    """
    x, f, g = (np.asarray(a, dtype=float) for a in (x, f, g))
    h = np.interp(f, x, g) - x
    out = []
    for k in np.nonzero(np.sign(h[:-1]) * np.sign(h[1:]) <= 0)[0]:
        if h[k] == 0 and k > 0 and out and abs(out[-1].qb_v - x[k]) < 1e-15:
            continue
        w = 0.0 if h[k] == h[k + 1] else h[k] / (h[k] - h[k + 1])
        qb = float(x[k] + w * (x[k + 1] - x[k]))
        q = float(np.interp(qb, x, f))
        loop = _slope(x, f, qb) * _slope(x, g, q)
        if out and abs(out[-1].qb_v - qb) < 0.5 * (x[1] - x[0]):
            continue  # the same root seen from both sides of a grid point
        out.append(OperatingPoint(q, qb, float(loop), bool(loop < 1.0)))
    return out


def switching_point(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(V_m, -dV_out/dV_in at V_m) of one half's transfer y(x); NaNs if y never crosses x."""
    d = np.asarray(y, float) - np.asarray(x, float)
    s = np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) <= 0)[0]
    if len(s) == 0:
        return float("nan"), float("nan")
    k = int(s[0])
    w = 0.0 if d[k] == d[k + 1] else d[k] / (d[k] - d[k + 1])
    vm = float(x[k] + w * (x[k + 1] - x[k]))
    return vm, -_slope(np.asarray(x, float), np.asarray(y, float), vm)


@dataclass(frozen=True)
class LatchState:
    """The latch at one (supply, bias): its operating points and each half's switching point.

    switching_frac: (V_m - V_low)/VDD of half 1 (v_outb → v_out) and half 2; half_gain: their
    gains at V_m; bistable: two or more stable operating points.
    """

    vdd_v: float
    bias_v: float
    points: tuple[OperatingPoint, ...]
    switching_frac: tuple[float, float]
    half_gain: tuple[float, float]
    loop: bool = True  # False: forcing one output does not move the other (no feedback between them)

    @property
    def stable(self) -> tuple[OperatingPoint, ...]:
        return tuple(p for p in self.points if p.stable)

    @property
    def bistable(self) -> bool:
        return len(self.stable) >= 2

    @property
    def loop_gain_at_switching(self) -> float:
        """Product of the halves' gains at their switching points (> 1 needed for two states)."""
        return self.half_gain[0] * self.half_gain[1]

    def describe(self) -> str:
        if not self.loop:
            return f"no feedback loop between the outputs at VDD {format_si(self.vdd_v, 'V')}"
        kind = "bistable" if self.bistable else ("monostable" if len(self.stable) == 1 else "no stable point")
        sp = "/".join(f"{v:.2f}" for v in self.switching_frac)
        hg = "/".join(f"{v:.2f}" for v in self.half_gain)
        return (f"{kind} at VDD {format_si(self.vdd_v, 'V')}: {len(self.stable)} stable of {len(self.points)} "
                f"operating point(s); loop-half gains {hg} at switching points {sp} of VDD")


def latch_state(vdd_v: float, bias_v: float, low_v: float, x: np.ndarray, f: np.ndarray, g: np.ndarray) -> LatchState:
    """:class:`LatchState` from the two transfer curves (see :func:`latch_operating_points`)."""
    vm1, a1 = switching_point(x, f)
    vm2, a2 = switching_point(x, g)
    # a latch needs each output to move the other; below NO_LOOP_GAIN everywhere it is not a loop
    # (e.g. an amplifier chain whose last stage drives v_out from v_outb only)
    # — but a weak latch (both halves' gains small, e.g. badly unbalanced) is still a loop, judged monostable
    sf, sg = (float(np.max(np.abs(np.gradient(y, x)))) for y in (f, g))
    loop = not (min(sf, sg) < NO_LOOP_GAIN and min(sf, sg) < 0.02 * max(sf, sg))
    return LatchState(float(vdd_v), float(bias_v), tuple(latch_operating_points(x, f, g)),
                      ((vm1 - low_v) / vdd_v, (vm2 - low_v) / vdd_v), (a1, a2), loop)


@dataclass(frozen=True)
class Junction:
    """A forward-biased junction: what, by how much (V), where, and whether beyond the model's limit."""

    what: str
    forward_v: float
    where: str
    beyond_limit: bool


@dataclass(frozen=True)
class SourcePower:
    """A top-level DC voltage source at a stable operating point: V across, current, delivered power."""

    name: str
    declared: bool
    voltage_v: float
    current_a: float
    power_w: float
    where: str


@dataclass(frozen=True)
class TrimSuggestion:
    """The trim the cell's own ``[balance]`` method finds (noisecell.trim stages 1-2: the balance trim
    root-found for a mid-rail switching point, then the supply for the loop-half gain
    ``gain_target``; DC only, no noise), and the DC check at that point.

    trim: the ``[balance] trim`` .param (None: the supply alone is trimmed); *_from: the checked point,
    *_to: the suggested one (None when the method found none); voltages in V; vm_frac: switching
    point as a fraction of VDD; gain: loop-half gain at it. status/verdict: `cell check` at the
    suggested point; works: it is bistable there with every terminal within its rating and no junction
    beyond the models' limit. text: the fix, one sentence."""

    trim: str | None
    trim_from_v: float | None
    trim_to_v: float | None
    vdd_from_v: float
    vdd_to_v: float | None
    vm_frac_from: float
    vm_frac_to: float | None
    gain_from: float
    gain_to: float | None
    gain_target: float
    status: str | None
    verdict: str | None
    works: bool
    text: str

    def lines(self) -> list[str]:
        """The suggestion as a short table for `cell check`'s summary."""
        out = ["  trim found by the cell's [balance] method (DC, noisecell.trim stages 1-2):"]
        if self.vdd_to_v is None:
            return out + [f"    none: {self.text}"]
        if self.trim is not None:
            out.append(f"    {self.trim:>6}: {format_si(self.trim_from_v, 'V'):>10} -> {format_si(self.trim_to_v, 'V'):>10}"
                       f"   switching point {self.vm_frac_from:.2f} -> {self.vm_frac_to:.2f} of VDD")
        out.append(f"    {'VDD':>6}: {format_si(self.vdd_from_v, 'V'):>10} -> {format_si(self.vdd_to_v, 'V'):>10}"
                   f"   loop-half gain {self.gain_from:.2f} -> {self.gain_to:.2f} (gain_target {self.gain_target:g})")
        out.append(f"    there: {self.verdict}")
        return out


def _frac(vm_frac: float) -> str:
    """A switching point for a sentence (NaN: the half's transfer never crosses V_out = V_in)."""
    return f"switching point {vm_frac:.2f} of VDD" if math.isfinite(vm_frac) else "no switching point"


def _cell_arg(cell) -> str:
    """How to name ``cell`` on a command line: its name when that finds the same folder, else its folder."""
    from .cells import cell_dirs

    here = Path(cell.cell_dir or cell.netlist_path.parent).resolve()
    for root in cell_dirs():  # the name finds the first folder that has it
        cand = Path(root) / cell.name
        if (cand / "cell.toml").is_file():
            if cand.resolve() == here:
                return cell.name
            break
    try:
        return "./" + str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def suggest_trim(cell, *, corner: str, temp_c: float, nominal: LatchState, trim: dict | None,
                 params: dict | None) -> TrimSuggestion | None:
    """Run the cell's ``[balance]`` method (DC) from a point that is not bistable and check the
    result (see :class:`TrimSuggestion`); None when the cell has no ``[balance]`` table.

    The direction and size of the fix come from the same transfer curves the check measured: the
    balance trim moves the switching point to mid-rail (pull-downs outweighing the pull-ups push it
    low), and the supply then sets the loop gain; a second DC check says whether the point is
    bistable and inside the ratings and junction limits."""
    from . import trim as T

    try:
        bal = T.balance_spec(cell)
    except InputError:
        return None
    trim = dict(trim or {})
    fixed = {k: v for k, v in trim.items() if k != bal.trim} or None
    kw = dict(params=params, fixed_trim=fixed)
    t0 = trim.get(bal.trim, cell.trim[bal.trim].nominal_v) if bal.trim else None
    vm0, g0 = nominal.switching_frac[0], nominal.half_gain[0]
    base = dict(trim=bal.trim, trim_from_v=t0, vdd_from_v=nominal.vdd_v, vm_frac_from=vm0, gain_from=g0,
                gain_target=bal.gain_target)
    p = T.balanced_gain_point(cell, corner, temp_c, **kw)
    if p is None:
        lo, hi = cell.trim[bal.trim].range_v if bal.trim else (None, None)
        b = T.balance(cell, corner, temp_c, nominal.vdd_v, **kw)
        s = cell.supplies[cell.main_supply].range_v
        if bal.trim and b is None:
            ends = T.dc_points(cell, corner, temp_c, [(lo, nominal.vdd_v), (hi, nominal.vdd_v)], **kw)
            why = (f"no {bal.trim} in [{format_si(lo, 'V')}, {format_si(hi, 'V')}] ([trim.{bal.trim}] range_v) puts the "
                   f"switching point at mid-rail at VDD {format_si(nominal.vdd_v, 'V')} (at its ends: "
                   f"{_frac(ends[0].vm_frac)} and {_frac(ends[1].vm_frac)}): this trim cannot balance the "
                   "halves; resize the devices (or a wider range, if every junction stays within the models' limit there)")
        else:
            why = (f"the balanced cell does not reach the loop-half gain {bal.gain_target:g} anywhere in the supply range "
                   f"[{format_si(s[0], 'V')}, {format_si(s[1], 'V')}]: widen it, or change the devices for more gain per half")
        return TrimSuggestion(**base, trim_to_v=None, vdd_to_v=None, vm_frac_to=None, gain_to=None, status=None,
                              verdict=None, works=False, text=why)
    new_trim = {**trim, **({bal.trim: p.trim_v} if bal.trim else {})}
    sub = check_cell(cell, corner=corner, temp_c=temp_c, vdd_v=p.vdd_v, trim=new_trim or None, params=params,
                     suggest=False)
    over = [d for d in sub.devices if d.violations]
    beyond = [j for j in sub.junctions if j.beyond_limit]
    works = sub.nominal.bistable and not over and not beyond
    parts = []
    if bal.trim and abs(p.trim_v - t0) >= 0.5e-3:  # a trim already at its balance (within 0.5 mV) is not a step
        d = p.trim_v - t0
        parts.append(f"{'lower' if d < 0 else 'raise'} {bal.trim} by {format_si(abs(d), 'V')} "
                     f"({format_si(t0, 'V')} -> {format_si(p.trim_v, 'V')}: switching point {vm0:.2f} -> "
                     f"{p.vm_frac:.2f} of VDD)")
    dv = p.vdd_v - nominal.vdd_v
    parts.append(f"{'lower' if dv < 0 else 'raise'} the supply {format_si(nominal.vdd_v, 'V')} -> "
                 f"{format_si(p.vdd_v, 'V')} (loop-half gain {g0:.2f} -> {p.gain:.2f}, the [balance] gain_target)")
    where = f"`noisecell trim {_cell_arg(cell)} --write` finds this point and checks it with a transient-noise run"
    if works:
        text = " and ".join(parts) + f": `cell check` there: {sub.verdict}; {where}"
    else:
        reason = (f"{over[0].name} {over[0].violations[0]}" if over else
                  f"{beyond[0].what} {beyond[0].forward_v:.3f} V forward, beyond the models' limit" if beyond else
                  "not bistable")
        text = (f"the [balance] method's point ({'; '.join(parts)}) does not work: {reason} — no trim within the "
                f"limits makes this cell bistable; resize the devices")
    return TrimSuggestion(**base, trim_to_v=p.trim_v if bal.trim else None, vdd_to_v=p.vdd_v, vm_frac_to=p.vm_frac,
                          gain_to=p.gain, status=sub.status, verdict=sub.verdict, works=bool(works), text=text)


@dataclass(frozen=True)
class CellCheck:
    """Result of :func:`check_cell`. status: "ok", "warn" or "fail"; verdict: one line; fix: what
    to change when the cell cannot be a bit source (None otherwise)."""

    cell: str
    corner: str
    temp_c: float
    status: str
    verdict: str
    fix: str | None
    nominal: LatchState
    supply_scan: tuple[LatchState, ...]
    devices: tuple[DeviceVoltages, ...]
    junctions: tuple[Junction, ...]
    sources: tuple[SourcePower, ...]
    warnings: tuple[str, ...]
    params: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    suggestion: "TrimSuggestion | None" = None
    #: relaxation time of the v_out node (v_outb held at its value) at each stable state of the nominal
    #: point, s: 1/(2π f_3dB) of the node's small-signal impedance (see :func:`node_time_constants`)
    node_tau_s: tuple[float, ...] = ()

    @property
    def bistable_range_v(self) -> tuple[float, float] | None:
        ok = [s.vdd_v for s in self.supply_scan if s.bistable]
        return (min(ok), max(ok)) if ok else None

    def to_dict(self) -> dict:
        def fin(o):
            if isinstance(o, float) and not math.isfinite(o):
                return None
            if isinstance(o, dict):
                return {k: fin(v) for k, v in o.items()}
            if isinstance(o, (list, tuple)):
                return [fin(v) for v in o]
            return o

        def st(s: LatchState) -> dict:
            return {**asdict(s), "bistable": s.bistable if s.loop else None,
                    "loop_gain_at_switching": s.loop_gain_at_switching}

        d = {"cell": self.cell, "corner": self.corner, "temp_c": self.temp_c, "status": self.status,
             "verdict": self.verdict, "fix": self.fix, "nominal": st(self.nominal),
             "supply_scan": [st(s) for s in self.supply_scan],
             "bistable_supply_range_v": list(self.bistable_range_v) if self.bistable_range_v else None,
             "devices": [asdict(x) for x in self.devices], "junctions": [asdict(x) for x in self.junctions],
             "sources": [asdict(x) for x in self.sources], "warnings": list(self.warnings),
             "params": self.params, "elapsed_s": self.elapsed_s,
             "suggestion": asdict(self.suggestion) if self.suggestion else None,
             "node_tau_s": list(self.node_tau_s)}
        return fin(d)

    def summary(self) -> str:
        n = self.nominal
        lines = [f"cell check {self.cell} ({self.corner}, {self.temp_c:g} °C): {self.verdict}"]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.suggestion is not None:
            lines.extend(["", *self.suggestion.lines()])
        lines.append("")
        lines.append("  operating points at the nominal point (VDD "
                     f"{format_si(n.vdd_v, 'V')}, bias {format_si(n.bias_v, 'V')}):")
        lines.append(f"    {'V(v_out)':>10} {'V(v_outb)':>10} {'loop gain':>9}  stability")
        for p in n.points:
            lines.append(f"    {format_si(p.q_v, 'V'):>10} {format_si(p.qb_v, 'V'):>10} {p.loop_gain:9.3f}  "
                         f"{'stable' if p.stable else 'unstable (metastable)'}")
        lines.append(f"    halves: switching points {n.switching_frac[0]:.3f} / {n.switching_frac[1]:.3f} of VDD, "
                     f"gains {n.half_gain[0]:.3f} / {n.half_gain[1]:.3f} (product {n.loop_gain_at_switching:.3f})")
        if self.node_tau_s:
            lines.append("    node time constant (v_out, v_outb held) at the stable state(s): "
                         + " / ".join(format_si(t, "s") for t in self.node_tau_s)
                         + " — near loop gain 1 a dwell is hundreds to thousands of these")
        lines.append("")
        if not n.loop:
            lines.append("    (no feedback loop between the outputs: the latch figures above do not apply)")
        lines.append("  over the supply range:")
        for s in self.supply_scan:
            kind = "bistable  " if s.bistable else ("monostable" if s.loop else "no loop   ")
            lines.append(f"    VDD {format_si(s.vdd_v, 'V'):>10}  {kind}  "
                         f"half gains {s.half_gain[0]:.3f}/{s.half_gain[1]:.3f}, switching {s.switching_frac[0]:.3f}")
        lines.append("")
        lines.append("  devices (worst case over the checked points):")
        lines.append(f"    {'device':8} {'family':26} {'V_GS':>7} {'V_DS':>7} {'V_GB':>7} {'V_DB':>7} {'fwd':>7}  rating")
        for dv in self.devices:
            rate = "; ".join(dv.violations) if dv.violations else ("ok" if dv.limits else "no rating known")
            lines.append(f"    {dv.name:8} {dv.family:26} {dv.vgs_v:7.3f} {dv.vds_v:7.3f} {dv.vgb_v:7.3f} "
                         f"{dv.vdb_v:7.3f} {dv.forward_v:7.3f}  {rate}")
        if self.junctions:
            lines.append("")
            lines.append("  forward-biased junctions:")
            for j in self.junctions:
                lines.append(f"    {j.what}: {j.forward_v:.3f} V forward ({j.where})"
                             + ("  BEYOND THE MODELS' LIMIT" if j.beyond_limit else ""))
        lines.append("")
        lines.append("  DC sources (power delivered, at each stable point of the nominal supply):")
        for s in self.sources:
            lines.append(f"    {s.name:10} {'supply' if s.declared else 'NOT DECLARED':12} {format_si(s.voltage_v, 'V'):>10} "
                         f"{format_si(s.current_a, 'A'):>10} {format_si(s.power_w, 'W'):>10}  ({s.where})")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        lines.append(f"  ({self.elapsed_s:.1f} s)")
        return "\n".join(lines)


# ============================================================================ verdict
#: the part of every fix for a cell that cannot be bistable: what does not help
NO_HELP = "longer records, a bias change or a hysteresis cannot create a second state"

def verdict(nominal: LatchState, scan: list[LatchState], devices: list[DeviceVoltages],
            junctions: list[Junction]) -> tuple[str, str, str | None]:
    """(status, one-line verdict, fix) from the analysis (pure; see the module docstring)."""
    fix = None
    over = [d for d in devices if d.violations]
    if not nominal.loop:
        status = "ok"
        text = ("no feedback loop between v_out and v_outb (forcing v_out does not move v_outb): not a latch, so "
                "the DC bistability check does not apply; the transient regime check decides whether it telegraphs")
    elif nominal.bistable:
        status = "ok"
        meta = max((p.loop_gain for p in nominal.points if not p.stable), default=float("nan"))
        text = (f"bistable at the nominal supply {format_si(nominal.vdd_v, 'V')} (loop gain {meta:.2f} at the "
                f"metastable point, switching point {nominal.switching_frac[0]:.2f} of VDD)")
    else:
        status = "fail"
        sp, g = nominal.switching_frac[0], nominal.loop_gain_at_switching
        text = (f"NOT BISTABLE at the nominal supply {format_si(nominal.vdd_v, 'V')}: one stable state; loop "
                f"gain {g:.2f} < 1 at the switching point {sp:.2f} of VDD (halves {nominal.half_gain[0]:.2f}/"
                f"{nominal.half_gain[1]:.2f})")
        ok = [s for s in scan if s.bistable]
        no_help = NO_HELP
        if ok:
            lo_ok, hi_ok = min(s.vdd_v for s in ok), max(s.vdd_v for s in ok)
            span = (f"for VDD {format_si(lo_ok, 'V')} … {format_si(hi_ok, 'V')}" if hi_ok > lo_ok
                    else f"at VDD {format_si(lo_ok, 'V')}")
            fix = (f"the cell is bistable {span} of its range (scanned in {SUPPLY_SCAN_POINTS} points): move the "
                   f"supply there (`noisecell trim`); {no_help}")
        elif math.isfinite(sp) and abs(sp - 0.5) > UNBALANCED_FRACTION:
            side = "pull-downs outweigh the pull-ups" if sp < 0.5 else "pull-ups outweigh the pull-downs"
            fix = (f"unbalanced: the switching point sits at {sp:.2f} of VDD ({side}), which collapses the loop "
                   f"gain; resize the devices (W/L) or add a trim input that balances them, then re-check; {no_help}")
        else:
            best = max(scan, key=lambda s: s.loop_gain_at_switching) if scan else nominal
            fix = (f"the loop gain stays below 1 over the whole supply range (best {best.loop_gain_at_switching:.2f} "
                   f"at VDD {format_si(best.vdd_v, 'V')}): raise the supply range, or lengthen the devices "
                   f"for more gain per half; {no_help}")
    if over:
        status = "fail"
        text = f"EXCEEDS RATINGS ({len(over)} device(s): {over[0].name} {over[0].violations[0]}); " + text
        fix = ((fix + "; ") if fix else "") + "keep every terminal within its device family's rating (a thicker-oxide device, or less bias swing)"
    elif status == "ok" and junctions:
        status = "warn"
    if junctions:
        j = max(junctions, key=lambda j: j.forward_v)
        text += (f"; {len(junctions)} forward-biased junction(s), worst {j.what} {j.forward_v:.3f} V"
                 + (" (beyond the models' limit)" if j.beyond_limit else " (within the models' limit)"))
    return status, text, fix


# ============================================================================ the ngspice run
def _top_elements(text: str) -> list[list[str]]:
    from . import netlist as nl

    return [nl.tokens(ln.text) for ln in nl.logical_lines(text) if ln.scope is None and not ln.text.startswith(".")]


def _voltage_sources(text: str) -> list[tuple[str, str, str]]:
    return [(t[0], t[1], t[2]) for t in _top_elements(text) if t[0][0].lower() == "v" and len(t) >= 3]


def _node(n: str) -> str:
    return "0" if n.lower() in ("0", "gnd") else n


def check_cell(cell, *, corner: str | None = None, temp_c: float | None = None, vdd_v: float | None = None,
               trim: dict | None = None, params: dict | None = None, timeout_s: float = 120.0,
               suggest: bool = True) -> CellCheck:
    """Run the DC check of ``cell`` (a CellSpec) at (corner, temp_c), default the cell's nominal, at the
    supply and trim `simulate` would use (stored trim table, else nominal). One ngspice process; with
    ``suggest`` and a cell that is not bistable there, also the cell's ``[balance]`` method and a second
    check at its point (:func:`suggest_trim`, DC, ~10-40 ngspice processes): the fix then says which
    trim to move, which way and how far."""
    from . import netlist as nl
    from .simulate import job_from_cell
    from .technology import model_lines
    from .simulator.batch import run_batch
    from .trim import trimmed_point

    t_start = time.monotonic()
    where = f"cell {cell.name} ({cell.netlist_path.parent / 'cell.toml'})"
    if "v_outb" not in cell.outputs:
        raise InputError(f"{where}: `cell check` analyses a latch with two outputs (v_out and v_outb in [outputs])")
    corner = cell.nominal_corner if corner is None else corner
    temp_c = cell.nominal_temp_c if temp_c is None else float(temp_c)
    if vdd_v is None or trim is None:
        try:
            stored_trim, stored_vdd = trimmed_point(cell, corner, temp_c)
        except InputError:  # no [balance] table: the cell's nominal values
            stored_trim, stored_vdd = {}, cell.supplies[cell.main_supply].nominal_v
        trim = stored_trim if trim is None else trim
        vdd_v = stored_vdd if vdd_v is None else vdd_v
    bias_mid = float(cell.bias.mid_v)
    values = dict(job_from_cell(cell, bias_v=bias_mid, corner=corner, temp_c=temp_c, vdd_v=vdd_v, trim=trim or None,
                                params=params, duration_s=1e-6, noise_step_s=1e-9, seed=0).params)
    main = cell.supplies[cell.main_supply]
    try:
        from .trim import balance_spec
        low_node = balance_spec(cell).low_node
    except InputError:
        low_node = "0"
    vdd_max = float(main.range_v[1])
    scan_v = sorted(set([float(v) for v in np.linspace(main.range_v[0], main.range_v[1], SUPPLY_SCAN_POINTS)]))
    b_lo, b_hi = (float(v) for v in cell.bias.range_v)
    # (label, vdd, bias): 0 = nominal; then the supply scan; then the rating corners
    conds = [("nominal", float(vdd_v), bias_mid)]
    conds += [(f"VDD {format_si(v, 'V')}", v, bias_mid) for v in scan_v]
    for vv, vlabel in ((float(vdd_v), "nominal VDD"), (vdd_max, "top of the supply range")):
        for bb in (b_lo, b_hi):
            conds.append((f"{vlabel}, bias {format_si(bb, 'V')}", vv, bb))
    for _lab, vv, bb in conds:  # every condition within the cell's ranges
        job_from_cell(cell, bias_v=bb, corner=corner, temp_c=temp_c, vdd_v=vv, trim=trim or None, params=params,
                      duration_s=1e-6, noise_step_s=1e-9, seed=0)

    body = nl.set_params(cell.template, values, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    q, qb = cell.outputs["v_out"], cell.outputs["v_outb"]
    mos = [m for m in nl.find_mosfets(cell.template, cell.technology) if m.scope is None]
    vsrc = _voltage_sources(cell.template)
    nodes = sorted({_node(n) for m in mos for n in (m.drain, m.gate, m.source, m.bulk)}
                   | {_node(n) for _v, a, b in vsrc for n in (a, b)} | {q, qb, _node(low_node)} - {"0"})
    nodes = [n for n in nodes if n != "0"]
    vecs = [f"v({n})" for n in nodes] + [f"i({name})" for name, _a, _b in vsrc]
    opts = f".options temp={float(temp_c)!r} tnom=27.0"
    head = [f"* noisecell cell check: {cell.name} {corner} {temp_c:g} C",
            *model_lines(cell.technology, corner, mismatch=False, netlist=body), body, opts,
            f"Rnc_fq {q} nc_fq 1e12", f"Vnc_fq nc_fq {low_node} DC 0",
            f"Rnc_fqb {qb} nc_fqb 1e12", f"Vnc_fqb nc_fqb {low_node} DC 0"]
    ctl = [".control", "set wr_singlescale", "set wr_vecnames"]
    for i, (_lab, vv, bb) in enumerate(conds):
        lo, hi = -0.05 * vv, 1.05 * vv
        step = (hi - lo) / (SWEEP_POINTS - 1)
        alt = [f"alterparam {main.param}={vv!r}", f"alterparam {cell.bias.param}={bb!r}", "reset"]
        ctl += alt + ["alter Rnc_fqb=1e-3", "alter Rnc_fq=1e12", f"dc Vnc_fqb {lo!r} {hi!r} {step!r}",
                      f"wrdata c{i}_f.dat {' '.join(vecs)}",
                      "alter Rnc_fqb=1e12", "alter Rnc_fq=1e-3", f"dc Vnc_fq {lo!r} {hi!r} {step!r}",
                      f"wrdata c{i}_g.dat {' '.join(vecs)}"]
    ctl += ["quit", ".endc", ".end"]
    with tempfile.TemporaryDirectory(prefix="noisecell-check-") as td:
        wd = Path(td)
        log = run_batch("\n".join(head + ctl) + "\n", wd, technology=cell.technology, timeout_s=timeout_s,
                        name=f"{where}: DC check", filename="check.cir")
        data = []
        for i in range(len(conds)):
            pair = []
            for s in ("f", "g"):
                p = wd / f"c{i}_{s}.dat"
                if not p.is_file():
                    tail = " ".join(log.strip().splitlines()[-3:])
                    raise SimulationError(f"{where}: DC check ({corner}, {temp_c:g} C) failed: {tail}")
                pair.append(np.atleast_2d(np.loadtxt(p, skiprows=1)))
            data.append(pair)
    col = {name: 1 + k for k, name in enumerate(vecs)}  # wr_singlescale: the sweep value, then each vector

    def node_v(arr, n):
        return np.zeros(len(arr)) if n == "0" else arr[:, col[f"v({n})"]]

    states, samples = [], []
    for i, ((lab, vv, bb), (df, dg)) in enumerate(zip(conds, data)):
        low = float(np.median(node_v(df, _node(low_node))))
        x = df[:, 0] + low
        st = latch_state(vv, bb, low, x, node_v(df, q), node_v(dg, qb))
        states.append(st)
        for p in st.stable:  # every node at this state: the qb-forced sweep at qb = qb*
            at = {n: float(np.interp(p.qb_v - low, df[:, 0], node_v(df, n))) for n in nodes}
            at["0"] = 0.0
            cur = {name: float(np.interp(p.qb_v - low, df[:, 0], df[:, col[f"i({name})"]])) for name, _a, _b in vsrc}
            samples.append((i, lab, p, at, cur))
    nominal, scan = states[0], states[1:1 + len(scan_v)]

    devices = []
    junctions: list[Junction] = []
    for m in mos:
        rating = rating_for(cell.technology, m.model)
        tv = [(f"{lab}, state V(v_out) {format_si(p.q_v, 'V')}",
               {"d": at[_node(m.drain)], "g": at[_node(m.gate)], "s": at[_node(m.source)], "b": at[_node(m.bulk)]})
              for _i, lab, p, at, _c in samples]
        if not tv:
            continue
        dv = check_device(m.name, m.model, m.polarity, rating, tv)
        devices.append(dv)
        limit = rating.vbs_forward_max if rating else 0.3
        if dv.forward_v > FORWARD_REPORT_V:
            wh = max(tv, key=lambda s: (max(s[1]["b"] - s[1]["s"], s[1]["b"] - s[1]["d"]) if m.polarity == "n"
                                        else max(s[1]["s"] - s[1]["b"], s[1]["d"] - s[1]["b"])))[0]
            kind = "source/drain–p-body" if m.polarity == "n" else "p+ source/drain–n-well"
            junctions.append(Junction(f"{m.name} {kind}", dv.forward_v, wh, dv.forward_v > limit + 1e-9))
    # n-well (pfet bodies) to substrate (the nfet bodies' node, else ground)
    nb = [_node(m.bulk) for m in mos if m.polarity == "n"]
    sub = max(set(nb), key=nb.count) if nb else "0"
    for well in sorted({_node(m.bulk) for m in mos if m.polarity == "p"}):
        fw = [(at[sub] - at[well], lab) for _i, lab, _p, at, _c in samples]
        v, wh = max(fw)
        if v > FORWARD_REPORT_V:
            junctions.append(Junction(f"n-well {well} – substrate {sub}", v, wh, v > 0.3))
    declared = {s.source.lower() for s in cell.supplies.values()}
    sources = []
    for i, lab, p, at, cur in samples:
        if i != 0:
            continue
        for name, a, b in vsrc:
            v = at[_node(a)] - at[_node(b)]
            sources.append(SourcePower(name, name.lower() in declared, v, cur[name], -v * cur[name] + 0.0,
                                       f"state V(v_out) {format_si(p.q_v, 'V')}"))
    warnings = []
    dec_p = sum(abs(s.power_w) for s in sources if s.declared)
    for s in sources:
        if not s.declared and abs(s.power_w) > max(0.01 * dec_p, 1e-15):
            warnings.append(f"source {s.name} delivers {format_si(s.power_w, 'W')} ({s.where}) but is not a "
                            "declared [supplies] entry, so the energy figures leave it out; declare it to count it")
    for dv in devices:
        if not dv.limits and cell.technology == "sky130":
            warnings.append(f"{dv.name}: no rating known for {dv.model}")
    status, text, fix = verdict(nominal, list(scan), devices, junctions)
    taus: tuple[float, ...] = ()
    if nominal.loop and nominal.stable:  # the states' voltages are absolute: held from ground
        taus = node_time_constants(cell, corner=corner, temp_c=temp_c, values=values, states=nominal.stable,
                                   timeout_s=timeout_s)
    if taus and max(taus) > SLOW_NODE_S:
        warnings.append(f"the output node relaxes in {format_si(max(taus), 's')} (v_outb held, at a stable state): "
                        f"near loop gain 1 the dwells are hundreds to thousands of these, i.e. ≳ {format_si(100 * max(taus), 's')} — "
                        "records of many dwells take long runs at a coarse noise step; more current per node "
                        "capacitance (devices that carry nA at tens of mV) is what makes a faster cell, not a trim")
    sug = None
    if suggest and nominal.loop and not nominal.bistable:
        sug = suggest_trim(cell, corner=corner, temp_c=temp_c, nominal=nominal,
                           trim={k: float(values[k]) for k in cell.trim if k in values}, params=params)
        if sug is None and cell.trim:
            fix = ((fix + "; ") if fix else "") + (
                f"add a [balance] table naming the trim input that moves the pull-ups against the pull-downs "
                f"(here: {', '.join(f'[trim.{t}]' for t in cell.trim)}; docs/cells.md) and `cell check` finds its value "
                "and the supply")
        elif sug is not None and sug.works:
            fix = sug.text + "; " + NO_HELP
        elif sug is not None:
            fix = ((fix + "; ") if fix else "") + sug.text
    return CellCheck(cell.name, corner, temp_c, status, text, fix, nominal, tuple(scan), tuple(devices),
                     tuple(junctions), tuple(sources), tuple(warnings),
                     params={k: float(v) for k, v in values.items()}, elapsed_s=time.monotonic() - t_start,
                     suggestion=sug, node_tau_s=taus)


#: undeclared DC sources delivering more than this fraction of the declared supplies' power make the
#: energy figures wrong by that much: `characterize` warns (the same limit as the check's warning)
UNCOUNTED_POWER_WARN_FRACTION = 0.01


def node_time_constants(cell, *, corner: str, temp_c: float, values: dict,
                        states: tuple[OperatingPoint, ...], timeout_s: float = 60.0) -> tuple[float, ...]:
    """Relaxation time (s) of the v_out node at each stable state: v_outb is held at its state value by
    a DC source (AC ground), a 1 A AC current is injected at v_out, and τ = 1/(2π f_3dB) where the
    node's impedance |Z(f)| falls to 1/√2 of its low-frequency value — C/g of the node, the time
    scale of the latch's dynamics (a dwell near loop gain 1 is hundreds to thousands of these:
    SLOW_NODE_S). The corner is interpolated in log f against log |Z| on a 10-per-decade grid: for a
    single pole that is within 0.7 % (interpolation error Δ²/8·|d²ln|Z|/d(ln f)²| = 0.0033 in ln|Z| at
    Δ = ln(10)/10, over the slope −1/2 there). One
    ngspice process; () when the impedance never falls within 1 mHz … 1 THz."""
    from . import netlist as nl
    from .simulator.batch import run_batch
    from .technology import model_lines

    if not states:
        return ()
    q, qb = cell.outputs["v_out"], cell.outputs["v_outb"]
    body = nl.set_params(cell.template, values, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    # a v_outb that the cell itself drives from an ideal source to ground (a single-ended readout's
    # reference, e.g. pbit_x4's VDD/2 node) is AC ground already; a second source in parallel would
    # make the matrix singular (ngspice: "ac simulation(s) aborted")
    driven = any({_node(a), _node(b)} == {_node(qb), "0"} for _n, a, b in _voltage_sources(cell.template))
    head = [f"* noisecell cell check: node time constants of {cell.name}",
            *model_lines(cell.technology, corner, mismatch=False, netlist=body), body,
            f".options temp={float(temp_c)!r} tnom=27.0",
            *([] if driven else [f"Vnc_hold {qb} 0 DC {states[0].qb_v!r}"]),
            f"Inc_ac 0 {q} DC 0 AC 1"]
    ctl = [".control", "set wr_singlescale"]
    for i, p in enumerate(states):
        ctl += [*([] if driven else [f"alter Vnc_hold = {float(p.qb_v)!r}"]), "ac dec 10 1e-3 1e12",
                f"wrdata ac{i}.dat v({q})"]
    ctl += ["quit", ".endc", ".end"]
    out = []
    with tempfile.TemporaryDirectory(prefix="noisecell-check-ac-") as td:
        log = run_batch("\n".join(head + ctl) + "\n", td, technology=cell.technology, timeout_s=timeout_s,
                        name=f"cell {cell.name}: node time constants", filename="ac.cir")
        for i in range(len(states)):
            path = Path(td) / f"ac{i}.dat"
            if not path.is_file():
                tail = " ".join(log.strip().splitlines()[-3:])
                raise SimulationError(f"cell {cell.name}: node time-constant analysis failed: {tail}")
            d = np.atleast_2d(np.loadtxt(path))
            f, mag = d[:, 0], np.hypot(d[:, 1], d[:, 2])
            below = np.nonzero(mag < mag[0] / math.sqrt(2))[0]
            if len(below) == 0 or below[0] == 0:
                return ()
            k = int(below[0])  # interpolate log f against log |Z| across the crossing
            lf = np.interp(math.log(mag[0] / math.sqrt(2)), np.log(mag[[k, k - 1]]), np.log(f[[k, k - 1]]))
            out.append(float(1.0 / (2 * math.pi * math.exp(lf))))
    return tuple(out)


def power_coverage(cell, check: CellCheck | None = None) -> dict:
    """Which top-level DC sources the energy and power figures of `simulate`/`characterize` count.

    They count the declared ``[supplies]`` (their currents are recorded in every run); the other V
    sources of the netlist (wells, biases, gate references) are not recorded, so their power is not in
    those figures. With ``check`` (a :class:`CellCheck` of the same cell) the DC power of each source
    at the nominal point (largest over the stable states) says how much that leaves out.
    Returns {"counted": [names], "not_counted": [names], "not_counted_dc_w": {name: W} (with check),
    "uncounted_fraction": float | None, "note": one line}."""
    declared = {s.source.lower() for s in cell.supplies.values()}
    names = [name for name, _a, _b in _voltage_sources(cell.template)]
    counted = [n for n in names if n.lower() in declared]
    others = [n for n in names if n.lower() not in declared]
    out = {"counted": counted, "not_counted": others, "not_counted_dc_w": None, "uncounted_fraction": None}
    note = (f"power and energy figures count the declared supplies ({', '.join(counted) or 'none'}) only")
    if not others:
        out["note"] = note + "; the netlist has no other DC source"
        return out
    note += f"; not counted: {', '.join(others)}"
    if check is not None and check.sources:
        best: dict[str, float] = {}
        for sp in check.sources:
            best[sp.name] = max(best.get(sp.name, 0.0), abs(sp.power_w))
        dc = {n: best.get(n, 0.0) for n in others}
        counted_w = sum(best.get(n, 0.0) for n in counted)
        frac = sum(dc.values()) / counted_w if counted_w > 0 else None
        out["not_counted_dc_w"], out["uncounted_fraction"] = dc, frac
        share = f" = {frac:.2%} of the counted {format_si(counted_w, 'W')}" if frac is not None else ""
        note += (" (`cell check` at the nominal point: "
                 + ", ".join(f"{n} {format_si(w, 'W')}" for n, w in dc.items()) + f"{share})")
    else:
        note += " (`noisecell cell check` gives their DC power)"
    out["note"] = note + "; declare a source as a [supplies] entry to count it"
    return out


def suggested_fix(check: CellCheck, regime: str | None = None) -> str:
    """What to change when a simulated record is not a bit source, from the DC check: a cell that
    cannot be bistable needs a design change; one that can was read at the wrong barrier."""
    if check.fix and not check.nominal.bistable:
        head = check.verdict.split(":")[0].replace("NOT BISTABLE", "not bistable")
        return f"`cell check`: {head} — {check.fix}"
    if regime == "stuck":
        return ("`cell check` finds the cell bistable here, so the record froze in one state: the barrier is "
                "too high for this record — lower the supply (`noisecell trim` finds the window) or simulate longer")
    return ("`cell check` finds the cell bistable here, yet the record shows one level: the barrier is "
            "below ~1 kT at this supply — raise the supply slightly (`noisecell trim` finds the window)")


def gate(cell, log, *, corner: str | None = None, temp_c: float | None = None, what: str = "characterize") -> CellCheck:
    """Run the check at the start of a long job: log the verdict, raise InputError if the cell cannot
    be bistable or exceeds its ratings (the check takes seconds, the sweep hours)."""
    res = check_cell(cell, corner=corner, temp_c=temp_c)
    log(f"cell check: {res.verdict} ({res.elapsed_s:.1f} s)")
    for w in res.warnings:
        log(f"cell check: warning: {w}")
    if res.status == "fail":
        raise InputError(f"cell {cell.name}: `noisecell cell check` says {res.verdict}; fix: {res.fix}; "
                         f"{what} stops before simulating (see `noisecell cell check {cell.name}`; --skip-check "
                         "runs it anyway)")
    return res
