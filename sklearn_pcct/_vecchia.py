"""Maximin orderings and Vecchia conditioning sets (ALGORITHMS.md section 9).

A Vecchia approximation of a Gaussian process orders the points and
conditions each one on its nearest *earlier* points. This module computes
the exact maximin (farthest-point) ordering through a tree
(:func:`maximin_ordering`), the conditioning sets for any ordering
(:func:`vecchia_neighbors`) and the matching sparse graphs
(:func:`kneighbors_graph`), in every metric of the package, correlation
metrics included.
"""

import numbers

import numpy as np
from joblib import effective_n_jobs
from scipy.sparse import csr_array
from sklearn.utils import check_array, check_random_state

from . import _core
from ._backends import resolve_backend
from ._compat import InvalidParameterError, align_sparse_api
from ._correlation import ResidualCorrelationDistance
from ._metric import check_features, embed, resolve_metric
from ._neighbors import PCCTNeighbors
from ._progress import progress

__all__ = ["maximin_ordering", "vecchia_neighbors", "kneighbors_graph"]

_DTYPES = [np.float64, np.float32]
_ALGORITHMS = ("auto", "cover_tree", "kd_tree", "brute")
# "auto" computes the conditioning sets of a residual correlation metric by
# brute force up to this many points: with many inducing points most pairs
# are nearly uncorrelated, no tree bound prunes, and the tree evaluates about
# n^2 distances where brute force needs n^2 / 2 bounds and ~k exact distances
# per point (benchmarks/RESULTS.md, "Residual correlation").
_BRUTE_MAX_SAMPLES = 50_000


def _check_algorithm(algorithm):
    if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
        raise InvalidParameterError(
            f"The 'algorithm' parameter must be a str among {list(_ALGORITHMS)}. "
            f"Got {algorithm!r} instead."
        )


def _uses_brute(algorithm, spec, n_samples):
    """Whether the conditioning sets are computed by brute force."""
    if algorithm == "brute":
        return True
    return (
        algorithm == "auto"
        and isinstance(spec.func, ResidualCorrelationDistance)
        and spec.w is not None
        and spec.w[0] >= 0  # a kernel on the Numba fast path
        and n_samples <= _BRUTE_MAX_SAMPLES
    )


class _Problem:
    """Validated data, metric and algorithm; the tree is built on first use."""

    def __init__(self, X, metric, p, metric_params, n_jobs, verbose=0, name="",
                 algorithm="auto"):
        _check_algorithm(algorithm)
        self.spec, _, _ = resolve_metric(metric, p, metric_params)
        self.X = check_array(X, accept_sparse=False, dtype=_DTYPES, order="C")
        check_features(self.spec, self.X.shape[1])
        self.Xe = embed(self.X, self.spec)
        self.backend = resolve_backend("auto", self.Xe)
        self.n_threads = effective_n_jobs(n_jobs)
        self.verbose, self.name, self.algorithm = verbose, name, algorithm
        # raises now for a kd_tree request with an unsupported metric
        # the ordering of a brute-force call still needs the index "auto" picks
        self.kd = _core.uses_kd_tree(
            "auto" if algorithm == "brute" else algorithm, self.spec, self.Xe.shape[1],
            self.backend,
        )
        self.brute = _uses_brute(algorithm, self.spec, self.X.shape[0])
        self._tree = None

    @property
    def tree(self):
        if self._tree is None:
            n = self.X.shape[0]
            if self.kd:
                with _progress(self.verbose, n, self.name, "kd-tree") as report:
                    self._tree = _core.build_box(self.Xe, self.spec, self.backend)
                    if report:
                        report(n)
            else:
                with _progress(self.verbose, n, self.name, "cover tree") as report:
                    self._tree = _core.build(
                        self.Xe, self.spec, self.backend, self.n_threads, report
                    )
        return self._tree


def _progress(verbose, total, name, step, unit="points"):
    """Reports of one step of ``name``, at every size when ``verbose > 0``."""
    return progress(verbose, total, f"{name}: {step}", unit=unit, min_total=0)


def _maximin(pb, first):
    with _progress(pb.verbose, pb.Xe.shape[0], pb.name, "maximin ordering") as report:
        return _core.maximin(pb.tree, pb.Xe, first, pb.backend, report or None)


