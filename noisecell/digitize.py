"""Analog trace → bits: Schmitt-trigger comparator followed by a clocked sampler (a D flip-flop).

The comparator switches to 1 when the trace rises above ``threshold_v + hysteresis_v/2`` and back to 0
when it falls below ``threshold_v - hysteresis_v/2``; inside the band it holds its state, so noise
riding on a slow transition does not produce spurious short dwells. The comparator output is then
sampled every ``sample_period_s`` (the value held at the sampling instant), which is how a bit cell
is read by a clocked digital system.

The automatic threshold is the valley of the (smoothed) bimodal histogram of the trace between its
two most prominent modes; the automatic hysteresis (full band) is 3 within-mode noise standard
deviations, capped at a third of the distance between the modes. The hysteresis is always derived
from the measured levels and noise, never an automatic 0 V band (which counts every noise wiggle
across the threshold as a "flip"):

* two levels in the histogram: 3σ of the within-level noise, capped as above;
* a *slow telegraph* (noisecell.regime: levels that only separate after averaging over a window
  ``w``): the comparator reads the trace averaged over ``w`` (a readout that integrates over its
  clock, as a real sampler of such a cell would have to), with 3σ of the averaged level noise;
* one level (single-peaked, stuck) with a given threshold: 3σ of that level's noise (robust
  estimate, 1.4826 × median absolute deviation), so that noise chatter around the threshold is not
  counted as switching; the regime detector then says the cell is not a bit source.

A trace whose histogram has no clear second mode (a stuck cell, or a cell that only wiggles around
one level) raises :class:`~noisecell.errors.RegimeError` when no threshold is given and it is not a
slow telegraph: there is no honest automatic threshold for it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .bitstream import BitStream
from .comparator import schmitt_states
from .errors import InputError, RegimeError
from .regime import THRESHOLD_MIN_MODE_FRACTION, VALLEY_RATIO_MAX
from .units import format_si

# the limits of the bimodality test live with the regime detector's, in one place (noisecell.regime)
_VALLEY_RATIO_MAX = VALLEY_RATIO_MAX
_MINOR_MODE_MIN_FRACTION = THRESHOLD_MIN_MODE_FRACTION


@dataclass(frozen=True)
class Digitization:
    """How a trace was turned into bits.

    threshold_v: comparator threshold, V (on the differential or single-ended readout signal).
    hysteresis_v: full width of the hysteresis band, V (switch up at threshold + h/2, down at threshold - h/2).
    threshold_auto: True when the threshold came from the bimodal histogram.
    sample_period_s: clock period of the sampler, s.
    readout: "differential" (v_out - v_outb), "single" (v_out) or "trace" (a plain time,voltage trace).
    mode_low_v, mode_high_v: the two histogram modes, V (NaN when the threshold was given and the
        histogram was not examined).
    valley_ratio: histogram height at the valley / height of the smaller mode (NaN when not examined);
        small = clearly bimodal.
    n_trace_samples: number of analog samples read.
    n_bits: number of clocked samples produced.
    smoothing_s: the comparator read the trace averaged over this window, s (0: the raw trace; > 0
        for a slow telegraph whose levels' noise overlaps, see noisecell.regime).
    hysteresis_from: where the band came from: "given", "levels" (two histogram modes and their
        noise), "slow levels" (the averaged trace's levels and noise), "noise" (one level's noise).
    """

    threshold_v: float
    hysteresis_v: float
    threshold_auto: bool
    sample_period_s: float
    readout: str = "trace"
    mode_low_v: float = float("nan")
    mode_high_v: float = float("nan")
    valley_ratio: float = float("nan")
    n_trace_samples: int = 0
    n_bits: int = 0
    smoothing_s: float = 0.0
    hysteresis_from: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not np.isfinite(v):
                d[k] = None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Digitization":
        """Inverse of to_dict (None -> NaN)."""
        return cls(**{k: (float("nan") if v is None else v) for k, v in d.items()})

    def summary(self) -> str:
        how = "auto (histogram valley)" if self.threshold_auto else "given"
        lines = [
            "Digitization",
            f"  readout          {self.readout}",
            f"  threshold        {format_si(self.threshold_v, 'V')}  [{how}]",
            f"  hysteresis       {format_si(self.hysteresis_v, 'V')} (full band"
            + (f", from the {self.hysteresis_from}" if self.hysteresis_from not in ("", "given") else "") + ")",
            f"  sample period    {format_si(self.sample_period_s, 's')}",
            f"  samples          {self.n_trace_samples} analog -> {self.n_bits} bits",
        ]
        if self.smoothing_s > 0:
            lines.append(f"  averaging        {format_si(self.smoothing_s, 's')} (slow telegraph: read through a running mean)")
        if np.isfinite(self.mode_low_v):
            lines.append(f"  modes            {format_si(self.mode_low_v, 'V')} / {format_si(self.mode_high_v, 'V')}"
                         f"  (valley/minor-mode height {self.valley_ratio:.3g})")
        return "\n".join(lines)


@dataclass(frozen=True)
class ThresholdEstimate:
    """Result of examining a trace's histogram (see :func:`examine_histogram`)."""

    threshold_v: float
    hysteresis_v: float
    mode_low_v: float
    mode_high_v: float
    valley_ratio: float
    bimodal: bool
    reason: str = ""


def _smooth(counts: np.ndarray, width_bins: float) -> np.ndarray:
    if width_bins <= 0.5:
        return counts.astype(float)
    half = int(np.ceil(3 * width_bins))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / width_bins) ** 2)
    return np.convolve(counts.astype(float), k / k.sum(), mode="same")


