"""The ``[balance] aux_trim`` of noisecell.trim (pbit_x2's pfet well bias VNW): trim_cell keeps the
first of ``aux_values`` at which the DC stages reach a balanced point at the design gain, holds it
through every check and balance, stores it in trims.json under its own name (so the loader sets it
like any stored trim) and trimmed_point returns it. DC and transient stages are synthetic (no
ngspice): the fake DC point exists only for VNW >= 0.3 V, as at a fast-pfet corner."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from noisecell import trim as T
from noisecell.cells import load_cell
from noisecell.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _cell(tmp_path, edit=None):
    d = tmp_path / "x2"
    shutil.copytree(ROOT / "spice_models" / "pbit_x2", d)
    (d / "trims.json").unlink(missing_ok=True)
    if edit:
        t = (d / "cell.toml").read_text()
        (d / "cell.toml").write_text(edit(t))
    return d


@pytest.fixture
def fake(monkeypatch):
    seen = {"dc_fixed": [], "check_fixed": [], "balance_fixed": []}

    def fake_bgp(cell, corner, temp_c, fixed_trim=None, **kw):
        seen["dc_fixed"].append(dict(fixed_trim or {}))
        if (fixed_trim or {}).get("VNW", 0.0) < 0.3:
            return None  # the gain target is out of reach without reverse well bias
        return T.DcPoint(trim_v=0.2, vdd_v=0.6, vm_frac=0.5, gain=5.2)

    def fake_balance(cell, corner, temp_c, vdd_v, fixed_trim=None, **kw):
        seen["balance_fixed"].append(dict(fixed_trim or {}))
        return T.DcPoint(trim_v=0.21, vdd_v=vdd_v, vm_frac=0.5, gain=5.3)

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, fixed_trim=None, **kw):
        seen["check_fixed"].append(dict(fixed_trim or {}))
        ok = len(seen["check_fixed"]) >= 2  # the first check is too slow, the second passes
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=0.5, p1_se=0.05,
                           flips_per_us=5.0 if ok else 0.2, regime="bistable", regime_detail="synthetic",
                           power_w=1e-8, energy_per_flip_j=2e-15)

    monkeypatch.setattr(T, "balanced_gain_point", fake_bgp)
    monkeypatch.setattr(T, "balance", fake_balance)
    monkeypatch.setattr(T, "check", fake_check)
    return seen


def test_first_aux_value_that_reaches_the_gain_is_kept_and_stored(tmp_path, fake):
    d = _cell(tmp_path)
    cell = load_cell(str(d))
    res = T.trim_cell(cell, "ff", 85.0, duration_s=1e-6, max_iterations=3)
    assert res.ok
    # tried in the declared order, stopped at the first that works
    assert fake["dc_fixed"] == [{"VNW": 0.0}, {"VNW": -0.1}, {"VNW": 0.3}]
    assert res.aux_trim_v == {"VNW": 0.3}
    # held through every transient check and every re-balance at a new supply
    assert fake["check_fixed"] == [{"VNW": 0.3}] * 2 and fake["balance_fixed"] == [{"VNW": 0.3}]
    row = T.row_from_result(res)
    T.write_table(cell, [row], command="test")
    data = json.loads((d / "trims.json").read_text())
    assert [r["value_v"] for r in data["trims"]["VNW"]] == [0.3]
    assert data["trims"]["VGP"][0]["aux_trims"] == {"VNW": 0.3}
    cell2 = load_cell(str(d))  # the loader sets VNW from its own rows, like any stored trim
    assert cell2.trim["VNW"].value_for("ff", 85.0) == pytest.approx(0.3)
    assert cell2.trim["VNW"].value_for("tt", 27.0) == pytest.approx(0.0)  # no row: the nominal
    trims, vdd = T.trimmed_point(cell2, "ff", 85.0)
    assert trims == {"VGP": pytest.approx(0.21), "VNW": pytest.approx(0.3)} and vdd == pytest.approx(row["vdd_v"])


def test_no_aux_value_reaches_the_gain(tmp_path, fake):
    cell = load_cell(str(_cell(tmp_path, lambda t: t.replace("aux_values = [0.0, -0.1, 0.3, 0.6]", "aux_values = [0.0, 0.1]"))))
    res = T.trim_cell(cell, "sf", 85.0, duration_s=1e-6)
    assert not res.ok and res.check is None
    assert "VNW at any of [0.0, 0.1] V" in res.message


@pytest.mark.parametrize("edit, msg", [
    (lambda t: t.replace("aux_values = [0.0, -0.1, 0.3, 0.6]", "aux_values = [0.0, 0.9]"), "inside [trim.VNW] range_v"),
    (lambda t: t.replace('aux_trim = "VNW"', 'aux_trim = "VXX"'), "other [trim.*] inputs"),
    (lambda t: t.replace('aux_trim = "VNW"\n', ""), "aux_values without aux_trim"),
    (lambda t: t.replace('faster_with_supply = true', 'faster_with_supply = true\nforce_node = "x"'), "go together"),
])
def test_bad_balance_tables_name_the_file(tmp_path, edit, msg):
    d = _cell(tmp_path, edit)
    with pytest.raises(InputError, match="cell.toml") as e:
        T.balance_spec(load_cell(str(d)))
    assert msg in str(e.value)


def test_aux_fallback_checks_the_next_aux_value_after_failed_checks(tmp_path, monkeypatch):
    """[balance] aux_fallback: the first aux value reaches the DC gain but its records are too slow at
    every supply (a cold slow corner with reverse well bias); the next value that reaches the gain is
    checked and kept, and the message names how the earlier one failed. Without the key the first
    value's failure is the result (test above: the declared order, one value)."""
    d = _cell(tmp_path, lambda t: t.replace("aux_values = [0.0, -0.1, 0.3, 0.6]\naux_fallback = true",
                                            "aux_values = [0.3, 0.6, 0.0]\naux_fallback = true"))
    cell = load_cell(str(d))
    seen = {"dc": [], "checks": []}

    def fake_bgp(cell, corner, temp_c, fixed_trim=None, **kw):
        seen["dc"].append(fixed_trim["VNW"])
        if fixed_trim["VNW"] == 0.6:
            return None  # too much reverse bias: no gain
        return T.DcPoint(trim_v=0.1, vdd_v=0.5, vm_frac=0.5, gain=5.2)

    def fake_balance(cell, corner, temp_c, vdd_v, fixed_trim=None, **kw):
        return T.DcPoint(trim_v=0.1, vdd_v=vdd_v, vm_frac=0.5, gain=5.3)

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, fixed_trim=None, **kw):
        seen["checks"].append(fixed_trim["VNW"])
        fast = fixed_trim["VNW"] == 0.0
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=0.5, p1_se=0.05,
                           flips_per_us=4.0 if fast else 0.3, regime="bistable", regime_detail="synthetic",
                           power_w=1e-9, energy_per_flip_j=1e-15)

    monkeypatch.setattr(T, "balanced_gain_point", fake_bgp)
    monkeypatch.setattr(T, "balance", fake_balance)
    monkeypatch.setattr(T, "check", fake_check)
    res = T.trim_cell(cell, "ss", -40.0, duration_s=1e-6, max_iterations=2)
    assert res.ok and res.aux_trim_v == {"VNW": 0.0}
    assert seen["dc"] == [0.3, 0.6, 0.0]
    assert seen["checks"] == [0.3, 0.3, 0.0]  # max_iterations checks at 0.3, then one passing at 0.0
    assert "VNW = 0.3 V failed" in res.message and "0.3 flips/µs" in res.message
    assert len(res.attempts) == 1 and res.attempts[0].flips_per_us == 4.0

    # every value fails: the last checked value's failure, the earlier ones named
    monkeypatch.setattr(T, "check", lambda *a, fixed_trim=None, **k: fake_check(*a, fixed_trim={"VNW": 0.3}, **k))
    res = T.trim_cell(cell, "ss", -40.0, duration_s=1e-6, max_iterations=1)
    assert not res.ok and res.aux_trim_v == {"VNW": 0.0} and "VNW = 0.3 V failed" in res.message


