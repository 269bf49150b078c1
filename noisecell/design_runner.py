"""Run the sequential design's jobs as sweeps (the side-effect edge of :mod:`noisecell.design`).

Asynchronous use (:meth:`SweepRunner.submit`, what :func:`noisecell.design.run_design` uses): every
job is a one-point sweep ``OUT/<prefix>-jNNN`` run in a thread of its own on the characterisation's
shared :class:`~noisecell.simulator.HostPool` (the pool's queue keeps at most one simulation per core
running; the design keeps one more queued so that no core waits for the planner), its seed the job's
seed. Resumable like any sweep: a re-run with the same seed finds the stored results. Round use
(``runner(round_no, jobs)``: the held-out records, the fixed design of the benchmark): the jobs of one
length become one sweep ``OUT/<prefix>-rNN[-g]``.

Counts are read back from the stored bit streams (the single source of truth), scanned once
(:func:`noisecell.analysis.runs.scan_runs`) into :class:`~noisecell.model.ratefit.PointCounts`;
P(1)'s effective sample size and the regime label come from the sweep's analysis of the same stream
(:func:`points_from_sweep`, also how a pilot's records enter the design).
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .design import DesignJob
from .model.ratefit import PointCounts
# the start-up settling cut (SETTLE_SAMPLES, settled) is shared with the sweep's per-record analysis
from .simulate import SETTLE_SAMPLES, settled  # noqa: F401 (SETTLE_SAMPLES: re-exported for tests)


#: wall-time allowance per simulated µs of a design record (the sweep timeout is at least this):
#: ~13× pbit's unloaded speed (4.4 µs per core-second), ~18× pbit_x4's (~6 µs per core-second), for a
#: machine shared 4 ways. It bounds what a stalled ngspice run costs: `characterize pbit_x4` with the
#: default spec (session 24, load 5-8 on 2 cores) lost 4 of 194 records to stalls at the ss corner,
#: 300-450 s of a worker each at the former 10 s/µs, while its slowest finished record took 3.0 s/µs
#: (median 0.27 s/µs).
TIMEOUT_PER_SIMULATED_US = 3.0


def record_timeout(shared_timeout, duration_s: float, what: str) -> float:
    """The timeout (s) of a record of ``duration_s``: the sweep's own (``shared_timeout``, SI string or
    seconds; the sweep default when None), raised to TIMEOUT_PER_SIMULATED_US per simulated µs."""
    from .sweep.spec import DEFAULT_TIMEOUT_S
    from .units import parse_si

    t = parse_si(DEFAULT_TIMEOUT_S if shared_timeout is None else shared_timeout, unit="s", what=f"{what}: timeout")
    return float(max(t, TIMEOUT_PER_SIMULATED_US * float(duration_s) * 1e6))


def _finite(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def record_counts(bits, sample_period_s: float, bias_v: float, *, n_eff: float | None = None,
                  regime: str = "bistable", source: str = "bits") -> PointCounts:
    """PointCounts of one record after its first SETTLE_SAMPLES samples (all of it when it is shorter
    than 2·SETTLE_SAMPLES: a record that short cannot spare them). ``simulated_s`` stays the whole
    record's length: the design compares it with its chunk lengths (a 10 µs record is a 10 µs chunk)."""
    import dataclasses

    import numpy as np

    from .analysis.runs import scan_runs

    b = np.asarray(bits)
    n_all = b.size
    rs = scan_runs(settled(b), source=source)
    p = PointCounts.from_runstats(float(bias_v), float(sample_period_s), rs, n_eff=n_eff, regime=regime)
    return dataclasses.replace(p, simulated_s=n_all * float(sample_period_s))


def points_from_sweep(sweep_dir: Path, result, name: str = "") -> list[PointCounts]:
    """One PointCounts per finished job of a sweep (its stored bits, less the start-up settling:
    :func:`record_counts`), in the sweep's row order."""
    from .sweep.store import Store

    store = Store(sweep_dir)
    out: list[PointCounts] = []
    for row in result.dataframe.to_dict("records"):
        if row.get("status") != "ok":
            continue
        bits, dt = store.read_bits(str(row["job_id"]))
        dt = dt or _finite(row.get("sample_period_s")) or _finite(row.get("digitize_sample_period_s"))
        if dt is None or bits.size < 2:
            continue
        regime = str(row.get("regime") or "unknown")
        out.append(record_counts(bits, float(dt), float(row["bias_v"]), n_eff=_finite(row.get("n_eff")),
                                 regime=regime, source=f"{name or sweep_dir.name}/{row['job_id']}"))
    return out


