"""The Numba backend's kd-tree engine (see :mod:`sklearn_pcct._boxtree`).

Thin wrappers that turn :class:`~sklearn_pcct._boxtree.BoxTree` objects
into kernel arguments of :mod:`._kernels_kd` (and its maximin ordering,
:mod:`._kernels_kd_maximin`); :class:`NumbaBackend`
dispatches to them for box trees.
"""

import queue
import threading

import numpy as np

from ..._boxtree import BoxTree
from . import _kernels_kd as kk
from . import _kernels_kd_maximin as kdm
from . import _kernels_kd_radius as kq_radius
from . import _kernels_kd_reverse as kr
from ._metrics import metric_tag

__all__ = ["leaf_size", "build", "maximin", "maximin_conditioning", "ordered_knn",
           "forest_knn", "forest_knn_and_reverse", "fitted_orders",
           "forest_radius"]

# ``alive`` argument of the k-NN kernel: no position masked out
_ALL_ALIVE = np.zeros(0, dtype=np.uint8)
_ALL_ALIVE.flags.writeable = False

# The overlapped ordering and conditioning (maximin_conditioning) hand ranks
# over in pieces of n / 64, at least this many.
PIECE_MIN = 1024


def leaf_size(n_features):
    """Points per leaf: small where a node costs little next to a distance.

    A node's box bound costs ``O(n_features)`` like a distance, and in more
    dimensions a query visits more leaves: larger buckets trade traversal
    for contiguous scans. Measured on uniform data, 10^5 points, medians of
    3 runs on a noisy machine (``/tmp`` A/B scripts): 8-D k = 17 all-kNN,
    leaves of 64 or 128 points 15-25 % faster than 16; 2-D and 3-D, leaves
    of 24 instead of 8: k = 16 graph 0.41 -> 0.37 s and 0.68 -> 0.52 s,
    Vecchia sets (maximin + m = 30) 1.30 -> 1.20 s and 2.39 -> 1.83 s.
    """
    if n_features <= 3:
        return 24
    return 32 if n_features <= 5 else 64


def build(X, metric):
    """The :class:`BoxTree` of the rows of ``X``."""
    perm, pts, lo, hi, leaf_of = kk.build(X, leaf_size(X.shape[1]))
    return BoxTree(perm, pts, lo, hi, leaf_of, metric=metric)


def maximin(tree, first, metric_args, pieces=None, progress=None):
    """``(order, lengthscales)``; ``progress`` called after each of ``pieces``."""
    code, p, w, user = metric_args
    tag = metric_tag(code)
    args = (tree.points, tree.perm, tree.lo, tree.hi, tree.leaf_of)
    if progress is None:
        return kdm.maximin(*args, int(first), tag, p, w, user)
    state = kdm.maximin_start(tree.points, tree.perm, tree.n_nodes, int(first), tag, p, w, user)
    none = kdm.no_ranked_leaves(tree.n_features)
    for t0, t1 in pieces:
        kdm.maximin_steps(t0, t1, *state, *args, tag, *none)
        progress(t1)
    return state[0], state[1]


