"""Why pbit_x5 cannot be trimmed at fs -40 C (issue 17 item 3; NOTES §13): DC and AC at balance.

For each (corner, temperature, VNW) and each supply VDD on a grid inside the cell's range, VGP is
root-found for the balance (noisecell.trim.balance: the last inverter's switching point at VDD/2,
the other VNW held), then at that point, with x held at VDD/2 by an AC source (so every stage sits
at its switching point, as the noise-free chain at zero bias does):

* the stage gain A (-dV(w)/dV(z) at the switching point, trim.balance's figure);
* the supply current I (A; the four pfets' channel current plus junction leakage) -> per stage I/4;
* the noise node's C_x and G_x (F, S; AC admittance of x at 10 MHz, as x1search.node_capacitance)
  and τ_x = C_x/G_x (s): NOTES §11-12's energy law gives the stream τ ≈ (2.9-3.3) τ_x at gain 3.8-5.2
  (deeper levels at higher gain lengthen it further).

The chain needs both A ≳ 3.8 (two levels) and a short τ_x (≥ 1 flip/µs): the table shows, per
corner and VNW, the τ_x reached at a given gain. One ngspice process per (corner, temp, VNW).

Transient records at chosen points (`--check`): noisecell.trim.check at bias 0 with VGP balanced at
that supply, the regime detector's description of the record (the stuck state's level(s)).

Usage (repo root): .venv/bin/python spice_models/design/x5fs40.py OUT.json [corner:temp:VNW ...]
       .venv/bin/python spice_models/design/x5fs40.py OUT.json --check corner:temp:VNW:VDD:dur_us:seed ...
       .venv/bin/python spice_models/design/x5fs40.py OUT.json --write-row corner:temp:VNW:VDD:dur_us:seed
(default: fs -40 C at every VNW of the cell's range x {-0.1, 0, 0.1, 0.2, 0.45, 0.8} and the trimmed
VNW of every other -40 C pair and of tt/fs 27 C and fs 85 C).
"""
from __future__ import annotations

import json
import math
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from noisecell import netlist as nl  # noqa: E402
from noisecell import trim as T  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.errors import SimulationTimeout  # noqa: E402
from noisecell.simulator.batch import run_batch  # noqa: E402
from noisecell.technology import model_lines  # noqa: E402

CELL = HERE.parent / "pbit_x5"
VDDS = [round(v, 3) for v in np.arange(0.15, 0.8501, 0.05)]
DEFAULT = ([("fs", -40.0, v) for v in (-0.1, 0.0, 0.1, 0.2, 0.45, 0.8)]
           + [(c, -40.0, 0.1) for c in ("tt", "ss", "ff", "sf")] + [("tt", 27.0, 0.1), ("fs", 27.0, 0.1),
                                                                  ("fs", 85.0, 0.1)])


def op_ac(cell, corner: str, temp_c: float, vnw: float, pts: list[tuple[float, float]]) -> list[dict]:
    """Supply current and x's AC admittance at each balanced (VGP, VDD) point (module doc)."""
    vals = T._cell_values(cell, corner=corner, temp_c=temp_c, bias_v=0.0, vdd_v=pts[0][1],
                          trim={"VGP": pts[0][0], "VNW": vnw}, params=None)
    body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
    body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
    net = [f"* pbit_x5 DC/AC at balance: {corner} {temp_c:g} C, VNW {vnw:g}",
           *model_lines(cell.technology, corner, mismatch=False, netlist=body), body,
           f".options temp={float(temp_c)!r} tnom=27.0",
           "Vq_drive qd 0 DC {VDD/2} AC 1", "Vq_meter qd x 0", ".control"]
    for vgp, vdd in pts:
        net += [f"alterparam VDD={float(vdd)!r}", f"alterparam VGP={float(vgp)!r}", "reset", "op",
                "print i(Vdd) i(Vq_meter)", "ac lin 1 1e7 1e7", "let y = i(Vq_meter)",
                "print imag(y)/(2*3.14159265358979*1e7) real(y)"]
    net += ["quit", ".endc", ".end"]
    with tempfile.TemporaryDirectory(prefix="x5fs40-") as td:
        out = run_batch("\n".join(net) + "\n", td, technology=cell.technology, timeout_s=300,
                        name=f"pbit_x5 DC/AC ({corner}, {temp_c:g} C)")
    nums = [float(x) for x in re.findall(r"= *(-?[0-9.]+e[-+][0-9]+)", out)]
    if len(nums) != 4 * len(pts):
        raise SystemExit(f"pbit_x5 DC/AC at {corner} {temp_c:g} C: {len(nums)} numbers for {len(pts)} points:\n"
                         + "\n".join(out.strip().splitlines()[-5:]))
    res = []
    for k in range(len(pts)):
        i_vdd, i_force, c_x, g_x = nums[4 * k: 4 * k + 4]
        # ngspice's i(Vdd) is the current from + to - through the source: the cell draws -i(Vdd)
        res.append({"supply_current_a": -i_vdd, "force_current_a": i_force, "c_x_f": c_x, "g_x_s": g_x,
                    "tau_x_s": c_x / g_x if g_x > 0 else None})
    return res


