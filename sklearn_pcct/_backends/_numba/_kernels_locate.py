"""The insertion search of a batch round on a flat copy of the tree.

Step 1 of a batch round (:func:`._kernels_batch.locate`) only reads the
tree, and it is where a build spends most of its time. Walking the
dynamic form costs a chunk-map lookup per field, a linked list per child
set and a random access to the point of every node (nodes are numbered in
insertion order, points by sample id). :func:`locate_layout` copies what
the search reads -- levels, radii, parent distances, children and the
nodes' points -- into arrays in depth-first order (the children of a node
are contiguous, every subtree is a contiguous range, and points sit next
to their nodes), in one pass over the tree; :func:`locate_flat` runs the
same search on them. The flat search visits the same nodes in the same
order and computes the same distances, so it returns exactly what the
dynamic search returns (node ids are mapped back).
"""

import numpy as np
from numba import njit, prange

from ..._dynamic import LEVEL, NO_LEVEL, PDIST, RADIUS, ROW
from ._heaps import heap_pop, heap_push
from ._kernels_build import pow2
from ._kernels_update import _gf, _gi, beats, cover_level, dfs_layout
from ._metrics import distance

__all__ = ["locate_layout", "locate_flat"]


@njit(cache=True, parallel=True)
def locate_layout(P, ip, fp, cm, root, n_nodes):
    """Depth-first flat copy of the tree for :func:`locate_flat`.

    Returns ``(node, child_start, child_stop, level, scale, radius,
    parent_dist, points)``: position ``t`` holds node ``node[t]`` (position
    0 is the root), its children are the positions ``child_start[t] ..
    child_stop[t] - 1`` (in the order of the dynamic child list: level
    descending, id ascending), ``level[t]`` is its level ``l``,
    ``scale[t] = 2^l`` and ``points[t]`` is its point (``parent_dist[0]``,
    the root's, is never read).
    """
    node, cs, ce, _ = dfs_layout(ip, cm, root, n_nodes)
    m = node.shape[0]
    level = np.empty(m, dtype=np.int64)
    scale = np.empty(m, dtype=np.float64)
    radius = np.empty(m, dtype=np.float64)
    pdist = np.empty(m, dtype=np.float64)
    points = np.empty((m, P.shape[1]), dtype=P.dtype)
    n_blocks = 64  # blocks, not single nodes: callers may set a chunk size of 1
    for b in prange(n_blocks):
        for t in range(b * m // n_blocks, (b + 1) * m // n_blocks):
            v = node[t]
            level[t] = _gi(ip, cm, LEVEL, v)
            scale[t] = pow2(level[t])
            radius[t] = _gf(fp, cm, RADIUS, v)
            pdist[t] = _gf(fp, cm, PDIST, v)
            points[t, :] = P[_gi(ip, cm, ROW, v), :]
    return node, cs, ce, level, scale, radius, pdist, points


@njit(cache=True)
def _search_flat(P, r, floor, node, cs, ce, level, scale, radius, pdist, points,
                 h_lb, h_node, h_d, code, p, w, user):
    """:func:`._kernels_update._search` on the flat copy (without ``raise_root``).

    The same rules line by line (only the child loop and the field reads
    differ): a change to one must be made to the other;
    ``tests/test_kernels.py`` checks that both return the same results.
    ``floor`` is ``NO_LEVEL + 1`` for a new point and ``l(x) + 1`` for an
    orphan ``x`` (see :func:`._kernels_update.reattach`).

    Returns ``(J, parent, d(x, parent), dup, n_evaluations)`` with ``parent``
    and ``dup`` as positions of the flat copy.
    """
    new_point = floor <= NO_LEVEL + 1
    d_root = distance(P, r, points, 0, code, p, w, user)
    n_eval = 1
    if d_root == 0.0 and new_point:
        return 0, 0, 0.0, 0, n_eval
    J = cover_level(d_root, floor)
    par = 0
    par_d = d_root
    two_J = pow2(J)
    hn = 0
    if cs[0] < ce[0]:
        heap_push(h_lb, h_node, h_d, hn, max(0.0, d_root - radius[0]), 0, d_root)
        hn = 1
    while hn > 0:
        lb = h_lb[0]
        a = h_node[0]
        da = h_d[0]
        heap_pop(h_lb, h_node, h_d, hn)
        hn -= 1
        if lb > two_J:
            break
        if lb > 0.5 * scale[a]:
            continue
        for c in range(cs[a], ce[a]):
            if level[c] < floor:
                break  # this child and the rest (levels descending) are too low
            sc = scale[c]
            reach = sc
            if two_J < reach:
                reach = two_J
            rc = radius[c]
            if abs(da - pdist[c]) - rc > reach:
                continue
            dc = distance(P, r, points, c, code, p, w, user)
            n_eval += 1
            if dc == 0.0 and new_point:
                return 0, c, 0.0, c, n_eval
            if dc <= sc:
                cl = cover_level(dc, floor)
                if beats(cl, dc, node[c], J, par_d, node[par]):
                    J = cl
                    par = c
                    par_d = dc
                    two_J = pow2(J)
            if cs[c] < ce[c]:
                sub = 0.5 * sc
                if two_J < sub:
                    sub = two_J
                lbc = dc - rc
                if lbc <= sub:
                    heap_push(h_lb, h_node, h_d, hn, max(0.0, lbc), c, dc)
                    hn += 1
    return J, par, par_d, -1, n_eval


@njit(cache=True, parallel=True)
def locate_flat(P, ids, floors, node, cs, ce, level, scale, radius, pdist, points,
                n_blocks, code, p, w, user):
    """:func:`._kernels_batch.locate` on the flat copy of :func:`locate_layout`.

    ``P[ids[t]]`` is searched with the floor ``floors[t]`` (an empty
    ``floors``: new points, ``NO_LEVEL + 1`` for all). Returns ``(J, parent,
    parent_dist, dup, n_evaluations)`` with node ids of the dynamic tree,
    the same as :func:`._kernels_batch.locate` (and, for orphans, as
    :func:`._kernels_update._search` on the tree the copy was taken of).
    """
    m = ids.shape[0]
    J = np.empty(m, dtype=np.int64)
    par = np.empty(m, dtype=np.int64)
    pd = np.empty(m, dtype=np.float64)
    dup = np.empty(m, dtype=np.int64)
    n_eval = np.zeros(n_blocks, dtype=np.int64)
    cap = max(1, node.shape[0])  # each node enters a search's heap at most once
    given = floors.shape[0] > 0
    for b in prange(n_blocks):
        h_lb = np.empty(cap, dtype=np.float64)
        h_node = np.empty(cap, dtype=np.int64)
        h_d = np.empty(cap, dtype=np.float64)
        for t in range(b * m // n_blocks, (b + 1) * m // n_blocks):
            fl = floors[t] if given else NO_LEVEL + 1
            j, a, d, du, ne = _search_flat(
                P, ids[t], fl, node, cs, ce, level, scale, radius, pdist, points, h_lb,
                h_node, h_d, code, p, w, user,
            )
            J[t] = j
            par[t] = node[a]
            pd[t] = d
            dup[t] = node[du] if du >= 0 else -1
            n_eval[b] += ne
    return J, par, pd, dup, n_eval.sum()
