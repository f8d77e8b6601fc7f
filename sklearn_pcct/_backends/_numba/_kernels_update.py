"""Numba kernels that update the dynamic tree: batch insert and batch delete.

They read and write the chunked copy-on-write arrays of
:mod:`sklearn_pcct._dynamic` through :func:`_gi` / :func:`_gf` (read) and
:func:`_own` (make a chunk private to the version being written: the first
write to a chunk whose slot is below ``base`` copies it to the slot
``top[0]``). The old version's slots are never written, so it stays valid.

Insertion (ALGORITHMS.md 5.1): a point ``x`` gets level ``J(x) - 1`` where
``J(x)`` is the lowest level at which it would violate separation, under the
nearest node ``a`` with ``l(a) >= J`` and ``d(x, a) <= 2^J``. The candidates
are found by a best-first search that prunes a subtree when its radius shows
that no node in it can lower ``J`` or be a parent; radii are exact upper
bounds kept on the ancestor paths.

Deletion (ALGORITHMS.md 6.2-6.3): removing the last sample of a node removes
the node; its live children become *orphans* whose (intact) subtrees are
re-attached. An orphan ``x`` keeps its subtree and may only rise: it gets
the level ``J' - 1`` where ``J' = min max(l(x) + 1, ceil_log2 d(x, a))`` over
the nodes ``a`` with ``l(a) > l(x)`` that cover it, under the nearest such
node -- the insertion search with a level floor. Orphans are re-attached in
order of level descending, so an orphan not yet re-attached can never be a
cover of the one being processed (its subtree lies entirely below).
"""

import numpy as np
from numba import njit

from ..._dynamic import (
    COUNT,
    FIRST,
    LEVEL,
    MASK,
    NEXT,
    NO_LEVEL,
    PARENT,
    PDIST,
    RADIUS,
    ROW,
    SHIFT,
)
from ._heaps import heap_pop, heap_push
from ._kernels_build import ceil_log2, pow2
from ._metrics import distance

__all__ = ["insert_ids", "remove_ids", "detach_ids", "reattach", "rows_and_floors", "dfs_layout"]


@njit(cache=True, inline="always")
def _gi(ip, cm, f, v):
    return ip[cm[v >> SHIFT], f, v & MASK]


@njit(cache=True, inline="always")
def _gf(fp, cm, f, v):
    return fp[cm[v >> SHIFT], f, v & MASK]


@njit(cache=True, inline="always")
def _claim(cm, top, base, c):
    """``(old, slot)``: chunk ``c``'s slot, a fresh one when an older version
    shares it (``old`` is then the slot to copy from, ``-1`` if none)."""
    s = cm[c]
    if s >= base:
        return -1, s
    t = top[0]
    top[0] = t + 1
    cm[c] = t
    return s, t


@njit(cache=True, inline="always")
def _own(ip, fp, cm, top, base, v):
    """Slot of ``v``'s chunk, copied first if an older version shares it."""
    old, s = _claim(cm, top, base, v >> SHIFT)
    if old >= 0:
        ip[s, :, :] = ip[old, :, :]
        fp[s, :, :] = fp[old, :, :]
    return s


@njit(cache=True, inline="always")
def _si(ip, fp, cm, top, base, f, v, x):
    ip[_own(ip, fp, cm, top, base, v), f, v & MASK] = x


@njit(cache=True, inline="always")
def _sf(ip, fp, cm, top, base, f, v, x):
    fp[_own(ip, fp, cm, top, base, v), f, v & MASK] = x


@njit(cache=True, inline="always")
def _set_id(dp, dm, dtop, dbase, i, node):
    old, s = _claim(dm, dtop, dbase, i >> SHIFT)
    if old >= 0:
        dp[s, :, :] = dp[old, :, :]
    dp[s, 0, i & MASK] = node


