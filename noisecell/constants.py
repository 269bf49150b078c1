"""Physical and statistical constants, each defined once.

From scipy rather than typed in: ``scipy.constants`` holds the exact SI-2019 values, and the normal
quantile comes from ``scipy.special.ndtri`` (what ``scipy.stats.norm.ppf`` evaluates, without
importing scipy.stats).
"""
from __future__ import annotations

from scipy import constants as _c
from scipy.special import ndtri as _ndtri

#: Boltzmann constant, J/K (exact)
K_B: float = float(_c.k)
#: elementary charge, C (exact)
Q_E: float = float(_c.e)
#: 0 °C in K
ZERO_C_K: float = float(_c.zero_Celsius)
#: two-sided 95 % quantile of the standard normal distribution (1.959963984540054)
Z95: float = float(_ndtri(0.975))
