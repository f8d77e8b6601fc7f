"""Numba kernels of the low-dimensional engine for Vecchia sets: a kd-tree.

In two or three dimensions the cost of the Vecchia pipeline is bookkeeping
per point, not distance evaluations: a balanced kd-tree with tight boxes
and leaf buckets prunes with box bounds that cost less than a distance and
is built in ``O(n log n)`` with no search at all. These kernels give the
same answers as the cover-tree kernels of :mod:`._kernels_vecchia` (the
exact maximin ordering, ties by smaller sample index, in
:mod:`._kernels_kd_maximin`; the rank-restricted k-NN, ties by sample index,
here) for the metrics whose distance to a box has a closed form (euclidean,
manhattan, chebyshev).

Layout: an implicit complete binary tree of depth ``depth``. Node ``v`` at
level ``t`` (``v = 2^t - 1 + j``) holds the positions
``[(j n) >> t, ((j + 1) n) >> t)`` of the permuted points ``pts = P[perm]``;
its children are ``2v + 1`` and ``2v + 2``; all leaves are at level
``depth`` and hold at most ``leaf_size`` points (at least half of it when
``n`` allows). ``lo[v]`` and ``hi[v]`` are the tight bounding box of the
node's points.

Pruning uses the box lower bound with the relative slack of
:data:`._kernels_query.PRUNE_SLACK`, so points tied with the threshold are
never lost; the box bound is computed with the same rounding-monotone
differences as the distance and rescaled where the sum of squares would
under- or overflow.
"""

import math

import numpy as np
from numba import njit, prange

from ._kernels_query import (
    PRUNE_SLACK,
    _before,
    _result_offer,
    _result_store,
    _result_write,
)
from ._metrics import (
    _HUGE,
    _TINY,
    CHEBYSHEV,
    EUCLIDEAN,
    MANHATTAN,
    finish_distance,
    metric_code,
    raw_distance,
)

__all__ = [
    "BOX_METRICS", "SORTED_MAX_K", "build", "leaves_by_rank", "ordered_knn", "seed_candidates",
    "subtree_min_rank",
]

# Metric codes with a box lower bound (the kd engine's metrics).
BOX_METRICS = (EUCLIDEAN, MANHATTAN, CHEBYSHEV)

# Largest k whose k-NN candidates are kept as a sorted array, not a heap.
SORTED_MAX_K = 64


@njit(cache=True)
def _select(P, dim, perm, a, b, nth):
    """Reorder ``perm[a:b]`` so that ``perm[nth]`` is its element of rank ``nth - a``.

    Order: ``(P[s, dim], s)``; elements before ``nth`` are not greater,
    elements after are not smaller (quickselect, median-of-three pivot).
    """
    lo = a
    hi = b - 1
    while hi > lo:
        if hi == lo + 1:
            if _before(P[perm[hi], dim], perm[hi], P[perm[lo], dim], perm[lo]):
                t = perm[lo]
                perm[lo] = perm[hi]
                perm[hi] = t
            break
        mid = (lo + hi) >> 1
        # median of three into perm[mid]
        x, y, z = perm[lo], perm[mid], perm[hi]
        kx, ky, kz = P[x, dim], P[y, dim], P[z, dim]
        if _before(ky, y, kx, x):
            x, y = y, x
            kx, ky = ky, kx
        if _before(kz, z, ky, y):
            y, z = z, y
            ky, kz = kz, ky
            if _before(ky, y, kx, x):
                x, y = y, x
                kx, ky = ky, kx
        perm[lo], perm[mid], perm[hi] = x, y, z
        piv = y
        kp = ky
        # Hoare partition of perm[lo:hi + 1] around (kp, piv)
        i = lo
        j = hi
        while i <= j:
            while _before(P[perm[i], dim], perm[i], kp, piv):
                i += 1
            while _before(kp, piv, P[perm[j], dim], perm[j]):
                j -= 1
            if i <= j:
                t = perm[i]
                perm[i] = perm[j]
                perm[j] = t
                i += 1
                j -= 1
        if nth <= j:
            hi = j
        elif nth >= i:
            lo = i
        else:
            break


@njit(cache=True)
def _depth(n, leaf_size):
    """Level of the leaves: the first at which no node holds more than ``leaf_size``."""
    depth = 0
    while ((n + (1 << depth) - 1) >> depth) > leaf_size:
        depth += 1
    return depth


@njit(cache=True, forceinline=True)
def _level(v):
    """Level of node ``v`` (the root's is 0)."""
    t = 0
    while (1 << (t + 1)) - 1 <= v:
        t += 1
    return t


