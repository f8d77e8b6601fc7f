"""Numba kernels that build a compressed cover tree (Elkin--Kurlin, Def. 2.1).

The tree is built by inserting a batch of points into a (possibly empty)
*dynamic* tree held in flat arrays indexed by node id:

``node_row[v]``      row of the data array holding the point of node ``v``
``node_level[v]``    level ``l(v)``; a lone root stores ``NO_LEVEL``
``node_parent[v]``   parent node, ``-1`` for the root
``node_pdist[v]``    ``d(v, parent(v))``
``node_radius[v]``   exact ``max d(v, x)`` over the subtree of ``v``
``first_child[v]``   head of ``v``'s child list (``-1`` if none); the list is
                     sorted by level descending, ties by node id
``next_sibling[v]``  next node in the parent's child list (``-1`` at the end)
``row_node[r]``      node that represents row ``r`` (exact duplicates share it)

Insertion follows the rule of ALGORITHMS.md section 5.1: a point ``x`` gets
the level ``J(x) - 1`` where ``J(x)`` is the lowest level at which it would
violate separation, and the nearest valid node of ``C_{J(x)}`` as parent.
A point at distance exactly zero from an existing node joins that node's
duplicate group instead of creating a node (ALGORITHMS.md section 12).

:func:`snapshot` then renumbers the nodes so that every node's children
are consecutive and every node's descendants form one contiguous range, the
read-optimised form that the query kernels use.

Subtree radii are exact (each insertion computes its distance to every
ancestor), which both the insertion search and the queries prune with.
"""

import math

import numpy as np
from numba import njit

from ._heaps import grow, heap_pop, heap_push
from ._metrics import distance

__all__ = ["NO_LEVEL", "RADIUS_SLACK", "ceil_log2", "insert_rows", "snapshot"]

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
    node_radius,
    first_child,
    next_sibling,
    row_node,
    code,
    p,
    w,
    user,
):
    """Insert the rows ``rows`` of ``X`` one after the other (section 5.1).

    For a point ``x`` the lowest failing level is
    ``J = min { ceil_log2 d(x, a) : d(x, a) <= 2^l(a) }``; ``x`` gets level
    ``J - 1`` under the nearest node ``a`` with ``l(a) >= J`` and
    ``d(x, a) <= 2^J``. Instead of the level-by-level sweep of the brief,
    the candidates are found by a best-first search that prunes a subtree
    when its radius bound shows that no node in it can lower ``J`` or be a
    parent (the same nodes qualify; far fewer are visited in higher
    dimension). ``node_radius`` holds exact subtree radii and is updated on
    the ancestor path of every new node.

    The node arrays must have room for ``n_nodes + len(rows)`` nodes.
    Returns ``(n_nodes, root, n_distance_evaluations)``.
    """
    cap = 256
    h_lb = np.empty(cap, dtype=np.float64)
    h_node = np.empty(cap, dtype=np.int64)
    h_d = np.empty(cap, dtype=np.float64)
    n_eval = 0
    for t in range(rows.shape[0]):
        r = rows[t]
        if root == -1:
            v = n_nodes
            n_nodes += 1
            node_row[v] = r
            node_level[v] = NO_LEVEL
            node_parent[v] = -1
            node_pdist[v] = 0.0
            node_radius[v] = 0.0
            first_child[v] = -1
            next_sibling[v] = -1
            row_node[r] = v
            root = v
            continue
        d_root = distance(X, r, X, node_row[root], code, p, w, user)
        n_eval += 1
        if d_root == 0.0:
            row_node[r] = root
            continue
        J = ceil_log2(d_root)
        if node_level[root] < J:
            node_level[root] = J
        par = root
        par_d = d_root
        dup = -1
        hn = 0
        if first_child[root] != -1:
            heap_push(h_lb, h_node, h_d, hn, max(0.0, d_root - node_radius[root]), root, d_root)
            hn = 1
        while hn > 0:
            lb = h_lb[0]
            a = h_node[0]
            da = h_d[0]
            heap_pop(h_lb, h_node, h_d, hn)
            hn -= 1
            two_J = math.ldexp(1.0, J)
            if lb > two_J:
                break
            if lb > math.ldexp(1.0, node_level[a] - 1):
                continue
            c = first_child[a]
            while c != -1:
                lc = node_level[c]
                reach = math.ldexp(1.0, lc)
                if two_J < reach:
                    reach = two_J
                rc = node_radius[c]
                if abs(da - node_pdist[c]) - rc > reach:
                    c = next_sibling[c]
                    continue
                dc = distance(X, r, X, node_row[c], code, p, w, user)
                n_eval += 1
                if dc == 0.0:
                    dup = c
                    break
                if dc <= math.ldexp(1.0, lc):
                    cl = ceil_log2(dc)
                    if cl < J or (cl == J and (dc < par_d or (dc == par_d and c < par))):
                        J = cl
                        par = c
                        par_d = dc
                        two_J = math.ldexp(1.0, J)
                        if reach > two_J:
                            reach = two_J
                if first_child[c] != -1:
                    sub = math.ldexp(1.0, lc - 1)
                    if two_J < sub:
                        sub = two_J
                    lbc = dc - rc
                    if lbc <= sub:
                        if hn >= cap:
                            cap *= 2
                            h_lb = grow(h_lb, cap)
                            h_node = grow(h_node, cap)
                            h_d = grow(h_d, cap)
                        heap_push(h_lb, h_node, h_d, hn, max(0.0, lbc), c, dc)
                        hn += 1
                c = next_sibling[c]
            if dup != -1:
                break
        if dup != -1:
            row_node[r] = dup
            continue
        v = n_nodes
        n_nodes += 1
        node_row[v] = r
        node_level[v] = J - 1
        node_parent[v] = par
        node_pdist[v] = par_d
        node_radius[v] = 0.0
        first_child[v] = -1
        next_sibling[v] = -1
        row_node[r] = v
        _link_child(par, v, node_level, first_child, next_sibling)
        # exact radii on the ancestor path
        if par_d > node_radius[par]:
            node_radius[par] = par_d
        a = node_parent[par]
        while a != -1:
            da = distance(X, r, X, node_row[a], code, p, w, user)
            n_eval += 1
            if da > node_radius[a]:
                node_radius[a] = da
            a = node_parent[a]
    return n_nodes, root, n_eval


