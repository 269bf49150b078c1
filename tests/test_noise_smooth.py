"""The smooth noise route (noisecell.noise, route "smooth"): unit white noise generated inside the
nc_unit code model as a linear interpolation of counter-based Gaussian samples, with no permanent
breakpoints.

What is checked, each against a known answer:

* the unit source itself (resistor-noise unit nodes of a plain RC, read on the output grid, which
  with one temporary breakpoint per NT is the sample grid): sample variance 1/(2NT), Gaussian
  kurtosis 3, no auto- or cross-correlation, and the one-sided PSD 2·s²·NT·sinc⁴(f·NT) = sinc⁴(f·NT)
  /Hz (1 /Hz at low frequency) from a run with 4 solver points per NT;
* the value is a function of time alone: the grid values do not depend on the solver's step
  pattern (1 vs 3 points per NT), and the same seed gives bit-identical waveforms in two processes;
* physics: the kT/C of an RC node and the shot-noise variance of a subthreshold MOSFET node, each
  against the exact variance of a first-order node driven by linearly interpolated white noise
  (derived in :func:`interp_variance`);
* the route is breakpoint-free: ~1 solver point per NT on the sky130 pbit (the TRRANDOM routes
  take ~4.4), without which it would not be worth having.

Statistics of the estimators are derived next to each test; tolerances are ≥ 3.5 σ.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import signal

import noisecell.noise as noise
from noisecell.noise import K_B, Q_E, NoiseConfig, codemodel_path, inject_noise
from noisecell.simulate import SimulationJob
from noisecell.simulator import run_job
from noisecell.simulator.session import run_job_in_process

BUILT = noise.smooth_available()[0]
needs_codemodel = pytest.mark.skipif(not BUILT, reason="the smooth route's code model is not built (`make setup` "
                                     "builds it): " + noise.smooth_available()[1])
T_C = 27.0
T_K = T_C + 273.15


def interp_variance(psd: float, c: float, tau: float, nt: float) -> float:
    """Variance (V²) at the sample times k·NT of a first-order node (capacitance ``c`` F, time
    constant ``tau`` s) driven by the current sqrt(psd)·x(t), x the smooth unit source: x(t) =
    s·((1−θ)z_k + θ·z_{k+1}), z iid N(0, 1), s² = 1/(2NT) (one-sided PSD ``psd`` A²/Hz at low
    frequency).

    Exact solution over one interval, with a = exp(−r), r = NT/τ:
    V_{k+1} = a·V_k + (sqrt(psd)·s/c)·(b0·z_k + b1·z_{k+1}), where b1 = ∫₀^NT e^{−(NT−u)/τ}·u/NT du
    = τ(1 − (1−a)/r) and b0 = τ(1−a) − b1. So V_k = Σ_j c_j z_{k−j} with c_0 = b1, c_j =
    a^{j−1}(a·b1 + b0), and Var = (psd·s²/c²)·(b1² + (a·b1 + b0)²/(1 − a²)). As r → 0 this is
    psd·τ/(4c²) (= kT/C for psd = 4kT/R, τ = RC); it is lower by ≈ 0.48·r for small r (0.9516 at
    r = 0.1, 0.788 at r = 0.5; checked against a direct integration in numpy). The held source's
    value at the sample times, tanh(r/2)/(r/2), is only quadratic in r, but time-averaged both lose
    O(r): r/3 held, ≈ 0.45·r interpolated (docs/simulation.md, "Smooth route")."""
    r = nt / tau
    a = math.exp(-r)
    b1 = tau * (1 - (1 - a) / r)
    b0 = tau * (1 - a) - b1
    return psd / (2 * nt) / c ** 2 * (b1 ** 2 + (a * b1 + b0) ** 2 / (1 - a ** 2))


def _job(tpl: str, nt: float, n: int, seed: int, outputs=None, **kw) -> SimulationJob:
    return SimulationJob(cell_name="smooth", template=tpl, params={}, technology="generic", corner="tt",
                         temp_c=T_C, duration_s=n * nt, noise_step_s=nt, seed=seed,
                         outputs=outputs or {"v_out": "n"}, noise_route="smooth", **kw)


@pytest.fixture
def substeps():
    """Set noise.SMOOTH_SUBSTEPS for one test (this process renders and runs the job)."""
    old = noise.SMOOTH_SUBSTEPS

    def set_(m: int):
        noise.SMOOTH_SUBSTEPS = m
    yield set_
    noise.SMOOTH_SUBSTEPS = old


def test_smooth_route_renders_code_model_sources_and_no_trrandom():
    text = ("Vdd vdd 0 1\nM1 d1 g 0 0 nch\nR1 d1 0 1k\n.model nch nmos level=54\n")
    cfg = NoiseConfig(noise_step_s=5e-10, temp_c=27.0, flicker_corner_hz=1e6, flicker_min_hz=1e4,
                      route="smooth", seed=1234)
    out, rep = inject_noise(text, "generic", cfg)
    assert rep.route == "smooth"
    assert "TRRANDOM" not in out
    assert f".model nc_unit_m nc_unit(nt=5e-10 seed=1234 bkpt={noise.SMOOTH_SUBSTEPS})" in out
    assert "Anc_u_m1 nc_u_m1 nc_unit_m" in out and "Anc_ru_r1 nc_ru_r1 nc_unit_m" in out
    assert sum(l.startswith("Anc_fu_m1_") for l in out.splitlines()) == rep.flicker_sections > 0
    # the channel current is the compiled route's code model, reading the same unit nodes
    assert "Anc_m1 %vnam Vnc_s_m1 %vd(d1 0) [nc_u_m1 " in out
    assert noise.uses_codemodel(out) and noise.uses_smooth_noise(out)
    comp, _ = inject_noise(text, "generic", dataclasses.replace(cfg, route="compiled"))
    assert not noise.uses_smooth_noise(comp)
    # resistors only (no MOSFET): the unit model is still declared and needs the code model
    r_only, _ = inject_noise("R1 a 0 1k\nC1 a 0 1p\n", "generic", cfg)
    assert noise.uses_codemodel(r_only) and ".model nc_chan_m" not in r_only


@needs_codemodel
def test_job_identity_includes_route_and_seed():
    tpl = "R1 n 0 10k\nC1 n 0 1p\n"
    base = _job(tpl, 1e-9, 100, seed=3)
    # (with resistors only the compiled route renders as the portable one: nc_chan is for MOSFETs)
    ids = {base.job_id(), dataclasses.replace(base, seed=4).job_id(),
           dataclasses.replace(base, noise_route="portable").job_id()}
    assert len(ids) == 3
    assert base.job_id() == _job(tpl, 1e-9, 100, seed=3).job_id()


def test_explicit_smooth_route_without_code_model_is_an_input_error(monkeypatch, tmp_path):
    from noisecell.errors import InputError
    monkeypatch.setenv(noise.CODEMODEL_ENV, str(tmp_path / "absent.cm"))
    with pytest.raises(InputError, match="smooth noise route requested"):
        noise.resolve_route("smooth")


def test_a_code_model_built_before_the_smooth_route_is_refused_for_it_only(monkeypatch, tmp_path):
    from noisecell.errors import InputError
    old = tmp_path / "old.cm"
    old.write_bytes(b"\x7fELF... cm_nc_chan nc_chan ...")  # a .cm with nc_chan only
    monkeypatch.setenv(noise.CODEMODEL_ENV, str(old))
    monkeypatch.delenv(noise.ROUTE_ENV, raising=False)
    ok, why = noise.smooth_available()
    assert not ok and "was built before the smooth route (no nc_unit in it)" in why
    with pytest.raises(InputError, match="built before the smooth route.*make setup"):
        noise.resolve_route("smooth")
    assert noise.resolve_route("compiled") == "compiled" and noise.resolve_route(None) == "compiled"


def _units(nt: float, n: int, seed: int):
    """Two unit sources (the resistor-noise sources of two RC branches) on the output grid."""
    tpl = "R1 a 0 10k\nC1 a 0 1p\nR2 b 0 10k\nC2 b 0 1p\n"
    wf = run_job_in_process(_job(tpl, nt, n, seed, outputs={"v_out": "nc_ru_r1", "v_u2": "nc_ru_r2"}))
    return wf, wf.outputs["v_out"][1:], wf.outputs["v_u2"][1:]  # sample 0 is z_0 = 0 by design


@needs_codemodel
def test_unit_source_samples_are_iid_gaussian_with_variance_1_over_2nt():
    # N = 40 000 samples per source. Relative SE of a sample variance of iid Gaussians: sqrt(2/N) =
    # 0.71 % -> tolerance 3 % (4.2 σ); a uniform (TRRANDOM-like) amplitude would still pass this, so
    # the kurtosis is checked too: SE sqrt(24/N) = 0.024 -> |κ − 3| < 0.12 (5 σ; uniform: 1.8).
    # Correlations (auto at lags 1..3, cross at lags −2..2): SE 1/sqrt(N) = 0.005 -> < 0.025 (5 σ).
    nt, n = 1e-9, 40_000
    wf, u1, u2 = _units(nt, n, seed=7)
    assert wf.meta["noise"]["route"] == "smooth"
    s2 = 1 / (2 * nt)
    for u in (u1, u2):
        assert abs(u.var() / s2 - 1) < 0.03
        assert abs(np.mean(u)) < 5 * math.sqrt(s2 / n)
        z = (u - u.mean()) / u.std()
        assert abs(np.mean(z ** 4) - 3) < 0.12
        for lag in (1, 2, 3):
            assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < 0.025
    for lag in (-2, -1, 0, 1, 2):
        a, b = (u1[lag:], u2[:len(u2) - lag]) if lag >= 0 else (u1[:lag], u2[-lag:])
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.025


@needs_codemodel
def test_unit_source_psd_is_sinc4_with_unit_low_frequency_level(substeps):
    # 4 solver points per NT (temporary breakpoints at k·NT/4), read on that NT/4 grid (dt). The
    # continuous source's one-sided PSD is 2s²NT·sinc⁴(f·NT) = sinc⁴(f·NT). Its samples y_j =
    # s·Σ_k z_k·h_{j−Mk} (M = 4, h_p = 1 − |p|/M) are a cyclostationary sequence sampled in step with
    # its cycle, so their PSD is not the aliased sum of sinc⁴ but (time-averaged autocorrelation
    # (s²/M)·Σ_p h_p·h_{p+l}) 2·dt·(s²/M)·|Σ_p h_p e^{−2πi f p dt}|² = [sin(πfNT)/(M·sin(πfNT/M))]⁴
    # (the Fejér kernel squared; 1 at f = 0, → sinc⁴ as M → ∞, 1.108·sinc⁴ at f = 0.5/NT for M = 4),
    # which is the expectation used. Welch, Hann, segments of
    # 256 NT, 50 % overlap, K ≈ 2·N_NT/256 = 470 segments for 60 000 NT: a band average over B bins
    # has relative SE ≈ 1/sqrt(K·B·0.5) (Hann overlap correlation); for the bands below (≥ 12 bins)
    # that is ≤ 1.9 % -> tolerance 8 % (≥ 4 σ). A held (sinc²) source would read 0.405 instead of
    # 0.164 at f = 0.5/NT (2.5x), and a PSD off by 2 fails at low frequency.
    substeps(4)
    nt, n = 1e-9, 60_000
    job = _job("R1 a 0 10k\nC1 a 0 1p\n", nt, n, seed=21, outputs={"v_out": "nc_ru_r1"})
    assert "bkpt=4)" in job.render()
    from noisecell.simulator.session import run_netlist_in_process
    vec = run_netlist_in_process(job.render(), trusted=True)  # all solver points, not the NT grid
    tran = next(v for p, v in vec.items() if p.startswith("tran"))
    t = tran["time"]
    x = tran.get("v(nc_ru_r1)", tran.get("nc_ru_r1"))
    dt = nt / 4
    grid = np.arange(int(round(t[-1] / dt)) + 1) * dt
    # every k·NT/4 is a solver point (temporary breakpoints), so reading the grid is exact
    i = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
    assert np.max(np.minimum(np.abs(t[i] - grid), np.abs(t[i - 1] - grid))) < 1e-6 * dt
    y = np.interp(grid, t, x)
    f, p = signal.welch(y, fs=1 / dt, window="hann", nperseg=1024, noverlap=512, detrend=False)
    for lo, hi in ((0.01, 0.06), (0.2, 0.3), (0.45, 0.55), (0.7, 0.8)):
        band = (f >= lo / nt) & (f < hi / nt)
        assert band.sum() >= 12
        x_ = np.pi * f[band] * nt
        expected = np.mean((np.sin(x_) / (4 * np.sin(x_ / 4))) ** 4)
        ratio = np.mean(p[band]) / expected
        print(f"PSD band [{lo}, {hi})/NT: measured/expected = {ratio:.4f}, expected {expected:.4f}, "
              f"continuous sinc^4 {np.mean(np.sinc(f[band] * nt) ** 4):.4f}")
        assert abs(ratio - 1) < 0.08


@needs_codemodel
def test_value_depends_on_time_only_not_on_the_solver_steps(substeps):
    # The RC node itself differs with the step pattern (integration error), the unit source must not:
    # its grid values with 1 and with 3 solver points per NT agree to rounding (the time of a grid
    # point accumulates through different step sums: ≤ a few ulp of t, i.e. ~1e-15 relative).
    nt, n = 1e-9, 2000
    substeps(1)
    _, a1, a2 = _units(nt, n, seed=5)
    substeps(3)
    _, b1, b2 = _units(nt, n, seed=5)
    scale = math.sqrt(1 / (2 * nt))
    assert np.max(np.abs(a1 - b1)) < 1e-9 * scale and np.max(np.abs(a2 - b2)) < 1e-9 * scale
    _, c1, _ = _units(nt, n, seed=6)
    assert np.corrcoef(a1, c1)[0, 1] < 0.1  # another seed: other numbers (SE of ρ 0.022)


@needs_codemodel
def test_same_seed_is_bit_identical_across_processes():
    tpl = "R1 n 0 10k\nC1 n 0 1p\n"
    job = _job(tpl, 2e-9, 3000, seed=9)
    a = run_job(job, timeout_s=300)
    b = run_job(job, timeout_s=300)
    c = run_job_in_process(job)
    assert np.array_equal(a.v_out, b.v_out) and np.array_equal(a.v_out, c.v_out)
    assert not np.array_equal(a.v_out, run_job_in_process(dataclasses.replace(job, seed=10)).v_out)


def _discretisation_note():
    """Why the expectation is the continuous one: ngspice integrates the step after every (temporary)
    breakpoint at order 1 (backward Euler), and with SMOOTH_SUBSTEPS = 1 every step ends at one; in
    align mode (-1) the steps are trapezoidal. For a first-order node both schemes sample the input
    at the grid points only (BE: x_{k+1}; trapezoidal: (x_k + x_{k+1})/2), and both give the grid
    variance 1/(1 + r/2) of the white-noise value (AR(1) algebra), against the exact
    interpolated-input value interp_variance (≈ 1 − 0.48·r): 0.08 % apart at r = 0.1, 1.5 % at
    r = 0.5. The tests run at r = 0.1, where that difference is < 1/8 of the statistical SE."""


@needs_codemodel
def test_rc_thermal_noise_gives_kT_over_C_with_the_interpolation_factor():
    # R = 10 kΩ, C = 1 pF, τ = 10 ns, NT = τ/10: expected interp_variance(4kT/R) = 0.9516·kT/C
    # (_discretisation_note: the solver's own value is 0.08 % above). N = 500 000 NT, T = 50 000 τ:
    # relative SE of the variance sqrt(2τ/T) = 0.63 % -> tolerance 2.5 % (4 σ); plain kT/C (no
    # interpolation factor) would be 5.1 % off, a source off by √2 in amplitude reads 2 or 0.5.
    r, c = 10e3, 1e-12
    tau, nt = r * c, r * c / 10
    wf = run_job_in_process(_job(f"R1 n 0 {r!r}\nC1 n 0 {c!r}\n", nt, 500_000, seed=11))
    v = wf.v_out[200:]  # 20 τ of start-up from V = 0
    expected = interp_variance(4 * K_B * T_K / r, c, tau, nt)
    ratio = v.var() / expected
    print(f"smooth kT/C: Var/expected = {ratio:.4f}; expected/(kT/C) = {expected / (K_B * T_K / c):.4f}")
    assert abs(ratio - 1) < 0.025


@needs_codemodel
def test_shot_noise_of_a_subthreshold_device_on_the_smooth_route():
    # The shot-noise node of tests/test_noise_validation.py (subthreshold NMOS in saturation, ideal
    # 20 nA source, noiseless 20 MΩ, 1 pF): S = 2q·I_D·coth(V_DS/2V_T), g = 1/R + g_ds, τ = C/g, here
    # driven by the smooth source: Var = interp_variance(S, C, τ, NT) at NT = τ/10 (0.9516·S/(4Cg)).
    # N = 200 000 NT, T = 20 000 τ -> σ_rel = sqrt(2τ/T) = 1.0 %, tolerance 4 % (4 σ).
    from test_noise_validation import _shot_noise_node
    tpl, v_op, i_d, g_ds, s, g, tau, c, vt = _shot_noise_node()
    nt = tau / 10
    wf = run_job_in_process(_job(tpl, nt, 200_000, seed=5, resistor_noise=False))
    v = wf.v_out[200:]
    ratio = v.var() / interp_variance(s, c, tau, nt)
    print(f"smooth shot: V_DS={v_op:.3f} V I_D={i_d:.3e} A Var/expected={ratio:.4f}")
    assert v_op > 8 * vt
    assert abs(ratio - 1) < 0.04


def _sky130_available() -> bool:
    try:
        from noisecell.cells import load_cell
        from noisecell.technology import model_lines
        load_cell("pbit")
        model_lines("sky130", "tt", mismatch=False)
        return True
    except Exception:
        return False


@needs_codemodel
@pytest.mark.skipif(not _sky130_available(), reason="sky130 models not installed")
def test_pbit_runs_breakpoint_free():
    # The point of the route: no permanent breakpoint per NT, so no 0.1x restart per NT. The
    # TRRANDOM routes take ~4.4 solver points per NT on pbit (dctran.c's cut after each
    # breakpoint); with one temporary breakpoint per NT the smooth route takes 1 (+ the start).
    from noisecell.cells import load_cell
    from noisecell.simulate import job_from_cell
    cell = load_cell("pbit")
    nt, dur = 5e-10, 0.5e-6
    job = dataclasses.replace(job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=dur, noise_step_s=nt, seed=2),
                              noise_route="smooth")
    wf = run_job_in_process(job)
    per_nt = wf.meta["solver_points"] / (dur / nt)
    comp = run_job_in_process(dataclasses.replace(job, noise_route="compiled"))
    per_nt_comp = comp.meta["solver_points"] / (dur / nt)
    print(f"solver points per NT: smooth {per_nt:.3f}, compiled {per_nt_comp:.3f}")
    assert per_nt < 1.2 and per_nt_comp > 3


def test_fast_tau_estimator_of_the_smooth_route_on_a_synthetic_node():
    # A first-order node driven by interpolated white noise, generated exactly (the ARMA(1,1)
    # recursion of interp_variance's docstring) at r = NT/τ = 0.2, 0.77, 3. N = 200 000: the lag-1
    # correlation's SE is ≲ 1/sqrt(N)·2 = 0.0045 (correlated increments), |dρ/d ln r| ≥ 0.09 over
    # this range -> SE(ln τ) ≤ 5 %; tolerance 20 %. The held-noise estimator (noisecell.simulate.
    # fast_tau) reads these nodes 2-100x too slow, which is why the route has its own.
    from noisecell.noise import fast_tau_smooth
    from noisecell.simulate import fast_tau
    rng = np.random.default_rng(4)
    for r in (0.2, 0.77, 3.0):
        a = math.exp(-r)
        b1 = 1 - (1 - a) / r
        b0 = (1 - a) - b1
        v = signal.lfilter([b1, b0], [1, -a], rng.standard_normal(200_000))[1000:]
        est = fast_tau_smooth(v, 1.0) * r
        held = fast_tau(v, 1.0) * r
        print(f"r = {r}: smooth estimator τ/true = {est:.3f}, held-noise estimator {held:.3f}")
        assert abs(math.log(est)) < 0.2
        assert held > 1.5 or held == math.inf


@needs_codemodel
def test_auto_route_falls_back_to_compiled_on_timestep_too_small_but_a_named_smooth_raises(monkeypatch):
    # the smooth route is the default; a job it cannot converge is rerun on the compiled route (TRRANDOM
    # noise, same statistics) only when the route was not asked for by name, and the result says so
    import noisecell.simulator.session as session
    from noisecell.errors import SimulationError
    monkeypatch.delenv(noise.ROUTE_ENV, raising=False)
    real = session._run_job_in_process
    routes = []

    def failing_on_smooth(job):
        text = job.render()
        routes.append("smooth" if noise.uses_smooth_noise(text) else "other")
        if noise.uses_smooth_noise(text):
            raise SimulationError(f"{job.describe()}: ngspice did not converge (timestep too small at t = 1e-08 s)")
        return real(job)

    monkeypatch.setattr(session, "_run_job_in_process", failing_on_smooth)
    job = dataclasses.replace(_job("R1 a 0 10k\nC1 a 0 1p\n", 1e-9, 200, seed=5, outputs={"v_out": "a"}),
                              noise_route=None)
    wf = run_job_in_process(job)
    assert routes[:2] == ["smooth", "other"]
    assert wf.meta["noise"]["route"] != "smooth" and wf.meta["job_id"] == job.job_id()
    assert any("smooth noise route did not converge" in w for w in wf.meta["warnings"])
    again = run_job_in_process(job)   # the fallback is a function of the job: same numbers
    assert np.array_equal(again.outputs["v_out"], wf.outputs["v_out"])
    with pytest.raises(SimulationError, match="timestep too small"):
        run_job_in_process(dataclasses.replace(job, noise_route="smooth"))
