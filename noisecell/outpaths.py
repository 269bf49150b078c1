"""Output paths checked before any work starts, so a simulation or a sweep is never lost to a path.

Each command calls :func:`check_output_file` or :func:`check_output_dir` on its ``--out`` before it
loads models or starts ngspice. Missing folders are allowed when their nearest existing ancestor is
a writable folder (the writers create them; the check itself creates nothing, so a refused command
leaves no empty folders behind). Writability is proven by creating and removing a temporary file:
permission bits alone do not tell (root ignores them; read-only mounts and /proc do not show in them).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def _probe_writable(folder: Path, what: str, shown: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".noisecell-write-check.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{what} {shown}: cannot write in {folder} ({exc.strerror or exc}); "
                         "choose a writable place") from None
    os.close(fd)
    os.unlink(tmp)


def _check_folder(folder: Path, what: str, shown: Path) -> None:
    """``folder`` exists as a writable folder, or could be created: its nearest existing ancestor
    is a writable folder. Nothing is created (the writer makes the folders when it has a result)."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling symlink: mkdir would fail on it
            raise InputError(f"{what} {shown}: {probe} is a broken symlink; choose another path")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{what} {shown}: {probe} is a file, not a folder; choose another path")
    _probe_writable(probe, what, shown)


def check_output_file(path: str | os.PathLike, *, suffix: str | None = None, what: str = "--out") -> Path:
    """``path`` as a Path once it is certain a file can be written there; else InputError naming ``what``.

    suffix: required extension (e.g. ".npz").
    """
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise InputError(f"{what} {str(path)!r}: not a file name; give a path such as out/run{suffix or ''}")
    if suffix is not None and p.suffix.lower() != suffix:
        raise InputError(f"{what} {p}: the file must end in {suffix}")
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder; give a file name inside it (e.g. {p / ('out' + (suffix or ''))})")
    parent = p.parent if str(p.parent) else Path(".")
    _check_folder(parent, what, p)
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{what} {p}: the file exists and is read-only; remove it or choose another name")
    return p


def check_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """``path`` as a Path once it is a writable folder or can be created as one; else InputError."""
    p = Path(path)
    if str(path) == "":
        raise InputError(f"{what}: empty folder name; give a folder such as out/")
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p}: is a file, not a folder; choose a folder name")
    _check_folder(p, what, p)
    return p
