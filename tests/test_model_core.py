"""CellModel: schema round trip, validation errors, physics of p1/tau, range errors, exact sampler.

Statistical tolerances are derived in comments; every check uses a fixed seed, so a pass is
reproducible, and the tolerances are wide enough (>= 5 sigma) that a correct sampler essentially
never fails, while a wrong discretisation (e.g. 1 - exp(-k_up dt) at dt ~ tau) misses by tens of sigma.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from noisecell.errors import InputError
from noisecell.model import CellInstances, CellModel, OutOfRangeError
from noisecell.model import sampler as sampler_mod
from noisecell.model.fit import synthetic_model

TAU = 1e-6
SCALE = 1e-3


@pytest.fixture(scope="module")
def model():
    return synthetic_model(scale_v=SCALE, tau_v50_s=TAU, v50_v=2e-4, ln_k_sum_slope_per_v=300.0,
                           bias_range_v=(-5e-3, 5e-3), temps_c=(0.0, 50.0), tau_temp_coeff_per_c=0.02,
                           mismatch=(3e-4, 0.1, 0.5), sample_period_s=1e-6, rel_se=0.01)


def test_save_load_round_trip(model, tmp_path):
    p = model.save(tmp_path / "m.json")
    m2 = CellModel.load(p)
    assert m2.to_dict() == model.to_dict()
    b = np.linspace(-4e-3, 4e-3, 7)
    assert np.array_equal(m2.p1(b), model.p1(b))
    assert m2.conditions == model.conditions and m2.nominal == model.nominal


def test_validation_errors_name_file_and_first_violation(model, tmp_path):
    doc = model.to_dict()
    doc["conditions"][0]["tau"]["tau_at_v50_s"] = -1.0
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError) as e:
        CellModel.load(p)
    msg = str(e.value)
    assert str(p) in msg and "/conditions/0/tau/tau_at_v50_s" in msg and "\n" not in msg

    doc = model.to_dict()
    doc["nominal_condition"]["temp_c"] = 99.0
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="nominal_condition"):
        CellModel.load(p)

    p.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        CellModel.load(p)
    with pytest.raises(InputError, match="no such cell model"):
        CellModel.load(tmp_path / "missing.json")

    # save refuses to write an invalid document and leaves no file behind
    doc = model.to_dict()
    doc["schema_version"] = "3.0.0"
    bad = CellModel(doc, validate=False)
    with pytest.raises(InputError, match="schema_version"):
        bad.save(tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_p1_tau_match_the_generating_rates(model):
    v50 = 2e-4
    assert model.v50() == pytest.approx(v50, abs=1e-12)
    assert model.scale() == pytest.approx(SCALE, rel=1e-12)
    assert model.p1(v50) == pytest.approx(0.5, abs=1e-12)
    assert model.p1(v50 + SCALE) == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-12)
    assert model.tau(v50) == pytest.approx(TAU, rel=1e-12)
    ku, kd = model.rates(1e-3)
    assert model.tau(1e-3) == pytest.approx(1 / (ku + kd), rel=1e-12)
    assert model.p1(1e-3) == pytest.approx(ku / (ku + kd), rel=1e-12)
    lo, hi = model.p1_ci95(1e-3)
    assert lo < model.p1(1e-3) < hi
    lo, hi = model.tau_ci95(1e-3)
    assert lo < model.tau(1e-3) < hi
    # the stored tau(bias) table is the rate model's tau
    c = model.condition_data()
    assert np.allclose(model.tau(np.array(c["tau"]["bias_v"])), c["tau"]["tau_s"], rtol=1e-12)


def test_temperature_interpolation_is_linear_in_ln_k(model):
    t0, t50 = model.tau(0.0, {"temp_c": 0.0}), model.tau(0.0, {"temp_c": 50.0})
    t25 = model.tau(0.0, {"temp_c": 25.0})
    assert t25 == pytest.approx(math.sqrt(t0 * t50), rel=1e-9)
    assert model.p1(0.0, {"temp_c": 25.0}) == pytest.approx(model.p1(0.0), rel=1e-9)  # same sigmoid at both


@pytest.mark.parametrize("kwargs, match", [
    ({"bias": 6e-3}, "outside the validated range"),
    ({"bias": 0.0, "condition": {"temp_c": 80.0}}, "outside the calibrated range"),
    ({"bias": 0.0, "condition": {"corner": "ff"}}, "no calibration for corner"),
    ({"bias": 0.0, "condition": {"vdd_v": 0.07}}, "no calibration for corner"),
])
def test_out_of_range_queries_raise(model, kwargs, match):
    with pytest.raises(OutOfRangeError, match=match):
        model.p1(kwargs["bias"], kwargs.get("condition"))
    with pytest.raises(OutOfRangeError):
        model.sample(kwargs["bias"], 10, 1e-6, seed=0, condition=kwargs.get("condition"))


def test_sample_shapes_and_reproducibility(model, monkeypatch):
    one = model.sample(0.0, 500, 1e-7, seed=3)
    assert one.shape == (500,) and one.dtype == np.uint8 and set(np.unique(one)) <= {0, 1}
    many = model.sample(0.0, 500, 1e-7, seed=3, cells=4)
    assert many.shape == (4, 500)
    again = model.sample(0.0, 500, 1e-7, seed=3, cells=4)
    assert np.array_equal(many, again)
    assert not np.array_equal(many, model.sample(0.0, 500, 1e-7, seed=4, cells=4))
    # the random stream is laid out step by step, so the chunk size cannot change the bits
    monkeypatch.setattr(sampler_mod, "_CHUNK_VALUES", 7)
    assert np.array_equal(many, model.sample(0.0, 500, 1e-7, seed=3, cells=4))
    with pytest.raises(InputError, match="ambiguous"):
        model.sample(np.zeros(5), 5, 1e-7, seed=0, cells=5)
    with pytest.raises(InputError, match="expected"):
        model.sample(np.zeros(3), 5, 1e-7, seed=0, cells=4)


@pytest.mark.parametrize("dt_over_tau", [0.05, 1.0, 5.0])
def test_sampler_is_the_exact_ctmc_discretisation(model, dt_over_tau):
    """Stationary P(1) and the one-step transition frequencies equal the exact ones for any dt."""
    bias = 1e-3
    dt = dt_over_tau * model.tau(bias)
    k, n = 400, 2000
    bits = model.sample(bias, n, dt, seed=11, cells=k, mismatch=False)
    ku, kd = model.rates(bias)
    ktot = ku + kd
    p1 = ku / ktot
    q = -math.expm1(-ktot * dt)
    p_up, p_down = p1 * q, (1 - p1) * q
    lam = 1 - p_up - p_down  # lag-1 autocorrelation of the 2-state chain
    # P(1): mean of K*N correlated Bernoulli(p1) samples; variance p(1-p)/n_eff with
    # n_eff = K*N*(1-lam)/(1+lam) (AR(1)-like chain); tolerance 5 sigma
    n_eff = k * n * (1 - lam) / (1 + lam)
    assert abs(bits.mean() - p1) < 5 * math.sqrt(p1 * (1 - p1) / n_eff)
    # transitions: given the current state the next step is an independent Bernoulli trial, so the
    # 0->1 fraction among the n0 steps that start in 0 has sd sqrt(p_up(1-p_up)/n0); 5 sigma
    head, tail = bits[:, :-1], bits[:, 1:]
    n0, n1 = int((head == 0).sum()), int((head == 1).sum())
    f_up = ((head == 0) & (tail == 1)).sum() / n0
    f_down = ((head == 1) & (tail == 0)).sum() / n1
    assert abs(f_up - p_up) < 5 * math.sqrt(p_up * (1 - p_up) / n0)
    assert abs(f_down - p_down) < 5 * math.sqrt(p_down * (1 - p_down) / n1)
    if dt_over_tau >= 1.0:
        # the first-order formula 1 - exp(-k_up dt) would be off by many sigma here: the test can fail
        naive = -math.expm1(-ku * dt)
        assert abs(f_up - naive) > 10 * math.sqrt(p_up * (1 - p_up) / n0)


def test_per_step_bias_relaxes_with_the_new_tau(model):
    """After a bias step every cell's P(1) relaxes as p_new + (p_old - p_new) exp(-t / tau_new)."""
    k, n = 20000, 40
    dt = 0.25 * TAU
    bias = np.where(np.arange(n) < 10, -2e-3, 2e-3)
    bits = model.sample(bias, n, dt, seed=5, cells=k, mismatch=False)
    p_old, p_new, tau_new = model.p1(-2e-3), model.p1(2e-3), model.tau(2e-3)
    for j in (10, 14, 20, 39):
        t = (j - 9) * dt
        expect = p_new + (p_old - p_new) * math.exp(-t / tau_new)
        # K independent cells at one time: binomial sd; 5 sigma
        assert abs(bits[:, j].mean() - expect) < 5 * math.sqrt(expect * (1 - expect) / k)


