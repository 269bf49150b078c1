"""The main job: spec → pilot → parts → model → datasheet, validation, measured comparison → report.

``characterize(cell, out_dir, spec_path=None, quick=False, measurements=None, workers=None)`` runs the
procedures of :mod:`noisecell.report.procedures` in order, each returning a result object with its
numbers and a ``summary()``: the spec (:mod:`~.procedures.spec`), the pilot (:mod:`~.procedures.pilot`),
the parts as resumable sweeps under ``OUT/sweep/<part>/`` (:mod:`~.procedures.parts`), the behavioural
model fitted to the "fit" and "mismatch" parts (:mod:`~.procedures.fits`), entropy figures and example
streams (:mod:`~.procedures.streams`), the held-out check (:mod:`~.procedures.validation`), measured
data (:mod:`~.procedures.measured`) and the datasheet (:mod:`~.procedures.datasheet`). It writes
``OUT/model.json``, ``OUT/datasheet.csv``, ``OUT/report.html`` (rendered from templates by :mod:`.html`),
``OUT/figures/*.png`` and ``OUT/tables/*.csv``. Progress goes to stderr. Re-running the same command resumes: finished
simulations are never redone.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import __version__
from ..errors import NoisecellError
from .data import ReportData, condition_label
from .procedures import log
from .procedures.datasheet import Datasheet, make_datasheet
from .procedures.design import run_design
from .procedures.fits import ModelResult, fit_model, mismatch_tables, noise_step_caveats
from .procedures.measured import MeasuredResult, compare_measured
from .procedures.parts import PartsResult, run_parts
from .procedures.pilot import PilotResult, pilot_window, run_pilot
from .procedures.points import identity, trim_values
from .procedures.spec import CharSpec, fit_regimes, load_char_spec, spec_noise_step
from .procedures.streams import entropy_columns, entropy_period, example_streams
from .procedures.validation import ValidationResult, validate

__all__ = ["characterize", "CharacterizeResult", "load_char_spec", "pilot_window", "CharSpec"]


@dataclass
class CharacterizeResult:
    """Where everything was written, and every procedure's result (``pilot`` None without a pilot,
    ``measured`` None without measurements)."""

    out_dir: Path
    report_path: Path
    model_path: Path | None
    failed_jobs: int
    total_jobs: int
    datasheet: pd.DataFrame
    measured_model_path: Path | None = None
    wall_s: float = 0.0
    procedures: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"characterize: report {self.report_path}", f"  model {self.model_path}"]
        if self.measured_model_path:
            lines.append(f"  measured model {self.measured_model_path}")
        lines.append(f"  jobs: {self.total_jobs - self.failed_jobs}/{self.total_jobs} ok, {self.failed_jobs} failed; "
                     f"{self.wall_s:.0f} s")
        ds = self.procedures.get("datasheet")
        if ds is not None:
            lines += ["  " + x for x in ds.summary().splitlines()]
        return "\n".join(lines)


def _simulator_pool(workers, log_dir: Path):
    """One long-lived simulator host pool for the pilot and every part (hosts start once, not per
    part): :class:`noisecell.simulator.HostPool`."""
    from ..simulator import HostPool

    return HostPool(workers, log_dir=log_dir)


def _nominal_tau(seq, pilot) -> float | None:
    """τ(V50) at the nominal condition: the design's joint fit, else the pilot's telegraphing records."""
    if seq is not None and seq.design.fit is not None:
        return float(seq.design.fit.tau_v50.value)
    if pilot is not None:
        from .procedures.conditions import pilot_seen

        return pilot_seen(pilot).get("tau_s")
    return None


def _costs(pilot, seq, conds, mm_res, parts, t0) -> dict[str, str]:
    """What each procedure cost (simulated time; wall and simulator CPU time where measured), and the
    whole run's CPU time (this process and every child: simulator hosts, DC batch runs) and wall time,
    for the report's provenance and the log (issue 18: budgets planned from measured costs)."""
    import resource

    out: dict[str, str] = {}
    rows = {r["part"]: r for r in parts.part_rows}

    def sim(names) -> float:
        return float(sum(rows[n]["simulated_s"] for n in names if n in rows and rows[n]["simulated_s"] == rows[n]["simulated_s"]))

    if pilot is not None:
        out["nominal pilot"] = f"{sim(pilot.stage_names) * 1e6:.4g} µs simulated ({len(pilot.sweeps)} stage(s))"
    if seq is not None:
        d = seq.design
        cpu = f", {d.cpu_s:.0f} simulator CPU-s" if d.cpu_s == d.cpu_s else ""
        out["nominal design"] = f"{d.simulated_s * 1e6:.4g} µs simulated, {d.wall_s:.0f} s wall{cpu}"
        ho = sim([n for n, _ in seq.heldout_sweeps])
        if ho:
            out["nominal held-out"] = f"{ho * 1e6:.4g} µs simulated"
    if conds is not None:
        cs = [n for n, role, _ in conds.sweeps]
        n_run = len(conds.seqs) + sum(1 for e in conds.excluded if (e.get("seen") or {}).get("pilot") != "not run")
        out["conditions"] = (f"{sim(cs) * 1e6:.4g} µs simulated over {n_run} simulated condition(s) (pilots, designs, "
                             f"held-out temperatures); per condition wall, simulator CPU: "
                             + ", ".join(f"{c} {t:g} °C {w:.0f} s, {conds.cpu_s.get((c, t), float('nan')):.0f} CPU-s"
                                         for (c, t), w in conds.wall_s.items()))
    if mm_res is not None:
        c = mm_res.cost
        out["mismatch"] = (f"DC trims {c.get('dc_wall_s', float('nan')):.0f} s wall, {c.get('dc_cpu_s', float('nan')):.0f} "
                           f"CPU-s; records {c.get('simulated_s', 0.0) * 1e6:.4g} µs simulated, "
                           f"{c.get('records_wall_s', float('nan')):.0f} s wall")
    ru_s, ru_c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru_s.ru_utime + ru_s.ru_stime + ru_c.ru_utime + ru_c.ru_stime
    out["whole run"] = (f"{parts.simulated_s * 1e6:.4g} µs simulated, {time.monotonic() - t0:.0f} s wall, {cpu:.0f} CPU-s "
                        "(this process and its children: the simulator hosts are closed by then)")
    return out


