"""A long-lived pool of simulator hosts: one host per worker thread, kept across many runs.

A characterisation opens one :class:`HostPool` and passes it to every sweep it runs (``run_sweep(...,
pool=pool)``), so the hosts (and their loaded ngspice and models' file cache) survive from one part
to the next instead of restarting per part. The local sweep executor is a thin view of a pool; the
Dask executor runs the same :func:`run_task` in its worker processes, so results are bit-identical.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import NoisecellError
from .host import DEFAULT_WARM_UP, SimHost
from .retry import run_with_retries

_TL = threading.local()


def thread_host(log_dir: str | None, registry: list, warm_up: str = DEFAULT_WARM_UP) -> SimHost:
    """The calling thread's host for ``registry`` (one list per pool), started lazily."""
    hosts = getattr(_TL, "hosts", None)
    if hosts is None:
        hosts = _TL.hosts = {}
    h = hosts.get(id(registry))
    if h is None:
        log = Path(log_dir) / f"host-{os.getpid()}-{threading.get_ident()}.log" if log_dir else None
        h = hosts[id(registry)] = SimHost(log, warm_up=warm_up)
        registry.append(h)
    return h


def run_task(task: dict, log_dir: str | None, registry: list, warm_up: str = DEFAULT_WARM_UP) -> dict:
    """Execute one task ({"payload", "timeout_s", "retries", "name"}, optional "cpu_per_us": the CPU-time
    limit's rate, CPU-s per simulated µs, None/absent: the default, 0: none) on this thread's host.

    Never raises for a job failure. Returns {"ok": True, "result", "retry": RetryRecord.to_row(),
    "attempts", "errors", "wall_s", "cpu_s", "host"} or {"ok": False, "error", "error_type", "retry", ...}.
    cpu_s: the simulator CPU time (user + system, s) the task cost on its host, every attempt and a
    process killed at its timeout included (the host is this thread's alone while the task runs).
    """
    host = thread_host(log_dir, registry, warm_up)
    t0 = time.monotonic()
    c0 = host.cpu_seconds()
    where = f"{os.uname().nodename}:{host.pid}"
    try:
        result, record = run_with_retries(host, task["payload"], timeout_s=task["timeout_s"],
                                          retries=task["retries"], name=task["name"],
                                          cpu_per_us=task.get("cpu_per_us"))
        return {"ok": True, "result": result, "retry": record.to_row(), "attempts": len(record.attempts),
                "errors": record.errors(), "wall_s": time.monotonic() - t0,
                "cpu_s": host.cpu_seconds() - c0, "host": f"{os.uname().nodename}:{host.pid}"}
    except NoisecellError as exc:
        record = getattr(exc, "retry_record", None)
        errs = record.errors() if record else [str(exc)]
        return {"ok": False, "error": " | ".join(errs), "error_type": type(exc).__name__,
                "retry": record.to_row() if record else {"attempts": 1},
                "attempts": len(record.attempts) if record else 1, "wall_s": time.monotonic() - t0,
                "cpu_s": host.cpu_seconds() - c0, "host": where}


def _future_value(f) -> dict:
    try:
        return f.result()
    except BaseException as exc:  # cancelled, or a bug in run_task itself
        return {"ok": False, "error": f"executor error: {type(exc).__name__}: {exc}",
                "error_type": "ExecutorError", "retry": {"attempts": 0}, "attempts": 0, "wall_s": 0.0, "host": ""}


class HostPool:
    """``workers`` simulator hosts (default: one per core) driven by threads of this process.

    Use as a context manager or call :meth:`close`; hosts start on first use and live until then.
    log_dir: where each host's log goes (None: discarded). warm_up: what hosts load at start.
    """

    def __init__(self, workers: int | None = None, log_dir: str | os.PathLike | None = None,
                 warm_up: str = "noisecell.sweep.jobs:warm_up"):
        self.workers = workers or os.cpu_count() or 1
        self.log_dir = str(log_dir) if log_dir else None
        self.warm_up = warm_up
        self.hosts: list[SimHost] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="noisecell-host")
        self.closed = False

    def submit_task(self, task: dict) -> Future:
        """Run ``task`` (see :func:`run_task`) on a free host; a future of its result dict."""
        return self._pool.submit(run_task, task, self.log_dir, self.hosts, self.warm_up)

    def submit(self, task: dict, callback: Callable[[dict, Any], None], tag: Any) -> None:
        """Executor interface of the sweep runner: ``callback(result dict, tag)`` when done."""
        fut = self.submit_task(task)
        fut.add_done_callback(lambda f: callback(_future_value(f), tag))

    def run(self, payload: dict, *, timeout_s: float | None, retries: int = 0, name: str = "job",
            cpu_per_us: float | None = None) -> dict:
        """Run one payload and wait: the result dict of :func:`run_task`."""
        return _future_value(self.submit_task({"payload": payload, "timeout_s": timeout_s, "retries": retries,
                                               "name": name, "cpu_per_us": cpu_per_us}))

    def close(self) -> None:
        # kill hosts first so that in-flight jobs return at once (as host-died errors that the
        # driver discards when it is shutting down)
        self.closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for h in list(self.hosts):
            h.close()
        self._pool.shutdown(wait=True)
        for h in list(self.hosts):  # a host started by a task that slipped in during shutdown
            h.close()

    def __enter__(self) -> "HostPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
