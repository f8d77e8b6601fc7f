"""Shared estimator machinery: fitting and the neighbour query methods.

The methods reproduce :class:`sklearn.neighbors.NearestNeighbors` exactly
(signatures, error messages, ``X=None`` self-exclusion with its duplicate
corner case, output dtypes, CSR shapes); only the search underneath differs.
"""

import numbers
from numbers import Integral, Real

import numpy as np
from joblib import effective_n_jobs
from scipy.sparse import csr_array
from sklearn.base import BaseEstimator

from . import _core, _forest
from ._backends import BACKENDS, resolve_backend
from ._compat import (
    Interval,
    StrOptions,
    _fit_context,
    align_sparse_api,
    check_is_fitted,
    validate_data,
)
from ._metric import check_features, embed, resolve_metric
from ._progress import progress
from ._state import UPDATE_LOCK, FittedState

__all__ = ["PCCTBase", "KNeighborsMixin", "RadiusNeighborsMixin"]

_DTYPES = [np.float64, np.float32]


def _progress(est, total, step):
    """The progress reporter of ``est``'s ``step`` (e.g. ``"fit"``) on ``total`` points."""
    return progress(getattr(est, "verbose", 0), total, f"{type(est).__name__}.{step}")


def _split_rows(values, indptr):
    """Rows of a CSR layout as an object array of arrays (none for no rows)."""
    parts = np.split(values, indptr[1:-1]) if len(indptr) > 1 else []
    out = np.empty(len(parts), dtype=object)
    for i, part in enumerate(parts):
        out[i] = part
    return out