def test_mismatch_draws_follow_the_calibrated_distribution(model):
    inst = model.draw_instances(20000, seed=1)
    assert np.array_equal(inst.dv50_v, model.draw_instances(20000, seed=1).dv50_v)
    # sample sd of n normal draws has relative sd 1/sqrt(2n) = 0.5 %; 5 sigma -> 2.5 %
    assert np.std(inst.dv50_v) == pytest.approx(3e-4, rel=0.025)
    assert np.std(np.log(inst.gain)) == pytest.approx(0.1, rel=0.025)
    # sample correlation sd ~ (1-rho^2)/sqrt(n) = 0.0053; 5 sigma
    assert np.corrcoef(inst.dv50_v, np.log(inst.gain))[0, 1] == pytest.approx(0.5, abs=0.027)


def test_each_cell_follows_its_own_mismatched_sigmoid(model):
    inst = CellInstances(np.array([0.0, 1e-3, -1e-3]), np.array([1.0, 2.0, 0.5]))
    k_rep, n = 3000, 20
    dt = 3 * TAU  # nearly independent samples
    cells = CellInstances(np.repeat(inst.dv50_v, k_rep), np.repeat(inst.gain, k_rep))
    bits = model.sample(1e-3, n, dt, seed=9, cells=3 * k_rep, instances=cells)
    for i in range(3):
        v_eff = 2e-4 + (1e-3 - 2e-4 - inst.dv50_v[i]) / inst.gain[i]
        expect = model.p1(v_eff)
        got = bits[i * k_rep:(i + 1) * k_rep].mean()
        # k_rep*n samples with lag-1 correlation <= exp(-3) (n_eff >= 0.9 * count); 5 sigma
        assert abs(got - expect) < 5 * math.sqrt(expect * (1 - expect) / (0.9 * k_rep * n))
