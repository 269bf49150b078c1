"""Procedure 1c (issue 18): every corner × temperature gets its own pilot and its own sequential datasheet
design, and the temperature interpolation is checked at held-out temperatures.

Spec table ``[conditions]`` (all keys optional; defaults in brackets)::

    [conditions]
    enabled = true                       # false: no per-condition characterisation (e.g. in [quick])
    corners = ["all"]                    # the cell's corners ("all", "nominal" or names) [all]
    temperatures = [-40, 27, 85]         # °C ("nominal" allowed) [the cell's nominal]
    heldout_temperatures = [0, 50]       # at the nominal corner: interpolation checks [none]
    targets = { v50_halfwidth = "1mV", scale_rel_halfwidth = 0.10, tau_rel_halfwidth = 0.15 }
    chunks_tau = [40, 80, 160]           # record lengths, in units of the condition's τ(V50) [40, 80, 160]
    min_record = "2us"                   # ... all scaled up together so that the shortest is at least this [0]
    budget_tau = "auto"                  # simulated-time budget per condition, in τ(V50), or "auto": from the
                                         # nominal design's measured cost (below) [3000]
    budget_margin = 1.5                  # "auto": this times the predicted need [1.5]
    skip_untrimmed = true                # a condition whose stored trim search saw no bistable record is
                                         # reported with that search's result, not simulated [true]
    pilot_start = "nominal"              # first pilot stage over the nominal pilot's window widened
                                         # pilot_widen times ("range": the cell's whole bias range) [nominal]
    pilot_widen = 3                      # [3]
    parallel = 2                         # conditions run at once on the shared simulator pool [2]
    budget_wall = "120s"                 # and/or wall time per condition [none]
    jobs_per_round = 2                   # [2]
    max_rounds = 12                      # [12]
    seed = 21                            # design seeds: seed + 101·index [21]
    heldout_p1 = [0.3, 0.7]              # held-out-temperature records at these interpolated P(1)
    heldout_p1_halfwidth = 0.05          # each long enough for this P(1) CI half-width ...
    heldout_max_tau = 1500               # ... capped at this many τ

The nominal condition is the ``[design]`` table's (the nominal pilot and design); this procedure runs
every other (corner, temperature). Record lengths and budgets are in units of each condition's own
τ(V50), measured from its pilot's telegraphing records, so the cost scales with the cell's flip rate
(a cell ten times faster costs ten times less simulated time for the same precision).

The "auto" budget: the information about V50, ln scale and ln τ grows with the number of transitions,
i.e. with simulated time in units of τ; so the simulated time in τ that the nominal design spent (T/τ),
times (its half-width / this condition's target)² for each of the three quantities, is what a
condition needs (the largest of the three, times ``budget_margin`` for the scatter of a sequential
stop). The pilot's records enter each condition's fit, as at the nominal condition.

A condition whose pilot finds no P(1) = 0.5 crossing, or no telegraphing record to measure τ, or whose
design ends without a rate fit, is not dropped: it is kept in :attr:`ConditionsResult.excluded` with
what was seen (the pilot's P(1) and regimes per bias, the design's stop reason), written into the
model's ``excluded_conditions`` and the report's per-condition table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ...constants import Z95
from ...errors import InputError, NoisecellError
from . import log

CONDITION_KEYS = ("enabled", "corners", "temperatures", "heldout_temperatures", "targets", "chunks_tau", "min_record",
                  "budget_tau",
                  "budget_wall", "jobs_per_round", "max_rounds", "seed", "heldout_p1", "heldout_p1_halfwidth",
                  "heldout_max_tau", "budget_margin", "skip_untrimmed", "pilot_start", "pilot_widen", "parallel")


@dataclass(frozen=True)
class ConditionsSettings:
    conditions: tuple[tuple[str, float], ...]     # (corner, temp_c), the nominal one left out
    heldout_temperatures: tuple[float, ...] = ()
    targets: dict = field(default_factory=lambda: {"v50_halfwidth": "1mV", "scale_rel_halfwidth": 0.10,
                                                   "tau_rel_halfwidth": 0.15})
    chunks_tau: tuple[float, ...] = (40.0, 80.0, 160.0)
    #: s; the shortest design record (chunks_tau[0]·τ) is scaled up to this, the others with it
    min_record_s: float = 0.0
    budget_tau: float = 3000.0
    budget_wall: object = None
    jobs_per_round: int = 2
    max_rounds: int = 12
    seed: int = 21
    heldout_p1: tuple[float, ...] = (0.3, 0.7)
    heldout_p1_halfwidth: float = 0.05
    heldout_max_tau: float = 1500.0
    #: None: "auto" (from the nominal design's cost, :func:`auto_budget_tau`)
    budget_auto: bool = False
    budget_margin: float = 1.5
    skip_untrimmed: bool = True
    pilot_start: str = "nominal"
    pilot_widen: float = 3.0
    parallel: int = 2

    def chunks_s(self, tau_s: float) -> list[float]:
        """Design record lengths (s) at τ(V50) = ``tau_s``: ``chunks_tau``·τ, all scaled by one factor
        when the shortest would be under ``min_record_s``. Why: at a hot or fast-corner condition τ is
        5-13 ns (pbit_x5 tt/ff/sf 85 °C), so 40 τ is a 0.2-0.5 µs record; the design then spends its
        job limit (max_rounds) on records that each cost a job's fixed overhead and are too short for
        the regime detector to call bistable (pbit_x5 tt 85 °C: 36 jobs of 0.53-2.1 µs, 44.8 µs in
        all, half of them single_peaked, stopped on the job limit at scale 1.01× its target). The
        budget stays in τ: the information per simulated τ does not depend on the record length."""
        k = max(1.0, self.min_record_s / (self.chunks_tau[0] * tau_s)) if tau_s > 0 else 1.0
        return [float(f"{c * tau_s * k:.3g}") for c in self.chunks_tau]

    def design_table(self, tau_s: float, index: int, budget_tau: float | None = None) -> dict:
        """The ``[design]`` table (noisecell.sequential) of one condition with τ(V50) = ``tau_s``
        (``budget_tau``: the budget in τ when "auto" computed one, else the spec's)."""
        bt = self.budget_tau if budget_tau is None else budget_tau
        t = {"seed": int(self.seed + 101 * index), "jobs_per_round": int(self.jobs_per_round),
             "chunks": self.chunks_s(tau_s),
             "budget_simulated": float(f"{bt * tau_s:.4g}"), "max_rounds": int(self.max_rounds),
             "targets": dict(self.targets), "heldout": {"p1": []}}
        if self.budget_wall is not None:
            t["budget_wall"] = self.budget_wall
        return t


def parse_conditions(table, cellspec, source: str) -> ConditionsSettings | None:
    """Validate a ``[conditions]`` table against the cell (one-line errors naming the key); None when
    ``enabled = false``."""
    if not isinstance(table, dict):
        raise InputError(f"{source}: [conditions] must be a table")
    bad = sorted(set(table) - set(CONDITION_KEYS))
    if bad:
        raise InputError(f"{source}: unknown key(s) in [conditions]: {', '.join(bad)}; allowed: {', '.join(CONDITION_KEYS)}")
    en = table.get("enabled", True)
    if not isinstance(en, bool):
        raise InputError(f"{source}: conditions.enabled must be true or false")
    if not en:
        return None
    corners = table.get("corners", ["all"])
    if not isinstance(corners, list) or not corners:
        raise InputError(f"{source}: conditions.corners must be a list, e.g. [\"all\"] or [\"tt\", \"ff\"]")
    cs: list[str] = []
    for c in corners:
        if c == "all":
            cs += list(cellspec.corners)
        elif c == "nominal":
            cs.append(cellspec.nominal_corner)
        elif c in cellspec.corners:
            cs.append(c)
        else:
            raise InputError(f"{source}: conditions.corners: {c!r} is not a corner of {cellspec.name} "
                             f"({', '.join(cellspec.corners)})")
    cs = list(dict.fromkeys(cs))

    def temps(key, default):
        v = table.get(key, default)
        if not isinstance(v, list):
            raise InputError(f"{source}: conditions.{key} must be a list of °C")
        out = []
        for t in v:
            if t == "nominal":
                out.append(float(cellspec.nominal_temp_c))
            elif isinstance(t, (int, float)) and not isinstance(t, bool) and -273.15 < t < 1000:
                out.append(float(t))
            else:
                raise InputError(f"{source}: conditions.{key}: {t!r} is not a temperature in °C")
        return tuple(dict.fromkeys(out))

    ts = temps("temperatures", ["nominal"])
    held = temps("heldout_temperatures", [])
    nominal = (cellspec.nominal_corner, float(cellspec.nominal_temp_c))
    conds = tuple((c, t) for c in cs for t in ts if (c, t) != nominal)
    if set(held) & set(ts):
        raise InputError(f"{source}: conditions.heldout_temperatures must differ from conditions.temperatures")

    def pos_list(key, default):
        v = table.get(key, default)
        if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0
                                                   for x in v):
            raise InputError(f"{source}: conditions.{key} must be a list of numbers > 0")
        return tuple(float(x) for x in v)

    def pos(key, default):
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise InputError(f"{source}: conditions.{key} must be a number > 0, got {v!r}")
        return float(v)

    def pos_int(key, default):
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{source}: conditions.{key} must be an integer ≥ 1, got {v!r}")
        return v

    from ...units import parse_si

    mr = table.get("min_record", 0)
    try:
        min_record = 0.0 if mr == 0 else parse_si(mr, unit="s", what="conditions.min_record")
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    if isinstance(mr, bool) or not (min_record >= 0 and math.isfinite(min_record)):
        raise InputError(f"{source}: conditions.min_record must be a duration ≥ 0, e.g. \"2us\", got {mr!r}")
    bt = table.get("budget_tau", 3000)
    auto = bt == "auto"
    if auto:
        table = {**table, "budget_tau": 3000}   # the fallback when the nominal design has no fit
    for key in ("skip_untrimmed",):
        if not isinstance(table.get(key, True), bool):
            raise InputError(f"{source}: conditions.{key} must be true or false")
    ps = table.get("pilot_start", "nominal")
    if ps not in ("nominal", "range"):
        raise InputError(f"{source}: conditions.pilot_start must be \"nominal\" or \"range\", got {ps!r}")
    hp = pos_list("heldout_p1", [0.3, 0.7])
    if any(not 0 < p < 1 for p in hp):
        raise InputError(f"{source}: conditions.heldout_p1 values must lie strictly between 0 and 1")
    seed = table.get("seed", 21)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{source}: conditions.seed must be an integer")
    st = ConditionsSettings(conditions=conds, heldout_temperatures=held,
                            targets=dict(table.get("targets", ConditionsSettings.__dataclass_fields__["targets"].default_factory())),
                            chunks_tau=tuple(sorted(pos_list("chunks_tau", [40, 80, 160]))),
                            min_record_s=min_record,
                            budget_tau=pos("budget_tau", 3000), budget_wall=table.get("budget_wall"),
                            jobs_per_round=pos_int("jobs_per_round", 2), max_rounds=pos_int("max_rounds", 12),
                            seed=seed, heldout_p1=hp, heldout_p1_halfwidth=pos("heldout_p1_halfwidth", 0.05),
                            heldout_max_tau=pos("heldout_max_tau", 1500), budget_auto=auto,
                            budget_margin=pos("budget_margin", 1.5), skip_untrimmed=table.get("skip_untrimmed", True),
                            pilot_start=ps, pilot_widen=pos("pilot_widen", 3), parallel=pos_int("parallel", 2))
    # the design table every condition will get: typos in targets/budget_wall fail now, not after hours
    from ...sequential import parse_design

    parse_design(st.design_table(1e-6, 0), f"{source} [conditions]")
    return st


