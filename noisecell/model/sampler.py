"""Fast, seeded sampling of many calibrated cells: the exact discretisation of the two-state CTMC.

For a bias held constant over a step of length ``dt`` (s), the two-state chain with rates
``k_up``, ``k_down`` (1/s), ``k = k_up + k_down``, has the exact transition probabilities::

    P(0 -> 1 in dt) = (k_up / k)   * (1 - exp(-k dt))
    P(1 -> 0 in dt) = (k_down / k) * (1 - exp(-k dt))

(the matrix exponential of the generator). These reduce to ``1 - exp(-k_up dt)`` and
``1 - exp(-k_down dt)`` only as ``dt -> 0``; the exact form keeps the stationary P(1) and the
lag-n autocorrelation ``exp(-n dt / tau)`` exact for any ``dt``, including ``dt >> tau``.

Random numbers: one ``numpy.random.Generator`` per call, seeded from ``SeedSequence(seed)``, whose
children are (0) the mismatch draws and (1) the chain. The chain consumes ``cells`` uniforms for
the initial state, then ``cells`` uniforms per step in step order, so the result does not depend
on the internal chunk size and the same seed gives bit-identical bits. The mismatch draws do not
depend on ``n_steps`` or the bias, so the same seed means the same physical cells.
"""
from __future__ import annotations

import numpy as np

try:  # numba is a core dependency; the pure-numpy path keeps the sampler usable without it
    import numba

    @numba.njit(cache=True, nogil=True)
    def _chain_kernel(x, u, p_up, p_down, out):  # pragma: no cover - compiled
        # the flip probability of each cell is selected arithmetically, p_up*(1-x) + p_down*x: exact
        # for x in {0, 1} (products with 0 and 1 and adding 0 are exact) and branch-free, so LLVM
        # vectorises the loop over cells (4x faster than an if/else on the state)
        n_steps, n_cells = u.shape
        per_step = p_up.shape[0] > 1
        for j in range(n_steps):
            r = j if per_step else 0
            pu = p_up[r]
            pd = p_down[r]
            uj = u[j]
            oj = out[j]
            for i in range(n_cells):
                xf = np.float64(x[i])
                p = pu[i] * (1.0 - xf) + pd[i] * xf
                xi = x[i] ^ np.uint8(uj[i] < p)
                x[i] = xi
                oj[i] = xi
except ImportError:  # pragma: no cover
    numba = None

    def _chain_kernel(x, u, p_up, p_down, out):
        per_step = p_up.shape[0] > 1
        for j in range(u.shape[0]):
            r = j if per_step else 0
            x[:] = np.where(x == 1, u[j] >= p_down[r], u[j] < p_up[r])
            out[j] = x

from ..errors import InputError
from .instances import CellInstances

#: uniforms generated per chunk (bounded memory: 8 bytes each)
_CHUNK_VALUES = 1 << 21


def transition_probabilities(ln_k_up, ln_k_down, dt: float):
    """Exact one-step (p_up, p_down, p1_stationary) for rates exp(ln_k_*) (1/s) over ``dt`` (s)."""
    ln_k = np.logaddexp(ln_k_up, ln_k_down)
    frac_up = np.exp(ln_k_up - ln_k)
    q = -np.expm1(-np.exp(ln_k) * dt)
    return frac_up * q, (1.0 - frac_up) * q, frac_up


def _bias_array(bias, cells: int, n_steps: int, explicit_cells: bool, source: str) -> np.ndarray:
    """Broadcast ``bias`` to a read-only (cells, n_steps) view (no copy for per-cell/per-step input)."""
    b = np.asarray(bias, dtype=float)
    if b.ndim == 1:
        if explicit_cells and len(b) == cells and len(b) == n_steps and cells > 1:
            raise InputError(f"{source}: a 1-D bias of length {len(b)} is ambiguous when cells == n_steps; "
                             "pass shape (cells, 1) for per-cell or (1, n_steps) for per-step bias")
        if explicit_cells and len(b) == cells:
            b = b[:, None]
        elif len(b) == n_steps:
            b = b[None, :]
        else:
            raise InputError(f"{source}: bias has length {len(b)}; expected {cells} (per cell) or {n_steps} (per step)")
    elif b.ndim > 2:
        raise InputError(f"{source}: bias must be a scalar, 1-D or 2-D array (got {b.ndim}-D)")
    try:
        return np.broadcast_to(b, (cells, n_steps))
    except ValueError:
        raise InputError(f"{source}: bias of shape {b.shape} does not broadcast to (cells, n_steps) = "
                         f"({cells}, {n_steps})") from None


#: the largest bit array :func:`sample` allocates, bytes (one byte per bit; a bigger draw is refused
#: before any allocation instead of failing in numpy, or swapping the machine to a halt)
MAX_SAMPLE_BYTES = 4 * 2**30


