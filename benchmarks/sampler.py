#!/usr/bin/env python
"""Throughput of CellModel.sample against a plain numpy Bernoulli draw of the same shape.

    python benchmarks/sampler.py [--cells 10000] [--steps 10000] [--repeats 3]

Both produce a (cells, steps) uint8 array of 0/1 from a seeded numpy Generator in the same process:

* baseline: independent Bernoulli(p) bits, the faster of ``rng.random((cells, steps)) < p`` in
  one shot (8 bytes of temporaries per bit) and the same draw in the step-major chunks the
  sampler uses (bounded memory), transposed into the output;
* sampler:  ``CellModel.sample(bias, steps, dt, seed, cells)`` — the exact two-state Markov chain
  (state-dependent flip probabilities), per-cell mismatch drawn from the model.

Prints cell-updates per second of each (best of ``--repeats``) and the ratio; target >= 0.5x.
The first sampler call compiles the numba kernel (cached on disk) and is not timed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def baseline(cells: int, steps: int, p: float, seed: int, chunk_values: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((cells, steps), dtype=np.uint8)
    chunk = max(1, chunk_values // cells)
    for n0 in range(0, steps, chunk):
        m = min(chunk, steps - n0)
        out[:, n0:n0 + m] = (rng.random((m, cells)) < p).T
    return out


def baseline_oneshot(cells: int, steps: int, p: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((cells, steps)) < p).view(np.uint8)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from noisecell.model import sampler as smod
    from noisecell.model.fit import synthetic_model

    model = synthetic_model(name="bench", scale_v=1e-3, tau_v50_s=1e-6, bias_range_v=(-5e-3, 5e-3),
                            mismatch=(3e-4, 0.1, 0.2))
    dt = 0.5e-6
    model.sample(0.0, 100, dt, seed=0, cells=100)  # numba compile / cache load, not timed
    n = args.cells * args.steps
    t_base, t_one, t_samp = [], [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        b = baseline(args.cells, args.steps, 0.5, r, smod._CHUNK_VALUES)
        t_base.append(time.perf_counter() - t0)
        del b
        t0 = time.perf_counter()
        b = baseline_oneshot(args.cells, args.steps, 0.5, r)
        t_one.append(time.perf_counter() - t0)
        del b
        t0 = time.perf_counter()
        s = model.sample(0.0, args.steps, dt, seed=r, cells=args.cells)
        t_samp.append(time.perf_counter() - t0)
        p1 = float(s.mean())
        del s
    base_rate, samp_rate = n / min(min(t_base), min(t_one)), n / min(t_samp)
    ratio = samp_rate / base_rate
    print(f"shape {args.cells} cells x {args.steps} steps = {n:.3g} cell-updates, best of {args.repeats}")
    print(f"numpy Bernoulli, chunked : {n / min(t_base):.3e} updates/s ({min(t_base):.3f} s)")
    print(f"numpy Bernoulli, one shot: {n / min(t_one):.3e} updates/s ({min(t_one):.3f} s)")
    print(f"baseline (faster of both): {base_rate:.3e} updates/s")
    print(f"CellModel.sample (CTMC)  : {samp_rate:.3e} updates/s ({min(t_samp):.3f} s), mean bit {p1:.4f}")
    print(f"ratio sampler/baseline   : {ratio:.2f}x (target >= 0.5x) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
    return {"baseline_updates_per_s": base_rate, "sampler_updates_per_s": samp_rate, "ratio": ratio}


if __name__ == "__main__":
    main()
