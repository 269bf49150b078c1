"""Pareto figure of the issue-17 design search: energy per bit P·τ against τ, coloured by mismatch offset.

Reads the candidates' rows (x1search.jsonl: zero-bias τ with its 95 % CI, power, offset σ in sigmoid
scales), the chosen cell's characterised figures (--chosen JSON: {"tau_s", "tau_ci95", "energy_j",
"energy_ci95", "offset_scales", "label", optional "replicates": the same cell's runs with other seeds}) and draws the seed's published point (~100 ns, ~350 aJ) and
the target box (τ ≤ 100 ns, P·τ ≤ 350 aJ). Filled markers: bistable by noisecell's regime detector;
open: single-peaked (not a usable p-bit point). Writes spice_models/design/pareto.png.

Usage: .venv/bin/python spice_models/design/pareto.py [--chosen spice_models/design/x1chosen.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=str(HERE / "x1search.jsonl"))
    ap.add_argument("--chosen", nargs="*", default=[str(HERE / "x1chosen.json"), str(HERE / "x2chosen.json"),
                                                  str(HERE / "x3chosen.json"), str(HERE / "x4chosen.json"),
                                                  str(HERE / "x5chosen.json"), str(HERE / "x6chosen.json")],
                    help="characterised cells to mark (diamonds); missing files are skipped")
    ap.add_argument("--transient", default=str(HERE / "x4transient.jsonl"),
                    help="the sixth round's 3 x 24 us rows (x4levers.py --transient; triangles, ±1.96 SE); skipped if missing")
    ap.add_argument("--out", default=str(HERE / "pareto.png"))
    a = ap.parse_args()
    rows = {}
    for ln in Path(a.rows).read_text().splitlines():
        if ln.strip():
            r = json.loads(ln)
            rows[(r["candidate"], r.get("vdd_rel"))] = r
    fig, (ax, ins) = plt.subplots(1, 2, figsize=(14, 6.2), gridspec_kw=dict(width_ratios=[1.55, 1]))
    norm = LogNorm(vmin=10, vmax=300)
    cmap = plt.get_cmap("viridis")
    # the offset in scales is measured once per candidate (at its gain-target supply): carry it to its other rows
    import sys
    sys.path.insert(0, str(HERE))
    from x1search import logistic_scale

    scales = {}
    for (name, _), r in rows.items():
        runs = [q for q in [r.get("zero_bias") or {}, *(r.get("sigmoid_runs") or [])]
                if q.get("regime") not in (None, "failed")]
        sd = r.get("mismatch_offset_sd_v")
        n_mm = sum(o is not None for o in (r.get("mismatch_offsets_v") or []))
        if len(runs) >= 2 and sd and n_mm >= 6:  # the 4th round's 3-4 instances are too few for a σ  # the same 3-point logistic scale as x1search --table
            sc = logistic_scale([(q["bias_v"], q["p1"]) for q in runs])
            if sc:
                scales[name] = sd / sc
    for (name, rel), r in rows.items():
        z = r.get("zero_bias") or {}
        tau, p = z.get("tau_s"), z.get("power_w")
        if not tau or not p:
            continue
        e = p * tau
        ci = z.get("tau_s_ci95") or [tau, tau]
        off = scales.get(name)
        colour = cmap(norm(min(max(off, 10), 300))) if off else (0.6, 0.6, 0.6, 1)
        filled = z.get("regime") == "bistable"
        ax.errorbar(tau * 1e9, e * 1e18, xerr=[[(tau - ci[0]) * 1e9], [(ci[1] - tau) * 1e9]],
                    yerr=[[(tau - ci[0]) * p * 1e18], [(ci[1] - tau) * p * 1e18]], fmt="none", ecolor=colour,
                    alpha=0.5, lw=1)
        ax.scatter(tau * 1e9, e * 1e18, s=60, marker="o" if name.startswith(("chain", "x2_", "x3_")) else "s",
                   facecolors=colour if filled else "none", edgecolors=colour, linewidths=1.5, zorder=3)
        if filled:  # single-peaked points unlabelled (not usable p-bits; they crowd the figure)
            ax.annotate(f"{name} {r['vdd_v'] * 1e3:.0f} mV", (tau * 1e9, e * 1e18), fontsize=6, xytext=(4, 3),
                        textcoords="offset points", alpha=0.8)
    # the 5th round's well-bias front (NOTES §11): pbit_x2's circuit at gain 5.2, VNW -0.1 ... +0.35 V
    front = sorted(((r["params"]["VNW"], r["zero_bias"]["tau_s"], r["zero_bias"]["power_w"])
                    for (name, rel), r in rows.items()
                    if rel == 1.0 and (name == "x3_ref" or name.startswith("x3_vnw_")) and "_" not in name[7:]
                    and (r.get("zero_bias") or {}).get("tau_s")), key=lambda t: t[0])
    if len(front) >= 2:
        ax.plot([t * 1e9 for _, t, _ in front], [t * p * 1e18 for _, t, p in front], "--", color="tab:blue", lw=1,
                zorder=2)
        v, t, p = front[-1]
        ax.annotate("well-bias front (VNW −0.1 … +0.35 V)", (t * 1e9, t * p * 1e18), fontsize=7, color="tab:blue",
                    xytext=(6, -14), textcoords="offset points")
    # the sixth round (NOTES §12): mean τ of 3 x 24 us records, P·τ with its SE; filled when at least 2 of the
    # 3 records are bistable (no offsets measured: grey)
    six = {}
    if Path(a.transient).is_file():
        for ln in Path(a.transient).read_text().splitlines():
            if ln.strip():
                q = json.loads(ln)
                if q.get("result") == "ok" and q.get("tau_s"):
                    six[q["candidate"]] = q
    # the seventh round (NOTES §13, candidates x5_*: pbit_x4's single-ended readout) in purple
    chosen_rows = [json.loads(p.read_text()) for p in map(Path, a.chosen) if p.is_file()]
    # right panel: a zoom on the target corner (the same triangles, box and characterised cells; linear axes)
    for axx, zoom in ((ax, False), (ins, True)):
        for name, q in six.items():
            t, e = q["tau_s"] * 1e9, q["energy_per_bit_j"] * 1e18
            dt = 1.96 * (q.get("tau_se_s") or 0.0) * 1e9
            de = 1.96 * (q.get("energy_se_j") or 0.0) * 1e18
            filled = sum(g == "bistable" for g in q["regimes"]) >= 2
            col = "tab:purple" if name.startswith("x5_") else "tab:orange"
            axx.errorbar([t], [e], xerr=[[dt], [dt]], yerr=[[de], [de]], fmt="none", ecolor=col, alpha=0.5, lw=1)
            axx.scatter([t], [e], s=40 if zoom else 45, marker="^", facecolors=col if filled else "none",
                        edgecolors=col, linewidths=1.3, zorder=3)
        axx.add_patch(plt.Rectangle((1, 1), 99, 349, fill=True, color="tab:green", alpha=0.08, zorder=0))
        axx.scatter([100], [350], marker="*", s=150 if zoom else 250, color="tab:red", zorder=4)
        for c in chosen_rows:
            t, e = c["tau_s"] * 1e9, c["energy_j"] * 1e18
            tl, th = (x * 1e9 for x in c["tau_ci95"])
            el, eh = (x * 1e18 for x in c["energy_ci95"])
            off = c.get("offset_scales")
            colour = cmap(norm(min(max(off, 10), 300))) if off else "k"
            axx.errorbar([t], [e], xerr=[[t - tl], [th - t]], yerr=[[e - el], [eh - e]], fmt="none", ecolor="k",
                         lw=1.5)
            axx.scatter([t], [e], marker="D", s=110 if zoom else 140, facecolors=colour, edgecolors="k", linewidths=2,
                        zorder=5)
            for rep in (c.get("replicates") or []) if zoom else []:  # the same cell's other seed sets
                rt, re_ = rep["tau_s"] * 1e9, rep["energy_j"] * 1e18
                rtl, rth = (x * 1e9 for x in rep["tau_ci95"])
                rel, reh = (x * 1e18 for x in rep["energy_ci95"])
                axx.errorbar([rt], [re_], xerr=[[rt - rtl], [rth - rt]], yerr=[[re_ - rel], [reh - re_]], fmt="none",
                             ecolor="0.4", lw=1)
                axx.scatter([rt], [re_], marker="D", s=60, facecolors="none", edgecolors="k", linewidths=1.3, zorder=5)
            if zoom and (50 <= t <= 150 and 200 <= e <= 550):
                axx.annotate(c.get("label", "chosen").split(" (")[0], (t, e), fontsize=8, fontweight="bold",
                             xytext=(6, 5), textcoords="offset points")
            elif not zoom and not (50 <= t <= 150 and 200 <= e <= 550):  # the corner's cells are named in the zoom
                axx.annotate(c.get("label", "chosen"), (t, e), fontsize=9, fontweight="bold",
                             xytext=c.get("label_offset", (8, 8)), textcoords="offset points")
    ins.set_xlim(60, 150)
    ins.set_ylim(220, 520)
    ins.set_title("zoom on the target corner (grey frame on the left; linear axes;\n"
                  "small open diamonds: the same cell's default flow with other seeds)", fontsize=9)
    ins.set_xlabel("τ (ns)")
    ins.set_ylabel("P·τ (aJ)")
    ins.grid(True, alpha=0.3)
    ax.add_patch(plt.Rectangle((60, 220), 90, 300, fill=False, edgecolor="0.4", lw=1, zorder=6))
    if six:
        ax.scatter([], [], s=45, marker="^", color="tab:orange",
                   label="6th round, 3 × 24 µs (filled: ≥ 2 of 3 records bistable)")
        if any(n.startswith("x5_") for n in six):
            ax.scatter([], [], s=45, marker="^", color="tab:purple",
                       label="7th round (read single-ended), 3 × 24 µs: streams' τ (read ~0.8–0.85× τ(V50))")
    ax.scatter([], [], s=140, marker="D", facecolors="w", edgecolors="k", linewidths=2,
               label="characterised cells: τ(V50), P·τ(V50), 95 % CI (black: offset not measured)")
    ax.scatter([], [], marker="*", s=150, color="tab:red", label="seed (X0 chip, published): ~100 ns, ~350 aJ")
    ax.add_patch(plt.Rectangle((1, 1), 0, 0, color="tab:green", alpha=0.2, label="issue-17 target: τ ≤ 100 ns, P·τ ≤ 350 aJ"))
    ax.legend(loc="upper right", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(10, 1000)
    ax.set_ylim(100, 4000)
    ax.set_xlabel("τ: correlation time of the bit stream at zero bias / V50 (ns)")
    ax.set_ylabel("energy per bit P·τ (aJ)")
    ax.set_title("issue-17 design search, tt 27 °C (squares: latches, circles: amplified-noise chains;\n"
                 "filled: bistable, open: single-peaked; bars: 95 % CI of τ)", fontsize=9)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=ax)
    cb.set_label("mismatch offset σ in sigmoid scales (grey: not measured)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=130)
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
