"""Estimator-free functional API over an explicit backend (no sklearn).

Every function takes the backend and the thread count explicitly; nothing
here reads configuration. Updates (added by later issues) return new
:class:`~sklearn_pcct._tree.TreeVersion` objects and leave their inputs
untouched.
"""

import numpy as np

__all__ = [
    "build", "build_dynamic", "insert", "remove", "freeze",
    "knn", "knn_fitted", "radius", "radius_fitted", "maximin", "maximin_conditioning",
    "ordered_knn", "build_box",
    "ordered_knn_brute", "uses_kd_tree", "KD_MAX_FEATURES",
]

# "auto" answers the estimators' k-NN queries and builds the Vecchia index
# with the kd-tree up to this many features, box metrics only: its build
# takes milliseconds where the cover tree's takes seconds, and its searches
# were as fast or faster on every data set measured (benchmarks/RESULTS.md,
# "kd-tree or cover tree"): k-NN graphs on uniform d = 2 to 32, Gaussian
# d = 64, a 50-cluster mixture in 16-D, a 3-D manifold in 64-D and digits
# (a tie on a 3-D manifold in 256-D, beyond which nothing was measured);
# Vecchia sets on uniform d = 2 to 50, the mixture and the manifold.
KD_MAX_FEATURES = 64


def build(X, metric, backend, n_threads=1, progress=None):
    """Build the cover tree of the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float32 or float64 data, C-contiguous.
    metric : MetricSpec
        A validated metric (see :func:`sklearn_pcct._metric.resolve_metric`).
    backend : Backend
        The backend that runs the kernels.
    n_threads : int, default=1
        Threads for the parallel steps.
    progress : callable, default=None
        Called with the number of rows inserted so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).

    Returns
    -------
    tree : TreeVersion

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build
    >>> from sklearn_pcct._metric import MetricSpec
    >>> tree = build(np.eye(3), MetricSpec("euclidean"), get_backend("numba"))
    >>> tree.n_samples, tree.n_nodes
    (3, 3)
    """
    return backend.build(X, metric, n_threads, progress)


def build_box(X, metric, backend):
    """Build the kd-tree of the rows of ``X`` (the low-dimensional engine).

    :func:`maximin`, :func:`ordered_knn` and :func:`knn` accept the result in
    place of a cover tree and give the same answers. Only for metrics with a
    distance-to-box bound (``backend.supports_box(metric)``: euclidean,
    manhattan, chebyshev).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float32 or float64 data, C-contiguous.
    metric : MetricSpec
    backend : Backend

    Returns
    -------
    tree : BoxTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_box, maximin
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> maximin(build_box(X, MetricSpec("euclidean"), be), X, 0, be)
    (array([0, 2, 1]), array([inf,  3.,  1.]))
    """
    return backend.build_box(X, metric)


def knn(tree, Q, k, backend, n_threads=1, progress=None):
    """Exact ``k`` nearest fitted samples of every row of ``Q``.

    Parameters
    ----------
    tree : TreeVersion, BoxTree or BoxForest
        A kd-tree index answers with sample ids (ties by id).
    Q : ndarray of shape (n_queries, n_features)
    k : int
        Number of neighbours, at most ``tree.n_samples``.
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of queries answered so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
    ind : ndarray of shape (n_queries, k), int64
        Rows sorted by ``(distance, sample index)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, knn
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> tree = build(np.array([[0.0], [1.0], [3.0]]), MetricSpec("euclidean"), be)
    >>> knn(tree, np.array([[0.9]]), 2, be)
    (array([[0.1, 0.9]]), array([[1, 0]]))
    """
    return backend.knn(tree, Q, k, n_threads, progress)


def knn_fitted(tree, k, backend, n_threads=1, progress=None):
    """``k`` nearest samples of every fitted sample, the sample itself included.

    Parameters
    ----------
    tree : TreeVersion or BoxForest
    k : int
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of tree nodes (distinct points) answered so
        far, out of ``tree.n_nodes`` (live samples of a BoxForest), between
        kernel calls.

    Returns
    -------
    dist : ndarray of shape (n_samples, k), float64
    ind : ndarray of shape (n_samples, k), int64

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, knn_fitted
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> tree = build(np.array([[0.0], [1.0], [3.0]]), MetricSpec("euclidean"), be)
    >>> knn_fitted(tree, 2, be)[1]
    array([[0, 1],
           [1, 0],
           [2, 1]])
    """
    return backend.knn_fitted(tree, k, n_threads, progress)


