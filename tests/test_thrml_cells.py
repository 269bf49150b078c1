"""thrml integration: calibrated cells as thrml spin nodes (runs when the [thrml] extra is installed; CI installs it).

Truth used: (1) for a 4x4 periodic Ising model the exact <s> and <s_i s_j> by enumerating all 2**16
states; nominal calibrated cells must reproduce them (the hold-or-redraw update is a lazy Gibbs
kernel with the same stationary distribution); (2) for uncoupled nodes the exact single-cell
CTMC: P(+1) of a mismatched cell and the hold probability exp(-dt/tau).
"""
from __future__ import annotations

import importlib.util
import itertools
import math
import os
import sys
from pathlib import Path

if "jax" not in sys.modules:
    # XLA's CPU back-end optimisation passes dominate the cost of these tiny programs (compile 15 s ->
    # 4 s); they change how fast the compiled code runs, not what it computes. Only set when this
    # process has not initialised jax yet, and never over a user's own XLA_FLAGS.
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import numpy as np
import pytest

thrml = pytest.importorskip("thrml", reason="install the [thrml] extra: pip install 'noisecell[thrml]'")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from noisecell.model import CellInstances  # noqa: E402
from noisecell.model.fit import synthetic_model  # noqa: E402
from noisecell.model.thrml_cells import calibrated_ising_program, gamma_range  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "thrml_ising.py"


def _exact_ising(size, coupling, field, beta=1.0):
    n = size * size
    idx = lambda r, c: (r % size) * size + (c % size)  # noqa: E731
    edges = np.array([[idx(r, c), j] for r in range(size) for c in range(size) for j in (idx(r, c + 1), idx(r + 1, c))])
    s = 2 * np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.int8) - 1
    ss = s[:, edges[:, 0]] * s[:, edges[:, 1]]
    e = beta * (field * s.sum(1) + coupling * ss.sum(1))
    w = np.exp(e - e.max())
    w /= w.sum()
    return float(w @ s.mean(1)), float(w @ ss.mean(1))


def test_example_ideal_and_nominal_cells_match_exact_ising():
    spec = importlib.util.spec_from_file_location("thrml_ising_example", EXAMPLE)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    size, j, h = 4, 0.3, 0.1
    res = ex.main(["--size", str(size), "--coupling", str(j), "--field", str(h), "--chains", "64",
                   "--sweeps", "300", "--warmup", "60", "--seed", "2"])
    m_exact, c_exact = _exact_ising(size, j, h)
    for name in ("ideal", "nominal"):
        r = res[name]
        # chains are independent, so (chain mean - exact)/SE is ~ t with 63 dof; 5 SE is a
        # two-sided p ~ 5e-6, and the warm-up (60 sweeps >> the lag-1 AC time) removes the start bias
        assert abs(r["magnetisation"] - m_exact) < 5 * r["magnetisation_se"], (name, r, m_exact)
        assert abs(r["nn_correlation"] - c_exact) < 5 * r["nn_correlation_se"], (name, r, c_exact)
    # holding the output for part of tau slows mixing: the magnetisation decorrelates more slowly
    assert res["nominal"]["mag_lag1_autocorrelation"] > res["ideal"]["mag_lag1_autocorrelation"]
    assert all(np.isfinite(v) for v in res["mismatched"].values())
    eff = res["mismatch_effect"]
    assert eff["d_magnetisation_se"] > 0 and eff["d_nn_correlation_se"] > 0
    assert eff["d_magnetisation"] == pytest.approx(res["mismatched"]["magnetisation"] - res["nominal"]["magnetisation"])


