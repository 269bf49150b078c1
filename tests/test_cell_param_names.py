"""A .param named like an ngspice function (LN, exp, sqrt...) makes ngspice stop with "Cannot compute
substitute"; time/hertz/temper are substituted silently. The cell loader refuses both, in one line
naming the file, the key and the fix (issue 16)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisecell.cells import NGSPICE_FUNCTION_NAMES, load_cell
from noisecell.errors import InputError

SRC = Path(__file__).resolve().parents[1] / "spice_models" / "pbit_cs"


def _cell_with(tmp_path: Path, old: str, new: str, *, toml: bool = True) -> Path:
    d = tmp_path / "c"
    shutil.copytree(SRC, d)
    cir = d / "pbit_cs.cir"
    cir.write_text(cir.read_text().replace(old, new))
    if toml:
        t = d / "cell.toml"
        t.write_text(t.read_text().replace(f'"{old}"', f'"{new}"').replace(f"\n{old} =", f"\n{new} ="))
    return d


def test_the_example_loads():
    assert load_cell(str(SRC)).params  # the rename below is what breaks it


@pytest.mark.parametrize("name, key", [("LN", "params.LN"), ("exp", "params.exp"), ("Sqrt", "params.Sqrt"),
                                       ("min", "params.min"), ("TEMPER", "params.TEMPER")])
def test_declared_param_named_like_a_function_is_refused(tmp_path, name, key):
    d = _cell_with(tmp_path, "VST", name)
    with pytest.raises(InputError) as e:
        load_cell(str(d))
    msg = str(e.value)
    assert "\n" not in msg and "cell.toml" in msg and repr(key) in msg and "rename it" in msg


def test_bias_and_supply_keys_named(tmp_path):
    with pytest.raises(InputError, match=r"'bias\.param'.*ngspice function log"):
        load_cell(str(_cell_with(tmp_path, "VB", "LOG")))


def test_undeclared_template_param_is_refused_naming_the_netlist(tmp_path):
    d = tmp_path / "c"
    shutil.copytree(SRC, d)
    cir = d / "pbit_cs.cir"
    cir.write_text(cir.read_text().replace(".param VDD=", ".param EXP=1 VDD="))
    with pytest.raises(InputError, match=r"(?i)pbit_cs\.cir: \.param EXP is the ngspice function exp\(\).*rename it"):
        load_cell(str(d))


def test_cli_exit_2_one_line(tmp_path):
    d = _cell_with(tmp_path, "VST", "LN")
    out = subprocess.run([sys.executable, "-m", "noisecell", "cell", "info", str(d)], capture_output=True, text=True)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "params.LN" in lines[0] and "Cannot compute substitute" in lines[0]


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_the_list_is_what_ngspice_refuses(tmp_path):
    """The refusal list is ngspice's: each listed name fails in the installed ngspice, a near miss does not."""
    def runs(name: str) -> bool:
        f = tmp_path / f"{name}.cir"
        f.write_text(f"* t\n.param VV=1 {name}=2\nV1 a 0 {{VV}}\nR1 a 0 {{{name}}}\n.op\n.end\n")
        r = subprocess.run(["ngspice", "-b", str(f)], capture_output=True, text=True, timeout=60)
        return r.returncode == 0 and "Cannot compute substitute" not in r.stdout + r.stderr

    for name in ("ln", "sqrt", "ternary_fcn", "nint"):
        assert name in NGSPICE_FUNCTION_NAMES and not runs(name)
    assert runs("lnm") and runs("sqrt_x")