@njit(cache=True, forceinline=True)
def _depth_of(n_nodes):
    """Level of the leaves of a tree of ``n_nodes`` nodes."""
    return _level(n_nodes - 1)


@njit(cache=True, forceinline=True)
def _range(v, n, level):
    """Positions ``[a, b)`` of node ``v``, which is at ``level``."""
    j = v - ((1 << level) - 1)
    return (j * n) >> level, ((j + 1) * n) >> level


@njit(cache=True)
def build(P, leaf_size):
    """The kd-tree of the rows of ``P`` (see the module docstring).

    Returns ``(perm, pts, lo, hi, leaf_of)``: the positions' sample indices,
    the permuted points (float64), the node boxes (``(n_nodes, m)`` each)
    and the leaf of every position. Splits are at the median of the widest
    coordinate (ties by sample index), so the tree does not depend on the
    number of threads.
    """
    n, m = P.shape
    depth = _depth(n, leaf_size)
    n_nodes = (1 << (depth + 1)) - 1
    perm = np.arange(n)
    for v in range((1 << depth) - 1):
        t = _level(v)
        a, b = _range(v, n, t)
        if b - a < 2:
            continue
        dim = 0
        spread = -1.0
        for c in range(m):
            mn = np.inf
            mx = -np.inf
            for u in range(a, b):
                x = np.float64(P[perm[u], c])
                if x < mn:
                    mn = x
                if x > mx:
                    mx = x
            if mx - mn > spread:
                spread = mx - mn
                dim = c
        _select(P, dim, perm, a, b, _range(2 * v + 1, n, t + 1)[1])
    pts = np.empty((n, m), dtype=np.float64)
    for u in range(n):
        for c in range(m):
            pts[u, c] = P[perm[u], c]
    lo = np.empty((n_nodes, m), dtype=np.float64)
    hi = np.empty((n_nodes, m), dtype=np.float64)
    leaf_of = np.empty(n, dtype=np.int64)
    first_leaf = (1 << depth) - 1
    for v in range(n_nodes - 1, -1, -1):
        if v >= first_leaf:
            a, b = _range(v, n, depth)
            for c in range(m):
                lo[v, c] = np.inf
                hi[v, c] = -np.inf
            for u in range(a, b):
                leaf_of[u] = v
                for c in range(m):
                    x = pts[u, c]
                    if x < lo[v, c]:
                        lo[v, c] = x
                    if x > hi[v, c]:
                        hi[v, c] = x
        else:
            for c in range(m):
                lo[v, c] = min(lo[2 * v + 1, c], lo[2 * v + 2, c])
                hi[v, c] = max(hi[2 * v + 1, c], hi[2 * v + 2, c])
    return perm, pts, lo, hi, leaf_of


@njit(cache=True, forceinline=True)
def _gap(Q, i, lo, hi, v, t):
    """How far coordinate ``t`` of ``Q[i]`` lies outside box ``v`` (0 inside).

    Without branches: which side a query lies on is unpredictable, and a
    mispredicted branch per coordinate costs more than the bound itself.
    """
    x = np.float64(Q[i, t])
    below = lo[v, t] - x
    above = x - hi[v, t]
    g = below if below > above else above
    return g if g > 0.0 else 0.0


@njit(cache=True, forceinline=True)
def _box_lower(Q, i, lo, hi, v, code):
    """A lower bound on the distance of ``Q[i]`` to every point of box ``v``."""
    m = Q.shape[1]
    acc = 0.0
    big = 0.0
    if code == EUCLIDEAN:
        for t in range(m):
            g = _gap(Q, i, lo, hi, v, t)
            acc += g * g
            big = g if g > big else big
    elif code == MANHATTAN:
        for t in range(m):
            acc += _gap(Q, i, lo, hi, v, t)
    else:
        for t in range(m):
            g = _gap(Q, i, lo, hi, v, t)
            big = g if g > big else big
    r = acc
    if code == CHEBYSHEV:
        r = big
    elif code == EUCLIDEAN:
        if acc <= _HUGE and (acc >= _TINY or big == 0.0):
            r = np.sqrt(acc)
        else:
            # rescaled by a power of two, as in the distance (exact scaling)
            e = math.frexp(big)[1]
            acc = 0.0
            for t in range(m):
                g = math.ldexp(_gap(Q, i, lo, hi, v, t), -e)
                acc += g * g
            r = math.ldexp(np.sqrt(acc), e)
    return r


@njit(cache=True, forceinline=True)
def _prunes(bound, threshold):
    """The box bound proves every point at least ``threshold`` away."""
    return bound - PRUNE_SLACK * bound >= threshold


