"""The Schmitt-trigger comparator: one implementation for digitisation and regime detection."""
from __future__ import annotations

import numpy as np


def schmitt_states(v: np.ndarray, lo: float, hi: float, *, initial: int | None = None) -> np.ndarray:
    """State (uint8 0/1) per sample of ``v`` of a comparator that switches up above ``hi`` and down
    below ``lo`` (V, lo ≤ hi), holding its state in between.

    Before the first sample outside the band the state is ``initial`` when given, else each sample's
    own side of the band's middle. ``lo == hi`` is a plain comparator, ``v > hi``.
    """
    v = np.asarray(v, dtype=float)
    if lo == hi:
        return (v > hi).astype(np.uint8)
    up = v > hi
    decided = up | (v < lo)
    # index of the last decided sample at or before each sample (forward fill of the decided state)
    idx = np.where(decided, np.arange(v.size), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.empty(v.size, dtype=np.uint8)
    has = idx >= 0
    out[has] = up[idx[has]]
    out[~has] = (v[~has] > 0.5 * (lo + hi)) if initial is None else int(initial)
    return out


def n_transitions(states: np.ndarray) -> int:
    """Number of changes of state (0→1 and 1→0) in a sequence of comparator states or bits."""
    s = np.asarray(states)
    return int(np.count_nonzero(s[1:] != s[:-1]))
