"""Netlist parsing, safety checks and parameter substitution (no simulation here).

Safety (:func:`check_template`): a user- or cell-supplied netlist is refused (UnsafeNetlistError, one
line naming the file, line and the fix) when it contains anything ngspice could use to run commands
or read files: ``.control``/``.endc`` blocks, ``shell``/``system`` lines, backtick or ``$(...)``
command substitution, ``.exec``/``.csparam``/``.measure``-style dot-commands outside a short
allow-list, XSPICE ``A`` elements (their code models can read arbitrary files), or
``.include``/``.lib`` of a file outside the allowed folders. ``trusted=True`` turns the check off
(for netlists noisecell itself generates or that the caller vouches for).

Includes are resolved by noisecell, never by ngspice (which would look in its current directory,
its ``sourcepath`` and expand ``~`` to $HOME): :func:`expand_includes` reads every included file
relative to the including file, refuses ``~``, symlinks and paths that leave the allowed folders,
checks its text the same way (recursively, at most :data:`MAX_INCLUDE_DEPTH` levels) and inlines it,
so a cell's rendered netlist contains no include of its own and runs the same from any folder.

Parsing: SPICE is case-insensitive and continues a line with a leading ``+``; ``*`` starts a comment
line and ``;`` or `` $ `` an inline comment. :func:`logical_lines` joins continuations;
:func:`find_mosfets` finds ``M`` elements and ``X`` instances of PDK MOSFET subcircuits (recognised by
model name per technology, see noisecell.technology), inside or outside ``.subckt`` blocks.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
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


@lru_cache(maxsize=1 << 16)
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


def logical_lines(text: str, source: str | None = None) -> list[Line]:
    """Join ``+`` continuations, drop comment and blank lines, track .subckt scope.

    source: file name for error messages (``FILE:LINE: ...``).
    """
    # cached: rendering one job parses the same text several times (set_params, noise injection)
    return list(_logical_lines(text, source))


@lru_cache(maxsize=64)
def _logical_lines(text: str, source: str | None) -> tuple[Line, ...]:
    """See :func:`logical_lines`.

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
                where = f"{source}:{n}" if source else f"line {n}"
                raise InputError(f"{where}: continuation '+' with no line to continue; join it to a line or "
                                 "remove the '+'")
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
    return tuple(lines)


def tokens(s: str) -> list[str]:
    """Split on whitespace outside braces/quotes/parentheses, with ``a = b`` normalised to ``a=b``."""
    # cached: a sweep renders the same template lines for every one of its (up to 200 000) jobs
    return list(_tokens(s))


@lru_cache(maxsize=1 << 16)
def _tokens(s: str) -> tuple[str, ...]:
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
    return tuple(out)


def _within(path: Path, dirs: Iterable[Path]) -> bool:
    rp = path.resolve()
    for d in dirs:
        try:
            rp.relative_to(Path(d).resolve())
            return True
        except ValueError:
            continue
    return False


#: the deepest chain of nested includes noisecell follows (a cell needs one or two levels)
MAX_INCLUDE_DEPTH = 8
#: the most netlist text (characters, all included files together) noisecell reads for one template
MAX_NETLIST_CHARS = 20_000_000
_INCLUDE_DOT = (".include", ".inc", ".lib")


def read_netlist_text(path: str | Path, *, what: str = "netlist") -> str:
    """Read a netlist file as UTF-8 text; a binary, non-UTF-8, huge or unreadable file is an InputError."""
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(f"{p}: {what} is a folder, not a file; name the netlist file")
        size = p.stat().st_size
        if size > MAX_NETLIST_CHARS:
            raise InputError(f"{p}: {what} is {size / 1e6:.1f} MB, over noisecell's {MAX_NETLIST_CHARS / 1e6:g} MB "
                             "limit for a cell netlist; a cell needs a few kB")
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} ({exc.strerror or exc}); check the path and its permissions") from None
    if b"\0" in data:
        raise InputError(f"{p}: {what} contains NUL bytes (a binary file?); give a plain-text SPICE netlist")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8 (ASCII) text") from None


