"""Parallel batch insertion (ALGORITHMS.md 5.2, after Gu--Napier--Sun--Wang).

A batch is inserted in *rounds* (prefix doubling: a round is about as
large as the tree it goes into, so its points rarely conflict). A round:

1. :func:`locate` -- parallel, read-only: every point runs the insertion
   search of section 5.1 against the current tree and gets its level
   ``J - 1`` and parent (or an existing node at distance zero).
2. :func:`commit` -- sequential and cheap: link every point under the parent
   found in step 1 (round points become leaves under old nodes), keep the
   radii on the ancestor paths and mark the subtrees that received round
   points.
3. :func:`conflicts` -- parallel, read-only: every new node looks for the
   other new nodes that violate separation with it,
   ``d(y, z) <= 2^min(l(y), l(z))`` -- the edges of the round's conflict
   graph (only marked subtrees are searched, with radius pruning; small
   rounds compare all pairs, :func:`conflicts_dense`). Old
   nodes cannot conflict: step 1 placed each point below its lowest
   failing level with respect to them.
4. :func:`resolve` -- the lexicographically first maximal independent set
   of the conflict graph in round order (priority = seeded position) keeps
   its nodes; the others are unlinked (they are leaves) and go first into
   the next round, where step 1 sees the winners.

Each kept node was placed by the rule of section 5.1 against a tree that
holds every node it could conflict with, so the result is a valid
compressed cover tree, equal to the sequential insertion of the kept
points in round order.
"""

import numpy as np
from numba import njit, prange

from ..._dynamic import COUNT, FIRST, LEVEL, NEXT, NO_LEVEL, PARENT, PDIST, RADIUS, ROW
from ._heaps import grow
from ._kernels_build import pow2
from ._kernels_update import (
    _attach,
    _gf,
    _gi,
    _search,
    _set_id,
    _sf,
    _si,
    _unlink_child,
    new_search_heap,
)
from ._metrics import distance

__all__ = ["locate", "commit", "conflicts", "conflicts_dense", "resolve"]


