"""The Numba CPU backend: host arrays in, host arrays out.

Every kernel is reached through :class:`NumbaBackend`; the thread count is
set (and restored in ``finally``) around each parallel call (:mod:`._threads`).
Batch insertion, removal and freezing of the dynamic cover tree are in
:mod:`._tree_updates`, the kd-tree index's host side in :mod:`._boxes`.
"""

import numpy as np

from ..._boxtree import BoxForest, BoxTree
from ..._dynamic import DynamicTree
from .._base import Capabilities
from . import _boxes, _brute, _tree_updates
from . import _kernels_graph as kg
from . import _kernels_kd as kk
from . import _kernels_query as kq
from . import _kernels_vecchia as kv
from ._boxes import _read_only
from ._kernel_args import CODES, metric_args
from ._threads import chunks, pieces, threads, threads_set

__all__ = ["NumbaBackend"]

# no rank restriction in the k-NN kernel
_NO_RANK = np.empty(0, dtype=np.int64)
_NO_RANK.flags.writeable = False

# Maximin orderings of at least this many points answer their Vecchia sets
# beside the ordering (two or more threads): below, a thread costs more
# than the overlap saves.
_OVERLAP_MIN = 4096
# The reverse search of the live graph keeps each block's pairs in a slab of
# this many entries per new point (a new point enters about k rows); a block
# that overflows is searched again.
_REVERSE_SLAB = 128


def _leaf_size(n_features):
    """Subtrees scanned as flat ranges: larger where distances are cheap."""
    if n_features <= 4:
        return 16
    if n_features <= 16:
        return 8
    return 4


def _box_queries(Q):
    """Queries of the kd-tree index in float64 (exact for float32 rows).

    The kd-tree holds its points in float64 and its distances are computed
    in float64 either way: one compiled kernel per metric, not two.
    """
    return _read_only(np.ascontiguousarray(Q, dtype=np.float64))