def maximin_conditioning(tree, X, first, k, metric_args, chunks_of, serial, parallel):
    """``(order, lengthscales, dist, ind)``: a maximin ordering and its Vecchia sets.

    The same as :func:`maximin` followed by :func:`ordered_knn` (rows in
    rank order), but the two overlap: the ordering is sequential, so while
    it runs on a thread of its own, the sets of the ranks already assigned
    are answered beside it, on the leaves-by-rank arrays that the ordering
    appends to (:func:`._kernels_kd_maximin.ranked_leaves`); the ranks left when it
    ends are answered on every thread. ``X[s]`` is sample ``s``'s point
    (float64); ``serial()`` and ``parallel()`` set the Numba thread count
    of this thread for the two phases; ``chunks_of(m)`` gives the thread
    blocks of ``m`` queries.
    """
    code, p, w, user = metric_args
    tag = metric_tag(code)
    n, m = tree.n_samples, tree.n_features
    state = kdm.maximin_start(tree.points, tree.perm, tree.n_nodes, int(first), tag, p, w, user)
    order, ell = state[0], state[1]
    ranked = kdm.ranked_leaves(n, m, tree.n_nodes)
    r_perm, r_pts, rank_pos, fill, min_rank = ranked
    pos_of = np.empty(n, dtype=np.int64)
    pos_of[tree.perm] = np.arange(n)
    rank = np.full(n, n, dtype=np.int64)  # by sample; set block by block below
    dist = np.empty((n, k))
    ind = np.empty((n, k), dtype=np.int64)
    done = queue.SimpleQueue()  # ranks assigned so far, then None
    failed = []

    def order_all():
        try:
            step = max(PIECE_MIN, n // 64)
            for t0 in range(1, n, step):
                t1 = min(n, t0 + step)
                kdm.maximin_steps(t0, t1, *state, tree.points, tree.perm, tree.lo, tree.hi,
                                 tree.leaf_of, tag, *ranked)
                done.put(t1)
        except BaseException as exc:  # re-raised by the caller
            failed.append(exc)
        finally:
            done.put(None)

    def answer(a, b):  # the sets of ranks a .. b - 1, queries in tree order
        samples = order[a:b]
        rank[samples] = np.arange(a, b)
        qorder = _read_only(tree.perm[np.sort(pos_of[samples])])
        kk.ordered_knn(X, _read_only(rank), qorder, _read_only(rank), chunks_of(b - a),
                       _read_only(r_pts), _read_only(r_perm), tree.lo, tree.hi,
                       _read_only(rank_pos), _read_only(min_rank), _ALL_ALIVE, False, tag,
                       dist, ind)

    worker = threading.Thread(target=order_all, name="sklearn_pcct maximin", daemon=True)
    # small blocks on this thread: once the ordering ends, the ranks left
    # go to every thread at once
    block = max(PIECE_MIN, n // 64)
    a = t = 0  # sets answered / ranks assigned
    with serial():
        worker.start()
        while True:
            if a == t or not done.empty():  # caught up, or news: the newest count
                t = done.get()
                while t is not None and t < n and not done.empty():
                    t = done.get()
            if t is None or t == n:
                break
            b = min(t, a + block)
            answer(a, b)
            a = b
    worker.join()
    if failed:
        raise failed[0]
    with parallel():
        answer(a, n)
    return order, ell, dist, ind


def ordered_knn(tree, Q, qrank, rank, k, metric_args, chunks_of, pieces=None,
                progress=None, out_rows=None):
    """``(dist, ind)``: the ``k`` nearest samples of rank ``< qrank[i]`` to ``Q[i]``.

    ``rank=None``: the plain ``k`` nearest samples (``qrank`` is ignored).
    ``out_rows[i]``: the row of the results that receives query ``i``'s
    answer (default ``i``).

    ``chunks_of(m)`` gives the thread blocks of ``m`` queries; with
    ``progress``, the queries run in ``pieces`` and ``progress`` is called
    after each.
    """
    tag = metric_tag(metric_args[0])
    nq = Q.shape[0]
    if rank is None:  # no restriction: every sample ranks 0, every query 1
        perm, pts = tree.perm, tree.points
        rank_pos = np.zeros(tree.n_samples, dtype=np.int64)
        min_rank = np.zeros(tree.n_nodes, dtype=np.int64)
        qrank = np.ones(nq, dtype=np.int64)
    else:
        perm, pts, rank_pos, min_rank = _by_rank(tree, rank)
    qrow = np.arange(nq, dtype=np.int64) if out_rows is None else out_rows
    # the fitted points as queries: answer them in tree order (neighbouring
    # queries share their paths in the cache)
    qorder = perm if nq == tree.n_samples else np.arange(nq, dtype=np.int64)
    # every index array read-only, as the tree's own: one compiled
    # specialisation of the kernel serves ranked and plain searches
    qrank, qorder, qrow, rank_pos, min_rank = (
        _read_only(a) for a in (qrank, qorder, qrow, rank_pos, min_rank)
    )
    dist = np.empty((nq, k))  # the kernel writes every entry, padding included
    ind = np.empty((nq, k), dtype=np.int64)
    for a, b in pieces if progress is not None else [(0, nq)]:
        kk.ordered_knn(Q, qrank, qorder, qrow, a + chunks_of(b - a), pts, perm, tree.lo,
                       tree.hi, rank_pos, min_rank, _ALL_ALIVE, False, tag, dist, ind)
        if progress is not None:
            progress(b)
    return dist, ind


def _by_rank(tree, rank):
    """``(perm, points, rank_pos, min_rank)`` with each leaf's positions by rank.

    See :func:`._kernels_kd.leaves_by_rank`.
    """
    perm, pts, rank_pos = kk.leaves_by_rank(tree.perm, tree.points, rank, tree.n_nodes)
    min_rank = kk.subtree_min_rank(rank_pos, tree.n_nodes)
    # read-only like the tree's own arrays, which the unranked search passes
    return tuple(_read_only(a) for a in (perm, pts, rank_pos, min_rank))


def _read_only(a):
    """A read-only view of ``a`` (``a`` itself if it is read-only)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


# -- the updatable index (BoxForest) -------------------------------------------

def _alive_positions(part):
    """``alive`` of a part by position for the kernels (empty: every row live)."""
    if part.n_live == part.n_rows:
        return _ALL_ALIVE
    return _read_only(part.alive[part.tree.perm])


def _live_min_rank(part, alive):
    """``min_rank`` of the k-NN kernel for ``alive``: 0 where a subtree has a live position.

    Removed positions rank 1, never before a query's rank 1.
    """
    if alive.shape[0] == 0:
        return _read_only(np.zeros(part.tree.n_nodes, dtype=np.int64))
    return _read_only(kk.subtree_min_rank((1 - alive).astype(np.int64), part.tree.n_nodes))


def forest_knn(forest, Q, k, metric_args, chunks_of, pieces=None, progress=None,
               qorders=None):
    """``(dist, ind)``: the ``k`` nearest live samples (ids) of each row of ``Q``.

    Each tree is searched in turn, every query continuing from the
    candidates of the trees before (exact, ties by id). ``qorders[j]`` is
    the order in which tree ``j`` answers the queries (default: as given);
    ``progress(b)`` is called after each of ``pieces`` of the last tree.
    """
    tag = metric_tag(metric_args[0])
    nq = Q.shape[0]
    dist = np.full((nq, k), np.inf)
    ind = np.full((nq, k), -1, dtype=np.int64)
    if not forest.parts:
        return dist, ind
    qrank = _read_only(np.ones(nq, dtype=np.int64))
    qrow = _read_only(np.arange(nq, dtype=np.int64))
    for j, part in enumerate(forest.parts):
        tree = part.tree
        alive = _alive_positions(part)
        min_rank = _live_min_rank(part, alive)
        rank_pos = _read_only(np.zeros(tree.n_samples, dtype=np.int64))
        qorder = qrow if qorders is None else _read_only(qorders[j])
        last = j == len(forest.parts) - 1
        for a, b in pieces if progress is not None and last else [(0, nq)]:
            kk.ordered_knn(Q, qrank, qorder, qrow, a + chunks_of(b - a), tree.points,
                           part.pos_ids, tree.lo, tree.hi, rank_pos, min_rank, alive, j > 0,
                           tag, dist, ind)
            if progress is not None and last:
                progress(b)
    return dist, ind


def fitted_orders(forest, live):
    """Per tree, the live samples (rows of ``live``) in that tree's order.

    Neighbouring queries share their paths in the cache: a tree answers the
    live samples best in its own position order, its own samples first.
    """
    orders = []
    for part in forest.parts:
        alive = _alive_positions(part)
        mine = part.pos_ids[alive.view(bool)] if alive.shape[0] else part.pos_ids
        first = np.searchsorted(live, mine)
        rest = np.ones(live.shape[0], dtype=bool)
        rest[first] = False
        orders.append(np.concatenate([first, np.flatnonzero(rest)]))
    return orders


# Pairs kept per query in the first pass of the reverse search.
_REVERSE_SLAB = 64


def _tau_pos(part, tau, alive):
    """``tau`` of each position of ``part`` (``-inf`` where ``alive`` is 0)."""
    tau_pos = tau[part.pos_ids]
    if alive.shape[0]:
        tau_pos[alive == 0] = -np.inf
    return _read_only(tau_pos)


def _pairs(Q, part, tau_pos, tag, first_pass):
    """``(q, x, dist)`` of one tree from :func:`._kernels_kd_reverse.knn_and_reverse`."""
    tree = part.tree
    counts, slab_ind, slab_dist, mk = first_pass
    indptr, x, d = kr.gather_pairs(Q, tree.points, part.pos_ids, tree.lo, tree.hi, tau_pos,
                                   mk, tag, counts, slab_ind, slab_dist)
    return np.repeat(np.arange(Q.shape[0]), np.diff(indptr)), x, d


def _concat_pairs(found):
    if not found:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0)
    return tuple(np.concatenate(a) for a in zip(*found, strict=True))


def forest_knn_and_reverse(forest, Q, k, tau, metric_args, chunks_of):
    """:func:`forest_knn` of ``Q`` and its reverse pairs, one traversal per tree.

    The pairs are ``(i, x)`` with ``d(Q[i], x) < tau[x]`` over the live
    samples ``x`` (``tau`` has one entry per sample id, ``-inf`` excludes
    one). Returns ``(dist, ind, q, x, pair_dist)``, one pair per entry.
    """
    tag = metric_tag(metric_args[0])
    nq = Q.shape[0]
    dist = np.full((nq, k), np.inf)
    ind = np.full((nq, k), -1, dtype=np.int64)
    qorder = _read_only(np.arange(nq, dtype=np.int64))
    found = []
    for j, part in enumerate(forest.parts):
        tree = part.tree
        alive = _alive_positions(part)
        tau_pos = _tau_pos(part, tau, alive)
        first = kr.knn_and_reverse(Q, qorder, chunks_of(nq), tree.points, part.pos_ids,
                                   tree.lo, tree.hi, alive, _live_min_rank(part, alive),
                                   tau_pos, j > 0, _REVERSE_SLAB, tag, dist, ind)
        found.append(_pairs(Q, part, tau_pos, tag, first))
    return (dist, ind) + _concat_pairs(found)


def forest_radius(forest, Q, r, metric_args, chunks_of):
    """``(indptr, ind, dist)``: the live samples within ``r[i]`` of each ``Q[i]`` (ids).

    CSR layout over the queries; within a row, the first tree's samples
    come first (the order inside a row is unspecified).
    """
    tag = metric_tag(metric_args[0])
    nq = Q.shape[0]
    chunks = chunks_of(nq)
    found = []
    for part in forest.parts:
        tree = part.tree
        alive = _alive_positions(part)
        indptr = kq_radius.radius_count(Q, chunks, r, tree.points, tree.lo, tree.hi, alive, tag)
        np.cumsum(indptr, out=indptr)
        ind, dist = kq_radius.radius_fill(Q, chunks, r, indptr, tree.points, part.pos_ids,
                                          tree.lo, tree.hi, alive, tag)
        found.append((indptr, ind, dist))
    if len(found) == 1:
        return found[0]
    counts = sum(np.diff(f[0]) for f in found)
    indptr = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    ind = np.empty(indptr[-1], dtype=np.int64)
    dist = np.empty(indptr[-1])
    before = np.zeros(nq, dtype=np.int64)  # entries of the earlier trees in each row
    for ptr, i, d in found:
        per_row = np.diff(ptr)
        rows = np.repeat(np.arange(nq), per_row)
        dest = indptr[rows] + before[rows] + (np.arange(i.shape[0]) - ptr[rows])
        ind[dest] = i
        dist[dest] = d
        before += per_row
    return indptr, ind, dist
