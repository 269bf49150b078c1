"""The mismatch distribution (model schema v2): estimator coverage on synthetic instances with known truth,
the per-instance fit on synthetic telegraph streams, the sampler's draws, v1 files still read."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from noisecell.analysis import analyze_stream
from noisecell.io import BitStream
from noisecell.constants import Z95
from noisecell.errors import InputError
from noisecell.model import CellModel, OutOfRangeError
from noisecell.model.cellmodel import SCHEMA_VERSION, CellInstances
from noisecell.model.fit import fit_sweep, synthetic_model
from noisecell.model.instances import estimate_distribution

MU = np.array([2e-3, 0.02, -0.05])
SD = np.array([5e-3, 0.10, 0.15])
RHO = np.array([[1, 0.4, -0.2], [0.4, 1, 0.3], [-0.2, 0.3, 1]])
SIGMA = RHO * np.outer(SD, SD)


def _coverage_bound(reps: int, level: float = 0.95) -> float:
    # the coverage of R independent replicates is Binomial(R, 0.95)/R: sd sqrt(.95 .05 / R); 4 sigma
    return 4 * math.sqrt(level * (1 - level) / reps)


def test_distribution_cis_cover_the_known_mean_and_covariance():
    """30 instances, each measured with its own known estimation noise (30-80 % of the true spread) and
    against a reference that is itself an estimate: every mean and covariance CI covers the truth in
    95 % of replicates, within the binomial scatter of the replicate count."""
    rng = np.random.default_rng(1)
    n, reps = 30, 600
    chol = np.linalg.cholesky(SIGMA)
    hit_m, hit_c = np.zeros(3), np.zeros((3, 3))
    bias = np.zeros((3, 3))
    for _ in range(reps):
        true = MU + rng.standard_normal((n, 3)) @ chol.T
        f = rng.uniform(0.3, 0.8, n)
        est = np.array([np.diag((fi * SD) ** 2) for fi in f])
        e = rng.standard_normal((n, 3)) * (f[:, None] * SD)
        ref_cov = np.diag((0.2 * SD) ** 2)
        ref_err = rng.standard_normal(3) * 0.2 * SD
        d = estimate_distribution(true + e - ref_err, est, reference_cov=ref_cov)
        hit_m += (d.mean_ci95[:, 0] <= MU) & (MU <= d.mean_ci95[:, 1])
        hit_c += (d.covariance_ci95[..., 0] <= SIGMA) & (SIGMA <= d.covariance_ci95[..., 1])
        bias += (d.observed_covariance - d.mean_estimation_covariance - SIGMA) / np.outer(SD, SD)
    tol = _coverage_bound(reps)
    assert np.all(np.abs(hit_m / reps - 0.95) <= tol), hit_m / reps
    assert np.all(np.abs(hit_c / reps - 0.95) <= tol), hit_c / reps
    # the de-noised covariance is unbiased: mean standardised error ~ 0 within its scatter
    # (sd of one standardised element <= sqrt(2/(n-1)) * (1 + 0.8^2) ≈ 0.43; over reps, 5 sigma)
    assert np.all(np.abs(bias / reps) < 5 * 0.43 / math.sqrt(reps)), bias / reps


def test_without_denoising_the_spread_is_biased_high():
    """The test above can fail: ignoring the estimation noise inflates the variance, and the CIs then
    miss the truth far more often than 5 %."""
    rng = np.random.default_rng(2)
    n, reps = 30, 300
    chol = np.linalg.cholesky(SIGMA)
    hit = 0
    for _ in range(reps):
        true = MU + rng.standard_normal((n, 3)) @ chol.T
        e = rng.standard_normal((n, 3)) * (0.8 * SD)
        d = estimate_distribution(true + e, None)
        hit += d.covariance_ci95[0, 0, 0] <= SIGMA[0, 0] <= d.covariance_ci95[0, 0, 1]
    assert hit / reps < 0.95 - _coverage_bound(reps)


def test_unresolved_spread_does_not_leak_into_the_others():
    # tau ratio without any spread (pure estimation noise): its variance is 0, the offset's unchanged
    rng = np.random.default_rng(3)
    n = 200
    x = np.column_stack([rng.normal(0, 1e-3, n), rng.normal(0, 0.1, n), rng.normal(0, 0.05, n)])
    est = np.tile(np.diag([0.0, 0.0, 0.05 ** 2 * 1.05]), (n, 1, 1))
    d = estimate_distribution(x, est)
    assert d.covariance[2, 2] == 0 and d.covariance[0, 2] == 0
    assert d.covariance[0, 0] == pytest.approx(np.var(x[:, 0], ddof=1), rel=1e-9)
    assert d.sd_ci95[2][1] > 0          # ... but the CI says how large it could be


# ------------------------------------------------------------------ per-instance fit on telegraph streams
SCALE, TAU, DT, N = 1e-3, 2e-7, 5e-8, 40_000


def _instance_rows(base, inst, biases, seed):
    rows = []
    for i, b in enumerate(biases):
        # each instance is swept around its own midpoint (as the characterisation does)
        v = np.asarray(inst.dv50_v) + b * inst.gain
        bits = base.sample(v, N, DT, seed=seed + i, cells=len(inst), instances=inst)
        for j in range(len(inst)):
            est = analyze_stream(BitStream(bits=bits[j], sample_period_s=DT, source=f"i{j}b{i}", meta={}))
            from noisecell.sweep.jobs import flatten

            row = flatten(est.to_dict())
            row.update(corner="tt", temp_c=27.0, vdd_v=0.06, bias_v=float(v[j]), status="ok", cell="t",
                       seed=int(seed + 1000 * i + j), mismatch_instance=j)
            rows.append(row)
    return rows


def test_instances_with_known_offset_gain_and_tau_ratio_are_recovered():
    base = synthetic_model(name="mm", scale_v=SCALE, tau_v50_s=TAU, bias_range_v=(-30e-3, 30e-3), sample_period_s=DT)
    rng = np.random.default_rng(11)
    k = 12
    inst = CellInstances(rng.normal(0, 5e-3, k), np.exp(rng.normal(0, 0.15, k)), np.exp(rng.normal(0, 0.3, k)))
    rows = _instance_rows(base, inst, [-1.5e-3, -0.5e-3, 0.5e-3, 1.5e-3], seed=50)
    # the nominal cell, swept too, is the reference
    nom = _instance_rows(base, CellInstances.nominal(1), [-1.5e-3, -0.5e-3, 0.5e-3, 1.5e-3], seed=90)
    for r in nom:
        r["mismatch_instance"] = -1
    doc = fit_sweep(pd.DataFrame.from_records(rows + nom), source="synthetic")
    mm = doc["conditions"][0]["mismatch"]
    assert mm["n_instances"] == k and mm["distribution"]["reference"] == "nominal_cell"
    z = []
    for r in mm["instances"]:
        j = r["instance"]
        for key, truth, log in (("offset_v", inst.dv50_v[j], False), ("gain", inst.gain[j], True),
                                ("tau_ratio", inst.tau_ratio[j], True)):
            lo, hi = r["offset_ci95_v" if key == "offset_v" else key + "_ci95"]
            f = np.log if log else (lambda a: a)
            z.append((f(r[key]) - f(truth)) / ((f(hi) - f(lo)) / (2 * Z95)))
    z = np.array(z)
    # per-instance CIs ignore the reference's own error (common to all instances): |z| < 5, and the
    # mean z within 5/sqrt(n) of 0 plus the reference error's share (bounded by 1 sd of one instance)
    assert np.all(np.abs(z) < 5), z
    assert abs(z.mean()) < 5 / math.sqrt(len(z)) + 1, z.mean()
    m = CellModel(doc)
    draws = m.draw_instances(4000, seed=1)
    d = mm["distribution"]
    # 4000 draws: the draws' mean and sd match the stored ones (se sd/sqrt(n), sd/sqrt(2n)); 5 sigma
    for col, x in enumerate((draws.dv50_v, np.log(draws.gain), np.log(draws.tau_ratio))):
        s = d["sd"][col]
        assert abs(x.mean() - d["mean"][col]) <= 5 * s / math.sqrt(4000) + 1e-15
        assert abs(x.std() - s) <= 5 * s / math.sqrt(8000) + 1e-15


# ------------------------------------------------------------------ the sampler and thrml use the draws
def test_tau_ratio_slows_a_cell_and_keeps_its_p1():
    m = synthetic_model(scale_v=SCALE, tau_v50_s=TAU, bias_range_v=(-5e-3, 5e-3))
    k, n = 400, 400
    dt = TAU
    inst = CellInstances(np.zeros(2 * k), np.ones(2 * k), np.repeat([1.0, 3.0], k))
    bits = m.sample(0.0, n, dt, seed=4, cells=2 * k, instances=inst).astype(float)
    for half, r in enumerate((1.0, 3.0)):
        b = bits[half * k:(half + 1) * k]
        lag1 = np.mean((b[:, 1:] - 0.5) * (b[:, :-1] - 0.5)) / 0.25
        expect = math.exp(-dt / (r * TAU))
        # k*(n-1) pairs of ±1/2 values: se of the lag-1 correlation <= 1/sqrt(k n (1-λ)/(1+λ)); 5 sigma
        se = 1 / math.sqrt(k * (n - 1) * (1 - expect) / (1 + expect))
        assert abs(lag1 - expect) < 5 * se, (r, lag1, expect)
        assert abs(b.mean() - 0.5) < 5 * 0.5 / math.sqrt(k * n * (1 - expect) / (1 + expect))


def test_draws_are_seeded_and_follow_the_stored_distribution():
    cov = SIGMA * np.array([[1e-2, 1, 1], [1, 1, 1], [1, 1, 1]]) ** 0  # as is
    m = synthetic_model(scale_v=SCALE, tau_v50_s=TAU, bias_range_v=(-5e-3, 5e-3),
                        mismatch={"mean": MU.tolist(), "covariance": cov.tolist()})
    a, b = m.draw_instances(20000, seed=5), m.draw_instances(20000, seed=5)
    assert np.array_equal(a.dv50_v, b.dv50_v) and np.array_equal(a.tau_ratio, b.tau_ratio)
    x = np.column_stack([a.dv50_v, np.log(a.gain), np.log(a.tau_ratio)])
    # 20000 draws: mean se sd/141, covariance element se <= sqrt((s_jk^2 + s_jj s_kk)/n); 5 sigma
    assert np.all(np.abs(x.mean(0) - MU) < 5 * SD / math.sqrt(20000))
    se_c = np.sqrt((SIGMA ** 2 + np.outer(SD ** 2, SD ** 2)) / 20000)
    assert np.all(np.abs(np.cov(x.T) - SIGMA) < 5 * se_c)
    # the sampler's mismatch draws are the model's (seed child 0), same seed -> same bits
    s1 = m.sample(0.0, 50, 1e-7, seed=3, cells=64)
    assert np.array_equal(s1, m.sample(0.0, 50, 1e-7, seed=3, cells=64))


# ------------------------------------------------------------------ versions
def _as_v1(doc: dict) -> dict:
    d = json.loads(json.dumps(doc))
    d["schema_version"] = "1.0.0"
    for c in d["conditions"]:
        if c.get("mismatch"):
            c["mismatch"].pop("distribution", None)
        for k in ("energy_per_bit_method", "tau_v50_s", "record_energy_per_bit_j", "record_job_id"):
            c["energy"].pop(k, None)  # the 2.1 energy fields (model.energy)
        rm = c["rate_model"]          # the 2.2 curvature fields (model.ratemodel)
        for name in ("ln_k_up", "ln_k_down"):
            for k in ("curvature_per_v2", "curvature_se_per_v2"):
                rm[name].pop(k, None)
        rm["covariance"] = [row[:4] for row in rm["covariance"][:4]]
    return d


def test_version_1_files_load_and_are_saved_as_version_2(tmp_path):
    m2 = synthetic_model(scale_v=SCALE, tau_v50_s=TAU, mismatch=(3e-4, 0.1, 0.5))
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(_as_v1(m2.to_dict())))
    m = CellModel.load(p)
    assert m.read_schema_version == "1.0.0" and m.to_dict()["schema_version"] == SCHEMA_VERSION
    # a v1 model draws the same cells as before schema 2 (bivariate V50 / ln scale, tau ratio 1)
    inst = m.draw_instances(1000, seed=1)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1000, 2))
    assert np.allclose(inst.dv50_v, 3e-4 * z[:, 0]) and np.all(inst.tau_ratio == 1)
    out = m.save(tmp_path / "v2.json")
    assert json.loads(out.read_text())["schema_version"] == SCHEMA_VERSION
    # a v2-only block in a file that says 1.x is refused by the v1 schema, naming the file
    bad = _as_v1(m2.to_dict())
    bad["excluded_conditions"] = []
    p.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="cell-model-v1.json"):
        CellModel.load(p)


def test_a_failed_interpolation_check_refuses_that_interval():
    m = synthetic_model(scale_v=SCALE, tau_v50_s=TAU, temps_c=(-40.0, 27.0, 85.0))
    doc = m.to_dict()
    doc["interpolation_checks"] = [
        {"corner": "tt", "vdd_v": 0.06, "temp_c": 0.0, "between_c": [-40.0, 27.0], "passed": False, "note": "tau z = 4.1"},
        {"corner": "tt", "vdd_v": 0.06, "temp_c": 50.0, "between_c": [27.0, 85.0], "passed": True}]
    m = CellModel(doc)
    with pytest.raises(OutOfRangeError, match="cannot interpolate.*tau z = 4.1"):
        m.p1(0.0, {"temp_c": 10.0})
    assert 0 < m.p1(0.0, {"temp_c": 60.0}) < 1
