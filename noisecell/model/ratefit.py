"""Joint maximum-likelihood fit of the two-state rate model to every transition of a condition.

The cell is a continuous-time two-state Markov process with rates k_up(V) (0→1) and k_down(V)
(1→0), sampled every dt. Sampled, it is exactly a two-state Markov chain with

    p01 = k_up/k · (1 − e^{−k·dt}),   p10 = k_down/k · (1 − e^{−k·dt}),   k = k_up + k_down,

so the likelihood of one record given its first sample is

    ℓ = n_up ln p01 + (n0 − n_up) ln(1 − p01) + n_down ln p10 + (n1 − n_down) ln(1 − p10)

with n0, n1 the samples in state 0 / 1 that have a successor. This IS the dwell-time likelihood with
the first and last dwells censored: every complete dwell contributes its stays and one exit, a
censored dwell its stays only (a survival term). It is exact for any k·dt (it reduces to the
exponential-dwell likelihood k^N e^{−k·T} for fine sampling), and independent records (chunks,
repeated streams) at one bias simply add their counts.

Model (per condition), with x = V − V50 in volts:

    ln k_up(V)   = ln k50 + b_up·x   + c_up·x²
    ln k_down(V) = ln k50 + b_down·x + c_down·x²      (c_up = c_down unless the F test below)
    b_up − b_down = 1/scale,  b_up + b_down = slope_sum

so at V50 both rates equal k50, P(1) = 1/2, τ(V50) = 1/(2·k50), and P(1) is logistic with ``scale``
near V50. The datasheet quantities are parameters of the likelihood, so their CIs are profile-
likelihood intervals (Wilks: 2·(ℓ̂ − ℓ_profile) ≤ χ²₁(0.95)); no delta method is needed.

Curvature: ln k_up and ln k_down share a quadratic term c·x² (c_up = c_down = c), fitted whenever
there are ≥ 4 bias points (allow_curvature), not admitted by a test: a noise-driven escape over a
barrier that a bias tilts has ΔU = ΔU₀ ∓ a·x + b·x² for both wells (U = −y²/2 + y⁴/4 − F·y:
ΔU = 1/4 ± F + 3F²/4), so ln k is expected concave in the bias (c < 0), while
the logit ln k_up − ln k_down (hence P(1), logistic in x) does not see it. Straight lines through
records on the flanks (where the design puts the scale information) then pass below the rates at
V50 and read τ(V50) long. pbit_x4's default flow (33 points, 3078 transitions): straight lines
τ(V50) 100.4 ns [96.9, 104.1], common curvature −5.0e3 /V² (F test against straight lines p = 0.022),
τ(V50) 90.8 ns [82.6, 99.6]; 800 µs of direct records at its V50 read 89.0 ns [86.5, 91.7]. The
previous rule (both terms only when an F(2, ·) test rejected straight lines at CURVATURE_ALPHA:
p = 0.07 on pbit_x4, never admitted) is a pre-test estimator: on an x4-like synthetic scenario its
τ(V50) 95 % interval covered the truth in 30 % of 200 data sets, this fit's in 95.5 %
(tests/test_model_ratefit.py). The cost is width when the rates are straight: pbit's session-23
records (42 points, 1311 transitions, c −3e2 /V², p = 0.89) τ(V50) ±5.8 % → ±18 %, which the design
(planning with the curvature's information, information_per_second) pays for with records near V50.
The differential curvature (c_up ≠ c_down: P(1) not logistic) is still admitted only when the
quasi-likelihood F test rejects the common-curvature model at CURVATURE_ALPHA: 2Δℓ/φ_q ~ F(1, dof_q),
φ_q the full quadratic fit's dispersion (below) on its dof_q = 2·points − 6 (McCullagh & Nelder
§9.2.4). Over-dispersed counts inflate 2Δℓ by φ as they inflate the deviance: unscaled, the test
admitted curvature in 13 of 30 linear telegraphs with bursts (φ ≈ 4; the F test: 1 of 30).
``common_curvature_test`` reports the same F statistic of the common term against straight lines.

Goodness of fit: the deviance against the saturated model (one (p01, p10) per bias point) is
χ²(2·points − parameters) when the model holds (``gof_p``, reported).

Dispersion (quasi-likelihood, McCullagh & Nelder §9.2): the CIs always use the profile threshold
χ²₁(level)·φ and the covariance × φ with φ = X²/dof above 1 (below: next paragraph), X² Pearson's statistic of the 2·points
binomial counts (n_up of n0 trials at p01, n_down of n1 at p10) at the fit. φ is a continuous
function of the data, so one more record moves every half-width by about its own share of X² — no
switch that jumps the half-widths by ~20 % when a test crosses its level (the previous rule: φ = 1
while the deviance test's p ≥ 0.01, deviance/dof below it; at the switch deviance/dof ≈
χ²₀.₉₉(dof)/dof, e.g. 1.5 at 40 dof, ×1.23 on every half-width). Pearson rather than the deviance:
with few transitions per point the deviance's mean falls below its dof (φ underestimated), Pearson's
X²/dof is close to unbiased (McCullagh & Nelder §4.5). Below 1: a Markov chain's counts are not
under-dispersed, so X²/dof < 1 is usually sampling scatter and must not narrow the likelihood's own
intervals; but a renewal cell's are (dwells more regular than exponential: the count variance is
CV² × the mean, pbit_x5's CV² ≈ 0.6, and its nominal design read X²/dof = 0.61 on 101 dof, 2.8 σ
below 1, while φ = 1 kept its CIs ~1/√0.61 = 1.28× too wide and the design ran to its budget). So
φ < 1 only when the data show it at 95 %: φ = min(1, X²/χ²₀.₀₅(dof)), the upper confidence bound
(continuous: 1 until X² falls below χ²₀.₀₅(dof)). Under the Markov model (X² ~ χ²(dof)) the floor
costs a little over-coverage: E√φ − 1 is 7.7 % on the half-widths at 10 dof, 4.2 % at 40, 3.0 % at
80, and 95 % intervals cover 96.1 %, 95.7 %, 95.6 % (numerical integration over χ²(dof)); the bound
narrows them in the 5 % of fits whose X² falls below χ²₀.₀₅(dof); the coverage tests bound both. φ's own sampling
error (sd √(2/dof)) is not propagated (an F(1, dof) threshold would add ≈ 1/dof on the threshold).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numba
import numpy as np
from scipy import stats

from ..errors import InputError

#: level of the likelihood-ratio test that admits the curvature terms
CURVATURE_ALPHA = 0.01
#: lower-tail χ² probability of the under-dispersion bound (module docstring): φ ≤ X²/χ²_p(dof) at 1 − p
UNDER_DISPERSION_CONFIDENCE_LOWER = 0.05

#: level of the deviance goodness-of-fit test that the fit reports (``gof_p``; the dispersion does not
#: depend on it: see the module docstring)
GOF_ALPHA = 0.01
LEVEL = 0.95


@dataclass(frozen=True)
class PointCounts:
    """Sufficient statistics of all records at one bias (counts of independent records add).

    bias_v: bias (V). sample_period_s: dt (s). n_up / n_down: 0→1 / 1→0 transitions.
    n0_at_risk / n1_at_risk: samples in state 0 / 1 with a successor (the exposure; censored dwells
    included). n_samples, n_ones: for P(1). n_eff: effective sample size of P(1) from the readout
    analysis (autocorrelation-aware), None if unknown. regime: the regime label ("bistable" points
    enter the rate fit; any other label enters the P(1) description only). simulated_s: record length.
    """

    bias_v: float
    sample_period_s: float
    n_up: int
    n_down: int
    n0_at_risk: int
    n1_at_risk: int
    n_samples: int = 0
    n_ones: int = 0
    n_eff: float | None = None
    regime: str = "bistable"
    simulated_s: float = 0.0

    @property
    def p1(self) -> float:
        return self.n_ones / self.n_samples if self.n_samples else float("nan")

    @classmethod
    def from_runstats(cls, bias_v: float, sample_period_s: float, rs, *, n_eff: float | None = None,
                      regime: str = "bistable") -> "PointCounts":
        """From a :class:`noisecell.analysis.runs.RunStats` of one record."""
        return cls(float(bias_v), float(sample_period_s), int(rs.n_up), int(rs.n_down), int(rs.n0_at_risk),
                   int(rs.n1_at_risk), int(rs.n), int(rs.n1), n_eff, regime, rs.n * float(sample_period_s))

    def merged(self, other: "PointCounts") -> "PointCounts":
        """Counts of this record and an independent one at the same bias and sample period."""
        if not (math.isclose(self.bias_v, other.bias_v, rel_tol=0, abs_tol=1e-12)
                and math.isclose(self.sample_period_s, other.sample_period_s, rel_tol=1e-9)):
            raise ValueError("merge only records at the same bias and sample period")
        ne = None if self.n_eff is None or other.n_eff is None else self.n_eff + other.n_eff
        return PointCounts(self.bias_v, self.sample_period_s, self.n_up + other.n_up, self.n_down + other.n_down,
                           self.n0_at_risk + other.n0_at_risk, self.n1_at_risk + other.n1_at_risk,
                           self.n_samples + other.n_samples, self.n_ones + other.n_ones, ne,
                           self.regime if self.regime == other.regime else "mixed",
                           self.simulated_s + other.simulated_s)


def merge_points(points: Sequence[PointCounts]) -> list[PointCounts]:
    """One PointCounts per (bias, sample period), records at the same bias summed, bias ascending."""
    out: dict[tuple[float, float], PointCounts] = {}
    for p in points:
        key = (round(p.bias_v, 12), round(p.sample_period_s, 18))
        out[key] = out[key].merged(p) if key in out else p
    return sorted(out.values(), key=lambda p: p.bias_v)


# ----------------------------------------------------------------------------- likelihood kernel
class _Data:
    """Arrays of the counts, bias normalised x̃ = (V − v_ref)/v_unit, rates per t_unit."""

    def __init__(self, points: Sequence[PointCounts]):
        self.v = np.array([p.bias_v for p in points], float)
        self.v_ref = float(np.mean(self.v))
        self.v_unit = float(np.std(self.v)) or 1e-3
        self.x = (self.v - self.v_ref) / self.v_unit
        self.n_up = np.array([p.n_up for p in points], float)
        self.n_down = np.array([p.n_down for p in points], float)
        self.n0 = np.array([p.n0_at_risk for p in points], float)
        self.n1 = np.array([p.n1_at_risk for p in points], float)
        self.dt = np.array([p.sample_period_s for p in points], float)
        exposure = float(np.sum((self.n0 + self.n1) * self.dt))
        flips = float(np.sum(self.n_up + self.n_down))
        # time unit: the mean dwell, so ln k50 is O(1) for the optimiser
        self.t_unit = exposure / max(flips, 1.0)
        self.dtu = self.dt / self.t_unit          # sample period in units of t_unit


def _pearson_chi2(phi, d: _Data, sign: float) -> float:
    """Pearson's X² of the 2·points binomial counts at φ: Σ (n − N·p)² / (N·p·(1 − p)) over
    (n_up of n0 at p01) and (n_down of n1 at p10); cells with no trials contribute nothing."""
    eu, ed = _etas(phi, d, sign)[:2]
    ku = np.exp(np.clip(eu, -300, 300)) * d.dtu
    kd = np.exp(np.clip(ed, -300, 300)) * d.dtu
    sm = ku + kd
    r = np.where(sm < 1e-8, 1 - sm / 2, -np.expm1(-sm) / np.where(sm > 0, sm, 1))
    tot = 0.0
    for n_k, n_at, p in ((d.n_up, d.n0, ku * r), (d.n_down, d.n1, kd * r)):
        p = np.clip(p, 1e-300, 1 - 1e-12)
        ok = n_at > 0
        tot += float(np.sum((n_k[ok] - n_at[ok] * p[ok]) ** 2 / (n_at[ok] * p[ok] * (1 - p[ok]))))
    return tot


def _saturated_loglik(d: _Data) -> float:
    """ℓ of the saturated model: each point's own (p01, p10) at its MLE."""
    tot = 0.0
    for n_k, n_at in ((d.n_up, d.n0), (d.n_down, d.n1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n_at > 0, n_k / n_at, 0.0)
            t = np.where(n_k > 0, n_k * np.log(np.where(p > 0, p, 1)), 0.0) + \
                np.where(n_at - n_k > 0, (n_at - n_k) * np.log1p(-np.where(p < 1, p, 0)), 0.0)
        tot += float(np.sum(t))
    return tot


# Parameter vector φ (normalised units): [X50, lnS, L, slope_sum, (c_up, c_down) | (c)]
#   (5 entries: one common curvature c = c_up = c_down; 6: both)
#   x̃ − X50 = u;  B_up − B_down = σ·e^{−lnS};  η_up = L + B_up·u + c_up·u²;  η_down = L + B_down·u + c_down·u²
def _etas(phi, d: _Data, sign: float):
    X, lnS, L, ssum = phi[0], phi[1], phi[2], phi[3]
    inv = sign * math.exp(-lnS)
    bu, bd = 0.5 * (ssum + inv), 0.5 * (ssum - inv)
    u = d.x - X
    cu, cd = (phi[4], phi[5]) if len(phi) > 5 else (phi[4], phi[4]) if len(phi) > 4 else (0.0, 0.0)
    return L + bu * u + cu * u * u, L + bd * u + cd * u * u, u, bu, bd, cu, cd, inv


@numba.njit(cache=True)
def _kernel(phi, x, n_up, n_down, n0, n1, dtu, sign):  # pragma: no cover - compiled
    """(−ℓ, ∇(−ℓ), expected information) in φ; a compiled loop over the points (the arrays are a
    few dozen long, so numpy's per-call overhead would dominate the profile-likelihood search)."""
    k = phi.size
    X, lnS, L, ssum = phi[0], phi[1], phi[2], phi[3]
    inv = sign * np.exp(-lnS)
    bu, bd = 0.5 * (ssum + inv), 0.5 * (ssum - inv)
    cu = phi[4] if k > 4 else 0.0
    cd = phi[5] if k > 5 else cu
    nll = 0.0
    grad = np.zeros(k)
    info = np.zeros((k, k))
    ju = np.zeros(k)
    jd = np.zeros(k)
    for i in range(x.size):
        u = x[i] - X
        eu = min(max(L + bu * u + cu * u * u, -300.0), 300.0)
        ed = min(max(L + bd * u + cd * u * u, -300.0), 300.0)
        ju[0], jd[0] = -bu - 2 * cu * u, -bd - 2 * cd * u
        ju[1], jd[1] = -0.5 * inv * u, 0.5 * inv * u
        ju[2] = 1.0
        jd[2] = 1.0
        ju[3] = 0.5 * u
        jd[3] = 0.5 * u
        if k > 5:
            ju[4], jd[4] = u * u, 0.0
            ju[5], jd[5] = 0.0, u * u
        elif k > 4:                                           # common curvature c_up = c_down
            ju[4], jd[4] = u * u, u * u
        ku = np.exp(eu) * dtu[i]
        kd = np.exp(ed) * dtu[i]
        sm = ku + kd
        if sm < 1e-4:
            r = 1 - sm / 2 + sm * sm / 6
            drds = -0.5 + sm / 3
        else:
            e = -np.expm1(-sm)
            r = e / sm
            drds = (sm * np.exp(-sm) - e) / (sm * sm)
        p01 = min(max(ku * r, 1e-300), 1 - 1e-12)
        p10 = min(max(kd * r, 1e-300), 1 - 1e-12)
        m0 = n0[i] - n_up[i]
        m1 = n1[i] - n_down[i]
        ll = 0.0
        if n_up[i] > 0:
            ll += n_up[i] * np.log(p01)
        if m0 > 0:
            ll += m0 * np.log1p(-p01)
        if n_down[i] > 0:
            ll += n_down[i] * np.log(p10)
        if m1 > 0:
            ll += m1 * np.log1p(-p10)
        nll -= ll
        w01 = n_up[i] / p01 - m0 / (1 - p01)
        w10 = n_down[i] / p10 - m1 / (1 - p10)
        a1, a2 = ku * (r + ku * drds), kd * ku * drds        # ∂p01/∂η_up, ∂p01/∂η_down
        b1, b2 = ku * kd * drds, kd * (r + kd * drds)        # ∂p10/∂η_up, ∂p10/∂η_down
        gu = w01 * a1 + w10 * b1
        gd = w01 * a2 + w10 * b2
        v01 = n0[i] / (p01 * (1 - p01))
        v10 = n1[i] / (p10 * (1 - p10))
        for a in range(k):
            grad[a] -= gu * ju[a] + gd * jd[a]
            g01a = a1 * ju[a] + a2 * jd[a]
            g10a = b1 * ju[a] + b2 * jd[a]
            for b in range(a + 1):
                v = v01 * g01a * (a1 * ju[b] + a2 * jd[b]) + v10 * g10a * (b1 * ju[b] + b2 * jd[b])
                info[a, b] += v
                if b != a:
                    info[b, a] += v
    return nll, grad, info


def _negll_grad(phi, d: _Data, sign: float):
    nll, g, _ = _kernel(np.asarray(phi, float), d.x, d.n_up, d.n_down, d.n0, d.n1, d.dtu, float(sign))
    return float(nll), g


def _fisher(phi, d: _Data, sign: float) -> np.ndarray:
    """Expected information about φ given the exposures: each point's p01 (n0 trials) and p10 (n1
    trials) are binomial, I = Σ n·∇p ∇pᵀ / (p(1−p))."""
    return _kernel(np.asarray(phi, float), d.x, d.n_up, d.n_down, d.n0, d.n1, d.dtu, float(sign))[2]


def _hessian(phi, d: _Data, sign: float) -> np.ndarray:
    """Observed information (Hessian of −ℓ) by central differences of the analytic gradient."""
    n = len(phi)
    h = np.empty((n, n))
    for j in range(n):
        step = 1e-5 * max(1.0, abs(phi[j]))
        a, b = np.array(phi, float), np.array(phi, float)
        a[j] += step
        b[j] -= step
        h[:, j] = (_negll_grad(a, d, sign)[1] - _negll_grad(b, d, sign)[1]) / (2 * step)
    return 0.5 * (h + h.T)


@numba.njit(cache=True)
def _scoring(phi, free, x, n_up, n_down, n0, n1, dtu, sign, max_iter):  # pragma: no cover - compiled
    nll, g, info = _kernel(phi, x, n_up, n_down, n0, n1, dtu, sign)
    m = free.size
    for _ in range(max_iter):
        A = np.empty((m, m))
        gf = np.empty(m)
        tr = 0.0
        for i in range(m):
            gf[i] = g[free[i]]
            tr += info[free[i], free[i]]
            for j in range(m):
                A[i, j] = info[free[i], free[j]]
        for i in range(m):
            A[i, i] += 1e-12 * tr + 1e-300
        step = -np.linalg.solve(A, gf)
        t = 1.0
        ok = False
        while t > 1e-8:
            trial = phi.copy()
            for i in range(m):
                trial[free[i]] += t * step[i]
            nll_t, g_t, info_t = _kernel(trial, x, n_up, n_down, n0, n1, dtu, sign)
            if (np.isfinite(nll_t) and nll_t <= nll + 1e-12 * abs(nll) and np.all(np.isfinite(g_t))
                    and np.all(np.isfinite(info_t))):
                ok = True
                break
            t *= 0.5
        if not ok:
            return phi, nll
        decrease = nll - nll_t
        phi, nll, g, info = trial, nll_t, g_t, info_t
        if decrease < 1e-10 * max(1.0, abs(nll)) and np.max(np.abs(t * step)) < 1e-7:
            break
    return phi, nll


def _minimise(phi0, d: _Data, sign: float, fixed: dict[int, float] | None = None, max_iter: int = 100):
    """Maximise ℓ over φ with the entries in ``fixed`` held: Fisher scoring with step halving (the
    likelihood is GLM-like, so scoring converges in a few steps from a warm start); returns (φ, −ℓ)."""
    fixed = fixed or {}
    phi = np.array(phi0, float)
    for i, v in fixed.items():
        phi[i] = v
    free = np.array([i for i in range(len(phi)) if i not in fixed], np.int64)
    p, nll = _scoring(phi, free, d.x, d.n_up, d.n_down, d.n0, d.n1, d.dtu, float(sign), max_iter)
    return p, float(nll)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (lo, hi) at ``level`` and the method that gave it."""

    value: float
    lo: float
    hi: float
    level: float = LEVEL
    method: str = "profile likelihood"

    @property
    def halfwidth(self) -> float:
        return 0.5 * (self.hi - self.lo)

    @property
    def rel_halfwidth(self) -> float:
        """Half-width relative to the value (for positive quantities such as scale and τ)."""
        return self.halfwidth / abs(self.value) if self.value else float("inf")

    def to_dict(self) -> dict:
        return {"value": self.value, "ci": [self.lo, self.hi], "level": self.level, "method": self.method}


@dataclass(frozen=True)
class RateFit:
    """Joint rate-model fit of one condition (SI units throughout).

    v50: bias where k_up = k_down (V). scale: 1/(b_up − b_down) (V; P(1) is logistic with this scale
    near V50). tau_v50: 1/(2·k50) (s). k_v50: the common rate at V50 (1/s). slope_sum_per_v:
    b_up + b_down (1/V). curvature_per_v2: (c_up, c_down) (1/V²; equal: the common curvature only) or
    None for straight lines (allow_curvature False or < 4 points). curvature_test: (2Δℓ/φ_q, p) of the
    F test of the differential curvature; common_curvature_test: the same of the common one against
    straight lines (reported, not used: module docstring). deviance, dof, gof_p: goodness of fit
    against the saturated model; dispersion: φ (quasi_dispersion: X²/dof above 1, its 95 % upper bound below), the factor applied to the
    profile threshold and the covariance (module docstring); pearson_chi2: Pearson's X². n_points, n_transitions, bias_range_v: what entered.
    covariance: of [ln k_up intercept, slope, ln k_down intercept, slope] at reference_bias_v (V),
    from the observed information; coefficient_covariance: the 6×6 of those and the two curvatures
    (:data:`noisecell.model.ratemodel.ORDER`), what :meth:`rate_model` exports.
    """

    v50: Interval
    scale: Interval
    tau_v50: Interval
    k_v50: Interval
    slope_sum_per_v: float
    curvature_per_v2: tuple[float, float] | None
    curvature_test: tuple[float, float]
    deviance: float
    dof: int
    gof_p: float
    dispersion: float
    n_points: int
    n_transitions: int
    bias_range_v: tuple[float, float]
    reference_bias_v: float
    ln_k_up: tuple[float, float]
    ln_k_down: tuple[float, float]
    covariance: tuple[tuple[float, ...], ...]
    phi_covariance: tuple[tuple[float, ...], ...] = ()
    pearson_chi2: float = float("nan")
    common_curvature_test: tuple[float, float] = (0.0, 1.0)
    coefficient_covariance: tuple[tuple[float, ...], ...] = ()
    _phi: tuple = field(default=(), repr=False, compare=False)
    _units: tuple = field(default=(), repr=False, compare=False)

    def ln_rates(self, bias_v) -> tuple[np.ndarray, np.ndarray]:
        """(ln k_up, ln k_down) in ln(1/s) at ``bias_v`` (V), from the fitted model."""
        x = (np.asarray(bias_v, float) - self.v50.value)
        bu = 0.5 * (self.slope_sum_per_v + 1 / self.scale.value)
        bd = 0.5 * (self.slope_sum_per_v - 1 / self.scale.value)
        cu, cd = self.curvature_per_v2 or (0.0, 0.0)
        lk = math.log(self.k_v50.value)
        return lk + bu * x + cu * x * x, lk + bd * x + cd * x * x

    def rate_model(self) -> dict:
        """The model document's loglinear ``rate_model`` block of this fit (schema 2.2): intercepts,
        slopes and curvatures at reference_bias_v = V̂50 with their 6×6 covariance, so the exported
        model evaluates exactly :meth:`ln_rates` (the fit's quadratics, not their tangents at V50)."""
        from .ratemodel import make

        cu, cd = self.curvature_per_v2 or (0.0, 0.0)
        cov = self.coefficient_covariance or self.covariance
        return make(self.reference_bias_v, (*self.ln_k_up, cu), (*self.ln_k_down, cd), cov)

    def p1(self, bias_v) -> np.ndarray:
        lu, ld = self.ln_rates(bias_v)
        return 1 / (1 + np.exp(ld - lu))

    def logit_p1_cov(self, bias_v) -> tuple[np.ndarray, np.ndarray]:
        """ln(P1/P0) = ln k_up − ln k_down at ``bias_v`` (V) and its covariance across the biases
        from the fit's uncertainty (observed information, times the dispersion)."""
        v = np.atleast_1d(np.asarray(bias_v, float))
        lu, ld = self.ln_rates(v)
        x = v - self.v50.value
        s = self.scale.value
        dcu = (self.curvature_per_v2[0] - self.curvature_per_v2[1]) if self.curvature_per_v2 else 0.0
        k = len(self.phi_covariance)
        jac = np.zeros((v.size, k))
        jac[:, 0] = -1 / s - 2 * dcu * x          # ∂/∂V50
        jac[:, 1] = -x / s                          # ∂/∂ln|scale|
        if k > 4:
            jac[:, 4], jac[:, 5] = x * x, -x * x
        cov = np.asarray(self.phi_covariance, float) if k else np.zeros((0, 0))
        return lu - ld, (jac @ cov @ jac.T if k else np.zeros((v.size, v.size)))

    def tau_s(self, bias_v) -> np.ndarray:
        lu, ld = self.ln_rates(bias_v)
        return np.exp(-np.logaddexp(lu, ld))

    def to_dict(self) -> dict:
        return {"v50_v": self.v50.to_dict(), "scale_v": self.scale.to_dict(), "tau_v50_s": self.tau_v50.to_dict(),
                "k_v50_hz": self.k_v50.to_dict(), "slope_sum_per_v": self.slope_sum_per_v,
                "curvature_per_v2": list(self.curvature_per_v2) if self.curvature_per_v2 else None,
                "curvature_lr_stat": self.curvature_test[0], "curvature_lr_p": self.curvature_test[1],
                "curvature_alpha": CURVATURE_ALPHA, "deviance": self.deviance, "dof": self.dof,
                "gof_p": self.gof_p, "pearson_chi2": self.pearson_chi2, "dispersion": self.dispersion, "n_points": self.n_points,
                "n_transitions": self.n_transitions, "bias_range_v": list(self.bias_range_v)}

    def summary(self) -> str:
        from ..units import format_si

        def iv(name, i, unit):
            return f"{name} = {format_si(i.value, unit)} [{format_si(i.lo, unit)}, {format_si(i.hi, unit)}]"

        if self.curvature_per_v2 is None:
            shape = "linear"
        elif self.curvature_per_v2[0] == self.curvature_per_v2[1]:
            shape = (f"quadratic, common curvature {self.curvature_per_v2[0]:.3g} /V² (against straight lines "
                     f"p = {self.common_curvature_test[1]:.2g}; differential curvature not admitted, F test "
                     f"p = {self.curvature_test[1]:.2g})")
        else:
            shape = (f"quadratic, curvatures {self.curvature_per_v2[0]:.3g} / {self.curvature_per_v2[1]:.3g} /V² "
                     f"(differential curvature F test p = {self.curvature_test[1]:.2g})")
        return "\n".join([
            f"joint rate fit: {self.n_points} points, {self.n_transitions} transitions, ln k {shape}",
            "  " + iv("V50", self.v50, "V"), "  " + iv("scale", self.scale, "V"),
            "  " + iv("τ(V50)", self.tau_v50, "s"), "  " + iv("k(V50)", self.k_v50, "Hz"),
            f"  deviance {self.deviance:.3g} on {self.dof} dof (p = {self.gof_p:.2g}); Pearson X² "
            f"{self.pearson_chi2:.3g}" + (f"; CIs widened by dispersion {self.dispersion:.3g}" if self.dispersion > 1 else
                 f"; CIs narrowed by dispersion {self.dispersion:.3g} (under-dispersed counts: dwells more regular "
                 f"than exponential)" if self.dispersion < 1 else "")])


# ----------------------------------------------------------------------------- the fit
def _start(d: _Data) -> tuple[np.ndarray, float]:
    """Starting φ from weighted straight lines through the per-point ln k (Poisson approximation)."""
    expo0, expo1 = d.n0 * d.dtu, d.n1 * d.dtu
    ok = (d.n_up > 0) & (d.n_down > 0) & (expo0 > 0) & (expo1 > 0)
    if ok.sum() < 2 or np.ptp(d.x[ok]) <= 0:
        raise InputError("fewer than 2 bias points with transitions both ways; no rate model can be fitted")
    lu = np.log(d.n_up[ok] / expo0[ok])
    ld = np.log(d.n_down[ok] / expo1[ok])
    bu = np.polyfit(d.x[ok], lu, 1, w=np.sqrt(d.n_up[ok]))
    bd = np.polyfit(d.x[ok], ld, 1, w=np.sqrt(d.n_down[ok]))
    db = bu[0] - bd[0]
    if db == 0:
        raise InputError("ln k_up and ln k_down have the same slope: P(1) does not depend on the bias here")
    sign = 1.0 if db > 0 else -1.0
    X = -(bu[1] - bd[1]) / db
    X = float(np.clip(X, d.x.min() - 3, d.x.max() + 3))
    L = float(bu[1] + bu[0] * X)
    return np.array([X, -math.log(abs(db)), L, bu[0] + bd[0]]), sign


def _illinois(f, a: float, fa: float, b: float, fb: float, xtol: float, max_iter: int = 60) -> float:
    """Root of f in [a, b] (fa < 0 ≤ fb) by the Illinois variant of regula falsi: the bracket values
    are known already, so no evaluation is repeated."""
    side = 0
    for _ in range(max_iter):
        c = b - fb * (b - a) / (fb - fa) if (math.isfinite(fb) and fb != fa) else 0.5 * (a + b)
        fc = f(c)
        if fc >= 0:
            b, fb = c, fc
            if side == 1:
                fa *= 0.5
            side = 1
        else:
            a, fa = c, fc
            if side == -1:
                fb *= 0.5
            side = -1
        if abs(b - a) < xtol or abs(fc) < 1e-6:
            return c
    return c


def _profile_interval(j: int, phi_hat, nll_hat: float, d: _Data, sign: float, threshold: float,
                      se: float) -> tuple[float, float]:
    """Endpoints of {t : 2·(ℓ̂ − ℓ_profile(t)) ≤ threshold} for parameter j.

    Solved on the signed root r(t) = √(2·(ℓ̂ − ℓ_profile(t))), close to linear in |t − t̂| (exactly
    linear for a quadratic likelihood): bracket from the Wald guess outwards, then Brent's method;
    a handful of profile evaluations per endpoint, each warm-started from the previous one.
    ±inf when the profile never reaches the threshold (the data do not bound the parameter)."""
    target = math.sqrt(threshold)
    t_hat = float(phi_hat[j])
    step = (se if np.isfinite(se) and se > 0 else 0.1 * max(1.0, abs(t_hat))) * target
    ends = []
    for direction in (-1.0, 1.0):
        warm = {"phi": np.array(phi_hat, float)}

        def excess(t):
            # warm start from the previous profile point; from the MLE when that start fails (far
            # out in a mis-specified model the information can vanish along the way)
            best = None
            for start in (warm["phi"], phi_hat):
                try:
                    p, nll = _minimise(start, d, sign, {j: t})
                except np.linalg.LinAlgError:
                    continue
                if np.isfinite(nll) and (best is None or nll < best[1]):
                    best = (p, nll)
                if best is not None and start is warm["phi"] and nll - nll_hat < 50 * threshold:
                    break
            if best is None:
                return math.inf
            warm["phi"] = best[0]
            return math.sqrt(max(0.0, 2 * (best[1] - nll_hat))) - target

        inner, f_in, outer = t_hat, -target, t_hat + direction * step
        f_out = excess(outer)
        n = 0
        while f_out < 0 and n < 25:
            inner, f_in, outer = outer, f_out, outer + direction * step * 1.5 ** n
            f_out = excess(outer)
            n += 1
        if f_out < 0:
            ends.append(direction * math.inf)
            continue
        ends.append(_illinois(excess, inner, f_in, outer, f_out,
                              1e-3 * step))
    return ends[0], ends[1]


def quasi_dispersion(pearson_chi2: float, dof: int) -> float:
    """The dispersion φ the CIs use (module docstring): X²/dof above 1; below 1, the 95 % upper
    confidence bound X²/χ²₀.₀₅(dof) when that is under 1 (under-dispersion shown at 95 %), else 1."""
    if dof <= 0:
        return 1.0
    if pearson_chi2 >= dof:
        return pearson_chi2 / dof
    return min(1.0, pearson_chi2 / float(stats.chi2.ppf(UNDER_DISPERSION_CONFIDENCE_LOWER, dof)))


def fit_rates_joint(points: Sequence[PointCounts], *, allow_curvature: bool = True, level: float = LEVEL,
                    profile: bool = True) -> RateFit:
    """Joint ML fit of the rate model to all ``points`` of one condition (see module docstring).

    ``profile`` False gives Wald intervals in the same parametrisation (faster; for the design's
    look-ahead). Raises InputError when fewer than two bias points have transitions both ways.
    """
    pts = merge_points([p for p in points if p.n0_at_risk + p.n1_at_risk > 0])
    if len({p.bias_v for p in pts}) < 2:
        raise InputError("the rate model needs telegraph points at 2 or more bias values")
    d = _Data(pts)
    phi0, sign = _start(d)
    phi_lin, nll_lin = _minimise(phi0, d, sign)
    phi_hat, nll_hat = phi_lin, nll_lin
    lr, lr_p = 0.0, 1.0
    common = (0.0, 1.0)
    n_bias = len(pts)
    if allow_curvature and n_bias >= 4:
        # the common curvature is always fitted (module docstring: a barrier grows quadratically with
        # the tilt, and straight lines through records on the flanks then read τ(V50) long); the
        # differential one (P(1) not logistic) only when the quasi-likelihood F test asks for it
        phi_c, nll_c = _minimise(np.concatenate([phi_lin, [0.0]]), d, sign)
        if not nll_c <= nll_lin:                  # scoring failed from the straight-line start
            phi_c, nll_c = np.concatenate([phi_lin, [0.0]]), nll_lin
        phi_q, nll_q = _minimise(np.concatenate([phi_c, [phi_c[4]]]), d, sign)
        if not nll_q <= nll_c:
            phi_q, nll_q = np.concatenate([phi_c, [phi_c[4]]]), nll_c
        dof_q = 2 * n_bias - 6
        disp_q = max(1.0, _pearson_chi2(phi_q, d, sign) / dof_q) if dof_q > 0 else 1.0
        lr = max(0.0, 2 * (nll_c - nll_q)) / disp_q
        lr_p = float(stats.f.sf(lr, 1, dof_q)) if dof_q > 0 else float(stats.chi2.sf(lr, 1))
        lr_c = max(0.0, 2 * (nll_lin - nll_c)) / disp_q
        common = (float(lr_c), float(stats.f.sf(lr_c, 1, dof_q)) if dof_q > 0 else float(stats.chi2.sf(lr_c, 1)))
        phi_hat, nll_hat = (phi_q, nll_q) if lr_p < CURVATURE_ALPHA else (phi_c, nll_c)
    k = len(phi_hat)
    deviance = max(0.0, 2 * (nll_hat + _saturated_loglik(d)))
    dof = 2 * n_bias - k
    gof_p = float(stats.chi2.sf(deviance, dof)) if dof > 0 else float("nan")
    pearson = _pearson_chi2(phi_hat, d, sign)
    # continuous quasi-likelihood dispersion (module docstring); no dof left: nothing to estimate it from
    dispersion = quasi_dispersion(pearson, dof)
    hess = _hessian(phi_hat, d, sign)
    try:
        cov_phi = np.linalg.inv(hess) * dispersion
    except np.linalg.LinAlgError:
        cov_phi = np.full((k, k), np.nan)
    se = np.sqrt(np.clip(np.diag(cov_phi), 0, None))
    thr = float(stats.chi2.ppf(level, 1)) * dispersion
    z = float(stats.norm.ppf(0.5 + level / 2))
    ends = {}
    for j in (0, 1, 2):
        if profile:
            ends[j] = _profile_interval(j, phi_hat, nll_hat, d, sign, thr, se[j])
        else:
            ends[j] = (phi_hat[j] - z * se[j], phi_hat[j] + z * se[j])
    method = "profile likelihood" if profile else "Wald"
    if dispersion != 1:
        method += f" (quasi-likelihood, dispersion {dispersion:.3g})"
    vu, tu = d.v_unit, d.t_unit
    X, lnS, L, ssum = phi_hat[:4]
    v50 = Interval(d.v_ref + X * vu, d.v_ref + ends[0][0] * vu, d.v_ref + ends[0][1] * vu, level, method)
    # a diverged fit (records too short to show the bias dependence: scale → ∞) has profile ends past
    # the float range: they are ±inf / 0, not an OverflowError
    def ex(x):
        return math.exp(x) if x < 709 else math.inf

    def half_over(k):
        return 0.5 / k if k > 0 else math.inf

    s_lo, s_hi = sorted((sign * ex(ends[1][0]) * vu, sign * ex(ends[1][1]) * vu))
    scale = Interval(sign * ex(lnS) * vu, s_lo, s_hi, level, method)
    k50 = Interval(ex(L) / tu, ex(ends[2][0]) / tu, ex(ends[2][1]) / tu, level, method)
    tau = Interval(half_over(k50.value), half_over(k50.hi), half_over(k50.lo), level, method)
    # loglinear block at reference_bias_v = V50: intercepts ln k50 (1/s), slopes per volt
    inv = sign * math.exp(-lnS)
    bu, bd = 0.5 * (ssum + inv) / vu, 0.5 * (ssum - inv) / vu
    curv = (float(phi_hat[4] / vu**2), float(phi_hat[5 if k > 5 else 4] / vu**2)) if k > 4 else None
    v_ref = v50.value
    lnk = L - math.log(tu)
    # Jacobian of θ = (a_u, b_u, a_d, b_d, c_u, c_d) (SI, model.ratemodel.ORDER) at the fixed reference
    # bias v_ref = V̂50 with respect to φ. With δ = v_ref − V50, ln k = L + B·δ + C·δ² + (B + 2C·δ)·x + C·x²,
    # so at δ = 0: ∂a/∂X = −B (normalised slope), ∂a/∂L = 1, ∂b/∂X = −2C (the slope at a fixed bias moves
    # with V50 when ln k is curved), the slopes move with lnS and ssum, c = C. V50's uncertainty is
    # thereby in the intercepts' and slopes' covariance.
    cu_n = float(phi_hat[4]) if k > 4 else 0.0
    cd_n = float(phi_hat[5 if k > 5 else 4]) if k > 4 else 0.0
    jac = np.zeros((6, k))
    jac[0, 2] = jac[2, 2] = 1.0
    jac[0, 0], jac[2, 0] = -0.5 * (ssum + inv), -0.5 * (ssum - inv)
    jac[1, 1], jac[1, 3] = -0.5 * inv / vu, 0.5 / vu
    jac[3, 1], jac[3, 3] = 0.5 * inv / vu, 0.5 / vu
    jac[1, 0], jac[3, 0] = -2 * cu_n / vu, -2 * cd_n / vu
    if k == 5:
        jac[4, 4] = jac[5, 4] = 1 / vu**2
    elif k == 6:
        jac[4, 4], jac[5, 5] = 1 / vu**2, 1 / vu**2
    cov6 = jac @ cov_phi @ jac.T
    cov4 = cov6[:4, :4]
    # covariance of (V50 [V], ln|scale|, ln k50, slope_sum [1/V], curvatures [1/V²]) from the normalised φ
    if k == 5:
        # one common curvature: exported as (c_up, c_down) = (c, c), a rank-deficient covariance
        # in the 6-parameter layout every reader of phi_covariance uses
        emb = np.zeros((6, 5))
        emb[:5, :5] = np.eye(5)
        emb[5, 4] = 1.0
        cov_phi6 = emb @ cov_phi @ emb.T
    else:
        cov_phi6 = cov_phi
    conv = np.array([vu, 1.0, 1.0, 1 / vu] + ([1 / vu**2, 1 / vu**2] if k > 4 else []))
    cov_si = cov_phi6 * np.outer(conv, conv)
    return RateFit(v50=v50, scale=scale, tau_v50=tau, k_v50=k50, slope_sum_per_v=float(ssum / vu),
                   curvature_per_v2=curv, curvature_test=(float(lr), float(lr_p)),
                   common_curvature_test=common, deviance=float(deviance),
                   dof=int(dof), gof_p=gof_p, dispersion=float(dispersion), n_points=n_bias,
                   n_transitions=int(d.n_up.sum() + d.n_down.sum()),
                   bias_range_v=(float(d.v.min()), float(d.v.max())), reference_bias_v=float(v_ref),
                   ln_k_up=(float(lnk), float(bu)), ln_k_down=(float(lnk), float(bd)),
                   covariance=tuple(tuple(float(c) for c in row) for row in cov4),
                   coefficient_covariance=tuple(tuple(float(c) for c in row) for row in cov6),
                   phi_covariance=tuple(tuple(float(c) for c in row) for row in cov_si),
                   pearson_chi2=float(pearson),
                   _phi=tuple(float(x) for x in phi_hat), _units=(d.v_ref, vu, tu, sign))


def information_per_second(fit: RateFit, bias_v: float) -> np.ndarray:
    """Expected Fisher information about (ln k50, V50, ln scale, slope_sum[, curvature]) per simulated
    second at ``bias_v`` (fine sampling). A stationary record of length T at bias V holds on average
    T·P0·k_up exits from 0 and T·P1·k_down from 1, and k_up·P0 = k_down·P1 = P0·P1/τ, so the
    information on each of η_up, η_down is P0·P1/τ per second; it maps to φ through ∂η/∂φ. A fit with
    curvature terms adds their rows (5×5 for the common curvature c_up = c_down, 6×6 for both), so a
    design plans for the model it reports: with the curvature free, τ(V50) must be measured near V50,
    not read off straight lines through the flanks."""
    p = float(fit.p1(bias_v))
    q = p * (1 - p) / float(fit.tau_s(bias_v))
    x = bias_v - fit.v50.value
    s = fit.scale.value
    bu = 0.5 * (fit.slope_sum_per_v + 1 / s)
    bd = 0.5 * (fit.slope_sum_per_v - 1 / s)
    cu, cd = fit.curvature_per_v2 or (0.0, 0.0)
    # rows: dη/d(ln k50, V50, ln|scale|, slope_sum[, c | c_up, c_down])
    gu = [1.0, -bu - 2 * cu * x, -0.5 / s * x, 0.5 * x]
    gd = [1.0, -bd - 2 * cd * x, 0.5 / s * x, 0.5 * x]
    if fit.curvature_per_v2 is not None:
        if cu == cd:
            gu, gd = gu + [x * x], gd + [x * x]
        else:
            gu, gd = gu + [x * x, 0.0], gd + [0.0, x * x]
    gu, gd = np.array(gu), np.array(gd)
    return q * (np.outer(gu, gu) + np.outer(gd, gd))
