"""Sixth design round (NOTES.md §12): the energy law's levers from DC/AC figures, before any transient.

For each candidate (x1search.CANDIDATES): noisecell.trim's balance at the design gain (VGP, VDD), the
noise node's C_x and G_x (x1search.node_capacitance: AC admittance at 10 MHz, y free so the next
stage's Miller capacitance is in C_x), and the supply current at the noise-free operating point. The
measured energy law (NOTES §11) then predicts the energy per bit without a transient run:

    P·τ = P · τ_x · (τ/τ_x),   τ_x = C_x / G_x,   τ/τ_x = 2.9–3.3 (every bistable round-5 row)

and τ itself (= τ_x · 2.9–3.3). The factors are printed separately (N·VDD, I/G_x, C_x) so each lever
can be read off. One ngspice process at a time (run under `nice -n 10`).

Usage (repo root):
    nice -n 10 .venv/bin/python spice_models/design/x4levers.py [CANDIDATE ...] [--out spice_models/design/x4levers.jsonl]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import x1search as X  # noqa: E402

from noisecell import trim as T  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.simulator.batch import run_batch  # noqa: E402
from noisecell.technology import model_lines  # noqa: E402

#: the measured range of τ/τ_x on round 5's bistable rows (NOTES §11)
TAU_RATIO = (2.9, 3.3)


def supply_current(c: X.Candidate, vgp: float, vdd: float) -> float:
    """|I(Vdd)| (A) at the noise-free operating point, zero bias, tt 27 °C, mismatch off."""
    body = c.netlist
    for k, v in {**c.params, "VDD": vdd, "VGP": vgp, "VB": 0.0}.items():
        body = re.sub(rf"\b{k}=[^ \n]+", f"{k}={v!r}", body, count=1)
    body = body.replace(".end", "")
    net = "\n".join(model_lines("sky130", "tt", mismatch=False)) + "\n" + body + """
.control
op
print i(Vdd)
quit
.endc
.end
"""
    with tempfile.TemporaryDirectory(prefix="x4op-") as td:
        out = run_batch(net, td, technology="sky130", timeout_s=120, name=f"{c.name} supply current")
    nums = re.findall(r"= (-?[0-9.]+e[-+][0-9]+)", out)
    return abs(float(nums[-1])) if nums else float("nan")


def stage1_gate(c: X.Candidate, vgp: float, vdd: float, *, span_v: float = 0.7, step_v: float = 1e-3) -> float | None:
    """DG1 (V): stage 1's own sink-gate offset that puts x at VDD/2 at zero bias (one DC sweep of
    Vgp1 over VGP ± span_v, linear interpolation of the crossing); None if x never crosses VDD/2."""
    import numpy as np

    body = c.netlist
    for k, v in {**c.params, "VDD": vdd, "VGP": vgp, "VB": 0.0, "DG1": 0.0}.items():
        body = re.sub(rf"\b{k}=[^ \n]+", f"{k}={v!r}", body, count=1)
    body = body.replace(".end", "")
    with tempfile.TemporaryDirectory(prefix="x4g1-") as td:
        net = "\n".join(model_lines("sky130", "tt", mismatch=False)) + "\n" + body + f"""
