"""Procedure 1, the pilot: a short coarse sweep at the nominal condition that locates the sigmoid, so
the parts' bias shorthands are laid out around it instead of over the cell's whole bias range.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError
from . import log
from .spec import PILOT_STAGES, CharSpec

#: the first pilot stage: the cell's mid bias and geometric steps (ratio 3) out to this fraction of
#: the larger half of its bias range. A trimmed cell's sigmoid sits near mid_v (the trim balances it
#: there), and pbit's or pbit_x2's is ~10 mV wide in a ±0.3-0.4 V range kept wide for mismatch: an
#: evenly spaced first stage puts most of its records where the cell is stuck far out (pbit_x2: two of
#: three such 3 µs records stalled ngspice or failed to converge) and needs 3-4 stages to narrow onto
#: the sigmoid. From mid_v ± 0.1 of the half-range (pbit: 0, ±4.4, ±13.3, ±40 mV) one stage resolves
#: a sigmoid of a few mV; a wider one, or a crossing outside, gets the evenly spaced whole range next.
FIRST_SPAN = 0.1
FIRST_RATIO = 3.0


def first_grid(lo: float, hi: float, mid: float, num: int) -> list[float]:
    """Bias points (V) of the first pilot stage: ``mid`` and (num − 1)//2 points each side at
    FIRST_SPAN·half-range / FIRST_RATIO^k, k = 0 … (outermost first), clipped to [lo, hi]."""
    m = max(1, (int(num) - 1) // 2)
    half = max(hi - mid, mid - lo)
    d = FIRST_SPAN * half / FIRST_RATIO ** np.arange(m)
    pts = np.concatenate([mid - d, [mid], mid + d[::-1]])
    return sorted({float(f"{x:.9g}") for x in np.clip(pts, lo, hi)})


def next_stage(stage_grid: list[float], first: bool, window, note: str, lo: float, hi: float, num: int
               ) -> tuple[list[float] | None, str]:
    """The next pilot stage's bias points (None: the pilot is done) and why, from the window found so
    far. After the first (mid-centred) stage: the whole range, evenly spaced, when no crossing was
    found or the sigmoid reaches beyond the stage's points (its window is wider than they span);
    after any stage: the bracket of a crossing steeper than the grid, evenly spaced again."""
    g_lo, g_hi = min(stage_grid), max(stage_grid)
    if first and (window is None or window[0] < g_lo - 1e-12 or window[1] > g_hi + 1e-12) \
            and (g_lo > lo or g_hi < hi):
        why = "no crossing near the mid bias" if window is None else "the sigmoid reaches beyond the first points"
        return [float(f"{x:.9g}") for x in np.linspace(lo, hi, int(num))], why
    if window is not None and "steeper than the pilot grid" in note:
        return [float(f"{x:.9g}") for x in np.linspace(window[0], window[1], int(num))], "bracket steeper than the grid"
    return None, ""


def pilot_window(bias_v: np.ndarray, p1: np.ndarray, margin: float, lo: float, hi: float
                 ) -> tuple[tuple[float, float, float] | None, str]:
    """Bias window (lo, hi, centre), V, around the P(1) = 0.5 crossing seen in a coarse pilot sweep.

    With two or more pilot points strictly inside (0.02, 0.98), a straight line through logit P(1)
    gives V50 and the logistic scale s; the window is V50 ± margin·s, widened to keep those points.
    With fewer, the window is the bracket between the last point below 0.5 and the first above.
    A sigmoid that falls with bias (a cell read at the output the bias pulls down) is located the same
    way (the window of 1 − P(1)). Returns (None, reason) when the pilot shows no crossing.
    """
    v, p = np.asarray(bias_v, float), np.asarray(p1, float)
    ok = np.isfinite(p) & np.isfinite(v)
    if ok.sum() >= 2:
        order = np.argsort(v[ok])
        ps = p[ok][order]
        if ps[-1] < ps[0]:
            # falls with bias: P(1) = 1 − (a rising sigmoid); same window, stated as falling
            window, note = _rising_window(v, 1.0 - p, margin, lo, hi)
            if window is not None:
                note = note.replace("P(1) crosses 0.5", "P(1) falls through 0.5")
                return window, note
    return _rising_window(v, p, margin, lo, hi)


def _rising_window(v: np.ndarray, p: np.ndarray, margin: float, lo: float, hi: float):
    ok = np.isfinite(p) & np.isfinite(v)
    # later stages can repeat a bias point: pool repeats (equal-length runs, so a plain mean)
    v, inv = np.unique(v[ok], return_inverse=True)
    p = np.bincount(inv, weights=p[ok]) / np.bincount(inv)
    inner = (p > 0.02) & (p < 0.98)
    if inner.sum() >= 2:
        y = np.log(p[inner] / (1 - p[inner]))
        b, a = np.polyfit(v[inner], y, 1)
        if b > 0:
            v50, s = -a / b, 1 / b
            w_lo = min(v50 - margin * s, v[inner].min())
            w_hi = max(v50 + margin * s, v[inner].max())
            w_lo, w_hi = max(lo, w_lo), min(hi, w_hi)
            return ((w_lo, w_hi, 0.5 * (w_lo + w_hi)),
                    f"pilot: P(1) crosses 0.5 near {v50 * 1e3:+.3g} mV, logistic scale ≈ {s * 1e3:.3g} mV; "
                    f"bias points laid out over {w_lo * 1e3:+.3g} .. {w_hi * 1e3:+.3g} mV")
    above = np.flatnonzero(p >= 0.5)
    if above.size and above[0] > 0 and p[above[0] - 1] < 0.5:
        i = above[0]
        # the sigmoid is steeper than the pilot grid: the bracket, widened by half a grid step on each
        # side so that a V50 near either end still has points on both sides
        half = 0.5 * (v[i] - v[i - 1])
        w_lo, w_hi = max(lo, v[i - 1] - half), min(hi, v[i] + half)
        return ((w_lo, w_hi, 0.5 * (w_lo + w_hi)),
                f"pilot: P(1) crosses 0.5 between {v[i - 1] * 1e3:+.3g} and {v[i] * 1e3:+.3g} mV (steeper than the "
                f"pilot grid); window {w_lo * 1e3:+.3g} .. {w_hi * 1e3:+.3g} mV")
    return None, ("pilot: P(1) does not cross 0.5 inside the cell's bias range "
                  f"(P(1) = {', '.join(f'{x:.2f}' for x in p)}); the parts use the whole range")


@dataclass(frozen=True)
class PilotResult:
    """The pilot's sweeps (one per stage, each a :class:`noisecell.sweep.SweepResult`), the bias window
    it found (lo, hi, centre), V — None when P(1) does not cross 0.5 — and the sentence saying so."""

    sweeps: tuple
    window: tuple[float, float, float] | None
    note: str
    prefix: str = "pilot"

    @property
    def stage_names(self) -> list[str]:
        return [self.prefix if k == 0 else f"{self.prefix}{k + 1}" for k in range(len(self.sweeps))]

    def summary(self) -> str:
        n = sum(r.total for r in self.sweeps)
        return f"pilot: {len(self.sweeps)} stage(s), {n} points; {self.note}"


def run_pilot(spec: CharSpec, cellspec, out: Path, workers, retry_failed, *, pool=None, corner: str | None = None,
              temp_c: float | None = None, prefix: str = "pilot", seed_offset: int = 0,
              start_window: tuple[float, float] | None = None) -> PilotResult:
    """Run the pilot stages under ``OUT/sweep/<prefix>*`` (resumable), each narrowing a bracket that is
    steeper than its grid; ``pool``: the simulator hosts shared with the parts (None: the sweep's own).
    ``corner``/``temp_c``: a condition other than the nominal one (issue 18: every condition has its own
    pilot), ``seed_offset`` added to its seeds. ``start_window``: (lo, hi) V of the first stage's grid
    instead of the cell's whole bias range (a condition whose sigmoid is known to lie near the nominal
    one's: the stages that would only narrow the range onto it are skipped)."""
    from ...sweep import run_sweep
    from ...sweep.spec import parse_spec

    pl = spec.pilot
    lo, hi = cellspec.bias.range_v
    sweep = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    cond_axes = {}
    if corner is not None:
        cond_axes["corner"] = [corner]
    if temp_c is not None:
        cond_axes["temperature"] = [float(temp_c)]
    num = int(pl.get("num", 9))
    if start_window is None:
        grid = first_grid(lo, hi, float(cellspec.bias.mid_v), num)
    else:
        # a condition's own start window (issue 18): evenly spaced over it, as before
        a, z = max(lo, float(start_window[0])), min(hi, float(start_window[1]))
        grid = [float(f"{x:.9g}") for x in np.linspace(a, z, num)]
    sweep.update(cell=spec.cell, duration=pl.get("duration", "2us"), seed=pl.get("seed", 1000) + seed_offset,
                 grid={"bias": grid, **cond_axes})
    margin = float(pl.get("margin", 4.0))
    results, window, note = [], None, ""
    for stage in range(1, PILOT_STAGES + 1):
        sw = parse_spec(sweep, source=f"{spec.source} [pilot]")
        name = prefix if stage == 1 else f"{prefix}{stage}"
        where = ("the nominal condition" if not cond_axes else
                 f"{corner or 'the nominal corner'}" + ("" if temp_c is None else f" {float(temp_c):g} °C"))
        log(f"pilot stage {stage}: {len(sw.bias_v)} points at {where} -> {out / 'sweep' / name}")
        try:
            res = run_sweep(sw, out / "sweep" / name, workers=workers, progress=True, retry_failed=retry_failed,
                            **({"pool": pool} if pool is not None else {}))
        except InputError as exc:
            if "different spec" not in str(exc):
                raise
            raise InputError(f"{out / 'sweep' / name}: holds a pilot stage of a different characterisation (spec "
                             "edited, or the simulation/analysis code changed); use a new --out folder, or delete "
                             "OUT/sweep to simulate again") from None
        results.append(res)
        ok = pd.concat([r.dataframe for r in results])
        ok = ok[ok["status"] == "ok"]
        if not len(ok) or "p1" not in ok:
            window, note = None, "pilot: every pilot simulation failed (see Warnings); the parts use the whole bias range"
            break
        # refuse frozen / non-monotonic points before fitting (issue 16): see regime.sigmoid_points
        from ...regime import sigmoid_points
        col = lambda c: pd.to_numeric(ok[c], errors="coerce").to_numpy(float) if c in ok else None  # noqa: E731
        sp = sigmoid_points(ok["bias_v"].to_numpy(float), col("p1"), col("p1_ci95_lo"), col("p1_ci95_hi"),
                            ok["regime"].astype(str).to_numpy() if "regime" in ok else None)
        if sp.refusal:
            window, note = None, f"pilot: {sp.refusal}; the parts use the whole bias range"
            break
        use = np.asarray(sp.usable)
        window, note = pilot_window(ok["bias_v"].to_numpy(float)[use], col("p1")[use], margin, lo, hi)
        if sp.excluded:
            note += f" ({sp.excluded})"
        # next stage: the whole range when the mid-centred first stage saw no crossing or a sigmoid
        # wider than itself; the same number of points across a bracket steeper than the grid (each
        # stage narrows it about (num-1)/2-fold) until the sigmoid's own width is resolved
        # a condition's pilot started over its own window (start_window) skips the first stage's
        # "whole range" step: its sigmoid is known to lie near the nominal one's, and a sigmoid wider than
        # that window is located by this stage's fit (pbit_x4 tt −40 °C, session 24: P(1) 0.48 / 0.72 at
        # +0.5 / +7.1 mV, a 7 mV scale estimate, window ±21 mV against the ±20 mV grid, and the next stage
        # went to −200 … +300 mV, where every record is stuck); no crossing at all still gets the whole
        # range from the caller (conditions: "does not cross")
        grid, why = next_stage(grid, stage == 1 and start_window is None, window, note, lo, hi, num)
        if grid is None or stage == PILOT_STAGES:
            break
        log(f"pilot: {why}; next stage over {min(grid) * 1e3:+.4g} .. {max(grid) * 1e3:+.4g} mV")
        sweep["grid"] = {"bias": grid, **cond_axes}
        sweep["seed"] = int(pl.get("seed", 1000)) + stage + seed_offset
    return PilotResult(tuple(results), window, note, prefix)