def host_cpu_seconds(pool) -> float:
    """User + system CPU time (s) used so far by the simulator hosts of ``pool``, including the hosts'
    processes that have exited (killed at a timeout, crashed, restarted): :meth:`SimHost.cpu_seconds`,
    which never decreases. NaN when the pool has no hosts to ask (e.g. a Dask cluster's)."""
    hosts = getattr(pool, "hosts", None) or []
    tot, seen = 0.0, False
    for h in list(hosts):
        f = getattr(h, "cpu_seconds", None)
        if f is None:
            continue
        tot += float(f())
        seen = True
    return tot if seen else float("nan")


def sweeps_cpu_seconds(results) -> float:
    """Simulator CPU time (s) of the jobs of ``results`` ((name, SweepResult) pairs): the sum of their
    rows' ``cpu_s`` (each job's own cost on its host, :func:`noisecell.simulator.pool.run_task`). A
    design's own figure, also when other designs share the pool at the same time (the conditions run
    two at once: the pool's total over a design's lifetime counts both). NaN when no row has it."""
    import numpy as np
    import pandas as pd

    tot, seen = 0.0, False
    for _, res in list(results):
        df = getattr(res, "dataframe", None)
        if df is None or "cpu_s" not in df:
            continue
        v = pd.to_numeric(df["cpu_s"], errors="coerce").to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size:
            tot += float(v.sum())
            seen = True
    return tot if seen else float("nan")


@dataclass
class SweepRunner:
    """Callable ``runner(round_no, jobs)`` for :func:`noisecell.design.run_design`.

    cell: cell name or folder. out_dir: folder the round sweeps go into. shared: sweep-spec keys
    every round takes (noise_step, timeout, retries, ...; grid/adaptive/duration/seed are set here).
    corner, temp_c: the condition. pool: a :class:`noisecell.simulator.HostPool` kept across jobs
    (hosts start once). results: (part name, SweepResult) of every sweep run, in the order they
    finished (sort by name for the submission order).
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
    _threads: ThreadPoolExecutor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _spec(self, jobs: Sequence[DesignJob], duration: float, what: str):
        from .sweep.spec import parse_spec

        biases = sorted({float(f"{j.bias_v:.9g}") for j in jobs})
        sweep = {k: v for k, v in self.shared.items() if k not in ("grid", "adaptive", "duration", "seed")}
        sweep.update(cell=self.cell, duration=float(f"{duration:.9g}"), seed=int(jobs[0].seed),
                     grid={"bias": biases, "temperature": [float(self.temp_c)], "corner": [self.corner]})
        # a long record on a loaded machine must not hit a timeout meant for short ones
        sweep["timeout"] = record_timeout(sweep.get("timeout"), duration, what)
        return parse_spec(sweep, source=what)

    def _run(self, name: str, spec) -> list[PointCounts]:
        from .sweep import run_sweep

        # the round/job sweeps are this runner's own (characterize-owned): on a resume whose plan moved
        # (the pilot read another V50, so job 0 sits at another bias) the folder adopts the new job's
        # spec instead of refusing it as "a sweep of a different spec"; a job whose record is stored
        # (same content-addressed id) is still not simulated again, and the sweep reads only the
        # manifest's jobs, so the old plan's record does not enter the fit
        res = run_sweep(spec, self.out_dir / name, workers=self.workers, progress=False,
                        retry_failed=self.retry_failed, pool=self.pool, update_spec=True)
        with self._lock:
            self.results.append((name, res))
        return points_from_sweep(self.out_dir / name, res, name)

    def __call__(self, round_no: int, jobs: Sequence[DesignJob]) -> list[PointCounts]:
        groups: dict[float, list[DesignJob]] = {}
        for j in jobs:
            groups.setdefault(round(j.duration_s, 15), []).append(j)
        out: list[PointCounts] = []
        for g, (duration, js) in enumerate(sorted(groups.items())):
            name = f"{self.prefix}-r{round_no:02d}" + (f"-{g}" if len(groups) > 1 else "")
            out += self._run(name, self._spec(js, duration, f"design round {round_no}"))
        return out

    def submit(self, index: int, job: DesignJob) -> Future:
        """Job ``index`` as the one-point sweep ``<prefix>-jNNN`` in a thread of its own (its simulation
        queues on the shared pool); a future of its PointCounts (None when the simulation failed)."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="noisecell-design")
        name = f"{self.prefix}-j{index:03d}"
        spec = self._spec([job], job.duration_s, f"design job {index}")

        def run():
            got = self._run(name, spec)
            return got[0] if got else None

        return self._threads.submit(run)

    def cpu_seconds(self) -> float:
        """Simulator CPU time (s) of this runner's jobs so far (:func:`sweeps_cpu_seconds`)."""
        with self._lock:
            done = list(self.results)
        # 0 before the first job: run_design measures its CPU as a difference from this first reading
        return sweeps_cpu_seconds(done) if done else 0.0

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None


