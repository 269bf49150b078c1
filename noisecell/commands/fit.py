"""``noisecell fit SWEEP_DIR --out model.json``: fit a calibrated behavioural cell model to a sweep."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ..units import parse_si
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="output folder of `noisecell sweep`")
    parser.add_argument("--out", required=True, help="model file to write (JSON, schema cell-model-v2)")
    parser.add_argument("--exclude-bias", action="append", default=[], metavar="V",
                        help="leave this bias point out of the fit, V (repeatable; e.g. for held-out checks, "
                        "--exclude-bias -0.3m) (default: none)")
    parser.add_argument("--keep-non-markov", action="store_true",
                        help="also fit rates of streams the analysis flags as non-Markov (non-exponential "
                             "dwells, e.g. comparator chatter); by default they are left out")
    parser.add_argument("--all-regimes", action="store_true",
                        help="also fit rows the regime detector did not call bistable (single-peaked, stuck: "
                             "their flips are crossings of one noisy level); by default only bistable rows, "
                             "as in `noisecell characterize`")


def run(args) -> int:
    from ..model import CellModel
    from ..model.fit import fit_sweep_dir
    from ..outpaths import check_output_file

    check_output_file(args.out)
    excl = [parse_si(v, unit="V", what="--exclude-bias") for v in args.exclude_bias]
    notes: list[str] = []
    doc = fit_sweep_dir(args.sweep_dir, exclude_bias=excl, require_markov=not args.keep_non_markov,
                        regimes=None if args.all_regimes else ("bistable",), notes=notes)
    for line in notes:
        print(f"warning: {line}", file=sys.stderr)
    model = CellModel(doc, source=args.out)
    path = model.save(args.out)
    print(model.summary(), file=sys.stderr)
    nom = model.condition_data()
    print_json({"model": str(path), "cell": model.name, "conditions": len(model.conditions),
                "v50_v": nom["sigmoid"]["v50_v"], "scale_v": nom["sigmoid"]["scale_v"],
                "tau_at_v50_s": nom["tau"]["tau_at_v50_s"]})
    return 0