def test_uncoupled_cells_follow_their_mismatch_and_hold_probability():
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models import IsingEBM

    scale, tau = 1e-3, 1e-6
    model = synthetic_model(scale_v=scale, tau_v50_s=tau, bias_range_v=(-8e-3, 8e-3))
    # V = v50 + 2 scale gamma within +-8 mV: |gamma| <= 4
    assert gamma_range(model) == pytest.approx((-4.0, 4.0))
    n_per, field = 200, 0.25  # gamma = 0.25 -> ideal P(+1) = sigmoid(0.5)
    inst_kinds = [(0.0, 1.0, 1.0), (1e-3, 1.0, 1.0), (0.0, 2.0, 1.0), (0.0, 1.0, 4.0)]  # (offset, gain, tau ratio)
    nodes = [SpinNode() for _ in range(2 * n_per * len(inst_kinds))]
    # pairs of nodes joined by zero-weight edges: the factor graph exists, the coupling does not
    edges = [(nodes[2 * i], nodes[2 * i + 1]) for i in range(len(nodes) // 2)]
    ebm = IsingEBM(nodes, edges, jnp.full(len(nodes), field), jnp.zeros(len(edges)), jnp.array(1.0))
    dv = np.repeat([k[0] for k in inst_kinds], 2 * n_per)
    g = np.repeat([k[1] for k in inst_kinds], 2 * n_per)
    r = np.repeat([k[2] for k in inst_kinds], 2 * n_per)
    blocks = [Block(nodes[0::2]), Block(nodes[1::2])]
    dt = 0.5 * tau
    prog = calibrated_ising_program(ebm, blocks, [], model, update_interval_s=dt, instances=CellInstances(dv, g, r))
    n_samp = 400
    sched = SamplingSchedule(n_warmup=20, n_samples=n_samp, steps_per_sample=1)
    init = [jnp.zeros(len(b.nodes), bool) for b in blocks]
    out = np.asarray(sample_states(jax.random.key(0), prog, sched, init, [], [Block(nodes)])[0])  # (samples, nodes)
    for k, (dvk, gk, rk) in enumerate(inst_kinds):
        x = out[:, k * 2 * n_per:(k + 1) * 2 * n_per]
        v = 2 * scale * field  # DAC: V = v50 + 2 scale gamma, v50 = 0
        v_eff = (v - dvk) / gk
        p = model.p1(v_eff)
        hold = math.exp(-dt / (rk * model.tau(v_eff)))
        lam = hold  # lag-1 autocorrelation of a hold-or-redraw chain
        count = x.size
        # P(+1): n_samp*cells samples with lag-1 autocorrelation lam -> n_eff = count (1-lam)/(1+lam); 5 sigma
        n_eff = count * (1 - lam) / (1 + lam)
        assert abs(x.mean() - p) < 5 * math.sqrt(p * (1 - p) / n_eff), (k, x.mean(), p)
        # P(stay in 0) given 0 = hold + (1-hold)(1-p): independent trials given the state; 5 sigma
        head, tail = x[:-1], x[1:]
        n0 = int((~head).sum())
        stay0 = ((~head) & (~tail)).sum() / n0
        expect = hold + (1 - hold) * (1 - p)
        assert abs(stay0 - expect) < 5 * math.sqrt(expect * (1 - expect) / n0), (k, stay0, expect)


def test_example_trimmed_instances_keep_gain_and_tau_and_draw_the_residual():
    spec = importlib.util.spec_from_file_location("thrml_ising_example", EXAMPLE)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    n, resid = 4000, 1e-3
    rng = np.random.default_rng(5)
    raw = CellInstances(rng.normal(0, 0.2, n), np.exp(rng.normal(0, 0.1, n)), np.exp(rng.normal(0, 0.3, n)))
    t = ex.trimmed_instances(raw, resid, seed=3)
    assert np.array_equal(t.gain, raw.gain) and np.array_equal(t.tau_ratio, raw.tau_ratio)
    # the residual replaces the raw offset: sd of n normal draws has relative SE 1/sqrt(2(n-1)) = 1.1 %;
    # 5 SE; mean within 5 SE = 5 resid/sqrt(n); no trace of the raw 0.2 V offsets
    assert abs(np.std(t.dv50_v, ddof=1) / resid - 1) < 5 / math.sqrt(2 * (n - 1))
    assert abs(np.mean(t.dv50_v)) < 5 * resid / math.sqrt(n)
    assert abs(np.corrcoef(t.dv50_v, raw.dv50_v)[0, 1]) < 5 / math.sqrt(n)
    # seeded: the same seed gives the same residuals, another seed others
    assert np.array_equal(t.dv50_v, ex.trimmed_instances(raw, resid, seed=3).dv50_v)
    assert not np.array_equal(t.dv50_v, ex.trimmed_instances(raw, resid, seed=4).dv50_v)
