"""Numba kernels for exact queries on the read-optimised layout of a cover tree.

Layout (see :func:`._kernels_build.snapshot`): the root is node 0; the
children of node ``v`` are the consecutive nodes
``[child_start[v], child_stop[v])`` and all descendants of ``v`` form the
contiguous range ``[child_start[v], desc_stop[v])``. The extra members of
``v``'s duplicate group (samples at distance exactly zero from ``v``) are
``dup_idx[dup_ptr[v]:dup_ptr[v + 1]]``.

Pruning (ALGORITHMS.md section 7.1): every point below ``v`` lies within
``radius[v]`` of ``v``, so for a query ``q`` it is at least
``d(q, v) - radius[v]`` away, and a child ``c`` of ``v`` is at least
``|d(q, v) - parent_dist[c]| - radius[c]`` away without computing
``d(q, c)``. A subtree is dropped only when that bound exceeds the current
k-th distance (or the radius) by more than a relative rounding slack, so
points tied with the k-th neighbour are never lost; ties are then resolved
by sample index. A surviving subtree with at most ``leaf_size`` descendants
is scanned as one flat range (sequential memory, no heap traffic), like the
leaf bucket of a kd-tree.
"""

import numpy as np
from numba import njit, prange

from ._heaps import heap_pop, heap_push
from ._metrics import distance

__all__ = ["knn", "radius_count", "radius_fill"]

# Relative slack on pruning decisions (ALGORITHMS.md section 13).
PRUNE_SLACK = 2.0**-40


@njit(cache=True, forceinline=True)
def _before(d1, i1, d2, i2):
    return d1 < d2 or (d1 == d2 and i1 < i2)


@njit(cache=True, forceinline=True)
def _result_offer(rd, ri, cnt, k, d, i):
    """Offer ``(d, i)`` to the bounded max-heap ``rd, ri``; return the new size."""
    # one exit only (see _heaps.heap_pop)
    if cnt < k:
        j = cnt
        cnt += 1
        while j > 0:
            par = (j - 1) >> 1
            if _before(rd[par], ri[par], d, i):
                rd[j] = rd[par]
                ri[j] = ri[par]
                j = par
            else:
                break
        rd[j] = d
        ri[j] = i
    elif _before(d, i, rd[0], ri[0]):
        j = 0
        while True:
            left = 2 * j + 1
            if left >= cnt:
                break
            big = left
            right = left + 1
            if right < cnt and _before(rd[left], ri[left], rd[right], ri[right]):
                big = right
            if _before(d, i, rd[big], ri[big]):
                rd[j] = rd[big]
                ri[j] = ri[big]
                j = big
            else:
                break
        rd[j] = d
        ri[j] = i
    return cnt


@njit(cache=True)
def _result_sort(rd, ri, cnt):
    """Heap-sort the result heap in place into ascending ``(distance, index)``."""
    for end in range(cnt - 1, 0, -1):
        d = rd[end]
        i = ri[end]
        rd[end] = rd[0]
        ri[end] = ri[0]
        j = 0
        while True:
            left = 2 * j + 1
            if left >= end:
                break
            big = left
            right = left + 1
            if right < end and _before(rd[left], ri[left], rd[right], ri[right]):
                big = right
            if _before(d, i, rd[big], ri[big]):
                rd[j] = rd[big]
                ri[j] = ri[big]
                j = big
            else:
                break
        rd[j] = d
        ri[j] = i


@njit(cache=True, forceinline=True)
def _result_store(rd, ri, cnt, k, out_dist, out_ind, row):
    """Sort the result heap into row ``row`` of the outputs, padded with ``inf`` / ``-1``."""
    _result_sort(rd, ri, cnt)
    _result_write(rd, ri, cnt, k, out_dist, out_ind, row)


@njit(cache=True, forceinline=True)
def _result_write(rd, ri, cnt, k, out_dist, out_ind, row):
    """Copy ``cnt`` sorted results into row ``row``, padded with ``inf`` / ``-1``."""
    for t in range(cnt):
        out_dist[row, t] = rd[t]
        out_ind[row, t] = ri[t]
    for t in range(cnt, k):
        out_dist[row, t] = np.inf
        out_ind[row, t] = -1


@njit(cache=True, forceinline=True)
def _offer_node(rd, ri, cnt, k, d, v, node_sample, dup_ptr, dup_idx, rank, rq):
    """Offer node ``v``'s samples at distance ``d``; only ranks ``< rq`` if ranked."""
    ranked = rank.shape[0] > 0
    s = node_sample[v]
    if not ranked or rank[s] < rq:
        cnt = _result_offer(rd, ri, cnt, k, d, s)
    for t in range(dup_ptr[v], dup_ptr[v + 1]):
        s = dup_idx[t]
        if not ranked or rank[s] < rq:
            cnt = _result_offer(rd, ri, cnt, k, d, s)
    return cnt