@njit(cache=True)
def _link_child(ip, fp, cm, top, base, par, child):
    """Insert ``child`` into ``par``'s list (level descending, id ascending)."""
    lc = _gi(ip, cm, LEVEL, child)
    prev = -1
    cur = _gi(ip, cm, FIRST, par)
    while cur != -1:
        lv = _gi(ip, cm, LEVEL, cur)
        if lv > lc or (lv == lc and cur < child):
            prev = cur
            cur = _gi(ip, cm, NEXT, cur)
        else:
            break
    _si(ip, fp, cm, top, base, NEXT, child, cur)
    if prev == -1:
        _si(ip, fp, cm, top, base, FIRST, par, child)
    else:
        _si(ip, fp, cm, top, base, NEXT, prev, child)


@njit(cache=True)
def _unlink_child(ip, fp, cm, top, base, par, child):
    prev = -1
    cur = _gi(ip, cm, FIRST, par)
    while cur != child:
        prev = cur
        cur = _gi(ip, cm, NEXT, cur)
    nxt = _gi(ip, cm, NEXT, child)
    if prev == -1:
        _si(ip, fp, cm, top, base, FIRST, par, nxt)
    else:
        _si(ip, fp, cm, top, base, NEXT, prev, nxt)


@njit(cache=True, inline="always")
def cover_level(d, floor):
    """The insertion search's level for a node at distance ``d``: ``max(floor, ceil_log2 d)``.

    ``floor`` itself at ``d = 0`` (orphans; a new point at distance zero
    joins the node instead).
    """
    cl = floor
    if d > 0.0:
        cl = max(floor, ceil_log2(d))
    return cl


@njit(cache=True, inline="always")
def beats(cl, d, c, J, par_d, par):
    """Whether node ``c`` (level ``cl``, distance ``d``) beats the best ``(J, par_d, par)``."""
    return cl < J or (cl == J and (d < par_d or (d == par_d and c < par)))


@njit(cache=True)
def new_search_heap(cm):
    """Heap arrays for :func:`_search` on a tree whose chunk map is ``cm``.

    A search pushes each node at most once, so the number of node ids the
    map can hold bounds the heap; sized once, the arrays are never replaced
    (``np.empty`` does not touch the pages a search never reaches).
    """
    cap = max(1, cm.shape[0] << SHIFT)
    return (np.empty(cap, dtype=np.float64), np.empty(cap, dtype=np.int64),
            np.empty(cap, dtype=np.float64))


@njit(cache=True)
def _search(P, r, floor, ip, fp, cm, top, base, root, heap, raise_root, code, p, w, user):
    """Level and parent for point ``P[r]`` (insertion search, section 5.1).

    ``floor`` is the lowest admissible ``J`` (``NO_LEVEL + 1`` for a new
    point; ``l(x) + 1`` for an orphan ``x``, which may only rise). With
    ``raise_root`` the root's level is raised to ``J`` when below it;
    without, the search only reads the tree (the result is the same: the
    caller raises the root before linking). Returns ``(J, parent, d(x, parent), dup,
    n_evaluations, heap)`` where ``dup`` is a node at distance zero (new
    points only), else ``-1``. Batch rounds run the same search on a flat
    copy of the tree (:func:`._kernels_locate._search_flat`): keep the two
    in step.
    """
    h_lb, h_node, h_d = heap
    root_row = _gi(ip, cm, ROW, root)
    d_root = distance(P, r, P, root_row, code, p, w, user)
    n_eval = 1
    if d_root == 0.0 and floor <= NO_LEVEL + 1:
        return 0, root, 0.0, root, n_eval, heap
    J = cover_level(d_root, floor)
    if raise_root and _gi(ip, cm, LEVEL, root) < J:
        _si(ip, fp, cm, top, base, LEVEL, root, J)
    par = root
    par_d = d_root
    hn = 0
    if _gi(ip, cm, FIRST, root) != -1:
        heap_push(h_lb, h_node, h_d, hn,
                  max(0.0, d_root - _gf(fp, cm, RADIUS, root)), root, d_root)
        hn = 1
    while hn > 0:
        lb = h_lb[0]
        a = h_node[0]
        da = h_d[0]
        heap_pop(h_lb, h_node, h_d, hn)
        hn -= 1
        two_J = pow2(J)
        if lb > two_J:
            break
        if lb > pow2(_gi(ip, cm, LEVEL, a) - 1):
            continue
        c = _gi(ip, cm, FIRST, a)
        while c != -1:
            lc = _gi(ip, cm, LEVEL, c)
            if lc < floor:
                break  # this child and the rest (levels descending) are too low
            reach = pow2(lc)
            if two_J < reach:
                reach = two_J
            rc = _gf(fp, cm, RADIUS, c)
            if abs(da - _gf(fp, cm, PDIST, c)) - rc > reach:
                c = _gi(ip, cm, NEXT, c)
                continue
            dc = distance(P, r, P, _gi(ip, cm, ROW, c), code, p, w, user)
            n_eval += 1
            if dc == 0.0 and floor <= NO_LEVEL + 1:
                return 0, c, 0.0, c, n_eval, (h_lb, h_node, h_d)
            if dc <= pow2(lc):
                cl = cover_level(dc, floor)
                if beats(cl, dc, c, J, par_d, par):
                    J = cl
                    par = c
                    par_d = dc
                    two_J = pow2(J)
            if _gi(ip, cm, FIRST, c) != -1:
                sub = pow2(lc - 1)
                if two_J < sub:
                    sub = two_J
                lbc = dc - rc
                if lbc <= sub:
                    # room: see new_search_heap (a grown, replaced array would be
                    # reference-counted by Numba on every push and pop)
                    heap_push(h_lb, h_node, h_d, hn, max(0.0, lbc), c, dc)
                    hn += 1
            c = _gi(ip, cm, NEXT, c)
    return J, par, par_d, -1, n_eval, (h_lb, h_node, h_d)