def characterize(cell: str | None, out_dir: str | Path, *, spec_path: str | Path | None = None, quick: bool = False,
                 measurements: str | Path | None = None, workers: int | None = None,
                 command: str | None = None, retry_failed: bool = False, check: bool = True) -> CharacterizeResult:
    """Run the whole characterisation (see the module docstring); returns where everything was written.
    ``check``: run the DC ``cell check`` first (noisecell.cellcheck; a cell that cannot be bistable is
    refused in seconds)."""
    t0 = time.monotonic()
    out = Path(out_dir)
    # read and validate everything the user gave before any simulation starts
    spec = load_char_spec(spec_path, quick=quick, cell_name=cell)
    meas = None
    if measurements is not None:
        from ..measurements import load_measurements
        meas = load_measurements(measurements)
        log(f"measurements: {len(meas.captures)} captures from {meas.root} "
            f"({'SYNTHETIC' if meas.synthetic else 'measured'})")
    from ..cells import load_cell

    cellspec = load_cell(spec.cell)
    # the DC `cell check` first (issue 16): a cell that cannot be bistable is refused in seconds
    check_res = None
    if check and "v_outb" in cellspec.outputs:
        from ..cellcheck import gate
        check_res = gate(cellspec, log)
    out.mkdir(parents=True, exist_ok=True)
    warnings = list(spec.skipped)
    if check_res is not None and check_res.status != "ok":
        warnings.append(f"cell check: {check_res.verdict}")
    if check_res is not None:  # which DC sources the energy figures count (issue 16; same numbers as `cell check`)
        from ..cellcheck import UNCOUNTED_POWER_WARN_FRACTION, power_coverage
        cov = power_coverage(cellspec, check_res)
        log(f"energy: {cov['note']}")
        if (cov["uncounted_fraction"] or 0.0) > UNCOUNTED_POWER_WARN_FRACTION:
            warnings.append(f"energy: {cov['note']}")
    report_cfg = {"examples": 3, "entropy_90b": True, "entropy_sample_period": "auto", "fit_regimes": ["bistable"],
                  **spec.report}
    regimes = fit_regimes(report_cfg["fit_regimes"], spec.source)

    # ---- 1, 2: pilot and parts, on one simulator host pool when the backend has one
    (out / "sweep" / "host-logs").mkdir(parents=True, exist_ok=True)
    pool = _simulator_pool(workers, out / "sweep" / "host-logs")
    try:
        pilot: PilotResult | None = None
        pilot_note = "none (bias shorthands over the cell's whole bias range)"
        if spec.pilot is not None:
            pilot = run_pilot(spec, cellspec, out, workers, retry_failed, pool=pool)
            log(pilot.note)
            pilot_note = pilot.note
            if pilot.window is None:
                warnings.append(pilot.note)
        seq, design_sweeps = None, []
        if spec.design is not None:
            # 1b: sequential design at the nominal condition (noisecell.sequential): rounds until the
            # datasheet targets are met or the budget is spent, then held-out records
            seq, design_sweeps = run_design(spec, cellspec, out, pilot, workers, retry_failed, pool=pool)
            log(seq.summary())
            if not seq.design.met:
                warnings.append(f"datasheet targets not met: {seq.design.reason} (see the design rows of the datasheet)")
        # 1d: mismatch instances, each DC-trimmed and recorded at its own trim (issue 18), in a thread
        # beside the conditions: its DC trims run outside the simulator pool and its records queue on the
        # same pool, so both cores stay busy; results do not depend on the interleaving (seeds per record)
        mm_future, mm_res, mm_pool = None, None, None
        if spec.mismatch is not None:
            if seq is None or seq.design.fit is None:
                warnings.append("mismatch: not run, because the nominal design gave no fit to place the instances' "
                                "records by")
            else:
                from concurrent.futures import ThreadPoolExecutor

                from .procedures.mismatch import run_mismatch

                f = seq.design.fit
                mm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noisecell-mismatch")
                mm_future = mm_pool.submit(run_mismatch, spec, cellspec, out, spec.mismatch, v50_v=float(f.v50.value),
                                           scale_v=float(f.scale.value), tau_s=float(f.tau_v50.value), workers=workers,
                                           retry_failed=retry_failed, pool=pool)
        conds = None
        if spec.conditions is not None:
            # 1c: every other corner x temperature: its own pilot and design; held-out temperatures (issue 18)
            from .procedures.conditions import run_conditions

            conds = run_conditions(spec, cellspec, out, spec.conditions, workers=workers, retry_failed=retry_failed,
                                   pool=pool, rate_regimes=regimes, nominal_seq=seq, nominal_pilot=pilot,
                                   pilot_fn=run_pilot)
            log(conds.summary())
            design_sweeps = list(design_sweeps) + conds.sweeps
            for e in conds.excluded:
                warnings.append(f"condition {e['corner']} {e['temp_c']:g} °C not characterised: {e['reason']}")
            for (c, t), s in conds.seqs.items():
                if not s.design.met:
                    warnings.append(f"condition {c} {t:g} °C: datasheet targets not met: {s.design.reason}")
        if mm_future is not None:
            from .procedures.mismatch import sweeps_for_parts

            try:
                mm_res = mm_future.result()
            except NoisecellError as exc:
                # the mismatch part cannot run on this cell (pbit_x4, session 24: "instance_trim is for
                # latches"): the nominal condition, the other conditions and the report are not lost with it
                mm_res = None
                warnings.append(f"mismatch: not run: {exc}; the model has no mismatch distribution")
                log(f"mismatch: not run: {exc}")
            finally:
                mm_pool.shutdown(wait=True)
        if mm_res is not None:
            log(mm_res.summary())
            design_sweeps = list(design_sweeps) + sweeps_for_parts(mm_res, seq.condition[2])
            nf = mm_res.not_fitted()
            if nf:
                from collections import Counter

                kinds = Counter(why.split(" (at ")[0].split(":")[0] if why.startswith("no DC trim") else why.split(";")[0][:80]
                                for _, why in nf)
                warnings.append(f"mismatch: {len(nf)} of {len(mm_res.outcomes)} instances are not in the distribution ("
                                + "; ".join(f"{n}× {k}" for k, n in kinds.most_common()) + "): the distribution is "
                                "truncated there (model: instances_not_fitted)")
            if mm_res.n_fitted < 2:
                warnings.append(f"mismatch: {mm_res.n_fitted} of {len(mm_res.outcomes)} instances telegraphed at their "
                                "trim; the model has no mismatch distribution")
        parts: PartsResult = run_parts(spec, cellspec, out, pilot, workers=workers, retry_failed=retry_failed,
                                       spec_dir=Path(spec.source).parent if spec_path else None, pool=pool,
                                       extra_sweeps=design_sweeps, tau_s=_nominal_tau(seq, pilot))
    finally:
        if pool is not None:
            pool.close()
    warnings += parts.warnings
    points, raw_all = parts.points, parts.raw
    if seq is not None and seq.design.initial_points and pilot is not None:
        # the nominal design fitted its pilot's records together with its own: they are fit points too
        for df in (points, raw_all):
            df.loc[(df["role"] == "pilot") & df["part"].isin(pilot.stage_names), "role"] = "fit"
    nominal = parts.nominal_condition(cellspec)
    if regimes != ("bistable",):
        warnings.append(f"the spec fits points of regime(s) {', '.join(regimes)}: the sigmoid and τ of a "
                        "non-bistable point describe the comparator output, not a telegraphing latch")
    # from here on "fittable" points are labelled by a boolean column; regime keeps its value
    points["fitted_regime"] = points["regime"].isin(regimes)

    # ---- 3: the model, each condition fitted once
    ident = identity(cellspec, raw_all)
    noise_step_s = spec_noise_step(spec)

    def adjust(doc, dropped=()):
        from .procedures.conditions import finish_document

        if seq is not None:
            doc = seq.apply_to_document(doc)
        if conds is not None:
            doc = conds.apply_to_document(doc, dropped)
        if mm_res is not None:
            doc = mm_res.apply_to_document(doc, nominal)
        doc, nt_warnings = noise_step_caveats(finish_document(doc, conds, cellspec.nominal_corner), noise_step_s)
        warnings.extend(nt_warnings)
        return doc

    fitted: ModelResult = fit_model(points, raw_all, cellspec, ident, nominal, out, adjust_document=adjust)
    warnings += fitted.warnings
    mm_pts = points[points["role"].eq("mismatch") & points["status"].eq("ok")]
    if len(mm_pts) and (fitted.model is None or not any(
            (fitted.model.condition_data(c).get("mismatch") or {}).get("n_instances") for c in fitted.model.conditions)):
        n_inst = mm_pts["mismatch_instance"].nunique() if "mismatch_instance" in mm_pts else 0
        seen = ", ".join(f"{n} {r}" for r, n in mm_pts["regime"].astype(str).value_counts().items())
        warnings.append(f"mismatch: {n_inst} Monte Carlo instance(s) simulated ({len(mm_pts)} records: {seen}), but fewer "
                        "than 2 gave a rate fit (each needs telegraphing records at ≥ 2 biases), so the model has no "
                        "mismatch distribution; lengthen the mismatch records (duration_tau) or trim each instance")
    model, fits, nominal_eff = fitted.model, fitted.fits, fitted.nominal

    # ---- entropy at a stated clock period, SP 800-90B on the stored streams; example streams
    ent_period, ent_note = entropy_period(report_cfg, fits, nominal_eff, points)
    warnings.extend(entropy_columns(points, out, ent_period, bool(report_cfg.get("entropy_90b", True)), nominal_eff))
    examples = example_streams(points, out, nominal_eff, int(report_cfg.get("examples", 3)))
    mm, mm_sum = mismatch_tables(model, nominal_eff)

    # ---- 5: held-out validation; 6: measurements
    validation: ValidationResult = validate(model, points, nominal_eff)
    if seq is not None and seq.heldout is not None:
        validation = dataclasses.replace(validation, note=f"{validation.note} {seq.heldout.summary()}".strip())
    measured: MeasuredResult | None = None
    if meas is not None:
        measured = compare_measured(meas, out, model, fits, nominal_eff, cellspec)
        warnings.extend(measured.warnings)

    # ---- 4: the datasheet
    datasheet: Datasheet = make_datasheet(points, fits, model, nominal_eff, mm_sum, validation.table, ent_period,
                                          cellspec)
    if seq is not None:
        datasheet = Datasheet(pd.concat([datasheet.table, pd.DataFrame(seq.datasheet_rows(condition_label(*nominal_eff)))],
                                        ignore_index=True))
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    cell_info = {"name": cellspec.name, "description": cellspec.description, "technology": cellspec.technology,
                 "netlist": str(cellspec.netlist_path), "netlist_sha256": ident["netlist_sha256"],
                 "model package": (f"{ident['model_package']['name']} {ident['model_package']['version']}"
                                   if ident["model_package"] else "none (model cards in the netlist)"),
                 "corners offered": ", ".join(cellspec.corners),
                 "nominal condition": condition_label(*nominal),
                 "bias input": f"{cellspec.bias.param}, {cellspec.bias.range_v[0]:g} .. {cellspec.bias.range_v[1]:g} V",
                 "readout": f"{cellspec.readout.mode}, threshold {cellspec.readout.threshold_v:g} V",
                 "trim": ", ".join(f"{k}: {json.dumps(trim_values(raw_all, k))}" for k in cellspec.trim) or "none"}
    costs = _costs(pilot, seq, conds, mm_res, parts, t0)
    log("cost: " + "; ".join(f"{k} {v}" for k, v in costs.items()))
    prov = {"created_utc": created, "noisecell_version": __version__, "ngspice_version": ident["ngspice"],
            "command": command or "", "spec": spec.source + (" [quick]" if quick else ""),
            "spec_sha256": hashlib.sha256(spec.text.encode()).hexdigest(),
            "sweep store": str(out / "sweep"), "jobs": f"{parts.total - parts.failed}/{parts.total} ok",
            "simulated time": f"{parts.simulated_s * 1e6:.4g} µs",
            "noise": "per-MOSFET thermal + shot noise, TRRANDOM unit sources seeded per job (setseed)",
            "pilot": pilot_note, "entropy clock": ent_note,
            **{f"cost: {k}": v for k, v in costs.items()}, "spec_text": spec.text}
    cond_table, mm_dist = None, None
    if model is not None:
        from .procedures.conditions import conditions_table

        if conds is not None:
            cond_table = conditions_table(model, model.excluded_conditions, conds.seqs, seq,
                                          model.interpolation_checks)
        mmb = (model.condition_data(nominal_eff).get("mismatch") or {}) if nominal_eff in [
            (c.corner, c.temp_c, c.vdd_v) for c in model.conditions] else {}
        mm_dist = mmb.get("distribution")
    elif conds is not None:
        from .procedures.conditions import conditions_table

        cond_table = conditions_table(None, conds.excluded, conds.seqs, seq)
    data = ReportData(
        title=spec.title or f"noisecell characterisation: {cellspec.name}", cell=cell_info, provenance=prov,
        points=points.drop(columns=["chunks"]), fits=fits, examples=examples, datasheet=datasheet.table,
        nominal=nominal_eff, mismatch=mm, mismatch_summary=mm_sum, validation=validation.table,
        validation_note=validation.note, entropy_note=ent_note,
        comparison=measured.comparison if measured else None, measurement_info=measured.info if measured else None,
        warnings=warnings, sweep_summary=pd.DataFrame(parts.part_rows), datasheet_display=datasheet.display_table(),
        conditions=cond_table, mismatch_distribution=mm_dist)
    from .html import render
    log("writing figures, tables and report.html")
    report_path = render(data, out)
    # the headline table also at the top of OUT (plain SI floats; the report shows it in engineering notation)
    from .html import _atomic_write
    _atomic_write(out / "datasheet.csv", datasheet.table.to_csv(index=False).encode())
    log(datasheet.summary())
    log(f"done in {time.monotonic() - t0:.0f} s: {report_path}")
    return CharacterizeResult(out_dir=out, report_path=report_path, model_path=fitted.path, failed_jobs=parts.failed,
                              total_jobs=parts.total, datasheet=datasheet.table,
                              measured_model_path=measured.model_path if measured else None,
                              wall_s=time.monotonic() - t0,
                              procedures={"spec": spec, "pilot": pilot, "design": seq, "parts": parts, "model": fitted,
                                          "validation": validation, "measured": measured, "datasheet": datasheet})
