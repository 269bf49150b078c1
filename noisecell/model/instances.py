"""Per-cell mismatch draws of a cell model (the sampler and the model both use them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CellInstances:
    """Per-cell mismatch draws: ``dv50_v`` (V) offsets of V50 and ``gain`` = scale_i / scale (1)."""

    dv50_v: np.ndarray
    gain: np.ndarray

    @classmethod
    def nominal(cls, n: int) -> "CellInstances":
        return cls(np.zeros(n), np.ones(n))

    def __len__(self) -> int:
        return len(self.dv50_v)
