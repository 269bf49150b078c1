"""Fits across conditions: P(1) vs bias (the p-bit sigmoid).

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

The rates' route (ln k vs bias, the joint censored-dwell fit with its implied V50 and scale) is
:mod:`noisecell.model.ratefit`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ..errors import InputError
from ..constants import Z95

FORMS = ("logistic", "probit", "tanh")


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
