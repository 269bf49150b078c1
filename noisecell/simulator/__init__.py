"""The simulator backend: every ngspice run noisecell makes goes through this package.

- :mod:`.settings` — the ngspice settings of every run (``num_threads=1`` always, a technology's
  settings only for that technology).
- :mod:`.session` — the in-process ngspice (PySpice shared mode), one per process.
- :mod:`.host` — persistent simulator child processes with a wall-time deadline and a CPU-time
  limit per job (kill at either, crash detection).
- :mod:`.retry` — the retry policy (crash rerun, non-convergence ladder) and its record.
- :mod:`.pool` — a long-lived pool of hosts, shared by a characterisation's sweeps.
- :mod:`.batch` — ``ngspice -b`` runs with a timeout (trim's DC analyses).

:func:`run_job` and :func:`run_netlist` are the one-call entry points for a single run.
"""
from __future__ import annotations

from typing import Any

from ..errors import NoisecellError
from .batch import BATCH_TIMEOUT_S, run_batch
from .host import CPU_S_PER_SIMULATED_US, HostCrashed, SimHost, cpu_limit_s
from .pool import HostPool, run_task
from .retry import RETRY_LADDER, RetryRecord, run_with_retries
from .settings import ngspice_settings

#: the host entry that turns a job payload into its Waveform
_WAVEFORM_ENTRY = "noisecell.simulator.session:run_payload"


def _run(payload: dict, *, timeout_s: float | None, retries: int, name: str, pool: HostPool | None,
         cpu_per_us: float | None = None) -> Any:
    if pool is not None:
        res = pool.run(payload, timeout_s=timeout_s, retries=retries, name=name, cpu_per_us=cpu_per_us)
        if res["ok"]:
            return res["result"], res["retry"]
        raise _reraise(res)
    host = SimHost()
    try:
        result, record = run_with_retries(host, payload, timeout_s=timeout_s, retries=retries, name=name,
                                          cpu_per_us=cpu_per_us)
        return result, record.to_row()
    finally:
        host.close()


def _reraise(res: dict) -> NoisecellError:
    from ..errors import InputError, SimulationError, SimulationTimeout

    cls = {"SimulationTimeout": SimulationTimeout, "InputError": InputError, "UnsafeNetlistError": InputError,
           "HostCrashed": HostCrashed}.get(res.get("error_type"), SimulationError)
    return cls(res["error"])


def run_job(job, *, timeout_s: float | None = None, retries: int = 0, pool: HostPool | None = None,
            cpu_per_us: float | None = None):
    """Run a :class:`~noisecell.simulate.SimulationJob` in a simulator host and return its Waveform.

    Without ``pool`` a fresh host is started for the run and stopped after it (nothing of the
    caller's process state reaches ngspice). ``timeout_s``: wall s before the host is killed and
    :class:`~noisecell.errors.SimulationTimeout` raised (None: no limit). ``cpu_per_us``: the same
    once the job used more than CPU_LIMIT_FLOOR_S + ``cpu_per_us`` CPU-s per simulated µs (None:
    :data:`CPU_S_PER_SIMULATED_US`; 0: no CPU limit). ``retries``: rungs of the non-convergence
    ladder allowed; a retry is recorded in ``waveform.meta["retry"]``.
    """
    wf, record = _run({"entry": _WAVEFORM_ENTRY, "job": job}, timeout_s=timeout_s,
                      retries=retries, name=job.describe(), pool=pool, cpu_per_us=cpu_per_us)
    if record.get("attempts", 1) > 1:
        wf.meta["retry"] = record
    return wf


def run_netlist(text: str, *, seed: int | None = None, technology: str = "generic", trusted: bool = False,
                source: str = "<netlist>", timeout_s: float | None = None,
                pool: HostPool | None = None) -> dict[str, dict[str, Any]]:
    """:func:`~noisecell.simulator.session.run_netlist_in_process` in a simulator host, with a timeout."""
    payload = {"entry": "noisecell.simulator.session:run_netlist_payload", "text": text,
               "kwargs": {"seed": seed, "technology": technology, "trusted": trusted, "source": source}}
    return _run(payload, timeout_s=timeout_s, retries=0, name=source, pool=pool)[0]


__all__ = ["BATCH_TIMEOUT_S", "CPU_S_PER_SIMULATED_US", "HostCrashed", "cpu_limit_s", "HostPool", "RETRY_LADDER", "RetryRecord", "SimHost",
           "ngspice_settings", "run_batch", "run_job", "run_netlist", "run_task", "run_with_retries"]