@njit(cache=True, forceinline=True)
def _beyond(bound, tau):
    """The box bound proves every point farther than the k-th distance ``tau``.

    Strict: a point at exactly ``tau`` with a smaller index still enters.
    """
    return bound - PRUNE_SLACK * bound > tau


# -- rank-restricted k-NN -------------------------------------------------------

@njit(cache=True, parallel=True)
def leaves_by_rank(perm, pts, rank, n_nodes):
    """``(perm, pts, rank_pos)`` with each leaf's positions sorted by ``rank``.

    ``rank`` is indexed by sample. Leaves are contiguous ranges of
    positions and a leaf's box does not depend on the order of its points:
    a ranked leaf scan then stops at the first rank that is not earlier
    than the query's. Ranks are distinct, so the result is unique.
    """
    n, m = pts.shape
    depth = _depth_of(n_nodes)
    out_perm = np.empty(n, dtype=np.int64)
    out_pts = np.empty((n, m), dtype=np.float64)
    rank_pos = np.empty(n, dtype=np.int64)
    for j in prange(1 << depth):
        a, b = _range((1 << depth) - 1 + j, n, depth)
        # insertion sort of the (small) bucket: out_perm holds positions first
        for u in range(a, b):
            r = rank[perm[u]]
            x = u
            while x > a and rank_pos[x - 1] > r:
                rank_pos[x] = rank_pos[x - 1]
                out_perm[x] = out_perm[x - 1]
                x -= 1
            rank_pos[x] = r
            out_perm[x] = u
        for u in range(a, b):
            src = out_perm[u]
            for c in range(m):
                out_pts[u, c] = pts[src, c]
            out_perm[u] = perm[src]
    return out_perm, out_pts, rank_pos


@njit(cache=True)
def subtree_min_rank(rank_pos, n_nodes):
    """Per node: the smallest rank of its positions (``rank_pos`` by position)."""
    n = rank_pos.shape[0]
    depth = _depth_of(n_nodes)
    first_leaf = (1 << depth) - 1
    out = np.empty(n_nodes, dtype=np.int64)
    for v in range(n_nodes - 1, -1, -1):
        if v >= first_leaf:
            a, b = _range(v, n, depth)
            r = n
            for u in range(a, b):
                if rank_pos[u] < r:
                    r = rank_pos[u]
            out[v] = r
        else:
            out[v] = min(out[2 * v + 1], out[2 * v + 2])
    return out


@njit(cache=True, forceinline=True)
def _sorted_offer(rd, ri, cnt, k, d, i):
    """Offer ``(d, i)`` to the ascending array ``rd, ri``; return the new size.

    The caller checked that it enters (``cnt < k`` or it precedes the last).
    """
    j = cnt if cnt < k else k - 1
    if cnt < k:
        cnt += 1
    while j > 0 and _before(d, i, rd[j - 1], ri[j - 1]):
        rd[j] = rd[j - 1]
        ri[j] = ri[j - 1]
        j -= 1
    rd[j] = d
    ri[j] = i
    return cnt


@njit(cache=True, forceinline=True)
def seed_candidates(rd, ri, out_dist, out_ind, row, k, in_order):
    """Start a query's candidates from row ``row`` of the outputs; return their count.

    The row is sorted and padded with ``-1``: copied as it is into the
    ascending array, or offered to the heap (``in_order`` False).
    """
    cnt = 0
    for j in range(k):
        if out_ind[row, j] >= 0:
            if in_order:
                rd[cnt] = out_dist[row, j]
                ri[cnt] = out_ind[row, j]
                cnt += 1
            else:
                cnt = _result_offer(rd, ri, cnt, k, out_dist[row, j], out_ind[row, j])
    return cnt


