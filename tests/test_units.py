import math

import pytest

from noisecell.errors import InputError
from noisecell.units import format_si, parse_si


@pytest.mark.parametrize("text,value", [
    ("20us", 20e-6), ("1n", 1e-9), ("5m", 5e-3), ("2.5meg", 2.5e6), ("-0.02", -0.02),
    ("1e-9", 1e-9), ("3.3V", 3.3), ("1ns", 1e-9), (".5u", 0.5e-6), (7, 7.0), (1.5e-3, 1.5e-3),
])
def test_parse_si(text, value):
    unit = "V" if str(text).endswith("V") else ("s" if str(text).endswith("s") else None)
    assert math.isclose(parse_si(text, unit=unit), value, rel_tol=1e-12)


@pytest.mark.parametrize("bad", ["", "abc", "20ux", "1..2", "nan", "inf", True])
def test_parse_si_rejects(bad):
    with pytest.raises(InputError):
        parse_si(bad, unit="s", what="--duration")


def test_wrong_unit_named():
    with pytest.raises(InputError, match="--duration"):
        parse_si("20uV", unit="s", what="--duration")


def test_format_si():
    assert format_si(2e-5, "s") == "20 µs"
    assert format_si(3.5e-16, "J") == "350 aJ"
