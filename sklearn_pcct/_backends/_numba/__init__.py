"""The Numba CPU backend: host arrays in, host arrays out.

Every kernel is reached through :class:`NumbaBackend`; the thread count is
set (and restored in ``finally``) around each parallel call.
"""

import ctypes
import functools
import threading
from contextlib import contextmanager

import numba
import numpy as np

from ... import _dynamic as dyn
from ..._boxtree import BoxForest, BoxTree
from ..._dynamic import DynamicTree
from ..._tree import TreeVersion
from .._base import Capabilities
from . import _boxes, _brute
from . import _kernels_batch as kbt
from . import _kernels_build as kb
from . import _kernels_graph as kg
from . import _kernels_kd as kk
from . import _kernels_locate as kl
from . import _kernels_query as kq
from . import _kernels_update as ku
from . import _kernels_vecchia as kv
from . import _metrics as km
from ._boxes import _read_only

__all__ = ["NumbaBackend"]

_CODES = {
    "euclidean": km.EUCLIDEAN,
    "manhattan": km.MANHATTAN,
    "chebyshev": km.CHEBYSHEV,
    "minkowski": km.MINKOWSKI,
    "haversine": km.HAVERSINE,
    "callable": km.USER,
    "correlation": km.CORRELATION,
}

_EMPTY_W = np.empty(0, dtype=np.float64)
_EMPTY_W.flags.writeable = False
# no rank restriction in the k-NN kernel
_NO_RANK = np.empty(0, dtype=np.int64)
_NO_RANK.flags.writeable = False


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


_ROW_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)


@functools.lru_cache(maxsize=16)
def _compile_python_metric(obj):
    """A first-class function that calls ``obj._generic_distance`` through ctypes.

    For kernels with no Numba fast path: the kernels stay compiled and
    cached for the fixed user signature, and each distance calls back into
    Python (the callback takes the GIL).
    """
    def call(pa, pb, n):
        a = np.ctypeslib.as_array((ctypes.c_double * n).from_address(pa))
        b = np.ctypeslib.as_array((ctypes.c_double * n).from_address(pb))
        return obj._generic_distance(a, b)

    callback = _ROW_CALLBACK(call)

    def metric(a, b):  # pragma: no cover - compiled
        ac = np.ascontiguousarray(a)
        bc = np.ascontiguousarray(b)
        return callback(ac.ctypes.data, bc.ctypes.data, ac.shape[0])

    compiled = numba.cfunc(km.USER_SIGNATURE)(metric)
    compiled._pcct_callback = callback  # keep the ctypes thunk alive
    return compiled


def _metric_args(spec):
    code = _CODES[spec.name]
    w = _EMPTY_W if spec.w is None else _read_only(np.ascontiguousarray(spec.w, np.float64))
    if code == km.CORRELATION and w[0] < 0:  # a kernel with no fast path
        return km.USER, float(spec.p), w, _compile_python_metric(spec.func)
    if code == km.USER:
        return code, float(spec.p), w, _compile_user_metric(spec.func)
    if code <= km.CHEBYSHEV:
        # kernels compiled for ``user=None`` carry only these metrics, in a
        # distance small enough to run without reference counting (see
        # _metrics.distance); euclidean as a type, compiled on its own
        # (_metrics.metric_code)
        return km.EUCLIDEAN_TAG if code == km.EUCLIDEAN else code, float(spec.p), w, None
    return code, float(spec.p), w, km.no_user_metric


@functools.lru_cache(maxsize=1)
def _libgomp():
    """GNU OpenMP's runtime if this process can load it, else None."""
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:  # pragma: no cover - not a GNU/Linux OpenMP platform
        return None


# Numba's "workqueue" threading layer is not thread-safe: two Python threads
# entering parallel kernels at once abort the process. Calls are serialised
# under it (and while no layer has started yet, since the first call picks it).
_WORKQUEUE_LOCK = threading.RLock()


def _needs_serialising():
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet
        return True


