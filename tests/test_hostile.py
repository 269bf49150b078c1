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


# ------------------------------------------------------------------------------------------------
# 2. the sweep store: every result verified, a bad file quarantined (not a traceback), one writer

SWEEP_SPEC = """\
cell = "pbit_generic"
duration = "1us"
noise_step = "1ns"
seed = 3
timeout = 120
[grid]
bias = { start = -0.002, stop = 0.002, num = 4 }
"""


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory):
    from noisecell.sweep import run_sweep

    d = tmp_path_factory.mktemp("sweep")
    spec = d / "sweep.toml"
    spec.write_text(SWEEP_SPEC)
    res = run_sweep(spec, d / "out", workers=2, executor="local", progress=False)
    assert res.done == 4, res.failures
    return spec, d / "out"


@pytest.fixture
def sweep_copy(clean_sweep, tmp_path):
    spec, out = clean_sweep
    dst = tmp_path / "out"
    shutil.copytree(out, dst)
    return spec, dst


def _first_result(out: Path) -> Path:
    return sorted((out / "results").glob("*.parquet"))[0]


def _other_row_bytes(out: Path) -> bytes:
    return sorted((out / "results").glob("*.parquet"))[1].read_bytes()


DAMAGE = {
    "random bytes": lambda p, out: p.write_bytes(os.urandom(700)),
    "truncated": lambda p, out: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty file": lambda p, out: p.write_bytes(b""),
    "parquet magic only": lambda p, out: p.write_bytes(b"PAR1PAR1"),
    "another job's row": lambda p, out: p.write_bytes(_other_row_bytes(out)),
    "one flipped byte": lambda p, out: p.write_bytes(p.read_bytes()[:-20] + bytes([p.read_bytes()[-20] ^ 1])
                                                     + p.read_bytes()[-19:]),
}


def _zero_row_parquet(p: Path, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"status": pa.array([], pa.string())}), p)


DAMAGE["empty parquet (0 rows)"] = _zero_row_parquet


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_result_is_quarantined_reported_and_rerun(kind, sweep_copy, capsys):
    from noisecell.sweep import load, run_sweep

    spec, out = sweep_copy
    bad = _first_result(out)
    DAMAGE[kind](bad, out)
    rc, o, e = run_cli(["status", out, "--json"], capsys)
    assert rc == 0 and "Traceback" not in e, e
    counts = json.loads(o.strip().splitlines()[-1])
    assert counts["quarantined"] == 1 and counts["pending"] == 1 and counts["done"] == 3, counts
    assert not bad.exists() and list((out / "quarantine").rglob(bad.name + "*"))
    rc, o, e = run_cli(["status", out], capsys)
    assert rc == 0 and "quarantine" in o, o
    df = load(out)
    assert (df["status"] == "pending").sum() == 1
    if kind in ("random bytes", "another job's row"):  # resuming costs a simulation: two kinds suffice
        res = run_sweep(spec, out, workers=1, executor="local", progress=False)
        assert (res.ran, res.done) == (1, 4)
        assert bad.exists()


