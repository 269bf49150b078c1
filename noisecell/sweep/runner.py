"""The sweep driver: expand the spec, skip finished jobs, dispatch, store each result as it arrives.

Only this process writes to the output folder (workers return results to it), so a remote Dask
cluster needs no shared file system, and every file is written atomically (see :mod:`.store`).
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import queue
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, NoisecellError
from . import adaptive as _ad
from .executors import make_executor
from .jobs import SweepJob, expand
from .spec import SweepSpec, load_spec
from .store import Store


@dataclass
class SweepResult:
    """Outcome of :func:`run_sweep`.

    total/done/failed/pending: job counts over the whole sweep after this run.
    skipped: jobs already finished before this run (not redone); ran: jobs finished in this run.
    reanalysed: of those, jobs whose record was not simulated again but re-analysed from the stored
    waveform of an earlier row of the same simulation made by other analysis code (:func:`_reanalyse`).
    simulated_s: simulated time of the jobs run now, s. wall_s: wall time of this run, s.
    failures: (job_id, error) of every failed job. dataframe: :func:`noisecell.sweep.load` of the folder.
    adaptive: the adaptive-duration report (None for fixed-duration sweeps).
    """

    out_dir: Path
    total: int
    done: int
    failed: int
    pending: int
    skipped: int
    ran: int
    simulated_s: float
    wall_s: float
    executor: str
    workers: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    dataframe: pd.DataFrame | None = None
    adaptive: Any = None
    reanalysed: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("total", "done", "failed", "pending", "skipped", "ran", "reanalysed",
                                           "simulated_s", "wall_s", "executor", "workers")}
        d["out_dir"] = str(self.out_dir)
        d["failures"] = [{"job_id": j, "error": e} for j, e in self.failures]
        d["adaptive"] = self.adaptive.to_dict() if self.adaptive else None
        return d

    def summary(self) -> str:
        lines = [f"sweep {self.out_dir}: {self.done}/{self.total} done, {self.failed} failed, {self.pending} pending "
                 f"({self.skipped} already done, {self.ran} run now on {self.workers} {self.executor} workers"
                 + (f" of which {self.reanalysed} re-analysed from stored waveforms" if self.reanalysed else "") + ", "
                 f"{self.wall_s:.1f} s wall, {self.simulated_s * 1e6:.4g} µs simulated)"]
        for j, e in self.failures[:20]:
            lines.append(f"  FAILED {j[:12]}: {e}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more failures (see `noisecell status {self.out_dir}`)")
        if self.adaptive:
            lines.append("  " + self.adaptive.summary())
        return "\n".join(lines)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def build_manifest(spec: SweepSpec, jobs: list[SweepJob], cell) -> dict:
    from .. import __version__

    return {"spec": spec.to_dict(), "spec_sha256": spec.sha256(), "spec_source": spec.source,
            "cell": cell.to_dict(), "noisecell_version": __version__, "created_utc": _now(),
            "jobs": [j.conditions for j in jobs]}


class _Progress:
    """rich progress bar on a terminal, periodic lines otherwise, nothing when disabled."""

    def __init__(self, enabled: bool, total: int, already: int):
        self.enabled = enabled
        self.total, self.count, self.failed = total, already, 0
        self.bar = None
        self._next_pct = 0
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(),
                                console=Console(file=sys.stderr), transient=False)
            self.task = self.bar.add_task("sweep", total=total, completed=already, failed=0)
            self.bar.start()

    def advance(self, failed: bool) -> None:
        self.count += 1
        self.failed += int(failed)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)
        elif self.enabled:
            pct = 100 * self.count // max(1, self.total)
            if pct >= self._next_pct:
                print(f"sweep: {self.count}/{self.total} done, {self.failed} failed", file=sys.stderr, flush=True)
                self._next_pct = pct + 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_sweep(spec_or_path: SweepSpec | str | os.PathLike, out_dir: str | os.PathLike, *,
              workers: int | None = None, executor: str | None = None, progress: bool = True,
              scheduler: str | None = None, retry_failed: bool = False, update_spec: bool = False,
              pool=None) -> SweepResult:
    """Run (or resume) a sweep into ``out_dir``; returns a :class:`SweepResult`.

    Jobs with a stored result are skipped (failed ones too, unless ``retry_failed``). ``workers``
    and ``executor`` override the spec's; ``scheduler`` (tcp://HOST:PORT) uses a running Dask cluster.
    ``pool``: a :class:`noisecell.simulator.HostPool` to run local jobs on (kept open afterwards, so
    a characterisation's parts share its hosts); its size then sets the number of workers.
    """
    from ..cells import load_cell

    t_start = time.monotonic()
    spec = spec_or_path if isinstance(spec_or_path, SweepSpec) else load_spec(spec_or_path)
    try:
        cell = load_cell(spec.cell)
    except InputError as exc:
        raise InputError(f"{spec.source}: cell: {exc}") from None
    last = [time.monotonic()]

    def preparing(done: int, total: int) -> None:  # a grid near the job cap takes minutes to render
        if progress and (time.monotonic() - last[0] > 5 or (done == total and total > 20000)):
            last[0] = time.monotonic()
            print(f"sweep: preparing jobs {done}/{total}", file=sys.stderr, flush=True)

    jobs = expand(spec, cell, progress=preparing)
    store = Store(out_dir)
    lock = store.acquire_writer_lock()  # one writer per folder; released in the finally below
    try:
        return _run_locked(spec, cell, jobs, store, t_start=t_start, workers=workers, executor=executor,
                           progress=progress, scheduler=scheduler, retry_failed=retry_failed,
                           update_spec=update_spec, pool=pool)
    finally:
        lock.release()


def _run_locked(spec: SweepSpec, cell, jobs: list, store: Store, *, t_start: float, workers, executor,
                progress, scheduler, retry_failed, update_spec, pool=None) -> SweepResult:
    out_dir = store.root
    store.prepare(build_manifest(spec, jobs, cell), replace=update_spec)
    finished = store.finished()
    todo = [j for j in jobs if j.job_id not in finished or (retry_failed and finished[j.job_id] != "ok")]
    skipped = len(jobs) - len(todo)
    kind = "dask" if scheduler else (executor or spec.executor)
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be ≥ 1")
    n_workers = workers or spec.workers or os.cpu_count() or 1
    invocation = uuid.uuid4().hex[:12]
    failures: list[tuple[str, str]] = []
    simulated = 0.0
    ran = 0
    prog = _Progress(progress, len(jobs), skipped)
    ex = None
    reanalysed = 0
    try:
        chunk_rows: dict[str, list[dict]] = {}

        def finish(job: SweepJob, row: dict, failed: bool) -> None:
            nonlocal ran
            store.write_result(job.job_id, row)
            ran += 1
            if failed:
                failures.append((job.job_id, row.get("error") or ""))
            prog.advance(failed)

        def base_row(job: SweepJob, status: str) -> dict:
            return {**job.conditions, "status": status, "invocation": invocation, "finished_utc": _now()}

        if todo and not spec.adaptive:
            todo, reanalysed = _reanalyse(store, spec, jobs, todo, base_row, finish)
            if reanalysed and progress:
                print(f"sweep {out_dir}: {reanalysed} stored record(s) analysed by other noisecell code re-analysed "
                      "from their stored waveforms (not simulated again)", file=sys.stderr, flush=True)
        if todo:
            ex = make_executor(kind, n_workers, scheduler, store.logs, pool=pool)
            n_workers = ex.workers
        done_q: queue.Queue = queue.Queue()
        outstanding = 0

        def submit(job: SweepJob, k: int | None) -> None:
            nonlocal outstanding
            task = {"payload": job.payload(spec.keep_waveforms, k), "timeout_s": spec.timeout_s,
                    "cpu_per_us": spec.cpu_per_us, "retries": spec.retries, "name": f"job {job.job_id[:12]} (#{job.index})"}
            ex.submit(task, lambda res, tag: done_q.put((tag, res)), (job, k))
            outstanding += 1

        for job in todo:
            if spec.adaptive:
                rows = store.read_chunks(job.job_id)
                chunk_rows[job.job_id] = rows
                if rows and _ad.should_stop(_ad.pool(rows), len(rows), spec.adaptive):
                    finish(job, _adaptive_row(base_row(job, "ok"), rows, store), False)
                else:
                    submit(job, len(rows))
            else:
                submit(job, None)

        while outstanding:
            try:
                (job, k), res = done_q.get(timeout=0.5)
            except queue.Empty:
                continue
            outstanding -= 1
            name = job.job_id if k is None else f"{job.job_id}.c{k}"
            if not res["ok"]:
                row = base_row(job, "failed")
                row.update({"error": (res["error"] if k is None else f"chunk {k}: {res['error']}"),
                            "error_type": res.get("error_type"), **res["retry"],
                            "wall_s": res["wall_s"], "cpu_s": res.get("cpu_s"), "host": res.get("host")})
                finish(job, row, True)
                continue
            out = res["result"]
            simulated += out["simulated_s"]
            if out["waveform"] is not None:
                store.write_waveform(name, out["waveform"])
            store.write_bits(name, np.unpackbits(out["bits"])[: out["n_bits"]], out["sample_period_s"])
            if k is None:
                row = base_row(job, "ok")
                row.update({"error": None, **res["retry"]})  # which retry rung made these numbers
                row.update({c: v for c, v in out["row"].items() if c not in job.conditions})
                row.update({"wall_s": res["wall_s"], "cpu_s": res.get("cpu_s"), "host": res.get("host"),
                            "simulated_s": out["simulated_s"]})
                finish(job, row, False)
            else:
                crow = {"job_id": job.job_id, "chunk": k, "seed": job.chunk_jobs[k].seed,
                        "simulated_s": out["simulated_s"], **res["retry"], **out["stats"],
                        **{c: v for c, v in out["row"].items() if c not in out["stats"]},
                        "wall_s": res["wall_s"], "cpu_s": res.get("cpu_s"), "invocation": invocation}
                store.write_chunk(job.job_id, k, crow)
                rows = chunk_rows[job.job_id] + [crow]
                chunk_rows[job.job_id] = rows
                if _ad.should_stop(_ad.pool(rows), len(rows), spec.adaptive):
                    finish(job, _adaptive_row(base_row(job, "ok"), rows, store), False)
                else:
                    submit(job, k + 1)
    finally:
        prog.close()
        if ex is not None:
            ex.close()

    df = store.load()
    store.write_summary(df)
    counts = store.counts()
    all_failures = [(r["job_id"], r.get("error") or "") for r in df.to_dict("records") if r["status"] == "failed"]
    rep = _ad.report(df.to_dict("records"), spec.adaptive.target_p1_ci_halfwidth) if spec.adaptive else None
    return SweepResult(out_dir=Path(out_dir), total=counts["total"], done=counts["done"], failed=counts["failed"],
                       pending=counts["pending"], skipped=skipped, ran=ran, simulated_s=simulated,
                       wall_s=time.monotonic() - t_start, executor=kind, workers=n_workers,
                       failures=all_failures, dataframe=df, adaptive=rep, reanalysed=reanalysed)


#: retry columns of a stored row that say how its record was simulated (kept when it is re-analysed)
_RETRY_COLUMNS = ("attempts", "retry_rung", "retry_options_json", "retry_history", "retry_errors")


def _reanalyse(store: Store, spec: SweepSpec, jobs: list, todo: list, base_row, finish) -> tuple[list, int]:
    """Jobs of ``todo`` whose simulation is already stored under another job id re-analysed from that
    stored waveform instead of simulated again; returns (the jobs still to simulate, how many were
    re-analysed).

    A job id covers the simulation *and* the analysis code (:func:`.jobs.analysis_settings`), so after
    an analysis change (e.g. 2670cd9's settling cut) every stored row of a resumed folder is of another
    id: never read again (rows of two analyses are never mixed), and its record was simulated again.
    Here a stored ``ok`` row whose ``sim_job_id`` is this job's simulation id (the complete rendered
    netlist and seeds, rung 0) and whose waveform is stored gives the record; its row is rebuilt by the
    current :func:`.jobs.analyse_record` exactly as a fresh run would build it (``reanalysed_from``
    names the old job). Rows without a waveform (keep_waveforms = false) are simulated again."""
    from .jobs import analyse_record

    by_sim: dict[str, dict] = {}
    for row in store.rows_outside({j.job_id for j in jobs}):
        if row.get("status") == "ok" and isinstance(row.get("sim_job_id"), str):
            by_sim.setdefault(row["sim_job_id"], row)
    if not by_sim:
        return todo, 0
    rest, n = [], 0
    for job in todo:
        src = by_sim.get(job.sim_job.job_id())
        wf = None
        if src is not None:
            t0 = time.monotonic()
            try:
                wf = store.read_waveform(src["job_id"])
            except (NoisecellError, OSError):
                wf = None
        if wf is None:
            rest.append(job)
            continue
        out = analyse_record(wf, job.sim_job, job.analysis, keep_waveform=spec.keep_waveforms)
        if out["waveform"] is not None:
            store.write_waveform(job.job_id, out["waveform"])
        store.write_bits(job.job_id, np.unpackbits(out["bits"])[: out["n_bits"]], out["sample_period_s"])
        row = base_row(job, "ok")
        row.update({"error": None, **{c: src.get(c) for c in _RETRY_COLUMNS if c in src}})
        row.update({c: v for c, v in out["row"].items() if c not in job.conditions})
        row.update({"wall_s": time.monotonic() - t0, "host": None, "simulated_s": out["simulated_s"],
                    "reanalysed_from": src["job_id"]})
        finish(job, row, False)
        n += 1
    return rest, n


def _pooled_regime(store: Store, job_id: str, n_chunks: int):
    """Regime of an adaptive point from its chunks' stored waveforms, concatenated (None if any is
    missing, e.g. keep_waveforms = false). A chunk of a biased point holds few transitions, so its
    own verdict can miss a minority level that the whole record shows."""
    from ..regime import classify_trace, readout_trace

    parts, step, thr = [], None, 0.0
    for k in range(n_chunks):
        wf = store.read_waveform(f"{job_id}.c{k}")
        if wf is None:
            return None
        v, thr = readout_trace(wf)
        step = float(wf.meta.get("noise_step_s") or np.median(np.diff(wf.time_s)))
        # each chunk is its own run from the operating point: drop its first 0.5 µs of settling
        t = wf.time_s - wf.time_s[0]
        grid = np.arange(min(0.5e-6, 0.05 * t[-1]), t[-1], step)
        parts.append(np.interp(grid, t, v))
    return classify_trace(np.concatenate(parts), threshold_v=thr, sample_period_s=step)


def _adaptive_row(row: dict, chunks: list[dict], store: Store | None = None) -> dict:
    pooled = _ad.pool(chunks)
    row.update(pooled.to_row())
    row["p1_ci_halfwidth"] = pooled.p1_ci_halfwidth
    row["simulated_s"] = float(sum(c["simulated_s"] for c in chunks))
    row["duration_s"] = row["simulated_s"]
    row["error"] = None
    row["attempts"] = int(sum(c.get("attempts", 1) for c in chunks))
    # the highest retry rung any chunk needed, and each chunk's history ("ok;crash,ok;...")
    row["retry_rung"] = int(max((c.get("retry_rung") or 0) for c in chunks)) if chunks else 0
    row["retry_history"] = ";".join(str(c.get("retry_history") or "ok") for c in chunks)
    row["wall_s"] = float(sum(c.get("wall_s", 0.0) for c in chunks))
    cpus = [c.get("cpu_s") for c in chunks]
    row["cpu_s"] = (float(sum(cpus)) if cpus and all(isinstance(x, (int, float)) and math.isfinite(x) for x in cpus)
                    else None)
    # regime of the point: the chunks' verdicts, when they agree
    regimes = {c.get("regime") for c in chunks}
    row["regime"] = regimes.pop() if len(regimes) == 1 else "mixed:" + ",".join(sorted(map(str, regimes)))
    if row["regime"].startswith("mixed:") and store is not None:
        # the chunks disagree (typically: enough transitions in one, too few in another): decide on
        # the whole record
        try:
            res = _pooled_regime(store, row["job_id"], len(chunks))
        except (OSError, ValueError, KeyError, NoisecellError):
            res = None
        if res is not None:
            row["regime_chunks"] = row["regime"]
            row["regime"] = res.regime
            row["regime_reasons"] = f"whole record ({len(chunks)} chunks; chunks said {row['regime_chunks'][6:]}): " + \
                "; ".join(res.reasons)
            for k in ("valley_ratio", "minor_mode_fraction", "n_transitions", "mean_dwell_s", "dwell_ratio"):
                row[f"regime_{k}"] = getattr(res, k)
    return row


def load(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The sweep in ``out_dir`` as a DataFrame, one row per job (pending jobs included)."""
    return Store(out_dir).load()


def status(out_dir: str | os.PathLike) -> dict:
    """{"total", "done", "failed", "pending"} of the sweep in ``out_dir``."""
    return Store(out_dir).counts()