def _first_index(first, pb, random_state):
    X = pb.X
    n = X.shape[0]
    if isinstance(first, str):
        if first == "center":
            center = X.mean(axis=0, dtype=np.float64)[None, :].astype(X.dtype)
            center = embed(center, pb.spec).astype(pb.Xe.dtype)
            return int(_core.knn(pb.tree, center, 1, pb.backend)[1][0, 0])
        if first == "random":
            return int(check_random_state(random_state).randint(n))
        raise ValueError(
            f"first must be 'center', 'random' or a sample index, got {first!r}"
        )
    if isinstance(first, numbers.Integral) and not isinstance(first, bool):
        if not 0 <= first < n:
            raise ValueError(f"first={first} is not a sample index in [0, {n})")
        return int(first)
    raise ValueError(f"first must be 'center', 'random' or a sample index, got {first!r}")


def maximin_ordering(
    X, *, metric="euclidean", metric_params=None, first="center", random_state=None,
    algorithm="auto", n_jobs=None, verbose=0,
):
    """Exact maximin (farthest-point) ordering and its lengthscales.

    The first point is ``first``; each next point is the one farthest from
    the points already chosen (ties: smaller index). A point's lengthscale
    is its distance to the points before it, so lengthscales never
    increase. Computed through the tree with a max-heap and radius searches
    (Schafer, Katzfuss and Owhadi's algorithm), not in ``O(n^2)``: the
    cover tree, or in low dimensions a kd-tree whose nodes keep their
    largest key (a tournament tree) so settled regions cost nothing.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points; finite values.
    metric : str, callable or correlation metric, default="euclidean"
        Any metric accepted by :class:`PCCTNeighbors`, including
        :class:`KernelCorrelationDistance` and
        :class:`ResidualCorrelationDistance`.
    metric_params : dict, default=None
        Extra metric parameters (``p`` and ``w`` for ``"minkowski"``).
    first : {"center", "random"} or int, default="center"
        The first point: the one closest to the coordinate mean (ties:
        smaller index), a random one drawn with ``random_state``, or a
        sample index.
    random_state : int, RandomState instance or None, default=None
        Used when ``first="random"``.
    algorithm : {"auto", "cover_tree", "kd_tree"}, default="auto"
        The index the search runs on; every choice gives the same answer.
        ``"kd_tree"``: a balanced kd-tree with tight boxes, for metrics with
        a distance-to-box bound (euclidean, manhattan, chebyshev); built in
        milliseconds and several times faster (measured up to 50 features).
        ``"cover_tree"``: the compressed cover tree, any metric. ``"auto"``:
        the kd-tree for those metrics with at most 64 features, the cover
        tree otherwise.
    n_jobs : int, default=None
        Threads for building the tree (the ordering itself is sequential).
    verbose : int, default=0
        ``> 0`` reports the progress of each step (building the tree, the
        ordering) on standard error: a progress bar in a terminal or
        notebook, log lines otherwise.

    Returns
    -------
    order : ndarray of shape (n_samples,), int64
        The ordering, a permutation of ``range(n_samples)``.
    lengthscales : ndarray of shape (n_samples,), float64
        ``lengthscales[r]`` is the distance of ``X[order[r]]`` to
        ``X[order[:r]]``; ``inf`` for ``r = 0``. Non-increasing; 0 for
        duplicates of earlier points.

    See Also
    --------
    vecchia_neighbors : Conditioning sets for an ordering.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct import maximin_ordering
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    >>> order, lengthscales = maximin_ordering(X)
    >>> order
    array([2, 0, 4, 1, 3])
    >>> lengthscales
    array([inf,  2.,  2.,  1.,  1.])
    """
    if algorithm == "brute":
        raise InvalidParameterError(
            "The 'algorithm' parameter of maximin_ordering must be a str among "
            "['auto', 'cover_tree', 'kd_tree'] (the ordering always runs on a tree). "
            "Got 'brute' instead."
        )
    pb = _Problem(X, metric, 2, metric_params, n_jobs, verbose, "maximin_ordering", algorithm)
    first = _first_index(first, pb, random_state)
    return _maximin(pb, first)


