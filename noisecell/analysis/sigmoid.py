"""Fits across conditions: P(1) vs bias (the p-bit sigmoid) and ln k vs bias (the rate model).

Sigmoid forms, with x = (V - V50)/scale and optional free saturation levels p_low < p_high:

* ``logistic``: P = p_low + (p_high - p_low) / (1 + exp(-x))
* ``probit``:   P = p_low + (p_high - p_low) · Φ(x)
* ``tanh``:     P = p_low + (p_high - p_low) · (1 + tanh x)/2   (the p-bit convention; = logistic(2x))

Likelihood: each condition's P(1) estimate counts as a binomial proportion observed with its
*effective* sample size n_eff (from the autocorrelation of that stream), i.e. the binomial GLM with
``var_weights = n_eff``. Without saturations this is exactly statsmodels' binomial GLM (logit /
probit link), used for the starting point; the final fit (all forms, same likelihood, so AICs are
comparable) is a statsmodels ``GenericLikelihoodModel`` in the natural parameters, so V50 and scale
get their CIs straight from the Hessian. When the Pearson χ²/dof (the dispersion) exceeds 1 the
covariance is multiplied by it (quasi-likelihood): misfit or underestimated n_eff widens the CIs
instead of being ignored.

Rate model (Kramers-like): ln k_up = a_u + b_u·V, ln k_down = a_d + b_d·V, each by weighted least
squares with weights = number of transitions observed (var(ln k̂) ≈ 1/N for a Poisson count). It
implies P(1) = k_up/(k_up + k_down) = logistic((V - V50)/s) with V50 = (a_d - a_u)/(b_u - b_d),
s = 1/(b_u - b_d), and τ(V) = 1/(k_up + k_down). :func:`compare_routes` checks that the implied V50
and scale agree with the direct logistic fit (|z| < 3 on the combined standard errors).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from ..errors import InputError

FORMS = ("logistic", "probit", "tanh")
Z95 = float(stats.norm.ppf(0.975))
AGREE_Z = 3.0


def _cdf(form: str, x):
    if form == "logistic":
        return special.expit(x)
    if form == "probit":
        return special.ndtr(x)
    if form == "tanh":
        return special.expit(2.0 * x)
    raise InputError(f"unknown sigmoid form {form!r}; choose one of {', '.join(FORMS)}")


def _column(data, name, required=True):
    if data is None:
        return None
    if hasattr(data, "columns"):
        if name in data.columns:
            return np.asarray(data[name], dtype=float)
    elif isinstance(data, dict) and name in data:
        return np.asarray(data[name], dtype=float)
    if required:
        raise InputError(f"sigmoid fit: input table has no column {name!r} (needs bias_v, p1, n_eff)")
    return None


def _inputs(data, bias_v, p1, n_eff):
    v = np.asarray(bias_v, float) if bias_v is not None else _column(data, "bias_v")
    p = np.asarray(p1, float) if p1 is not None else _column(data, "p1")
    w = np.asarray(n_eff, float) if n_eff is not None else _column(data, "n_eff")
    if not (v.shape == p.shape == w.shape and v.ndim == 1):
        raise InputError(f"sigmoid fit: bias_v, p1, n_eff must be 1-D of equal length (got {v.shape}, {p.shape}, {w.shape})")
    ok = np.isfinite(v) & np.isfinite(p) & np.isfinite(w)
    if not np.all((p[ok] >= 0) & (p[ok] <= 1)):
        raise InputError("sigmoid fit: p1 values must lie in [0, 1]")
    if not np.all(w[ok] > 0):
        raise InputError("sigmoid fit: n_eff must be positive")
    v, p, w = v[ok], p[ok], w[ok]
    if np.unique(v).size < 3:
        raise InputError(f"sigmoid fit: need at least 3 distinct bias values with finite p1/n_eff, got {np.unique(v).size}")
    return v, p, w


@dataclass(frozen=True)
class SigmoidFit:
    """A fitted P(1)-vs-bias curve. Voltages in V.

    form, free_saturation: the model. v50_v: P at midpoint between the saturations; scale_v: the x
    unit of the form (logistic/probit/tanh differ by constant factors: compare slope_per_v instead);
    slope_per_v: dP/dV at V50 (1/V); p_low/p_high: saturation levels (0/1 when not free);
    *_ci95: 95 % CIs (Hessian, scaled by the dispersion when > 1). aic, loglik, n_params, n_points;
    dispersion: Pearson χ²/dof; residuals: Pearson residuals per point; converged.
    """

    form: str
    free_saturation: bool
    v50_v: float
    v50_ci95: tuple[float, float]
    scale_v: float
    scale_ci95: tuple[float, float]
    slope_per_v: float
    p_low: float
    p_low_ci95: tuple[float, float] | None
    p_high: float
    p_high_ci95: tuple[float, float] | None
    aic: float
    loglik: float
    n_params: int
    n_points: int
    dispersion: float
    residuals: np.ndarray = field(repr=False)
    bias_v: np.ndarray = field(repr=False)
    converged: bool = True
    v50_se: float = float("nan")
    scale_se: float = float("nan")

    def predict(self, bias_v) -> np.ndarray:
        """P(1) at bias_v (V)."""
        x = (np.asarray(bias_v, float) - self.v50_v) / self.scale_v
        return self.p_low + (self.p_high - self.p_low) * _cdf(self.form, x)

    def to_dict(self) -> dict:
        def pair(c):
            return None if c is None else [float(c[0]), float(c[1])]

        return {"form": self.form, "free_saturation": self.free_saturation, "v50_v": self.v50_v,
                "v50_ci95": pair(self.v50_ci95), "scale_v": self.scale_v, "scale_ci95": pair(self.scale_ci95),
                "slope_per_v": self.slope_per_v, "p_low": self.p_low, "p_low_ci95": pair(self.p_low_ci95),
                "p_high": self.p_high, "p_high_ci95": pair(self.p_high_ci95), "aic": self.aic,
                "loglik": self.loglik, "n_params": self.n_params, "n_points": self.n_points,
                "dispersion": self.dispersion, "converged": self.converged,
                "residuals": [float(r) for r in self.residuals], "bias_v": [float(b) for b in self.bias_v]}

    def summary(self) -> str:
        lines = [f"Sigmoid fit: {self.form}{' with free saturations' if self.free_saturation else ''}"
                 f"  ({self.n_points} points, {self.n_params} parameters{'' if self.converged else ', NOT CONVERGED'})",
                 f"  {'parameter':<12}{'value':>14}{'95% CI':>32}",
                 f"  {'V50 [V]':<12}{self.v50_v:>14.6g}   [{self.v50_ci95[0]:.6g}, {self.v50_ci95[1]:.6g}]",
                 f"  {'scale [V]':<12}{self.scale_v:>14.6g}   [{self.scale_ci95[0]:.6g}, {self.scale_ci95[1]:.6g}]"]
        if self.free_saturation:
            lines.append(f"  {'p_low':<12}{self.p_low:>14.6g}   [{self.p_low_ci95[0]:.6g}, {self.p_low_ci95[1]:.6g}]")
            lines.append(f"  {'p_high':<12}{self.p_high:>14.6g}   [{self.p_high_ci95[0]:.6g}, {self.p_high_ci95[1]:.6g}]")
        lines.append(f"  slope dP/dV at V50: {self.slope_per_v:.6g} /V")
        lines.append(f"  log-likelihood {self.loglik:.6g}, AIC {self.aic:.6g}, dispersion (Pearson chi2/dof) {self.dispersion:.4g}")
        worst = int(np.argmax(np.abs(self.residuals))) if self.residuals.size else 0
        if self.residuals.size:
            lines.append(f"  largest Pearson residual {self.residuals[worst]:+.3g} at bias {self.bias_v[worst]:.6g} V")
        return "\n".join(lines)


def _loglik_obs(P, p, w):
    P = np.clip(P, 1e-300, 1 - 1e-16)
    k = p * w
    # binomial log-likelihood with (possibly non-integer) n_eff trials; the coefficient is a constant
    # of the data, kept so the value is a proper log-likelihood
    const = special.gammaln(w + 1) - special.gammaln(k + 1) - special.gammaln(w - k + 1)
    return const + k * np.log(P) + (w - k) * np.log1p(-P)


def _unpack(theta, free):
    v50, scale = theta[0], theta[1]
    if free:
        lo = 0.5 * special.expit(theta[2])
        hi = 0.5 + 0.5 * special.expit(theta[3])
    else:
        lo, hi = 0.0, 1.0
    return v50, scale, lo, hi


def _start(form, v, p, w):
    import statsmodels.api as sm

    link = sm.families.links.Probit() if form == "probit" else sm.families.links.Logit()
    X = sm.add_constant(v, has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = sm.GLM(p, X, family=sm.families.Binomial(link=link), var_weights=w).fit()
        b0, b1 = r.params
        if b1 == 0 or not np.isfinite(b1):
            raise ValueError
        v50, scale = -b0 / b1, 1.0 / b1
    except Exception:
        v50 = float(np.interp(0.5, *((p, v) if p[-1] >= p[0] else (p[::-1], v[::-1]))))
        scale = (v.max() - v.min()) / 8 * (1 if p[np.argmax(v)] >= p[np.argmin(v)] else -1)
    if form == "tanh":
        scale *= 2.0
    return float(v50), float(scale)


def fit_sigmoid(data=None, *, bias_v=None, p1=None, n_eff=None, form: str = "logistic",
                free_saturation: bool = False) -> SigmoidFit:
    """Fit P(1) vs bias. ``data``: a pandas DataFrame (or dict) with columns bias_v (V), p1, n_eff;
    or pass the arrays. See the module docstring for the forms and the likelihood."""
    from statsmodels.base.model import GenericLikelihoodModel

    if form not in FORMS:
        raise InputError(f"unknown sigmoid form {form!r}; choose one of {', '.join(FORMS)}")
    v, p, w = _inputs(data, bias_v, p1, n_eff)
    # Work in standardised bias u = (V - c)/d so that all parameters are O(1) for the optimiser and
    # the numerical Hessian; the map back to volts is linear, so the CIs map exactly.
    c, d = float(v.mean()), float(v.std())
    u = (v - c) / d
    v50_0, s0 = _start(form, u, p, w)
    free = bool(free_saturation)

    class _Model(GenericLikelihoodModel):
        def loglikeobs(self, theta):
            v50, scale, lo, hi = _unpack(theta, free)
            if scale == 0:
                return np.full(u.size, -1e300)
            P = lo + (hi - lo) * _cdf(form, (u - v50) / scale)
            return _loglik_obs(P, p, w)

    names = ["v50", "scale"] + (["logit_2p_low", "logit_2p_high_m1"] if free else [])
    start = [v50_0, s0] + ([special.logit(max(min(2 * p.min(), 0.9), 1e-3)) - 1.0,
                            special.logit(max(min(2 * p.max() - 1, 1 - 1e-3), 0.1)) + 1.0] if free else [])
    model = _Model(p, None, extra_params_names=names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(start_params=np.array(start, float), method="bfgs", maxiter=500, disp=0)
        if not res.mle_retvals.get("converged", False):
            res = model.fit(start_params=res.params, method="nm", maxiter=5000, disp=0)
            res = model.fit(start_params=res.params, method="bfgs", maxiter=500, disp=0)
    theta = np.asarray(res.params, float)
    converged = bool(res.mle_retvals.get("converged", False))
    v50u, scaleu, lo, hi = _unpack(theta, free)
    P = lo + (hi - lo) * _cdf(form, (u - v50u) / scaleu)
    var = np.clip(P * (1 - P), 1e-300, None) / w
    resid = (p - P) / np.sqrt(var)
    dof = v.size - len(names)
    disp = float((resid ** 2).sum() / dof) if dof > 0 else float("nan")
    k = len(names)
    cov = np.full((k, k), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            H = model.hessian(theta)
            cov = np.linalg.inv(-H)
            if np.any(~np.isfinite(np.diag(cov))) or np.any(np.diag(cov) <= 0):
                raise np.linalg.LinAlgError
        except (np.linalg.LinAlgError, ValueError):
            # saturations at the boundary (0 or 1) make the full Hessian singular: give V50 and
            # scale their CIs conditional on the fitted saturations
            cov = np.full((k, k), np.nan)
            try:
                sub = np.linalg.inv(-H[:2, :2])
                if np.all(np.diag(sub) > 0):
                    cov[:2, :2] = sub
            except (np.linalg.LinAlgError, ValueError, UnboundLocalError):
                converged = False
    if np.isfinite(disp):
        cov = cov * max(disp, 1.0)
    se = np.sqrt(np.diag(cov))
    # back to volts
    theta_v = theta.copy()
    theta_v[0] = c + d * theta[0]
    theta_v[1] = d * theta[1]
    se_v = se.copy()
    se_v[0] = d * se[0]
    se_v[1] = d * se[1]
    v50, scale = float(theta_v[0]), float(theta_v[1])

    def ci(i, th=theta_v, sd=se_v):
        return (float(th[i] - Z95 * sd[i]), float(th[i] + Z95 * sd[i]))

    lo_ci = hi_ci = None
    if free:
        a, b = ci(2)
        lo_ci = (float(0.5 * special.expit(a)), float(0.5 * special.expit(b)))
        a, b = ci(3)
        hi_ci = (float(0.5 + 0.5 * special.expit(a)), float(0.5 + 0.5 * special.expit(b)))
    se = se_v
    dens = {"logistic": 0.25, "probit": 1 / math.sqrt(2 * math.pi), "tanh": 0.5}[form]
    ll = float(res.llf)
    return SigmoidFit(form=form, free_saturation=free, v50_v=float(v50), v50_ci95=ci(0), scale_v=float(scale),
                      scale_ci95=ci(1), slope_per_v=float((hi - lo) * dens / scale), p_low=float(lo),
                      p_low_ci95=lo_ci, p_high=float(hi), p_high_ci95=hi_ci, aic=float(2 * k - 2 * ll), loglik=ll,
                      n_params=k, n_points=int(v.size), dispersion=disp, residuals=resid, bias_v=v,
                      converged=converged, v50_se=float(se[0]), scale_se=float(se[1]))


@dataclass(frozen=True)
class SigmoidComparison:
    """All requested forms fitted to the same data; ``best`` has the lowest AIC."""

    fits: tuple[SigmoidFit, ...]

    @property
    def best(self) -> SigmoidFit:
        return min(self.fits, key=lambda f: f.aic if np.isfinite(f.aic) else np.inf)

    def to_dict(self) -> dict:
        b = self.best
        return {"best": f"{b.form}{'+sat' if b.free_saturation else ''}", "fits": [f.to_dict() for f in self.fits]}

    def summary(self) -> str:
        b = self.best
        rows = [f"{'model':<22}{'AIC':>12}{'dAIC':>9}{'V50 [V]':>14}{'slope [1/V]':>14}{'dispersion':>12}"]
        for f in sorted(self.fits, key=lambda f: f.aic):
            name = f.form + (" +sat" if f.free_saturation else "")
            rows.append(f"{name:<22}{f.aic:>12.6g}{f.aic - b.aic:>9.3g}{f.v50_v:>14.6g}{f.slope_per_v:>14.6g}{f.dispersion:>12.4g}")
        return "Sigmoid model comparison (lowest AIC first)\n  " + "\n  ".join(rows)


def fit_sigmoids(data=None, *, bias_v=None, p1=None, n_eff=None, forms=FORMS,
                 free_saturation=(False, True)) -> SigmoidComparison:
    """Fit every form (with and/or without free saturations) and compare by AIC."""
    fits = []
    for form in forms:
        for free in free_saturation:
            fits.append(fit_sigmoid(data, bias_v=bias_v, p1=p1, n_eff=n_eff, form=form, free_saturation=free))
    return SigmoidComparison(tuple(fits))


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope·V by weighted least squares, with 95 % CIs and covariance."""

    intercept: float
    slope: float
    intercept_ci95: tuple[float, float]
    slope_ci95: tuple[float, float]
    cov: np.ndarray = field(repr=False)
    dispersion: float = 1.0
    n_points: int = 0

    def to_dict(self) -> dict:
        return {"intercept": self.intercept, "slope": self.slope, "intercept_ci95": list(self.intercept_ci95),
                "slope_ci95": list(self.slope_ci95), "dispersion": self.dispersion, "n_points": self.n_points}


