"""Build a :class:`~noisecell.model.CellModel` document: from rate-model coefficients, or fitted to a sweep.

The fit, per operating condition (corner, temp_c, vdd_v):

1. For every stream the sweep's analysis gives ``rate_up_hz``, ``rate_down_hz`` (1/s) with 95 % CIs
   and the standard errors of ``ln k`` it stored (``rate_up_log_se``, ``rate_down_log_se``: the CI's
   half-width on the log scale / 1.96; the rate CIs are close to symmetric in ``ln k`` because a rate
   is a count over an exposure time). Streams the analysis flags as non-Markov
   (``markov_consistent`` False) and rates from fewer than ~4 transitions are left out -- except a
   flagged stream whose dwells are *more regular* than exponential (dispersion ≤ 1 in every state
   measured: a renewal telegraph with a dead time, e.g. an amplified-noise chain whose dwells are a few
   of its propagation times long; :func:`renewal_rows`). Its rates, 1/mean dwell, still measure the
   switching (and their gamma CIs are conservative for under-dispersed dwells), so it is kept and
   counted (``n_renewal_kept``); over-dispersed flagged streams (chatter, modulated rates) are not.
2. ``ln k_up`` and ``ln k_down`` are fitted as straight lines in bias by weighted least squares
   (statsmodels WLS, weights ``1/se**2``) with a fixed-scale covariance (the CIs are trusted). When the
   residual chi-square exceeds its degrees of freedom (the line does not describe the data within
   the stream-to-stream noise) the covariance is inflated by the Birge ratio ``chi2/dof`` so the CIs
   stay honest.
3. The sigmoid, tau(bias), min-entropy and health-test cutoffs are derived from the two lines, so
   the model is self-consistent; an independent logistic fit of P(1) is kept as a cross-check.
   ``characterize`` (its sequential designs) and :func:`fit_sweep_dir` (``noisecell fit``, from the
   stored bit streams: :func:`joint_fits_from_store`) then put the joint censored-dwell fit of the
   same records in place of the lines (:func:`with_joint_fit`; quadratics, schema 2.2).
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
from . import ratemodel
from .cellmodel import SCHEMA_VERSION, Z95, CellModel, _ConditionRates, validate_document
from .energy import energy_at_v50
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


#: |ln τ| (τ in s) a derived τ grid and its CI are clipped to: e^±69 ≈ 1e±30 s, the schema's bounds
#: (cell-model-v2.json: τ ≤ 1e30 s) and far beyond any cell (a curved rate model extrapolated 60 scales
#: from its records overflowed exp: pbit_x5's nominal, whose calibrated range reaches a stuck pilot
#: record at −200 mV; a condition's own span gave 3.8e260 s, refused by the schema)
MAX_ABS_LN_TAU = 69.0


def _ci_or_none(lo, hi):
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return [float(lo), float(hi)]


def derived_blocks(rate_model: Mapping, bias_range_v: Sequence[float], *, sample_period_s: float | None,
                   tau_range_v: Sequence[float] | None = None):
    """Sigmoid, tau and entropy blocks implied by a loglinear rate model (see module docstring): V50,
    scale and τ(V50) with delta-method CIs from :func:`noisecell.model.ratemodel.crossing`, the τ(V)
    grid from :func:`noisecell.model.ratemodel.ln_tau` (curvature included) over ``tau_range_v`` (V;
    default ``bias_range_v``); ln τ is clipped to ±MAX_ABS_LN_TAU so that a curved model evaluated far
    from its records cannot overflow."""
    if rate_model["kind"] != "loglinear":
        raise ValueError("derived_blocks needs a loglinear rate model")
    try:
        (v50, ln_s, ln_t50), cov3 = ratemodel.crossing(rate_model)
    except InputError as exc:
        raise InputError(f"fitted {exc} over the sweep; widen the bias range") from None
    se = np.sqrt(np.clip(np.diag(cov3), 0.0, None))
    se_v50, se_ln_scale, se_t50 = (float(x) for x in se)
    scale = 1.0 / float(ratemodel.logit_slope(rate_model, v50))
    v50 = float(v50)
    sigmoid = {"form": "logistic", "v50_v": v50, "v50_ci95_v": [v50 - Z95 * se_v50, v50 + Z95 * se_v50],
               "scale_v": float(scale),
               "scale_ci95_v": sorted([scale * math.exp(-Z95 * se_ln_scale), scale * math.exp(Z95 * se_ln_scale)]),
               "p_low": 0.0, "p_high": 1.0, "direct_fit": None}
    span = tau_range_v if tau_range_v is not None else bias_range_v
    grid = np.linspace(span[0], span[1], N_TAU_GRID)
    m, sg = ratemodel.ln_tau(rate_model, grid)
    m = np.clip(np.asarray(m, float), -MAX_ABS_LN_TAU, MAX_ABS_LN_TAU)
    sg = np.clip(np.asarray(sg, float), 0.0, MAX_ABS_LN_TAU)
    tau = {"tau_at_v50_s": math.exp(ln_t50),
           "tau_at_v50_ci95_s": [math.exp(ln_t50 - Z95 * se_t50), math.exp(ln_t50 + Z95 * se_t50)],
           "bias_v": [float(v) for v in grid], "tau_s": [float(math.exp(a)) for a in m],
           "tau_ci95_s": [[float(math.exp(max(a - Z95 * b, -MAX_ABS_LN_TAU))),
                           float(math.exp(min(a + Z95 * b, MAX_ABS_LN_TAU)))] for a, b in zip(m, sg)]}

    entropy = {"sample_period_s": sample_period_s, "at_bias_v": float(v50), "h_min_per_bit": None,
               "h_min_measured_per_bit": None, "rct_cutoff": None, "apt_cutoff": None,
               "apt_window": APT_WINDOW, "alpha": ALPHA}
    if sample_period_s:
        lu, ld = ratemodel.ln_rates(rate_model, v50)
        pu, pd, _ = transition_probabilities(float(lu), float(ld), sample_period_s)
        h = markov_min_entropy_per_bit(float(pu), float(pd))
        rct, apt = health_test_cutoffs(h)
        entropy.update(h_min_per_bit=h, rct_cutoff=rct, apt_cutoff=apt)
    return sigmoid, tau, entropy


def with_joint_fit(cond: Mapping, fit, bias_range_v: Sequence[float]) -> dict:
    """A copy of model condition ``cond`` whose rate model is the joint censored-dwell fit ``fit``
    (:class:`noisecell.model.ratefit.RateFit`) instead of the per-point straight lines: ``rate_model``
    the fit's quadratics at reference V̂50 (schema 2.2, 6×6 covariance), ``sigmoid`` and ``tau`` derived
    from it with the fit's profile-likelihood CIs of V50, scale and τ(V50), ``bias_range_v`` (V) as
    given, and the fit itself as ``joint_fit``. The one place both ``characterize`` (its sequential
    designs) and ``noisecell fit`` put a joint fit into a model, so the two export the same model from
    the same records."""
    out = dict(cond)
    rm = fit.rate_model()
    # τ(V) only where the fit's records are: beyond them (a P(1)-only calibrated region) the curved
    # model is an extrapolation
    lo, hi = max(bias_range_v[0], fit.bias_range_v[0]), min(bias_range_v[1], fit.bias_range_v[1])
    sig, tau, ent = derived_blocks(rm, bias_range_v,
                                   sample_period_s=(cond.get("entropy") or {}).get("sample_period_s"),
                                   tau_range_v=(lo, hi) if lo < hi else None)

    def ci(iv):
        return [float(iv.lo), float(iv.hi)] if math.isfinite(iv.lo) and math.isfinite(iv.hi) else None

    sig.update(v50_v=float(fit.v50.value), v50_ci95_v=ci(fit.v50), scale_v=float(fit.scale.value),
               scale_ci95_v=ci(fit.scale), direct_fit=(cond.get("sigmoid") or {}).get("direct_fit"))
    tau.update(tau_at_v50_s=float(fit.tau_v50.value), tau_at_v50_ci95_s=ci(fit.tau_v50))
    ent["h_min_measured_per_bit"] = (cond.get("entropy") or {}).get("h_min_measured_per_bit")
    out.update(rate_model=rm, sigmoid=sig, tau=tau, entropy=ent,
               bias_range_v=[float(bias_range_v[0]), float(bias_range_v[1])], joint_fit=finite_tree(fit.to_dict()))
    return out


def finite_tree(x):
    """JSON-ready copy with non-finite floats as None (the model schema admits finite numbers only)."""
    if isinstance(x, dict):
        return {k: finite_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_tree(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def loglinear_rate_model(v_ref: float, up: Sequence[float], down: Sequence[float], covariance=None) -> dict:
    """Rate-model block (schema 2.2): ln k = intercept + slope_per_v·x + curvature_per_v2·x², x = V − v_ref;
    ``up``/``down`` = (intercept, slope[, curvature]); ``covariance`` 4×4 (straight lines) or 6×6 in
    :data:`noisecell.model.ratemodel.ORDER` (see :func:`noisecell.model.ratemodel.make`)."""
    return ratemodel.make(v_ref, up, down, covariance)


def mismatch_block(instances: Sequence[tuple], *, v50_se: Sequence[float] | None = None,
                   ln_scale_se: Sequence[float] | None = None, nominal_rate_model: Mapping | None = None,
                   reference: str = "nominal_cell", not_fitted: Sequence[tuple[int, str]] = (),
                   n_simulated: int | None = None) -> dict | None:
    """Mismatch block (model schema v2) from per-instance fits.

    ``instances``: ``(instance, rate_model)`` pairs (a loglinear rate-model block per Monte Carlo
    instance), or the schema-v1 form ``(instance, v50_v, scale_v)`` with ``v50_se``/``ln_scale_se``.
    With rate models and the condition's ``nominal_rate_model``, each instance gets its offset, gain
    and τ ratio against the nominal cell with CIs (delta method on its own rate fit), and the block
    the joint distribution of (offset, ln gain, ln τ ratio) (:func:`noisecell.model.instances.
    estimate_distribution`). The v1 summary fields (V50 mean/spread, ln-scale spread, their
    correlation) are kept, de-noised by subtracting the mean squared per-instance standard error;
    CIs of the SDs are chi-square (n-1 dof), of the correlation Fisher's z (n > 3).
    ``not_fitted``: (instance, reason) of instances that were simulated but gave no rate fit.
    """
    from .instances import estimate_distribution, instance_parameters

    n = len(instances)
    if n < 2:
        return None
    dist = None
    inst_rows = []
    if n and isinstance(instances[0][1], Mapping):
        vals, covs = zip(*(instance_parameters(rm) for _, rm in instances))
        vals, covs = np.array(vals), np.array(covs)
        v = vals[:, 0]
        # each instance's signed logistic scale at its own V50 (model.ratemodel: curvature included)
        s = np.array([1 / float(ratemodel.logit_slope(rm, vi[0])) for (_, rm), vi in zip(instances, vals)])
        v50_se = np.sqrt(covs[:, 0, 0])
        ln_scale_se = np.sqrt(covs[:, 1, 1])
        if nominal_rate_model is not None:
            ref, ref_cov = instance_parameters(nominal_rate_model)
            if reference == "instance_mean":
                ref_cov = np.zeros((3, 3))  # the reference is the instances' own mean: no extra variance
        else:
            ref, ref_cov = vals.mean(axis=0), np.zeros((3, 3))
            reference = "instance_mean"
        x = vals - ref
        for (k, _), xi, ci, vi, si in zip(instances, x, covs, vals, s):
            se = np.sqrt(np.clip(np.diag(ci), 0, None))
            inst_rows.append({"instance": int(k), "v50_v": float(vi[0]), "scale_v": float(si),
                              "v50_ci95_v": [float(vi[0] - Z95 * se[0]), float(vi[0] + Z95 * se[0])],
                              "scale_ci95_v": sorted([float(si * math.exp(-Z95 * se[1])), float(si * math.exp(Z95 * se[1]))]),
                              "tau_at_v50_s": float(math.exp(vi[2])),
                              "tau_at_v50_ci95_s": [float(math.exp(vi[2] - Z95 * se[2])), float(math.exp(vi[2] + Z95 * se[2]))],
                              "offset_v": float(xi[0]),
                              "offset_ci95_v": [float(xi[0] - Z95 * se[0]), float(xi[0] + Z95 * se[0])],
                              "gain": float(math.exp(xi[1])),
                              "gain_ci95": [float(math.exp(xi[1] - Z95 * se[1])), float(math.exp(xi[1] + Z95 * se[1]))],
                              "tau_ratio": float(math.exp(xi[2])),
                              "tau_ratio_ci95": [float(math.exp(xi[2] - Z95 * se[2])), float(math.exp(xi[2] + Z95 * se[2]))],
                              "estimation_covariance": [[float(c) for c in row] for row in ci]})
        dist = estimate_distribution(x, covs, reference_cov=ref_cov, reference=reference).to_dict()
    else:
        v = np.array([i[1] for i in instances], float)
        s = np.array([i[2] for i in instances], float)
        inst_rows = [{"instance": int(i), "v50_v": float(a), "scale_v": float(b)} for i, a, b in instances]
    if np.any(s == 0) or len(set(np.sign(s))) > 1:
        raise InputError("mismatch instances disagree on the direction of the sigmoid (sign of the scale); "
                         "check the sweep's instances")
    ls = np.log(np.abs(s))
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
    out = {"n_instances": n, "v50_mean_v": float(np.mean(v)), "v50_sd_v": sd_v,
           "v50_sd_ci95_v": [sd_v * lo_f, sd_v * hi_f],
           "scale_mean_v": scale_mean, "scale_sd_v": sd_l * abs(scale_mean),
           "scale_sd_ci95_v": [sd_l * abs(scale_mean) * lo_f, sd_l * abs(scale_mean) * hi_f],
           "ln_scale_sd": sd_l, "correlation": max(-1.0, min(1.0, rho)), "correlation_ci95": rho_ci,
           "instances": inst_rows, "distribution": dist}
    if n_simulated is not None:
        out["n_instances_simulated"] = int(n_simulated)
    if not_fitted:
        out["instances_not_fitted"] = [{"instance": int(k), "reason": str(r)} for k, r in not_fitted]
    return out


def rereference_mismatch(cond: dict) -> dict:
    """The condition's mismatch block recomputed against its current rate model (after the sequential
    design replaced the nominal fit); the per-instance V50/scale/τ and their covariances are kept."""
    mm = cond.get("mismatch")
    if not mm or not mm.get("instances") or "estimation_covariance" not in mm["instances"][0]:
        return cond
    rm = cond["rate_model"]
    if rm["kind"] != "loglinear":
        return cond
    from .instances import estimate_distribution, instance_parameters

    ref, ref_cov = instance_parameters(rm)
    new = dict(mm)
    rows, x, covs = [], [], []
    for r in mm["instances"]:
        val = np.array([r["v50_v"], math.log(abs(r["scale_v"])), math.log(r["tau_at_v50_s"])])
        c = np.asarray(r["estimation_covariance"], float)
        se = np.sqrt(np.clip(np.diag(c), 0, None))
        xi = val - ref
        rows.append({**r, "offset_v": float(xi[0]), "offset_ci95_v": [float(xi[0] - Z95 * se[0]), float(xi[0] + Z95 * se[0])],
                     "gain": float(math.exp(xi[1])),
                     "gain_ci95": [float(math.exp(xi[1] - Z95 * se[1])), float(math.exp(xi[1] + Z95 * se[1]))],
                     "tau_ratio": float(math.exp(xi[2])),
                     "tau_ratio_ci95": [float(math.exp(xi[2] - Z95 * se[2])), float(math.exp(xi[2] + Z95 * se[2]))]})
        x.append(xi)
        covs.append(c)
    new["instances"] = rows
    if len(x) >= 2:
        ref_name = (mm.get("distribution") or {}).get("reference", "nominal_cell")
        if ref_name == "instance_mean":
            ref_cov = np.zeros((3, 3))
        new["distribution"] = estimate_distribution(np.array(x), np.array(covs), reference_cov=ref_cov,
                                                    reference=ref_name).to_dict()
    return {**cond, "mismatch": new}


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
    # energy per bit = the power of the record nearest V50 × this condition's τ(V50), with τ's CI; whoever
    # changes sigmoid/tau afterwards (the joint fit) restates it (report.procedures.conditions.finish_document)
    cond["energy"] = energy_at_v50(cond)
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
                    vdd_v: float = 0.06, mismatch: tuple[float, float, float] | Mapping | None = None,
                    sample_period_s: float | None = None, rel_se: float = 0.0) -> CellModel:
    """A model with known truth (for tests, benchmarks and examples), source = "synthetic".

    ``ln k_up + ln k_down`` has slope ``ln_k_sum_slope_per_v`` (1/V) so tau varies with bias;
    ``tau(v50)`` scales as ``exp(-tau_temp_coeff_per_c * (T - T0))``; ``mismatch`` is
    ``(v50_sd_v, ln_scale_sd, correlation)`` (the schema-v1 two-variable spread) or a dict
    ``{"mean": [3], "covariance": [[3x3]]}`` of (offset_v, ln gain, ln tau_ratio) (schema v2); ``rel_se`` sets a diagonal covariance.
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
        if isinstance(mismatch, Mapping):
            from .instances import MismatchDistribution

            mu = np.asarray(mismatch.get("mean", np.zeros(3)), float)
            cv = np.asarray(mismatch["covariance"], float)
            nn = int(mismatch.get("n_instances", 1000))
            dist = MismatchDistribution(n=nn, mean=mu, mean_ci95=np.stack([mu, mu], 1), covariance=cv,
                                        covariance_ci95=np.stack([cv, cv], -1), observed_covariance=cv,
                                        mean_estimation_covariance=np.zeros((3, 3))).to_dict()
            sd = np.sqrt(np.diag(cv))
            rho = float(cv[0, 1] / (sd[0] * sd[1])) if sd[0] > 0 and sd[1] > 0 else 0.0
            mm = {"n_instances": nn, "v50_mean_v": v50_v + float(mu[0]), "v50_sd_v": float(sd[0]),
                  "scale_mean_v": scale_v * math.exp(float(mu[1])), "scale_sd_v": float(sd[1]) * abs(scale_v),
                  "ln_scale_sd": float(sd[1]), "correlation": rho, "instances": [], "distribution": dist}
        elif mismatch is not None:
            sv, sl, rho = mismatch
            mm = {"n_instances": 1000, "v50_mean_v": v50_v, "v50_sd_v": sv, "scale_mean_v": scale_v,
                  "scale_sd_v": sl * abs(scale_v), "ln_scale_sd": sl, "correlation": rho, "instances": []}
        conds.append(build_condition(corner=corner, temp_c=t, vdd_v=vdd_v, bias_range_v=bias_range_v,
                                     rate_model=loglinear_rate_model(0.0, up, down, cov),
                                     sample_period_s=sample_period_s, mismatch=mm))
    doc = build_document(name=name, conditions=conds, nominal={"corner": corner, "temp_c": t0, "vdd_v": vdd_v},
                         bias_param="VB", source="synthetic", sample_period_s=sample_period_s,
                         notes="synthetic model with known parameters")
    return CellModel(doc, source=f"<synthetic model {name}>")


