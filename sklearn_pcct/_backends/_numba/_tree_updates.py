"""Batch insertion, removal and freezing of the dynamic cover tree.

The host side of :mod:`._kernels_batch`, :mod:`._kernels_locate` and
:mod:`._kernels_update`: rounds of prefix doubling, the choice between the
dynamic and the flat search, copy-on-write chunk maps, and the
read-optimised :class:`~sklearn_pcct._tree.TreeVersion` of a version.
"""

import numpy as np

from ... import _dynamic as dyn
from ..._dynamic import DynamicTree
from ..._tree import TreeVersion
from . import _kernels_batch as kbt
from . import _kernels_build as kb
from . import _kernels_locate as kl
from . import _kernels_update as ku
from ._boxes import _read_only
from ._kernel_args import metric_args
from ._threads import threads

__all__ = ["freeze", "insert", "remove"]

# Rounds of batch insertion: trees (and rounds) below this size are
# inserted sequentially; a round is about as large as the tree.
_ROUND_MIN = 256
# Rounds are capped at this size (more rounds, but each finds its conflicts
# by comparing all pairs, cheaper than a search for every point); rounds up
# to _DENSE_CONFLICTS_MAX compare all pairs.
_ROUND_MAX = 1024
_DENSE_CONFLICTS_MAX = 4096
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


def _extended_map(cmap, n_chunks):
    """A private, writable copy of a chunk map with room for ``n_chunks``."""
    out = np.full(max(n_chunks, cmap.shape[0]), -1, dtype=np.int64)
    out[: cmap.shape[0]] = cmap
    return out


def _mark_unplaced(id_pool, dm, dtop, dbase, lo, hi):
    """Own the id chunks of ids ``[lo, hi)`` and mark those ids as in no node."""
    c_lo, c_hi = lo >> dyn.SHIFT, dyn.n_chunks(hi)
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


def _no_progress(done):
    pass


def insert(tree, X, n_threads, progress=None):
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
    n_chunk_nodes = dyn.n_chunks(cap_nodes)
    n_chunk_ids = dyn.n_chunks(tree.n_ids + m)
    node_pool.reserve(n_chunk_nodes)
    id_pool.reserve(n_chunk_ids)
    cm = _extended_map(tree.node_map, n_chunk_nodes)
    dm = _extended_map(tree.id_map, n_chunk_ids)
    top = np.array([node_pool.top], dtype=np.int64)
    dtop = np.array([id_pool.top], dtype=np.int64)
    base, dbase = int(top[0]), int(dtop[0])
    _mark_unplaced(id_pool, dm, dtop, dbase, first, first + m)
    order = ids[np.random.default_rng(first).permutation(m)]
    n_nodes, root = _insert_rounds(
        _read_only(store.data), order, tree, cm, dm, top, dtop, base, dbase,
        cap_nodes, n_threads, progress,
    )
    node_pool.top, id_pool.top = int(top[0]), int(dtop[0])
    return _version(tree, cm, dm, n_nodes, first + m, root, tree.n_live + m, top, dtop,
                    base=(base, dbase))


def _insert_rounds(P, order, tree, cm, dm, top, dtop, base, dbase,
                   cap_nodes, n_threads, progress=None):
    """Prefix-doubling rounds of :mod:`._kernels_batch` (sequential when tiny)."""
    ints, floats = tree.node_pool.ints, tree.node_pool.floats
    dints = tree.id_pool.ints
    args = metric_args(tree.metric)
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
    with threads(n_threads) as nt:
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
            J, par, pd, dup, evals_per_point = _locate(
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


def remove(tree, ids, n_threads):
    """A new version of ``tree`` without the samples ``ids``.

    ``ids`` must be distinct live ids (the caller validates them).
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.size == 0:
        return tree
    node_pool, id_pool = tree.node_pool, tree.id_pool
    node_pool.reserve(dyn.n_chunks(tree.n_nodes))
    id_pool.reserve(dyn.n_chunks(tree.n_ids))
    cm = _extended_map(tree.node_map, dyn.n_chunks(tree.n_nodes))
    dm = _extended_map(tree.id_map, dyn.n_chunks(tree.n_ids))
    top = np.array([node_pool.top], dtype=np.int64)
    dtop = np.array([id_pool.top], dtype=np.int64)
    base, dbase = int(top[0]), int(dtop[0])
    ints, floats = node_pool.ints, node_pool.floats
    root, _, orph = ku.detach_ids(
        ids, ints, floats, cm, top, base, id_pool.ints, dm, dtop, dbase, tree.root
    )
    if orph.size:
        _reattach(_read_only(tree.points.data), orph, ints, floats, cm, top, base, root,
                  tree.n_nodes, root != tree.root, metric_args(tree.metric), n_threads)
    node_pool.top, id_pool.top = int(top[0]), int(dtop[0])
    return _version(tree, cm, dm, tree.n_nodes, tree.n_ids, root, tree.n_live - ids.size,
                    top, dtop, base=(base, dbase))


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
    with threads(n_threads) as nt:
        for lo in range(0, rest.size, _REATTACH_BLOCK):
            block = rest[lo : lo + _REATTACH_BLOCK]
            rows, floors = ku.rows_and_floors(block, ints, cm)
            layout = kl.locate_layout(P, ints, floats, cm, root, n_nodes)
            J, par, pd, _, _ = kl.locate_flat(
                P, rows, floors, *layout, max(1, min(block.size, nt * 64)), *args
            )
            ku.reattach(P, block, J, par, pd, ints, floats, cm, top, base, root, *args)


def _version(tree, cm, dm, n_nodes, n_ids, root, n_live, top, dtop, base=None):
    own = (0, 0) if base is None else (int(top[0]) - base[0], int(dtop[0]) - base[1])
    return DynamicTree(
        points=tree.points, node_pool=tree.node_pool, id_pool=tree.id_pool,
        node_map=cm, id_map=dm, n_nodes=n_nodes, n_ids=n_ids, n_live=n_live,
        root=root, metric=tree.metric,
        version=tree.version + (base is not None and tree.n_ids > 0),
        own_slots=own,
    )


def freeze(tree):
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
