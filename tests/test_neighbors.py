"""PCCTNeighbors against exact brute force and sklearn's NearestNeighbors.

Two references are used for every query:

* the exact oracle of :mod:`sklearn_pcct._testing` (float64 distances in
  the difference form, ties by sample index): distances must agree to
  ``1e-10`` relative and indices exactly up to ties;
* ``NearestNeighbors(algorithm="brute")``: its Euclidean distances use the
  GEMM identity and are only ~1e-7 accurate, so indices are compared with
  ties taken within that accuracy. Where sklearn's brute force is known to be
  wrong (Euclidean data far from the origin: catastrophic cancellation) only
  the oracle is used.

Every tree built here also passes :func:`check_tree_invariants`.
"""

import dataclasses

import numba
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController

from sklearn_pcct import PCCTNeighbors
from sklearn_pcct._metric import pairwise_distances, resolve_metric
from sklearn_pcct._testing import (
    assert_knn_equal,
    assert_radius_equal,
    brute_force_knn,
    brute_force_radius,
)
from sklearn_pcct._tree import check_tree_invariants

RTOL = 1e-10

# sklearn's OpenMP loops are run on one thread: on an oversubscribed CI
# machine (pytest-xdist workers plus Numba's threads) they are several times
# faster that way.
_THREADPOOLS = ThreadpoolController()


class sklearn_brute:
    """``NearestNeighbors(algorithm="brute", **kwargs)`` whose methods run single-threaded."""

    def __init__(self, **kwargs):
        self._nn = NearestNeighbors(algorithm="brute", **kwargs)

    def __getattr__(self, name):
        method = getattr(self._nn, name)

        def call(*args, **kwargs):
            with _THREADPOOLS.limit(limits=1, user_api="openmp"):
                out = method(*args, **kwargs)
            return self if out is self._nn else out

        return call


@numba.njit
def euclidean_plus_chebyshev(a, b):  # a sum of two metrics is a metric
    s = 0.0
    m = 0.0
    for i in range(a.shape[0]):
        t = abs(a[i] - b[i])
        s += t * t
        if t > m:
            m = t
    return np.sqrt(s) + m


METRICS = [
    "euclidean",
    "manhattan",
    "chebyshev",
    "minkowski_p3",
    "weighted_minkowski",
    "haversine",
    "callable",
]
DTYPES = [np.float64, np.float32]


def metric_kwargs(name, d):
    """Constructor keywords shared by PCCTNeighbors and NearestNeighbors."""
    if name == "minkowski_p3":
        return {"metric": "minkowski", "p": 3}
    if name == "weighted_minkowski":
        w = 1.0 + np.arange(d) % 3
        w[1::4] = 0.0  # a zero weight makes it a pseudometric: distinct points at 0
        return {"metric": "minkowski", "p": 3, "metric_params": {"w": w}}
    if name == "callable":
        return {"metric": euclidean_plus_chebyshev}
    return {"metric": name}


def spec_of(kwargs):
    return resolve_metric(kwargs["metric"], kwargs.get("p", 2), kwargs.get("metric_params"))[0]


def check_tree(tree, X):
    """The package's invariant checker plus consistency of the tree with ``X``."""
    check_tree_invariants(tree)
    X = np.asarray(X)
    assert tree.n_samples == X.shape[0]
    spec = tree.metric
    keep32 = X.dtype == np.float32 and spec.name != "callable"
    expected_dtype = np.float32 if keep32 else np.float64
    assert tree.points.dtype == expected_dtype
    np.testing.assert_array_equal(tree.points, X[tree.node_sample].astype(expected_dtype))
    for v in np.flatnonzero(np.diff(tree.dup_ptr)):
        dups = tree.dup_idx[tree.dup_ptr[v] : tree.dup_ptr[v + 1]]
        # duplicate-group members sit at distance exactly zero from their node
        assert np.all(pairwise_distances(tree.points[v : v + 1], X[dups], spec) == 0.0)