class NumbaBackend:
    """Compressed cover tree kernels compiled by Numba for the CPU."""

    name = "numba"
    capabilities = Capabilities(
        dtypes=("float32", "float64"),
        device="cpu",
        metrics=tuple(CODES),
    )

    # -- construction and updates ------------------------------------------
    def build(self, X, metric, n_threads, progress=None):
        """The read-optimised tree of the rows of ``X`` (see :meth:`build_dynamic`)."""
        return self.freeze(self.build_dynamic(X, metric, n_threads, progress))

    def build_dynamic(self, X, metric, n_threads, progress=None):
        """Build the dynamic tree of ``X``: a batch insertion into an empty tree."""
        if metric.name == "callable":
            X = np.asarray(X, dtype=np.float64)
        X = np.ascontiguousarray(X)
        n = X.shape[0]
        tree = DynamicTree.empty(X.shape[1], X.dtype, metric, capacity=max(n, 16))
        return self.insert(tree, X, n_threads, progress)

    def supports_box(self, metric):
        """Whether :meth:`build_box` can index data in ``metric`` (box bounds)."""
        return CODES[metric.name] in kk.BOX_METRICS

    @staticmethod
    def box_leaf_size(n_features):
        """Points per leaf of :meth:`build_box`."""
        return _boxes.leaf_size(n_features)

    def build_box(self, X, metric):
        """The kd-tree (:class:`~sklearn_pcct._boxtree.BoxTree`) of the rows of ``X``.

        Only for metrics with :meth:`supports_box`; :meth:`maximin`,
        :meth:`ordered_knn` and :meth:`knn` accept it in place of a cover tree.
        """
        return _boxes.build(_read_only(np.ascontiguousarray(X)), metric)

    def insert(self, tree, X, n_threads, progress=None):
        """A new version of ``tree`` with the rows of ``X`` (:func:`._tree_updates.insert`)."""
        return _tree_updates.insert(tree, X, n_threads, progress)

    def remove(self, tree, ids, n_threads):
        """A new version of ``tree`` without the samples ``ids`` (:func:`._tree_updates.remove`)."""
        return _tree_updates.remove(tree, ids, n_threads)

    def freeze(self, tree):
        """The read-optimised tree of a dynamic tree (:func:`._tree_updates.freeze`)."""
        return _tree_updates.freeze(tree)

    @staticmethod
    def _node_of_samples(tree):
        node_of = np.full(tree.n_samples, -1, dtype=np.int64)
        node_of[tree.node_sample] = np.arange(tree.n_nodes)
        node_of[tree.dup_idx] = np.repeat(np.arange(tree.n_nodes), np.diff(tree.dup_ptr))
        return node_of

    # -- queries ----------------------------------------------------------
    def _tree_args(self, tree):
        return (
            tree.points, tree.node_sample, tree.parent_dist, tree.radius,
            tree.child_start, tree.child_stop, tree.desc_stop,
        )

    def _queries(self, tree, Q):
        dtype = np.float64 if tree.metric.name in ("callable", "correlation") else None
        return _read_only(np.ascontiguousarray(Q, dtype=dtype))

    def knn(self, tree, Q, k, n_threads, progress=None):
        """Exact k nearest samples of every row of ``Q``.

        ``progress``, if given, is called with the number of queries answered
        so far (the queries then run in a few dozen batches).
        """
        if isinstance(tree, BoxTree):  # the ranked search with no rank restriction
            return self.ordered_knn(tree, Q, None, None, k, n_threads, progress)
        if isinstance(tree, BoxForest):
            return self._forest_knn(tree, Q, k, n_threads, progress)
        return self._knn(tree, Q, k, n_threads, _NO_RANK, _NO_RANK, _NO_RANK, progress)

    def _knn(self, tree, Q, k, n_threads, qrank, rank, min_rank, progress=None):
        Q = self._queries(tree, Q)
        code, p, w, user = metric_args(tree.metric)
        args = self._tree_args(tree) + (
            tree.dup_ptr, tree.dup_idx, int(k), _leaf_size(tree.n_features), code, p, w, user,
        )
        ranked = qrank.shape[0] > 0
        with threads(n_threads) as nt:
            if progress is None:
                dist, ind, _ = kq.knn(
                    Q, chunks(Q.shape[0], nt), *args, qrank, rank, min_rank
                )
                return dist, ind
            dist = np.empty((Q.shape[0], k))
            ind = np.empty((Q.shape[0], k), dtype=np.int64)
            for a, b in pieces(0, Q.shape[0]):
                dist[a:b], ind[a:b], _ = kq.knn(
                    Q[a:b], chunks(b - a, nt), *args, qrank[a:b] if ranked else qrank,
                    rank, min_rank,
                )
                progress(b)
        return dist, ind

    def _forest_knn(self, forest, Q, k, n_threads, progress=None, qorders=None):
        Q = _box_queries(Q)
        with threads(n_threads) as nt:
            return _boxes.forest_knn(
                forest, Q, int(k), metric_args(forest.metric), lambda m: chunks(m, nt),
                pieces(0, Q.shape[0]), progress, qorders,
            )

    def knn_fitted(self, tree, k, n_threads, progress=None):
        """Exact k nearest samples of every live sample (itself included).

        Rows follow the live sample ids in ascending order. ``progress`` counts
        the tree's nodes (each distinct point is searched once), or the live
        samples of a :class:`~sklearn_pcct._boxtree.BoxForest`.
        """
        if isinstance(tree, BoxForest):
            live = tree.live_ids()
            return self._forest_knn(tree, tree.points.data[live], k, n_threads, progress,
                                    _boxes.fitted_orders(tree, live))
        dist_n, ind_n = self.knn(tree, tree.points, k, n_threads, progress)
        return self._per_sample(tree, dist_n), self._per_sample(tree, ind_n)

    @staticmethod
    def _per_sample(tree, per_node):
        """Rows computed once per node, copied to every live sample of the node."""
        live = tree.live_ids
        out = np.empty((live.shape[0],) + per_node.shape[1:], dtype=per_node.dtype)
        out[np.searchsorted(live, tree.node_sample)] = per_node
        mult = np.diff(tree.dup_ptr)
        if tree.dup_idx.size:
            out[np.searchsorted(live, tree.dup_idx)] = np.repeat(per_node, mult, axis=0)
        return out

    def radius(self, tree, Q, r, n_threads):
        """Samples within ``r[i]`` of every row ``Q[i]``, in CSR layout."""
        if isinstance(tree, BoxForest):
            Q = _box_queries(Q)
            r = _read_only(np.ascontiguousarray(r, dtype=np.float64))
            with threads(n_threads) as nt:
                if not tree.parts:
                    return (np.zeros(Q.shape[0] + 1, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), np.zeros(0))
                return _boxes.forest_radius(tree, Q, r, metric_args(tree.metric),
                                            lambda m: chunks(m, nt))
        Q = self._queries(tree, Q)
        if tree.n_nodes == 0:  # every sample removed
            return (np.zeros(Q.shape[0] + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                    np.zeros(0))
        r = _read_only(np.ascontiguousarray(r, dtype=np.float64))
        code, p, w, user = metric_args(tree.metric)
        args = self._tree_args(tree) + (
            tree.dup_ptr, tree.dup_idx, _leaf_size(tree.n_features)
        )
        with threads(n_threads) as nt:
            blocks = chunks(Q.shape[0], nt)
            indptr = kq.radius_count(Q, blocks, r, *args, code, p, w, user)
            np.cumsum(indptr, out=indptr)
            ind, dist = kq.radius_fill(
                Q, blocks, r, indptr, *args, code, p, w, user
            )
        return indptr, ind, dist

    def radius_fitted(self, tree, r, n_threads):
        """Radius neighbours of every live sample (itself included).

        Rows follow the live sample ids in ascending order.
        """
        if isinstance(tree, BoxForest):
            live = tree.live_ids()
            return self.radius(tree, tree.points.data[live], np.full(live.shape[0], float(r)),
                               n_threads)
        indptr_n, ind_n, dist_n = self.radius(
            tree, tree.points, np.full(tree.n_nodes, float(r)), n_threads
        )
        counts_n = np.diff(indptr_n)
        node_of = self._node_of_samples(tree)[tree.live_ids]
        counts = counts_n[node_of]
        indptr = np.zeros(node_of.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # gather each sample's node row
        starts = np.repeat(indptr_n[node_of], counts)
        offs = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
        src = starts + offs
        return indptr, ind_n[src], dist_n[src]

    # -- maximin orderings and ordered (Vecchia) queries ----------------------
    def maximin(self, tree, X, first, progress=None):
        """Exact maximin ordering of the samples of ``tree`` (rows of ``X``).

        ``X[s]`` must be the point of sample ``s`` and every row a live sample.
        Returns ``(order, lengthscales)``. ``progress``, if given, is called
        with the number of points ordered so far between kernel calls.
        """
        if isinstance(tree, BoxTree):
            return _boxes.maximin(tree, first, metric_args(tree.metric),
                                  pieces(1, tree.n_samples), progress)
        X = self._queries(tree, X)
        code, p, w, user = metric_args(tree.metric)
        args = (
            X, tree.points, tree.node_sample, tree.parent_dist, tree.radius,
            tree.child_start, tree.child_stop, tree.dup_ptr, tree.dup_idx, code, p, w, user,
        )
        if progress is None:
            return kv.maximin(X, int(first), *args[1:])
        n = X.shape[0]
        state = kv.maximin_start(X, int(first), tree.points.shape[0], code, p, w, user)
        for t0, t1 in pieces(1, n):
            kv.maximin_steps(t0, t1, *state, *args)
            progress(t1)
        return state[0], state[1]

    def maximin_conditioning(self, tree, X, first, k, n_threads):
        """``(order, lengthscales, dist, ind)``: :meth:`maximin`, then its Vecchia sets.

        Row ``r`` of ``dist`` / ``ind`` holds the ``k`` nearest samples of
        ``order[:r]`` to ``order[r]``. On a kd-tree with two or more threads
        the sets of the ranks already ordered are answered while the
        ordering goes on (see :func:`._boxes.maximin_conditioning`); the
        results do not depend on it.
        """
        X = self._queries(tree, X)
        n = X.shape[0]
        if isinstance(tree, BoxTree) and n_threads > 1 and n >= _OVERLAP_MIN:
            with threads(n_threads) as nt:
                if nt > 1:
                    return _boxes.maximin_conditioning(
                        tree, X, first, k, metric_args(tree.metric),
                        lambda m: chunks(m, nt), lambda: threads_set(1),
                        lambda: threads_set(nt),
                    )
        order, ell = self.maximin(tree, X, first)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        dist, ind = self.ordered_knn(tree, X, rank, rank, k, n_threads, out_rows=rank)
        return order, ell, dist, ind

    def ordered_knn(self, tree, Q, qrank, rank, k, n_threads, progress=None, out_rows=None):
        """``k`` nearest samples of rank ``< qrank[i]`` to every row ``Q[i]``.

        ``rank`` has one entry per sample id. Returns ``(dist, ind)`` padded
        with ``inf`` / ``-1``; query ``i``'s answer is in row ``out_rows[i]``
        (a permutation of the queries; default ``i``). On a kd-tree,
        ``rank=None`` (and ``qrank=None``) is the plain k-NN search.
        """
        if rank is not None:
            rank = _read_only(np.ascontiguousarray(rank, dtype=np.int64))
            qrank = _read_only(np.ascontiguousarray(qrank, dtype=np.int64))
        if out_rows is not None:
            out_rows = _read_only(np.ascontiguousarray(out_rows, dtype=np.int64))
        if isinstance(tree, BoxTree):
            Q = self._queries(tree, Q)
            with threads(n_threads) as nt:
                return _boxes.ordered_knn(
                    tree, Q, qrank, rank, k, metric_args(tree.metric),
                    lambda m: chunks(m, nt), pieces(0, Q.shape[0]), progress, out_rows,
                )
        if tree.n_nodes == 0 or Q.shape[0] == 0:
            return (np.full((Q.shape[0], k), np.inf), np.full((Q.shape[0], k), -1, np.int64))
        min_rank = _read_only(kv.subtree_min_rank(
            rank, tree.node_sample, tree.dup_ptr, tree.dup_idx, tree.child_start,
            tree.child_stop,
        ))
        dist, ind = self._knn(tree, Q, k, n_threads, qrank, rank, min_rank, progress)
        if out_rows is None:
            return dist, ind
        out_dist = np.empty_like(dist)
        out_ind = np.empty_like(ind)
        out_dist[out_rows] = dist
        out_ind[out_rows] = ind
        return out_dist, out_ind

    def ordered_knn_brute(self, X, order, k, metric, n_threads, progress=None):
        """``(dist, ind)`` by rank, by brute force over each row's predecessors.

        Row ``r`` holds the ``k`` nearest samples of ``X[order[:r]]`` to
        ``X[order[r]]`` (sample indices), sorted by ``(distance, index)`` and
        padded with ``inf`` / ``-1``.
        """
        X = _read_only(np.ascontiguousarray(X))
        with threads(n_threads):
            return _brute.ordered_knn(X, order, k, metric_args(metric), progress)

    def merge_rows(self, ind, dist, rows, cand_ind, cand_dist, n_threads):
        """Merge candidate neighbours into rows of a padded neighbour list, in place.

        ``ind`` / ``dist`` have shape ``(n, c)``, each row sorted by
        ``(distance, index)`` and padded with ``-1`` / ``inf``; candidate
        ``t`` (finite ``cand_dist[t]``, index ``cand_ind[t]``, not already in
        the row) belongs to row ``rows[t]``. Each row keeps the ``c`` first
        entries of the merged order.
        """
        order = np.lexsort((cand_ind, cand_dist, rows))
        rows, cand_ind, cand_dist = rows[order], cand_ind[order], cand_dist[order]
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if rows.size else rows
        start = np.append(first, rows.size).astype(np.int64)
        with threads(n_threads):
            kg.merge_rows(ind, dist, np.ascontiguousarray(rows[first]), start,
                          np.ascontiguousarray(cand_ind, dtype=np.int64),
                          np.ascontiguousarray(cand_dist, dtype=np.float64))

    def knn_and_reverse(self, tree, Q, k, tau, n_threads):
        """:meth:`knn` of ``Q`` and :meth:`reverse_knn` of ``Q`` with ``tau`` together.

        Returns ``(dist, ind, q, x, pair_dist)``. On a kd-tree index one
        traversal per query and tree answers both.
        """
        if isinstance(tree, BoxForest):
            Q = _box_queries(Q)
            with threads(n_threads) as nt:
                return _boxes.forest_knn_and_reverse(
                    tree, Q, int(k), tau, metric_args(tree.metric), lambda m: chunks(m, nt)
                )
        return self.knn(tree, Q, k, n_threads) + self.reverse_knn(tree, Q, tau, n_threads)

    def reverse_knn(self, tree, Q, tau, n_threads):
        """Pairs ``(i, x)`` with ``d(Q[i], x) < tau[x]`` over the samples ``x`` of ``tree``.

        ``tau`` has one entry per sample id (``-inf`` excludes a sample).
        Returns ``(q, x, dist)`` arrays, one entry per pair.
        """
        if isinstance(tree, BoxForest):  # the combined search (1-NN: next to nothing)
            return self.knn_and_reverse(tree, Q, 1, tau, n_threads)[2:]
        Q = self._queries(tree, Q)
        n = tree.n_nodes
        if n == 0 or Q.shape[0] == 0:
            e = np.zeros(0, dtype=np.int64)
            return e, e, np.zeros(0)
        tau_node = tau[tree.node_sample].astype(np.float64)
        groups = np.flatnonzero(np.diff(tree.dup_ptr))
        if groups.size:
            dup_max = np.maximum.reduceat(tau[tree.dup_idx], tree.dup_ptr[groups])
            tau_node[groups] = np.maximum(tau_node[groups], dup_max)
        mk = kg.subtree_max(tau_node, tree.child_start, tree.child_stop)
        code, p, w, user = metric_args(tree.metric)
        with threads(n_threads):
            indptr, node, dist = kg.reverse_pairs(
                Q, tree.points, tree.parent_dist, tree.radius, tree.child_start,
                tree.child_stop, _read_only(tau_node), _read_only(mk), _REVERSE_SLAB, code, p,
                w, user,
            )
        q = np.repeat(np.arange(Q.shape[0]), np.diff(indptr))
        # expand nodes to their samples (representative and duplicates)
        mult = np.diff(tree.dup_ptr)[node]
        rep_q, rep_x, rep_d = q, tree.node_sample[node], dist
        if tree.dup_idx.size and mult.sum():
            starts = np.repeat(tree.dup_ptr[node], mult)
            offs = np.arange(mult.sum()) - np.repeat(np.cumsum(mult) - mult, mult)
            rep_q = np.concatenate([rep_q, np.repeat(q, mult)])
            rep_x = np.concatenate([rep_x, tree.dup_idx[starts + offs]])
            rep_d = np.concatenate([rep_d, np.repeat(dist, mult)])
        keep = rep_d < tau[rep_x]
        return rep_q[keep], rep_x[keep], rep_d[keep]
