"""Numba kernels of the kd-tree engine's live graph: the rows a new point enters.

A new point ``y`` enters the neighbour list of a held point ``x`` exactly
when ``d(x, y) < tau(x)``, the last distance held for ``x`` (new points
have larger ids, so they lose ties; see :mod:`sklearn_pcct._graph`).
:func:`knn_and_reverse` finds these pairs over a kd-tree of
:mod:`._kernels_kd`, skipping every subtree whose box is not closer than
the largest ``tau`` in it, and the new point's own nearest neighbours in
the same traversal (a new point's neighbours and the rows it enters lie in
the same region).
"""

import numpy as np
from numba import njit, prange

from ._kernels_kd import (
    SORTED_MAX_K,
    _beyond,
    _box_lower,
    _depth_of,
    _prunes,
    _range,
    _sorted_offer,
    seed_candidates,
)
from ._kernels_query import _before, _result_offer, _result_store, _result_write
from ._metrics import finish_distance, metric_code, raw_distance

__all__ = ["gather_pairs", "knn_and_reverse"]


@njit(cache=True)
def _subtree_max(tau_pos, n_nodes):
    """Per node: the largest ``tau_pos`` of its positions (``-inf`` if none)."""
    n = tau_pos.shape[0]
    depth = _depth_of(n_nodes)
    first_leaf = (1 << depth) - 1
    out = np.empty(n_nodes, dtype=np.float64)
    for v in range(n_nodes - 1, -1, -1):
        if v >= first_leaf:
            a, b = _range(v, n, depth)
            r = -np.inf
            for u in range(a, b):
                if tau_pos[u] > r:
                    r = tau_pos[u]
            out[v] = r
        else:
            out[v] = max(out[2 * v + 1], out[2 * v + 2])
    return out


@njit(cache=True)
def _reverse_one(Q, q, pts, perm, lo, hi, tau_pos, mk, code, stack, buf, out_ind, out_dist,
                 pos, room):
    """Count the positions ``u`` with ``d(Q[q], u) < tau_pos[u]``; store the first ``room``.

    Stored at ``out_ind[pos:]`` / ``out_dist[pos:]`` (``perm[u]`` and the distance).
    """
    n = pts.shape[0]
    depth = _depth_of(lo.shape[0])
    first_leaf = (1 << depth) - 1
    cnt = 0
    if n == 0 or _prunes(_box_lower(Q, q, lo, hi, 0, code), mk[0]):
        return cnt
    stack[0] = 0
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        if v >= first_leaf:
            a, b = _range(v, n, depth)
            for u in range(a, b):
                buf[u - a] = raw_distance(Q, q, pts, u, code)
            for u in range(a, b):
                if tau_pos[u] > -np.inf:
                    d = finish_distance(Q, q, pts, u, code, buf[u - a])
                    if d < tau_pos[u]:
                        if cnt < room:
                            out_ind[pos + cnt] = perm[u]
                            out_dist[pos + cnt] = d
                        cnt += 1
            continue
        for c in range(2 * v + 1, 2 * v + 3):
            if not _prunes(_box_lower(Q, q, lo, hi, c, code), mk[c]):
                stack[top] = c
                top += 1
    return cnt


