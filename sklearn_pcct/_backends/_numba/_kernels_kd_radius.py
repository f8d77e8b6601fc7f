"""Numba kernels of the kd-tree engine's radius search.

The points of a kd-tree of :mod:`._kernels_kd` within ``r[i]`` (inclusive)
of each query ``Q[i]``, skipping the positions masked out by ``alive`` and
every subtree whose box bound proves it farther than ``r[i]`` (with the
relative slack of :data:`._kernels_query.PRUNE_SLACK`, so that points at
exactly ``r[i]`` are never lost). The distances are those of the k-NN
kernels and of the cover tree, bit for bit. Two passes, as the cover
tree's radius search: :func:`radius_count`, then :func:`radius_fill` into
the CSR arrays sized by the counts.
"""

import numpy as np
from numba import njit, prange

from ._kernels_kd import _beyond, _box_lower, _depth_of, _range
from ._metrics import finish_distance, metric_code, raw_distance

__all__ = ["radius_count", "radius_fill"]


@njit(cache=True)
def _radius_one(Q, q, r, pts, perm, lo, hi, alive, code, stack, buf, out_ind, out_dist, pos,
                fill):
    """Count (with ``fill``: also store from ``pos``) the live positions within ``r``."""
    n = pts.shape[0]
    depth = _depth_of(lo.shape[0])
    first_leaf = (1 << depth) - 1
    masked = alive.shape[0] > 0
    cnt = 0
    if n == 0 or _beyond(_box_lower(Q, q, lo, hi, 0, code), r):
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
                if masked and alive[u] == 0:
                    continue
                d = finish_distance(Q, q, pts, u, code, buf[u - a])
                if d <= r:
                    if fill:
                        out_ind[pos + cnt] = perm[u]
                        out_dist[pos + cnt] = d
                    cnt += 1
            continue
        for c in range(2 * v + 1, 2 * v + 3):
            if not _beyond(_box_lower(Q, q, lo, hi, c, code), r):
                stack[top] = c
                top += 1
    return cnt


@njit(cache=True, parallel=True)
def radius_count(Q, chunks, r, pts, lo, hi, alive, tag):
    """Per query ``i``: how many live positions lie within ``r[i]`` of ``Q[i]``.

    Returns an int64 array of ``n_queries + 1`` entries, the counts in
    ``[1:]`` (a cumulative sum turns it into the CSR ``indptr``). The
    queries ``chunks[c] .. chunks[c + 1] - 1`` are one thread task.
    """
    code = metric_code(tag)
    n = pts.shape[0]
    depth = _depth_of(lo.shape[0])
    leaf_cap = ((n + (1 << depth) - 1) >> depth) + 1
    out = np.zeros(Q.shape[0] + 1, dtype=np.int64)
    no_ind = np.empty(0, dtype=np.int64)
    no_dist = np.empty(0, dtype=np.float64)
    for c in prange(chunks.shape[0] - 1):
        stack = np.empty(depth + 2, dtype=np.int64)
        buf = np.empty(leaf_cap, dtype=np.float64)
        for q in range(chunks[c], chunks[c + 1]):
            out[q + 1] = _radius_one(Q, q, r[q], pts, no_ind, lo, hi, alive, code, stack, buf,
                                     no_ind, no_dist, np.int64(0), np.bool_(False))
    return out


@njit(cache=True, parallel=True)
def radius_fill(Q, chunks, r, indptr, pts, perm, lo, hi, alive, tag):
    """``(ind, dist)``: the pairs counted by :func:`radius_count`, row ``i`` at ``indptr[i]``.

    ``ind`` holds ``perm[u]`` of the positions found (in tree order).
    """
    code = metric_code(tag)
    n = pts.shape[0]
    depth = _depth_of(lo.shape[0])
    leaf_cap = ((n + (1 << depth) - 1) >> depth) + 1
    n_q = Q.shape[0]
    ind = np.empty(indptr[n_q], dtype=np.int64)
    dist = np.empty(indptr[n_q], dtype=np.float64)
    for c in prange(chunks.shape[0] - 1):
        stack = np.empty(depth + 2, dtype=np.int64)
        buf = np.empty(leaf_cap, dtype=np.float64)
        for q in range(chunks[c], chunks[c + 1]):
            _radius_one(Q, q, r[q], pts, perm, lo, hi, alive, code, stack, buf, ind, dist,
                        indptr[q], np.bool_(True))
    return ind, dist
