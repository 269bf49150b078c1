"""Simulator hosts: persistent child processes that each hold one ngspice session.

A host (:class:`SimHost`) is a ``python -c ...`` child started through :mod:`subprocess` (so it
works inside daemonic Dask workers too, and inherits no ngspice or thread state). The parent talks
to it over its stdin/stdout with length-prefixed pickles; the child moves ngspice's own stdout to its
log. The parent waits with a deadline, so a hung job is killed (SIGKILL of that one child) at its
timeout; a child that dies mid-job (a crash of ngspice) is reported as :class:`HostCrashed`, and the
host restarts for the next job.

Payloads are dicts built by noisecell, never from user text:
``{"entry": "module:function", ...}`` calls ``function(payload)`` in the host (the function finds the
:class:`~noisecell.simulate.SimulationJob` under ``"job"``); ``{"call": "module:function", "args":
[...]}`` calls ``function(*args)`` (tests and benchmarks exercise the machinery with it).
"""
from __future__ import annotations

import ctypes
import importlib
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
from pathlib import Path
from typing import Any

from ..errors import InputError, NoisecellError, SimulationError, SimulationTimeout

#: restart a host after this many jobs to bound memory growth inside ngspice
HOST_MAX_JOBS = 400
#: wall time allowed for a host to start (import PySpice, load ngspice), s
HOST_START_TIMEOUT_S = 120.0
#: what a host imports and starts before it says it is ready (default: the ngspice session)
DEFAULT_WARM_UP = "noisecell.simulator.session:warm_up"
#: default CPU-time limit of a simulation job, CPU-s per simulated µs (on top of CPU_LIMIT_FLOOR_S). A
#: stalled ngspice run ("timestep too small" grinding, pbit_x5 at cold trims) keeps burning CPU until
#: the wall-time limit, which on a quiet machine is all CPU; this bounds it by what the record could
#: need. Healthy pbit_x5 records (session 26, design/NOTES.md §14): ≤ 0.6 CPU-s/µs at bias 0 at all
#: 15 trims.json pairs, but up to 2.8 at ss −40 °C in its 1 state (+6 mV: the solver labours at the
#: rail-parked sink); session 25's loaded cold records ≤ 3.5. 6 leaves ≥ 2x margin over the worst seen;
#: a stalled 3 µs record then costs ≤ 28 CPU-s. A job's own ``cpu_per_us`` (sweep spec key, `simulate
#: --cpu-per-us`) overrides it; 0 switches the limit off.
CPU_S_PER_SIMULATED_US = 6.0
#: CPU-s every job may use whatever its length: loading the models and the circuit on a fresh host,
#: the record's analysis in the host
CPU_LIMIT_FLOOR_S = 10.0
#: how often (wall s) the parent reads a busy host's CPU time against the job's limit
CPU_POLL_S = 0.25
_HDR = struct.Struct(">Q")


class HostCrashed(SimulationError):
    """The host process died during a job without a reply (ngspice crashed, or it was killed)."""


class _Deadline(Exception):
    pass


class _CpuLimit(Exception):
    def __init__(self, used_s: float):
        self.used_s = used_s


def cpu_limit_s(payload: Any, cpu_per_us: float | None = None) -> float | None:
    """The CPU-time limit (s) of ``payload``'s job: CPU_LIMIT_FLOOR_S + ``cpu_per_us`` × its simulated
    µs (``cpu_per_us`` None: :data:`CPU_S_PER_SIMULATED_US`). None (no limit) when ``cpu_per_us`` is 0
    or the payload carries no job with a ``duration_s`` (a "call" payload)."""
    rate = CPU_S_PER_SIMULATED_US if cpu_per_us is None else float(cpu_per_us)
    if rate < 0:
        raise InputError(f"cpu_per_us {rate:g}: must be >= 0 CPU-s per simulated µs (0: no CPU limit)")
    job = payload.get("job") if isinstance(payload, dict) else None
    dur = getattr(job, "duration_s", None)
    if rate == 0 or dur is None:
        return None
    return CPU_LIMIT_FLOOR_S + rate * float(dur) * 1e6


def _set_pdeathsig() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a ``kill -9`` of the driver then
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


def _resolve(spec: str):
    mod, fn = spec.split(":")
    return getattr(importlib.import_module(mod), fn)


def execute(payload: dict) -> Any:
    """Run one payload in this process (what a host does with each payload it receives)."""
    if "call" in payload:
        return _resolve(payload["call"])(*payload.get("args", ()))
    return _resolve(payload["entry"])(payload)


