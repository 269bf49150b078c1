"""Design-space search for the sky130 p-bit latch (exploration only; see NOTES.md for results).

Builds a 4-transistor cross-coupled latch netlist with hand-written per-node noise (TRRANDOM unit
sources scaled by the channel-noise PSD of the devices on the node, as in the reference probe), runs
ngspice in batch mode and prints: P(1) (q > qb), flips per simulated us (hysteretic, +-HYST around 0),
bimodality (Sarle's coefficient of q - qb), mean swing, core power and wall speed.

Usage examples (each run is short; nice it, at most 2 at a time):
  python spice_models/design/search.py --vdd 0.06 --vl 0.3 --tstop 10u
  python spice_models/design/search.py --grid vdd=0.05,0.06,0.07 vl=0.2,0.4
"""
from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import model_includes, SPICEINIT  # noqa: E402

DEFAULTS = dict(vdd=0.06, vl=0.3, vnwo=0.0, vb=0.0, wn=0.42, ln=0.9, wp=0.42, lp=0.35,
                ndev="nfet_05v0_nvt", pdev="pfet_01v8_lvt", nt=1e-9, tstop=10e-6, corner="tt", temp=27.0,
                seed=1, opts="")

NETLIST = """* p-bit latch, source-lifted (grounded substrate)
{models}
.temp {temp}
.option {opts}
.param VDD={vdd} VL={vl} VNWO={vnwo} VB={vb} NT={nt}
.param QE=1.602177e-19 VTH={vt} EPS=1m
.func sn(i,v) {{2*QE*abs(i*v)/(v*v+EPS*EPS)*sqrt(v*v+4*VTH*VTH)}}
Vl vl 0 {{VL}}
Vdd vdd 0 {{VL+VDD}}
Vnw1 nw1 0 {{VL+VDD+VNWO+VB/2}}
Vnw2 nw2 0 {{VL+VDD+VNWO-VB/2}}
XN1 q qb sn1 0 sky130_fd_pr__{ndev} w={wn} l={ln}
XP1 q qb sp1 nw1 sky130_fd_pr__{pdev} w={wp} l={lp}
XN2 qb q sn2 0 sky130_fd_pr__{ndev} w={wn} l={ln}
XP2 qb q sp2 nw2 sky130_fd_pr__{pdev} w={wp} l={lp}
Vsn1 sn1 vl 0
Vsn2 sn2 vl 0
Vsp1 vdd sp1 0
Vsp2 vdd sp2 0
Vu1 u1 0 DC 0 TRRANDOM(1 {{NT}} 0 {{sqrt(3/(2*NT))}} 0)
Vu2 u2 0 DC 0 TRRANDOM(1 {{NT}} 0 {{sqrt(3/(2*NT))}} 0)
Bn1 q 0 I = sqrt(sn(I(Vsn1),V(q)-V(vl)) + sn(I(Vsp1),V(vdd)-V(q)) + 1e-34)*V(u1)
Bn2 qb 0 I = sqrt(sn(I(Vsn2),V(qb)-V(vl)) + sn(I(Vsp2),V(vdd)-V(qb)) + 1e-34)*V(u2)
.ic v(q)={{VL+VDD*0.6}} v(qb)={{VL+VDD*0.4}}
.tran {nt} {tstop} 0 {nt}
.control
setseed {seed}
run
wrdata out.dat v(q) v(qb) i(Vdd) i(Vl)
quit
.endc
.end
"""


def simulate(**kw) -> dict:
    p = {**DEFAULTS, **kw}
    vt = 8.617333e-5 * (p["temp"] + 273.15)
    text = NETLIST.format(models="\n".join(model_includes(p["corner"])), vt=vt, **{k: v for k, v in p.items()})
    if not p["opts"]:
        text = text.replace(".option \n", "")
    with tempfile.TemporaryDirectory() as td:
        Path(td, ".spiceinit").write_text(SPICEINIT)
        Path(td, "c.cir").write_text(text)
        t0 = time.perf_counter()
        r = subprocess.run(["nice", "-n", "10", "ngspice", "-b", "c.cir"], cwd=td, capture_output=True,
                           text=True, timeout=600)
        wall = time.perf_counter() - t0
        try:
            d = np.loadtxt(Path(td, "out.dat"))
        except OSError:
            return {**p, "error": r.stdout[-500:] + r.stderr[-500:]}
    t, q, qb, idd, il = d[:, 0], d[:, 1], d[:, 3], d[:, 5], d[:, 7]
    keep = t > 0.05 * p["tstop"]
    cm = float(np.mean((q[keep] + qb[keep]) / 2 - p["vl"]) / p["vdd"])
    return {**p, **stats(t, q - qb, p["tstop"]), "cm_frac": cm, "p_core_w": float(np.mean(-idd) * p["vdd"]),
            "wall_s": wall, "points": len(t), "points_per_step": len(t) / (p["tstop"] / p["nt"])}


def stats(t, x, tstop, hyst_frac=0.3):
    """P(1), flips/us with hysteresis at +-hyst_frac of the mean |x| (so noise chatter at the crossing
    is not counted), Sarle's bimodality coefficient on a uniform resampling."""
    keep = t > 0.05 * tstop  # drop the initial transient
    t, x = t[keep], x[keep]
    tu = np.linspace(t[0], t[-1], int((t[-1] - t[0]) / 1e-9))
    xu = np.interp(tu, t, x)
    h = hyst_frac * np.mean(np.abs(xu))
    state, flips = (1 if xu[0] > 0 else 0), 0
    for v in xu:
        if state == 0 and v > h:
            state, flips = 1, flips + 1
        elif state == 1 and v < -h:
            state, flips = 0, flips + 1
    m = xu - xu.mean()
    s2 = np.mean(m ** 2)
    g = np.mean(m ** 3) / s2 ** 1.5
    k = np.mean(m ** 4) / s2 ** 2 - 3
    n = len(xu)
    bc = (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return {"p1": float(np.mean(xu > 0)), "flips_per_us": flips / ((tu[-1] - tu[0]) * 1e6),
            "bimod": float(bc), "swing_mv": float(np.mean(np.abs(xu)) * 1e3)}


def fmt(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error'][:200]}"
    return (f"{r['corner']} {r['temp']:5.1f}C vdd={r['vdd']*1e3:5.1f}m vl={r['vl']:.3f} vnwo={r['vnwo']:+.3f} "
            f"vb={r['vb']*1e3:+5.1f}m wn={r['wn']} ln={r['ln']} wp={r['wp']} lp={r['lp']} | P1={r['p1']:.3f} "
            f"flips/us={r['flips_per_us']:6.2f} BC={r['bimod']:.3f} swing={r['swing_mv']:5.1f}mV cm={r['cm_frac']:.2f} "
            f"P={r['p_core_w']*1e9:6.3f}nW  {r['tstop']/r['wall_s']*1e6:4.1f}us/s pts/step={r['points_per_step']:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    for k, v in DEFAULTS.items():
        ap.add_argument(f"--{k}", type=type(v), default=v)
    ap.add_argument("--grid", nargs="*", default=[], help="name=v1,v2,... (cartesian product)")
    a = vars(ap.parse_args())
    grid = a.pop("grid")
    axes = [(g.split("=")[0], [type(DEFAULTS[g.split("=")[0]])(x) for x in g.split("=")[1].split(",")]) for g in grid]
    for combo in itertools.product(*[v for _, v in axes]) if axes else [()]:
        kw = dict(a)
        kw.update({k: v for (k, _), v in zip(axes, combo)})
        print(fmt(simulate(**kw)), flush=True)
