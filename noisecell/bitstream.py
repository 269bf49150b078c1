"""The bit stream: what digitisation produces and the analysis consumes (simulated or measured).

Its own module so that the producers (:mod:`noisecell.digitize`, the loaders in :mod:`noisecell.io`)
and the consumers depend on it, not on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BitStream:
    """A sampled bit stream.

    bits: uint8 array of 0/1 (one sample per element).
    sample_period_s: time between samples, s (None when unknown: per-sample results only).
    source: where it came from (file path or job id), for messages and reports.
    meta: JSON-ready description (waveform meta, digitisation, format, ...).
    """

    bits: np.ndarray
    sample_period_s: float | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.bits.size)

    @property
    def n_samples(self) -> int:
        return int(self.bits.size)

    @property
    def duration_s(self) -> float | None:
        return None if self.sample_period_s is None else self.sample_period_s * self.bits.size