class PCCTBase(BaseEstimator):
    """Parameters, fitting and tags shared by the PCCT estimators."""

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [str, callable],
        "p": [Interval(Real, 0, None, closed="right")],
        "metric_params": [dict, None],
        "n_jobs": [Integral, None],
        "algorithm": [StrOptions({"auto", "cover_tree", "kd_tree"})],
        "backend": [StrOptions({"auto"} | set(BACKENDS))],
        "verbose": ["verbose"],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags

    def _n_threads(self):
        return max(1, int(effective_n_jobs(self.n_jobs)))


    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the cover tree of the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data stays float32; anything else is
            converted to float64.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_pcct import PCCTNeighbors
        >>> X = np.random.default_rng(0).random((100, 3))
        >>> nn = PCCTNeighbors(n_neighbors=3).fit(X)
        >>> nn.n_samples_fit_, nn.n_features_in_
        (100, 3)
        >>> nn.kneighbors(X[:2])[1].shape
        (2, 3)
        """
        # validate_data(reset=True) sets the feature attributes before it
        # checks the data; a failed fit must leave a fitted estimator as it was
        saved = {
            key: self.__dict__[key]
            for key in ("n_features_in_", "feature_names_in_")
            if key in self.__dict__
        }
        try:
            with UPDATE_LOCK:
                return self._fit(X)
        except BaseException:
            for key in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(key, None)
            self.__dict__.update(saved)
            raise

    def _fit(self, X):
        spec, effective_metric, effective_params = resolve_metric(
            self.metric, self.p, self.metric_params
        )
        X = validate_data(self, X, accept_sparse=False, dtype=_DTYPES, order="C")
        check_features(spec, X.shape[1])
        X = embed(X, spec)
        backend = resolve_backend(self.backend, X)
        if _core.uses_kd_tree(self.algorithm, spec, X.shape[1], backend):
            with _progress(self, X.shape[0], "fit") as report:
                forest = _forest.build_forest(X, spec, backend)
                if report:
                    report(X.shape[0])
            state = FittedState(None, backend.name, forest=forest, n_threads=self._n_threads())
        else:
            with _progress(self, X.shape[0], "fit") as report:
                dynamic = _core.build_dynamic(X, spec, backend, self._n_threads(), report)
            state = FittedState(dynamic, backend.name, _core.freeze(dynamic, backend))
        self.effective_metric_ = effective_metric
        self.effective_metric_params_ = effective_params
        self.backend_ = backend.name
        self._pcct_state_ = state
        return self

    # The fitted tree, its ids and sizes are read from one immutable state
    # object, swapped atomically by partial_fit / remove (see _updates.py).
    @property
    def tree_(self):
        """The read-optimised cover tree of the current version (TreeVersion)."""
        return self._fitted_state().tree

    @property
    def n_samples_fit_(self):
        """Number of sample ids issued since the last fit (removed ones included)."""
        return self._fitted_state().n_samples_fit

    @property
    def live_ids_(self):
        """Sorted ids of the fitted samples that have not been removed."""
        return self._fitted_state().live_ids

    @property
    def version_(self):
        """Number of updates (partial_fit / remove) since the last fit."""
        return self._fitted_state().version

    def _fitted_state(self):
        try:
            return self.__dict__["_pcct_state_"]
        except KeyError:
            raise AttributeError("this estimator is not fitted yet") from None

    def _check_fitted(self):
        check_is_fitted(self)
        return self._pcct_state_

    def _validate_queries(self, X):
        return validate_data(
            self, X, accept_sparse=False, dtype=_DTYPES, order="C", reset=False
        )

    def _backend(self):
        return resolve_backend(self.backend_)


class KNeighborsMixin:
    """``kneighbors`` and ``kneighbors_graph`` on a fitted cover tree."""

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the K-neighbors of a point.

        Returns indices of and distances to the neighbors of each point.

        Parameters
        ----------
        X : {array-like} of shape (n_queries, n_features), default=None
            The query point or points. If not provided, neighbors of each
            indexed point are returned. In this case, the query point is not
            considered its own neighbor.
        n_neighbors : int, default=None
            Number of neighbors required for each sample. The default is the
            value passed to the constructor.
        return_distance : bool, default=True
            Whether or not to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Distances to the neighbors, sorted ascending (ties by index);
            only present if ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Indices of the nearest points in the population matrix.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> samples = [[0., 0., 0.], [0., .5, 0.], [1., 1., .5]]
        >>> neigh = PCCTNeighbors(n_neighbors=1).fit(samples)
        >>> neigh.kneighbors([[1., 1., 1.]])
        (array([[0.5]]), array([[2]]))
        """
        return self._kneighbors(self._check_fitted(), X, n_neighbors, return_distance)

    def _kneighbors(self, state, X, n_neighbors, return_distance):
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        elif n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors:d}")
        elif not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        n_neighbors = int(n_neighbors)
        n_live = state.n_live
        query_is_train = X is None
        if query_is_train:
            n_neighbors += 1
            n_queries = n_live
        else:
            X = embed(self._validate_queries(X), state.metric)
            n_queries = X.shape[0]
        if n_neighbors > n_live:
            if query_is_train:
                n_neighbors -= 1
                inequality_str = "n_neighbors < n_samples_fit"
            else:
                inequality_str = "n_neighbors <= n_samples_fit"
            fitted = f"n_samples_fit = {n_live}"
            if n_live != state.n_samples_fit:  # after removals: say what counts
                fitted = f"live samples = {n_live} (n_samples_fit = {state.n_samples_fit})"
            raise ValueError(
                f"Expected {inequality_str}, but "
                f"n_neighbors = {n_neighbors}, {fitted}, "
                f"n_samples = {n_queries}"
            )
        backend = self._backend()
        if not query_is_train:
            with _progress(self, n_queries, "kneighbors") as report:
                dist, ind = _core.knn(
                    state.query_index, X, n_neighbors, backend, self._n_threads(),
                    report or None,
                )
            return (dist, ind) if return_distance else ind
        with _progress(self, state.fitted_search_size, "kneighbors") as report:
            dist, ind = state.knn_fitted(n_neighbors, backend, self._n_threads(), report or None)
        # Drop the sample itself; if more duplicates than neighbours pushed it
        # out of the first n_neighbors + 1, drop the first one instead (the
        # scikit-learn rule). Rows are the live ids in ascending order.
        sample_mask = ind != state.live_ids[:, None]
        dup_gr_nbrs = np.all(sample_mask, axis=1)
        sample_mask[:, 0][dup_gr_nbrs] = False
        ind = np.reshape(ind[sample_mask], (n_queries, n_neighbors - 1))
        if not return_distance:
            return ind
        dist = np.reshape(dist[sample_mask], (n_queries, n_neighbors - 1))
        return dist, ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Compute the (weighted) graph of k-Neighbors for points in X.

        Parameters
        ----------
        X : {array-like} of shape (n_queries, n_features), default=None
            The query point or points. If not provided, neighbors of each
            indexed point are returned. In this case, the query point is not
            considered its own neighbor.
        n_neighbors : int, default=None
            Number of neighbors for each sample. The default is the value
            passed to the constructor.
        mode : {'connectivity', 'distance'}, default='connectivity'
            Type of returned matrix: 'connectivity' will return the
            connectivity matrix with ones and zeros, in 'distance' the edges
            are distances between points.

        Returns
        -------
        A : sparse-matrix of shape (n_queries, n_samples_fit)
            CSR matrix; ``A[i, j]`` is the weight of the edge from ``i`` to
            ``j``. Each row stores its neighbours in ascending distance,
            explicit zero distances included.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> neigh = PCCTNeighbors(n_neighbors=2).fit([[0], [3], [1]])
        >>> neigh.kneighbors_graph([[0], [3], [1]]).toarray()
        array([[1., 0., 1.],
               [0., 1., 1.],
               [1., 0., 1.]])
        """
        state = self._check_fitted()
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        if mode == "connectivity":
            A_ind = self._kneighbors(state, X, n_neighbors, return_distance=False)
            A_data = np.ones(A_ind.size)
        elif mode == "distance":
            A_data, A_ind = self._kneighbors(state, X, n_neighbors, return_distance=True)
            A_data = np.ravel(A_data)
        else:
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        n_queries, k = A_ind.shape
        A_indptr = np.arange(0, n_queries * k + 1, k)
        if X is None:
            A_indptr = _rows_at_live_ids(state, A_indptr)
            n_queries = state.n_samples_fit
        graph = csr_array(
            (A_data, A_ind.ravel(), A_indptr), shape=(n_queries, state.n_samples_fit)
        )
        return align_sparse_api(graph)


def _rows_at_live_ids(state, indptr):
    """Row pointers of the live rows spread over all ids (removed rows empty)."""
    if state.n_live == state.n_samples_fit:
        return indptr
    counts = np.zeros(state.n_samples_fit, dtype=np.int64)
    counts[state.live_ids] = np.diff(indptr)
    return np.concatenate(([0], np.cumsum(counts)))


class RadiusNeighborsMixin:
    """``radius_neighbors`` and ``radius_neighbors_graph`` on a fitted tree."""

    def _radius_csr(self, state, X, radius):
        """CSR ``(indptr, ind, dist)`` of the radius neighbours, self excluded for X=None.

        With ``X=None`` the rows are the live ids in ascending order.
        """
        if radius is None:
            radius = self.radius
        radius_arr = np.asarray(radius, dtype=np.float64)
        if radius_arr.ndim > 1 or np.any(np.isnan(radius_arr)) or np.any(radius_arr < 0):
            raise ValueError(
                f"radius must be a non-negative number (or one per query), got {radius!r}"
            )
        backend = self._backend()
        if X is not None:
            X = embed(self._validate_queries(X), state.metric)
            if radius_arr.ndim == 1 and radius_arr.shape[0] != X.shape[0]:
                raise ValueError(
                    f"radius has {radius_arr.shape[0]} entries for {X.shape[0]} queries"
                )
            return _core.radius(state.query_index, X, radius_arr, backend, self._n_threads())
        if radius_arr.ndim != 0:
            raise ValueError("radius must be a scalar when X is None")
        indptr, ind, dist = _core.radius_fitted(
            state.query_index, float(radius_arr), backend, self._n_threads()
        )
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        keep = ind != state.live_ids[rows]
        counts = np.bincount(rows[keep], minlength=len(indptr) - 1)
        indptr = np.concatenate(([0], np.cumsum(counts)))
        return indptr, ind[keep], dist[keep]

    @staticmethod
    def _sort_rows(indptr, ind, dist):
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        order = np.lexsort((ind, dist, rows))
        return ind[order], dist[order]

    def radius_neighbors(
        self, X=None, radius=None, return_distance=True, sort_results=False
    ):
        """Find the neighbors within a given radius of a point or points.

        Return the indices and distances of each point from the dataset lying
        in a ball with size ``radius`` around the points of the query array.
        Points lying on the boundary are included in the results.

        Parameters
        ----------
        X : {array-like} of shape (n_queries, n_features), default=None
            The query point or points. If not provided, neighbors of each
            indexed point are returned. In this case, the query point is not
            considered its own neighbor.
        radius : float or array-like of shape (n_queries,), default=None
            Limiting distance of neighbors to return. The default is the
            value passed to the constructor.
        return_distance : bool, default=True
            Whether or not to return the distances.
        sort_results : bool, default=False
            If True, the distances and indices will be sorted by increasing
            distances (ties by index) before being returned.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,) of arrays
            Array of arrays representing the distances to each point, only
            present if ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries,) of arrays
            An array of arrays of indices of the fitted points that lie
            within a ball of size ``radius`` around the query points.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_pcct import PCCTNeighbors
        >>> samples = [[0., 0., 0.], [0., .5, 0.], [1., 1., .5]]
        >>> neigh = PCCTNeighbors(radius=1.6).fit(samples)
        >>> dist, ind = neigh.radius_neighbors([[1., 1., 1.]], sort_results=True)
        >>> print(dist[0], ind[0])
        [0.5 1.5] [2 1]
        """
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        indptr, ind, dist = self._radius_csr(self._check_fitted(), X, radius)
        if sort_results:
            ind, dist = self._sort_rows(indptr, ind, dist)
        neigh_ind = _split_rows(ind, indptr)
        if not return_distance:
            return neigh_ind
        return _split_rows(dist, indptr), neigh_ind

    def radius_neighbors_graph(
        self, X=None, radius=None, mode="connectivity", sort_results=False
    ):
        """Compute the (weighted) graph of Neighbors for points in X.

        Neighborhoods are restricted the points at a distance lower than
        radius.

        Parameters
        ----------
        X : {array-like} of shape (n_queries, n_features), default=None
            The query point or points. If not provided, neighbors of each
            indexed point are returned. In this case, the query point is not
            considered its own neighbor.
        radius : float, default=None
            Radius of neighborhoods. The default is the value passed to the
            constructor.
        mode : {'connectivity', 'distance'}, default='connectivity'
            Type of returned matrix: 'connectivity' will return the
            connectivity matrix with ones and zeros, in 'distance' the edges
            are distances between points.
        sort_results : bool, default=False
            If True, in each row of the result, the non-zero entries will be
            sorted by increasing distances. Only used with mode='distance'.

        Returns
        -------
        A : sparse-matrix of shape (n_queries, n_samples_fit)
            CSR matrix; ``A[i, j]`` is the weight of the edge from ``i`` to
            ``j``, explicit zero distances included.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> neigh = PCCTNeighbors(radius=1.5).fit([[0], [3], [1]])
        >>> neigh.radius_neighbors_graph([[0], [3], [1]]).toarray()
        array([[1., 0., 1.],
               [0., 1., 0.],
               [1., 0., 1.]])
        """
        if mode not in ("connectivity", "distance"):
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", or '
                f'"distance" but got "{mode}" instead'
            )
        state = self._check_fitted()
        indptr, ind, dist = self._radius_csr(state, X, radius)
        if mode == "distance":
            if sort_results:
                ind, dist = self._sort_rows(indptr, ind, dist)
            data = dist
        else:
            data = np.ones(ind.shape[0])
        if X is None:
            indptr = _rows_at_live_ids(state, indptr)
        n_queries = len(indptr) - 1
        graph = csr_array((data, ind, indptr), shape=(n_queries, state.n_samples_fit))
        return align_sparse_api(graph)