.control
set wr_singlescale
dc Vgp1 {vgp - span_v!r} {vgp + span_v!r} {step_v!r}
wrdata {td}/g.dat v(x)
quit
.endc
.end
"""
        run_batch(net, td, technology="sky130", timeout_s=120, name=f"{c.name} stage-1 gate")
        d = np.loadtxt(f"{td}/g.dat")
    g, f = d[:, 0], d[:, 1] - vdd / 2
    k = np.nonzero(np.diff(np.sign(f)) != 0)[0]
    if not len(k):
        return None
    i = int(k[0])
    return float(g[i] + (g[i + 1] - g[i]) * f[i] / (f[i] - f[i + 1]) - vgp)


def levers(c: X.Candidate, scratch: Path) -> dict:
    """The DC/AC row of candidate ``c`` (SI floats) with the predicted τ and P·τ ranges."""
    t0 = time.perf_counter()
    cell = load_cell(X.make_cell(c, scratch))
    row = {"candidate": c.name, "note": c.note, "params": c.params, "gain_target": c.gain_target,
           "devices": c.devices}
    try:
        dc = T.balanced_gain_point(cell, "tt", 27.0)
    except Exception as exc:  # a model bin or convergence failure is a result of the survey
        row.update(result=f"DC failed: {str(exc)[:200]}", wall_s=time.perf_counter() - t0)
        return row
    if dc is None:
        row.update(result="no balanced point reaches the gain target in the trim/supply ranges",
                   wall_s=time.perf_counter() - t0)
        return row
    if "DG1" in c.params:  # stage 1 on its own sink gate: centre x before its C_x, G_x and current
        import dataclasses

        dg1 = stage1_gate(c, dc.trim_v, dc.vdd_v)
        if dg1 is None:
            row.update(result="stage 1 cannot be centred with its own gate", wall_s=time.perf_counter() - t0)
            return row
        c = dataclasses.replace(c, params={**c.params, "DG1": dg1})
        row["params"] = c.params
    cap, cond = X.node_capacitance(c, dc.trim_v, dc.vdd_v)
    i = supply_current(c, dc.trim_v, dc.vdd_v)
    n = c.devices // 2
    p = dc.vdd_v * i
    tau_x = cap / cond
    row.update(result="ok", vdd_v=dc.vdd_v, vgp_v=dc.trim_v, dc_gain=dc.gain, supply_current_a=i,
               stage_current_a=i / n, power_w=p, node_c_f=cap, node_g_s=cond, i_over_g_v=(i / n) / cond,
               tau_x_s=tau_x, tau_pred_s=[tau_x * r for r in TAU_RATIO],
               energy_pred_j=[p * tau_x * r for r in TAU_RATIO], wall_s=time.perf_counter() - t0)
    return row


def cx_parts(c: X.Candidate, row: dict) -> dict:
    """Where C_x sits (F): with y held at VDD/2 (no Miller multiplication of stage 2's C_gd) and with
    stage 2's pfet gate moved off x (stage 1's own two devices). At the row's DC balance."""
    import dataclasses

    cy, _ = X.node_capacitance(dataclasses.replace(c, cap_node=("x", "y")), row["vgp_v"], row["vdd_v"])
    if "XP2 y x vdd" not in c.netlist:
        raise ValueError(f"{c.name}: cx_parts needs a chain whose stage 2 pfet is 'XP2 y x vdd'")
    c_n = dataclasses.replace(c, netlist=c.netlist.replace("XP2 y x vdd", "XP2 y in vdd"))
    cn, gn = X.node_capacitance(c_n, row["vgp_v"], row["vdd_v"])
    return {"candidate": c.name, "node_c_f": row["node_c_f"], "c_y_held_f": cy, "miller_f": row["node_c_f"] - cy,
            "c_stage1_f": cn, "c_stage2_gate_f": cy - cn, "g_stage1_s": gn}


def transient(c: X.Candidate, row: dict, scratch: Path, *, dur: float, seeds: list[int], nt: float,
              delta_v: float = 0.005) -> dict:
    """Transient noise runs (x1search.run_one, one at a time) at the DC row's balance: ``seeds`` records
    of ``dur`` at the centre bias b0 (the nominal circuit's readout crossing, x1mismatch.sweep_offset
    with mismatch off: 0 for a symmetric chain, the stage-1 imbalance for a deliberately unbalanced one)
    and one record at b0 ± delta_v (seed 1) for the logistic scale. Returns the pooled row: τ as the
    mean of the records' τ with the spread-based SE, P·τ with that τ."""
    import statistics

    import dataclasses

    import x1mismatch as M

    c = dataclasses.replace(c, params=row["params"])  # e.g. the DG1 that levers() found
    path = X.make_cell(c, scratch)
    cell = load_cell(path)
    b0 = M.sweep_offset(cell, mismatch_seed=1, trim={"VGP": row["vgp_v"]}, vdd_v=row["vdd_v"], source="Vnw1",
                        mismatch=False)
    if b0 is None:
        return {"candidate": c.name, "result": "no readout crossing inside the bias range"}
    runs = [X.run_one((path, row["vdd_v"], row["vgp_v"], b0, dur, s, nt)) for s in seeds]
    side = [X.run_one((path, row["vdd_v"], row["vgp_v"], b0 + d, dur, seeds[0], nt)) for d in (-delta_v, delta_v)]
    ok = [r for r in runs if r.get("tau_s")]
    taus = [r["tau_s"] for r in ok]
    tau = statistics.mean(taus) if taus else None
    se = statistics.stdev(taus) / len(taus) ** 0.5 if len(taus) >= 2 else None
    power = statistics.mean(r["power_w"] for r in ok) if ok else None
    scale = X.logistic_scale([(r["bias_v"], r["p1"]) for r in [*runs[:1], *side] if r["regime"] != "failed"])
    return {"candidate": c.name, "result": "ok", "b0_v": b0, "duration_s": dur, "seeds": seeds, "noise_step_s": nt,
            "tau_s": tau, "tau_se_s": se, "power_w": power, "energy_per_bit_j": None if tau is None else power * tau,
            "energy_se_j": None if se is None else power * se, "p1": [r["p1"] for r in runs],
            "regimes": [r["regime"] for r in runs], "valleys": [r.get("valley") for r in runs],
            "flips_per_us": [r["flips_per_us"] for r in runs], "sigmoid_scale_v": scale,
            "width_10_90_v": None if scale is None else X.WIDTH_PER_SCALE * scale,
            "dispersion": [(r.get("dwell_dispersion_0"), r.get("dwell_dispersion_1")) for r in runs],
            "runs": runs, "sigmoid_runs": side, "wall_s": sum(r.get("wall_s", 0.0) for r in [*runs, *side]),
            "predicted_j": row["energy_pred_j"], "predicted_tau_s": row["tau_pred_s"]}


