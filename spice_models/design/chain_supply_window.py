"""Supply window of an amplified-noise chain (pbit_x4, pbit_x5) per corner/temperature pair (issue 17 item 3).

Shared by ``spice_models/pbit_x4/supply_window.py`` and ``spice_models/pbit_x5/supply_window.py``
(each calls :func:`main` with its cell folder and defaults; spice_models/README.md, NOTES §12-13).

For each passing row of the cell's ``trims.json`` the trims (VGP, VNW) are held at their trimmed
values; only the supply VDD (and, in the centred walk, the bias) moves. A supply *telegraphs* when a
transient noise record (noisecell.trim.check, ``--duration`` long) is classified bistable with at
least 1 flip/µs.

* **Transient walk at bias 0** (the trimmed bias): from the trimmed VDD0 the supply steps down, then
  up, one record per step, until a record does not telegraph or the supply range ends. The step is
  the supply change that moves the DC readout offset (below) by ``--offset-step`` (1.5 mV of bias,
  half a sigmoid scale at tt 27 C): at a fixed VGP the offset moves ~2 mV per mV of supply, so this
  window is a few mV wide and a fixed fraction of VDD would step over it. The window is the
  lowest/highest telegraphing supply contiguous with VDD0 and the first failing supply beyond each
  (each edge bracketed to one step).
* **Bias-centred walk**: the same from VDD0 in steps of ``--centred-step`` (5 %) of VDD0, but with the
  bias at each supply set to the DC readout offset there (the bias that centres P(1): what a per-cell
  bias trim does): the supply range over which the chain itself still makes two levels fast enough.
  ``--bisect N`` then halves each bracketed edge of both walks N times (one record each), so the edge
  is known to the walk's step / 2^N. ``--confirm``: a failing record is repeated with the next seed
  and the supply fails only if both do.
* **DC** (noise-free, milliseconds per point) on a grid of VDD0 x 0.5 ... 1.8 inside the supply
  range: the last inverter's transfer (z forced, w sensed, as `noisecell trim` balances it) at the
  fixed VGP gives its stage gain A and switching point V_m/VDD; and the DC readout offset, the bias
  VB at which the noise-free readout V(w) - V(in) crosses zero (a DC sweep of stage 1's well source
  Vnw1 over the bias range). The telegraph window needs A high enough for two levels and |offset|
  small against the sigmoid scale (a few mV): the DC figures at the transient edges say which of
  the two ends each side.
* **Power of the check** (``--repeats K``): K extra records at VDD0 with the centred bias (other
  seeds), so the fraction of records called telegraphing at a point known to telegraph is measured,
  not assumed; and the flip-rate criterion's power from the Poisson count (:func:`flip_power`).

Writes the JSON (plain SI floats: V, s, W; flips per µs) after every pair. Same seeds -> same
records (seed = 1000 + 100 * pair index + record index, so a --pairs subset reproduces its rows).
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from noisecell import netlist as nl
from noisecell import trim as T
from noisecell.atomic import atomic_write
from noisecell.cells import load_cell
from noisecell.errors import InputError, SimulationError, SimulationTimeout
from noisecell.simulator.batch import run_batch
from noisecell.technology import model_lines
from noisecell.units import parse_si

ORDER = [(c, t) for c in ("tt", "ss", "ff", "sf", "fs") for t in (-40.0, 27.0, 85.0)]
DC_FACTORS = [round(f, 3) for f in np.arange(0.5, 1.8001, 0.05)]
MIN_FLIPS_PER_US = 1.0


def flip_power(rate_per_us: float, duration_s: float, min_flips_per_us: float = MIN_FLIPS_PER_US) -> float:
    """Probability that a record of ``duration_s`` (s) at a true flip rate ``rate_per_us`` (1/µs) counts
    at least ``min_flips_per_us`` x duration flips, the count taken as Poisson (a symmetric telegraph's
    transitions; its dwell times are exponential)."""
    from scipy import stats

    need = math.ceil(min_flips_per_us * duration_s * 1e6 - 1e-9)
    return float(stats.poisson.sf(need - 1, rate_per_us * duration_s * 1e6))


def rate_for_power(power: float, duration_s: float, min_flips_per_us: float = MIN_FLIPS_PER_US) -> float:
    """Smallest true flip rate (1/µs) at which :func:`flip_power` reaches ``power`` (bisection)."""
    lo, hi = min_flips_per_us * 0.5, min_flips_per_us * 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if flip_power(mid, duration_s, min_flips_per_us) < power else (lo, mid)
    return hi


def readout_offsets(cell, corner: str, temp_c: float, vgp: float, vnw: float, vdds: list[float],
                    step_v: float = 2.5e-4) -> list[float | None]:
    """Bias VB (V) at which the noise-free DC readout V(w) - V(in) crosses 0, at each supply (None when
    it does not cross inside the bias range): one ngspice process, a DC sweep of Vnw1 (= VDD + VNW + VB)."""
    lo, hi = cell.bias.range_v
    vals = T._cell_values(cell, corner=corner, temp_c=temp_c, bias_v=0.0, vdd_v=vdds[0],
                          trim={"VGP": vgp, "VNW": vnw}, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    head = [f"* {cell.name} supply window DC readout: {corner} {temp_c:g} C",
            *model_lines(cell.technology, corner, mismatch=False, netlist=body), body,
            f".options temp={float(temp_c)!r} tnom=27.0"]
    ctl = [".control", "set wr_singlescale"]
    vdds = [float(v) for v in vdds]  # numpy scalars would print as np.float64(...) into the netlist
    for i, v in enumerate(vdds):
        a, b = v + vnw + lo, v + vnw + hi
        ctl += [f"alterparam VDD={float(v)!r}", "reset", f"dc Vnw1 {a!r} {b!r} {step_v!r}",
                f"wrdata o{i}.dat v(w) v(in)"]
    ctl += ["quit", ".endc", ".end"]
    out: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="supply-window-") as td:
        log = run_batch("\n".join(head + ctl) + "\n", td, technology=cell.technology, timeout_s=600,
                        name=f"{cell.name} DC readout ({corner}, {temp_c:g} C)")
        for i, v in enumerate(vdds):
            p = Path(td) / f"o{i}.dat"
            if not p.is_file():
                raise SystemExit(f"DC readout failed at {corner} {temp_c:g} C, VDD {v}: "
                                 + " ".join(log.strip().splitlines()[-3:]))
            d = np.loadtxt(p)
            vb = d[:, 0] - (v + vnw)
            f = d[:, 1] - d[:, 2]  # wr_singlescale: (sweep, v(w), v(in))
            s = np.nonzero(np.diff(np.sign(f)) != 0)[0]
            if len(s) == 0:
                out.append(None)
                continue
            k = int(s[0])
            out.append(float(vb[k] + f[k] / (f[k] - f[k + 1]) * (vb[k + 1] - vb[k])))
    return out


def dc_scan(cell, corner, temp_c, vgp, vnw, vdd0):
    """Stage gain, switching point and DC readout offset on the VDD0 x DC_FACTORS grid (module doc)."""
    s = cell.supplies[cell.main_supply]
    vdds = sorted({round(float(min(max(vdd0 * f, s.range_v[0]), s.range_v[1])), 6) for f in DC_FACTORS})
    pts = T.dc_points(cell, corner, temp_c, [(vgp, v) for v in vdds], fixed_trim={"VNW": vnw})
    offs = readout_offsets(cell, corner, temp_c, vgp, vnw, vdds)
    return [{"vdd_v": v, "stage_gain": None if not math.isfinite(p.gain) else p.gain,
             "vm_frac": None if not math.isfinite(p.vm_frac) else p.vm_frac, "readout_offset_vb_v": o}
            for v, p, o in zip(vdds, pts, offs)]


def telegraphs(c) -> bool:
    return c.regime == "bistable" and c.flips_per_us >= MIN_FLIPS_PER_US


def bracket_edges(vdd0: float, step_v: float, lo_v: float, hi_v: float, max_steps: int, run, *,
                  centre_ok: bool, bias_ok=None, bisect: int = 0) -> dict:
    """Both edges of the telegraphing supply interval around ``vdd0`` (V).

    Walks from vdd0 by ``step_v`` down, then up, calling ``run(v) -> bool`` (telegraphs?) until it is
    False, the supply leaves [lo_v, hi_v], or ``bias_ok(v)`` (None: always) is False; then halves each
    numeric bracket ``bisect`` times. Returns {"low"|"high": {"last_telegraphing_v": V or None,
    "first_failing_v": V or a reason string, "resolution_v": V or None}}: the edge lies between the
    two to resolution_v (None when the far side is not a record)."""
    edges = {}
    for sign, name in ((-1, "low"), (+1, "high")):
        inside, outside = (vdd0 if centre_ok else None), None
        for n in range(1, max_steps + 1):
            v = vdd0 + sign * step_v * n
            if not lo_v <= v <= hi_v:
                outside = "supply range end"
                break
            if bias_ok is not None and not bias_ok(v):
                outside = "DC offset outside the bias range"
                break
            if run(v):
                inside = v
            else:
                outside = v
                break
        if outside is None:
            outside = f"not within {max_steps} steps"
        res = None
        if inside is not None and isinstance(outside, float):
            for _ in range(bisect):
                mid = 0.5 * (inside + outside)
                if bias_ok is not None and not bias_ok(mid):
                    outside = mid
                elif run(mid):
                    inside = mid
                else:
                    outside = mid
            res = abs(outside - inside)
        edges[name] = {"last_telegraphing_v": inside, "first_failing_v": outside, "resolution_v": res}
    return edges


def walk(cell, corner, temp_c, vgp, vnw, vdd0, *, duration_s, step_v, seed0, max_steps, say, bias_at=None,
         timeout_s=120.0, bisect=0, confirm=False):
    """Records from vdd0 down, then up, by step_v until one does not telegraph (see the module doc).
    bias_at: None (bias 0) or a function VDD -> bias (the DC-centred walk); a bias outside the cell's
    bias range ends that side. confirm: a supply whose record fails gets a second record (next seed)
    and fails only if that one fails too (a false 'no' inside the window then needs two).
    Returns (centre record, records, edges of bracket_edges)."""
    s = cell.supplies[cell.main_supply]
    recs = []
    biases: dict[float, float | None] = {}

    def bias(v):
        if bias_at is None:
            return 0.0
        if v not in biases:
            biases[v] = bias_at(v)
        return biases[v]

    def run(v):
        b = bias(v)
        seed = seed0 + len(recs)
        try:
            c = T.check(cell, corner, temp_c, vgp, v, duration_s=duration_s, seed=seed, fixed_trim={"VNW": vnw},
                        timeout_s=timeout_s, bias_v=b)
        except SimulationTimeout:  # ngspice's step control stalls in some cold records (NOTES §12)
            r = {"vdd_v": v, "bias_v": b, "seed": seed, "regime": "stalled", "p1": None, "p1_se": None,
                 "flips_per_us": None, "power_w": None, "telegraphs": False,
                 "detail": f"no result after {timeout_s:g} s wall: the simulator was killed"}
            recs.append(r)
            say(f"    VDD {v * 1e3:.2f} mV, VB {b * 1e3:+.2f} mV: stalled (> {timeout_s:g} s wall) -> no")
            return r
        except SimulationError as e:  # ngspice gave up (timestep too small) even on the retry rung
            r = {"vdd_v": v, "bias_v": b, "seed": seed, "regime": "no_convergence", "p1": None, "p1_se": None,
                 "flips_per_us": None, "power_w": None, "telegraphs": False, "detail": str(e)}
            recs.append(r)
            say(f"    VDD {v * 1e3:.2f} mV, VB {b * 1e3:+.2f} mV: no convergence -> no")
            return r
        r = {"vdd_v": v, "bias_v": b, "seed": seed, "regime": c.regime, "p1": c.p1,
             "p1_se": c.p1_se if math.isfinite(c.p1_se) else None, "flips_per_us": c.flips_per_us,
             "power_w": c.power_w, "telegraphs": telegraphs(c), "detail": c.regime_detail}
        recs.append(r)
        say(f"    VDD {v * 1e3:.2f} mV, VB {b * 1e3:+.2f} mV: {c.regime}, P(1) {c.p1:.3f}, {c.flips_per_us:.3g} flips/µs"
            f" -> {'telegraphs' if r['telegraphs'] else 'no'}")
        return r

    def bias_ok(v):
        b = bias(v)
        return b is not None and cell.bias.range_v[0] <= b <= cell.bias.range_v[1]

    def point(v):
        r = run(v)
        if not r["telegraphs"] and confirm:
            r = run(v)
        return r

    centre = point(vdd0)
    edges = bracket_edges(vdd0, step_v, s.range_v[0], s.range_v[1], max_steps, lambda v: point(v)["telegraphs"],
                          centre_ok=centre["telegraphs"], bias_ok=None if bias_at is None else bias_ok,
                          bisect=bisect)
    return centre, recs, edges


def power_study(cell, corner, temp_c, vgp, vnw, vdd0, *, n, durations, seed0, timeout_s, say) -> dict:
    """n records per duration (s) at vdd0 with the bias at the DC readout offset: the fraction called
    telegraphing with its 95 % Clopper-Pearson interval, at a point the trim called telegraphing."""
    from scipy import stats

    b0 = readout_offsets(cell, corner, temp_c, vgp, vnw, [vdd0])[0]
    out = {"vdd_v": vdd0, "bias_v": b0, "by_duration": []}
    for j, d in enumerate(durations):
        recs = []
        for i in range(n):
            c = T.check(cell, corner, temp_c, vgp, vdd0, duration_s=d, seed=seed0 + 100 * j + i,
                        fixed_trim={"VNW": vnw}, timeout_s=timeout_s, bias_v=b0)
            recs.append({"seed": seed0 + 100 * j + i, "regime": c.regime, "p1": c.p1, "flips_per_us": c.flips_per_us,
                         "telegraphs": telegraphs(c)})
        k = sum(r["telegraphs"] for r in recs)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        say(f"  {d * 1e6:g} us: {k}/{n} telegraph (95 % CI {ci.low:.2f}-{ci.high:.2f})")
        out["by_duration"].append({"duration_s": d, "n": n, "telegraphing": k, "ci95": [ci.low, ci.high],
                                   "records": recs})
    return out


def _edge_text(w: dict) -> str:
    """'lo–hi (fails a / b, ±res)' in mV from a window dict of bracket_edges."""
    def mv(x):
        return f"{x * 1e3:.1f}" if isinstance(x, float) else ("—" if x is None else str(x).replace("DC offset outside the bias range", "bias end"))

    lo, hi = w["low"], w["high"]
    res = [e["resolution_v"] for e in (lo, hi) if e.get("resolution_v")]
    r = f", ±{max(res) * 1e3 / 2:.2g}" if res else ""
    return (f"{mv(lo['last_telegraphing_v'])}–{mv(hi['last_telegraphing_v'])} "
            f"(fails {mv(lo['first_failing_v'])} / {mv(hi['first_failing_v'])}{r})")


def table(doc: dict, trims: dict | None = None) -> str:
    """Markdown rows (one per pair, ORDER) of a supply_window.json: the README table. ``trims``:
    {(corner, temp): trims.json VGP row} adds the trim's VNW, VGP and check columns."""
    head = "| pair | VDD0 (mV) |" + (" VNW (V) | VGP (mV) | trim check |" if trims else "")
    out = [head + " records | window at bias 0 (mV) | bias-centred window (mV) | centre repeats telegraphing | CPU-s |",
           "|---|---|" + ("---|---|---|" if trims else "") + "---|---|---|---|---|"]
    for c, t in ORDER:
        p = doc["pairs"].get(f"{c} {t:g}")
        if p is None:
            continue
        if not p.get("trimmed"):
            out.append(f"| {c} {t:g} °C | no trim |" + (" | | |" if trims else "") + " | | | | |")
            continue
        tr = ""
        if trims:
            r = trims.get((c, t)) or {}
            if r.get("vdd_v") is not None and abs(float(r["vdd_v"]) - p["vdd0_v"]) > 1e-6:
                # trims.json moved on after this window was measured: say so rather than mix the two
                tr = (f" {p['vnw_v']:g} | {p['vgp_v'] * 1e3:+.1f} | superseded: trims.json now "
                      f"{float(r['vdd_v']) * 1e3:.1f} mV, VNW {(r.get('aux_trims') or {}).get('VNW')}, "
                      f"{r.get('flips_per_us', float('nan')):.3g} flips/µs; window at the row before |")
            else:
                tr = (f" {p['vnw_v']:g} | {p['vgp_v'] * 1e3:+.1f} | {r.get('regime')}, P(1) "
                      f"{r.get('p1', float('nan')):.3f}, {r.get('flips_per_us', float('nan')):.3g} flips/µs "
                      f"({(r.get('check_duration_s') or 0) * 1e6:.0f} µs) |")
        reps = p.get("centre_repeats") or []
        rep = f"{sum(r['telegraphs'] for r in reps)}/{len(reps)}" if reps else "—"
        recs = p["records"] + p["centred_records"]
        bad = "".join(f", {n} {what}" for what, n in (
            ("stalled", sum(r["regime"] == "stalled" for r in recs)),
            ("not converged", sum(r["regime"] == "no_convergence" for r in recs))) if n)
        out.append(f"| {c} {t:g} °C | {p['vdd0_v'] * 1e3:.1f} |{tr} {p.get('duration_s', doc['duration_s']) * 1e6:g} µs"
                   f"{bad} | {_edge_text(p['window'])} | "
                   f"{_edge_text(p['centred_window'])} | {rep} | "
                   f"{p['cpu_s']:.0f} |")
    return "\n".join(out)


