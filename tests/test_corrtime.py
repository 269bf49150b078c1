"""Measured autocorrelation times near V50 (noisecell.analysis.corrtime) against streams whose truth is
known: the Markov telegraph (every definition equals 1/(k_up + k_down)) and alternating renewal streams
with gamma dwells of shape m (integrated time τ/m, exactly; the dwell τ stays μ0μ1/(μ0+μ1))."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from noisecell.analysis import corrtime
from noisecell.analysis.stream import analyze_stream
from noisecell.analysis.synthetic import renewal_telegraph

DT = 1e-9
N = 40_000          # 40 µs records: 800 dwell times of 50 ns
TAU = 50e-9         # dwell time at V50 (s): mean dwells 100 ns each way
RECORDS = 10
REPS = 20


def _records(rng, shape: float, n_records: int = RECORDS) -> pd.DataFrame:
    rows = []
    for i in range(n_records):
        x = renewal_telegraph(N, DT, 2 * TAU, 2 * TAU, shape, rng)
        e = analyze_stream(x, sample_period_s=DT)
        rows.append({"bias_v": 0.0, "n_samples": N, "duration_s": N * DT, "tau_s": e.tau_s,
                     "acf_tau_exp_fit_s": e.tau_exp_fit_s, "acf_tau_iact_s": e.tau_iact_s})
    return pd.DataFrame(rows)


def _misses(shape: float, definition: str, truth: float, seed: int) -> int:
    rng = np.random.default_rng(seed)
    miss = 0
    for _ in range(REPS):
        p = corrtime.near_v50(_records(rng, shape), 0.0, 1e-3)[definition]
        miss += not (p.ci95_s[0] <= truth <= p.ci95_s[1])
    return miss


# A 95 % interval misses REPS·0.05 = 1 time in REPS on average; P(misses > 4 | 95 % coverage) = 0.3 %.
# A wrong truth (e.g. reading the dwell τ as the integrated time of gamma-2 streams, 2x off, or the
# integrated time of a Markov stream 8 % off) misses nearly every time.
MAX_MISSES = int(stats.binom.ppf(0.997, REPS, 0.05))


@pytest.mark.parametrize("definition", ["exp_fit", "iact"])
def test_markov_telegraph_every_definition_is_the_dwell_time(definition):
    assert _misses(1.0, definition, TAU, seed=3) <= MAX_MISSES


def test_gamma_dwells_integrated_time_is_tau_over_shape_and_shorter_than_the_dwell_time():
    assert _misses(2.0, "iact", TAU / 2, seed=4) <= MAX_MISSES
    rng = np.random.default_rng(5)
    df = _records(rng, 2.0)
    pooled = corrtime.near_v50(df, 0.0, 1e-3)
    # the records' own dwell (Markov) τ still reads TAU; both measured times sit clearly below it
    assert np.mean(df["tau_s"]) == pytest.approx(TAU, rel=0.1, abs=0)
    assert pooled["exp_fit"].ci95_s[1] < TAU and pooled["iact"].ci95_s[1] < TAU


def test_only_records_near_v50_are_pooled_and_too_few_give_none():
    df = pd.DataFrame({"bias_v": [-2e-3, -0.4e-3, 0.0, 0.4e-3, 2e-3], "n_samples": [1.0] * 5,
                       "duration_s": [1e-5] * 5, "acf_tau_exp_fit_s": [9.0, 1.0, 2.0, 3.0, 9.0],
                       "acf_tau_iact_s": [9.0, 1.0, float("nan"), 3.0, 9.0]})
    p = corrtime.near_v50(df, 0.0, 1e-3)       # ±0.5 mV
    assert p["exp_fit"].value_s == pytest.approx(2.0, rel=1e-12) and p["exp_fit"].n_records == 3
    assert p["exp_fit"].duration_s == pytest.approx(3e-5, rel=1e-12)
    # t-interval of three values 1, 2, 3: mean ± t(0.975, 2)·1/√3
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert p["exp_fit"].ci95_s == pytest.approx((max(2 - half, 0.0), 2 + half), rel=1e-12)
    assert p["iact"] is None                  # two finite values only


def _characterised(tmp_path, seed: int, biases, k0: float = 1e7, s: float = 2e-3):
    """A fitted synthetic characterisation of pbit_generic at tt 27 °C: Markov telegraphs of 100 µs with
    ln(k_up/k_down) = bias/s and k_up·k_down = k0² (V50 = 0, logistic scale s, τ(0) = 1/(2 k0)).
    Returns (points, fit result, datasheet table indexed by quantity)."""
    from noisecell.cells import load_cell
    from noisecell.io import BitStream
    from noisecell.report.procedures import fits as fits_mod
    from noisecell.report.procedures.datasheet import make_datasheet
    from noisecell.report.procedures.points import normalise_rows
    from noisecell.analysis.synthetic import telegraph

    rng = np.random.default_rng(seed)
    rows = []
    for b in biases:
        ku, kd = k0 * math.exp(b / (2 * s)), k0 * math.exp(-b / (2 * s))
        bits = telegraph(100_000, DT, ku, kd, rng)
        est = analyze_stream(BitStream(bits=bits, sample_period_s=DT, source="s", meta={}), temp_c=27.0)
        rows.append({"job_id": f"j{b}", "corner": "tt", "temp_c": 27.0, "vdd_v": 0.06, "bias_v": b,
                     "mismatch_instance": -1, "status": "ok", "regime": "bistable",
                     "simulated_s": bits.size * DT, **est.to_row()})
    raw = pd.DataFrame(rows)
    raw["part"], raw["role"] = "main", "fit"
    points = normalise_rows(raw, "main", "fit")
    points["fitted_regime"] = True
    ident = {"netlist_sha256": None, "model_package": None, "ngspice": None, "sweep_id": None}
    cell = load_cell("pbit_generic")
    res = fits_mod.fit_model(points, raw, cell, ident, ("tt", 27.0, 0.06), tmp_path)
    t = make_datasheet(points, res.fits, res.model, res.nominal, None, None, float("nan"), cell).table
    return points, res, t.set_index("quantity")


def test_datasheet_states_both_measured_times(tmp_path):
    k0 = 1e7
    points, res, t = _characterised(tmp_path, 8, (-4e-3, -2e-3, -1e-3, -0.5e-3, 0.0, 0.5e-3, 1e-3, 2e-3, 4e-3), k0)
    rows = [q for q in t.index if q.startswith("autocorrelation time of the bit stream at V50")]
    assert len(rows) == 2
    f = res.fits[0]
    n_near = int(((points["bias_v"] - f.v50_v).abs() <= corrtime.RATIO_SCALES * f.scale_v).sum())
    for q in rows:
        assert f"{n_near} records" in t.loc[q, "note"]
        # a Markov cell: the measured time is the dwell time 1/(2 k0) at V50 = 0 (τ falls by < 1 % over
        # ±0.5 scales)
        assert t.loc[q, "ci_lo"] <= 1 / (2 * k0) <= t.loc[q, "ci_hi"]


def test_datasheet_states_p1_and_flip_rate_at_the_declared_mid_bias(tmp_path):
    """pbit_generic declares mid_v = 0; the synthetic truth there is k_up = k_down = k0: P(1) = 0.5 and
    2·k_up·k_down/(k_up + k_down) = k0 flips per second. Each 95 % interval holds its truth (a fixed
    draw; each misses with probability 5 %). At V50 the flip-rate CI is the τ CI mapped by 1/(2τ)."""
    k0, s = 1e7, 2e-3
    points, res, t = _characterised(tmp_path, 12, (-4e-3, -2e-3, 1e-3, 3e-3, 5e-3), k0, s)
    p = t.loc["P(1) at the declared mid bias"]
    assert p["ci_lo"] <= 0.5 <= p["ci_hi"] and "+0 mV" in p["note"]
    k = t.loc["flip rate at the declared mid bias"]
    assert k["ci_lo"] <= k0 <= k["ci_hi"]
    m, v50 = res.model, res.model.v50(res.nominal)
    lo, hi = m.tau_ci95(v50, res.nominal)
    assert m.flip_rate_ci95(v50, res.nominal) == pytest.approx((1 / (2 * hi), 1 / (2 * lo)), rel=1e-9)
    pm = m.p1(0.004, res.nominal)
    assert m.flip_rate(0.004, res.nominal) == pytest.approx(2 * pm * (1 - pm) / m.tau(0.004, res.nominal), rel=1e-12)
    w = t.loc["bias width P(1) 10 % → 90 %"]
    assert w["value"] == pytest.approx(2 * math.log(9) * res.fits[0].scale_v, rel=1e-12)
    assert w["ci_lo"] <= 2 * math.log(9) * s <= w["ci_hi"]


def test_scaled_to_v50_reads_the_dwell_shape_from_flank_records():
    """Gamma-2 dwells at 10 biases over ±1.5 scales (ln(k_up/k_down) = x, k_up·k_down = k0²): the dwell τ
    falls by 26 % towards ±1.5 scales, the integrated time is half of it at every bias. τ(V50) × the mean
    measured/dwell ratio must cover τ(V50)/2 (given τ(V50) exactly, so the interval is the ratio's); the
    dwell τ itself (ratio 1: reading the dwells as the autocorrelation) misses every time."""
    k0, s = 1 / (2 * TAU), 1e-3
    rng = np.random.default_rng(6)
    miss = 0
    xs = np.linspace(-1.5, 1.5, RECORDS)
    for _ in range(REPS):
        rows = []
        for x in xs:
            ku, kd = k0 * math.exp(x / 2), k0 * math.exp(-x / 2)
            e = analyze_stream(renewal_telegraph(N, DT, 1 / ku, 1 / kd, 2.0, rng), sample_period_s=DT)
            rows.append({"bias_v": x * s, "n_samples": N, "duration_s": N * DT,
                         "acf_tau_exp_fit_s": e.tau_exp_fit_s, "acf_tau_iact_s": e.tau_iact_s})
        df = pd.DataFrame(rows)
        tau_at = lambda v: 1 / (2 * k0 * math.cosh(v / s / 2))      # the exact dwell time
        p = corrtime.scaled_to_v50(df, tau_at, TAU, (TAU * (1 - 1e-9), TAU * (1 + 1e-9)), 0.0, s)["iact"]
        assert p.n_records == RECORDS
        miss += not (p.ci95_s[0] <= TAU / 2 <= p.ci95_s[1])
    assert miss <= MAX_MISSES