@contextmanager
def _threads(n_threads):
    """Run Numba's parallel kernels on ``n_threads`` threads, then restore.

    Also restores OpenMP's ``max-active-levels``: Numba's OpenMP threading
    layer enables nested parallelism for the whole process when it starts,
    which makes other OpenMP libraries in the process (GPBoost, for one)
    oversubscribe the cores by orders of magnitude. Under the workqueue
    layer, which cannot run two parallel regions at once, calls from
    different Python threads take turns.
    """
    if _needs_serialising():
        with _WORKQUEUE_LOCK, _threads_set(n_threads) as n:
            yield n
    else:
        with _threads_set(n_threads) as n:
            yield n


@contextmanager
def _threads_set(n_threads):
    # read before any Numba threading call: the first one starts the pool
    gomp = _libgomp()
    old_levels = gomp.omp_get_max_active_levels() if gomp is not None else None
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
        if gomp is not None and gomp.omp_get_max_active_levels() != old_levels:
            gomp.omp_set_max_active_levels(old_levels)


# Rounds of batch insertion: trees (and rounds) below this size are
# inserted sequentially; a round is about as large as the tree.
_ROUND_MIN = 256
# Rounds are capped at this size (more rounds, but each finds its conflicts
# by comparing all pairs, cheaper than a search for every point); rounds up
# to _DENSE_CONFLICTS_MAX compare all pairs.
_ROUND_MAX = 1024
_DENSE_CONFLICTS_MAX = 4096
# Maximin orderings of at least this many points answer their Vecchia sets
# beside the ordering (two or more threads): below, a thread costs more
# than the overlap saves.
_OVERLAP_MIN = 4096
# A round locates its points on a flat copy of the tree (_kernels_locate)
# when its expected distance evaluations (the last round's per point, times
# the round's size) reach this many per node of the tree: copying the tree
# costs about as much per node as the flat search saves per evaluation
# (both searches return the same result).
_FLAT_LOCATE_RATIO = 1.0
# The first round measures the evaluations per point on this many points.
_LOCATE_PROBE = 64
_NO_FLOORS = np.zeros(0, dtype=np.int64)  # locate_flat: new points
# A removal re-attaches its first orphans one by one on the dynamic tree,
# this many, to measure their search cost, and the others in blocks of
# _REATTACH_BLOCK: each block is located on a flat copy of the tree (when the
# same ratio says it is cheaper), then improved by the subtrees of the
# earlier orphans of the block (quadratic in the block's size).
_REATTACH_PROBE = 16
_REATTACH_BLOCK = 2048
# The reverse search of the live graph keeps each block's pairs in a slab of
# this many entries per new point (a new point enters about k rows); a block
# that overflows is searched again.
_REVERSE_SLAB = 128


def _extended_map(cmap, n_chunks):
    """A private, writable copy of a chunk map with room for ``n_chunks``."""
    out = np.full(max(n_chunks, cmap.shape[0]), -1, dtype=np.int64)
    out[: cmap.shape[0]] = cmap
    return out


def _n_chunks(n):
    return (n + dyn.MASK) >> dyn.SHIFT


def _mark_unplaced(id_pool, dm, dtop, dbase, lo, hi):
    """Own the id chunks of ids ``[lo, hi)`` and mark those ids as in no node."""
    c_lo, c_hi = lo >> dyn.SHIFT, _n_chunks(hi)
    ints = id_pool.ints
    for c in range(c_lo, min(c_lo + 1, c_hi)):  # the first may be shared
        s = dm[c]
        if s < dbase:
            t = int(dtop[0])
            dtop[0] += 1
            if s >= 0:
                ints[t] = ints[s]
            dm[c] = t
    fresh = np.arange(c_lo + 1, c_hi)
    if fresh.size:
        t = int(dtop[0])
        dm[fresh] = np.arange(t, t + fresh.size)
        dtop[0] += fresh.size
    ids = np.arange(lo, hi)
    ints[dm[ids >> dyn.SHIFT], 0, ids & dyn.MASK] = -1


def _leaf_size(n_features):
    """Subtrees scanned as flat ranges: larger where distances are cheap."""
    if n_features <= 4:
        return 16
    if n_features <= 16:
        return 8
    return 4


def _no_progress(done):
    pass