def test_aux_fallback_needs_an_aux_trim(tmp_path):
    d = _cell(tmp_path, lambda t: t.replace('aux_trim = "VNW"\n', "").replace("aux_values = [0.0, -0.1, 0.3, 0.6]\n", ""))
    with pytest.raises(InputError, match="cell.toml.*aux_fallback"):
        T.balance_spec(load_cell(str(d)))


def test_bias_offset_uses_the_aux_value_of_the_trim_it_is_given(tmp_path, monkeypatch):
    """A readout cell's bias offset (pbit_x4, ``[balance] offset = "readout"``) is found at the aux value
    (VNW) the instance's trim used, not at the cell's nominal VNW: `noisecell trim --mismatch-seed`
    passes its result's aux_trim_v. Before the fix readout_dc took only the main trim, so the DC runs
    were at VNW 0.125 V whatever the trim had chosen. ngspice is replaced by a recorder."""
    import re

    d = tmp_path / "x4"
    shutil.copytree(ROOT / "spice_models" / "pbit_x4", d, ignore=shutil.ignore_patterns("characterisation"))
    (d / "trims.json").unlink(missing_ok=True)
    cell = load_cell(str(d))
    seen = []

    def fake_run_batch(text, workdir, **kw):
        seen.append(float(re.search(r"^\.param .*\bVNW=([-0-9.e+]+)", text, re.M).group(1)))
        return "print\nv(w)-v(in) = 1.000000e-02\n"  # the same sign at both ends: no root (None)

    monkeypatch.setattr(T, "run_batch", fake_run_batch)
    off = T.bias_offset(cell, "sf", 85.0, mismatch_seed=3, trim_v=0.29, vdd_v=0.58, fixed_trim={"VNW": 0.8})
    assert off is None and len(seen) == 2 and seen == [0.8, 0.8]
    seen.clear()
    T.bias_offset(cell, "sf", 85.0, mismatch_seed=3, trim_v=0.29, vdd_v=0.58)  # none given: the nominal
    assert seen == [cell.trim["VNW"].nominal_v] * 2


