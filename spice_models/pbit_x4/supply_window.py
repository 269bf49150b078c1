"""Supply window of pbit_x4 per corner/temperature pair (issue 17 item 3; spice_models/README.md).

For each passing row of ``spice_models/pbit_x4/trims.json`` the trims (VGP, VNW) are held at their
trimmed values and the bias at 0 (the trimmed bias); only the supply VDD moves. The window is the
range of VDD around the trimmed VDD0 where the cell still *telegraphs*: a transient noise record
(noisecell.trim.check, 10 µs unless --duration) classified bistable with at least 1 flip/µs.

Two measurements per pair:

* **Transient walk** (the criterion itself): from VDD0 the supply steps down, then up, one record
  per step, until a record does not telegraph or the supply range ends. The step is the supply change
  that moves the DC readout offset (below) by ``--offset-step`` (1.5 mV of bias, half a sigmoid
  scale at tt 27 C): at a fixed VGP the offset moves ~2 mV per mV of supply, so the window is a few
  mV wide and a fixed fraction of VDD would step over it. The window is reported as the
  lowest/highest telegraphing supply contiguous with VDD0 and the first failing supply beyond each
  (each edge bracketed to one step).
* **Bias-centred walk**: the same from VDD0 in steps of ``--centred-step`` (5 %) of VDD0, but with the
  bias at each supply set to the DC readout offset there (what a per-cell bias trim does): the
  supply range over which the chain itself still makes two levels fast enough, once re-centred.
* **DC** (noise-free, milliseconds per point) on a grid of VDD0 x 0.5 ... 1.8 inside the supply
  range: the last inverter's transfer (z forced, w sensed, as `noisecell trim` balances it) at the
  fixed VGP gives its stage gain A and switching point V_m/VDD; and the DC readout offset, the bias
  VB at which the noise-free readout V(w) - V(in) crosses zero (a DC sweep of stage 1's well source
  Vnw1 over the bias range). The telegraph window needs A high enough for two levels and |offset|
  small against the sigmoid scale (a few mV): the DC figures at the transient edges say which of
  the two ends each side.

Usage (from the repository root)::

    .venv/bin/python spice_models/pbit_x4/supply_window.py [--pairs tt:27,sf:85] [--duration 10us]
        [--out spice_models/pbit_x4/supply_window.json]

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
from noisecell.errors import InputError, SimulationTimeout
from noisecell.simulator.batch import run_batch
from noisecell.technology import model_lines
from noisecell.units import parse_si

HERE = Path(__file__).resolve().parent
ORDER = [(c, t) for c in ("tt", "ss", "ff", "sf", "fs") for t in (-40.0, 27.0, 85.0)]
DC_FACTORS = [round(f, 3) for f in np.arange(0.5, 1.8001, 0.05)]
MIN_FLIPS_PER_US = 1.0


def readout_offsets(cell, corner: str, temp_c: float, vgp: float, vnw: float, vdds: list[float],
                    step_v: float = 2.5e-4) -> list[float | None]:
    """Bias VB (V) at which the noise-free DC readout V(w) - V(in) crosses 0, at each supply (None when
    it does not cross inside the bias range): one ngspice process, a DC sweep of Vnw1 (= VDD + VNW + VB)."""
    lo, hi = cell.bias.range_v
    vals = T._cell_values(cell, corner=corner, temp_c=temp_c, bias_v=0.0, vdd_v=vdds[0],
                          trim={"VGP": vgp, "VNW": vnw}, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    head = [f"* pbit_x4 supply window DC readout: {corner} {temp_c:g} C",
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
    with tempfile.TemporaryDirectory(prefix="x4window-") as td:
        log = run_batch("\n".join(head + ctl) + "\n", td, technology=cell.technology, timeout_s=600,
                        name=f"pbit_x4 DC readout ({corner}, {temp_c:g} C)")
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
    s = cell.supplies[cell.main_supply]
    vdds = sorted({round(float(min(max(vdd0 * f, s.range_v[0]), s.range_v[1])), 6) for f in DC_FACTORS})
    pts = T.dc_points(cell, corner, temp_c, [(vgp, v) for v in vdds], fixed_trim={"VNW": vnw})
    offs = readout_offsets(cell, corner, temp_c, vgp, vnw, vdds)
    return [{"vdd_v": v, "stage_gain": None if not math.isfinite(p.gain) else p.gain,
             "vm_frac": None if not math.isfinite(p.vm_frac) else p.vm_frac, "readout_offset_vb_v": o}
            for v, p, o in zip(vdds, pts, offs)]


def telegraphs(c) -> bool:
    return c.regime == "bistable" and c.flips_per_us >= MIN_FLIPS_PER_US


def walk(cell, corner, temp_c, vgp, vnw, vdd0, *, duration_s, step_v, seed0, max_steps, say, bias_at=None,
         timeout_s=120.0):
    """Records from vdd0 down, then up, by step_v until one does not telegraph (see the module doc).
    bias_at: None (bias 0) or a function VDD -> bias (the DC-centred walk); a bias outside the cell's
    bias range ends that side."""
    s = cell.supplies[cell.main_supply]
    recs = []

    def run(v, k):
        b = 0.0 if bias_at is None else bias_at(v)
        try:
            c = T.check(cell, corner, temp_c, vgp, v, duration_s=duration_s, seed=seed0 + k, fixed_trim={"VNW": vnw},
                        timeout_s=timeout_s, bias_v=b)
        except SimulationTimeout:  # ngspice's step control stalls in some cold records (NOTES §12)
            r = {"vdd_v": v, "bias_v": b, "seed": seed0 + k, "regime": "stalled", "p1": None, "p1_se": None,
                 "flips_per_us": None, "power_w": None, "telegraphs": False,
                 "detail": f"no result after {timeout_s:g} s wall: the simulator was killed"}
            recs.append(r)
            say(f"    VDD {v * 1e3:.2f} mV, VB {b * 1e3:+.2f} mV: stalled (> {timeout_s:g} s wall) -> no")
            return r
        r = {"vdd_v": v, "bias_v": b, "seed": seed0 + k, "regime": c.regime, "p1": c.p1,
             "p1_se": c.p1_se if math.isfinite(c.p1_se) else None, "flips_per_us": c.flips_per_us,
             "power_w": c.power_w, "telegraphs": telegraphs(c), "detail": c.regime_detail}
        recs.append(r)
        say(f"    VDD {v * 1e3:.2f} mV, VB {b * 1e3:+.2f} mV: {c.regime}, P(1) {c.p1:.3f}, {c.flips_per_us:.3g} flips/µs"
            f" -> {'telegraphs' if r['telegraphs'] else 'no'}")
        return r

    k = 0
    centre = run(vdd0, k)
    edges = {}
    for sign, name in ((-1, "low"), (+1, "high")):
        inside, outside = (vdd0 if centre["telegraphs"] else None), None
        for n in range(1, max_steps + 1):
            v = vdd0 + sign * step_v * n
            if not s.range_v[0] <= v <= s.range_v[1]:
                outside = "supply range end"
                break
            if bias_at is not None:
                b = bias_at(v)
                if b is None or not cell.bias.range_v[0] <= b <= cell.bias.range_v[1]:
                    outside = "DC offset outside the bias range"
                    break
            k += 1
            r = run(v, k)
            if r["telegraphs"]:
                inside = v
            else:
                outside = v
                break
        edges[name] = {"last_telegraphing_v": inside, "first_failing_v": outside}
    return centre, recs, edges


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default=None, help="comma list corner:temp (default: every passing row of trims.json)")
    ap.add_argument("--duration", default="10us", help="simulated time per record (default 10us)")
    ap.add_argument("--offset-step", default="1.5mV",
                    help="DC readout-offset change per supply step, V of bias (default 1.5mV)")
    ap.add_argument("--centred-step", type=float, default=0.05,
                    help="supply step of the bias-centred walk, fraction of VDD0 (default 0.05)")
    ap.add_argument("--max-steps", type=int, default=10, help="records per side at most (default 10)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="wall s per record; a record that runs longer counts as stalled, not telegraphing (default 120)")
    ap.add_argument("--out", default=str(HERE / "supply_window.json"))
    a = ap.parse_args(argv)
    cell = load_cell(str(HERE))
    rows = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get("VGP", [])}
    aux = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get("VNW", [])}
    if a.pairs:
        want = []
        for tok in a.pairs.split(","):
            c, _, t = tok.partition(":")
            if (c, float(t)) not in rows:
                raise InputError(f"--pairs {tok}: no row for it in {T.trims_path(cell)}; run `noisecell trim "
                                 f"pbit_x4 --corner {c} --temp {t} --write` first")
            want.append((c, float(t)))
    else:
        want = [p for p in ORDER if p in rows]
    duration = parse_si(a.duration, unit="s", what="--duration")
    offset_step = parse_si(a.offset_step, unit="V", what="--offset-step")
    out_path = Path(a.out)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    doc.update({"cell": cell.name, "generated_by": "python spice_models/pbit_x4/supply_window.py " + " ".join(argv or sys.argv[1:]),
                "criterion": f"bistable (noisecell.regime) and >= {MIN_FLIPS_PER_US:g} flip/us in a {duration * 1e6:g} us "
                             "record at bias 0, VGP and VNW at the pair's trimmed values",
                "offset_step_v": offset_step, "centred_step_frac": a.centred_step, "duration_s": duration})
    pairs = doc.setdefault("pairs", {})
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    for corner, temp in want:
        r = rows[(corner, temp)]
        key = f"{corner} {temp:g}"
        if not r.get("ok"):
            pairs[key] = {"corner": corner, "temp_c": temp, "trimmed": False, "message": r.get("message")}
            continue
        vgp, vdd0 = float(r["value_v"]), float(r["vdd_v"])
        vnw = float((aux.get((corner, temp)) or {}).get("value_v") or (r.get("aux_trims") or {})["VNW"])
        t0, c0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.monotonic()
        say(f"{key} C: VGP {vgp:.4f} V, VNW {vnw:g} V, VDD0 {vdd0 * 1e3:.2f} mV")
        dc = dc_scan(cell, corner, temp, vgp, vnw, vdd0)
        # d(offset)/d(VDD) at VDD0 from the DC readout at VDD0 x (1 -+ 1 %)
        o = readout_offsets(cell, corner, temp, vgp, vnw, [vdd0 * 0.99, vdd0 * 1.01])
        slope = (o[1] - o[0]) / (0.02 * vdd0) if None not in o else None
        step = offset_step / abs(slope) if slope else 0.01 * vdd0
        say(f"  DC offset slope {slope} V/V -> supply step {step * 1e3:.3f} mV")
        seed0 = 1000 + 100 * ORDER.index((corner, temp))
        centre, recs, edges = walk(cell, corner, temp, vgp, vnw, vdd0, duration_s=duration, step_v=step,
                                   seed0=seed0, max_steps=a.max_steps, say=say, timeout_s=a.timeout)
        # the bias-centred walk: at each supply the bias is set to the DC readout offset there (what a
        # per-cell bias trim would do), steps of --centred-step x VDD0: where the chain itself is bistable
        def centred_bias(v):
            return readout_offsets(cell, corner, temp, vgp, vnw, [v])[0]

        _c2, recs2, edges2 = walk(cell, corner, temp, vgp, vnw, vdd0, duration_s=duration, step_v=a.centred_step * vdd0,
                                  seed0=seed0 + 50, max_steps=a.max_steps, say=say, bias_at=centred_bias,
                                  timeout_s=a.timeout)
        at = readout_offsets(cell, corner, temp, vgp, vnw, [r["vdd_v"] for r in recs])
        gains = T.dc_points(cell, corner, temp, [(vgp, r["vdd_v"]) for r in recs], fixed_trim={"VNW": vnw})
        for r, off, g in zip(recs, at, gains):
            r["dc_readout_offset_vb_v"] = off
            r["dc_stage_gain"] = g.gain if math.isfinite(g.gain) else None
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (time.process_time() - t0) + (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
        pairs[key] = {"corner": corner, "temp_c": temp, "trimmed": True, "vgp_v": vgp, "vnw_v": vnw, "vdd0_v": vdd0,
                      "dc_offset_slope": slope, "step_v": step, "window": edges,
                      "centred_window": edges2, "centred_records": sorted(recs2, key=lambda x: x["vdd_v"]), "records": sorted(recs, key=lambda x: x["vdd_v"]), "dc": dc,
                      "cpu_s": cpu, "wall_s": time.monotonic() - w0}
        atomic_write(out_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        say(f"  window: {edges}  ({cpu:.1f} CPU-s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
