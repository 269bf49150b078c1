"""Round trip: sample a model, analyse the bits with noisecell.analysis, fit a model back.

The generating model is known exactly, so every comparison is against truth; tolerances come from
the CIs the analysis/fit report (derivations inline). The cell has a falling sigmoid (negative
scale), like the reference pbit_generic cell.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from noisecell.analysis import analyze_stream
from noisecell.io import BitStream
from noisecell.model import CellInstances, CellModel, OutOfRangeError
from noisecell.model.cellmodel import Z95
from noisecell.model.fit import fit_sweep, synthetic_model
from noisecell.sweep.jobs import flatten

TAU, SCALE, V50 = 50e-9, -0.8e-3, 0.2e-3
BIASES = np.round(np.linspace(-1.6e-3, 2.0e-3, 7), 7)
DT = 0.5 * TAU
N = 60_000
STREAMS = 4


@pytest.fixture(scope="module")
def truth():
    return synthetic_model(name="truth", v50_v=V50, scale_v=SCALE, tau_v50_s=TAU, ln_k_sum_slope_per_v=150.0,
                           bias_range_v=(-3e-3, 3e-3), sample_period_s=DT)


def _rows(model, biases, streams, seed, instances=None, inst_ids=None, condition=None, temp_c=27.0):
    """One analysed stream per (bias, cell): a sweep-like table with the sweep's flattened columns."""
    rows = []
    for i, b in enumerate(biases):
        k = streams if instances is None else len(instances)
        bits = model.sample(float(b), N, DT, seed=seed + i, cells=k, mismatch=False, instances=instances,
                            condition=condition)
        for j in range(k):
            est = analyze_stream(BitStream(bits=bits[j], sample_period_s=DT, source=f"b{b}s{j}", meta={}))
            row = flatten(est.to_dict())
            row.update(corner="tt", temp_c=temp_c, vdd_v=0.06, bias_v=float(b), status="ok", cell="truth",
                       seed=int(seed + 1000 * i + j),
                       mismatch_instance=-1 if inst_ids is None else int(inst_ids[j]))
            rows.append(row)
    return pd.DataFrame.from_records(rows)


@pytest.fixture(scope="module")
def table(truth):
    return _rows(truth, BIASES, STREAMS, seed=100)


def test_analysis_recovers_p1_tau_and_rates_within_their_cis(truth, table):
    checks = {"p1": truth.p1, "tau_s": truth.tau,
              "rate_up_hz": lambda b: truth.rates(b)[0], "rate_down_hz": lambda b: truth.rates(b)[1]}
    misses, n_checks = 0, 0
    for col, fn in checks.items():
        z = []
        for _, r in table.iterrows():
            t = fn(r["bias_v"])
            lo, hi = r[f"{col}_ci95_lo"], r[f"{col}_ci95_hi"]
            n_checks += 1
            misses += not (lo <= t <= hi)
            if col == "p1":
                z.append((r[col] - t) / ((hi - lo) / (2 * Z95)))
            else:
                z.append((math.log(r[col]) - math.log(t)) / ((math.log(hi) - math.log(lo)) / (2 * Z95)))
        # no systematic bias: the mean of n standard-normal z-scores has sd 1/sqrt(n); 5 sigma
        assert abs(np.mean(z)) < 5 / math.sqrt(len(z)), (col, np.mean(z))
    # coverage: each 95 % CI misses with probability 0.05; allow the 1 - 1e-4 binomial quantile
    # (the checks within a stream are correlated, which widens the spread; the bound is still
    # far below what a biased sampler or analysis produces: every CI would miss)
    assert misses <= stats.binom.ppf(1 - 1e-4, n_checks, 0.05), (misses, n_checks)


def test_fitted_model_contains_the_truth(truth, table):
    doc = fit_sweep(table, name="fitted", source="synthetic")
    m = CellModel(doc)
    c = m.condition_data()
    s, t = c["sigmoid"], c["tau"]
    for est, ci, true in ((s["v50_v"], s["v50_ci95_v"], V50), (s["scale_v"], s["scale_ci95_v"], SCALE),
                          (t["tau_at_v50_s"], t["tau_at_v50_ci95_s"], TAU)):
        # fitted parameters are ~normal with se = CI half-width / 1.96; 5 se
        se = (ci[1] - ci[0]) / (2 * Z95)
        assert ci[0] < est < ci[1]
        assert abs(est - true) < 5 * se, (est, ci, true)
    # goodness of fit is recorded and the line model is adequate for data generated from it:
    # chi2 p-values are uniform under the truth; 1e-4 is the false-alarm rate accepted here
    for k in ("ln_k_up", "ln_k_down", "p1"):
        assert c["goodness_of_fit"][k]["p_value"] > 1e-4, (k, c["goodness_of_fit"][k])
    # the independent direct sigmoid fit agrees with the rate-implied one (5 combined se)
    d = s["direct_fit"]
    assert d is not None
    if d["form"] == "logistic":
        se = math.hypot(*( (x[1] - x[0]) / (2 * Z95) for x in (d["v50_ci95_v"], s["v50_ci95_v"])))
        assert abs(d["v50_v"] - s["v50_v"]) < 5 * se
    # entropy block: model min-entropy at V50 for the sweep's sample period, and cutoffs
    e = c["entropy"]
    assert e["sample_period_s"] == pytest.approx(DT)
    assert 0 < e["h_min_per_bit"] <= 1 and e["rct_cutoff"] >= 2 and e["apt_cutoff"] >= 1


