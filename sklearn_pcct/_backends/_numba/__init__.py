"""The Numba CPU backend: host arrays in, host arrays out.

Every kernel is reached through :class:`NumbaBackend`; the thread count is
set (and restored in ``finally``) around each parallel call.
"""

import functools
from contextlib import contextmanager

import numba
import numpy as np

from ..._tree import TreeVersion
from .._base import Capabilities
from . import _kernels_build as kb
from . import _kernels_query as kq
from . import _metrics as km

__all__ = ["NumbaBackend"]

_CODES = {
    "euclidean": km.EUCLIDEAN,
    "manhattan": km.MANHATTAN,
    "chebyshev": km.CHEBYSHEV,
    "minkowski": km.MINKOWSKI,
    "haversine": km.HAVERSINE,
    "callable": km.USER,
}

_EMPTY_W = np.empty(0, dtype=np.float64)
_EMPTY_W.flags.writeable = False


@functools.lru_cache(maxsize=64)
def _compile_user_metric(func):
    """Wrap a user metric as a first-class function of the kernels' signature."""
    try:
        jitted = func if isinstance(func, numba.core.dispatcher.Dispatcher) else numba.njit(func)
        return numba.cfunc(km.USER_SIGNATURE)(jitted)
    except Exception as exc:  # numba raises many error types while typing
        raise TypeError(
            "A callable metric must be compilable by Numba in nopython mode as "
            "f(a, b) -> float for two 1-D float64 arrays (decorate it with "
            f"@numba.njit to see why it is not): {exc}"
        ) from exc


def _metric_args(spec):
    code = _CODES[spec.name]
    w = _EMPTY_W if spec.w is None else _readonly(np.ascontiguousarray(spec.w, np.float64))
    user = _compile_user_metric(spec.func) if code == km.USER else km.no_user_metric
    return code, float(spec.p), w, user


def _readonly(a):
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@contextmanager
def _threads(n_threads):
    n = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    old_threads = numba.get_num_threads()
    old_chunk = numba.get_parallel_chunksize()
    numba.set_num_threads(n)
    numba.set_parallel_chunksize(1)
    try:
        yield n
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(old_threads)


# Inputs from this size on are inserted in the grouped order of NumbaBackend.build.
_GROUPED_BUILD_MIN = 8192


class _DynamicTree:
    """The insertion-friendly form of a tree (see ``_kernels_build``)."""

    def __init__(self, X, metric_args):
        n = X.shape[0]
        self.X = X
        self.metric_args = metric_args
        self.node_row = np.empty(n, dtype=np.int64)
        self.node_level = np.empty(n, dtype=np.int32)
        self.node_parent = np.empty(n, dtype=np.int64)
        self.node_pdist = np.empty(n, dtype=np.float64)
        self.node_radius = np.empty(n, dtype=np.float64)
        self.first_child = np.empty(n, dtype=np.int64)
        self.next_sibling = np.empty(n, dtype=np.int64)
        self.row_node = np.empty(n, dtype=np.int64)
        self.n_nodes = 0
        self.root = -1

    def insert(self, rows):
        self.n_nodes, self.root, _ = kb.insert_rows(
            self.X, rows, self.n_nodes, self.root, self.node_row, self.node_level,
            self.node_parent, self.node_pdist, self.node_radius, self.first_child,
            self.next_sibling, self.row_node, *self.metric_args,
        )

    def freeze(self, rows, metric):
        """The read-optimised :class:`TreeVersion` over the inserted ``rows``.

        Sample indices are positions in ``rows`` (all rows must be inserted).
        """
        n_nodes = self.n_nodes
        if n_nodes == 0:
            empty = np.zeros(0, dtype=np.int64)
            order, child_start, child_stop, desc_stop = empty, empty, empty, empty
        else:
            order, child_start, child_stop, desc_stop = kb.snapshot(
                n_nodes, self.root, self.first_child, self.next_sibling
            )
        pos = np.empty(n_nodes, dtype=np.int64)
        pos[order] = np.arange(n_nodes)
        node_rows = self.node_row[order]
        points = _readonly(np.ascontiguousarray(self.X[node_rows]))
        # inflate the exact radii by a rounding slack (ALGORITHMS.md section 13)
        radius = self.node_radius[order] * (1.0 + kb.RADIUS_SLACK)
        # duplicate groups: each node is represented by its smallest sample
        # (so that ties are broken by sample index); the others are dup_idx
        samples = np.arange(rows.shape[0])
        node_of_sample = pos[self.row_node[rows]]
        by_node = np.lexsort((samples, node_of_sample))
        firsts = np.searchsorted(node_of_sample[by_node], np.arange(n_nodes))
        node_sample = samples[by_node][firsts]
        is_rep = np.zeros(rows.shape[0], dtype=bool)
        is_rep[firsts] = True
        dup_idx = samples[by_node][~is_rep]
        dup_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(node_of_sample, minlength=n_nodes) - 1, out=dup_ptr[1:])
        parent = np.full(n_nodes, -1, dtype=np.int64)
        parent[1:] = pos[self.node_parent[order[1:]]]
        parent_dist = self.node_pdist[order]
        parent_dist[:1] = 0.0
        return TreeVersion(
            points=points,
            node_sample=node_sample,
            level=self.node_level[order],
            parent=parent,
            parent_dist=parent_dist,
            radius=radius,
            child_start=child_start,
            child_stop=child_stop,
            desc_stop=desc_stop,
            dup_ptr=dup_ptr,
            dup_idx=dup_idx,
            n_samples=rows.shape[0],
            metric=metric,
        )


