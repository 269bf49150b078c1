"""The per-point table: sweep or measurement rows → one row per stream (:data:`..data.POINT_COLUMNS`),
read through :class:`~noisecell.analysis.StreamEstimates`; and the stored streams of a point.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import POINT_COLUMNS, kt_ln2_j

def nan_if_none(x) -> float:
    """None → NaN (table cells)."""
    return float("nan") if x is None else float(x)


def _lo(ci) -> float:
    return float("nan") if ci is None else float(ci.lo)


def _hi(ci) -> float:
    return float("nan") if ci is None else float(ci.hi)


def point_row(r: dict, part: str, role: str) -> dict:
    """One sweep (or measurement) row → one row of the report's per-point table (:data:`POINT_COLUMNS`),
    read through :class:`~noisecell.analysis.StreamEstimates` (its fields, not guessed column names)."""
    from ...analysis.estimates import StreamEstimates

    e = StreamEstimates.from_row(r)
    regime = r.get("regime")
    if regime is None or (isinstance(regime, float) and math.isnan(regime)):
        regime = _regime_from_estimates(e, r.get("status", "ok"))
    inst = r.get("mismatch_instance")
    dt = e.sample_period_s
    e_bit = e.energy_per_bit_j
    return {
        "part": part, "role": role, "corner": r.get("corner"), "temp_c": nan_if_none(r.get("temp_c")),
        "vdd_v": nan_if_none(r.get("vdd_v")), "bias_v": nan_if_none(r.get("bias_v")),
        "instance": int(inst) if inst is not None and inst == inst else -1,
        "job_id": r.get("job_id"), "status": r.get("status", "ok"), "error": r.get("error"),
        "regime": regime,
        "n_samples": float(e.n_samples) if e.n_samples else float("nan"), "sample_period_s": nan_if_none(dt),
        "duration_s": nan_if_none(r.get("simulated_s", r.get("duration_s"))),
        "p1": nan_if_none(e.p1), "p1_ci95_lo": _lo(e.p1_ci95), "p1_ci95_hi": _hi(e.p1_ci95), "p1_se": nan_if_none(e.p1_se),
        "n_eff": nan_if_none(e.n_eff), "lag1_autocorr": nan_if_none(e.lag1_autocorr),
        "tau_s": nan_if_none(e.tau_s), "tau_s_ci95_lo": _lo(e.tau_s_ci95), "tau_s_ci95_hi": _hi(e.tau_s_ci95),
        "tau_log_se": nan_if_none(e.tau_log_se),
        "rate_up_hz": nan_if_none(e.rate_up_hz), "rate_up_hz_ci95_lo": _lo(e.rate_up_hz_ci95),
        "rate_up_hz_ci95_hi": _hi(e.rate_up_hz_ci95),
        "rate_down_hz": nan_if_none(e.rate_down_hz), "rate_down_hz_ci95_lo": _lo(e.rate_down_hz_ci95),
        "rate_down_hz_ci95_hi": _hi(e.rate_down_hz_ci95),
        "rates_resolved": bool(e.rates_resolved), "n_flips": float(e.n_flips),
        "dwell_gof_p_0": nan_if_none(e.dwell_gof_p_0), "dwell_gof_p_1": nan_if_none(e.dwell_gof_p_1),
        "markov_consistent": bool(e.markov_consistent),
        "psd_tau_s": nan_if_none(e.psd_tau_samples * dt) if (e.psd_tau_samples is not None and dt) else float("nan"),
        "acf_tau_exp_fit_s": nan_if_none(e.tau_exp_fit_s), "acf_tau_iact_s": nan_if_none(e.tau_iact_s),
        "mean_power_w": nan_if_none(e.mean_supply_power_w), "energy_per_flip_j": nan_if_none(e.energy_per_flip_j),
        "energy_per_bit_j": nan_if_none(e_bit),
        "energy_per_bit_kTln2": e_bit / kt_ln2_j(float(r["temp_c"])) if e_bit is not None else float("nan"),
        "h_shannon_rate": float("nan"), "h_min_rate": float("nan"), "rct_cutoff": float("nan"),
        "apt_cutoff": float("nan"), "h_original": float("nan"),
        "chunks": float(e.chunks),
    }


def normalise_rows(df: pd.DataFrame, part: str, role: str) -> pd.DataFrame:
    """Sweep (or measurement) rows → the report's per-point table (:data:`POINT_COLUMNS`)."""
    out = [point_row(r, part, role) for r in df.to_dict("records")]
    cols = list(POINT_COLUMNS[:1]) + ["role"] + list(POINT_COLUMNS[1:]) + ["chunks"]
    df = pd.DataFrame(out, columns=cols)
    # no per-flip / per-bit figure for a point that does not telegraph (issue 16): its "flips" are
    # comparator crossings of one noisy level, its τ a noise correlation time
    from ...regime import PER_BIT_KEYS
    blank = [c for c in cols if c in PER_BIT_KEYS or c in ("rate_up_hz_ci95_lo", "rate_up_hz_ci95_hi",
                                                           "rate_down_hz_ci95_lo", "rate_down_hz_ci95_hi",
                                                           "tau_s_ci95_lo", "tau_s_ci95_hi", "tau_log_se")]
    df.loc[df["regime"] != "bistable", blank] = np.nan
    return df


