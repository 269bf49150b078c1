"""The mismatch search's extra records (noisecell/report/procedures/mismatch.py) and per-cell [mismatch]
overrides. An instance whose records switch but give no rate fit gets as many new records at the same trim as
the fit's 3 accepted ones still need plus a spare (pbit_x5: 3 records of 100 τ, 72 % of them bistable), not only
the midpoints between its records (the old rule: 2 for 3 records, whatever was missing)."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd
import pytest

import noisecell.report.procedures.mismatch as M
from noisecell.cells import load_cell
from noisecell.errors import InputError
from noisecell.report.procedures.mismatch import MismatchSettings, _more_records, parse_mismatch, run_mismatch

CELL = load_cell("pbit")
SPEC = SimpleNamespace(shared={"noise_step": "0.4ns"}, cell="pbit", source="test-spec")


@dataclass
class FakeSweep:
    dataframe: pd.DataFrame
    total: int = 0
    failed: int = 0


def test_more_records_as_many_as_the_fit_still_needs():
    b = [-0.003, 0.0, 0.003]
    assert _more_records(b, 2) == [pytest.approx(-0.0015), pytest.approx(0.0015)]          # the midpoints
    # 3, inside the span, none at a bias already recorded (0 V is: its job, seed and noise would repeat)
    got = _more_records(b, 1)
    assert len(got) == 3 and all(-0.003 < x < 0.003 for x in got) and all(abs(x - y) > 1e-9 for x in got for y in b)
    # and none at any bias of earlier rounds either
    again = _more_records(got, 1, taken=b)
    assert len(again) == 3 and all(abs(x - y) > 1e-9 for x in again for y in b + got)
    assert len(_more_records(b, 0)) == 4
    # never fewer than the midpoints (pbit's 4 records: 3 midpoints, as before, unless none was usable)
    assert _more_records([-3.0, -1.0, 1.0, 3.0], 2) == [-2.0, 0.0, 2.0]
    assert len(_more_records([-3.0, -1.0, 1.0, 3.0], 0)) == 4


def test_an_instance_short_of_two_usable_records_gets_three_more_and_fits():
    """Round 1: 1 of 3 records bistable (the others switch, called single-peaked). Round 2: its first new record
    is single-peaked again, the rest bistable. With the midpoints only (2 records) it ends with 2 usable and no
    fit; with 3 new records it has 3. The rate-fit verdict is a stand-in (3 bistable records)."""
    calls = []

    def dc_fn(settings):
        return {0: {"ok": True, "message": "balanced", "bias_v": 0.01, "trim_v": 0.03, "vdd_v": 0.24}}, {}

    def record_fn(name, instance, sweep_seed, setting, duration_s):
        calls.append((name, len(setting["biases_v"]), duration_s))
        first = name.endswith("-s0")
        rows = [{"status": "ok", "bias_v": b, "p1": 0.5, "rates_resolved": True, "regime_n_transitions": 40,
                 "regime": "bistable" if (i == 1 if first else i > 0) else "single_peaked"}
                for i, b in enumerate(setting["biases_v"])]
        df = pd.DataFrame(rows)
        return FakeSweep(df, len(df)), df

    orig = M._rate_fit_ok
    M._rate_fit_ok = lambda df: (bool(len(df)) and bool((df["regime"] == "bistable").sum() >= 3), "stand-in")
    try:
        res = run_mismatch(SPEC, CELL, None, MismatchSettings(instances=1, p1=(0.3, 0.5, 0.7), duration_tau=100,
                                                              rounds=1),
                           v50_v=0.0, scale_v=3.2e-3, tau_s=80e-9, record_fn=record_fn, dc_fn=dc_fn)
    finally:
        M._rate_fit_ok = orig
    (o,) = res.outcomes
    assert [n for _, n, _ in calls] == [3, 3]
    allb = [x for st in o.settings for x in st["biases_v"]]
    assert all(abs(x - y) > 1e-9 for i, x in enumerate(allb) for y in allb[i + 1:])   # no record repeated
    assert calls[1][2] == pytest.approx(calls[0][2])                # 40 transitions: as long, same trim
    assert o.settings[1]["trim_v"] == o.settings[0]["trim_v"] and "1 usable" in o.settings[1]["why"]
    assert o.fitted, o.reason


def test_records_with_few_transitions_get_twice_as_long():
    """pbit's rule stays: switching records with few transitions (its 40-τ records hold ≤ 28) are doubled."""
    calls = []

    def dc_fn(settings):
        return {0: {"ok": True, "message": "balanced", "bias_v": 0.01, "trim_v": 0.03, "vdd_v": 0.1045}}, {}

    def record_fn(name, instance, sweep_seed, setting, duration_s):
        calls.append(duration_s)
        ok = not name.endswith("-s0")
        rows = [{"status": "ok", "bias_v": b, "p1": 0.5, "rates_resolved": ok, "regime_n_transitions": 12,
                 "regime": "bistable" if ok else "single_peaked"} for b in setting["biases_v"]]
        df = pd.DataFrame(rows)
        return FakeSweep(df, len(df)), df

    orig = M._rate_fit_ok
    M._rate_fit_ok = lambda df: (bool(len(df)) and bool((df["regime"] == "bistable").sum() >= 3), "stand-in")
    try:
        res = run_mismatch(SPEC, CELL, None, MismatchSettings(instances=1, duration_tau=40, rounds=1),
                           v50_v=0.0, scale_v=2.8e-3, tau_s=272e-9, record_fn=record_fn, dc_fn=dc_fn)
    finally:
        M._rate_fit_ok = orig
    assert calls[1] == pytest.approx(2 * calls[0]) and res.outcomes[0].fitted
    assert "4 records twice as long" in res.outcomes[0].settings[1]["why"]