@njit(cache=True)
def _attach(P, x, par, par_d, ip, fp, cm, top, base, code, p, w, user):
    """Link ``x`` under ``par`` and grow the radii on its ancestor path."""
    _si(ip, fp, cm, top, base, PARENT, x, par)
    _sf(ip, fp, cm, top, base, PDIST, x, par_d)
    _link_child(ip, fp, cm, top, base, par, x)
    rx = _gf(fp, cm, RADIUS, x)
    xr = _gi(ip, cm, ROW, x)
    a = par
    da = par_d
    n_eval = 0
    while True:
        # an upper bound, capped by the cover bound 2^(l(a) + 1) of every
        # compressed cover tree (so repeated re-attachments cannot inflate it)
        bound = min(da + rx, pow2(_gi(ip, cm, LEVEL, a) + 1))
        if bound > _gf(fp, cm, RADIUS, a):
            _sf(ip, fp, cm, top, base, RADIUS, a, bound)
        a = _gi(ip, cm, PARENT, a)
        if a == -1:
            break
        da = distance(P, xr, P, _gi(ip, cm, ROW, a), code, p, w, user)
        n_eval += 1
    return n_eval


@njit(cache=True)
def insert_ids(P, ids, ip, fp, cm, top, base, dp, dm, dtop, dbase,
               n_nodes, root, code, p, w, user):
    """Insert the points ``P[ids]`` one after the other (section 5.1).

    A point at distance exactly zero from a node joins it (its ``COUNT``
    grows). ``cm`` / ``dm`` are this version's (writable) chunk maps; the
    pools must have room for every chunk the batch can touch. Returns
    ``(n_nodes, root, n_distance_evaluations)``.
    """
    heap = new_search_heap(cm)
    n_eval = 0
    for t in range(ids.shape[0]):
        r = ids[t]
        if root == -1:
            v = n_nodes
            n_nodes += 1
            _si(ip, fp, cm, top, base, ROW, v, r)
            _si(ip, fp, cm, top, base, LEVEL, v, NO_LEVEL)
            _si(ip, fp, cm, top, base, PARENT, v, -1)
            _si(ip, fp, cm, top, base, FIRST, v, -1)
            _si(ip, fp, cm, top, base, NEXT, v, -1)
            _si(ip, fp, cm, top, base, COUNT, v, 1)
            _sf(ip, fp, cm, top, base, PDIST, v, 0.0)
            _sf(ip, fp, cm, top, base, RADIUS, v, 0.0)
            _set_id(dp, dm, dtop, dbase, r, v)
            root = v
            continue
        J, par, par_d, dup, ne, heap = _search(
            P, r, np.int64(NO_LEVEL + 1), ip, fp, cm, top, base, root, heap, np.bool_(True),
            code, p, w, user,
        )
        n_eval += ne
        if dup != -1:
            _si(ip, fp, cm, top, base, COUNT, dup, _gi(ip, cm, COUNT, dup) + 1)
            _set_id(dp, dm, dtop, dbase, r, dup)
            continue
        v = n_nodes
        n_nodes += 1
        _si(ip, fp, cm, top, base, ROW, v, r)
        _si(ip, fp, cm, top, base, LEVEL, v, J - 1)
        _si(ip, fp, cm, top, base, FIRST, v, -1)
        _si(ip, fp, cm, top, base, COUNT, v, 1)
        _sf(ip, fp, cm, top, base, RADIUS, v, 0.0)
        _set_id(dp, dm, dtop, dbase, r, v)
        n_eval += _attach(P, v, par, par_d, ip, fp, cm, top, base, code, p, w, user)
    return n_nodes, root, n_eval


