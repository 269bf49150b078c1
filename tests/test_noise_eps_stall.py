"""The channel-noise regularisation ε (noisecell.noise.EPS_VDS) must not stall ngspice at a rail-parked device.

sqrt(S) carries |V|/sqrt(V²+ε²) at V_DS → 0: a cusp ε wide whose slope acts as a random conductance
sqrt(4kT·g_ds)·u/ε. With ε = 1 µV, ngspice's own Newton voltage tolerance (vntol), pbit_x5's sink XN4,
parked at |V_DS| ~ 20 µV in the 0 state at −40 °C, made Newton cycle across the cusp and the run stall
(spice_models/design/NOTES.md §14). Truth for the regression test: that exact record (session 25's
stalled demo job, its trims written out here so a later re-trim cannot change it) ran at ε = 1 µV to
t = 2.056 µs in ~1 CPU-s and then made no progress in 80 CPU-s; at ε = 10 µV it finishes. The test
asserts that it finishes under a CPU limit 10x a healthy run's cost (no wall-clock assertion).
"""
from __future__ import annotations

import numpy as np
import pytest

from noisecell import noise
from noisecell.cells import load_cell
from noisecell.simulate import job_from_cell
from noisecell.simulator import run_job

#: ngspice's default vntol (V): the Newton tolerance on node voltages (no noisecell netlist sets it)
NGSPICE_VNTOL_V = 1e-6


def test_cusp_is_wider_than_newtons_voltage_tolerance():
    # the failure mode: Newton cannot settle on which side of a cusp narrower than what it resolves
    assert noise.EPS_VDS >= 10 * NGSPICE_VNTOL_V


@pytest.mark.timeout(600)
def test_pbit_x5_cold_record_that_stalled_at_1uV_finishes():
    cell = load_cell("pbit_x5")
    # tt -40 C trims.json row of session 25 (VDD 561.0 mV, VGP 135.4 mV, VNW 0.10 V), demo2 cond-tt-40C
    # design-j000's bias and seed; 2.1 us covers the stall point (2.056 us)
    job = job_from_cell(cell, bias_v=-0.00473295562, corner="tt", temp_c=-40.0, vdd_v=0.5610189020356595,
                        trim={"VGP": 0.1354428689759804, "VNW": 0.1}, duration_s=2.1e-6,
                        noise_step_s=0.4e-9, seed=1528284762)
    # healthy: ~1 CPU-s of ngspice + model loading; the limit is 10 CPU-s + 10 CPU-s/us = 31 CPU-s
    wf = run_job(job, timeout_s=1200, cpu_per_us=10.0)
    assert wf.duration_s == pytest.approx(2.1e-6, rel=1e-9)
    # a finite trace inside the rails (since nc_chan's lag band, NOTES §15, the trajectory after the old
    # stall point differs: this seed now makes one excursion to the 1 state)
    v = wf.outputs["v_out"]
    assert np.isfinite(v).all() and v.min() > -0.1 and v.max() < 0.5610189020356595 + 0.1