def _cpu_s(t0, c0) -> float:
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.process_time() - t0) + (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)


def main(argv=None, *, cell_dir: Path, duration: str = "10us", bisect: int = 0, repeats: int = 0,
         timeout_s: float = 120.0, confirm: bool = False, short_duration: str | None = None,
         short_gain: float = 5.0, order: list[tuple[str, float]] | None = None, script: str | None = None) -> int:
    """The command line of ``<cell_dir>/supply_window.py``; the keyword arguments are that cell's defaults."""
    cell_dir = Path(cell_dir)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default=None, help="comma list corner:temp (default: every passing row of trims.json)")
    ap.add_argument("--duration", default=duration, help=f"simulated time per record (default {duration})")
    ap.add_argument("--short-duration", default=short_duration,
                    help="record length for pairs whose trimmed DC stage gain is >= --short-gain (deep valleys: "
                         f"the regime call needs fewer samples; default {short_duration or 'none: --duration everywhere'})")
    ap.add_argument("--short-gain", type=float, default=short_gain,
                    help=f"stage gain from which --short-duration applies (default {short_gain:g})")
    ap.add_argument("--offset-step", default="1.5mV",
                    help="DC readout-offset change per supply step, V of bias (default 1.5mV)")
    ap.add_argument("--centred-step", type=float, default=0.05,
                    help="supply step of the bias-centred walk, fraction of VDD0 (default 0.05)")
    ap.add_argument("--bisect", type=int, default=bisect,
                    help=f"halvings of each bracketed edge of the centred walk (default {bisect})")
    ap.add_argument("--confirm", action=argparse.BooleanOptionalAction, default=confirm,
                    help="a failing record is repeated once (next seed); the supply fails only if both fail "
                         f"(default {'on' if confirm else 'off'})")
    ap.add_argument("--power-study", type=int, default=0, metavar="N",
                    help="instead of the walks: N records at VDD0 (centred bias) at 10 us and at --duration "
                         "per pair, for the regime call's power (default 0: off)")
    ap.add_argument("--repeats", type=int, default=repeats,
                    help=f"extra centred records at VDD0 (other seeds) for the check's power (default {repeats})")
    ap.add_argument("--max-steps", type=int, default=10, help="records per side at most (default 10)")
    ap.add_argument("--timeout", type=float, default=timeout_s,
                    help=f"wall s per record; a record that runs longer counts as stalled, not telegraphing (default {timeout_s:g})")
    ap.add_argument("--out", default=str(cell_dir / "supply_window.json"))
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and stop")
    a = ap.parse_args(argv)
    cell = load_cell(str(cell_dir))
    if a.table:
        rows = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get("VGP", [])}
        print(table(json.loads(Path(a.out).read_text()), rows))
        return 0
    rows = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get("VGP", [])}
    aux = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get("VNW", [])}
    if a.pairs:
        want = []
        for tok in a.pairs.split(","):
            c, _, t = tok.partition(":")
            try:
                key = (c, float(t))
            except ValueError:
                raise InputError(f"--pairs {tok}: write corner:temp, e.g. tt:27") from None
            if key not in rows:
                raise InputError(f"--pairs {tok}: no row for it in {T.trims_path(cell)}; run `noisecell trim "
                                 f"{cell.name} --corner {c} --temp {t} --write` first")
            want.append(key)
    else:
        want = [p for p in (order or ORDER) if p in rows]
    dur = parse_si(a.duration, unit="s", what="--duration")
    short = parse_si(a.short_duration, unit="s", what="--short-duration") if a.short_duration else None
    offset_step = parse_si(a.offset_step, unit="V", what="--offset-step")
    out_path = Path(a.out)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    cmd = f"python {script or cell_dir / 'supply_window.py'} " + " ".join(argv if argv is not None else sys.argv[1:])
    prev = doc.get("generated_by")
    doc.update({"cell": cell.name, "generated_by": cmd if not prev or prev == cmd else f"{prev}; {cmd}",
                "criterion": f"bistable (noisecell.regime) and >= {MIN_FLIPS_PER_US:g} flip/us in a {dur * 1e6:g} us "
                             "record, VGP and VNW at the pair's trimmed values; window: at bias 0; centred_window: "
                             "bias at the DC readout offset at each supply",
                "offset_step_v": offset_step, "centred_step_frac": a.centred_step, "duration_s": dur,
                "bisect": a.bisect, "confirm": a.confirm,
                "short_duration_s": short, "short_gain": a.short_gain,
                "flip_criterion_power": {f"{d * 1e6:g}us": {"rate_for_90pct_per_us": rate_for_power(0.9, d),
                                                             "rate_for_99pct_per_us": rate_for_power(0.99, d)}
                                         for d in sorted({dur, short or dur})}
                | {"note": "true flip rate at which a record of that length passes the >= 1 flip/us count "
                           "with that probability (Poisson count)"}})
    pairs = doc.setdefault("pairs", {})
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    for corner, temp in want:
        r = rows[(corner, temp)]
        key = f"{corner} {temp:g}"
        if not r.get("ok"):
            pairs[key] = {"corner": corner, "temp_c": temp, "trimmed": False, "message": r.get("message")}
            continue
        vgp, vdd0 = float(r["value_v"]), float(r["vdd_v"])
        # the VGP row's own aux value first, as noisecell.trim.trimmed_point reads it (a hand-merged
        # trims.json can leave the VNW table behind: pbit_x5 ss 27 C read 0.1 there, 0.0 in its row)
        a_row = (r.get("aux_trims") or {}).get("VNW")
        vnw = float(a_row if isinstance(a_row, (int, float)) else (aux.get((corner, temp)) or {})["value_v"])
        t0, c0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.monotonic()
        seed0 = 1000 + 100 * ORDER.index((corner, temp))
        gain = r.get("dc_gain")
        d_pair = short if short is not None and gain is not None and gain >= a.short_gain else dur
        if a.power_study:
            doc.setdefault("power_study", {})[key] = power_study(
                cell, corner, temp, vgp, vnw, vdd0, n=a.power_study, durations=sorted({10e-6, d_pair}),
                seed0=seed0 + 2000, timeout_s=a.timeout, say=say) | {"cpu_s": _cpu_s(t0, c0)}
            atomic_write(out_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
            continue
        say(f"{key} C: VGP {vgp:.4f} V, VNW {vnw:g} V, VDD0 {vdd0 * 1e3:.2f} mV, {d_pair * 1e6:g} us records")
        dc = dc_scan(cell, corner, temp, vgp, vnw, vdd0)
        # d(offset)/d(VDD) at VDD0 from the DC readout at VDD0 x (1 -+ 1 %)
        o = readout_offsets(cell, corner, temp, vgp, vnw, [vdd0 * 0.99, vdd0 * 1.01])
        slope = (o[1] - o[0]) / (0.02 * vdd0) if None not in o else None
        step = offset_step / abs(slope) if slope else 0.01 * vdd0
        say(f"  DC offset slope {slope} V/V -> supply step {step * 1e3:.3f} mV")
        centre, recs, edges = walk(cell, corner, temp, vgp, vnw, vdd0, duration_s=d_pair, step_v=step,
                                   seed0=seed0, max_steps=a.max_steps, say=say, timeout_s=a.timeout,
                                   bisect=a.bisect, confirm=a.confirm)

        # the bias-centred walk: at each supply the bias is set to the DC readout offset there (what a
        # per-cell bias trim would do), steps of --centred-step x VDD0: where the chain itself is bistable
        def centred_bias(v):
            return readout_offsets(cell, corner, temp, vgp, vnw, [v])[0]

        _c2, recs2, edges2 = walk(cell, corner, temp, vgp, vnw, vdd0, duration_s=d_pair, step_v=a.centred_step * vdd0,
                                  seed0=seed0 + 50, max_steps=a.max_steps, say=say, bias_at=centred_bias,
                                  timeout_s=a.timeout, bisect=a.bisect, confirm=a.confirm)
        at = readout_offsets(cell, corner, temp, vgp, vnw, [r["vdd_v"] for r in recs])
        gains = T.dc_points(cell, corner, temp, [(vgp, r["vdd_v"]) for r in recs], fixed_trim={"VNW": vnw})
        for r, off, g in zip(recs, at, gains):
            r["dc_readout_offset_vb_v"] = off
            r["dc_stage_gain"] = g.gain if math.isfinite(g.gain) else None
        row = {"corner": corner, "temp_c": temp, "trimmed": True, "vgp_v": vgp, "vnw_v": vnw, "vdd0_v": vdd0,
               "trim_dc_gain": gain, "duration_s": d_pair,
               "dc_offset_slope": slope, "step_v": step, "window": edges, "centred_window": edges2,
               "centred_records": sorted(recs2, key=lambda x: x["vdd_v"]),
               "records": sorted(recs, key=lambda x: x["vdd_v"]), "dc": dc}
        if a.repeats:
            # the same centred point with other seeds (seed0 + 90 ...): how often a record at a supply
            # the walk called telegraphing is called so again (the regime call's power there)
            b0 = centred_bias(vdd0)
            reps = []
            for i in range(a.repeats):
                try:
                    c = T.check(cell, corner, temp, vgp, vdd0, duration_s=d_pair, seed=seed0 + 90 + i,
                                fixed_trim={"VNW": vnw}, timeout_s=a.timeout, bias_v=b0)
                except SimulationError as e:  # a stall (SimulationTimeout) or no convergence: not telegraphing
                    reps.append({"seed": seed0 + 90 + i, "bias_v": b0, "regime": type(e).__name__, "p1": None,
                                 "flips_per_us": None, "telegraphs": False, "detail": str(e)})
                    say(f"    repeat seed {seed0 + 90 + i}: {type(e).__name__}")
                    continue
                reps.append({"seed": seed0 + 90 + i, "bias_v": b0, "regime": c.regime, "p1": c.p1,
                             "flips_per_us": c.flips_per_us, "telegraphs": telegraphs(c), "detail": c.regime_detail})
                say(f"    repeat seed {seed0 + 90 + i}: {c.regime}, P(1) {c.p1:.3f}, {c.flips_per_us:.3g} flips/µs")
            row["centre_repeats"] = reps
        row.update({"cpu_s": _cpu_s(t0, c0), "wall_s": time.monotonic() - w0})
        pairs[key] = row
        atomic_write(out_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        say(f"  window: {edges}\n  centred: {edges2}  ({row['cpu_s']:.1f} CPU-s)")
    return 0