def _wls(v, y, w) -> LinearFit:
    import statsmodels.api as sm

    X = sm.add_constant(v, has_constant="add")
    r = sm.WLS(y, X, weights=w).fit()
    # weights are inverse variances known up to model error: keep the estimated scale only if > 1
    scale = float(r.scale) if v.size > 2 else 1.0
    cov = np.asarray(r.cov_params()) / (r.scale if r.scale > 0 else 1.0) * max(scale, 1.0)
    se = np.sqrt(np.diag(cov))
    b = np.asarray(r.params)
    return LinearFit(float(b[0]), float(b[1]), (float(b[0] - Z95 * se[0]), float(b[0] + Z95 * se[0])),
                     (float(b[1] - Z95 * se[1]), float(b[1] + Z95 * se[1])), cov, scale, int(v.size))


@dataclass(frozen=True)
class RateModelFit:
    """ln k_up and ln k_down linear in bias (k in Hz, or per sample when unit == "per_sample").

    v50_v / scale_v: the logistic P(1) the rates imply (with standard errors); predict_* give
    k_up, k_down, P(1) and τ = 1/(k_up + k_down) at any bias.
    """

    up: LinearFit
    down: LinearFit
    unit: str
    v50_v: float
    v50_se: float
    scale_v: float
    scale_se: float
    bias_v: np.ndarray = field(repr=False)

    def predict_rates(self, bias_v):
        v = np.asarray(bias_v, float)
        return np.exp(self.up.intercept + self.up.slope * v), np.exp(self.down.intercept + self.down.slope * v)

    def predict_p1(self, bias_v):
        ku, kd = self.predict_rates(bias_v)
        return ku / (ku + kd)

    def predict_tau(self, bias_v):
        ku, kd = self.predict_rates(bias_v)
        return 1.0 / (ku + kd)

    def to_dict(self) -> dict:
        return {"unit": self.unit, "ln_k_up": self.up.to_dict(), "ln_k_down": self.down.to_dict(),
                "implied_v50_v": self.v50_v, "implied_v50_se": self.v50_se,
                "implied_scale_v": self.scale_v, "implied_scale_se": self.scale_se}

    def summary(self) -> str:
        u = "Hz" if self.unit == "hz" else "1/sample"
        return "\n".join([
            f"Rate model: ln k = a + b·V  (k in {u}, {self.up.n_points} points)",
            f"  ln k_up:   a {self.up.intercept:.6g} [{self.up.intercept_ci95[0]:.6g}, {self.up.intercept_ci95[1]:.6g}],"
            f" b {self.up.slope:.6g} /V [{self.up.slope_ci95[0]:.6g}, {self.up.slope_ci95[1]:.6g}]  (dispersion {self.up.dispersion:.3g})",
            f"  ln k_down: a {self.down.intercept:.6g} [{self.down.intercept_ci95[0]:.6g}, {self.down.intercept_ci95[1]:.6g}],"
            f" b {self.down.slope:.6g} /V [{self.down.slope_ci95[0]:.6g}, {self.down.slope_ci95[1]:.6g}]  (dispersion {self.down.dispersion:.3g})",
            f"  implied sigmoid: V50 {self.v50_v:.6g} ± {self.v50_se:.3g} V, logistic scale {self.scale_v:.6g} ± {self.scale_se:.3g} V",
        ])


