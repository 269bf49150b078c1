"""Job expansion: content-addressed ids, seeds, and pooling of adaptive chunks (no simulation here)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from noisecell.errors import InputError
from noisecell.analysis.estimates import StreamEstimates
from noisecell.sweep.adaptive import pool, should_stop
from noisecell.sweep.jobs import chunk_seed, derive_seed, expand, mismatch_seed, stream_stats
from noisecell.sweep.spec import AdaptiveSpec, parse_spec

BASE = {"cell": "pbit_generic", "duration": "2us", "noise_step": "1ns", "seed": 7,
        "grid": {"bias": [-0.001, 0.0, 0.001]}}


def ids(d):
    return [j.job_id for j in expand(parse_spec(d))]


def with_(**changes):
    d = {**BASE, "grid": dict(BASE["grid"])}
    for k, v in changes.items():
        if k.startswith("grid_"):
            d["grid"][k[5:]] = v
        else:
            d[k] = v
    return d


def test_same_spec_same_ids_and_order():
    a, b = ids(BASE), ids(dict(BASE))
    assert a == b and len(set(a)) == 3


@pytest.mark.parametrize("change", [
    {"seed": 8}, {"duration": "3us"}, {"noise_step": "0.5ns"}, {"threshold": "1mV"},
    {"grid_temperature": [30]}, {"grid_vdd": [0.07]}, {"params": {"VREF": 0.001}},
    {"adaptive": {"target_p1_ci_halfwidth": 0.1, "chunk": "1us", "max_duration": "4us"}},
])
def test_anything_that_changes_results_changes_every_id(change):
    a, b = ids(BASE), ids(with_(**change))
    assert not set(a) & set(b), change


def test_adding_a_point_keeps_the_other_ids_and_seeds():
    a = expand(parse_spec(BASE))
    b = expand(parse_spec(with_(grid_bias=[-0.001, 0.0, 0.0005, 0.001])))
    by_bias = {j.conditions["bias_v"]: j for j in b}
    for j in a:
        assert by_bias[j.conditions["bias_v"]].job_id == j.job_id
        assert by_bias[j.conditions["bias_v"]].conditions["seed"] == j.conditions["seed"]


def test_settings_that_do_not_change_results_keep_ids():
    assert ids(BASE) == ids(with_(timeout=5, retries=0, workers=3, executor="dask"))


def test_seeds_distinct_and_in_ngspice_range():
    jobs = expand(parse_spec(with_(grid_bias={"start": -0.002, "stop": 0.002, "num": 41})))
    seeds = [j.conditions["seed"] for j in jobs]
    assert len(set(seeds)) == len(seeds)
    assert all(1 <= s < 2**31 for s in seeds)
    ms = [mismatch_seed(1, i) for i in range(100)]
    assert len(set(ms)) == 100 and mismatch_seed(1, 3) == mismatch_seed(1, 3) != mismatch_seed(2, 3)
    cs = [chunk_seed(seeds[0], k) for k in range(50)]
    assert len(set(cs)) == 50
    assert derive_seed(5, 1, 2) == derive_seed(5, 1, 2) != derive_seed(5, 2, 1)


def test_mismatch_on_generic_cell_is_refused_and_bad_axis_values_named():
    with pytest.raises(InputError, match="mismatch_instances"):
        expand(parse_spec(with_(grid_mismatch_instances=2)))
    with pytest.raises(InputError, match="grid.bias.*outside"):
        expand(parse_spec(with_(grid_bias=[0.5])))
    with pytest.raises(InputError, match="grid.corner"):
        expand(parse_spec(with_(grid_corner=["ff"])))
    with pytest.raises(InputError, match="params.NOPE"):
        expand(parse_spec(with_(params={"NOPE": 1.0})))


def test_defaults_are_the_cells_nominal():
    (j,) = expand(parse_spec({"cell": "pbit_generic", "duration": "2us"}))
    c = j.conditions
    assert (c["corner"], c["temp_c"], c["vdd_v"], c["bias_v"]) == ("tt", 27.0, 0.06, 0.0)


def _markov(n, p01, p10, rng):
    """Two-state chain: P(0->1) = p01, P(1->0) = p10 per sample, started from stationarity."""
    u = rng.random(n)
    b = np.empty(n, np.uint8)
    s = int(rng.random() < p01 / (p01 + p10))
    for i in range(n):
        b[i] = s
        s = (u[i] >= p10) if s else (u[i] < p01)
    return b


def test_pooled_chunks_recover_known_rates_and_p1():
    rng = np.random.default_rng(11)
    dt, p01, p10 = 1e-9, 0.01, 0.02          # truth: P(1) = 1/3, k_up = 1e7 /s, k_down = 2e7 /s
    rows = []
    for k in range(8):
        b = _markov(20_000, p01, p10, rng)
        st = stream_stats(b, dt)
        # n_eff of a 2-state chain: n (1 - rho)/(1 + rho), rho = 1 - p01 - p10
        rho = 1 - p01 - p10
        rows.append({**st, "n_eff": st["n_samples"] * (1 - rho) / (1 + rho), "simulated_s": 20_000 * dt,
                     "mean_supply_power_w": 1e-9})
    P = pool(rows)
    # Tolerances: transitions are ~Poisson. 160k samples, time in 0 ≈ 107k samples → ≈ 1070 up
    # transitions: relative sd 1/sqrt(1070) ≈ 3 %; 4 sd = 12 %. P(1): n_eff ≈ 160k·0.03/1.97 ≈ 2440,
    # sd = sqrt(p(1-p)/n_eff) ≈ 0.0095; 4 sd ≈ 0.038.
    # continuous-time truth of this chain (its embedding): k = pi * (-ln(1 - p01 - p10)) / dt
    k = -math.log(1 - p01 - p10) / dt
    assert P["rate_up_hz"] == pytest.approx(k / 3, rel=0.12)
    assert P["rate_down_hz"] == pytest.approx(2 * k / 3, rel=0.12)
    assert P["p1"] == pytest.approx(1 / 3, abs=0.038)
    assert P.rate_up_hz_ci95.lo < P.rate_up_hz < P.rate_up_hz_ci95.hi
    assert P["n_eff_within"] == pytest.approx(sum(r["n_eff"] for r in rows))
    # the between-chunk check only ever lowers n_eff; with 8 consistent chunks s^2/sigma^2 ~ chi2_7/7,
    # which exceeds 3 with probability 0.004, so n_eff ≥ n_eff_within / 3 here
    assert P["n_eff_within"] / 3 <= P["n_eff"] <= P["n_eff_within"]
    assert P["chunks_consistency_p"] > 1e-3
    assert P["tau_s"] == pytest.approx(1 / (P["rate_up_hz"] + P["rate_down_hz"]))
    # CI half-width ≈ 1.96 sqrt(p(1-p)/n_eff) (Wilson ≈ Wald here)
    assert P["p1_ci_halfwidth"] == pytest.approx(1.96 * math.sqrt(P["p1"] * (1 - P["p1"]) / P["n_eff"]), rel=0.02)
    # exact bookkeeping: sums of the chunks
    assert P["n_samples"] == 160_000 and P["n_flips"] == sum(r["n_up"] + r["n_down"] for r in rows)


def test_chunks_slower_than_their_length_are_caught():
    """Each chunk sits in one state with a few short excursions (its own n_eff is large), but the
    chunks disagree: the between-chunk scatter must widen the pooled CI to what the scatter implies."""
    rows = []
    for p in (0.05, 0.5, 0.95, 0.1):
        n = 10_000
        rows.append({"n_samples": n, "n_ones": int(p * n), "n_up": 5, "n_down": 5, "occ0_samples": n - int(p * n),
                     "occ1_samples": int(p * n), "sample_period_s": 1e-9, "n_eff": 2000.0, "simulated_s": 1e-5,
                     "mean_supply_power_w": None})
    P = pool(rows)
    ps = np.array([0.05, 0.5, 0.95, 0.1])
    se = ps.std(ddof=1) / 2                                 # sqrt(s^2 / K), K = 4
    assert P["n_eff"] == pytest.approx(P["p1"] * (1 - P["p1"]) / se**2, rel=1e-9)
    assert P["n_eff_method"] == "between-chunk scatter" and P["n_eff"] < 10
    from noisecell.analysis.p1 import wilson_interval
    lo, hi = wilson_interval(P["p1"], P["n_eff"])
    assert P["p1_ci_halfwidth"] == pytest.approx((hi - lo) / 2) and P["p1_ci_halfwidth"] > 0.25
    assert P["chunks_consistency_p"] < 1e-6


def test_stop_rule():
    a = AdaptiveSpec(0.05, 1e-6, 4e-6, 2e-6)
    assert (a.min_chunks, a.max_chunks) == (2, 4)
    def est(hw):
        return StreamEstimates(p1=0.5, p1_ci95=(0.5 - hw, 0.5 + hw))

    assert not should_stop(est(0.01), 1, a)      # below the minimum
    assert should_stop(est(0.01), 2, a)
    assert not should_stop(est(0.2), 3, a)
    assert should_stop(est(0.2), 4, a)           # max_duration reached


def test_mismatch_instances_on_pdk_cell():
    """pbit (sky130): instance i has one mismatch seed at every condition, distinct across instances,
    passed to ngspice as .option seed with the PDK mismatch switch on; no simulation here."""
    spec = parse_spec({"cell": "pbit", "duration": "2us", "seed": 3,
                       "grid": {"bias": [-0.01, 0.01], "temperature": [27, 85], "mismatch_instances": 3}})
    jobs = expand(spec)
    assert len(jobs) == 2 * 2 * 3 and len({j.job_id for j in jobs}) == 12
    by_inst: dict[int, set] = {}
    for j in jobs:
        c = j.conditions
        by_inst.setdefault(c["mismatch_instance"], set()).add(c["mismatch_seed"])
        text = j.sim_job.render()
        assert "MC_MM_SWITCH=1" in text and f"seed={c['mismatch_seed']}" in text
    assert sorted(by_inst) == [0, 1, 2]
    assert all(len(s) == 1 for s in by_inst.values())
    assert len({next(iter(s)) for s in by_inst.values()}) == 3
    # noise seeds still differ point by point
    assert len({j.conditions["seed"] for j in jobs}) == 12
    # without mismatch: switch off, no seed option
    (j0,) = expand(parse_spec({"cell": "pbit", "duration": "2us", "grid": {"bias": [0.0]}}))
    assert j0.conditions["mismatch_instance"] == -1 and "MC_MM_SWITCH=0" in j0.sim_job.render()


def test_result_code_fingerprint_enters_the_id(monkeypatch):
    import noisecell.sweep.jobs as J

    a = ids(BASE)
    monkeypatch.setattr(J, "source_fingerprint", lambda: "0" * 16)
    assert not set(a) & set(ids(BASE))
