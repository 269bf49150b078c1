"""Hostile and careless input across every command and file type (issue 15).

Each case is something a user did or could do: a netlist that tries to reach files outside its
folder, a sweep store with one damaged file, an output path that cannot be written, numbers that are
not numbers, binary or deeply nested files. The contract checked everywhere: bad input → exit 2 with
ONE line naming the file (or option) and the fix, simulation failure → exit 3, never a traceback,
no completed work lost. Most cases need no simulation; the few that do use pbit_generic (fast).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisecell.cells import load_cell
from noisecell.cli import main
from noisecell.errors import InputError, UnsafeNetlistError
from noisecell.netlist import MAX_INCLUDE_DEPTH, check_template, expand_includes

REPO = Path(__file__).resolve().parents[1]
GENERIC = REPO / "spice_models" / "pbit_generic"


def make_cell(tmp_path: Path, extra: str = "", files: dict[str, str | bytes] | None = None,
              name: str = "cellx") -> Path:
    """A copy of pbit_generic in tmp_path/name with ``extra`` appended to its netlist and more files."""
    d = tmp_path / name
    shutil.copytree(GENERIC, d)
    cir = d / "pbit_generic.cir"
    cir.write_text(cir.read_text() + extra)
    for fname, content in (files or {}).items():
        p = d / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return d


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr). A traceback fails the test."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, code: int = 2, *names: str) -> None:
    assert rc == code, (rc, err)
    lines = [l for l in err.strip().splitlines() if l.startswith("noisecell: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in names:
        assert str(n) in lines[0], (n, lines[0])


# ------------------------------------------------------------------------------------------------
# 1. includes: resolved by noisecell inside the cell folder, checked recursively, inlined

INCLUDE_REFUSED = [
    # (extra netlist text, files in the cell folder, message fragment)
    (".include ~/x.inc\n", {}, "'~'"),
    (".inc ~root/x.inc\n", {}, "'~'"),
    (".include /etc/passwd\n", {}, "outside the allowed folders"),
    (".include ../../../../etc/passwd\n", {}, "outside the allowed folders"),
    (".include sub.inc\n", {"sub.inc": ".include /etc/passwd\n"}, "sub.inc:1"),
    (".include sub.inc\n", {"sub.inc": "* ok\n.inc deeper.inc\n", "deeper.inc": ".control\nshell id\n.endc\n"},
     "deeper.inc:1"),
    (".include sub.inc\n", {"sub.inc": "R9 a b `id`\n"}, "backtick"),
    (".include sub.inc\n", {"sub.inc": ".lib '/etc/passwd' tt\n"}, "outside the allowed folders"),
    (".lib lib.spice tt\n", {"lib.spice": ".lib tt\n.include ~/evil\n.endl\n"}, "'~'"),
    (".lib lib.spice ff\n", {"lib.spice": ".lib tt\nR9 a b 1k\n.endl\n"}, "no complete section"),
    (".include self.inc\n", {"self.inc": ".include self.inc\n"}, "cycle"),
    (".include a.inc\n", {"a.inc": ".include b.inc\n", "b.inc": ".include a.inc\n"}, "cycle"),
    (".include missing.inc\n", {}, "no such file"),
    (".include sub\n", {"sub/x.inc": "R9 a b 1k\n"}, "no such file"),
    (".include bin.inc\n", {"bin.inc": b"\x00\x01\x02\xff"}, "NUL"),
    (".include latin.inc\n", {"latin.inc": b"* caf\xe9\n"}, "not UTF-8"),
    (".include sub.inc\n", {"sub.inc": ".tran 1n 1u\n"}, "not allowed in a cell template"),
    (".include sub.inc\n", {"sub.inc": "A1 in out filesrc\n"}, "XSPICE"),
    (".include\n", {}, "without a file name"),
    (".lib lib.spice\n", {"lib.spice": ".lib tt\n.endl\n"}, "expected '.lib FILE SECTION'"),
]


@pytest.mark.parametrize("extra, files, match", INCLUDE_REFUSED)
def test_includes_refused(extra, files, match, tmp_path):
    d = make_cell(tmp_path, extra, files)
    with pytest.raises(InputError, match=match) as ei:
        load_cell(str(d))
    assert "\n" not in str(ei.value)


def test_include_symlink_escaping_the_cell_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.inc"
    outside.write_text("R9 a b 1k\n")
    d = make_cell(tmp_path, ".include link.inc\n")
    (d / "link.inc").symlink_to(outside)
    with pytest.raises(UnsafeNetlistError, match="outside the allowed folders"):
        load_cell(str(d))


def test_include_depth_is_bounded(tmp_path):
    files = {f"i{k}.inc": f".include i{k + 1}.inc\n" for k in range(MAX_INCLUDE_DEPTH + 2)}
    files[f"i{MAX_INCLUDE_DEPTH + 2}.inc"] = "R9 a b 1k\n"
    d = make_cell(tmp_path, ".include i0.inc\n", files)
    with pytest.raises(InputError, match="nested deeper"):
        load_cell(str(d))


def test_cwd_file_is_not_used_for_a_cell_include(tmp_path, monkeypatch):
    # ngspice would find sub.inc in its current directory; noisecell looks only in the cell folder
    d = make_cell(tmp_path, ".include sub.inc\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub.inc").write_text("R9 a b 1k\n")
    with pytest.raises(InputError, match="no such file"):
        load_cell(str(d))


def test_relative_include_in_a_netlist_without_a_file_is_refused():
    with pytest.raises(UnsafeNetlistError, match="relative include"):
        check_template(".include sub.inc\nR1 a b 1k\n", source="<netlist>", allowed_dirs=[Path.cwd()])


def test_legitimate_includes_are_inlined_and_work_from_any_cwd(tmp_path, monkeypatch):
    # the resistor and model card live in included files; .lib pulls one section of a library
    lib = ".lib tt\nR7 q 0 1e15\n.endl\n.lib ff\nR7 q 0 1\n.endl\n"
    d = make_cell(tmp_path, '.include "parts/extra.inc"\n.lib lib.spice tt\n',
                  {"parts/extra.inc": "* extra parts\n.include more.inc\n.end\n", "parts/more.inc": "R8 qb 0 1e15\n",
                   "lib.spice": lib})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cell = load_cell(str(d))
    t = cell.template
    assert "R8 qb 0 1e15" in t and "R7 q 0 1e15" in t and "R7 q 0 1\n" not in t
    assert not [l for l in t.splitlines() if l.strip().lower().startswith((".include", ".inc", ".lib"))]
    assert ".end\n" not in t.replace(".endl", "")
    from noisecell.simulate import job_from_cell
    job = job_from_cell(cell, bias_v=0.0, duration_s=1e-7, noise_step_s=1e-9, seed=1)
    rendered = job.render()
    assert "R8 qb 0 1e15" in rendered and ".include" not in rendered.lower()


def test_expand_includes_keeps_lines_without_includes_unchanged(tmp_path):
    text = ".param A=1\nR1 a b {A}\n+ tc=0\n"
    assert expand_includes(text, source=str(tmp_path / "x.cir"), allowed_dirs=[tmp_path]) == text


def test_simulate_a_cell_with_includes_from_another_folder(tmp_path, monkeypatch, capsys):
    # before: ngspice looked for parts/more.inc in its current directory ("Could not find include file")
    d = make_cell(tmp_path, '.include "parts/more.inc"\n', {"parts/more.inc": "R8 qb 0 1e15\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc, out, err = run_cli(["simulate", d, "--bias", "0", "--duration", "200ns", "--out", tmp_path / "w.npz"], capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["duration_s"] == pytest.approx(2e-7)
