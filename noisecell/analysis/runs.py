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


#: samples per chunk of the change-position buffer (8 MB of int64)
_CHUNK = 1 << 20


@numba.njit(cache=True, nogil=True)
def _scan(x, words, hist_len):  # pragma: no cover - compiled
    # Two phases per chunk. (1) Collect the positions where the bit changes: branch-free (on
    # uncorrelated bits "did it change" is a coin flip, and a mispredicted branch per sample would
    # cost more than the loop), and eight equal samples are skipped in one 64-bit comparison
    # (correlated streams). (2) Turn consecutive change positions into run lengths and histogram
    # them; the state alternates at every change, so that loop has no data-dependent branches.
    n = x.size
    hist = np.zeros((2, hist_len), np.int64)
    n_over_max = n // hist_len + 2
    over_len = np.zeros(n_over_max, np.int64)
    over_state = np.zeros(n_over_max, np.uint8)
    n_over = 0
    pos = np.empty(min(n, _CHUNK) + 8, np.int64)
    anybad = np.uint8(x[0])
    ones_word = np.uint64(0x0101010101010101)
    nw = words.size
    first_state = np.int64(x[0] & 1)
    prev = first_state
    last_change = np.int64(-1)      # -1: no change seen yet (the first run is censored)
    first_len = np.int64(n)
    n_changes = np.int64(0)
    dense = False
    for start in range(1, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        k = 0
        if dense:
            # the previous chunk changed often: word skipping would rarely pay, run the plain loop
            for i in range(start, stop):
                b = x[i]
                anybad |= b
                c = np.int64(b & 1)
                pos[k] = i
                k += c ^ prev
                prev = c
        else:
            i = start
            while i < stop:
                if (i & 7) == 0 and i + 8 <= stop and (i >> 3) < nw:
                    w = words[i >> 3]
                    if w == (ones_word if prev == 1 else np.uint64(0)):
                        i += 8
                        continue
                b = x[i]
                anybad |= b
                c = np.int64(b & 1)
                pos[k] = i
                k += c ^ prev
                prev = c
                i += 1
        # mean run < 4 samples: 8-sample words are rarely constant
        dense = k * 4 > (stop - start)
        # phase 2: runs ending at each change; s is the state of the run that ends
        s_run = np.int64(1) - np.int64(x[pos[0]] & 1) if k > 0 else prev
        j0 = 0
        if k > 0 and last_change < 0:
            first_len = pos[0]
            last_change = pos[0]
            s_run = 1 - s_run
            j0 = 1
        for j in range(j0, k):
            p = pos[j]
            L = p - last_change
            if L < hist_len:
                hist[s_run, L] += 1
            else:
                over_len[n_over] = L
                over_state[n_over] = s_run
                n_over += 1
            last_change = p
            s_run = 1 - s_run
        n_changes += k
    last_len = n - last_change if last_change >= 0 else n
    # changes alternate in direction, starting with the one leaving the first state
    first_dir_up = np.int64(1) - first_state
    up = (n_changes + first_dir_up) // 2
    down = n_changes - up
    bad = -1
    if anybad > 1:
        for m in range(n):
            if x[m] > 1:
                bad = m
                break
    return (bad, up, down, first_len, first_state, last_len, prev, n_over,
            hist, over_len[:n_over], over_state[:n_over])


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
    (bad, up, down, first_len, first_state, last_len, last_state, n_over,
     hist, over_len, over_state) = _scan(x, x[: x.size - x.size % 8].view(np.uint64), HIST_LEN)
    # a vectorised count is faster than accumulating ones in the loop
    n1 = int(np.count_nonzero(x)) if bad < 0 else 0
    if bad >= 0:
        raise InputError(f"{source}: value {int(x[bad])} at sample {bad}; bits must be 0 or 1")
    return RunStats(n=int(x.size), n1=int(n1), n_up=int(up), n_down=int(down), first_len=int(first_len),
                    first_state=int(first_state), last_len=int(last_len), last_state=int(last_state),
                    hist=hist, long_len=over_len.copy(), long_state=over_state.copy())
