"""SI-suffixed numbers as written in SPICE and on the command line ("20us", "1n", "5m", "2.5meg")."""
from __future__ import annotations

import math
import re

from .errors import InputError

_SCALE = {
    "t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "": 1.0,
    "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15, "a": 1e-18,
}
_NUMBER = re.compile(
    r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(meg|[tgkmuµnpfa]?)\s*([a-zA-Z°]*)\s*$",
    re.IGNORECASE,
)


def parse_si(value: str | float | int, *, unit: str | None = None, what: str = "value") -> float:
    """Parse ``value`` ("20us", "1n", "5m", "-0.02", 3e-9) to a float in base SI units.

    ``unit`` (e.g. "s", "V", "Hz") is the only unit letter accepted after the scale suffix; "m" is
    always milli (SPICE convention), "meg" is mega. Raises :class:`InputError` naming ``what``.
    """
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        m = _NUMBER.match(str(value))
        if not m:
            raise InputError(f"{what}: cannot read {value!r} as a number with an SI suffix (e.g. 20us, 1n, 5m)")
        mantissa, suffix, trailing = m.groups()
        suffix = suffix.lower()
        if trailing and (unit is None or trailing.lower() != unit.lower()):
            # "1s" with unit "s" is fine; "20ux" or a wrong unit is not
            want = f" (expected unit {unit!r})" if unit else ""
            raise InputError(f"{what}: unexpected unit {trailing!r} in {value!r}{want}")
        x = float(mantissa) * _SCALE[suffix]
    if not math.isfinite(x):
        raise InputError(f"{what}: {value!r} is not finite")
    return x


def format_si(x: float, unit: str = "", digits: int = 4) -> str:
    """Format ``x`` with an engineering prefix: format_si(2e-5, 's') -> '20 µs'."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g} {unit}".strip()
    prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a")]
    for scale, p in prefixes:
        if abs(x) >= scale * 0.9999999:
            return f"{x / scale:.{digits}g} {p}{unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()


#: 0 K in °C; a temperature at or below it is not physical (kT ≤ 0 makes energies negative)
ABSOLUTE_ZERO_C = -273.15
#: the hottest temperature noisecell accepts, °C (semiconductor models end far below this)
MAX_TEMP_C = 1000.0


def require_positive(x: float | None, what: str, unit: str = "s") -> float | None:
    """``x`` unchanged when it is None or a finite number > 0; else InputError naming ``what``."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        raise InputError(f"{what}: must be a positive number{' of ' + unit if unit else ''}, got {x!r}")
    return float(x)


def require_temperature_c(x: float | None, what: str = "--temp") -> float | None:
    """``x`` unchanged when it is None or a finite temperature above 0 K (°C); else InputError."""
    if x is None:
        return None
    if (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)
            or not ABSOLUTE_ZERO_C < x <= MAX_TEMP_C):
        raise InputError(f"{what}: {x!r} °C is not a temperature above absolute zero ({ABSOLUTE_ZERO_C} °C) "
                         f"and up to {MAX_TEMP_C:g} °C; give the temperature in °C")
    return float(x)
