"""The mismatch procedure on a readout chain (pbit_x5: ``[balance] offset = "readout"``,
``faster_with_supply``): records that did not telegraph move the supply the way a chain needs (up: it has no
barrier to lower), one-sided records are re-centred as for a latch, and the model document says which
instance trim it used and which aux trim each instance held. Simulator and DC replaced by fakes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from noisecell.cells import load_cell
from noisecell.report.procedures.mismatch import MismatchSettings, _next_setting, run_mismatch

X5 = load_cell(str(Path(__file__).resolve().parents[1] / "spice_models" / "pbit_x5"))
PBIT = load_cell("pbit")
SPEC = SimpleNamespace(shared={"noise_step": "0.4ns"}, cell="pbit_x5", source="test-spec")
CUR = {"trim_v": 0.03, "vdd_v": 0.24, "biases_v": [-0.004, -0.001, 0.001, 0.004]}


def seen(regimes, p1):
    return {"regime": regimes, "p1": p1, "transitions": [0] * len(regimes), "bias_v": CUR["biases_v"]}


def test_a_chain_gets_more_supply_where_a_latch_gets_less():
    frozen = seen(["stuck", "single_peaked", "single_peaked", "stuck"], [0.0, 0.45, 0.55, 1.0])
    nxt, why = _next_setting(CUR, frozen, 3.2e-3, X5, faster_with_supply=True)
    assert nxt["vdd_v"] == pytest.approx(0.24 * 1.05, rel=1e-6) and "a chain" in why and nxt["biases_v"] == CUR["biases_v"]
    latch = {**CUR, "vdd_v": 0.1045}  # pbit's supply
    nxt, why = _next_setting(latch, frozen, 3.2e-3, PBIT, faster_with_supply=False)
    assert nxt["vdd_v"] == pytest.approx(0.1045 * 0.985, rel=1e-5) and "too much barrier" in why
    flat = seen(["single_peaked"] * 4, [0.5, 0.48, 0.52, 0.5])
    nxt, _ = _next_setting(CUR, flat, 3.2e-3, X5, faster_with_supply=True)
    assert nxt["vdd_v"] == pytest.approx(0.24 * 1.05, rel=1e-6)
    # records all on one side: re-centred (a logit step of the nominal scale), supply kept, for both kinds
    # (a chain even when some of them froze: on one side, not slow; a latch's "stuck" stays a barrier)
    low = seen(["single_peaked"] * 4, [0.05, 0.02, 0.08, 0.1])
    nxt, why = _next_setting(CUR, seen(["single_peaked", "stuck", "single_peaked", "single_peaked"], [0.05, 0.0, 0.08, 0.1]),
                             3.2e-3, X5, faster_with_supply=True)
    assert "re-centred" in why and nxt["vdd_v"] == CUR["vdd_v"]
    for cell, fws, cur in ((X5, True, CUR), (PBIT, False, latch)):
        nxt, why = _next_setting(cur, low, 3.2e-3, cell, faster_with_supply=fws)
        assert "re-centred" in why and nxt["vdd_v"] == cur["vdd_v"] and nxt["biases_v"][0] > cur["biases_v"][0]
    # a supply step past the range end ends the search with the reason
    top = {**CUR, "vdd_v": 0.84}
    nxt, why = _next_setting(top, flat, 3.2e-3, X5, faster_with_supply=True)
    assert nxt is None and "supply range" in why


@dataclass
class FakeSweep:
    dataframe: pd.DataFrame
    total: int = 0
    failed: int = 0


def test_run_mismatch_on_pbit_x5_raises_a_frozen_instances_supply_and_reports_the_untrimmable():
    """Instance 0 freezes at its DC supply and telegraphs 5 % higher; instance 1's offset is beyond the bias
    range (DC verdict carried through with its numbers); records are stand-ins whose rate-fit verdict is
    replaced (the chain rules are what is tested, not the fit)."""
    calls = []

    def dc_fn(settings):
        return {0: {"ok": True, "message": "balanced", "bias_v": 0.05, "trim_v": 0.03, "vdd_v": 0.24,
                    "aux_trim_v": {"VNW": 0.1}, "kind": "readout"},
                1: {"ok": False, "bias_v": -0.2, "trim_v": 0.05, "vdd_v": 0.25, "kind": "readout",
                    "message": "no DC trim: needs VB beyond the cell's range: the offset lies below the bias range "
                               "VB [-0.2, 0.3] V (readout +114.6 mV at VB -0.2 V, +114.6 mV at 0.3 V)"}}, {}

    def record_fn(name, instance, sweep_seed, setting, duration_s):
        calls.append((instance, dict(setting)))
        ok = setting["vdd_v"] > 0.245
        rows = [{"status": "ok", "bias_v": b, "p1": 0.5 if ok else (0.0 if i % 2 else 1.0),
                 "regime": "bistable" if ok else "stuck", "regime_n_transitions": 30 if ok else 0}
                for i, b in enumerate(setting["biases_v"])]
        df = pd.DataFrame(rows)
        return FakeSweep(df, len(df)), df

    import noisecell.report.procedures.mismatch as M

    orig = M._rate_fit_ok
    M._rate_fit_ok = lambda df: (bool(len(df)) and bool((df["regime"] == "bistable").sum() >= 3), "stand-in")
    try:
        # the instance's DC offset moves with its supply: +0.5 mV per mV
        res = run_mismatch(SPEC, X5, None, MismatchSettings(instances=2, duration_tau=30, rounds=2),
                           v50_v=0.3e-3, scale_v=3.2e-3, tau_s=93e-9, record_fn=record_fn, dc_fn=dc_fn,
                           offset_fn=lambda o, st: 0.05 + 0.5 * (st["vdd_v"] - 0.24))
    finally:
        M._rate_fit_ok = orig
    assert res.kind == "readout"
    o0, o1 = res.outcomes
    assert o0.fitted and [s["vdd_v"] for s in o0.settings] == [0.24, pytest.approx(0.252, rel=1e-6)]
    assert "a chain" in o0.settings[1]["why"] and "moved with the DC offset by +6 mV" in o0.settings[1]["why"]
    assert [b1 - b0 for b0, b1 in zip(*(s["biases_v"] for s in o0.settings))] == [pytest.approx(0.006, abs=1e-9)] * 4
    assert not o1.fitted and "the offset lies below the bias range" in o1.reason and "+114.6 mV" in o1.reason
    assert all(i == 0 for i, _ in calls)
    # the document: the aux trim each instance held is part of its trim, the note says which method
    doc = {"conditions": [{"corner": "tt", "temp_c": 27.0, "mismatch": {"instances": [
        {"instance": 0, "v50_v": 0.051}], "instances_not_fitted": []}}]}
    mm = res.apply_to_document(doc, ("tt", 27.0))["conditions"][0]["mismatch"]
    assert mm["instances"][0]["trim"]["trims_v"] == {"VNW": 0.1, "VGP": 0.03}
    assert "DC readout crosses its threshold" in mm["instance_trim"]
    assert [x["instance"] for x in mm["instances_not_fitted"]] == [1]
