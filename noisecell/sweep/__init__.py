"""Sweeps at scale: spec (TOML) → content-addressed jobs → local pool or Dask → atomic, resumable store.

Python API::

    from noisecell.sweep import run_sweep, load
    res = run_sweep("sweep.toml", "out/", workers=2, executor="local", progress=False)
    res.summary(); res.dataframe            # SweepResult
    df = load("out/")                       # one row per job: conditions + estimates + regime

See docs/sweeps.md for the spec keys, the store layout and the retry ladder.
"""
from __future__ import annotations

from .runner import SweepResult, load, run_sweep, status
from .spec import AdaptiveSpec, SweepSpec, load_spec, parse_spec

__all__ = ["run_sweep", "load", "status", "SweepResult", "SweepSpec", "AdaptiveSpec", "load_spec", "parse_spec"]
