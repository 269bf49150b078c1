"""The ``rate_model`` block of a model document (``kind = "loglinear"``, schema 2.2) and the one place
it is evaluated.

Per condition, with ``x = V − reference_bias_v`` (V)::

    ln k_up(V)   = a_up   + b_up·x   + c_up·x²        (ln 1/s; b in 1/V, c in 1/V²)
    ln k_down(V) = a_down + b_down·x + c_down·x²

("loglinear": ln k is linear in the coefficients). The coefficient vector is, in this order,
``θ = [a_up, b_up, a_down, b_down, c_up, c_down]`` (:data:`ORDER`) and ``covariance`` is its 6×6
covariance; its first 4×4 block is the whole covariance of a schema ≤ 2.1 block, which had no curvature
(such a block reads as c = 0 with zero variance: :func:`upgrade`). The joint rate fit
(:mod:`noisecell.model.ratefit`) always fits a common curvature (c_up = c_down; its covariance then has
equal rows 4 and 5), and a differential one when its F test asks for it: straight lines would be
wrong by exp(c·x²) away from the reference (~7 % at 1.2 sigmoid scales on pbit_x4).

Everything that needs k_up(V), k_down(V), τ(V), P(1)(V) or their uncertainties from a stored block goes
through :func:`ln_rates` / :func:`moments` (the model evaluator, the sampler and thrml through
``CellModel``, the derived sigmoid/τ blocks, the datasheet's and the conditions table's curves, the
mismatch instances' V50/scale/τ through :func:`crossing`). :func:`rereference` moves the reference
bias exactly (the quadratic re-expanded, the covariance mapped by the same linear map), so a document
may state its coefficients at any reference without changing any prediction.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError

#: the coefficients of θ, in the order of the 6×6 ``covariance``
ORDER = ("ln_k_up.intercept", "ln_k_up.slope_per_v", "ln_k_down.intercept", "ln_k_down.slope_per_v",
         "ln_k_up.curvature_per_v2", "ln_k_down.curvature_per_v2")


def coefficients(rm) -> tuple[float, np.ndarray, np.ndarray]:
    """(reference bias in V, θ (6,), covariance (6, 6)) of a loglinear block of any 2.x (or 1.x)
    version: a block without curvature reads as c = 0 exactly (no variance). A tuple already of that
    form is returned as it is (callers that evaluate one block often parse it once: every function
    here accepts either)."""
    if isinstance(rm, tuple):
        return rm
    up, dn = rm["ln_k_up"], rm["ln_k_down"]
    theta = np.array([up["intercept"], up["slope_per_v"], dn["intercept"], dn["slope_per_v"],
                      up.get("curvature_per_v2", 0.0), dn.get("curvature_per_v2", 0.0)], float)
    c = np.asarray(rm["covariance"], float)
    cov = np.zeros((6, 6))
    n = c.shape[0]
    cov[:n, :n] = c
    return float(rm["reference_bias_v"]), theta, cov


def make(v_ref: float, up: Sequence[float], down: Sequence[float], covariance=None) -> dict:
    """A loglinear block: ``up``/``down`` = (intercept, slope per V[, curvature per V²]) at ``v_ref`` (V);
    ``covariance`` 4×4 (no curvature: its variance is 0) or 6×6 in :data:`ORDER`; None = zeros."""
    cu = float(up[2]) if len(up) > 2 else 0.0
    cd = float(down[2]) if len(down) > 2 else 0.0
    cov = np.zeros((6, 6))
    if covariance is not None:
        c = np.asarray(covariance, float)
        if c.shape not in ((4, 4), (6, 6)):
            raise ValueError(f"rate-model covariance must be 4x4 or 6x6, got {c.shape}")
        cov[:c.shape[0], :c.shape[0]] = c
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return {"kind": "loglinear", "reference_bias_v": float(v_ref),
            "ln_k_up": {"intercept": float(up[0]), "slope_per_v": float(up[1]), "curvature_per_v2": cu,
                        "curvature_se_per_v2": float(se[4])},
            "ln_k_down": {"intercept": float(down[0]), "slope_per_v": float(down[1]), "curvature_per_v2": cd,
                          "curvature_se_per_v2": float(se[5])},
            "covariance": [[float(x) for x in row] for row in cov]}


def from_theta(v_ref: float, theta, cov) -> dict:
    """The block of coefficient vector ``theta`` (:data:`ORDER`) with covariance ``cov`` at ``v_ref``."""
    t = np.asarray(theta, float)
    return make(v_ref, (t[0], t[1], t[4]), (t[2], t[3], t[5]), cov)


def upgrade(rm: Mapping) -> dict:
    """A schema ≤ 2.1 block (straight lines, 4×4 covariance) in the 2.2 form (curvature 0, SE 0, 6×6
    covariance); a 2.2 block and a tabulated one are returned as they are."""
    if rm.get("kind") != "loglinear":
        return dict(rm)
    if "curvature_per_v2" in rm["ln_k_up"] and len(rm["covariance"]) == 6:
        return dict(rm)
    return from_theta(*coefficients(rm))


def shift_matrix(dv: float) -> np.ndarray:
    """The linear map θ(v_ref) → θ(v_ref + dv): with x = x' + dv, a' = a + b·dv + c·dv², b' = b + 2c·dv,
    c' = c (per direction)."""
    m = np.eye(6)
    for a, b, c in ((0, 1, 4), (2, 3, 5)):
        m[a, b], m[a, c] = dv, dv * dv
        m[b, c] = 2 * dv
    return m


