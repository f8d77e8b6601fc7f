"""Numba kernels that build a compressed cover tree (Elkin--Kurlin, Def. 2.1).

The tree is built by inserting a batch of points into a (possibly empty)
*dynamic* tree held in flat arrays indexed by node id:

``node_row[v]``      row of the data array holding the point of node ``v``
``node_level[v]``    level ``l(v)``; a lone root stores ``NO_LEVEL``
``node_parent[v]``   parent node, ``-1`` for the root
``node_pdist[v]``    ``d(v, parent(v))``
``first_child[v]``   head of ``v``'s child list (``-1`` if none); the list is
                     sorted by level descending, ties by node id
``next_sibling[v]``  next node in the parent's child list (``-1`` at the end)
``row_node[r]``      node that represents row ``r`` (exact duplicates share it)

Insertion follows the descent of ALGORITHMS.md section 5.1: a point ``x`` gets
the level ``J(x) - 1`` where ``J(x)`` is the lowest level at which it would
violate separation, and the nearest valid node of ``C_{J(x)}`` as parent.
A point at distance exactly zero from an existing node joins that node's
duplicate group instead of creating a node (ALGORITHMS.md section 12).

:func:`snapshot` then lays the tree out in preorder (every subtree is a
contiguous range of node ids) with CSR child lists and subtree radii, the
read-optimised form that the query kernels use.
"""

import math

import numpy as np
from numba import njit, prange

from ._metrics import distance

__all__ = ["NO_LEVEL", "ceil_log2", "insert_rows", "snapshot", "exact_radii"]

NO_LEVEL = -(2**30)
# Relative slack added to stored radii so that rounding in the distances can
# never make a radius too small (ALGORITHMS.md section 13).
RADIUS_SLACK = 2.0**-40


@njit(cache=True)
def ceil_log2(d):
    """Smallest integer ``e`` with ``d <= 2**e`` for ``d > 0`` (exact, via frexp)."""
    m, e = math.frexp(d)
    if m == 0.5:
        return e - 1
    return e


