"""Netlist parsing, safety checks and parameter substitution (no simulation here).

Safety (:func:`check_template`): a user- or cell-supplied netlist is refused (UnsafeNetlistError, one
line naming the file, line and the fix) when it contains anything ngspice could use to run commands
or read files: ``.control``/``.endc`` blocks, ``shell``/``system`` lines, backtick or ``$(...)``
command substitution, ``.exec``/``.csparam``/``.measure``-style dot-commands outside a short
allow-list, XSPICE ``A`` elements (their code models can read arbitrary files), or
``.include``/``.lib`` of a file outside the allowed folders. ``trusted=True`` turns the check off
(for netlists noisecell itself generates or that the caller vouches for).

Parsing: SPICE is case-insensitive and continues a line with a leading ``+``; ``*`` starts a comment
line and ``;`` or `` $ `` an inline comment. :func:`logical_lines` joins continuations;
:func:`find_mosfets` finds ``M`` elements and ``X`` instances of PDK MOSFET subcircuits (recognised by
model name per technology, see noisecell.technology), inside or outside ``.subckt`` blocks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .errors import InputError, UnsafeNetlistError

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Dot-commands a cell template may contain. Everything else is refused unless trusted.
SAFE_DOT = {".param", ".subckt", ".ends", ".model", ".ic", ".nodeset", ".include", ".inc", ".lib",
            ".endl", ".global", ".func", ".options", ".option", ".opt", ".temp", ".end", ".title"}
# Analyses are harmless but noisecell adds its own; allowed only with allow_analyses=True.
ANALYSIS_DOT = {".tran", ".op", ".ac", ".dc", ".noise", ".save", ".print", ".plot", ".tf", ".four"}


@dataclass(frozen=True)
class Line:
    """A logical netlist line: continuation lines joined, inline comments stripped.

    text: the joined text; lineno: 1-based number of its first physical line; scope: the name of
    the enclosing .subckt (lower case) or None at top level.
    """

    text: str
    lineno: int
    scope: str | None


@dataclass(frozen=True)
class Mosfet:
    """One MOSFET instance found in a netlist.

    name: element name as written (``M1``, ``XN1``); drain/gate/source/bulk: node names;
    model: model or subcircuit name (lower case); polarity: 'n', 'p' or '?' (M element whose
    .model is not in this netlist); subckt: True for an ``X`` instance of a PDK device;
    scope: enclosing .subckt name or None.
    """

    name: str
    drain: str
    gate: str
    source: str
    bulk: str
    model: str
    polarity: str
    subckt: bool
    scope: str | None
    index: int  # index into logical_lines()


def _strip_inline_comment(s: str) -> str:
    # ';' always starts a comment; '$' does when preceded by whitespace (ngspice convention).
    depth = 0
    for i, ch in enumerate(s):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            return s[:i].rstrip()
        elif ch == "$" and depth == 0 and (i == 0 or s[i - 1] in " \t") and not s[i + 1:i + 2] == "(":
            return s[:i].rstrip()
    return s


def logical_lines(text: str) -> list[Line]:
    """Join ``+`` continuations, drop comment and blank lines, track .subckt scope.

    The first line of a SPICE deck is a title only in files run directly by ngspice; cell templates
    are fragments, so a first line that is not a comment is parsed like any other.
    """
    out: list[tuple[str, int]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("*"):
            continue
        s = _strip_inline_comment(s)
        if not s:
            continue
        if s.startswith("+"):
            if not out:
                raise InputError(f"line {n}: continuation '+' with no line to continue")
            prev, ln = out[-1]
            out[-1] = (prev + " " + s[1:].strip(), ln)
        else:
            out.append((s, n))
    lines = []
    scope: str | None = None
    for s, n in out:
        low = s.lower()
        if low.startswith(".subckt"):
            parts = s.split()
            lines.append(Line(s, n, scope))
            scope = parts[1].lower() if len(parts) > 1 else "?"
            continue
        if low.startswith(".ends"):
            lines.append(Line(s, n, scope))
            scope = None
            continue
        lines.append(Line(s, n, scope))
    return lines


def tokens(s: str) -> list[str]:
    """Split on whitespace outside braces/quotes/parentheses, with ``a = b`` normalised to ``a=b``."""
    s = re.sub(r"\s*=\s*", "=", s)
    out, cur, depth, quote = [], [], 0, None
    for ch in s:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch in "{(":
            depth += 1
            cur.append(ch)
        elif ch in "})":
            depth = max(0, depth - 1)
            cur.append(ch)
        elif ch.isspace() and depth == 0:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def _within(path: Path, dirs: Iterable[Path]) -> bool:
    rp = path.resolve()
    for d in dirs:
        try:
            rp.relative_to(Path(d).resolve())
            return True
        except ValueError:
            continue
    return False


def check_template(text: str, *, source: str = "<netlist>", allowed_dirs: Iterable[Path] = (),
                   trusted: bool = False, allow_analyses: bool = False) -> None:
    """Refuse netlists that could run commands or read files; see the module docstring.

    source: file name used in messages (and the base folder for relative includes when it is a path).
    allowed_dirs: folders .include/.lib may read from. Raises :class:`UnsafeNetlistError`.
    """
    if trusted:
        return
    base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
    allowed = list(allowed_dirs)
    # Raw scan first: substitution syntax is dangerous wherever it appears, even in a comment-like
    # continuation, because ngspice's control language expands it.
    for n, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if s.startswith("*"):
            continue
        if "`" in s:
            raise UnsafeNetlistError(f"{source}:{n}: backtick command substitution is not allowed in a netlist; remove it")
        if "$(" in s:
            raise UnsafeNetlistError(f"{source}:{n}: '$(' substitution is not allowed in a netlist; remove it")
    for ln in logical_lines(text):
        s = ln.text
        toks = tokens(s)
        first = toks[0].lower()
        where = f"{source}:{ln.lineno}"
        if re.match(r"^(shell|system|exec)\b", first) or first.startswith("!"):
            raise UnsafeNetlistError(f"{where}: '{toks[0]}' would run a shell command; remove it")
        if first.startswith("."):
            if first in (".control", ".endc"):
                raise UnsafeNetlistError(f"{where}: {first} blocks run ngspice commands and are not allowed in a cell "
                                         "netlist; remove the block (noisecell adds the analysis itself)")
            if first in ANALYSIS_DOT:
                if allow_analyses:
                    continue
                raise UnsafeNetlistError(f"{where}: {first} is not allowed in a cell template; noisecell adds the "
                                         "analysis and saves the outputs itself, remove the line")
            if first not in SAFE_DOT:
                raise UnsafeNetlistError(f"{where}: dot-command {first} is not on noisecell's allow-list "
                                         f"({', '.join(sorted(SAFE_DOT))}); remove it or pass trusted=True")
            if first in (".include", ".inc", ".lib"):
                if len(toks) < 2:
                    raise InputError(f"{where}: {first} without a file name")
                if first == ".lib" and len(toks) == 2 and not re.search(r"[./\\]", toks[1]):
                    continue  # ".lib section" inside a library file
                fname = toks[1].strip("'\"")
                p = Path(fname)
                p = p if p.is_absolute() else base / p
                if not _within(p, allowed):
                    raise UnsafeNetlistError(f"{where}: {first} {fname} reads a file outside the allowed folders "
                                             f"({', '.join(str(a) for a in allowed) or 'none'}); put the file in the "
                                             "cell's folder")
            continue
        if first[0] == "a":
            raise UnsafeNetlistError(f"{where}: XSPICE 'A' elements are not allowed (code models can read files); "
                                     "remove it or pass trusted=True")
        bad = [t for t in toks if re.match(r"^(shell|system)\b", t, re.I)]
        if bad:
            raise UnsafeNetlistError(f"{where}: the word '{bad[0]}' is not allowed in a netlist line; "
                                     "rename the node or element")


def template_params(text: str) -> dict[str, str]:
    """Top-level ``.param`` definitions: lower-case name -> value text as written."""
    out: dict[str, str] = {}
    for ln in logical_lines(text):
        if ln.scope is None and ln.text.lower().startswith(".param"):
            for name, val in _param_assignments(ln.text):
                out[name.lower()] = val
    return out


def _param_assignments(line: str) -> list[tuple[str, str]]:
    body = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
    return [(t.split("=", 1)[0], t.split("=", 1)[1]) for t in tokens(body) if "=" in t]


def element_names(text: str) -> list[str]:
    """Names of all elements (first token of every non-dot line), as written."""
    return [tokens(ln.text)[0] for ln in logical_lines(text) if not ln.text.startswith(".")]


def validate_param_value(name: str, value: float, *, what: str = "parameter") -> float:
    """A .param override must be a finite number with an identifier name; returns float(value)."""
    if not isinstance(name, str) or not IDENT.match(name):
        raise InputError(f"{what} name {name!r} is not a valid identifier (letters, digits, _)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} {name}: expected a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise InputError(f"{what} {name}: {value!r} is not finite")
    return x


def format_number(x: float) -> str:
    """Exact, locale-free text for a float (repr round-trips; ngspice reads it back to the same double)."""
    return repr(float(x))


def set_params(text: str, values: Mapping[str, float], *, source: str = "<netlist>") -> str:
    """Return ``text`` with the top-level ``.param`` values of ``values`` replaced (names case-insensitive).

    Every name must already be defined by a top-level .param in the template (a typo would otherwise
    be silently ignored by ngspice). Values are validated finite numbers. Other lines are unchanged.
    """
    want = {}
    for k, v in values.items():
        want[k.lower()] = validate_param_value(k, v)
    defined = template_params(text)
    missing = [k for k in want if k not in defined]
    if missing:
        raise InputError(f"{source}: .param {missing[0]} is not defined in the netlist; known: "
                         f"{', '.join(sorted(defined)) or 'none'}")
    out_lines = []
    physical = text.splitlines()
    lines = logical_lines(text)
    # Replace whole logical .param lines (including their '+' continuations) by rewritten text.
    replace: dict[int, str] = {}
    for ln in lines:
        if ln.scope is None and ln.text.lower().startswith(".param"):
            assigns = _param_assignments(ln.text)
            if any(n.lower() in want for n, _ in assigns):
                replace[ln.lineno] = ".param " + " ".join(
                    f"{n}={format_number(want[n.lower()]) if n.lower() in want else v}" for n, v in assigns)
    skip_cont = False
    for n, raw in enumerate(physical, start=1):
        if n in replace:
            out_lines.append(replace[n])
            skip_cont = True
            continue
        if skip_cont and raw.strip().startswith("+"):
            continue
        if skip_cont and (not raw.strip() or raw.strip().startswith("*")):
            out_lines.append(raw)
            continue
        skip_cont = False
        out_lines.append(raw)
    return "\n".join(out_lines) + "\n"


def model_polarities(lines: list[Line]) -> dict[str, str]:
    """``.model name nmos|pmos`` -> {'name': 'n'|'p'}."""
    pol = {}
    for ln in lines:
        if ln.text.lower().startswith(".model"):
            t = tokens(ln.text)
            if len(t) >= 3:
                typ = t[2].lower().split("(")[0]
                if typ in ("nmos", "pmos"):
                    pol[t[1].lower()] = typ[0]
    return pol


def find_mosfets(text: str, technology: str = "generic") -> list[Mosfet]:
    """All MOSFET instances in ``text`` (M elements and X instances of PDK MOSFET subcircuits)."""
    from .technology import mosfet_subckt_polarity

    lines = logical_lines(text)
    pol = model_polarities(lines)
    found = []
    for i, ln in enumerate(lines):
        t = tokens(ln.text)
        name = t[0]
        c = name[0].lower()
        if c == "m":
            if len(t) < 6:
                raise InputError(f"line {ln.lineno}: MOSFET {name} needs drain gate source bulk model")
            found.append(Mosfet(name, t[1], t[2], t[3], t[4], t[5].lower(), pol.get(t[5].lower(), "?"),
                                False, ln.scope, i))
        elif c == "x":
            pos = [x for x in t[1:] if "=" not in x]
            if not pos:
                continue
            sub = pos[-1]
            p = mosfet_subckt_polarity(technology, sub)
            if p is None:
                continue
            nodes = pos[:-1]
            if len(nodes) != 4:
                raise InputError(f"line {ln.lineno}: {name}: PDK MOSFET {sub} needs 4 nodes (d g s b), got {len(nodes)}")
            found.append(Mosfet(name, nodes[0], nodes[1], nodes[2], nodes[3], sub.lower(), p, True, ln.scope, i))
    return found


@dataclass(frozen=True)
class Resistor:
    name: str
    n1: str
    n2: str
    value: str  # expression text for a B-source (braces removed)
    scope: str | None
    index: int


def find_resistors(text: str) -> list[Resistor]:
    """``R`` elements with a plain or ``{expression}`` value (``r=`` form accepted)."""
    out = []
    for i, ln in enumerate(logical_lines(text)):
        t = tokens(ln.text)
        if t[0][0].lower() != "r" or len(t) < 4:
            continue
        val = None
        for x in t[3:]:
            if x.lower().startswith(("r=", "resistance=")):
                val = x.split("=", 1)[1]
                break
        if val is None and "=" not in t[3]:
            val = t[3]
        if val is None:
            raise InputError(f"line {ln.lineno}: resistor {t[0]}: cannot find its value")
        val = val.strip()
        if val.startswith("{") and val.endswith("}"):
            val = val[1:-1]
        elif val.startswith("'") and val.endswith("'"):
            val = val[1:-1]
        out.append(Resistor(t[0], t[1], t[2], val, ln.scope, i))
    return out