def test_damaged_bits_file_is_quarantined_and_its_job_rerun(sweep_copy):
    from noisecell.sweep import run_sweep
    from noisecell.sweep.store import Store

    spec, out = sweep_copy
    job_id = _first_result(out).stem
    (out / "bits" / f"{job_id}.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="quarantine"):
        Store(out).read_bits(job_id)
    assert Store(out).counts()["pending"] == 1
    res = run_sweep(spec, out, workers=1, executor="local", progress=False)
    assert res.ran == 1
    bits, sp = Store(out).read_bits(job_id)
    assert len(bits) > 100 and sp == pytest.approx(1e-9)


def test_fit_skips_a_quarantined_result_with_a_warning(sweep_copy, tmp_path, capsys):
    spec, out = sweep_copy
    _first_result(out).write_bytes(os.urandom(300))
    rc, o, e = run_cli(["fit", out, "--out", tmp_path / "m.json"], capsys)
    assert "Traceback" not in e
    assert "warning" in e and "quarantine" in e, e
    assert rc in (0, 2), e  # 2 only if the 3 remaining points cannot be fitted: then one line
    if rc == 2:
        assert_one_line_error(rc, e, 2)


@pytest.mark.parametrize("content", [b"[]", b"{}", b"\xff\xfe\x00garbage", b'{"format": "noisecell-sweep-1"}',
                                     b'{"format": "noisecell-sweep-1", "jobs": [1, 2]}', b""])
def test_bad_manifest_is_one_line(content, sweep_copy, capsys):
    spec, out = sweep_copy
    (out / "manifest.json").write_bytes(content)
    rc, o, e = run_cli(["status", out], capsys)
    assert_one_line_error(rc, e, 2, out / "manifest.json")


def test_garbage_in_the_checksum_journal_is_tolerated(sweep_copy, capsys):
    spec, out = sweep_copy
    with open(out / "checksums.jsonl", "ab") as f:
        f.write(b'{"file": "results/x.parquet", "size": \n\x00\xff garbage\n[1,2]\n')
    rc, o, e = run_cli(["status", out, "--json"], capsys)
    assert rc == 0 and json.loads(o)["done"] == 4, e


def test_second_writer_is_refused_and_a_killed_writer_leaves_no_stale_lock(sweep_copy):
    from noisecell.sweep import run_sweep

    spec, out = sweep_copy
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom noisecell.sweep.store import Store\n"
        f"lock = Store({str(out)!r}).acquire_writer_lock()\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=f"another noisecell process .*pid {holder.pid}"):
            run_sweep(spec, out, workers=1, executor="local", progress=False)
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
    assert (out / "writer.lock").exists()
    res = run_sweep(spec, out, workers=1, executor="local", progress=False)
    assert res.done == 4 and res.ran == 0


# ------------------------------------------------------------------------------------------------
# 3. output paths checked before any work starts

@pytest.fixture
def model_json(tmp_path) -> Path:
    from noisecell.model.fit import synthetic_model

    m = synthetic_model(scale_v=-1e-3, tau_v50_s=1e-7, bias_range_v=(-4e-3, 4e-3), mismatch=(2e-4, 0.05, 0.0))
    return m.save(tmp_path / "model.json")


@pytest.fixture
def no_work(monkeypatch):
    """Make every expensive step fail loudly: an output check that comes too late is caught."""
    def boom(*a, **k):
        raise AssertionError("work started before the output path was checked")

    import noisecell.model.fit as fit
    import noisecell.report.characterize as ch
    import noisecell.simulator as sim
    import noisecell.sweep as sw
    from noisecell.model import CellModel

    monkeypatch.setattr(sim, "run_job", boom)
    monkeypatch.setattr(sw, "run_sweep", boom)
    monkeypatch.setattr(fit, "fit_sweep_dir", boom)
    monkeypatch.setattr(ch, "characterize", boom)
    monkeypatch.setattr(CellModel, "sample", boom)


@pytest.fixture
def no_simulation(monkeypatch):
    """Bad input must be refused before ngspice starts: a simulation here fails the test."""
    import noisecell.simulator as sim

    def boom(*a, **k):
        raise AssertionError("a simulation started for bad input")

    monkeypatch.setattr(sim, "run_job", boom)


def _out_cases(tmp_path: Path, suffix: str) -> list[tuple[str, Path]]:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    a_dir = tmp_path / f"adir{suffix}"
    a_dir.mkdir()
    return [("under a file", a_file / f"x{suffix}"), ("is a folder", a_dir), ("unwritable", Path(f"/proc/x{suffix}"))]


def _file_commands(model_json: Path, clean: Path | None):
    yield "simulate", ".npz", lambda out: ["simulate", "pbit_generic", "--bias", "0", "--out", out]
    yield "sample", ".npy", lambda out: ["sample", model_json, "--bias", "0", "--n", "10", "--dt", "1us", "--out", out]
    yield "fit", ".json", lambda out: ["fit", clean, "--out", out]


@pytest.mark.parametrize("command", ["simulate", "sample", "fit"])
@pytest.mark.parametrize("case", [0, 1, 2])
def test_bad_output_file_refused_before_work(command, case, model_json, clean_sweep, tmp_path, no_work, capsys):
    cmds = {c: (sfx, argv) for c, sfx, argv in _file_commands(model_json, clean_sweep[1])}
    suffix, argv = cmds[command]
    label, out = _out_cases(tmp_path, suffix)[case]
    rc, o, e = run_cli(argv(out), capsys)
    assert_one_line_error(rc, e, 2, "--out")


@pytest.mark.parametrize("command", ["sweep", "characterize"])
@pytest.mark.parametrize("case", [0, 2, 3])
def test_bad_output_folder_refused_before_work(command, case, clean_sweep, tmp_path, no_work, capsys):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    out = [a_file, a_file / "sub", Path("/proc/noisecell-out"), Path("/proc/self/x/y")][case]
    argv = {"sweep": ["sweep", clean_sweep[0], "--out", out],
            "characterize": ["characterize", "pbit_generic", "--quick", "--out", out]}[command]
    rc, o, e = run_cli(argv, capsys)
    assert_one_line_error(rc, e, 2, "--out")


def test_missing_output_folders_are_created_before_work(model_json, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "bits.npy"
    rc, o, e = run_cli(["sample", model_json, "--bias", "0", "--n", "10", "--dt", "1us", "--out", out], capsys)
    assert rc == 0, e
    assert np.load(out).shape == (10,)


# ------------------------------------------------------------------------------------------------
# 4. model JSON: finite numbers, sane magnitudes, bounded size and depth; printed JSON always valid

def _model_doc(model_json: Path) -> dict:
    return json.loads(model_json.read_text())


MODEL_EDITS = {
    "NaN intercept": lambda d: d["conditions"][0]["rate_model"]["ln_k_up"].__setitem__("intercept", float("nan")),
    "Infinity slope": lambda d: d["conditions"][0]["rate_model"]["ln_k_down"].__setitem__("slope_per_v", float("inf")),
    "-Infinity bias": lambda d: d["bias"].__setitem__("range_v", [float("-inf"), 0.004]),
    "1e308 intercept": lambda d: d["conditions"][0]["rate_model"]["ln_k_up"].__setitem__("intercept", 1e308),
    "1e30 slope": lambda d: d["conditions"][0]["rate_model"]["ln_k_up"].__setitem__("slope_per_v", 1e30),
    "NaN in covariance": lambda d: d["conditions"][0]["rate_model"]["covariance"][1].__setitem__(1, float("nan")),
    "NaN temperature": lambda d: d["conditions"][0].__setitem__("temp_c", float("nan")),
    "huge vdd": lambda d: d["conditions"][0].__setitem__("vdd_v", 1e200),
}


@pytest.mark.parametrize("edit", sorted(MODEL_EDITS))
def test_model_with_non_finite_or_absurd_numbers_is_refused(edit, model_json, tmp_path, capsys):
    from noisecell.model import CellModel

    doc = _model_doc(model_json)
    MODEL_EDITS[edit](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))  # json.dumps writes NaN/Infinity literals, as a careless tool would
    with pytest.raises(InputError) as ei:
        CellModel.load(bad)
    assert str(bad) in str(ei.value) and "\n" not in str(ei.value)
    rc, o, e = run_cli(["validate", bad], capsys)
    assert rc == 1 and "Traceback" not in e and str(bad) in e
    rc, o, e = run_cli(["sample", bad, "--bias", "0", "--n", "10", "--dt", "1us", "--out", tmp_path / "b.npy"], capsys)
    assert_one_line_error(rc, e, 2, bad)
    assert "NaN" not in o and "Infinity" not in o


def test_model_numbers_are_bounded_in_the_schema_itself():
    # the shipped schema (used by other tools, e.g. thrml users) bounds every number it declares
    from noisecell.model.cellmodel import schema

    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            t = node.get("type")
            if t == "number" or (isinstance(t, list) and "number" in t):
                if not (("minimum" in node or "exclusiveMinimum" in node) and ("maximum" in node or "exclusiveMaximum" in node)):
                    unbounded.append(where)
            if t == "array" and "maxItems" not in node:
                unbounded.append(where + " (array)")
            if t == "string" and "maxLength" not in node and "enum" not in node and "const" not in node:
                unbounded.append(where + " (string)")
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(schema(), "")
    assert not unbounded, unbounded[:10]


@pytest.mark.parametrize("text, match", [
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "nested"),
    ("[" * 40 + "]" * 40, "nested"),
    ("1e999", "finite"),
    ("NaN", "finite"),
    ('{"schema_version": "1.0.0", "x": -Infinity}', "finite"),
    ("", "not JSON"),
    ("\x00\x01", "not JSON"),
    ("[1, 2]", "not a valid noisecell cell model"),
    ("\"just a string\"", "not a valid noisecell cell model"),
])
def test_hostile_model_files(text, match, tmp_path, capsys):
    from noisecell.model import CellModel

    p = tmp_path / "m.json"
    p.write_text(text)
    with pytest.raises(InputError, match=match) as ei:
        CellModel.load(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_oversized_model_file_is_refused_without_reading_it(tmp_path):
    from noisecell.model import CellModel
    from noisecell.model.cellmodel import MAX_MODEL_BYTES

    p = tmp_path / "big.json"
    with open(p, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(InputError, match="limit"):
        CellModel.load(p)


def test_printed_json_is_always_valid(monkeypatch, capsys):
    from noisecell.commands import print_json

    print_json({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": np.float64("nan"), "d": np.int64(3)})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}")) == \
        {"a": None, "b": [None, None, 1.5], "c": None, "d": 3}


def test_every_command_prints_json_through_one_function():
    # the one place with allow_nan=False: a command calling json.dumps itself could print NaN again
    import re

    offenders = [p.name for p in (REPO / "noisecell" / "commands").glob("*.py")
                 if p.name != "__init__.py" and re.search(r"print\(json\.dumps", p.read_text())]
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------------
# 5. every command: bad input -> one line naming the file/option and the fix, exit 2; never a traceback

@pytest.fixture
def hostile(tmp_path, model_json) -> dict[str, Path]:
    """A folder of hostile files, keyed by what they are."""
    f = {"model": model_json}
    f["bin"] = tmp_path / "bin.dat"
    f["bin"].write_bytes(b"\x00\x01\xff\xfe" * 8)
    f["bits"] = tmp_path / "bits.npy"
    np.save(f["bits"], (np.random.default_rng(1).random(4000) < 0.5).astype(np.uint8))
    t = np.arange(2000) * 1e-9
    v = np.where(np.sin(t * 2e7) > 0, 0.02, -0.02)
    f["badmeta"] = tmp_path / "badmeta.npz"
    np.savez(f["badmeta"], time_s=t, v_out=v, meta_json=np.array("{bad json"))
    f["listmeta"] = tmp_path / "listmeta.npz"
    np.savez(f["listmeta"], time_s=t, v_out=v, meta_json=np.array("[1, 2]"))
    f["deepmeta"] = tmp_path / "deepmeta.npz"
    np.savez(f["deepmeta"], time_s=t, v_out=v, meta_json=np.array("[" * 50000 + "]" * 50000))
    f["deep"] = tmp_path / "deep.json"
    f["deep"].write_text("[" * 100000 + "]" * 100000)
    f["badtoml"] = tmp_path / "bad.toml"
    f["badtoml"].write_text("cell = [[[\n")
    f["deeptoml"] = tmp_path / "deep.toml"
    f["deeptoml"].write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    f["out_npz"] = tmp_path / "o" / "w.npz"
    f["out_npy"] = tmp_path / "o" / "b.npy"
    f["out_dir"] = tmp_path / "odir"
    return f


CLI_BAD = [
    # (argv with {placeholders} for hostile files, exit code, fragments the one error line must contain)
    ("analyze {badmeta}", 2, ["badmeta.npz", "meta_json"]),
    ("analyze {listmeta}", 2, ["listmeta.npz", "meta_json"]),
    ("analyze {deepmeta}", 2, ["deepmeta.npz", "meta_json"]),
    ("analyze {bits} --sample-period 1us --entropy-period=-1ns", 2, ["--entropy-period"]),
    ("analyze {bits} --sample-period 1us --entropy-period 0", 2, ["--entropy-period"]),
    ("analyze {bits} --sample-period 1us --temp=-500", 2, ["--temp", "-500"]),
    ("analyze {bits} --sample-period 1us --temp nan", 2, ["--temp"]),
    ("analyze {bits} --sample-period 1us --temp inf", 2, ["--temp"]),
    ("analyze {bits} --sample-period 1us --temp=-273.15", 2, ["--temp"]),
    ("analyze {bits} --sample-period=-1us", 2, ["--sample-period"]),
    ("analyze {bits} --sample-period 1us --hysteresis=-1m", 2, ["--hysteresis"]),
    ("analyze {bin}", 2, ["bin.dat"]),
    ("analyze {deep}", 2, ["deep.json"]),
    ("analyze {deep} --format npy", 2, ["deep.json"]),
    ("analyze {bin} --format npz", 2, ["bin.dat"]),
    ("analyze {bin} --format csv", 2, ["bin.dat"]),
    ("entropy {bin}", 2, ["bin.dat"]),
    ("entropy {badmeta}", 2, ["badmeta.npz"]),
    ("entropy {deep} --format npy", 2, ["deep.json"]),
    ("simulate pbit_generic --bias 0 --seed -1 --out {out_npz}", 2, ["seed"]),
    ("simulate pbit_generic --bias 0 --seed 4294967296 --out {out_npz}", 2, ["seed"]),
    ("simulate pbit_generic --bias 0 --timeout=-1 --out {out_npz}", 2, ["--timeout"]),
    ("simulate pbit_generic --bias 0 --timeout 0 --out {out_npz}", 2, ["--timeout"]),
    ("simulate pbit_generic --bias 0 --timeout nan --out {out_npz}", 2, ["--timeout"]),
    ("simulate pbit_generic --bias 0 --temp=-500 --out {out_npz}", 2, ["temp"]),
    ("simulate pbit_generic --bias 0 --temp nan --out {out_npz}", 2, ["--temp"]),
    ("simulate pbit_generic --bias 0 --duration=-1us --out {out_npz}", 2, ["duration"]),
    ("simulate pbit_generic --bias 0 --duration 1e9 --out {out_npz}", 2, ["points"]),
    ("simulate pbit_generic --bias 0 --noise-step 0 --out {out_npz}", 2, ["noise_step"]),
    ("simulate pbit_generic --bias 0 --flicker-corner=-1 --out {out_npz}", 2, ["flicker"]),
    ("simulate pbit_generic --bias 1e300 --out {out_npz}", 2, ["bias", "range"]),
    ("simulate pbit_generic --bias 0 --param VREF=nan --out {out_npz}", 2, ["VREF"]),
    ("simulate pbit_generic --bias 0 --param NOPE=1 --out {out_npz}", 2, ["NOPE"]),
    ("simulate pbit_generic --bias 0 --param 'x;shell=1' --out {out_npz}", 2, ["shell"]),
    ("simulate pbit_generic --bias 0 --corner ss --out {out_npz}", 2, ["corner"]),
    ("simulate pbit_generic --bias 0 --mismatch-seed -5 --out {out_npz}", 2, ["mismatch_seed"]),
    ("simulate {bin} --bias 0 --out {out_npz}", 2, ["bin.dat"]),
    ("sample {model} --bias 0 --n 1000000000 --cells 100000 --dt 1us --out {out_npy}", 2, ["--n", "--cells", "TiB"]),
    ("sample {model} --bias 0 --n 10 --dt 1us --seed -1 --out {out_npy}", 2, ["--seed"]),
    ("sample {model} --bias 0 --n 10 --dt=-1us --out {out_npy}", 2, ["dt"]),
    ("sample {model} --bias 0 --n 10 --dt 1us --temp=-500 --out {out_npy}", 2, ["-500"]),
    ("sample {model} --bias 1 --n 10 --dt 1us --out {out_npy}", 2, ["bias"]),
    ("sample {model} --bias 0 --n 0 --dt 1us --out {out_npy}", 2, ["--n"]),
    ("sample {model} --bias 0 --n 10 --cells 0 --dt 1us --out {out_npy}", 2, ["--cells"]),
    ("sample {deep} --bias 0 --n 10 --dt 1us --out {out_npy}", 2, ["deep.json", "nested"]),
    ("sample {bin} --bias 0 --n 10 --dt 1us --out {out_npy}", 2, ["bin.dat"]),
    ("validate {deep}", 1, ["deep.json"]),
    ("validate {bin}", 1, ["bin.dat"]),
    ("fit {bin} --out {out_dir}/m.json", 2, ["bin.dat"]),
    ("fit {out_dir} --out {out_dir}/m.json", 2, ["manifest"]),
    ("status {bin}", 2, ["bin.dat"]),
    ("status {out_dir}/none", 2, ["manifest"]),
    ("sweep {badtoml} --out {out_dir}", 2, ["bad.toml"]),
    ("sweep {bin} --out {out_dir}", 2, ["bin.dat"]),
    ("sweep {deeptoml} --out {out_dir}", 2, ["deep.toml"]),
    ("characterize pbit_generic --spec {bin} --out {out_dir}", 2, ["bin.dat"]),
    ("characterize pbit_generic --spec {badtoml} --out {out_dir}", 2, ["bad.toml"]),
    ("characterize pbit_generic --spec {deeptoml} --out {out_dir}", 2, ["deep.toml"]),
    ("characterize pbit_generic --measurements {bin} --out {out_dir}", 2, ["bin.dat"]),
    ("characterize pbit_generic --workers 0 --out {out_dir}", 2, ["--workers"]),
    ("cell info {bin}", 2, ["bin.dat"]),
    ("trim pbit --max-iterations -1", 2, ["--max-iterations"]),
    ("trim pbit --min-flips nan", 2, ["--min-flips"]),
    ("trim pbit --temp=-500", 2, ["temp"]),
    ("trim pbit --seed -1", 2, ["seed"]),
]


@pytest.mark.parametrize("argv, code, fragments", CLI_BAD, ids=[c[0] for c in CLI_BAD])
def test_cli_bad_input_is_one_line(argv, code, fragments, hostile, capsys, no_simulation):
    import shlex

    args = [a.format(**{k: str(v) for k, v in hostile.items()}) for a in shlex.split(argv)]
    rc, o, e = run_cli(args, capsys)
    assert_one_line_error(rc, e, code, *fragments)
    assert not hostile["out_npy"].exists() and not hostile["out_npz"].exists()


def test_uncaught_bug_is_one_line_not_a_traceback(monkeypatch, capsys, hostile):
    import noisecell.commands.analyze as an

    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(an, "run", bug)
    rc, o, e = run_cli(["analyze", hostile["bits"]], capsys)
    assert rc == 70 and "Traceback" not in e and "ZeroDivisionError" in e and len(e.strip().splitlines()) == 1


def test_cell_at_minus_300_c_is_refused(tmp_path):
    d = make_cell(tmp_path)
    toml = d / "cell.toml"
    toml.write_text(toml.read_text().replace("temp_c = 27.0", "temp_c = -300.0"))
    with pytest.raises(InputError, match="nominal.temp_c"):
        load_cell(str(d))


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", "name = [[[".encode(), "a = " .encode() + b"[" * 5000])
def test_binary_or_broken_cell_toml_is_one_line(content, tmp_path):
    d = make_cell(tmp_path)
    (d / "cell.toml").write_bytes(content)
    with pytest.raises(InputError, match="cell.toml") as ei:
        load_cell(str(d))
    assert "\n" not in str(ei.value)


def test_binary_netlist_is_one_line(tmp_path):
    d = make_cell(tmp_path)
    (d / "pbit_generic.cir").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(InputError, match="pbit_generic.cir"):
        load_cell(str(d))


def test_one_broken_cell_does_not_break_cell_list(tmp_path, monkeypatch, capsys):
    make_cell(tmp_path / "models", name="good")
    bad = make_cell(tmp_path / "models", name="broken")
    (bad / "cell.toml").write_bytes(b"\xff\xfe")
    monkeypatch.setenv("NOISECELL_SPICE_MODELS", str(tmp_path / "models"))
    rc, o, e = run_cli(["cell", "list", "--json"], capsys)
    assert rc == 0, e
    rows = {r["name"]: r for r in json.loads(o.strip().splitlines()[-1])}
    assert "pbit_generic" in {r["name"] for r in rows.values() if not r.get("error")}
    assert any("broken" in (r.get("error") or "") or r["name"] == "broken" for r in rows.values())
    assert "broken" in e and "warning" in e
    rc, o, e = run_cli(["cell", "list"], capsys)
    assert rc == 0 and "broken" in o


@pytest.mark.parametrize("body, fragment", [
    ("+ continues nothing\n", "pbit_generic.cir:1"),
    ("M9 a b\n", "pbit_generic.cir"),
])
def test_netlist_syntax_errors_name_the_file(body, fragment, tmp_path):
    d = make_cell(tmp_path)
    cir = d / "pbit_generic.cir"
    cir.write_text(body + cir.read_text() if body.startswith("+") else cir.read_text() + body)
    with pytest.raises(InputError, match=fragment):
        load_cell(str(d))


def test_syntax_error_in_an_included_file_names_that_file_and_line(tmp_path):
    d = make_cell(tmp_path, ".include sub.inc\n", {"sub.inc": "* one\n* two\nM9 a b\n"})
    with pytest.raises(InputError, match=r"sub\.inc:3"):
        load_cell(str(d))


# ngspice's own errors, traced back to the user's file and line (these run ngspice: pbit_generic)
NGSPICE_ERRORS = [
    ("R9 q 0 {FOO}\n", {}, "pbit_generic.cir:23", "undefined parameter 'foo'"),
    ("Mb9 q vb 0 0 nchx W=100n L=100n\n", {}, "pbit_generic.cir:23", "unknown model 'nchx'"),
    ("B9 q 0 I=v(q)*)(\n", {}, "pbit_generic.cir:23", "cannot parse"),
    (".include parts.inc\n", {"parts.inc": "* a part\nR9 q 0 {BAR}\n"}, "parts.inc:2", "undefined parameter 'bar'"),
]


@pytest.mark.parametrize("extra, files, where, what", NGSPICE_ERRORS)
def test_ngspice_errors_name_the_users_file_and_line(extra, files, where, what, tmp_path, capsys):
    d = make_cell(tmp_path, extra, files)
    rc, o, e = run_cli(["simulate", d, "--bias", "0", "--duration", "100ns", "--out", tmp_path / "w.npz"], capsys)
    assert_one_line_error(rc, e, 2, where, what)


def test_origin_of_every_line_through_nested_includes_and_lib_sections(tmp_path):
    from noisecell.netlist import logical_lines, origin_of_line

    files = {"a.inc": "* a1\nRa1 x 0 1\n.include sub/b.inc\nRa4 x 0 1\n.end\n",
             "sub/b.inc": "Rb1 x 0 1\n\nRb3 x 0 1\n",
             "lib.spice": "* lib\n.lib ff\nRf x 0 1\n.endl\n.lib tt\n* tt\nRt3 x 0 1\n.endl\n"}
    d = make_cell(tmp_path, ".include a.inc\nRm1 x 0 1\n.lib lib.spice tt\n+ \nRm3 x 0 1\n", files)
    cell = load_cell(str(d))
    top = d / "pbit_generic.cir"
    n_top = len(GENERIC.joinpath("pbit_generic.cir").read_text().splitlines())
    want = {"Ra1": ("a.inc", 2), "Ra4": ("a.inc", 4), "Rb1": ("sub/b.inc", 1), "Rb3": ("sub/b.inc", 3),
            "Rt3": ("lib.spice", 7), "Rm1": (str(top), n_top + 2), "Rm3": (str(top), n_top + 5),
            "Mb1": (str(top), 15)}
    got = {}
    for ln in logical_lines(cell.template):
        name = ln.text.split()[0]
        if name in want:
            got[name] = origin_of_line(cell.template, ln.lineno, str(top))
    assert got == want
    assert str(tmp_path) not in cell.template  # include markers are relative: job ids do not depend on the checkout


def test_a_large_grid_reports_progress_while_its_jobs_are_prepared(tmp_path):
    # a grid just under the job cap took minutes to expand with no output; expand now reports
    # (done, total) so the runner can print progress, and the count ends at the total
    from noisecell.sweep.jobs import expand
    from noisecell.sweep.spec import load_spec

    spec = tmp_path / "big.toml"
    spec.write_text(SWEEP_SPEC.replace("num = 4", "num = 300"))
    calls = []
    jobs = expand(load_spec(spec), progress=lambda done, total: calls.append((done, total)))
    assert len(jobs) == 300 and calls[-1] == (300, 300)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


SPEC_BAD = [
    ('timeout = -1', "timeout"), ('retries = 99', "retries"), ('workers = -1', "workers"), ('seed = -1', "seed"),
    ('[grid]\ntemperature = [-500]', "-500"), ('[grid]\nvdd = [1e300]', "supply range"),
    ('[grid]\nbias = { start = 0, stop = 1, num = 3 }', "bias range"),
    ('[grid]\nbias = { start = 0, stop = 0.001, num = 1000000000 }', "200000"),
    ('[grid]\nbias = { start = 0, stop = 0.001, step = 1e-300 }', "1e+297 points"),
]


@pytest.mark.parametrize("body, fragment", SPEC_BAD)
def test_hostile_sweep_specs(body, fragment, tmp_path, capsys, no_simulation):
    spec = tmp_path / "s.toml"
    spec.write_text(f'cell = "pbit_generic"\nduration = "1us"\nnoise_step = "1ns"\n{body}\n')
    rc, o, e = run_cli(["sweep", spec, "--out", tmp_path / "o", "--quiet"], capsys)
    assert_one_line_error(rc, e, 2, "s.toml", fragment)
    assert len(e) < 400  # one readable line, not a 300-digit number


def test_trim_write_checks_its_table_before_any_run(tmp_path, capsys, no_simulation):
    d = tmp_path / "p"
    shutil.copytree(REPO / "spice_models" / "pbit", d)
    (d / "trims.json").unlink()
    (d / "trims.json").mkdir()  # the table cannot be written: a folder holds its name
    rc, o, e = run_cli(["trim", d, "--write"], capsys)
    assert_one_line_error(rc, e, 2, "trims.json")