@njit(cache=True)
def _grow(a, size):
    out = np.empty(max(2 * a.shape[0], size), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def _link_child(parent, child, node_level, first_child, next_sibling):
    """Insert ``child`` into ``parent``'s list (level descending, id ascending)."""
    lc = node_level[child]
    prev = -1
    cur = first_child[parent]
    while cur != -1 and (
        node_level[cur] > lc or (node_level[cur] == lc and cur < child)
    ):
        prev = cur
        cur = next_sibling[cur]
    next_sibling[child] = cur
    if prev == -1:
        first_child[parent] = child
    else:
        next_sibling[prev] = child


@njit(cache=True)
def insert_rows(
    X,
    rows,
    n_nodes,
    root,
    node_row,
    node_level,
    node_parent,
    node_pdist,
    first_child,
    next_sibling,
    row_node,
    code,
    p,
    w,
    user,
):
    """Insert the rows ``rows`` of ``X`` one after the other (section 5.1).

    The node arrays must have room for ``n_nodes + len(rows)`` nodes. Returns
    ``(n_nodes, root, n_distances)`` after the insertions.
    """
    q_node = np.empty(256, dtype=np.int64)
    q_dist = np.empty(256, dtype=np.float64)
    q_cur = np.empty(256, dtype=np.int64)
    n_node = np.empty(256, dtype=np.int64)
    n_dist = np.empty(256, dtype=np.float64)
    n_cur = np.empty(256, dtype=np.int64)
    n_dist_evals = 0
    for t in range(rows.shape[0]):
        r = rows[t]
        x = X[r]
        if root == -1:
            v = n_nodes
            n_nodes += 1
            node_row[v] = r
            node_level[v] = NO_LEVEL
            node_parent[v] = -1
            node_pdist[v] = 0.0
            first_child[v] = -1
            next_sibling[v] = -1
            row_node[r] = v
            root = v
            continue
        d_root = distance(x, X[node_row[root]], code, p, w, user)
        n_dist_evals += 1
        if d_root == 0.0:
            row_node[r] = root
            continue
        c_root = ceil_log2(d_root)
        if node_level[root] < c_root:
            node_level[root] = c_root
        # Contributors: nodes a with d(x, a) <= 2^l(a); J = min ceil_log2(d).
        J = c_root
        par = root
        par_d = d_root
        q_node[0] = root
        q_dist[0] = d_root
        q_cur[0] = first_child[root]
        nq = 1
        dup = -1
        while True:
            j = NO_LEVEL
            for i in range(nq):
                c = q_cur[i]
                if c != -1 and node_level[c] > j:
                    j = node_level[c]
            if j == NO_LEVEL:
                break
            bound = math.ldexp(1.0, j + 1)
            half = math.ldexp(1.0, j)
            nn = 0
            for i in range(nq):
                c = q_cur[i]
                while c != -1 and node_level[c] == j:
                    dc = distance(x, X[node_row[c]], code, p, w, user)
                    n_dist_evals += 1
                    if dc == 0.0:
                        dup = c
                        break
                    if dc <= bound:
                        if dc <= half:
                            cl = ceil_log2(dc)
                            if cl < J or (
                                cl == J and (dc < par_d or (dc == par_d and c < par))
                            ):
                                J = cl
                                par = c
                                par_d = dc
                        if nn >= n_node.shape[0]:
                            n_node = _grow(n_node, nn + 1)
                            n_dist = _grow(n_dist, nn + 1)
                            n_cur = _grow(n_cur, nn + 1)
                        n_node[nn] = c
                        n_dist[nn] = dc
                        n_cur[nn] = first_child[c]
                        nn += 1
                    c = next_sibling[c]
                if dup != -1:
                    break
                if q_dist[i] <= bound:
                    if nn >= n_node.shape[0]:
                        n_node = _grow(n_node, nn + 1)
                        n_dist = _grow(n_dist, nn + 1)
                        n_cur = _grow(n_cur, nn + 1)
                    n_node[nn] = q_node[i]
                    n_dist[nn] = q_dist[i]
                    n_cur[nn] = c
                    nn += 1
            if dup != -1 or nn == 0:
                break
            q_node, n_node = n_node, q_node
            q_dist, n_dist = n_dist, q_dist
            q_cur, n_cur = n_cur, q_cur
            nq = nn
        if dup != -1:
            row_node[r] = dup
            continue
        v = n_nodes
        n_nodes += 1
        node_row[v] = r
        node_level[v] = J - 1
        node_parent[v] = par
        node_pdist[v] = par_d
        first_child[v] = -1
        next_sibling[v] = -1
        row_node[r] = v
        _link_child(par, v, node_level, first_child, next_sibling)
    return n_nodes, root, n_dist_evals


@njit(cache=True)
def snapshot(n_nodes, root, node_level, node_parent, node_pdist, first_child, next_sibling):
    """Preorder layout of a dynamic tree.

    Returns ``(order, child_ptr, child_idx, subtree_end, radius_bound)`` where
    ``order[t]`` is the dynamic node at preorder position ``t``; children,
    ends and radii are expressed in preorder positions. ``radius_bound[t]`` is
    the cheap bound ``max_c min(d(t, c) + radius[c], 2^(l(c) + 2))`` over the
    children ``c`` (ALGORITHMS.md section 5.4), without slack.
    """
    order = np.empty(n_nodes, dtype=np.int64)
    pos = np.empty(n_nodes, dtype=np.int64)
    stack = np.empty(n_nodes, dtype=np.int64)
    tmp = np.empty(n_nodes, dtype=np.int64)
    n_children = np.zeros(n_nodes, dtype=np.int64)
    top = 0
    stack[0] = root
    top = 1
    t = 0
    while top > 0:
        top -= 1
        v = stack[top]
        order[t] = v
        pos[v] = t
        t += 1
        m = 0
        c = first_child[v]
        while c != -1:
            tmp[m] = c
            m += 1
            c = next_sibling[c]
        n_children[pos[v]] = m
        for i in range(m - 1, -1, -1):
            stack[top] = tmp[i]
            top += 1
    child_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for i in range(n_nodes):
        child_ptr[i + 1] = child_ptr[i] + n_children[i]
    child_idx = np.empty(child_ptr[n_nodes], dtype=np.int64)
    for i in range(n_nodes):
        k = child_ptr[i]
        c = first_child[order[i]]
        while c != -1:
            child_idx[k] = pos[c]
            k += 1
            c = next_sibling[c]
    size = np.ones(n_nodes, dtype=np.int64)
    radius = np.zeros(n_nodes, dtype=np.float64)
    for i in range(n_nodes - 1, 0, -1):
        par = pos[node_parent[order[i]]]
        size[par] += size[i]
        b = node_pdist[order[i]] + radius[i]
        cap = math.ldexp(1.0, node_level[order[i]] + 2)
        if cap < b:
            b = cap
        if b > radius[par]:
            radius[par] = b
    subtree_end = np.arange(n_nodes) + size
    return order, child_ptr, child_idx, subtree_end, radius


@njit(cache=True, parallel=True)
def exact_radii(points, subtree_end, radius, max_size, code, p, w, user):
    """Tighten ``radius`` in place to the exact subtree radius where cheap.

    For every node whose subtree holds at most ``max_size`` nodes the radius
    becomes ``max d(node, x)`` over its subtree (a contiguous preorder range);
    the others keep their bound. Finally every radius is inflated by a
    relative rounding slack.
    """
    n = points.shape[0]
    for i in prange(n):
        e = subtree_end[i]
        if e - i > 1 and e - i <= max_size:
            r = 0.0
            for j in range(i + 1, e):
                d = distance(points[i], points[j], code, p, w, user)
                if d > r:
                    r = d
            if r < radius[i]:
                radius[i] = r
        radius[i] *= 1.0 + RADIUS_SLACK
