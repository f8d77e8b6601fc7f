"""Numba kernels of the exact maximin ordering on the kd-tree of :mod:`._kernels_kd`.

Every unselected position keeps its distance to the selected points as a
key, and every node the position of its subtree's next selection (largest
key, ties by the smaller sample index): a tournament tree whose root is the
next point of the ordering. Selecting a point lowers the keys within its
lengthscale, visiting only the nodes whose box (bounded as in
:mod:`._kernels_kd`) is closer than their largest key. Optionally each
selection is also appended to its leaf's ranked positions
(:func:`ranked_leaves`), so that the rank-restricted k-NN of
:func:`._kernels_kd.ordered_knn` can answer the ranks already ordered while
the ordering goes on.
"""

import numpy as np
from numba import njit

from ._kernels_kd import _box_lower, _depth_of, _prunes, _range
from ._metrics import distance, finish_distance, metric_code, raw_distance

__all__ = ["maximin", "maximin_start", "maximin_steps", "no_ranked_leaves", "ranked_leaves"]

@njit(cache=True, forceinline=True)
def _wins(key, perm, a, b):
    """Position ``a`` is selected before position ``b`` (``b`` may be -1)."""
    if b < 0:
        return True
    return key[a] > key[b] or (key[a] == key[b] and perm[a] < perm[b])


@njit(cache=True, forceinline=True)
def _refresh(v, best, key, perm, n, depth, first_leaf):
    """Recompute ``best[v]`` from its leaf points or its children."""
    if v >= first_leaf:
        a, b = _range(v, n, depth)
        w = -1
        for u in range(a, b):
            if key[u] >= 0.0 and _wins(key, perm, u, w):
                w = u
        best[v] = w
    else:
        lw = best[2 * v + 1]
        rw = best[2 * v + 2]
        if lw < 0:
            best[v] = rw
        elif rw < 0 or _wins(key, perm, lw, rw):
            best[v] = lw
        else:
            best[v] = rw


@njit(cache=True)
def maximin_start(pts, perm, n_nodes, first, code, p, w, user):
    """The state of a maximin ordering after its first selection.

    ``first`` is a *sample* index. Returns ``(order, ell, key, best)``: the
    ordering and lengthscales so far (sample indices), every position's
    distance to the selected set (``-1`` once selected) and the tournament
    tree ``best``: per node, the position of its next selection (largest
    key, then smallest sample index; ``-1`` if all are selected).
    :func:`maximin_steps` continues from it.
    """
    n = pts.shape[0]
    depth = _depth_of(n_nodes)
    first_leaf = (1 << depth) - 1
    order = np.empty(n, dtype=np.int64)
    ell = np.empty(n, dtype=np.float64)
    f = 0
    for u in range(n):
        if perm[u] == first:
            f = u
    key = np.empty(n, dtype=np.float64)
    for u in range(n):
        key[u] = distance(pts, u, pts, f, code, p, w, user)
    key[f] = -1.0
    order[0] = first
    ell[0] = np.inf
    best = np.empty(n_nodes, dtype=np.int64)
    for v in range(n_nodes - 1, -1, -1):
        _refresh(v, best, key, perm, n, depth, first_leaf)
    return order, ell, key, best


@njit(cache=True, forceinline=True)
def _lower_keys(v, b, key, pts, n, depth, code, buf):
    """Lower the keys of leaf ``v``'s unselected positions to their distance to ``b``."""
    a, e = _range(v, n, depth)
    # the whole bucket in one loop without branches; finish the few that count
    for u in range(a, e):
        buf[u - a] = raw_distance(pts, b, pts, u, code)
    for u in range(a, e):
        if key[u] > 0.0:
            d = finish_distance(pts, b, pts, u, code, buf[u - a])
            if d < key[u]:
                key[u] = d