def examine_histogram(v: np.ndarray, *, bins: int = 256) -> ThresholdEstimate:
    """Look for two modes in the histogram of ``v`` (V) and the valley between them.

    Never raises for a unimodal trace: ``bimodal`` is False and ``reason`` says why.
    """
    from scipy.signal import find_peaks

    v = np.asarray(v, dtype=float)
    if v.size < 16:
        return ThresholdEstimate(np.nan, np.nan, np.nan, np.nan, np.nan, False, f"only {v.size} samples")
    if not np.all(np.isfinite(v)):
        raise InputError("trace contains NaN or inf; cannot digitise")
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-15 * max(1.0, abs(hi)):
        return ThresholdEstimate(np.nan, np.nan, lo, hi, np.nan, False, f"constant trace at {lo:g} V")
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    # Smoothing of ~1.5 bins suppresses single-bin noise without merging modes that are > ~10 bins apart.
    s = _smooth(counts, 1.5)
    padded = np.concatenate([[0.0], s, [0.0]])  # so modes sitting on the histogram edges are found
    peaks, props = find_peaks(padded, prominence=0)
    peaks = peaks - 1
    if len(peaks) < 2:
        return ThresholdEstimate(np.nan, np.nan, float(centres[np.argmax(s)]), np.nan, np.nan, False,
                                 "histogram has a single mode")
    order = np.argsort(props["prominences"])[::-1]
    i1, i2 = sorted(peaks[order[:2]])
    seg = s[i1:i2 + 1]
    # middle of the lowest stretch: well separated modes leave a run of empty bins, and its first bin
    # would sit right next to the lower mode's tail
    flat = np.flatnonzero(seg <= seg.min() + 1e-12 * max(seg.max(), 1.0))
    valley = i1 + int(round(0.5 * (flat[0] + flat[-1])))
    minor = min(s[i1], s[i2])
    ratio = float(s[valley] / minor) if minor > 0 else np.inf
    frac_low = counts[:valley].sum() / v.size
    minor_fraction = min(frac_low, 1 - frac_low)
    thr = float(centres[valley])
    below, above = v[v < thr], v[v >= thr]
    m_lo, m_hi = float(centres[i1]), float(centres[i2])
    # Within-mode noise from the median absolute deviation of each side about its mode (robust to the
    # samples caught mid-transition).
    sig = 1.4826 * np.median(np.concatenate([np.abs(below - m_lo), np.abs(above - m_hi)]))
    hyst = float(min(3.0 * sig, (m_hi - m_lo) / 3.0))
    bimodal = ratio <= _VALLEY_RATIO_MAX and minor_fraction >= _MINOR_MODE_MIN_FRACTION
    reason = "" if bimodal else (
        f"valley between modes is {ratio:.2f} of the smaller mode's height (needs <= {_VALLEY_RATIO_MAX})"
        if ratio > _VALLEY_RATIO_MAX else f"second mode holds only {minor_fraction:.2g} of the samples")
    return ThresholdEstimate(thr, hyst, m_lo, m_hi, ratio, bool(bimodal), reason)


