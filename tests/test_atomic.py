"""Atomic writes: the old file or the new one, never a partial one, and no temporary left behind."""
from __future__ import annotations

import numpy as np
import pytest

from noisecell.atomic import atomic_path, atomic_write


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    atomic_write(target, '{"v": 1}\n')
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')    # half written when the writer dies
            raise RuntimeError("killed")
    assert target.read_text() == '{"v": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_rename_happens_after_the_hook_and_numpy_suffix(tmp_path):
    seen = []
    target = tmp_path / "bits.npy"
    with atomic_path(target, suffix=".tmp.npy", before_rename=lambda: seen.append(target.exists())) as tmp:
        np.save(tmp, np.arange(3))              # np.save keeps a name that already ends in .npy
    assert seen == [False] and np.array_equal(np.load(target), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["bits.npy"]
