"""Where sweep jobs run: a local pool of simulator hosts, or Dask distributed.

The hosts, their deadlines, crash detection and the retry ladder are the simulator backend's
(:mod:`noisecell.simulator`). The local executor is a view of a :class:`~noisecell.simulator.HostPool`
(its own, or one a characterisation keeps across its sweeps); Dask runs the same
:func:`~noisecell.simulator.run_task` with one host per Dask worker process, so results are
bit-identical.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from ..errors import InputError
from ..simulator.pool import HostPool, _future_value, run_task

#: what a sweep's hosts load before their first job (simulation, digitisation and analysis code)
SWEEP_WARM_UP = "noisecell.sweep.jobs:warm_up"
_DASK_HOSTS: list = []   # hosts of this (Dask worker) process


class LocalExecutor:
    """Simulator hosts driven by threads of this process: ``pool`` if given (left open at close:
    its owner closes it), else a pool of its own with ``workers`` hosts (default one per core)."""

    name = "local"

    def __init__(self, workers: int | None = None, log_dir: str | os.PathLike | None = None,
                 pool: HostPool | None = None):
        self._own = pool is None
        self.pool = pool if pool is not None else HostPool(workers, log_dir, warm_up=SWEEP_WARM_UP)
        self.workers = self.pool.workers

    def submit(self, task: dict, callback: Callable[[dict, Any], None], tag: Any) -> None:
        self.pool.submit(task, callback, tag)

    def close(self) -> None:
        if self._own:
            self.pool.close()


def _dask_run_task(task: dict) -> dict:
    return run_task(task, None, _DASK_HOSTS, SWEEP_WARM_UP)


class DaskExecutor:
    """Dask distributed: ``scheduler`` = address of a running cluster, or None to start a
    LocalCluster with ``workers`` processes of one thread each (one simulator host per worker)."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {scheduler}: cannot connect ({exc}); check the address "
                                 "(tcp://HOST:PORT) and that the scheduler is running") from None
        else:
            import dask

            # Dask's housekeeping is sized for clusters with spare cores: a 20 ms event-loop tick,
            # a 10 ms statistical profiler and a 0.5 s system monitor in every process cost ~6 % of
            # a core each, i.e. ~10-20 % of a 2-core machine whose cores the simulators need. Our
            # tasks are seconds long and never profiled, so the LocalCluster we start runs them at
            # a slow pace (the nannies hand this configuration to their workers as they start them,
            # so it is set only while the cluster starts, not for the rest of the caller's process).
            with dask.config.set({"distributed.admin.tick.interval": "1s",
                                  "distributed.admin.system-monitor.interval": "5s",
                                  "distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                            processes=True, dashboard_address=None, silence_logs=40)
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {})) or (workers or 1)

    def submit(self, task: dict, callback: Callable[[dict, Any], None], tag: Any) -> None:
        # pure=False: identical tasks (e.g. a rerun) must really run; retries=0: the ladder and
        # the timeout are handled inside the task, Dask must not rerun a failed job by itself
        fut = self.client.submit(_dask_run_task, task, pure=False, retries=0)
        fut.add_done_callback(lambda f: callback(_future_value(f), tag))

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def make_executor(kind: str, workers: int | None, scheduler: str | None, log_dir=None,
                  pool: HostPool | None = None):
    """The executor of a sweep; ``pool``: a long-lived host pool to run local jobs on."""
    if scheduler or kind == "dask":
        return DaskExecutor(workers, scheduler)
    if kind != "local":
        raise InputError(f"--executor {kind!r}: expected local or dask")
    return LocalExecutor(workers, log_dir, pool=pool)