def _format_bytes(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def check_sample_size(n_steps: int, cells: int, *, what: str = "sample", limit: int | None = None) -> int:
    """Bytes a (cells, n_steps) draw needs; InputError with that estimate when it exceeds the limit."""
    limit = MAX_SAMPLE_BYTES if limit is None else limit
    need = int(n_steps) * int(cells) + 16 * int(cells)  # the bits plus per-cell state/probabilities
    if need > limit:
        raise InputError(f"{what}: {cells} cells x {n_steps} steps needs about {_format_bytes(need)} of memory, "
                         f"over the {_format_bytes(limit)} limit; lower --n or --cells, or sample in pieces "
                         "(same seed and initial state per piece)")
    return need


def sample(model, bias, n_steps: int, dt: float, *, seed=None, cells: int | None = None, condition=None,
           mismatch: bool = True, instances=None, initial="stationary") -> np.ndarray:
    """Sample bits from ``model`` (a :class:`~noisecell.model.CellModel`); see ``CellModel.sample``.

    ``bits[:, 0]`` is the state at t = 0, drawn from the stationary distribution at the first bias
    (``initial="stationary"``) or given (array of 0/1 per cell); ``bits[:, n]`` is the state at
    t = n*dt after the bias ``bias[:, n]`` was applied over ((n-1)*dt, n*dt].

    ``mismatch``: draw per-cell V50 offset, scale gain and τ ratio from the model's mismatch distribution
    (seeded child 0); ``instances`` overrides the draw with given cells.
    """
    src = model.source
    n_steps = int(n_steps)
    if n_steps < 1:
        raise InputError(f"{src}: n_steps must be at least 1 (got {n_steps})")
    dt = float(dt)
    if not (dt > 0 and np.isfinite(dt)):
        raise InputError(f"{src}: dt must be a positive number of seconds (got {dt!r})")
    explicit = cells is not None
    k = 1 if cells is None else int(cells)
    if k < 1:
        raise InputError(f"{src}: cells must be at least 1 (got {cells})")
    check_sample_size(n_steps, k, what=src)
    if seed is not None and not isinstance(seed, np.random.SeedSequence):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise InputError(f"{src}: seed must be a non-negative integer (got {seed!r})")

    rc = model.resolve(condition)
    b = _bias_array(bias, k, n_steps, explicit, src)
    # check the caller's array, not the broadcast (cells, n_steps) view (1e8 elements for a scalar)
    model.check_bias(np.asarray(bias, dtype=float), rc)

    ss_mismatch, ss_chain = np.random.SeedSequence(seed).spawn(2)
    if instances is not None:
        if len(instances) != k:
            raise InputError(f"{src}: {len(instances)} cell instances given for {k} cells")
        inst = instances
    elif mismatch:
        inst = model.draw_instances(k, seed=ss_mismatch, condition=rc.condition)
    else:
        inst = CellInstances.nominal(k)

    def probs(v):  # v: (k, m) bias -> (m, k) step-major exact transition probabilities
        lu, ld = model.instance_ln_rates(v, inst, rc)
        pu, pd, p1 = transition_probabilities(lu, ld, dt)
        return np.ascontiguousarray(pu.T), np.ascontiguousarray(pd.T), p1

    # constant over steps for each cell? (stride 0 along steps means it was broadcast)
    per_step = not (b.strides[1] == 0 or n_steps == 1)
    rng = np.random.default_rng(ss_chain)
    pu_c = pd_c = None
    if not per_step:
        pu_c, pd_c, p1_0 = probs(b[:, :1])
    else:
        _, _, p1_0 = probs(b[:, :1])

    if isinstance(initial, str):
        if initial != "stationary":
            raise InputError(f"{src}: initial must be 'stationary' or an array of 0/1 per cell")
        x = (rng.random(k) < p1_0[:, 0]).astype(np.uint8)
    else:
        x0 = np.asarray(initial)
        if x0.shape not in ((k,), ()) or not np.isin(x0, (0, 1)).all():
            raise InputError(f"{src}: initial state must be 0/1 with shape ({k},)")
        x = np.broadcast_to(x0, (k,)).astype(np.uint8)

    out = np.empty((k, n_steps), dtype=np.uint8)
    out[:, 0] = x
    chunk = max(1, _CHUNK_VALUES // k)
    buf = np.empty((chunk, k), dtype=np.uint8)
    n0 = 1
    while n0 < n_steps:
        m = min(chunk, n_steps - n0)
        u = rng.random((m, k))
        if per_step:
            pu, pd, _ = probs(b[:, n0:n0 + m])
        else:
            pu, pd = pu_c, pd_c
        _chain_kernel(x, u, pu, pd, buf[:m])
        out[:, n0:n0 + m] = buf[:m].T
        n0 += m
    return out[0] if cells is None else out
