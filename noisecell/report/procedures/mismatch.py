"""Procedure 1d (issue 18): Monte Carlo mismatch instances, each trimmed and characterised on its own.

Spec table ``[mismatch]`` (all keys optional; defaults in brackets)::

    [mismatch]
    instances = 40            # Monte Carlo instances drawn (PDK mismatch models) [40]
    seed = 2                  # instance k is the mismatch draw of seed derive(seed, k) [2]
    p1 = [0.2, 0.4, 0.6, 0.8] # records where the nominal sigmoid, moved to the instance's offset, has these P(1)
                              # (the instance's rate fit needs 3 accepted records: one may be lost)
    duration_tau = 30         # record length in units of the nominal τ(V50) [30]
    rounds = 2                # extra rounds for an instance whose records did not telegraph [2]
    dc_workers = 2            # DC trims run in parallel (ngspice batch processes) [2]

Why each instance gets its own trim: a minimum-size pbit instance with the PDK's mismatch is not only
asymmetric (its bias offset, ~0.3 V rms of VB, ~100 sigmoid scales) but unbalanced as a whole (its two
switching points at 0.60-0.65 of VDD at the nominal load-gate trim, so its loop gain falls to 0.93-1.01
from the design's 1.083): at the nominal trim it is single-peaked at every bias (measured: 44 of 66
records of the previous run). :func:`noisecell.trim.instance_trim` solves, per instance and in DC only
(a few seconds), for the load gate, supply and bias at which both halves switch at mid-rail, at the
same input, with the design gain; the instance's records then sit around that bias at that trim.

A readout chain (``[balance] offset = "readout"``, pbit_x5: no latch, the bit is a stage's output against
a threshold) is DC-trimmed per instance too (noisecell.trim.instance_trim, readout kind; 7-11 ngspice
processes, ~0.4-0.7 CPU-s per pbit_x5 instance, measured): the balance trim so that its noise node
(``[balance] noise_node``, pbit_x5's x) sits at mid-rail when the readout is at its threshold, the
supply so that the chain gain from it to the readout equals the nominal cell's, the bias where its
noise-free readout crosses the threshold. Why the chain and not the balance stage the trim table uses:
with only the last stage balanced at the nominal stage gain, pbit_x5's instances had chain gains of
18-61 against the nominal's 50.5 and x at 0.17-0.95 of VDD; with 2.4 µs records 6 of 44 fitted, with
16 µs records those with x at 0.6-0.95 of VDD gave 0-2 bistable records of 4, those at 0.3-0.5 3-4. Its records' failures mean other things than
a latch's: there is no barrier to lower, so a frozen record or a single level around the threshold gets
more supply (+5 %, ``noisecell.trim.CHAIN_GAIN_STEP``, as trim_cell does for such cells) and its records
move with the DC offset at the new supply (a chain's offset moves with it); one-sided records are
re-centred.

An instance is done when the model's own per-instance rate fit (``fit_rates``: 3 accepted records)
takes its records; otherwise it gets up to ``rounds`` more rounds: a frozen / stuck record → supply
−1.5 % (``noisecell.trim.VDD_STEP``: too much barrier); records on one side of P(1) = ½ (mean P(1)
outside 0.25-0.75) → re-centred on a logit estimate of its crossing; single-peaked around the
threshold with (almost) no transitions → supply +1.5 % (not enough barrier); every record switching
(bistable, or "single-peaked" with ≥ 4 transitions: a short telegraph the regime detector could not
resolve) but too few transitions for the fit → records twice as long between them at the same trim. Records of earlier settings are shown but not fitted:
an instance's rate fit uses the records of its final (trim, supply) only.

What the model then holds per instance (model schema v2 ``mismatch.instances``): its offset (V50_i −
V50_nominal, V), gain (scale ratio) and τ ratio with CIs from its own rate fit, and the trim it was
characterised at (``trim``); instances that cannot be trimmed inside the cell's ranges (e.g. an offset
beyond the ±0.4 V bias range) or never telegraphed are listed with the reason in
``instances_not_fitted``, and the block says the distribution describes the trimmable instances.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError, NoisecellError
from . import log

MISMATCH_KEYS = ("instances", "seed", "p1", "duration_tau", "rounds", "dc_workers")
#: a record counts as telegraphing for an instance's fit when its regime is bistable (the fit's rule)
_GOOD = "bistable"
#: transitions (through the readout's hysteresis band) that make a record a switching one for the search
MIN_SWITCHES = 4
#: switching records with at least this many transitions (median) get more records of the same length, not
#: twice as long (see run_mismatch)
ENOUGH_TRANSITIONS = 30
#: word mixed into an instance's sweep seed (its mismatch draw follows from it)
_INSTANCE_WORD = 0x4D49


@dataclass(frozen=True)
class MismatchSettings:
    instances: int = 40
    seed: int = 2
    p1: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    duration_tau: float = 30.0
    rounds: int = 2
    dc_workers: int = 2


def parse_mismatch(table, source: str, cell: str | None = None) -> MismatchSettings | None:
    """Validate a ``[mismatch]`` table (one-line errors naming the key); None when instances = 0.

    ``[mismatch.cell.<name>]`` sub-tables override any key for the cell of that name (``cell``: the
    characterised cell's name): a latch and a readout chain need different records (pbit: 4 records of
    40 τ ≈ 11 µs; pbit_x5: 3 of 100 τ ≈ 8 µs, shorter ones are called single-peaked, and each record costs
    ~0.7 CPU-s besides its length). Every override table is validated, whichever cell runs."""
    if not isinstance(table, dict):
        raise InputError(f"{source}: [mismatch] must be a table")
    over = table.get("cell", {})
    if not isinstance(over, dict) or any(not isinstance(v, dict) for v in over.values()):
        raise InputError(f"{source}: mismatch.cell must hold one table per cell name, e.g. [mismatch.cell.pbit]")
    base = {k: v for k, v in table.items() if k != "cell"}
    for name, t in over.items():
        bad = sorted(set(t) - set(MISMATCH_KEYS))
        if bad:
            raise InputError(f"{source}: unknown key(s) in [mismatch.cell.{name}]: {', '.join(bad)}; allowed: "
                             f"{', '.join(MISMATCH_KEYS)}")
        _parse_mismatch({**base, **t}, f"{source} [mismatch.cell.{name}]")
    if cell is not None and cell in over:
        return _parse_mismatch({**base, **over[cell]}, f"{source} [mismatch.cell.{cell}]")
    return _parse_mismatch(base, source)


def _parse_mismatch(table: dict, source: str) -> MismatchSettings | None:
    bad = sorted(set(table) - set(MISMATCH_KEYS))
    if bad:
        raise InputError(f"{source}: unknown key(s) in [mismatch]: {', '.join(bad)}; allowed: {', '.join(MISMATCH_KEYS)}, cell")

    def integer(key, default, lo):
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{source}: mismatch.{key} must be an integer ≥ {lo}, got {v!r}")
        return v

    n = integer("instances", 40, 0)
    if n == 0:
        return None
    if n > 2000:
        raise InputError(f"{source}: mismatch.instances = {n} is more than the 2000 one characterisation runs")
    seed = integer("seed", 2, 0)
    p1 = table.get("p1", [0.2, 0.4, 0.6, 0.8])
    if (not isinstance(p1, list) or len(p1) < 3 or any(isinstance(p, bool) or not isinstance(p, (int, float))
                                                       or not 0.02 <= p <= 0.98 for p in p1)
            or len(set(p1)) != len(p1)):
        raise InputError(f"{source}: mismatch.p1 must be ≥ 3 distinct values in [0.02, 0.98] (an instance's rate fit "
                         f"needs telegraphing records at three biases), got {p1!r}")
    d = table.get("duration_tau", 30)
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 5 <= d <= 1e5:
        raise InputError(f"{source}: mismatch.duration_tau must be a number in [5, 1e5] (record length in nominal τ), got {d!r}")
    return MismatchSettings(n, seed, tuple(sorted(float(p) for p in p1)), float(d), integer("rounds", 2, 0),
                            integer("dc_workers", 2, 1))


def instance_seed(seed: int, k: int) -> int:
    """The sweep seed of instance ``k``: its mismatch draw is ``mismatch_seed(instance_seed, 0)``."""
    from ...sweep.jobs import derive_seed

    return derive_seed(int(seed), _INSTANCE_WORD, int(k))


@dataclass
class InstanceOutcome:
    """One instance: its DC trim, every setting tried (trim V, supply V, biases V, sweep name, what its
    records were), whether its final setting telegraphs (``fitted``) and why not."""

    instance: int
    sweep_seed: int
    mismatch_seed: int
    dc: dict | None = None
    settings: list = field(default_factory=list)
    fitted: bool = False
    reason: str = ""

    @property
    def final(self) -> dict | None:
        return self.settings[-1] if self.settings else None


@dataclass
class MismatchResult:
    """Every instance's outcome, every sweep run (name, role, SweepResult, relabel) for the per-point
    table and the fit, and what the procedure cost (``cost``: DC wall s and CPU s, simulated s, wall s)."""

    settings: MismatchSettings
    outcomes: list
    sweeps: list = field(default_factory=list)
    cost: dict = field(default_factory=dict)
    trim_param: str | None = None
    #: the cell's [balance] offset kind ("inverters": a latch, "readout": a chain)
    kind: str = "inverters"

    @property
    def n_fitted(self) -> int:
        return sum(o.fitted for o in self.outcomes)

    def summary(self) -> str:
        n = len(self.outcomes)
        no_dc = [o for o in self.outcomes if not (o.dc or {}).get("ok")]
        c = self.cost
        lines = [f"mismatch: {n} instances, {n - len(no_dc)} DC-trimmed, {self.n_fitted} telegraph at their trim "
                 f"(their rate fit); DC trims {c.get('dc_wall_s', float('nan')):.0f} s wall "
                 f"({c.get('dc_cpu_s', float('nan')):.0f} CPU-s), records {c.get('simulated_s', 0) * 1e6:.4g} µs simulated "
                 f"in {c.get('records_wall_s', float('nan')):.0f} s wall"]
        for o in self.outcomes:
            if not o.fitted:
                lines.append(f"  instance {o.instance}: not in the distribution: {o.reason}")
        return "\n".join(lines)

    def not_fitted(self) -> list[tuple[int, str]]:
        return [(o.instance, o.reason) for o in self.outcomes if not o.fitted]

    def apply_to_document(self, doc: dict, nominal: tuple) -> dict:
        """Each fitted instance's trim into its row of the nominal condition's mismatch block, the
        instances that could not be trimmed or did not telegraph into ``instances_not_fitted``, and a
        note saying what the distribution describes."""
        by = {o.instance: o for o in self.outcomes}
        conds = []
        for c in doc["conditions"]:
            mm = c.get("mismatch")
            if (c["corner"], float(c["temp_c"])) != (nominal[0], float(nominal[1])) or not mm:
                conds.append(c)
                continue
            rows = []
            for r in mm.get("instances", []):
                o = by.get(int(r["instance"]))
                if o is not None and o.final is not None:
                    f = o.final
                    aux = {k: float(v) for k, v in ((o.dc or {}).get("aux_trim_v") or {}).items()}
                    r = {**r, "trim": {"supply_v": float(f["vdd_v"]),
                                       "trims_v": {**aux, self.trim_param: float(f["trim_v"])} if self.trim_param else aux,
                                       "dc_offset_v": (o.dc or {}).get("bias_v"),
                                       "rounds": len(o.settings)}}
                rows.append(r)
            have = {int(r["instance"]) for r in rows}
            # the fit's own refusals (e.g. an instance whose records telegraph but fail its Markov test) stay
            nf = list(mm.get("instances_not_fitted") or [])
            listed = {int(x["instance"]) for x in nf}
            nf += [{"instance": int(k), "reason": str(why)[:4000]} for k, why in self.not_fitted()
                   if k not in have and k not in listed]
            n_trim = sum(bool((o.dc or {}).get("ok")) for o in self.outcomes)
            # how well the DC offset alone would trim a cell: the spread of V50_i − DC offset_i (the mean
            # is the nominal V50's own shift, common to all)
            res_v = [float(r["v50_v"]) - float(r["trim"]["dc_offset_v"]) for r in rows
                     if isinstance(r.get("trim"), dict) and r["trim"].get("dc_offset_v") is not None]
            resid = ""
            if len(res_v) >= 3:
                sd = float(np.std(res_v, ddof=1))
                resid = (f" A per-cell bias trim at the DC offset leaves V50_i − offset_i with sd {sd * 1e3:.3g} mV over "
                         f"{len(res_v)} instances (estimation noise included; mean {np.mean(res_v) * 1e3:+.3g} mV).")
            how = ("balance trim and supply so that the chain's noise node sits at mid-rail with the nominal chain gain "
                   "(or, without [balance] noise_node, the balance stage at the nominal stage gain), bias where the DC "
                   "readout crosses its threshold" if self.kind == "readout" else
                   "load gate, supply and bias for mid-rail switching of both halves at the design loop gain")
            note = (f"{len(self.outcomes)} Monte Carlo instances drawn; {n_trim} could be trimmed inside the cell's "
                    f"ranges (noisecell.trim.instance_trim: {how}), {len(have)} telegraphed at their trim and are in the "
                    "distribution; each instance's offset is the bias trim it needs, its gain and τ ratio are at its "
                    "own trim. Instances beyond the ranges are not represented: the distribution is truncated there."
                    + resid)
            new = {**mm, "instances": rows, "instances_not_fitted": nf, "n_instances_drawn": len(self.outcomes),
                   "instance_trim": note}
            conds.append({**c, "mismatch": new})
        return {**doc, "conditions": conds}


def _trim_cache(out: Path) -> Path:
    return out / "sweep" / "mismatch-dc-trims.json"


def _dc_trims(cellspec, corner, temp_c, settings: MismatchSettings, out: Path):
    """DC trim of every instance (parallel ngspice batch processes), cached in OUT/sweep (a re-run with
    the same cell, models, condition and seeds reuses them: DC is deterministic)."""
    from ...simulator.session import _ngspice_version
    from ...sweep.jobs import mismatch_seed
    from ...technology import model_identity
    from ...trim import balance_jacobian, balance_spec, instance_trim, trimmed_point
    import hashlib
    import resource

    key = {"cell": cellspec.name, "netlist_sha256": hashlib.sha256(cellspec.template.encode()).hexdigest(),
           "models": model_identity(cellspec.technology), "ngspice": _ngspice_version(), "corner": corner,
           "temp_c": float(temp_c), "seed": settings.seed,
           "method": "instance_trim-readout-v3" if balance_spec(cellspec).offset == "readout" else "instance_trim-v2",
           # the start (and a chain's held aux trim and target gain) is the stored trim: a new trims.json is a new key
           "stored_trim": [trimmed_point(cellspec, corner, temp_c)[0], trimmed_point(cellspec, corner, temp_c)[1]]}
    path = _trim_cache(out)
    cached = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                cached = {int(k): v for k, v in data.get("trims", {}).items()}
        except (OSError, ValueError):
            cached = {}
    todo = [k for k in range(settings.instances) if k not in cached]
    t0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if todo:
        log(f"mismatch: DC trim of {len(todo)} instance(s) ({settings.dc_workers} in parallel)")
        jac = balance_jacobian(cellspec, corner, temp_c)

        def one(k):
            r = instance_trim(cellspec, corner, temp_c, mismatch_seed=mismatch_seed(instance_seed(settings.seed, k), 0),
                              jacobian=jac)
            return k, r.to_dict()

        with ThreadPoolExecutor(max_workers=settings.dc_workers) as ex:
            for k, d in ex.map(one, todo):
                cached[k] = d
        from ...atomic import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"key": key, "trims": {str(k): v for k, v in sorted(cached.items())}},
                                      indent=1, sort_keys=True) + "\n")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cost = {"dc_wall_s": time.monotonic() - t0,
            "dc_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)}
    return cached, cost


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _classify(df: pd.DataFrame) -> dict:
    """What one instance's records at one setting were: biases with telegraphing records, P(1)s, regimes."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    b = ok["bias_v"].to_numpy(float)
    p = pd.to_numeric(ok.get("p1"), errors="coerce").to_numpy(float) if "p1" in ok else np.full(len(ok), np.nan)
    reg = ok["regime"].astype(str).to_numpy() if "regime" in ok else np.array(["unknown"] * len(ok))
    n_tr = (pd.to_numeric(ok["regime_n_transitions"], errors="coerce").fillna(0).to_numpy(float)
            if "regime_n_transitions" in ok else np.zeros(len(ok)))
    good = sorted({round(float(x), 12) for x, r in zip(b, reg) if r == _GOOD})
    return {"bias_v": [float(x) for x in b], "p1": [float(x) if math.isfinite(x) else None for x in p],
            "regime": [str(r) for r in reg], "transitions": [int(x) for x in n_tr], "good_biases": len(good),
            "failed": int(len(df) - len(ok))}


