"""Energy figures of a bit cell from its supply power and switching statistics.

* energy per flip = P / (observed flip rate)
* energy per bit = P · τ (one bit per correlation time: the convention behind published aJ/bit)
* energy per bit of min-entropy at sampling period T = P · T / Hmin(T), with Hmin(T) the min-entropy
  rate per sample of the fitted chain re-sampled every T (see :func:`.markov.resample_chain`)
All are also given in units of kT·ln 2 (the Landauer energy at the cell's temperature).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .markov import min_entropy_rate, resample_chain
from ..constants import K_B  # re-exported



def kt_ln2_j(temp_c: float) -> float:
    """kT·ln 2 at temp_c (°C), J."""
    return K_B * (temp_c + 273.15) * math.log(2.0)


@dataclass(frozen=True)
class EnergyEstimates:
    """mean_supply_power_w (W); energy_per_flip_j, energy_per_bit_j (= P·τ),
    energy_per_min_entropy_bit_j at entropy_sample_period_s (J); the same in kT·ln2 units when
    temp_c is known."""

    mean_supply_power_w: float
    energy_per_flip_j: float
    energy_per_bit_j: float
    energy_per_min_entropy_bit_j: float
    entropy_sample_period_s: float
    h_min_at_period: float
    temp_c: float | None
    kt_ln2_j: float | None
    energy_per_flip_kt_ln2: float | None
    energy_per_bit_kt_ln2: float | None
    energy_per_min_entropy_bit_kt_ln2: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def energy_estimates(power_w: float, flip_rate_hz: float, tau_s: float, a: float, b: float,
                     sample_period_s: float, *, entropy_sample_period_s: float | None = None,
                     temp_c: float | None = None) -> EnergyEstimates:
    """power_w: mean supply power, W; flip_rate_hz: observed flips per second; tau_s: correlation time,
    s; (a, b): fitted per-sample transition probabilities at sample_period_s (s);
    entropy_sample_period_s: the period at which min-entropy is harvested (default: sample_period_s)."""
    T = sample_period_s if entropy_sample_period_s is None else float(entropy_sample_period_s)
    e_flip = power_w / flip_rate_hz if flip_rate_hz > 0 else float("inf")
    e_bit = power_w * tau_s if math.isfinite(tau_s) else float("nan")
    k = T / sample_period_s
    try:
        aa, bb = resample_chain(a, b, k)
        hmin = min_entropy_rate(aa, bb)
    except ValueError:
        hmin = float("nan")
    e_hmin = power_w * T / hmin if hmin > 0 else float("inf")
    unit = kt_ln2_j(temp_c) if temp_c is not None else None

    def inunit(x):
        return None if unit is None else x / unit

    return EnergyEstimates(float(power_w), float(e_flip), float(e_bit), float(e_hmin), float(T), float(hmin),
                           temp_c, unit, inunit(e_flip), inunit(e_bit), inunit(e_hmin))
