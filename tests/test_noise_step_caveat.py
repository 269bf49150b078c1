"""A condition whose τ(V50) is only a few noise steps long is flagged as not NT-converged.

pbit_x5's hot corners run at τ ≈ 2-7 ns with NT 0.4 ns; there the flip rate rose 17 % for NT 0.4 → 0.2
ns (τ 1.8 ns) and 8 % (τ 6.6 ns), a systematic error the design's statistical CIs (±15 % on τ) do not
hold. Since the per-point fit keeps renewal points (02ff3e0) such conditions are in the model, so the
model and the report must say it. Checked on a real model document (synthetic_model) with τ set per
condition."""
from __future__ import annotations

import copy

import pytest

from noisecell.model import CellModel
from noisecell.model.fit import synthetic_model
from noisecell.report.procedures.fits import MIN_TAU_NOISE_STEPS, noise_step_caveats
from noisecell.report.procedures.spec import load_char_spec, spec_noise_step

NT = 0.4e-9


def _doc(taus_s):
    base = synthetic_model(scale_v=3e-3, tau_v50_s=80e-9, ln_k_sum_slope_per_v=0.0, rel_se=0.05).to_dict()
    conds = []
    for i, t in enumerate(taus_s):
        c = copy.deepcopy(base["conditions"][0])
        c["temp_c"] = float(27 + 10 * i)
        c["tau"]["tau_at_v50_s"] = t
        c["joint_fit"] = {"n_points": 5}
        conds.append(c)
    return {**base, "conditions": conds}


def test_short_tau_conditions_are_flagged_and_the_model_records_tau_in_noise_steps():
    edge = MIN_TAU_NOISE_STEPS * NT
    doc = _doc([1.8e-9, 6.6e-9, edge * 1.01, 80e-9])
    out, warnings = noise_step_caveats(doc, NT)
    assert len(warnings) == 2, warnings
    assert "1.8 ns is only 4.5 noise steps" in warnings[0] and "not NT-converged" in warnings[0]
    assert "6.6 ns is only 16.5 noise steps" in warnings[1]
    steps = [c["joint_fit"]["tau_v50_noise_steps"] for c in out["conditions"]]
    assert steps == pytest.approx([4.5, 16.5, MIN_TAU_NOISE_STEPS * 1.01, 200.0], rel=1e-12)
    assert all(c["joint_fit"]["noise_step_s"] == NT for c in out["conditions"])
    assert "noise_step_s" not in doc["conditions"][0]["joint_fit"]          # pure: the input is unchanged
    CellModel(out)                                                          # still a valid document


def test_no_noise_step_no_caveat():
    doc = _doc([1e-9])
    assert noise_step_caveats(doc, None) == (doc, [])


def test_the_default_spec_states_its_noise_step():
    spec = load_char_spec(None, quick=False, cell_name="pbit_generic")
    assert spec_noise_step(spec) == pytest.approx(0.4e-9, rel=1e-12)
