"""The two noise-injection routes (noisecell.noise): the compiled XSPICE code model must give the
portable B-source route's waveforms, time point for time point, in shared mode and in ``ngspice -b``.

Tolerance: the issue's 1 nV over 5 µs. Why it is meaningful: both routes compute the same current
in double precision (operation order mirrored) and every other element, breakpoint and option that
shapes the time steps is identical, so differences come only from rounding (measured ~1e-12 V on
the sky130 pbit). Any real difference in the injected current — a wrong sign, a factor, a missing
flicker input, a wrong V_T — changes a noise-driven waveform by its own scale (mV here, the
within-state rms is ~7 mV), i.e. fails by > 6 orders of magnitude; a 1e-4 relative error in the
current moves the waveform by ~1e-4·7 mV = 0.7 µV, still 700x the tolerance.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import noisecell.noise as noise
from noisecell.cells import load_cell
from noisecell.errors import InputError
from noisecell.noise import NoiseConfig, codemodel_path, inject_noise, resolve_route
from noisecell.simulate import SimulationJob, job_from_cell
from noisecell.simulator import run_batch, run_job
from noisecell.simulator.session import run_job_in_process

BUILT = codemodel_path()[0] is not None
needs_codemodel = pytest.mark.skipif(not BUILT, reason="compiled noise route not built (`make setup` builds it): "
                                     + codemodel_path()[1])
TOL_V = 1e-9


def _sky130_available() -> bool:
    try:
        load_cell("pbit")
        from noisecell.technology import model_lines
        model_lines("sky130", "tt", mismatch=False)
        return True
    except Exception:
        return False


needs_sky130 = pytest.mark.skipif(not _sky130_available(), reason="sky130 models not installed")


def test_compiled_route_renders_a_code_model_instance_per_device():
    text = ("Vdd vdd 0 1\nM1 d1 g 0 0 nch\nM2 d2 g vdd vdd pch\nR1 d1 0 1k\n"
            ".model nch nmos level=54\n.model pch pmos level=54\n")
    cfg = NoiseConfig(noise_step_s=1e-9, temp_c=27.0, flicker_corner_hz=1e6, flicker_min_hz=1e4, route="compiled")
    out, rep = inject_noise(text, "generic", cfg)
    port, _ = inject_noise(text, "generic", dataclasses.replace(cfg, route="portable"))
    assert rep.route == "compiled" and rep.to_dict()["route"] == "compiled"
    assert "Bnc_m1 " not in out and "Bnc_m2 " not in out and "Bnc_m1 " in port
    # same sense source, same unit (and flicker) sources, same V_DS; current drain -> source
    n_fl = rep.flicker_sections
    nodes = " ".join(["nc_u_m1"] + [f"nc_f_m1_{k}" for k in range(n_fl)])
    assert f"Anc_m1 %vnam Vnc_s_m1 %vd(d1 0) [{nodes}] %id(d1 0) nc_chan_m" in out
    assert "Anc_m2 %vnam Vnc_s_m2 %vd(d2 vdd) [" in out
    assert ".model nc_chan_m nc_chan(q=1.602176634e-19 vt=0.025864925786328753 eps=1e-05 floor=1e-34)" in out
    assert ".options convstep=1e+30 convabsstep=1e+30" in out
    # everything else is the portable rendering, line for line
    keep = [l for l in port.splitlines() if not l.startswith("Bnc_m")]
    assert [l for l in out.splitlines() if not (l.startswith("Anc_m") or "nc_chan" in l or "convstep" in l)] == keep
    assert inject_noise(text, "generic", cfg)[0] == out
    with pytest.raises(InputError):
        inject_noise(text, "generic", dataclasses.replace(cfg, route="fast"))


def test_unbuilt_code_model_falls_back_with_one_notice(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(noise.CODEMODEL_ENV, str(tmp_path / "missing.cm"))
    monkeypatch.delenv(noise.ROUTE_ENV, raising=False)
    monkeypatch.setattr(noise, "_NOTICE_GIVEN", False)
    assert resolve_route(None) == "portable" and resolve_route("auto") == "portable"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "portable route" in err[0] and "missing.cm" in err[0]
    with pytest.raises(InputError, match="make setup"):
        resolve_route("compiled")


def test_code_model_under_a_path_with_capitals_is_used_from_a_plain_private_copy(monkeypatch, tmp_path):
    # ngspice lower-cases the path of a codemodel line: /work/wt-H18/.venv/... would not load
    built = tmp_path / "Upper Case" / "noisecell.cm"
    built.parent.mkdir()
    built.write_bytes(b"\x7fELF not really a code model" * 10)
    monkeypatch.setenv(noise.CODEMODEL_ENV, str(built))
    path, why = codemodel_path()
    assert path is not None and why == ""
    assert path != built and noise._PLAIN_PATH.match(str(path))
    assert path.read_bytes() == built.read_bytes()
    noise._plain_copy.cache_clear()
    assert codemodel_path()[0] == path          # content-addressed: the same copy again
    monkeypatch.setattr(noise.tempfile, "gettempdir", lambda: str(tmp_path / "Still Upper"))
    (tmp_path / "Still Upper").mkdir()
    noise._plain_copy.cache_clear()
    path, why = codemodel_path()
    assert path is None and "capitals" in why and "private copy" in why


@needs_codemodel
def test_auto_route_is_smooth_when_built(monkeypatch):
    monkeypatch.delenv(noise.ROUTE_ENV, raising=False)
    expected = "smooth" if noise.smooth_available()[0] else "compiled"
    assert resolve_route(None) == expected and resolve_route("auto") == expected


def _pbit_job(duration_s: float, seed: int = 1) -> SimulationJob:
    cell = load_cell("pbit")
    return job_from_cell(cell, bias_v=0.0, duration_s=duration_s, noise_step_s=1e-9, seed=seed)


@needs_codemodel
@needs_sky130
def test_routes_agree_on_the_sky130_pbit_in_shared_mode():
    # 5 µs at NT = 1 ns (the check): every output within 1 nV, supply current within the
    # same relative rounding (1e-9 of its scale), and the run really is noisy (flips, mV rms).
    # in simulator hosts (fresh processes, as sweeps run them)
    job = _pbit_job(5e-6, seed=7)
    a = run_job(dataclasses.replace(job, noise_route="compiled"), timeout_s=600)
    b = run_job(dataclasses.replace(job, noise_route="portable"), timeout_s=600)
    assert a.meta["noise"]["route"] == "compiled" and b.meta["noise"]["route"] == "portable"
    assert not any("did not converge" in w for w in a.meta["warnings"])
    for k in b.outputs:
        assert b.outputs[k].std() > 1e-3
        dv = float(np.max(np.abs(a.outputs[k] - b.outputs[k])))
        print(f"{k}: max |dV| = {dv:.3g} V")
        assert dv <= TOL_V, (k, dv)
    for k in b.supply_currents:
        scale = float(np.max(np.abs(b.supply_currents[k])))
        assert np.max(np.abs(a.supply_currents[k] - b.supply_currents[k])) <= 1e-9 * scale


def _batch(job: SimulationJob, workdir: Path) -> np.ndarray:
    data = workdir / "out.dat"
    data.unlink(missing_ok=True)
    log = run_batch(job.render_batch(str(data)), workdir, technology=job.technology, timeout_s=600)
    assert data.exists(), log[-2000:]
    return np.loadtxt(data)


@needs_codemodel
@needs_sky130
def test_routes_agree_time_point_for_time_point_in_ngspice_batch(tmp_path):
    # wrdata writes every solver time point: the two routes must visit the same times (the issue's
    # "same time points") and agree within 1 nV at each. 2 µs keeps the portable run short.
    job = _pbit_job(2e-6, seed=3)
    a = _batch(dataclasses.replace(job, noise_route="compiled"), tmp_path)
    b = _batch(dataclasses.replace(job, noise_route="portable"), tmp_path)
    assert a.shape == b.shape and a.shape[0] > 2000
    assert np.array_equal(a[:, 0], b[:, 0])
    volts = [c for c in range(1, a.shape[1], 2)][:len(job.outputs)]
    dv = float(np.max(np.abs(a[:, volts] - b[:, volts])))
    print(f"batch: {a.shape[0]} time points, max |dV| = {dv:.3g} V")
    assert dv <= TOL_V


@needs_codemodel
def test_routes_agree_with_flicker_inputs():
    # the code model's vector input (unit source + 1/f relaxation nodes) on the validation tests'
    # shot-noise node: NT = τ/5, 2000 steps, f_c = 10 f_3dB (1/f dominates the node).
    # Here the steps are long (NT = 4 µs, node τ = 20 µs) and the routes' Newton iterations start
    # from different points (XSPICE feeds a code model the previous point's last LOAD inputs, the
    # B-source reads the last solution), so they stop at different points inside the convergence
    # tolerance: measured max |dV| 1.6e-7 V at reltol = 1e-3 (default), 4.4e-9 V at 1e-6, i.e. ∝
    # reltol — not a difference in the current (tightening reltol to reach 1 nV costs minutes).
    # Tolerance 1 % of the node rms (~1.7 µV): 10x the measured solver spread, while a dropped,
    # doubled or mis-weighted flicker input changes the waveform by O(its rms) (1/f is ~10x the
    # white part here) and fails by > 50x.
    import test_noise_validation as val
    tpl, v_op, i_d, g_ds, s, g, tau, c, vt = val._shot_noise_node()
    f3 = 1 / (2 * math.pi * tau)
    job = val._job(tpl, tau / 5, 2000, seed=13, resistor_noise=False, flicker_corner_hz=10 * f3,
                   flicker_min_hz=f3 / 10)
    a = run_job_in_process(dataclasses.replace(job, noise_route="compiled"))
    b = run_job_in_process(dataclasses.replace(job, noise_route="portable"))
    assert b.meta["noise"]["flicker_sections"] > 3
    rms = float(b.v_out.std())
    assert rms > 1e-5
    dv = float(np.max(np.abs(a.v_out - b.v_out)))
    print(f"flicker: max |dV| = {dv:.3g} V of rms {rms:.3g} V")
    assert dv <= 0.01 * rms


@needs_sky130
def test_a_sky130_job_does_not_change_a_later_generic_netlist_in_the_same_process():
    # sky130's models set ".option scale=1.0u", which ngspice keeps as a global variable for every
    # later netlist: a generic W=1u L=1u device then became 1 pm wide and this node's operating point
    # moved from 0.390 V to 0.143 V (seen when tests/test_noise_smooth.py ran a pbit job in-process
    # before tests/test_noise_validation.py). The session unsets it before each load.
    from test_noise_validation import _shot_noise_node
    before = _shot_noise_node()[1]
    cell = load_cell("pbit")
    run_job_in_process(job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=0.05e-6, noise_step_s=5e-10, seed=2))
    after = _shot_noise_node()[1]
    assert after == before