def auto_threshold(v: np.ndarray) -> tuple[float, float]:
    """Threshold and full hysteresis width (V) from the bimodal histogram of ``v`` (V).

    Raises :class:`RegimeError` when the histogram is not clearly bimodal (pass a threshold instead).
    """
    est = examine_histogram(v)
    if not est.bimodal:
        raise RegimeError(f"cannot pick a threshold automatically: {est.reason}; "
                          "the cell may be stuck or not telegraphing (give --threshold)")
    return est.threshold_v, est.hysteresis_v


def schmitt(v: np.ndarray, threshold_v: float, hysteresis_v: float = 0.0) -> np.ndarray:
    """Comparator with hysteresis: uint8 0/1 per sample of ``v`` (V).

    Starts in the state given by the plain threshold when the first samples lie inside the band.
    """
    h = 0.5 * max(float(hysteresis_v), 0.0)
    return schmitt_states(v, threshold_v - h, threshold_v + h)


#: full hysteresis band in within-level noise standard deviations (both automatic rules)
BAND_SIGMAS = 3.0


def level_noise_band(v: np.ndarray) -> float:
    """Hysteresis (full band, V) for a one-level trace: BAND_SIGMAS × its robust noise σ (1.4826 ×
    median absolute deviation, so rare excursions do not widen it). With ±1.5σ edges, noise alone
    crosses the band rarely; any "flips" counted through it are still chatter, which the regime
    detector reports as not a bit source."""
    v = np.asarray(v, dtype=float)
    sigma = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    if sigma == 0.0:
        sigma = float(np.std(v))
    return BAND_SIGMAS * sigma


@dataclass(frozen=True)
class _SlowLevels:
    threshold_v: float
    hysteresis_v: float
    mode_low_v: float
    mode_high_v: float
    valley_ratio: float
    smoothing_s: float
    compared_v: np.ndarray


def _slow_levels(time_s: np.ndarray, v: np.ndarray, threshold_v: float | None) -> _SlowLevels | None:
    """Levels and noise of a slow telegraph (noisecell.regime), or None when ``v`` is not one.

    The running mean over the regime's window is computed on a uniform grid and read back at
    ``time_s``; threshold = midpoint of the two levels; hysteresis = 80 % of the level spacing (band
    edges 10 % of the spacing inside each level): the regime detector widened the window until the
    averaged level noise crosses 90 % of the spacing less than 0.1 times per record, so the comparator
    switches only on a real change of level."""
    from .regime import _uniform, classify_trace, moving_average

    thr = float(np.median(v)) if threshold_v is None else float(threshold_v)
    try:
        r = classify_trace(v, time_s, threshold_v=thr)
    except InputError:
        return None
    if not (r.is_bistable and r.smoothing_s > 0):
        return None
    grid_v, step = _uniform(time_s, v, r.sample_period_s)
    grid_t = time_s[0] + step * np.arange(len(grid_v))
    window = max(1, int(round(r.smoothing_s / step)))
    smooth = np.interp(time_s, grid_t, moving_average(grid_v, window))
    lo, hi = r.modes_v
    mid = 0.5 * (lo + hi)
    hyst = 0.8 * float(hi - lo)
    return _SlowLevels(threshold_v=mid, hysteresis_v=hyst, mode_low_v=float(lo), mode_high_v=float(hi),
                       valley_ratio=float(r.valley_ratio), smoothing_s=float(r.smoothing_s), compared_v=smooth)


def _uniform_step(time_s: np.ndarray) -> float | None:
    dt = np.diff(time_s)
    step = float(np.median(dt))
    if step > 0 and np.all(np.abs(dt - step) <= 1e-6 * step + 1e-21):
        return step
    return None


