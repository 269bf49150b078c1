"""Where the tests find the shared reference captures (../shared/data beside the repository).

The captures are never copied into the repository, so a plain clone has no ../shared: tests that
need one skip with a reason saying where it should be, instead of failing `make test`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_capture(name: str) -> Path:
    """Path of ../shared/data/<name>; skips the calling test when that file is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"reference capture {name} not found: put the shared data folder at {SHARED_DATA}")
    return path
