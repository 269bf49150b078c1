"""Property-based fuzzing (hypothesis) of the netlist checker and the bit-stream/waveform/model loaders.

The inputs are corpus files from tests/fuzz_corpus/ (hostile netlists, bit files of every format, a
cell model) mutated byte- or line-wise, and netlists assembled from a pool of dangerous fragments.
The properties are the contract of issue 15:

* the netlist checker either refuses (InputError) or returns a netlist in which an independent,
  simpler scan finds nothing ngspice could use to run a command or read a file (no .control,
  shell/system/exec, backticks, ``$(``, XSPICE A elements, dot-commands off the allow-list, and no
  include left for ngspice to resolve), with every inlined file named inside the cell folder;
* the loaders either raise a NoisecellError (one line) or return 0/1 bits of the right type;
  nothing else (no IndexError, UnicodeDecodeError, RecursionError, ...) escapes.

Runtime is bounded: a fixed number of examples per property, derandomized so CI runs the same
inputs every time (set NOISECELL_FUZZ_EXAMPLES for a longer local campaign).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the dev extras (make setup installs it)")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from noisecell.errors import InputError, NoisecellError  # noqa: E402
from noisecell.netlist import SAFE_DOT, expand_includes, logical_lines, tokens  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
N_EXAMPLES = int(os.environ.get("NOISECELL_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _corpus(kind: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / kind).iterdir()) if p.is_file()]


@st.composite
def mutated(draw, seeds: list[bytes], max_len: int = 4096):
    """A corpus file with a few random edits: bytes replaced, inserted, deleted, chunks duplicated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "truncate"]))
        pos = draw(st.integers(0, max(len(data), 1) - 1)) if data else 0
        if op == "replace" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "duplicate" and data:
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data[:max_len])


# ------------------------------------------------------------------------------------------------
# the netlist checker

FRAGMENTS = [
    ".param VDD=0.06 VB=0", "Vdd vdd 0 {VDD}", "R1 a b 1k", "+ tc1=0", "* a comment with shell and `x`",
    "M1 q qb 0 0 nch W=1u L=1u", ".model nch nmos level=54", ".subckt inv in out", ".ends", "X1 a b inv",
    ".control", ".endc", "shell id", "system('id')", "exec id", "!id", "R2 a b `id`", "R3 a b $(id)",
    ".exec ls", ".csparam x=1", "A1 in out filesrc", ".tran 1n 1u", ".include sub.inc", ".inc sub.inc",
    ".include ~/x.inc", ".include /etc/passwd", ".include ../../etc/passwd", ".include link.inc",
    ".include \"sub.inc\"", ".lib lib.spice tt", ".lib lib.spice zz", ".lib tt", ".endl", ".include",
    ".include self.inc", ".INCLUDE SUB.INC", ".end", "R4 a b 1k ; trailing `x`", "R5 a b 1k $ comment",
    ".func f(x) {x*2}", ".options reltol=1e-4", "B1 a 0 I={v(a)*2}", "+ .include /etc/passwd", "",
    "Rshell a b 1k", "R6 shell b 1k",
]

#: the lines a netlist may never contain after checking (an independent, simpler statement of the rules)
_COMMAND = re.compile(r"^(shell|system|exec)\b|^!", re.I)


def _acceptable(text: str) -> str | None:
    """Why ``text`` must not reach ngspice, or None when it may."""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("*"):
            continue
        if "`" in s or "$(" in s:
            return f"substitution in {s!r}"
    for ln in logical_lines(text):
        t = tokens(ln.text)
        first = t[0].lower()
        if _COMMAND.match(first):
            return f"command line {ln.text!r}"
        if first.startswith("."):
            if first in (".control", ".endc"):
                return f"control block {ln.text!r}"
            if first not in SAFE_DOT:
                return f"dot-command {ln.text!r}"
            if first in (".include", ".inc") or (first == ".lib" and len(t) > 2):
                return f"include left for ngspice: {ln.text!r}"
        elif first[0] == "a":
            return f"XSPICE element {ln.text!r}"
        elif any(re.match(r"^(shell|system)\b", x, re.I) for x in t):
            return f"shell word in {ln.text!r}"
    for m in re.finditer(r"^\* noisecell: begin include (\S+)", text, re.M):
        name = m.group(1)
        if name.startswith(("/", "~")) or ".." in Path(name).parts:
            return f"inlined a file outside the cell folder: {name}"
    return None


@pytest.fixture(scope="module")
def cell_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzzcell")
    d = root / "cell"
    d.mkdir()
    (d / "sub.inc").write_text("R9 a b 1k\n.include deeper.inc\n")
    (d / "deeper.inc").write_text(".model nch nmos level=54\n")
    (d / "self.inc").write_text(".include self.inc\n")
    (d / "lib.spice").write_text(".lib tt\nR8 a b 1k\n.endl\n.lib ff\n.include /etc/passwd\n.endl\n")
    (root / "outside.inc").write_text("R7 a b 1k\n")
    (d / "link.inc").symlink_to(root / "outside.inc")
    return d


