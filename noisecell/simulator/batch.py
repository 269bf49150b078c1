"""``ngspice -b`` batch runs (a netlist with its own ``.control`` block, e.g. trim's DC sweeps).

Same settings as a session (a ``.spiceinit`` written from :mod:`noisecell.simulator.settings` for the
netlist's technology), a wall-clock timeout after which the whole process group is killed, and the
run's working folder is the only place ngspice writes to. The netlist must come from noisecell
(its ``.control`` lines are noisecell's own); user text reaches it only through checked templates.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from ..errors import SimulationError, SimulationTimeout
from .settings import spiceinit_text

#: default wall-time limit of one batch run, s
BATCH_TIMEOUT_S = 300.0


def run_batch(text: str, workdir: str | os.PathLike, *, technology: str, timeout_s: float | None = BATCH_TIMEOUT_S,
              name: str = "ngspice batch run", filename: str = "run.cir") -> str:
    """Run ``text`` with ``ngspice -b`` in ``workdir``; return its stdout + stderr.

    Raises :class:`SimulationTimeout` (process group killed) after ``timeout_s`` s (None: no limit),
    :class:`SimulationError` when ngspice is not installed.
    """
    wd = Path(workdir)
    (wd / ".spiceinit").write_text(spiceinit_text(technology))
    (wd / filename).write_text(text)
    try:
        # HOME=workdir: ngspice reads ~/.spiceinit too; only ours may apply
        proc = subprocess.Popen(["ngspice", "-b", filename], cwd=wd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "HOME": str(wd), "OMP_NUM_THREADS": "1"})
    except FileNotFoundError:
        raise SimulationError("ngspice is not installed; run `make setup`") from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SimulationTimeout(f"{name}: no result after {timeout_s:g} s; ngspice was killed "
                                "(raise the timeout if the run is only slow)") from None
    except BaseException:
        _kill_group(proc)
        raise
    return out + err


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()
