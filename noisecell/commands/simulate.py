"""``noisecell simulate [CELL] --bias V ... --out run.npz``: one transient-noise run of a cell.

Writes the waveform (.npz: time_s, v_out, v_outb, i_vdd, ... and meta_json) and prints, as the last
stdout line, a JSON summary: p1, flips, duration_s, mean_supply_power_w, seed, job_id, regime,
bias_v, corner, temp_c, vdd_v, noise_step_s, noise_bandwidth_hz, out, warnings.

p1 and flips come from noisecell.digitize (Schmitt trigger with the cell's readout threshold and a
hysteresis derived from the measured levels and noise, sampled every noise step); the regime from
noisecell.regime. "flips" is given only for a bistable (telegraphing) output; otherwise it is null,
"threshold_crossings" counts the comparator's noise crossings and "not_a_bit_source" says what was
seen (stuck, chattering, single-peaked) and why no per-bit figure applies.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..cells import DEFAULT_CELL
from ..errors import InputError, RegimeError, SimulationError
from ..noise import DEFAULT_NOISE_STEP_S
from ..units import parse_si, require_positive
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cell", nargs="?", default=DEFAULT_CELL,
                        help=f"cell name (folder in spice_models/) or folder with cell.toml (default: {DEFAULT_CELL})")
    parser.add_argument("--bias", required=True, help="bias voltage, V (SI suffixes: 1m, -0.5m, -5m)")
    parser.add_argument("--corner", default=None, help="process corner (default: the cell's nominal)")
    parser.add_argument("--temp", default=None, help="temperature, °C (default: the cell's nominal)")
    parser.add_argument("--vdd", default=None, help="main supply voltage, V (default: the stored trim's, else the cell's nominal)")
    parser.add_argument("--trim", action="append", default=[], metavar="NAME=V",
                        help="trim value, V (default: the cell's stored/nominal trim); repeatable")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="other cell .param within its range; repeatable")
    parser.add_argument("--duration", default="20us", help="simulated time, s (default 20us)")
    parser.add_argument("--noise-step", default=f"{DEFAULT_NOISE_STEP_S:g}",
                        help=f"noise step NT, s (default {DEFAULT_NOISE_STEP_S * 1e9:g}ns, docs/simulation.md "
                             "'Noise step'; bandwidth 1/(2NT))")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    parser.add_argument("--mismatch-seed", type=int, default=None,
                        help="draw device mismatch with this seed (default: no mismatch)")
    parser.add_argument("--flicker-corner", default="0", help="1/f noise corner frequency, Hz (default 0 = off)")
    parser.add_argument("--timeout", default=None, help="kill the run after this long, s (default: no limit)")
    parser.add_argument("--cpu-per-us", default=None, metavar="X",
                        help="kill the run once it used 10 CPU-s + X CPU-s per simulated µs (a stalled ngspice; "
                             "default 6, 0 = no CPU limit)")
    parser.add_argument("--retries", type=int, default=0, choices=range(0, 4), metavar="N",
                        help="rungs of the non-convergence retry ladder to climb, 0-3 (default 0); a retry "
                             "and its solver options are recorded in the waveform's meta['retry']")
    parser.add_argument("--out", required=True, help="output .npz path")


def _kv(items: list[str], what: str) -> dict[str, float]:
    out = {}
    for it in items:
        if "=" not in it:
            raise InputError(f"--{what} {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        out[k.strip()] = parse_si(v, what=f"--{what} {k.strip()}")
    return out


def run(args) -> int:
    from ..cells import load_cell
    from ..simulate import job_from_cell
    from ..simulator import run_job

    from ..outpaths import check_output_file

    out = check_output_file(args.out, suffix=".npz")  # before the run: a finished waveform is never lost
    cell = load_cell(args.cell)
    temp_c = None if args.temp is None else parse_si(args.temp, unit="C", what="--temp")
    vdd_v = None if args.vdd is None else parse_si(args.vdd, unit="V", what="--vdd")
    trim = _kv(args.trim, "trim") or None
    if vdd_v is None:
        # a cell trimmed by `noisecell trim` ([balance] + trims.json) runs at its stored supply, as
        # sweeps and `cell check` do: the stored trim at the nominal supply is a point the search never
        # saw (latch4_nat: VGP -115.7 mV at its nominal 66 mV is monostable)
        from ..trim import trimmed_point
        try:
            vdd_v = trimmed_point(cell, args.corner or cell.nominal_corner,
                                  cell.nominal_temp_c if temp_c is None else temp_c)[1]
        except InputError:  # no [balance] table: the supply is not a trim
            vdd_v = None
    job = job_from_cell(
        cell,
        bias_v=parse_si(args.bias, unit="V", what="--bias"),
        corner=args.corner,
        temp_c=temp_c,
        vdd_v=vdd_v,
        trim=trim,
        params=_kv(args.param, "param") or None,
        duration_s=parse_si(args.duration, unit="s", what="--duration"),
        noise_step_s=parse_si(args.noise_step, unit="s", what="--noise-step"),
        seed=args.seed, mismatch_seed=args.mismatch_seed,
        flicker_corner_hz=parse_si(args.flicker_corner, unit="Hz", what="--flicker-corner"),
    )
    timeout = None if args.timeout is None else parse_si(args.timeout, unit="s", what="--timeout")
    require_positive(timeout, "--timeout")
    print(f"noisecell simulate: {job.describe()}, {job.duration_s:g} s at NT = {job.noise_step_s:g} s "
          f"(noise bandwidth {1 / (2 * job.noise_step_s):.3g} Hz)", file=sys.stderr)
    cpu_per_us = None if args.cpu_per_us is None else parse_si(args.cpu_per_us, what="--cpu-per-us")
    if cpu_per_us is not None and not cpu_per_us >= 0:
        raise InputError(f"--cpu-per-us {args.cpu_per_us}: must be >= 0 CPU-s per simulated µs (0: no CPU limit)")
    wf = run_job(job, timeout_s=timeout, retries=args.retries, cpu_per_us=cpu_per_us)
    wf.save_npz(out)
    for w in wf.meta.get("warnings", []):
        print(f"noisecell simulate: warning: {w}", file=sys.stderr)
    summary = summarize(wf)
    chk = None
    if summary.get("not_a_bit_source") and "v_outb" in cell.outputs:
        # the remedy follows from the DC check: a cell that cannot be bistable needs a design change
        from ..cellcheck import check_cell, suggested_fix
        try:
            chk = check_cell(cell, corner=job.corner, temp_c=job.temp_c, vdd_v=job.vdd_v,
                             trim={k: job.params[k] for k in cell.trim}, params=_kv(args.param, "param") or None)
            summary = summarize(wf, fix=suggested_fix(chk, summary.get("regime")))
            summary["cell_check"] = {"status": chk.status, "verdict": chk.verdict}
        except (InputError, SimulationError) as exc:  # the run is saved; the advice is best effort
            summary["warnings"].append(f"cell check not run: {exc}")
    from ..cellcheck import power_coverage
    cov = power_coverage(cell, chk if summary.get("cell_check") else None)
    summary["power_sources"] = {"counted": cov["counted"], "not_counted": cov["not_counted"],
                                "not_counted_dc_w": cov["not_counted_dc_w"]}
    if cov["not_counted"]:
        print(f"noisecell simulate: mean_supply_power_w: {cov['note']}", file=sys.stderr)
    summary["out"] = str(out)
    if summary.get("not_a_bit_source"):
        print(f"noisecell simulate: {summary['not_a_bit_source']}", file=sys.stderr)
    print_json(summary, sort_keys=True)
    return 0


def summarize(wf, fix: str | None = None) -> dict:
    """JSON-ready summary of a simulated waveform: p1, flips, power, regime, conditions.

    fix: the remedy to suggest when the output is not a bit source (from `cell check`)."""
    from ..comparator import n_transitions
    from ..digitize import digitize_waveform

    m = wf.meta
    res = {"duration_s": m.get("duration_s", wf.duration_s), "mean_supply_power_w": wf.mean_supply_power_w(),
           "seed": m.get("seed"), "job_id": m.get("job_id"), "cell": m.get("cell"), "bias_v": m.get("bias_v"),
           "corner": m.get("corner"), "temp_c": m.get("temp_c"), "vdd_v": m.get("vdd_v"),
           "mismatch_seed": m.get("mismatch_seed"), "noise_step_s": m.get("noise_step_s"),
           "noise_bandwidth_hz": m.get("noise_bandwidth_hz"), "warnings": list(m.get("warnings", []))}
    crossings = None
    try:
        bs, dig = digitize_waveform(wf)
        bits = bs.bits
        res["p1"] = float(bits.mean())
        crossings = n_transitions(bits)
        res["flips"] = crossings
        res["hysteresis_v"] = dig.hysteresis_v
        res["threshold_v"] = dig.threshold_v
        res["readout_averaging_s"] = dig.smoothing_s
    except RegimeError as exc:
        res["p1"], res["flips"] = None, None
        res["warnings"].append(f"not digitised: {exc}")
    res["not_a_bit_source"] = None
    try:
        from ..regime import classify_waveform, not_a_bit_source
        r = classify_waveform(wf)
        res["regime"] = r.regime
        if not r.is_bistable:
            res["flips"] = None  # no switching between two states was seen: crossings are not flips
            res["threshold_crossings"] = crossings
            res["not_a_bit_source"] = not_a_bit_source(r, crossings=crossings, hysteresis_v=res.get("hysteresis_v"),
                                                       fix=fix)
    except Exception as exc:  # the summary must not fail on an odd trace; the waveform is saved
        res["regime"] = None
        res["warnings"].append(f"regime not classified: {exc.__class__.__name__}: {exc}")
    for k, v in list(res.items()):
        if isinstance(v, float) and not math.isfinite(v):
            res[k] = None
    return res