def test_per_cell_mismatch_overrides():
    t = {"instances": 44, "p1": [0.3, 0.5, 0.7], "duration_tau": 100, "rounds": 2,
         "cell": {"pbit": {"p1": [0.2, 0.4, 0.6, 0.8], "duration_tau": 40}}}
    x5 = parse_mismatch(t, "s.toml", cell="pbit_x5")
    pb = parse_mismatch(t, "s.toml", cell="pbit")
    assert (x5.p1, x5.duration_tau, x5.rounds, x5.instances) == ((0.3, 0.5, 0.7), 100.0, 2, 44)
    assert (pb.p1, pb.duration_tau, pb.rounds, pb.instances) == ((0.2, 0.4, 0.6, 0.8), 40.0, 2, 44)
    assert parse_mismatch(t, "s.toml") == x5
    # a bad override fails whichever cell runs, naming the table
    with pytest.raises(InputError, match=r"\[mismatch.cell.pbit\].*duration_tau"):
        parse_mismatch({**t, "cell": {"pbit": {"duration_tau": 1}}}, "s.toml", cell="pbit_x5")
    with pytest.raises(InputError, match=r"unknown key\(s\) in \[mismatch.cell.pbit\]: record"):
        parse_mismatch({**t, "cell": {"pbit": {"record": 1}}}, "s.toml", cell="pbit_x5")
    with pytest.raises(InputError, match="one table per cell"):
        parse_mismatch({**t, "cell": {"pbit": 3}}, "s.toml")


def test_the_default_spec_gives_pbit_its_own_records():
    from noisecell.report.procedures.spec import load_char_spec

    pb = load_char_spec(None, quick=False, cell_name="pbit").mismatch
    x5 = load_char_spec(None, quick=False, cell_name="pbit_x5").mismatch
    assert (pb.p1, pb.duration_tau, pb.rounds) == ((0.2, 0.4, 0.6, 0.8), 40.0, 2)   # pbit's demo: 33 of 35 fitted
    assert x5.duration_tau > pb.duration_tau and len(x5.p1) == 3
    assert load_char_spec(None, quick=True, cell_name="pbit").mismatch is None