def _resolve_include(fname: str, *, where: str, first: str, base: Path | None, allowed: list[Path]) -> Path:
    """The real file an include names, refused unless it is a regular file inside ``allowed``.

    noisecell, not ngspice, resolves the name: relative to the folder of the file that contains the
    line (ngspice would use its current directory or its ``sourcepath``), ``~`` is refused (ngspice
    expands it to $HOME) and symlinks are followed before the folder check.
    """
    if any(ord(c) < 32 or c == "\x7f" for c in fname):
        raise InputError(f"{where}: {first} {fname!r}: the file name contains control characters (NUL, ...); "
                         "fix the name")
    if fname.startswith("~"):
        raise UnsafeNetlistError(f"{where}: {first} {fname}: '~' paths are expanded by ngspice to a home folder; "
                                 "name the file relative to the cell's folder")
    p = Path(fname)
    if not p.is_absolute():
        if base is None:
            raise UnsafeNetlistError(f"{where}: {first} {fname}: a relative include in a netlist that is not read "
                                     "from a file cannot be resolved safely; load the cell from its folder "
                                     "(noisecell.cells.load_cell inlines its includes)")
        p = base / p
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is not None and not _within(real, allowed) or real is None and not _within(p, allowed):
        raise UnsafeNetlistError(f"{where}: {first} {fname} reads a file outside the allowed folders "
                                 f"({', '.join(str(a) for a in allowed) or 'none'}); put the file in the cell's "
                                 "folder (symlinks are followed)")
    if real is None or not real.is_file():
        raise InputError(f"{where}: {first} {fname}: no such file ({p}); put it in the cell's folder or fix the name")
    return real


def _include_target(toks: list[str], first: str, where: str) -> tuple[str, str | None] | None:
    """(file name, .lib section or None) of an include line; None for a ``.lib section`` header."""
    if len(toks) < 2:
        raise InputError(f"{where}: {first} without a file name")
    if first == ".lib" and len(toks) == 2 and not re.search(r"[./\\~]", toks[1]):
        return None  # ".lib section" opening a section inside a library file
    fname = toks[1].strip("'\"")
    section = None
    if first == ".lib":
        if len(toks) != 3:
            raise InputError(f"{where}: .lib {fname}: expected '.lib FILE SECTION'")
        section = toks[2].strip("'\"")
    return fname, section


def _scan_line_safety(toks: list[str], where: str, allow_analyses: bool) -> bool:
    """Refuse a dangerous logical line; True when it is an include/.lib line the caller must resolve."""
    first = toks[0].lower()
    if re.match(r"^(shell|system|exec)\b", first) or first.startswith("!"):
        raise UnsafeNetlistError(f"{where}: '{toks[0]}' would run a shell command; remove it")
    if first.startswith("."):
        if first in (".control", ".endc"):
            raise UnsafeNetlistError(f"{where}: {first} blocks run ngspice commands and are not allowed in a cell "
                                     "netlist; remove the block (noisecell adds the analysis itself)")
        if first in ANALYSIS_DOT:
            if allow_analyses:
                return False
            raise UnsafeNetlistError(f"{where}: {first} is not allowed in a cell template; noisecell adds the "
                                     "analysis and saves the outputs itself, remove the line")
        if first not in SAFE_DOT:
            raise UnsafeNetlistError(f"{where}: dot-command {first} is not on noisecell's allow-list "
                                     f"({', '.join(sorted(SAFE_DOT))}); remove it or pass trusted=True")
        return first in _INCLUDE_DOT
    if first[0] == "a":
        raise UnsafeNetlistError(f"{where}: XSPICE 'A' elements are not allowed (code models can read files); "
                                 "remove it or pass trusted=True")
    bad = [t for t in toks if re.match(r"^(shell|system)\b", t, re.I)]
    if bad:
        raise UnsafeNetlistError(f"{where}: the word '{bad[0]}' is not allowed in a netlist line; "
                                 "rename the node or element")
    return False


def _raw_scan(text: str, source: str) -> None:
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


def _base_of(source: str) -> Path | None:
    """Folder relative includes are taken from: that of ``source`` when it is a file path (not a
    ``<label>`` or a bare cell name such as a job's), else None (relative includes are refused)."""
    if not source or source.startswith("<"):
        return None
    p = Path(source)
    if "/" in source or os.sep in source or p.is_file():
        return p.resolve().parent
    return None


def check_template(text: str, *, source: str = "<netlist>", allowed_dirs: Iterable[Path] = (),
                   trusted: bool = False, allow_analyses: bool = False) -> None:
    """Refuse netlists that could run commands or read files; see the module docstring.

    source: file name used in messages (and the base folder for relative includes when it names an
    existing file). allowed_dirs: folders .include/.lib may read from. Every included file is read and
    checked the same way, recursively (:func:`expand_includes` does the work and this discards its
    text). Raises :class:`UnsafeNetlistError` (or :class:`InputError` for a missing/unreadable file).
    """
    if trusted or (text, allow_analyses) in _CHECKED:
        return
    if expand_includes(text, source=source, allowed_dirs=allowed_dirs, allow_analyses=allow_analyses) == text:
        # no includes: the verdict depends on the text alone (a sweep checks one template per job)
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED.add((text, allow_analyses))


#: texts without includes that passed check_template (their verdict cannot change)
_CHECKED: set[tuple[str, bool]] = set()


