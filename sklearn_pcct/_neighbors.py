"""PCCTNeighbors: the drop-in replacement for sklearn's NearestNeighbors."""

from numbers import Real

from ._base import KNeighborsMixin, PCCTBase, RadiusNeighborsMixin
from ._compat import Interval
from ._updates import UpdatesMixin

__all__ = ["PCCTNeighbors"]


class PCCTNeighbors(UpdatesMixin, KNeighborsMixin, RadiusNeighborsMixin, PCCTBase):
    """Exact nearest neighbours with a compressed cover tree.

    A drop-in replacement for :class:`sklearn.neighbors.NearestNeighbors`:
    same methods, same results (ties broken by sample index), found with a
    compressed cover tree (Elkin and Kurlin) built and searched by Numba
    kernels (queries run in parallel); for euclidean, manhattan and
    chebyshev data with up to 64 features a kd-tree answers the
    k-nearest-neighbour queries of a fit (``algorithm``).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbors to use by default for :meth:`kneighbors` queries.
    radius : float, default=1.0
        Range of parameter space to use by default for
        :meth:`radius_neighbors` queries.
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
        A true metric: 'euclidean', 'manhattan', 'chebyshev', 'minkowski'
        (with ``p >= 1``) or 'haversine' (2 features: latitude and longitude
        in radians), or a Numba-compilable function ``f(a, b) -> float`` of
        two 1-D float64 arrays that satisfies the triangle inequality.
        Distances that are not metrics ('sqeuclidean', 'cosine', ``p < 1``)
        are rejected with an explanation of what to use instead.
    p : float, default=2
        Power of the Minkowski metric: ``p = 1`` is 'manhattan', ``p = 2``
        is 'euclidean', ``p = inf`` is 'chebyshev'.
    metric_params : dict, default=None
        Additional keyword arguments for the metric (``p`` and ``w`` for
        'minkowski').
    n_jobs : int, default=None
        Number of threads for the parallel steps (the queries). ``None``
        means 1 unless in a :obj:`joblib.parallel_config` context; ``-1``
        means all processors.
    backend : {'auto', 'numba'}, default='auto'
        Which implementation runs the kernels; 'auto' picks 'numba' for
        NumPy input.
    verbose : int, default=0
        Progress reports on standard error (a progress bar in a terminal or
        notebook, log lines otherwise): ``0`` is silent, ``1`` reports
        ``fit``, ``partial_fit`` and ``kneighbors`` of 100,000 points or
        more, ``2`` reports them at every size.

    Attributes
    ----------
    effective_metric_ : str or callable
        The distance metric used, as scikit-learn maps it ('minkowski' with
        ``p = 2`` becomes 'euclidean', and so on).
    effective_metric_params_ : dict
        Additional keyword arguments for the metric.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.
    n_samples_fit_ : int
        Number of sample ids issued since the last :term:`fit` (the samples
        of ``fit`` and of every ``partial_fit``, removed ones included): the
        column count of the graphs.
    live_ids_ : ndarray of shape (n_live,)
        Sorted ids of the samples not removed (all of ``range(n_samples_fit_)``
        until :meth:`remove` is called).
    version_ : int
        Number of updates (``partial_fit`` / ``remove``) since the last fit.
    tree_ : TreeVersion
        The immutable cover tree of the current version.
    backend_ : str
        The backend that built the tree.

    See Also
    --------
    PCCTTransformer : The k-neighbours graph as a transformer.
    sklearn.neighbors.NearestNeighbors : The scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct import PCCTNeighbors
    >>> samples = [[0, 0, 2], [1, 0, 0], [0, 0, 1]]
    >>> neigh = PCCTNeighbors(n_neighbors=2, radius=0.4).fit(samples)
    >>> neigh.kneighbors([[0, 0, 1.3]], 2, return_distance=False)
    array([[2, 0]])
    >>> nbrs = neigh.radius_neighbors([[0, 0, 1.3]], 0.4, return_distance=False)
    >>> np.asarray(nbrs[0][0])
    array(2)
    """

    _parameter_constraints = {
        **PCCTBase._parameter_constraints,
        "radius": [Interval(Real, 0, None, closed="both")],
    }

    def __init__(
        self,
        n_neighbors=5,
        radius=1.0,
        *,
        algorithm="auto",
        metric="minkowski",
        p=2,
        metric_params=None,
        n_jobs=None,
        backend="auto",
        verbose=0,
    ):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.backend = backend
        self.verbose = verbose