def test_held_out_bias_points_are_predicted(truth, table):
    held = [float(BIASES[2]), float(BIASES[5])]
    doc = fit_sweep(table, exclude_bias=held, source="synthetic")
    m = CellModel(doc)
    assert all(not p["bias_v"] in held for p in m.condition_data()["points"])
    fresh = _rows(truth, held, STREAMS, seed=900)
    for _, r in fresh.iterrows():
        b = r["bias_v"]
        p_m, (p_lo, p_hi) = m.p1(b), m.p1_ci95(b)
        se = math.hypot((r["p1_ci95_hi"] - r["p1_ci95_lo"]) / (2 * Z95), (p_hi - p_lo) / (2 * Z95))
        # measurement and prediction are independent: z = diff / combined se ~ N(0,1); 5 sigma
        assert abs(r["p1"] - p_m) < 5 * se, (b, r["p1"], p_m, se)
        t_m, (t_lo, t_hi) = m.tau(b), m.tau_ci95(b)
        se_ln = math.hypot((math.log(r["tau_s_ci95_hi"]) - math.log(r["tau_s_ci95_lo"])) / (2 * Z95),
                           (math.log(t_hi) - math.log(t_lo)) / (2 * Z95))
        assert abs(math.log(r["tau_s"]) - math.log(t_m)) < 5 * se_ln, (b, r["tau_s"], t_m)


def test_mismatch_distribution_is_recovered():
    """Instances with known V50 offsets: the fitted spread matches the drawn one within its CI."""
    base = synthetic_model(name="mm", v50_v=0.0, scale_v=SCALE, tau_v50_s=TAU, bias_range_v=(-4e-3, 4e-3),
                           sample_period_s=DT)
    n_inst = 12
    rng = np.random.default_rng(7)
    dv = rng.normal(0.0, 0.6e-3, n_inst)
    g = np.exp(rng.normal(0.0, 0.1, n_inst))
    rows = _rows(base, np.linspace(-2.4e-3, 2.4e-3, 5), 1, seed=300, instances=CellInstances(dv, g),
                 inst_ids=np.arange(n_inst))
    doc = fit_sweep(rows, source="synthetic")
    mm = doc["conditions"][0]["mismatch"]
    assert mm["n_instances"] == n_inst
    # the fit's per-instance V50s estimate the drawn ones: sample sd of the drawn offsets vs the
    # reported de-noised sd; its chi-square CI (n-1 dof) must contain the drawn sample sd
    true_sd = float(np.std(dv, ddof=1))
    assert mm["v50_sd_ci95_v"][0] < true_sd < mm["v50_sd_ci95_v"][1], (mm["v50_sd_v"], true_sd)
    got = {i["instance"]: i["v50_v"] for i in mm["instances"]}
    # per-instance V50 error is small against the 0.6 mV spread (each instance has 5 x 60k samples)
    assert max(abs(got[i] - dv[i]) for i in range(n_inst)) < 0.1e-3
    m = CellModel(doc)
    inst = m.draw_instances(5000, seed=1)
    assert np.std(inst.dv50_v) == pytest.approx(mm["v50_sd_v"], rel=0.1)  # 5000 draws: sd rel. se 1 %


def test_two_temperatures_fit_into_an_interpolating_model():
    truth2 = synthetic_model(name="t2", v50_v=0.0, scale_v=SCALE, tau_v50_s=TAU, bias_range_v=(-3e-3, 3e-3),
                             temps_c=(0.0, 60.0), tau_temp_coeff_per_c=0.015, sample_period_s=DT)
    biases = np.linspace(-1.6e-3, 1.6e-3, 5)
    rows = pd.concat([_rows(truth2, biases, 2, seed=500 + int(t), condition={"temp_c": t}, temp_c=t)
                      for t in (0.0, 60.0)], ignore_index=True)
    m = CellModel(fit_sweep(rows, source="synthetic", nominal={"corner": "tt", "temp_c": 0.0, "vdd_v": 0.06}))
    assert [c.temp_c for c in m.conditions] == [0.0, 60.0] and m.nominal.temp_c == 0.0
    for t in (0.0, 30.0, 60.0):
        lo, hi = m.tau_ci95(0.0, {"temp_c": t})
        true = truth2.tau(0.0, {"temp_c": t})
        # CI of ln tau ~ normal: |ln est - ln true| < 5 se, se = log-CI width / (2*1.96)
        se = (math.log(hi) - math.log(lo)) / (2 * Z95)
        assert abs(math.log(m.tau(0.0, {"temp_c": t})) - math.log(true)) < 5 * se, (t, m.tau(0.0, {"temp_c": t}), true)
    with pytest.raises(OutOfRangeError, match="outside the calibrated range"):
        m.tau(0.0, {"temp_c": 70.0})