def _order_from(ordering, pb, random_state):
    n = pb.X.shape[0]
    if isinstance(ordering, str):
        if ordering == "maximin":
            return _maximin(pb, _first_index("center", pb, None))[0]
        if ordering == "none":
            return np.arange(n)
        if ordering == "random":
            return check_random_state(random_state).permutation(n)
        raise ValueError(
            "ordering must be 'maximin', 'none', 'random' or a permutation of "
            f"range(n_samples), got {ordering!r}"
        )
    order = np.asarray(ordering)
    if order.ndim != 1 or order.shape[0] != n:
        raise ValueError(
            f"ordering must be a permutation of range({n}), got an array of shape "
            f"{order.shape}"
        )
    if not np.issubdtype(order.dtype, np.integer):
        raise ValueError(
            f"ordering must be a permutation of range({n}) (integers), got dtype {order.dtype}"
        )
    order = order.astype(np.int64)
    seen = np.zeros(n, dtype=bool)
    valid = (order >= 0) & (order < n)
    if np.all(valid):
        seen[order] = True
    if not np.all(valid) or not np.all(seen):
        raise ValueError(
            f"ordering must be a permutation of range({n}): it has repeated or "
            "out-of-range entries"
        )
    return order


def _ordering_and_sets(ordering, pb, random_state, n_neighbors):
    """``(order, dist, ind)``: :func:`_order_from`, then :func:`_conditioning`.

    A maximin ordering on a tree with no progress reports asks the backend
    for both at once (it may answer the sets of the ranks already ordered
    while the ordering goes on); the answers are the same.
    """
    n = pb.X.shape[0]
    k = min(n_neighbors, n - 1)
    if isinstance(ordering, str) and ordering == "maximin" and not pb.brute \
            and pb.verbose == 0 and k >= 1:
        first = _first_index("center", pb, None)
        order, _, d, i = _core.maximin_conditioning(pb.tree, pb.Xe, first, k, pb.backend,
                                                    pb.n_threads)
        return (order, *_padded(d, i, n_neighbors))
    order = _order_from(ordering, pb, random_state)
    return (order, *_conditioning(pb, order, n_neighbors))


def _padded(d, i, n_neighbors):
    """``(dist, ind)`` widened to ``n_neighbors`` columns with ``inf`` / ``-1``."""
    k = d.shape[1]
    if k == n_neighbors:  # the usual case: no padding columns
        return d, i
    dist = np.full((d.shape[0], n_neighbors), np.inf)
    ind = np.full((d.shape[0], n_neighbors), -1, dtype=np.int64)
    dist[:, :k] = d
    ind[:, :k] = i
    return dist, ind


def _check_n_neighbors(n_neighbors):
    # scikit-learn's parameter error: both a ValueError and a TypeError
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral):
        raise InvalidParameterError(
            f"The 'n_neighbors' parameter must be an int in the range [1, inf). "
            f"Got {n_neighbors!r} instead."
        )
    if n_neighbors < 1:
        raise InvalidParameterError(
            f"The 'n_neighbors' parameter must be an int in the range [1, inf). "
            f"Got {n_neighbors!r} instead."
        )
    return int(n_neighbors)


def _conditioning(pb, order, n_neighbors):
    """Rows of ``(dist, ind)`` in rank order, ``n_neighbors`` wide, padded."""
    n = pb.X.shape[0]
    k = min(n_neighbors, n - 1)
    if k < 1:
        return np.full((n, n_neighbors), np.inf), np.full((n, n_neighbors), -1, dtype=np.int64)
    step = "conditioning sets (brute force)" if pb.brute else "conditioning sets"
    with _progress(pb.verbose, n, pb.name, step) as report:
        if pb.brute:
            d, i = _core.ordered_knn_brute(
                pb.Xe, order, k, pb.spec, pb.backend, pb.n_threads, report or None
            )
        else:
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
            d, i = _core.ordered_knn(  # rows in rank order
                pb.tree, pb.Xe, rank, rank, k, pb.backend, pb.n_threads, report or None, rank
            )
    return _padded(d, i, n_neighbors)


