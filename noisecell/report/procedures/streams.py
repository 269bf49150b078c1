"""Entropy figures at a stated bit clock and the example streams shown in detail, from the stored streams."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError, NoisecellError
from ...units import parse_si
from ..data import ConditionFit, ExampleStream, condition_label
from .points import load_bits, nan_if_none, stream_names

def entropy_period(cfg: dict, fits: list[ConditionFit], nominal: tuple, points: pd.DataFrame) -> tuple[float, str]:
    """The bit clock the entropy figures are stated at, s, and a sentence saying why."""
    native = float(np.nanmedian(points["sample_period_s"].astype(float))) if len(points) else float("nan")
    val = cfg.get("entropy_sample_period", "auto")
    if val != "auto":
        t = parse_si(val, unit="s", what="report.entropy_sample_period")
        if not t > 0:
            raise InputError(f"report.entropy_sample_period must be > 0, got {val!r}")
        return t, f"entropy and health-test figures at a {t * 1e9:.4g} ns bit clock (set in the spec)"
    fit = next((f for f in fits if (f.corner, f.temp_c, f.vdd_v) == nominal), None)
    if fit is None or not math.isfinite(fit.tau_at_v50_s) or not math.isfinite(native):
        return native, f"entropy figures at the simulation's sample period ({native * 1e9:.4g} ns)"
    # a clock of about one correlation time: successive bits are then only e^-1 correlated, the
    # usual operating point of a p-bit read by a clocked system; rounded to whole stored samples
    m = max(1, int(round(fit.tau_at_v50_s / native)))
    t = m * native
    return t, (f"entropy and health-test figures at a {t * 1e9:.4g} ns bit clock ≈ τ at V50 "
               f"({fit.tau_at_v50_s * 1e9:.3g} ns), i.e. every {m}th stored sample")


def entropy_columns(points: pd.DataFrame, out: Path, period_s: float, run_90b: bool, nominal: tuple) -> list[str]:
    """Markov-model entropy rates and health-test cutoffs at ``period_s`` for every point (from its
    rates), and SP 800-90B h_original on the stored stream decimated to ``period_s`` (nominal points)."""
    from ...analysis.markov import apt_cutoff, min_entropy_rate, rct_cutoff, shannon_rate
    from ...model.sampler import transition_probabilities

    problems: list[str] = []
    points["entropy_period_s"] = period_s
    points["h_original_n"] = np.nan
    points["h_original_period_s"] = np.nan
    for i, r in points.iterrows():
        ku, kd = r["rate_up_hz"], r["rate_down_hz"]
        if r["status"] != "ok" or not (ku > 0 and kd > 0) or not math.isfinite(period_s):
            continue
        a, b, _ = transition_probabilities(math.log(ku), math.log(kd), period_s)
        h_min = min_entropy_rate(float(a), float(b))
        points.at[i, "h_shannon_rate"] = shannon_rate(float(a), float(b))
        points.at[i, "h_min_rate"] = h_min
        points.at[i, "rct_cutoff"] = rct_cutoff(h_min) or np.nan
        points.at[i, "apt_cutoff"] = apt_cutoff(h_min) or np.nan
    if not run_90b:
        return problems
    from ...entropy import MIN_SAMPLES, assess

    sel = ((points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
           & np.isclose(points["vdd_v"], nominal[2]) & (points["instance"] < 0) & (points["status"] == "ok")
           & (points["role"] == "fit"))
    for i in points.index[sel]:
        r = points.loc[i]
        streams, sp = load_bits(out, r["part"], r["job_id"])
        if not streams or not sp:
            continue
        m = max(1, int(round(period_s / sp)))
        # every chunk is an independent stream: decimate each, then join (one junction per chunk)
        dec = np.concatenate([s[::m] for s in streams])
        used_period = m * sp
        if dec.size < MIN_SAMPLES:
            # too few samples at the stated clock: assess the stream at its native period instead (a
            # different, stated, per-sample figure) rather than report nothing
            dec = np.concatenate(streams)
            used_period = sp
        points.at[i, "h_original_n"] = dec.size
        points.at[i, "h_original_period_s"] = used_period
        if dec.size < MIN_SAMPLES:
            continue
        try:
            points.at[i, "h_original"] = assess(dec, run_ais31=False, source=str(r["job_id"])[:12]).h_original
        except NoisecellError:
            continue
        except (ValueError, ArithmeticError) as exc:
            # an estimator failing on one stream must not cost the report (the simulations are kept)
            problems.append(f"SP 800-90B assessment failed at {r['bias_v'] * 1e3:+.4g} mV "
                            f"({type(exc).__name__}: {exc}); h_original not given there")
    return problems


def example_streams(points: pd.DataFrame, out: Path, nominal: tuple, n: int) -> list[ExampleStream]:
    """Streams shown in detail: nominal condition, P(1) nearest 0.5, then nearest 0.2 and 0.8."""
    from ...analysis import analyze_stream
    from ...digitize import digitize_waveform
    from ...io import BitStream
    from ...waveform import Waveform

    ok = points[(points["corner"] == nominal[0]) & np.isclose(points["temp_c"], nominal[1])
                & np.isclose(points["vdd_v"], nominal[2]) & (points["role"] == "fit") & (points["instance"] < 0)
                & (points["status"] == "ok") & points["p1"].between(0.02, 0.98)
                & np.isfinite(points["tau_s"].astype(float))]
    # prefer fitted (bistable) points; fall back to any telegraphing point so the report still shows one
    rows = ok[ok["fitted_regime"]] if ok["fitted_regime"].sum() >= min(n, len(ok)) else ok
    if not len(rows) or n <= 0:
        return []
    chosen = []
    for target in (0.5, 0.2, 0.8, 0.35, 0.65)[:n]:
        left = rows[~rows.index.isin(chosen)]
        if not len(left):
            break
        chosen.append((left["p1"] - target).abs().idxmin())
    exs = []
    for i in sorted(chosen, key=lambda j: rows.loc[j, "bias_v"]):
        r = rows.loc[i]
        names = stream_names(out, r["part"], r["job_id"])
        if not names:
            continue
        streams, sp = load_bits(out, r["part"], r["job_id"])
        bits = np.concatenate(streams) if len(streams) > 1 else streams[0]
        wpath = out / "sweep" / r["part"] / "waves" / f"{names[0]}.npz"
        t = v = thr = None
        hyst = 0.0
        if wpath.exists():
            wf = Waveform.load_npz(wpath)
            from ...digitize import readout_signal
            v, _, _ = readout_signal(wf)
            t = np.asarray(wf.time_s, float)
            _, dig = digitize_waveform(wf)
            thr, hyst = dig.threshold_v, dig.hysteresis_v
        acf_tau = psd_tau = float("nan")
        try:
            est = analyze_stream(BitStream(bits=streams[0], sample_period_s=sp), sample_period_s=sp)
            acf_tau = nan_if_none(est.tau_exp_fit_s)
            psd_tau = est.psd_tau_samples * sp if est.psd_tau_samples else float("nan")
        except NoisecellError:
            pass
        exs.append(ExampleStream(
            label=condition_label(*nominal) + ("" if r["fitted_regime"] else f" [{r['regime']}]"),
            corner=nominal[0], temp_c=nominal[1], vdd_v=nominal[2],
            bias_v=float(r["bias_v"]), bits=bits, sample_period_s=float(sp), p1=float(r["p1"]),
            tau_s=float(r["tau_s"]), rate_up_hz=float(r["rate_up_hz"]), rate_down_hz=float(r["rate_down_hz"]),
            time_s=t, v_read=v, threshold_v=thr, hysteresis_v=hyst, acf_tau_s=acf_tau, psd_tau_s=psd_tau))
    return exs