@dataclass
class SyntheticRunner:
    """Runner on a telegraph cell with known rates (for benchmarks and checks without ngspice):
    ln k_up/down = ln k50 + b_up/down·(V − v50), b_up − b_down = 1/scale_v, b_up + b_down =
    slope_sum_per_v; k50 = 1/(2·tau_v50_s). Records sampled every ``dt_s`` from each job's own seed;
    labelled bistable when they hold ≥ 3 transitions each way, and not beyond ``bistable_within``
    scales from v50 (a tilted double well that loses its minority level). ``yield_beyond`` (None: off):
    beyond ``bistable_within`` a record telegraphs (and is labelled by its counts) with this
    probability, drawn from the job's seed, and otherwise sits in the majority state throughout (no
    transitions): a known telegraph yield, as pbit's records beyond ~3 scales (14-25 % entered the fit)."""

    v50_v: float = 0.5e-3
    scale_v: float = 3e-3
    tau_v50_s: float = 250e-9
    slope_sum_per_v: float = 50.0
    dt_s: float = 10e-9
    bistable_within: float = math.inf
    simulated_s: float = 0.0
    yield_beyond: float | None = None

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
            rng = np.random.default_rng(j.seed)
            beyond = abs(j.bias_v - self.v50_v) > self.bistable_within * self.scale_v
            if self.yield_beyond is not None and beyond:
                # the draw that decides comes from a child of the job's seed: the record's noise
                # (its own generator) stays what it would be without the yield
                lucky = np.random.default_rng([j.seed, 0x59]).random() < self.yield_beyond
                x = telegraph(n, self.dt_s, ku, kd, rng) if lucky else \
                    np.full(n, 1 if ku > kd else 0, dtype=np.uint8)
                beyond = not lucky
            else:
                x = telegraph(n, self.dt_s, ku, kd, rng)
            rs = scan_runs(x)
            self.simulated_s += n * self.dt_s
            lam = max(0.0, 1 - (ku + kd) * self.dt_s)
            ok = min(rs.n_up, rs.n_down) >= 3 and not beyond
            out.append(PointCounts.from_runstats(j.bias_v, self.dt_s, rs, n_eff=rs.n * (1 - lam) / (1 + lam),
                                                 regime="bistable" if ok else "single-peaked"))
        return out


class SyntheticTruth:
    """A :class:`SyntheticRunner` cell's true rate model in the attributes
    :func:`noisecell.design.information_per_second` reads (v50, scale, slope_sum_per_v,
    curvature_per_v2, p1, tau_s), so information bounds can be computed at the truth (V, s)."""

    def __init__(self, cell: "SyntheticRunner"):
        from types import SimpleNamespace

        self.cell = cell
        self.v50, self.scale = SimpleNamespace(value=cell.v50_v), SimpleNamespace(value=cell.scale_v)
        self.slope_sum_per_v, self.curvature_per_v2 = cell.slope_sum_per_v, None

    def p1(self, v: float) -> float:
        ku, kd = self.cell.rates(float(v))
        return ku / (ku + kd)

    def tau_s(self, v: float) -> float:
        ku, kd = self.cell.rates(float(v))
        return 1.0 / (ku + kd)