def digitize_trace(time_s: np.ndarray, v: np.ndarray, *, threshold_v: float | None = None,
                   hysteresis_v: float | None = None, sample_period_s: float | None = None,
                   readout: str = "trace", source: str = "trace", meta: dict | None = None):
    """Digitise an analog trace: Schmitt trigger, then clocked sampling.

    time_s: sample times, s (strictly increasing). v: readout voltage, V.
    threshold_v: comparator threshold, V (None: from the bimodal histogram).
    hysteresis_v: full band, V (None: automatic from the histogram when it is bimodal, else 0).
    sample_period_s: clock period, s (None: the trace's own uniform step; a non-uniform trace needs one).
    Returns ``(BitStream, Digitization)``.
    """
    time_s = np.asarray(time_s, dtype=float)
    v = np.asarray(v, dtype=float)
    if time_s.ndim != 1 or v.shape != time_s.shape:
        raise InputError(f"{source}: time and voltage arrays must be 1-D of equal length "
                         f"(got {time_s.shape} and {v.shape})")
    if time_s.size < 2:
        raise InputError(f"{source}: trace has {time_s.size} samples; need at least 2 to digitise")
    if not (np.all(np.isfinite(time_s)) and np.all(np.isfinite(v))):
        raise InputError(f"{source}: trace contains NaN or inf values")
    if np.any(np.diff(time_s) <= 0):
        raise InputError(f"{source}: time values are not strictly increasing")
    est = None
    given_hysteresis = hysteresis_v is not None
    hysteresis_from = "given" if given_hysteresis else ""
    compared = v  # the signal the comparator reads (the raw trace, or its running mean for a slow telegraph)
    smoothing_s = 0.0
    hist = examine_histogram(v) if (threshold_v is None or hysteresis_v is None) else None
    slow = None
    if hist is not None and not hist.bimodal:
        slow = _slow_levels(time_s, v, threshold_v)
    if threshold_v is None:
        if slow is not None:
            threshold_v = slow.threshold_v
        else:
            est = hist
            if not est.bimodal:
                raise RegimeError(f"{source}: cannot pick a threshold automatically: {est.reason}; "
                                  "the cell may be stuck or not telegraphing (give a threshold)")
            threshold_v = est.threshold_v
            if hysteresis_v is None:
                hysteresis_v, hysteresis_from = est.hysteresis_v, "levels"
    if slow is not None:
        compared, smoothing_s = slow.compared_v, slow.smoothing_s
    if hysteresis_v is None:
        room = (min(threshold_v - slow.mode_low_v, slow.mode_high_v - threshold_v) if slow is not None
                else float("nan"))
        if slow is not None and room > 0.1 * (slow.mode_high_v - slow.mode_low_v):
            # band edges 10 % of the spacing inside each level (the regime detector's milestones),
            # moved in with an off-centre given threshold so that each stays inside the spacing
            spacing = slow.mode_high_v - slow.mode_low_v
            hysteresis_v = float(2.0 * min(0.4 * spacing, room - 0.1 * spacing))
            hysteresis_from = "slow levels"
        elif slow is not None:
            # the given threshold is not between the two averaged levels (both on one side, or at
            # one of them): no band fits inside the spacing; read the raw trace with a band from its
            # noise, never a 0 V band (which would count every wiggle at the threshold as a flip)
            compared, smoothing_s = v, 0.0
            hysteresis_v, hysteresis_from = level_noise_band(v), "noise"
        elif hist.bimodal:
            # Given threshold on a bimodal trace: keep each band edge at most 2/3 of the way from the
            # threshold to the nearer mode, so an off-centre threshold cannot put a band edge inside a
            # mode (the comparator would stick)
            room = min(threshold_v - hist.mode_low_v, hist.mode_high_v - threshold_v)
            hysteresis_v = float(max(0.0, min(hist.hysteresis_v, 2.0 * (2.0 / 3.0) * room)))
            hysteresis_from = "levels"
        else:
            hysteresis_v, hysteresis_from = level_noise_band(v), "noise"
    if not np.isfinite(threshold_v) or not np.isfinite(hysteresis_v) or hysteresis_v < 0:
        raise InputError(f"{source}: threshold must be finite and hysteresis finite and >= 0 "
                         f"(got {threshold_v!r}, {hysteresis_v!r})")
    state = schmitt(compared, threshold_v, hysteresis_v)
    step = _uniform_step(time_s)
    if sample_period_s is None:
        if step is None:
            raise InputError(f"{source}: the trace's time step is not uniform; give a sample period "
                             "(--sample-period) for the clocked sampler")
        sample_period_s = step
        bits = state
    else:
        sample_period_s = float(sample_period_s)
        if not np.isfinite(sample_period_s) or sample_period_s <= 0:
            raise InputError(f"{source}: sample period must be a positive number of seconds, got {sample_period_s!r}")
        n = int(np.floor((time_s[-1] - time_s[0]) / sample_period_s * (1 + 1e-12))) + 1
        if step is not None and abs(sample_period_s - step) <= 1e-9 * step:
            bits = state
        else:
            clock = time_s[0] + sample_period_s * np.arange(n)
            # value held by the comparator at each clock edge: last analog sample at or before it
            # (a tolerance of 1e-9 period so rounding in the time column cannot shift a sample by one step)
            idx = np.searchsorted(time_s, clock + 1e-9 * sample_period_s, side="right") - 1
            bits = state[np.clip(idx, 0, time_s.size - 1)]
    dig = Digitization(
        threshold_v=float(threshold_v), hysteresis_v=float(hysteresis_v), threshold_auto=est is not None,
        sample_period_s=float(sample_period_s), readout=readout,
        mode_low_v=est.mode_low_v if est else float("nan"), mode_high_v=est.mode_high_v if est else float("nan"),
        valley_ratio=est.valley_ratio if est else float("nan"),
        n_trace_samples=int(time_s.size), n_bits=int(bits.size), smoothing_s=float(smoothing_s),
        hysteresis_from=hysteresis_from)
    if slow is not None and est is None:
        dig = replace(dig, mode_low_v=slow.mode_low_v, mode_high_v=slow.mode_high_v, valley_ratio=slow.valley_ratio)
    m = dict(meta or {})
    m["digitization"] = dig.to_dict()
    return BitStream(bits=np.ascontiguousarray(bits, dtype=np.uint8), sample_period_s=float(sample_period_s),
                     source=source, meta=m), dig