@njit(cache=True)
def remove_ids(P, ids, ip, fp, cm, top, base, dp, dm, dtop, dbase,
               root, code, p, w, user):
    """Remove the samples ``ids`` (all live, distinct) and repair the tree.

    :func:`detach_ids`, then :func:`reattach` of every orphan on the tree
    as it grows (the sequential reference; the backend places the orphans
    of a large removal on a flat copy first). Returns ``(root,
    n_removed_nodes, n_orphans, n_distance_evaluations)``.
    """
    root, n_dead, orph = detach_ids(ids, ip, fp, cm, top, base, dp, dm, dtop, dbase, root)
    empty_i = np.zeros(0, dtype=np.int64)
    n_eval = reattach(
        P, orph, empty_i, empty_i, np.zeros(0), ip, fp, cm, top, base, root,
        code, p, w, user,
    )
    return root, n_dead, orph.shape[0], n_eval


@njit(cache=True)
def detach_ids(ids, ip, fp, cm, top, base, dp, dm, dtop, dbase, root):
    """Remove the samples ``ids`` (all live, distinct) and detach the orphans.

    Nodes that lose their last sample leave their (live) parents' lists;
    their live children (the orphans) stay detached, each with its subtree.
    When the root is removed, the orphan of highest level (then smallest
    id) becomes the root. Returns ``(root, n_removed_nodes, orphans)`` with
    the other orphans in the order :func:`reattach` must place them: level
    descending, then id ascending (``root`` is ``-1`` when nothing is left).
    """
    dead = np.empty(ids.shape[0], dtype=np.int64)
    n_dead = 0
    for t in range(ids.shape[0]):
        i = ids[t]
        v = dp[dm[i >> SHIFT], 0, i & MASK]
        _set_id(dp, dm, dtop, dbase, i, -1)
        cnt = _gi(ip, cm, COUNT, v) - 1
        _si(ip, fp, cm, top, base, COUNT, v, cnt)
        if cnt == 0:
            dead[n_dead] = v
            n_dead += 1
    if n_dead == 0:
        return root, 0, np.zeros(0, dtype=np.int64)
    # orphans: live children of removed nodes; removed nodes leave their
    # (live) parents' lists
    n_orph = 0
    for t in range(n_dead):
        c = _gi(ip, cm, FIRST, dead[t])
        while c != -1:
            if _gi(ip, cm, COUNT, c) > 0:
                n_orph += 1
            c = _gi(ip, cm, NEXT, c)
    orph = np.empty(n_orph, dtype=np.int64)
    n_orph = 0
    for t in range(n_dead):
        v = dead[t]
        c = _gi(ip, cm, FIRST, v)
        while c != -1:
            if _gi(ip, cm, COUNT, c) > 0:
                orph[n_orph] = c
                n_orph += 1
            c = _gi(ip, cm, NEXT, c)
        par = _gi(ip, cm, PARENT, v)
        if par != -1 and _gi(ip, cm, COUNT, par) > 0:
            _unlink_child(ip, fp, cm, top, base, par, v)
    if _gi(ip, cm, COUNT, root) == 0:
        if n_orph == 0:
            return -1, n_dead, np.zeros(0, dtype=np.int64)
        # the orphan of highest level (then smallest id) becomes the root
        best = 0
        for t in range(1, n_orph):
            lb = _gi(ip, cm, LEVEL, orph[best])
            lt = _gi(ip, cm, LEVEL, orph[t])
            if lt > lb or (lt == lb and orph[t] < orph[best]):
                best = t
        root = orph[best]
        _si(ip, fp, cm, top, base, PARENT, root, -1)
        _sf(ip, fp, cm, top, base, PDIST, root, 0.0)
        orph[best] = orph[n_orph - 1]
        n_orph -= 1
    orph = orph[:n_orph]
    key = np.empty(n_orph, dtype=np.int64)
    for t in range(n_orph):
        key[t] = _gi(ip, cm, LEVEL, orph[t])
    order = np.argsort(-key, kind="mergesort")  # level descending, stable
    sorted_orph = orph[order]
    for t in range(n_orph):  # ties: ascending id
        s = t
        while s > 0 and key[order[s]] == key[order[s - 1]] and sorted_orph[s] < sorted_orph[s - 1]:
            tmp = sorted_orph[s]
            sorted_orph[s] = sorted_orph[s - 1]
            sorted_orph[s - 1] = tmp
            s -= 1
    return root, n_dead, sorted_orph


