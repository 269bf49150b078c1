"""``noisecell sweep SPEC.toml --out DIR``: run or resume a sweep (see docs/sweeps.md)."""
from __future__ import annotations

import argparse
import sys
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.toml", help="sweep spec (TOML; keys in docs/sweeps.md)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder; rerunning into the same folder resumes (finished jobs are skipped)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="parallel simulator processes (default: the spec's 'workers', else one per core)")
    parser.add_argument("--executor", choices=("local", "dask"), default=None,
                        help="local process pool (default) or a Dask LocalCluster started for this sweep")
    parser.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="use a running Dask cluster at tcp://HOST:PORT (implies --executor dask)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="rerun jobs recorded as failed (they are skipped by default)")
    parser.add_argument("--update-spec", action="store_true",
                        help="accept a changed spec for an existing folder (unchanged points stay done)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")


def run(args) -> int:
    from ..outpaths import check_output_dir
    from ..sweep import run_sweep

    check_output_dir(args.out)
    res = run_sweep(args.spec, args.out, workers=args.workers, executor=args.executor,
                    progress=not args.quiet, scheduler=args.scheduler, retry_failed=args.retry_failed,
                    update_spec=args.update_spec)
    if not args.quiet:
        print(res.summary(), file=sys.stderr)
    print_json({k: v for k, v in res.to_dict().items()})
    return 0 if res.failed == 0 and res.pending == 0 else 1
