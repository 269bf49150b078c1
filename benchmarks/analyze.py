"""Benchmark: full per-stream analysis (analyze_stream) on 1e8 bits vs a plain numpy.mean pass.

Prints throughput (bits/s) and peak memory per bit for two streams held in memory as uint8
(1 byte/bit, counted in the total): an oversampled telegraph-like Markov chain (tau = 20 samples,
the realistic case for a simulated or scope-captured cell) and uncorrelated bits (the worst case
for the run-length pass). Targets: >= 1e8 bits/s, <= 2 bytes/bit.

Peak memory is measured two ways: tracemalloc (every NumPy/SciPy allocation made by the analysis)
and the growth of the process's peak RSS (ru_maxrss; includes numba's allocations).
Usage: python benchmarks/analyze.py [n_bits]
"""
from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np

from noisecell.analysis import analyze_stream
from noisecell.analysis.synthetic import _chain


def chunked_chain(n: int, p: float, rho: float, seed: int) -> np.ndarray:
    """Markov chain generated in 8 M-sample chunks so generation needs no more than the output."""
    rng = np.random.default_rng(seed)
    a, b = (1 - rho) * p, (1 - rho) * (1 - p)
    out = np.empty(n, np.uint8)
    s = int(rng.random() < p)
    step = 1 << 23
    for i in range(0, n, step):
        m = min(step, n - i)
        out[i:i + m] = _chain(rng.random(m), a, b, s)
        last = out[i + m - 1]
        # next state from the last one
        u = rng.random()
        s = int(u < a) if last == 0 else int(u >= b)
    return out


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(name: str, bits: np.ndarray) -> dict:
    n = bits.size
    # warm-up on a small slice: numba compilation / cache load is not part of the throughput
    analyze_stream(bits[:100_000])
    t0 = time.perf_counter()
    m = float(np.mean(bits))
    t_mean = time.perf_counter() - t0
    rss_before = peak_rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    est = analyze_stream(bits, sample_period_s=1e-9)
    t_an = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = max(0, peak_rss_bytes() - rss_before)
    extra = max(traced_peak, rss_growth)
    res = {
        "case": name, "n_bits": n, "p1": est["p1"], "mean_check": m, "tau_samples": est["tau_samples"],
        "numpy_mean_s": t_mean, "numpy_mean_bits_per_s": n / t_mean,
        "analyze_s": t_an, "analyze_bits_per_s": n / t_an, "slowdown_vs_mean": t_an / t_mean,
        "extra_bytes_per_bit_tracemalloc": traced_peak / n, "extra_bytes_per_bit_rss": rss_growth / n,
        "total_bytes_per_bit": 1.0 + extra / n,
    }
    return res


def main() -> None:
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000_000
    print(f"noisecell analyze benchmark: {n:.3g} bits (uint8 input, 1 byte/bit)")
    cases = [("markov tau=20 samples, P(1)=0.4", dict(p=0.4, rho=float(np.exp(-1 / 20)))),
             ("uncorrelated, P(1)=0.5", dict(p=0.5, rho=0.0))]
    for name, kw in cases:
        bits = chunked_chain(n, kw["p"], kw["rho"], seed=1)
        r = run_case(name, bits)
        del bits
        print(f"\n== {r['case']}")
        print(f"  numpy.mean pass     {r['numpy_mean_s']:8.3f} s   {r['numpy_mean_bits_per_s']:.3g} bits/s")
        print(f"  analyze_stream      {r['analyze_s']:8.3f} s   {r['analyze_bits_per_s']:.3g} bits/s"
              f"   ({r['slowdown_vs_mean']:.1f}x the mean pass)   target >= 1e8 bits/s: "
              f"{'MET' if r['analyze_bits_per_s'] >= 1e8 else 'NOT MET'}")
        print(f"  memory              input 1.00 B/bit + analysis peak {r['extra_bytes_per_bit_tracemalloc']:.3f} B/bit "
              f"(tracemalloc), {r['extra_bytes_per_bit_rss']:.3f} B/bit (peak-RSS growth) -> total "
              f"{r['total_bytes_per_bit']:.2f} B/bit   target <= 2: {'MET' if r['total_bytes_per_bit'] <= 2 else 'NOT MET'}")
        print(f"  check: P(1) {r['p1']:.6f} (mean pass {r['mean_check']:.6f}), tau {r['tau_samples']:.3f} samples")


if __name__ == "__main__":
    main()