def _more_records(biases: list, n_usable: int, taken=()) -> list:
    """Biases of the next records at the same trim for an instance whose records switch but give no
    rate fit yet: as many as the fit's 3 accepted records still need plus one spare (4 − usable), and
    never fewer than the midpoints between the records there are (what the search added before). With
    that many they are the midpoints; with more, evenly spaced inside the records' bias span. pbit_x5,
    3 records of 100 τ: 72 % of the records are bistable (92 of 128), so most instances lack one.

    None of them is a bias in ``biases`` or ``taken`` (every bias the instance was recorded at): a job's
    noise seed follows from its instance, supply and bias only, so a record at a bias used before would be
    the same job (or, longer, the same noise numbers), pooled twice as if independent. When the plain
    grid hits one, the next finer evenly spaced grid whose interior misses them all is used."""
    b = sorted(float(x) for x in biases)
    used = sorted({float(x) for x in list(b) + [float(t) for t in taken]})
    n = max(len(b) - 1, 4 - int(n_usable))
    lo, hi = b[0], b[-1]
    tol = 1e-6 * max(hi - lo, 1e-6)

    def free(c):
        return all(abs(c - u) > tol for u in used)

    if n == len(b) - 1:
        mids = [float(f"{0.5 * (x + y):.9g}") for x, y in zip(b, b[1:])]
        if all(free(c) for c in mids):
            return mids
    for k in range(n + 1, 8 * (n + 1)):
        cand = [float(f"{lo + (hi - lo) * j / k:.9g}") for j in range(1, k)]
        cand = [c for c in cand if free(c)]
        if len(cand) >= n:
            # n of the free grid points, spread over the span
            pick = np.unique(np.round(np.linspace(0, len(cand) - 1, n)).astype(int))
            if len(pick) == n:
                return [cand[int(q)] for q in pick]
    raise NoisecellError("mismatch: no free bias left inside the records' span")


