#!/usr/bin/env python
"""Sample a small 2-D Ising model with thrml: ideal p-bits versus calibrated noisecell cells.

    python examples/thrml_ising.py [MODEL.json] [--size 8] [--coupling 0.3] [--field 0.05]
                                   [--chains 32] [--sweeps 400] [--interval-tau 0.5] [--seed 0]
                                   [--trim-residual 1m]

Without MODEL.json a synthetic cell is used (offset sd 0.3 scale, gain sd 10 %, tau-ratio sd 30 %,
offset/gain correlation 0.2). Three samplers run on the same Ising model (periodic L x L lattice,
two-colour block Gibbs):

* ideal       thrml's own SpinGibbsConditional (P(+1) = sigmoid(2 gamma), no memory);
* nominal     calibrated cells without mismatch: each update holds the output with
              probability exp(-dt/tau), so only the mixing (autocorrelation) changes;
* mismatched  calibrated cells with per-cell V50 offset, gain and tau ratio drawn (seeded) from the
              model's Monte Carlo mismatch distribution (schema v2; a v1 model: offset and gain).
* trimmed     (with --trim-residual SD) the same cells after a per-cell offset trim: the offset is
              replaced by a residual drawn from N(0, SD^2) (e.g. 1 mV: the trim DAC's step), gain and
              tau ratio kept. A raw sky130 pbit offset (~0.2 V rms) is ~70 sigmoid scales: untrimmed,
              almost every cell sits in a saturated tail, which is why an array trims each cell.

It prints the mean magnetisation <s>, the nearest-neighbour correlation <s_i s_j>, their standard
errors over chains, the lag-1 autocorrelation of the magnetisation (mixing), and the effect of
mismatch against nominal cells (differences with SEs and z), and returns them from :func:`main`.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def build_lattice(size: int, coupling: float, field: float, beta: float = 1.0):
    import jax.numpy as jnp
    from thrml import Block, SpinNode
    from thrml.models import IsingEBM

    if size < 2 or size % 2:
        raise SystemExit("--size must be an even number >= 2 (two-colourable periodic lattice)")
    nodes = [SpinNode() for _ in range(size * size)]
    idx = lambda r, c: (r % size) * size + (c % size)  # noqa: E731
    edges = []
    for r in range(size):
        for c in range(size):
            edges.append((nodes[idx(r, c)], nodes[idx(r, c + 1)]))
            edges.append((nodes[idx(r, c)], nodes[idx(r + 1, c)]))
    ebm = IsingEBM(nodes, edges, jnp.full(len(nodes), field, jnp.float32),
                   jnp.full(len(edges), coupling, jnp.float32), jnp.array(beta, jnp.float32))
    colour = [(i // size + i % size) % 2 for i in range(len(nodes))]
    blocks = [Block([n for n, k in zip(nodes, colour) if k == 0]), Block([n for n, k in zip(nodes, colour) if k == 1])]
    edge_idx = np.array([[idx(r, c), j] for r in range(size) for c in range(size)
                         for j in (idx(r, c + 1), idx(r + 1, c))])
    return ebm, nodes, blocks, edge_idx


def run_sampler(program, blocks, nodes, edge_idx, *, chains: int, sweeps: int, warmup: int, seed: int):
    import jax
    import jax.numpy as jnp
    from thrml import Block, SamplingSchedule, sample_states

    schedule = SamplingSchedule(n_warmup=warmup, n_samples=sweeps, steps_per_sample=1)
    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    init = [jax.random.bernoulli(k, 0.5, (chains, len(b.nodes))) for k, b in zip(jax.random.split(k_init, len(blocks)), blocks)]
    keys = jax.random.split(k_run, chains)
    run = jax.jit(jax.vmap(lambda k, i: sample_states(k, program, schedule, i, [], [Block(nodes)])))
    samples = np.asarray(run(keys, init)[0])  # (chains, sweeps, nodes) bool
    s = 2.0 * samples - 1.0
    mag_t = s.mean(axis=2)                        # (chains, sweeps)
    nn_t = (s[:, :, edge_idx[:, 0]] * s[:, :, edge_idx[:, 1]]).mean(axis=2)
    mag_c, nn_c = mag_t.mean(axis=1), nn_t.mean(axis=1)
    dm = mag_t - mag_t.mean(axis=1, keepdims=True)
    denom = (dm * dm).sum(axis=1)
    ac1 = float(np.mean((dm[:, 1:] * dm[:, :-1]).sum(axis=1) / np.where(denom > 0, denom, 1)))
    # chains are independent: the standard error of the grand mean is the spread over chains / sqrt(chains)
    return {"magnetisation": float(mag_c.mean()), "magnetisation_se": float(mag_c.std(ddof=1) / np.sqrt(chains)),
            "nn_correlation": float(nn_c.mean()), "nn_correlation_se": float(nn_c.std(ddof=1) / np.sqrt(chains)),
            "mag_lag1_autocorrelation": ac1}


def trimmed_instances(raw, residual_v: float, seed: int):
    """``raw`` (CellInstances) after a per-cell offset trim: each offset replaced by a residual drawn from
    N(0, residual_v²) (V), gain and τ ratio unchanged (the trim moves the bias, not the slope or the
    rates). Own seed stream (a SeedSequence child of ``seed``), so the raw draw is the same with or
    without the trimmed cells."""
    from noisecell.model import CellInstances

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    return CellInstances(rng.normal(0.0, float(residual_v), len(raw)), raw.gain, raw.tau_ratio)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="cell model JSON (default: a synthetic demo cell)")
    ap.add_argument("--size", type=int, default=8, help="lattice side L (even); L*L cells")
    ap.add_argument("--coupling", type=float, default=0.3, help="nearest-neighbour J (thrml units, beta=1)")
    ap.add_argument("--field", type=float, default=0.05, help="uniform field h (thrml units)")
    ap.add_argument("--chains", type=int, default=32)
    ap.add_argument("--sweeps", type=int, default=400, help="recorded two-colour sweeps per chain")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--interval-tau", type=float, default=0.5,
                    help="physical time between updates of a node, in units of the cell's tau at V50")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trim-residual", default=None, metavar="SD",
                    help="also run per-cell offset-trimmed cells: offset residual sd, e.g. 1m or 0.001 (V)")
    args = ap.parse_args(argv)

    from thrml.models import IsingSamplingProgram

    from noisecell.errors import InputError
    from noisecell.model import CellModel
    from noisecell.model.fit import synthetic_model
    from noisecell.units import parse_si
    from noisecell.model.thrml_cells import calibrated_ising_program, gamma_range

    if args.model:
        model = CellModel.load(args.model)
    else:
        scale = 1e-3
        sd = np.array([0.3 * scale, 0.10, 0.30])
        corr = np.array([[1, 0.2, 0], [0.2, 1, 0], [0, 0, 1]])
        model = synthetic_model(name="demo", scale_v=scale, tau_v50_s=1e-6, bias_range_v=(-6e-3, 6e-3),
                                mismatch={"mean": [0.0, 0.0, 0.0], "covariance": (corr * np.outer(sd, sd)).tolist(),
                                          "n_instances": 30})
    dt = args.interval_tau * float(model.tau(model.v50()))
    ebm, nodes, blocks, edge_idx = build_lattice(args.size, args.coupling, args.field)
    raw = model.draw_instances(len(nodes), seed=args.seed)
    programs = {
        "ideal": IsingSamplingProgram(ebm, blocks, []),
        "nominal": calibrated_ising_program(ebm, blocks, [], model, update_interval_s=dt, mismatch=False),
        "mismatched": calibrated_ising_program(ebm, blocks, [], model, update_interval_s=dt, instances=raw),
    }
    residual_v = None
    if args.trim_residual is not None:
        try:
            residual_v = parse_si(args.trim_residual, unit="V", what="--trim-residual")
        except InputError as exc:
            raise SystemExit(f"thrml_ising.py: {exc}") from None
        if not residual_v >= 0:
            raise SystemExit("thrml_ising.py: --trim-residual must be >= 0 (a standard deviation in V, e.g. 1m)")
        trimmed = trimmed_instances(raw, residual_v, args.seed)
        programs["trimmed"] = calibrated_ising_program(ebm, blocks, [], model, update_interval_s=dt,
                                                       instances=trimmed)
    results = {}
    for name, prog in programs.items():
        results[name] = run_sampler(prog, blocks, nodes, edge_idx, chains=args.chains, sweeps=args.sweeps,
                                    warmup=args.warmup, seed=args.seed)
    print(f"{args.size}x{args.size} periodic Ising, J={args.coupling}, h={args.field}, {args.chains} chains x "
          f"{args.sweeps} sweeps; cell {model.name}, update interval {dt:.3g} s = {args.interval_tau} tau(V50)")
    print(f"{'sampler':<11} {'<s>':>16} {'<s_i s_j>':>16} {'lag-1 AC(m)':>12}")
    for name, r in results.items():
        print(f"{name:<11} {r['magnetisation']:>8.4f} ± {r['magnetisation_se']:<6.4f}"
              f" {r['nn_correlation']:>8.4f} ± {r['nn_correlation_se']:<6.4f} {r['mag_lag1_autocorrelation']:>12.3f}")
    mm = model.resolve().mismatch
    if mm is None:
        print("(the model has no Monte Carlo mismatch data: 'mismatched' cells are nominal cells)")
    else:
        inst = raw
        d = mm.get("distribution")
        src = (f"joint distribution of {model.condition_data().get('mismatch', {}).get('n_instances', '?')} "
               "Monte Carlo instances" if d else "v1 spread (offset, gain; no tau ratio)")
        print(f"mismatch drawn from the {src}: offset sd {np.std(inst.dv50_v) / abs(model.scale()):.3g} scales, "
              f"gain {np.exp(np.mean(np.log(inst.gain))):.3g} x/÷ {np.exp(np.std(np.log(inst.gain))):.3g}, "
              f"tau ratio {np.exp(np.mean(np.log(inst.tau_ratio))):.3g} x/÷ {np.exp(np.std(np.log(inst.tau_ratio))):.3g} "
              f"over these {len(nodes)} cells (seed {args.seed})")
        sat = float(np.mean(np.abs(inst.dv50_v) > 4 * abs(model.scale()) * inst.gain))
        print(f"  {100 * sat:.0f} % of these cells have |offset| > 4 of their sigmoid scales (P(1) pinned "
              "within ~2 % of 0 or 1 at the nominal field)" + ("" if residual_v is not None else
                                                           "; --trim-residual 1m shows per-cell trimmed cells"))
    g_lo, g_hi = gamma_range(model)
    g_need = abs(args.field) + 4 * abs(args.coupling)  # beta = 1; four neighbours on the lattice
    print(f"cell DAC range realises fields gamma in [{g_lo:.3g}, {g_hi:.3g}]; this model reaches |gamma| <= {g_need:.3g}"
          + ("" if g_lo <= -g_need and g_need <= g_hi else
             "  -> fields beyond the calibrated bias range are CLIPPED (saturated P(+1)): the calibrated "
             "cells cannot realise this model; fit a wider bias range or scale J, h down"))
    results["fields_inside_calibrated_range"] = bool(g_lo <= -g_need and g_need <= g_hi)
    ideal = results["ideal"]
    for name in ("nominal", "mismatched") + (("trimmed",) if "trimmed" in results else ()):
        r = results[name]
        # the two samplers' chains are independent: the SE of the difference is the root sum of
        # squares; |z| <= 2 is "within the SEs" at ~95 % per quantity
        z_m = (r["magnetisation"] - ideal["magnetisation"]) / np.hypot(r["magnetisation_se"], ideal["magnetisation_se"])
        z_c = (r["nn_correlation"] - ideal["nn_correlation"]) / np.hypot(r["nn_correlation_se"], ideal["nn_correlation_se"])
        r["z_magnetisation"], r["z_nn_correlation"] = float(z_m), float(z_c)
        print(f"{name} - ideal: Δ<s> = {r['magnetisation'] - ideal['magnetisation']:+.4f} (z = {z_m:+.2f}), "
              f"Δ<s_i s_j> = {r['nn_correlation'] - ideal['nn_correlation']:+.4f} (z = {z_c:+.2f})"
              + ("" if name != "nominal" else
                 ("  -> nominal cells reproduce the ideal sampler within the SEs (|z| <= 2)"
                  if max(abs(z_m), abs(z_c)) <= 2 else "  -> nominal cells DIFFER from the ideal sampler")))
    # the effect of mismatch itself: mismatched (and trimmed) against nominal cells (independent chains)
    for name, key in (("mismatched", "mismatch_effect"), ("trimmed", "trimmed_effect")):
        if name not in results:
            continue
        eff = _effect(results[name], results["nominal"])
        results[key] = eff
        what = "mismatch effect (mismatched - nominal)" if name == "mismatched" else \
            f"after per-cell trim (residual sd {residual_v * 1e3:.3g} mV; trimmed - nominal)"
        print(f"{what}: Δ<s> = {eff['d_magnetisation']:+.4f} ± {eff['d_magnetisation_se']:.4f} "
              f"(z = {eff['z_magnetisation']:+.2f}), Δ<s_i s_j> = {eff['d_nn_correlation']:+.4f} ± "
              f"{eff['d_nn_correlation_se']:.4f} (z = {eff['z_nn_correlation']:+.2f})")
    return results


def _effect(r: dict, n: dict) -> dict:
    """Difference of ``r`` and ``n`` (independent chains: SE of the difference = root sum of squares)."""
    se_m = float(np.hypot(r["magnetisation_se"], n["magnetisation_se"]))
    se_c = float(np.hypot(r["nn_correlation_se"], n["nn_correlation_se"]))
    eff = {"d_magnetisation": r["magnetisation"] - n["magnetisation"], "d_magnetisation_se": se_m,
           "d_nn_correlation": r["nn_correlation"] - n["nn_correlation"], "d_nn_correlation_se": se_c}
    eff["z_magnetisation"] = eff["d_magnetisation"] / se_m if se_m > 0 else float("nan")
    eff["z_nn_correlation"] = eff["d_nn_correlation"] / se_c if se_c > 0 else float("nan")
    return eff


if __name__ == "__main__":
    main(sys.argv[1:])
