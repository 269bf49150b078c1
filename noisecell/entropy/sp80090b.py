"""NIST SP 800-90B (January 2018) §6.3 non-IID min-entropy estimators for binary samples.

One public function per estimator (§6.3.1 … §6.3.10). Each takes a uint8 array of 0/1 samples and
returns an :class:`Estimate`: the min-entropy in bits per sample, the upper-bounded probability it was
derived from, and the intermediate quantities the standard names (so a reviewer can follow the number).

The numbers are meant to agree with NIST's reference implementation (usnistgov/
SP800-90B_EntropyAssessment, ``ea_non_iid -a FILE 1``, tool version 1.1.7, commit 68ed165), including
its conventions where the standard leaves room:

* confidence bounds use z = 2.5758293035489008 (99 %, two-sided) and sample variance over (n - 1);
* collision (§6.3.2) solves the closed form of step 7 for binary data (X' = -2p² + 2p + 2);
* compression (§6.3.4) uses b = 6, d = 1000 and the "G function" of Appendix G.1.2;
* t-tuple/LRS (§6.3.5/6) count overlapping tuples over the whole stream; t-tuple uses every t with a
  tuple occurring at least 35 times, LRS every t from that threshold up to the longest repeat;
* the prediction estimators (§6.3.7–10) use P_global' and P_local (§6.3.7 steps 7–8) with
  r = longest run of correct predictions + 1; the binary fast paths of MultiMMC/LZ78Y (dictionary
  caps of 100 000 (x, y) entries per order, 65 536 prefixes in total) are reproduced as the tool does.

For binary samples the "bit-string" variants of §3.1.3 coincide with the literal ones (the tool prints no
H_bitstring for 1-bit data), so the literal estimates are the only ones.

Heavy loops are numba-compiled (``cache=True``); suffix-array work (t-tuple, LRS) is a numpy prefix-doubling
sort plus a linear LCP pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..errors import InputError

#: z_{1-alpha/2} for alpha = 0.01 as used throughout SP 800-90B (and the reference tool's ZALPHA).
Z_ALPHA = 2.5758293035489008

#: Names of the ten estimators in the order of SP 800-90B §6.3.
ESTIMATORS = ("mcv", "collision", "markov", "compression", "t_tuple", "lrs",
              "multimcw", "lag", "multimmc", "lz78y")

#: Smallest stream for which all ten estimators are defined: compression needs d = 1000 dictionary
#: blocks plus at least two six-bit test blocks for its standard deviation (§6.3.4): 6012 samples.
MIN_SAMPLES = 6 * 1002

#: SP 800-90B §3.1.1 asks for at least 1,000,000 samples for a validation-grade estimate.
RECOMMENDED_SAMPLES = 1_000_000


@dataclass(frozen=True)
class Estimate:
    """One estimator's result.

    name: estimator key (see :data:`ESTIMATORS`).
    section: the SP 800-90B section that defines it.
    min_entropy: min-entropy estimate, bits per sample (0..1 for binary data); None when the estimator
        is not applicable to this stream (e.g. t-tuple when no tuple occurs 35 times).
    p_max: the upper-bounded probability the estimate is -log2 of (per sample unless noted in details).
    details: the intermediate quantities named in the standard (counts, means, bounds, ...).
    """

    name: str
    section: str
    min_entropy: float | None
    p_max: float | None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "section": self.section, "min_entropy": self.min_entropy,
                "p_max": self.p_max, "details": dict(self.details)}


def as_bits(bits, *, source: str = "bits", min_samples: int = 2) -> np.ndarray:
    """Validate and return ``bits`` as a contiguous uint8 array of 0/1.

    Raises InputError (naming ``source``) for non-binary values, non-1-D input or fewer than
    ``min_samples`` samples.
    """
    arr = np.asarray(bits)
    if arr.ndim != 1:
        raise InputError(f"{source}: expected a 1-D sequence of 0/1 samples, got shape {arr.shape}; "
                         "flatten it or pass one stream at a time")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            bad = arr[(arr < 0) | (arr > 1)][0]
            raise InputError(f"{source}: sample value {int(bad)} is not a bit; the entropy estimators "
                             "take binary samples 0/1 (threshold or unpack the data first)")
        arr = arr.astype(np.uint8, copy=False)
    elif arr.dtype.kind == "f":
        if arr.size and not np.all((arr == 0.0) | (arr == 1.0)):
            bad = arr[~((arr == 0.0) | (arr == 1.0))][0]
            raise InputError(f"{source}: sample value {float(bad)!r} is not a bit; the entropy estimators "
                             "take binary samples 0/1 (digitise the analog trace first)")
        arr = arr.astype(np.uint8)
    else:
        raise InputError(f"{source}: samples of type {arr.dtype} are not bits; pass 0/1 integers or bools")
    if arr.size < min_samples:
        raise InputError(f"{source}: {arr.size} samples is too short; these estimators need at least "
                         f"{min_samples} (SP 800-90B recommends {RECOMMENDED_SAMPLES:,})")
    return np.ascontiguousarray(arr)


def _upper_bound(p_hat: float, n: int) -> float:
    """p_u = min(1, p̂ + z·sqrt(p̂(1-p̂)/(n-1))) — the 99 % upper confidence bound of §6.3.1 step 3."""
    return min(1.0, p_hat + Z_ALPHA * math.sqrt(p_hat * (1.0 - p_hat) / (n - 1.0)))


def _neg_log2(p: float) -> float:
    return 0.0 if p >= 1.0 else -math.log2(p)


# ---------------------------------------------------------------------------------------------------
# §6.3.1 Most common value
# ---------------------------------------------------------------------------------------------------
def most_common_value(bits) -> Estimate:
    """§6.3.1: p̂ = mode frequency, p_u its 99 % upper bound, H = -log2(p_u) bits/sample."""
    s = as_bits(bits)
    n = s.size
    ones = int(np.count_nonzero(s))
    mode = max(ones, n - ones)
    p_hat = mode / n
    p_u = _upper_bound(p_hat, n)
    return Estimate("mcv", "6.3.1", _neg_log2(p_u), p_u,
                    {"mode_count": mode, "p_hat": p_hat, "p_u": p_u, "n": n})


# ---------------------------------------------------------------------------------------------------
# §6.3.2 Collision
# ---------------------------------------------------------------------------------------------------
@njit(cache=True)
def _collision_times(s):
    # Walk the stream: a "collision" is the first repeat inside the current 2- or 3-sample window.
    n = s.size
    i = 0
    v = 0
    sum_sq = 0.0
    while i < n - 1:
        if s[i] == s[i + 1]:
            t = 2
        elif i < n - 2:
            t = 3
        else:
            break
        v += 1
        sum_sq += t * t
        i += t
    return v, i, sum_sq


def collision(bits) -> Estimate:
    """§6.3.2 collision estimate for binary data (solved in closed form: X̄' = -2p² + 2p + 2)."""
    s = as_bits(bits, min_samples=4)
    v, total, sum_sq = _collision_times(s)
    x_bar = total / v
    sigma = math.sqrt((sum_sq - total * x_bar) / (v - 1))
    x_lo = max(2.0, x_bar - Z_ALPHA * sigma / math.sqrt(v))
    if x_lo < 2.5:
        p = 0.5 + math.sqrt(1.25 - 0.5 * x_lo)
        h = -math.log2(p)
        found = True
    else:
        # Step 8 of §6.3.2: no solution -> full entropy (p = 1/2).
        p, h, found = 0.5, 1.0, False
    return Estimate("collision", "6.3.2", h, p,
                    {"v": int(v), "sum_t": int(total), "x_bar": x_bar, "sigma_hat": sigma,
                     "x_bar_lower": x_lo, "p_found": found})


# ---------------------------------------------------------------------------------------------------
# §6.3.3 Markov
# ---------------------------------------------------------------------------------------------------
def markov(bits) -> Estimate:
    """§6.3.3: most likely 128-bit sequence under a fitted first-order Markov chain, H = -log2(p)/128."""
    s = as_bits(bits)
    n = s.size
    prev, nxt = s[:-1], s[1:]
    c0 = int(n - 1 - np.count_nonzero(prev))       # zeros among s[0..n-2]
    c1 = n - 1 - c0
    c00 = int(np.count_nonzero((prev == 0) & (nxt == 0)))
    c10 = int(np.count_nonzero((prev == 1) & (nxt == 0)))
    p00 = c00 / c0 if c0 else 0.0
    p01 = 1.0 - p00 if c0 else 0.0
    p10 = c10 / c1 if c1 else 0.0
    p11 = 1.0 - p10 if c1 else 0.0
    p0 = (c0 + (1 if s[-1] == 0 else 0)) / n
    p1 = 1.0 - p0
    lg = lambda x: math.log2(x)  # noqa: E731
    candidates = []
    # The six sequence shapes of §6.3.3 step 4 that can be most likely for a binary chain.
    if p00 > 0:
        candidates.append(-lg(p0) - 127 * lg(p00))
    if p01 > 0 and p10 > 0:
        candidates.append(-lg(p0) - 64 * lg(p01) - 63 * lg(p10))
        candidates.append(-lg(p1) - 64 * lg(p10) - 63 * lg(p01))
    if p01 > 0 and p11 > 0:
        candidates.append(-lg(p0) - lg(p01) - 126 * lg(p11))
    if p10 > 0 and p00 > 0:
        candidates.append(-lg(p1) - lg(p10) - 126 * lg(p00))
    if p11 > 0:
        candidates.append(-lg(p1) - 127 * lg(p11))
    h_seq = min(candidates + [128.0])
    h = min(h_seq / 128.0, 1.0)
    return Estimate("markov", "6.3.3", h, 2.0 ** (-h_seq / 128.0),
                    {"p_0": p0, "p_1": p1, "p_00": p00, "p_01": p01, "p_10": p10, "p_11": p11,
                     "p_max_128": 2.0 ** (-h_seq)})


# ---------------------------------------------------------------------------------------------------
# §6.3.4 Compression (Maurer-style universal statistic)
# ---------------------------------------------------------------------------------------------------
_COMP_B = 6
_COMP_D = 1000


@njit(cache=True)
def _compression_distances(s, b, d):
    nb = s.size // b
    last = np.zeros(1 << b, np.int64)
    for i in range(d):
        w = 0
        for j in range(b):
            w = (w << 1) | s[i * b + j]
        last[w] = i + 1
    total = 0.0
    total_sq = 0.0
    for i in range(d, nb):
        w = 0
        for j in range(b):
            w = (w << 1) | s[i * b + j]
        x = math.log2(i + 1 - last[w])
        total += x
        total_sq += x * x
        last[w] = i + 1
    return total, total_sq, nb


@njit(cache=True)
def _compression_g(z, d, nb, log2i):
    # G(z) of SP 800-90B Appendix G.1.2: expected log2 distance contribution of one symbol of
    # probability z, averaged over the v = nb - d test blocks.  With B_i = (1-z)^(i-1):
    #   G = z/v * ( z * [ sum_{i=d+1}^{nb-1} (nb-i) log2(i) B_i + (nb-d) A_{d+1} ]
    #               + sum_{i=d+1}^{nb} log2(i) B_i ),   A_{d+1} = sum_{i=2}^{d} log2(i) B_i.
    q = 1.0 - z
    bi = q                       # B_2
    a_head = 0.0
    for i in range(2, d + 1):
        a_head += log2i[i] * bi
        bi *= q
    tail = 0.0                   # sum_{i=d+1}^{nb} log2(i) B_i
    weighted = 0.0               # sum_{i=d+1}^{nb-1} (nb-i) log2(i) B_i
    for i in range(d + 1, nb):
        ai = log2i[i] * bi
        if ai == 0.0:
            break                # (1-z)^i underflowed: the remaining terms are all zero
        tail += ai
        weighted += (nb - i) * ai
        bi *= q
    else:
        tail += log2i[nb] * bi
    weighted += (nb - d) * a_head
    return z * (z * weighted + tail) / (nb - d)


def _compression_expectation(p, nb, log2i):
    q = (1.0 - p) / ((1 << _COMP_B) - 1.0)
    return (_compression_g(p, _COMP_D, nb, log2i)
            + ((1 << _COMP_B) - 1.0) * _compression_g(q, _COMP_D, nb, log2i))


def _bisect_decreasing(f, target, lo, hi, max_iter=1100):
    """Root of a decreasing f(p) = target on [lo, hi] by bisection to the last representable bit."""
    p = 0.5 * (lo + hi)
    for _ in range(max_iter):
        val = f(p)
        if val == target or math.isclose(val, target, rel_tol=2.220446049250313e-16, abs_tol=0.0):
            return p
        if val > target:
            lo = p
        else:
            hi = p
        nxt = 0.5 * (lo + hi)
        if not (lo < nxt < hi):
            return hi
        p = nxt
    return p


def compression(bits) -> Estimate:
    """§6.3.4 compression estimate (b = 6-bit blocks, d = 1000 dictionary blocks); H per bit."""
    s = as_bits(bits, min_samples=MIN_SAMPLES)
    b, d = _COMP_B, _COMP_D
    total, total_sq, nb = _compression_distances(s, b, d)
    v = nb - d
    x_bar = total / v
    sigma = 0.5907 * math.sqrt(max(total_sq / (v - 1.0) - x_bar * x_bar, 0.0))
    x_lo = x_bar - Z_ALPHA * sigma / math.sqrt(v)
    log2i = np.log2(np.arange(nb + 1, dtype=np.float64).clip(1.0))
    k = 1 << b
    f = lambda p: _compression_expectation(p, nb, log2i)  # noqa: E731
    found = False
    p = 1.0 / k
    if f(1.0 / k) > x_lo:
        p = _bisect_decreasing(f, x_lo, 1.0 / k, 1.0)
        found = p > 1.0 / k
    if found:
        h = -math.log2(p) / b
    else:
        p, h = 1.0 / k, 1.0
    return Estimate("compression", "6.3.4", h, 2.0 ** -h,
                    {"x_bar": x_bar, "sigma_hat": sigma, "x_bar_lower": x_lo, "p_block": p,
                     "block_bits": b, "dictionary_blocks": d, "test_blocks": v, "p_found": found})


# ---------------------------------------------------------------------------------------------------
# §6.3.5 t-tuple and §6.3.6 LRS: tuple statistics from a suffix array
# ---------------------------------------------------------------------------------------------------
@njit(cache=True)
def _windows64(s):
    # Integer of the (up to) 64 samples starting at each position, first sample most significant,
    # zero-padded past the end, plus the number of real samples in it.
    n = s.size
    w = np.zeros(n, np.uint64)
    ln = np.empty(n, np.int64)
    acc = np.uint64(0)
    for i in range(64):
        acc = (acc << np.uint64(1)) | np.uint64(s[i] if i < n else 0)
    for i in range(n):
        w[i] = acc
        ln[i] = min(64, n - i)
        nxt = s[i + 64] if i + 64 < n else 0
        acc = (acc << np.uint64(1)) | np.uint64(nxt)
    return w, ln


@njit(cache=True)
def _radix_argsort(keys, order, bits):
    # Stable LSD radix sort (16-bit digits) of `order` by keys[order]; only the low `bits` bits of the
    # keys are looked at. Stability is what resolves ties (see suffix_array).
    n = order.size
    buf = np.empty(n, np.int64)
    kb = np.empty(n, np.uint64)
    ks = np.empty(n, np.uint64)
    for i in range(n):
        ks[i] = keys[order[i]]
    src_o, dst_o = order, buf
    src_k, dst_k = ks, kb
    shift = 0
    while shift < bits:
        cnt = np.zeros(65537, np.int64)
        sh = np.uint64(shift)
        for i in range(n):
            cnt[((src_k[i] >> sh) & np.uint64(0xFFFF)) + 1] += 1
        for d in range(65536):
            cnt[d + 1] += cnt[d]
        for i in range(n):
            dgt = (src_k[i] >> sh) & np.uint64(0xFFFF)
            pos = cnt[dgt]
            cnt[dgt] = pos + 1
            dst_o[pos] = src_o[i]
            dst_k[pos] = src_k[i]
        src_o, dst_o = dst_o, src_o
        src_k, dst_k = dst_k, src_k
        shift += 16
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = src_o[i]
    return out


@njit(cache=True)
def _ranks_from_sorted(keys, ln, order):
    # rank[order[k]] = 1 + number of distinct (key, length) values before position k; returns the max.
    n = order.size
    rank = np.empty(n, np.int64)
    r = 1
    rank[order[0]] = 1
    for k in range(1, n):
        a, b = order[k - 1], order[k]
        if keys[a] != keys[b] or ln[a] != ln[b]:
            r += 1
        rank[b] = r
    return rank, r


@njit(cache=True)
def _pair_keys(rank, k):
    n = rank.size
    out = np.empty(n, np.uint64)
    for i in range(n):
        second = rank[i + k] if i + k < n else 0
        out[i] = np.uint64(rank[i]) * np.uint64(n + 1) + np.uint64(second)
    return out


def suffix_array(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Suffix array of a 0/1 sequence (int64 start positions in lexicographic order), and the 64-sample
    windows used to build it.

    Prefix doubling: an exact sort on the first 64 samples (a shorter suffix sorts before a longer one
    with the same zero-padded window: the initial order lists the short tail suffixes first, shortest
    first, and the radix sort is stable), then rounds on rank pairs until every rank is distinct.
    """
    n = s.size
    w, ln = _windows64(s)
    tail = min(63, n)
    start = np.concatenate((np.arange(n - 1, n - 1 - tail, -1), np.arange(0, n - tail))).astype(np.int64)
    order = _radix_argsort(w, start, 64)
    rank, top = _ranks_from_sorted(w, ln, order)
    k = 64
    bits = int(np.ceil(np.log2(float(n + 1) * (n + 1)))) if n > 1 else 1
    zeros = np.zeros(n, np.int64)
    while top < n:
        keys = _pair_keys(rank, k)
        order = _radix_argsort(keys, order, bits)
        rank, top = _ranks_from_sorted(keys, zeros, order)
        k *= 2
    return order, w


@njit(cache=True)
def _clz64(x):
    n = 0
    if x >> np.uint64(32) == 0:
        n += 32
        x <<= np.uint64(32)
    if x >> np.uint64(48) == 0:
        n += 16
        x <<= np.uint64(16)
    if x >> np.uint64(56) == 0:
        n += 8
        x <<= np.uint64(8)
    if x >> np.uint64(60) == 0:
        n += 4
        x <<= np.uint64(4)
    if x >> np.uint64(62) == 0:
        n += 2
        x <<= np.uint64(2)
    if x >> np.uint64(63) == 0:
        n += 1
    return n


@njit(cache=True)
def _lcp_windows(w, sa):
    # lcp[k] = longest common prefix of suffixes sa[k-1] and sa[k] (lcp[0] = 0). Kasai et al.'s order
    # (text order, lcp(i+1) >= lcp(i) - 1, so O(n) in total even for periodic data), with the
    # extension done 64 samples at a time through the windows: the first differing sample is the
    # leading-zero count of the XOR; capped by the shorter suffix since windows are zero-padded.
    n = sa.size
    rank = np.empty(n, np.int64)
    for k in range(n):
        rank[sa[k]] = k
    lcp = np.zeros(n, np.int64)
    h = 0
    for i in range(n):
        k = rank[i]
        if k == 0:
            h = 0
            continue
        j = sa[k - 1]
        cap = n - i if n - i < n - j else n - j
        while h < cap:
            x = w[i + h] ^ w[j + h]
            if x == 0:
                h += 64
            else:
                h += _clz64(x)
                break
        if h > cap:
            h = cap
        lcp[k] = h
        if h > 0:
            h -= 1
    return lcp


@njit(cache=True)
def _tuple_counts(lcp):
    # Bottom-up walk of the lcp-intervals: an interval of lcp value l whose enclosing interval has
    # value l_parent groups the `size` suffixes that share each t-prefix for t in (l_parent, l].
    # Returns, for t = 0..v: q[t] = highest count of any t-tuple, pairs[t] = sum over distinct
    # t-tuples of C(count, 2).
    n = lcp.size
    v = 0
    for k in range(n):
        if lcp[k] > v:
            v = lcp[k]
    top_size = np.zeros(v + 2, np.int64)
    pair_diff = np.zeros(v + 3, np.int64)
    st_l = np.empty(n + 2, np.int64)
    st_lb = np.empty(n + 2, np.int64)
    top = 0
    st_l[0] = 0
    st_lb[0] = 0
    for k in range(1, n + 1):
        cur = lcp[k] if k < n else 0
        lb = k - 1
        while cur < st_l[top]:
            l = st_l[top]
            lb = st_lb[top]
            top -= 1
            size = k - lb
            parent = cur if cur > st_l[top] else st_l[top]
            if size > top_size[l]:
                top_size[l] = size
            c2 = size * (size - 1) // 2
            pair_diff[parent + 1] += c2
            pair_diff[l + 1] -= c2
        if cur > st_l[top]:
            top += 1
            st_l[top] = cur
            st_lb[top] = lb
    q = np.ones(v + 1, np.int64)
    running = 1
    for t in range(v, 0, -1):
        if top_size[t] > running:
            running = top_size[t]
        q[t] = running
    pairs = np.zeros(v + 1, np.int64)
    acc = 0
    for t in range(0, v + 1):
        acc += pair_diff[t]
        pairs[t] = acc
    return v, q, pairs


def tuple_statistics(bits) -> dict:
    """Overlapping-tuple statistics shared by §6.3.5 and §6.3.6.

    Returns n, v (length of the longest repeated substring), q[t] (largest count of any t-tuple) and
    pairs[t] (sum of C(count, 2) over distinct t-tuples) for t = 0..v.
    """
    s = as_bits(bits)
    sa, w = suffix_array(s)
    lcp = _lcp_windows(w, sa)
    v, q, pairs = _tuple_counts(lcp)
    return {"n": int(s.size), "v": int(v), "q": q, "pairs": pairs}


def _tuple_threshold(stats) -> int:
    # u = smallest t whose most common t-tuple occurs fewer than 35 times (v + 1 if none).
    q, v = stats["q"], stats["v"]
    u = 1
    while u <= v and q[u] >= 35:
        u += 1
    return u


def t_tuple(bits, *, stats: dict | None = None) -> Estimate:
    """§6.3.5: p̂_max = max_t (Q[t]/(n-t+1))^(1/t) over t with a tuple seen ≥ 35 times; bound as §6.3.1."""
    stats = stats or tuple_statistics(bits)
    n, q = stats["n"], stats["q"]
    u = _tuple_threshold(stats)
    if u == 1:
        return Estimate("t_tuple", "6.3.5", None, None,
                        {"t": 0, "reason": "no sample value occurs 35 times"})
    p_max = max((q[t] / (n - t + 1)) ** (1.0 / t) for t in range(1, u))
    p_u = _upper_bound(p_max, n)
    return Estimate("t_tuple", "6.3.5", _neg_log2(p_u), p_u,
                    {"t": u - 1, "p_hat_max": p_max, "p_u": p_u})


def lrs(bits, *, stats: dict | None = None) -> Estimate:
    """§6.3.6 longest-repeated-substring estimate over tuple lengths u..v (u from §6.3.5's threshold)."""
    stats = stats or tuple_statistics(bits)
    n, v, pairs = stats["n"], stats["v"], stats["pairs"]
    u = _tuple_threshold(stats)
    if v < u:
        return Estimate("lrs", "6.3.6", None, None,
                        {"u": u, "v": v, "reason": "longest repeat is shorter than the 35-count threshold"})
    p_max = 0.0
    for t in range(u, v + 1):
        m = n - t + 1
        p_t = float(pairs[t]) / (m * (m - 1) / 2.0)
        p_max = max(p_max, p_t ** (1.0 / t))
    p_u = _upper_bound(p_max, n)
    return Estimate("lrs", "6.3.6", _neg_log2(p_u), p_u, {"u": u, "v": v, "p_hat": p_max, "p_u": p_u})


# ---------------------------------------------------------------------------------------------------
# §6.3.7–6.3.10 predictors; shared final step (§6.3.7 steps 7-9)
# ---------------------------------------------------------------------------------------------------
def _log_no_long_run(p: float, r: int, n: int) -> float:
    """ln P(no run of ≥ r correct predictions in n trials of success probability p) (§6.3.7 step 8)."""
    q = 1.0 - p
    x = 1.0
    for _ in range(66):
        x_new = 1.0 + q * p ** r * x ** (r + 1)
        if x_new - x <= 2.220446049250313e-16 * x_new:
            x = x_new
            break
        x = x_new
    a, b = 1.0 - p * x, (r + 1.0 - r * x) * q
    if a <= 0.0 or b <= 0.0:
        # The iteration settled on the root x >= 1/p: the run length r is so short for this p that
        # the probability of no run of r in n trials underflows (it is below any target); NIST's tool
        # gets a NaN there that compares false, with the same outcome as -inf here.
        return -math.inf
    return math.log(a) - math.log(b) - (n + 1.0) * math.log(x)


def prediction_estimate(name: str, section: str, correct: int, n: int, longest_run: int,
                        k: int = 2) -> Estimate:
    """Min-entropy from a predictor's C correct out of N and its longest run of correct predictions.

    P_global' = upper 99 % bound of C/N (or 1 - 0.01^(1/N) when C = 0); P_local solves
    0.99 = P(no run longer than the observed one); H = -log2(max(P_global', P_local, 1/k)).
    """
    p_global = correct / n
    if p_global > 0:
        p_global_u = min(1.0, p_global + Z_ALPHA * math.sqrt(p_global * (1.0 - p_global) / (n - 1.0)))
    else:
        p_global_u = 1.0 - 0.01 ** (1.0 / n)
    r = longest_run + 1
    p = max(1.0 / k, p_global_u)
    p_local = None
    target = math.log(0.99)
    if p < 1.0 and _log_no_long_run(p, r, n) > target:
        p_local = _bisect_decreasing(lambda x: _log_no_long_run(x, r, n), target, p, 1.0)
        p = max(p, p_local)
    return Estimate(name, section, _neg_log2(p), p,
                    {"c": int(correct), "n": int(n), "r": int(r), "p_global": p_global,
                     "p_global_upper": p_global_u, "p_local": p_local})


@njit(cache=True)
def _multimcw_run(s, majority, windows):
    # majority[j, i] = most common value in the window of windows[j] samples before s[i] (odd windows:
    # no ties for binary data).  Predictor j starts predicting at i = windows[j].
    n = s.size
    nw = windows.size
    score = np.zeros(nw, np.int64)
    winner = 0
    correct = 0
    run = 0
    best_run = 0
    for i in range(windows[0], n):
        if majority[winner, i] == s[i]:
            correct += 1
            run += 1
            if run > best_run:
                best_run = run
        else:
            run = 0
        for j in range(nw):
            if i >= windows[j] and majority[j, i] == s[i]:
                score[j] += 1
                if score[j] >= score[winner]:
                    winner = j
    return correct, best_run


def multi_mcw(bits) -> Estimate:
    """§6.3.7 MultiMCW prediction estimate (windows 63, 255, 1023, 4095)."""
    s = as_bits(bits, min_samples=4096)
    n = s.size
    windows = np.array([63, 255, 1023, 4095], np.int64)
    csum = np.concatenate(([0], np.cumsum(s, dtype=np.int64)))
    majority = np.zeros((windows.size, n), np.uint8)
    for j, w in enumerate(windows):
        idx = np.arange(w, n)
        majority[j, w:] = (2 * (csum[idx] - csum[idx - w]) > w)
    correct, best_run = _multimcw_run(s, majority, windows)
    return prediction_estimate("multimcw", "6.3.7", correct, n - windows[0], best_run)


@njit(cache=True)
def _lag_run(s, depth):
    n = s.size
    score = np.zeros(depth, np.int64)
    winner = 0
    high = 0
    correct = 0
    run = 0
    best_run = 0
    for i in range(1, n):
        cur = s[i]
        if s[i - winner - 1] == cur:
            correct += 1
            run += 1
            if run > best_run:
                best_run = run
        else:
            run = 0
        top = depth if i >= depth else i
        # Counters are updated shortest lag first and a tie goes to the one updated last, as in the
        # reference tool. Written branch-free: the match pattern is random, branches mispredict.
        for d in range(top):
            m = np.int64(s[i - d - 1] == cur)
            sc = score[d] + m
            score[d] = sc
            upd = (m == 1) & (sc >= high)
            winner = d if upd else winner
            high = sc if upd else high
    return correct, best_run


def lag(bits) -> Estimate:
    """§6.3.8 lag prediction estimate (lags 1..128)."""
    s = as_bits(bits, min_samples=3)
    correct, best_run = _lag_run(s, 128)
    return prediction_estimate("lag", "6.3.8", correct, s.size - 1, best_run)


def _count_array(size: int, n: int) -> np.ndarray:
    # Counts never exceed n; int32 halves the tables' cache footprint for all practical streams.
    return np.zeros(size, np.int32 if n < 2**31 - 1 else np.int64)


@njit(cache=True)
def _multimmc_run(s, depth, max_entries, counts):
    # counts[d] holds, for every (d+1)-sample context x (oldest sample most significant), the number
    # of times 0 and 1 followed it: index 2*x + y.
    n = s.size
    offsets = np.zeros(depth + 1, np.int64)
    for d in range(depth):
        offsets[d + 1] = offsets[d] + (1 << (d + 2))
    entries = np.zeros(depth, np.int64)
    pattern = 0
    for d in range(depth):
        pattern = (pattern << 1) | s[d]
        counts[offsets[d] + 2 * pattern + s[d + 1]] = 1
        entries[d] = 1
    score = np.zeros(depth, np.int64)
    winner = 0
    correct = 0
    run = 0
    best_run = 0
    for i in range(2, n):
        cur_winner = winner
        found = False
        pattern = 0
        y = s[i]
        top = depth if i - 1 > depth else i - 1
        for d in range(top):
            pattern = pattern | (np.int64(s[i - d - 1]) << d)
            base = offsets[d] + 2 * pattern
            if d == 0 or found:
                c0 = counts[base]
                c1 = counts[base + 1]
                pred = 0 if c0 > c1 else 1
                found = (c0 if c0 > c1 else c1) > 0
            if found:
                if pred == y:
                    score[d] += 1
                    if score[d] >= score[winner]:
                        winner = d
                    if d == cur_winner:
                        correct += 1
                        run += 1
                        if run > best_run:
                            best_run = run
                elif d == cur_winner:
                    run = 0
                if counts[base + y] != 0:
                    counts[base + y] += 1
                elif entries[d] < max_entries:
                    counts[base + y] = 1
                    entries[d] += 1
            elif entries[d] < max_entries:
                counts[base + y] = 1
                entries[d] += 1
    return correct, best_run


def multi_mmc(bits) -> Estimate:
    """§6.3.9 MultiMMC prediction estimate (Markov models of order 1..16, 100 000 entries each)."""
    s = as_bits(bits, min_samples=20)
    correct, best_run = _multimmc_run(s, 16, 100_000, _count_array(2 ** 18, s.size))
    return prediction_estimate("multimmc", "6.3.9", correct, s.size - 2, best_run)


@njit(cache=True)
def _lz78y_run(s, depth, max_dict, counts):
    # counts[offsets[j] + 2*x + y]: times y followed the j-sample context x (newest sample = bit 0).
    n = s.size
    offsets = np.zeros(depth + 2, np.int64)
    for j in range(1, depth + 1):
        offsets[j + 1] = offsets[j] + (1 << (j + 1))
    elems = 0
    pattern = 0
    for j in range(depth):
        pattern = pattern | (np.int64(s[depth - j - 1]) << j)
        counts[offsets[j + 1] + 2 * pattern + s[depth]] = 1
        elems += 1
    correct = 0
    run = 0
    best_run = 0
    mask = (1 << depth) - 1
    full = 0
    for m in range(depth):
        full = (full << 1) | s[m]
    for i in range(depth + 1, n):
        full = ((full << 1) | s[i - 1]) & mask
        y = s[i]
        have = False
        pred = 0
        best = 0
        for j in range(depth, 0, -1):
            x = full & ((1 << j) - 1)
            base = offsets[j] + 2 * x
            c0 = counts[base]
            c1 = counts[base + 1]
            cnt = c0 if c0 > c1 else c1
            if cnt > 0:
                if cnt > best:
                    best = cnt
                    have = True
                    pred = 0 if c0 > c1 else 1
                counts[base + y] += 1
            elif elems < max_dict:
                counts[base + y] = 1
                elems += 1
        if have and pred == y:
            correct += 1
            run += 1
            if run > best_run:
                best_run = run
        else:
            run = 0
    return correct, best_run


def lz78y(bits) -> Estimate:
    """§6.3.10 LZ78Y prediction estimate (B = 16, dictionary of at most 65 536 prefixes)."""
    s = as_bits(bits, min_samples=20)
    correct, best_run = _lz78y_run(s, 16, 65_536, _count_array(2 ** 18, s.size))
    return prediction_estimate("lz78y", "6.3.10", correct, s.size - 17, best_run)


def constant_stream_estimates(n: int) -> dict[str, Estimate]:
    """Results for a stream holding a single value: SP 800-90B awards no entropy (the tool refuses it)."""
    return {name: Estimate(name, sec, 0.0, 1.0, {"reason": "constant stream: one symbol only", "n": n})
            for name, sec in zip(ESTIMATORS, ("6.3.1", "6.3.2", "6.3.3", "6.3.4", "6.3.5", "6.3.6",
                                              "6.3.7", "6.3.8", "6.3.9", "6.3.10"))}


def all_estimates(bits) -> dict[str, Estimate]:
    """Run the ten estimators; keys as :data:`ESTIMATORS`."""
    s = as_bits(bits, min_samples=MIN_SAMPLES)
    ones = int(np.count_nonzero(s))
    if ones == 0 or ones == s.size:
        return constant_stream_estimates(s.size)
    stats = tuple_statistics(s)
    return {
        "mcv": most_common_value(s),
        "collision": collision(s),
        "markov": markov(s),
        "compression": compression(s),
        "t_tuple": t_tuple(s, stats=stats),
        "lrs": lrs(s, stats=stats),
        "multimcw": multi_mcw(s),
        "lag": lag(s),
        "multimmc": multi_mmc(s),
        "lz78y": lz78y(s),
    }
