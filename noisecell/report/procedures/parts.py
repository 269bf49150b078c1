"""Procedure 2, the parts: every part of the spec as a resumable sweep under ``OUT/sweep/<part>/``, and
one per-point table over the pilot and all parts."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError
from . import log
from .pilot import PilotResult
from .points import normalise_rows
from .spec import CharSpec, resolve_grid


@dataclass
class PartsResult:
    """points: the per-point table (:data:`..data.POINT_COLUMNS` + role, chunks) of the pilot stages and
    every part; raw: the sweep stores' rows with ``part`` and ``role`` columns (for the model fit);
    part_rows: one summary row per sweep (points, ok, failed, simulated_s, adaptive saving, store);
    total / failed: jobs; warnings: one line per failed job."""

    points: pd.DataFrame
    raw: pd.DataFrame
    part_rows: list[dict]
    total: int
    failed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def simulated_s(self) -> float:
        return float(sum(r["simulated_s"] for r in self.part_rows if math.isfinite(r["simulated_s"])))

    def nominal_condition(self, cellspec) -> tuple[str, float, float]:
        """(corner, temp_c, vdd_v) of the nominal condition: a cell whose trim sets the supply per
        corner/temperature runs at that supply, so the supply is the one actually simulated at the
        nominal corner and temperature (nearest the cell's nominal supply)."""
        nominal = (cellspec.nominal_corner, float(cellspec.nominal_temp_c),
                   float(cellspec.supplies[cellspec.main_supply].nominal_v))
        p = self.points
        at_nom = p[(p["corner"] == nominal[0]) & np.isclose(p["temp_c"], nominal[1]) & p["role"].isin(["fit"])
                   & (p["status"] == "ok")]
        if len(at_nom):
            vdds = np.unique(at_nom["vdd_v"].to_numpy(float))
            nominal = (nominal[0], nominal[1], float(vdds[np.argmin(np.abs(vdds - nominal[2]))]))
        return nominal

    def summary(self) -> str:
        lines = [f"parts: {self.total - self.failed}/{self.total} jobs ok, {self.simulated_s * 1e6:.4g} µs simulated"]
        for r in self.part_rows:
            lines.append(f"  {r['part']} ({r['role']}): {r['ok']}/{r['points']} ok, {r['simulated_s'] * 1e6:.4g} µs")
        return "\n".join(lines)


def _part_row(name: str, role: str, res, df: pd.DataFrame) -> dict:
    ad = getattr(res, "adaptive", None)
    return {"part": name, "role": role, "points": res.total, "ok": res.done, "failed": res.failed,
            "simulated_s": float(pd.to_numeric(df.get("simulated_s"), errors="coerce").sum())
            if "simulated_s" in df else float("nan"),
            "adaptive_saving": ad.saving if ad else float("nan"), "store": str(Path("sweep") / name)}


def run_parts(spec: CharSpec, cellspec, out: Path, pilot: PilotResult | None, *, workers=None,
              retry_failed: bool = False, spec_dir: Path | None = None, pool=None,
              extra_sweeps: list | None = None, tau_s: float | None = None) -> PartsResult:
    """Run (or resume) every part; the pilot's window, when it found one, replaces the bias shorthands'
    range. ``pool``: the simulator hosts shared by the pilot and all parts (None: each sweep its own).
    ``extra_sweeps``: (name, role, SweepResult) of sweeps run by another procedure (the sequential
    design's rounds and held-out records), put in the table after the pilot. ``tau_s``: the nominal
    τ(V50) (from the design or the pilot) that ``duration_tau`` parts scale their record length by."""
    from ...sweep import run_sweep
    from ...sweep.spec import parse_spec

    frames, raw_frames, part_rows, warnings = [], [], [], []
    total = failed = 0
    if pilot is not None:
        for name, pres in zip(pilot.stage_names, pilot.sweeps):
            total += pres.total
            failed += pres.failed
            frames.append(normalise_rows(pres.dataframe, name, "pilot"))
            raw = pres.dataframe.copy()
            raw["part"], raw["role"] = name, "pilot"
            raw_frames.append(raw)
            part_rows.append({**_part_row(name, "pilot", pres, pres.dataframe), "adaptive_saving": float("nan")})
        if pilot.window is not None:
            for part in spec.parts:
                part.sweep["grid"], _ = resolve_grid(part.grid_raw, cellspec, part.where, pilot.window)
    for name, role, res, *relabel in extra_sweeps or ():
        # relabel (optional): column values set on the rows, e.g. a mismatch instance's index; "vdd_v" only
        # in the rows the model fits (an instance run at its own supply trim is fitted with the nominal
        # condition's rows; the per-point table keeps the supply it ran at)
        relabel = relabel[0] if relabel else {}
        total += res.total
        failed += res.failed
        pts = normalise_rows(res.dataframe, name, role)
        if "mismatch_instance" in relabel:
            pts["instance"] = int(relabel["mismatch_instance"])
        frames.append(pts)
        raw = res.dataframe.copy()
        if "vdd_v" in relabel and "vdd_v" in raw:
            raw["instance_vdd_v"] = raw["vdd_v"]
        for k, v in relabel.items():
            raw[k] = v
        raw["part"], raw["role"] = name, role
        raw_frames.append(raw)
        part_rows.append({**_part_row(name, role, res, res.dataframe), "adaptive_saving": float("nan")})
    extra = {"pool": pool} if pool is not None else {}
    for i, part in enumerate(spec.parts):
        if part.duration_tau is not None:
            if tau_s is None or not math.isfinite(tau_s) or tau_s <= 0:
                warnings.append(f"part {part.name}: duration_tau needs the nominal τ(V50), which neither the design "
                                "nor the pilot measured; the part was not run")
                continue
            part.sweep["duration"] = float(f"{part.duration_tau * tau_s:.3g}")
            log(f"part {part.name!r}: records of {part.duration_tau:g} τ = {part.sweep['duration'] * 1e6:.4g} µs")
        sw = parse_spec(part.sweep, source=f"{spec.source} part {part.name}", base_dir=spec_dir)
        n_pts = (max(1, len(sw.bias_v)) * max(1, len(sw.temp_c)) * max(1, len(sw.corners)) * max(1, len(sw.vdd_v))
                 * max(1, sw.mismatch_instances))
        log(f"part {i + 1}/{len(spec.parts)} {part.name!r} ({part.role}): {n_pts} points -> "
            f"{out / 'sweep' / part.name}")
        try:
            res = run_sweep(sw, out / "sweep" / part.name, workers=workers, progress=True, retry_failed=retry_failed,
                            **extra)
        except InputError as exc:
            if "different spec" not in str(exc):
                raise
            raise InputError(f"{out / 'sweep' / part.name}: holds part {part.name!r} of a different characterisation "
                             "(spec edited, the pilot placed the bias points elsewhere, or the simulation/analysis code "
                             "changed); use a new --out folder, "
                             "or delete that part's folder to simulate it again") from None
        log(res.summary().splitlines()[0])
        df = res.dataframe
        total += res.total
        failed += res.failed
        for jid, err in res.failures:
            warnings.append(f"part {part.name}: job {jid[:12]} failed: {err}")
        raw = df.copy()
        raw["part"], raw["role"] = part.name, part.role
        raw_frames.append(raw)
        frames.append(normalise_rows(df, part.name, part.role))
        part_rows.append(_part_row(part.name, part.role, res, df))
    return PartsResult(points=pd.concat(frames, ignore_index=True), raw=pd.concat(raw_frames, ignore_index=True),
                       part_rows=part_rows, total=total, failed=failed, warnings=warnings)