# ----------------------------------------------------------------------------- fit to a sweep
def _col(df, *names):
    for n in names:
        if n in df.columns:
            return n
    return None


def _ci_cols(df, base: str, unit: str | None = None):
    """Column names (lo, hi) of the 95 % CI of ``base`` in a flattened sweep table, or (None, None)."""
    cands = [f"{base}_ci95"]
    if unit and base.endswith("_" + unit):
        stem = base[: -len(unit) - 1]
        cands.append(f"{stem}_ci95_{unit}")
    for c in cands:
        if f"{c}_lo" in df.columns and f"{c}_hi" in df.columns:
            return f"{c}_lo", f"{c}_hi"
    return None, None


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


#: rate points whose ln-k standard error exceeds this (fewer than ~4 transitions) are left out of the
#: line fit: ln of a count that small is biased and its symmetric-in-ln error bar is not yet reliable
MAX_LN_RATE_SE = 0.5


def _wls_line(x: np.ndarray, y: np.ndarray, se: np.ndarray):
    """Weighted straight line y = a + b x with known errors; returns (theta, cov, chi2, dof)."""
    import statsmodels.api as sm

    X = sm.add_constant(x, has_constant="add")
    res = sm.WLS(y, X, weights=1.0 / se**2).fit(cov_type="fixed scale")
    theta = np.asarray(res.params, float)
    cov = np.asarray(res.cov_params(), float)
    chi2 = float(np.sum(((y - X @ theta) / se) ** 2))
    dof = len(x) - 2
    if dof > 0 and chi2 > dof:
        cov = cov * (chi2 / dof)  # Birge ratio: the scatter exceeds the stated errors
    return theta, cov, chi2, dof


