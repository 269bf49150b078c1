"""Analog trace → bits: Schmitt-trigger comparator followed by a clocked sampler (a D flip-flop).

The comparator switches to 1 when the trace rises above ``threshold_v + hysteresis_v/2`` and back to 0
when it falls below ``threshold_v - hysteresis_v/2``; inside the band it holds its state, so noise
riding on a slow transition does not produce spurious short dwells. The comparator output is then
sampled every ``sample_period_s`` (the value held at the sampling instant), which is how a bit cell
is read by a clocked digital system.

The automatic threshold is the valley of the (smoothed) bimodal histogram of the trace between its
two most prominent modes; the automatic hysteresis is ±2 within-mode noise standard deviations,
capped at half the distance between the modes. A trace whose histogram has no clear second mode (a
stuck cell, or a cell that only wiggles around one level) raises :class:`~noisecell.errors.RegimeError`
when no threshold is given: there is no honest automatic threshold for it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError, RegimeError
from .units import format_si

#: a histogram valley deeper than this fraction of the smaller mode's height counts as bimodal
_VALLEY_RATIO_MAX = 0.5
#: the smaller mode must hold at least this fraction of the samples (otherwise: spikes, not a state)
_MINOR_MODE_MIN_FRACTION = 1e-4


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
            f"  hysteresis       {format_si(self.hysteresis_v, 'V')} (full band)",
            f"  sample period    {format_si(self.sample_period_s, 's')}",
            f"  samples          {self.n_trace_samples} analog -> {self.n_bits} bits",
        ]
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
    v = np.asarray(v, dtype=float)
    h = 0.5 * max(float(hysteresis_v), 0.0)
    if h == 0.0:
        return (v > threshold_v).astype(np.uint8)
    up = v > threshold_v + h
    down = v < threshold_v - h
    decided = up | down
    # Index of the last decided sample at or before each sample (forward fill of the decided state).
    idx = np.where(decided, np.arange(v.size), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.empty(v.size, dtype=np.uint8)
    has = idx >= 0
    out[has] = up[idx[has]]
    out[~has] = v[~has] > threshold_v
    return out


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
    from .io import BitStream

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
    if threshold_v is None:
        est = examine_histogram(v)
        if not est.bimodal:
            raise RegimeError(f"{source}: cannot pick a threshold automatically: {est.reason}; "
                              "the cell may be stuck or not telegraphing (give a threshold)")
        threshold_v = est.threshold_v
        if hysteresis_v is None:
            hysteresis_v = est.hysteresis_v
    if hysteresis_v is None:
        # Given threshold, no hysteresis: still suppress chatter when the trace is clearly bimodal.
        est_h = examine_histogram(v)
        hysteresis_v = 0.0
        if est_h.bimodal:
            # keep each band edge at most 2/3 of the way from the given threshold to the nearer mode,
            # so an off-centre threshold cannot put a band edge inside a mode (the comparator would stick)
            room = min(threshold_v - est_h.mode_low_v, est_h.mode_high_v - threshold_v)
            hysteresis_v = float(max(0.0, min(est_h.hysteresis_v, 2.0 * (2.0 / 3.0) * room)))
    if not np.isfinite(threshold_v) or not np.isfinite(hysteresis_v) or hysteresis_v < 0:
        raise InputError(f"{source}: threshold must be finite and hysteresis finite and >= 0 "
                         f"(got {threshold_v!r}, {hysteresis_v!r})")
    state = schmitt(v, threshold_v, hysteresis_v)
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
        n_trace_samples=int(time_s.size), n_bits=int(bits.size))
    m = dict(meta or {})
    m["digitization"] = dig.to_dict()
    return BitStream(bits=np.ascontiguousarray(bits, dtype=np.uint8), sample_period_s=float(sample_period_s),
                     source=source, meta=m), dig


def readout_signal(wf, *, source: str = "waveform") -> tuple[np.ndarray, str, float | None]:
    """The voltage the cell's bit is read from, per ``wf.meta["readout"]``: (volts, mode, threshold_v or None)."""
    ro = wf.meta.get("readout") or {}
    mode = ro.get("mode", "differential" if "v_outb" in wf.outputs else "single")
    thr = ro.get("threshold_v")
    if mode == "differential":
        if "v_outb" not in wf.outputs:
            raise InputError(f"{source}: readout is differential but the waveform has no v_outb array")
        v = np.asarray(wf.outputs["v_out"], float) - np.asarray(wf.outputs["v_outb"], float)
    elif mode == "single":
        v = np.asarray(wf.outputs["v_out"], float)
    else:
        raise InputError(f"{source}: unknown readout mode {mode!r} (expected 'differential' or 'single')")
    return v, mode, (None if thr is None else float(thr))


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