@njit(cache=True, parallel=True)
def locate(P, ids, ip, fp, cm, root, n_blocks, code, p, w, user):
    """Level and parent of every point ``P[ids[t]]`` against the current tree.

    Returns ``(J, parent, parent_dist, dup, n_evaluations)``; ``dup[t]`` is a
    node at distance zero, else ``-1``.
    """
    m = ids.shape[0]
    J = np.empty(m, dtype=np.int64)
    par = np.empty(m, dtype=np.int64)
    pd = np.empty(m, dtype=np.float64)
    dup = np.empty(m, dtype=np.int64)
    n_eval = np.zeros(n_blocks, dtype=np.int64)
    no_top = np.zeros(1, dtype=np.int64)
    for b in prange(n_blocks):
        heap = new_search_heap(cm)
        for t in range(b * m // n_blocks, (b + 1) * m // n_blocks):
            j, a, d, du, ne, heap = _search(
                P, ids[t], np.int64(NO_LEVEL + 1), ip, fp, cm, no_top, np.int64(0), root, heap,
                np.bool_(False),
                code, p, w, user,
            )
            J[t] = j
            par[t] = a
            pd[t] = d
            dup[t] = du
            n_eval[b] += ne
    return J, par, pd, dup, n_eval.sum()


@njit(cache=True)
def commit(P, ids, J, par, pd, dup, ip, fp, cm, top, base, dp, dm, dtop, dbase,
           n_nodes, root, free, n_free, flag, stamp, node_of, code, p, w, user):
    """Link the located points (step 2). Returns ``(n_nodes, n_free)``.

    New nodes take ids from ``free[:n_free]`` first. ``flag[v]`` becomes
    ``2 * stamp`` on the ancestors of new nodes and ``2 * stamp + 1`` on the
    new nodes; ``node_of[t]`` is the node of point ``t`` (``-1``: a duplicate).
    """
    for t in range(ids.shape[0]):
        r = ids[t]
        if dup[t] != -1:
            _si(ip, fp, cm, top, base, COUNT, dup[t], _gi(ip, cm, COUNT, dup[t]) + 1)
            _set_id(dp, dm, dtop, dbase, r, dup[t])
            node_of[t] = -1
            continue
        if _gi(ip, cm, LEVEL, root) < J[t]:
            _si(ip, fp, cm, top, base, LEVEL, root, J[t])
        if n_free > 0:
            n_free -= 1
            v = free[n_free]
        else:
            v = n_nodes
            n_nodes += 1
        _si(ip, fp, cm, top, base, ROW, v, r)
        _si(ip, fp, cm, top, base, LEVEL, v, J[t] - 1)
        _si(ip, fp, cm, top, base, FIRST, v, -1)
        _si(ip, fp, cm, top, base, COUNT, v, 1)
        _sf(ip, fp, cm, top, base, RADIUS, v, 0.0)
        _set_id(dp, dm, dtop, dbase, r, v)
        _attach(P, v, par[t], pd[t], ip, fp, cm, top, base, code, p, w, user)
        node_of[t] = v
        flag[v] = 2 * stamp + 1
        a = par[t]
        while a != -1 and flag[a] < 2 * stamp:
            flag[a] = 2 * stamp
            a = _gi(ip, cm, PARENT, a)
    return n_nodes, n_free


@njit(cache=True)
def _conflicts_one(P, y, ip, fp, cm, root, flag, stamp, stack, stack_d, out, pos,
                   fill, code, p, w, user):
    yr = _gi(ip, cm, ROW, y)
    ly = _gi(ip, cm, LEVEL, y)
    cnt = 0
    stack[0] = root
    stack_d[0] = distance(P, yr, P, _gi(ip, cm, ROW, root), code, p, w, user)
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        dv = stack_d[top]
        c = _gi(ip, cm, FIRST, v)
        while c != -1:
            if flag[c] >= 2 * stamp:
                lc = _gi(ip, cm, LEVEL, c)
                bound = pow2(min(ly, lc))
                rc = _gf(fp, cm, RADIUS, c)
                if abs(dv - _gf(fp, cm, PDIST, c)) - rc <= bound:
                    dc = distance(P, yr, P, _gi(ip, cm, ROW, c), code, p, w, user)
                    if flag[c] == 2 * stamp + 1 and c != y and dc <= bound:
                        if fill:
                            out[pos + cnt] = c
                        cnt += 1
                    if (_gi(ip, cm, FIRST, c) != -1
                            and dc - rc <= pow2(min(ly, lc - 1))):
                        if top >= stack.shape[0]:
                            stack = grow(stack, top + 1)
                            stack_d = grow(stack_d, top + 1)
                        stack[top] = c
                        stack_d[top] = dc
                        top += 1
            c = _gi(ip, cm, NEXT, c)
    return cnt, stack, stack_d


@njit(cache=True, parallel=True)
def conflicts(P, node_of, ip, fp, cm, root, flag, stamp, n_blocks, code, p, w, user):
    """Conflict lists of the new nodes (step 3), CSR ``(indptr, nodes)`` by point."""
    m = node_of.shape[0]
    indptr = np.zeros(m + 1, dtype=np.int64)
    dummy = np.empty(0, dtype=np.int64)
    for b in prange(n_blocks):
        stack = np.empty(256, dtype=np.int64)
        stack_d = np.empty(256, dtype=np.float64)
        for t in range(b * m // n_blocks, (b + 1) * m // n_blocks):
            if node_of[t] != -1:
                cnt, stack, stack_d = _conflicts_one(
                    P, node_of[t], ip, fp, cm, root, flag, stamp, stack, stack_d,
                    dummy, 0, False, code, p, w, user,
                )
                indptr[t + 1] = cnt
    for t in range(m):
        indptr[t + 1] += indptr[t]
    out = np.empty(indptr[m], dtype=np.int64)
    for b in prange(n_blocks):
        stack = np.empty(256, dtype=np.int64)
        stack_d = np.empty(256, dtype=np.float64)
        for t in range(b * m // n_blocks, (b + 1) * m // n_blocks):
            if indptr[t + 1] > indptr[t]:
                _, stack, stack_d = _conflicts_one(
                    P, node_of[t], ip, fp, cm, root, flag, stamp, stack, stack_d,
                    out, indptr[t], True, code, p, w, user,
                )
    return indptr, out


@njit(cache=True)
def resolve(ids, node_of, indptr, partners, t_of, ip, fp, cm, top, base, dp, dm,
            dtop, dbase, free, n_free):
    """Keep the greedy MIS in round order; unlink the others (step 4).

    ``t_of[v]`` is the round position of new node ``v``. Returns
    ``(losers, n_free)``: the ids to insert again, and the free-list size
    after the losers' nodes joined it.
    """
    m = ids.shape[0]
    keep = np.ones(m, dtype=np.bool_)
    n_lose = 0
    for t in range(m):
        for q in range(indptr[t], indptr[t + 1]):
            s = t_of[partners[q]]
            if s < t and keep[s]:
                keep[t] = False
                n_lose += 1
                break
    losers = np.empty(n_lose, dtype=np.int64)
    j = 0
    for t in range(m):
        if not keep[t]:
            v = node_of[t]
            _unlink_child(ip, fp, cm, top, base, _gi(ip, cm, PARENT, v), v)
            _si(ip, fp, cm, top, base, COUNT, v, 0)
            _set_id(dp, dm, dtop, dbase, ids[t], -1)
            free[n_free] = v
            n_free += 1
            losers[j] = ids[t]
            j += 1
    return losers, n_free


_N_PIVOTS = 4
# partners kept per row by the parallel loop of conflicts_dense
_SLAB = 16


@njit(cache=True)
def _dense_check(P, t, s, ids, node_of, lev, piv, code, p, w, user):
    if node_of[s] == -1:
        return False
    bound = pow2(min(lev[t], lev[s]))
    for q in range(piv.shape[1]):  # triangle inequality through the pivots
        if abs(piv[t, q] - piv[s, q]) > bound:
            return False
    return distance(P, ids[t], P, ids[s], code, p, w, user) <= bound


@njit(cache=True)
def _dense_row(P, t, ids, node_of, lev, piv, srt, rank, out, pos, cap,
               code, p, w, user):
    """Partners of ``t`` among the points whose first pivot distance is close.

    Returns their number; the first ``cap`` of them are written to
    ``out[pos:]`` (in a fixed order: the same on every call).
    """
    cnt = 0
    m = srt.shape[0]
    reach = pow2(lev[t])  # min(l(t), l(s)) <= l(t)
    r = rank[t]
    for step in (1, -1):
        u = r + step
        while 0 <= u < m and abs(piv[srt[u], 0] - piv[t, 0]) <= reach:
            s = srt[u]
            if _dense_check(P, t, s, ids, node_of, lev, piv, code, p, w, user):
                if cnt < cap:
                    out[pos + cnt] = node_of[s]
                cnt += 1
            u += step
    return cnt


@njit(cache=True, parallel=True)
def conflicts_dense(P, ids, node_of, J, code, p, w, user):
    """Step 3 for small rounds: all pairs of new nodes (same output as :func:`conflicts`).

    Pairs are screened with their distances to a few pivot points
    (``|d(y, q) - d(z, q)| <= d(y, z)``): sorted by the first, each point
    only scans a window of the others, and most pairs in it cost no distance.
    One parallel loop over the points (each parallel loop waits for all
    threads at its end, which costs a scheduler time slice when another
    process holds a core): the pivot distances are computed before it,
    sequentially, and each row keeps its first ``_SLAB`` partners in a slab;
    only longer rows are searched a second time.
    """
    m = node_of.shape[0]
    lev = J - 1
    n_piv = min(_N_PIVOTS, m)
    piv = np.empty((m, n_piv), dtype=np.float64)
    for t in range(m):
        for q in range(n_piv):
            piv[t, q] = distance(P, ids[t], P, ids[(q * m) // n_piv], code, p, w, user)
    srt = np.argsort(piv[:, 0])
    rank = np.empty(m, dtype=np.int64)
    rank[srt] = np.arange(m)
    count = np.zeros(m, dtype=np.int64)
    slab = np.empty(m * _SLAB, dtype=np.int64)
    for t in prange(m):
        if node_of[t] != -1:
            count[t] = _dense_row(P, t, ids, node_of, lev, piv, srt, rank, slab, t * _SLAB,
                                  np.int64(_SLAB), code, p, w, user)
    indptr = np.zeros(m + 1, dtype=np.int64)
    for t in range(m):
        indptr[t + 1] = indptr[t] + count[t]
    out = np.empty(indptr[m], dtype=np.int64)
    long_rows = np.empty(m, dtype=np.int64)
    n_long = 0
    for t in range(m):
        if count[t] > _SLAB:
            long_rows[n_long] = t
            n_long += 1
        else:
            out[indptr[t] : indptr[t + 1]] = slab[t * _SLAB : t * _SLAB + count[t]]
    if n_long > 0:  # (a parallel loop of no iterations still wakes the threads)
        for j in prange(n_long):
            t = long_rows[j]
            _dense_row(P, t, ids, node_of, lev, piv, srt, rank, out, indptr[t], count[t],
                       code, p, w, user)
    return indptr, out
