"""Where sweep jobs run: simulator hosts, the retry ladder, a local pool and Dask distributed.

A **simulator host** (:class:`SimHost`) is a persistent child process (``python -c ...`` through
:mod:`subprocess`, so it works inside daemonic Dask workers too) that hosts one ngspice (PySpice
shared mode) and runs one job at a time: simulate, digitise, analyse. The parent talks to it over
its stdin/stdout with length-prefixed pickles (the child moves ngspice's own stdout to its log).
Because the parent waits with a deadline, a hung job is killed (SIGKILL of that one child) at its
timeout and the host restarts for the next job: the sweep goes on.

Both executors drive the very same host code — the local pool with one host per worker thread in
this process, Dask with one host per Dask worker process — so results are bit-identical.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, NoisecellError, SimulationError, SimulationTimeout

#: Non-convergence retry ladder. Rung 0 is the job as rendered; each later rung adds ngspice
#: ``.options`` that make the transient more robust at some cost in speed. Applied only after a
#: SimulationError that is not a timeout (a hang is not cured by these and would cost another
#: full timeout). Rung k's options replace rung k-1's (they are cumulative by construction).
RETRY_LADDER: tuple[dict[str, Any], ...] = (
    {},
    # Gear (BDF2) integration damps the numerical ringing of trapezoidal integration that causes
    # most "timestep too small" failures in stiff latch circuits.
    {"method": "gear"},
    # more Newton iterations per time point (default 10) and gmin stepping for the operating point
    {"method": "gear", "itl4": 100, "gminsteps": 100},
    # tighter local truncation error and charge tolerance (smaller internal steps), and a 1 TΩ
    # shunt at every node, which removes singular matrices from floating nodes (≤ 1 pS per node)
    {"method": "gear", "itl4": 100, "gminsteps": 100, "reltol": 1e-4, "chgtol": 1e-16, "rshunt": 1e12},
)

#: restart a host after this many jobs to bound memory growth inside ngspice
HOST_MAX_JOBS = 400
#: wall time allowed for a host to start (import PySpice, load ngspice), s
HOST_START_TIMEOUT_S = 120.0
_HDR = struct.Struct(">Q")


class _Deadline(Exception):
    pass


def _set_pdeathsig() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a ``kill -9`` of the sweep then
    leaves no orphan simulations running). No-op elsewhere; EOF on stdin is the fallback."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # parent already gone before prctl took effect
                os._exit(1)
        except OSError:
            pass


def _send(f, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HDR.pack(len(data)) + data)
    f.flush()


def _child_serve() -> None:
    """Entry point of a simulator host child process."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything ngspice/PySpice prints goes to the log (stderr), never the protocol
    _set_pdeathsig()
    from . import jobs  # heavy imports (PySpice via noisecell.simulate) happen once, here
    jobs.warm_up()
    _send(proto_out, ("ready", os.getpid()))

    def read_exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = proto_in.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    while True:
        try:
            (n,) = _HDR.unpack(read_exact(_HDR.size))
            payload = pickle.loads(read_exact(n))
        except EOFError:
            os._exit(0)
        try:
            reply = ("ok", jobs.execute_in_host(payload))
        except NoisecellError as exc:
            reply = ("err", type(exc).__name__, str(exc))
        except Exception as exc:  # a bug or an unexpected library error: report, keep serving
            tb = traceback.format_exc(limit=3).strip().splitlines()
            reply = ("err", "Exception", f"{type(exc).__name__}: {exc} [{tb[-3] if len(tb) > 2 else ''}]")
        _send(proto_out, reply)


