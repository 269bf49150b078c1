"""``noisecell characterize [CELL] [--spec SPEC.toml] [--quick] [--measurements DIR] [--workers N] --out DIR``.

Runs sweep → analysis → fits → model → report. Progress on stderr; the last stdout line is a JSON
object with the paths written and the job counts. Exit 0 when every job succeeded, 1 when some
simulations failed (the report is still written, the failures listed in it), 2 for bad input.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from ..cells import DEFAULT_CELL
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cell", nargs="?", default=None,
                        help=f"cell name from spice_models/ or a path to its cell.toml (default: the spec's, else {DEFAULT_CELL})")
    parser.add_argument("--out", required=True, help="output folder (created; re-running resumes the sweeps in OUT/sweep/)")
    parser.add_argument("--spec", default=None, help="characterisation spec TOML (default: the built-in spec)")
    parser.add_argument("--quick", action="store_true", help="use the spec's [quick] variant (about 2 minutes)")
    parser.add_argument("--measurements", default=None, metavar="DIR",
                        help="measurement folder (measurements.toml + captures) to fit and compare with simulation")
    parser.add_argument("--workers", type=int, default=None, help="simulation worker processes (default: one per core)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="re-run simulations that failed in an earlier run (finished ones are still kept)")
    parser.add_argument("--skip-check", action="store_true",
                        help="simulate even if `noisecell cell check` finds the cell cannot be bistable")


def run(args) -> int:
    from ..errors import InputError
    from ..report.characterize import characterize

    from ..outpaths import check_output_dir

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be ≥ 1")
    check_output_dir(args.out)
    command = "noisecell characterize " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else None
    res = characterize(args.cell, args.out, spec_path=args.spec, quick=args.quick, measurements=args.measurements,
                       workers=args.workers, command=command, retry_failed=args.retry_failed,
                       check=not args.skip_check)
    print(res.summary(), file=sys.stderr)
    if res.failed_jobs:
        print(f"noisecell: {res.failed_jobs} of {res.total_jobs} simulations failed; the report lists them "
              f"(simulator logs in OUT/sweep/host-logs; --retry-failed runs them again)", file=sys.stderr)
    print_json({"report": str(res.report_path), "model": str(res.model_path) if res.model_path else None,
                "measured_model": str(res.measured_model_path) if res.measured_model_path else None,
                "total_jobs": res.total_jobs, "failed_jobs": res.failed_jobs, "wall_s": round(res.wall_s, 1)})
    return 1 if res.failed_jobs else 0
