"""Netlist safety checks, parsing (continuations, case, PDK subcircuits) and parameter substitution."""
from __future__ import annotations

from pathlib import Path

import pytest

from noisecell.errors import InputError, UnsafeNetlistError
from noisecell.netlist import (check_template, find_mosfets, find_resistors, logical_lines, set_params,
                               template_params)

SAFE = ".param VDD=0.06 VB=0\nVdd vdd 0 {VDD}\nM1 q qb 0 0 nch W=1u L=1u\n.model nch nmos level=54\n"


@pytest.mark.parametrize("bad, match", [
    (".control\nshell rm -rf /\n.endc\n", r"\.control"),
    ("shell ls\n", "shell"),
    ("system('ls')\n", "system"),
    (".exec ls\n", "allow-list"),
    (".csparam x=1\n", "allow-list"),
    ("R1 a b `echo 1k`\n", "backtick"),
    ("R1 a b $(echo 1k)\n", r"\$\("),
    (".include /etc/passwd\n", "outside the allowed folders"),
    (".lib '../../x.lib' tt\n", "outside the allowed folders"),
    ("A1 in out filesrc\n", "XSPICE"),
    (".tran 1n 1u\n", "not allowed in a cell template"),
    (".CONTROL\nrun\n.ENDC\n", r"\.control"),
])
def test_unsafe_netlists_are_refused(bad, match, tmp_path):
    src = tmp_path / "cell.cir"
    with pytest.raises(UnsafeNetlistError, match=match) as ei:
        check_template(SAFE + bad, source=str(src), allowed_dirs=[tmp_path])
    assert str(src) in str(ei.value) and "\n" not in str(ei.value)
    check_template(SAFE + bad, source=str(src), allowed_dirs=[tmp_path], trusted=True)  # explicit trust


def test_safe_netlist_and_include_inside_allowed_folder(tmp_path):
    (tmp_path / "models.inc").write_text(".model nch nmos level=54\n")
    text = SAFE + ".include models.inc\n* a comment with shell in it is fine\nR1 a b 1k ; inline comment `x`\n"
    # the backtick sits in a comment but is still refused: the raw scan is deliberately strict
    with pytest.raises(UnsafeNetlistError):
        check_template(text, source=str(tmp_path / "c.cir"), allowed_dirs=[tmp_path])
    text = SAFE + ".include models.inc\n* a comment mentioning shell is fine\nR1 a b 1k ; inline\n"
    check_template(text, source=str(tmp_path / "c.cir"), allowed_dirs=[tmp_path])


def test_continuations_case_and_pdk_subcircuits():
    text = """* title-like comment
.PARAM W1=1
XN1 q qb sn1 sub
+ sky130_fd_pr__nfet_03v3_nvt w={W1}
+ l = 0.5
xp1 Q qb vdd nw1 SKY130_FD_PR__PFET_01V8_LVT W=0.42 L=0.35
Xother a b c mysub
m7 d g s b PCH w=1u l=1u
.model pch PMOS level=54
.subckt inv in out vdd
Mi out in 0 0 nch
.ends inv
"""
    mos = find_mosfets(text, "sky130")
    names = [m.name for m in mos]
    assert names == ["XN1", "xp1", "m7", "Mi"]
    xn1, xp1, m7, mi = mos
    assert (xn1.drain, xn1.gate, xn1.source, xn1.bulk, xn1.polarity, xn1.subckt) == ("q", "qb", "sn1", "sub", "n", True)
    assert xp1.polarity == "p" and xp1.drain == "Q"
    assert m7.polarity == "p" and not m7.subckt
    assert mi.scope == "inv" and m7.scope is None
    # generic technology does not treat sky130 subcircuits as MOSFETs
    assert [m.name for m in find_mosfets(text, "generic")] == ["m7", "Mi"]
    assert template_params(text) == {"w1": "1"}
    assert logical_lines(text)[1].text.startswith("XN1") and "l=0.5" in logical_lines(text)[1].text.replace(" ", "")


def test_set_params_replaces_values_and_refuses_unknown_or_non_finite():
    text = ".param VDD=0.06 VB=0\n+ VREF={VB+1}\nVdd vdd 0 {VDD}\n"
    out = set_params(text, {"vb": 0.001, "VREF": -0.5})
    assert template_params(out) == {"vdd": "0.06", "vb": "0.001", "vref": "-0.5"}
    with pytest.raises(InputError, match="not defined"):
        set_params(text, {"VX": 1.0})
    with pytest.raises(InputError, match="finite"):
        set_params(text, {"VB": float("inf")})
    with pytest.raises(InputError, match="number"):
        set_params(text, {"VB": "1; shell"})
    with pytest.raises(InputError, match="identifier"):
        set_params(text, {"V B": 1.0})


def test_find_resistors_values():
    rs = find_resistors("R1 a b 10k\nR2 a 0 {RV*2}\nR3 b 0 r=5meg\n")
    assert [(r.name, r.value) for r in rs] == [("R1", "10k"), ("R2", "RV*2"), ("R3", "5meg")]
