"""Time the ten SP 800-90B non-IID estimators on 1e6 bits against NIST's C++ tool.

    python benchmarks/entropy.py [FILE]      # FILE: one byte per sample, 0/1 (default: a fair stream)

If the environment variable NIST_EA_NON_IID points at a built ``ea_non_iid`` (usnistgov/
SP800-90B_EntropyAssessment, cpp/, ``make non_iid``), it is timed in the same run on the same file
(``ea_non_iid -a -q FILE 1``), interleaved with ours and best-of-N for both, and the ratio is printed.
Otherwise the figure recorded when the target was set is printed, clearly labelled as not measured
here. Target (issue 8): ours <= 3x NIST.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noisecell.entropy import sp80090b  # noqa: E402

#: ea_non_iid 1.1.7 on 1e6 fair bits on the project's 2-core machine (issue 8), seconds.
STORED_NIST_S = (0.6, 0.7)
REPEATS = 5


def _ours(bits):
    """(wall s, CPU s) of the ten estimators in this process."""
    t, c = time.perf_counter(), time.process_time()
    sp80090b.all_estimates(bits)
    return time.perf_counter() - t, time.process_time() - c


def _nist(exe, path):
    """(wall s, CPU s summed over the tool's threads) of one ea_non_iid run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([exe, "-a", "-q", str(path), "1"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _per_estimator(bits):
    fns = [("mcv", sp80090b.most_common_value), ("collision", sp80090b.collision),
           ("markov", sp80090b.markov), ("compression", sp80090b.compression),
           ("t_tuple+lrs", sp80090b.tuple_statistics), ("multimcw", sp80090b.multi_mcw),
           ("lag", sp80090b.lag), ("multimmc", sp80090b.multi_mmc), ("lz78y", sp80090b.lz78y)]
    out = {}
    for name, fn in fns:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn(bits)
            best = min(best, time.perf_counter() - t)
        out[name] = best
    return out


def main(argv: list[str]) -> int:
    if argv:
        path = Path(argv[0])
        bits = np.fromfile(path, dtype=np.uint8)
        tmp = None
    else:
        bits = (np.random.default_rng(20261125).random(1_000_000) < 0.5).astype(np.uint8)
        tmp = tempfile.NamedTemporaryFile(suffix=".bin", delete=False)
        bits.tofile(tmp.name)
        path = Path(tmp.name)
    try:
        print(f"stream: {path} ({bits.size:,} samples)")
        t0 = time.perf_counter()
        sp80090b.all_estimates(bits[:10_000])   # numba compile / cache load, not timed below
        print(f"warm-up (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
        exe = os.environ.get("NIST_EA_NON_IID")
        ours, nist = [], []
        for _ in range(REPEATS):
            ours.append(_ours(bits))
            if exe:
                nist.append(_nist(exe, path))
        ow, oc = min(w for w, _ in ours), min(c for _, c in ours)
        print(f"noisecell, ten estimators: best wall {ow:.3f} s (median {np.median([w for w, _ in ours]):.3f}), "
              f"best CPU {oc:.3f} s (of {REPEATS})")
        if exe:
            nw, nc = min(w for w, _ in nist), min(c for _, c in nist)
            print(f"NIST ea_non_iid -a (same run, same file): best wall {nw:.3f} s "
                  f"(median {np.median([w for w, _ in nist]):.3f}), best CPU {nc:.3f} s")
            # Wall time is the user's experience; CPU time is robust to other load on the machine.
            print(f"ratio noisecell / NIST: wall {ow / nw:.2f}x, CPU {oc / nc:.2f}x (best of {REPEATS}); "
                  f"target <= 3x: {'met' if max(ow / nw, oc / nc) <= 3 else 'NOT met'}")
        else:
            lo, hi = STORED_NIST_S
            print(f"NIST ea_non_iid: NOT MEASURED in this run (set NIST_EA_NON_IID); stored figure "
                  f"{lo}-{hi} s on the project machine -> ratio about {ow / hi:.2f}-{ow / lo:.2f}x")
        print("per estimator (best of 3):")
        for name, sec in _per_estimator(bits).items():
            print(f"  {name:12s} {sec:.3f} s")
        return 0
    finally:
        if tmp is not None:
            tmp.close()
            os.unlink(tmp.name)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