def _fit_stat(chi2: float, dof: int, resid=None, z=None) -> dict:
    return {"chi2": float(chi2), "dof": int(max(dof, 0)),
            "p_value": float(stats.chi2.sf(chi2, dof)) if dof > 0 else None,
            "max_abs_residual": None if resid is None or len(resid) == 0 else float(np.max(np.abs(resid))),
            "max_abs_z": None if z is None or len(z) == 0 else float(np.max(np.abs(z)))}


def _stored_or_width_se(df, se_col: str, lo_c: str | None, hi_c: str | None, log: bool) -> np.ndarray:
    """The standard errors the analysis stored (``se_col``, see
    :class:`noisecell.analysis.StreamEstimates`); tables without that column (older sweeps, hand-made
    tables) fall back to the 95 % CI width (on the ln scale when ``log``) / (2·1.96)."""
    if se_col in df.columns:
        return pd_to_float(df[se_col])
    if lo_c is None:
        return np.full(len(df), np.nan)
    lo, hi = df[lo_c].to_numpy(float), df[hi_c].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.log(hi) - np.log(lo)) / (2 * Z95) if log else (hi - lo) / (2 * Z95)


def pd_to_float(col) -> np.ndarray:
    """A table column as floats, None → NaN."""
    return np.array([np.nan if v is None else float(v) for v in col], float)