#: role of the records of a condition that was not characterised (its design stopped on a diverged fit,
#: on failing simulations, or without a rate fit): shown in the per-point table, never fitted (the model
#: fits "fit" and "mismatch" records), so the condition stays in excluded_conditions
EXCLUDED_ROLE = "excluded"


def _roles(sweeps, role: str) -> list:
    return [(n, role, x) for n, x in sweeps]


def condition_tag(corner: str, temp_c: float) -> str:
    """Folder-safe name of a condition: ``ss-40C``, ``tt27C``, ``ff85C``, ``tt0p5C``."""
    return f"{corner}{float(temp_c):g}C".replace(".", "p")


def pilot_seen(pilot, trim_row: dict | None = None) -> dict:
    """What a pilot saw, for the report and ``excluded_conditions``: per bias P(1) and regime, and τ(V50)
    estimated from its telegraphing records (bistable, 0.05 < P(1) < 0.95: from their transition counts,
    see below), or None when none telegraphs. ``trim_row``: the condition's stored trim-search row
    (trims.json); when its check record was bistable it is pooled in as one more record (below)."""
    frames = [r.dataframe for r in pilot.sweeps if r.dataframe is not None and len(r.dataframe)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    seen: dict = {"pilot": pilot.note, "tau_s": None, "vdd_v": None}
    if not len(df) or "status" not in df:
        return seen
    ok = df[df["status"] == "ok"]
    if not len(ok):
        return seen
    num = lambda c: pd.to_numeric(ok[c], errors="coerce").to_numpy(float) if c in ok else np.full(len(ok), np.nan)  # noqa: E731
    b, p, tau = num("bias_v"), num("p1"), num("tau_s")
    reg = ok["regime"].astype(str).to_numpy() if "regime" in ok else np.array(["unknown"] * len(ok))
    order = np.argsort(b)
    seen["bias_v"] = [float(x) for x in b[order]]
    seen["p1"] = [float(x) if math.isfinite(x) else None for x in p[order]]
    seen["regime"] = [str(x) for x in reg[order]]
    if "vdd_v" in ok:
        seen["vdd_v"] = float(pd.to_numeric(ok["vdd_v"], errors="coerce").median())
    # τ = 1/(k_up + k_down) from the transitions: a two-state Markov record of length T at P(1) = p holds
    # N ≈ 2 p (1 − p) T / τ of them, so pooled over the telegraphing records τ ≈ Σ 2 p (1 − p) T / Σ N.
    # The records' own correlation-time estimates (tau_s) are biased low on 3 µs pilot records (pbit tt
    # 85 °C: median 47 ns against 93 ns from the transitions and ~190 ns from the trim's 15 µs check),
    # which made every condition's τ-unit budget and record lengths too small; they are the fallback.
    # The 3 µs pilot records still read τ low by 1.25-2.3x on pbit (start-up chatter at the metastable
    # point and short records: tt/ss 85 °C, ff 27 °C pilots 154/122/149 ns against 193/249/336 ns from
    # the trim search's 15 µs check records), and every condition then stopped on a budget in those τ
    # units before its targets. So the trim table's check record, when it was bistable, is pooled in as
    # one more record: its 15 µs usually outweighs the pilot's few records.
    n_tr, dur = num("regime_n_transitions"), num("duration_s")
    use = (reg == "bistable") & (p > 0.05) & (p < 0.95)
    ok_n = use & np.isfinite(n_tr) & np.isfinite(dur) & (dur > 0)
    num_s = float(np.sum(2 * p[ok_n] * (1 - p[ok_n]) * dur[ok_n])) if ok_n.any() else 0.0
    n_sum = float(np.sum(n_tr[ok_n])) if ok_n.any() else 0.0
    trim_rec = _trim_check_record(trim_row)
    # the check record counts also when the pilot's records hold fewer than 4 transitions (pbit ss 27 °C:
    # τ ≈ 1 µs, one telegraphing 3 µs pilot record with 3 transitions, whose correlation time read 140 ns:
    # records of 5.6 µs, a 260 µs budget, and a fit that diverged)
    if trim_rec is not None and n_sum + trim_rec[2] >= 4:
        tp, tt, tn = trim_rec
        seen["tau_s"] = float((num_s + 2 * tp * (1 - tp) * tt) / (n_sum + tn))
        seen["tau_from"] = (f"{int(n_sum)} transitions in {int(ok_n.sum())} telegraphing pilot record(s) and "
                            f"{tn:.0f} in the trim search's {tt * 1e6:.3g} µs check record")
    elif n_sum >= 4:
        seen["tau_s"] = num_s / n_sum
        seen["tau_from"] = f"{int(n_sum)} transitions in {int(ok_n.sum())} telegraphing pilot record(s)"
    else:
        use = use & np.isfinite(tau) & (tau > 0)
        if use.any():
            seen["tau_s"] = float(np.median(tau[use]))
            seen["tau_from"] = "median correlation time of the telegraphing pilot records"
    return seen


def _trim_check_record(row: dict | None) -> tuple[float, float, float] | None:
    """(P(1), duration in s, transitions) of a stored trim search's check record when it was bistable with
    0.05 < P(1) < 0.95 and switched (trims.json: p1, check_duration_s, flips_per_us = transitions per µs);
    None otherwise."""
    if not row or row.get("regime") != "bistable":
        return None
    try:
        p, t, f = float(row["p1"]), float(row["check_duration_s"]), float(row["flips_per_us"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (0.05 < p < 0.95 and t > 0 and f > 0):
        return None
    return p, t, f * 1e6 * t


@dataclass
class ConditionsResult:
    """Per condition its pilot and :class:`noisecell.sequential.SequentialResult` (``seqs``), the conditions
    that could not be characterised (``excluded``: dicts for the model's ``excluded_conditions``), the
    held-out-temperature records (``interp_records``: a point table) and every sweep run (name, role,
    SweepResult) for the per-point table."""

    seqs: dict = field(default_factory=dict)
    pilots: dict = field(default_factory=dict)
    seen: dict = field(default_factory=dict)
    excluded: list = field(default_factory=list)
    interp_records: pd.DataFrame | None = None
    sweeps: list = field(default_factory=list)
    wall_s: dict = field(default_factory=dict)
    #: simulator CPU-s of each simulated condition's own jobs (pilot and design rows' cpu_s)
    cpu_s: dict = field(default_factory=dict)
    budget_note: str = ""

    def summary(self) -> str:
        lines = [f"conditions: {len(self.seqs)} characterised by their own design, {len(self.excluded)} not"]
        for (c, t), s in self.seqs.items():
            f = s.design.fit
            lines.append(f"  {c} {t:g} °C: V50 {f.v50.value * 1e3:+.4g} mV ±{f.v50.halfwidth * 1e3:.2g}, scale "
                         f"{f.scale.value * 1e3:.4g} mV ±{100 * f.scale.rel_halfwidth:.2g} %, τ {f.tau_v50.value * 1e9:.4g} ns "
                         f"±{100 * f.tau_v50.rel_halfwidth:.2g} %; {'met' if s.design.met else 'NOT met: ' + s.design.reason}")
        for e in self.excluded:
            lines.append(f"  {e['corner']} {e['temp_c']:g} °C: not characterised: {e['reason']}")
        return "\n".join(lines)

    def apply_to_document(self, doc: dict, dropped=()) -> dict:
        """Each characterised condition's joint fit into the model document (SequentialResult.
        apply_to_document), and the excluded conditions. ``dropped``: ((corner, temp_c, vdd_v), reason)
        pairs of the per-point model fit (fits.fit_model): a characterised condition it left out is
        excluded with that reason in one line."""
        for s in self.seqs.values():
            doc = s.apply_to_document(doc)
        have = {(c["corner"], float(c["temp_c"])) for c in doc["conditions"]}
        ex = [e for e in self.excluded if (e["corner"], float(e["temp_c"])) not in have]
        for (c, t), s in self.seqs.items():
            if (c, float(t)) not in have:
                why = next((str(w) for k, w in dropped if k[0] == c and abs(float(k[1]) - float(t)) < 1e-9),
                           "see the report's warnings")
                ex.append(_excluded(c, t, f"design stopped on {s.design.reason!r}, but the per-point model fit "
                                    f"refused its records: {(why.splitlines() or ['(no reason given)'])[0]}", {**self.seen.get((c, t), {}),
                                                                   "design": s.design.reason}))
        if ex:
            doc = {**doc, "excluded_conditions": list(doc.get("excluded_conditions") or []) + ex}
        return doc


def _excluded(corner, temp_c, reason, seen) -> dict:
    from ...model.fit import finite_tree as _finite_tree

    return {"corner": corner, "temp_c": float(temp_c), "vdd_v": seen.get("vdd_v"), "reason": str(reason),
            "seen": _finite_tree({k: v for k, v in seen.items() if k not in ("vdd_v",)})}


def auto_budget_tau(nominal_seq, settings: ConditionsSettings) -> tuple[float | None, str]:
    """Per-condition budget in τ(V50) from the nominal design's measured cost (module docstring): the
    simulated time it spent in units of its τ, times the largest (half-width reached / target)² of V50,
    scale and τ, times ``budget_margin``; (None, why) without a nominal fit."""
    from ...units import parse_si

    d = getattr(nominal_seq, "design", None)
    f = getattr(d, "fit", None)
    if f is None or not (d.simulated_s > 0) or not f.tau_v50.value > 0:
        return None, "no nominal design fit to measure the cost by"
    t = settings.targets
    tv = parse_si(t.get("v50_halfwidth", "1mV"), unit="V", what="conditions.targets.v50_halfwidth")
    ts, tt = float(t.get("scale_rel_halfwidth", 0.10)), float(t.get("tau_rel_halfwidth", 0.15))
    n_tau = d.simulated_s / f.tau_v50.value
    r = {"V50": (f.v50.halfwidth / tv) ** 2, "scale": (f.scale.rel_halfwidth / ts) ** 2,
         "tau": (f.tau_v50.rel_halfwidth / tt) ** 2}
    worst = max(r, key=r.get)
    need = n_tau * r[worst] * settings.budget_margin
    return float(f"{need:.3g}"), (f"nominal design: {n_tau:.4g} τ simulated for V50 ±{f.v50.halfwidth * 1e3:.2g} mV, "
                                  f"scale ±{100 * f.scale.rel_halfwidth:.2g} %, τ ±{100 * f.tau_v50.rel_halfwidth:.2g} %; "
                                  f"the per-condition targets need ×{r[worst]:.3g} ({worst}) × margin "
                                  f"{settings.budget_margin:g} = {need:.3g} τ")


def stored_trim_row(cellspec, corner: str, temp_c: float) -> dict | None:
    """The cell's stored trim-table row (trims.json) at (corner, temp_c), None when it has none."""
    from ...trim import balance_spec, stored_trims

    try:
        bal = balance_spec(cellspec)
    except InputError:
        return None
    key = bal.trim or cellspec.supplies[cellspec.main_supply].param
    for r in stored_trims(cellspec).get(key, []):
        if r.get("corner") == corner and abs(float(r.get("temp_c", math.nan)) - float(temp_c)) < 1e-9:
            return r
    return None


def _untrimmed(row: dict | None) -> bool:
    """A stored trim search that saw no bistable record at all (not only a slow one)."""
    return (row is not None and not row.get("ok") and not row.get("best_bistable")
            and row.get("regime") != "bistable")


def run_conditions(spec, cellspec, out: Path, settings: ConditionsSettings, *, workers=None, retry_failed=False,
                   pool=None, rate_regimes=("bistable",), nominal_seq=None, nominal_pilot=None,
                   pilot_fn: Callable | None = None, sequential_fn: Callable | None = None,
                   record_fn: Callable | None = None, points_fn: Callable | None = None) -> ConditionsResult:
    """Pilot + sequential design for every condition of ``settings`` (``settings.parallel`` at a time on
    the shared pool), then the held-out-temperature records. ``pilot_fn``: :func:`.pilot.run_pilot`
    (passed in by the caller: pilot.py imports the spec module, which parses this procedure's table);
    ``nominal_pilot``: the nominal pilot (its window starts each condition's pilot);
    ``sequential_fn``/``record_fn``/``points_fn`` default to the simulator-backed
    :func:`noisecell.sequential.run_sequential`, one sweep per held-out temperature and the pilot
    records read back from the store; tests pass synthetic ones."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ...design_runner import points_from_sweep, sweeps_cpu_seconds
    from ...sequential import run_sequential

    if pilot_fn is None:
        raise TypeError("run_conditions needs pilot_fn (noisecell.report.procedures.pilot.run_pilot)")
    sequential_fn = sequential_fn or run_sequential
    record_fn = record_fn or _SimRecords(spec, cellspec, out, workers, retry_failed, pool)
    points_fn = points_fn or (lambda name, r: points_from_sweep(out / "sweep" / name, r, name))
    res = ConditionsResult()
    shared = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    budget_tau, budget_note = (auto_budget_tau(nominal_seq, settings) if settings.budget_auto else (None, ""))
    if settings.budget_auto:
        log(f"conditions: budget per condition {budget_tau if budget_tau else settings.budget_tau:g} τ(V50) "
            f"({budget_note or 'the spec fallback'})")
    res.budget_note = budget_note
    start = None
    win = getattr(nominal_pilot, "window", None)
    if settings.pilot_start == "nominal" and win is not None:
        half = 0.5 * (win[1] - win[0]) * settings.pilot_widen
        start = (win[2] - half, win[2] + half)

    def one(i: int, corner: str, temp_c: float) -> dict:
        tag = condition_tag(corner, temp_c)
        t0 = time.monotonic()
        r: dict = {"sweeps": []}
        row = stored_trim_row(cellspec, corner, temp_c)
        if settings.skip_untrimmed and _untrimmed(row):
            seen = {"pilot": "not run", "tau_s": None, "vdd_v": row.get("vdd_v"),
                    "trim_table": {k: row.get(k) for k in ("message", "regime", "p1", "flips_per_us", "vdd_v", "value_v",
                                                          "dc_gain", "checks", "check_duration_s")}}
            r["excluded"] = _excluded(corner, temp_c, "no trim makes it telegraph: the stored trim search (trims.json) "
                                      f"saw no bistable record here ({row.get('message')}); not simulated "
                                      "(conditions.skip_untrimmed)", seen)
            log(f"  {corner} {temp_c:g} °C not characterised: stored trim search: {row.get('message')}")
            return r
        log(f"condition {i + 1}/{len(settings.conditions)}: {corner} {temp_c:g} °C: pilot"
            + (f" from {start[0] * 1e3:+.3g} .. {start[1] * 1e3:+.3g} mV" if start else ""))
        kw = {"start_window": start} if start is not None else {}
        pilot = pilot_fn(spec, cellspec, out, workers, retry_failed, pool=pool, corner=corner, temp_c=temp_c,
                         prefix=f"pilot-{tag}", seed_offset=100 * (i + 1), **kw)
        if start is not None and pilot.window is None and "does not cross" in pilot.note:
            # the crossing is outside the nominal's neighbourhood: the whole bias range after all
            log(f"  {corner} {temp_c:g} °C: {pilot.note}; pilot again over the whole bias range")
            first = pilot
            pilot = pilot_fn(spec, cellspec, out, workers, retry_failed, pool=pool, corner=corner, temp_c=temp_c,
                             prefix=f"pilot-{tag}-range", seed_offset=100 * (i + 1) + 50)
            r["sweeps"] += [(n, "pilot", pr) for n, pr in zip(first.stage_names, first.sweeps)]
        r["pilot"] = pilot
        r["sweeps"] += [(n, "pilot", pr) for n, pr in zip(pilot.stage_names, pilot.sweeps)]
        seen = pilot_seen(pilot, row)
        if row is not None:
            seen["trim_table"] = {k: row.get(k) for k in ("ok", "message", "vdd_v", "value_v")}
        r["seen"] = seen
        if pilot.window is None:
            r["excluded"] = _excluded(corner, temp_c, f"pilot: no P(1) = 0.5 crossing ({pilot.note})", seen)
            log(f"  {corner} {temp_c:g} °C not characterised: {pilot.note}")
            return r
        tau = seen.get("tau_s")
        if tau is None:
            r["excluded"] = _excluded(corner, temp_c, "pilot: no telegraphing (bistable) record with "
                                      "0.05 < P(1) < 0.95 to measure τ from", seen)
            log(f"  {corner} {temp_c:g} °C not characterised: no telegraphing pilot record")
            return r
        table = settings.design_table(tau, i, budget_tau)
        log(f"  {corner} {temp_c:g} °C: τ(pilot) {tau * 1e9:.4g} ns -> records {', '.join(f'{c * 1e6:.3g}' for c in table['chunks'])} µs, "
            f"budget {table['budget_simulated'] * 1e6:.4g} µs")
        ok = [x.dataframe[x.dataframe["status"] == "ok"] for x in pilot.sweeps if len(x.dataframe)]
        pil = pd.concat(ok) if ok else pd.DataFrame({"bias_v": [], "p1": []})
        # the pilot's records are records at this condition: they enter its design's fit (as at the nominal one)
        initial = []
        for n, pr in zip(pilot.stage_names, pilot.sweeps):
            initial += points_fn(n, pr)
        try:
            seq = sequential_fn(table, cell=spec.cell, out=out / "sweep" / f"cond-{tag}", shared=shared, corner=corner,
                                temp_c=float(temp_c), bias_limits=tuple(cellspec.bias.range_v),
                                pilot_bias_v=pil["bias_v"].to_numpy(float),
                                pilot_p1=pd.to_numeric(pil["p1"], errors="coerce").to_numpy(float),
                                source=f"{spec.source} [conditions] {corner} {temp_c:g} °C", workers=workers,
                                retry_failed=retry_failed, pool=pool, rate_regimes=tuple(rate_regimes),
                                initial=initial, log=log)
        except NoisecellError as exc:
            # one condition's failure (its simulations, its records) must not cost the others
            r["excluded"] = _excluded(corner, temp_c, f"design failed: {exc}", seen)
            log(f"  {corner} {temp_c:g} °C not characterised: design failed: {exc}")
            return r
        r["wall_s"] = time.monotonic() - t0
        design_sweeps = [(f"cond-{tag}/{n}", x) for n, x in getattr(seq, "sweeps", ())]
        if seq.design.fit is None:
            seen = {**seen, "design": seq.design.reason, "design_records": len(seq.design.points)}
            r["excluded"] = _excluded(corner, temp_c, f"design: no rate fit ({seq.design.reason})", seen)
            r["sweeps"] += _roles(design_sweeps, EXCLUDED_ROLE)
            return r
        if seq.design.reason.startswith(("fit diverged", "simulations failed")):
            # the design stopped on a fit it could not plan on (noisecell.design.fit_diverged: e.g. records
            # too short for their bias dependence to show, scale → ∞), or because its simulations keep
            # failing (ngspice stalls to the timeout: noisecell.design.FAILED_STOP_MIN): its numbers are no datasheet
            f = seq.design.fit
            seen = {**seen, "design": seq.design.reason, "design_records": len(seq.design.points),
                    "design_simulated_s": seq.design.simulated_s,
                    "design_fit": {"v50_v": f.v50.value, "scale_v": f.scale.value, "tau_v50_s": f.tau_v50.value}}
            r["excluded"] = _excluded(corner, temp_c, f"design stopped: {seq.design.reason}", seen)
            log(f"  {corner} {temp_c:g} °C not characterised: design stopped: {seq.design.reason}")
            r["sweeps"] += _roles(design_sweeps, EXCLUDED_ROLE)
            return r
        # characterised: its design records are fit records, and so are its pilot's, which entered the
        # design's fit (``initial``) as the nominal pilot's do at the nominal condition
        pilot_names = set(pilot.stage_names)
        r["sweeps"] = [(n, "fit" if role == "pilot" and n in pilot_names else role, x) for n, role, x in r["sweeps"]]
        r["sweeps"] += _roles(design_sweeps, "fit")
        r["seq"] = seq
        log(f"  {corner} {temp_c:g} °C: " + seq.design.summary().splitlines()[0])
        return r

    with ThreadPoolExecutor(max_workers=max(1, settings.parallel), thread_name_prefix="noisecell-cond") as ex:
        futs = [ex.submit(one, i, c, t) for i, (c, t) in enumerate(settings.conditions)]
        outs = [f.result() for f in futs]
    # merged in the spec's condition order, whatever order they finished in
    for (corner, temp_c), r in zip(settings.conditions, outs):
        key = (corner, temp_c)
        if "pilot" in r:
            res.pilots[key] = r["pilot"]
        if "seen" in r:
            res.seen[key] = r["seen"]
        res.sweeps += r["sweeps"]
        if "wall_s" in r:
            res.wall_s[key] = r["wall_s"]
        if r["sweeps"]:
            # its own jobs' simulator CPU (pilot and design), whatever else ran on the pool meanwhile
            res.cpu_s[key] = sweeps_cpu_seconds([(n, x) for n, _, x in r["sweeps"]])
        if "excluded" in r:
            res.excluded.append(r["excluded"])
        if "seq" in r:
            res.seqs[key] = r["seq"]
    if settings.heldout_temperatures:
        res.interp_records = _heldout_temperature_records(settings, cellspec, nominal_seq, res, record_fn)
        res.sweeps += list(getattr(record_fn, "sweeps", []))
    return res


def finish_document(doc: dict, conds: ConditionsResult | None, nominal_corner: str) -> dict:
    """Model-document additions once every condition is in: ``temperature_interpolation = along_trim``
    when the nominal corner's conditions run at different (trimmed) supplies, and the interpolation
    checks against the held-out-temperature records (a failed one makes the model refuse that interval)."""
    from ...model import CellModel
    from ...model.energy import energy_at_v50

    # the joint fits moved V50 and τ(V50): energy per bit restated as P·τ(V50) of the final fit, the one
    # value the datasheet, the conditions table and the PVT panel print
    doc = {**doc, "conditions": [{**c, "energy": energy_at_v50(c)} for c in doc["conditions"]]}
    vdds = {round(float(c["vdd_v"]), 12) for c in doc["conditions"] if c["corner"] == nominal_corner}
    if len(vdds) > 1:
        doc = {**doc, "temperature_interpolation": "along_trim"}
    if conds is not None and conds.interp_records is not None:
        checks = interpolation_checks(CellModel(doc, source="<model being built>"), conds.interp_records)
        if checks:
            doc = {**doc, "interpolation_checks": checks}
    return doc


def _fit_params(seq) -> tuple[float, float, float]:
    f = seq.design.fit
    return float(f.v50.value), float(f.scale.value), float(f.tau_v50.value)


def _heldout_temperature_records(settings, cellspec, nominal_seq, res: ConditionsResult, record_fn) -> pd.DataFrame:
    """Records at the held-out temperatures (nominal corner) at the biases where the temperature
    interpolation of the neighbouring fits puts P(1) at ``heldout_p1``."""
    corner = cellspec.nominal_corner
    fits = {t: s for (c, t), s in res.seqs.items() if c == corner}
    if nominal_seq is not None and nominal_seq.design.fit is not None:
        fits[float(cellspec.nominal_temp_c)] = nominal_seq
    temps = sorted(fits)
    frames = []
    for j, th in enumerate(settings.heldout_temperatures):
        lo = [t for t in temps if t < th]
        hi = [t for t in temps if t > th]
        if not lo or not hi:
            log(f"held-out temperature {th:g} °C: no calibrated temperatures on both sides at {corner}; not checked")
            continue
        a, b = max(lo), min(hi)
        w = (th - a) / (b - a)
        (va, sa, ta), (vb, sb, tb) = _fit_params(fits[a]), _fit_params(fits[b])
        v50, scale = (1 - w) * va + w * vb, (1 - w) * sa + w * sb
        tau = math.exp((1 - w) * math.log(ta) + w * math.log(tb))
        biases = [float(f"{v50 + scale * math.log(q / (1 - q)):.9g}") for q in settings.heldout_p1]
        z = float(stats.norm.ppf(0.975))
        n_eff = max((z * math.sqrt(q * (1 - q)) / settings.heldout_p1_halfwidth) ** 2 for q in settings.heldout_p1)
        dur = float(f"{min(settings.heldout_max_tau, 2.5 * n_eff) * tau:.3g}")
        log(f"held-out temperature {th:g} °C ({corner}, between {a:g} and {b:g} °C): {len(biases)} records of "
            f"{dur * 1e6:.4g} µs at " + ", ".join(f"{x * 1e3:+.4g} mV" for x in biases))
        try:
            df = record_fn(corner, float(th), biases, dur, int(settings.seed + 7001 + j))
        except NoisecellError as exc:
            log(f"held-out temperature {th:g} °C: records failed ({exc}); interpolation not checked there")
            continue
        if df is None or not len(df):
            continue
        df = df.copy()
        df["between_lo_c"], df["between_hi_c"] = a, b
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else None


class _SimRecords:
    """record_fn on the simulator: one sweep per held-out temperature under OUT/sweep/interp-<tag>/."""

    def __init__(self, spec, cellspec, out, workers, retry_failed, pool):
        self.spec, self.cellspec, self.out = spec, cellspec, out
        self.workers, self.retry_failed, self.pool = workers, retry_failed, pool
        self.sweeps: list = []

    def __call__(self, corner, temp_c, biases, duration_s, seed) -> pd.DataFrame:
        from ...sweep import run_sweep
        from ...sweep.spec import parse_spec
        from .points import normalise_rows

        sweep = {k: v for k, v in self.spec.shared.items() if k not in ("adaptive", "grid", "duration", "seed")}
        sweep.update(cell=self.spec.cell, duration=duration_s, seed=seed,
                     grid={"bias": sorted(biases), "temperature": [temp_c], "corner": [corner]})
        # records of ~300 τ (tens of µs at a cold condition): the design records' per-µs timeout
        from ...design_runner import record_timeout
        sweep["timeout"] = record_timeout(sweep.get("timeout"), duration_s, f"held-out temperature {temp_c:g} °C")
        name = f"interp-{condition_tag(corner, temp_c)}"
        sw = parse_spec(sweep, source=f"held-out temperature {temp_c:g} °C")
        # characterize-owned folder: a resumed run whose fits moved the held-out biases re-plans it
        # (update_spec) instead of refusing it as "a sweep of a different spec" (stored records are reused)
        r = run_sweep(sw, self.out / "sweep" / name, workers=self.workers, progress=False,
                      retry_failed=self.retry_failed, update_spec=True,
                      **({"pool": self.pool} if self.pool is not None else {}))
        self.sweeps.append((name, "heldout", r))
        return normalise_rows(r.dataframe, name, "heldout")


def interpolation_checks(model, records: pd.DataFrame | None, *, alpha: float = 0.01) -> list[dict]:
    """Compare the model's temperature interpolation with the held-out-temperature records.

    Per record: z of P(1) (record CI and model CI combined as independent normal errors) and of ln τ
    (same, on the log scale). Per temperature the check passes when every record telegraphs and the
    sum of z² is inside the chi-square (2·records dof) ``1 − alpha`` quantile; otherwise it fails and
    the model refuses to interpolate in that interval (``interpolation_checks`` in model.json).
    """
    from ...model import OutOfRangeError

    if records is None or not len(records):
        return []
    out = []
    for (th, a, b), g in records.groupby(["temp_c", "between_lo_c", "between_hi_c"]):
        recs, zs, problems = [], [], []
        cond = {"corner": str(g["corner"].iloc[0]), "temp_c": float(th)}
        vdd = None
        for _, r in g.iterrows():
            rec = {"bias_v": float(r["bias_v"]), "regime": str(r.get("regime")), "p1": _f(r.get("p1")),
                   "p1_ci95": [_f(r.get("p1_ci95_lo")), _f(r.get("p1_ci95_hi"))], "tau_s": _f(r.get("tau_s")),
                   "tau_ci95_s": [_f(r.get("tau_s_ci95_lo")), _f(r.get("tau_s_ci95_hi"))], "vdd_v": _f(r.get("vdd_v"))}
            vdd = rec["vdd_v"]
            try:
                pm, (plo, phi) = model.p1(rec["bias_v"], cond), model.p1_ci95(rec["bias_v"], cond)
                tm, (tlo, thi) = model.tau(rec["bias_v"], cond), model.tau_ci95(rec["bias_v"], cond)
            except OutOfRangeError as exc:
                problems.append(f"model cannot predict at {rec['bias_v'] * 1e3:+.4g} mV: {exc}")
                recs.append(rec)
                continue
            rec.update(p1_model=pm, p1_model_ci95=[plo, phi], tau_model_s=tm, tau_model_ci95_s=[tlo, thi])
            if rec["regime"] != "bistable" or rec["p1"] is None or rec["tau_s"] is None or None in rec["p1_ci95"] \
                    or None in rec["tau_ci95_s"]:
                problems.append(f"record at {rec['bias_v'] * 1e3:+.4g} mV does not telegraph ({rec['regime']})")
                recs.append(rec)
                continue
            se_p = math.hypot((rec["p1_ci95"][1] - rec["p1_ci95"][0]) / (2 * Z95), (phi - plo) / (2 * Z95))
            se_t = math.hypot(math.log(rec["tau_ci95_s"][1] / rec["tau_ci95_s"][0]) / (2 * Z95),
                              math.log(thi / tlo) / (2 * Z95))
            rec["z_p1"] = (rec["p1"] - pm) / se_p if se_p > 0 else None
            rec["z_ln_tau"] = math.log(rec["tau_s"] / tm) / se_t if se_t > 0 else None
            zs += [x for x in (rec["z_p1"], rec["z_ln_tau"]) if x is not None]
            recs.append(rec)
        chi2 = float(np.sum(np.square(zs))) if zs else float("nan")
        crit = float(stats.chi2.ppf(1 - alpha, len(zs))) if zs else float("nan")
        passed = not problems and bool(zs) and chi2 <= crit
        note = (f"sum z² = {chi2:.3g} on {len(zs)} dof (limit {crit:.3g} at α = {alpha:g}); "
                + "; ".join(f"{x['bias_v'] * 1e3:+.4g} mV: z(P1) {_fmt(x.get('z_p1'))}, z(ln τ) {_fmt(x.get('z_ln_tau'))}"
                            for x in recs)) if zs else ""
        if problems:
            note = "; ".join(problems) + ("; " + note if note else "")
        from ...model.fit import finite_tree as _finite_tree

        out.append(_finite_tree({"corner": cond["corner"], "vdd_v": vdd if vdd else model.nominal.vdd_v,
                                 "temp_c": float(th), "between_c": [float(a), float(b)], "passed": bool(passed),
                                 "note": note, "records": recs}))
    return out


def _f(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(x) -> str:
    return "–" if x is None else f"{x:+.2f}"


def conditions_table(model, excluded: list, seqs: dict, nominal_seq=None, checks: list | None = None) -> pd.DataFrame:
    """The per-condition datasheet: one row per corner × temperature (characterised or not), plain SI
    floats: V50, scale, τ(V50), energy per bit with 95 % CIs, precision reached against the targets,
    simulated time, and why a condition is missing."""
    rows = []
    allseq = dict(seqs)
    if nominal_seq is not None:
        allseq[(nominal_seq.condition[0], float(nominal_seq.condition[1]))] = nominal_seq
    if model is not None:
        for c in model.conditions:
            cd = model.condition_data(c)
            sg, tau, en = cd["sigmoid"], cd["tau"], cd.get("energy") or {}
            ci = lambda x: (x or [float("nan"), float("nan")])  # noqa: E731
            s = allseq.get((c.corner, float(c.temp_c)))
            jf = cd.get("joint_fit") or {}
            # energy per bit = P·τ(V50) with its CI, as the model's energy block states it (model.energy)
            e_bit, e_ci = _f(en.get("energy_per_bit_j")), ci(en.get("energy_per_bit_ci95_j"))
            rows.append({"corner": c.corner, "temp_c": c.temp_c, "vdd_v": c.vdd_v, "status": "characterised",
                         "v50_v": sg["v50_v"], "v50_ci_lo_v": ci(sg.get("v50_ci95_v"))[0],
                         "v50_ci_hi_v": ci(sg.get("v50_ci95_v"))[1],
                         "scale_v": sg["scale_v"], "scale_ci_lo_v": ci(sg.get("scale_ci95_v"))[0],
                         "scale_ci_hi_v": ci(sg.get("scale_ci95_v"))[1],
                         "tau_v50_s": tau["tau_at_v50_s"], "tau_ci_lo_s": ci(tau.get("tau_at_v50_ci95_s"))[0],
                         "tau_ci_hi_s": ci(tau.get("tau_at_v50_ci95_s"))[1],
                         "energy_per_bit_j": e_bit, "energy_per_bit_ci_lo_j": e_ci[0],
                         "energy_per_bit_ci_hi_j": e_ci[1],
                         "power_w": _f(en.get("mean_supply_power_w")),
                         "design": "sequential" if s is not None else "fixed points",
                         "targets_met": jf.get("targets_met") if jf else None,
                         "simulated_s": jf.get("simulated_s") if jf else None,
                         "note": (s.design.reason if s is not None else "")})
    for e in excluded:
        seen = e.get("seen") or {}
        p1 = seen.get("p1") or []
        rows.append({"corner": e["corner"], "temp_c": e["temp_c"], "vdd_v": e.get("vdd_v"), "status": "NOT characterised",
                     "note": e["reason"] + (f"; pilot P(1) {', '.join('–' if p is None else f'{p:.2f}' for p in p1)}"
                                            f" ({', '.join(sorted(set(seen.get('regime') or [])))})" if p1 else "")})
    for chk in checks or []:
        rows.append({"corner": chk["corner"], "temp_c": chk["temp_c"], "vdd_v": chk.get("vdd_v"),
                     "status": "interpolation " + ("passed" if chk["passed"] else "FAILED"),
                     "design": f"held-out between {chk['between_c'][0]:g} and {chk['between_c'][1]:g} °C",
                     "note": chk.get("note", "")})
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values(["corner", "temp_c"], kind="stable").reset_index(drop=True)
    return df
