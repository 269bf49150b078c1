"""The one-pass numba scan against a plain NumPy reference (run lengths, censoring, long runs, bad values)."""
import numpy as np
import pytest

from noisecell.analysis.runs import HIST_LEN, scan_runs
from noisecell.errors import InputError


def _reference(z):
    ch = np.flatnonzero(z[1:] != z[:-1]) + 1
    b = np.concatenate([[0], ch, [z.size]])
    return np.diff(b), z[b[:-1]]


def _cases():
    rng = np.random.default_rng(0)
    yield (rng.random(1001) < 0.5).astype(np.uint8)
    yield np.repeat((rng.random(300) < 0.3).astype(np.uint8), rng.integers(1, 200, 300))
    yield np.zeros(10, np.uint8)
    yield np.array([1, 0], np.uint8)
    yield np.repeat(np.array([0, 1, 0, 1], np.uint8), [3, HIST_LEN + 4465, 5, 2])
    yield np.repeat(np.array([1, 0, 1, 0, 1], np.uint8), [3, HIST_LEN, 5, 2, 100_000])
    yield np.repeat((np.arange(40) % 2).astype(np.uint8), rng.integers(1, 3 * HIST_LEN, 40))


@pytest.mark.parametrize("z", list(_cases()))
def test_scan_matches_reference(z):
    r = scan_runs(z)
    L, S = _reference(z)
    assert (r.first_len, r.first_state, r.last_len, r.last_state) == (L[0], S[0], L[-1], S[-1])
    assert r.n1 == z.sum() and r.n == z.size
    assert r.n_up == np.sum((z[1:] == 1) & (z[:-1] == 0)) and r.n_down == np.sum((z[1:] == 0) & (z[:-1] == 1))
    assert r.n0_at_risk == np.sum(z[:-1] == 0) and r.n1_at_risk == np.sum(z[:-1] == 1)
    for s in (0, 1):
        lengths, counts = r.dwell_counts(s)
        u, c = np.unique(L[1:-1][S[1:-1] == s], return_counts=True)   # complete dwells only
        np.testing.assert_array_equal(lengths, u)
        np.testing.assert_array_equal(counts, c)


def test_bad_values_located():
    for z, where in ((np.array([0, 1, 3, 0], np.uint8), 2), (np.array([0] * 20 + [1, 5] + [1] * 20, np.uint8), 21),
                     (np.array([0] * 24 + [7] * 20, np.uint8), 24), (np.array([2, 0, 0], np.uint8), 0)):
        with pytest.raises(InputError, match=f"at sample {where}"):
            scan_runs(z)
    with pytest.raises(InputError):
        scan_runs(np.array([1], np.uint8))