@njit(cache=True)
def _ordered_range(qa, qb, Q, qrank, qorder, qrow, pts, perm, lo, hi, rank_pos, min_rank,
                   alive, seeded, k, tag, out_dist, out_ind):
    """Answer queries ``qorder[qa:qb]`` (see :func:`ordered_knn`)."""
    code = metric_code(tag)
    n = pts.shape[0]
    depth = _depth_of(lo.shape[0])
    first_leaf = (1 << depth) - 1
    # up to SORTED_MAX_K the result is an ascending array (an insertion
    # shifts a few entries, and no sort at the end); beyond, a max-heap
    in_order = k <= SORTED_MAX_K
    last = k - 1 if in_order else 0  # where the k-th candidate sits
    rd = np.empty(k, dtype=np.float64)
    ri = np.empty(k, dtype=np.int64)
    s_node = np.empty(depth + 2, dtype=np.int64)
    s_lb = np.empty(depth + 2, dtype=np.float64)
    buf = np.empty(((n + (1 << depth) - 1) >> depth) + 1, dtype=np.float64)
    masked = alive.shape[0] > 0
    for qq in range(qa, qb):
        q = qorder[qq]
        rq = qrank[q]
        cnt = 0
        tau = np.inf
        if seeded:  # continue from the row's current candidates
            cnt = seed_candidates(rd, ri, out_dist, out_ind, qrow[q], k, in_order)
            if cnt == k:
                tau = rd[last]
        top = 0
        if n > 0 and min_rank[0] < rq:
            s_node[0] = 0
            s_lb[0] = 0.0
            top = 1
        while top > 0:
            top -= 1
            v = s_node[top]
            if cnt == k and _beyond(s_lb[top], tau):
                continue
            if v >= first_leaf:
                a, b = _range(v, n, depth)
                e = a
                while e < b and rank_pos[e] < rq:  # ranks ascend within a leaf
                    e += 1
                # the bucket in one loop without branches, then the offers
                for u in range(a, e):
                    buf[u - a] = raw_distance(Q, q, pts, u, code)
                for u in range(a, e):
                    if masked and alive[u] == 0:
                        continue
                    d = finish_distance(Q, q, pts, u, code, buf[u - a])
                    if cnt < k or _before(d, perm[u], rd[last], ri[last]):
                        if in_order:
                            cnt = _sorted_offer(rd, ri, cnt, k, d, perm[u])
                        else:
                            cnt = _result_offer(rd, ri, cnt, k, d, perm[u])
                        if cnt == k:
                            tau = rd[last]
                continue
            c1 = 2 * v + 1
            c2 = c1 + 1
            ok1 = min_rank[c1] < rq
            ok2 = min_rank[c2] < rq
            b1 = _box_lower(Q, q, lo, hi, c1, code) if ok1 else np.inf
            b2 = _box_lower(Q, q, lo, hi, c2, code) if ok2 else np.inf
            if cnt == k:
                ok1 = ok1 and not _beyond(b1, tau)
                ok2 = ok2 and not _beyond(b2, tau)
            # push the farther child first: the nearer one is searched first
            if b2 < b1:
                c1, c2 = c2, c1
                b1, b2 = b2, b1
                ok1, ok2 = ok2, ok1
            if ok2:
                s_node[top] = c2
                s_lb[top] = b2
                top += 1
            if ok1:
                s_node[top] = c1
                s_lb[top] = b1
                top += 1
        if in_order:  # already sorted
            _result_write(rd, ri, cnt, k, out_dist, out_ind, qrow[q])
        else:
            _result_store(rd, ri, cnt, k, out_dist, out_ind, qrow[q])


@njit(cache=True, parallel=True)
def ordered_knn(Q, qrank, qorder, qrow, chunks, pts, perm, lo, hi, rank_pos, min_rank, alive,
                seeded, tag, out_dist, out_ind):
    """The ``k`` nearest points of rank ``< qrank[i]`` to rows ``Q[i]``, in place.

    ``k`` is the width of ``out_dist`` / ``out_ind``; query ``i`` fills
    their row ``qrow[i]``. ``rank_pos`` is the rank of each position,
    non-decreasing within every leaf (see :func:`leaves_by_rank`),
    ``min_rank`` comes from :func:`subtree_min_rank` and ``tag`` is
    :func:`._metrics.metric_tag` of the metric code. The queries ``qorder[chunks[0]:
    chunks[-1]]`` are answered, one block ``chunks[c] .. chunks[c + 1] - 1``
    per thread task (queries close in space should be close in
    ``qorder``). Rows hold ``perm[u]`` of the positions ``u`` found (sample
    indices, or ids if ``perm`` maps positions to ascending ids) sorted by
    ``(distance, index)``, padded with ``inf`` / ``-1``.

    ``alive`` (uint8 by position, or empty: all) excludes the positions
    where it is 0; ``min_rank`` must then count only the live positions
    (:func:`subtree_min_rank` of ``1 - alive``). With ``seeded`` each query starts from the
    candidates already in its row (sorted, padded, distinct from this
    tree's): a search over several trees merges exactly.
    """
    k = out_ind.shape[1]
    for c in prange(chunks.shape[0] - 1):
        _ordered_range(chunks[c], chunks[c + 1], Q, qrank, qorder, qrow, pts, perm, lo, hi,
                       rank_pos, min_rank, alive, seeded, k, tag, out_dist, out_ind)