def _ci_pairs(data, key):
    """(n, 2) array of [lo, hi] from a column of pairs (``key``) or flat ``key_lo``/``key_hi`` columns."""
    if data is None:
        return None
    cols = data.columns if hasattr(data, "columns") else (data.keys() if isinstance(data, dict) else ())
    if key in cols:
        return np.array([x if x is not None and len(x) == 2 else [np.nan, np.nan] for x in data[key]], float)
    if f"{key}_lo" in cols and f"{key}_hi" in cols:
        return np.column_stack([np.asarray(data[f"{key}_lo"], float), np.asarray(data[f"{key}_hi"], float)])
    return None


def _weights(data, name, counts, ci):
    if counts is not None:
        return np.asarray(counts, float)
    c = _column(data, f"n_{name}", required=False)
    if c is not None:
        return c
    lo_hi = _ci_pairs(data, f"rate_{name}_hz_ci95")
    if lo_hi is not None:
        se = np.log(lo_hi[:, 1] / lo_hi[:, 0]) / (2 * Z95)
        return 1.0 / se ** 2
    raise InputError(f"rate model: need the number of {name} transitions per condition (column n_{name}) "
                     f"or rate_{name}_hz_ci95 to weight the fit")


def fit_rate_model(data=None, *, bias_v=None, rate_up=None, rate_down=None, n_up=None, n_down=None) -> RateModelFit:
    """Fit ln k_up and ln k_down vs bias. ``data``: DataFrame/dict with bias_v, rate_up_hz, rate_down_hz
    (or rate_up, rate_down per sample) and n_up, n_down (transition counts, the weights)."""
    v = np.asarray(bias_v, float) if bias_v is not None else _column(data, "bias_v")
    unit = "hz"
    if rate_up is None:
        ku = _column(data, "rate_up_hz", required=False)
        kd = _column(data, "rate_down_hz", required=False)
        if ku is None or kd is None or not np.any(np.isfinite(ku)):
            ku, kd, unit = _column(data, "rate_up"), _column(data, "rate_down"), "per_sample"
    else:
        ku, kd = np.asarray(rate_up, float), np.asarray(rate_down, float)
    wu = _weights(data, "up", n_up, None)
    wd = _weights(data, "down", n_down, None)
    ok = np.isfinite(v) & np.isfinite(ku) & np.isfinite(kd) & (ku > 0) & (kd > 0) & (wu > 0) & (wd > 0)
    if ok.sum() < 3:
        raise InputError(f"rate model: need at least 3 conditions with resolved rates, got {int(ok.sum())}")
    v, ku, kd, wu, wd = v[ok], ku[ok], kd[ok], wu[ok], wd[ok]
    up = _wls(v, np.log(ku), wu)
    dn = _wls(v, np.log(kd), wd)
    db = up.slope - dn.slope
    v50 = (dn.intercept - up.intercept) / db
    scale = 1.0 / db
    # delta method; the two fits are independent
    g_up = np.array([-1.0 / db, -v50 / db])         # d v50 / d(a_u, b_u)
    g_dn = np.array([1.0 / db, v50 / db])           # d v50 / d(a_d, b_d)
    v50_se = math.sqrt(g_up @ up.cov @ g_up + g_dn @ dn.cov @ g_dn)
    scale_se = math.sqrt(up.cov[1, 1] + dn.cov[1, 1]) / db ** 2
    return RateModelFit(up, dn, unit, float(v50), float(v50_se), float(scale), float(scale_se), v)


