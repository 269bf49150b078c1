"""Atomic file writes: a hidden temporary file in the target's folder, flushed to disk, renamed over
the target (``os.replace`` is atomic on POSIX). A crash or ``kill -9`` at any moment leaves the old
file or the new one, never half of one. Temporary names are ``.<name>.<random><suffix>``; the sweep
store removes such leftovers (``.*.tmp*``) and never reads them.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp", fsync: bool = True,
                before_rename: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; write it inside the block. On a clean exit the file
    is fsynced (unless ``fsync`` is False), ``before_rename()`` is called, and it is renamed to
    ``path``; on any error it is removed. ``suffix``: the temporary name's ending (np.save appends
    ".npy" to a name without it, so pass ".tmp.npy" for it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = True,
                 before_rename: Callable[[], None] | None = None) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, fsync=fsync, before_rename=before_rename) as tmp:
        tmp.write_bytes(raw)
    return Path(path)