def assert_same_tree(a, b):
    """Every array of two tree versions is identical (same structure, same radii)."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name != "metric":
            assert x == y, f.name


def fit_checked(X, **kwargs):
    est = PCCTNeighbors(**kwargs).fit(X)
    check_tree(est.tree_, X)
    return est


def assert_sorted_rows(dist, ind):
    """Rows sorted by (distance, index), as every kneighbors row must be."""
    if dist.shape[1] < 2:
        return
    d0, d1, i0, i1 = dist[:, :-1], dist[:, 1:], ind[:, :-1], ind[:, 1:]
    assert np.all((d0 < d1) | ((d0 == d1) & (i0 < i1)))


def sklearn_tolerance(metric, kind, dtype, X):
    """``(rtol, atol)`` for comparing with sklearn's brute force, or None if unusable.

    sklearn's brute Euclidean uses ``|x|^2 - 2 x.y + |y|^2``: absolute errors
    of about ``1e-8 * |x|`` (so useless for data offset by 1e8), and float32
    data at 1e-36 underflow there. The other metrics use the difference form
    without scaling: cubed differences of 1e-151 underflow to zero.
    """
    scale = float(np.max(np.abs(X))) if X.size else 1.0
    if kind == "tiny" and metric in ("minkowski_p3", "weighted_minkowski"):
        return None
    if dtype == np.float32:
        # sklearn computes float32 data in float32: ~1e-7 relative errors, and
        # underflow for the tiny scales (1e-36, and 2**-149 in "exponential")
        if kind in ("tiny", "exponential"):
            return None
        rtol = 1e-4  # haversine in float32 trig is off by ~2e-5
    else:
        rtol = 1e-6
    if metric == "euclidean":
        if kind == "offset":
            return None
        return rtol, 1e-6 * scale
    return rtol, 0.0


def queries_for(data_factory, kind, X, n_new, d, dtype):
    """New points of the same kind plus some fitted rows (exact zero distances)."""
    Q_new = data_factory(kind, n_new, d, dtype)
    return np.ascontiguousarray(np.vstack([Q_new[:n_new], X[:: max(1, len(X) // 8)][:8]]))


def compare_kneighbors(est, X, Q, k, kwargs, sk_tol, sk_result=None):
    """kneighbors(Q) (or X=None when Q is None) against the oracle and sklearn.

    ``sk_result`` is sklearn's ``kneighbors(Q, k_max)``; its first ``k``
    columns are sklearn's answer for ``k`` up to the order of tied neighbours.
    """
    spec = spec_of(kwargs)
    dist, ind = est.kneighbors(Q, k)
    assert dist.dtype == np.float64 and ind.dtype == np.int64
    n_q = len(X) if Q is None else len(Q)
    assert dist.shape == ind.shape == (n_q, k)
    assert_sorted_rows(dist, ind)
    dr, ir = brute_force_knn(X, Q, k, spec, exclude_self=Q is None)
    assert_knn_equal(dist, ind, dr, ir, rtol=RTOL, X_fit=X, X_query=Q, metric_spec=spec)
    if Q is None:  # a sample is never its own neighbour (its duplicates are)
        assert not np.any(ind == np.arange(n_q)[:, None])
    if sk_result is not None and sk_tol is not None:
        ds, is_ = sk_result[0][:, :k], sk_result[1][:, :k]
        assert_knn_equal(dist, ind, ds, is_, rtol=sk_tol[0], atol=sk_tol[1])
    return dist, ind


@pytest.fixture(scope="module")
def case_cache():
    """Fitted matrix cases shared by the kneighbors and radius tests of this module."""
    return {}


@pytest.fixture
def fitted_case(case_cache, data_factory):
    """``fitted_case(metric, dtype, kind) -> (X, Q, kwargs, est, nn)``.

    Data, a checked PCCT estimator and sklearn's brute force for one case of
    the metric x dtype x data-kind matrix. Cached for the module: the trees
    are immutable and the estimators are only queried. The data come from a
    freshly seeded generator, so they do not depend on which test is first.
    """

    def get(metric, dtype, kind):
        key = (metric, np.dtype(dtype).name, kind)
        if key not in case_cache:
            d = 2 if metric == "haversine" else 3
            # check_tree_invariants is vectorised for these metrics only
            n = 200 if metric in ("euclidean", "manhattan", "chebyshev") else 120
            X = data_factory(kind, n, d, dtype)
            Q = queries_for(data_factory, kind, X, 30, d, dtype)
            kwargs = metric_kwargs(metric, d)
            est = fit_checked(X, **kwargs)
            nn = sklearn_brute(**kwargs).fit(X)
            case_cache[key] = X, Q, kwargs, est, nn
        return case_cache[key]

    return get


# -- kneighbors over metrics x dtypes x data kinds -----------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("metric", METRICS)
def test_kneighbors_matches_brute_force(metric, dtype, data_kind, fitted_case):
    X, Q, kwargs, est, nn = fitted_case(metric, dtype, data_kind)
    n = len(X)
    sk_tol = sklearn_tolerance(metric, data_kind, dtype, X)
    sk_q, sk_none = nn.kneighbors(Q, n - 1), nn.kneighbors(None, n - 1)
    for k in (1, 5, n - 1):
        compare_kneighbors(est, X, Q, k, kwargs, sk_tol, sk_q)
        compare_kneighbors(est, X, None, k, kwargs, sk_tol, sk_none)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("d", [1, 2, 8, 64])  # d = 3: the matrix above
@pytest.mark.parametrize("metric", [m for m in METRICS if m != "haversine"])
@pytest.mark.parametrize("kind", ["clustered", "grid"])
@pytest.mark.parametrize("algorithm", ["auto", "cover_tree"])  # auto: kd-tree for box metrics
def test_kneighbors_dimensions(metric, d, dtype, kind, algorithm, data_factory):
    n = 200 if metric in ("euclidean", "manhattan", "chebyshev") else 120
    X = data_factory(kind, n, d, dtype)
    kwargs = metric_kwargs(metric, d)
    est = fit_checked(X, algorithm=algorithm, **kwargs)
    nn = sklearn_brute(**kwargs).fit(X)
    sk_tol = sklearn_tolerance(metric, kind, dtype, X)
    Q = queries_for(data_factory, kind, X, 20, d, dtype)
    sk_q, sk_none = nn.kneighbors(Q, n - 1), nn.kneighbors(None, n - 1)
    for k in (1, 5, n - 1):
        compare_kneighbors(est, X, Q, k, kwargs, sk_tol, sk_q)
        compare_kneighbors(est, X, None, k, kwargs, sk_tol, sk_none)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_kneighbors_integer_grid_ties_broken_by_index(metric, d):
    # Small-integer coordinates make every distance exact in both the
    # kernels and the oracle, so ties must be broken by index bit for bit.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, (400, d)).astype(np.float64)
    Q = rng.integers(-1, 6, (50, d)).astype(np.float64)
    est = fit_checked(X, metric=metric)
    spec = spec_of({"metric": metric})
    for k in (1, 7, 50, 399):
        dist, ind = est.kneighbors(Q, k)
        dr, ir = brute_force_knn(X, Q, k, spec)
        np.testing.assert_array_equal(dist, dr)
        np.testing.assert_array_equal(ind, ir)
        dist, ind = est.kneighbors(None, k)
        dr, ir = brute_force_knn(X, None, k, spec, exclude_self=True)
        np.testing.assert_array_equal(dist, dr)
        np.testing.assert_array_equal(ind, ir)


# -- radius_neighbors -----------------------------------------------------------


def compare_radius(est, X, Q, r, kwargs, sk_tol, sk_result=None):
    """radius_neighbors(Q, r) (X=None when Q is None) against the oracle and sklearn.

    ``sk_result`` is sklearn's ``radius_neighbors(Q, r_max)`` for some
    ``r_max >= r * (1 + 2 * rtol) + 2 * atol``; it is cut down to that radius.
    """
    spec = spec_of(kwargs)
    dist, ind = est.radius_neighbors(Q, r, sort_results=True)
    n_q = len(X) if Q is None else len(Q)
    assert dist.dtype == object and ind.dtype == object and len(ind) == n_q
    assert all(a.dtype == np.float64 for a in dist) and all(a.dtype == np.int64 for a in ind)
    r_ref = np.asarray(r, dtype=np.float64) * (1 + 1e-9)
    dr, ir = brute_force_radius(X, Q, r_ref, spec, exclude_self=Q is None)
    assert_radius_equal(dist, ind, dr, ir, r, rtol=RTOL, sorted_rows=True)
    assert_same_unordered(est.radius_neighbors(Q, r), (dist, ind))
    if sk_result is not None and sk_tol is not None:
        rtol, atol = sk_tol
        r_sk = r * (1 + 2 * rtol) + 2 * atol
        keep = [d <= r_sk for d in sk_result[0]]
        ds = _object_rows([d[m] for d, m in zip(sk_result[0], keep, strict=True)])
        is_ = _object_rows([i[m] for i, m in zip(sk_result[1], keep, strict=True)])
        assert_radius_equal(dist, ind, ds, is_, r, rtol=rtol, atol=atol)
    return dist, ind


def assert_same_unordered(result, expected):
    """Two radius results hold the same (index, distance) pairs in every row."""

    def canonical(dist, ind):
        lens = np.array([len(a) for a in ind])
        rows = np.repeat(np.arange(len(ind)), lens)
        idx = np.concatenate(list(ind)) if len(ind) else np.empty(0, np.int64)
        dst = np.concatenate(list(dist)) if len(dist) else np.empty(0)
        order = np.lexsort((idx, rows))
        return lens, idx[order], dst[order]

    for a, b in zip(canonical(*result), canonical(*expected), strict=True):
        np.testing.assert_array_equal(a, b)


def _object_rows(rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("metric", METRICS)
def test_radius_neighbors_matches_brute_force(metric, dtype, data_kind, fitted_case):
    X, Q, kwargs, est, nn = fitted_case(metric, dtype, data_kind)
    spec = spec_of(kwargs)
    sk_tol = sklearn_tolerance(metric, data_kind, dtype, X)
    # radii that are realised distances: some points lie exactly on the boundary
    dk, _ = brute_force_knn(X, Q, min(8, len(X)), spec)
    radii = (0.0, float(dk[0, -1]), float(np.median(dk[:, -1])))
    sk_q = sk_none = None
    if sk_tol is not None:
        r_max = max(radii) * (1 + 4 * sk_tol[0]) + 4 * sk_tol[1]
        sk_q, sk_none = nn.radius_neighbors(Q, r_max), nn.radius_neighbors(None, r_max)
    for r in radii:
        compare_radius(est, X, Q, r, kwargs, sk_tol, sk_q)
        compare_radius(est, X, None, r, kwargs, sk_tol, sk_none)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
def test_radius_boundary_inclusive_on_integer_grid(metric):
    # A full 10x10 grid plus duplicated rows: distances are exact, so points
    # at distance exactly r must be returned and nothing beyond.
    g = np.arange(10.0)
    X = np.array([[a, b] for a in g for b in g])
    X = np.ascontiguousarray(np.vstack([X, X[::7]]))
    Q = np.ascontiguousarray(np.vstack([X[:30:3], [[4.5, 4.5], [-1.0, 0.0], [12.0, 3.0]]]))
    spec = spec_of({"metric": metric})
    est = fit_checked(X, metric=metric)
    nn = sklearn_brute(metric=metric).fit(X)
    radii = [0.0, 1.0, 2.0, 3.0, np.sqrt(2.0), np.sqrt(5.0), np.sqrt(0.5)]
    for r in radii:
        for Qx in (Q, None):
            dist, ind = est.radius_neighbors(Qx, r, sort_results=True)
            dr, ir = brute_force_radius(X, Qx, r, spec, exclude_self=Qx is None)
            for a, b, da, db in zip(ind, ir, dist, dr, strict=True):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(da, db)
            # small-integer data: sklearn's brute force is exact here too
            ds, is_ = nn.radius_neighbors(Qx, r)
            for a, b in zip(ind, is_, strict=True):
                np.testing.assert_array_equal(np.sort(a), np.sort(b))
            graph = est.radius_neighbors_graph(Qx, r, mode="distance", sort_results=True)
            graph_sk = nn.radius_neighbors_graph(Qx, r, mode="distance")
            assert graph.shape == graph_sk.shape
            assert graph.nnz == graph_sk.nnz
            assert (graph != graph_sk).nnz == 0


def test_radius_per_query_array(rng, data_factory):
    X = data_factory("clustered", 400, 3)
    Q = np.ascontiguousarray(np.vstack([data_factory("clustered", 40, 3), X[:5]]))
    spec = spec_of({"metric": "euclidean"})
    dk, _ = brute_force_knn(X, Q, 10, spec)
    radii = rng.random(len(Q)) * dk[:, -1]
    radii[::3] = dk[::3, 4]  # realised distances: boundary points
    radii[1] = 0.0
    radii[2] = 1e3  # every point
    est = fit_checked(X, metric="euclidean")
    dist, ind = est.radius_neighbors(Q, radii, sort_results=True)
    dr, ir = brute_force_radius(X, Q, radii * (1 + 1e-9), spec)
    assert_radius_equal(dist, ind, dr, ir, radii, rtol=RTOL, sorted_rows=True)
    assert len(ind[2]) == len(X)
    for i in range(len(Q)):  # each row equals a scalar-radius query
        d_i, i_i = est.radius_neighbors(Q[i : i + 1], radii[i], sort_results=True)
        np.testing.assert_array_equal(i_i[0], ind[i])
        np.testing.assert_array_equal(d_i[0], dist[i])
    graph = est.radius_neighbors_graph(Q, radii, mode="distance", sort_results=True)
    assert graph.shape == (len(Q), len(X))
    np.testing.assert_array_equal(np.diff(graph.indptr), [len(a) for a in ind])
    np.testing.assert_array_equal(graph.indices, np.concatenate(ind))
    np.testing.assert_array_equal(graph.data, np.concatenate(dist))
    with pytest.raises(ValueError):
        est.radius_neighbors(Q, radii[:-1])


def test_radius_sort_results(data_factory):
    X = data_factory("grid", 300, 2)
    est = fit_checked(X)
    Q = X[:20]
    dist, ind = est.radius_neighbors(Q, 2.0, sort_results=True)
    dist_u, ind_u = est.radius_neighbors(Q, 2.0, sort_results=False)
    for a, da, b, db in zip(ind, dist, ind_u, dist_u, strict=True):
        key = np.lexsort((b, db))
        np.testing.assert_array_equal(a, b[key])
        np.testing.assert_array_equal(da, db[key])
        assert np.all((da[1:] > da[:-1]) | ((da[1:] == da[:-1]) & (a[1:] > a[:-1])))
    graph = est.radius_neighbors_graph(Q, 2.0, mode="distance", sort_results=True)
    np.testing.assert_array_equal(graph.indices, np.concatenate(ind))
    with pytest.raises(ValueError, match="return_distance must be True"):
        est.radius_neighbors(Q, 2.0, return_distance=False, sort_results=True)


# -- graphs ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("metric", METRICS)
def test_graphs_match_sklearn(metric, dtype, data_factory):
    d = 2 if metric == "haversine" else 4
    X = data_factory("uniform", 150, d, dtype)  # no ties: rows are unique
    Q = np.ascontiguousarray(np.vstack([data_factory("uniform", 20, d, dtype), X[:10]]))
    kwargs = metric_kwargs(metric, d)
    est = fit_checked(X, **kwargs)
    nn = sklearn_brute(**kwargs).fit(X)
    k = 6
    for Qx in (Q, None):
        n_q = len(X) if Qx is None else len(Qx)
        dist, ind = est.kneighbors(Qx, k)
        for mode in ("connectivity", "distance"):
            graph = est.kneighbors_graph(Qx, k, mode=mode)
            graph_sk = nn.kneighbors_graph(Qx, k, mode=mode)
            assert type(graph) is type(graph_sk) and graph.format == "csr"
            assert graph.shape == graph_sk.shape == (n_q, len(X))
            assert graph.data.dtype == np.float64
            assert graph.indices.dtype == graph_sk.indices.dtype
            np.testing.assert_array_equal(graph.indptr, np.arange(0, n_q * k + 1, k))
            # rows store the neighbours in kneighbors order
            np.testing.assert_array_equal(graph.indices.reshape(n_q, k), ind)
            np.testing.assert_array_equal(graph_sk.indices.reshape(n_q, k), ind)
            expected = dist.ravel() if mode == "distance" else np.ones(n_q * k)
            np.testing.assert_array_equal(graph.data, expected)
            np.testing.assert_allclose(graph.toarray(), graph_sk.toarray(), rtol=1e-6, atol=1e-7)
        r = float(0.5 * (dist[0, 3] + dist[0, 4]))  # not a realised distance
        for mode in ("connectivity", "distance"):
            graph = est.radius_neighbors_graph(Qx, r, mode=mode)
            graph_sk = nn.radius_neighbors_graph(Qx, r, mode=mode)
            assert type(graph) is type(graph_sk) and graph.format == "csr"
            assert graph.shape == graph_sk.shape == (n_q, len(X))
            assert graph.data.dtype == np.float64
            assert graph.indices.dtype == graph_sk.indices.dtype
            assert graph.nnz == graph_sk.nnz
            np.testing.assert_allclose(graph.toarray(), graph_sk.toarray(), rtol=1e-6, atol=1e-7)


def test_graphs_keep_explicit_zeros(data_factory):
    X = data_factory("duplicates", 200, 3)  # 10 distinct rows: many zero distances
    est = fit_checked(X)
    k = 4
    graph = est.kneighbors_graph(X, k, mode="distance")
    assert graph.shape == (200, 200) and graph.nnz == 200 * k
    assert np.all(graph.data == 0.0)  # every sample has >= k exact copies
    graph = est.kneighbors_graph(None, k, mode="distance")
    assert graph.nnz == 200 * k and np.all(graph.diagonal() == 0)
    assert not np.any(graph.indices.reshape(200, k) == np.arange(200)[:, None])
    graph = est.radius_neighbors_graph(X[:5], 0.0, mode="distance")
    counts = [np.sum(np.all(X == x, axis=1)) for x in X[:5]]
    np.testing.assert_array_equal(np.diff(graph.indptr), counts)
    assert np.all(graph.data == 0.0)
    nn = sklearn_brute().fit(X)
    assert graph.nnz == nn.radius_neighbors_graph(X[:5], 1e-12, mode="distance").nnz
    graph = est.radius_neighbors_graph(None, 0.0, mode="connectivity")
    assert graph.nnz == sum(np.sum(np.all(X == x, axis=1)) - 1 for x in X)
    assert np.all(graph.data == 1.0)


# -- duplicates ----------------------------------------------------------------------


def test_identical_rows_self_exclusion_corner_case(data_factory):
    # 64 identical rows, k=5: for rows 0..5 the sample itself is among the
    # k+1 nearest and is dropped; for the others, sklearn's rule drops the
    # first column instead (our rows are ordered by index, so that is 0).
    X = data_factory("identical", 64, 3)
    est = fit_checked(X, n_neighbors=5)
    nn = sklearn_brute(n_neighbors=5).fit(X)
    dist, ind = est.kneighbors()
    dist_sk, ind_sk = nn.kneighbors()
    np.testing.assert_array_equal(dist, dist_sk)
    np.testing.assert_array_equal(dist, np.zeros((64, 5)))
    # the k + 1 = 6 nearest are samples 0..5: drop i itself, or else column 0
    expected = np.array([[j for j in range(6) if j != (i if i < 6 else 0)] for i in range(64)])
    np.testing.assert_array_equal(ind, expected)
    dr, ir = brute_force_knn(X, None, 5, spec_of({"metric": "euclidean"}), exclude_self=True)
    np.testing.assert_array_equal(ind, ir)
    # sklearn orders tied neighbours arbitrarily, so only the rows where the
    # sample itself was dropped are determined: there the sets must agree.
    for i in range(6):
        assert set(ind[i]) == set(ind_sk[i]) == set(range(6)) - {i}
    for i in range(64):
        assert len(set(ind_sk[i])) == 5 and i not in set(ind_sk[i])
    graph = est.kneighbors_graph(mode="distance")
    assert graph.nnz == nn.kneighbors_graph(mode="distance").nnz == 64 * 5
    assert np.all(graph.data == 0.0)
    dist, ind = est.radius_neighbors(radius=0.0)
    dist_sk, ind_sk = nn.radius_neighbors(radius=0.0)
    for i in range(64):
        np.testing.assert_array_equal(np.sort(ind[i]), np.sort(ind_sk[i]))
        np.testing.assert_array_equal(np.sort(ind[i]), np.delete(np.arange(64), i))
        assert np.all(dist[i] == 0.0)


def test_duplicate_heavy_1e4(data_factory):
    X = data_factory("duplicates", 10_000, 3)
    est = fit_checked(X)
    assert est.tree_.n_nodes == 10
    spec = spec_of({"metric": "euclidean"})
    for k in (1, 5, 40):
        dist, ind = est.kneighbors(None, k)
        dr, ir = brute_force_knn(X, None, k, spec, exclude_self=True)
        np.testing.assert_array_equal(ind, ir)
        np.testing.assert_array_equal(dist, dr)
    Q = np.ascontiguousarray(np.vstack([X[:20], data_factory("uniform", 20, 3)]))
    dist, ind = est.kneighbors(Q, 5)
    dr, ir = brute_force_knn(X, Q, 5, spec)
    assert_knn_equal(dist, ind, dr, ir, rtol=RTOL, X_fit=X, X_query=Q, metric_spec=spec)
    dist, ind = est.radius_neighbors(Q[:10], 0.0, sort_results=True)
    dr, ir = brute_force_radius(X, Q[:10], 0.0, spec)
    assert_radius_equal(dist, ind, dr, ir, 0.0, rtol=0.0, sorted_rows=True)


def test_duplicate_heavy_1e5(duplicates_1e5):
    # 1e5 samples of 10 distinct values: the tree collapses to 10 nodes.
    X = duplicates_1e5
    est = fit_checked(X)
    assert est.tree_.n_nodes == 10
    spec = spec_of({"metric": "euclidean"})
    dist, ind = est.kneighbors(None, 5)
    dr, ir = brute_force_knn(X, None, 5, spec, exclude_self=True)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_array_equal(dist, dr)
    graph = est.kneighbors_graph(None, 5, mode="distance")
    assert graph.nnz == 5 * len(X) and np.all(graph.data == 0.0)
    Q = np.ascontiguousarray(np.vstack([X[:10], [[0.5, 0.5], [2.0, -1.0]]]))
    dist, ind = est.kneighbors(Q, 5)
    dr, ir = brute_force_knn(X, Q, 5, spec)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_array_equal(dist, dr)
    dist, ind = est.radius_neighbors(Q[:3], 0.0, sort_results=True)
    dr, ir = brute_force_radius(X, Q[:3], 0.0, spec)
    assert_radius_equal(dist, ind, dr, ir, 0.0, rtol=0.0, sorted_rows=True)


# -- threads and dtypes ------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "haversine", "callable"])
def test_n_jobs_identical_results(metric, data_factory):
    d = 2 if metric == "haversine" else 3
    # the invariant checker is vectorised for euclidean and manhattan only
    n = 1500 if metric in ("euclidean", "manhattan") else 200
    X = data_factory("clustered", n, d)
    X[::10] = X[1::10]  # some duplicates
    Q = data_factory("clustered", 200, d)
    kwargs = metric_kwargs(metric, d)
    results = []
    for n_jobs in (1, 2, -1):
        est = fit_checked(X, n_jobs=n_jobs, **kwargs)
        r = float(np.median(est.kneighbors(Q, 5)[0][:, -1]))
        out = [
            est.tree_,
            *est.kneighbors(Q, 7),
            *est.kneighbors(None, 7),
            *est.radius_neighbors(Q, r),
            *est.radius_neighbors(None, r),
            est.kneighbors_graph(None, 3, mode="distance"),
            est.radius_neighbors_graph(Q, r, mode="distance"),
        ]
        results.append(out)
    ref = results[0]
    for out in results[1:]:
        assert_same_tree(out[0], ref[0])
        for a, b in zip(out[1:5], ref[1:5], strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(out[5:9], ref[5:9], strict=True):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
        for a, b in zip(out[9:], ref[9:], strict=True):
            assert (a != b).nnz == 0 and a.nnz == b.nnz
            np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("fit_dtype", DTYPES, ids=["fit64", "fit32"])
@pytest.mark.parametrize("query_dtype", DTYPES, ids=["query64", "query32"])
def test_dtypes(fit_dtype, query_dtype, data_factory):
    X = data_factory("clustered", 300, 3, fit_dtype)
    Q = data_factory("clustered", 40, 3, query_dtype)
    est = fit_checked(X)
    assert est.tree_.points.dtype == fit_dtype  # float32 is kept in the tree
    spec = spec_of({"metric": "euclidean"})
    dist, ind = est.kneighbors(Q, 5)
    assert dist.dtype == np.float64 and ind.dtype == np.int64
    dr, ir = brute_force_knn(X, Q, 5, spec)
    assert_knn_equal(dist, ind, dr, ir, rtol=RTOL, X_fit=X, X_query=Q, metric_spec=spec)
    dist, ind = est.radius_neighbors(Q, 0.5, sort_results=True)
    dr, ir = brute_force_radius(X, Q, 0.5 * (1 + 1e-9), spec)
    assert_radius_equal(dist, ind, dr, ir, 0.5, rtol=RTOL, sorted_rows=True)
    # integer and list input are converted to float64
    est = fit_checked(np.arange(12).reshape(6, 2))
    assert est.tree_.points.dtype == np.float64
    est = fit_checked(np.arange(12).reshape(6, 2).tolist())
    assert est.tree_.points.dtype == np.float64


# -- floating point: near-duplicates whose distance underflows ----------------------


@pytest.mark.parametrize("metric", ["euclidean", "minkowski_p3", "haversine"])
def test_underflowing_near_duplicates_keep_their_own_distance(metric):
    # X[0] and X[1] are 2**-539 apart: a plain sum of squared (cubed, or
    # haversine's squared sine) differences underflows to 0.0, yet the two
    # points are at different distances from q, and X[1] is the nearer:
    # they must not be merged into one duplicate group (ALGORITHMS.md 12.3).
    X = np.array([[0.0, 0.0], [2.0**-539, 0.0]])
    q = np.array([[2.0**-530, 0.0]])
    kwargs = metric_kwargs(metric, 2)
    spec = spec_of(kwargs)
    dr, ir = brute_force_knn(X, q, 2, spec)
    assert ir[0, 0] == 1 and dr[0, 0] < dr[0, 1]
    if metric != "minkowski_p3":  # sklearn's unscaled cubes underflow to 0
        nn = sklearn_brute(n_neighbors=2, **kwargs).fit(X)
        assert nn.kneighbors(q, 1)[1][0, 0] == 1  # sklearn finds it too
    est = fit_checked(X, n_neighbors=2, **kwargs)
    dist, ind = est.kneighbors(q, 2)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_allclose(dist, dr, rtol=RTOL)
    r = 0.5 * (dr[0, 0] + dr[0, 1])  # only X[1] is inside
    dist, ind = est.radius_neighbors(q, r)
    np.testing.assert_array_equal(ind[0], [1])


def test_last_ulp_near_duplicates_at_tiny_scale():
    # Points one ulp apart at 1e-150: their squared difference underflows.
    a = 1e-150
    X = np.array([[np.nextafter(a, 1.0)], [a]])
    q = np.array([[0.0]])
    spec = spec_of({"metric": "euclidean"})
    dr, ir = brute_force_knn(X, q, 2, spec)
    assert ir[0, 0] == 1 and dr[0, 0] < dr[0, 1]
    est = fit_checked(X)
    dist, ind = est.kneighbors(q, 2)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_array_equal(dist, dr)


def test_ties_across_duplicate_groups_large_input():
    # 8192 samples drawn from 12 integer points at distance exactly 5 from the
    # origin: every sample ties, so the 5 nearest are samples 0..4 (sklearn
    # returns them too). From 8192 rows on the rows are not inserted in index
    # order, so a duplicate group's representative may not be its smallest
    # sample.
    circle = np.array(
        [[5, 0], [-5, 0], [0, 5], [0, -5], [3, 4], [3, -4], [-3, 4], [-3, -4],
         [4, 3], [4, -3], [-4, 3], [-4, -3]], dtype=np.float64,
    )
    X = circle[np.random.default_rng(0).integers(0, 12, 8192)]
    q = np.zeros((1, 2))
    _, ind_sk = sklearn_brute().fit(X).kneighbors(q, 5)
    assert set(ind_sk[0]) == set(range(5))
    est = fit_checked(X)
    dist, ind = est.kneighbors(q, 5)
    np.testing.assert_array_equal(dist, np.full((1, 5), 5.0))
    np.testing.assert_array_equal(ind, [[0, 1, 2, 3, 4]])
