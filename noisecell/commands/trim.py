"""`noisecell trim [CELL] --corner C --temp T`: search the trim until the cell telegraphs at zero bias.

Also: `--all --write` regenerates the stored table (corners × -40/27/85 °C) in the cell's folder,
and `--mismatch-seed N` trims one mismatched instance and reports the bias offset it needs.
"""
from __future__ import annotations

import shlex
import sys

from ..units import parse_si
from . import print_json

from ..cells import DEFAULT_CELL


def add_arguments(parser) -> None:
    parser.add_argument("cell", nargs="?", default=DEFAULT_CELL, help=f"cell name or folder (default {DEFAULT_CELL})")
    parser.add_argument("--corner", default=None, help="process corner (default: the cell's nominal)")
    parser.add_argument("--temp", default=None, help="temperature in °C (default: the cell's nominal)")
    parser.add_argument("--duration", default="10us", help="length of each transient check, s (default 10us)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed of the first check (default 1)")
    parser.add_argument("--min-flips", type=float, default=1.0, help="required flips per µs at zero bias (default 1)")
    parser.add_argument("--max-flips", type=float, default=None,
                        help="at most this many flips per µs at zero bias (default: no bound); a faster check "
                             "fails, so the trim looks for a slower point (a p-bit array needs similar τ across "
                             "PVT; dwells a few chain delays long are not Markov)")
    parser.add_argument("--max-iterations", type=int, default=5, help="transient checks before giving up (default 5)")
    parser.add_argument("--mismatch-seed", type=int, default=None,
                        help="trim one mismatched instance (PDK mismatch models, .options seed) and report its bias offset")
    parser.add_argument("--all", action="store_true", help="every corner of the cell × -40/27/85 °C")
    parser.add_argument("--write", action="store_true",
                        help="store the result(s) in the cell's trims.json (the one place trims are stored); with --all after each row")
    parser.add_argument("--timeout", default="300s",
                        help="wall time allowed per ngspice run (DC batch or transient check), s (default 300s)")
    parser.add_argument("--json", action="store_true", help="print the result(s) as JSON (last line)")


def run(args) -> int:
    from ..cells import load_cell
    from ..errors import InputError
    from .. import trim as T

    import math

    from ..units import require_temperature_c

    if args.max_iterations < 1:
        raise InputError(f"--max-iterations must be at least 1 (got {args.max_iterations})")
    if not (math.isfinite(args.min_flips) and args.min_flips >= 0):
        raise InputError(f"--min-flips must be a number of flips per µs ≥ 0 (got {args.min_flips})")
    max_flips = math.inf if args.max_flips is None else args.max_flips
    if not (max_flips > args.min_flips) or math.isnan(max_flips):
        raise InputError(f"--max-flips must be a number of flips per µs above --min-flips {args.min_flips:g} "
                         f"(got {args.max_flips})")
    for opt, seed in (("--seed", args.seed), ("--mismatch-seed", args.mismatch_seed)):
        if seed is not None and not 0 <= seed < 2**31:
            raise InputError(f"{opt} must be an integer in [0, 2^31) (got {seed})")
    if args.temp is not None:
        require_temperature_c(parse_si(args.temp, what="--temp"), "--temp")
    cell = load_cell(args.cell)
    duration = parse_si(args.duration, unit="s", what="--duration")
    if duration <= 0:
        raise InputError("--duration must be positive, e.g. 20us")
    timeout = parse_si(args.timeout, unit="s", what="--timeout")
    if not timeout > 0:
        raise InputError(f"--timeout {args.timeout}: must be a positive time, e.g. 300s")
    if args.write and args.mismatch_seed is not None:
        raise InputError("--write stores the cell's table, which is for the mismatch-free cell: drop --mismatch-seed")
    if args.write:  # before the (minutes of) trim runs: the table must be writable
        from ..outpaths import check_output_file
        check_output_file(T.trims_path(cell), what="--write")
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if "v_outb" in cell.outputs and args.mismatch_seed is None:
        # the DC `cell check` first: its verdict (can the cell be bistable at all, ratings, forward
        # junctions) is printed; trim goes on, since moving the supply/trim is what it is for
        from ..cellcheck import check_cell
        chk = check_cell(cell, corner=args.corner or None,
                         temp_c=None if args.temp is None else parse_si(args.temp, what="--temp"),
                         suggest=False)  # the check's own trim search is the DC stages trim runs next
        say(f"cell check: {chk.verdict}" + (f"; fix: {chk.fix}" if chk.fix else ""))
    kw = dict(duration_s=duration, seed=args.seed, min_flips_per_us=args.min_flips, max_flips_per_us=max_flips,
              timeout_s=timeout,
              max_iterations=args.max_iterations, progress=say)
    if args.all:
        if args.corner or args.temp or args.mismatch_seed is not None:
            raise InputError("--all runs every corner and temperature; drop --corner/--temp/--mismatch-seed")
        bal = T.balance_spec(cell)
        key = bal.trim or cell.supplies[cell.main_supply].param
        rows = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get(key, [])} if args.write else {}
        command = "noisecell trim " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["trim"] \
            else f"noisecell trim {cell.name} --all --write"
        results = []
        for corner in cell.corners:
            for temp in T.TABLE_TEMPS_C:
                res = T.trim_cell(cell, corner, temp, **kw)
                say(res.summary())
                results.append(res)
                rows[(corner, temp)] = T.row_from_result(res)
                if args.write:  # after every row: an interrupted regeneration keeps what it finished
                    T.write_table(cell, list(rows.values()), command=command)
        if args.json:
            print_json([r.to_dict() for r in results])
        return 0 if all(r.ok for r in results) else 1
    corner = args.corner or cell.nominal_corner
    temp = cell.nominal_temp_c if args.temp is None else parse_si(args.temp, what="--temp")
    res = T.trim_cell(cell, corner, temp, mismatch_seed=args.mismatch_seed, **kw)
    if args.mismatch_seed is not None and res.dc is not None:
        off = T.bias_offset(cell, corner, temp, mismatch_seed=args.mismatch_seed, trim_v=res.trim_v, vdd_v=res.vdd_v,
                            fixed_trim=res.aux_trim_v or None)  # the aux value (VNW) this instance's trim used
        from dataclasses import replace
        res = replace(res, bias_offset_v=off)
    if args.write:  # replace this (corner, temperature) row of the stored table, keep the others
        bal = T.balance_spec(cell)
        key = bal.trim or cell.supplies[cell.main_supply].param
        rows = {(r["corner"], float(r["temp_c"])): r for r in T.stored_trims(cell).get(key, [])}
        rows[(corner, float(temp))] = T.row_from_result(res)
        T.write_table(cell, list(rows.values()), command=f"noisecell trim {cell.name} --corner {corner} --temp {temp:g} --write")
    print(res.summary(), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(res.to_dict())
    return 0 if res.ok else 1
