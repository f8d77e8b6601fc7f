"""Updates of the estimators' kd-tree index (:class:`~sklearn_pcct._boxtree.BoxForest`).

With ``algorithm="kd_tree"`` (``"auto"`` in up to 64 features of a box
metric) an estimator answers its k-NN queries from kd-trees. Updates keep
them, rather than switching to a cover tree that would first have to be
built (seconds for 10^5 points, where the kd-tree took 0.07 s):

* ``insert`` rebuilds only the small kd-tree of the samples inserted since
  the last rebuild (the new rows with the earlier ones still live);
* ``remove`` clears the removed rows in a copy of their tree's mask;
* when the inserted samples outgrow :data:`DELTA_FRACTION` of the live
  ones, or the removed rows :data:`DEAD_FRACTION` of the rows held, the
  next update rebuilds one kd-tree of the live samples. A sequence of
  updates then costs ``O(n log n)`` per ``n / 8`` samples changed, and a
  query searches at most two trees (the second seeded with the first's
  answer, so the merge is exact, ties by id).

Every update returns a new :class:`BoxForest`; the old one is unchanged
(the trees it shares are read-only) and answers as before. No sklearn here.
"""

import numpy as np

from . import _core
from ._boxtree import BoxForest, BoxPart
from ._dynamic import PointStore

__all__ = ["DELTA_FRACTION", "DEAD_FRACTION", "build_forest", "insert", "remove",
           "build_dynamic", "compact"]

# rebuild one tree when the samples inserted since the last rebuild exceed
# this fraction of the live samples ...
DELTA_FRACTION = 1 / 8
# ... or the removed rows still held exceed this fraction of all rows held
DEAD_FRACTION = 1 / 4


def _part(X_rows, ids, metric, backend):
    """A :class:`BoxPart` of live rows ``X_rows`` with ascending ``ids``."""
    tree = backend.build_box(X_rows, metric)
    alive = np.ones(ids.shape[0], dtype=np.uint8)
    return BoxPart(tree, ids, ids[tree.perm], alive, ids.shape[0])


def _parts_of(points, ids, metric, backend):
    return (_part(points.data[ids], ids, metric, backend),) if ids.size else ()


def build_forest(X, metric, backend):
    """The index of the rows of ``X`` (row ``i`` gets id ``i``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float32 or float64 rows, C-contiguous.
    metric : MetricSpec
        A metric with box bounds (``backend.supports_box(metric)``).
    backend : Backend

    Returns
    -------
    forest : BoxForest

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._forest import build_forest
    >>> from sklearn_pcct._metric import MetricSpec
    >>> forest = build_forest(np.eye(3), MetricSpec("euclidean"), get_backend("numba"))
    >>> forest.n_live, forest.live_ids()
    (3, array([0, 1, 2]))
    """
    points = PointStore(X.shape[1], X.dtype, max(16, X.shape[0]))
    points.append(X)
    ids = np.arange(X.shape[0], dtype=np.int64)
    return BoxForest(_parts_of(points, ids, metric, backend), points, X.shape[0], metric)


def _rebuilt(forest, points, n_ids, metric, backend, live):
    parts = _parts_of(points, live, metric, backend)
    own = sum(part.nbytes() for part in parts)
    return BoxForest(parts, points, n_ids, metric, forest.version + 1, own)


