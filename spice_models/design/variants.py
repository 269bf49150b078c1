"""Second design round (NOTES.md §8): latch variants through noisecell's own pipeline.

Each variant is a netlist written into a scratch cell folder (a copy of pbit's cell.toml with the
variant's netlist, parameters, trim and ranges), so the runs use exactly what `noisecell simulate`
uses: per-MOSFET channel noise, NT = 1 ns, the regime detector. For each variant and supply it
prints the DC balance (load-gate trim, if any) and loop gain, then transient noise runs at zero
bias: regime, transitions per µs, P(1), within-level correlation time τ_w, histogram valley ratio,
power and wall speed.

Usage (repo root): .venv/bin/python spice_models/design/variants.py [VARIANT ...] [--duration 20us]
    [--seeds 1,2] [--bias 0] [--workers 2]
Variants: nmos (the 4-transistor NMOS latch of §4), nmos_wide (L_D 0.9, 4 µm loads), p4 (pfet
current-source loads, 4 devices), p6 (the shipped pbit: one bias-well load + one common-well load
per side).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from noisecell.cells import load_cell  # noqa: E402
from noisecell.regime import classify_waveform  # noqa: E402
from noisecell.simulate import job_from_cell, run_job_in_process  # noqa: E402
from noisecell import trim as T  # noqa: E402
from noisecell.units import parse_si  # noqa: E402

NMOS = """.param VDD=0.094 VB=0 WD=0.42 LD=1.4 WLD=0.42 LLD=0.9
Vdd vdd 0 {VDD}
Vb1 vdd1 vdd {VB/2}
Vb2 vdd2 vdd {-VB/2}
XN1 q qb 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD}
XL1 vdd1 q q 0 sky130_fd_pr__nfet_05v0_nvt w={WLD} l={LLD}
XN2 qb q 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD}
XL2 vdd2 qb qb 0 sky130_fd_pr__nfet_05v0_nvt w={WLD} l={LLD}
.end
"""
P4 = """.param VDD=0.1 VB=0 VGP=0 WD=0.42 LD=0.9 WP=0.42 LP=0.35
Vdd vdd 0 {VDD}
Vgp gp 0 {VGP}
Vnw1 nw1 0 {VDD-VB/2}
Vnw2 nw2 0 {VDD+VB/2}
XN1 q qb 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD}
XP1 q gp vdd nw1 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP}
XN2 qb q 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD}
XP2 qb gp vdd nw2 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP}
.end
"""
#: name -> (netlist, params, has VGP trim, supplies to try (V))
VARIANTS = {
    "nmos": (NMOS, dict(WD=0.42, LD=1.4, WLD=0.42, LLD=0.9), False, [0.094, 0.097]),
    "nmos_wide": (NMOS, dict(WD=0.42, LD=0.9, WLD=4.0, LLD=0.9), False, [0.0955, 0.0965, 0.097]),
    "p4": (P4, dict(WD=0.42, LD=0.9, WP=0.42, LP=0.35), True, [0.104, 0.106, 0.108]),
    "p6": (None, None, True, [0.104, 0.1045, 0.105]),
}


def make_cell(name: str, scratch: Path) -> str:
    """A scratch cell folder for variant ``name``; returns its path."""
    net, params, trimmed, _ = VARIANTS[name]
    d = scratch / name
    d.mkdir(parents=True, exist_ok=True)
    src = (ROOT / "spice_models" / "pbit" / "cell.toml").read_text()
    src = src.split("# --- trim table")[0]
    if net is None:  # the shipped cell as it is (without its stored table)
        (d / "pbit.cir").write_text((ROOT / "spice_models" / "pbit" / "pbit.cir").read_text())
        (d / "cell.toml").write_text(src.replace('name = "pbit"', f'name = "{name}"'))
        return str(d)
    (d / "pbit.cir").write_text(net)
    t = src.replace('name = "pbit"', f'name = "{name}"')
    t = t.split("[trim.VGP]")[0] + ("[trim.VGP]\nnominal_v = 0.0\nrange_v = [-0.45, 0.3]\n\n" if trimmed else "")
    t += "[params]\n" + "".join(f'{k} = {{ nominal = {v}, min = 0.1, max = 20.0, unit = "um" }}\n'
                                for k, v in params.items())
    t += '\n[balance]\n' + ('trim = "VGP"\n' if trimmed else "") + 'low_node = "0"\ngain_target = 1.08\n'
    (d / "cell.toml").write_text(t)
    return str(d)


def run_one(args) -> dict:
    cellpath, vdd, trim, bias, dur, seed = args
    cell = load_cell(cellpath)
    job = job_from_cell(cell, bias_v=bias, vdd_v=vdd, trim=trim, duration_s=dur, noise_step_s=1e-9, seed=seed)
    t0 = time.perf_counter()
    wf = run_job_in_process(job)
    wall = time.perf_counter() - t0
    r = classify_waveform(wf, skip_s=0.5e-6)
    return {"cell": cell.name, "vdd_mv": round(vdd * 1e3, 2), "trim": trim, "bias_mv": bias * 1e3, "seed": seed,
            "regime": r.regime, "transitions_per_us": round(r.n_transitions / ((dur - 0.5e-6) * 1e6), 3),
            "p1": round(r.fraction_above_threshold, 3),
            "tau_w_ns": None if r.within_state_tau_s is None else round(r.within_state_tau_s * 1e9, 1),
            "valley": None if r.valley_ratio is None else round(r.valley_ratio, 2),
            "power_nw": round(wf.mean_supply_power_w() * 1e9, 3), "us_per_s": round(dur * 1e6 / wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--duration", default="20us")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--bias", type=float, default=0.0, help="bias, V")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    dur = parse_si(a.duration, unit="s")
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="pbit-variants-") as td:
        jobs = []
        for name in a.variants:
            path = make_cell(name, Path(td))
            cell = load_cell(path)
            for vdd in VARIANTS[name][3]:
                dc = T.balance(cell, "tt", 27.0, vdd)
                trim = {"VGP": dc.trim_v} if VARIANTS[name][2] else None
                print(json.dumps({"cell": name, "vdd_mv": vdd * 1e3, "dc_vm_frac": round(dc.vm_frac, 3),
                                  "dc_gain": round(dc.gain, 3), "trim": trim}), flush=True)
                jobs += [(path, vdd, trim, a.bias, dur, s) for s in seeds]
        with Pool(a.workers, maxtasksperchild=1) as pool:
            for r in pool.imap(run_one, jobs):
                print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