def radius(tree, Q, r, backend, n_threads=1):
    """Fitted samples within distance ``r`` (inclusive) of every row of ``Q``.

    Parameters
    ----------
    tree : TreeVersion or BoxForest
    Q : ndarray of shape (n_queries, n_features)
    r : float or ndarray of shape (n_queries,)
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    indptr : ndarray of shape (n_queries + 1,), int64
    ind : ndarray of shape (nnz,), int64
    dist : ndarray of shape (nnz,), float64
        CSR layout; the order inside a row is unspecified.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, radius
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> tree = build(np.array([[0.0], [1.0], [3.0]]), MetricSpec("euclidean"), be)
    >>> indptr, ind, dist = radius(tree, np.array([[0.0]]), 1.0, be)
    >>> sorted(ind.tolist())
    [0, 1]
    """
    r = np.broadcast_to(np.asarray(r, dtype=np.float64), (len(Q),))
    return backend.radius(tree, Q, r, n_threads)


def radius_fitted(tree, r, backend, n_threads=1):
    """Radius neighbours of every fitted sample, the sample itself included.

    Parameters
    ----------
    tree : TreeVersion or BoxForest
    r : float
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    indptr, ind, dist : ndarrays
        CSR layout with one row per fitted sample.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, radius_fitted
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> tree = build(np.array([[0.0], [1.0], [3.0]]), MetricSpec("euclidean"), be)
    >>> radius_fitted(tree, 1.0, be)[0]
    array([0, 2, 4, 5])
    """
    return backend.radius_fitted(tree, float(r), n_threads)


def build_dynamic(X, metric, backend, n_threads=1, progress=None):
    """Build the dynamic (updatable, persistent) tree of the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float32 or float64 data, C-contiguous; row ``i`` gets id ``i``.
    metric : MetricSpec
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of rows inserted so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).

    Returns
    -------
    tree : DynamicTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_dynamic
    >>> from sklearn_pcct._metric import MetricSpec
    >>> tree = build_dynamic(np.eye(3), MetricSpec("euclidean"), get_backend("numba"))
    >>> tree.n_live, tree.version
    (3, 0)
    """
    return backend.build_dynamic(X, metric, n_threads, progress)


def insert(tree, X, backend, n_threads=1, progress=None):
    """A new version of ``tree`` with the rows of ``X`` added (``tree`` unchanged).

    Parameters
    ----------
    tree : DynamicTree
    X : ndarray of shape (n_new, n_features)
        Finite rows of the tree's dtype; they get the ids
        ``tree.n_ids .. tree.n_ids + n_new - 1``.
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of rows inserted so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).

    Returns
    -------
    new_tree : DynamicTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_dynamic, insert
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> old = build_dynamic(np.eye(3), MetricSpec("euclidean"), be)
    >>> new = insert(old, np.zeros((2, 3)), be)
    >>> new.n_live, old.n_live, new.version
    (5, 3, 1)
    """
    return backend.insert(tree, X, n_threads, progress)


def remove(tree, ids, backend, n_threads=1):
    """A new version of ``tree`` without the samples ``ids`` (``tree`` unchanged).

    Parameters
    ----------
    tree : DynamicTree
    ids : ndarray of shape (n_removed,)
        Distinct live sample ids (validated by the caller).
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    new_tree : DynamicTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_dynamic, remove
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> tree = remove(build_dynamic(np.eye(3), MetricSpec("euclidean"), be), [0], be)
    >>> tree.live_ids()
    array([1, 2])
    """
    return backend.remove(tree, ids, n_threads)


def freeze(tree, backend):
    """The read-optimised :class:`~sklearn_pcct._tree.TreeVersion` of a dynamic tree.

    Parameters
    ----------
    tree : DynamicTree
    backend : Backend

    Returns
    -------
    frozen : TreeVersion
        Its sample indices are the ids of ``tree``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_dynamic, freeze
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> freeze(build_dynamic(np.eye(3), MetricSpec("euclidean"), be), be).n_nodes
    3
    """
    return backend.freeze(tree)


def maximin(tree, X, first, backend, progress=None):
    """Exact maximin (farthest-point) ordering of the samples of ``tree``.

    Parameters
    ----------
    tree : TreeVersion
        Built on the rows of ``X`` (sample ``s`` is ``X[s]``).
    X : ndarray of shape (n_samples, n_features)
    first : int
        The first sample.
    backend : Backend
    progress : callable, default=None
        Called with the number of points ordered so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).

    Returns
    -------
    order : ndarray of shape (n_samples,), int64
        Each next sample maximises its distance to the earlier ones (ties:
        smaller index).
    lengthscales : ndarray of shape (n_samples,), float64
        ``lengthscales[t]`` is the distance of ``order[t]`` to
        ``order[:t]``; ``inf`` for ``t = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, maximin
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]])
    >>> maximin(build(X, MetricSpec("euclidean"), be), X, 0, be)
    (array([0, 3, 1, 2]), array([inf,  4.,  1.,  1.]))
    """
    return backend.maximin(tree, X, first, progress)


