"""Energy per bit of a model condition, stated once: P·τ(V50).

The supply power of the simulated record nearest the condition's V50 times the condition's own
τ(V50) (the rate model's, or the joint fit's once it is applied), with τ(V50)'s 95 % CI scaled by that
power. No CI is computed for the power itself (the records' mean supply power is known to well under a
percent; τ's CI is ~10 %), so the energy CI is τ's. This is the number the datasheet, the conditions
table and the PVT panel print, read from the model's ``energy`` block (schema 2.1).

The record's own P·τ (τ from that one 10–80 µs record) is kept as ``record_energy_per_bit_j``; it is
noisier and is not what the condition's τ column says (pbit tt 27 °C, demo at 539b022: 1.32 fJ against
1.53 fJ [1.46, 1.61] from τ(V50)).

Model files of schema 2.0 stored that record's P·τ as ``energy_per_bit_j``; :func:`upgrade_energy` (run
when such a file is read) moves it to ``record_energy_per_bit_j`` and computes P·τ(V50) from the file's
own power and τ(V50).
"""
from __future__ import annotations

import math

#: ``energy.energy_per_bit_method`` of a block this module wrote
METHOD = "power_times_tau_v50"


def _f(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _nearest_point(points: list, v50: float) -> dict | None:
    """The point nearest ``v50`` (the first of equally near ones, in bias order, as the report's
    ``idxmin`` over its bias-sorted points picks it)."""
    best, dist = None, math.inf
    for p in sorted(points, key=lambda p: p["bias_v"]):
        d = abs(float(p["bias_v"]) - v50)
        if d < dist:
            best, dist = p, d
    return best


def energy_at_v50(cond: dict) -> dict:
    """The ``energy`` block of condition ``cond`` (a model-document condition with its ``sigmoid`` and
    ``tau`` blocks final): the record nearest V50 taken from ``cond["points"]`` when they carry the
    records' power, else the record already named by ``cond["energy"]``; energy per bit = that record's
    power × ``tau.tau_at_v50_s``, CI = power × ``tau.tau_at_v50_ci95_s``. Returns a new dict."""
    old = dict(cond.get("energy") or {})
    v50 = _f((cond.get("sigmoid") or {}).get("v50_v"))
    tau = cond.get("tau") or {}
    t50, t_ci = _f(tau.get("tau_at_v50_s")), tau.get("tau_at_v50_ci95_s")
    pts = [p for p in (cond.get("points") or []) if "mean_supply_power_w" in p]
    if pts and v50 is not None:
        p = _nearest_point(pts, v50)
        rec = {"at_bias_v": float(p["bias_v"]), "mean_supply_power_w": _f(p.get("mean_supply_power_w")),
               "energy_per_flip_j": _f(p.get("energy_per_flip_j")),
               "record_energy_per_bit_j": _f(p.get("record_energy_per_bit_j"))}
        if p.get("job_id"):
            rec["record_job_id"] = str(p["job_id"])
    else:
        rec = {k: old.get(k) for k in ("at_bias_v", "mean_supply_power_w", "mean_supply_power_ci95_w",
                                       "energy_per_flip_j", "energy_per_flip_ci95_j", "record_energy_per_bit_j",
                                       "record_energy_per_bit_ci95_j", "record_job_id") if k in old}
        for k in ("mean_supply_power_w", "energy_per_flip_j"):
            rec.setdefault(k, None)
    power = _f(rec.get("mean_supply_power_w"))
    out = {**rec, "energy_per_bit_method": METHOD, "tau_v50_s": t50}
    if power is not None and t50 is not None:
        out["energy_per_bit_j"] = power * t50
        if t_ci and all(_f(t) is not None for t in t_ci):
            out["energy_per_bit_ci95_j"] = sorted([power * float(t_ci[0]), power * float(t_ci[1])])
    else:
        out["energy_per_bit_j"] = None
    return out


def upgrade_energy(cond: dict) -> dict:
    """A schema-2.0 condition with its energy block in the 2.1 form (see the module docstring)."""
    en = cond.get("energy") or {}
    if en.get("energy_per_bit_method") == METHOD:
        return cond
    old = {k: v for k, v in en.items() if k not in ("energy_per_bit_j", "energy_per_bit_ci95_j")}
    old["record_energy_per_bit_j"] = en.get("energy_per_bit_j")
    if en.get("energy_per_bit_ci95_j") is not None:
        old["record_energy_per_bit_ci95_j"] = en["energy_per_bit_ci95_j"]
    # the 2.0 block has no points-level power: energy_at_v50 keeps its record and recomputes P·τ(V50)
    return {**cond, "energy": energy_at_v50({**cond, "energy": old, "points": []})}