def _usable(df: pd.DataFrame) -> int:
    """Records the per-instance rate fit can use, roughly: bistable with both rates resolved."""
    if not len(df) or "regime" not in df:
        return 0
    ok = (df.get("status", "ok") == "ok") & (df["regime"].astype(str) == _GOOD)
    if "rates_resolved" in df:
        ok = ok & (df["rates_resolved"] == True)  # noqa: E712 - None/NaN = not resolved
    return int(ok.sum())


def _next_setting(cur: dict, seen: dict, scale_v: float, cellspec, *, faster_with_supply: bool = False
                  ) -> tuple[dict | None, str]:
    """The next (trim, supply, biases) for an instance whose records at ``cur`` did not telegraph at two
    biases, or (None, why) when nothing is left to try. ``faster_with_supply`` (``[balance]``, a chain
    without positive feedback): every failure that re-centring does not explain needs more supply."""
    from ...trim import CHAIN_GAIN_STEP, VDD_STEP

    regs, ps = seen["regime"], [p for p in seen["p1"] if p is not None]
    lo_v, hi_v = cellspec.supplies[cellspec.main_supply].range_v
    blo, bhi = cellspec.bias.range_v
    if not regs:
        return None, "every record failed to simulate"
    nxt = dict(cur)
    one_sided = bool(ps) and not 0.25 <= float(np.mean(ps)) <= 0.75
    if faster_with_supply and not one_sided:
        # a chain has no barrier: a frozen record (too slow) or one level around the threshold (too little
        # gain) both come with more supply (trim_cell's step for such cells); a chain's one-sided records,
        # frozen ones among them, are re-centred below
        v = cur["vdd_v"] * (1 + CHAIN_GAIN_STEP)
        why = (f"{'frozen / stuck' if 'stuck' in regs else 'single-peaked around the threshold'} (a chain: too "
               f"little gain or current): supply +{CHAIN_GAIN_STEP * 100:g} %")
    elif "stuck" in regs and not faster_with_supply:
        # no transition at all in a record placed where the DC trim expects P(1) ≈ 0.2-0.8 (the DC offset
        # sits within a few scales of the noisy crossing, measured): a frozen latch, too much barrier
        v = cur["vdd_v"] * (1 - VDD_STEP)
        why = "frozen / stuck (too much barrier): supply −1.5 %"
    elif one_sided:
        # on one side of the crossing (one-sided single-peaked records): re-centre on a logit estimate
        # (clipped: a record at P(1) 0 or 1 says only "far")
        pm = min(max(float(np.mean(ps)), 0.02), 0.98)
        shift = -scale_v * _logit(pm)
        nxt["biases_v"] = [float(f"{min(max(b + shift, blo), bhi):.9g}") for b in cur["biases_v"]]
        return nxt, f"records at mean P(1) {float(np.mean(ps)):.2f}: re-centred by {shift * 1e3:+.3g} mV"
    else:
        # one noisy level around the threshold at most biases: not enough barrier
        v = cur["vdd_v"] * (1 + VDD_STEP)
        why = "single-peaked around the threshold (not enough barrier): supply +1.5 %"
    if not lo_v <= v <= hi_v:
        return None, f"{why} would leave the supply range"
    nxt["vdd_v"] = float(f"{v:.6g}")
    return nxt, why


