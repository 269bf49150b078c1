"""Seeded synthetic bit streams shared by the entropy tests (uint8 0/1)."""
import numpy as np


def iid(p, n, seed):
    """n independent bits with P(1) = p."""
    return (np.random.default_rng(seed).random(n) < p).astype(np.uint8)


def markov_chain(p_stay, n, seed):
    """Symmetric two-state chain starting at 0 that keeps its value with probability p_stay
    (lag-1 autocorrelation 2·p_stay − 1)."""
    rng = np.random.default_rng(seed)
    flips = (rng.random(n - 1) >= p_stay).astype(np.uint8)
    return np.concatenate(([0], np.cumsum(flips) & 1)).astype(np.uint8)
