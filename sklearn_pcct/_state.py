"""The fitted state of an estimator: one immutable object per tree version.

An estimator holds exactly one :class:`FittedState`; ``partial_fit`` and
``remove`` build a new one from the current one and swap it in with a single
attribute assignment, so a query that read the state once sees one version
from start to end, never a mixture (no sklearn imports here).
"""

import threading

import numpy as np

from . import _core
from ._backends import resolve_backend
from ._dynamic import compact

__all__ = ["FittedState", "UPDATE_LOCK"]

# fit, partial_fit and remove of all estimators are serialised (one writer per
# tree family, ALGORITHMS.md section 10); queries never take it.
UPDATE_LOCK = threading.RLock()


class FittedState:
    """A tree version with its lazily built read-optimised form.

    Parameters
    ----------
    dynamic : DynamicTree or None
        The version (immutable); None for a fit whose cover tree is built
        only when something needs it (then ``points`` and ``metric`` are
        given, and ``box`` answers the k-nearest-neighbour queries).
    backend : str
        Name of the backend that runs the kernels.
    tree : TreeVersion or None, default=None
        Its read-optimised form if already built (else built on first use).
    box : BoxTree or None, default=None
        A kd-tree of the same points (a fit only): k-NN queries use it.
    points : ndarray of shape (n_samples, n_features), default=None
        The (embedded) fitted points, sample ``i`` in row ``i``; required
        when ``dynamic`` is None.
    metric : MetricSpec, default=None
        Their metric; required when ``dynamic`` is None.
    n_threads : int, default=1
        Threads for building the deferred cover tree.
    """

    def __init__(self, dynamic, backend, tree=None, *, box=None, points=None, metric=None,
                 n_threads=1):
        if dynamic is None and (points is None or metric is None):
            raise ValueError("a deferred cover tree needs the points and the metric")
        self._dynamic = dynamic
        self.backend = backend
        self._tree = tree
        self.box = box
        self._points = points
        self._metric = metric
        self._n_threads = n_threads
        self._live_ids = None
        self._lock = threading.Lock()
        self.cache = {}  # per-version derived data (e.g. a live kNN graph)

    @property
    def dynamic(self):
        """The :class:`~sklearn_pcct._dynamic.DynamicTree` of this version.

        Built on first use for a fit that deferred it (a kd-tree answers
        its k-NN queries): radius queries, updates and ``tree_`` need it.
        """
        if self._dynamic is None:
            with self._lock:
                if self._dynamic is None:
                    self._dynamic = _core.build_dynamic(
                        self._points, self._metric, resolve_backend(self.backend),
                        self._n_threads,
                    )
        return self._dynamic

    @property
    def deferred(self):
        """True while the cover tree of a kd-tree fit has not been built."""
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
        """The index that answers k-NN queries: the kd-tree of a fit, else the cover tree."""
        return self.box if self.box is not None else self.tree

    @property
    def fitted_search_size(self):
        """What :meth:`knn_fitted` reports its progress in: points or tree nodes."""
        return self.n_live if self.box is not None else self.tree.n_nodes

    def knn_fitted(self, k, backend, n_threads=1, progress=None):
        """``(dist, ind)``: the ``k`` nearest live samples of each live sample.

        The sample itself included; rows in ascending live-id order.
        """
        if self.box is not None:  # a kd-tree fit: the points are rows 0 .. n - 1
            return _core.knn(self.box, self.live_points(), k, backend, n_threads, progress)
        return _core.knn_fitted(self.tree, k, backend, n_threads, progress)

    @property
    def metric(self):
        """The :class:`~sklearn_pcct._metric.MetricSpec` of the points."""
        return self._metric if self._dynamic is None else self._dynamic.metric

    @property
    def dtype(self):
        """The dtype the points are stored in."""
        return self._points.dtype if self._dynamic is None else self._dynamic.dtype

    def live_points(self):
        """The (embedded) live points, one row per live id in ascending order."""
        if self._dynamic is None:
            return self._points
        return self._dynamic.points.data[self.live_ids]

    @property
    def live_ids(self):
        """Sorted live sample ids (read-only int64 array)."""
        if self._live_ids is None:
            if self._dynamic is None:
                ids = np.arange(self._points.shape[0], dtype=np.int64)
            else:
                ids = self._dynamic.live_ids()
            ids.flags.writeable = False
            self._live_ids = ids
        return self._live_ids

    @property
    def n_live(self):
        """Number of live samples."""
        return self._points.shape[0] if self._dynamic is None else self._dynamic.n_live

    @property
    def n_samples_fit(self):
        """Sample ids issued so far."""
        return self._points.shape[0] if self._dynamic is None else self._dynamic.n_ids

    @property
    def version(self):
        """Number of updates since the fit."""
        return 0 if self._dynamic is None else self._dynamic.version

    def __getstate__(self):
        # this version alone, compacted, with its read-optimised form when
        # built (loaded states answer at once; joblib memory-maps its arrays)
        if self._dynamic is None:
            return {"dynamic": None, "backend": self.backend, "tree": None, "box": self.box,
                    "points": self._points, "metric": self._metric,
                    "n_threads": self._n_threads, "cache": dict(self.cache)}
        return {"dynamic": compact(self._dynamic), "backend": self.backend,
                "tree": self._tree, "box": self.box, "cache": dict(self.cache)}

    def __setstate__(self, state):
        self.__init__(
            state["dynamic"], state["backend"], state["tree"], box=state.get("box"),
            points=state.get("points"), metric=state.get("metric"),
            n_threads=state.get("n_threads", 1),
        )
        self.cache.update(state["cache"])