def _same_setting(a: dict, b: dict) -> bool:
    return abs(a["trim_v"] - b["trim_v"]) < 1e-9 and abs(a["vdd_v"] - b["vdd_v"]) < 1e-9


def _rate_fit_ok(df: pd.DataFrame) -> tuple[bool, str]:
    """Whether the model's per-instance rate fit (noisecell.model.fit.fit_rates) accepts these records
    (its telegraphing ones, as the characterisation's fit takes only those)."""
    from ...model.fit import fit_rates

    if not len(df) or "regime" not in df:
        # every record failed (a failed job's row carries no analysis columns)
        return False, "no telegraphing record"
    use = df[(df.get("status", "ok") == "ok") & (df["regime"].astype(str) == _GOOD)]
    if len(use) < 1:
        return False, "no telegraphing record"
    try:
        fit_rates(use)
    except InputError as exc:
        return False, str(exc).split(";")[0]
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return False, f"rate fit failed ({exc})"
    return True, ""


def run_mismatch(spec, cellspec, out: Path, settings: MismatchSettings, *, v50_v: float, scale_v: float, tau_s: float,
                 workers=None, retry_failed=False, pool=None, record_fn=None, dc_fn=None, offset_fn=None) -> MismatchResult:
    """DC-trim every instance, then rounds of records at each instance's trim (all instances' sweeps of a
    round run concurrently on the shared simulator pool). ``v50_v``/``scale_v``/``tau_s``: the nominal
    fit (V50 relative to the nominal cell's zero DC offset, its logistic scale and τ(V50)) that places
    and sizes the records. ``record_fn(name, instance, sweep_seed, setting, duration_s) -> (SweepResult,
    dataframe)`` and ``dc_fn(settings) -> ({k: InstanceTrim dict}, cost)`` replace the simulator in tests.
    ``offset_fn(outcome, setting) -> V | None``: a readout chain's DC offset at a setting's trim and supply
    (default: noisecell.trim.readout_sweep): a chain's offset moves with its supply (pbit_x5: records
    placed at the old offset after a +5 % step were all frozen on one side, measured), so its records
    follow the offset when the search changes the supply."""
    from ...trim import balance_spec

    corner, temp_c = cellspec.nominal_corner, float(cellspec.nominal_temp_c)
    bal = balance_spec(cellspec)
    if not (math.isfinite(scale_v) and scale_v != 0 and math.isfinite(tau_s) and tau_s > 0):
        raise NoisecellError("mismatch: the nominal fit has no finite scale and τ to place the instances' records")
    dc, cost = (dc_fn(settings) if dc_fn is not None else _dc_trims(cellspec, corner, temp_c, settings, out))
    from ...sweep.jobs import mismatch_seed

    outcomes = []
    for k in range(settings.instances):
        s = instance_seed(settings.seed, k)
        outcomes.append(InstanceOutcome(k, s, mismatch_seed(s, 0), dc.get(k)))
    duration = float(f"{settings.duration_tau * tau_s:.3g}")
    rel = [float(v50_v + scale_v * _logit(p)) for p in settings.p1]
    blo, bhi = cellspec.bias.range_v
    active = []
    for o in outcomes:
        d = o.dc or {}
        if not d.get("ok"):
            o.reason = d.get("message") or "no DC trim"
            continue
        biases = [float(f"{d['bias_v'] + x:.9g}") for x in rel]
        if any(not blo <= b <= bhi for b in biases):
            o.reason = f"its records around the DC offset {d['bias_v'] * 1e3:+.1f} mV would leave the bias range"
            continue
        o.settings.append({"trim_v": float(d["trim_v"]), "vdd_v": float(f"{d['vdd_v']:.6g}"), "biases_v": biases,
                           "why": "DC trim", "dc_offset_v": float(d["bias_v"])})
        active.append(o)
    record_fn = record_fn or _SimRecords(spec, cellspec, out, workers, retry_failed, pool, bal.trim)
    chain = bal.offset == "readout"
    if chain and offset_fn is None:
        from ...trim import readout_sweep

        def offset_fn(o, st):
            return readout_sweep(cellspec, corner, temp_c, trim_v=st["trim_v"], vdd_v=st["vdd_v"],
                                 mismatch_seed=o.mismatch_seed, fixed_trim=(o.dc or {}).get("aux_trim_v") or None).crossing_v
    res = MismatchResult(settings, outcomes, trim_param=bal.trim, kind=bal.offset)
    t0 = time.monotonic()
    sim = 0.0
    log(f"mismatch: {len(active)} of {settings.instances} instances trimmed; records of {settings.duration_tau:g} τ = "
        f"{duration * 1e6:.3g} µs at P(1) {', '.join(f'{p:g}' for p in settings.p1)} of each instance's expected sigmoid")
    frames: dict = {}
    for rnd in range(settings.rounds + 1):
        if not active:
            break
        jobs = []
        for o in active:
            st = o.final
            name = f"mismatch-i{o.instance:03d}-s{len(o.settings) - 1}"
            st["sweep"] = name
            jobs.append((o, name, st))
        log(f"mismatch round {rnd + 1}: {len(jobs)} instance(s) x {len(jobs[0][2]['biases_v'])} records")
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(jobs)))) as ex:
            got = list(ex.map(lambda j: record_fn(j[1], j[0].instance, j[0].sweep_seed, j[2],
                                                  float(f"{duration * j[2].get('duration_factor', 1):.3g}")), jobs))
        nxt = []
        for (o, name, st), (sres, df) in zip(jobs, got):
            sim += duration * st.get("duration_factor", 1) * len(df)
            frames[name] = df
            seen = _classify(df)
            st["seen"] = seen
            res.sweeps.append((name, o, st, sres))
            # the instance's decision is the model fit's own: its rate fit on every telegraphing record
            # at this (trim, supply), this round's and earlier ones'
            same = [x for x in o.settings if "sweep" in x and _same_setting(x, st)]
            pooled = pd.concat([frames[x["sweep"]] for x in same], ignore_index=True)
            if "job_id" in pooled:
                # a record is one point of the fit, whichever sweeps list it (safety: _more_records
                # never places a record at a bias used before)
                pooled = pooled.drop_duplicates("job_id")
            fit_ok, fit_why = _rate_fit_ok(pooled)
            if fit_ok:
                o.fitted, o.reason = True, ""
                continue
            if rnd == settings.rounds:
                o.reason = (f"no rate fit after {len(o.settings)} setting(s) ({fit_why}); last records: "
                            f"{', '.join(f'{r} (P(1) {p:.2f})' if p is not None else r for r, p in zip(seen['regime'], seen['p1']))}")
                continue
            telegraphs = [r == _GOOD or (r == "single_peaked" and n >= MIN_SWITCHES)
                          for r, n in zip(seen["regime"], seen.get("transitions", [0] * len(seen["regime"])))]
            if seen["regime"] and all(telegraphs) and "stuck" not in seen["regime"]:
                # every record switches between the two states (a record with ≥ MIN_SWITCHES transitions
                # through the readout's Schmitt band that the regime detector calls single-peaked is a short
                # telegraph whose two modes it could not resolve: pbit, 8 µs, 7-18 transitions, P(1)
                # 0.4-0.8, measured), but the rate fit does not take them: more records between the ones
                # there are, at the same trim (pooled with them: as many as the fit still needs); twice as
                # long when they hold few transitions (pbit: ≤ 28 median), the same length when they hold
                # enough and some of them (not all) were called single-peaked (pbit_x5 at 100 τ: ~34; a record costs
                # ~0.7 CPU-s besides its length, and 72 % of 100-τ records are bistable against 91 % at
                # 200 τ: same-length records give more usable ones per CPU-s)
                n_use = _usable(pooled)
                sw = [n for r, n in zip(seen["regime"], seen.get("transitions", [0] * len(seen["regime"])))
                      if r == _GOOD or (r == "single_peaked" and n >= MIN_SWITCHES)]
                # (none bistable at all: the detector cannot resolve this length; longer, as before)
                longer = not sw or n_use == 0 or float(np.median(sw)) < ENOUGH_TRANSITIONS
                new = {**{k: v for k, v in st.items() if k not in ("sweep", "seen")},
                       "biases_v": _more_records(st["biases_v"], n_use,
                                                 taken=[x for t in o.settings for x in t["biases_v"]]),
                       "duration_factor": (2 if longer else 1) * float(st.get("duration_factor", 1))}
                why = (f"the records switch but give no rate fit yet ({fit_why}; {n_use} usable): "
                       f"{len(new['biases_v'])} records {'twice as long' if longer else 'as long'} between them, same trim")
            else:
                new, why = _next_setting(st, seen, scale_v, cellspec, faster_with_supply=bal.faster_with_supply)
                if new is None:
                    o.reason = f"not telegraphing and nothing left to try: {why}"
                    continue
                new = {k: v for k, v in new.items() if k not in ("sweep", "seen")}
                if chain and abs(new["vdd_v"] - st["vdd_v"]) > 1e-9 and st.get("dc_offset_v") is not None:
                    off = offset_fn(o, new)
                    if off is None:
                        o.reason = f"not telegraphing: {why}, where its DC offset leaves the bias range"
                        continue
                    shift = off - st["dc_offset_v"]
                    new["biases_v"] = [float(f"{min(max(b + shift, blo), bhi):.9g}") for b in st["biases_v"]]
                    new["dc_offset_v"] = float(off)
                    why += f"; records moved with the DC offset by {shift * 1e3:+.3g} mV"
            new["why"] = why
            o.settings.append(new)
            nxt.append(o)
        active = nxt
    res.cost = {**cost, "simulated_s": sim, "records_wall_s": time.monotonic() - t0}
    return res


