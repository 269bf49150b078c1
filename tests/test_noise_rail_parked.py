"""A device parked at V_DS = 0 on the smooth route: the solver must keep ~1 point per NT.

Why (spice_models/design/NOTES.md §15): sqrt(S) ~ sqrt(4kT·g)·|V|/sqrt(V² + ε²) of the channel-noise
source has slope ~sqrt(4kT·g)/ε at |V_DS| ≈ ε. Evaluated at the solver's unknown new point, that slope
times the unit noise (~sqrt(1/(2NT))·z) is a random-sign conductance: for the node below ~0.1-10 mS on
1 fF, a ps time constant, and ngspice cut its step to 1e-15..1e-13 s (pbit_x5's sink XN4 at −40 °C:
39 000 points in 62 ns, 16 CPU-s for a 4 µs record instead of 0.9). nc_chan therefore holds the amplitude
of the last accepted time point while |V_DS| there is inside noise.LAG_BAND_V.

Truth: on the code before the band both circuits below stop with "timestep too small" (checked: at
t = 1.1e-10 s with V_G = 0.1 V, at t = 5.5 ms with V_G = −0.2 V); with it they finish at ≤ 1.1 points per
NT (the smooth route's one temporary breakpoint per NT). Outside the band the physics is unchanged: a
node whose device never enters it (the shot-noise node of test_noise_validation, V_DS ≈ 0.39 V) gives the
same waveform with and without the band to ~1e-8 relative (not bit-identical: the band allocates ngspice
state memory for each source; measured max difference 2e-9 V on a trace of std ~70 µV), far inside the
solver's own tolerance (reltol 1e-2 on the smooth route's netlists, here the default 1e-3).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import noisecell.noise as noise
from noisecell.simulate import SimulationJob
from noisecell.simulator.session import run_job_in_process

BUILT = noise.smooth_available()[0]
pytestmark = pytest.mark.skipif(not BUILT, reason="the smooth route's code model is not built (`make setup` "
                                "builds it): " + noise.smooth_available()[1])

MODEL = ".model nch nmos level=54 version=4.8.2 toxe=2n fnoimod=0 kf=0\n"


def _rail_job(v_gate: float, nt: float, n: int) -> SimulationJob:
    # the drain node's only other element is 1 fF: the device holds it at V_DS = 0 ± sqrt(kT/C) ≈ 2 mV
    tpl = f"M1 n g 0 0 nch W=1u L=1u\nVg g 0 {v_gate!r}\nC1 n 0 1e-15\n{MODEL}"
    return SimulationJob(cell_name="rail", template=tpl, params={}, technology="generic", corner="tt",
                         temp_c=27.0, duration_s=n * nt, noise_step_s=nt, seed=3, outputs={"v_out": "n"},
                         noise_route="smooth", resistor_noise=False)


@pytest.mark.parametrize("v_gate, nt, n", [(0.1, 1.04e-11, 20_000), (-0.2, 2.4e-7, 50_000)])
def test_a_device_parked_at_zero_vds_keeps_one_solver_point_per_nt(v_gate, nt, n):
    # g_ds at V_DS = 0: 9.6 µS (V_G = 0.1 V) and 0.42 nS (−0.2 V); NT = τ/10 of the node in both;
    # 50 000 NT = 12 ms reaches the old code's failure at 5.5 ms
    wf = run_job_in_process(_rail_job(v_gate, nt, n))
    per_nt = wf.meta["solver_points"] / n
    print(f"V_G {v_gate} V: {per_nt:.3f} solver points per NT")
    assert wf.duration_s == pytest.approx(n * nt, rel=1e-9)
    assert per_nt < 1.3


def test_the_band_changes_nothing_for_a_device_that_never_enters_it(monkeypatch):
    from test_noise_validation import _shot_noise_node
    tpl, v_op, *_ , tau, c, vt = _shot_noise_node()
    nt = tau / 10
    job = SimulationJob(cell_name="shot", template=tpl, params={}, technology="generic", corner="tt",
                        temp_c=27.0, duration_s=2000 * nt, noise_step_s=nt, seed=5, outputs={"v_out": "n"},
                        noise_route="smooth", resistor_noise=False)
    with_band = run_job_in_process(job)
    assert f"lagband={noise.LAG_BAND_V!r}" in job.render()
    monkeypatch.setattr(noise, "LAG_BAND_V", 0.0)
    plain = run_job_in_process(dataclasses.replace(job))
    assert "lagband=0.0" in job.render()
    spread = float(np.std(plain.v_out))
    assert spread > 1e-5  # a live trace (shot noise, ~70 µV rms over these 2000 NT)
    # 1e-3 of the trace's rms: 10x below ngspice's default reltol of 1e-3 applied to the ~0.39 V node
    assert np.abs(with_band.v_out - plain.v_out).max() < 1e-3 * spread
