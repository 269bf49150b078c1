"""Third design round (NOTES.md §9): candidates for a lower-energy reference cell, through noisecell's own API.

Each candidate is a netlist + sizes written into a scratch cell folder (a copy of the pbit cell.toml
with the candidate's netlist, trim, parameters and [balance] table), so every figure comes from the
same code `noisecell trim` / `noisecell simulate` / `noisecell analyze` use:

1. DC (noise-free, noisecell.trim): the balancing trim (load-gate or sink-gate voltage) and the
   supply at which the open-loop gain at balance equals the candidate's gain target (the barrier
   axis), then the node capacitance (AC admittance of one output with the other held at its DC
   value: the C that sets the speed) and the mismatch bias offsets of a few instances
   (noisecell.trim.bias_offset, sky130 mismatch models).
2. Transient noise at zero bias (noisecell.simulate, NT = 1 ns): regime, flips per µs, P(1), the
   correlation time τ of the digitised stream with its 95 % CI (noisecell.analysis.stream), power,
   energy per bit P·τ.
3. Two more runs at ±Δ of bias: the logistic scale from the three P(1) (logit is linear in bias for a
   logistic), hence the 10–90 % width (4.394 scales) and the mismatch offset in scales.

Usage (repo root; all simulations under `nice -n 19`):
    nice -n 19 .venv/bin/python spice_models/design/x1search.py [CANDIDATE ...] [--duration 10us]
        [--seed 1] [--mismatch-seeds 6] [--workers 2] [--out spice_models/design/x1search.jsonl]
Without names, every candidate in CANDIDATES runs. One JSON line per candidate and supply is
appended to --out; `--table` prints the markdown table of a results file (NOTES.md §9).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from noisecell.analysis.stream import analyze_waveform  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.regime import classify_waveform  # noqa: E402
from noisecell.simulate import job_from_cell  # noqa: E402
from noisecell.simulator import run_job  # noqa: E402
from noisecell.simulator.batch import run_batch  # noqa: E402
from noisecell import trim as T  # noqa: E402
from noisecell.technology import model_lines  # noqa: E402
from noisecell.units import parse_si  # noqa: E402

#: 10-90 % width of a logistic in units of its scale: 2 ln 9
WIDTH_PER_SCALE = 2 * math.log(9.0)

# Netlists. KB divides the bias lever: the two bias wells differ by VB/KB. pfet current-source loads
# (gate at VGP, source at VDD) on native nfet_05v0_nvt pull-downs, as in pbit (NOTES.md §8).
P6 = (ROOT / "spice_models" / "pbit" / "pbit.cir").read_text()
# AJ: diffusion length (µm) of every drain/source junction; 0 = none (the models' default ad = as =
# pd = ps = 0, as pbit), 0.29 = a minimum contacted diffusion (its area and perimeter capacitance and
# junction current enter: needed wherever a well is forward biased)
_J = "ad={{AJ*{w}}} as={{AJ*{w}}} pd={{2*AJ/0.29*({w}+0.29)}} ps={{2*AJ/0.29*({w}+0.29)}}"
P4 = """.param VDD=0.1 VB=0 VGP=0 KB=2 WD=0.42 LD=0.9 WP=0.42 LP=0.35 VNW=0 AJ=0
Vdd vdd 0 {VDD}
Vgp gp 0 {VGP}
Vnw1 nw1 0 {VDD+VNW-VB/KB/2}
Vnw2 nw2 0 {VDD+VNW+VB/KB/2}
XN1 q qb 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
XP1 q gp vdd nw1 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN2 qb q 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
XP2 qb gp vdd nw2 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
.end
""".replace("{JN}", _J.format(w="WD")).replace("{JP}", _J.format(w="WP"))
# complementary: cross-coupled pfet_01v8_lvt pull-ups (bias on their wells), native current sinks
# with their gates at the trim VGP (a fixed voltage: only their drains load the nodes)
PN = """.param VDD=0.1 VB=0 VGP=0 KB=2 WD=0.42 LD=0.9 WP=0.42 LP=0.35 VNW=0 AJ=0
Vdd vdd 0 {VDD}
Vgp gp 0 {VGP}
Vnw1 nw1 0 {VDD+VNW-VB/KB/2}
Vnw2 nw2 0 {VDD+VNW+VB/KB/2}
XP1 q qb vdd nw1 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN1 q gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
XP2 qb q vdd nw2 sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN2 qb gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
.end
""".replace("{JN}", _J.format(w="WD")).replace("{JP}", _J.format(w="WP"))
# amplified-noise chains (no latch): the noise of a high-impedance node x (two fixed-gate current
# sources: its conductance is only the two output conductances) is amplified by identical inverters
# to two saturated levels; y and z are the readout pair. Stage 1's input sits at VDD/2, which is the
# inverters' switching point once VGP balances them (trim), so every stage rests at its switching
# point at zero bias by symmetry. Bias: the n-well of stage 1's device (body effect).
# pchain: pfet_01v8_lvt amplifying devices (gate in), native current sinks (gate at VGP)
PCHAIN3 = """.param VDD=0.2 VB=0 VGP=0 KB=1 WD=0.42 LD=0.9 WP=0.42 LP=0.35 AJ=0 VNW=0
Vdd vdd 0 {VDD}
Vgp gp 0 {VGP}
Vin in 0 {VDD/2}
Vnw nw 0 {VDD+VNW+VB/KB}
XP1 x in vdd nw sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN1 x gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
XP2 y x vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN2 y gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
XP3 z y vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} {JP}
XN3 z gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} {JN}
.end
""".replace("{JN}", _J.format(w="WD")).replace("{JP}", _J.format(w="WP"))
# four stages (8 devices): outputs z (stage 3) and w (stage 4)
PCHAIN4 = PCHAIN3.replace(".end\n", "XP4 w z vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP} " + _J.format(w="WP")
                          + "\nXN4 w gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD} " + _J.format(w="WD") + "\n.end\n")

# four stages with per-stage lengths (4th round, NOTES §10): LPk/LDk of stage k (WP, WD shared), the
# 0.1 fF readout loads of pbit_x1 on w and z. A longer lvt pfet carries much less current at the same
# V_SG (its threshold rises steeply with L: 0.35 -> 0.45 µm is ~1/6 the current at 280 mV) and has less
# DIBL (stage gain 4.3 -> 6.8); a native sink ~2.3x longer rebalances it at the same VGP, so stages
# 3-4 can be cheaper and higher-gain while stages 1-2 (the noise node x and its load) stay minimum.
PCHAIN4S = """.param VDD=0.3 VB=0 VGP=0 KB=1 WD=0.42 WP=0.42 AJ=0 LP1=0.35 LD1=1.2 LP2=0.35 LD2=1.2 LP3=0.35 LD3=1.2 LP4=0.35 LD4=1.2
Vdd vdd 0 {VDD}
Vgp gp 0 {VGP}
Vin in 0 {VDD/2}
Vnw nw 0 {VDD+VB/KB}
XP1 x in vdd nw sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP1}
XN1 x gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD1}
XP2 y x vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP2}
XN2 y gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD2}
XP3 z y vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP3}
XN3 z gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD3}
XP4 w z vdd vdd sky130_fd_pr__pfet_01v8_lvt w={WP} l={LP4}
XN4 w gp 0 0 sky130_fd_pr__nfet_05v0_nvt w={WD} l={LD4}
Cw w 0 0.1f
Cz z 0 0.1f
.end
"""
# the same with a small capacitor CF from z (in phase with x: two inversions) back to the noise node x:
# AC positive feedback (a Miller capacitance of -CF*(A2*A3-1) on x during a transition, none at DC, so
# the DC balance and trim are unchanged); a metal fringe of 20-40 aF
PCHAIN4CF = PCHAIN4S.replace("LD4=1.2\n", "LD4=1.2 CF=0\n", 1).replace("Cz z 0 0.1f\n", "Cz z 0 0.1f\nCf z x {CF}\n")
S4 = dict(WD=0.42, WP=0.42, KB=1.0, AJ=0.0, LP1=0.35, LD1=1.2, LP2=0.35, LD2=1.2, LP3=0.35, LD3=1.2, LP4=0.35, LD4=1.2)
#: stage-2 DC gain at balance of the minimum stage (pfet 0.42/0.35, native 0.42/1.2) vs VDD, tt 27 C
#: (noisecell.trim, 4th round): 4.03 @ 260 mV, 4.34 @ 280, 4.64 @ 300, 5.17 @ 336


@dataclass(frozen=True)
class Candidate:
    """One point of the search: topology (netlist), sizes (µm), bias lever, trim range, gain target."""

    name: str
    netlist: str
    params: dict
    note: str
    gain_target: float = 1.083
    trim_range: tuple[float, float] = (-0.45, 0.3)
    vdd_range: tuple[float, float] = (0.06, 0.2)
    supplies_rel: tuple[float, ...] = (1.0, 1.015)  # transient supplies, relative to the DC gain-target supply
    delta_v: float = 0.004  # bias step of the sigmoid runs, V
    devices: int = 4
    outputs: tuple[str, str] = ("q", "qb")  # (v_out, v_outb): the readout pair, also the balance's sensed/forced nodes
    hysteresis_v: float = 0.03  # readout Schmitt band, V
    kind: str = "latch"  # "latch" (mismatch offset: trim.bias_offset) or "chain" (chain_offset)
    cap_node: tuple[str, str | None] = ("q", "qb")  # node whose C is reported, node held at VDD/2 meanwhile
    balance_nodes: tuple[str, str] | None = None  # ([balance] force_node, sense_node); None: the outputs


BASE = dict(WD=0.42, LD=0.9, WP=0.42, LP=0.35, KB=2.0, VNW=0.0, AJ=0.0)
CANDIDATES = {c.name: c for c in [
    Candidate("p6_pbit", P6, dict(WD=0.42, LD=0.9, WP=0.42, LP=0.35),
              "the shipped pbit (2 loads per side, one in a bias well)", devices=6, delta_v=0.004),
    Candidate("p4_k1", P4, {**BASE, "KB": 1.0}, "4T: one load per side, both wells biased ±VB/2 (NOTES §8 p4)",
              delta_v=0.002),
    Candidate("p4_k2", P4, BASE, "4T, wells differ by VB/2 (lever halved without extra devices)"),
    Candidate("p4_k2_g106", P4, BASE, "4T k2, lower barrier (gain target 1.06)", gain_target=1.06),
    Candidate("p4_k2_g111", P4, BASE, "4T k2, higher barrier (gain target 1.11)", gain_target=1.11),
    Candidate("p4_LP1", P4, {**BASE, "LP": 1.0}, "4T k2, long pfet loads (L 1 µm: higher r_out, lower supply)"),
    Candidate("p4_LD12", P4, {**BASE, "LD": 1.2}, "4T k2, longer native pull-downs (L 1.2 µm: less DIBL, more gate C)"),
    Candidate("p4_fbb", P4, {**BASE, "VNW": -0.1}, "4T k2, pfet wells 0.1 V forward-biased (both)"),
    Candidate("pn", PN, BASE, "complementary: cross-coupled pfet_01v8_lvt pull-ups, native current sinks",
              trim_range=(-0.45, 0.3)),
    Candidate("pn_fbb2", PN, {**BASE, "VNW": -0.2, "AJ": 0.29}, "complementary, pull-up wells 0.2 V forward-biased "
              "(junctions modelled)", trim_range=(-0.45, 0.3)),
    Candidate("pn_fbb3", PN, {**BASE, "VNW": -0.3, "AJ": 0.29}, "complementary, pull-up wells 0.3 V forward-biased "
              "(junctions modelled)", trim_range=(-0.45, 0.3)),
    Candidate("chain3", PCHAIN3, {**BASE, "KB": 1.0}, "amplified noise, 3 stages (pfet_01v8_lvt amplifiers, native sinks)",
              gain_target=3.52, vdd_range=(0.06, 0.5), trim_range=(-0.5, 0.6), devices=6, outputs=("z", "y"),
              hysteresis_v=0.06, kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.2), delta_v=0.01),
    Candidate("chain4", PCHAIN4, {**BASE, "KB": 1.0}, "amplified noise, 4 stages", gain_target=3.52,
              vdd_range=(0.06, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"), hysteresis_v=0.06,
              kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.2), delta_v=0.01),
    Candidate("chain4_LD12", PCHAIN4, {**BASE, "KB": 1.0, "LD": 1.2}, "amplified noise, 4 stages, native sinks L 1.2 µm",
              gain_target=4.669, vdd_range=(0.06, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"),
              hysteresis_v=0.06, kind="chain", cap_node=("x", None), supplies_rel=(1.0, 0.93, 1.17), delta_v=0.01),
    Candidate("chain4_LD3", PCHAIN4, {**BASE, "KB": 1.0, "LD": 3.0}, "amplified noise, 4 stages, native sinks L 3 µm",
              gain_target=3.346, vdd_range=(0.06, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"),
              hysteresis_v=0.06, kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.18), delta_v=0.01),
    # 4th round (NOTES §10): cheaper, higher-gain stages 3-4 at a lower supply; balance on stage 2
    # (x forced, y sensed: the minimum stage, identical to stage 1); gain target 4.34 = 280 mV
    Candidate("x2_s34L40", PCHAIN4S, {**S4, "LP3": 0.40, "LD3": 1.72, "LP4": 0.40, "LD4": 1.72},
              "4 stages, stages 3-4 pfet L 0.40 / native L 1.72 (1/3 the current, gain 5.4)", gain_target=4.34,
              vdd_range=(0.15, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"), hysteresis_v=0.08,
              kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.071, 0.929), delta_v=0.005,
              balance_nodes=("x", "y")),
    Candidate("x2_s34L45", PCHAIN4S, {**S4, "LP3": 0.45, "LD3": 3.14, "LP4": 0.45, "LD4": 3.14},
              "4 stages, stages 3-4 pfet L 0.45 / native L 3.14 (1/7 the current, gain 6.8)", gain_target=4.34,
              vdd_range=(0.15, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"), hysteresis_v=0.08,
              kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.071, 0.929), delta_v=0.005,
              balance_nodes=("x", "y")),
    Candidate("x2_s4L45", PCHAIN4S, {**S4, "LP4": 0.45, "LD4": 3.14},
              "4 stages, stage 4 only pfet L 0.45 / native L 3.14", gain_target=4.34,
              vdd_range=(0.15, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"), hysteresis_v=0.08,
              kind="chain", cap_node=("x", None), supplies_rel=(1.0, 1.071, 0.929), delta_v=0.005,
              balance_nodes=("x", "y")),
    # AC positive feedback z -> x (PCHAIN4CF), pbit_x1's sizes, at 280-320 mV (gain target 4.64 = 300 mV)
    *[Candidate(f"x2_cf{int(cf * 1e18)}", PCHAIN4CF, {**S4, "CF": cf},
                f"pbit_x1 sizes, CF = {cf * 1e18:.0f} aF from z to x (AC positive feedback)", gain_target=4.64,
                vdd_range=(0.15, 0.5), trim_range=(-0.5, 0.6), devices=8, outputs=("w", "z"), hysteresis_v=0.08,
                kind="chain", cap_node=("x", None), supplies_rel=(1.0, 0.933, 1.067), delta_v=0.005,
                balance_nodes=("x", "y")) for cf in (0.0, 20e-18, 40e-18, 80e-18)],
    Candidate("p4_k2_j", P4, {**BASE, "AJ": 0.29}, "4T k2 with drain/source junctions modelled (layout-realistic C)"),
]}

def pchain5(stages: int = 4, sink: str = "nfet_05v0_nvt", amp: str = "pfet_01v8_lvt") -> str:
    """5th round (NOTES §11): the chain with per-stage sizes (WPk/LPk pfet, WDk/LDk native sink of
    stage k), every pfet n-well at VDD + VNW (stage 1's also + VB: the bias), an optional extra
    capacitance CX on the noise node x (the energy-vs-C check) and pbit_x2's 0.1 fF readout loads on
    the last two outputs. ``stages`` = 3 (6 devices, readout z/y) or 4 (8 devices, readout w/z);
    ``sink``: the sinks' sky130 device (the native by default; nfet_01v8_lvt: thin oxide, smaller drain);
    ``amp``: the pfets' device (round 6: pfet_01v8 / pfet_01v8_hvt, higher |V_th| like a reverse well)."""
    nodes = ["x", "y", "z", "w"][:stages]
    ps = " ".join(f"WP{k}=0.42 LP{k}=0.35 WD{k}=0.42 LD{k}=1.2" for k in range(1, stages + 1))
    # pbit_x2's integration settings (its netlist says why: saturated records stalled with the defaults)
    lines = [".options method=gear reltol=1e-2", f".param VDD=0.3 VB=0 VGP=0 VNW=0 KB=1 AJ=0 CX=0 CL=1e-16 {ps}", "Vdd vdd 0 {VDD}", "Vgp gp 0 {VGP}",
             "Vin in 0 {VDD/2}", "Vnw1 nw1 0 {VDD+VNW+VB/KB}", "Vnw nw 0 {VDD+VNW}"]
    for k, out in enumerate(nodes, start=1):
        gate = "in" if k == 1 else nodes[k - 2]
        well = "nw1" if k == 1 else "nw"
        lines += [f"XP{k} {out} {gate} vdd {well} sky130_fd_pr__{amp} w={{WP{k}}} l={{LP{k}}}",
                  f"XN{k} {out} gp 0 0 sky130_fd_pr__{sink} w={{WD{k}}} l={{LD{k}}}"]
    lines += ["Cx x 0 {CX+1e-21}", f"C{nodes[-1]} {nodes[-1]} 0 {{CL}}", f"C{nodes[-2]} {nodes[-2]} 0 {{CL}}", ".end", ""]
    return "\n".join(lines)


def s5(stages: int = 4, **over) -> dict:
    """Round-5 parameters: pbit_x2's sizes, with ``over`` (e.g. LP3=0.45, VNW=-0.1) on top."""
    d = {"VNW": 0.0, "KB": 1.0, "AJ": 0.0, "CX": 0.0, "CL": 1e-16}
    for k in range(1, stages + 1):
        d.update({f"WP{k}": 0.42, f"LP{k}": 0.35, f"WD{k}": 0.42, f"LD{k}": 1.2})
    d.update(over)
    return d


def c5(name: str, note: str, *, stages: int = 4, gain: float = 5.2, rel=(1.0,), sink: str = "nfet_05v0_nvt",
       amp: str = "pfet_01v8_lvt", **over) -> Candidate:
    """A round-5 chain candidate (balance on stage 2: x forced, y sensed)."""
    outs = ("w", "z") if stages == 4 else ("z", "y")
    return Candidate(name, pchain5(stages, sink, amp), s5(stages, **over), note, gain_target=gain, vdd_range=(0.12, 0.6),
                     trim_range=(-0.5, 0.8), devices=2 * stages, outputs=outs, hysteresis_v=0.08, kind="chain",
                     cap_node=("x", None), supplies_rel=tuple(rel), delta_v=0.005, balance_nodes=("x", "y"))


#: round 5 (NOTES §11): the energy law's checks and the routes the brief names
ROUND5 = [
    c5("x3_ref", "pbit_x2 as shipped (VNW 0), gain 5.2: the same-run baseline", rel=(1.0, 0.887)),
    # same gain, other current: P·tau should not move (tau ~ 1/I), only tau
    c5("x3_vnw_m10", "pbit_x2, pfet wells 0.1 V forward (VNW -0.1: the models' limit): more current", VNW=-0.1),
    c5("x3_vnw_p15", "pbit_x2, pfet wells 0.15 V reverse (VNW +0.15): less current", VNW=0.15),
    c5("x3_vnw_p30", "pbit_x2, pfet wells 0.3 V reverse (VNW +0.3): less current", VNW=0.3),
    # same circuit, more capacitance on the noise node
    c5("x3_cx30", "pbit_x2 + 0.3 fF on x (energy vs C_x)", CX=0.3e-15),
    # longer pfets everywhere: more gain per stage (less DIBL) at a lower supply, less current
    c5("x3_L40", "all pfets L 0.40, sinks L 1.72: gain 5.2 at a lower supply", rel=(1.0, 0.93),
       **{f"LP{k}": 0.40 for k in range(1, 5)}, **{f"LD{k}": 1.72 for k in range(1, 5)}),
    c5("x3_L40f", "all pfets L 0.40, sinks L 1.72, wells 0.1 V forward", rel=(1.0, 0.93), VNW=-0.1,
       **{f"LP{k}": 0.40 for k in range(1, 5)}, **{f"LD{k}": 1.72 for k in range(1, 5)}),
    c5("x3_L45", "all pfets L 0.45, sinks L 3.14", rel=(1.0, 0.93),
       **{f"LP{k}": 0.45 for k in range(1, 5)}, **{f"LD{k}": 3.14 for k in range(1, 5)}),
    # fewer stages (6 devices) with higher-gain stages
    c5("x3_3s_L45", "3 stages (6 devices, readout z/y), pfets L 0.45, sinks L 3.14, gain 6.8", stages=3, gain=6.8,
       rel=(1.0, 1.1), **{f"LP{k}": 0.45 for k in range(1, 4)}, **{f"LD{k}": 3.14 for k in range(1, 4)}),
    c5("x3_3s", "3 stages (6 devices, readout z/y), pbit_x2 sizes, gain 5.2", stages=3, rel=(1.0, 1.1)),
]

#: round 5b: reverse well bias (deeper subthreshold: lower gate capacitance, the gain at a lower supply)
#: traced along VNW and the gain target, with the readout loads halved (CL 0.05 fF)
ROUND5B = [
    *[c5(f"x3_vnw_p{int(round(v * 100))}", f"pbit_x2, pfet wells {v:g} V reverse (VNW +{v:g})", VNW=v)
      for v in (0.2, 0.25, 0.35)],
    c5("x3_vnw_p30_g48", "pbit_x2, VNW +0.3, gain target 4.8", VNW=0.3, gain=4.8),
    c5("x3_vnw_p25_cl05", "pbit_x2, VNW +0.25, readout loads 0.05 fF", VNW=0.25, CL=0.05e-15),
    c5("x3_vnw_p30_cl05", "pbit_x2, VNW +0.3, readout loads 0.05 fF", VNW=0.3, CL=0.05e-15),
    # thin-oxide sinks: nfet_01v8_lvt (gate at VGP ~0.3-0.4 V) instead of the 5 V native (smaller drain C?)
    *[c5(f"x3_nlvt_L{int(L * 10):02d}", f"VNW +0.3, sinks nfet_01v8_lvt 0.42/{L:g}", VNW=0.3, sink="nfet_01v8_lvt",
         **{f"LD{k}": L for k in range(1, 5)}) for L in (0.5, 1.0)],
]

#: item 4 (NOTES §11): the offset against energy/speed trade on pbit_x2 (the issue-17 candidate). The
#: offset is set by stage 1 (the noise node's two devices) and stage 2's threshold, each ~1/sqrt(area)
#: (Pelgrom); wider devices there cost current (stage 1, stage 2) and capacitance on x (stage 2's gate).
#: Run with the same mismatch seeds for every row: sky130's mismatch draws are N(0,1) per device scaled
#: by its area, so the rows' offsets are paired instance by instance
TRADE = [
    c5("x3_t_ref", "pbit_x2: the trade's baseline"),
    c5("x3_t_s1w2", "pbit_x2, stage 1 (XP1, XN1) 2x wide", WP1=0.84, WD1=0.84),
    c5("x3_t_s1w4", "pbit_x2, stage 1 4x wide", WP1=1.68, WD1=1.68),
    c5("x3_t_s12w2", "pbit_x2, stages 1-2 2x wide", WP1=0.84, WD1=0.84, WP2=0.84, WD2=0.84),
]

def _own_gate1(c: Candidate, sink1: str | None = None) -> Candidate:
    """``c`` with stage 1's sink on its own gate VGP + DG1 (a .param, 0 until x4levers sets it so x sits
    at VDD/2 at zero bias): a stage-1 sink unlike the others can carry the same current. ``sink1``:
    stage 1's sink device (default: the others')."""
    import dataclasses

    net = c.netlist.replace("XN1 x gp 0 0", "XN1 x gp1 0 0").replace("Vgp gp 0 {VGP}", "Vgp gp 0 {VGP}\nVgp1 gp1 0 {VGP+DG1}")
    net = net.replace(".param VDD=0.3 ", ".param VDD=0.3 DG1=0 ")
    if sink1:
        net = re.sub(r"^(XN1 x gp1 0 0 sky130_fd_pr__)\w+", rf"\g<1>{sink1}", net, flags=re.M)
    return dataclasses.replace(c, netlist=net, params={**c.params, "DG1": 0.0})


#: round 6 (NOTES §12): the energy law's levers one at a time from pbit_x3 (VNW +0.3, gain 5.2): the
#: sink device (the 5 V native's drain and overlap on x against thin/3.3 V oxide), the amplifier pfet
#: (higher |V_th| flavours sit deeper in weak inversion at V_SG = VDD/2, as a reverse well does; the
#: regular pfet_01v8 also allows L below lvt's 0.35 µm minimum: less gate capacitance on x)
_SINK_L = lambda L: {f"LD{k}": L for k in range(1, 5)}  # noqa: E731
_AMP_L = lambda L: {f"LP{k}": L for k in range(1, 5)}  # noqa: E731
ROUND6 = [
    c5("x4_n33_L05", "VNW +0.3, sinks nfet_03v3_nvt 0.42/0.5 (3.3 V native: thinner oxide, shorter)", VNW=0.3,
       sink="nfet_03v3_nvt", **_SINK_L(0.5)),
    c5("x4_n33_L10", "VNW +0.3, sinks nfet_03v3_nvt 0.42/1.0", VNW=0.3, sink="nfet_03v3_nvt", **_SINK_L(1.0)),
    c5("x4_n05_L09", "VNW +0.3, native sinks at their minimum L 0.9", VNW=0.3, **_SINK_L(0.9)),
    c5("x4_n18_L10", "VNW +0.3, sinks nfet_01v8 0.42/1.0", VNW=0.3, sink="nfet_01v8", **_SINK_L(1.0)),
    c5("x4_n18_L05", "VNW +0.3, sinks nfet_01v8 0.42/0.5", VNW=0.3, sink="nfet_01v8", **_SINK_L(0.5)),
    c5("x4_nlvt_L02", "VNW +0.3, sinks nfet_01v8_lvt 0.42/0.25", VNW=0.3, sink="nfet_01v8_lvt", **_SINK_L(0.25)),
    c5("x4_nlvt_L20", "VNW +0.3, sinks nfet_01v8_lvt 0.42/2.0", VNW=0.3, sink="nfet_01v8_lvt", **_SINK_L(2.0)),
    # stage 1 only (the noise node): a shorter sink raises G_x at about the same current (lower I/G_x,
    # shorter tau_x) while stages 2-4 keep the gain; the stage-1 imbalance is centred with the bias VB
    c5("x4_s1L09", "VNW +0.3, stage-1 sink L 0.9 (others 1.2)", VNW=0.3, LD1=0.9),
    c5("x4_s1w2L09", "VNW +0.3, stage 1 2x wide, its sink L 0.9", VNW=0.3, LD1=0.9, WD1=0.84, WP1=0.84),
    *[_own_gate1(c5(f"x4_g1L{int(L * 100):03d}", f"VNW +0.3, stage-1 sink L {L:g} on its own gate VGP+DG1 "
                    "(x at VDD/2: the same stage-1 current, a larger G_x)", VNW=0.3, LD1=L)) for L in (0.9,)],
    *[_own_gate1(c5(f"x4_g1lvt{int(L * 100):03d}", f"VNW +0.3, stage-1 sink nfet_01v8_lvt 0.42/{L:g} on its own gate "
                    "VGP+DG1 (short thin-oxide channel: a much larger G_x at the same current)", VNW=0.3, LD1=L),
                 sink1="nfet_01v8_lvt") for L in (0.15, 0.25, 0.5)],
    *[c5(f"x4_vnw_p{int(round(v * 100))}", f"pbit_x2, pfet wells {v:g} V reverse (VNW +{v:g}): the front past pbit_x3",
         VNW=v) for v in (0.4, 0.5)],
    c5("x4_vnw_p25_g48", "pbit_x2, VNW +0.25, gain target 4.8", VNW=0.25, gain=4.8),
    c5("x4_vnw_p20_g44", "pbit_x2, VNW +0.2, gain target 4.4", VNW=0.2, gain=4.4),
    # gain x well grid (the lower gain lowers VDD and I/G; the lower well bias brings tau back under 100 ns)
    *[c5(f"x4_vnw_p{int(round(v * 100)):02d}_g{int(round(g * 10))}", f"pbit_x2, VNW +{v:g}, gain target {g:g}",
         VNW=v, gain=g) for g, v in ((4.8, 0.2), (4.6, 0.2), (4.6, 0.15), (4.4, 0.15), (4.4, 0.1), (4.2, 0.15),
                                     (4.0, 0.1))],
    # the other way: a longer stage-1 sink (own gate) raises I/G_x, so the noise on x (variance ~ q(I/G_x)/C_x)
    # grows without touching stages 2-4: deeper valleys at a lower gain (lower VDD)?
    *[_own_gate1(c5(f"x4_g1L{int(L * 10):02d}_p{int(round(v * 100)):02d}_g{int(round(g * 10))}",
                    f"VNW +{v:g}, gain {g:g}, stage-1 sink L {L:g} on its own gate (more noise on x)",
                    VNW=v, gain=g, LD1=L)) for L, v, g in ((2.4, 0.15, 4.4), (4.8, 0.15, 4.4), (4.8, 0.15, 4.2),
                                                           (4.8, 0.2, 4.6))],
    *[_own_gate1(c5(f"x4_g1P{int(lp * 100):03d}L{int(L * 10):02d}_p{int(round(v * 100)):02d}_g{int(round(g * 10))}",
                    f"VNW +{v:g}, gain {g:g}, stage-1 pfet L {lp:g} and sink L {L:g} on its own gate (P1's g_ds too)",
                    VNW=v, gain=g, LP1=lp, LD1=L)) for lp, L, v, g in ((0.7, 4.8, 0.15, 4.2), (1.4, 4.8, 0.15, 4.2),
                                                                       (1.4, 4.8, 0.1, 4.0), (0.4, 2.4, 0.15, 4.2),
                                                                       (0.45, 2.4, 0.15, 4.2), (0.4, 2.4, 0.1, 4.0))],
    c5("x4_phvt", "VNW 0, pfets pfet_01v8_hvt 0.42/0.35", VNW=0.0, amp="pfet_01v8_hvt"),
    c5("x4_phvt_p15", "VNW +0.15, pfets pfet_01v8_hvt 0.42/0.35", VNW=0.15, amp="pfet_01v8_hvt"),
    c5("x4_p18_L35", "VNW 0, pfets pfet_01v8 0.42/0.35", VNW=0.0, amp="pfet_01v8"),
    c5("x4_p18_L25", "VNW 0, pfets pfet_01v8 0.42/0.25", VNW=0.0, amp="pfet_01v8", **_AMP_L(0.25)),
    c5("x4_p18_L18", "VNW 0, pfets pfet_01v8 0.42/0.18", VNW=0.0, amp="pfet_01v8", **_AMP_L(0.18)),
    c5("x4_p18_L25_p30", "VNW +0.3, pfets pfet_01v8 0.42/0.25", VNW=0.3, amp="pfet_01v8", **_AMP_L(0.25)),
]



def c7(name: str, note: str, *, gain: float = 4.0, clz: float | None = None, **over) -> Candidate:
    """A round-7 candidate (NOTES §13): pbit_x4's readout (single-ended, w against the VDD/2 node
    ``in``, 40 mV Schmitt band) on the round-5 chain; ``clz``: z's readout load instead of CL (z is not
    read single-ended; w keeps its 0.1 fF, which ngspice's step control needs)."""
    c = c5(name, note, gain=gain, **over)
    import dataclasses

    net = c.netlist
    params = dict(c.params)
    if clz is not None:
        net = net.replace("Cz z 0 {CL}", "Cz z 0 {CLZ}").replace(" CL=1e-16 ", " CL=1e-16 CLZ=1e-16 ")
        params["CLZ"] = clz
    return dataclasses.replace(c, netlist=net, params=params, outputs=("w", "in"), hysteresis_v=0.04)


_LD = lambda L: {f"LD{k}": L for k in range(1, 5)}  # noqa: E731
_WD = lambda W: {f"WD{k}": W for k in range(1, 5)}  # noqa: E731
#: round 7 (NOTES §13): pbit_x4's point (VNW 0.125, gain 4.0, single-ended) and the sink levers §12 left:
#: the length LD of all four native sinks (lower g_ds: the gain at a lower supply; the drain junction and
#: overlap scale with W, not L), their width WD, z's readout load, with VNW / gain 3.8-4.0 to hold tau
ROUND7 = [
    c7("x5_ref", "pbit_x4 (VNW 0.125, gain 4.0, LD 1.2, read w vs VDD/2)", VNW=0.125),
    *[c7(f"x5_L{int(round(L * 10)):02d}_p{int(round(v * 1000)):03d}" if v >= 0 else
         f"x5_L{int(round(L * 10)):02d}_m{int(round(-v * 1000)):03d}",
         f"pbit_x4 with all four sinks L {L:g}, VNW {v:+g}, gain 4.0", VNW=v, **_LD(L))
      for L in (1.8, 2.4, 3.6, 4.8) for v in (0.125, 0.05, 0.0, -0.05)],
    *[c7(f"x5_L{int(round(L * 10)):02d}_p{int(round(v * 1000)):03d}_g38",
         f"pbit_x4 with all four sinks L {L:g}, VNW {v:+g}, gain 3.8", VNW=v, gain=3.8, **_LD(L))
      for L in (2.4, 3.6) for v in (0.125, 0.05)],
    c7("x5_W084_L24_p050", "sinks 0.84/2.4 (2x wide), VNW +0.05, gain 4.0", VNW=0.05, **_LD(2.4), **_WD(0.84)),
    c7("x5_W084_p125", "sinks 0.84/1.2 (2x wide), VNW +0.125, gain 4.0", VNW=0.125, **_WD(0.84)),
    c7("x5_clz0_p125", "pbit_x4 with z's readout load 1 aF instead of 0.1 fF", VNW=0.125, clz=1e-18),
    # z's load off (z is not read single-ended) along VNW and the gain
    *[c7(f"x5_clz0_p{int(round(v * 1000)):03d}" + ("" if g == 4.0 else f"_g{int(round(g * 10))}"),
         f"pbit_x4 with z's readout load 1 aF, VNW {v:+g}, gain {g:g}", VNW=v, gain=g, clz=1e-18)
      for v, g in ((0.1, 4.0), (0.15, 4.0), (0.175, 4.0), (0.1, 3.8), (0.125, 3.8), (0.15, 3.8))],
    # the pfets' length: LD above does not move the supply for gain 4.0 (the pfet's g_ds sets the gain)
    *[c7(f"x5_P{int(round(lp * 100)):03d}_" + (f"p{int(round(v * 1000)):03d}" if v >= 0 else f"m{int(round(-v * 1000)):03d}"),
         f"pbit_x4 with all four pfets L {lp:g}, VNW {v:+g}, gain 4.0", VNW=v, **_AMP_L(lp))
      for lp in (0.38, 0.42) for v in (0.125, 0.0, -0.1)],
    # the DC front of each pfet length along VNW (compare at equal predicted tau)
    *[c7(f"x5_P{int(round(lp * 100)):03d}_" + (f"p{int(round(v * 1000)):03d}" if v >= 0 else f"m{int(round(-v * 1000)):03d}"),
         f"pbit_x4 with all four pfets L {lp:g}, VNW {v:+g}, gain 4.0", VNW=v, **_AMP_L(lp))
      for lp, vs in ((0.35, (0.05, 0.2, 0.3)), (0.36, (0.125, 0.05, 0.0)), (0.37, (0.125, 0.05, 0.0, -0.05)),
                     (0.38, (0.05, -0.05))) for v in vs],
]

CANDIDATES.update({c.name: c for c in ROUND5 + ROUND5B + TRADE + ROUND6 + ROUND7})



def make_cell(c: Candidate, scratch: Path) -> str:
    """Scratch cell folder for candidate ``c`` (pbit's cell.toml with the candidate's netlist/params)."""
    d = scratch / c.name
    d.mkdir(parents=True, exist_ok=True)
    (d / "cell.cir").write_text(c.netlist)
    src = (ROOT / "spice_models" / "pbit" / "cell.toml").read_text().split("# --- trim table")[0]
    t = src.replace('name = "pbit"', f'name = "{c.name}"').replace('netlist = "pbit.cir"', 'netlist = "cell.cir"')
    t = t.replace('v_out = "q"', f'v_out = "{c.outputs[0]}"').replace('v_outb = "qb"', f'v_outb = "{c.outputs[1]}"')
    t = t.replace("hysteresis_v = 0.03", f"hysteresis_v = {c.hysteresis_v}")
    t = re.sub(r"range_v = \[0\.06, 0\.2\]", f"range_v = [{c.vdd_range[0]}, {c.vdd_range[1]}]", t)
    if not c.vdd_range[0] <= 0.1045 <= c.vdd_range[1]:  # pbit's nominal supply outside this candidate's range
        t = t.replace("nominal_v = 0.1045", f"nominal_v = {(c.vdd_range[0] + c.vdd_range[1]) / 2}", 1)
    t = t.split("[trim.VGP]")[0]
    kb = float(c.params.get("KB", 1.0))  # a weaker lever needs a proportionally wider bias range
    t = t.replace("range_v = [-0.4, 0.4]", f"range_v = [{-0.4 * kb}, {0.4 * kb}]")
    t += f"[trim.VGP]\nnominal_v = 0.0\nrange_v = [{c.trim_range[0]}, {c.trim_range[1]}]\n\n[params]\n"
    t += "".join(f'{k} = {{ nominal = {v}, min = -1.0, max = 20.0, unit = "um" }}\n' for k, v in c.params.items())
    t += f'\n[balance]\ntrim = "VGP"\nlow_node = "0"\ngain_target = {c.gain_target}\n'
    if c.balance_nodes:
        t += f'force_node = "{c.balance_nodes[0]}"\nsense_node = "{c.balance_nodes[1]}"\n'
    if c.kind == "chain":
        t += "faster_with_supply = true\n"
    (d / "cell.toml").write_text(t)
    return str(d)


def node_capacitance(c: Candidate, vgp: float, vdd: float) -> tuple[float, float]:
    """(C, G) of node ``c.cap_node[0]`` (latch: q, with qb held at its DC balance VDD/2; chain: the
    noise node x) from the AC admittance at 10 MHz (F, S), mismatch off, tt 27 °C."""
    node, held = c.cap_node
    body = c.netlist
    vals = {**c.params, "VDD": vdd, "VGP": vgp, "VB": 0.0}
    for k, v in vals.items():
        body = re.sub(rf"\b{k}=[^ \n]+", f"{k}={v!r}", body, count=1)
    body = body.replace(".end", "")
    # the forced qb and a 0 V ammeter into q; every device terminal named q stays on q
    net = "\n".join(model_lines("sky130", "tt", mismatch=False)) + "\n" + body + f"""
{f"Vqb_force {held} 0 {vdd / 2!r}" if held else ""}
Vq_drive qd 0 DC {vdd / 2!r} AC 1
Vq_meter qd {node} 0
.control
ac lin 1 1e7 1e7
let y = i(Vq_meter)
print imag(y)/(2*3.14159265358979*1e7) real(y)
quit
.endc
.end
"""
    with tempfile.TemporaryDirectory(prefix="x1cap-") as td:
        out = run_batch(net, td, technology="sky130", timeout_s=120, name=f"{c.name} node capacitance")
    nums = re.findall(r"= (-?[0-9.]+e[-+][0-9]+)", out)
    if len(nums) < 2:
        return float("nan"), float("nan")
    # ngspice's i(V) is the current through the source from its + node (qd) to its - node (q):
    # the current driven into q
    return float(nums[0]), float(nums[1])


def chain_offset(cell, *, mismatch_seed: int, trim_v: float, vdd_v: float) -> float | None:
    """Bias (V) at which a mismatched chain's noise-free DC output pair crosses (v_out = v_outb): the
    offset that instance needs for P(1) ≈ 0.5 (the chain's DC transfer from bias to the readout is
    monotonic and steep, so its zero is the centre of the sigmoid to first order). None outside the
    bias range. One ngspice process per evaluation (a reset would redraw the mismatch)."""
    from scipy.optimize import brentq

    from noisecell import netlist as nl

    lo, hi = cell.bias.range_v
    o, ob = cell.outputs["v_out"], cell.outputs["v_outb"]

    def diff(b: float) -> float:
        vals = T._cell_values(cell, corner="tt", temp_c=27.0, bias_v=b, vdd_v=vdd_v, trim={"VGP": trim_v}, params=None)
        body = nl.set_params(cell.template, vals, source=str(cell.netlist_path))
        body = "\n".join(ln for ln in body.splitlines() if ln.strip().lower() != ".end")
        text = "\n".join(["* chain offset", *model_lines("sky130", "tt", mismatch=True), body,
                          f".options temp=27.0 tnom=27.0 seed={int(mismatch_seed)}", ".control", "op",
                          f"print v({o})-v({ob})", "quit", ".endc", ".end"]) + "\n"
        with tempfile.TemporaryDirectory(prefix="x1off-") as td:
            out = run_batch(text, td, technology="sky130", timeout_s=120, name=f"{cell.name} chain offset")
        m = re.search(r"= (-?[0-9.]+e[-+][0-9]+)", out.split("print")[-1] if "print" in out else out)
        if not m:
            raise RuntimeError(f"chain offset: no operating point ({out.strip().splitlines()[-1:]})")
        return float(m.group(1))

    flo, fhi = diff(lo), diff(hi)
    if flo * fhi > 0:
        return None
    return float(brentq(diff, lo, hi, xtol=1e-5))


def run_one(args) -> dict:
    cellpath, vdd, vgp, bias, dur, seed, nt = args
    cell = load_cell(cellpath)
    job = job_from_cell(cell, bias_v=bias, vdd_v=vdd, trim={"VGP": vgp}, duration_s=dur, noise_step_s=nt, seed=seed)
    t0 = time.perf_counter()
    try:  # retries=1: noisecell's first non-convergence rung (Gear integration), recorded in wf.meta
        wf = run_job(job, retries=1)
    except Exception as exc:  # a failed run is a result of the search (recorded), not the end of it
        return {"bias_v": bias, "vdd_v": vdd, "seed": seed, "regime": "failed", "error": str(exc)[:300],
                "flips_per_us": 0.0, "p1": None, "tau_s": None, "power_w": float("nan"), "energy_per_bit_j": None,
                "duration_s": dur}
    wall = time.perf_counter() - t0
    r = classify_waveform(wf, skip_s=0.5e-6)
    est, _ = analyze_waveform(wf)
    d = est.to_dict()
    power = wf.mean_supply_power_w()
    tau = d.get("tau_s")
    return {"bias_v": bias, "vdd_v": vdd, "seed": seed, "regime": r.regime, "regime_detail": r.describe(),
            "flips_per_us": r.n_transitions / (r.duration_s * 1e6), "n_transitions": r.n_transitions,
            "p1": d.get("p1"), "p1_ci95": d.get("p1_ci95"), "tau_s": tau, "tau_s_ci95": d.get("tau_s_ci95"),
            "tau_w_s": r.within_state_tau_s, "valley": r.valley_ratio, "power_w": power,
            "energy_per_bit_j": power * tau if tau else None, "wall_s": wall, "duration_s": dur, "noise_step_s": nt,
            # is the stream a two-state Markov telegraph? (the cell model downstream assumes one)
            **{k: d.get(k) for k in ("markov_consistent", "markov_dwells_ok", "dwell_gof_p_0", "dwell_gof_p_1",
                                     "dwell_dispersion_0", "dwell_dispersion_1", "tau_iact_agree", "psd_tau_ratio",
                                     "n_dwells_0", "n_dwells_1")}}


def logistic_scale(points: list[tuple[float, float]]) -> float | None:
    """Logistic scale (V) from (bias, P(1)) points: least squares of logit P on bias (P clipped to
    [0.005, 0.995] so a saturated point still enters), 1/|slope| (the width does not depend on which
    way the bias moves P(1)). None if the slope is zero."""
    pts = [(b, min(max(p, 0.005), 0.995)) for b, p in points if p is not None]
    if len(pts) < 2:
        return None
    xs = [b for b, _ in pts]
    ys = [math.log(p / (1 - p)) for _, p in pts]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return 1.0 / abs(slope) if slope != 0 else None


def search(c: Candidate, scratch: Path, *, dur: float, seed: int, n_mm: int, workers: int, say,
           nt: float = 1e-9, offset_fn=None) -> list[dict]:
    """One candidate: DC, mismatch offsets, transient runs (module docstring). ``offset_fn(cell, seed,
    trim_v, vdd_v)``: a chain's offset method instead of chain_offset (e.g. x1mismatch.sweep_offset: one
    DC sweep per instance instead of a root search of ~12 processes)."""
    path = make_cell(c, scratch)
    cell = load_cell(path)
    t0 = time.perf_counter()
    dc = T.balanced_gain_point(cell, "tt", 27.0)
    if dc is None:
        say(f"{c.name}: no balanced point reaches gain {c.gain_target} inside the trim/supply ranges")
        return [{"candidate": c.name, "note": c.note, "params": c.params, "gain_target": c.gain_target,
                 "dc": None, "result": "no DC balance at the gain target"}]
    cap, cond = node_capacitance(c, dc.trim_v, dc.vdd_v)
    offs = []
    for s in range(1, n_mm + 1):
        if c.kind == "chain" and offset_fn is not None:
            off = offset_fn(cell, s, dc.trim_v, dc.vdd_v)
        elif c.kind == "chain":
            off = chain_offset(cell, mismatch_seed=s, trim_v=dc.trim_v, vdd_v=dc.vdd_v)
        else:
            off = T.bias_offset(cell, "tt", 27.0, mismatch_seed=s, trim_v=dc.trim_v, vdd_v=dc.vdd_v)
        offs.append(off)
    say(f"{c.name}: DC VGP={dc.trim_v:+.4f} V VDD={dc.vdd_v * 1e3:.2f} mV gain={dc.gain:.3f} "
        f"C={cap * 1e15:.3f} fF G={cond * 1e9:.1f} nS offsets={offs} ({time.perf_counter() - t0:.0f} s)")
    jobs, keys = [], []
    for rel in c.supplies_rel:
        v = dc.vdd_v * rel
        b = T.balance(cell, "tt", 27.0, v) if rel != 1.0 else dc
        if b is None:
            continue
        for bias in ((0.0, -c.delta_v, c.delta_v) if rel == 1.0 else (0.0,)):
            jobs.append((path, v, b.trim_v, bias, dur, seed, nt))
            keys.append((rel, b))
    with Pool(workers, maxtasksperchild=1) as pool:
        runs = pool.map(run_one, jobs)
    rows = []
    for rel in c.supplies_rel:
        mine = [(r, b) for r, (rr, b) in zip(runs, keys) if rr == rel]
        if not mine:
            continue
        b = mine[0][1]
        zero = next(r for r, _ in mine if r["bias_v"] == 0.0)
        ok = [r for r, _ in mine if r["regime"] != "failed"]
        scale = logistic_scale([(r["bias_v"], r["p1"]) for r in ok]) if len(ok) >= 3 else None
        good = [o for o in offs if o is not None]
        sd = statistics.stdev(good) if len(good) >= 2 else None
        row = {"candidate": c.name, "note": c.note, "devices": c.devices, "params": c.params,
               "gain_target": c.gain_target, "vdd_rel": rel, "vdd_v": b.vdd_v, "vgp_v": b.trim_v,
               "dc_gain": b.gain, "dc_vm_frac": b.vm_frac, "node_c_f": cap, "node_g_s": cond,
               "mismatch_offsets_v": offs, "mismatch_offset_sd_v": sd,
               "sigmoid_scale_v": scale, "width_10_90_v": None if scale is None else WIDTH_PER_SCALE * scale,
               "offset_sd_scales": None if (scale is None or sd is None) else sd / scale,
               "zero_bias": zero, "sigmoid_runs": [r for r, _ in mine if r["bias_v"] != 0.0]}
        rows.append(row)
        tau = zero["tau_s"]
        for r, _ in mine:
            if r["regime"] == "failed":
                say(f"  {c.name} VDD={b.vdd_v * 1e3:.2f} mV bias {r['bias_v'] * 1e3:+.1f} mV: simulation failed: {r['error']}")
        say(f"  {c.name} VDD={b.vdd_v * 1e3:.2f} mV: {zero['regime']}, {zero['flips_per_us']:.2f} flips/µs, "
            f"P1={'-' if zero['p1'] is None else '%.3f' % zero['p1']}, tau={'-' if not tau else '%.0f ns' % (tau * 1e9)}, P={zero['power_w'] * 1e9:.2f} nW, "
            f"E/bit={'-' if not tau else '%.0f aJ' % (zero['energy_per_bit_j'] * 1e18)}, "
            f"scale={'-' if scale is None else '%.2f mV' % (scale * 1e3)}")
    return rows


def table(path: Path) -> str:
    """Markdown table of a results file (the last row of each candidate and supply wins)."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[(r["candidate"], r.get("vdd_rel"))] = r
    out = ["| candidate | devices | VDD (mV) | VGP (V) | DC gain | node C (fF) | regime (0 bias, 10 µs) | flips/µs | P(1) | "
           "τ [95 % CI] (ns) | power (nW) | P·τ (aJ) | 10–90 % width (mV) | mismatch σ, mV of VB (instances in range) | σ in scales | "
           "NT (ns) | dwell dispersion 0/1 (1 = Markov), GoF p 0/1 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = (lambda x, k=1, nd=1: "—" if x is None else f"{x * k:.{nd}f}")
    for (name, _), r in rows.items():
        if r.get("dc") is None and "vdd_v" not in r:
            out.append(f"| {name} | | — | — | — | — | {r['result']} | | | | | | | | | | |")
            continue
        z = r["zero_bias"]
        if r.get("sigmoid_runs"):  # recomputed from the stored runs (older rows kept only a positive slope)
            pts = [(q["bias_v"], q["p1"]) for q in [z, *r["sigmoid_runs"]] if q.get("regime") != "failed"]
            sc = logistic_scale(pts) if len(pts) >= 2 else None
            r["width_10_90_v"] = None if sc is None else WIDTH_PER_SCALE * sc
            sd = r.get("mismatch_offset_sd_v")
            r["offset_sd_scales"] = None if (sc is None or sd is None) else sd / sc
        offs = r.get("mismatch_offsets_v") or []
        n_in = sum(o is not None for o in offs)
        ci = z.get("tau_s_ci95") or [None, None]
        tau = f"{f(z['tau_s'], 1e9, 0)} [{f(ci[0], 1e9, 0)}, {f(ci[1], 1e9, 0)}]" if z.get("tau_s") else "—"
        out.append(f"| {name} | {r['devices']} | {r['vdd_v'] * 1e3:.2f} | {r['vgp_v']:+.4f} | {r['dc_gain']:.3f} | "
                   f"{f(r['node_c_f'], 1e15, 3)} | {z['regime']} | {z['flips_per_us']:.2f} | {f(z['p1'], 1, 3)} | {tau} | "
                   f"{z['power_w'] * 1e9:.2f} | {f(z['energy_per_bit_j'], 1e18, 0)} | {f(r['width_10_90_v'], 1e3, 1)} | "
                   f"{f(r['mismatch_offset_sd_v'], 1e3, 0)} ({n_in}/{len(offs)}) | {f(r['offset_sd_scales'], 1, 0)} | "
                   f"{z.get('noise_step_s', 1e-9) * 1e9:g} | " + (
                       f"{f(z['dwell_dispersion_0'], 1, 2)}/{f(z['dwell_dispersion_1'], 1, 2)}, "
                       f"{f(z.get('dwell_gof_p_0'), 1, 3)}/{f(z.get('dwell_gof_p_1'), 1, 3)}" if "dwell_dispersion_0" in z
                       else "not recorded") + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="*")
    ap.add_argument("--duration", default="10us")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mismatch-seeds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--noise-step", default="0.5ns", help="NT of the transient runs (rounds 1-3 used 1ns)")
    ap.add_argument("--out", default=str(ROOT / "spice_models" / "design" / "x1search.jsonl"))
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    a = ap.parse_args()
    if a.table:
        print(table(Path(a.out)))
        return 0
    names = a.candidates or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"x1search: unknown candidate(s) {unknown}; known: {list(CANDIDATES)}", file=sys.stderr)
        return 2
    dur = parse_si(a.duration, unit="s")
    with tempfile.TemporaryDirectory(prefix="x1search-") as td:
        for n in names:
            for row in search(CANDIDATES[n], Path(td), dur=dur, seed=a.seed, n_mm=a.mismatch_seeds,
                              workers=a.workers, say=lambda s: print(s, flush=True),
                              nt=parse_si(a.noise_step, unit="s")):
                with open(a.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
