"""``noisecell entropy FILE``: SP 800-90B non-IID min-entropy estimates and AIS 31 tests of a bit stream.

Prints one JSON object on stdout (keys mcv, collision, markov, compression, t_tuple, lrs, multimcw,
lag, multimmc, lz78y, h_original — min-entropy in bits per sample — plus ais31 and the estimators'
intermediate values); ``--summary`` adds a human-readable table on stderr.
"""
from __future__ import annotations

import argparse
import sys
from . import print_json

FORMATS = ("npy", "bytes", "packed", "csv", "npz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="bit stream file (one sample per bit)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="file format (default: from the extension; .bin = one byte per sample, "
                             "values 0/1, as NIST's tool reads with 1 bit per sample)")
    parser.add_argument("--no-ais31", action="store_true", help="skip the AIS 31 tests")
    parser.add_argument("--claim", type=float, default=None, metavar="H",
                        help="claimed min-entropy H_submitter in bits per sample, checked against "
                             "H_original (SP 800-90B section 3.1.3; default: no claim)")
    parser.add_argument("--summary", action="store_true", help="also print a readable summary to stderr")
    parser.add_argument("--max-samples", type=int, default=None, metavar="N",
                        help="assess only the first N samples (default: all)")


def _load(path: str, fmt: str | None):
    from ..io import load_bits

    return load_bits(path, fmt).bits


def run(args) -> int:
    from ..entropy import assess
    from ..errors import InputError

    bits = _load(args.file, args.format)
    if args.max_samples is not None:
        if args.max_samples < 2:
            raise InputError(f"{args.file}: --max-samples {args.max_samples} is too small; give at least 6012")
        bits = bits[:args.max_samples]
    result = assess(bits, run_ais31=not args.no_ais31, claimed_min_entropy=args.claim, source=args.file)
    if args.summary:
        print(result.summary(), file=sys.stderr)
    print_json(result.to_dict())
    return 0
