"""The ngspice settings every run gets, in one place (shared library sessions and ``ngspice -b`` alike).

``set num_threads=1`` always: noisecell parallelises over processes, and ngspice's OpenMP device
evaluation would make the two cores fight (and its summation order would depend on the thread
count). The technology's own settings (sky130: ``ngbehavior=hsa``, ``ng_nomodcheck``) are added for
that technology only; a session that switches technology unsets the previous one's variables
(:func:`switch_commands`), so a result never depends on which cell ran before it in a host.
"""
from __future__ import annotations

from ..technology import TECHNOLOGIES, spice_settings

#: settings of every ngspice noisecell starts, whatever the technology
ALWAYS = ("set num_threads=1",)


def ngspice_settings(technology: str) -> tuple[str, ...]:
    """``set`` commands to apply before a netlist of ``technology`` is loaded."""
    return ALWAYS + tuple(spice_settings(technology))


def _variable(setting: str) -> str:
    # "set ngbehavior=hsa" -> "ngbehavior"; "set ng_nomodcheck" -> "ng_nomodcheck"
    return setting.split(None, 1)[1].split("=", 1)[0].strip()


def switch_commands(previous: str | None, technology: str) -> list[str]:
    """Commands that take a session from ``previous``'s settings (None: fresh) to ``technology``'s."""
    now = ngspice_settings(technology)
    keep = {_variable(s) for s in now}
    stale = [] if previous is None else [s for s in ngspice_settings(previous) if _variable(s) not in keep]
    return [f"unset {_variable(s)}" for s in stale] + list(now)


def spiceinit_text(technology: str) -> str:
    """A ``.spiceinit`` for ``ngspice -b`` runs of ``technology`` (the same settings as a session)."""
    return "\n".join(ngspice_settings(technology)) + "\n"


__all__ = ["ALWAYS", "TECHNOLOGIES", "ngspice_settings", "switch_commands", "spiceinit_text"]
