"""Known truth for rate-model tests: ln k_up / ln k_down quadratic in bias with a common curvature (1/V²),
as a barrier tilted by the bias gives (noisecell.model.ratefit)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurvedTruth:
    """v50_v, scale_v (V), tau50_s (s), slope_sum_per_v (1/V: b_up + b_down), curvature_per_v2 (1/V²)."""

    v50_v: float
    scale_v: float
    tau50_s: float
    slope_sum_per_v: float
    curvature_per_v2: float

    def ln_rates(self, v):
        """(ln k_up, ln k_down) in ln(1/s) at bias ``v`` (V)."""
        x = np.asarray(v, float) - self.v50_v
        lk = -math.log(2 * self.tau50_s)
        bu = 0.5 * (self.slope_sum_per_v + 1 / self.scale_v)
        bd = 0.5 * (self.slope_sum_per_v - 1 / self.scale_v)
        c = self.curvature_per_v2
        return lk + bu * x + c * x * x, lk + bd * x + c * x * x

    def tau(self, v):
        """1/(k_up + k_down) (s) at bias ``v`` (V)."""
        lu, ld = self.ln_rates(v)
        return np.exp(-np.logaddexp(lu, ld))
