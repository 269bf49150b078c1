"""BSI AIS 31 statistical tests on raw bits: procedure A (T0–T5) and procedure B (T6–T8).

Source: W. Killmann, W. Schindler, "A proposal for: Functionality classes for random number
generators", version 2.0, BSI, 18 September 2011 (the mathematical-technical reference of AIS 20/31),
test procedures A and B; bit ordering, data layout and the order in which the tests consume the stream
follow BSI's reference test-suite program for that document (``AIS31_Evaluator``), read, not copied.

Procedure A (applied to "internal random numbers"; here to the raw bits as given):

====  =========================================================  ===================================
T0    disjointness: 2^16 48-bit words all distinct                needs 3,145,728 bits
T1    monobit: number of ones in 20,000 bits                      9654 < ones < 10346
T2    poker: 16/5000·Σ f_i² - 5000 over 5000 4-bit nibbles         1.03 < T2 < 57.4
T3    runs: runs of length 1..5 and ≥6, of zeros and of ones      each count inside its interval
T4    long run: no run of 34 or more equal bits                   longest run < 34
T5    autocorrelation: shift τ* maximising |Z_τ - 2500| on the    2326 < Z_τ* < 2674
      first 10,000 bits, Z_τ* re-measured on bits 10,000-19,999
====  =========================================================  ===================================

T0 uses the first 3,145,728 bits when the stream is that long; T1–T5 then run on consecutive
20,000-bit blocks (AIS 31 uses 257 of them) of the bits that follow.

Procedure B (applied to the raw "das-random numbers"), consuming the stream from its start in order:

====  ==========================================================  =================================
T6a   uniform distribution (k = 1): |ones/100000 - 1/2|             < 0.025
T6b   uniform distribution of transitions: from disjoint pairs,     |p(1|0) - p(1|1)| < 0.02
      the first 100,000 beginning with 0 and with 1
T7a   homogeneity of 3-tuples: 100,000 disjoint triples per         both χ² ≤ 15.13
      2-bit context; χ² (1 dof) comparing contexts that differ
      only in their oldest bit
T7b   homogeneity of 4-tuples: as T7a with 3-bit contexts           all four χ² ≤ 15.13
T8    Coron's entropy test, L = 8, Q = 2560, K = 256000            statistic > 7.976
====  ==========================================================  =================================

A test the stream is too short for is reported with ``passed = None`` and the number of bits it needs;
it is never silently passed. Full procedure B typically needs about 7.2 million bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .sp80090b import as_bits

BLOCK_BITS = 20_000
STANDARD_BLOCKS = 257
T0_WORDS = 1 << 16
T0_WORD_BITS = 48
T0_BITS = T0_WORDS * T0_WORD_BITS

_T3_LOW = (2267, 1079, 502, 223, 90, 90)
_T3_HIGH = (2733, 1421, 748, 402, 223, 223)

_T6_N = 100_000
_T7_THRESHOLD = 15.13
_T8_L, _T8_Q, _T8_K = 8, 2560, 256_000
_T8_THRESHOLD = 7.976


@dataclass(frozen=True)
class TestResult:
    """One AIS 31 test.

    name: "T0" … "T8" (T6 and T7 come as "T6a"/"T6b", "T7a"/"T7b").
    title: what it tests.
    criterion: the pass rule as written in AIS 31.
    statistic: the test value (a list, one per 20,000-bit block, for T1–T5; a list for T7).
    passed: True/False, or None when the stream was too short to run it.
    margin: distance of the worst statistic from the failing side of its bound (> 0: inside), in the
        statistic's own unit; None when not run.
    bits_used: stream bits the test consumed; start_bit: where they started.
    details: everything else (per-block failures, counts, the chosen shift, bits still needed, ...).
    """

    name: str
    title: str
    criterion: str
    statistic: object
    passed: bool | None
    margin: float | None
    bits_used: int
    start_bit: int
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "criterion": self.criterion,
                "statistic": self.statistic, "passed": self.passed, "margin": self.margin,
                "bits_used": self.bits_used, "start_bit": self.start_bit, "details": dict(self.details)}


def _not_run(name, title, criterion, start, needed, have, approx=False) -> TestResult:
    about = "about " if approx else ""
    return TestResult(name, title, criterion, None, None, None, 0, start,
                      {"reason": f"stream too short: needs {about}{needed} bits from bit {start}, "
                                 f"has {max(have, 0)}",
                       "bits_needed": int(needed)})


# ---------------------------------------------------------------------------------------------------
# Procedure A
# ---------------------------------------------------------------------------------------------------
def t0_disjointness(bits, start: int = 0) -> TestResult:
    """T0: the 2^16 consecutive 48-bit words from ``start`` must all be different."""
    s = as_bits(bits)
    name, title, crit = "T0", "disjointness test", "all 65536 48-bit words distinct"
    if s.size - start < T0_BITS:
        return _not_run(name, title, crit, start, T0_BITS, s.size - start)
    chunk = s[start:start + T0_BITS].reshape(T0_WORDS, T0_WORD_BITS).astype(np.uint64)
    weights = np.left_shift(np.uint64(1), np.arange(T0_WORD_BITS, dtype=np.uint64))
    words = (chunk * weights).sum(axis=1, dtype=np.uint64)
    distinct = int(np.unique(words).size)
    repeats = T0_WORDS - distinct
    return TestResult(name, title, crit, repeats, repeats == 0, float(-repeats), T0_BITS, start,
                      {"distinct_words": distinct})


def _blocks(s: np.ndarray, start: int, max_blocks: int) -> np.ndarray:
    nblk = min(max_blocks, (s.size - start) // BLOCK_BITS)
    return s[start:start + nblk * BLOCK_BITS].reshape(nblk, BLOCK_BITS)


@njit(cache=True)
def _runs_table(block):
    # counts[v, L-1] = number of runs of value v with length L (L >= 6 pooled), and the longest run.
    counts = np.zeros((2, 6), np.int64)
    longest = 1
    run = 1
    for i in range(1, block.size):
        if block[i] == block[i - 1]:
            run += 1
        else:
            counts[block[i - 1], min(run, 6) - 1] += 1
            if run > longest:
                longest = run
            run = 1
    counts[block[block.size - 1], min(run, 6) - 1] += 1
    if run > longest:
        longest = run
    return counts, longest


def _autocorrelation_shift(block: np.ndarray) -> tuple[int, int]:
    # Z_tau = sum_{i<5000} b_i XOR b_{i+tau}, tau = 1..5000, on the first 10,000 bits, via
    # sum(a) + sum(b) - 2 sum(a*b) with the cross-correlation by FFT (values are integers <= 5000,
    # FFT error ~1e-9, so rounding is exact).
    b = block[:10_000].astype(np.float64)
    a = b[:5000]
    nfft = 1 << 15
    corr = np.fft.irfft(np.conj(np.fft.rfft(a, nfft)) * np.fft.rfft(b, nfft), nfft)
    taus = np.arange(1, 5001)
    prod = np.rint(corr[taus]).astype(np.int64)
    csum = np.concatenate(([0], np.cumsum(block[:10_000], dtype=np.int64)))
    shifted = csum[taus + 5000] - csum[taus]
    z = int(a.sum()) + shifted - 2 * prod
    tau = int(taus[np.argmax(np.abs(z - 2500))])   # first maximum, as the reference program
    return tau, int(np.count_nonzero(block[10_000:15_000] != block[10_000 + tau:15_000 + tau]))


def procedure_a(bits, max_blocks: int = STANDARD_BLOCKS) -> list[TestResult]:
    """T0 (when the stream is long enough) then T1–T5 on up to ``max_blocks`` 20,000-bit blocks."""
    s = as_bits(bits)
    t0 = t0_disjointness(s, 0)
    start = T0_BITS if t0.passed is not None else 0
    blocks = _blocks(s, start, max_blocks)
    nblk = blocks.shape[0]
    results = [t0]
    crits = {
        "T1": ("monobit test", "9654 < ones < 10346"),
        "T2": ("poker test", "1.03 < T2 < 57.4"),
        "T3": ("runs test", "runs of 0s and of 1s, lengths 1..5 and >=6, each in "
                            "[2267,2733],[1079,1421],[502,748],[223,402],[90,223],[90,223]"),
        "T4": ("long run test", "no run of length >= 34"),
        "T5": ("autocorrelation test", "2326 < Z_tau < 2674"),
    }
    if nblk == 0:
        for name, (title, crit) in crits.items():
            results.append(_not_run(name, title, crit, start, BLOCK_BITS, s.size - start))
        return results
    used = nblk * BLOCK_BITS
    ones = blocks.sum(axis=1, dtype=np.int64)
    nib = blocks.reshape(nblk, 5000, 4).astype(np.int64) @ np.array([1, 2, 4, 8])
    freq = np.stack([np.bincount(row, minlength=16) for row in nib])
    poker = (16.0 / 5000.0) * (freq.astype(np.float64) ** 2).sum(axis=1) - 5000.0
    runs, longest = [], []
    for blk in blocks:
        c, lo = _runs_table(blk)
        runs.append(c)
        longest.append(lo)
    runs = np.array(runs)
    longest = np.array(longest)
    auto = [_autocorrelation_shift(blk) for blk in blocks]
    z5 = np.array([z for _, z in auto])

    t1_ok = (ones > 9654) & (ones < 10346)
    t2_ok = (poker > 1.03) & (poker < 57.4)
    low, high = np.array(_T3_LOW), np.array(_T3_HIGH)
    t3_ok = np.all((runs >= low) & (runs <= high), axis=(1, 2))
    t4_ok = longest < 34
    t5_ok = (z5 > 2326) & (z5 < 2674)

    def fails(ok):
        return [int(i) for i in np.flatnonzero(~ok)]

    t3_margin = float(np.min(np.minimum(runs - low, high - runs)))
    common = {"blocks": nblk, "complete": nblk >= STANDARD_BLOCKS}
    results += [
        TestResult("T1", *crits["T1"], [int(x) for x in ones], bool(t1_ok.all()),
                   float(np.min(np.minimum(ones - 9654, 10346 - ones))), used, start,
                   {**common, "failed_blocks": fails(t1_ok)}),
        TestResult("T2", *crits["T2"], [float(x) for x in poker], bool(t2_ok.all()),
                   float(np.min(np.minimum(poker - 1.03, 57.4 - poker))), used, start,
                   {**common, "failed_blocks": fails(t2_ok)}),
        TestResult("T3", *crits["T3"],
                   [{"zeros": [int(x) for x in r[0]], "ones": [int(x) for x in r[1]]} for r in runs],
                   bool(t3_ok.all()), t3_margin, used, start, {**common, "failed_blocks": fails(t3_ok)}),
        TestResult("T4", *crits["T4"], [int(x) for x in longest], bool(t4_ok.all()),
                   float(34 - longest.max()), used, start, {**common, "failed_blocks": fails(t4_ok)}),
        TestResult("T5", *crits["T5"], [int(x) for x in z5], bool(t5_ok.all()),
                   float(np.min(np.minimum(z5 - 2326, 2674 - z5))), used, start,
                   {**common, "failed_blocks": fails(t5_ok), "shift": [int(t) for t, _ in auto]}),
    ]
    return results


# ---------------------------------------------------------------------------------------------------
# Procedure B
# ---------------------------------------------------------------------------------------------------
def _first_per_context(ctx: np.ndarray, nctx: int, need: int):
    """Index (exclusive) of the tuple at which every context has occurred ``need`` times, and for each
    context the indices of its first ``need`` occurrences; None if the stream runs out first."""
    firsts = []
    end = 0
    for c in range(nctx):
        idx = np.flatnonzero(ctx == c)
        if idx.size < need:
            return None, None
        firsts.append(idx[:need])
        end = max(end, int(idx[need - 1]) + 1)
    return end, firsts


def _tuples(s: np.ndarray, start: int, k: int):
    m = (s.size - start) // k
    return s[start:start + m * k].reshape(m, k).astype(np.int64)


def _homogeneity(ones: np.ndarray) -> list[float]:
    # chi^2 comparing the next-bit counts of contexts 2i and 2i+1 (each seen _T6_N times).
    zeros = _T6_N - ones
    out = []
    for i in range(ones.size // 2):
        a0, b0 = zeros[2 * i], zeros[2 * i + 1]
        a1, b1 = ones[2 * i], ones[2 * i + 1]
        out.append(float((a0 - b0) ** 2 / (a0 + b0) + (a1 - b1) ** 2 / (a1 + b1)))
    return out


@njit(cache=True)
def _coron_statistic(words, q, k):
    # Coron's refinement of Maurer's test: mean of G(distance to previous occurrence) where
    # G(i) = (1/ln 2) * sum_{j=1}^{i-1} 1/j; a word not seen in the Q initial words has distance i+1.
    last = np.full(256, -1, np.int64)
    for i in range(q):
        last[words[i]] = i
    g = np.zeros(q + k + 2)
    for i in range(1, q + k + 1):
        g[i + 1] = g[i] + 1.0 / i
    total = 0.0
    for i in range(q, q + k):
        d = i - last[words[i]]
        last[words[i]] = i
        total += g[d]
    return total / k / math.log(2.0)


def procedure_b(bits) -> list[TestResult]:
    """T6a, T6b, T7a, T7b, T8 consuming the stream in order from bit 0."""
    s = as_bits(bits)
    out: list[TestResult] = []
    pos = 0
    specs = [
        ("T6a", "uniform distribution test (k=1)", "|P(1) - 1/2| < 0.025"),
        ("T6b", "uniform distribution test of transitions (k=2)", "|p(1|0) - p(1|1)| < 0.02"),
        ("T7a", "homogeneity test, 3-bit tuples", "both chi2 <= 15.13"),
        ("T7b", "homogeneity test, 4-bit tuples", "all four chi2 <= 15.13"),
        ("T8", "entropy test (Coron), L=8, Q=2560, K=256000", "statistic > 7.976"),
    ]

    def rest_not_run(from_index, needed, approx=False):
        name, title, crit = specs[from_index]
        out.append(_not_run(name, title, crit, pos, needed, s.size - pos, approx))
        for name, title, crit in specs[from_index + 1:]:
            out.append(TestResult(name, title, crit, None, None, None, 0, pos,
                                  {"reason": f"stream too short: {specs[from_index][0]} could not run "
                                             "and procedure B consumes the stream in order"}))
        return out

    # T6a
    name, title, crit = specs[0]
    if s.size < _T6_N:
        return rest_not_run(0, _T6_N)
    p1 = float(np.count_nonzero(s[:_T6_N])) / _T6_N
    stat = abs(p1 - 0.5)
    out.append(TestResult(name, title, crit, stat, stat < 0.025, 0.025 - stat, _T6_N, 0, {"p_1": p1}))
    pos = _T6_N

    # T6b, T7a, T7b: disjoint k-tuples; the first k-1 bits are the context, the last the outcome.
    for index, k in ((1, 2), (2, 3), (3, 4)):
        name, title, crit = specs[index]
        tup = _tuples(s, pos, k)
        weights = 1 << np.arange(k - 1)         # oldest bit least significant (reference layout)
        ctx = tup[:, :k - 1] @ weights if tup.size else np.zeros(0, np.int64)
        end, firsts = _first_per_context(ctx, 1 << (k - 1), _T6_N)
        if end is None:
            # Extrapolate from the observed context frequencies (fair bits: 2^-(k-1) each).
            seen = np.bincount(ctx, minlength=1 << (k - 1)) if ctx.size else np.zeros(1 << (k - 1))
            if ctx.size and seen.min() == 0:
                needed = int(k * _T6_N * (1 << (k - 1)) * 1.02)
            else:
                freq = seen / max(ctx.size, 1)
                needed = int(k * _T6_N / freq.min() * 1.02) if ctx.size else int(k * _T6_N * (1 << (k - 1)))
            return rest_not_run(index, needed, approx=True)
        ones = np.array([int(tup[f, k - 1].sum()) for f in firsts])
        if k == 2:
            p = ones / _T6_N
            stat = float(abs(p[0] - p[1]))
            out.append(TestResult(name, title, crit, stat, stat < 0.02, 0.02 - stat, k * end, pos,
                                  {"p_1_given_0": float(p[0]), "p_1_given_1": float(p[1])}))
        else:
            chi = _homogeneity(ones)
            worst = max(chi)
            out.append(TestResult(name, title, crit, chi, worst <= _T7_THRESHOLD, _T7_THRESHOLD - worst,
                                  k * end, pos, {"ones_per_context": [int(x) for x in ones]}))
        pos += k * end

    # T8
    name, title, crit = specs[4]
    need = _T8_L * (_T8_Q + _T8_K)
    if s.size - pos < need:
        return rest_not_run(4, need)
    chunk = s[pos:pos + need].reshape(_T8_Q + _T8_K, _T8_L).astype(np.int64)
    words = chunk @ (1 << np.arange(_T8_L))      # first bit least significant (reference layout)
    stat = float(_coron_statistic(words, _T8_Q, _T8_K))
    out.append(TestResult(name, title, crit, stat, stat > _T8_THRESHOLD, stat - _T8_THRESHOLD, need, pos, {}))
    return out


@dataclass(frozen=True)
class AIS31Result:
    """Both procedures' tests, in order. ``all_run_passed`` ignores tests that could not run."""

    n_bits: int
    tests: tuple[TestResult, ...]

    @property
    def by_name(self) -> dict[str, TestResult]:
        return {t.name: t for t in self.tests}

    @property
    def all_run_passed(self) -> bool:
        return all(t.passed for t in self.tests if t.passed is not None)

    @property
    def not_run(self) -> list[str]:
        return [t.name for t in self.tests if t.passed is None]

    def to_dict(self) -> dict:
        d = {t.name: t.to_dict() for t in self.tests}
        d["all_run_passed"] = self.all_run_passed
        d["not_run"] = self.not_run
        return d

    def summary(self) -> str:
        lines = [f"AIS 31 on {self.n_bits:,} bits"]
        for t in self.tests:
            if t.passed is None:
                lines.append(f"  {t.name:4s} {t.title}: not run ({t.details.get('reason')})")
                continue
            stat = t.statistic
            if isinstance(stat, list) and stat and not isinstance(stat[0], dict) and t.name in ("T7a", "T7b"):
                shown = ", ".join(f"{x:.3f}" for x in stat)
            elif isinstance(stat, list):
                shown = f"{len(stat)} blocks, {len(t.details.get('failed_blocks', []))} failed"
            else:
                shown = f"{stat:.6g}" if isinstance(stat, float) else str(stat)
            lines.append(f"  {t.name:4s} {t.title}: {shown} -> {'pass' if t.passed else 'FAIL'} "
                         f"({t.criterion})")
        return "\n".join(lines)


def ais31(bits) -> AIS31Result:
    """Run procedure A (T0–T5) and procedure B (T6–T8) on the same raw stream."""
    s = as_bits(bits)
    return AIS31Result(int(s.size), tuple(procedure_a(s) + procedure_b(s)))