def _child_serve(warm_up: str) -> None:
    """Entry point of a simulator host child process."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything ngspice/PySpice prints goes to the log (stderr), never the protocol
    _set_pdeathsig()
    _resolve(warm_up)()  # heavy imports (PySpice) happen once, here, before any job's deadline
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
            reply = ("ok", execute(payload))
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


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime + cutime + cstime of process ``pid`` in s (Linux /proc/PID/stat), None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return sum(int(x) for x in fields[11:15]) / tck


class SimHost:
    """A persistent simulator child process. Thread-safe (one job at a time).

    log_path: where the child's stderr (ngspice chatter, warnings) goes; None discards it.
    warm_up: "module:function" the child runs once before it reports ready.
    """

    def __init__(self, log_path: str | os.PathLike | None = None, warm_up: str = DEFAULT_WARM_UP):
        self.log_path = Path(log_path) if log_path else None
        self.warm_up = warm_up
        self.proc: subprocess.Popen | None = None
        self.jobs_run = 0
        self.pid: int | None = None
        #: CPU time (user + system, s) of this host's processes that have exited (killed at a timeout,
        #: crashed, restarted after HOST_MAX_JOBS): kept so that :meth:`cpu_seconds` never goes back
        self.cpu_dead_s = 0.0
        self._cpu_seen = 0.0     # the live process's CPU at its last reading (fallback if reaped elsewhere)
        self._cpu_lock = threading.Lock()
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
        code = f"from noisecell.simulator.host import _child_serve; _child_serve({self.warm_up!r})"
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
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
        with self._cpu_lock:   # a cpu_seconds() reading sees the process either live or in cpu_dead_s
            p, self.proc = self.proc, None
            if p is None:
                return None
            if p.returncode is None:
                try:
                    p.kill()
                except OSError:
                    pass
            code = self._reap(p)
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except OSError:
                pass
        return code

    def _reap(self, p: subprocess.Popen) -> int | None:
        """Wait for ``p`` and add its CPU time to :attr:`cpu_dead_s` (wait4's rusage covers the process
        and the children it waited for, e.g. ngspice batch runs); when something else reaped it first,
        its CPU at the last reading counts instead."""
        used = None
        if p.returncode is None:
            try:
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                used = ru.ru_utime + ru.ru_stime
            except ChildProcessError:
                p.wait()
        self.cpu_dead_s += self._cpu_seen if used is None else max(used, self._cpu_seen)
        self._cpu_seen = 0.0
        return p.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time (s) of every process this host has run, the live one included
        (Linux /proc for the live one: its own time and that of the children it waited for).
        Thread-safe; never decreases."""
        with self._cpu_lock:
            p = self.proc
            if p is not None and p.returncode is None:
                got = proc_cpu_seconds(p.pid)
                if got is not None:
                    self._cpu_seen = max(self._cpu_seen, got)
                return self.cpu_dead_s + self._cpu_seen
            return self.cpu_dead_s

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

    def restart(self) -> None:
        """Stop the host (idle); the next job starts a fresh one with a fresh ngspice."""
        with self._lock:
            self._kill()

    def _recv(self, deadline: float | None, cpu_limit: tuple[float, float] | None = None):
        """The host's next reply. ``deadline``: monotonic time after which :class:`_Deadline` is raised.
        ``cpu_limit``: (the host's CPU-s when the job started, CPU-s the job may use); while waiting the
        host's CPU is read every CPU_POLL_S and :class:`_CpuLimit` raised once the job used more."""
        fd = self.proc.stdout.fileno()

        def over_cpu() -> None:
            used = self.cpu_seconds() - cpu_limit[0]
            if used > cpu_limit[1]:
                raise _CpuLimit(used)

        def read_exact(n: int) -> bytes:
            chunks, got = [], 0
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                while got < n:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise _Deadline
                    if cpu_limit is not None:
                        if not sel.select(CPU_POLL_S if left is None else min(left, CPU_POLL_S)):
                            over_cpu()
                            continue
                    elif left is not None and not sel.select(left):
                        raise _Deadline
                    if left is None and cpu_limit is None:
                        sel.select()
                    b = os.read(fd, min(n - got, 1 << 20))
                    if not b:
                        raise EOFError
                    chunks.append(b)
                    got += len(b)
            return b"".join(chunks)

        (n,) = _HDR.unpack(read_exact(_HDR.size))
        return pickle.loads(read_exact(n))

    def run(self, payload: Any, timeout_s: float | None, name: str = "job", cpu_limit_s: float | None = None) -> Any:
        """Run ``payload`` in the host. After ``timeout_s`` wall s (None: no limit), or once the job has
        used more than ``cpu_limit_s`` CPU-s of the host (None: no limit; see :func:`cpu_limit_s`), the
        host is killed and :class:`SimulationTimeout` raised (the next job starts a fresh host); a host
        that dies mid-job raises :class:`HostCrashed`."""
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
            cpu0 = self.cpu_seconds() if cpu_limit_s is not None else 0.0
            try:
                reply = self._recv(None if timeout_s is None else time.monotonic() + timeout_s,
                                   None if cpu_limit_s is None else (cpu0, float(cpu_limit_s)))
            except _Deadline:
                self._kill()
                raise SimulationTimeout(f"{name}: no result after {timeout_s:g} s wall time; the simulator "
                                        "was killed (raise the timeout if the job is only slow)") from None
            except _CpuLimit as over:
                self._kill()
                raise SimulationTimeout(f"{name}: no result after {over.used_s:.1f} CPU-s, over the job's CPU limit of "
                                        f"{cpu_limit_s:.1f} CPU-s (ngspice stalled?); the simulator was killed (raise "
                                        "cpu_per_us if the job is only slow)") from None
            except EOFError:
                code = self._kill()
                raise HostCrashed(f"{name}: the simulator process died (exit code {code}) — ngspice crash; "
                                  f"see {self.log_path or 'the worker log'}") from None
            # the idle host's CPU now: what counts if it dies before its next job and is reaped by poll()
            self.cpu_seconds()
        if reply[0] == "ok":
            return reply[1]
        raise _error_from(reply[1], reply[2])
