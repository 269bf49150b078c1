"""Run the sequential design's rounds as sweeps (the side-effect edge of :mod:`noisecell.design`).

Each round's jobs of one record length become one sweep (``OUT/<prefix>-rNN[-g]``, resumable like
any sweep: a re-run with the same seed finds the stored results), its seed the round's group seed, so
every job's noise seed follows from (design seed, round, group) through the sweep's own derivation.
Counts are read back from the stored bit streams (the single source of truth), scanned once
(:func:`noisecell.analysis.runs.scan_runs`) into :class:`~noisecell.model.ratefit.PointCounts`;
P(1)'s effective sample size and the regime label come from the sweep's analysis of the same stream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .design import DesignJob
from .model.ratefit import PointCounts


def _finite(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class SweepRunner:
    """Callable ``runner(round_no, jobs)`` for :func:`noisecell.design.run_design`.

    cell: cell name or folder. out_dir: folder the round sweeps go into. shared: sweep-spec keys
    every round takes (noise_step, timeout, retries, ...; grid/adaptive/duration/seed are set here).
    corner, temp_c: the condition. pool: a :class:`noisecell.simulator.HostPool` kept across rounds
    (hosts start once, not per round). results: (part name, SweepResult) of every sweep run, in order.
    """

    cell: str
    out_dir: Path
    shared: dict
    corner: str
    temp_c: float
    workers: int | None = None
    retry_failed: bool = False
    prefix: str = "design"
    log: Callable[[str], None] | None = None
    pool: object = None
    results: list = field(default_factory=list)

    def __call__(self, round_no: int, jobs: Sequence[DesignJob]) -> list[PointCounts]:
        from .analysis.runs import scan_runs
        from .sweep import run_sweep
        from .sweep.spec import parse_spec
        from .sweep.store import Store

        groups: dict[float, list[DesignJob]] = {}
        for j in jobs:
            groups.setdefault(round(j.duration_s, 15), []).append(j)
        out: list[PointCounts] = []
        for g, (duration, js) in enumerate(sorted(groups.items())):
            name = f"{self.prefix}-r{round_no:02d}" + (f"-{g}" if len(groups) > 1 else "")
            biases = sorted({float(f"{j.bias_v:.9g}") for j in js})
            sweep = {k: v for k, v in self.shared.items() if k not in ("grid", "adaptive", "duration", "seed")}
            sweep.update(cell=self.cell, duration=float(f"{duration:.9g}"), seed=int(js[0].seed),
                         grid={"bias": biases, "temperature": [float(self.temp_c)], "corner": [self.corner]})
            spec = parse_spec(sweep, source=f"design round {round_no}")
            res = run_sweep(spec, self.out_dir / name, workers=self.workers, progress=False,
                            retry_failed=self.retry_failed, pool=self.pool)
            self.results.append((name, res))
            store = Store(self.out_dir / name)
            for row in res.dataframe.to_dict("records"):
                if row.get("status") != "ok":
                    continue
                bits, dt = store.read_bits(str(row["job_id"]))
                dt = dt or _finite(row.get("sample_period_s")) or _finite(row.get("digitize_sample_period_s"))
                if dt is None or bits.size < 2:
                    continue
                rs = scan_runs(bits, source=f"{name}/{row['job_id']}")
                regime = str(row.get("regime") or "unknown")
                out.append(PointCounts.from_runstats(float(row["bias_v"]), float(dt), rs,
                                                     n_eff=_finite(row.get("n_eff")), regime=regime))
        return out


@dataclass
class SyntheticRunner:
    """Runner on a telegraph cell with known rates (for benchmarks and checks without ngspice):
    ln k_up/down = ln k50 + b_up/down·(V − v50), b_up − b_down = 1/scale_v, b_up + b_down =
    slope_sum_per_v; k50 = 1/(2·tau_v50_s). Records sampled every ``dt_s`` from each job's own seed;
    labelled bistable when they hold ≥ 3 transitions each way, and not beyond ``bistable_within``
    scales from v50 (a tilted double well that loses its minority level)."""

    v50_v: float = 0.5e-3
    scale_v: float = 3e-3
    tau_v50_s: float = 250e-9
    slope_sum_per_v: float = 50.0
    dt_s: float = 10e-9
    bistable_within: float = math.inf
    simulated_s: float = 0.0

    def rates(self, v: float) -> tuple[float, float]:
        x = v - self.v50_v
        k50 = 1 / (2 * self.tau_v50_s)
        bu = 0.5 * (self.slope_sum_per_v + 1 / self.scale_v)
        bd = 0.5 * (self.slope_sum_per_v - 1 / self.scale_v)
        return k50 * math.exp(bu * x), k50 * math.exp(bd * x)

    def __call__(self, round_no: int, jobs: Sequence[DesignJob]) -> list[PointCounts]:
        import numpy as np

        from .analysis.runs import scan_runs
        from .analysis.synthetic import telegraph

        out = []
        for j in jobs:
            ku, kd = self.rates(j.bias_v)
            n = max(2, int(round(j.duration_s / self.dt_s)))
            rs = scan_runs(telegraph(n, self.dt_s, ku, kd, np.random.default_rng(j.seed)))
            self.simulated_s += n * self.dt_s
            lam = max(0.0, 1 - (ku + kd) * self.dt_s)
            ok = min(rs.n_up, rs.n_down) >= 3 and abs(j.bias_v - self.v50_v) <= self.bistable_within * self.scale_v
            out.append(PointCounts.from_runstats(j.bias_v, self.dt_s, rs, n_eff=rs.n * (1 - lam) / (1 + lam),
                                                 regime="bistable" if ok else "single-peaked"))
        return out
