"""Numbers for people: engineering notation with SI prefixes and confidence intervals.

``eng(5.016e-4, "V", (-9.4e-4, 1.94e-3), signed=True)`` → ``"+0.50 mV [−0.94, +1.94]"``.

One prefix for the value and its interval (so they compare at a glance), chosen from the largest
magnitude of the three; one number of decimals for all three, giving that largest magnitude
``digits`` significant figures. Negative numbers use the minus sign U+2212. Files (CSV, JSON) keep
plain SI floats; this is only for what a reader sees (HTML tables, summaries, the datasheet).
"""
from __future__ import annotations

import math

MINUS = "\u2212"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
             (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a"), (1e-21, "z"))
#: units that take an SI prefix (a prefix on "1/V", "bits/sample" or "kT·ln2" would read wrong)
PREFIXABLE = ("V", "s", "Hz", "W", "J", "A", "F", "Ω", "V/°C", "s/°C")
#: units shown under another name (a rate in 1/s reads as Hz with a prefix: "1.2 MHz", not "1.2 M1/s")
SHOWN_AS = {"1/s": "Hz"}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _num(x: float, decimals: int, signed: bool) -> str:
    s = f"{abs(x):.{decimals}f}"
    if x < 0 and float(s) != 0:
        return MINUS + s
    return ("+" + s) if signed else s


def eng(value: float | None, unit: str = "", ci: tuple[float, float] | None = None, *, signed: bool = False,
        digits: int = 3) -> str:
    """``value`` (and ``ci``, a (lo, hi) pair) in engineering notation with ``unit``.

    signed: show "+" on positive numbers (quantities whose sign matters: offsets, shifts, slopes).
    digits: significant figures of the largest magnitude among value, lo and hi.
    Missing or non-finite value → "–"; a CI with a missing end is left out; an infinite end prints ∞.
    """
    if not _finite(value):
        return "–"
    unit = SHOWN_AS.get(unit, unit)
    nums = [float(value)]
    has_ci = ci is not None and len(ci) == 2 and all(x is not None and not math.isnan(float(x)) for x in ci)
    if has_ci:
        nums += [float(c) for c in ci if math.isfinite(float(c))]
    big = max(abs(x) for x in nums)
    scale, prefix = 1.0, ""
    if unit in PREFIXABLE and big > 0:
        # the prefix of the largest magnitude once rounded to ``digits`` figures (999.7 ns is 1.00 µs)
        e = math.floor(math.log10(big))
        rounded = round(big / 10 ** e, digits - 1) * 10 ** e
        for sc, p in _PREFIXES:
            if rounded >= sc * (1 - 1e-9):
                scale, prefix = sc, p
                break
        else:
            scale, prefix = _PREFIXES[-1]
    power = ""
    if unit not in PREFIXABLE and big >= 1e4:
        # a large plain number (e.g. an energy in units of kT·ln2): engineering exponent, not 6 digits
        e3 = 3 * int(math.floor(math.log10(big) / 3))
        scale, power = 10.0 ** e3, "×10" + str(e3).translate(_SUPERSCRIPT)
    top = big / scale
    if top > 0:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(top * (1 + 1e-12)))))
        # rounding up to the next decade (999.7 → 1000) must not add a figure
        if round(top, decimals) >= 10 ** (digits - decimals) and decimals > 0:
            decimals -= 1
    else:
        decimals = digits - 1
    u = (f" {power}" if power else "") + (f" {prefix}{unit}" if (prefix or unit) else "")
    text = _num(value / scale, decimals, signed) + u
    if power:
        text = _num(value / scale, decimals, signed) + u
        if has_ci:
            text += " [" + ", ".join(_num(float(c) / scale, decimals, signed) for c in ci) + "]"
        return text
    if has_ci:
        ends = []
        for c in ci:
            c = float(c)
            ends.append(("+∞" if c > 0 else MINUS + "∞") if math.isinf(c) else _num(c / scale, decimals, signed))
        text += f" [{ends[0]}, {ends[1]}]"
    return text