@njit(cache=True)
def _improve(P, xr, y, floor, J, par, par_d, ip, fp, cm, stack, code, p, w, user):
    """The best of ``(J, par, par_d)`` and the nodes of the subtree of ``y``.

    The subtree's nodes are scored as :func:`_search` scores the nodes of
    the tree for the point ``P[xr]`` with ``floor``: a node ``c`` of level
    ``>= floor`` with ``d(x, c) <= 2^l(c)`` has the key ``(max(floor,
    ceil_log2 d(x, c)), d(x, c), c)``, and the smallest key wins. The walk
    prunes with the same bounds. Returns ``(J, parent, d(x, parent),
    n_distance_evaluations)``.
    """
    n_eval = 0
    if _gi(ip, cm, LEVEL, y) < floor:
        return J, par, par_d, n_eval
    stack[0] = y
    top = 1
    while top > 0:
        top -= 1
        a = stack[top]
        la = _gi(ip, cm, LEVEL, a)
        da = distance(P, xr, P, _gi(ip, cm, ROW, a), code, p, w, user)
        n_eval += 1
        if da <= pow2(la):
            cl = cover_level(da, floor)
            if beats(cl, da, a, J, par_d, par):
                J = cl
                par = a
                par_d = da
        sub = pow2(la - 1)
        two_J = pow2(J)
        if two_J < sub:
            sub = two_J
        if da - _gf(fp, cm, RADIUS, a) <= sub:
            c = _gi(ip, cm, FIRST, a)
            while c != -1 and _gi(ip, cm, LEVEL, c) >= floor:
                stack[top] = c
                top += 1
                c = _gi(ip, cm, NEXT, c)
    return J, par, par_d, n_eval


