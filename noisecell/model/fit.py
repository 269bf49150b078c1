"""Build a :class:`~noisecell.model.CellModel` document: from rate-model coefficients, or fitted to a sweep.

The fit, per operating condition (corner, temp_c, vdd_v):

1. For every stream the sweep's analysis gives ``rate_up_hz``, ``rate_down_hz`` (1/s) with 95 % CIs.
   The standard error of ``ln k`` is taken from the CI width on the log scale,
   ``se = (ln hi - ln lo) / (2 * 1.96)`` (the rate CIs are close to symmetric in ``ln k``
   because a rate is a count over an exposure time).
2. ``ln k_up`` and ``ln k_down`` are fitted as straight lines in bias by weighted least squares
   (statsmodels WLS, weights ``1/se**2``) with a fixed-scale covariance (the CIs are trusted). When the
   residual chi-square exceeds its degrees of freedom (the line does not describe the data within
   the stream-to-stream noise) the covariance is inflated by the Birge ratio ``chi2/dof`` so the CIs
   stay honest.
3. The sigmoid, tau(bias), min-entropy and health-test cutoffs are derived from the two lines, so
   the model is self-consistent; an independent logistic fit of P(1) is kept as a cross-check.
4. Mismatch: the same fit per Monte Carlo instance gives each instance's V50 and scale; their
   spreads are de-noised by subtracting the mean squared per-instance standard error.
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from .. import __version__
from ..errors import InputError
from .cellmodel import SCHEMA_VERSION, Z95, CellModel, validate_document
from .sampler import transition_probabilities

#: SP 800-90B health-test false-positive probability used for the cutoffs
ALPHA = 2.0 ** -20
APT_WINDOW = 1024  # SP 800-90B adaptive proportion test window for binary sources
N_TAU_GRID = 21


# ----------------------------------------------------------------------------- derived quantities
def markov_min_entropy_per_bit(p_up: float, p_down: float) -> float:
    """Asymptotic min-entropy rate (bits per sample) of a stationary 2-state Markov chain.

    The most likely long sequence either stays in 0 (prob 1-p_up per step), stays in 1
    (1-p_down), or alternates (sqrt(p_up*p_down) per step), so H = -log2 max of those.
    """
    pmax = max(1.0 - p_up, 1.0 - p_down, math.sqrt(p_up * p_down))
    return float(min(1.0, max(0.0, -math.log2(pmax))))


def health_test_cutoffs(h_min: float, alpha: float = ALPHA, window: int = APT_WINDOW) -> tuple[int | None, int | None]:
    """SP 800-90B section 4.4 cutoffs for a binary source with min-entropy ``h_min`` per bit.

    Repetition count test: C = 1 + ceil(-log2(alpha) / H).
    Adaptive proportion test: C = 1 + CRITBINOM(W, 2**-H, 1 - alpha), W = 1024 for binary.
    """
    if not h_min or h_min <= 0:
        return None, None
    rct = 1 + math.ceil(-math.log2(alpha) / h_min)
    apt = 1 + int(stats.binom.ppf(1.0 - alpha, window, 2.0 ** -h_min))
    return int(rct), int(min(apt, window))


def _ci_or_none(lo, hi):
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return [float(lo), float(hi)]


def derived_blocks(rate_model: Mapping, bias_range_v: Sequence[float], *, sample_period_s: float | None):
    """Sigmoid, tau and entropy blocks implied by a loglinear rate model (see module docstring)."""
    if rate_model["kind"] != "loglinear":
        raise ValueError("derived_blocks needs a loglinear rate model")
    v_ref = rate_model["reference_bias_v"]
    a_u, b_u = rate_model["ln_k_up"]["intercept"], rate_model["ln_k_up"]["slope_per_v"]
    a_d, b_d = rate_model["ln_k_down"]["intercept"], rate_model["ln_k_down"]["slope_per_v"]
    cov = np.asarray(rate_model["covariance"], float)
    da, db = a_u - a_d, b_u - b_d
    if db <= 0:
        raise InputError("fitted ln k_up does not rise faster with bias than ln k_down: P(1) does not increase "
                         "with bias over the sweep; check the bias sign or widen the bias range")
    x50 = -da / db
    v50 = v_ref + x50
    g_v50 = np.array([-1 / db, da / db**2, 1 / db, -da / db**2])
    se_v50 = math.sqrt(max(float(g_v50 @ cov @ g_v50), 0.0))
    scale = 1 / db
    # CI of the scale on the log scale (keeps it positive): se(ln scale) = se(db)/db
    g_db = np.array([0.0, 1.0, 0.0, -1.0])
    se_ln_scale = math.sqrt(max(float(g_db @ cov @ g_db), 0.0)) / db
    sigmoid = {"form": "logistic", "v50_v": float(v50), "v50_ci95_v": [v50 - Z95 * se_v50, v50 + Z95 * se_v50],
               "scale_v": float(scale),
               "scale_ci95_v": [scale * math.exp(-Z95 * se_ln_scale), scale * math.exp(Z95 * se_ln_scale)],
               "p_low": 0.0, "p_high": 1.0, "direct_fit": None}

    def ln_tau_and_se(x):
        lu, ld = a_u + b_u * x, a_d + b_d * x
        wu = 1 / (1 + math.exp(ld - lu))
        g = -np.array([wu, wu * x, 1 - wu, (1 - wu) * x])
        return -float(np.logaddexp(lu, ld)), math.sqrt(max(float(g @ cov @ g), 0.0))

    # tau at v50 including the uncertainty of v50 itself: at v50 both rates are equal, so
    # tau = 1/(2 k_up(v50)), ln tau = -ln 2 - a_u - b_u x50(theta); gradient by the chain rule
    ln_t50 = -math.log(2) - (a_u + b_u * x50)
    g_t = -(np.array([1.0, x50, 0.0, 0.0]) + b_u * g_v50)
    se_t50 = math.sqrt(max(float(g_t @ cov @ g_t), 0.0))
    grid = np.linspace(bias_range_v[0], bias_range_v[1], N_TAU_GRID)
    taus, cis = [], []
    for v in grid:
        m, se = ln_tau_and_se(v - v_ref)
        taus.append(math.exp(m))
        cis.append([math.exp(m - Z95 * se), math.exp(m + Z95 * se)])
    tau = {"tau_at_v50_s": math.exp(ln_t50),
           "tau_at_v50_ci95_s": [math.exp(ln_t50 - Z95 * se_t50), math.exp(ln_t50 + Z95 * se_t50)],
           "bias_v": [float(v) for v in grid], "tau_s": taus, "tau_ci95_s": cis}

    entropy = {"sample_period_s": sample_period_s, "at_bias_v": float(v50), "h_min_per_bit": None,
               "h_min_measured_per_bit": None, "rct_cutoff": None, "apt_cutoff": None,
               "apt_window": APT_WINDOW, "alpha": ALPHA}
    if sample_period_s:
        lu = a_u + b_u * x50
        pu, pd, _ = transition_probabilities(lu, lu, sample_period_s)
        h = markov_min_entropy_per_bit(float(pu), float(pd))
        rct, apt = health_test_cutoffs(h)
        entropy.update(h_min_per_bit=h, rct_cutoff=rct, apt_cutoff=apt)
    return sigmoid, tau, entropy


def loglinear_rate_model(v_ref: float, up: Sequence[float], down: Sequence[float], covariance=None) -> dict:
    """Rate-model block: ln k = intercept + slope_per_v * (V - v_ref), ``up``/``down`` = (intercept, slope)."""
    cov = np.zeros((4, 4)) if covariance is None else np.asarray(covariance, float)
    return {"kind": "loglinear", "reference_bias_v": float(v_ref),
            "ln_k_up": {"intercept": float(up[0]), "slope_per_v": float(up[1])},
            "ln_k_down": {"intercept": float(down[0]), "slope_per_v": float(down[1])},
            "covariance": [[float(c) for c in row] for row in cov]}


def mismatch_block(instances: Sequence[tuple[int, float, float]], *, v50_se: Sequence[float] | None = None,
                   ln_scale_se: Sequence[float] | None = None) -> dict | None:
    """Mismatch distribution from per-instance (instance, v50_v, scale_v).

    Spreads are de-noised: var_true = var_observed - mean(se_i**2) (floored at 0), because each
    instance's V50 and scale carry their own estimation error. CIs of the SDs are the chi-square
    intervals for n-1 degrees of freedom; the correlation CI is Fisher's z (n > 3).
    """
    n = len(instances)
    if n < 2:
        return None
    v = np.array([i[1] for i in instances], float)
    s = np.array([i[2] for i in instances], float)
    ls = np.log(s)
    var_v = float(np.var(v, ddof=1))
    var_l = float(np.var(ls, ddof=1))
    if v50_se is not None:
        var_v = max(var_v - float(np.mean(np.square(v50_se))), 0.0)
    if ln_scale_se is not None:
        var_l = max(var_l - float(np.mean(np.square(ln_scale_se))), 0.0)
    sd_v, sd_l = math.sqrt(var_v), math.sqrt(var_l)
    dof = n - 1
    lo_f, hi_f = math.sqrt(dof / stats.chi2.ppf(0.975, dof)), math.sqrt(dof / stats.chi2.ppf(0.025, dof))
    rho = float(np.corrcoef(v, ls)[0, 1]) if np.std(v) > 0 and np.std(ls) > 0 else 0.0
    rho_ci = None
    if n > 3 and abs(rho) < 1:
        z, se = math.atanh(rho), 1 / math.sqrt(n - 3)
        rho_ci = [math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)]
    scale_mean = float(np.mean(s))
    return {"n_instances": n, "v50_mean_v": float(np.mean(v)), "v50_sd_v": sd_v,
            "v50_sd_ci95_v": [sd_v * lo_f, sd_v * hi_f],
            "scale_mean_v": scale_mean, "scale_sd_v": sd_l * scale_mean,
            "scale_sd_ci95_v": [sd_l * scale_mean * lo_f, sd_l * scale_mean * hi_f],
            "ln_scale_sd": sd_l, "correlation": max(-1.0, min(1.0, rho)), "correlation_ci95": rho_ci,
            "instances": [{"instance": int(i), "v50_v": float(a), "scale_v": float(b)} for i, a, b in instances]}


def build_condition(*, corner: str, temp_c: float, vdd_v: float, bias_range_v: Sequence[float], rate_model: dict,
                    sample_period_s: float | None = None, energy: dict | None = None,
                    goodness_of_fit: dict | None = None, mismatch: dict | None = None,
                    points: list | None = None, direct_fit: dict | None = None,
                    h_min_measured: float | None = None) -> dict:
    """One ``conditions[]`` entry with every derived block filled in."""
    sigmoid, tau, entropy = derived_blocks(rate_model, bias_range_v, sample_period_s=sample_period_s)
    sigmoid["direct_fit"] = direct_fit
    entropy["h_min_measured_per_bit"] = h_min_measured
    cond = {"corner": corner, "temp_c": float(temp_c), "vdd_v": float(vdd_v),
            "bias_range_v": [float(bias_range_v[0]), float(bias_range_v[1])],
            "rate_model": rate_model, "sigmoid": sigmoid, "tau": tau,
            "energy": energy or {"mean_supply_power_w": None, "energy_per_flip_j": None, "energy_per_bit_j": None},
            "entropy": entropy, "goodness_of_fit": goodness_of_fit or {"n_points": 0},
            "mismatch": mismatch}
    if points is not None:
        cond["points"] = points
    return cond


def build_document(*, name: str, conditions: list[dict], nominal: Mapping, bias_param: str,
                   technology: str = "generic", netlist_sha256: str | None = None,
                   model_package: dict | None = None, source: str = "simulation",
                   ngspice_version: str | None = None, sweep_id: str | None = None,
                   seeds: Iterable[int] = (), n_streams: int | None = None,
                   sample_period_s: float | None = None, description: str | None = None,
                   notes: str | None = None, created_utc: str | None = None) -> dict:
    """Assemble and validate a complete cell-model document."""
    lo = min(c["bias_range_v"][0] for c in conditions)
    hi = max(c["bias_range_v"][1] for c in conditions)
    cell = {"name": name, "netlist_sha256": netlist_sha256, "technology": technology, "model_package": model_package}
    if description:
        cell["description"] = description
    prov = {"source": source, "noisecell_version": __version__, "ngspice_version": ngspice_version,
            "sweep_id": sweep_id,
            "created_utc": created_utc or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "seeds": sorted({int(s) for s in seeds}), "sample_period_s": sample_period_s}
    if n_streams is not None:
        prov["n_streams"] = int(n_streams)
    if notes:
        prov["notes"] = notes
    doc = {"schema_version": SCHEMA_VERSION, "cell": cell, "provenance": prov,
           "bias": {"param": bias_param, "range_v": [float(lo), float(hi)]},
           "nominal_condition": {"corner": nominal["corner"], "temp_c": float(nominal["temp_c"]),
                                 "vdd_v": float(nominal["vdd_v"])},
           "conditions": conditions}
    validate_document(doc, f"cell model {name!r}")
    return doc


def synthetic_model(*, name: str = "synthetic", v50_v: float = 0.0, scale_v: float = 1e-3, tau_v50_s: float = 1e-6,
                    ln_k_sum_slope_per_v: float = 0.0, bias_range_v=(-5e-3, 5e-3), corner: str = "tt",
                    temps_c: Sequence[float] = (27.0,), tau_temp_coeff_per_c: float = 0.0,
                    vdd_v: float = 0.06, mismatch: tuple[float, float, float] | None = None,
                    sample_period_s: float | None = None, rel_se: float = 0.0) -> CellModel:
    """A model with known truth (for tests, benchmarks and examples), source = "synthetic".

    ``ln k_up + ln k_down`` has slope ``ln_k_sum_slope_per_v`` (1/V) so tau varies with bias;
    ``tau(v50)`` scales as ``exp(-tau_temp_coeff_per_c * (T - T0))``; ``mismatch`` is
    ``(v50_sd_v, ln_scale_sd, correlation)``; ``rel_se`` sets a diagonal covariance.
    """
    conds = []
    t0 = temps_c[0]
    for t in temps_c:
        ln_k50 = -math.log(2 * tau_v50_s) + tau_temp_coeff_per_c * (t - t0)
        b_u = 0.5 * (ln_k_sum_slope_per_v + 1 / scale_v)
        b_d = 0.5 * (ln_k_sum_slope_per_v - 1 / scale_v)
        up = (ln_k50 + b_u * (0 - v50_v), b_u)
        down = (ln_k50 + b_d * (0 - v50_v), b_d)
        cov = np.diag([rel_se**2, (rel_se * abs(b_u)) ** 2 / 100, rel_se**2, (rel_se * abs(b_d)) ** 2 / 100])
        mm = None
        if mismatch is not None:
            sv, sl, rho = mismatch
            mm = {"n_instances": 1000, "v50_mean_v": v50_v, "v50_sd_v": sv, "scale_mean_v": scale_v,
                  "scale_sd_v": sl * scale_v, "ln_scale_sd": sl, "correlation": rho, "instances": []}
        conds.append(build_condition(corner=corner, temp_c=t, vdd_v=vdd_v, bias_range_v=bias_range_v,
                                     rate_model=loglinear_rate_model(0.0, up, down, cov),
                                     sample_period_s=sample_period_s, mismatch=mm))
    doc = build_document(name=name, conditions=conds, nominal={"corner": corner, "temp_c": t0, "vdd_v": vdd_v},
                         bias_param="VB", source="synthetic", sample_period_s=sample_period_s,
                         notes="synthetic model with known parameters")
    return CellModel(doc, source=f"<synthetic model {name}>")
