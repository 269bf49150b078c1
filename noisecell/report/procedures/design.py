"""Procedure 1b, the sequential design (issue 14): with a ``[design]`` table, rounds of simulations at
the nominal condition placed where they shrink the widest datasheet CI (the pilot's records included),
until the targets are met or the budget is spent, then held-out records (:mod:`noisecell.sequential`). Its result
(:class:`noisecell.sequential.SequentialResult`, with ``summary()``) adjusts the model document, adds
datasheet rows and the held-out verdict."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import log
from .pilot import PilotResult
from .points import normalise_rows
from .spec import CharSpec, fit_regimes


def run_design(spec: CharSpec, cellspec, out: Path, pilot: PilotResult | None, workers, retry_failed, *, pool=None):
    """Run noisecell.sequential at the nominal condition, guessed from the pilot's points; returns
    the result and (part name, role, SweepResult) of every sweep it ran (design jobs "fit", held-out
    "heldout"). ``pool``: the characterisation's simulator hosts (None: a pool of its own)."""
    from ...sequential import run_sequential
    from ...simulator.pool import HostPool

    frames = [normalise_rows(r.dataframe, n, "pilot") for n, r in zip(pilot.stage_names, pilot.sweeps)] \
        if pilot is not None else []
    pil = pd.concat(frames) if frames else None
    ok = pil[pil["status"] == "ok"] if pil is not None and len(pil) else None
    # the pilot's records are records at the nominal condition: they enter the design's fit
    from ...design_runner import points_from_sweep

    initial = []
    if pilot is not None:
        for n, r in zip(pilot.stage_names, pilot.sweeps):
            initial += points_from_sweep(out / "sweep" / n, r, n)
    shared = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    own = pool is None
    pool = HostPool(workers) if own else pool
    try:
        seq = run_sequential(spec.design, cell=spec.cell, out=out / "sweep", shared=shared,
                             corner=cellspec.nominal_corner, temp_c=float(cellspec.nominal_temp_c),
                             bias_limits=tuple(cellspec.bias.range_v),
                             pilot_bias_v=None if ok is None else ok["bias_v"].to_numpy(float),
                             pilot_p1=None if ok is None else pd.to_numeric(ok["p1"], errors="coerce").to_numpy(float),
                             source=spec.source, workers=workers, retry_failed=retry_failed, pool=pool,
                             rate_regimes=fit_regimes(spec.report.get("fit_regimes", ["bistable"]), spec.source),
                             initial=initial, log=log)
    finally:
        if own:
            pool.close()
    sweeps = [(name, "fit", res) for name, res in seq.sweeps] + [(name, "heldout", res) for name, res in seq.heldout_sweeps]
    return seq, sweeps
