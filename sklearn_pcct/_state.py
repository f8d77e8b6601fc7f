"""The fitted state of an estimator: one immutable object per tree version.

An estimator holds exactly one :class:`FittedState`; ``partial_fit`` and
``remove`` build a new one from the current one and swap it in with a single
attribute assignment, so a query that read the state once sees one version
from start to end, never a mixture (no sklearn imports here).
"""

import threading

from . import _core, _forest
from ._backends import resolve_backend
from ._dynamic import compact

__all__ = ["FittedState", "UPDATE_LOCK"]

# fit, partial_fit and remove of all estimators are serialised (one writer per
# tree family, ALGORITHMS.md section 10); queries never take it.
UPDATE_LOCK = threading.RLock()


class FittedState:
    """A tree version with its lazily built read-optimised form.

    The estimator's index is a cover tree or a kd-tree index (``forest``),
    which answers k-NN and radius queries; its cover tree is built only
    when ``tree_`` asks for it.

    Parameters
    ----------
    dynamic : DynamicTree or None
        The cover tree version (immutable); with ``forest``, its cover
        tree if already built.
    backend : str
        Name of the backend that runs the kernels.
    tree : TreeVersion or None, default=None
        Its read-optimised form if already built (else built on first use).
    forest : BoxForest or None, default=None
        The kd-tree index version (immutable); k-NN queries use it.
    n_threads : int, default=1
        Threads for building the deferred cover tree.
    """

    def __init__(self, dynamic, backend, tree=None, *, forest=None, n_threads=1):
        if dynamic is None and forest is None:
            raise ValueError("a fitted state holds a cover tree or a kd-tree index")
        self._dynamic = dynamic
        self.backend = backend
        self._tree = tree
        self.forest = forest
        self._n_threads = n_threads
        self._live_ids = None
        self._lock = threading.Lock()
        self.cache = {}  # per-version derived data (e.g. a live kNN graph)

    @property
    def dynamic(self):
        """The :class:`~sklearn_pcct._dynamic.DynamicTree` of this version.

        Built on first use from a kd-tree index (the same ids): ``tree_``
        needs it.
        """
        if self._dynamic is None:
            with self._lock:
                if self._dynamic is None:
                    self._dynamic = _forest.build_dynamic(
                        self.forest, resolve_backend(self.backend), self._n_threads
                    )
        return self._dynamic

    @property
    def deferred(self):
        """True while the cover tree of a kd-tree index has not been built."""
        return self._dynamic is None

    @property
    def tree(self):
        """The :class:`~sklearn_pcct._tree.TreeVersion` of this version."""
        if self._tree is None:
            dynamic = self.dynamic
            with self._lock:
                if self._tree is None:
                    self._tree = _core.freeze(dynamic, resolve_backend(self.backend))
        return self._tree

    @property
    def query_index(self):
        """The index that answers k-NN queries: the kd-tree index, else the cover tree."""
        return self.forest if self.forest is not None else self.tree

    @property
    def fitted_search_size(self):
        """What :meth:`knn_fitted` reports its progress in: points or tree nodes."""
        return self.n_live if self.forest is not None else self.tree.n_nodes

    def knn_fitted(self, k, backend, n_threads=1, progress=None):
        """``(dist, ind)``: the ``k`` nearest live samples of each live sample.

        The sample itself included; rows in ascending live-id order.
        """
        return _core.knn_fitted(self.query_index, k, backend, n_threads, progress)

    def after_insert(self, X, backend, n_threads=1, progress=None):
        """The state of the version with the rows of ``X`` added (this one unchanged).

        The index that holds this version takes the update: the kd-tree
        index, else the cover tree (batch insertion). ``progress`` is
        called with the number of rows inserted so far.
        """
        if self.forest is not None:
            forest = _forest.insert(self.forest, X, backend)
            if progress is not None:
                progress(X.shape[0])
            return FittedState(None, self.backend, forest=forest, n_threads=n_threads)
        dynamic = _core.insert(self._dynamic, X, backend, n_threads, progress)
        return FittedState(dynamic, self.backend)

    def after_remove(self, ids, backend, n_threads=1):
        """The state of the version without the live samples ``ids`` (this one unchanged)."""
        if self.forest is not None:
            forest = _forest.remove(self.forest, ids, backend)
            return FittedState(None, self.backend, forest=forest, n_threads=n_threads)
        return FittedState(_core.remove(self._dynamic, ids, backend, n_threads), self.backend)

    @property
    def _index(self):
        return self.forest if self.forest is not None else self._dynamic

    @property
    def metric(self):
        """The :class:`~sklearn_pcct._metric.MetricSpec` of the points."""
        return self._index.metric

    @property
    def dtype(self):
        """The dtype the points are stored in."""
        return self._index.dtype

    def points_of(self, ids):
        """The (embedded) coordinates of the samples ``ids``."""
        return self._index.points.data[ids]

    def live_points(self):
        """The (embedded) live points, one row per live id in ascending order."""
        return self.points_of(self.live_ids)

    @property
    def live_ids(self):
        """Sorted live sample ids (read-only int64 array)."""
        if self._live_ids is None:
            ids = self._index.live_ids()
            ids.flags.writeable = False
            self._live_ids = ids
        return self._live_ids

    def is_live(self, ids):
        """Boolean mask: which of ``ids`` (each in ``[0, n_samples_fit)``) are live."""
        if self.forest is not None:
            return self.forest.is_live(ids)
        return self._dynamic.id_node(ids) >= 0

    @property
    def n_live(self):
        """Number of live samples."""
        return self._index.n_live

    @property
    def n_samples_fit(self):
        """Sample ids issued so far."""
        return self._index.n_ids

    @property
    def version(self):
        """Number of updates since the fit."""
        return self._index.version

    def __getstate__(self):
        # this version alone, compacted, with its read-optimised form when
        # built (loaded states answer at once; joblib memory-maps its arrays)
        forest = None if self.forest is None else _forest.compact(self.forest)
        dynamic = None if self._dynamic is None else compact(self._dynamic)
        return {"dynamic": dynamic, "backend": self.backend, "tree": self._tree,
                "forest": forest, "n_threads": self._n_threads, "cache": dict(self.cache)}

    def __setstate__(self, state):
        self.__init__(state["dynamic"], state["backend"], state["tree"],
                      forest=state["forest"], n_threads=state["n_threads"])
        self.cache.update(state["cache"])
