"""Numba kernels for maximin orderings and rank-restricted (Vecchia) queries.

Both work on the read-optimised layout of :mod:`._kernels_query` (nodes in
depth-first order with contiguous descendant ranges, duplicate groups in
``dup_ptr`` / ``dup_idx``).

Maximin (ALGORITHMS.md section 9.3): ``key[x]`` is the distance of sample
``x`` to the selected set, kept in a binary max-heap with a position map
(ties: smaller sample index first). Selecting ``i`` with ``key[i] = l`` can
only lower the keys of points within ``l`` of ``i``, found by a radius
search. ``mk[v]`` bounds the largest key of an unselected sample in the
subtree of ``v``; a subtree whose distance lower bound reaches ``mk[v]``
cannot change and is skipped, so selected and settled regions cost nothing.

Ordered k-NN (section 9.4) is the k-NN search of :mod:`._kernels_query`
restricted by ranks; :func:`subtree_min_rank` gives the per-subtree
smallest rank it prunes with.
"""

import numpy as np
from numba import njit

from ._heaps import grow
from ._kernels_query import PRUNE_SLACK
from ._metrics import distance

__all__ = ["maximin", "maximin_start", "maximin_steps", "subtree_min_rank"]


@njit(cache=True, inline="always")
def _above(key, a, b):
    """Sample ``a`` comes out of the max-heap before sample ``b``."""
    return key[a] > key[b] or (key[a] == key[b] and a < b)


@njit(cache=True)
def _sift_down(heap, pos, key, j, size):
    x = heap[j]
    while True:
        left = 2 * j + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and _above(key, heap[right], heap[left]):
            best = right
        if _above(key, heap[best], x):
            heap[j] = heap[best]
            pos[heap[j]] = j
            j = best
        else:
            break
    heap[j] = x
    pos[x] = j


