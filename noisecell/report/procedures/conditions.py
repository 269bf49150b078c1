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
    budget_tau = 3000                    # simulated-time budget per condition, in τ(V50) [3000]
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

CONDITION_KEYS = ("enabled", "corners", "temperatures", "heldout_temperatures", "targets", "chunks_tau", "budget_tau",
                  "budget_wall", "jobs_per_round", "max_rounds", "seed", "heldout_p1", "heldout_p1_halfwidth",
                  "heldout_max_tau")


@dataclass(frozen=True)
class ConditionsSettings:
    conditions: tuple[tuple[str, float], ...]     # (corner, temp_c), the nominal one left out
    heldout_temperatures: tuple[float, ...] = ()
    targets: dict = field(default_factory=lambda: {"v50_halfwidth": "1mV", "scale_rel_halfwidth": 0.10,
                                                   "tau_rel_halfwidth": 0.15})
    chunks_tau: tuple[float, ...] = (40.0, 80.0, 160.0)
    budget_tau: float = 3000.0
    budget_wall: object = None
    jobs_per_round: int = 2
    max_rounds: int = 12
    seed: int = 21
    heldout_p1: tuple[float, ...] = (0.3, 0.7)
    heldout_p1_halfwidth: float = 0.05
    heldout_max_tau: float = 1500.0

    def design_table(self, tau_s: float, index: int) -> dict:
        """The ``[design]`` table (noisecell.sequential) of one condition with τ(V50) = ``tau_s``."""
        t = {"seed": int(self.seed + 101 * index), "jobs_per_round": int(self.jobs_per_round),
             "chunks": [float(f"{c * tau_s:.3g}") for c in self.chunks_tau],
             "budget_simulated": float(f"{self.budget_tau * tau_s:.4g}"), "max_rounds": int(self.max_rounds),
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

    hp = pos_list("heldout_p1", [0.3, 0.7])
    if any(not 0 < p < 1 for p in hp):
        raise InputError(f"{source}: conditions.heldout_p1 values must lie strictly between 0 and 1")
    seed = table.get("seed", 21)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{source}: conditions.seed must be an integer")
    st = ConditionsSettings(conditions=conds, heldout_temperatures=held,
                            targets=dict(table.get("targets", ConditionsSettings.__dataclass_fields__["targets"].default_factory())),
                            chunks_tau=tuple(sorted(pos_list("chunks_tau", [40, 80, 160]))),
                            budget_tau=pos("budget_tau", 3000), budget_wall=table.get("budget_wall"),
                            jobs_per_round=pos_int("jobs_per_round", 2), max_rounds=pos_int("max_rounds", 12),
                            seed=seed, heldout_p1=hp, heldout_p1_halfwidth=pos("heldout_p1_halfwidth", 0.05),
                            heldout_max_tau=pos("heldout_max_tau", 1500))
    # the design table every condition will get: typos in targets/budget_wall fail now, not after hours
    from ...sequential import parse_design

    parse_design(st.design_table(1e-6, 0), f"{source} [conditions]")
    return st


def condition_tag(corner: str, temp_c: float) -> str:
    """Folder-safe name of a condition: ``ss-40C``, ``tt27C``, ``ff85C``, ``tt0p5C``."""
    return f"{corner}{float(temp_c):g}C".replace(".", "p")


def pilot_seen(pilot) -> dict:
    """What a pilot saw, for the report and ``excluded_conditions``: per bias P(1) and regime, and τ(V50)
    estimated from its telegraphing records (median τ of the bistable records with 0.05 < P(1) < 0.95),
    or None when none telegraphs."""
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
    use = (reg == "bistable") & np.isfinite(tau) & (tau > 0) & (p > 0.05) & (p < 0.95)
    if use.any():
        seen["tau_s"] = float(np.median(tau[use]))
    return seen


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

    def apply_to_document(self, doc: dict) -> dict:
        """Each characterised condition's joint fit into the model document (SequentialResult.
        apply_to_document), and the excluded conditions."""
        for s in self.seqs.values():
            doc = s.apply_to_document(doc)
        have = {(c["corner"], float(c["temp_c"])) for c in doc["conditions"]}
        ex = [e for e in self.excluded if (e["corner"], float(e["temp_c"])) not in have]
        for (c, t), s in self.seqs.items():
            if (c, float(t)) not in have:
                ex.append(_excluded(c, t, "its design records could not be fitted by the per-point model fit "
                                    "(see the report's warnings)", {**self.seen.get((c, t), {}),
                                                                   "design": s.design.reason}))
        if ex:
            doc = {**doc, "excluded_conditions": list(doc.get("excluded_conditions") or []) + ex}
        return doc


def _excluded(corner, temp_c, reason, seen) -> dict:
    from ...sequential import _finite_tree

    return {"corner": corner, "temp_c": float(temp_c), "vdd_v": seen.get("vdd_v"), "reason": str(reason),
            "seen": _finite_tree({k: v for k, v in seen.items() if k not in ("vdd_v",)})}


def run_conditions(spec, cellspec, out: Path, settings: ConditionsSettings, *, workers=None, retry_failed=False,
                   pool=None, rate_regimes=("bistable",), nominal_seq=None,
                   pilot_fn: Callable | None = None, sequential_fn: Callable | None = None,
                   record_fn: Callable | None = None) -> ConditionsResult:
    """Pilot + sequential design for every condition of ``settings``, then the held-out-temperature
    records. ``pilot_fn``: :func:`.pilot.run_pilot` (passed in by the caller: pilot.py imports the spec
    module, which parses this procedure's table); ``sequential_fn``/``record_fn`` default to the
    simulator-backed :func:`noisecell.sequential.run_sequential` and one sweep per held-out temperature;
    tests pass synthetic ones."""
    import time

    from ...sequential import run_sequential

    if pilot_fn is None:
        raise TypeError("run_conditions needs pilot_fn (noisecell.report.procedures.pilot.run_pilot)")
    sequential_fn = sequential_fn or run_sequential
    record_fn = record_fn or _SimRecords(spec, cellspec, out, workers, retry_failed, pool)
    res = ConditionsResult()
    shared = {k: v for k, v in spec.shared.items() if k != "adaptive"}
    for i, (corner, temp_c) in enumerate(settings.conditions):
        tag = condition_tag(corner, temp_c)
        t0 = time.monotonic()
        log(f"condition {i + 1}/{len(settings.conditions)}: {corner} {temp_c:g} °C: pilot")
        pilot = pilot_fn(spec, cellspec, out, workers, retry_failed, pool=pool, corner=corner, temp_c=temp_c,
                         prefix=f"pilot-{tag}", seed_offset=100 * (i + 1))
        res.pilots[(corner, temp_c)] = pilot
        for name, pr in zip(pilot.stage_names, pilot.sweeps):
            res.sweeps.append((name, "pilot", pr))
        seen = pilot_seen(pilot)
        res.seen[(corner, temp_c)] = seen
        if pilot.window is None:
            res.excluded.append(_excluded(corner, temp_c, f"pilot: no P(1) = 0.5 crossing ({pilot.note})", seen))
            log(f"  {corner} {temp_c:g} °C not characterised: {pilot.note}")
            continue
        tau = seen.get("tau_s")
        if tau is None:
            res.excluded.append(_excluded(corner, temp_c, "pilot: no telegraphing (bistable) record with "
                                          "0.05 < P(1) < 0.95 to measure τ from", seen))
            log(f"  {corner} {temp_c:g} °C not characterised: no telegraphing pilot record")
            continue
        table = settings.design_table(tau, i)
        log(f"  {corner} {temp_c:g} °C: τ(pilot) {tau * 1e9:.4g} ns -> records {', '.join(f'{c * 1e6:.3g}' for c in table['chunks'])} µs, "
            f"budget {table['budget_simulated'] * 1e6:.4g} µs")
        ok = [r.dataframe[r.dataframe["status"] == "ok"] for r in pilot.sweeps if len(r.dataframe)]
        pil = pd.concat(ok) if ok else pd.DataFrame({"bias_v": [], "p1": []})
        try:
            seq = sequential_fn(table, cell=spec.cell, out=out / "sweep" / f"cond-{tag}", shared=shared, corner=corner,
                                temp_c=float(temp_c), bias_limits=tuple(cellspec.bias.range_v),
                                pilot_bias_v=pil["bias_v"].to_numpy(float),
                                pilot_p1=pd.to_numeric(pil["p1"], errors="coerce").to_numpy(float),
                                source=f"{spec.source} [conditions] {corner} {temp_c:g} °C", workers=workers,
                                retry_failed=retry_failed, pool=pool, rate_regimes=tuple(rate_regimes), log=log)
        except NoisecellError as exc:
            # one condition's failure (its simulations, its records) must not cost the others
            res.excluded.append(_excluded(corner, temp_c, f"design failed: {exc}", seen))
            log(f"  {corner} {temp_c:g} °C not characterised: design failed: {exc}")
            continue
        res.sweeps += [(f"cond-{tag}/{n}", "fit", r) for n, r in getattr(seq, "sweeps", ())]
        res.wall_s[(corner, temp_c)] = time.monotonic() - t0
        if seq.design.fit is None:
            seen = {**seen, "design": seq.design.reason, "design_records": len(seq.design.points)}
            res.excluded.append(_excluded(corner, temp_c, f"design: no rate fit ({seq.design.reason})", seen))
            continue
        res.seqs[(corner, temp_c)] = seq
        log("  " + seq.design.summary().splitlines()[0])
    if settings.heldout_temperatures:
        res.interp_records = _heldout_temperature_records(settings, cellspec, nominal_seq, res, record_fn)
        res.sweeps += list(getattr(record_fn, "sweeps", []))
    return res


def finish_document(doc: dict, conds: ConditionsResult | None, nominal_corner: str) -> dict:
    """Model-document additions once every condition is in: ``temperature_interpolation = along_trim``
    when the nominal corner's conditions run at different (trimmed) supplies, and the interpolation
    checks against the held-out-temperature records (a failed one makes the model refuse that interval)."""
    from ...model import CellModel

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
        name = f"interp-{condition_tag(corner, temp_c)}"
        sw = parse_spec(sweep, source=f"held-out temperature {temp_c:g} °C")
        r = run_sweep(sw, self.out / "sweep" / name, workers=self.workers, progress=False,
                      retry_failed=self.retry_failed, **({"pool": self.pool} if self.pool is not None else {}))
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
        from ...sequential import _finite_tree

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
            rows.append({"corner": c.corner, "temp_c": c.temp_c, "vdd_v": c.vdd_v, "status": "characterised",
                         "v50_v": sg["v50_v"], "v50_ci_lo_v": ci(sg.get("v50_ci95_v"))[0],
                         "v50_ci_hi_v": ci(sg.get("v50_ci95_v"))[1],
                         "scale_v": sg["scale_v"], "scale_ci_lo_v": ci(sg.get("scale_ci95_v"))[0],
                         "scale_ci_hi_v": ci(sg.get("scale_ci95_v"))[1],
                         "tau_v50_s": tau["tau_at_v50_s"], "tau_ci_lo_s": ci(tau.get("tau_at_v50_ci95_s"))[0],
                         "tau_ci_hi_s": ci(tau.get("tau_at_v50_ci95_s"))[1],
                         "energy_per_bit_j": _f(en.get("energy_per_bit_j")),
                         "energy_per_bit_ci_lo_j": ci(en.get("energy_per_bit_ci95_j"))[0],
                         "energy_per_bit_ci_hi_j": ci(en.get("energy_per_bit_ci95_j"))[1],
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
