"""Per-cell mismatch: the instances a sampler draws, and the joint distribution estimated from Monte Carlo
instances (the model, the sampler and the thrml integration all use them).

A mismatched cell ``i`` differs from the nominal cell by three numbers (model schema v2):

* ``offset_v`` = V50_i − V50_nominal (V): its sigmoid is centred at ``v50 + offset``;
* ``gain`` = scale_i / scale_nominal (1): its sigmoid is ``gain`` times as wide;
* ``tau_ratio`` = τ_i(V50_i) / τ_nominal(V50_nominal) (1): it flips ``1/tau_ratio`` times as fast.

Cell ``i`` sees the effective bias ``V_eff = v50 + (V − v50 − offset) / gain`` and its two rates are the
nominal rates at ``V_eff`` divided by ``tau_ratio`` (P(1) unchanged, τ scaled).

The joint distribution of ``x = (offset_v, ln gain, ln tau_ratio)`` is a trivariate normal. Estimated from
n instances, each measured with its own estimation covariance ``S_i`` (from its rate fit):

* mean: the instance average; 95 % CI from Student's t with n−1 dof on the observed spread (which
  already contains the estimation noise), plus the reference's own variance (the nominal cell's V50
  and τ are estimates too, common to every instance: they move the mean, not the spread);
* covariance: the observed covariance minus the mean ``S_i`` (de-noised), projected onto the positive
  semi-definite cone in coordinates standardised by the observed SDs (a variable whose de-noised
  variance is ≤ 0 is unresolved: variance and covariances 0); 95 % CIs: for a variance the chi-square interval of the observed variance
  (n−1 dof) minus the mean estimation variance (floored at 0); for a covariance the normal
  approximation with Var(s_jk) = (s_jk² + s_jj s_kk)/(n−1) (Wishart second moments).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..constants import Z95

VARIABLES = ("offset_v", "ln_gain", "ln_tau_ratio")


@dataclass(frozen=True)
class CellInstances:
    """Per-cell mismatch draws: ``dv50_v`` (V) offsets of V50, ``gain`` = scale_i / scale (1) and
    ``tau_ratio`` = τ_i(V50_i) / τ(V50) (1; None = all ones, the schema-v1 model)."""

    dv50_v: np.ndarray
    gain: np.ndarray
    tau_ratio: np.ndarray | None = None

    def __post_init__(self):
        if self.tau_ratio is None:
            object.__setattr__(self, "tau_ratio", np.ones(len(self.dv50_v)))

    @classmethod
    def nominal(cls, n: int) -> "CellInstances":
        return cls(np.zeros(n), np.ones(n), np.ones(n))

    def __len__(self) -> int:
        return len(self.dv50_v)

    def subset(self, index) -> "CellInstances":
        return CellInstances(self.dv50_v[index], self.gain[index], self.tau_ratio[index])


def psd_sqrt(cov) -> np.ndarray:
    """A matrix L with L Lᵀ = cov for a symmetric positive semi-definite ``cov`` (eigen-decomposition:
    works for singular matrices, e.g. a spread that de-noised to zero)."""
    c = 0.5 * (np.asarray(cov, float) + np.asarray(cov, float).T)
    w, v = np.linalg.eigh(c)
    return v * np.sqrt(np.clip(w, 0.0, None))


def draw_normal(mean, cov, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) draws of N(mean, cov); consumes exactly n·d standard normals (reproducible)."""
    m = np.asarray(mean, float)
    z = rng.standard_normal((int(n), len(m)))
    return m + z @ psd_sqrt(cov).T


@dataclass(frozen=True)
class MismatchDistribution:
    """The joint distribution estimate (see the module docstring); arrays over :data:`VARIABLES`."""

    n: int
    mean: np.ndarray
    mean_ci95: np.ndarray            # (3, 2)
    covariance: np.ndarray           # (3, 3) de-noised, PSD
    covariance_ci95: np.ndarray      # (3, 3, 2)
    observed_covariance: np.ndarray  # (3, 3)
    mean_estimation_covariance: np.ndarray  # (3, 3)
    reference: str = "nominal_cell"

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0, None))

    @property
    def sd_ci95(self) -> np.ndarray:
        d = np.arange(3)
        return np.sqrt(np.clip(self.covariance_ci95[d, d], 0, None))

    @property
    def correlation(self) -> np.ndarray:
        sd = self.sd
        with np.errstate(invalid="ignore", divide="ignore"):
            r = self.covariance / np.outer(sd, sd)
        r = np.where(np.outer(sd, sd) > 0, r, 0.0)
        np.fill_diagonal(r, 1.0)
        return np.clip(r, -1.0, 1.0)

    def to_dict(self) -> dict:
        def m(a):
            return [[float(x) for x in row] for row in np.asarray(a)]

        return {"variables": list(VARIABLES), "n_instances": int(self.n), "reference": self.reference,
                "mean": [float(x) for x in self.mean], "mean_ci95": m(self.mean_ci95),
                "covariance": m(self.covariance),
                "covariance_ci95": [[[float(a), float(b)] for a, b in row] for row in self.covariance_ci95],
                "sd": [float(x) for x in self.sd], "sd_ci95": m(self.sd_ci95), "correlation": m(self.correlation),
                "observed_covariance": m(self.observed_covariance),
                "mean_estimation_covariance": m(self.mean_estimation_covariance),
                "method": "instance mean with Student-t CI (+ reference variance); covariance = observed - mean "
                          "estimation covariance, PSD-projected; variance CIs chi-square (n-1 dof), covariance CIs "
                          "normal with Wishart variance"}


