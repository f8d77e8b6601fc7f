"""Numba kernels that keep a k-NN graph current after an insertion.

A new point ``y`` enters the neighbour list of a fitted point ``x`` exactly
when ``d(x, y) < tau(x)``, the current k-th distance of ``x`` (new points
have larger ids, so they lose ties). :func:`reverse_pairs` finds these
pairs with a search over the read-optimised tree pruned by ``mk``, the
largest ``tau`` in each subtree (:func:`subtree_max`): the subtree of ``c``
is skipped when a lower bound on ``d(y, c')`` for its nodes ``c'`` is at
least ``mk[c]``.
"""

import numpy as np
from numba import njit, prange

from ._metrics import distance

__all__ = ["subtree_max", "reverse_pairs", "merge_rows"]


@njit(cache=True)
def subtree_max(tau_node, child_start, child_stop):
    """``mk[v] = max(tau_node[u])`` over ``u`` in the subtree of ``v`` (itself included)."""
    n = tau_node.shape[0]
    mk = tau_node.copy()
    for v in range(n - 1, -1, -1):
        for c in range(child_start[v], child_stop[v]):
            if mk[c] > mk[v]:
                mk[v] = mk[c]
    return mk


@njit(cache=True)
def _reverse_one(Q, i, points, parent_dist, radius, child_start, child_stop,
                 tau_node, mk, stack, stack_d, out_node, out_dist, pos, fill,
                 code, p, w, user):
    """Visit the tree for query ``i``; count (or, with ``fill``, store) its pairs.

    ``stack`` and ``stack_d`` have room for every node (each enters once).
    """
    cnt = 0
    if points.shape[0] == 0:
        return cnt
    d0 = distance(Q, i, points, 0, code, p, w, user)
    if d0 < tau_node[0]:
        if fill:
            out_node[pos + cnt] = 0
            out_dist[pos + cnt] = d0
        cnt += 1
    if d0 - radius[0] >= mk[0]:
        return cnt
    stack[0] = 0
    stack_d[0] = d0
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        dv = stack_d[top]
        for c in range(child_start[v], child_stop[v]):
            if abs(dv - parent_dist[c]) - radius[c] >= mk[c]:
                continue
            dc = distance(Q, i, points, c, code, p, w, user)
            if dc < tau_node[c]:
                if fill:
                    out_node[pos + cnt] = c
                    out_dist[pos + cnt] = dc
                cnt += 1
            if child_stop[c] > child_start[c] and dc - radius[c] < mk[c]:
                stack[top] = c
                stack_d[top] = dc
                top += 1
    return cnt


@njit(cache=True, parallel=True)
def reverse_pairs(Q, points, parent_dist, radius, child_start, child_stop,
                  tau_node, mk, slab_per_query, code, p, w, user):
    """Nodes ``v`` with ``d(Q[i], v) < tau_node[v]``, for every query ``i``.

    Returns ``(indptr, node, dist)`` in CSR layout over the queries. One
    search per query: each block of queries collects its pairs in a slab of
    its own (``slab_per_query`` entries per query), copied to the output
    once the counts are known; a block that overflows its slab is searched
    a second time, straight into the output.
    """
    n_q = Q.shape[0]
    indptr = np.zeros(n_q + 1, dtype=np.int64)
    n_blocks = max(1, min(n_q, 256))
    # sized once (a grown, replaced array would be reference-counted by Numba
    # on every push); np.empty does not touch the pages a search never reaches
    cap = max(1, points.shape[0])
    slab = max(1, slab_per_query) * (n_q // n_blocks + 1)
    slab_node = np.empty(n_blocks * slab, dtype=np.int64)
    slab_dist = np.empty(n_blocks * slab, dtype=np.float64)
    over = np.zeros(n_blocks, dtype=np.bool_)
    for b in prange(n_blocks):
        stack = np.empty(cap, dtype=np.int64)
        stack_d = np.empty(cap, dtype=np.float64)
        one_node = np.empty(cap, dtype=np.int64)  # one query's pairs (<= one per node)
        one_dist = np.empty(cap, dtype=np.float64)
        used = 0
        for i in range(b * n_q // n_blocks, (b + 1) * n_q // n_blocks):
            cnt = _reverse_one(
                Q, i, points, parent_dist, radius, child_start, child_stop, tau_node,
                mk, stack, stack_d, one_node, one_dist, np.int64(0), np.bool_(True), code, p,
                w, user,
            )
            indptr[i + 1] = cnt
            if used + cnt > slab:
                over[b] = True
            if not over[b]:
                for t in range(cnt):
                    slab_node[b * slab + used + t] = one_node[t]
                    slab_dist[b * slab + used + t] = one_dist[t]
                used += cnt
    for i in range(n_q):
        indptr[i + 1] += indptr[i]
    out_node = np.empty(indptr[n_q], dtype=np.int64)
    out_dist = np.empty(indptr[n_q], dtype=np.float64)
    for b in prange(n_blocks):
        lo = b * n_q // n_blocks
        hi = (b + 1) * n_q // n_blocks
        if not over[b]:
            for t in range(indptr[hi] - indptr[lo]):
                out_node[indptr[lo] + t] = slab_node[b * slab + t]
                out_dist[indptr[lo] + t] = slab_dist[b * slab + t]
        else:
            stack = np.empty(cap, dtype=np.int64)
            stack_d = np.empty(cap, dtype=np.float64)
            for i in range(lo, hi):
                _reverse_one(
                    Q, i, points, parent_dist, radius, child_start, child_stop,
                    tau_node, mk, stack, stack_d, out_node, out_dist, indptr[i],
                    np.bool_(True),
                    code, p, w, user,
                )
    return indptr, out_node, out_dist


@njit(cache=True, parallel=True)
def merge_rows(ind, dist, rows, start, new_ind, new_dist):
    """Merge candidates into sorted neighbour rows, in place.

    Row ``rows[j]`` of ``ind`` / ``dist`` (sorted by ``(distance, index)``,
    padded with ``-1`` / ``inf`` at the end) receives the candidates
    ``start[j] .. start[j + 1] - 1`` of ``new_ind`` / ``new_dist`` (sorted
    the same way, finite); the row keeps its first ``ind.shape[1]``
    entries of the merged order. The rows must be distinct.
    """
    cap = ind.shape[1]
    n_rows = rows.shape[0]
    n_blocks = min(n_rows, 256)
    for b in prange(n_blocks):
        old_i = np.empty(cap, dtype=np.int64)
        old_d = np.empty(cap, dtype=np.float64)
        for j in range(b * n_rows // n_blocks, (b + 1) * n_rows // n_blocks):
            r = rows[j]
            for t in range(cap):
                old_i[t] = ind[r, t]
                old_d[t] = dist[r, t]
            a = 0
            c = start[j]
            stop = start[j + 1]
            for t in range(cap):  # a + (c - start[j]) == t, so a < cap below
                if c >= stop:
                    take_new = False
                elif old_i[a] == -1:  # padding: after every candidate
                    take_new = True
                else:
                    take_new = new_dist[c] < old_d[a] or (
                        new_dist[c] == old_d[a] and new_ind[c] < old_i[a]
                    )
                if take_new:
                    ind[r, t] = new_ind[c]
                    dist[r, t] = new_dist[c]
                    c += 1
                else:
                    ind[r, t] = old_i[a]
                    dist[r, t] = old_d[a]
                    a += 1
