"""What the characterisation flow hands to the figures and the HTML: plain tables plus a few streams.

The per-point table (one row per simulated or measured stream) uses the column names in
:data:`POINT_COLUMNS`; SI units, names carry units. A condition is (corner, temp_c, vdd_v); measured
data use the corner label ``"measured"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..constants import K_B, ZERO_C_K

#: columns of the per-point table, in report order
POINT_COLUMNS = (
    "part", "corner", "temp_c", "vdd_v", "bias_v", "instance", "job_id", "status", "error", "regime",
    "n_samples", "sample_period_s", "duration_s",
    "p1", "p1_ci95_lo", "p1_ci95_hi", "p1_se", "n_eff", "lag1_autocorr",
    "tau_s", "tau_s_ci95_lo", "tau_s_ci95_hi", "tau_log_se",
    "rate_up_hz", "rate_up_hz_ci95_lo", "rate_up_hz_ci95_hi", "rate_down_hz", "rate_down_hz_ci95_lo",
    "rate_down_hz_ci95_hi", "rates_resolved", "n_flips",
    "dwell_gof_p_0", "dwell_gof_p_1", "markov_consistent", "psd_tau_s", "acf_tau_exp_fit_s", "acf_tau_iact_s",
    "mean_power_w", "energy_per_flip_j", "energy_per_bit_j", "energy_per_bit_kTln2",
    "h_shannon_rate", "h_min_rate", "rct_cutoff", "apt_cutoff", "h_original",
)


def kt_ln2_j(temp_c: float) -> float:
    """The Landauer energy kT·ln 2 at ``temp_c`` (°C), J."""
    return K_B * (temp_c + ZERO_C_K) * math.log(2.0)


def condition_label(corner: str, temp_c: float, vdd_v: float) -> str:
    return f"{corner} {temp_c:g} °C {vdd_v:g} V"


@dataclass
class ConditionFit:
    """Fits across bias at one condition: the sigmoid P(1)(bias) and the rate model τ(bias).

    v50_v, scale_v: midpoint and scale of the chosen sigmoid form, V (CIs as (lo, hi)).
    slope_per_v: dP(1)/dbias at the midpoint, 1/V.
    p1_curve, tau_curve: callables bias_v (array, V) -> P(1) and τ (s); None when not fitted.
    routes_agree: whether the sigmoid implied by the rate fits agrees with the direct P(1) fit.
    """

    corner: str
    temp_c: float
    vdd_v: float
    form: str
    n_points: int
    v50_v: float
    v50_ci_v: tuple[float, float]
    scale_v: float
    scale_ci_v: tuple[float, float]
    slope_per_v: float = float("nan")
    aic: float = float("nan")
    p_lo: float = 0.0
    p_hi: float = 1.0
    tau_at_v50_s: float = float("nan")
    tau_at_v50_ci_s: tuple[float, float] = (float("nan"), float("nan"))
    ln_k_up: tuple[float, float] = (float("nan"), float("nan"))      # (intercept at v50, slope 1/V)
    ln_k_down: tuple[float, float] = (float("nan"), float("nan"))
    routes_agree: bool | None = None
    note: str = ""
    p1_curve: Callable[[np.ndarray], np.ndarray] | None = None
    tau_curve: Callable[[np.ndarray], np.ndarray] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return condition_label(self.corner, self.temp_c, self.vdd_v)

    def to_row(self) -> dict:
        return {
            "corner": self.corner, "temp_c": self.temp_c, "vdd_v": self.vdd_v, "form": self.form,
            "n_points": self.n_points, "v50_v": self.v50_v, "v50_lo_v": self.v50_ci_v[0],
            "v50_hi_v": self.v50_ci_v[1], "scale_v": self.scale_v, "scale_lo_v": self.scale_ci_v[0],
            "scale_hi_v": self.scale_ci_v[1], "slope_per_v": self.slope_per_v, "aic": self.aic,
            "p_lo": self.p_lo, "p_hi": self.p_hi, "tau_at_v50_s": self.tau_at_v50_s,
            "tau_at_v50_lo_s": self.tau_at_v50_ci_s[0], "tau_at_v50_hi_s": self.tau_at_v50_ci_s[1],
            "ln_k_up_at_v50": self.ln_k_up[0], "ln_k_up_slope_per_v": self.ln_k_up[1],
            "ln_k_down_at_v50": self.ln_k_down[0], "ln_k_down_slope_per_v": self.ln_k_down[1],
            "routes_agree": self.routes_agree, "note": self.note,
            **{k: v for k, v in self.extra.items() if not k.startswith("_")},
        }


@dataclass
class ExampleStream:
    """One stream shown in detail (traces, ACF, dwell times, PSD).

    time_s, v_read: the analog readout signal (s, V) the bits were digitised from, or None (bits only).
    threshold_v, hysteresis_v: the comparator used, V.
    bits: the clocked 0/1 samples at ``sample_period_s`` (s).
    p1, tau_s, rate_up_hz, rate_down_hz: the stream's estimates, used to draw the model curves.
    """

    label: str
    corner: str
    temp_c: float
    vdd_v: float
    bias_v: float
    bits: np.ndarray
    sample_period_s: float
    p1: float
    tau_s: float
    rate_up_hz: float
    rate_down_hz: float
    time_s: np.ndarray | None = None
    v_read: np.ndarray | None = None
    threshold_v: float | None = None
    hysteresis_v: float = 0.0
    acf_tau_s: float = float("nan")       # τ from the exponential fit to the ACF
    psd_tau_s: float = float("nan")       # τ from the Lorentzian fit to the PSD


@dataclass
class Comparison:
    """Simulation versus measurement at the nominal simulated condition vs the measured condition."""

    sim: ConditionFit
    meas: ConditionFit
    rows: list[dict]                      # quantity, simulated, measured, ratio/shift, unit, note
    meas_points: pd.DataFrame


@dataclass
class ReportData:
    """Everything the HTML report shows. Tables are pandas DataFrames (also written as CSV)."""

    title: str
    cell: dict                            # name, description, technology, netlist, sha256, model package
    provenance: dict                      # versions, command, spec text, seeds, dates, run time
    points: pd.DataFrame                  # POINT_COLUMNS
    fits: list[ConditionFit]
    examples: list[ExampleStream]
    datasheet: pd.DataFrame               # quantity, value, ci_lo, ci_hi, unit, condition, note
    nominal: tuple[str, float, float]     # (corner, temp_c, vdd_v)
    mismatch: pd.DataFrame | None = None  # per instance: instance, v50_v, scale_v, ...
    mismatch_summary: pd.DataFrame | None = None
    validation: pd.DataFrame | None = None
    validation_note: str = ""
    entropy_note: str = ""
    comparison: Comparison | None = None
    measurement_info: dict | None = None
    warnings: list[str] = field(default_factory=list)
    sweep_summary: pd.DataFrame | None = None
    datasheet_display: pd.DataFrame | None = None   # the datasheet in engineering notation (shown, not a CSV)
    conditions: pd.DataFrame | None = None          # per-condition datasheet (procedures.conditions.conditions_table)
    mismatch_distribution: dict | None = None       # the model's mismatch.distribution block (schema v2)