@njit(cache=True)
def snapshot(n_nodes, root, first_child, next_sibling):
    """Read-optimised layout of a dynamic tree ("sibling blocks in DFS order").

    New ids are given by a depth-first walk that, on reaching a node,
    numbers all of its children at once. Hence the children of every node
    are consecutive ids ``[child_start, child_stop)`` and all descendants of
    a node (itself excluded) form the contiguous range
    ``[child_start, desc_stop)``: a query scans a node's children as one
    sequential block, and a small subtree as one flat range.

    Returns ``(order, child_start, child_stop, desc_stop)`` where
    ``order[t]`` is the dynamic node given the new id ``t``; leaves have
    ``child_start == child_stop == desc_stop``.
    """
    order = np.empty(n_nodes, dtype=np.int64)
    new_id = np.empty(n_nodes, dtype=np.int64)
    stack = np.empty(n_nodes, dtype=np.int64)
    child_start = np.zeros(n_nodes, dtype=np.int64)
    child_stop = np.zeros(n_nodes, dtype=np.int64)
    desc_stop = np.zeros(n_nodes, dtype=np.int64)
    order[0] = root
    new_id[root] = 0
    nxt = 1
    stack[0] = root
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        nv = new_id[v]
        first = nxt
        c = first_child[v]
        while c != -1:
            new_id[c] = nxt
            order[nxt] = c
            nxt += 1
            c = next_sibling[c]
        child_start[nv] = first
        child_stop[nv] = nxt
        for t in range(nxt - 1, first - 1, -1):
            stack[top] = order[t]
            top += 1
    for t in range(n_nodes - 1, -1, -1):
        e = child_stop[t]
        for c in range(child_start[t], child_stop[t]):
            if desc_stop[c] > e:
                e = desc_stop[c]
        desc_stop[t] = e
    return order, child_start, child_stop, desc_stop
