"""thrml integration: spin nodes that behave like calibrated noisecell cells.

Requires the optional extra: ``pip install noisecell[thrml]`` (thrml >= 0.1.4, which pulls jax).

How a p-bit array realises a Gibbs update: each cell's bias is driven by a DAC from the local field
``gamma`` that thrml computes for the node (sum of couplings times neighbour spins plus the node's
own field, times beta). thrml's Bernoulli convention is ``P(s = +1) = sigmoid(2 gamma)``, so the DAC
maps ``V = v50 + 2 * scale * gamma``: the nominal cell, with ``P(1) = sigmoid((V - v50) / scale)``,
then realises exactly the ideal conditional. Each real cell ``i`` differs by its mismatch
(``dv50_i``, gain ``g_i``): it sees ``V_eff = v50 + (V - v50 - dv50_i) / g_i``, i.e. in field units
``gamma_eff = (gamma - dv50_i / (2 scale)) / g_i`` -- an offset and a gain on every node -- and its
rates are the nominal ones divided by its τ ratio ``r_i`` (its memory between updates is longer
or shorter; P(+1) at a given field is unchanged).

Between two updates of a node, ``update_interval_s`` of physical time passes. The cell is a
two-state Markov chain, so its new output equals its current output with probability
``exp(-update_interval_s / tau(V_eff))`` and is otherwise a fresh draw from ``P(1)`` at ``V_eff``:
the exact transition of the CTMC (:mod:`noisecell.model.sampler`). For nominal cells this "lazy
Gibbs" kernel leaves the Boltzmann distribution invariant (it is a mixture of the identity and the
Gibbs kernel) and only slows mixing; mismatch changes the sampled distribution.

The hook is thrml's own API: :class:`CalibratedSpinConditional` subclasses
``thrml.models.SpinGibbsConditional`` (the field gamma is computed by thrml from the factors), and a
:class:`CalibratedCellInteraction` ``InteractionGroup`` whose head and tail are the same nodes
delivers each node's current state and its mismatch parameters to the sampler.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError

try:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import thrml
    from thrml.models.discrete_ebm import DiscreteEBMInteraction, SpinGibbsConditional
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("noisecell.model.thrml_cells needs thrml: pip install 'noisecell[thrml]'") from _exc

from .cellmodel import CellInstances, CellModel

#: points of the ln-rate lookup table carried into the jitted sampler, tabulated from the model's own
#: ``ResolvedCondition.ln_rates`` (the one evaluator; curvature included). Piecewise linear in ln k:
#: exact for straight lines and for tabulated models; for a curvature c the chord error is c·h²/8 with
#: h = 3·range/512 (pbit_x4, c = −5e3 /V², a 20 mV range: 8e-6 in ln k)
_GRID_POINTS = 513


class CalibratedCellInteraction(eqx.Module):
    """Per-node mismatch parameters; head node i's tail is node i itself (its current state).

    ``dv50_v``: V50 offset (V); ``inv_gain``: scale_nominal / scale_i (1); ``ln_tau_ratio``:
    ln(τ_i / τ_nominal) (the cell's rates are the nominal ones at V_eff divided by τ_i/τ). Leading
    dim = nodes.
    """

    dv50_v: jax.Array
    inv_gain: jax.Array
    ln_tau_ratio: jax.Array


class CalibratedSpinConditional(SpinGibbsConditional):
    """Spin update of a calibrated cell: thrml's field gamma -> DAC bias -> CTMC step of length dt.

    Attributes (SI): ``update_interval_s`` physical time between two updates of a node; ``v50_v``,
    ``scale_v`` nominal sigmoid; ``v_min_v``/``v_max_v`` DAC range (the model's validated bias
    range when clipping); ``grid_v``, ``ln_k_up``, ``ln_k_down`` rate lookup table (ln 1/s).
    """

    update_interval_s: float
    v50_v: float
    scale_v: float
    v_min_v: float
    v_max_v: float
    grid_v: jax.Array
    ln_k_up: jax.Array
    ln_k_down: jax.Array

    @classmethod
    def from_model(cls, model: CellModel, *, update_interval_s: float, condition=None,
                   clip_to_range: bool = True) -> "CalibratedSpinConditional":
        if not (update_interval_s > 0 and np.isfinite(update_interval_s)):
            raise InputError(f"{model.source}: update_interval_s must be a positive number of seconds")
        rc = model.resolve(condition)
        lo, hi = rc.bias_range_v
        width = hi - lo
        # mismatch moves V_eff beyond the validated range; the table extends one range-width each
        # side (loglinear models extrapolate their quadratics there, as the sampler does; tabulated
        # ones hold their end values)
        grid = np.linspace(lo - width, hi + width, _GRID_POINTS)
        lu, ld = rc.ln_rates(grid)
        vmin, vmax = (lo, hi) if clip_to_range else (-np.inf, np.inf)
        return cls(update_interval_s=float(update_interval_s), v50_v=rc.v50_v, scale_v=rc.scale_v,
                   v_min_v=float(vmin), v_max_v=float(vmax), grid_v=jnp.asarray(grid),
                   ln_k_up=jnp.asarray(lu), ln_k_down=jnp.asarray(ld))

    def compute_parameters(self, key, interactions, active_flags, states, sampler_state, output_sd):
        ebm_parts = [(i, a, s) for i, a, s in zip(interactions, active_flags, states)
                     if isinstance(i, DiscreteEBMInteraction)]
        cell_parts = [(i, s) for i, s in zip(interactions, states) if isinstance(i, CalibratedCellInteraction)]
        if len(cell_parts) != 1 or len(ebm_parts) + 1 != len(interactions):
            raise RuntimeError("CalibratedSpinConditional needs exactly one CalibratedCellInteraction per node "
                               "(build the program with calibrated_ising_program) and only discrete-EBM factors")
        if ebm_parts:
            gamma, _ = super().compute_parameters(key, [p[0] for p in ebm_parts], [p[1] for p in ebm_parts],
                                                  [p[2] for p in ebm_parts], sampler_state, output_sd)
        else:
            gamma = jnp.zeros(output_sd.shape)
        cell, cell_state = cell_parts[0]
        dv50 = cell.dv50_v[:, 0]
        inv_g = cell.inv_gain[:, 0]
        ln_r = cell.ln_tau_ratio[:, 0]
        own = cell_state[0][:, 0]
        v = jnp.clip(self.v50_v + 2.0 * self.scale_v * gamma, self.v_min_v, self.v_max_v)
        v_eff = self.v50_v + (v - self.v50_v - dv50) * inv_g
        lu = jnp.interp(v_eff, self.grid_v, self.ln_k_up)
        ld = jnp.interp(v_eff, self.grid_v, self.ln_k_down)
        p_plus = jax.nn.sigmoid(lu - ld)
        hold = jnp.exp(-self.update_interval_s * jnp.exp(jnp.logaddexp(lu, ld) - ln_r))
        return (p_plus, hold, own), sampler_state

    def sample_given_parameters(self, key, parameters, sampler_state, output_sd):
        p_plus, hold, own = parameters
        k_hold, k_draw = jax.random.split(key)
        keep = jax.random.bernoulli(k_hold, hold)
        fresh = jax.random.bernoulli(k_draw, p_plus)
        return jnp.where(keep, own, fresh), sampler_state


def gamma_range(model: CellModel, condition=None) -> tuple[float, float]:
    """Field interval [low, high] (thrml units) a nominal cell realises without DAC clipping.

    ``V = v50 + 2 scale gamma`` must stay in the validated bias range; fields outside are clipped
    (``clip_to_range=True``), which weakens strong couplings and, when the range is not centred on
    V50, biases the spins. Compare with ``beta * (|h_i| + sum_j |J_ij|)`` of the model being sampled.
    """
    rc = model.resolve(condition)
    lo, hi = rc.bias_range_v
    g = sorted(((lo - rc.v50_v) / (2 * rc.scale_v), (hi - rc.v50_v) / (2 * rc.scale_v)))
    return float(g[0]), float(g[1])


def cell_interaction_group(nodes: Sequence, instances: CellInstances) -> "thrml.InteractionGroup":
    """The self-interaction that hands each node its own state and mismatch (dv50, 1/gain, ln τ ratio)."""
    if len(instances) != len(nodes):
        raise InputError(f"{len(instances)} cell instances for {len(nodes)} nodes")
    block = thrml.Block(list(nodes))
    inter = CalibratedCellInteraction(dv50_v=jnp.asarray(instances.dv50_v, dtype=jnp.float32),
                                      inv_gain=jnp.asarray(1.0 / instances.gain, dtype=jnp.float32),
                                      ln_tau_ratio=jnp.asarray(np.log(instances.tau_ratio), dtype=jnp.float32))
    return thrml.InteractionGroup(inter, block, [block])


def calibrated_ising_program(ebm, free_blocks, clamped_blocks, model: CellModel, *, update_interval_s: float,
                             condition=None, seed=0, mismatch: bool = True,
                             instances: CellInstances | None = None, clip_to_range: bool = True):
    """A thrml ``FactorSamplingProgram`` for ``ebm`` (an ``IsingEBM``) whose free nodes are calibrated cells.

    Drop-in replacement for ``thrml.models.IsingSamplingProgram(ebm, free_blocks, clamped_blocks)``.
    Mismatch per node (in ``ebm.nodes`` order) is drawn from the model with ``seed`` unless
    ``instances`` is given; ``mismatch=False`` gives nominal cells (only autocorrelation differs from
    the ideal sampler).
    """
    from thrml.block_sampling import BlockGibbsSpec

    spec = BlockGibbsSpec(free_blocks, clamped_blocks, ebm.node_shape_dtypes)
    nodes = list(ebm.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    if instances is None:
        instances = (model.draw_instances(len(nodes), seed=seed, condition=condition) if mismatch
                     else CellInstances.nominal(len(nodes)))
    elif len(instances) != len(nodes):
        raise InputError(f"{model.source}: {len(instances)} cell instances for {len(nodes)} nodes")
    free_nodes = [n for b in spec.free_blocks for n in b.nodes]
    sel = np.array([index[n] for n in free_nodes], dtype=int)
    group = cell_interaction_group(free_nodes, instances.subset(sel))
    sampler = CalibratedSpinConditional.from_model(model, update_interval_s=update_interval_s,
                                                   condition=condition, clip_to_range=clip_to_range)
    return thrml.FactorSamplingProgram(spec, [sampler for _ in spec.free_blocks], ebm.factors, [group])
