"""``noisecell analyze FILE``: per-stream statistics of a bit stream or analog trace as one JSON object."""
from __future__ import annotations

import sys

from ..errors import InputError
from ..units import parse_si, require_positive, require_temperature_c
from . import print_json


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="bit stream (.npy, .bin, .packed, .csv) or waveform (.npz)")
    parser.add_argument("--format", choices=["npy", "bytes", "packed", "csv", "npz"],
                        help="file format (default: from the extension)")
    parser.add_argument("--sample-period", metavar="S",
                        help="time between samples, s, e.g. 1us (bit files); clock period of the sampler (traces) "
                             "(default: the waveform's noise step; unknown for bit files: per-sample results only)")
    parser.add_argument("--threshold", metavar="V", help="comparator threshold for traces, V, e.g. 0 or 10m (default: automatic)")
    parser.add_argument("--hysteresis", metavar="V", help="full hysteresis band for traces, V (default: automatic)")
    parser.add_argument("--temp", metavar="C", type=float, help="temperature in °C for kT·ln2 units (default: from the waveform)")
    parser.add_argument("--alpha", type=float, default=2.0 ** -20,
                        help="false-alarm probability of the SP 800-90B health tests (default 2^-20)")
    parser.add_argument("--entropy-period", metavar="S",
                        help="sampling period for the energy per min-entropy bit, s (default: the sample period)")
    parser.add_argument("--summary", action="store_true", help="also print a human-readable summary to stderr")


def run(args) -> int:
    from ..analysis import analyze_stream
    from ..io import guess_format, load_bits

    sp = parse_si(args.sample_period, unit="s", what="--sample-period") if args.sample_period else None
    thr = parse_si(args.threshold, unit="V", what="--threshold") if args.threshold is not None else None
    hyst = parse_si(args.hysteresis, unit="V", what="--hysteresis") if args.hysteresis is not None else None
    ep = parse_si(args.entropy_period, unit="s", what="--entropy-period") if args.entropy_period is not None else None
    require_positive(ep, "--entropy-period")
    require_positive(sp, "--sample-period")
    require_temperature_c(args.temp, "--temp")
    if hyst is not None and hyst < 0:
        raise InputError(f"--hysteresis: the hysteresis band must be ≥ 0 V, got {hyst!r}")
    if not (0 < args.alpha < 1):
        raise InputError(f"--alpha must be in (0, 1), got {args.alpha}")
    fmt = args.format or guess_format(args.file)
    bs = load_bits(args.file, fmt, sample_period_s=sp, threshold_v=thr, hysteresis_v=hyst)
    wf = None
    if fmt == "npz":
        from ..waveform import Waveform
        wf = Waveform.load_npz(args.file)
    est = analyze_stream(bs, waveform=wf, temp_c=args.temp, alpha=args.alpha, entropy_sample_period_s=ep)
    d = est.to_dict()
    if wf is not None:
        _regime_verdict(d, wf)
    if args.summary:
        if est.digitization:
            from ..digitize import Digitization

            print(Digitization.from_dict(est.digitization).summary(), file=sys.stderr)
        print(est.summary(), file=sys.stderr)
    print_json(d)
    return 0


def _regime_verdict(d: dict, wf) -> None:
    """For a waveform: its regime, and for a cell that does not telegraph, what was seen and why it is
    not a bit source, with the per-flip / per-bit figures blanked (printed to stderr as well)."""
    from ..regime import PER_BIT_KEYS, classify_waveform, not_a_bit_source

    r = classify_waveform(wf)
    d["regime"] = r.regime
    d["regime_reasons"] = list(r.reasons)
    d["not_a_bit_source"] = None
    if r.is_bistable:
        return
    dig = d.get("digitization") or {}
    d["not_a_bit_source"] = not_a_bit_source(r, crossings=d.get("n_flips"), hysteresis_v=dig.get("hysteresis_v"))
    for k in PER_BIT_KEYS:
        if k in d:
            d[k] = None
    d["threshold_crossings"] = d.pop("n_flips", None)
    print(f"noisecell analyze: {d['not_a_bit_source']}", file=sys.stderr)