def vecchia_neighbors(
    X, n_neighbors, *, ordering="maximin", metric="euclidean", metric_params=None,
    algorithm="auto", n_jobs=None, random_state=None, return_distance=False, verbose=0,
):
    """Vecchia conditioning sets: each point's nearest earlier points.

    For the ordering ``order``, row ``r`` lists the ``n_neighbors`` points
    of ``X[order[:r]]`` nearest to ``X[order[r]]``. Exact, and parallel over
    points: every query searches a tree of all points and prunes subtrees
    whose smallest rank is not earlier than the query's (or, with
    ``algorithm="brute"``, scans all its predecessors).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points; finite values.
    n_neighbors : int
        Size ``m`` of the conditioning sets (>= 1).
    ordering : {"maximin", "none", "random"} or array-like of shape (n_samples,), \
            default="maximin"
        ``"maximin"``: :func:`maximin_ordering` from the centre; ``"none"``:
        the row order; ``"random"``: a permutation drawn with
        ``random_state``; or an explicit permutation of ``range(n_samples)``.
    metric : str, callable or correlation metric, default="euclidean"
        Any metric accepted by :class:`PCCTNeighbors`, including
        :class:`KernelCorrelationDistance` and
        :class:`ResidualCorrelationDistance`.
    metric_params : dict, default=None
        Extra metric parameters.
    algorithm : {"auto", "cover_tree", "kd_tree", "brute"}, default="auto"
        The index the search runs on; every choice gives the same answer.
        ``"kd_tree"``: a balanced kd-tree with tight boxes, for metrics with
        a distance-to-box bound (euclidean, manhattan, chebyshev); built in
        milliseconds and several times faster in low dimensions.
        ``"cover_tree"``: the compressed cover tree, any metric.
        ``"brute"``: the conditioning sets compare every point with all its
        predecessors (``n^2 / 2`` pairs; a maximin ordering still runs on
        the tree of ``"auto"``), for metrics no tree prunes, such as
        :class:`ResidualCorrelationDistance` with many inducing points.
        ``"auto"``: brute force for a residual correlation metric with a
        fast-path kernel up to 50,000 points; otherwise the kd-tree for box
        metrics with at most 64 features, the cover tree otherwise.
    n_jobs : int, default=None
        Threads (scikit-learn semantics: ``-1`` uses all cores).
    random_state : int, RandomState instance or None, default=None
        Used by ``ordering="random"``.
    return_distance : bool, default=False
        Also return the distances.
    verbose : int, default=0
        ``> 0`` reports the progress of each step (building the tree, the
        ordering, the conditioning sets) on standard error: a progress bar
        in a terminal or notebook, log lines otherwise.

    Returns
    -------
    order : ndarray of shape (n_samples,), int64
        The ordering used.
    neighbors : ndarray of shape (n_samples, n_neighbors), int64
        Row ``r``: original indices of the nearest points to ``X[order[r]]``
        among ``X[order[:r]]``, sorted by (distance, index), padded with
        ``-1`` (row 0 is all ``-1``).
    distances : ndarray of shape (n_samples, n_neighbors), float64
        Only with ``return_distance=True``; padded with ``inf``.

    See Also
    --------
    maximin_ordering : The default ordering.
    kneighbors_graph : The same sets as a sparse graph.

    Notes
    -----
    Prediction sets (new points conditioned on all the data) are plain
    k-nearest neighbours: ``PCCTNeighbors(n_neighbors=m).fit(X).kneighbors(X_new)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct import vecchia_neighbors
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    >>> order, nbrs = vecchia_neighbors(X, 2, ordering="none")
    >>> nbrs
    array([[-1, -1],
           [ 0, -1],
           [ 1,  0],
           [ 2,  1],
           [ 3,  2]])
    """
    n_neighbors = _check_n_neighbors(n_neighbors)
    pb = _Problem(X, metric, 2, metric_params, n_jobs, verbose, "vecchia_neighbors", algorithm)
    order, dist, ind = _ordering_and_sets(ordering, pb, random_state, n_neighbors)
    if return_distance:
        return order, ind, dist
    return order, ind