def _leaf_size(n_features):
    """Subtrees scanned as flat ranges: larger where distances are cheap."""
    if n_features <= 4:
        return 16
    if n_features <= 16:
        return 8
    return 4


def _chunks(n, n_threads):
    """Block boundaries for ``n`` queries: many small blocks balance the load."""
    n_blocks = max(1, min(n, n_threads * 64, max(1, n // 16)))
    return np.linspace(0, n, n_blocks + 1).astype(np.int64)


class NumbaBackend:
    """Compressed cover tree kernels compiled by Numba for the CPU."""

    name = "numba"
    capabilities = Capabilities(
        dtypes=("float32", "float64"),
        device="cpu",
        metrics=tuple(_CODES),
    )

    # -- construction -----------------------------------------------------
    def build(self, X, metric, n_threads):
        """Build a tree by inserting the rows of ``X`` one after the other.

        Small inputs are inserted in index order. Larger ones first insert a
        seeded random sixteenth of the rows, then the others grouped by their
        nearest node of that first tree, so that consecutive insertions walk
        the same paths (about a third faster, from cache reuse); any order
        gives a valid tree, and the result is deterministic.
        """
        if metric.name == "callable":
            X = np.asarray(X, dtype=np.float64)
        X = _readonly(np.ascontiguousarray(X))
        n = X.shape[0]
        args = _metric_args(metric)
        tree = _DynamicTree(X, args)
        if n == 0:
            return tree.freeze(np.arange(0, dtype=np.int64), metric)
        if n < _GROUPED_BUILD_MIN:
            tree.insert(np.arange(n, dtype=np.int64))
            return tree.freeze(np.arange(n, dtype=np.int64), metric)
        perm = np.random.default_rng(0).permutation(n)
        first, rest = np.sort(perm[: n // 16]), np.sort(perm[n // 16 :])
        tree.insert(first)
        coarse = tree.freeze(first, metric)
        _, nearest = self.knn(coarse, X[rest], 1, n_threads)
        node_of = np.empty(n, dtype=np.int64)
        node_of[coarse.node_sample] = np.arange(coarse.n_nodes)
        node_of[coarse.dup_idx] = np.repeat(np.arange(coarse.n_nodes), np.diff(coarse.dup_ptr))
        tree.insert(rest[np.argsort(node_of[nearest[:, 0]], kind="stable")])
        return tree.freeze(np.arange(n, dtype=np.int64), metric)

    # -- queries ----------------------------------------------------------
    def _tree_args(self, tree):
        return (
            tree.points, tree.node_sample, tree.parent_dist, tree.radius,
            tree.child_start, tree.child_stop, tree.desc_stop,
        )

    def _queries(self, tree, Q):
        dtype = np.float64 if tree.metric.name == "callable" else None
        return _readonly(np.ascontiguousarray(Q, dtype=dtype))

    def knn(self, tree, Q, k, n_threads):
        """Exact k nearest samples of every row of ``Q``."""
        Q = self._queries(tree, Q)
        code, p, w, user = _metric_args(tree.metric)
        with _threads(n_threads) as nt:
            dist, ind, _ = kq.knn(
                Q, _chunks(Q.shape[0], nt), *self._tree_args(tree), tree.dup_ptr,
                tree.dup_idx, int(k), _leaf_size(tree.n_features), code, p, w, user,
            )
        return dist, ind

    def knn_fitted(self, tree, k, n_threads):
        """Exact k nearest samples of every fitted sample (itself included)."""
        dist_n, ind_n = self.knn(tree, tree.points, k, n_threads)
        return self._per_sample(tree, dist_n), self._per_sample(tree, ind_n)

    @staticmethod
    def _per_sample(tree, per_node):
        """Rows computed once per node, copied to every sample of the node."""
        out = np.empty((tree.n_samples,) + per_node.shape[1:], dtype=per_node.dtype)
        out[tree.node_sample] = per_node
        mult = np.diff(tree.dup_ptr)
        if tree.dup_idx.size:
            out[tree.dup_idx] = np.repeat(per_node, mult, axis=0)
        return out

    def radius(self, tree, Q, r, n_threads):
        """Samples within ``r[i]`` of every row ``Q[i]``, in CSR layout."""
        Q = self._queries(tree, Q)
        r = _readonly(np.ascontiguousarray(r, dtype=np.float64))
        code, p, w, user = _metric_args(tree.metric)
        args = self._tree_args(tree) + (
            tree.dup_ptr, tree.dup_idx, _leaf_size(tree.n_features)
        )
        with _threads(n_threads) as nt:
            chunks = _chunks(Q.shape[0], nt)
            indptr = kq.radius_count(Q, chunks, r, *args, code, p, w, user)
            np.cumsum(indptr, out=indptr)
            ind, dist = kq.radius_fill(
                Q, chunks, r, indptr, *args, code, p, w, user
            )
        return indptr, ind, dist

    def radius_fitted(self, tree, r, n_threads):
        """Radius neighbours of every fitted sample (itself included)."""
        indptr_n, ind_n, dist_n = self.radius(
            tree, tree.points, np.full(tree.n_nodes, float(r)), n_threads
        )
        counts_n = np.diff(indptr_n)
        node_of = np.empty(tree.n_samples, dtype=np.int64)
        node_of[tree.node_sample] = np.arange(tree.n_nodes)
        node_of[tree.dup_idx] = np.repeat(np.arange(tree.n_nodes), np.diff(tree.dup_ptr))
        counts = counts_n[node_of]
        indptr = np.zeros(tree.n_samples + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # gather each sample's node row
        starts = np.repeat(indptr_n[node_of], counts)
        offs = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
        src = starts + offs
        return indptr, ind_n[src], dist_n[src]
