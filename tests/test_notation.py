"""Engineering notation for people (report/notation.eng) and the datasheet shown with it; files keep SI floats."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from noisecell.report.notation import eng
from noisecell.report.procedures.datasheet import Datasheet


@pytest.mark.parametrize("value, unit, ci, signed, text", [
    # the example: one prefix for value and interval, three figures on the largest magnitude
    (5.016e-4, "V", (-9.4e-4, 1.94e-3), True, "+0.50 mV [−0.94, +1.94]"),
    (2.81e-3, "V", (1.53e-3, 5.14e-3), False, "2.81 mV [1.53, 5.14]"),
    (268e-9, "s", (205e-9, 349e-9), False, "268 ns [205, 349]"),
    # rounding that reaches the next decade moves to the next prefix, not to "1000 ns"
    (999.7e-9, "s", None, False, "1.00 µs"),
    (999.4e-9, "s", None, False, "999 ns"),
    # rates in 1/s read as Hz; an unbounded end prints as infinity
    (1.2e6, "1/s", (1.0e6, math.inf), False, "1.20 MHz [1.00, +∞]"),
    # units that take no prefix keep the plain number
    (89.04, "1/V", (48.67, 162.9), False, "89 1/V [49, 163]"),
    (0.5483, "bits/sample", None, False, "0.548 bits/sample"),
    (-3.2e-6, "V/°C", (-5.0e-6, -1.4e-6), True, "−3.20 µV/°C [−5.00, −1.40]"),
    (1.2838e-15, "J", (9.838e-16, 1.6753e-15), False, "1.28 fJ [0.98, 1.68]"),
    # a large plain number gets an engineering exponent shared with its interval
    (446949.0, "", (342502.0, 583247.0), False, "447 ×10³ [343, 583]"),
    (float("nan"), "V", None, False, "–"),
    (None, "V", None, False, "–"),
    # an interval with a missing end is left out rather than printed half
    (1e-3, "V", (float("nan"), 2e-3), False, "1.00 mV"),
])
def test_eng(value, unit, ci, signed, text):
    assert eng(value, unit, ci, signed=signed) == text


def test_minus_zero_is_not_negative():
    # -0.0004 mV rounds to 0.00 at this precision: no sign for a number that prints as zero
    assert eng(-4e-7, "V", (-1e-3, 1e-3)) == "0.00 mV [−1.00, 1.00]"


def test_datasheet_shows_notation_and_keeps_si_floats():
    t = pd.DataFrame([
        {"quantity": "V50 (bias for P(1) = 0.5)", "value": 5.016e-4, "ci_lo": -9.4e-4, "ci_hi": 1.94e-3, "unit": "V",
         "condition": "tt 27 °C 0.1 V", "note": ""},
        {"quantity": "repetition count test cutoff C", "value": 38.0, "ci_lo": math.nan, "ci_hi": math.nan,
         "unit": "samples", "condition": "tt 27 °C 0.1 V", "note": ""},
        {"quantity": "operating points simulated", "value": 54.0, "ci_lo": math.nan, "ci_hi": math.nan, "unit": "",
         "condition": "all", "note": ""}])
    ds = Datasheet(t)
    shown = ds.display_table()["value [95 % CI]"].tolist()
    assert shown == ["+0.50 mV [−0.94, +1.94]", "38 samples", "54"]
    assert "V50 (bias for P(1) = 0.5) = +0.50 mV [−0.94, +1.94]" in ds.summary()
    # the table itself (what datasheet.csv holds) is untouched: plain SI floats
    assert ds.table["value"].tolist() == [5.016e-4, 38.0, 54.0]
    # and reads back from the CSV to the same text (no unit is NaN there)
    import io
    back = Datasheet(pd.read_csv(io.StringIO(t.to_csv(index=False))))
    assert back.display_table()["value [95 % CI]"].tolist() == shown