def scan(cell, corner: str, temp_c: float, vnw: float) -> list[dict]:
    rows = []
    for vdd in VDDS:
        p = T.balance(cell, corner, temp_c, vdd, fixed_trim={"VNW": vnw})
        rows.append({"vdd_v": vdd, "vgp_v": None if p is None else p.trim_v,
                     "stage_gain": None if p is None or not math.isfinite(p.gain) else p.gain})
    ok = [r for r in rows if r["vgp_v"] is not None]
    if ok:
        for r, x in zip(ok, op_ac(cell, corner, temp_c, vnw, [(r["vgp_v"], r["vdd_v"]) for r in ok])):
            r.update(x)
            r["stage_current_a"] = x["supply_current_a"] / 4
    return rows


def checks(cell, doc: dict, out: Path, specs: list[str], timeout_s: float = 300.0) -> None:
    """Transient records (noisecell.trim.check at bias 0, VGP balanced at that supply) at each
    corner:temp:VNW:VDD:duration_us:seed of ``specs``; rows appended to doc["checks"]."""
    for spec in specs:
        c, t, vnw, vdd, dur, seed = spec.split(":")
        t, vnw, vdd, dur, seed = float(t), float(vnw), float(vdd), float(dur) * 1e-6, int(seed)
        t0, c0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        p = T.balance(cell, c, t, vdd, fixed_trim={"VNW": vnw})
        row = {"corner": c, "temp_c": t, "vnw_v": vnw, "vdd_v": vdd, "duration_s": dur, "seed": seed,
               "vgp_v": None if p is None else p.trim_v, "stage_gain": None if p is None else p.gain}
        if p is not None:
            try:
                k = T.check(cell, c, t, p.trim_v, vdd, duration_s=dur, seed=seed, fixed_trim={"VNW": vnw},
                            timeout_s=timeout_s)
                row.update({"regime": k.regime, "p1": k.p1, "p1_se": k.p1_se if math.isfinite(k.p1_se) else None,
                            "flips_per_us": k.flips_per_us, "power_w": k.power_w, "detail": k.regime_detail})
            except SimulationTimeout:
                row.update({"regime": "stalled", "detail": f"no record in {timeout_s:g} s wall"})
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        row["cpu_s"] = time.process_time() - t0 + c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        doc.setdefault("checks", []).append(row)
        out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"{spec}: VGP {row['vgp_v']}, gain {row['stage_gain']}: {row.get('regime')}, P(1) {row.get('p1')}, "
              f"{row.get('flips_per_us')} flips/us, {row.get('power_w')} W ({row['cpu_s']:.1f} CPU-s)\n  "
              f"{row.get('detail')}", file=sys.stderr, flush=True)