@dataclass(frozen=True)
class RouteComparison:
    """Direct logistic fit of P(1) vs the sigmoid implied by the rate model.

    z_v50, z_scale: differences over combined standard errors.
    tau_log_rms: RMS of ln(τ_measured/τ_predicted) when measured τ was given (else None).
    tau_chi2, tau_dof, tau_p_value: χ² of ln(τ_measured/τ_predicted) over the measured τ's standard
    errors (from its CI), when given. agree: |z_v50| < 3, |z_scale| < 3 and (if available) the τ
    check's p-value ≥ 1e-3.
    """

    direct: SigmoidFit
    rates: RateModelFit
    z_v50: float
    z_scale: float
    agree: bool
    tau_log_rms: float | None
    tau_chi2: float | None = None
    tau_dof: int | None = None
    tau_p_value: float | None = None

    def to_dict(self) -> dict:
        return {"direct": self.direct.to_dict(), "rate_model": self.rates.to_dict(), "z_v50": self.z_v50,
                "z_scale": self.z_scale, "agree": self.agree, "tau_log_rms": self.tau_log_rms,
                "tau_chi2": self.tau_chi2, "tau_dof": self.tau_dof, "tau_p_value": self.tau_p_value}

    def summary(self) -> str:
        s = [self.direct.summary(), self.rates.summary(),
             f"Routes: V50 direct {self.direct.v50_v:.6g} vs rates {self.rates.v50_v:.6g} (z = {self.z_v50:+.2f}); "
             f"scale direct {self.direct.scale_v:.6g} vs rates {self.rates.scale_v:.6g} (z = {self.z_scale:+.2f}) -> "
             + ("AGREE" if self.agree else "DISAGREE (the rate model does not explain the sigmoid)")]
        if self.tau_log_rms is not None:
            s.append(f"  tau(bias) predicted by the rates: rms log-ratio to measured {self.tau_log_rms:.3g}"
                     + (f", chi2 {self.tau_chi2:.3g} / {self.tau_dof} dof, p = {self.tau_p_value:.3g}"
                        if self.tau_chi2 is not None else ""))
        return "\n".join(s)