def _regime_from_estimates(e, status: str) -> str:
    """Fallback when the sweep recorded no regime: a point with too few flips cannot be fitted."""
    if status != "ok":
        return "failed"
    if e.n_flips < 10:
        return "stuck"
    if e.p1 is not None and (e.p1 <= 0 or e.p1 >= 1):
        return "stuck"
    return "bistable"


def cond_points(points: pd.DataFrame, cond: tuple, roles=("fit",)) -> pd.DataFrame:
    sel = ((points["corner"] == cond[0]) & np.isclose(points["temp_c"], cond[1]) & np.isclose(points["vdd_v"], cond[2])
           & points["role"].isin(roles) & (points["instance"] < 0) & (points["status"] == "ok")
           & points["fitted_regime"])
    return points[sel].sort_values("bias_v")


def stream_names(out: Path, part: str, job_id: str) -> list[str]:
    """Stored stream names of a job: the single run, or its adaptive chunks in order."""
    bits_dir = out / "sweep" / part / "bits"
    if (bits_dir / f"{job_id}.npz").exists():
        return [job_id]
    names, k = [], 0
    while (bits_dir / f"{job_id}.c{k}.npz").exists():
        names.append(f"{job_id}.c{k}")
        k += 1
    return names


def load_bits(out: Path, part: str, job_id: str) -> tuple[list[np.ndarray], float | None]:
    from ...sweep.store import Store

    st = Store(out / "sweep" / part)
    streams, sp = [], None
    for name in stream_names(out, part, job_id):
        b, sp = st.read_bits(name)
        streams.append(b)
    return streams, sp


def trim_values(raw: pd.DataFrame, name: str) -> list:
    if "trim_json" not in raw:
        return []
    vals = set()
    for t in raw["trim_json"].dropna():
        try:
            v = json.loads(t).get(name)
        except (TypeError, ValueError):
            continue
        if v is not None:
            vals.add(round(float(v), 6))
    return sorted(vals)


def identity(cellspec, raw: pd.DataFrame) -> dict:
    sha = None
    try:
        sha = hashlib.sha256(Path(cellspec.netlist_path).read_bytes()).hexdigest()
    except OSError:
        pass
    pkg = None
    try:
        from ...technology import model_identity
        ident = model_identity(cellspec.technology)
        if ident.get("package"):
            pkg = {"name": ident["package"], "version": str(ident.get("version") or "unknown")}
    except Exception:  # noqa: BLE001 - identity is best effort, shown as "unknown"
        pkg = None
    ng = None
    for c in ("ngspice_version", "sim_ngspice_version", "ngspice"):
        if c in raw.columns and raw[c].notna().any():
            ng = str(raw[c].dropna().iloc[0])
            break
    if ng is None:
        try:
            from ...simulator.session import _ngspice_version
            ng = _ngspice_version()
        except Exception:  # noqa: BLE001
            ng = None
    return {"netlist_sha256": sha, "model_package": pkg, "ngspice": ng, "sweep_id": None}
