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

# Subtrees up to this many nodes get their exact radius (section 5.4).
_EXACT_RADIUS_MAX_NODES = 2048
_EMPTY_W = np.empty(0, dtype=np.float64)


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
        """Build a tree by inserting the rows of ``X`` in index order."""
        if metric.name == "callable":
            X = np.asarray(X, dtype=np.float64)
        X = _readonly(np.ascontiguousarray(X))
        n = X.shape[0]
        code, p, w, user = _metric_args(metric)
        node_row = np.empty(n, dtype=np.int64)
        node_level = np.empty(n, dtype=np.int32)
        node_parent = np.empty(n, dtype=np.int64)
        node_pdist = np.empty(n, dtype=np.float64)
        first_child = np.empty(n, dtype=np.int64)
        next_sibling = np.empty(n, dtype=np.int64)
        row_node = np.empty(n, dtype=np.int64)
        rows = np.arange(n, dtype=np.int64)
        n_nodes, root, _ = kb.insert_rows(
            X, rows, 0, -1, node_row, node_level, node_parent, node_pdist,
            first_child, next_sibling, row_node, code, p, w, user,
        )
        order, child_ptr, child_idx, subtree_end, radius = kb.snapshot(
            n_nodes, root, node_level, node_parent, node_pdist, first_child,
            next_sibling,
        )
        pos = np.empty(n_nodes, dtype=np.int64)
        pos[order] = np.arange(n_nodes)
        node_sample = node_row[order]
        points = _readonly(np.ascontiguousarray(X[node_sample]))
        with _threads(n_threads):
            kb.exact_radii(
                points, subtree_end, radius, _EXACT_RADIUS_MAX_NODES, code, p, w, user
            )
        # duplicate groups: samples whose node's representative is another row
        node_of_row = pos[row_node]
        is_dup = node_sample[node_of_row] != rows
        dup_rows = rows[is_dup]
        dup_nodes = node_of_row[is_dup]
        sort = np.argsort(dup_nodes, kind="stable")
        dup_idx = dup_rows[sort]
        dup_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(dup_nodes, minlength=n_nodes), out=dup_ptr[1:])
        parent = np.full(n_nodes, -1, dtype=np.int64)
        parent[child_idx] = np.repeat(np.arange(n_nodes), np.diff(child_ptr))
        parent_dist = node_pdist[order]
        parent_dist[0] = 0.0
        return TreeVersion(
            points=points,
            node_sample=node_sample,
            level=node_level[order],
            parent=parent,
            parent_dist=parent_dist,
            radius=radius,
            child_ptr=child_ptr,
            child_idx=child_idx,
            subtree_end=subtree_end,
            dup_ptr=dup_ptr,
            dup_idx=dup_idx,
            n_samples=n,
            metric=metric,
        )

    # -- queries ----------------------------------------------------------
    def _tree_args(self, tree):
        return (
            tree.points, tree.node_sample, tree.parent_dist, tree.radius,
            tree.child_ptr, tree.child_idx,
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
                Q, _chunks(Q.shape[0], nt), *self._tree_args(tree),
                tree.dup_ptr, tree.dup_idx, int(k), code, p, w, user,
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
        args = self._tree_args(tree) + (tree.subtree_end, tree.dup_ptr, tree.dup_idx)
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
