"""One streaming pass over a bit stream: counts, transitions and run (dwell) lengths.

This is the only O(n) pass of the per-stream analysis: a numba loop over the uint8 samples that needs
no memory proportional to n (run lengths go into fixed-size histograms, plus a short list of the
rare runs longer than the histogram). Everything else works on these counts or on a bounded subset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import InputError

#: run lengths below this are histogrammed; longer runs (at most n / HIST_LEN of them) are listed
HIST_LEN = 1 << 16


@numba.njit(cache=True, nogil=True)
def _scan(x, words, hist_len):  # pragma: no cover - compiled
    n = x.size
    hist = np.zeros(2 * hist_len, np.int64)
    n_over_max = n // hist_len + 2
    over_len = np.zeros(n_over_max, np.int64)
    over_state = np.zeros(n_over_max, np.uint8)
    n_over = 0
    anybad = np.uint8(0)
    first = x[0]
    i0 = 1
    while i0 < n and x[i0] == first:
        i0 += 1
    first_len = i0
    n1 = np.int64(first) * i0
    up = np.int64(0)
    prev = np.int64(first)
    run = np.int64(0)   # the censored first run is not a complete dwell: hist[., 0] collects its end
    ones_word = np.uint64(0x0101010101010101)
    nw = words.size
    i = i0
    while i < n:
        # Eight samples equal to the current state are skipped in one step (correlated streams).
        if (i & 7) == 0 and (i >> 3) < nw:
            w = words[i >> 3]
            if w == (ones_word if prev == 1 else np.uint64(0)):
                run += 8
                n1 += 8 * prev
                i += 8
                continue
        # Branch-free update: on an uncorrelated stream "did the bit change" is a coin flip, and a
        # mispredicted branch per sample would cost more than the rest of the loop.
        b = x[i]
        anybad |= b
        c = np.int64(b & 1)
        n1 += c
        ch = c ^ prev
        is_long = np.int64(run >= hist_len)
        if ch & is_long:                          # rare, so well predicted
            over_len[n_over] = run
            over_state[n_over] = prev
            n_over += 1
        # long runs (and the end of the censored first run, run == 0) land in the unused slot 0
        hist[prev * hist_len + run * (1 - is_long)] += ch
        up += ch & c
        run = run * (1 - ch) + 1
        prev = c
        i += 1
    if i0 >= n:
        run = np.int64(first_len)
    bad = -1
    if (anybad | first) > 1:
        for k in range(n):
            if x[k] > 1:
                bad = k
                break
    hist[0] = 0
    hist[hist_len] = 0
    n_flips = np.int64(0)
    for k in range(2 * hist_len):
        n_flips += hist[k]
    n_flips += n_over + (1 if i0 < n else 0)
    down = n_flips - up
    return (bad, n1, up, down, first_len, np.int64(first), run, prev, n_over,
            hist.reshape(2, hist_len), over_len[:n_over], over_state[:n_over])


@dataclass(frozen=True)
class RunStats:
    """Sufficient statistics of a 0/1 stream for the two-state Markov model and its dwell times.

    n: samples; n1: ones; n_up (0→1) and n_down (1→0) transitions; n0_at_risk / n1_at_risk: samples
    in state 0 / 1 that have a successor (the denominators of the transition-probability MLE);
    first_len/first_state, last_len/last_state: the censored first and last runs (samples);
    hist[s, L]: number of complete runs of state s lasting L samples (L < HIST_LEN); long_len /
    long_state: complete runs of HIST_LEN samples or more.
    """

    n: int
    n1: int
    n_up: int
    n_down: int
    first_len: int
    first_state: int
    last_len: int
    last_state: int
    hist: np.ndarray
    long_len: np.ndarray
    long_state: np.ndarray

    @property
    def n0_at_risk(self) -> int:
        return self.n - self.n1 - (1 if self.last_state == 0 else 0)

    @property
    def n1_at_risk(self) -> int:
        return self.n1 - (1 if self.last_state == 1 else 0)

    @property
    def n_flips(self) -> int:
        return self.n_up + self.n_down

    def dwell_counts(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, counts) of the complete dwells in ``state`` (samples), lengths ascending."""
        h = self.hist[state]
        nz = np.flatnonzero(h)
        longs = np.sort(self.long_len[self.long_state == state])
        if longs.size:
            ul, uc = np.unique(longs, return_counts=True)
            return np.concatenate([nz, ul]), np.concatenate([h[nz], uc])
        return nz, h[nz]


def scan_runs(bits: np.ndarray, *, source: str = "bits") -> RunStats:
    """Single pass over ``bits`` (uint8 0/1; other integer dtypes are converted)."""
    x = np.asarray(bits)
    if x.ndim != 1:
        x = x.reshape(-1)
    if x.dtype != np.uint8:
        if x.dtype == np.bool_:
            x = x.view(np.uint8)
        else:
            if x.size and (x.min() < 0 or x.max() > 1):
                raise InputError(f"{source}: values must be 0 or 1")
            x = x.astype(np.uint8)
    if x.size < 2:
        raise InputError(f"{source}: {x.size} sample(s); need at least 2")
    x = np.ascontiguousarray(x)
    (bad, n1, up, down, first_len, first_state, last_len, last_state, n_over,
     hist, over_len, over_state) = _scan(x, x[: x.size - x.size % 8].view(np.uint64), HIST_LEN)
    if bad >= 0:
        raise InputError(f"{source}: value {int(x[bad])} at sample {bad}; bits must be 0 or 1")
    return RunStats(n=int(x.size), n1=int(n1), n_up=int(up), n_down=int(down), first_len=int(first_len),
                    first_state=int(first_state), last_len=int(last_len), last_state=int(last_state),
                    hist=hist, long_len=over_len.copy(), long_state=over_state.copy())