def test_a_stalled_check_fails_that_aux_value_and_the_next_is_tried(tmp_path, monkeypatch):
    """A transient check that times out (SimulationTimeout: pbit_x4 at ss -40 C stalled ngspice for
    1200 s) is recorded as a 'stalled' attempt that fails its aux value; trim_cell goes on to the next
    aux value instead of raising (which ended `trim --all` and lost every later pair)."""
    from noisecell.errors import SimulationTimeout

    d = _cell(tmp_path, lambda t: t.replace("aux_values = [0.0, -0.1, 0.3, 0.6]", "aux_values = [0.3, 0.6]"))
    cell = load_cell(str(d))
    monkeypatch.setattr(T, "balanced_gain_point",
                        lambda cell, corner, temp_c, fixed_trim=None, **kw: T.DcPoint(0.2, 0.6, 0.5, 5.2))
    monkeypatch.setattr(T, "balance", lambda cell, corner, temp_c, vdd_v, fixed_trim=None, **kw: T.DcPoint(0.2, vdd_v, 0.5, 5.2))

    def fake_check(cell, corner, temp_c, trim_v, vdd_v, *, duration_s, seed, fixed_trim=None, **kw):
        if fixed_trim["VNW"] == 0.3:
            raise SimulationTimeout("job x: no result after 5 s wall time; the simulator was killed")
        return T.TrimCheck(trim_v=trim_v, vdd_v=vdd_v, duration_s=duration_s, seed=seed, p1=0.5, p1_se=0.05,
                           flips_per_us=5.0, regime="bistable", regime_detail="synthetic", power_w=1e-8,
                           energy_per_flip_j=2e-15)

    monkeypatch.setattr(T, "check", fake_check)
    res = T.trim_cell(cell, "ss", -40.0)
    assert res.ok and res.aux_trim_v == {"VNW": 0.6}
    assert "VNW = 0.3 V failed" in res.message and "no record" in res.message and "stalled" not in res.check.regime
    monkeypatch.setattr(T, "check", lambda *a, **k: (_ for _ in ()).throw(SimulationTimeout("stalled again")))
    res = T.trim_cell(cell, "ss", -40.0)  # every aux value stalls: a failed result with a row, no exception
    assert not res.ok and res.check.regime == "stalled" and len(res.attempts) == 1
    row = T.row_from_result(res)
    assert row["regime"] == "stalled" and row["p1"] is None and row["flips_per_us"] is None
    T.write_table(cell, [row], command="test")  # the stored table accepts it (schema)
