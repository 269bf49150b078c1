"""Retries of a failed simulation: which attempt comes next, and the record stored with the result.

Two kinds of failure are retried, differently:

- **a crashed host** (:class:`~noisecell.simulator.host.HostCrashed`: the process died without a
  reply — a segfault in ngspice, the OOM killer, a stray signal). Nothing says the circuit is at
  fault, so the *same* job is rerun (same options) on a fresh host, up to :data:`CRASH_RERUNS`
  times per rung. A crash therefore never changes the numbers: the rerun is the job an
  uninterrupted run would have run. Only a rung that keeps crashing climbs the ladder.
- **non-convergence** (a :class:`~noisecell.errors.SimulationError` reported by ngspice) climbs
  :data:`RETRY_LADDER`, whose rungs add solver options; at most ``retries`` rungs beyond the first.

Timeouts and bad input are not retried (another solver setting does not cure a hang, and would
cost another full timeout; a bad parameter fails every rung alike). A job stopped at its CPU-time
limit (:func:`~noisecell.simulator.host.cpu_limit_s`) is a timeout.

Determinism: the next attempt is a pure function of the failure history (:func:`next_rung`), every
attempt after a failure runs on a freshly started host (no ngspice state from the failed attempt),
and the rung's options are fixed, so the same seed and the same failure history give the same
stored numbers. The :class:`RetryRecord` says which rung produced the result and what happened
before; the sweep stores it in every row (``retry_rung``, ``retry_options_json``, ``retry_history``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InputError, NoisecellError, SimulationError, SimulationTimeout
from .host import HostCrashed, cpu_limit_s

#: Non-convergence retry ladder. Rung 0 is the job as rendered; each later rung adds ngspice
#: ``.options`` that make the transient more robust at some cost in speed. Rung k's options replace
#: rung k-1's (they are cumulative by construction).
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
#: reruns of the same rung after a host crash before the ladder climbs
CRASH_RERUNS = 1

OK, CRASH, ERROR, TIMEOUT, INPUT = "ok", "crash", "error", "timeout", "input"


@dataclass(frozen=True)
class Attempt:
    """One attempt: ladder rung, outcome (ok / crash / error / timeout / input), error text."""

    rung: int
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class RetryRecord:
    """Every attempt of one job, in order; the last one is the result's (or the final failure's)."""

    attempts: tuple[Attempt, ...]

    @property
    def rung(self) -> int:
        """Ladder rung of the last attempt (0: the job's own options)."""
        return self.attempts[-1].rung if self.attempts else 0

    @property
    def solver_options(self) -> dict[str, Any]:
        """The options the ladder added to the job for the last attempt ({} at rung 0)."""
        return dict(RETRY_LADDER[self.rung])

    @property
    def history(self) -> str:
        """Outcomes in order, e.g. "crash,ok" or "error,error,ok"."""
        return ",".join(a.outcome for a in self.attempts)

    def errors(self) -> list[str]:
        return [a.error for a in self.attempts if a.error]

    def to_row(self) -> dict[str, Any]:
        """Flat columns for a stored result row."""
        return {"attempts": len(self.attempts), "retry_rung": self.rung,
                "retry_options_json": json.dumps(self.solver_options, sort_keys=True),
                "retry_history": self.history, "retry_errors": " | ".join(self.errors()) or None}


def max_rung(retries: int) -> int:
    """Highest rung ``retries`` allows (the spec's ``retries`` counts rungs beyond the first)."""
    return max(0, min(len(RETRY_LADDER) - 1, int(retries)))


def next_rung(history: tuple[Attempt, ...], retries: int) -> int | None:
    """The rung of the next attempt after the failures in ``history``, or None to give up.

    Pure: the same history and ``retries`` always give the same answer (see the module docstring).
    """
    if not history:
        return 0
    last = history[-1]
    if last.outcome in (OK, TIMEOUT, INPUT):
        return None
    if last.outcome == CRASH:
        crashes_here = sum(1 for a in history if a.rung == last.rung and a.outcome == CRASH)
        if crashes_here <= CRASH_RERUNS:
            return last.rung
    return last.rung + 1 if last.rung < max_rung(retries) else None


def _outcome(exc: NoisecellError) -> str:
    if isinstance(exc, SimulationTimeout):
        return TIMEOUT
    if isinstance(exc, HostCrashed):
        return CRASH
    if isinstance(exc, SimulationError):
        return ERROR
    return INPUT


def payload_for_rung(payload: Mapping, rung: int) -> dict:
    """``payload`` with its job's options extended by rung ``rung`` of :data:`RETRY_LADDER`."""
    if rung == 0 or "job" not in payload:
        return dict(payload)
    job = payload["job"]
    return {**payload, "job": dataclasses.replace(job, options={**dict(job.options or {}), **RETRY_LADDER[rung]}),
            "rung": rung}


def run_with_retries(host, payload: Mapping, *, timeout_s: float | None, retries: int,
                     name: str, cpu_per_us: float | None = None) -> tuple[Any, RetryRecord]:
    """Run ``payload`` on ``host`` (a :class:`~noisecell.simulator.host.SimHost`), retrying as the module
    docstring says. Returns (result, record). On final failure raises the last error with
    ``exc.retry_record`` (and, for older callers, ``exc.attempts`` / ``exc.attempt_errors``) attached.
    ``timeout_s``: wall s per attempt; ``cpu_per_us``: the CPU-time limit's rate, CPU-s per simulated
    µs (None: the default, 0: none; :func:`~noisecell.simulator.host.cpu_limit_s`).
    """
    cpu_limit = cpu_limit_s(payload, cpu_per_us)
    history: tuple[Attempt, ...] = ()
    if "job" not in payload:
        retries = 0  # a "call" payload has no solver options to change; a crash is still rerun
    while True:
        rung = next_rung(history, retries)
        assert rung is not None
        if history:
            host.restart()  # every retry starts from a fresh ngspice: nothing of the failure carries over
        try:
            result = host.run(payload_for_rung(payload, rung), timeout_s, name=name, cpu_limit_s=cpu_limit)
        except NoisecellError as exc:
            history += (Attempt(rung, _outcome(exc), str(exc)),)
            if next_rung(history, retries) is None:
                record = RetryRecord(history)
                exc.retry_record = record
                exc.attempts = len(history)
                exc.attempt_errors = record.errors()
                raise
            continue
        return result, RetryRecord(history + (Attempt(rung, OK),))
