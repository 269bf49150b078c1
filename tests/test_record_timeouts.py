"""Per-record timeouts (session 24): a record's timeout is the sweep's own, raised to
design_runner.TIMEOUT_PER_SIMULATED_US per simulated µs, for the design's records and the held-out
temperature records alike; the default cell is what the built-in spec and the commands use."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from noisecell.design import DesignJob
from noisecell.design_runner import TIMEOUT_PER_SIMULATED_US, SweepRunner, record_timeout


def test_short_records_keep_the_sweep_timeout_long_ones_get_the_per_us_allowance(tmp_path):
    r = SweepRunner(cell="pbit_generic", out_dir=tmp_path, shared={"timeout": "60s", "noise_step": "0.5ns"},
                    corner="tt", temp_c=27.0)
    short = r._spec([DesignJob(0.0, 3e-6, 1)], 3e-6, "t")
    long_ = r._spec([DesignJob(0.0, 45e-6, 2)], 45e-6, "t")
    assert short.timeout_s == 60.0
    assert long_.timeout_s == pytest.approx(TIMEOUT_PER_SIMULATED_US * 45.0, rel=1e-12)
    assert long_.timeout_s > 60.0
    # no sweep timeout given: the sweep default, still raised for long records
    from noisecell.sweep.spec import DEFAULT_TIMEOUT_S
    assert record_timeout(None, 1e-6, "t") == DEFAULT_TIMEOUT_S
    assert record_timeout(None, 1e-3, "t") == pytest.approx(TIMEOUT_PER_SIMULATED_US * 1000.0, rel=1e-12)


class _Stop(Exception):
    pass


def test_heldout_temperature_records_get_the_per_us_timeout(tmp_path, monkeypatch):
    import noisecell.sweep as sweep_pkg
    from noisecell.cells import load_cell
    from noisecell.report.procedures.conditions import _SimRecords

    seen = {}

    def fake_run_sweep(spec, out, **kw):
        seen["timeout_s"] = spec.timeout_s
        raise _Stop

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake_run_sweep)
    spec = SimpleNamespace(shared={"timeout": "60s", "noise_step": "0.5ns"}, cell="pbit_generic", source="test")
    rec = _SimRecords(spec, load_cell("pbit_generic"), tmp_path, 1, False, None)
    with pytest.raises(_Stop):
        rec("tt", 27.0, [0.0], 80e-6, 5)      # an 80 µs record: 60 s would kill it on a loaded machine
    assert seen["timeout_s"] == pytest.approx(TIMEOUT_PER_SIMULATED_US * 80.0, rel=1e-12)


def test_the_default_cell_is_what_an_unnamed_spec_and_the_commands_use():
    from noisecell.cells import DEFAULT_CELL, load_cell, read_trims_json
    from noisecell.report.procedures.spec import load_char_spec

    for quick in (False, True):
        assert load_char_spec(None, quick=quick, cell_name=None).cell == DEFAULT_CELL
    cell = load_cell(DEFAULT_CELL)
    # make demo characterises every stored trim: the default cell has them, its nominal one bistable
    rows = [r for v in read_trims_json(cell.cell_dir).get("trims", {}).values() for r in v]
    nominal = [r for r in rows if r["corner"] == cell.nominal_corner and r["temp_c"] == cell.nominal_temp_c]
    assert nominal and nominal[0]["ok"] and nominal[0]["regime"] == "bistable"