@njit(cache=True)
def _knn_range(
    Q, lo, hi, points, node_sample, parent_dist, radius, child_start, child_stop,
    desc_stop, dup_ptr, dup_idx, k, leaf_size, code, p, w, user, qrank, rank, min_rank,
    out_dist, out_ind, evals,
):
    """Best-first k-NN of the queries ``lo .. hi - 1``.

    With a non-empty ``rank`` (one rank per sample) query ``i`` only returns
    samples of rank ``< qrank[i]``: subtrees whose smallest rank
    ``min_rank[v]`` is not smaller are pruned, and ineligible nodes still
    route the search (ALGORITHMS.md sections 7.6 and 9.4).
    """
    rd = np.empty(k, dtype=np.float64)
    ri = np.empty(k, dtype=np.int64)
    # Each node enters the heap at most once per query, so the number of
    # nodes bounds it: sized once, the heap arrays are never replaced, and
    # Numba does not reference-count them on every push and pop (np.empty
    # does not touch the pages a small search never reaches).
    cap = max(1, child_start.shape[0])
    h_lb = np.empty(cap, dtype=np.float64)
    h_node = np.empty(cap, dtype=np.int64)
    h_d = np.empty(cap, dtype=np.float64)
    ranked = rank.shape[0] > 0
    n_eval = 0
    for qi in range(lo, hi):
        rq = qrank[qi] if ranked else 0
        cnt = 0
        tau = np.inf
        hn = 0
        if not ranked or min_rank[0] < rq:
            d0 = distance(Q, qi, points, 0, code, p, w, user)
            n_eval += 1
            cnt = _offer_node(rd, ri, cnt, k, d0, 0, node_sample, dup_ptr, dup_idx, rank, rq)
            if cnt == k:
                tau = rd[0]
            if child_stop[0] > child_start[0]:
                h_lb[0] = max(0.0, d0 - radius[0])
                h_node[0] = 0
                h_d[0] = d0
                hn = 1
        while hn > 0:
            lb = h_lb[0]
            v = h_node[0]
            dv = h_d[0]
            heap_pop(h_lb, h_node, h_d, hn)
            hn -= 1
            if lb - PRUNE_SLACK * (dv + radius[v]) > tau:
                break
            for c in range(child_start[v], child_stop[v]):
                if ranked and min_rank[c] >= rq:
                    continue
                rc = radius[c]
                pd = parent_dist[c]
                if abs(dv - pd) - rc - PRUNE_SLACK * (dv + pd + rc) > tau:
                    continue
                dc = distance(Q, qi, points, c, code, p, w, user)
                n_eval += 1
                if cnt < k or not _before(rd[0], ri[0], dc, node_sample[c]):
                    cnt = _offer_node(
                        rd, ri, cnt, k, dc, c, node_sample, dup_ptr, dup_idx, rank, rq
                    )
                    if cnt == k:
                        tau = rd[0]
                cs = child_start[c]
                if child_stop[c] > cs:
                    lbc = dc - rc
                    if lbc - PRUNE_SLACK * (dc + rc) > tau:
                        continue
                    e = desc_stop[c]
                    if e - cs <= leaf_size:
                        for u in range(cs, e):
                            if ranked and min_rank[u] >= rq:
                                continue
                            du = distance(Q, qi, points, u, code, p, w, user)
                            n_eval += 1
                            if cnt < k or not _before(rd[0], ri[0], du, node_sample[u]):
                                cnt = _offer_node(
                                    rd, ri, cnt, k, du, u, node_sample, dup_ptr, dup_idx,
                                    rank, rq,
                                )
                                if cnt == k:
                                    tau = rd[0]
                        continue
                    if lbc < 0.0:
                        lbc = 0.0
                    heap_push(h_lb, h_node, h_d, hn, lbc, c, dc)
                    hn += 1
        _result_store(rd, ri, cnt, k, out_dist, out_ind, qi)
    evals[0] = n_eval


@njit(cache=True, parallel=True)
def knn(
    Q, chunks, points, node_sample, parent_dist, radius, child_start, child_stop,
    desc_stop, dup_ptr, dup_idx, k, leaf_size, code, p, w, user, qrank, rank, min_rank,
):
    """Exact k nearest neighbours of every row of ``Q`` (best-first search).

    ``chunks`` holds the boundaries of the query blocks handed to threads.
    ``qrank``, ``rank`` and ``min_rank`` restrict query ``i`` to samples of
    rank ``< qrank[i]`` (Vecchia neighbours); pass empty arrays for plain
    k-NN. Returns ``(dist, ind, n_distance_evaluations)``; rows are sorted
    by ``(distance, sample index)`` and padded with ``inf`` / ``-1`` when
    fewer than ``k`` samples qualify.
    """
    n = Q.shape[0]
    out_dist = np.empty((n, k), dtype=np.float64)
    out_ind = np.empty((n, k), dtype=np.int64)
    n_chunks = chunks.shape[0] - 1
    evals = np.zeros((n_chunks, 1), dtype=np.int64)
    for c in prange(n_chunks):
        _knn_range(
            Q, chunks[c], chunks[c + 1], points, node_sample, parent_dist, radius,
            child_start, child_stop, desc_stop, dup_ptr, dup_idx, k, leaf_size, code, p,
            w, user, qrank, rank, min_rank, out_dist, out_ind, evals[c],
        )
    return out_dist, out_ind, evals.sum()