def _pieces(start, stop, n_pieces=50):
    """About ``n_pieces`` consecutive ranges covering ``[start, stop)`` (progress steps)."""
    bounds = np.unique(np.linspace(start, stop, n_pieces + 1).astype(np.int64))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def _chunks(n, n_threads):
    """Block boundaries for ``n`` queries: many small blocks balance the load."""
    n_blocks = max(1, min(n, n_threads * 64, max(1, n // 16)))
    return np.linspace(0, n, n_blocks + 1).astype(np.int64)


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
        metrics=tuple(_CODES),
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
        return _CODES[metric.name] in kk.BOX_METRICS

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
        """A new version of ``tree`` with the rows of ``X`` inserted.

        The rows get the next sample ids ``tree.n_ids, tree.n_ids + 1, ...``;
        ``tree`` itself is left unchanged (copy-on-write chunks). The batch
        is inserted in a seeded random order by rounds of prefix doubling,
        each located and checked for conflicts in parallel
        (:mod:`._kernels_batch`); the result does not depend on the number
        of threads. ``progress``, if given, is called with the number of rows
        inserted so far after every round.
        """
        m = X.shape[0]
        if m == 0:
            return tree
        store = tree.points
        store.n = tree.n_ids  # drop rows a failed update may have appended
        first = store.append(X)
        ids = np.arange(first, first + m, dtype=np.int64)
        node_pool, id_pool = tree.node_pool, tree.id_pool
        cap_nodes = tree.n_nodes + 2 * m  # losers of a round may hold extra ids
        n_chunk_nodes = _n_chunks(cap_nodes)
        n_chunk_ids = _n_chunks(tree.n_ids + m)
        node_pool.reserve(n_chunk_nodes)
        id_pool.reserve(n_chunk_ids)
        cm = _extended_map(tree.node_map, n_chunk_nodes)
        dm = _extended_map(tree.id_map, n_chunk_ids)
        top = np.array([node_pool.top], dtype=np.int64)
        dtop = np.array([id_pool.top], dtype=np.int64)
        base, dbase = int(top[0]), int(dtop[0])
        _mark_unplaced(id_pool, dm, dtop, dbase, first, first + m)
        order = ids[np.random.default_rng(first).permutation(m)]
        n_nodes, root = self._insert_rounds(
            _read_only(store.data), order, tree, cm, dm, top, dtop, base, dbase,
            cap_nodes, n_threads, progress,
        )
        node_pool.top, id_pool.top = int(top[0]), int(dtop[0])
        return self._version(tree, cm, dm, n_nodes, first + m, root,
                             tree.n_live + m, top, dtop, base=(base, dbase))

    def _insert_rounds(self, P, order, tree, cm, dm, top, dtop, base, dbase,
                       cap_nodes, n_threads, progress=None):
        """Prefix-doubling rounds of :mod:`._kernels_batch` (sequential when tiny)."""
        ints, floats = tree.node_pool.ints, tree.node_pool.floats
        dints = tree.id_pool.ints
        args = _metric_args(tree.metric)
        n_nodes, root = tree.n_nodes, tree.root
        m = order.shape[0]
        flag = np.zeros(cap_nodes, dtype=np.int64)
        t_of = np.zeros(cap_nodes, dtype=np.int64)
        free = np.empty(m, dtype=np.int64)
        n_free = 0
        pending = np.zeros(0, dtype=np.int64)
        pos, stamp, size = 0, 0, tree.n_live
        evals_per_point = None  # of the last round: which locate is cheaper
        report = progress if progress is not None else _no_progress
        with _threads(n_threads) as nt:
            while pos < m or pending.size:
                want = min(max(_ROUND_MIN, size), _ROUND_MAX)
                take = max(0, min(m - pos, want - pending.size))
                rnd = np.concatenate([pending, order[pos : pos + take]])
                pos += take
                if size < _ROUND_MIN or rnd.size < _ROUND_MIN // 8:
                    n_nodes, root, _ = ku.insert_ids(
                        P, rnd, ints, floats, cm, top, base, dints, dm, dtop, dbase,
                        n_nodes, root, *args,
                    )
                    size += rnd.size
                    pending = pending[:0]
                    report(size - tree.n_live)
                    continue
                stamp += 1
                n_blocks = max(1, min(rnd.size, nt * 64))
                J, par, pd, dup, evals_per_point = self._locate(
                    P, rnd, ints, floats, cm, root, n_nodes, n_blocks, args,
                    evals_per_point,
                )
                node_of = np.empty(rnd.size, dtype=np.int64)
                n_nodes, n_free = kbt.commit(
                    P, rnd, J, par, pd, dup, ints, floats, cm, top, base, dints, dm,
                    dtop, dbase, n_nodes, root, free, n_free, flag, stamp, node_of, *args,
                )
                new = node_of >= 0
                t_of[node_of[new]] = np.flatnonzero(new)
                if rnd.size <= _DENSE_CONFLICTS_MAX:
                    indptr, partners = kbt.conflicts_dense(P, rnd, node_of, J, *args)
                else:
                    indptr, partners = kbt.conflicts(
                        P, node_of, ints, floats, cm, root, flag, stamp, n_blocks, *args
                    )
                pending, n_free = kbt.resolve(
                    rnd, node_of, indptr, partners, t_of, ints, floats, cm, top, base,
                    dints, dm, dtop, dbase, free, n_free,
                )
                size += rnd.size - pending.size
                report(size - tree.n_live)
        return n_nodes, root

    @staticmethod
    def _locate(P, rnd, ints, floats, cm, root, n_nodes, n_blocks, args, evals_per_point):
        """Step 1 of a round, on the flat copy of the tree when that is cheaper.

        Without an estimate of the distance evaluations per point (the
        first round), the first points of the round are located on the
        dynamic tree to measure it. Returns ``(J, parent, parent_dist, dup,
        evaluations per point)``; both searches give the same results.
        """
        parts = []
        start = 0
        if evals_per_point is None:
            start = min(rnd.size, _LOCATE_PROBE)
            parts.append(kbt.locate(
                P, rnd[:start], ints, floats, cm, root, min(n_blocks, start), *args
            ))
            evals_per_point = parts[0][4] / start
        rest = rnd[start:]
        if rest.size and evals_per_point * rest.size >= _FLAT_LOCATE_RATIO * n_nodes:
            layout = kl.locate_layout(P, ints, floats, cm, root, n_nodes)
            parts.append(kl.locate_flat(P, rest, _NO_FLOORS, *layout, n_blocks, *args))
        elif rest.size:
            parts.append(kbt.locate(P, rest, ints, floats, cm, root, n_blocks, *args))
        J, par, pd, dup = (np.concatenate([q[f] for q in parts]) for f in range(4))
        return J, par, pd, dup, sum(q[4] for q in parts) / rnd.size

    def remove(self, tree, ids, n_threads):
        """A new version of ``tree`` without the samples ``ids``.

        ``ids`` must be distinct live ids (the caller validates them).
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0:
            return tree
        node_pool, id_pool = tree.node_pool, tree.id_pool
        node_pool.reserve(_n_chunks(tree.n_nodes))
        id_pool.reserve(_n_chunks(tree.n_ids))
        cm = _extended_map(tree.node_map, _n_chunks(tree.n_nodes))
        dm = _extended_map(tree.id_map, _n_chunks(tree.n_ids))
        top = np.array([node_pool.top], dtype=np.int64)
        dtop = np.array([id_pool.top], dtype=np.int64)
        base, dbase = int(top[0]), int(dtop[0])
        ints, floats = node_pool.ints, node_pool.floats
        root, _, orph = ku.detach_ids(
            ids, ints, floats, cm, top, base, id_pool.ints, dm, dtop, dbase, tree.root
        )
        if orph.size:
            self._reattach(_read_only(tree.points.data), orph, ints, floats, cm, top, base,
                           root, tree.n_nodes, root != tree.root,
                           _metric_args(tree.metric), n_threads)
        node_pool.top, id_pool.top = int(top[0]), int(dtop[0])
        return self._version(tree, cm, dm, tree.n_nodes, tree.n_ids, root,
                             tree.n_live - ids.size, top, dtop, base=(base, dbase))

    @staticmethod
    def _reattach(P, orph, ints, floats, cm, top, base, root, n_nodes, new_root, args,
                  n_threads):
        """Re-attach the orphans of a removal (:func:`._kernels_update.reattach`).

        The result is the tree of re-attaching them one by one on the
        dynamic tree. A removal whose searches cost more evaluations than
        the tree has nodes (measured on its first orphans) locates the
        others block by block on a flat copy of the tree, in parallel, then
        gives each the better of that result and the nodes of the subtrees
        of the earlier orphans of its block. Under a new root (the old one was removed) the other
        orphans hang outside any copy: one by one.
        """
        empty_i = np.zeros(0, dtype=np.int64)
        none = (empty_i, empty_i, np.zeros(0))
        start = orph.size if new_root else min(orph.size, _REATTACH_PROBE)
        evals = ku.reattach(P, orph[:start], *none, ints, floats, cm, top, base, root,
                            *args)
        rest = orph[start:]
        if rest.size == 0:
            return
        if evals / start * rest.size < _FLAT_LOCATE_RATIO * n_nodes:
            ku.reattach(P, rest, *none, ints, floats, cm, top, base, root, *args)
            return
        with _threads(n_threads) as nt:
            for lo in range(0, rest.size, _REATTACH_BLOCK):
                block = rest[lo : lo + _REATTACH_BLOCK]
                rows, floors = ku.rows_and_floors(block, ints, cm)
                layout = kl.locate_layout(P, ints, floats, cm, root, n_nodes)
                J, par, pd, _, _ = kl.locate_flat(
                    P, rows, floors, *layout, max(1, min(block.size, nt * 64)), *args
                )
                ku.reattach(P, block, J, par, pd, ints, floats, cm, top, base, root, *args)

    @staticmethod
    def _version(tree, cm, dm, n_nodes, n_ids, root, n_live, top, dtop, base=None):
        own = (0, 0) if base is None else (int(top[0]) - base[0], int(dtop[0]) - base[1])
        return DynamicTree(
            points=tree.points, node_pool=tree.node_pool, id_pool=tree.id_pool,
            node_map=cm, id_map=dm, n_nodes=n_nodes, n_ids=n_ids, n_live=n_live,
            root=root, metric=tree.metric,
            version=tree.version + (base is not None and tree.n_ids > 0),
            own_slots=own,
        )

    @staticmethod
    def _node_of_samples(tree):
        node_of = np.full(tree.n_samples, -1, dtype=np.int64)
        node_of[tree.node_sample] = np.arange(tree.n_nodes)
        node_of[tree.dup_idx] = np.repeat(np.arange(tree.n_nodes), np.diff(tree.dup_ptr))
        return node_of

    def freeze(self, tree):
        """The read-optimised :class:`TreeVersion` of a :class:`DynamicTree`.

        Sample indices are ids; removed ids belong to no node.
        """
        n_features = tree.n_features
        if tree.root == -1:
            empty = np.zeros(0, dtype=np.int64)
            return TreeVersion(
                points=np.zeros((0, n_features), dtype=tree.dtype), node_sample=empty,
                level=np.zeros(0, dtype=np.int32), parent=empty,
                parent_dist=np.zeros(0), radius=np.zeros(0), child_start=empty,
                child_stop=empty, desc_stop=empty, dup_ptr=np.zeros(1, dtype=np.int64),
                dup_idx=empty, n_samples=tree.n_ids, metric=tree.metric,
                version=tree.version,
            )
        order, child_start, child_stop, desc_stop = ku.dfs_layout(
            tree.node_pool.ints, tree.node_map, tree.root, tree.n_nodes
        )
        n = order.shape[0]
        pos = np.full(tree.n_nodes, -1, dtype=np.int64)
        pos[order] = np.arange(n)
        level = tree.node_field(dyn.LEVEL, order).astype(np.int32)
        parent = np.full(n, -1, dtype=np.int64)
        parent[1:] = pos[tree.node_field(dyn.PARENT, order[1:])]
        parent_dist = tree.node_field(dyn.PDIST, order, floating=True)
        parent_dist[:1] = 0.0
        # inflate the radii by a rounding slack (ALGORITHMS.md section 13)
        radius = tree.node_field(dyn.RADIUS, order, floating=True) * (1.0 + kb.RADIUS_SLACK)
        # duplicate groups: each node is represented by its smallest live id
        # (so that ties are broken by sample index); the others are dup_idx
        id_node = tree.id_node()
        samples = np.flatnonzero(id_node >= 0)
        node_of_sample = pos[id_node[samples]]
        by_node = np.lexsort((samples, node_of_sample))
        firsts = np.searchsorted(node_of_sample[by_node], np.arange(n))
        node_sample = samples[by_node][firsts]
        is_rep = np.zeros(samples.shape[0], dtype=bool)
        is_rep[firsts] = True
        dup_idx = samples[by_node][~is_rep]
        dup_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(node_of_sample, minlength=n) - 1, out=dup_ptr[1:])
        # the point of the representative (with a weight of zero, samples at
        # distance zero need not be equal)
        points = _read_only(np.ascontiguousarray(tree.points.data[node_sample]))
        return TreeVersion(
            points=points, node_sample=node_sample, level=level, parent=parent,
            parent_dist=parent_dist, radius=radius, child_start=child_start,
            child_stop=child_stop, desc_stop=desc_stop, dup_ptr=dup_ptr,
            dup_idx=dup_idx, n_samples=tree.n_ids, metric=tree.metric,
            version=tree.version,
        )

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
        code, p, w, user = _metric_args(tree.metric)
        args = self._tree_args(tree) + (
            tree.dup_ptr, tree.dup_idx, int(k), _leaf_size(tree.n_features), code, p, w, user,
        )
        ranked = qrank.shape[0] > 0
        with _threads(n_threads) as nt:
            if progress is None:
                dist, ind, _ = kq.knn(
                    Q, _chunks(Q.shape[0], nt), *args, qrank, rank, min_rank
                )
                return dist, ind
            dist = np.empty((Q.shape[0], k))
            ind = np.empty((Q.shape[0], k), dtype=np.int64)
            for a, b in _pieces(0, Q.shape[0]):
                dist[a:b], ind[a:b], _ = kq.knn(
                    Q[a:b], _chunks(b - a, nt), *args, qrank[a:b] if ranked else qrank,
                    rank, min_rank,
                )
                progress(b)
        return dist, ind

    def _forest_knn(self, forest, Q, k, n_threads, progress=None, qorders=None):
        Q = _box_queries(Q)
        with _threads(n_threads) as nt:
            return _boxes.forest_knn(
                forest, Q, int(k), _metric_args(forest.metric), lambda m: _chunks(m, nt),
                _pieces(0, Q.shape[0]), progress, qorders,
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
            with _threads(n_threads) as nt:
                if not tree.parts:
                    return (np.zeros(Q.shape[0] + 1, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), np.zeros(0))
                return _boxes.forest_radius(tree, Q, r, _metric_args(tree.metric),
                                            lambda m: _chunks(m, nt))
        Q = self._queries(tree, Q)
        if tree.n_nodes == 0:  # every sample removed
            return (np.zeros(Q.shape[0] + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                    np.zeros(0))
        r = _read_only(np.ascontiguousarray(r, dtype=np.float64))
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
            return _boxes.maximin(tree, first, _metric_args(tree.metric),
                                  _pieces(1, tree.n_samples), progress)
        X = self._queries(tree, X)
        code, p, w, user = _metric_args(tree.metric)
        args = (
            X, tree.points, tree.node_sample, tree.parent_dist, tree.radius,
            tree.child_start, tree.child_stop, tree.dup_ptr, tree.dup_idx, code, p, w, user,
        )
        if progress is None:
            return kv.maximin(X, int(first), *args[1:])
        n = X.shape[0]
        state = kv.maximin_start(X, int(first), tree.points.shape[0], code, p, w, user)
        for t0, t1 in _pieces(1, n):
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
            with _threads(n_threads) as nt:
                if nt > 1:
                    return _boxes.maximin_conditioning(
                        tree, X, first, k, _metric_args(tree.metric),
                        lambda m: _chunks(m, nt), lambda: _threads_set(1),
                        lambda: _threads_set(nt),
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
            with _threads(n_threads) as nt:
                return _boxes.ordered_knn(
                    tree, Q, qrank, rank, k, _metric_args(tree.metric),
                    lambda m: _chunks(m, nt), _pieces(0, Q.shape[0]), progress, out_rows,
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
        with _threads(n_threads):
            return _brute.ordered_knn(X, order, k, _metric_args(metric), progress)

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
        with _threads(n_threads):
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
            with _threads(n_threads) as nt:
                return _boxes.forest_knn_and_reverse(
                    tree, Q, int(k), tau, _metric_args(tree.metric), lambda m: _chunks(m, nt)
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
        code, p, w, user = _metric_args(tree.metric)
        with _threads(n_threads):
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