def kneighbors_graph(
    X, n_neighbors, *, mode="connectivity", ordering=None, metric="minkowski", p=2,
    metric_params=None, include_self=False, algorithm="auto", n_jobs=None,
    random_state=None, verbose=0,
):
    """The k-neighbours graph, or the Vecchia conditioning graph of an ordering.

    With ``ordering=None`` this is :func:`sklearn.neighbors.kneighbors_graph`
    computed with the cover tree. With an ordering, row ``i`` connects only
    to points earlier than ``i`` in it: its ``n_neighbors`` nearest
    predecessors (fewer for the first points).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points.
    n_neighbors : int
        Number of neighbours per row.
    mode : {"connectivity", "distance"}, default="connectivity"
        Ones, or the distances, as the entries.
    ordering : {"maximin", "none", "random"}, array-like or None, default=None
        None for the plain graph; otherwise as in :func:`vecchia_neighbors`.
    metric : str, callable or correlation metric, default="minkowski"
        Any metric accepted by :class:`PCCTNeighbors`.
    p : float, default=2
        Minkowski power.
    metric_params : dict, default=None
        Extra metric parameters.
    include_self : bool, default=False
        Whether each point is its own first neighbour (scikit-learn's
        convention: it then counts among the ``n_neighbors``); with an
        ordering, the row holds ``i`` itself (distance 0, stored explicitly)
        and its ``n_neighbors - 1`` nearest predecessors.
    algorithm : {"auto", "cover_tree", "kd_tree", "brute"}, default="auto"
        With an ordering, the index of the search, as in
        :func:`vecchia_neighbors`. Without one the graph is always computed
        with the cover tree (:class:`PCCTNeighbors`); the value is still
        validated.
    n_jobs : int, default=None
        Threads.
    random_state : int, RandomState instance or None, default=None
        Used by ``ordering="random"``.
    verbose : int, default=0
        ``> 0`` reports the progress of each step (building the tree, the
        ordering, the neighbour queries) on standard error: a progress bar
        in a terminal or notebook, log lines otherwise.

    Returns
    -------
    A : sparse matrix of shape (n_samples, n_samples)
        CSR, float64; within each row the columns are sorted by
        (distance, index).

    See Also
    --------
    vecchia_neighbors : The conditioning sets as arrays.
    PCCTNeighbors.kneighbors_graph : The graph of a fitted estimator.
    sklearn.neighbors.kneighbors_graph : The scikit-learn function.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct import kneighbors_graph
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> kneighbors_graph(X, 1, ordering="none", mode="distance").toarray()
    array([[0., 0., 0.],
           [1., 0., 0.],
           [0., 2., 0.]])
    """
    if mode not in ("connectivity", "distance"):
        raise ValueError(
            'Unsupported mode, must be one of "connectivity", '
            f'or "distance" but got "{mode}" instead'
        )
    _check_algorithm(algorithm)
    if ordering is None:
        est = PCCTNeighbors(
            n_neighbors=n_neighbors, metric=metric, p=p, metric_params=metric_params,
            n_jobs=n_jobs, verbose=2 if verbose else 0,
        ).fit(X)
        query = None
        if include_self:  # scikit-learn queries the fitted points themselves
            query = check_array(X, accept_sparse=False, dtype=_DTYPES, order="C")
        return est.kneighbors_graph(query, n_neighbors, mode=mode)
    n_neighbors = _check_n_neighbors(n_neighbors)
    pb = _Problem(X, metric, p, metric_params, n_jobs, verbose, "kneighbors_graph", algorithm)
    n = pb.X.shape[0]
    n_prev = n_neighbors - 1 if include_self else n_neighbors
    if n_prev > 0:
        order, dist, ind = _ordering_and_sets(ordering, pb, random_state, n_prev)
    else:
        order = _order_from(ordering, pb, random_state)
        dist, ind = np.zeros((n, 0)), np.zeros((n, 0), dtype=np.int64)
    # rows of the graph are original indices: row order[r] holds rank r's set
    by_row = np.empty(n, dtype=np.int64)
    by_row[order] = np.arange(n)
    dist, ind = dist[by_row], ind[by_row]
    if include_self:
        ind = np.hstack([np.arange(n)[:, None], ind])
        dist = np.hstack([np.zeros((n, 1)), dist])
    valid = ind >= 0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    data = dist[valid] if mode == "distance" else np.ones(int(indptr[-1]))
    graph = csr_array((data, ind[valid], indptr), shape=(n, n))
    return align_sparse_api(graph)