def ranked_leaves(n, m, n_nodes):
    """Empty leaves-by-rank arrays that :func:`maximin_steps` fills as it ranks.

    Returns ``(perm, pts, rank_pos, fill, min_rank)``: what
    :func:`._kernels_kd.leaves_by_rank` and :func:`._kernels_kd.subtree_min_rank` give for the ranks
    assigned so far, unranked positions last in their leaf with rank ``n``
    (``fill``: per leaf, how many of its positions are ranked). Ranks come
    in increasing order, so each leaf only appends: a rank-restricted
    search for ranks already assigned reads these arrays while the ordering
    goes on.
    """
    return (np.full(n, -1, dtype=np.int64), np.zeros((n, m)), np.full(n, n, dtype=np.int64),
            np.zeros((n_nodes + 1) // 2, dtype=np.int64), np.full(n_nodes, n, dtype=np.int64))


@njit(cache=True)
def no_ranked_leaves(m):
    """Placeholder for :func:`maximin_steps`'s ``ranked`` arrays: fill nothing."""
    return (np.empty(0, dtype=np.int64), np.empty((0, m)), np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))


@njit(cache=True, forceinline=True)
def _rank_append(t, b, perm, pts, n, depth, first_leaf, leaf, r_perm, r_pts, rank_pos, fill,
                 min_rank):
    """Append position ``b`` (rank ``t``) to its leaf's ranked positions."""
    j = leaf - first_leaf
    u = _range(leaf, n, depth)[0] + fill[j]
    r_perm[u] = perm[b]
    for c in range(pts.shape[1]):
        r_pts[u, c] = pts[b, c]
    rank_pos[u] = t  # last: a concurrent search stops at ranks >= its own
    fill[j] += 1
    v = leaf
    while min_rank[v] > t:  # unset (n): the first rank of the subtree
        min_rank[v] = t
        if v == 0:
            break
        v = (v - 1) >> 1


@njit(cache=True, nogil=True)
def maximin_steps(t_start, t_stop, order, ell, key, best, pts, perm, lo, hi, leaf_of, tag,
                  r_perm, r_pts, rank_pos, fill, min_rank):
    """Selections ``t_start .. t_stop - 1`` of a maximin ordering, in place.

    Selecting the point ``b`` with lengthscale ``l`` lowers keys only
    within ``l``, and only in nodes whose box is closer than their largest
    key. The search climbs from ``b``'s leaf and walks down each sibling on
    the way that it cannot skip: late in the ordering ``l`` is small and
    all but a node or two per level are skipped at once, with no descent
    from the root. A leaf whose best key did not change keeps its
    tournament entry. ``tag`` is :func:`._metrics.metric_tag` of the metric code;
    ``1 <= t_start <= t_stop <= n``. The last five arrays come from
    :func:`ranked_leaves` (each selection is appended to them) or
    :func:`no_ranked_leaves`. Releases the GIL: a search can run beside it.
    """
    code = metric_code(tag)
    n = pts.shape[0]
    n_nodes = lo.shape[0]
    depth = _depth_of(n_nodes)
    first_leaf = (1 << depth) - 1
    stack = np.empty(depth + 2, dtype=np.int64)
    visited = np.empty(n_nodes, dtype=np.int64)
    buf = np.empty(((n + (1 << depth) - 1) >> depth) + 1, dtype=np.float64)
    ranks = rank_pos.shape[0] > 0
    if ranks and t_start == 1 and n > 0:  # the first point, from maximin_start
        for u in range(n):
            if perm[u] == order[0]:
                _rank_append(0, u, perm, pts, n, depth, first_leaf, leaf_of[u], r_perm, r_pts,
                             rank_pos, fill, min_rank)
    for t in range(t_start, t_stop):
        b = best[0]
        lb = key[b]
        order[t] = perm[b]
        ell[t] = lb
        leaf = leaf_of[b]
        if ranks:
            _rank_append(t, b, perm, pts, n, depth, first_leaf, leaf, r_perm, r_pts, rank_pos,
                         fill, min_rank)
        if lb > 0.0:  # (nothing is closer than a duplicate)
            _lower_keys(leaf, b, key, pts, n, depth, code, buf)
        key[b] = -1.0
        _refresh(leaf, best, key, perm, n, depth, first_leaf)
        v = leaf
        while v != 0:
            par = (v - 1) >> 1
            if lb > 0.0:
                stack[0] = v + 1 if v & 1 else v - 1  # the sibling
                top = 1
                nv = 0
                while top > 0:
                    top -= 1
                    x = stack[top]
                    bx = best[x]
                    if bx < 0 or _prunes(_box_lower(pts, b, lo, hi, x, code), key[bx]):
                        continue
                    if x >= first_leaf:
                        kb = key[bx]
                        _lower_keys(x, b, key, pts, n, depth, code, buf)
                        if key[bx] != kb:  # its best changed
                            visited[nv] = x
                            nv += 1
                    else:
                        visited[nv] = x
                        nv += 1
                        stack[top] = 2 * x + 1
                        stack[top + 1] = 2 * x + 2
                        top += 2
                # children were visited after their parents: refresh bottom-up
                for a in range(nv - 1, -1, -1):
                    _refresh(visited[a], best, key, perm, n, depth, first_leaf)
            _refresh(par, best, key, perm, n, depth, first_leaf)
            v = par


@njit(cache=True)
def maximin(pts, perm, lo, hi, leaf_of, first, tag, p, w, user):
    """Exact maximin ordering of the points of a kd-tree.

    ``first`` is the first sample index. Returns ``(order, ell)`` in sample
    indices, as :func:`._kernels_vecchia.maximin`: the same as
    :func:`maximin_start` followed by :func:`maximin_steps` over all
    selections.
    """
    order, ell, key, best = maximin_start(pts, perm, lo.shape[0], first, tag, p, w, user)
    maximin_steps(1, pts.shape[0], order, ell, key, best, pts, perm, lo, hi, leaf_of, tag,
                  *no_ranked_leaves(pts.shape[1]))
    return order, ell