def sweeps_for_parts(res: MismatchResult, nominal_vdd_v: float) -> list:
    """(name, role, SweepResult, relabel) for the per-point table and the fit: the final setting of a
    fitted instance (every record at its final trim and supply) has role "mismatch" (its rows enter the
    instance's rate fit, grouped with the
    nominal condition: ``vdd_v`` relabelled to the nominal supply, the instance's own supply kept in the
    point table), every other setting "mismatch-search" (shown, not fitted)."""
    out = []
    for name, o, st, sres in res.sweeps:
        final = o.fitted and _same_setting(st, o.final)
        relabel = {"mismatch_instance": int(o.instance)}
        if final:
            relabel["vdd_v"] = float(nominal_vdd_v)
        out.append((name, "mismatch" if final else "mismatch-search", sres, relabel))
    return out


class _SimRecords:
    """record_fn on the simulator: one sweep per instance and setting under OUT/sweep/<name>/."""

    def __init__(self, spec, cellspec, out, workers, retry_failed, pool, trim_param):
        self.spec, self.cellspec, self.out = spec, cellspec, out
        self.workers, self.retry_failed, self.pool, self.trim_param = workers, retry_failed, pool, trim_param

    def __call__(self, name, instance, sweep_seed, setting, duration_s):
        from ...sweep import run_sweep
        from ...sweep.spec import parse_spec

        sweep = {k: v for k, v in self.spec.shared.items() if k not in ("adaptive", "grid", "duration", "seed")}
        sweep.update(cell=self.spec.cell, duration=duration_s, seed=int(sweep_seed),
                     grid={"bias": sorted(setting["biases_v"]), "vdd": [setting["vdd_v"]],
                           "temperature": [float(self.cellspec.nominal_temp_c)],
                           "corner": [self.cellspec.nominal_corner], "mismatch_instances": 1})
        if self.trim_param:
            sweep["trim"] = {self.trim_param: float(setting["trim_v"])}
        sw = parse_spec(sweep, source=f"mismatch instance {instance}")
        # update_spec: a resumed characterisation whose nominal fit or DC trims moved this instance's biases
        # re-plans its folder (characterize-owned) instead of stopping with "holds a sweep of a different
        # spec ... --update-spec", an option characterize lacks; stored records are reused (as the design
        # and held-out-temperature sweeps do)
        r = run_sweep(sw, self.out / "sweep" / name, workers=self.workers, progress=False, update_spec=True,
                      retry_failed=self.retry_failed, **({"pool": self.pool} if self.pool is not None else {}))
        return r, r.dataframe