def write_row(cell, spec: str, *, timeout_s: float = 300.0) -> dict:
    """Balance + one transient check (noisecell.trim's own functions) at corner:temp:VNW:VDD:dur_us:seed;
    when it passes the trim's criterion (bistable, >= 1 flip/µs, |P(1) - 0.5| <= 3 SE) its row replaces
    that pair's row of the cell's trims.json; every other row is kept as stored."""
    c, t, vnw, vdd, dur, seed = spec.split(":")
    t, vnw, vdd, dur, seed = float(t), float(vnw), float(vdd), float(dur) * 1e-6, int(seed)
    dc = T.balance(cell, c, t, vdd, fixed_trim={"VNW": vnw})
    if dc is None:
        raise SystemExit(f"{spec}: no balance (VGP) at this supply")
    k = T.check(cell, c, t, dc.trim_v, vdd, duration_s=dur, seed=seed, fixed_trim={"VNW": vnw}, timeout_s=timeout_s)
    ok = (k.regime == "bistable" and k.flips_per_us >= 1.0 and math.isfinite(k.p1_se)
          and abs(k.p1 - 0.5) <= 3 * k.p1_se)
    msg = (f"bistable, P(1)={k.p1:.3f}\u00b1{k.p1_se:.3f}, {k.flips_per_us:.3g} flips/\u00b5s at VDD={vdd * 1e3:.2f} mV "
           f"[VNW {vnw:g} V, supply from the DC/AC scan of spice_models/design/x5fs40.py (the trim search "
           "skipped VNW -0.1 V: its coarse supply grid had no balanced point below the gain target)]")
    if not ok:
        raise SystemExit(f"{spec}: the check does not pass ({k.regime}, P(1) {k.p1:.3f} +- {k.p1_se:.3f}, "
                         f"{k.flips_per_us:.3g} flips/us): trims.json not changed")
    res = T.TrimResult(cell=cell.name, corner=c, temp_c=t, ok=True, trim_param="VGP", trim_v=dc.trim_v, vdd_v=vdd,
                       dc=dc, check=k, attempts=(k,), message=msg, aux_trim_v={"VNW": vnw})
    row = T.row_from_result(res)
    old = json.loads(T.trims_path(cell).read_text())
    rows = [r for r in old["trims"]["VGP"] if (r["corner"], float(r["temp_c"])) != (c, t)] + [row]
    cmd = (f"{old.get('generated_by', '')}; then python spice_models/design/x5fs40.py OUT --write-row {spec} "
           f"(noisecell.trim.balance + check, {dur * 1e6:g} us, seed {seed}; only the {c} {t:g} C row replaced)")
    T.write_table(cell, rows, command=cmd)
    print(f"{spec}: wrote {T.trims_path(cell)}: {msg}", file=sys.stderr)
    return row


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-4], file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    cell = load_cell(str(CELL))
    doc = json.loads(out.read_text()) if out.is_file() else {"cell": "pbit_x5", "scans": {}}
    if sys.argv[2:3] == ["--check"]:
        checks(cell, doc, out, sys.argv[3:])
        return 0
    if sys.argv[2:3] == ["--write-row"]:
        doc["written_row"] = write_row(cell, sys.argv[3])
        out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return 0
    want = ([(c, float(t), float(v)) for c, t, v in (a.split(":") for a in sys.argv[2:])] or DEFAULT)
    for corner, temp, vnw in want:
        t0, c0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        rows = scan(cell, corner, temp, vnw)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - t0 + c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        doc["scans"][f"{corner} {temp:g} VNW {vnw:g}"] = {"corner": corner, "temp_c": temp, "vnw_v": vnw,
                                                          "rows": rows, "cpu_s": cpu}
        out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"{corner} {temp:g} C VNW {vnw:g} ({cpu:.1f} CPU-s)", file=sys.stderr)
        for r in rows:
            if r["vgp_v"] is None:
                print(f"  {r['vdd_v'] * 1e3:5.0f} mV: no balance", file=sys.stderr)
                continue
            tx = r.get("tau_x_s")
            print(f"  {r['vdd_v'] * 1e3:5.0f} mV: VGP {r['vgp_v'] * 1e3:+7.1f} mV gain {r['stage_gain'] or float('nan'):6.2f}"
                  f"  I/stage {r['stage_current_a'] * 1e12:10.3f} pA  C_x {r['c_x_f'] * 1e15:.3f} fF"
                  f"  tau_x {tx * 1e9 if tx else float('nan'):10.1f} ns", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
