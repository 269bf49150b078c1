"""Sufficient statistics of one record for pooling (:class:`SegmentCounts`).

Its own module so that both the single-stream analysis (:mod:`.stream`, which computes a stream's
counts) and pooling (:mod:`.pool`, which sums them and calls the stream's assembly step) can import it
without importing each other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .runs import scan_runs


@dataclass(frozen=True)
class SegmentCounts:
    """Sufficient statistics of one or more independent 0/1 records for the two-state model.

    n / n1: samples / ones; n_up (0→1), n_down (1→0): transitions; n0_at_risk / n1_at_risk: samples
    in 0 / 1 that have a successor in their record; n_pairs: successive-sample pairs (Σ n_k − 1);
    dwells: per state, {length in samples: number of complete dwells} (first and last dwell of each
    record are censored and left out). Quacks like :class:`.runs.RunStats` for :mod:`.rates`.
    """

    n: int
    n1: int
    n_up: int
    n_down: int
    n0_at_risk: int
    n1_at_risk: int
    n_pairs: int
    dwells: tuple[dict, dict] = field(default_factory=lambda: ({}, {}))

    @property
    def n_flips(self) -> int:
        return self.n_up + self.n_down

    def dwell_counts(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, counts) of the complete dwells in ``state`` (samples), lengths ascending."""
        d = self.dwells[state]
        if not d:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ls = np.array(sorted(d), np.int64)
        return ls, np.array([d[int(x)] for x in ls], np.int64)

    @classmethod
    def from_runs(cls, rs) -> "SegmentCounts":
        """From one stream's :class:`.runs.RunStats`."""
        dw = []
        for s in (0, 1):
            ls, cs = rs.dwell_counts(s)
            dw.append({int(a): int(b) for a, b in zip(ls, cs)})
        return cls(rs.n, rs.n1, rs.n_up, rs.n_down, rs.n0_at_risk, rs.n1_at_risk, rs.n - 1, (dw[0], dw[1]))

    @classmethod
    def from_bits(cls, bits) -> "SegmentCounts":

        return cls.from_runs(scan_runs(np.asarray(bits)))

    @classmethod
    def merge(cls, parts: Sequence["SegmentCounts"]) -> "SegmentCounts":
        """Independent records together: every count adds (no transition between records)."""
        dw: tuple[dict, dict] = ({}, {})
        for p in parts:
            for s in (0, 1):
                for k, v in p.dwells[s].items():
                    dw[s][k] = dw[s].get(k, 0) + v
        return cls(*(sum(getattr(p, a) for p in parts) for a in
                     ("n", "n1", "n_up", "n_down", "n0_at_risk", "n1_at_risk", "n_pairs")), dwells=dw)

    def to_row(self) -> dict:
        """Store columns (names kept from the chunk rows of earlier versions)."""
        return {"n_samples": self.n, "n_ones": self.n1, "n_up": self.n_up, "n_down": self.n_down,
                "occ0_samples": self.n0_at_risk, "occ1_samples": self.n1_at_risk, "n_pairs": self.n_pairs,
                "dwell_hist_json": json.dumps([sorted(self.dwells[0].items()), sorted(self.dwells[1].items())])}

    @classmethod
    def from_row(cls, row: Mapping) -> "SegmentCounts":
        dw: tuple[dict, dict] = ({}, {})
        text = row.get("dwell_hist_json")
        if isinstance(text, str) and text:
            h = json.loads(text)
            dw = ({int(a): int(b) for a, b in h[0]}, {int(a): int(b) for a, b in h[1]})
        n = int(row["n_samples"])
        pairs = row.get("n_pairs")
        return cls(n, int(row["n_ones"]), int(row["n_up"]), int(row["n_down"]), int(row["occ0_samples"]),
                   int(row["occ1_samples"]), int(pairs) if pairs is not None and pairs == pairs else n - 1, dw)