def _error_from(kind: str, message: str) -> NoisecellError:
    cls = {"SimulationTimeout": SimulationTimeout, "SimulationError": SimulationError,
           "InputError": InputError, "UnsafeNetlistError": InputError}.get(kind)
    if cls is None:
        if kind != "Exception":
            return NoisecellError(message)
        return SimulationError(f"internal error: {message}")
    return cls(message)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class SimHost:
    """A persistent simulator child process. Thread-safe (one job at a time).

    log_path: where the child's stderr (ngspice chatter, warnings) goes; None discards it.
    """

    def __init__(self, log_path: str | os.PathLike | None = None):
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.jobs_run = 0
        self.pid: int | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_package_root(), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # one thread per host: the pool provides the parallelism; BLAS/numba threads would fight it
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        # A Dask nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536; the simulator does not
        # inherit it, so it runs with glibc's defaults under either executor (no speed difference was
        # measurable from this alone: the Dask slowdown was its housekeeping, see DaskExecutor).
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            err = open(self.log_path, "ab")
        else:
            err = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from noisecell.sweep.executors import _child_serve; _child_serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        self.jobs_run = 0
        try:
            reply = self._recv(time.monotonic() + HOST_START_TIMEOUT_S)
        except (_Deadline, EOFError):
            code = self._kill()
            raise SimulationError(f"simulator host failed to start (exit code {code}); "
                                  f"see {self.log_path or 'its stderr'}") from None
        self.pid = reply[1]

    def _kill(self) -> int | None:
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.kill()
        code = p.wait()
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except OSError:
                pass
        return code

    def close(self) -> None:
        """Kill the host now, even mid-job (the waiting caller then sees it die); thread-safe."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
        with self._lock:
            self._kill()

    def _recv(self, deadline: float):
        fd = self.proc.stdout.fileno()

        def read_exact(n: int) -> bytes:
            chunks, got = [], 0
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                while got < n:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        raise _Deadline
                    b = os.read(fd, min(n - got, 1 << 20))
                    if not b:
                        raise EOFError
                    chunks.append(b)
                    got += len(b)
            return b"".join(chunks)

        (n,) = _HDR.unpack(read_exact(_HDR.size))
        return pickle.loads(read_exact(n))

    def run(self, payload: Any, timeout_s: float, name: str = "job") -> Any:
        """Run ``payload`` in the host; SimulationTimeout (host killed) after ``timeout_s`` wall s."""
        with self._lock:
            for attempt in (0, 1):
                if self.proc is None or self.proc.poll() is not None or self.jobs_run >= HOST_MAX_JOBS:
                    self._kill()
                    self._start()
                try:
                    _send(self.proc.stdin, payload)
                    break
                except (BrokenPipeError, OSError):
                    # the idle host died (e.g. its parent thread exited): restart it once
                    self._kill()
                    if attempt:
                        raise SimulationError(f"{name}: cannot reach the simulator host") from None
            self.jobs_run += 1
            try:
                reply = self._recv(time.monotonic() + timeout_s)
            except _Deadline:
                self._kill()
                raise SimulationTimeout(f"{name}: no result after {timeout_s:g} s wall time; the simulator "
                                        "was killed (raise 'timeout' in the spec if the job is only slow)") from None
            except EOFError:
                code = self._kill()
                raise SimulationError(f"{name}: the simulator process died (exit code {code}) — ngspice crash; "
                                      f"see {self.log_path or 'the worker log'}") from None
        if reply[0] == "ok":
            return reply[1]
        raise _error_from(reply[1], reply[2])


def run_with_ladder(host: SimHost, payload: dict, *, timeout_s: float, retries: int, name: str) -> tuple[Any, int, list[str]]:
    """Run a simulate-and-analyse payload, climbing :data:`RETRY_LADDER` on non-convergence.

    Returns (result, attempts, errors of the failed attempts). Raises the last error when every
    allowed rung failed, with the earlier errors attached as ``exc.attempt_errors``.
    """
    errors: list[str] = []
    rungs = RETRY_LADDER[: max(1, min(len(RETRY_LADDER), retries + 1))] if "job" in payload else ({},)
    base_options = dict(payload["job"].options or {}) if "job" in payload else {}
    for k, extra in enumerate(rungs):
        p = payload
        if extra:
            job = dataclasses.replace(payload["job"], options={**base_options, **extra})
            p = {**payload, "job": job, "rung": k}
        try:
            return host.run(p, timeout_s, name=name), k + 1, errors
        except SimulationTimeout as exc:
            errors.append(str(exc))
            exc.attempt_errors = errors
            exc.attempts = k + 1
            raise
        except InputError as exc:  # a bad parameter fails every rung the same way
            errors.append(str(exc))
            exc.attempt_errors = errors
            exc.attempts = k + 1
            raise
        except SimulationError as exc:
            errors.append(str(exc))
            if k == len(rungs) - 1:
                exc.attempt_errors = errors
                exc.attempts = k + 1
                raise
    raise AssertionError("unreachable")


# -- task function shared by both executors ---------------------------------------------------
_TL = threading.local()
_DASK_HOSTS: list[SimHost] = []   # hosts of this (Dask worker) process


def _thread_host(log_dir: str | None, registry: list) -> SimHost:
    hosts = getattr(_TL, "hosts", None)
    if hosts is None:
        hosts = _TL.hosts = {}
    h = hosts.get(id(registry))
    if h is None:
        log = Path(log_dir) / f"host-{os.getpid()}-{threading.get_ident()}.log" if log_dir else None
        h = hosts[id(registry)] = SimHost(log)
        registry.append(h)
    return h


def run_task(task: dict, log_dir: str | None = None, registry: list | None = None) -> dict:
    """Execute one task (a simulate-and-analyse payload plus timeout/retries) on this thread's
    host. Never raises for a job failure: returns {"ok": False, "error", "attempts"} instead."""
    host = _thread_host(log_dir, _DASK_HOSTS if registry is None else registry)
    t0 = time.monotonic()
    try:
        result, attempts, errors = run_with_ladder(host, task["payload"], timeout_s=task["timeout_s"],
                                                   retries=task["retries"], name=task["name"])
        return {"ok": True, "result": result, "attempts": attempts, "errors": errors,
                "wall_s": time.monotonic() - t0, "host": f"{os.uname().nodename}:{host.pid}"}
    except NoisecellError as exc:
        errs = getattr(exc, "attempt_errors", [str(exc)])
        return {"ok": False, "error": " | ".join(errs), "error_type": type(exc).__name__,
                "attempts": getattr(exc, "attempts", 1), "wall_s": time.monotonic() - t0,
                "host": f"{os.uname().nodename}:{host.pid}"}


# -- executors ----------------------------------------------------------------------------
class LocalExecutor:
    """``workers`` simulator hosts driven by threads of this process (default: one per core)."""

    name = "local"

    def __init__(self, workers: int | None = None, log_dir: str | os.PathLike | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.log_dir = str(log_dir) if log_dir else None
        self._hosts: list[SimHost] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="noisecell-host")

    def submit(self, task: dict, callback: Callable[[dict, Any], None], tag: Any) -> None:
        fut = self._pool.submit(run_task, task, self.log_dir, self._hosts)
        fut.add_done_callback(lambda f: callback(_future_value(f), tag))

    def close(self) -> None:
        # kill hosts first so that in-flight jobs return at once (as host-died errors that the
        # driver discards when it is shutting down)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for h in list(self._hosts):
            h.close()
        self._pool.shutdown(wait=True)
        for h in list(self._hosts):  # a host started by a task that slipped in during shutdown
            h.close()


def _future_value(f) -> dict:
    try:
        return f.result()
    except BaseException as exc:  # cancelled, or a bug in run_task itself
        return {"ok": False, "error": f"executor error: {type(exc).__name__}: {exc}",
                "error_type": "ExecutorError", "attempts": 0, "wall_s": 0.0, "host": ""}


def _dask_run_task(task: dict) -> dict:
    return run_task(task, None)


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


def make_executor(kind: str, workers: int | None, scheduler: str | None, log_dir=None):
    if scheduler or kind == "dask":
        return DaskExecutor(workers, scheduler)
    if kind != "local":
        raise InputError(f"--executor {kind!r}: expected local or dask")
    return LocalExecutor(workers, log_dir)