def maximin_conditioning(tree, X, first, k, backend, n_threads=1):
    """A maximin ordering and its Vecchia neighbours in one call.

    The same answers as :func:`maximin` followed by :func:`ordered_knn`
    with the ranks of that ordering; a backend may run the two at once.

    Parameters
    ----------
    tree : TreeVersion or BoxTree
        Built on the rows of ``X`` (sample ``s`` is ``X[s]``).
    X : ndarray of shape (n_samples, n_features)
    first : int
        The first sample.
    k : int
        Neighbours per point (``>= 1``).
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    order : ndarray of shape (n_samples,), int64
    lengthscales : ndarray of shape (n_samples,), float64
    dist : ndarray of shape (n_samples, k), float64
    ind : ndarray of shape (n_samples, k), int64
        Row ``r``: the ``k`` nearest samples of ``order[:r]`` to
        ``order[r]``, sorted by ``(distance, sample index)``, padded with
        ``inf`` / ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_box, maximin_conditioning
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]])
    >>> order, ell, dist, ind = maximin_conditioning(
    ...     build_box(X, MetricSpec("euclidean"), be), X, 0, 1, be)
    >>> order, ind[:, 0]
    (array([0, 3, 1, 2]), array([-1,  0,  0,  3]))
    """
    return backend.maximin_conditioning(tree, X, first, k, n_threads)


def ordered_knn(tree, Q, qrank, rank, k, backend, n_threads=1, progress=None, out_rows=None):
    """The ``k`` nearest samples ranked before each query (Vecchia neighbours).

    Parameters
    ----------
    tree : TreeVersion
    Q : ndarray of shape (n_queries, n_features)
    qrank : ndarray of shape (n_queries,)
        Query ``i`` may only return samples ``s`` with ``rank[s] < qrank[i]``.
    rank : ndarray of shape (n_samples,)
        One rank per sample id.
    k : int
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of queries answered so far, between kernel calls
        (see :mod:`sklearn_pcct._progress`).
    out_rows : ndarray of shape (n_queries,), default=None
        A permutation of ``range(n_queries)``: query ``i``'s answer is row
        ``out_rows[i]`` of the results (default: row ``i``). With
        ``out_rows=qrank`` the rows come out in rank order, without a copy.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
    ind : ndarray of shape (n_queries, k), int64
        Sorted by ``(distance, sample index)``, padded with ``inf`` / ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build, ordered_knn
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> rank = np.array([2, 0, 1])
    >>> ordered_knn(build(X, MetricSpec("euclidean"), be), X, rank, rank, 2, be)[1]
    array([[ 1,  2],
           [-1, -1],
           [ 1, -1]])
    """
    return backend.ordered_knn(tree, Q, qrank, rank, k, n_threads, progress, out_rows)


def ordered_knn_brute(X, order, k, metric, backend, n_threads=1, progress=None):
    """Vecchia neighbours by brute force: each point's ``k`` nearest predecessors.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The (embedded) points.
    order : ndarray of shape (n_samples,)
        The ordering, a permutation of ``range(n_samples)``.
    k : int
    metric : MetricSpec
    backend : Backend
    n_threads : int, default=1
    progress : callable, default=None
        Called with the number of ranks done so far, between kernel calls.

    Returns
    -------
    dist : ndarray of shape (n_samples, k), float64
    ind : ndarray of shape (n_samples, k), int64
        Row ``r``: the sample indices of the nearest points to
        ``X[order[r]]`` among ``X[order[:r]]``, sorted by ``(distance,
        sample index)``, padded with ``inf`` / ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import ordered_knn_brute
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> ordered_knn_brute(X, np.array([1, 2, 0]), 2, MetricSpec("euclidean"), be)[1]
    array([[-1, -1],
           [ 1, -1],
           [ 1,  2]])
    """
    return backend.ordered_knn_brute(X, order, k, metric, n_threads, progress)


def uses_kd_tree(algorithm, metric, n_features, backend):
    """Whether ``algorithm`` (``"auto"``, ``"cover_tree"`` or ``"kd_tree"``) means the kd-tree.

    ``"kd_tree"`` with a metric that has no distance-to-box bound raises
    ``ValueError``; ``"auto"`` picks the kd-tree for those metrics with at
    most :data:`KD_MAX_FEATURES` features.

    Examples
    --------
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import uses_kd_tree
    >>> from sklearn_pcct._metric import MetricSpec
    >>> be = get_backend("numba")
    >>> uses_kd_tree("auto", MetricSpec("euclidean"), 3, be)
    True
    >>> uses_kd_tree("auto", MetricSpec("haversine"), 2, be)
    False
    >>> uses_kd_tree("auto", MetricSpec("euclidean"), 64, be)
    True
    >>> uses_kd_tree("auto", MetricSpec("euclidean"), 65, be)
    False
    """
    supported = backend.supports_box(metric)
    if algorithm == "kd_tree":
        if not supported:
            raise ValueError(
                f"algorithm='kd_tree' needs a metric with a distance-to-box bound "
                f"(euclidean, manhattan, chebyshev, or minkowski with p in (1, 2, inf) "
                f"and no weights); got {metric.name!r}. Use algorithm='cover_tree' or "
                "'auto' for this metric."
            )
        return True
    return algorithm == "auto" and supported and n_features <= KD_MAX_FEATURES