def fmt(r: dict) -> str:
    if r.get("result") != "ok":
        return f"| {r['candidate']} | {r['note']} | {r['result']} | | | | | | |"
    e, t = r["energy_pred_j"], r["tau_pred_s"]
    return (f"| {r['candidate']} | {r['note']} | {r['vdd_v'] * 1e3:.1f} | {r['stage_current_a'] * 1e9:.2f} | "
            f"{r['i_over_g_v']:.3f} | {r['node_c_f'] * 1e15:.3f} | {r['tau_x_s'] * 1e9:.1f} | "
            f"{t[0] * 1e9:.0f}–{t[1] * 1e9:.0f} | {e[0] * 1e18:.0f}–{e[1] * 1e18:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="*")
    ap.add_argument("--out", default=str(ROOT / "spice_models" / "design" / "x4levers.jsonl"))
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--cx-parts", metavar="FILE", default=None,
                    help="instead: C_x's parts (cx_parts) for CANDIDATES with a row in --out, appended to FILE")
    ap.add_argument("--transient", metavar="FILE", default=None,
                    help="instead: transient runs (transient()) for CANDIDATES with a row in --out, appended to FILE")
    ap.add_argument("--duration", default="24us")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--noise-step", default="0.4ns")
    a = ap.parse_args()
    if a.transient:
        from noisecell.units import parse_si

        rows = {}
        for line in Path(a.out).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["candidate"]] = r
        with tempfile.TemporaryDirectory(prefix="x4tran-") as td:
            for name in a.candidates:
                q = transient(X.CANDIDATES[name], rows[name], Path(td), dur=parse_si(a.duration, unit="s"),
                              seeds=[int(s) for s in a.seeds.split(",")], nt=parse_si(a.noise_step, unit="s"))
                if q["result"] == "ok":
                    print(f"{name}: b0 {q['b0_v'] * 1e3:+.1f} mV, {q['regimes']}, valleys {q['valleys']}, P1 {q['p1']}, "
                          f"tau {q['tau_s'] * 1e9:.0f} ns (SE {0 if q['tau_se_s'] is None else q['tau_se_s'] * 1e9:.0f}), "
                          f"P {q['power_w'] * 1e9:.2f} nW, P*tau {q['energy_per_bit_j'] * 1e18:.0f} aJ "
                          f"(predicted {q['predicted_j'][0] * 1e18:.0f}-{q['predicted_j'][1] * 1e18:.0f}), "
                          f"width {0 if q['width_10_90_v'] is None else q['width_10_90_v'] * 1e3:.1f} mV, "
                          f"{q['wall_s']:.0f} s", flush=True)
                else:
                    print(f"{name}: {q['result']}", flush=True)
                with open(a.transient, "a") as fh:
                    fh.write(json.dumps(q) + "\n")
        return 0
    if a.cx_parts:
        rows = {}
        for line in Path(a.out).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["candidate"]] = r
        for name in a.candidates:
            q = cx_parts(X.CANDIDATES[name], rows[name])
            print(f"{name}: C_x {q['node_c_f'] * 1e15:.3f} fF = stage 1's devices {q['c_stage1_f'] * 1e15:.3f} + stage 2's "
                  f"gate {q['c_stage2_gate_f'] * 1e15:.3f} + Miller {q['miller_f'] * 1e15:.3f} fF", flush=True)
            with open(a.cx_parts, "a") as fh:
                fh.write(json.dumps(q) + "\n")
        return 0
    if a.table:
        rows = {}
        for line in Path(a.out).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["candidate"]] = r
        print("| candidate | what | VDD (mV) | I per stage (nA) | I/G_x (V) | C_x (fF) | τ_x (ns) | τ predicted (ns) | P·τ predicted (aJ) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows.values():
            print(fmt(r))
        return 0
    names = a.candidates or [c.name for c in X.ROUND6]
    unknown = [n for n in names if n not in X.CANDIDATES]
    if unknown:
        print(f"x4levers: unknown candidate(s) {unknown}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="x4levers-") as td:
        for name in names:
            r = levers(X.CANDIDATES[name], Path(td))
            print(fmt(r), f"({r['wall_s']:.0f} s)", flush=True)
            with open(a.out, "a") as fh:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
