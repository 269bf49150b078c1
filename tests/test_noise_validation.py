"""Validation of the injected noise against physics with known answers (issue 2, item 4).

Each test compares a variance or PSD estimated from a finite record with its exact expectation; the
tolerance is the one the issue sets (5 %, 15 %) and each comment derives the estimator's own
standard error from the effective number of independent samples, to show the tolerance is ≥ ~3.5 σ
of the estimator (so a pass is meaningful and a wrong noise level — e.g. a factor 2 in the PSD or a
wrong unit-source amplitude — fails by many σ).

Variance of a sample variance of an Ornstein-Uhlenbeck (first-order RC) process with time constant
τ sampled every dt over a record T: Var(s²)/σ⁴ = (2/N)·Σ_k ρ_k² with ρ_k = exp(−|k|dt/τ), and
Σ_k ρ_k² = coth(dt/τ) ≈ τ/dt, so the relative standard error is sqrt(2τ/T).

Zero-order hold: white noise held for NT into a first-order node gives, exactly, the variance
(continuous-time value)·hold_factor(NT/τ) with hold_factor(x) = tanh(x/2)/(x/2) (the AR(1) recursion
V_{k+1} = a·V_k + (1−a)·R·i_k, a = exp(−NT/τ), has Var = R²σ_i²(1−a)/(1+a)); at NT = τ/5 this
is 0.9967, applied to the expectation rather than hidden in the tolerance.

These are the held-noise (TRRANDOM) routes' checks, so the jobs name one: compiled when its code
model is built, else portable (same current, tests/test_noise_routes.py). The default smooth route
interpolates its samples and has its own expectations (tests/test_noise_smooth.py).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from noisecell.noise import K_B, Q_E, codemodel_path
from noisecell.simulate import SimulationJob
from noisecell.simulator.session import run_job_in_process, run_netlist_in_process

T_C = 27.0
HELD_ROUTE = "compiled" if codemodel_path()[0] is not None else "portable"
T_K = T_C + 273.15


def hold_factor(nt_over_tau: float) -> float:
    """Variance of a ZOH-driven first-order node relative to the white-noise (continuous) value."""
    x = nt_over_tau / 2
    return math.tanh(x) / x


def _job(tpl: str, nt: float, n: int, seed: int, **kw) -> SimulationJob:
    return SimulationJob(cell_name="validation", template=tpl, params={}, technology="generic", corner="tt",
                         temp_c=T_C, duration_s=n * nt, noise_step_s=nt, seed=seed,
                         outputs={"v_out": "n"}, noise_route=HELD_ROUTE, **kw)


def test_rc_thermal_noise_gives_kT_over_C():
    # R = 10 kΩ, C = 1 pF: τ = 10 ns, NT = τ/5 (hold factor 0.9967 in the expectation).
    # N = 50 000 steps: T = 10 000 τ -> relative standard error sqrt(2τ/T) = 1.41 %, so the 5 %
    # tolerance is 3.5 σ. A missing factor 2 or √2 in the source amplitude would be off by ≥ 40 %.
    r, c = 10e3, 1e-12
    tau = r * c
    nt = tau / 5
    tpl = f".param RV={r!r}\nR1 n 0 {{RV}}\nC1 n 0 {c!r}\n"
    wf = run_job_in_process(_job(tpl, nt, 50_000, seed=11))
    v = wf.v_out[50:]  # drop 10 τ of start-up from V = 0
    ratio = v.var() / (K_B * T_K / c * hold_factor(nt / tau))
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


def _shot_noise_node():
    """The subthreshold-NMOS node of the shot-noise and flicker tests: an ideal (noiseless) 20 nA
    source, a noiseless 20 MΩ resistor and 1 pF. Returns the netlist template, its operating point
    (V_DS, I_D, g_ds), the device's white channel-noise PSD S = 2q·I_D·coth(V_DS/2V_T) (A²/Hz), the
    node conductance g (S), τ = C/g (s), C (F) and V_T (V). I_D and g_ds come from a .dc sweep of
    the same device in the same ngspice."""
    c, r, i0 = 1e-12, 20e6, 20e-9
    model = ".model nch nmos level=54 version=4.8.2 toxe=2n fnoimod=0 kf=0\n"
    dev = "M1 n g 0 0 nch W=1u L=1u\nVg g 0 -0.1\n"
    op = run_netlist_in_process(f"op\n{dev}{model}I0 0 n DC {i0!r}\nR1 n 0 {r!r}\n.op\n.end\n", trusted=True)
    v_op = float(next(v for p, v in op.items() if p.startswith("op"))["n"][0])
    i_d, g_ds = _op_point(f"dc\n{dev}{model}", "Vn", v_op)
    vt = K_B * T_K / Q_E
    s = 2 * Q_E * i_d / math.tanh(v_op / (2 * vt))
    g = 1 / r + g_ds
    tpl = f"{dev}{model}I0 0 n DC {i0!r}\nR1 n 0 {r!r}\nC1 n 0 {c!r}\n.ic v(n)={v_op!r}\n"
    return tpl, v_op, i_d, g_ds, s, g, c / g, c, vt


def test_shot_noise_driven_capacitor():
    # A subthreshold NMOS in saturation (V_DS ≈ 0.3 V ≫ V_T) carries I_D; an ideal (noiseless)
    # 20 nA source and a noiseless 20 MΩ resistor set the node; C = 1 pF. The device's channel
    # noise S = 2q·I_D·coth(V_DS/2V_T) drives the node; the total conductance is
    # g = 1/R + g_ds, so Var(V) = S/(4·C·g) (= q·I·R_eff/(2C) in saturation, coth → 1).
    # I_D and g_ds come from a .dc sweep of the same device in the same ngspice.
    # τ = C/g ≈ 20 µs, NT = τ/5, N = 50 000 -> σ_rel = 1.41 % again, 5 % tolerance = 3.5 σ.
    tpl, v_op, i_d, g_ds, s, g, tau, c, vt = _shot_noise_node()
    nt = tau / 5
    expected = s / (4 * c * g) * hold_factor(nt / tau)
    wf = run_job_in_process(_job(tpl, nt, 50_000, seed=5, resistor_noise=False))
    v = wf.v_out[50:]
    ratio = v.var() / expected
    print(f"shot: V_DS={v_op:.3f} V I_D={i_d:.3e} A g_ds={g_ds:.3e} S/2qI={s / (2 * Q_E * i_d):.4f} "
          f"Var/expected={ratio:.4f}")
    assert v_op > 8 * vt  # saturation: the test is about shot noise, not the thermal limit
    assert abs(ratio - 1) < 0.05


def test_amplifier_output_psd_matches_ngspice_noise_analysis():
    # Common-source NMOS amplifier with a 10 GΩ load and 10 fF at the output, the transistor in deep
    # weak inversion and saturation (V_GS = -0.2 V on the generic BSIM4 card, I_D ≈ 17 pA, V_DS ≈ 0.8 V).
    # Why this operating point: there BSIM4's own channel thermal noise (tnoimod=0, flicker off)
    # and noisecell's injected 2q·I_D·coth(V_DS/2V_T) are the same physical quantity — the shot
    # noise of the diffusion current — (BSIM4's value is within 2 % of 2qI_D there); in strong
    # inversion the two differ by design (BSIM's (8/3)kT·g_m-like noise vs 2qI), so agreement there
    # would not be expected. The load resistor's 4kT/R is in both.
    # Compared: Welch PSD of the transient output vs ngspice's `.noise` onoise² (same netlist, same
    # ngspice), averaged over the decade [f_3dB/3, 10·f_3dB/3] around the output pole, with the
    # transient's known zero-order-hold factor sinc²(f·NT) applied to the expectation.
    # Statistics: NT = τ/20; Welch with Hann segments of 2^k ≥ 3/(f_lo·NT) points and 50 % overlap
    # gives a per-bin relative variance ≈ 1.056/K (K segments); averaging M bins whose Hann leakage
    # correlates neighbours (≈ 1.5 bins per independent value) gives σ_rel ≈ sqrt(1.5·1.056/(K·M)).
    # With N = 60 000 points this is ≈ 3–4 % (printed), so the 15 % is ≥ 3.5 σ plus the
    # ≤ 2 % model difference; a wrong PSD scale (e.g. 2qI vs qI) fails by > 10 σ.
    r_l, c_l, vg, vdd = 1e10, 10e-15, -0.2, 1.0
    model = ".model nch nmos level=54 version=4.8.2 toxe=2n fnoimod=0 kf=0\n"
    core = f"Vdd vdd 0 {vdd!r}\nR1 vdd n {r_l!r}\nM1 n g 0 0 nch W=1u L=1u\nC1 n 0 {c_l!r}\n{model}"
    res = run_netlist_in_process(
        f"ac\n{core}Vin g 0 DC {vg!r} AC 1\n.options temp={T_C!r} tnom=27\n.noise v(n) Vin dec 100 1 100meg\n.end\n",
        trusted=True)
    nz = next(v for p, v in res.items() if p.startswith("noise1"))
    f_ng, s_ng = nz["frequency"], nz["onoise_spectrum"] ** 2
    # output pole: where the ngspice spectrum falls to half its low-frequency value
    f3 = float(np.interp(0.5, (s_ng / s_ng[0])[::-1], f_ng[::-1]))
    tau = 1 / (2 * math.pi * f3)
    nt = tau / 20
    f_lo, f_hi = f3 / 3, 10 * f3 / 3
    n = 60_000
    wf = run_job_in_process(_job(f"{core}Vg g 0 {vg!r}\n", nt, n, seed=21))
    v = wf.v_out[200:]  # 10 τ of start-up
    nper = 1 << int(math.ceil(math.log2(3 / (f_lo * nt))))
    f, p = signal.welch(v, fs=1 / nt, window="hann", nperseg=nper, noverlap=nper // 2, detrend="constant")
    band = (f >= f_lo) & (f <= f_hi)
    expected = np.interp(np.log(f[band]), np.log(f_ng), s_ng) * np.sinc(f[band] * nt) ** 2
    k_seg = (len(v) - nper) // (nper // 2) + 1
    sigma = math.sqrt(1.5 * 1.056 / (k_seg * band.sum()))
    ratio = p[band].mean() / expected.mean()
    print(f"amplifier: f_3dB={f3:.4g} Hz, decade {f_lo:.3g}-{f_hi:.3g} Hz, {band.sum()} bins × {k_seg} segments, "
          f"PSD ratio transient/.noise = {ratio:.4f} (σ_rel ≈ {sigma:.3f})")
    assert abs(ratio - 1) < 0.15
    # the shape too: each third of the decade separately (σ_rel ≈ √3 larger), same 15 % bound
    edges = f_lo * 10 ** np.array([0, 1 / 3, 2 / 3, 1])
    fb = f[band]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (fb >= lo) & (fb < hi)
        r3 = p[band][sel].mean() / expected[sel].mean()
        print(f"  {lo:.3g}-{hi:.3g} Hz: ratio {r3:.4f}")
        assert abs(r3 - 1) < 0.15


def test_flicker_noise_psd_follows_corner_over_f():
    # Same shot-noise-driven node as above with 1/f channel noise of corner f_c = 10·f_3dB: the node
    # PSD must be S·(1 + f_c/f)/(g²·(1+(f/f_3dB)²))·sinc²(f·NT). Compared on the decade
    # [f_3dB/10, f_3dB], where the 1/f part is 10-100× the white part, as the mean of per-bin ratios.
    # Statistics as in the amplifier test: σ_rel ≈ sqrt(1.5·1.056/(K·M)) ≈ 4-5 % (printed); the
    # synthesis itself is within 4 % of f_c/f; tolerance 15 % (a missing 1/f term would be off ×10).
    tpl, v_op, i_d, g_ds, s_white, g, tau, c, vt = _shot_noise_node()
    f3 = 1 / (2 * math.pi * tau)
    fc = 10 * f3
    nt = tau / 5  # variance bias (NT/τ)²/12 = 0.3 %; the sinc² of the hold is in the expectation
    n = 20_000
    # 1/f synthesised from f_3dB/10 (the bottom of the compared decade) up: 9 sections per device
    wf = run_job_in_process(_job(tpl, nt, n, seed=13, resistor_noise=False, flicker_corner_hz=fc,
                                 flicker_min_hz=f3 / 10))
    v = wf.v_out[50:]
    f_lo, f_hi = f3 / 10, f3
    nper = 1 << int(math.ceil(math.log2(3 / (f_lo * nt))))
    f, p = signal.welch(v, fs=1 / nt, window="hann", nperseg=nper, noverlap=nper // 2, detrend="linear")
    band = (f >= f_lo) & (f <= f_hi)
    fb = f[band]
    expected = s_white * (1 + fc / fb) / (g ** 2 * (1 + (fb / f3) ** 2)) * np.sinc(fb * nt) ** 2
    k_seg = (len(v) - nper) // (nper // 2) + 1
    sigma = math.sqrt(1.5 * 1.056 / (k_seg * band.sum()))
    ratio = float(np.mean(p[band] / expected))
    white_only = float(np.mean(p[band] / (expected / (1 + fc / fb))))
    print(f"flicker: f_3dB={f3:.4g} Hz f_c={fc:.4g} Hz, {band.sum()} bins × {k_seg} segments, "
          f"PSD/expected = {ratio:.4f} (σ_rel ≈ {sigma:.3f}); vs white-only model {white_only:.2f}")
    assert abs(ratio - 1) < 0.15