def outcomes_table(res: MismatchResult) -> pd.DataFrame:
    """One row per instance and setting (plain SI floats) for the report's tables."""
    rows = []
    for o in res.outcomes:
        d = o.dc or {}
        if not o.settings:
            rows.append({"instance": o.instance, "setting": None, "dc_trim_ok": bool(d.get("ok")),
                         "dc_offset_v": d.get("bias_v"), "trim_v": d.get("trim_v"), "vdd_v": d.get("vdd_v"),
                         "fitted": False, "why": "", "seen": "", "note": o.reason})
            continue
        for i, st in enumerate(o.settings):
            seen = st.get("seen") or {}
            rows.append({"instance": o.instance, "setting": i, "dc_trim_ok": bool(d.get("ok")),
                         "dc_offset_v": d.get("bias_v"), "trim_v": st["trim_v"], "vdd_v": st["vdd_v"],
                         "fitted": bool(o.fitted and _same_setting(st, o.final)), "why": st.get("why", ""),
                         "seen": ", ".join(f"{r} {p:.2f}" if p is not None else r
                                           for r, p in zip(seen.get("regime", []), seen.get("p1", []))),
                         "note": o.reason if st is o.final else ""})
    return pd.DataFrame(rows)


def settings_dict(s: MismatchSettings) -> dict:
    return asdict(s)