def insert(forest, X, backend):
    """A new version of ``forest`` with the rows of ``X`` added (``forest`` unchanged).

    Parameters
    ----------
    forest : BoxForest
    X : ndarray of shape (n_new, n_features)
        Finite rows of the forest's dtype; they get the ids
        ``forest.n_ids .. forest.n_ids + n_new - 1``.
    backend : Backend

    Returns
    -------
    new_forest : BoxForest

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._forest import build_forest, insert
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> old = build_forest(np.eye(20), MetricSpec("euclidean"), be)
    >>> new = insert(old, np.zeros((2, 20)), be)  # a small tree of the new rows
    >>> new.n_live, old.n_live, len(new.parts)
    (22, 20, 2)
    """
    store = forest.points
    store.n = forest.n_ids  # drop rows that a failed update may have appended
    first = store.append(X)
    n_ids = first + X.shape[0]
    new_ids = np.arange(first, n_ids, dtype=np.int64)
    metric = forest.metric
    n_live = forest.n_live + X.shape[0]
    base = forest.parts[:1]
    delta = forest.parts[1].live_ids() if len(forest.parts) > 1 else new_ids[:0]
    delta = np.concatenate([delta, new_ids])
    if not base or delta.shape[0] > DELTA_FRACTION * n_live:
        return _rebuilt(forest, store, n_ids, metric, backend,
                        np.concatenate([forest.live_ids(), new_ids]))
    part = _part(store.data[delta], delta, metric, backend)
    own = part.nbytes() + X.nbytes
    return BoxForest(base + (part,), store, n_ids, metric, forest.version + 1, own)


def remove(forest, ids, backend):
    """A new version of ``forest`` without the samples ``ids`` (``forest`` unchanged).

    Parameters
    ----------
    forest : BoxForest
    ids : ndarray of shape (n_removed,)
        Distinct live sample ids (validated by the caller).
    backend : Backend

    Returns
    -------
    new_forest : BoxForest

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._forest import build_forest, remove
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> remove(build_forest(np.eye(3), MetricSpec("euclidean"), be), np.array([0]), be).live_ids()
    array([1, 2])
    """
    ids = np.asarray(ids, dtype=np.int64)
    parts = []
    own = 0
    for part in forest.parts:
        row = part.rows_of(ids)[1]  # the ids this tree holds, each once
        if row.size == 0:
            parts.append(part)
            continue
        alive = part.alive.copy()
        alive[row] = 0
        own += alive.nbytes
        parts.append(BoxPart(part.tree, part.ids, part.pos_ids, alive, part.n_live - row.size))
    n_rows = sum(part.n_rows for part in parts)
    n_live = sum(part.n_live for part in parts)
    if n_rows - n_live > DEAD_FRACTION * n_rows:
        live = np.concatenate([part.live_ids() for part in parts])
        return _rebuilt(forest, forest.points, forest.n_ids, forest.metric, backend, live)
    parts = tuple(part for part in parts if part.n_live > 0 or part is parts[0])
    return BoxForest(parts, forest.points, forest.n_ids, forest.metric, forest.version + 1, own)


def build_dynamic(forest, backend, n_threads=1):
    """The cover tree (:class:`~sklearn_pcct._dynamic.DynamicTree`) of the live samples.

    Same ids as ``forest``: built over every id issued, then the removed
    ones are deleted (what ``tree_`` needs).

    Parameters
    ----------
    forest : BoxForest
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    tree : DynamicTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct import _forest
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> forest = _forest.remove(_forest.build_forest(np.eye(3), MetricSpec("euclidean"), be),
    ...                         np.array([1]), be)
    >>> _forest.build_dynamic(forest, be).live_ids()
    array([0, 2])
    """
    X = np.ascontiguousarray(forest.points.data[: forest.n_ids])
    tree = _core.build_dynamic(X, forest.metric, backend, n_threads)
    live = forest.is_live(np.arange(forest.n_ids))
    if not live.all():
        tree = _core.remove(tree, np.flatnonzero(~live), backend, n_threads)
    return tree


def compact(forest):
    """A copy of ``forest`` whose coordinate store holds this version's rows only.

    The trees are shared (read-only); used when pickling.
    """
    points = PointStore(forest.n_features, forest.dtype, 1)
    points.data = forest.points.data[: forest.n_ids].copy()
    points.n = forest.n_ids
    return BoxForest(forest.parts, points, forest.n_ids, forest.metric, forest.version,
                     forest.own_bytes)
