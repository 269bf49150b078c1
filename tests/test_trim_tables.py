"""Stored trim tables (spice_models/*/trims.json) are self-consistent: a cell with a [balance] aux trim
stores that input twice — in the main trim's row (aux_trims) and in its own table — and both must name
the same point. A hand-merged table once kept pbit_x5's old supply in the VNW rows of three pairs (and
VNW 0.1 V where ss 27 °C was trimmed at 0.0 V): a reader of the VNW table got a point where the chain is stuck."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TABLES = sorted((Path(__file__).resolve().parents[1] / "spice_models").glob("*/trims.json"))


@pytest.mark.parametrize("path", TABLES, ids=[p.parent.name for p in TABLES])
def test_aux_trim_rows_name_the_main_rows_point(path):
    trims = json.loads(path.read_text())["trims"]
    mains = {name: rows for name, rows in trims.items() if any("aux_trims" in r for r in rows)}
    for main, rows in mains.items():
        for r in rows:
            for aux, value in (r.get("aux_trims") or {}).items():
                own = [x for x in trims[aux] if (x["corner"], x["temp_c"]) == (r["corner"], r["temp_c"])]
                assert len(own) == 1, f"{path}: {aux} has {len(own)} rows for {r['corner']} {r['temp_c']:g} °C"
                o = own[0]
                where = f"{path}: {aux} row {r['corner']} {r['temp_c']:g} °C"
                assert o["value_v"] == value, f"{where}: {o['value_v']} V, the {main} row says {value} V"
                assert o["vdd_v"] == r["vdd_v"], f"{where}: VDD {o['vdd_v']} V, the {main} row's {r['vdd_v']} V"
                assert o["ok"] == r["ok"], where