def readout_signal(wf, *, source: str = "waveform") -> tuple[np.ndarray, str, float | None]:
    """The voltage the cell's bit is read from, per ``wf.meta["readout"]``: (volts, mode, threshold_v or None)."""
    return wf.readout_signal(source=source)


def digitize_waveform(wf, *, threshold_v: float | None = None, hysteresis_v: float | None = None,
                      sample_period_s: float | None = None, source: str | None = None):
    """Digitise a :class:`noisecell.waveform.Waveform` by its ``meta["readout"]``.

    The threshold is, in order: the argument, the readout's ``threshold_v``, automatic; the hysteresis
    likewise: the argument, the readout's ``hysteresis_v`` (declared by the cell), automatic. The sample
    period is, in order: the argument, ``meta["sample_period_s"]``, the trace's uniform step.
    Returns ``(BitStream, Digitization)``; the BitStream's meta is the waveform's meta plus the digitisation.
    """
    src = source or str(wf.meta.get("job_id") or wf.meta.get("source") or "waveform")
    v, mode, thr = readout_signal(wf, source=src)
    if threshold_v is None:
        threshold_v = thr
    if hysteresis_v is None and (wf.meta.get("readout") or {}).get("hysteresis_v") is not None:
        hysteresis_v = float(wf.meta["readout"]["hysteresis_v"])
    if sample_period_s is None and wf.meta.get("sample_period_s"):
        sample_period_s = float(wf.meta["sample_period_s"])
    return digitize_trace(wf.time_s, v, threshold_v=threshold_v, hysteresis_v=hysteresis_v,
                          sample_period_s=sample_period_s, readout=mode, source=src, meta=dict(wf.meta))