@njit(cache=True)
def reattach(P, orph, J0, par0, pd0, ip, fp, cm, top, base, root, code, p, w, user):
    """Re-attach the detached orphans ``orph``, one after the other, in place.

    Orphan ``x`` (level ``l``) is searched with the floor ``l + 1`` (it may
    only rise) on the tree as it stands, the orphans before it included,
    then linked with :func:`_attach`. The result of that search is the
    best node ``c`` (level ``>= l + 1``, ``d(x, c) <= 2^l(c)``) by the key
    ``(max(l + 1, ceil_log2 d(x, c)), d(x, c), id)`` (the search prunes
    only what cannot win), and the tree at ``x``'s turn is the tree before
    the orphans plus the subtrees of the orphans re-attached before ``x``.
    So when ``J0`` is given -- the results of the same searches on the
    tree *before* any of these orphans was re-attached
    (:func:`._kernels_locate.locate_flat`) -- the result for ``x`` is the
    best of ``J0[t]``, ``par0[t]``, ``pd0[t]`` and the nodes of those
    subtrees (:func:`_improve`). The tree is the same as with every search
    done here (empty ``J0``). Returns the number of distance evaluations.
    """
    heap = new_search_heap(cm)
    stack = heap[1]  # _improve and _search never run at the same time
    n_eval = 0
    given = J0.shape[0] > 0
    for t in range(orph.shape[0]):
        x = orph[t]
        lx = _gi(ip, cm, LEVEL, x)
        xr = _gi(ip, cm, ROW, x)
        if not given:
            J, par, par_d, _, ne, heap = _search(
                P, xr, lx + 1, ip, fp, cm, top, base, root, heap, np.bool_(True), code, p, w,
                user,
            )
            n_eval += ne
        else:
            J, par, par_d = J0[t], par0[t], pd0[t]
            for s in range(t):
                J, par, par_d, ne = _improve(P, xr, orph[s], lx + 1, J, par, par_d,
                                             ip, fp, cm, stack, code, p, w, user)
                n_eval += ne
            # what the search's raise_root does: the root's level reaches
            # the search's starting J
            d_root = distance(P, xr, P, _gi(ip, cm, ROW, root), code, p, w, user)
            n_eval += 1
            J_start = cover_level(d_root, lx + 1)
            if _gi(ip, cm, LEVEL, root) < J_start:
                _si(ip, fp, cm, top, base, LEVEL, root, J_start)
        if J - 1 != lx:
            _si(ip, fp, cm, top, base, LEVEL, x, J - 1)
        n_eval += _attach(P, x, par, par_d, ip, fp, cm, top, base, code, p, w, user)
    return n_eval


@njit(cache=True)
def rows_and_floors(nodes, ip, cm):
    """Per node: its point's row and its search floor ``l(v) + 1`` (orphans)."""
    rows = np.empty(nodes.shape[0], dtype=np.int64)
    floors = np.empty(nodes.shape[0], dtype=np.int64)
    for t in range(nodes.shape[0]):
        rows[t] = _gi(ip, cm, ROW, nodes[t])
        floors[t] = _gi(ip, cm, LEVEL, nodes[t]) + 1
    return rows, floors


@njit(cache=True)
def dfs_layout(ip, cm, root, n_nodes):
    """Read-optimised order of the live nodes ("sibling blocks in DFS order").

    Returns ``(order, child_start, child_stop, desc_stop)`` as
    :func:`~sklearn_pcct._backends._numba._kernels_build.snapshot` does.
    """
    order = np.empty(n_nodes, dtype=np.int64)
    stack = np.empty(n_nodes, dtype=np.int64)
    cs = np.zeros(n_nodes, dtype=np.int64)
    ce = np.zeros(n_nodes, dtype=np.int64)
    order[0] = root
    nxt = 1
    stack[0] = 0
    top = 1
    while top > 0:
        top -= 1
        nv = stack[top]
        first = nxt
        c = _gi(ip, cm, FIRST, order[nv])
        while c != -1:
            order[nxt] = c
            nxt += 1
            c = _gi(ip, cm, NEXT, c)
        cs[nv] = first
        ce[nv] = nxt
        for t in range(nxt - 1, first - 1, -1):
            stack[top] = t
            top += 1
    m = nxt
    desc_stop = np.zeros(m, dtype=np.int64)
    for t in range(m - 1, -1, -1):
        e = ce[t]
        for c in range(cs[t], ce[t]):
            if desc_stop[c] > e:
                e = desc_stop[c]
        desc_stop[t] = e
    return order[:m], cs[:m].copy(), ce[:m].copy(), desc_stop