@njit(cache=True, forceinline=True)
def _emit(u, du, node_sample, dup_ptr, dup_idx, out_ind, out_dist, pos, fill):
    """Write (or only count) node ``u`` and its duplicates at distance ``du``."""
    if not fill:
        return pos + 1 + dup_ptr[u + 1] - dup_ptr[u]
    out_ind[pos] = node_sample[u]
    out_dist[pos] = du
    pos += 1
    for t in range(dup_ptr[u], dup_ptr[u + 1]):
        out_ind[pos] = dup_idx[t]
        out_dist[pos] = du
        pos += 1
    return pos


@njit(cache=True)
def _radius_range(
    Q, lo, hi, r, points, node_sample, parent_dist, radius, child_start, child_stop,
    desc_stop, dup_ptr, dup_idx, leaf_size, code, p, w, user, indptr, out_ind,
    out_dist, fill,
):
    """Count (``fill=False``) or write (``fill=True``) the radius neighbours."""
    cap = 64
    s_node = np.empty(cap, dtype=np.int64)
    s_d = np.empty(cap, dtype=np.float64)
    for qi in range(lo, hi):
        rq = r[qi]
        pos = indptr[qi] if fill else 0
        s_node[0] = 0
        s_d[0] = distance(Q, qi, points, 0, code, p, w, user)
        top = 1
        while top > 0:
            top -= 1
            v = s_node[top]
            dv = s_d[top]
            rv = radius[v]
            if dv - rv - PRUNE_SLACK * (dv + rv) > rq:
                continue
            cs = child_start[v]
            e = desc_stop[v]
            if dv <= rq:
                pos = _emit(v, dv, node_sample, dup_ptr, dup_idx, out_ind, out_dist, pos, fill)
            if e == cs:
                continue
            if dv + rv + PRUNE_SLACK * (dv + rv) <= rq:
                # every descendant is inside the ball
                if not fill:
                    pos += (e - cs) + dup_ptr[e] - dup_ptr[cs]
                    continue
                for u in range(cs, e):
                    du = distance(Q, qi, points, u, code, p, w, user)
                    pos = _emit(u, du, node_sample, dup_ptr, dup_idx, out_ind, out_dist, pos, True)
                continue
            if e - cs <= leaf_size:
                for u in range(cs, e):
                    du = distance(Q, qi, points, u, code, p, w, user)
                    if du <= rq:
                        pos = _emit(
                            u, du, node_sample, dup_ptr, dup_idx, out_ind, out_dist, pos, fill
                        )
                continue
            for c in range(cs, child_stop[v]):
                rc = radius[c]
                pd = parent_dist[c]
                if abs(dv - pd) - rc - PRUNE_SLACK * (dv + pd + rc) > rq:
                    continue
                if top >= cap:
                    cap *= 2
                    ns = np.empty(cap, dtype=np.int64)
                    nd = np.empty(cap, dtype=np.float64)
                    ns[:top] = s_node[:top]
                    nd[:top] = s_d[:top]
                    s_node = ns
                    s_d = nd
                s_node[top] = c
                s_d[top] = distance(Q, qi, points, c, code, p, w, user)
                top += 1
        if not fill:
            indptr[qi + 1] = pos


@njit(cache=True, parallel=True)
def radius_count(
    Q, chunks, r, points, node_sample, parent_dist, radius, child_start, child_stop,
    desc_stop, dup_ptr, dup_idx, leaf_size, code, p, w, user,
):
    """Number of samples within ``r[i]`` (inclusive) of every row ``Q[i]``.

    Returns an ``indptr`` array of length ``n_queries + 1`` whose entry
    ``i + 1`` holds the count of query ``i`` (not yet cumulated).
    """
    n = Q.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    dummy_i = np.empty(0, dtype=np.int64)
    dummy_d = np.empty(0, dtype=np.float64)
    for c in prange(chunks.shape[0] - 1):
        _radius_range(
            Q, chunks[c], chunks[c + 1], r, points, node_sample, parent_dist,
            radius, child_start, child_stop, desc_stop, dup_ptr, dup_idx, leaf_size,
            code, p, w, user, indptr, dummy_i, dummy_d, np.bool_(False),
        )
    return indptr


@njit(cache=True, parallel=True)
def radius_fill(
    Q, chunks, r, indptr, points, node_sample, parent_dist, radius, child_start,
    child_stop, desc_stop, dup_ptr, dup_idx, leaf_size, code, p, w, user,
):
    """Indices and distances of the radius neighbours, laid out by ``indptr``.

    Within a row the order is the traversal order (unsorted).
    """
    nnz = indptr[-1]
    out_ind = np.empty(nnz, dtype=np.int64)
    out_dist = np.empty(nnz, dtype=np.float64)
    for c in prange(chunks.shape[0] - 1):
        _radius_range(
            Q, chunks[c], chunks[c + 1], r, points, node_sample, parent_dist,
            radius, child_start, child_stop, desc_stop, dup_ptr, dup_idx, leaf_size,
            code, p, w, user, indptr, out_ind, out_dist, np.bool_(True),
        )
    return out_ind, out_dist