def _lib_section(text: str, section: str, where: str, path: Path) -> str:
    """The lines of ``.lib SECTION`` ... ``.endl`` in a library file (physical lines, unchanged)."""
    out: list[str] | None = None
    for raw in text.splitlines():
        t = raw.split()
        low = [x.lower() for x in t[:2]]
        if out is None:
            if len(t) == 2 and low[0] == ".lib" and low[1].strip("'\"") == section.lower():
                out = []
            continue
        if low and low[0] == ".endl":
            return "\n".join(out) + "\n"
        out.append(raw)
    raise InputError(f"{where}: .lib {path.name} {section}: the library has no complete section "
                     f"'.lib {section}' ... '.endl'; fix the section name")


_BEGIN = "* noisecell: begin include "
_END = "* noisecell: end include "


def _label(path: Path, root: Path | None, allowed: list[Path]) -> str:
    """How an included file is named in the rendered netlist: relative to the cell's folder (or to the
    allowed folder holding it), so the text, and every job id hashed from it, is the same wherever
    the repository is checked out."""
    for d in ([root] if root else []) + allowed:
        try:
            return path.relative_to(Path(d).resolve()).as_posix()
        except ValueError:
            continue
    return str(path)


def expand_includes(text: str, *, source: str = "<netlist>", allowed_dirs: Iterable[Path] = (),
                    allow_analyses: bool = False, _depth: int = 0, _stack: tuple[Path, ...] = (),
                    _budget: list[int] | None = None, _root: Path | None = None) -> str:
    """Check ``text`` like :func:`check_template` and return it with every include inlined.

    Each ``.include FILE`` / ``.inc FILE`` is replaced by the checked, recursively expanded text of
    FILE (its ``.end`` lines dropped), and ``.lib FILE SECTION`` by that section of FILE, between
    ``* noisecell: begin include`` / ``end include`` comment lines, so ngspice never resolves a
    path itself: the result runs the same from any working directory. Relative names are taken from
    the folder of the including file (``source`` when it names an existing file); every file must
    resolve (symlinks followed) inside ``allowed_dirs``; at most :data:`MAX_INCLUDE_DEPTH` levels and
    :data:`MAX_NETLIST_CHARS` characters in all; an include cycle is refused.
    """
    allowed = [Path(d) for d in allowed_dirs]
    budget = [MAX_NETLIST_CHARS] if _budget is None else _budget
    budget[0] -= len(text)
    if budget[0] < 0:
        raise InputError(f"{source}: the netlist and its includes exceed {MAX_NETLIST_CHARS / 1e6:g} M characters; "
                         "a cell needs a few kB")
    base = _base_of(source)
    root = base if _root is None else _root
    _raw_scan(text, source)
    replace: dict[int, str] = {}
    for ln in logical_lines(text, source):
        toks = tokens(ln.text)
        where = f"{source}:{ln.lineno}"
        if toks[0][0].lower() == "m" and len(toks) < 6:
            raise InputError(f"{where}: MOSFET {toks[0]} needs drain gate source bulk model; complete the line")
        if not _scan_line_safety(toks, where, allow_analyses):
            continue
        first = toks[0].lower()
        target = _include_target(toks, first, where)
        if target is None:
            continue
        fname, section = target
        path = _resolve_include(fname, where=where, first=first, base=base, allowed=allowed)
        if path in _stack:
            raise InputError(f"{where}: {first} {fname} includes itself (cycle through "
                             f"{' -> '.join(p.name for p in _stack + (path,))}); remove the loop")
        if _depth + 1 > MAX_INCLUDE_DEPTH:
            raise InputError(f"{where}: {first} {fname}: includes nested deeper than {MAX_INCLUDE_DEPTH} levels; "
                             "flatten them")
        body = body_full = read_netlist_text(path, what="included file")
        if section is not None:
            body = _lib_section(body, section, where, path)
        inner = expand_includes(body, source=str(path), allowed_dirs=allowed, allow_analyses=allow_analyses,
                                _depth=_depth + 1, _stack=_stack + (path,), _budget=budget, _root=root)
        # .end would end the whole deck early; it becomes a comment (one line for one: the line
        # numbers inside the block stay those of the file, see origin_of_line)
        inner = "\n".join("* .end (inlined file)" if l.strip().lower() == ".end" else l for l in inner.splitlines())
        name = _label(path, root, allowed)
        # a .lib section starts after its '.lib NAME' header: blank lines keep the numbering
        first_line = _lib_section_start(body_full, section) if section is not None else 0
        replace[ln.lineno] = (f"{_BEGIN}{name}{' @' + str(first_line) if first_line else ''}\n"
                              f"{inner}\n{_END}{name}")
    if not replace:
        return text
    out: list[str] = []
    skip_cont = False
    for n, raw in enumerate(text.splitlines(), start=1):
        if n in replace:
            out.append(replace[n])
            skip_cont = True
            continue
        if skip_cont and raw.strip().startswith("+"):
            out.append("* (continuation of the include line above)")  # one line for one, see origin_of_line
            continue
        if skip_cont and (not raw.strip() or raw.strip().startswith("*")):
            out.append(raw)  # logical_lines continues a line across comments and blank lines
            continue
        skip_cont = False
        out.append(raw)
    return "\n".join(out) + "\n"


