"""Errors noisecell reports to users.

Every user-facing failure is a :class:`NoisecellError` whose message is one line that names the
offending file (or job) and says how to fix it. The CLI prints it as ``noisecell: error: <message>``
and exits with ``exit_code``; no traceback is shown for these.
"""
from __future__ import annotations


class NoisecellError(Exception):
    """Base class for errors shown to users as one line plus a non-zero exit code."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(NoisecellError):
    """A malformed user file: netlist, spec, CSV, JSON, bit capture, measurement folder."""


class UnsafeNetlistError(InputError):
    """A netlist that could run commands or read files outside the allowed folders."""


class SimulationError(NoisecellError):
    """Ngspice failed: non-convergence, crash, hang (timeout) or an empty/truncated result."""

    exit_code = 3


class SimulationTimeout(SimulationError):
    """A job exceeded its wall-clock timeout and its worker was killed."""


class RegimeError(NoisecellError):
    """A quantity was requested that is undefined for the observed regime (e.g. tau of a stuck cell)."""
