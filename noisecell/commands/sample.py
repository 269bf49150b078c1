"""``noisecell sample model.json --bias V --n N --dt S [--cells K] [--seed S] --out bits.npy``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..units import parse_si, require_temperature_c
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="cell model JSON file")
    parser.add_argument("--bias", required=True, help="bias voltage, V (e.g. 0.5m, -1m)")
    parser.add_argument("--n", required=True, type=int, help="number of time steps")
    parser.add_argument("--dt", required=True, help="time step, s (e.g. 1us)")
    parser.add_argument("--cells", type=int, default=None, help="number of cells K (output shape (K, N)); "
                        "omitted: one cell, shape (N,)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bits; default 0)")
    parser.add_argument("--corner", default=None, help="process corner (default: the model's nominal)")
    parser.add_argument("--temp", default=None, help="temperature, °C (interpolated between calibrated ones; default: the model's nominal)")
    parser.add_argument("--vdd", default=None, help="supply voltage, V (default: the model's nominal)")
    parser.add_argument("--no-mismatch", action="store_true", help="nominal cells (no per-cell V50/scale draws)")
    parser.add_argument("--out", required=True, help="output .npy file (uint8 0/1)")


def run(args) -> int:
    from ..model import CellModel
    from ..outpaths import check_output_file

    from ..model.sampler import check_sample_size

    if args.n < 1:
        raise InputError(f"--n must be at least 1 (got {args.n})")
    if args.cells is not None and args.cells < 1:
        raise InputError(f"--cells must be at least 1 (got {args.cells})")
    if args.seed < 0:
        raise InputError(f"--seed must be a non-negative integer (got {args.seed})")
    check_sample_size(args.n, args.cells or 1, what="--n x --cells")
    out = check_output_file(args.out, suffix=".npy")
    model = CellModel.load(args.model)
    bias = parse_si(args.bias, unit="V", what="--bias")
    dt = parse_si(args.dt, unit="s", what="--dt")
    cond = {}
    if args.corner is not None:
        cond["corner"] = args.corner
    if args.temp is not None:
        cond["temp_c"] = require_temperature_c(parse_si(args.temp, what="--temp"), "--temp")
    if args.vdd is not None:
        cond["vdd_v"] = parse_si(args.vdd, unit="V", what="--vdd")
    bits = model.sample(bias, args.n, dt, seed=args.seed, cells=args.cells, condition=cond or None,
                        mismatch=not args.no_mismatch)
    from ..atomic import atomic_path

    with atomic_path(out, suffix=".tmp.npy") as tmp:
        np.save(tmp, bits)
    c = cond or None
    print_json({"out": str(out), "shape": list(bits.shape), "p1_observed": float(bits.mean()),
                "p1_model": model.p1(bias, c), "tau_s": model.tau(bias, c), "dt_s": dt,
                "seed": args.seed})
    return 0