def _check(text: str, cell_dir: Path) -> None:
    try:
        out = expand_includes(text, source=str(cell_dir / "cell.cir"), allowed_dirs=[cell_dir])
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    why = _acceptable(out)
    assert why is None, f"accepted a dangerous netlist: {why}"


@FUZZ
@given(lines=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12))
@example(lines=[".include sub.inc", "+ .include /etc/passwd"])
@example(lines=[".lib lib.spice ff"])
@example(lines=[".include link.inc"])
def test_netlist_checker_assembled(lines, cell_dir):
    _check("\n".join(lines) + "\n", cell_dir)


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_netlist_checker_each_fragment_alone(fragment, cell_dir):
    # every fragment on its own (the assembled lists above mostly combine several refused ones)
    _check(fragment + "\n", cell_dir)
    _check(".param A=1\n" + fragment + "\n+ x=1\n", cell_dir)


@FUZZ
@given(data=mutated(_corpus("netlist")))
@example(data=b".include \x00etc/passwd\n")  # found by this test: Path() raised ValueError on the NUL
def test_netlist_checker_mutated_corpus(data, cell_dir):
    _check(data.decode("utf-8", errors="replace"), cell_dir)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list(".+*;$`(){}'\"~/ \n\tabcilnrsx=01")), max_size=200))
def test_netlist_checker_random_text(text, cell_dir):
    _check(text, cell_dir)


# ------------------------------------------------------------------------------------------------
# the bit-stream, waveform and model loaders

@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzzfiles")


def _bits_ok(bs) -> None:
    b = np.asarray(bs.bits)
    assert b.dtype == np.uint8 and b.ndim == 1 and b.size >= 2
    assert np.isin(b, (0, 1)).all()


@FUZZ
@given(data=mutated(_corpus("bits")), fmt=st.sampled_from(["npy", "bytes", "packed", "csv", "npz"]),
       period=st.sampled_from([None, 1e-9, 1e-6]))
@example(data=(CORPUS / "bits" / "trace.csv").read_bytes(), fmt="csv", period=1e-6)  # found: gave 1 sample
def test_bit_loaders_refuse_or_return_bits(data, fmt, period, scratch):
    from noisecell.io import load_bits

    p = scratch / f"f.{fmt}"
    p.write_bytes(data)
    try:
        bs = load_bits(p, fmt, sample_period_s=period)
    except NoisecellError as exc:
        assert "\n" not in str(exc)
        return
    _bits_ok(bs)


@FUZZ
@given(data=mutated(_corpus("bits")))
def test_waveform_loader_refuses_or_loads(data, scratch):
    from noisecell.waveform import Waveform

    p = scratch / "w.npz"
    p.write_bytes(data)
    try:
        wf = Waveform.load_npz(p)
    except NoisecellError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(wf.meta, dict) and np.all(np.isfinite(wf.outputs["v_out"]))


_JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                         st.text(max_size=8), st.just([]), st.just({}), st.just([[[[[[]]]]]]))


@st.composite
def edited_model(draw):
    """The corpus model with one random leaf replaced (numbers of any size, NaN, wrong types)."""
    doc = json.loads((CORPUS / "model" / "synthetic.json").read_text())
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list) and node:
            for i, v in enumerate(node):
                walk(v, path + [i])
        else:
            paths.append(path)

    walk(doc, [])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = draw(_JSON_LEAVES)
    return doc


@FUZZ
@given(doc=edited_model())
def test_model_loader_refuses_or_gives_finite_answers(doc, scratch):
    from noisecell.model import CellModel

    p = scratch / "m.json"
    p.write_text(json.dumps(doc))  # NaN/Infinity written as literals, as a careless tool would
    try:
        model = CellModel.load(p)
    except NoisecellError as exc:
        assert "\n" not in str(exc)
        return
    lo, hi = model.to_dict()["bias"]["range_v"]
    for v in np.linspace(lo, hi, 5):
        try:
            p1, tau = model.p1(v), model.tau(v)
        except NoisecellError:
            continue  # e.g. outside a condition's own validated range
        assert 0.0 <= p1 <= 1.0 and np.isfinite(tau) and tau > 0


@FUZZ
@given(data=mutated(_corpus("model"), max_len=8192))
def test_model_loader_mutated_bytes(data, scratch):
    from noisecell.model import CellModel

    p = scratch / "mb.json"
    p.write_bytes(data)
    try:
        CellModel.load(p)
    except NoisecellError as exc:
        assert "\n" not in str(exc)