def rereference(rm: Mapping, v_ref_new: float) -> dict:
    """The same block stated at reference bias ``v_ref_new`` (V): intercepts, slopes and the covariance
    shifted exactly (:func:`shift_matrix`), curvatures unchanged; every ln k(V) and its variance is the
    same (up to rounding)."""
    v_ref, theta, cov = coefficients(rm)
    m = shift_matrix(float(v_ref_new) - v_ref)
    return from_theta(float(v_ref_new), m @ theta, m @ cov @ m.T)


def _design(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ln k_up and ln k_down with respect to θ at offsets ``x`` (shape x.shape + (6,))."""
    one, zero = np.ones_like(x), np.zeros_like(x)
    gu = np.stack([one, x, zero, zero, x * x, zero], axis=-1)
    gd = np.stack([zero, zero, one, x, zero, x * x], axis=-1)
    return gu, gd


def ln_rates(rm, v) -> tuple[np.ndarray, np.ndarray]:
    """(ln k_up, ln k_down) in ln(1/s) at bias ``v`` (V; any shape) of a loglinear block."""
    v_ref, t, _ = coefficients(rm)
    x = np.asarray(v, float) - v_ref
    return t[0] + x * (t[1] + t[4] * x), t[2] + x * (t[3] + t[5] * x)


def moments(rm, v):
    """(ln k_up, ln k_down, var ln k_up, var ln k_down, cov(ln k_up, ln k_down)) at bias ``v`` (V) from
    the block's coefficient covariance (the curvature's variance and its covariance with the intercept
    and slope included)."""
    v_ref, t, cov = coefficients(rm)
    x = np.asarray(v, float) - v_ref
    gu, gd = _design(x)
    lu, ld = gu @ t, gd @ t
    cu, cd = gu @ cov, gd @ cov
    return lu, ld, np.sum(cu * gu, -1), np.sum(cd * gd, -1), np.sum(cu * gd, -1)


def ln_tau(rm, v) -> tuple[np.ndarray, np.ndarray]:
    """(ln τ, se of ln τ) at bias ``v`` (V): τ = 1/(k_up + k_down), delta method with the rate fractions
    as weights."""
    lu, ld, vu, vd, cud = moments(rm, v)
    wu = 1 / (1 + np.exp(ld - lu))
    wd = 1 - wu
    return -np.logaddexp(lu, ld), np.sqrt(np.maximum(wu * wu * vu + wd * wd * vd + 2 * wu * wd * cud, 0.0))


def logit_slope(rm, v) -> np.ndarray:
    """d(ln k_up − ln k_down)/dV (1/V) at bias ``v`` (V): 1/scale of P(1) there."""
    v_ref, t, _ = coefficients(rm)
    x = np.asarray(v, float) - v_ref
    return (t[1] - t[3]) + 2 * (t[4] - t[5]) * x


def crossing(rm) -> tuple[np.ndarray, np.ndarray]:
    """(V50 in V, ln|scale|, ln τ(V50)) of a loglinear block and their 3×3 delta-method covariance.

    V50 solves ln k_up = ln k_down (the root nearest the reference when the curvatures differ);
    scale = 1/(d(ln k_up − ln k_down)/dV at V50), the logistic scale of P(1) there; τ(V50) =
    1/(2·k_up(V50)). Gradients by the implicit-function theorem. InputError when the two rates never
    cross or the logit is flat at the crossing."""
    v_ref, t, cov = coefficients(rm)
    da, db, dc = t[0] - t[2], t[1] - t[3], t[4] - t[5]
    if dc == 0.0:
        if db == 0.0:
            raise InputError("ln k_up and ln k_down have the same slope: P(1) does not depend on the bias")
        x50 = -da / db
    else:
        disc = db * db - 4 * dc * da
        if disc < 0:
            raise InputError("ln k_up and ln k_down never cross: the rate model has no V50")
        q = db + math.copysign(math.sqrt(disc), db) if db != 0 else math.sqrt(disc)
        x50 = -2 * da / q if q != 0 else 0.0   # q = 0 only when db = da = 0 (then s_inv = 0 below)
    s_inv = db + 2 * dc * x50                  # d logit / dV at V50
    if s_inv == 0:
        raise InputError("the rate model's P(1) is flat at its V50: no logistic scale")
    dF = np.array([1.0, x50, -1.0, -x50, x50 * x50, -x50 * x50])
    g_x = -dF / s_inv                           # ∂x50/∂θ
    # ∂(db + 2dc·x50)/∂θ
    g_sinv = np.array([0.0, 1.0, 0.0, -1.0, 2 * x50, -2 * x50]) + 2 * dc * g_x
    g_ls = -g_sinv / s_inv
    b_loc = t[1] + 2 * t[4] * x50               # d ln k_up / dV at V50
    g_lt = -(np.array([1.0, x50, 0.0, 0.0, x50 * x50, 0.0]) + b_loc * g_x)
    jac = np.stack([g_x, g_ls, g_lt])
    val = np.array([v_ref + x50, -math.log(abs(s_inv)),
                    -math.log(2) - (t[0] + t[1] * x50 + t[4] * x50 * x50)])
    return val, jac @ cov @ jac.T


def max_abs_ln_rate(rm: Mapping, lo: float, hi: float) -> tuple[float, float, str]:
    """(largest |ln k| over [lo, hi] V, the bias where it is, "ln_k_up"/"ln_k_down"): the ends and, for
    a curved ln k, its vertex when inside the interval."""
    v_ref, t, _ = coefficients(rm)
    best = (-1.0, lo, "ln_k_up")
    for name, (b, c) in (("ln_k_up", (t[1], t[4])), ("ln_k_down", (t[3], t[5]))):
        cand = [lo, hi]
        if c != 0:
            vx = v_ref - b / (2 * c)
            if lo < vx < hi:
                cand.append(vx)
        for v in cand:
            lu, ld = ln_rates(rm, v)
            val = abs(float(lu if name == "ln_k_up" else ld))
            if val > best[0]:
                best = (val, float(v), name)
    return best