def compare_routes(data=None, **kwargs) -> RouteComparison:
    """Fit the direct logistic (no saturations) and the rate model to the same table and compare.
    A column tau_s (or tau_samples with per-sample rates) adds the τ(bias) check."""
    direct = fit_sigmoid(data, form="logistic", free_saturation=False,
                         **{k: kwargs[k] for k in ("bias_v", "p1", "n_eff") if k in kwargs})
    rates = fit_rate_model(data, **{k: kwargs[k] for k in ("bias_v", "rate_up", "rate_down", "n_up", "n_down") if k in kwargs})
    z_v = (direct.v50_v - rates.v50_v) / math.hypot(direct.v50_se, rates.v50_se)
    z_s = (direct.scale_v - rates.scale_v) / math.hypot(direct.scale_se, rates.scale_se)
    tau_col = "tau_s" if rates.unit == "hz" else "tau_samples"
    tau = _column(data, tau_col, required=False) if data is not None else None
    rms = chi2 = dof = pval = None
    if tau is not None:
        v = _column(data, "bias_v")
        ok = np.isfinite(tau) & (tau > 0)
        if ok.any():
            lr = np.log(tau / rates.predict_tau(v))
            rms = float(np.sqrt(np.mean(lr[ok] ** 2)))
            ci = _ci_pairs(data, f"{tau_col}_ci95")
            if ci is not None:
                se = np.log(ci[:, 1] / ci[:, 0]) / (2 * Z95)
                good = ok & np.isfinite(se) & (se > 0)
                if good.sum() >= 1:
                    chi2 = float(np.sum((lr[good] / se[good]) ** 2))
                    dof = int(good.sum())
                    pval = float(stats.chi2.sf(chi2, dof))
    agree = bool(abs(z_v) < AGREE_Z and abs(z_s) < AGREE_Z and (pval is None or pval >= 1e-3))
    return RouteComparison(direct, rates, float(z_v), float(z_s), agree, rms, chi2, dof, pval)