@njit(cache=True, parallel=True)
def gather_pairs(Q, pts, perm, lo, hi, tau_pos, mk, tag, counts, slab_ind, slab_dist):
    """``(indptr, ind, dist)``: the pairs of :func:`knn_and_reverse` in CSR layout.

    ``ind`` holds ``perm[u]`` (in tree order within a query). A query with
    more pairs than its slab holds is searched again, straight into the
    output.
    """
    code = metric_code(tag)
    n = pts.shape[0]
    n_q = Q.shape[0]
    room = slab_ind.shape[0] // max(1, n_q)
    depth = _depth_of(lo.shape[0])
    leaf_cap = ((n + (1 << depth) - 1) >> depth) + 1
    indptr = np.zeros(n_q + 1, dtype=np.int64)
    for q in range(n_q):
        indptr[q + 1] = indptr[q] + counts[q]
    out_ind = np.empty(indptr[n_q], dtype=np.int64)
    out_dist = np.empty(indptr[n_q], dtype=np.float64)
    n_blocks = max(1, min(n_q, 256))
    for blk in prange(n_blocks):
        stack = np.empty(depth + 2, dtype=np.int64)
        buf = np.empty(leaf_cap, dtype=np.float64)
        for q in range(blk * n_q // n_blocks, (blk + 1) * n_q // n_blocks):
            if counts[q] <= room:
                for t in range(counts[q]):
                    out_ind[indptr[q] + t] = slab_ind[q * room + t]
                    out_dist[indptr[q] + t] = slab_dist[q * room + t]
            else:
                _reverse_one(Q, q, pts, perm, lo, hi, tau_pos, mk, code, stack, buf, out_ind,
                             out_dist, indptr[q], counts[q])
    return indptr, out_ind, out_dist

@njit(cache=True)
def _both_range(qa, qb, Q, qorder, pts, perm, lo, hi, alive, min_rank, tau_pos, mk, seeded,
                code, out_dist, out_ind, slab_ind, slab_dist, room, counts):
    """Queries ``qorder[qa:qb]`` of :func:`knn_and_reverse`."""
    n = pts.shape[0]
    k = out_ind.shape[1]
    depth = _depth_of(lo.shape[0])
    first_leaf = (1 << depth) - 1
    in_order = k <= SORTED_MAX_K
    last = k - 1 if in_order else 0
    rd = np.empty(k, dtype=np.float64)
    ri = np.empty(k, dtype=np.int64)
    s_node = np.empty(depth + 2, dtype=np.int64)
    s_lb = np.empty(depth + 2, dtype=np.float64)
    buf = np.empty(((n + (1 << depth) - 1) >> depth) + 1, dtype=np.float64)
    masked = alive.shape[0] > 0
    for qq in range(qa, qb):
        q = qorder[qq]
        cnt = 0
        tau = np.inf
        if seeded:
            cnt = seed_candidates(rd, ri, out_dist, out_ind, q, k, in_order)
            if cnt == k:
                tau = rd[last]
        pairs = 0
        top = 0
        if n > 0:
            s_node[0] = 0
            s_lb[0] = _box_lower(Q, q, lo, hi, 0, code)
            top = 1
        while top > 0:
            top -= 1
            v = s_node[top]
            lb = s_lb[top]
            want_knn = min_rank[v] < 1 and not (cnt == k and _beyond(lb, tau))
            if not want_knn and _prunes(lb, mk[v]):
                continue
            if v >= first_leaf:
                a, b = _range(v, n, depth)
                for u in range(a, b):
                    buf[u - a] = raw_distance(Q, q, pts, u, code)
                for u in range(a, b):
                    if masked and alive[u] == 0:
                        continue
                    d = finish_distance(Q, q, pts, u, code, buf[u - a])
                    if d < tau_pos[u]:
                        if pairs < room:
                            slab_ind[q * room + pairs] = perm[u]
                            slab_dist[q * room + pairs] = d
                        pairs += 1
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
            b1 = _box_lower(Q, q, lo, hi, c1, code)
            b2 = _box_lower(Q, q, lo, hi, c2, code)
            if b2 < b1:  # the nearer child is searched first
                c1, c2 = c2, c1
                b1, b2 = b2, b1
            s_node[top] = c2
            s_lb[top] = b2
            s_node[top + 1] = c1
            s_lb[top + 1] = b1
            top += 2
        counts[q] = pairs
        if in_order:
            _result_write(rd, ri, cnt, k, out_dist, out_ind, q)
        else:
            _result_store(rd, ri, cnt, k, out_dist, out_ind, q)


@njit(cache=True, parallel=True)
def knn_and_reverse(Q, qorder, chunks, pts, perm, lo, hi, alive, min_rank, tau_pos, seeded,
                    slab_per_query, tag, out_dist, out_ind):
    """The ``k`` nearest live positions of each query and its reverse pairs, in one search.

    The k-NN part is :func:`._kernels_kd.ordered_knn` without a rank
    restriction (query ``i`` in row ``i``; ``alive``, ``min_rank`` and
    ``seeded`` as there) and fills ``out_dist`` / ``out_ind``; the reverse
    part finds the positions ``u`` with ``d(Q[i], u) < tau_pos[u]``
    (``tau_pos``: ``-inf`` at removed positions), one traversal per query
    for both. The pairs go to a slab of ``slab_per_query`` entries per
    query; returns ``(counts, slab_ind, slab_dist, mk)`` for
    :func:`gather_pairs`.
    """
    code = metric_code(tag)
    n_q = Q.shape[0]
    mk = _subtree_max(tau_pos, lo.shape[0])
    room = max(1, slab_per_query)
    slab_ind = np.empty(n_q * room, dtype=np.int64)
    slab_dist = np.empty(n_q * room, dtype=np.float64)
    counts = np.zeros(n_q, dtype=np.int64)
    for c in prange(chunks.shape[0] - 1):
        _both_range(chunks[c], chunks[c + 1], Q, qorder, pts, perm, lo, hi, alive, min_rank,
                    tau_pos, mk, seeded, code, out_dist, out_ind, slab_ind, slab_dist, room,
                    counts)
    return counts, slab_ind, slab_dist, mk
