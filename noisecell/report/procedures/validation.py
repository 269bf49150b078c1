"""Procedure 5, validation: the model's predictions at the held-out bias points against fresh SPICE runs."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ...constants import Z95
from ...errors import NoisecellError


def validation_table(model, points: pd.DataFrame, nominal: tuple) -> tuple[pd.DataFrame | None, str]:
    """Model predictions at the held-out bias points against the fresh SPICE runs there."""
    held = points[(points["role"] == "heldout") & (points["status"] == "ok")]
    if model is None or not len(held):
        return None, "No held-out part in the spec (role = \"heldout\")." if not len(held) else \
            "No model to validate."
    rows = []
    for _, r in held.iterrows():
        cond = (r["corner"], r["temp_c"], r["vdd_v"])
        try:
            lo_b, hi_b = model.bias_range(cond)
        except NoisecellError:
            continue
        if not lo_b <= r["bias_v"] <= hi_b or not r["fitted_regime"]:
            continue
        p_m = model.p1(r["bias_v"], cond)
        p_lo, p_hi = model.p1_ci95(r["bias_v"], cond)
        t_m = model.tau(r["bias_v"], cond)
        t_lo, t_hi = model.tau_ci95(r["bias_v"], cond)
        # z of the difference: SPICE and model uncertainties are independent (the held-out streams
        # were not used in the fit), half-widths / 1.96 as standard errors
        # the SPICE point's stored standard errors; the model's from its CIs (the model JSON keeps
        # intervals: on the logit scale for P(1), the ln scale for τ)
        se_p = math.hypot(r["p1_se"], (p_hi - p_lo) / (2 * Z95))
        se_lt = math.hypot(r["tau_log_se"], (math.log(t_hi) - math.log(t_lo)) / (2 * Z95))
        rows.append({"corner": cond[0], "temp_c": cond[1], "vdd_v": cond[2], "bias_v": r["bias_v"],
                     "p1_spice": r["p1"], "p1_spice_lo": r["p1_ci95_lo"], "p1_spice_hi": r["p1_ci95_hi"],
                     "p1_model": p_m, "p1_model_lo": p_lo, "p1_model_hi": p_hi,
                     "p1_z": (r["p1"] - p_m) / se_p if se_p > 0 else float("nan"),
                     "tau_spice_s": r["tau_s"], "tau_spice_lo_s": r["tau_s_ci95_lo"], "tau_spice_hi_s": r["tau_s_ci95_hi"],
                     "tau_model_s": t_m, "tau_model_lo_s": t_lo, "tau_model_hi_s": t_hi,
                     "tau_ratio": r["tau_s"] / t_m,
                     "ln_tau_z": math.log(r["tau_s"] / t_m) / se_lt if se_lt > 0 else float("nan")})
    if not rows:
        return None, "No held-out point lies inside the model's validated bias range."
    df = pd.DataFrame(rows)
    n = len(df)
    zp = np.nanmax(np.abs(df["p1_z"]))
    zt = np.nanmax(np.abs(df["ln_tau_z"]))
    # with n independent held-out points, max|z| exceeds Φ⁻¹(1 − 0.025/n) with probability ≈ 5 %
    # when the model is right (Šidák/Bonferroni), so that is the pass line
    zc = float(stats.norm.ppf(1 - 0.025 / n))
    verdict = "consistent" if zp <= zc and zt <= zc else "NOT consistent"
    note = (f"{n} held-out bias points (own seeds, not used in the fit): max |z| of P(1) = {zp:.2f}, "
            f"of ln τ = {zt:.2f}; family-wise 95 % line for {n} points |z| ≤ {zc:.2f}: model {verdict} "
            f"with the fresh simulations.")
    return df, note


@dataclass(frozen=True)
class ValidationResult:
    """Held-out check: ``table`` (one row per held-out point: SPICE vs model P(1) and τ with their z),
    the largest |z| of each, the family-wise 95 % line ``z_line`` and whether both stay under it.
    ``table`` is None (and the numbers NaN) when there is nothing to check; ``note`` says why."""

    table: pd.DataFrame | None
    note: str
    max_abs_z_p1: float = float("nan")
    max_abs_z_ln_tau: float = float("nan")
    z_line: float = float("nan")

    @property
    def consistent(self) -> bool | None:
        if self.table is None:
            return None
        return bool(self.max_abs_z_p1 <= self.z_line and self.max_abs_z_ln_tau <= self.z_line)

    def summary(self) -> str:
        return f"validation: {self.note}"


def validate(model, points: pd.DataFrame, nominal: tuple) -> ValidationResult:
    """The model against the held-out points of ``points`` (see :func:`validation_table`)."""
    df, note = validation_table(model, points, nominal)
    if df is None:
        return ValidationResult(None, note)
    n = len(df)
    return ValidationResult(df, note, float(np.nanmax(np.abs(df["p1_z"]))), float(np.nanmax(np.abs(df["ln_tau_z"]))),
                            float(stats.norm.ppf(1 - 0.025 / n)))
