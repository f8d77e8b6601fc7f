"""PCCTTransformer: the KNeighborsTransformer contract on a cover tree."""

import numpy as np
from scipy.sparse import csr_array
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from ._backends import resolve_backend
from ._base import KNeighborsMixin, PCCTBase, _progress
from ._compat import StrOptions, _fit_context, align_sparse_api, check_is_fitted
from ._graph import graph_after_insert, graph_after_remove, knn_graph
from ._updates import UpdatesMixin

__all__ = ["PCCTTransformer"]


class PCCTTransformer(
    ClassNamePrefixFeaturesOutMixin, UpdatesMixin, KNeighborsMixin, TransformerMixin,
    PCCTBase,
):
    """Transform X into an exact (weighted) graph of k nearest neighbors.

    A drop-in replacement for :class:`sklearn.neighbors.KNeighborsTransformer`:
    the output is a CSR matrix of shape ``(n_queries, n_samples_fit)`` whose
    rows hold each query's neighbours in ascending distance. In
    ``mode='distance'`` every row stores ``n_neighbors + 1`` entries, because
    each training sample is its own first neighbour (stored as an explicit
    zero), which is what estimators with ``metric='precomputed'`` expect.

    Parameters
    ----------
    mode : {'distance', 'connectivity'}, default='distance'
        Type of returned matrix: 'connectivity' will return the connectivity
        matrix with ones and zeros, and 'distance' will return the distances
        between neighbors according to the given metric.
    n_neighbors : int, default=5
        Number of neighbors for each sample in the transformed sparse graph.
        For compatibility reasons, as each sample is considered as its own
        neighbor, one extra neighbor will be computed when mode ==
        'distance'. In this case, the sparse graph contains
        (n_neighbors + 1) neighbors.
    algorithm : {'auto', 'cover_tree', 'kd_tree'}, default='auto'
        The index that answers the k-nearest-neighbour queries and takes
        the updates; every choice gives the same answers. 'cover_tree': the
        compressed cover tree, any metric, built by ``fit`` and updated by
        batch insertion and deletion. 'kd_tree': a balanced kd-tree with
        tight boxes, for 'euclidean', 'manhattan' and 'chebyshev'
        (Minkowski with ``p`` in 1, 2, inf), built in milliseconds;
        it also answers radius queries; ``partial_fit`` adds a small
        kd-tree of the new samples and ``remove`` masks samples out, until a
        rebuild folds them in (the cover tree of a kd-tree fit is built only
        for ``tree_``). 'auto': the kd-tree for those metrics with at most 64
        features (its build takes milliseconds, and its searches were as
        fast as the cover tree's or faster on every data set measured), the
        cover tree otherwise.
    metric : str or callable, default='minkowski'
        A true metric, as for :class:`PCCTNeighbors`.
    p : float, default=2
        Power of the Minkowski metric.
    metric_params : dict, default=None
        Additional keyword arguments for the metric.
    n_jobs : int, default=None
        Number of threads for the parallel steps (the queries). ``None``
        means 1 unless in a :obj:`joblib.parallel_config` context; ``-1``
        means all processors.
    backend : {'auto', 'numba'}, default='auto'
        Which implementation runs the kernels.
    verbose : int, default=0
        Progress reports on standard error (a progress bar in a terminal or
        notebook, log lines otherwise): ``0`` is silent, ``1`` reports
        ``fit``, ``partial_fit``, ``kneighbors`` and the neighbour graph of
        ``fit_transform`` / ``graph_`` for 100,000 points or more, ``2``
        reports them at every size.

    Attributes
    ----------
    effective_metric_ : str or callable
        The distance metric used.
    effective_metric_params_ : dict
        Additional keyword arguments for the metric.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.
    n_samples_fit_ : int
        Number of samples in the fitted data.
    tree_ : TreeVersion
        The immutable cover tree.
    backend_ : str
        The backend that built the tree.

    See Also
    --------
    PCCTNeighbors : The neighbour queries themselves.
    sklearn.neighbors.KNeighborsTransformer : The scikit-learn transformer.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.manifold import Isomap
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_pcct import PCCTTransformer
    >>> X, _ = load_wine(return_X_y=True)
    >>> X.shape
    (178, 13)
    >>> PCCTTransformer(n_neighbors=5, mode='distance').fit_transform(X).shape
    (178, 178)

    The graph feeds estimators with ``metric='precomputed'``; give the
    transformer at least as many neighbours as the estimator uses:

    >>> estimator = make_pipeline(
    ...     PCCTTransformer(n_neighbors=10, mode='distance'),
    ...     Isomap(n_neighbors=10, n_components=3, metric='precomputed'))
    >>> X_embedded = estimator.fit_transform(X)
    >>> X_embedded.shape
    (178, 3)
    """

    _parameter_constraints = {
        **PCCTBase._parameter_constraints,
        "mode": [StrOptions({"distance", "connectivity"})],
    }

    def __init__(
        self,
        *,
        mode="distance",
        n_neighbors=5,
        algorithm="auto",
        metric="minkowski",
        p=2,
        metric_params=None,
        n_jobs=None,
        backend="auto",
        verbose=0,
    ):
        self.mode = mode
        self.n_neighbors = n_neighbors
        self.algorithm = algorithm
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.backend = backend
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the k-nearest neighbors transformer from the training dataset.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : PCCTTransformer
            The fitted k-nearest neighbors transformer.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_pcct import PCCTTransformer
        >>> X = np.random.default_rng(0).random((100, 3))
        >>> transformer = PCCTTransformer(n_neighbors=3).fit(X)
        >>> transformer.n_samples_fit_, transformer.n_features_in_
        (100, 3)
        """
        return super().fit(X)

    @property
    def _n_features_out(self):
        return self.n_samples_fit_

    def _graph_k(self):
        return self.n_neighbors + (self.mode == "distance")

    def _live_graph(self, state):
        """The dense live graph of ``state`` for the current parameters (cached)."""
        key = ("knn_graph", self._graph_k())
        graph = state.cache.get(key)
        if graph is None:
            k = self._graph_k()
            if k > state.n_live:
                # the error transform(X_live) would raise
                self._kneighbors(state, state.live_points(), k, False)
            with _progress(self, state.fitted_search_size, "graph_") as report:
                graph = knn_graph(
                    state, k, resolve_backend(state.backend), self._n_threads(),
                    reserve=k // 4 + 1, progress=report or None,
                )
            state.cache[key] = graph
        return graph

    @property
    def graph_(self):
        """The graph of the live samples, kept current by partial_fit / remove.

        Exactly what ``fit_transform`` returns for them, in id space: a CSR
        matrix of shape ``(n_samples_fit_, n_samples_fit_)`` whose row ``i``
        holds the neighbours of live sample ``i`` (itself included) and is
        empty for removed ids. Built on first access, then updated
        incrementally.
        """
        state = self._fitted_state()
        graph = self._live_graph(state)
        live = state.live_ids
        k = graph.k
        ind = graph.ind[live, :k].ravel()
        indptr = np.zeros(state.n_samples_fit + 1, dtype=np.int64)
        counts = np.zeros(state.n_samples_fit, dtype=np.int64)
        counts[live] = k
        np.cumsum(counts, out=indptr[1:])
        data = graph.dist[live, :k].ravel() if self.mode == "distance" else np.ones(ind.size)
        shape = (state.n_samples_fit, state.n_samples_fit)
        return align_sparse_api(csr_array((data, ind, indptr), shape=shape))

    def _after_update(self, old_state, new_state, inserted, removed):
        key = ("knn_graph", self._graph_k())
        graph = old_state.cache.get(key)
        if graph is None or graph.k > new_state.n_live:
            return
        backend = resolve_backend(new_state.backend)
        if inserted is not None:
            new_ids = np.arange(old_state.n_samples_fit, new_state.n_samples_fit)
            graph = graph_after_insert(
                graph, new_state, new_ids, inserted, backend, self._n_threads()
            )
        else:
            graph = graph_after_remove(
                graph, new_state, removed, new_state.points_of, backend,
                self._n_threads(),
            )
        new_state.cache[key] = graph

    def transform(self, X):
        """Compute the (weighted) graph of Neighbors for points in X.

        Parameters
        ----------
        X : array-like of shape (n_samples_transform, n_features)
            Sample data.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples_transform, n_samples_fit)
            Xt[i, j] is assigned the weight of edge that connects i to j.
            Only the neighbors have an explicit value: ``n_neighbors`` per
            row, ``n_neighbors + 1`` in 'distance' mode. On the fitted data
            each sample is its own nearest neighbour, so the diagonal is
            explicit, unless more than that many samples share its point:
            the row then holds the smallest indices among them (as in
            scikit-learn). The matrix is of CSR format.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_pcct import PCCTTransformer
        >>> X = np.random.default_rng(0).random((100, 3))
        >>> transformer = PCCTTransformer(n_neighbors=3, mode='distance').fit(X)
        >>> Xt = transformer.transform(X[:4])
        >>> Xt.shape, Xt.nnz  # n_neighbors + 1 entries per row in 'distance' mode
        ((4, 100), 16)
        """
        check_is_fitted(self)
        add_one = self.mode == "distance"
        return self.kneighbors_graph(
            X, mode=self.mode, n_neighbors=self.n_neighbors + add_one
        )

    def fit_transform(self, X, y=None):
        """Fit to data, then transform it.

        Fits transformer to X and y and returns a transformed version of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training set.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples, n_samples)
            Xt[i, j] is assigned the weight of edge that connects i to j.
            Only the neighbors have an explicit value: ``n_neighbors`` per
            row, ``n_neighbors + 1`` in 'distance' mode. On the fitted data
            each sample is its own nearest neighbour, so the diagonal is
            explicit, unless more than that many samples share its point:
            the row then holds the smallest indices among them (as in
            scikit-learn). The matrix is of CSR format.

        Examples
        --------
        >>> from sklearn_pcct import PCCTTransformer
        >>> Xt = PCCTTransformer(n_neighbors=1).fit_transform([[0.0], [1.0], [3.0]])
        >>> Xt.toarray()
        array([[0., 1., 0.],
               [1., 0., 0.],
               [0., 2., 0.]])
        >>> Xt.nnz  # each sample is its own first neighbour (explicit zero)
        6
        """
        return self.fit(X).graph_
