"""Regime detection: is a cell's output a bistable telegraph, a single-peaked noisy signal, or stuck?

A P(1)-vs-bias sigmoid, a dwell time τ or a flip rate only mean something for a *bistable* output:
two well-separated output levels with noise-driven jumps between them, each level held for much
longer than the output's own fluctuation time inside a level. Near the edges of a cell's supply
window the same netlist instead gives

* ``single_peaked``: one broad noisy level that straddles the readout threshold. The comparator
  still produces random bits, but P(1) is set by where the threshold cuts one Gaussian-ish peak and
  "τ" is the noise correlation time, not a dwell time: no sigmoid or τ should be reported;
* ``stuck``: the output stays on one side of the threshold for the whole record (a frozen latch, a
  strongly biased point, a dead cell). Only a bound on P(1) is known.

The decision uses two independent pieces of evidence (thresholds below, with their reasons):

1. *Bimodality of the output distribution*: a Gaussian-smoothed histogram (kernel bandwidth from
   Silverman's rule with the autocorrelation-corrected sample size) must show two modes with a
   valley no higher than :data:`VALLEY_RATIO_MAX` of the smaller mode, each mode holding at least
   :data:`MIN_MODE_FRACTION` of the time. Ashman's D of the two state-conditioned levels is reported.
2. *Dwell-time structure*: the trace is cut into states by a Schmitt trigger centred on the
   valley that switches only on coming within 10 % of the mode spacing of the other level. There must be at least
   :data:`MIN_TRANSITIONS` transitions, and the mean dwell must be at least
   :data:`DWELL_RATIO_MIN` times the within-state correlation time (1/e time of the autocorrelation
   of the trace minus its state's level).

3. *Slow telegraphs* (levels that switch a few times per record, each level's noise overlapping the
   other level, so the raw histogram has no valley): when the raw trace is not bistable, the same
   two tests are repeated on the trace averaged over windows ``w`` of 4, 8, 16, ... samples (up to
   1/16 of the record). Averaging over ``w`` ≫ the within-level correlation time τ_w divides the
   level noise variance by ≈ w/(2τ_w) but leaves a step between levels that last ≫ ``w`` intact, so
   a telegraph's levels separate; a linear average of a one-level (Gaussian, e.g. Ornstein–Uhlenbeck)
   signal stays Gaussian and unimodal at every ``w``, so it cannot be turned into two levels. The
   averaged trace must pass the valley and transition tests, and its mean dwell must also be at
   least :data:`DWELL_RATIO_MIN` × ``w`` (each level held much longer than the averaging that
   revealed it). The result records ``smoothing_s`` = ``w`` (0 for the raw-trace decision); the
   digitiser reads such a cell through the same average (see noisecell.digitize).

All functions are pure (numpy in, frozen dataclass out). Voltages in V, times in s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .comparator import n_transitions, schmitt_states
from .errors import InputError, RegimeError
from .units import format_si

REGIMES = ("bistable", "single_peaked", "stuck")

#: Histogram valley / smaller-mode height at most this for "two modes". For an equal mixture of two
#: Gaussians of width σ separated by d, the ratio is 2φ(d/2σ)/(φ(0)+φ(d/σ)): 0.64 at d=3σ, 0.27 at
#: d=4σ; 0.5 corresponds to d≈3.4σ, where the two levels overlap by < 5 % each — the same limit the
#: automatic threshold of noisecell.digitize uses, so a point called bistable can also be digitised.
VALLEY_RATIO_MAX = 0.5
#: The smaller mode must hold this fraction of the time: below it the "mode" is a few excursions,
#: which a record cannot tell from a tail of one peak.
MIN_MODE_FRACTION = 0.005
#: The automatic threshold of noisecell.digitize needs less: only a valley between two populated
#: modes to put the threshold in, so a strongly biased telegraph whose minority level holds 1e-4 of
#: the samples still gets one (whether such a record is *bistable* is decided here, with the limit above).
THRESHOLD_MIN_MODE_FRACTION = 1e-4
#: At least this many transitions before a record is called a telegraph: with 2, one level was
#: entered AND left again (a complete dwell), which a one-way relaxation from the initial condition
#: cannot produce. Records with few transitions are still bistable, but every rate estimate from
#: them has a wide interval; the reasons say so (see LOW_STAT_TRANSITIONS).
MIN_TRANSITIONS = 2
#: Below this many transitions the reasons carry a "few transitions" warning (relative error of a
#: rate from N exponential dwells ≈ 1/√N: 30 % at N = 10).
LOW_STAT_TRANSITIONS = 10
#: Mean dwell / within-state correlation time: a noise-driven hop over a barrier of ΔU has a dwell
#: ≈ τ_w·e^{ΔU/kT}·(prefactor ~ 1–3); a ratio ≥ 3 means a barrier of ~1 kT or more, i.e. the
#: levels are metastable states and not a fluctuation of one level seen through a comparator.
DWELL_RATIO_MIN = 3.0
#: Fraction of the record on the far side of the readout threshold below which a one-level output
#: is "stuck" rather than "single-peaked": 1e-3 of the time is < 1 sample in a thousand.
STUCK_FRACTION = 1e-3
#: A biased (tilted) double well: the bias adds a roughly linear term to the potential U = -ln p,
#: which lowers the minority well's barrier and raises valley/minor-mode height even though both
#: states are still metastable. valley / sqrt(height_a·height_b) cancels a linear tilt exactly when
#: the valley lies midway between the modes (ln p_valley - (ln p_a + ln p_b)/2 is tilt-free), so it
#: is compared with VALLEY_RATIO_MAX as a second, tilt-corrected test — only on records with enough
#: traffic that the minority level cannot be a tail artefact of the density estimate:
TILTED_MIN_FRACTION = 0.05
TILTED_MIN_TRANSITIONS = LOW_STAT_TRANSITIONS
#: Averaging windows of the slow-telegraph test: 4, 8, 16, ... samples, while the record holds at
#: least this many windows (a level must be held ≥ DWELL_RATIO_MIN windows, and MIN_TRANSITIONS such
#: dwells must fit: 16 windows leave room for ~5 dwells of 3 windows).
SLOW_MIN_WINDOWS_PER_RECORD = 16
SLOW_FIRST_WINDOW_SAMPLES = 4
#: The two levels found after averaging must carry this fraction of the RAW trace's variance
#: (p(1-p)·Δ² of a two-level signal with levels Δ apart, occupied p and 1-p of the time). A
#: telegraph's step survives averaging, so its share is the same at every window; a one-level signal
#: averaged over a long window shrinks to a few independent values, whose chance "two modes" are a
#: sliver of the raw spread. 0.2 accepts levels as close as their own noise σ at p = 1/2
#: (Δ = σ: 0.25σ²/1.25σ²) and refuses the few-sample artefacts (≈ 0.01 for a 5 ns Ornstein–Uhlenbeck
#: signal averaged over 2 µs in a 40 µs record).
SLOW_MIN_LEVEL_VARIANCE_FRACTION = 0.2
#: A histogram valley can be a chance lump: a slow one-level (Gaussian, e.g. Ornstein–Uhlenbeck)
#: signal holds only T/(2τ) independent values per record (20 for τ = 1 µs in 40 µs), and such a
#: sample shows two "modes" with a deep valley often enough that ~1 in 100–20 slow OU records passed
#: the raw-trace tests. So the raw trace's bimodality must also beat a Monte-Carlo test against the
#: null hypothesis "a stationary Gaussian process with this record's own power spectrum": phase-
#: randomised Fourier surrogates (Theiler et al., Physica D 58, 77, 1992) have the record's
#: periodogram (hence its autocorrelation and correlation time) and Gaussian values. The statistic S
#: is the detector's own valley measure (valley / height of the smaller mode, the smaller of the two
#: smoothings; ∞ when unimodal); the record is bimodal only if all SURROGATE_COUNT
#: surrogates are less bimodal (S_surrogate > S_record), i.e. p = (1 + #{S_s ≤ S}) / (K + 1) ≤ 1/(K+1).
#: For a Gaussian record the record and its surrogates are (approximately) exchangeable, so the raw
#: path calls a one-level Gaussian signal bistable with probability ≤ SURROGATE_FALSE_POSITIVE_RATE,
#: whatever its correlation time. A telegraph's levels are not Gaussian and pass: its surrogates are
#: one broad peak.
SURROGATE_COUNT = 99
SURROGATE_FALSE_POSITIVE_RATE = 1.0 / (SURROGATE_COUNT + 1)
#: the test runs on the record block-averaged to at most this many points (a linear average of a
#: Gaussian process is Gaussian, so the null hypothesis and the rate above are unchanged; the cost
#: stays ~K FFTs of this length however long the record)
SURROGATE_MAX_POINTS = 1 << 15
#: surrogates come from a fixed seed: the same record always gets the same verdict
SURROGATE_SEED = 16


@dataclass(frozen=True)
class RegimeResult:
    """What a trace looked like.

    regime: "bistable", "single_peaked" or "stuck".
    reasons: one line per piece of evidence, in words (used in refusals).
    n_samples, duration_s, sample_period_s: the uniformly resampled record analysed (s).
    threshold_v: the readout threshold the stuck / single-peaked decision used, V.
    std_v: standard deviation of the trace, V.
    modes_v: the histogram's two highest prominent modes (low, high), V; one entry if unimodal.
    valley_ratio: histogram height at the valley / height of the smaller mode (NaN if unimodal).
    minor_mode_fraction: fraction of time in the less populated state (Schmitt states; NaN if unimodal).
    ashman_d: |μ_hi-μ_lo|·√2/√(σ_hi²+σ_lo²) of the two states (> 2: clean separation), NaN if unimodal.
    n_transitions: Schmitt-trigger transitions between the two states.
    mean_dwell_s: mean time between transitions, s (NaN with < 2 transitions).
    within_state_tau_s: 1/e time of the autocorrelation of the trace minus its state level, s.
    dwell_ratio: mean_dwell_s / within_state_tau_s.
    fraction_above_threshold: fraction of the time the trace is above threshold_v.
    level: for "stuck": "high" or "low" (side of the threshold); else "".
    smoothing_s: averaging window the decision was made on, s (0: the raw trace; > 0: a slow
        telegraph whose levels only separate after averaging; the digitiser averages the same way).
    """

    regime: str
    reasons: tuple[str, ...]
    n_samples: int
    duration_s: float
    sample_period_s: float
    threshold_v: float
    std_v: float
    modes_v: tuple[float, ...]
    valley_ratio: float = float("nan")
    minor_mode_fraction: float = float("nan")
    ashman_d: float = float("nan")
    n_transitions: int = 0
    mean_dwell_s: float = float("nan")
    within_state_tau_s: float = float("nan")
    dwell_ratio: float = float("nan")
    fraction_above_threshold: float = float("nan")
    level: str = ""
    smoothing_s: float = 0.0
    thresholds: dict = field(default_factory=lambda: {
        "valley_ratio_max": VALLEY_RATIO_MAX, "min_mode_fraction": MIN_MODE_FRACTION,
        "min_transitions": MIN_TRANSITIONS, "dwell_ratio_min": DWELL_RATIO_MIN,
        "stuck_fraction": STUCK_FRACTION})

    @property
    def is_bistable(self) -> bool:
        return self.regime == "bistable"

    def describe(self) -> str:
        """One line: the regime and the main evidence, e.g. for a refusal message."""
        return f"{self.regime} ({'; '.join(self.reasons)})"

    def require_bistable(self, what: str = "this quantity", where: str = "") -> None:
        """Raise :class:`RegimeError` unless bistable: ``what`` is undefined for the observed regime."""
        if not self.is_bistable:
            at = f"{where}: " if where else ""
            raise RegimeError(f"{at}{what} is only defined for a bistable (telegraph) output; observed "
                              f"{self.describe()}; change the operating point (supply/trim) or use `noisecell trim`")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["modes_v"] = list(self.modes_v)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    def summary(self) -> str:
        lines = [f"Regime: {self.regime}" + (f" ({self.level})" if self.level else "")]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  record           {self.n_samples} samples, {format_si(self.duration_s, 's')} "
                     f"(step {format_si(self.sample_period_s, 's')})")
        lines.append(f"  std              {format_si(self.std_v, 'V')}; above threshold "
                     f"{format_si(self.threshold_v, 'V')}: {self.fraction_above_threshold:.4g} of the time")
        if len(self.modes_v) == 2:
            lines.append(f"  modes            {format_si(self.modes_v[0], 'V')} / {format_si(self.modes_v[1], 'V')}, "
                         f"valley ratio {self.valley_ratio:.3g} (max {VALLEY_RATIO_MAX}), Ashman D {self.ashman_d:.3g}")
            lines.append(f"  transitions      {self.n_transitions}; mean dwell {format_si(self.mean_dwell_s, 's')}, "
                         f"within-state τ {format_si(self.within_state_tau_s, 's')}, ratio {self.dwell_ratio:.3g} "
                         f"(min {DWELL_RATIO_MIN})")
        return "\n".join(lines)


def _uniform(time_s: np.ndarray | None, v: np.ndarray, sample_period_s: float | None) -> tuple[np.ndarray, float]:
    v = np.asarray(v, dtype=float)
    if v.ndim != 1 or len(v) < 16:
        raise InputError(f"regime: need a 1-D trace of at least 16 samples, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("regime: the trace contains NaN or inf; clean or trim the record first")
    if time_s is None:
        if sample_period_s is None or not sample_period_s > 0:
            raise InputError("regime: a trace without time stamps needs sample_period_s > 0")
        return v, float(sample_period_s)
    t = np.asarray(time_s, dtype=float)
    if t.shape != v.shape:
        raise InputError(f"regime: time_s has shape {t.shape} but the trace has {v.shape}")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise InputError("regime: time_s must be strictly increasing")
    step = float(sample_period_s) if sample_period_s else float(np.median(dt))
    if np.allclose(dt, step, rtol=1e-6, atol=0):
        return v, step
    # Simulator output has adaptive steps: resample so every sample carries the same weight in time.
    n = int(math.floor((t[-1] - t[0]) / step)) + 1
    grid = t[0] + step * np.arange(n)
    return np.interp(grid, t, v), step


def _acf_1e_time(x: np.ndarray, step: float) -> float:
    """1/e time of the autocorrelation of ``x`` (FFT; linear interpolation between lags), s."""
    x = x - x.mean()
    var = float(np.dot(x, x))
    if var <= 0:
        return step
    n = len(x)
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(f * np.conj(f), nfft)[:n] / var
    below = np.nonzero(acf < math.exp(-1))[0]
    if len(below) == 0:
        return n * step
    k = int(below[0])
    a0, a1 = acf[k - 1], acf[k]
    frac = (a0 - math.exp(-1)) / (a0 - a1) if a0 != a1 else 0.0
    return (k - 1 + frac) * step


def _density(v: np.ndarray, n_eff: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed histogram on a 1024-point grid; bandwidth by Silverman's rule with the
    effective (decorrelated) sample size, so autocorrelated records are not under-smoothed."""
    sd = float(np.std(v))
    q75, q25 = np.percentile(v, [75, 25])
    spread = min(sd, (q75 - q25) / 1.349) if q75 > q25 else sd
    h = 0.9 * spread * max(n_eff, 2.0) ** -0.2
    lo, hi = float(v.min()) - 3 * h, float(v.max()) + 3 * h
    edges = np.linspace(lo, hi, 1025)
    counts, _ = np.histogram(v, bins=edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    bw = edges[1] - edges[0]
    k_half = int(math.ceil(4 * h / bw))
    kx = np.arange(-k_half, k_half + 1) * bw
    kern = np.exp(-0.5 * (kx / h) ** 2)
    dens = np.convolve(counts.astype(float), kern / kern.sum(), mode="same")
    return centres, dens / (dens.sum() * bw)


def _two_modes(x: np.ndarray, d: np.ndarray) -> tuple[int, int, int] | None:
    """Indices (low mode, valley, high mode) of the two highest modes whose prominence (height
    above the valley between them) is at least 5 % of the global maximum; None if unimodal."""
    from scipy.signal import find_peaks

    peaks, props = find_peaks(d, prominence=0.05 * float(d.max()))
    if len(peaks) < 2:
        return None
    top = peaks[np.argsort(props["prominences"])[-2:]]
    a, b = sorted(int(i) for i in top)
    valley = a + int(np.argmin(d[a:b + 1]))
    return a, valley, b


def _valley_statistic(v: np.ndarray, n_eff: float) -> float:
    """S of the surrogate test: valley / height of the smaller of the two highest modes (the detector's
    valley ratio), the smaller of the record-correlation-time smoothing and the least smoothing; inf
    when both are unimodal. (Not the tilt-corrected valley/sqrt(h_lo·h_hi): a Gaussian surrogate's
    least-smoothed density has tiny ripples in its tails, whose small height makes that ratio small,
    so a biased telegraph — valley ratio 0.66, tilt-corrected 0.26 — lost to its first surrogate.)"""
    best = math.inf
    for ne in (n_eff, float(len(v))):
        x, d = _density(v, ne)
        found = _two_modes(x, d)
        if found is not None:
            a, k, b = found
            best = min(best, float(d[k] / min(d[a], d[b])))
    return best


def gaussian_surrogate_p(v: np.ndarray, step: float, *, count: int = SURROGATE_COUNT,
                         seed: int = SURROGATE_SEED) -> float:
    """Monte-Carlo p-value of the record's histogram bimodality against stationary Gaussian processes
    with its own power spectrum (phase-randomised surrogates; see SURROGATE_COUNT): (1 + number of
    surrogates at least as bimodal) / (count + 1). Stops at the first such surrogate (then p is
    returned as its lower bound 2/(count+1): the record cannot pass at 1/(count+1) any more)."""
    v = np.asarray(v, dtype=float)
    b = max(1, -(-len(v) // SURROGATE_MAX_POINTS))
    if b > 1:
        m = (len(v) // b) * b
        v = v[:m].reshape(-1, b).mean(axis=1)
    n = len(v)
    n_eff = n * step * b / (2 * _acf_1e_time(v, step * b))
    s_rec = _valley_statistic(v, n_eff)
    if not math.isfinite(s_rec):
        return 1.0
    mean = float(v.mean())
    amp = np.abs(np.fft.rfft(v - mean))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(count):
        ph = np.exp(2j * np.pi * rng.random(len(amp)))
        ph[0] = 1.0
        if n % 2 == 0:
            ph[-1] = 1.0 if rng.random() < 0.5 else -1.0
        sur = np.fft.irfft(amp * ph, n) + mean
        if _valley_statistic(sur, n_eff) <= s_rec:
            hits += 1
            break  # p ≥ 2/(count+1): the record is not more bimodal than its Gaussian twins
    return (1 + hits) / (count + 1)


def _schmitt(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """State (0/1) of a Schmitt trigger switching up above ``hi`` and down below ``lo``; before the
    first decisive sample, the first sample's side of the band's middle."""
    return schmitt_states(v, lo, hi, initial=int(v[0] > 0.5 * (lo + hi))).astype(np.int8)


def classify_trace(v, time_s=None, *, threshold_v: float = 0.0, sample_period_s: float | None = None,
                   skip_s: float = 0.0) -> RegimeResult:
    """Classify an analog output trace ``v`` (V) as bistable / single_peaked / stuck.

    time_s: sample times (s), may be non-uniform (then resampled at ``sample_period_s`` or the median
    step). threshold_v: the cell's readout threshold (V) on the same signal (differential: 0).
    skip_s: initial transient to drop (s).
    """
    v, step = _uniform(None if time_s is None else np.asarray(time_s), np.asarray(v), sample_period_s)
    if skip_s > 0:
        v = v[int(round(skip_s / step)):]
        if len(v) < 16:
            raise InputError(f"regime: skip_s={skip_s:g} s leaves fewer than 16 samples")
    raw = _classify_uniform(v, step, float(threshold_v), surrogate_test=True)
    if raw.is_bistable or float(np.ptp(v)) <= 1e-12:
        return raw
    if min(raw.fraction_above_threshold, 1 - raw.fraction_above_threshold) < STUCK_FRACTION:
        return raw  # both levels (if any) on one side of the readout threshold: the bit is stuck anyway
    slow = _slow_telegraph(v, step, float(threshold_v), raw)
    return slow if slow is not None else raw


def moving_average(v: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean of ``v`` over ``window`` samples (same length; edges use the samples there)."""
    from scipy.ndimage import uniform_filter1d

    if window <= 1:
        return np.asarray(v, dtype=float)
    return uniform_filter1d(np.asarray(v, dtype=float), size=int(window), mode="nearest")


def _slow_telegraph(v: np.ndarray, step: float, threshold_v: float, raw: RegimeResult) -> RegimeResult | None:
    """The bistable result of the first averaging window at which ``v`` is a telegraph, else None."""
    n = len(v)
    window = SLOW_FIRST_WINDOW_SAMPLES
    while window * SLOW_MIN_WINDOWS_PER_RECORD <= n:
        # Decimate to 4 samples per window: the average is smooth on that scale, and the tests then
        # cost O(n) however long the window.
        keep = max(1, window // 4)
        smooth = moving_average(v, window)[::keep]
        r = _classify_uniform(smooth, step * keep, threshold_v)
        w_s = window * step
        if (r.is_bistable and r.mean_dwell_s >= DWELL_RATIO_MIN * w_s
                and gaussian_surrogate_p(smooth, step * keep) <= SURROGATE_FALSE_POSITIVE_RATE):
            res = _slow_result(v, step, threshold_v, raw, r, window)
            if res is not None:
                return res
        window *= 2
    return None


def _slow_result(v: np.ndarray, step: float, threshold_v: float, raw: RegimeResult, r: RegimeResult,
                 window: int) -> RegimeResult | None:
    """Describe a slow telegraph found on the average over ``window`` samples, with raw-trace level
    statistics (the states from the averaged trace, mapped back to every raw sample)."""
    from scipy.stats import norm

    mid = 0.5 * (r.modes_v[0] + r.modes_v[1])
    spacing = r.modes_v[1] - r.modes_v[0]
    h = 0.4 * spacing
    # The window that revealed the levels may still leave them noisy enough for the Schmitt states to
    # chatter (a false switch needs the averaged noise to cover 90 % of the spacing). Widen the window
    # until the expected number of such excursions in the record is below 0.1: with level noise σ_w,
    # 0.9·spacing ≥ z·σ_w with z = Φ⁻¹(1 - 0.1/N), N = the number of samples — conservative, since
    # a rough (OU-like) signal crosses a level more often than its independent values would suggest
    # (a count over independent values let a few false switches through) — while each level still
    # lasts ≥ DWELL_RATIO_MIN windows.
    while True:
        smooth = moving_average(v, window)
        state = _schmitt(smooth, mid - h, mid + h)
        if state.min() == state.max():
            return None
        level = np.where(state == 1, smooth[state == 1].mean(), smooth[state == 0].mean())
        sigma_w = float(np.std(smooth - level))
        dwell = len(v) * step / max(n_transitions(state), 1)
        if 0.9 * spacing >= norm.isf(0.1 / len(v)) * sigma_w or 2 * window * step * DWELL_RATIO_MIN > dwell:
            break
        window *= 2
    lo_v, hi_v = v[state == 0], v[state == 1]
    if len(lo_v) < 2 or len(hi_v) < 2:
        return None
    frac_hi = float(state.mean())
    level_share = frac_hi * (1 - frac_hi) * (hi_v.mean() - lo_v.mean()) ** 2 / max(float(v.var()), 1e-300)
    if level_share < SLOW_MIN_LEVEL_VARIANCE_FRACTION:
        return None
    ashman = abs(hi_v.mean() - lo_v.mean()) * math.sqrt(2) / math.sqrt(lo_v.var() + hi_v.var())
    resid = v - np.where(state == 1, hi_v.mean(), lo_v.mean())
    tau_w = _acf_1e_time(resid, step)
    n_trans = n_transitions(state)
    duration = len(v) * step
    mean_dwell = duration / max(n_trans, 1)
    w_s = window * step
    raw_valley = "no valley" if not math.isfinite(raw.valley_ratio) else f"valley ratio {raw.valley_ratio:.2f}"
    why = (f"slow telegraph: averaged over {format_si(w_s, 's')} the output has two levels at "
           f"{format_si(r.modes_v[0], 'V')} and {format_si(r.modes_v[1], 'V')} (valley/minor-mode height "
           f"{r.valley_ratio:.2f}); {n_trans} transitions, mean dwell "
           f"{format_si(mean_dwell, 's')} = {mean_dwell / w_s:.1f}× the window and {mean_dwell / tau_w:.0f}× the "
           f"within-level correlation time {format_si(tau_w, 's')}")
    hidden = (f"the raw histogram ({raw_valley}) hides the levels: their noise (Ashman D {ashman:.2f}) "
              f"overlaps; the levels carry {level_share:.0%} of the raw variance")
    reasons = (why, hidden)
    if n_trans < LOW_STAT_TRANSITIONS:
        reasons += (f"only {n_trans} transitions: rates and τ from this record are uncertain to "
                    f"~{100 / math.sqrt(max(n_trans, 1)):.0f} %; simulate longer",)
    return RegimeResult(
        "bistable", reasons, n_samples=len(v), duration_s=duration, sample_period_s=step,
        threshold_v=threshold_v, std_v=float(np.std(v)), modes_v=tuple(r.modes_v),
        valley_ratio=r.valley_ratio, minor_mode_fraction=min(frac_hi, 1 - frac_hi), ashman_d=float(ashman),
        n_transitions=n_trans, mean_dwell_s=mean_dwell, within_state_tau_s=tau_w,
        dwell_ratio=mean_dwell / tau_w, fraction_above_threshold=raw.fraction_above_threshold,
        smoothing_s=w_s)


def _classify_uniform(v: np.ndarray, step: float, threshold_v: float, *, surrogate_test: bool = False) -> RegimeResult:
    """The raw-trace decision (tests 1 and 2 of the module docstring) on a uniform record; with
    ``surrogate_test`` a bimodal verdict must also pass :func:`gaussian_surrogate_p`."""
    n = len(v)
    duration = n * step
    std = float(np.std(v))
    above = float(np.mean(v > threshold_v))
    base = dict(n_samples=n, duration_s=duration, sample_period_s=step, threshold_v=float(threshold_v),
                std_v=std, fraction_above_threshold=above)

    def one_level(reason_modes: str, modes: tuple[float, ...], **extra) -> RegimeResult:
        minority = min(above, 1 - above)
        if minority < STUCK_FRACTION:
            level = "high" if above > 0.5 else "low"
            why = (f"output stays {'above' if level == 'high' else 'below'} the threshold "
                   f"{format_si(threshold_v, 'V')} for {1 - minority:.4%} of {format_si(duration, 's')}")
            return RegimeResult("stuck", (why, reason_modes), modes_v=modes, level=level, **base, **extra)
        why = (f"one noisy level at {format_si(float(np.median(v)), 'V')} (std {format_si(std, 'V')}) "
               f"straddling the threshold ({above:.3g} of the time above)")
        return RegimeResult("single_peaked", (why, reason_modes), modes_v=modes, **base, **extra)

    if float(np.ptp(v)) <= 1e-12:  # V: below any simulator's or instrument's resolution
        return one_level("constant output", (float(v[0]),))
    tau_all = _acf_1e_time(v, step)
    # Pass 1 smooths for the whole-trace correlation time. A telegraph's correlation time is its
    # dwell, which would over-smooth the shapes of the levels; so when two modes appear, the
    # bandwidth is recomputed from the within-level correlation time (pass 2) and the modes,
    # valley and states are taken from that density.
    x, dens = _density(v, n * step / (2 * tau_all))
    found = _two_modes(x, dens)
    if found is None:
        x, dens = _density(v, float(n))  # least smoothing: a narrow second level is not washed out
        found = _two_modes(x, dens)
    if found is None:
        return one_level("the output histogram has a single mode", (float(x[int(np.argmax(dens))]),))
    for _pass in range(2):
        a, k, b = found
        m_lo, m_hi, valley_v = float(x[a]), float(x[b]), float(x[k])
        ratio = float(dens[k] / min(dens[a], dens[b]))
        ratio_tilt = float(dens[k] / math.sqrt(dens[a] * dens[b]))
        # Schmitt band: switch only within 10 % of the other level (milestoning), so noise at one level is not counted.
        h = 0.4 * (m_hi - m_lo)
        state = _schmitt(v, valley_v - h, valley_v + h)
        if _pass == 1 or state.min() == state.max():
            break
        resid = v - np.where(state == 1, v[state == 1].mean(), v[state == 0].mean())
        x2, d2 = _density(v, n * step / (2 * _acf_1e_time(resid, step)))
        f2 = _two_modes(x2, d2)
        if f2 is None:
            break
        x, dens, found = x2, d2, f2
    n_trans = n_transitions(state)
    frac_hi = float(state.mean())
    minor = min(frac_hi, 1 - frac_hi)
    lo_v, hi_v = v[state == 0], v[state == 1]
    if len(lo_v) > 1 and len(hi_v) > 1:
        ashman = abs(hi_v.mean() - lo_v.mean()) * math.sqrt(2) / math.sqrt(lo_v.var() + hi_v.var())
        resid = v - np.where(state == 1, hi_v.mean(), lo_v.mean())
        tau_w = _acf_1e_time(resid, step)
    else:
        ashman, tau_w = float("nan"), tau_all
    mean_dwell = duration / n_trans if n_trans >= 2 else float("nan")
    dratio = mean_dwell / tau_w if n_trans >= 2 else float("nan")
    extra = dict(valley_ratio=ratio, minor_mode_fraction=minor, ashman_d=float(ashman), n_transitions=n_trans,
                 mean_dwell_s=mean_dwell, within_state_tau_s=tau_w, dwell_ratio=dratio)
    modes = (m_lo, m_hi)
    shape = (f"modes at {format_si(m_lo, 'V')} and {format_si(m_hi, 'V')}, valley/minor-mode height "
             f"{ratio:.2f}")
    tilted = (ratio > VALLEY_RATIO_MAX and ratio_tilt <= VALLEY_RATIO_MAX and minor >= TILTED_MIN_FRACTION
              and n_trans >= TILTED_MIN_TRANSITIONS)
    if ratio > VALLEY_RATIO_MAX and not tilted:
        return one_level(f"{shape} > {VALLEY_RATIO_MAX} (tilt-corrected {ratio_tilt:.2f}): not two separate levels",
                         modes, **extra)
    if tilted:
        shape += (f" > {VALLEY_RATIO_MAX}, but a biased double well: tilt-corrected valley ratio "
                  f"{ratio_tilt:.2f} ≤ {VALLEY_RATIO_MAX}, minor level {minor:.2f} of the time")
    if minor < MIN_MODE_FRACTION or n_trans < MIN_TRANSITIONS:
        # Two shapes in the histogram but (almost) no traffic between them: a relaxation or a frozen latch.
        res = one_level(f"{shape}, but only {n_trans} transition(s) and {minor:.3g} of the time in the "
                        f"minor level (need ≥ {MIN_TRANSITIONS} and ≥ {MIN_MODE_FRACTION})", modes, **extra)
        if res.regime == "stuck":
            return res
        side = "high" if frac_hi > 0.5 else "low"
        why = (f"{n_trans} transition(s) in {format_si(duration, 's')}: the output sits at its {side} level "
               f"({1 - minor:.3%} of the time) — frozen, not telegraphing")
        return RegimeResult("stuck", (why, shape), modes_v=modes, level=side, **base, **extra)
    if not dratio >= DWELL_RATIO_MIN:
        why = (f"{shape}, but the mean dwell {format_si(mean_dwell, 's')} is only {dratio:.2f}× the within-level "
               f"correlation time {format_si(tau_w, 's')} (need ≥ {DWELL_RATIO_MIN}): fluctuation, not metastable states")
        return RegimeResult("single_peaked", (why,), modes_v=modes, **base, **extra)
    if surrogate_test:
        p_gauss = gaussian_surrogate_p(v, step)
        if p_gauss > SURROGATE_FALSE_POSITIVE_RATE:
            why = (f"{shape}, but no more bimodal than a Gaussian one-level signal with this record's own "
                   f"spectrum (p = {p_gauss:.2f} > {SURROGATE_FALSE_POSITIVE_RATE:g} against {SURROGATE_COUNT} "
                   "phase-randomised surrogates): a chance lump of a slow fluctuation, not two states")
            return RegimeResult("single_peaked", (why,), modes_v=modes, **base, **extra)
    why = (f"{shape}{'' if tilted else f' ≤ {VALLEY_RATIO_MAX}'}; {n_trans} transitions, mean dwell {format_si(mean_dwell, 's')} = "
           f"{dratio:.1f}× the within-level correlation time {format_si(tau_w, 's')}")
    reasons = (why,)
    if n_trans < LOW_STAT_TRANSITIONS:
        reasons += (f"only {n_trans} transitions: rates and τ from this record are uncertain to ~{100 / math.sqrt(n_trans):.0f} %; "
                    "simulate longer",)
    return RegimeResult("bistable", reasons, modes_v=modes, **base, **extra)


#: per-flip and per-bit figures (keys of the analysis dict and of the report's point table) that only
#: mean something for a telegraph: they are blanked, not reported, for any other regime
PER_BIT_KEYS = ("energy_per_bit_j", "energy_per_bit_kt_ln2", "energy_per_bit_kTln2", "energy_per_flip_j",
                "energy_per_flip_kt_ln2", "energy_per_min_entropy_bit_j", "energy_per_min_entropy_bit_kt_ln2",
                "h_min_at_entropy_period", "h_min_rate", "h_shannon_rate", "flip_rate_hz", "rate_up_hz",
                "rate_down_hz", "rate_up_hz_ci95", "rate_down_hz_ci95", "tau_s", "tau_s_ci95", "rct_cutoff",
                "apt_cutoff", "h_original")


def not_a_bit_source(r: RegimeResult, *, crossings: int | None = None, hysteresis_v: float | None = None,
                     fix: str | None = None) -> str | None:
    """Why a record is not a bit source, in one sentence (None when it is bistable).

    What was seen — "stuck" (one side of the threshold), "chattering" (one noisy level straddling
    the threshold, which a comparator turns into ``crossings`` noise "flips") or "single-peaked" —
    and why no per-bit figure (P(1) sigmoid, τ, flip rate, energy per bit, entropy) applies. ``fix``:
    the suggested remedy (e.g. from `noisecell cell check`); the default names the check.
    """
    if r.is_bistable:
        return None
    band = "" if hysteresis_v is None else f" with a {format_si(hysteresis_v, 'V')} hysteresis from its noise"
    if r.regime == "stuck":
        seen = (f"stuck {r.level or ''}: the output stayed on one side of the {format_si(r.threshold_v, 'V')} "
                f"threshold ({r.reasons[0]})")
        why = "a bit source needs two levels it switches between; no flip was seen, so no rate, τ or per-bit figure exists"
    elif crossings:
        seen = (f"chattering: one noisy level straddles the threshold and the comparator{band} crossed it "
                f"{crossings} times ({r.reasons[0]})")
        why = ("those crossings are noise around one level, not switching between two states: P(1) is set by "
               "where the threshold cuts a single peak, and per-flip, per-bit and entropy figures would be "
               "figures of the comparator, not of the cell")
    else:
        seen = f"single-peaked: {r.reasons[0]}"
        why = "one level, not two metastable states: no sigmoid, τ or per-bit figure applies"
    fix = fix or "run `noisecell cell check` to see whether the cell can be bistable at this supply at all"
    return f"not a bit source — {seen}; {why}. Fix: {fix}"


@dataclass(frozen=True)
class SigmoidPoints:
    """Which P(1)-vs-bias points a sigmoid may be fitted to, and why not (see :func:`sigmoid_points`).

    usable: per point, True when its P(1) is a sample of a sigmoid (a telegraph, or a tail point
    stuck at P(1) ≤ TAIL_P or ≥ 1 - TAIL_P); refusal: one sentence when no sigmoid may be fitted."""

    usable: tuple[bool, ...]
    refusal: str | None
    excluded: str = ""


#: a point stuck at P(1) below this (or above 1 - this) is a sigmoid tail, not a frozen latch
TAIL_P = 0.02


def sigmoid_points(bias_v, p1, p1_lo=None, p1_hi=None, regime=None) -> SigmoidPoints:
    """Refuse a sigmoid fit to frozen or non-monotonic P(1) points.

    * A point that did not telegraph (``regime`` not "bistable") carries no sigmoid information
      unless it is a tail (stuck at P(1) ≤ TAIL_P or ≥ 1 - TAIL_P, i.e. strongly biased): a frozen
      latch's P(1) is the fraction of the record before it froze, set by the initial condition.
      Such points are left out (``usable`` False); with no telegraphing point at all and no tail on
      both sides there is no sigmoid: refused ("frozen").
    * The usable points must be monotonic in bias within their uncertainty: a pair (i, j) whose 95 %
      intervals [p1_lo, p1_hi] are disjoint in the direction opposite to the overall trend (the sign
      of Spearman's rank correlation) is a reversal no sigmoid has: refused ("non-monotonic"). Points
      without an interval count as exact. A point that never left one state (P(1) exactly 0 or 1)
      stands for "below 0.5" (or "above"): its own interval cannot hold its correlation time. Two
      points in the same tail (both ≤ TAIL_P, or both ≥ 1 − TAIL_P) are never a reversal.
    """
    from scipy.stats import spearmanr

    v = np.asarray(bias_v, dtype=float)
    p = np.asarray(p1, dtype=float)
    lo = p if p1_lo is None else np.where(np.isfinite(np.asarray(p1_lo, float)), np.asarray(p1_lo, float), p)
    hi = p if p1_hi is None else np.where(np.isfinite(np.asarray(p1_hi, float)), np.asarray(p1_hi, float), p)
    # A record that never left one state (P(1) exactly 0 or 1) cannot show its own correlation time,
    # so its interval (an iid bound, ~4/n_samples) says nothing about how far P(1) may be from 0 or 1:
    # a 3 µs record ~10 τ long stuck at 0 is consistent with P(1) up to ~0.3. All it shows is its
    # majority state, so for the reversal test it stands for "below 0.5" (or "above"): a stuck-at-0
    # point next to a 0.04 or a stuck-at-1 point next to a 0.91 is no reversal (pbit's pilots were
    # refused on exactly those), while stuck at 1 below stuck at 0, or below a telegraph at 0.3, still is.
    half = 0.5 - 1e-9
    lo = np.where(p == 1.0, 1.0 - half, lo)
    hi = np.where(p == 0.0, half, hi)
    reg = np.asarray(["bistable"] * len(p) if regime is None else [str(r) for r in regime])
    finite = np.isfinite(v) & np.isfinite(p)
    tail = (p <= TAIL_P) | (p >= 1 - TAIL_P)
    usable = finite & ((reg == "bistable") | tail)
    left_out = finite & ~usable
    excluded = ""
    if left_out.any():
        kinds = ", ".join(f"{n} {r}" for r, n in zip(*np.unique(reg[left_out], return_counts=True)))
        excluded = (f"{int(left_out.sum())} point(s) that did not telegraph and sit between the tails ({kinds}) "
                    "are left out: their P(1) is where a frozen or one-level record happened to sit")
    n_bi = int((usable & (reg == "bistable")).sum())
    if n_bi == 0 and not ((usable & (p <= TAIL_P)).any() and (usable & (p >= 1 - TAIL_P)).any()):
        kinds = ", ".join(f"{n} {r}" for r, n in zip(*np.unique(reg[finite], return_counts=True)))
        return SigmoidPoints(tuple(bool(u) for u in usable),
                             f"no sigmoid fitted: frozen — none of the {int(finite.sum())} points telegraphs ({kinds}) "
                             "and they do not bracket P(1) = 0.5 with tails on both sides", excluded)
    idx = np.flatnonzero(usable)
    if len(idx) >= 3 and np.ptp(p[idx]) > 0:
        rho = spearmanr(v[idx], p[idx]).statistic
        trend = 1.0 if rho >= 0 else -1.0
        order = idx[np.argsort(v[idx])]
        for a_i, a in enumerate(order):
            for b in order[a_i + 1:]:
                # two points in the same tail are both "P(1) ≈ 0" (or 1): a 3 µs record stuck at 0 and
                # one with 30 ns in state 1 (P(1) 0.01, a start-up excursion) have disjoint intervals but
                # are no reversal (pbit's pilot was refused on exactly that, −17.8 / −16.3 mV)
                if (p[a] <= TAIL_P and p[b] <= TAIL_P) or (p[a] >= 1 - TAIL_P and p[b] >= 1 - TAIL_P):
                    continue
                # b is at a higher bias than a; against the trend with disjoint intervals: a reversal
                if (trend > 0 and hi[b] < lo[a]) or (trend < 0 and lo[b] > hi[a]):
                    return SigmoidPoints(tuple(bool(u) for u in usable),
                                         f"no sigmoid fitted: non-monotonic — P(1) goes from {p[a]:.2f} at "
                                         f"{format_si(v[a], 'V')} to {p[b]:.2f} at {format_si(v[b], 'V')}, against the "
                                         f"{'rising' if trend > 0 else 'falling'} trend and outside both points' 95 % "
                                         "intervals (frozen records or too short a pilot: lengthen pilot.duration, "
                                         "or run `noisecell cell check`)", excluded)
    return SigmoidPoints(tuple(bool(u) for u in usable), None, excluded)


def readout_trace(wf) -> tuple[np.ndarray, float]:
    """(signal V, threshold V) the bit of a :class:`noisecell.waveform.Waveform` is read from:
    v_out - v_outb for a differential readout, else v_out (meta["readout"]: mode, threshold)."""
    v, _, thr = wf.readout_signal()
    return v, 0.0 if thr is None else thr


def classify_waveform(wf, *, skip_s: float = 0.0, sample_period_s: float | None = None) -> RegimeResult:
    """Classify a :class:`noisecell.waveform.Waveform` using its readout (meta["readout"]: mode, threshold)."""
    v, threshold_v = readout_trace(wf)
    if sample_period_s is None:
        sample_period_s = wf.meta.get("noise_step_s")
    return classify_trace(v, wf.time_s, threshold_v=threshold_v, sample_period_s=sample_period_s, skip_s=skip_s)


def classify_bits(bits) -> RegimeResult:
    """What a bit stream alone can show: "stuck" if it never changes; otherwise bimodality cannot be
    judged from bits (a comparator makes two levels of anything), so a :class:`RegimeResult` with regime
    "bistable" is NOT returned — :class:`RegimeError` is raised to make callers look at the analog trace."""
    b = np.asarray(bits)
    if b.ndim != 1 or len(b) == 0:
        raise InputError("regime: empty or multi-dimensional bit stream")
    ones = float(np.mean(b != 0))
    if ones in (0.0, 1.0):
        level = "high" if ones == 1.0 else "low"
        return RegimeResult("stuck", (f"all {len(b)} bits are {int(ones)}",), n_samples=len(b), duration_s=float("nan"),
                            sample_period_s=float("nan"), threshold_v=float("nan"), std_v=0.0, modes_v=(),
                            fraction_above_threshold=ones, level=level)
    raise RegimeError("regime: a bit stream that changes cannot show whether the analog output was bistable; "
                      "classify the analog trace (classify_trace / classify_waveform) instead")