def spread_interval(dist: dict, j: int) -> tuple[float, float, float, bool]:
    """(sd, lo, hi, resolved) of variable ``j`` of a mismatch distribution dict (``to_dict``): the
    de-noised spread and its 95 % CI (offset: V; ln gain / ln τ ratio: natural-log units). When the
    CI's lower end is 0 the spread is not resolved above the instances' estimation noise and only
    the upper end means anything (resolved False). When even that end is 0 (the instances' own fits
    are noisier than their scatter) the bound is the upper end of the observed spread, noise
    included (chi-square, n−1 dof): the true spread cannot exceed it; nan when n < 2."""
    sd = float(dist["sd"][j])
    lo, hi = (float(x) for x in dist["sd_ci95"][j])
    if lo > 0:
        return sd, lo, hi, True
    if hi > 0:
        return sd, 0.0, hi, False
    obs = dist.get("observed_covariance")
    n = int(dist.get("n_instances") or 0)
    if obs is None or n < 2:
        return sd, 0.0, float("nan"), False
    from scipy import stats

    ub = math.sqrt(max(float(obs[j][j]), 0.0) * (n - 1) / stats.chi2.ppf(0.025, n - 1))
    return sd, 0.0, ub, False


def estimate_distribution(x, est_cov=None, *, reference_cov=None, reference: str = "nominal_cell"
                          ) -> MismatchDistribution:
    """Joint distribution of per-instance ``x`` (n, 3) measured with estimation covariances ``est_cov``
    (n, 3, 3; None = exact); ``reference_cov`` (3, 3): covariance of the reference the instances were
    measured against (added to the mean's variance only). See the module docstring."""
    x = np.asarray(x, float)
    n, d = x.shape
    if n < 2:
        raise ValueError("a mismatch distribution needs at least 2 instances")
    s_est = np.zeros((d, d)) if est_cov is None else np.mean(np.asarray(est_cov, float), axis=0)
    s_ref = np.zeros((d, d)) if reference_cov is None else np.asarray(reference_cov, float)
    mean = x.mean(axis=0)
    obs = np.cov(x.T, ddof=1).reshape(d, d)
    dof = n - 1
    t = float(stats.t.ppf(0.975, dof))
    se_mean = np.sqrt(np.clip(np.diag(obs) / n + np.diag(s_ref), 0, None))
    mean_ci = np.stack([mean - t * se_mean, mean + t * se_mean], axis=1)
    raw = obs - s_est
    cov = _psd_projection(raw, obs)
    ci = np.empty((d, d, 2))
    c_lo, c_hi = dof / stats.chi2.ppf(0.975, dof), dof / stats.chi2.ppf(0.025, dof)
    for j in range(d):
        for k in range(d):
            if j == k:
                ci[j, k] = [max(0.0, obs[j, j] * c_lo - s_est[j, j]), max(0.0, obs[j, j] * c_hi - s_est[j, j])]
            else:
                se = math.sqrt(max((obs[j, k] ** 2 + obs[j, j] * obs[k, k]) / dof, 0.0))
                ci[j, k] = [raw[j, k] - Z95 * se, raw[j, k] + Z95 * se]
    return MismatchDistribution(n=n, mean=mean, mean_ci95=mean_ci, covariance=cov, covariance_ci95=ci,
                                observed_covariance=obs, mean_estimation_covariance=s_est, reference=reference)


def _psd_projection(raw: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Nearest PSD matrix to the de-noised ``raw`` in standardised coordinates (scaled by the observed
    SDs, so volts and logs weigh alike); a variable whose de-noised variance is ≤ 0 (its spread is not
    resolved above the estimation noise) gets variance and covariances 0 first, so its noise does not
    leak into the others' variances."""
    raw = 0.5 * (raw + raw.T)
    keep = np.diag(raw) > 0
    r = np.where(np.outer(keep, keep), raw, 0.0)
    d = np.sqrt(np.clip(np.diag(obs), 0, None))
    d = np.where(d > 0, d, 1.0)
    z = r / np.outer(d, d)
    w, v = np.linalg.eigh(z)
    z = (v * np.clip(w, 0, None)) @ v.T
    out = z * np.outer(d, d)
    return 0.5 * (out + out.T)


def distribution_from_dict(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of a stored ``mismatch.distribution`` block."""
    return np.asarray(d["mean"], float), np.asarray(d["covariance"], float)


def instance_parameters(rate_model: dict) -> tuple[np.ndarray, np.ndarray]:
    """(V50, ln|scale|, ln τ(V50)) of a loglinear rate-model block and their 3×3 delta-method covariance
    from the block's coefficient covariance (curvature included: :func:`noisecell.model.ratemodel.crossing`)."""
    from .ratemodel import crossing

    return crossing(rate_model)
