"""Held-out check on a real (small) SPICE sweep of the reference cell pbit_generic.

Fit the model on five bias points, predict P(1) and tau at two bias points the fit never saw, and
compare with fresh ngspice runs there. Kept small (7 x 3 us of simulated time, ~35 s of CPU): each
stream has only ~20-40 transitions, so the CIs are wide, but every tolerance comes from them.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from noisecell.cli import main
from noisecell.model import CellModel
from noisecell.model.cellmodel import Z95

FIT_BIAS = ["-0.9m", "-0.45m", "0", "0.45m", "0.9m"]
HELD_OUT = {"-0.2m": -0.2e-3, "0.65m": 0.65e-3}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from noisecell.sweep import load, run_sweep

    root = tmp_path_factory.mktemp("heldout")
    spec = root / "sweep.toml"
    axis = ", ".join(f'"{b}"' for b in FIT_BIAS + list(HELD_OUT))
    spec.write_text(f'cell = "pbit_generic"\nduration = "3us"\nnoise_step = "1ns"\nseed = 7\n'
                    f'keep_waveforms = false\n[grid]\nbias = [{axis}]\n')
    out = root / "sweep"
    run_sweep(spec, out, workers=2, progress=False)
    df = load(out)
    assert (df["status"] == "ok").all(), df[["bias_v", "status", "error"]]
    return out, df


def test_fit_cli_then_predict_held_out_points(sweep, tmp_path, capsys):
    out, df = sweep
    model_path = tmp_path / "model.json"
    args = ["fit", str(out), "--out", str(model_path)] + [f"--exclude-bias={b}" for b in HELD_OUT]
    assert main(args) == 0
    assert main(["validate", str(model_path)]) == 0
    m = CellModel.load(model_path)
    doc = m.to_dict()
    # identity and provenance are filled from the sweep
    from noisecell.cells import load_cell

    cell = load_cell("pbit_generic")
    assert doc["cell"]["netlist_sha256"] == hashlib.sha256(cell.netlist_path.read_bytes()).hexdigest()
    assert doc["provenance"]["source"] == "simulation" and len(doc["provenance"]["seeds"]) >= 3
    c = m.condition_data()
    used = [p["bias_v"] for p in c["points"]]
    assert not any(np.isclose(used, v, atol=1e-9).any() for v in HELD_OUT.values())

    report = {}
    for v in HELD_OUT.values():
        r = df.loc[np.isclose(df["bias_v"], v, atol=1e-12)].iloc[0]
        p_m, (p_lo, p_hi) = m.p1(v), m.p1_ci95(v)
        se_p = math.hypot((r["p1_ci95_hi"] - r["p1_ci95_lo"]) / (2 * Z95), (p_hi - p_lo) / (2 * Z95))
        t_m, (t_lo, t_hi) = m.tau(v), m.tau_ci95(v)
        se_t = math.hypot((math.log(r["tau_s_ci95_hi"]) - math.log(r["tau_s_ci95_lo"])) / (2 * Z95),
                          (math.log(t_hi) - math.log(t_lo)) / (2 * Z95))
        z_p = (r["p1"] - p_m) / se_p
        z_t = (math.log(r["tau_s"]) - math.log(t_m)) / se_t
        markov = r.get("markov_consistent") is not False
        report[v] = {"p1_spice": r["p1"], "p1_model": p_m, "z_p1": z_p, "tau_spice_s": r["tau_s"],
                     "tau_model_s": t_m, "z_ln_tau": z_t, "markov_consistent": markov}
        # the fresh run and the prediction are independent estimates of the same quantity, so
        # z ~ N(0, 1) when the model is right; 4 sigma (two-sided p 6e-5 per check)
        assert abs(z_p) < 4, report[v]
        if markov:
            # tau of a stream whose dwell statistics the analysis rejects (e.g. digitiser chatter)
            # does not measure the cell; the fit leaves such streams out too
            assert abs(z_t) < 4, report[v]
    print(json.dumps(report))
    assert any(r["markov_consistent"] for r in report.values()), "no held-out stream usable for tau"

    bits_path = tmp_path / "bits.npy"
    assert main(["sample", str(model_path), "--bias=-0.2m", "--n", "1000", "--dt", "10ns", "--cells", "3",
                 "--seed", "1", "--out", str(bits_path)]) == 0
    bits = np.load(bits_path)
    assert bits.shape == (3, 1000) and bits.dtype == np.uint8