@njit(cache=True)
def maximin_start(X, first, n_nodes, code, p, w, user):
    """The state of a maximin ordering after its first selection.

    Returns ``(order, ell, selected, key, heap, pos, mk)``: the ordering and
    lengthscales so far, the selection flags, every sample's distance to the
    selected set (``-1`` once selected), the max-heap of unselected samples
    with its position map, and the per-node subtree key bounds.
    :func:`maximin_steps` continues from it.
    """
    n = X.shape[0]
    order = np.empty(n, dtype=np.int64)
    ell = np.empty(n, dtype=np.float64)
    selected = np.zeros(n, dtype=np.bool_)
    order[0] = first
    ell[0] = np.inf
    selected[first] = True
    # keys after the first selection: one pass over the data
    key = np.empty(n, dtype=np.float64)
    for s in range(n):
        key[s] = distance(X, s, X, first, code, p, w, user)
    key[first] = -1.0
    # heap of the other samples (heapify bottom-up)
    size = n - 1
    heap = np.empty(max(size, 1), dtype=np.int64)
    pos = np.full(n, -1, dtype=np.int64)
    j = 0
    for s in range(n):
        if s != first:
            heap[j] = s
            pos[s] = j
            j += 1
    for j in range(size // 2 - 1, -1, -1):
        _sift_down(heap, pos, key, j, size)
    mk = np.full(n_nodes, np.inf)
    return order, ell, selected, key, heap, pos, mk


@njit(cache=True)
def maximin_steps(
    t_start, t_stop, order, ell, selected, key, heap, pos, mk,
    X, points, node_sample, parent_dist, radius, child_start, child_stop,
    dup_ptr, dup_idx, code, p, w, user,
):
    """Selections ``t_start .. t_stop - 1`` of a maximin ordering, in place.

    The state comes from :func:`maximin_start` (or an earlier call, with
    ``t_start`` its ``t_stop``); ``1 <= t_start <= t_stop <= n``.
    """
    n = X.shape[0]
    size = n - t_start  # unselected samples: the heap's size
    cap = 64
    s_node = np.empty(cap, dtype=np.int64)
    s_d = np.empty(cap, dtype=np.float64)
    visited = np.empty(cap, dtype=np.int64)
    for t in range(t_start, t_stop):
        i = heap[0]
        li = key[i]
        order[t] = i
        ell[t] = li
        selected[i] = True
        size -= 1
        if size == 0:
            break
        heap[0] = heap[size]
        pos[heap[0]] = 0
        _sift_down(heap, pos, key, 0, size)
        # radius search around i: lower the keys that d(i, .) beats
        s_node[0] = 0
        s_d[0] = distance(X, i, points, 0, code, p, w, user)
        top = 1
        nv = 0
        while top > 0:
            top -= 1
            v = s_node[top]
            dv = s_d[top]
            rv = radius[v]
            if dv - rv - PRUNE_SLACK * (dv + rv) >= min(li, mk[v]):
                continue
            if nv >= visited.shape[0]:
                visited = grow(visited, 2 * visited.shape[0])
            visited[nv] = v
            nv += 1
            for u in range(-1, dup_ptr[v + 1] - dup_ptr[v]):
                s = node_sample[v] if u < 0 else dup_idx[dup_ptr[v] + u]
                if not selected[s] and dv < key[s]:
                    key[s] = dv
                    _sift_down(heap, pos, key, pos[s], size)
            for c in range(child_start[v], child_stop[v]):
                rc = radius[c]
                pd = parent_dist[c]
                if abs(dv - pd) - rc - PRUNE_SLACK * (dv + pd + rc) >= min(li, mk[c]):
                    continue
                if top >= cap:
                    cap *= 2
                    s_node = grow(s_node, cap)
                    s_d = grow(s_d, cap)
                s_node[top] = c
                s_d[top] = distance(X, i, points, c, code, p, w, user)
                top += 1
        # refresh the subtree key bounds bottom-up (children were visited
        # after their parents, so reverse visiting order is bottom-up)
        for a in range(nv - 1, -1, -1):
            v = visited[a]
            m = -1.0
            for u in range(-1, dup_ptr[v + 1] - dup_ptr[v]):
                s = node_sample[v] if u < 0 else dup_idx[dup_ptr[v] + u]
                if not selected[s] and key[s] > m:
                    m = key[s]
            for c in range(child_start[v], child_stop[v]):
                if mk[c] > m:
                    m = mk[c]
            mk[v] = m


@njit(cache=True)
def maximin(
    X, first, points, node_sample, parent_dist, radius, child_start, child_stop,
    dup_ptr, dup_idx, code, p, w, user,
):
    """Exact maximin ordering of the samples (rows of ``X``) of a tree.

    ``X[s]`` is the (embedded) point of sample ``s``; every sample belongs
    to a node. Returns ``(order, lengthscales)`` with ``lengthscales[0] =
    inf`` and ``lengthscales[t]`` the distance of ``order[t]`` to
    ``order[:t]``. The same as :func:`maximin_start` followed by
    :func:`maximin_steps` over all selections.
    """
    order, ell, selected, key, heap, pos, mk = maximin_start(
        X, first, points.shape[0], code, p, w, user
    )
    maximin_steps(
        1, X.shape[0], order, ell, selected, key, heap, pos, mk, X, points, node_sample,
        parent_dist, radius, child_start, child_stop, dup_ptr, dup_idx, code, p, w, user,
    )
    return order, ell


@njit(cache=True)
def subtree_min_rank(rank, node_sample, dup_ptr, dup_idx, child_start, child_stop):
    """Per node: the smallest rank of a sample in its subtree (itself included)."""
    n_nodes = node_sample.shape[0]
    out = np.empty(n_nodes, dtype=np.int64)
    for v in range(n_nodes - 1, -1, -1):
        m = rank[node_sample[v]]
        for t in range(dup_ptr[v], dup_ptr[v + 1]):
            if rank[dup_idx[t]] < m:
                m = rank[dup_idx[t]]
        for c in range(child_start[v], child_stop[v]):
            if out[c] < m:
                m = out[c]
        out[v] = m
    return out
