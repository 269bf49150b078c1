"""Device-noise injection for ngspice transient runs (ngspice itself adds none to ``.tran``).

For every MOSFET (``M`` element or PDK ``X`` subcircuit instance, see noisecell.netlist) the
transform adds, in the same scope as the device:

* a 0 V sense source ``Vnc_s_<dev>`` in the drain lead (current = drain current I_D, A);
* one unit white-noise source ``Vnc_u_<dev>``: ``TRRANDOM(1 NT 0 A 0)``, uniform on ±A held for NT,
  with A = sqrt(3/(2·NT)), so its variance is 1/(2·NT) and its one-sided PSD at low frequency is
  exactly 1 /Hz (zero-order hold: PSD(f) = sinc²(f·NT), i.e. 0.405 at the nominal noise bandwidth
  f_N = 1/(2·NT)). TRRANDOM draws from ngspice's single generator, seeded once per run with
  ``setseed``; each source takes its own successive draws, so the streams are independent draws of
  one seeded generator (tests/test_noise_injection.py measures their cross-correlation);
* a behavioural current source drain↔source ``Bnc_<dev>`` with current sqrt(S)·V(u), where

      S = 2q·|I_D|·coth(|V_DS|/(2·V_T))        [A²/Hz, one-sided]

  the exact channel noise of a device whose current is a difference of forward and reverse
  diffusion currents (I_D = I_F − I_R, each a shot-noise process: S = 2q(I_F+I_R)): 2q|I_D| in
  saturation (|V_DS| ≫ V_T) and 4kT·(I_D/V_DS) → 4kT·g_ds as V_DS → 0. V_T = kT/q at the job
  temperature. Implemented as S = 2q·|I·V|/(V²+ε²)·w/tanh(w/2V_T), w = sqrt(V²+ε²), ε = 10 µV,
  identical for |V_DS| ≫ ε. For |V_DS| ≪ ε it is S → 4kT·g_ds·V²/(V²+ε²): a device parked at a
  rail (the sink of a saturated inverter holding its output at ~µV) has its thermal noise
  suppressed below ~ε (relative bias ≈ 1.25·ε/σ_VDS for a device whose V_DS fluctuates around 0
  with rms σ_VDS; 1.2 % at σ_VDS = 1 mV, 0.2 % for the 5.7 mV kT/C noise of pbit_x5's 0.1 fF
  output). Why 10 µV and not 1 µV: sqrt(S) carries |V|/sqrt(V²+ε²), a kink at V_DS = 0 whose slope,
  sqrt(4kT·g_ds)·u/ε, is a random conductance of either sign; with ε = 1 µV (= ngspice's vntol) it
  was ~±2 mS against the device's 0.3 µS for pbit_x5's sink XN4, parked at V_DS ≈ 20 µV in the 0
  state at −40 °C (VDD/V_T = 28), and Newton cycled across it until the step collapsed: the demo's
  tt −40 °C record at −4.73 mV made no progress after t = 2.056 µs in 80 CPU-s; at 10 µV it finishes
  in 1.5 CPU-s, as do every trims.json pair's records. Harmless where measured (paired records, the
  same noise numbers at 1 and 10 µV): pbit bit-identical (12 records), pbit_x5 at tt 27 °C identical
  flip counts in 20 of 20 records and P(1) within 7e-4 (spice_models/design/NOTES.md §14).
  KNOWN LIMITATION: the kink stays (ε only sets its slope), so a high-conductance device held at
  V_DS ≈ 0 on a very small capacitance (τ = C/g_ds of a few ns) can still stop the solver ("timestep
  too small"; which ε gets through such a record is erratic); the runner then raises
  SimulationError, and the simulator's CPU-time limit bounds what a stall costs. A floor of 1e-34 A²/Hz inside the square root keeps its derivative
  finite at I_D = 0 (noise-current floor ≈ 0.2 pA rms at NT = 1 ns, negligible next to any device).
  In strong inversion saturation the true channel noise is (8/3)kT·g_m·(γ-ish), not 2q·I_D; the form
  above is exact in weak inversion — the regime p-bit cells run in — and at V_DS → 0 in any regime.
* optional flicker (1/f) noise: with ``flicker_corner_hz`` = f_c > 0 the unit source of each device
  becomes u + u_f, u_f a seeded sum of first-order (RC) relaxations with corners log-spaced two
  per decade from ``flicker_min_hz``/10 to 10·f_N, weighted so that PSD(u_f) ≈ f_c/f within 4 %
  (−0.15 dB) for f in [flicker_min_hz, f_N]. The channel PSD is then S·(1 + f_c/f). Each relaxation node starts from
  a draw of its stationary distribution (for devices at top level; those inside a .subckt start at
  0 and are stationary after ~1/(2π·flicker_min_hz)). ngspice's TRNOISE has a 1/f option but is not
  seedable, hence the synthesis.
* optional resistor thermal noise (``resistor_noise``): a current source 4kT/R in parallel with
  every ``R`` element.

All element and node names added start with ``nc_`` (after their SPICE type letter) so they cannot
collide with a cell's names.

Three routes render the SAME channel-noise current (``NoiseConfig.route``); the first two from the
same TRRANDOM unit sources:

* ``"portable"`` (today's rendering, the baseline): the B-source above. ngspice re-interprets its
  expression tree, and all its derivatives, at every Newton iteration (``PTeval`` under
  ``ASRCload``/``ASRCconvTest``: ~85 % of a sky130 pbit run).
* ``"compiled"``: the B-source is replaced by an instance of noisecell's XSPICE code model
  ``nc_chan`` (noisecell/codemodel/, built by ``make setup`` against the installed ngspice) with the
  same arithmetic in C and analytic partial derivatives, reading the same sense source (``%vnam``),
  the same V_DS and the same unit sources; every other element is unchanged, so the matrix, the
  breakpoints and the time points are the same and waveforms agree to the solver's rounding
  (tests/test_noise_routes.py). XSPICE limits a code-model input's change per Newton iteration to
  max(convstep·|x|, convabsstep) (defaults 0.25, 0.1); the unit source jumps by ~±sqrt(3/(2NT)) ≈
  ±4e4 at every breakpoint, so that limiter costs tens of iterations per point and stops runs with
  "timestep too small". The route therefore sets ``.options convstep=1e30 convabsstep=1e30``
  (convergence is then judged exactly as for the B-source: node voltages and branch currents).
  The code model must be loaded (``codemodel <path>``) before the circuit: :func:`codemodel_path`.
* ``"smooth"`` (the default when its code model is built; docs/simulation.md "Smooth route"): the compiled route's ``nc_chan`` current,
  but every unit source (channel, flicker relaxation, resistor) is an instance of noisecell's
  second code model ``nc_unit`` instead of TRRANDOM: u(t) = s·((1−θ)·z_k + θ·z_{k+1}), k =
  floor(t/NT), θ = t/NT − k, z_k iid N(0, 1) (z_0 = 0: continuous with the noiseless operating
  point), s² = 1/(2NT). For linear interpolation of iid samples of variance s² the (time-averaged)
  one-sided PSD is 2·s²·NT·sinc⁴(f·NT): exactly 1 /Hz at low frequency, as on the other routes,
  and steeper above (sinc⁴ instead of the hold's sinc²). z_k is a pure function of (job seed, the
  name of the node the source drives, k) through a counter-based hash (splitmix64, Box-Muller), so
  the value at any time is deterministic whatever steps, rejections or retries the solver took.
  The source is continuous, so it needs no permanent breakpoint: TRRANDOM's breakpoint at every
  k·NT makes ngspice restart the next step at 0.1x (dctran.c), ~4.4 solver points per NT on pbit,
  against ~1.0 here. To keep solver points on the output grid the model sets a temporary XSPICE
  breakpoint (no 0.1x restart) only when a step ended off the grid (:data:`SMOOTH_SUBSTEPS` = −1):
  ngspice takes the step after every breakpoint at order 1 (backward Euler), so a breakpoint at
  every k·NT would make every step BE. Other random numbers than TRRANDOM's: statistically
  equivalent (tests/test_noise_smooth.py, benchmarks/nt_convergence.py), never bit-identical; the
  seed and NT are in the rendered ``.model nc_unit_m`` line, so the job id changes with them and
  with the route.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .netlist import find_mosfets, find_resistors, logical_lines, tokens
from .constants import K_B, Q_E  # re-exported

EPS_VDS = 1e-5  # V, regularisation of |V_DS| (module docstring: 1 µV stalled ngspice on pbit_x5)
PSD_FLOOR = 1e-34  # A²/Hz inside the square root
#: the default noise step NT, s. The NT-convergence study of the pbit cell on the compiled route
#: (benchmarks/nt_convergence.py, docs/simulation.md "Noise step") chose 0.5 ns (at 1 ns the flip
#: rate is 10-19 % low). The default route is now the smooth one, whose interpolated noise needs a
#: slightly finer step for the same rates: at 0.4 ns it reproduces compiled @ 0.5 ns in flip rate
#: (1.001 [0.933, 1.074]) and τ (1.003 [0.936, 1.075]) at 2.5x less CPU per simulated µs
#: (docs/simulation.md "Smooth route: speed and physics"). Both remain ~10 % from NT → 0 (smooth at
#: 0.25 ns: flip rate +13 % [6, 22]). Used by `noisecell simulate`, sweep specs and the default
#: characterisation spec, whatever the route.
DEFAULT_NOISE_STEP_S = 0.4e-9
#: noise-injection routes (see the module docstring); "auto" = smooth when its code model is built
#: (compiled when the built file predates nc_unit), else portable
ROUTES = ("portable", "compiled", "smooth")
#: smooth route: how the solver is kept on the sample grid k·NT (the nc_unit model's ``bkpt``).
#: -1 (align, the default): a temporary breakpoint only when a step ended off the grid; from a grid
#: point the step cap TMAX = NT reaches the next one, so steps stay trapezoidal. m ≥ 1: a temporary
#: breakpoint at every k·NT/m; ngspice integrates the step after each breakpoint at order 1
#: (backward Euler), so then every step is BE (measured on an RC at NT = τ/10: variance +1.9 % ± 0.4 %
#: off the exact value and 1.5 points per NT, against 0.0 % ± 0.4 % and 1.0 in align mode).
#: 0: no breakpoint at all (solver points drift off the grid; the output is then interpolated).
SMOOTH_SUBSTEPS = -1
#: environment override of the route ("portable", "compiled", "smooth" or "auto")
ROUTE_ENV = "NOISECELL_NOISE_ROUTE"
#: environment override of the code-model file (default: <venv>/noisecell-codemodel/noisecell-<ngspice version>.cm)
CODEMODEL_ENV = "NOISECELL_CODEMODEL"
#: XSPICE input limiting off (module docstring): a larger step than any input can take
_CONV_OFF = 1e30


def thermal_voltage(temp_c: float) -> float:
    """kT/q at ``temp_c`` °C, V."""
    return K_B * (temp_c + 273.15) / Q_E


@dataclass(frozen=True)
class NoiseConfig:
    """How noise is injected.

    noise_step_s: NT, the hold time of every noise sample, s. temp_c: °C (sets V_T and 4kT).
    flicker_corner_hz: f_c of the optional 1/f channel noise, Hz (0 = off).
    flicker_min_hz: lowest 1/f frequency synthesised, Hz (default: set by the caller, 1/duration).
    resistor_noise: add 4kT/R to every R element. seed: used only for the flicker initial states.
    route: "portable" (B-source) or "compiled" (XSPICE code model nc_chan; same current, faster), both
    with TRRANDOM unit sources; or "smooth" (nc_chan fed by nc_unit sources: breakpoint-free
    interpolated noise generated in the code model from ``seed``; statistically equivalent, other
    random numbers).
    """

    noise_step_s: float
    temp_c: float
    flicker_corner_hz: float = 0.0
    flicker_min_hz: float = 1e3
    resistor_noise: bool = True
    seed: int = 0
    route: str = "portable"


@dataclass(frozen=True)
class NoiseReport:
    """What was injected: device and resistor names, NT (s), nominal noise bandwidth 1/(2NT) (Hz)."""

    mosfets: tuple[str, ...]
    resistors: tuple[str, ...]
    noise_step_s: float
    bandwidth_hz: float
    flicker_corner_hz: float
    flicker_sections: int
    sources: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    route: str = "portable"

    def to_dict(self) -> dict:
        return {"mosfets": list(self.mosfets), "resistors": list(self.resistors),
                "noise_step_s": self.noise_step_s, "bandwidth_hz": self.bandwidth_hz,
                "flicker_corner_hz": self.flicker_corner_hz, "flicker_sections": self.flicker_sections,
                "sources": self.sources, "route": self.route}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.lower())


def flicker_sections(corner_hz: float, f_min_hz: float, f_max_hz: float) -> list[tuple[float, float]]:
    """(tau_s, gain²) of the relaxations whose summed PSD ≈ corner_hz/f between f_min and f_max.

    A unit-PSD source through gain g into 1 Ω ‖ τ F has PSD g²/(1+(f/f_k)²), f_k = 1/(2πτ). With
    corners spaced by the ratio r, Σ_k (c·f_c/f_k)/(1+(f/f_k)²) ≈ c·f_c·π/(2·ln r)/f (the sum is a
    Riemann sum over ln f_k of ∫ ds/(1+s²) = π/2; with r = √10 the ripple is < 0.1 %), so
    c = 2·ln(r)/π gives f_c/f. The corners run from f_min/10 to 10·f_max so that the truncated tails
    cost < 4 % anywhere in [f_min, f_max] (tests/test_noise_injection.py).
    """
    if corner_hz <= 0:
        return []
    if not 0 < f_min_hz < f_max_hz:
        raise InputError(f"flicker: need 0 < flicker_min_hz ({f_min_hz:g}) < noise bandwidth ({f_max_hz:g})")
    r = math.sqrt(10.0)
    lo, hi = f_min_hz / 10, f_max_hz * 10
    n = int(math.ceil(math.log(hi / lo) / math.log(r))) + 1
    c = 2 * math.log(r) / math.pi
    out = []
    for k in range(n):
        fk = lo * r ** k
        out.append((1.0 / (2 * math.pi * fk), c * corner_hz / fk))
    return out


def inject_noise(text: str, technology: str, cfg: NoiseConfig) -> tuple[str, NoiseReport]:
    """Return (netlist with noise sources, report). ``text`` must have had its params set already.

    The returned text is made of logical lines (continuations joined, comments dropped) followed
    by the noise parameter block; it is deterministic for a given input.
    """
    nt = float(cfg.noise_step_s)
    if not (math.isfinite(nt) and nt > 0):
        raise InputError(f"noise step {nt!r}: must be a positive number of seconds")
    if cfg.route not in ROUTES:
        raise InputError(f"noise route {cfg.route!r}: must be one of {list(ROUTES)}")
    compiled = cfg.route in ("compiled", "smooth")
    smooth = cfg.route == "smooth"
    lines = logical_lines(text)
    mos = find_mosfets(text, technology)
    res = find_resistors(text) if cfg.resistor_noise else []
    f_n = 1.0 / (2 * nt)
    sections = flicker_sections(cfg.flicker_corner_hz, cfg.flicker_min_hz, f_n)
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed) & 0xFFFFFFFF, 0x666C6B]))
    extra: dict[int, list[str]] = {}
    rewritten: dict[int, str] = {}
    ics: list[str] = []
    src = "TRRANDOM(1 {nc_nt} 0 {nc_ua} 0)"

    def unit_source(name: str, node: str) -> str:
        # a unit white-noise source driving ``node`` (one-sided PSD 1 /Hz at low frequency)
        if smooth:
            return f"Anc_{name} {node} nc_unit_m"
        return f"Vnc_{name} {node} 0 DC 0 {src}"

    n_sources = 0
    for m in mos:
        d = _safe(m.name)
        t = tokens(lines[m.index].text)
        # the drain is the first node for both M and X devices
        t[1] = f"nc_d_{d}"
        rewritten[m.index] = " ".join(t)
        add = [f"Vnc_s_{d} {m.drain} nc_d_{d} 0",
               unit_source(f"u_{d}", f"nc_u_{d}")]
        n_sources += 1
        unit = f"V(nc_u_{d})"
        unit_nodes = [f"nc_u_{d}"]
        for k, (tau, g2) in enumerate(sections):
            node = f"nc_f_{d}_{k}"
            add += [unit_source(f"fu_{d}_{k}", f"nc_fu_{d}_{k}"),
                    f"Bnc_fi_{d}_{k} 0 {node} I={{{math.sqrt(g2)!r}}}*V(nc_fu_{d}_{k})",
                    f"Rnc_f_{d}_{k} {node} 0 1",
                    f"Cnc_f_{d}_{k} {node} 0 {tau!r}"]
            n_sources += 1
            unit += f"+V({node})"
            unit_nodes.append(node)
            if m.scope is None:
                # stationary variance of the section: g²·(one-sided PSD 1)·R²/(4RC) = g²/(4τ)
                ics.append(f"v({node})={float(rng.normal(0.0, math.sqrt(g2 / (4 * tau))))!r}")
        # the B-source sits on the node side of the sense source, so the sensed current is the device's
        # own (a B-source inside the sensed loop would make its amplitude depend on itself)
        if compiled:
            # ports: ids (current of the sense source), vds, u (vector of unit nodes), out (drain -> source)
            add.append(f"Anc_{d} %vnam Vnc_s_{d} %vd({m.drain} {m.source}) [{' '.join(unit_nodes)}] "
                       f"%id({m.drain} {m.source}) nc_chan_m")
        else:
            add.append(f"Bnc_{d} {m.drain} {m.source} I=sqrt(nc_sn(I(Vnc_s_{d}),V({m.drain},{m.source})))*({unit})")
        extra.setdefault(m.index, []).extend(add)
    for r in res:
        d = _safe(r.name)
        extra.setdefault(r.index, []).extend([
            unit_source(f"ru_{d}", f"nc_ru_{d}"),
            f"Bnc_r_{d} {r.n1} {r.n2} I=sqrt(4*nc_kb*nc_tk/({r.value}))*V(nc_ru_{d})"])
        n_sources += 1
    vt = thermal_voltage(cfg.temp_c)
    header = [
        "* --- noisecell noise injection (noisecell.noise) ---",
        f".param nc_nt={nt!r} nc_ua={{sqrt(3/(2*nc_nt))}}",
        f".param nc_q={Q_E!r} nc_kb={K_B!r} nc_tk={cfg.temp_c + 273.15!r} nc_vt={vt!r} nc_eps={EPS_VDS!r}",
        # S = 2q·|I·V|/(V²+ε²) · w/tanh(w/2V_T), w = sqrt(V²+ε²): equals 2q|I|coth(|V|/2V_T) for |V| ≫ ε;
        # its square root has a finite slope at V = 0 (a bare |I|/tanh(w) form has an infinite one
        # there and stalls the solver when V_DS sits at 0)
        ".func nc_sn(i,v) {2*nc_q*abs(i*v)/(v*v+nc_eps*nc_eps)*sqrt(v*v+nc_eps*nc_eps)"
        f"/tanh(sqrt(v*v+nc_eps*nc_eps)/(2*nc_vt))+{PSD_FLOOR!r}}}",
    ]
    if compiled and mos:
        # smooth route: inside |V_DS| < LAG_BAND_V the amplitude from the last accepted time point
        # (nc_chan/cfunc.mod: at an implicit amplitude a device parked at V_DS = 0 is a random-sign
        # ps conductance that stalls the solver)
        lag = f" lagband={LAG_BAND_V!r}" if smooth else ""
        header += [f".model nc_chan_m nc_chan(q={Q_E!r} vt={vt!r} eps={EPS_VDS!r} floor={PSD_FLOOR!r}{lag})",
                   f".options convstep={_CONV_OFF!r} convabsstep={_CONV_OFF!r}"]
    if smooth and n_sources:
        header.append(f".model nc_unit_m nc_unit(nt={nt!r} seed={int(cfg.seed)} "
                      f"bkpt={int(SMOOTH_SUBSTEPS)})")
    body = []
    for i, ln in enumerate(lines):
        body.append(rewritten.get(i, ln.text))
        body.extend(extra.get(i, []))
    if ics:
        body.append(".ic " + " ".join(ics))
    report = NoiseReport(mosfets=tuple(m.name for m in mos), resistors=tuple(r.name for r in res),
                         noise_step_s=nt, bandwidth_hz=f_n, flicker_corner_hz=float(cfg.flicker_corner_hz),
                         flicker_sections=len(sections), sources=n_sources, route=cfg.route)
    return "\n".join(header + body) + "\n", report


def smooth_increment_correlation(r: float) -> float:
    """Lag-1 correlation of the grid increments of a first-order node (time constant τ, r = NT/τ)
    driven by the smooth route's interpolated noise.

    Over one interval the node obeys V_{k+1} = a·V_k + b1·z_{k+1} + b0·z_k (a = e^{−r}, b1 and b0
    as in tests/test_noise_smooth.py's interp_variance), an ARMA(1,1) with θ = b0/b1, whose
    autocovariances are γ0 ∝ (1 + 2aθ + θ²)/(1 − a²), γ1 ∝ (1 + aθ)(a + θ)/(1 − a²), γ2 = a·γ1;
    the increments' lag-1 correlation is (2γ1 − γ0 − γ2)/(2(γ0 − γ1)). For held noise (θ = 0) this is
    −(1 − a)/2, the relation noisecell.simulate.fast_tau inverts; the interpolation correlates
    neighbouring increments positively (→ +1/2 as r → 0, −1/2 as r → ∞), so that inversion would read a
    too-slow node on this route."""
    a = math.exp(-r)
    one_a = -math.expm1(-r)
    b1 = 1 - one_a / r
    b0 = one_a - b1
    th = b0 / b1
    g0 = (1 + 2 * a * th + th * th) / (1 - a * a)
    g1 = (1 + a * th) * (a + th) / (1 - a * a)
    g2 = a * g1
    return (2 * g1 - g0 - g2) / (2 * (g0 - g1))


def increment_lag1_correlation(v: np.ndarray) -> float | None:
    """Lag-1 correlation of a waveform's successive increments (dimensionless); None with fewer than
    100 increments or none non-zero. Both fast-τ inversions (held and interpolated noise) start here."""
    d = np.diff(np.asarray(v, dtype=float))
    if len(d) < 100 or not np.any(d):
        return None
    d = d - d.mean()
    den = float(np.dot(d, d))
    if den <= 0:
        return None
    return float(np.dot(d[:-1], d[1:]) / den)


def fast_tau_smooth(v: np.ndarray, dt: float) -> float | None:
    """:func:`noisecell.simulate.fast_tau` for a waveform of the smooth route (NT = ``dt``, s): the
    fastest relaxation time at a node, s, from the lag-1 correlation of its grid increments,
    inverting :func:`smooth_increment_correlation` (monotonic in r). None when undetermined; 0 or
    inf outside the range r ∈ [1e-3, 50]."""
    from scipy.optimize import brentq

    rho = increment_lag1_correlation(v)
    if rho is None:
        return None
    lo, hi = 1e-3, 50.0
    f_lo, f_hi = smooth_increment_correlation(lo) - rho, smooth_increment_correlation(hi) - rho
    if f_lo <= 0:
        return math.inf  # more correlated than any r ≥ 1e-3: slower than 1000 NT
    if f_hi >= 0:
        return 0.0
    return dt / brentq(lambda r: smooth_increment_correlation(r) - rho, lo, hi, xtol=1e-6)


# ----------------------------------------------------------------------------------------------
# where the compiled route's code model is, and which route a job gets

#: characters ngspice keeps as they are in a ``pre_codemodel`` line of a .control block (it lower-cases
#: other control lines, hence no capitals; no blanks)
_PLAIN_PATH = re.compile(r"^[a-z0-9_./+\-]+$")


@functools.lru_cache(maxsize=None)
def _installed_ngspice_version() -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ngspice"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def default_codemodel_path() -> Path | None:
    """Where ``make setup`` puts the code model for the installed ngspice (None: version unknown)."""
    ver = _installed_ngspice_version()
    # noisecell/codemodel/build.sh names it after the version without its epoch
    return None if ver is None else Path(sys.prefix) / "noisecell-codemodel" / f"noisecell-{ver.split(':')[-1]}.cm"


def codemodel_path() -> tuple[Path | None, str]:
    """(path of the built code model, "") or (None, why it cannot be used)."""
    env = os.environ.get(CODEMODEL_ENV)
    path = Path(env) if env else default_codemodel_path()
    if path is None:
        return None, "the installed ngspice version is unknown (not a Debian package)"
    path = path.resolve()
    if not path.is_file():
        return None, f"{path} is not built"
    if not _PLAIN_PATH.match(str(path)):
        copy = _plain_copy(path, path.stat().st_mtime_ns)
        if copy is None:
            return None, (f"its path {path} has capitals or blanks (ngspice would alter them) and no "
                          f"private copy could be made under {tempfile.gettempdir()}")
        return copy, ""
    return path, ""


@functools.lru_cache(maxsize=None)
def _plain_copy(path: Path, mtime_ns: int) -> Path | None:
    """A copy of the code model at a path ngspice keeps as it is, or None.

    ngspice lower-cases the path of a ``codemodel``/``pre_codemodel`` line, so a venv under a folder
    with capitals (a home folder, a worktree named ``wt-H18``) would otherwise lose the compiled route.
    The copy is a cache: ``<tmp>/noisecell-cm-<uid>/<sha256 of the file>.cm`` in a folder of mode 0700
    that must be ours (a shared /tmp), written atomically, so worker processes share one copy and
    nothing accumulates. ``mtime_ns`` keys the in-process cache so a rebuilt file is copied again."""
    try:
        data = path.read_bytes()
        folder = Path(tempfile.gettempdir()) / f"noisecell-cm-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        copy = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.cm"
        if not _PLAIN_PATH.match(str(copy)):
            return None
        if not (copy.is_file() and copy.read_bytes() == data):
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, copy)
    except OSError:
        return None
    return copy


@functools.lru_cache(maxsize=None)
def _has_model(path: Path, mtime_ns: int, name: bytes) -> bool:
    try:
        return name in path.read_bytes()
    except OSError:
        return False


#: |V_DS| band (V) in which the smooth route's nc_chan holds the noise amplitude of the last accepted
#: time point: 100 ε, where sqrt(S)'s slope is 1e-6 of its peak at ε; design/NOTES.md §15 has the measurements
LAG_BAND_V = 1e-3

#: text in a code-model file whose nc_chan has the ``lag`` parameter the smooth route needs
LAGGED_MARK = b"nc_chan_lagged_amplitude"


def smooth_available() -> tuple[bool, str]:
    """(True, "") when the built code-model file has ``nc_unit`` (the smooth route), else (False, why).
    A .cm built before the smooth route existed has nc_chan only; `make setup` rebuilds it."""
    path, why = codemodel_path()
    if path is None:
        return False, why
    if not _has_model(path, path.stat().st_mtime_ns, b"nc_unit"):
        return False, f"{path} was built before the smooth route (no nc_unit in it)"
    if not _has_model(path, path.stat().st_mtime_ns, LAGGED_MARK):
        return False, f"{path} was built before nc_chan's lagged amplitude (`make setup` rebuilds it)"
    return True, ""


_NOTICE_GIVEN = False


def resolve_route(requested: str | None = None) -> str:
    """The route a job renders with: ``requested`` ("auto"/None, "portable", "compiled", "smooth"),
    else the ``NOISECELL_NOISE_ROUTE`` environment variable, else "auto". "auto" is "smooth" when
    the built code model has ``nc_unit``, "compiled" when it has only ``nc_chan`` (built before the
    smooth route; `make setup` rebuilds it), else "portable" with a one-line notice on stderr (once
    per process): results are statistically the same, only slower. An explicit "compiled" or
    "smooth" that cannot be had is an InputError."""
    global _NOTICE_GIVEN
    req = requested_route(requested)
    if req == "portable":
        return "portable"
    path, why = codemodel_path()
    if path is not None:
        ok, why_smooth = smooth_available()
        if req == "auto":
            return "smooth" if ok else "compiled"
        if req == "smooth" and not ok:
            raise InputError(f"smooth noise route requested but its code model cannot be used: {why_smooth}; "
                             "run `make setup`")
        return req
    if req != "auto":
        raise InputError(f"{req} noise route requested but its code model cannot be used: {why}; run `make setup`")
    if not _NOTICE_GIVEN:
        _NOTICE_GIVEN = True
        print(f"noisecell: compiled noise routes unavailable ({why}); using the portable route "
              "(statistically the same results, ~10x slower); `make setup` builds them", file=sys.stderr)
    return "portable"


def requested_route(requested: str | None = None) -> str:
    """The route asked for, before resolution: ``requested``, else ``NOISECELL_NOISE_ROUTE``, else
    "auto" (lower case). InputError for an unknown name."""
    req = (requested or os.environ.get(ROUTE_ENV) or "auto").lower()
    if req not in ("auto",) + ROUTES:
        raise InputError(f"noise route {req!r} ({ROUTE_ENV}?): must be auto, portable, compiled or smooth")
    return req


#: the lines that mark a netlist rendered on the compiled or smooth route
_CODEMODEL_MARK = re.compile(r"^\.model (nc_chan_m nc_chan|nc_unit_m nc_unit)\(", re.M)
_SMOOTH_MARK = re.compile(r"^\.model nc_unit_m nc_unit\(", re.M)


def uses_codemodel(netlist: str) -> bool:
    """True when ``netlist`` (a rendered job) needs noisecell's code model loaded."""
    return bool(_CODEMODEL_MARK.search(netlist))


def uses_smooth_noise(netlist: str) -> bool:
    """True when ``netlist`` (a rendered job) draws its noise inside the code model (smooth route)."""
    return bool(_SMOOTH_MARK.search(netlist))


def codemodel_controls(netlist: str) -> list[str]:
    """``.control`` lines for ``ngspice -b`` that load the code model before the circuit is parsed
    (ngspice runs ``pre_`` commands first), or [] when ``netlist`` does not use it."""
    if not uses_codemodel(netlist):
        return []
    path, why = codemodel_path()
    if path is None:
        raise InputError(f"the netlist uses the compiled noise route but {why}; run `make setup`")
    return [f"pre_codemodel {path}"]