def _rate_points(df):
    """(bias, ln k_up, se_up, ln k_down, se_down) arrays of the usable rate points of ``df``."""
    out = {}
    for which in ("up", "down"):
        base = f"rate_{which}_hz"
        lo_c, hi_c = _ci_cols(df, base, "hz")
        if base not in df.columns or (lo_c is None and f"rate_{which}_log_se" not in df.columns):
            raise InputError(f"sweep table has no {base} with a 95 % CI ({base}_ci95_lo/_hi); "
                             "re-run the sweep with a noisecell that records transition rates")
        k = pd_to_float(df[base])
        se = _stored_or_width_se(df, f"rate_{which}_log_se", lo_c, hi_c, log=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            lk = np.log(k)
        ok = np.isfinite(lk) & np.isfinite(se) & (se > 0) & (se <= MAX_LN_RATE_SE)
        out[which] = (lk, se, ok)
    return out


#: a flagged stream counts as a renewal (kept) when every measured dwell dispersion is at most this
RENEWAL_MAX_DISPERSION = 1.0


def renewal_rows(df) -> np.ndarray:
    """Rows whose dwells are under-dispersed (observed / geometric variance ≤ RENEWAL_MAX_DISPERSION in
    each state with a dispersion, at least one): more regular than a Markov telegraph's, as a dead time
    makes them. Chatter (extra very short dwells) and modulated rates are over-dispersed."""
    cols = [c for c in ("dwell_dispersion_0", "dwell_dispersion_1") if c in df.columns]
    if not cols:
        return np.zeros(len(df), bool)
    disp = np.column_stack([pd_to_float(df[c]) for c in cols])
    have = np.isfinite(disp)
    return have.any(axis=1) & np.all(~have | (disp <= RENEWAL_MAX_DISPERSION), axis=1)


def rate_rows(df, *, require_markov: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose rates measure the cell's switching, the renewal rows among them), boolean masks:
    Markov-consistent or not judged, plus flagged rows whose dwells are under-dispersed
    (:func:`renewal_rows`); every row when not ``require_markov``. The one selection both the per-point
    fit (:func:`fit_rates`) and the joint fit of ``noisecell fit`` (:func:`joint_fits_from_store`) use."""
    markov = np.ones(len(df), bool)
    renewal = np.zeros(len(df), bool)
    if require_markov and "markov_consistent" in df.columns:
        markov = (df["markov_consistent"] != False).to_numpy(bool)  # noqa: E712 - None/NaN = not judged
        # pbit_x5 at sf 27 C (tau 1.8 ns): every record flagged, dwell dispersion 0.4-0.9 at NT 0.4, 0.2
        # and 0.1 ns alike; the nominal's records (dispersion ~0.6) pass or fail only by their length
        renewal = ~markov & renewal_rows(df)
        markov = markov | renewal
    return markov, renewal


def fit_rates(df, v_ref: float | None = None, *, require_markov: bool = True):
    """Loglinear rate model from the rows of one condition / one instance.

    Rows the analysis flags as not Markov (``markov_consistent`` False: dwell times not
    exponential or ACF/lag-1 tau disagree -- e.g. comparator chatter counted as transitions) are
    left out when ``require_markov``: their rates do not measure the cell's switching; unless their
    dwells are under-dispersed (:func:`renewal_rows`: a renewal telegraph, whose rates do), which are
    kept and counted in ``details["n_renewal_kept"]``.
    Returns (rate_model, details) where details holds the per-rate chi2/dof, the mask of rows used and
    the exclusion counts. Raises InputError when fewer than 3 usable points remain.
    """
    bias = df["bias_v"].to_numpy(float)
    pts = _rate_points(df)
    enough = pts["up"][2] & pts["down"][2]
    markov, renewal = rate_rows(df, require_markov=require_markov)
    used = enough & markov
    n_few, n_nm = int((~enough).sum()), int((enough & ~markov).sum())
    if used.sum() < 3:
        raise InputError(f"only {int(used.sum())} usable bias point(s) ({n_few} with fewer than ~4 transitions "
                         f"each way, {n_nm} flagged non-Markov by the analysis with over-dispersed dwells); a rate model needs 3 or more: "
                         "extend the sweep duration, move the bias points towards V50, check the digitiser "
                         "(chatter), or pass --keep-non-markov")
    if v_ref is None:
        v_ref = float(np.mean(bias[used]))
    thetas, covs, det = [], [], {"used": used, "n_excluded_few_transitions": n_few, "n_excluded_non_markov": n_nm,
                                 "n_renewal_kept": int((enough & renewal).sum())}
    for which in ("up", "down"):
        lk, se, _ = pts[which]
        theta, cov, chi2, dof = _wls_line(bias[used] - v_ref, lk[used], se[used])
        thetas.append(theta)
        covs.append(cov)
        resid = lk[used] - (theta[0] + theta[1] * (bias[used] - v_ref))
        det[which] = _fit_stat(chi2, dof, resid, resid / se[used])
    cov4 = np.zeros((4, 4))
    # up and down rates are estimated from disjoint dwell periods of the same streams; their
    # correlation is neglected (block-diagonal covariance)
    cov4[:2, :2], cov4[2:, 2:] = covs
    return loglinear_rate_model(v_ref, thetas[0], thetas[1], cov4), det


def _instance_sigmoid(rm: dict) -> tuple[float, float, float, float]:
    """(v50, scale, se_v50, se_ln_scale) of a loglinear rate model (curvature included)."""
    (v50, _, _), cov3 = ratemodel.crossing(rm)
    return (float(v50), 1.0 / float(ratemodel.logit_slope(rm, v50)), math.sqrt(max(cov3[0, 0], 0.0)),
            math.sqrt(max(cov3[1, 1], 0.0)))


def _direct_logistic(df) -> dict | None:
    """Independent fit of P(1) vs bias (noisecell.analysis.sigmoid: n_eff-weighted binomial
    likelihood, logistic/probit/tanh compared by AIC, no free saturations); the best form is kept as a
    cross-check of the rate-implied sigmoid. None when there are too few points or it does not converge."""
    from ..analysis.sigmoid import fit_sigmoids

    if "p1" not in df.columns or "n_eff" not in df.columns:
        return None
    d = df[["bias_v", "p1", "n_eff"]].astype(float)
    d = d[np.isfinite(d).all(axis=1) & (d["n_eff"] > 0)]
    if len(d) < 3 or np.ptp(d["bias_v"].to_numpy()) <= 0:
        return None
    try:
        best = fit_sigmoids(d, free_saturation=(False,)).best
    except Exception:  # noqa: BLE001 - separation, non-convergence: the cross-check is then absent
        return None
    if not (best.converged and np.isfinite(best.v50_v) and np.isfinite(best.scale_v) and best.scale_v != 0):
        return None

    def pair(c):
        return None if c is None or not all(np.isfinite(c)) else sorted(float(x) for x in c)

    return {"form": best.form, "v50_v": float(best.v50_v), "v50_ci95_v": pair(best.v50_ci95),
            "scale_v": float(best.scale_v), "scale_ci95_v": pair(best.scale_ci95),
            "dispersion": float(best.dispersion) if np.isfinite(best.dispersion) else None}


def _points_table(df, used) -> list[dict]:
    p_lo, p_hi = _ci_cols(df, "p1")
    t_lo, t_hi = _ci_cols(df, "tau_s", "s")
    u_lo, u_hi = _ci_cols(df, "rate_up_hz", "hz")
    d_lo, d_hi = _ci_cols(df, "rate_down_hz", "hz")
    pts = []
    for (_, r), u in zip(df.iterrows(), used):
        def g(c):
            return None if c is None else _num(r.get(c))

        p1 = g("p1")
        if p1 is None:
            continue
        tau = g("tau_s")
        pts.append({"bias_v": float(r["bias_v"]), "p1": min(1.0, max(0.0, p1)),
                    "p1_ci95": _ci_or_none(g(p_lo), g(p_hi)),
                    "n_eff": g("n_eff") if (g("n_eff") or 0) >= 0 else None,
                    "tau_s": tau if tau and tau > 0 else None, "tau_ci95_s": _ci_or_none(g(t_lo), g(t_hi)),
                    "rate_up_hz": g("rate_up_hz"), "rate_up_ci95_hz": _ci_or_none(g(u_lo), g(u_hi)),
                    "rate_down_hz": g("rate_down_hz"), "rate_down_ci95_hz": _ci_or_none(g(d_lo), g(d_hi)),
                    "used_in_fit": bool(u)})
        if "mean_supply_power_w" in df.columns:
            # the record's power and its own energy figures, for the energy block's record nearest V50
            # (model.energy): record_energy_per_bit_j is P × this record's own τ, not P·τ(V50)
            pts[-1].update(mean_supply_power_w=g("mean_supply_power_w"),
                           energy_per_flip_j=g("energy_per_flip_j") if "energy_per_flip_j" in df.columns else None,
                           record_energy_per_bit_j=g("energy_per_bit_j") if "energy_per_bit_j" in df.columns else None)
            if "job_id" in df.columns and isinstance(r.get("job_id"), str):
                pts[-1]["job_id"] = r["job_id"]
    pts.sort(key=lambda p: p["bias_v"])
    return pts


def _gof_p1_tau(model_rm: dict, df, used) -> tuple[dict | None, dict | None]:
    """chi2 of measured P(1) and ln tau against the rate-model prediction at the fitted points."""
    rc = _ConditionRates(model_rm)
    v = df["bias_v"].to_numpy(float)[used]
    lu, ld = rc.ln_rates(v)
    out = []
    p_lo, p_hi = _ci_cols(df, "p1")
    if p_lo is not None or "p1_se" in df.columns:
        p = df["p1"].to_numpy(float)[used]
        se = _stored_or_width_se(df, "p1_se", p_lo, p_hi, log=False)[used]
        pm = 1 / (1 + np.exp(ld - lu))
        ok = np.isfinite(p) & (se > 0)
        z = (p[ok] - pm[ok]) / se[ok]
        out.append(_fit_stat(float(np.sum(z * z)), int(ok.sum()) - 2, p[ok] - pm[ok], z))
    else:
        out.append(None)
    t_lo, t_hi = _ci_cols(df, "tau_s", "s")
    if (t_lo is not None or "tau_log_se" in df.columns) and "tau_s" in df.columns:
        t = pd_to_float(df["tau_s"])[used]
        se = _stored_or_width_se(df, "tau_log_se", t_lo, t_hi, log=True)[used]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(t) + np.logaddexp(lu, ld)
        ok = np.isfinite(r) & np.isfinite(se) & (se > 0)
        z = r[ok] / se[ok]
        out.append(_fit_stat(float(np.sum(z * z)), int(ok.sum()) - 2, r[ok], z))
    else:
        out.append(None)
    return out[0], out[1]


def _energy_block(df, v50: float) -> dict:
    """The record nearest ``v50``: its power and energy per flip, and its own P·τ as
    ``record_energy_per_bit_j``; :func:`build_condition` then states energy per bit as P·τ(V50)
    (:func:`noisecell.model.energy.energy_at_v50`)."""
    if not len(df):
        return {"mean_supply_power_w": None, "energy_per_flip_j": None, "energy_per_bit_j": None}
    i = int(np.argmin(np.abs(df["bias_v"].to_numpy(float) - v50)))
    r = df.iloc[i]
    out = {"at_bias_v": float(r["bias_v"])}
    for base, unit, key, name in (("mean_supply_power_w", "w", "mean_supply_power", "mean_supply_power"),
                                  ("energy_per_flip_j", "j", "energy_per_flip", "energy_per_flip"),
                                  ("energy_per_bit_j", "j", "energy_per_bit", "record_energy_per_bit")):
        out[f"{name}_{unit}"] = _num(r.get(base)) if base in df.columns else None
        lo, hi = _ci_cols(df, base, unit)
        if lo is not None:
            out[f"{name}_ci95_{unit}"] = _ci_or_none(_num(r.get(lo)), _num(r.get(hi)))
    if "job_id" in df.columns and isinstance(r.get("job_id"), str):
        out["record_job_id"] = r["job_id"]
    return out


def _h_min_measured(df, v50: float) -> float | None:
    col = _col(df, "h_min_rate", "markov_h_min_rate", "h_min_per_bit", "markov_h_min_per_bit")
    if col is None or not len(df):
        return None
    i = int(np.argmin(np.abs(df["bias_v"].to_numpy(float) - v50)))
    h = _num(df.iloc[i][col])
    return None if h is None else min(1.0, max(0.0, h))


def fit_rows(df, *, regimes: Iterable[str] | None = None, exclude_bias: Iterable[float] = (), what: str = "sweep"):
    """The sweep rows a fit may use: status ok, regime label in ``regimes`` (unlabelled rows kept; None:
    every regime), bias not in ``exclude_bias`` (V). Shared by :func:`fit_sweep` and
    :func:`joint_fits_from_store` so the two fits see the same rows. Raises InputError (naming ``what``)
    when ``regimes`` leaves no row."""
    d = df[df["status"] == "ok"] if "status" in df.columns else df
    if regimes is not None and "regime" in d.columns:
        regimes = tuple(regimes)
        lab = d["regime"]
        keep = (lab.isna() | lab.astype(str).isin(regimes)).to_numpy()
        if not keep.any():
            seen = ", ".join(f"{n} {r}" for r, n in lab.astype(str).value_counts().items())
            raise InputError(f"{what}: no row of regime {', '.join(regimes)} to fit ({seen}); lengthen the "
                             "records, move the bias points towards V50, or pass --all-regimes")
        d = d[keep]
    excl = np.asarray(list(exclude_bias), float)
    if excl.size:
        d = d[~np.isclose(d["bias_v"].to_numpy(float)[:, None], excl[None, :], rtol=0, atol=1e-12).any(axis=1)]
    return d


def fit_sweep(df, *, name: str | None = None, bias_param: str = "VB", technology: str = "generic",
              netlist_sha256: str | None = None, model_package: dict | None = None, sweep_id: str | None = None,
              ngspice_version: str | None = None, source: str = "simulation", nominal: Mapping | None = None,
              exclude_bias: Iterable[float] = (), require_markov: bool = True, what: str = "sweep",
              dropped: list | None = None, regimes: Iterable[str] | None = None) -> dict:
    """Fit a cell-model document to a sweep table (one row per stream; see module docstring).

    ``df`` needs: corner, temp_c, vdd_v, bias_v, rate_up_hz/rate_down_hz with ``*_ci95_lo/_hi``;
    optional: status ("ok" rows are used), mismatch_instance (-1 = nominal), p1 (+CI), n_eff,
    tau_s (+CI), mean_supply_power_w, energy_per_flip_j, energy_per_bit_j, h_min_rate,
    sample_period_s, seed. ``exclude_bias`` leaves those bias points (V) out (held-out checks).
    ``regimes``: when given, only rows whose ``regime`` label is one of these are fitted (rows without a
    label are kept; see :func:`fit_sweep_dir`); None: every row (``characterize`` filters its rows itself).
    ``dropped``: when a list, a condition that cannot be fitted is appended to it as
    ``((corner, temp_c, vdd_v), reason)`` and left out instead of failing the whole fit (each condition
    is still fitted exactly once); an InputError is raised only when no condition can be fitted.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not len(df):
        raise InputError(f"{what}: no rows to fit; run the sweep first")
    missing = [c for c in ("corner", "temp_c", "vdd_v", "bias_v") if c not in df.columns]
    if missing:
        raise InputError(f"{what}: sweep table lacks column(s) {missing}; is this a noisecell sweep?")
    d = fit_rows(df, regimes=regimes, exclude_bias=exclude_bias, what=what)
    if not len(d):
        raise InputError(f"{what}: no finished (status ok) jobs to fit; run or resume the sweep")
    inst_col = "mismatch_instance" if "mismatch_instance" in d.columns else None
    sp_col = _col(d, "sample_period_s", "digitize_sample_period_s")
    conditions = []
    for (corner, temp_c, vdd_v), g in d.groupby(["corner", "temp_c", "vdd_v"], sort=True):
        label = f"{what}: condition {corner}/{temp_c:g} °C/{vdd_v:g} V"
        try:
            inst = g[inst_col].fillna(-1).astype(int) if inst_col else pd.Series(-1, index=g.index)
            nom = g[inst < 0]
            per_inst, not_fitted = [], []
            for k, gi in g[inst >= 0].groupby(inst[inst >= 0]):
                try:
                    rm_i, _ = fit_rates(gi, require_markov=require_markov)
                    per_inst.append((int(k), rm_i, _instance_sigmoid(rm_i)))
                except InputError as exc:
                    # an instance that never telegraphs: kept in the block's instances_not_fitted
                    not_fitted.append((int(k), str(exc)))
                    continue
            try:
                if len(nom):
                    rm, det = fit_rates(nom, require_markov=require_markov)
                    rows = nom
                elif per_inst:
                    # no nominal cell simulated: the population mean of the instance coefficients, its
                    # covariance the spread of the instances over their number
                    th = np.array([ratemodel.coefficients(ratemodel.rereference(r, 0.0))[1] for _, r, _ in per_inst])
                    cov = np.cov(th.T) / len(th) if len(th) > 1 else \
                        ratemodel.coefficients(ratemodel.rereference(per_inst[0][1], 0.0))[2]
                    rm = ratemodel.from_theta(0.0, th.mean(0), cov)
                    rows = g
                    det = {"used": np.ones(len(g), bool), "up": None, "down": None}
                else:
                    raise InputError("no usable points")
            except InputError as exc:
                raise InputError(f"{label}: {exc}") from None
            used = det["used"]
            bias_used = rows["bias_v"].to_numpy(float)[used] if len(nom) else g["bias_v"].to_numpy(float)
            bias_range = (float(np.min(bias_used)), float(np.max(bias_used)))
            if not bias_range[0] < bias_range[1]:
                raise InputError(f"{label}: all usable points are at one bias; sweep at least 3 bias values")
            sp = _num(rows[sp_col].median()) if sp_col else None
            mm = None
            if len(per_inst) >= 2:
                mm = mismatch_block([(k, r) for k, r, _ in per_inst], nominal_rate_model=rm,
                                    reference="nominal_cell" if len(nom) else "instance_mean",
                                    not_fitted=not_fitted, n_simulated=len(per_inst) + len(not_fitted))
            gof = {"n_points": int(np.sum(used)), "n_excluded_few_transitions": det.get("n_excluded_few_transitions", 0),
                   "n_excluded_non_markov": det.get("n_excluded_non_markov", 0),
                   "n_renewal_kept": det.get("n_renewal_kept", 0),
                   "ln_k_up": det["up"], "ln_k_down": det["down"]}
            if len(nom):
                gof["p1"], gof["tau"] = _gof_p1_tau(rm, nom, used)
            v50_guess = _instance_sigmoid(rm)[0]
            cond = build_condition(corner=str(corner), temp_c=float(temp_c), vdd_v=float(vdd_v),
                                   bias_range_v=bias_range, rate_model=rm, sample_period_s=sp,
                                   energy=_energy_block(rows, v50_guess), goodness_of_fit=gof, mismatch=mm,
                                   points=_points_table(rows, used if len(nom) else np.ones(len(rows), bool)),
                                   direct_fit=_direct_logistic(rows.iloc[np.flatnonzero(used)] if len(nom) else rows),
                                   h_min_measured=_h_min_measured(rows, v50_guess))
            conditions.append(cond)
        except InputError as exc:
            if dropped is None:
                raise
            # one condition that cannot be fitted (e.g. a cold corner stuck over most of the bias
            # window) must not cost the model of every other condition
            dropped.append(((str(corner), float(temp_c), float(vdd_v)), str(exc).removeprefix(label + ": ")))
    if not conditions:
        raise InputError(f"{what}: no condition could be fitted: "
                         + "; ".join(f"{c[0]}/{c[1]:g} °C/{c[2]:g} V: {why}" for c, why in (dropped or [])))
    if nominal is None:
        first = conditions[0]
        nominal = {"corner": first["corner"], "temp_c": first["temp_c"], "vdd_v": first["vdd_v"]}
    else:
        keys = {(c["corner"], c["temp_c"], c["vdd_v"]) for c in conditions}
        if (nominal["corner"], float(nominal["temp_c"]), float(nominal["vdd_v"])) not in keys:
            first = conditions[0]
            nominal = {"corner": first["corner"], "temp_c": first["temp_c"], "vdd_v": first["vdd_v"]}
    if dropped:
        # provenance (seeds, stream count) of the conditions in the model only
        gone = {c for c, _ in dropped}
        d = d[[(str(a), float(b), float(c)) not in gone for a, b, c in zip(d["corner"], d["temp_c"], d["vdd_v"])]]
    seeds = [int(s) for s in d["seed"].dropna()] if "seed" in d.columns else []
    if name is None:
        name = str(d["cell"].iloc[0]) if "cell" in d.columns else "cell"
    sps = [c["entropy"]["sample_period_s"] for c in conditions if c["entropy"]["sample_period_s"]]
    return build_document(name=name, conditions=conditions, nominal=nominal, bias_param=bias_param,
                          technology=technology, netlist_sha256=netlist_sha256, model_package=model_package,
                          source=source, ngspice_version=ngspice_version, sweep_id=sweep_id, seeds=seeds,
                          n_streams=len(d), sample_period_s=sps[0] if sps else None)


def fit_sweep_dir(sweep_dir, *, exclude_bias: Iterable[float] = (), require_markov: bool = True,
                  regimes: Iterable[str] | None = ("bistable",), notes: list | None = None) -> dict:
    """Fit the sweep stored in ``sweep_dir`` (noisecell.sweep layout), with identity and provenance.

    ``regimes``: only rows whose regime label (the sweep's ``regime`` column) is one of these enter the
    fit, as in ``characterize`` (its fit_regimes, default bistable); None fits every row. The "rates" of a
    single-peaked record are crossings of one noisy level: on pbit_x4's 7 × 24 µs fixed grid the three
    single-peaked tail rows lifted τ(V50) to 99.7 ns, above each of the four bistable points' own τ
    (81–87 ns). Rows without a label (older sweeps, a failed classification) are kept."""
    import hashlib
    from pathlib import Path

    from ..sweep import load as load_sweep
    from ..sweep.store import Store

    root = Path(sweep_dir)
    if not (root / "manifest.json").is_file():
        raise InputError(f"{root}: not a noisecell sweep folder (no manifest.json); pass the --out folder of `noisecell sweep`")
    manifest = Store(root).read_manifest()
    df = load_sweep(root)
    cell = manifest.get("cell", {})
    tech = cell.get("technology", "generic")
    sha = None
    npath = cell.get("netlist_path")
    if npath and Path(npath).is_file():
        sha = hashlib.sha256(Path(npath).read_bytes()).hexdigest()
    pkg = None
    try:
        from ..technology import model_identity

        ident = model_identity(tech)
        if ident.get("package"):
            pkg = {"name": ident["package"], "version": str(ident.get("version") or "unknown")}
    except Exception:  # noqa: BLE001 - identity is best effort; the fit does not depend on it
        pkg = None
    ngspice = None
    for c in ("ngspice_version", "sim_ngspice_version", "ngspice"):
        if c in df.columns and df[c].notna().any():
            ngspice = str(df[c].dropna().iloc[0])
            break
    if ngspice is None:
        # the simulator records its version in each waveform's meta (kept unless keep_waveforms = false)
        import json as _json

        for w in sorted((root / "waves").glob("*.npz"))[:1]:
            try:
                with np.load(w, allow_pickle=False) as z:
                    meta = _json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
                ngspice = meta.get("ngspice") and str(meta["ngspice"])
            except (OSError, ValueError, KeyError, AttributeError, RecursionError):  # best effort, as above
                ngspice = None
    nominal = cell.get("nominal")
    nom = None
    if nominal:
        vdd = cell.get("supplies", {}).get("vdd", {}).get("nominal_v")
        if vdd is not None:
            nom = {"corner": nominal["corner"], "temp_c": nominal["temp_c"], "vdd_v": vdd}
    doc = fit_sweep(df, name=cell.get("name"), bias_param=cell.get("bias", {}).get("param", "VB"),
                    technology=tech, netlist_sha256=sha, model_package=pkg,
                    sweep_id=manifest.get("spec_sha256"), ngspice_version=ngspice, nominal=nom,
                    exclude_bias=exclude_bias, require_markov=require_markov, what=str(root), regimes=regimes)
    return joint_fits_from_store(doc, df, Store(root), exclude_bias=exclude_bias, require_markov=require_markov,
                                 regimes=regimes, notes=notes, what=str(root))


def joint_fits_from_store(doc: dict, df, store, *, exclude_bias: Iterable[float] = (), require_markov: bool = True,
                          regimes: Iterable[str] | None = ("bistable",), notes: list | None = None,
                          what: str = "sweep") -> dict:
    """``doc`` (from :func:`fit_sweep` on ``df``) with each condition's per-point straight lines replaced
    by the joint censored-dwell fit of its nominal-cell records (:func:`with_joint_fit`), read from the
    sweep's stored bit streams (``store``: :class:`noisecell.sweep.store.Store`): the same estimator and
    export (curvature included, schema 2.2) as ``characterize``. The records are the rows ``fit_sweep``
    selects (status ok, ``regimes``, ``exclude_bias``, Markov-consistent or renewal when ``require_markov``:
    :func:`rate_rows`, the per-point fit's own selection).
    A condition whose records cannot be read or jointly fitted keeps its straight lines, and ``notes``
    (when a list) gets one line saying so. Mismatch instances keep their per-instance lines and are
    re-referenced to the new nominal fit."""
    import copy

    from ..design_runner import record_counts
    from .ratefit import fit_rates_joint

    out = copy.deepcopy(doc)
    d = fit_rows(df, regimes=regimes, exclude_bias=exclude_bias, what=what)
    if "mismatch_instance" in d.columns:
        d = d[(d["mismatch_instance"].fillna(-1).astype(int) < 0).to_numpy()]
    d = d[rate_rows(d, require_markov=require_markov)[0]]
    changed = False
    for cond in out["conditions"]:
        label = f"{what}: condition {cond['corner']}/{cond['temp_c']:g} °C/{cond['vdd_v']:g} V"
        g = d[(d["corner"] == cond["corner"]).to_numpy() & np.isclose(d["temp_c"].to_numpy(float), cond["temp_c"])
              & np.isclose(d["vdd_v"].to_numpy(float), cond["vdd_v"], rtol=1e-9, atol=0)]
        if not len(g) or "job_id" not in g.columns:
            no_nominal = ((cond.get("mismatch") or {}).get("distribution") or {}).get("reference") == "instance_mean"
            if notes is not None and not no_nominal:
                notes.append(f"{label}: kept the per-point straight-line fit (no joint fit: "
                             + ("the sweep table has no job ids" if len(g) else
                                "no nominal-cell record passes the rate-row selection") + ")")
            continue
        try:
            points = []
            for row in g.to_dict("records"):
                bits, dt = store.read_bits(str(row["job_id"]))
                dt = dt if dt is not None and math.isfinite(dt) else _num(row.get("sample_period_s"))
                if dt is None or bits.size < 2:
                    raise InputError(f"job {row['job_id']} has no usable bit stream")
                n_eff = _num(row.get("n_eff"))
                points.append(record_counts(bits, float(dt), float(row["bias_v"]), n_eff=n_eff,
                                            source=f"{what}/{row['job_id']}"))
            fit = fit_rates_joint(points)
        except (InputError, ValueError, np.linalg.LinAlgError) as exc:
            if notes is not None:
                notes.append(f"{label}: kept the per-point straight-line fit (no joint fit: {exc})")
            continue
        new = rereference_mismatch(with_joint_fit(cond, fit, fit.bias_range_v))
        cond.clear()
        cond.update(new)
        changed = True
    if changed:
        out["bias"]["range_v"] = [float(min(c["bias_range_v"][0] for c in out["conditions"])),
                                  float(max(c["bias_range_v"][1] for c in out["conditions"]))]
        validate_document(out)
    return out
