"""Validation of the injected noise against physics with known answers (issue 2, item 4).

Each test compares a variance or PSD estimated from a finite record with its exact expectation; the
tolerance is the one the issue sets (5 %, 15 %) and each comment derives the estimator's own
standard error from the effective number of independent samples, to show the tolerance is ≥ ~3.5 σ
of the estimator (so a pass is meaningful and a wrong noise level — e.g. a factor 2 in the PSD or a
wrong unit-source amplitude — fails by many σ).

Variance of a sample variance of an Ornstein-Uhlenbeck (first-order RC) process with time constant
τ sampled every dt over a record T: Var(s²)/σ⁴ = (2/N)·Σ_k ρ_k² with ρ_k = exp(−|k|dt/τ), and
Σ_k ρ_k² = coth(dt/τ) ≈ τ/dt, so the relative standard error is sqrt(2τ/T).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from noisecell.noise import K_B, Q_E
from noisecell.simulate import SimulationJob, run_job_in_process, run_netlist_in_process

T_C = 27.0
T_K = T_C + 273.15


def _job(tpl: str, nt: float, n: int, seed: int, **kw) -> SimulationJob:
    return SimulationJob(cell_name="validation", template=tpl, params={}, technology="generic", corner="tt",
                         temp_c=T_C, duration_s=n * nt, noise_step_s=nt, seed=seed,
                         outputs={"v_out": "n"}, **kw)


def test_rc_thermal_noise_gives_kT_over_C():
    # R = 10 kΩ, C = 1 pF: τ = 10 ns, NT = τ/10 (ZOH discretisation bias (NT/τ)²/12 = 0.08 %).
    # N = 100 000 steps: T = 10 000 τ -> relative standard error sqrt(2τ/T) = 1.41 %, so the 5 %
    # tolerance is 3.5 σ. A missing factor 2 or √2 in the source amplitude would be off by ≥ 40 %.
    r, c = 10e3, 1e-12
    tau = r * c
    nt = tau / 10
    tpl = f".param RV={r!r}\nR1 n 0 {{RV}}\nC1 n 0 {c!r}\n"
    wf = run_job_in_process(_job(tpl, nt, 100_000, seed=11))
    v = wf.v_out[100:]  # drop 10 τ of start-up from V = 0
    ratio = v.var() / (K_B * T_K / c)
    print(f"kT/C: Var/expected = {ratio:.4f} (σ_rel = {math.sqrt(2 * tau / (len(v) * nt)):.4f})")
    assert abs(ratio - 1) < 0.05


def _op_point(base: str, node_src: str, v_op: float) -> tuple[float, float]:
    """Device current (A, into the drain) and g_ds (S) at V(n) = v_op from a .dc sweep of a source at n."""
    dv = 1e-4
    res = run_netlist_in_process(base + f"Vn n 0 DC {v_op!r}\n.dc Vn {v_op - dv!r} {v_op + dv!r} {dv!r}\n.end\n",
                                 trusted=True)
    dc = next(v for p, v in res.items() if p.startswith("dc"))
    i = -dc["vn#branch"]  # current Vn pushes into n = current into the drain
    return float(i[1]), float((i[2] - i[0]) / (2 * dv))


def test_shot_noise_driven_capacitor():
    # A subthreshold NMOS in saturation (V_DS ≈ 0.3 V ≫ V_T) carries I_D; an ideal (noiseless)
    # 20 nA source and a noiseless 20 MΩ resistor set the node; C = 1 pF. The device's channel
    # noise S = 2q·I_D·coth(V_DS/2V_T) drives the node; the total conductance is
    # g = 1/R + g_ds, so Var(V) = S/(4·C·g) (= q·I·R_eff/(2C) in saturation, coth → 1).
    # I_D and g_ds come from a .dc sweep of the same device in the same ngspice.
    # τ = C/g ≈ 20 µs, NT = τ/10, N = 100 000 -> σ_rel = 1.41 % again, 5 % tolerance = 3.5 σ.
    c, r, i0 = 1e-12, 20e6, 20e-9
    model = ".model nch nmos level=54 version=4.8.2 toxe=2n fnoimod=0 kf=0\n"
    dev = "M1 n g 0 0 nch W=1u L=1u\nVg g 0 -0.1\n"
    op = run_netlist_in_process(f"op\n{dev}{model}I0 0 n DC {i0!r}\nR1 n 0 {r!r}\n.op\n.end\n", trusted=True)
    v_op = float(next(v for p, v in op.items() if p.startswith("op"))["n"][0])
    i_d, g_ds = _op_point(f"dc\n{dev}{model}", "Vn", v_op)
    vt = K_B * T_K / Q_E
    s = 2 * Q_E * i_d / math.tanh(v_op / (2 * vt))
    g = 1 / r + g_ds
    expected = s / (4 * c * g)
    tau = c / g
    nt = tau / 10
    tpl = f"{dev}{model}I0 0 n DC {i0!r}\nR1 n 0 {r!r}\nC1 n 0 {c!r}\n.ic v(n)={v_op!r}\n"
    wf = run_job_in_process(_job(tpl, nt, 100_000, seed=5, resistor_noise=False))
    v = wf.v_out[100:]
    ratio = v.var() / expected
    print(f"shot: V_DS={v_op:.3f} V I_D={i_d:.3e} A g_ds={g_ds:.3e} S/2qI={s / (2 * Q_E * i_d):.4f} "
          f"Var/expected={ratio:.4f}")
    assert v_op > 8 * vt  # saturation: the test is about shot noise, not the thermal limit
    assert abs(ratio - 1) < 0.05