def _lib_section_start(text: str, section: str) -> int:
    """Line number (1-based) of the ``.lib SECTION`` header in a library file."""
    for n, raw in enumerate(text.splitlines(), start=1):
        t = raw.split()
        if len(t) == 2 and t[0].lower() == ".lib" and t[1].strip("'\"").lower() == section.lower():
            return n
    return 0


def origin_of_line(template: str, lineno: int, source: str) -> tuple[str, int]:
    """(file, line) a physical line of an expanded template (:func:`expand_includes`) came from.

    source: the name of the top-level file. Included files are named as in their begin markers.
    """
    stack: list[list] = [[source, 0]]
    for n, raw in enumerate(template.splitlines(), start=1):
        s = raw.strip()
        if s.startswith(_BEGIN):
            stack[-1][1] += 1  # the include line itself
            name, _, at = s[len(_BEGIN):].partition(" @")
            stack.append([name, int(at) if at.isdigit() else 0])
            if n == lineno:
                return stack[-2][0], stack[-2][1]
            continue
        if s.startswith(_END) and len(stack) > 1:
            stack.pop()
            if n == lineno:
                return stack[-1][0], stack[-1][1]
            continue
        stack[-1][1] += 1
        if n == lineno:
            return stack[-1][0], stack[-1][1]
    return source, lineno


_NOISE_ELEMENT = re.compile(r"^[a-z]nc_[a-z]+_(.+)$", re.I)  # elements noisecell.noise adds for a device


def explain_ngspice_error(template: str, rendered: str, messages: list[str], source: str) -> str | None:
    """Name the user's file and line behind an ngspice load error, or None when ngspice names no line.

    ngspice numbers the lines of the deck it was given (``rendered`` without blank lines, 1-based)
    and reports "Error on line N" / "Netlist line no. N". That line's element (or, for the noise
    sources noisecell adds, the device they belong to) is looked up in the template and traced back
    through the include markers. Returns "FILE:LINE: <line as written>: <what ngspice said>; fix".
    """
    text = "\n".join(messages)
    m = re.search(r"(?:Error on line|Netlist line no\.)\s*(\d+)", text)
    if not m:
        return None
    deck = [l for l in rendered.splitlines() if l]
    n = int(m.group(1))
    if not 1 <= n <= len(deck):
        return None
    toks = tokens(deck[n - 1])
    if not toks or toks[0].startswith(("*", ".")):
        return None
    name = toks[0]
    dev = _NOISE_ELEMENT.match(name)
    want = {name.lower()} | ({dev.group(1).lower()} if dev else set())
    line = next((ln for ln in logical_lines(template) if tokens(ln.text)[0].lower() in want), None)
    if line is None:
        return None
    fname, lno = origin_of_line(template, line.lineno, source)
    und = re.search(r"Undefined parameter \[([^\]]+)\]", text, re.I)
    model = re.search(r"can't find model '([^']+)'", text, re.I)
    if und:
        what = f"undefined parameter '{und.group(1)}'; define it with .param or fix the name"
    elif model or re.search(r"could not find a valid modelname", text, re.I):
        what = (f"unknown model '{model.group(1) if model else '?'}'; add its .model card or fix the name")
    elif re.search(r"PTerror|syntax error", text, re.I):
        what = "ngspice cannot parse this expression (syntax error); fix the expression"
    else:  # ngspice's own words: the line after the echoed netlist line
        i = next(k for k, x in enumerate(messages) if m.group(0) in x)
        after = [x.strip() for x in messages[i + 1:] if x.strip()]
        what = f"ngspice: {(after[1] if len(after) > 1 else 'error')[:160]}; fix that line"
    shown = line.text if len(line.text) <= 120 else line.text[:117] + "..."
    return f"{fname}:{lno}: {shown}: {what}"


def load_template(path: str | Path, *, allowed_dirs: Iterable[Path]) -> str:
    """Read a netlist template file, check it and return its text with all includes inlined."""
    p = Path(path)
    return expand_includes(read_netlist_text(p), source=str(p), allowed_dirs=allowed_dirs)


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
