"""maximin_ordering, vecchia_neighbors and kneighbors_graph against brute force.

The references live in ``tests/_vecchia_reference.py`` (NumPy, SciPy and
scikit-learn only):

* the greedy maximin ordering recomputed with a fresh ``argmax`` at every
  step (ties: smallest index) on a dense distance matrix;
* the ``m`` nearest predecessors of every rank by sorting, ties by index.

Orders are compared exactly. Where ties are massive (integer grids,
duplicates) the data are chosen so that every implementation computes the
same distances bit for bit (integer coordinates with the euclidean,
manhattan and chebyshev metrics), and then neighbours and distances are
compared exactly too; elsewhere distances agree to ``rtol=1e-9`` and indices
exactly except for swaps among tied distances. Correlation metrics are tested
in ``test_correlation.py``.
"""

import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph as sk_kneighbors_graph
from sklearn.utils import check_random_state

from sklearn_pcct import kneighbors_graph, maximin_ordering, vecchia_neighbors

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _vecchia_reference import (  # noqa: E402
    assert_knn_rows_equal,
    assert_maximin_valid,
    assert_predecessors_equal,
    assert_vecchia_graph_equal,
    metric_distances,
    naive_maximin,
    naive_predecessors,
    reference_first,
    reference_order,
    reference_vecchia,
    reference_vecchia_graph,
)

RTOL = 1e-9


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


# (id, metric, metric_params); haversine needs 2 features
METRICS = {
    "euclidean": ("euclidean", None),
    "manhattan": ("manhattan", None),
    "chebyshev": ("chebyshev", None),
    "minkowski_p3": ("minkowski", {"p": 3}),
    "minkowski_default": ("minkowski", None),
    "haversine": ("haversine", None),
    "callable": (euclidean_plus_chebyshev, None),
}
EXACT_METRICS = ["euclidean", "manhattan", "chebyshev"]  # exact on integer coordinates
# every metric in 1, 2 and 3 dimensions, haversine in 2 (latitude, longitude) only
METRIC_DIMS = [(m, d) for m in METRICS for d in (1, 2, 3) if m != "haversine" or d == 2]


def uniform(seed, n, d):
    return np.random.default_rng(seed).random((n, d))


def latlon(seed, n):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-1.0, 1.0, n), rng.uniform(-1.5, 1.5, n)])


def data_for(metric_id, seed, n, d):
    if metric_id == "haversine":
        return latlon(seed, n)
    return uniform(seed, n, d)


def integer_grid(seed, n, d, side):
    """Integer coordinates: massive ties and duplicates, distances exact."""
    return np.random.default_rng(seed).integers(0, side, (n, d)).astype(np.float64)


def duplicated(seed, n, d, n_distinct):
    rng = np.random.default_rng(seed)
    return rng.random((n_distinct, d))[rng.integers(0, n_distinct, n)]


def check_maximin_output(order, ls, n):
    """Types, permutation, ``ls[0] = inf`` and non-increasing lengthscales."""
    assert isinstance(order, np.ndarray) and isinstance(ls, np.ndarray)
    assert order.dtype == np.int64, order.dtype
    assert ls.dtype == np.float64, ls.dtype
    assert order.shape == (n,) and ls.shape == (n,)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    assert np.isposinf(ls[0])
    assert np.all(np.isfinite(ls[1:])) and np.all(ls[1:] >= 0)
    assert np.all(np.diff(ls) <= 0), "lengthscales must be non-increasing"


# --------------------------------------------------------------------- maximin_ordering


@pytest.mark.parametrize("first", ["center", "random", 17])
@pytest.mark.parametrize("metric_id, d", METRIC_DIMS)
def test_maximin_matches_naive(metric_id, d, first):
    metric, params = METRICS[metric_id]
    X = data_for(metric_id, 10 * d + 1, 120, d)
    order, ls = maximin_ordering(
        X, metric=metric, metric_params=params, first=first, random_state=5
    )
    check_maximin_output(order, ls, len(X))
    D = metric_distances(X, None, metric, params)
    start = reference_first(X, first, metric, params, random_state=5)
    ref_order, ref_ls = naive_maximin(D, start)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ls, ref_ls, rtol=RTOL)


@pytest.mark.parametrize("d, side", [(1, 7), (2, 5), (3, 4)])
@pytest.mark.parametrize("first", ["random", 0, 41])
@pytest.mark.parametrize("metric_id", EXACT_METRICS)
def test_maximin_integer_grid_exact(metric_id, first, d, side):
    """Massive ties and duplicates: the index tie rule decides everything."""
    metric, params = METRICS[metric_id]
    X = integer_grid(d, 150, d, side)
    order, ls = maximin_ordering(X, metric=metric, first=first, random_state=3)
    check_maximin_output(order, ls, len(X))
    D = metric_distances(X, None, metric, params)
    start = reference_first(X, first, metric, params, random_state=3)
    ref_order, ref_ls = naive_maximin(D, start)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(ls, ref_ls)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("metric_id", EXACT_METRICS)
def test_maximin_center_exact_on_symmetric_grid(metric_id, d):
    """The full grid {0..4}^d twice, shuffled: the mean is exactly 2 in every coordinate.

    Two rows sit at the mean (distance 0); the first one by index is the center.
    """
    metric, _ = METRICS[metric_id]
    axes = [np.arange(5.0)] * d
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    X = np.random.default_rng(d).permutation(np.vstack([grid, grid]))
    expected_first = int(np.flatnonzero(np.all(X == 2.0, axis=1))[0])
    order, ls = maximin_ordering(X, metric=metric)
    check_maximin_output(order, ls, len(X))
    assert order[0] == expected_first
    ref_order, ref_ls = naive_maximin(metric_distances(X, None, metric), expected_first)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(ls, ref_ls)


@pytest.mark.parametrize("metric_id", EXACT_METRICS)
def test_maximin_center_ties_smallest_index(metric_id):
    """The four corners of the unit square are all equally far from their mean."""
    metric, _ = METRICS[metric_id]
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    for perm in ([2, 0, 3, 1], [3, 1, 0, 2]):
        X = corners[perm]
        order, ls = maximin_ordering(X, metric=metric, first="center")
        assert order[0] == 0
        ref_order, ref_ls = naive_maximin(metric_distances(X, None, metric), 0)
        np.testing.assert_array_equal(order, ref_order)
        np.testing.assert_array_equal(ls, ref_ls)
    # 1-D: rows 2 and 3 sit exactly at the mean 1.0
    order, _ = maximin_ordering(np.array([[2.0], [0.0], [1.0], [1.0]]), metric=metric)
    np.testing.assert_array_equal(order, [2, 0, 1, 3])


@pytest.mark.parametrize("metric_id", ["euclidean", "manhattan", "minkowski_p3", "callable"])
def test_maximin_duplicates(metric_id):
    """Distinct values first; then every remaining duplicate at 0, by index."""
    metric, params = METRICS[metric_id]
    X = duplicated(7, 100, 2, 12)
    order, ls = maximin_ordering(X, metric=metric, metric_params=params, first=0)
    check_maximin_output(order, ls, len(X))
    ref_order, ref_ls = naive_maximin(metric_distances(X, None, metric, params), 0)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ls, ref_ls, rtol=RTOL)
    n_distinct = len(np.unique(X, axis=0))
    assert np.all(ls[1:n_distinct] > 0)
    np.testing.assert_array_equal(ls[n_distinct:], 0.0)
    np.testing.assert_array_equal(order[n_distinct:], np.sort(order[n_distinct:]))


@pytest.mark.parametrize("first", ["center", 5])
def test_maximin_identical_rows(first):
    X = np.tile(np.random.default_rng(0).random((1, 3)), (40, 1))
    order, ls = maximin_ordering(X, first=first)
    start = 0 if first == "center" else first  # all rows tie with the mean: smallest index
    np.testing.assert_array_equal(order, [start] + [i for i in range(40) if i != start])
    assert np.isposinf(ls[0])
    np.testing.assert_array_equal(ls[1:], 0.0)


def test_maximin_single_point_and_pair():
    order, ls = maximin_ordering(np.array([[0.3, 0.4]]))
    np.testing.assert_array_equal(order, [0])
    assert np.isposinf(ls[0])
    order, ls = maximin_ordering(np.array([[0.0, 0.0], [3.0, 4.0]]), first=1)
    np.testing.assert_array_equal(order, [1, 0])
    np.testing.assert_array_equal(ls, [np.inf, 5.0])


def test_maximin_random_first_uses_check_random_state():
    X = uniform(2, 90, 2)
    for seed in (0, 1, 7, 123):
        order, _ = maximin_ordering(X, first="random", random_state=seed)
        assert order[0] == check_random_state(seed).randint(len(X))
    a, _ = maximin_ordering(X, first="random", random_state=11)
    b, _ = maximin_ordering(X, first="random", random_state=11)
    np.testing.assert_array_equal(a, b)


def test_maximin_large():
    X = uniform(4, 2000, 2)
    order, ls = maximin_ordering(X)
    check_maximin_output(order, ls, len(X))
    D = metric_distances(X)
    ref_order, ref_ls = naive_maximin(D, reference_first(X, "center"))
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ls, ref_ls, rtol=RTOL)


def test_maximin_n_jobs_invariant():
    X = integer_grid(5, 300, 2, 9)
    a = maximin_ordering(X, first=3, n_jobs=1)
    b = maximin_ordering(X, first=3, n_jobs=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# -------------------------------------------------------------------- vecchia_neighbors

N_SMALL = 60


def _ordering_arg(ordering, n):
    if ordering == "explicit":
        return np.random.default_rng(99).permutation(n)
    if ordering == "explicit_list":
        return np.random.default_rng(98).permutation(n).tolist()
    return ordering


@pytest.mark.parametrize("n_neighbors", [1, 5, N_SMALL - 1, N_SMALL, N_SMALL + 3])
@pytest.mark.parametrize("ordering", ["maximin", "none", "random", "explicit", "explicit_list"])
def test_vecchia_matches_naive(ordering, n_neighbors):
    X = uniform(1, N_SMALL, 2)
    arg = _ordering_arg(ordering, N_SMALL)
    order, nb, dist = vecchia_neighbors(
        X, n_neighbors, ordering=arg, random_state=4, return_distance=True
    )
    ref_order, nb_ref, dist_ref, D = reference_vecchia(X, n_neighbors, arg, random_state=4)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, ref_order)
    assert nb.shape == dist.shape == (N_SMALL, n_neighbors)
    np.testing.assert_array_equal(nb[0], -1)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=RTOL)


def test_vecchia_orderings_are_the_documented_permutations():
    X = uniform(3, 80, 3)
    order, _ = vecchia_neighbors(X, 3, ordering="none")
    np.testing.assert_array_equal(order, np.arange(80))
    order, _ = vecchia_neighbors(X, 3, ordering="random", random_state=21)
    np.testing.assert_array_equal(order, check_random_state(21).permutation(80))
    order, _ = vecchia_neighbors(X, 3)  # default: maximin from the center
    np.testing.assert_array_equal(order, maximin_ordering(X)[0])
    np.testing.assert_array_equal(order, reference_order(X, "maximin"))


@pytest.mark.parametrize("metric_id, d", METRIC_DIMS)
def test_vecchia_metrics(metric_id, d):
    metric, params = METRICS[metric_id]
    X = data_for(metric_id, 100 + d, 100, d)
    order, nb, dist = vecchia_neighbors(
        X, 6, metric=metric, metric_params=params, return_distance=True
    )
    ref_order, nb_ref, dist_ref, D = reference_vecchia(X, 6, "maximin", metric, params)
    np.testing.assert_array_equal(order, ref_order)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=RTOL)


@pytest.mark.parametrize("d, side", [(1, 9), (2, 6), (3, 4)])
@pytest.mark.parametrize("ordering", ["none", "random", "explicit"])
@pytest.mark.parametrize("metric_id", EXACT_METRICS)
def test_vecchia_integer_grid_exact(metric_id, ordering, d, side):
    """Exact distances: neighbours must follow the (distance, index) rule exactly."""
    metric, params = METRICS[metric_id]
    X = integer_grid(d + 10, 150, d, side)
    arg = _ordering_arg(ordering, len(X))
    order, nb, dist = vecchia_neighbors(
        X, 8, ordering=arg, metric=metric, random_state=8, return_distance=True
    )
    ref_order, nb_ref, dist_ref, _ = reference_vecchia(X, 8, arg, metric, params, random_state=8)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(nb, nb_ref)
    np.testing.assert_array_equal(dist, dist_ref)


@pytest.mark.parametrize("metric_id", EXACT_METRICS)
def test_vecchia_integer_grid_maximin_exact(metric_id):
    metric, params = METRICS[metric_id]
    X = integer_grid(31, 200, 2, 6)
    order, nb, dist = vecchia_neighbors(X, 5, metric=metric, return_distance=True)
    D = metric_distances(X, None, metric, params)
    # the center can be tied up to rounding of the mean: take the implementation's
    # first point if it is a valid center, then demand the exact greedy order
    cd = metric_distances(X, X.mean(0)[None], metric, params)[:, 0]
    assert cd[order[0]] <= cd.min() * (1 + 1e-12)
    ref_order, _ = naive_maximin(D, order[0])
    np.testing.assert_array_equal(order, ref_order)
    nb_ref, dist_ref = naive_predecessors(D, ref_order, 5)
    np.testing.assert_array_equal(nb, nb_ref)
    np.testing.assert_array_equal(dist, dist_ref)


@pytest.mark.parametrize("ordering", ["maximin", "random", "none"])
@pytest.mark.parametrize("metric_id", ["euclidean", "chebyshev", "minkowski_p3"])
def test_vecchia_duplicates(metric_id, ordering):
    metric, params = METRICS[metric_id]
    X = duplicated(12, 120, 2, 15)
    order, nb, dist = vecchia_neighbors(
        X,
        7,
        ordering=ordering,
        metric=metric,
        metric_params=params,
        random_state=1,
        return_distance=True,
    )
    ref_order, nb_ref, dist_ref, D = reference_vecchia(
        X, 7, ordering, metric, params, random_state=1
    )
    np.testing.assert_array_equal(order, ref_order)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=RTOL)
    # zero distances are exact: every duplicate's first neighbour is an earlier copy
    np.testing.assert_array_equal(dist == 0.0, dist_ref == 0.0)


def test_vecchia_identical_rows():
    X = np.ones((30, 2))
    order, nb, dist = vecchia_neighbors(X, 4, ordering="none", return_distance=True)
    nb_ref, dist_ref = naive_predecessors(np.zeros((30, 30)), np.arange(30), 4)
    np.testing.assert_array_equal(nb, nb_ref)
    np.testing.assert_array_equal(dist, dist_ref)


def test_vecchia_return_distance_flag():
    X = uniform(6, 50, 2)
    out = vecchia_neighbors(X, 4)
    assert len(out) == 2
    full = vecchia_neighbors(X, 4, return_distance=True)
    assert len(full) == 3
    np.testing.assert_array_equal(out[0], full[0])
    np.testing.assert_array_equal(out[1], full[1])
    assert out[1].dtype == np.int64 and full[2].dtype == np.float64


@pytest.mark.parametrize("n", [1, 2, 3])
def test_vecchia_tiny_inputs(n):
    X = uniform(0, n, 2)
    order, nb, dist = vecchia_neighbors(X, 2, ordering="none", return_distance=True)
    nb_ref, dist_ref = naive_predecessors(metric_distances(X), np.arange(n), 2)
    np.testing.assert_array_equal(order, np.arange(n))
    np.testing.assert_array_equal(nb, nb_ref)
    np.testing.assert_allclose(dist, dist_ref, rtol=RTOL)


def test_vecchia_float32_input_distances_in_float64():
    X = uniform(9, 80, 3).astype(np.float32)
    order, nb, dist = vecchia_neighbors(X, 4, ordering="none", return_distance=True)
    assert dist.dtype == np.float64
    ref_order, nb_ref, dist_ref, D = reference_vecchia(X.astype(np.float64), 4, "none")
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=RTOL)


def test_vecchia_large():
    X = uniform(13, 2000, 3)
    order, nb, dist = vecchia_neighbors(X, 10, return_distance=True)
    ref_order, nb_ref, dist_ref, D = reference_vecchia(X, 10, "maximin")
    np.testing.assert_array_equal(order, ref_order)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=RTOL)


def test_vecchia_n_jobs_invariant():
    X = integer_grid(14, 400, 2, 10)
    a = vecchia_neighbors(X, 6, ordering="random", random_state=0, n_jobs=1, return_distance=True)
    b = vecchia_neighbors(X, 6, ordering="random", random_state=0, n_jobs=2, return_distance=True)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_vecchia_maximin_order_is_valid_greedy():
    """An independent check of the ordering itself (no index tie rule needed)."""
    X = uniform(15, 150, 2)
    order, _ = vecchia_neighbors(X, 3)
    D = metric_distances(X)
    _, ls = maximin_ordering(X)
    assert_maximin_valid(order, ls, D, reference_first(X, "center"), rtol=RTOL)


# -------------------------------------------------------------------- kneighbors_graph


def _rows(G):
    return (
        [G.indices[G.indptr[i] : G.indptr[i + 1]] for i in range(G.shape[0])],
        [G.data[G.indptr[i] : G.indptr[i + 1]] for i in range(G.shape[0])],
    )


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("mode", ["connectivity", "distance"])
@pytest.mark.parametrize(
    "metric, p",
    [
        ("minkowski", 2),
        ("minkowski", 1),
        ("minkowski", 3),
        ("manhattan", 2),
        ("chebyshev", 2),
        ("euclidean", 2),
    ],
)
def test_kneighbors_graph_no_ordering_matches_sklearn(metric, p, mode, include_self):
    X = uniform(20, 90, 3)
    G = kneighbors_graph(X, 5, mode=mode, metric=metric, p=p, include_self=include_self)
    S = sk_kneighbors_graph(X, 5, mode=mode, metric=metric, p=p, include_self=include_self)
    assert type(G) is type(S)
    assert G.format == "csr" and G.shape == S.shape and G.dtype == S.dtype == np.float64
    np.testing.assert_array_equal(G.indptr, S.indptr)
    params = {"p": p} if metric == "minkowski" else None
    D = metric_distances(X, None, metric, params)
    ind, dat = _rows(G)
    ind_s, dat_s = _rows(S)
    # sklearn's euclidean distances are GEMM-based (~1e-8 accurate): ties within 1e-7
    assert_knn_rows_equal(
        ind,
        dat if mode == "distance" else None,
        ind_s,
        D,
        rtol=0,
        atol=1e-7,
        dist_check=mode == "distance",
    )
    if mode == "distance":
        np.testing.assert_allclose(G.data, S.data, rtol=0, atol=1e-7)
        # ours are exact (difference form)
        np.testing.assert_allclose(
            G.data, D[np.repeat(np.arange(90), np.diff(G.indptr)), G.indices], rtol=RTOL
        )
    else:
        np.testing.assert_array_equal(G.data, 1.0)


@pytest.mark.filterwarnings("ignore:Parameter p is found in metric_params")
def test_kneighbors_graph_no_ordering_metric_params():
    X = uniform(21, 60, 2)
    G = kneighbors_graph(X, 4, mode="distance", metric="minkowski", metric_params={"p": 3})
    S = sk_kneighbors_graph(X, 4, mode="distance", metric="minkowski", metric_params={"p": 3})
    np.testing.assert_array_equal(G.indptr, S.indptr)
    ind, dat = _rows(G)
    ind_s, _ = _rows(S)
    assert_knn_rows_equal(
        ind, dat, ind_s, metric_distances(X, None, "minkowski", {"p": 3}), rtol=1e-7
    )


@pytest.mark.parametrize("n_neighbors", [1, 4, 69])
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("mode", ["connectivity", "distance"])
@pytest.mark.parametrize("ordering", ["maximin", "none", "random", "explicit"])
def test_kneighbors_graph_with_ordering(ordering, mode, include_self, n_neighbors):
    X = uniform(22, 70, 2)
    arg = _ordering_arg(ordering, len(X))
    G = kneighbors_graph(
        X, n_neighbors, mode=mode, ordering=arg, include_self=include_self, random_state=6
    )
    order = reference_order(X, arg, random_state=6)
    D = metric_distances(X)
    assert_vecchia_graph_equal(G, D, order, n_neighbors, mode, include_self, rtol=RTOL)
    # the same sets as vecchia_neighbors (same ordering)
    if not include_self:
        o, nb = vecchia_neighbors(X, n_neighbors, ordering=arg, random_state=6)
        np.testing.assert_array_equal(o, order)
        for r, i in enumerate(o):
            row = G.indices[G.indptr[i] : G.indptr[i + 1]]
            np.testing.assert_array_equal(np.sort(row), np.sort(nb[r][nb[r] >= 0]))


@pytest.mark.parametrize(
    "metric, p, params",
    [
        ("minkowski", 1, None),
        ("minkowski", 3, None),
        ("chebyshev", 2, None),
        ("minkowski", 2, {"p": 3}),
    ],
)
def test_kneighbors_graph_with_ordering_metrics(metric, p, params):
    X = uniform(23, 80, 3)
    G = kneighbors_graph(
        X, 5, mode="distance", ordering="maximin", metric=metric, p=p, metric_params=params
    )
    eff = params if params is not None else ({"p": p} if metric == "minkowski" else None)
    order = reference_order(X, "maximin", metric, eff)
    assert_vecchia_graph_equal(
        G, metric_distances(X, None, metric, eff), order, 5, "distance", False, rtol=RTOL
    )


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("mode", ["connectivity", "distance"])
@pytest.mark.parametrize("ordering", ["none", "explicit"])
def test_kneighbors_graph_with_ordering_exact_on_grid(ordering, mode, include_self):
    """Integer data: the CSR arrays themselves must equal the reference, entry order included."""
    X = integer_grid(24, 120, 2, 6)
    arg = _ordering_arg(ordering, len(X))
    G = kneighbors_graph(
        X, 6, mode=mode, ordering=arg, metric="manhattan", include_self=include_self
    )
    order = reference_order(X, arg)
    R = reference_vecchia_graph(
        metric_distances(X, None, "manhattan"), order, 6, mode, include_self
    )
    assert sp.issparse(G) and G.format == "csr" and G.dtype == np.float64
    np.testing.assert_array_equal(G.indptr, R.indptr)
    np.testing.assert_array_equal(G.indices, R.indices)
    np.testing.assert_array_equal(G.data, R.data)


# -------------------------------------------------------------------------- validation

N_BAD = 20


def _bad_orderings():
    n = N_BAD
    perm = np.random.default_rng(0).permutation(n)
    repeated = perm.copy()
    repeated[3] = repeated[4]
    out_of_range = perm.copy()
    out_of_range[perm == 0] = n
    negative = perm.copy()
    negative[perm == 0] = -1
    return {
        "too_short": perm[:-1],
        "too_long": np.append(perm, 0),
        "repeated": repeated,
        "out_of_range": out_of_range,
        "negative": negative,
        "non_integer_float": perm + 0.5,
        "two_d": perm.reshape(4, 5),
        "unknown_string": "reverse",
    }


@pytest.mark.parametrize("case", list(_bad_orderings()))
def test_bad_ordering_raises(case):
    X = uniform(30, N_BAD, 2)
    bad = _bad_orderings()[case]
    with pytest.raises(ValueError):
        vecchia_neighbors(X, 3, ordering=bad)
    with pytest.raises(ValueError):
        kneighbors_graph(X, 3, ordering=bad)


def test_maximin_bad_first_raises():
    X = uniform(33, N_BAD, 2)
    for first in (-1, N_BAD, 2.5, "middle"):
        with pytest.raises(ValueError):
            maximin_ordering(X, first=first)


def test_numpy_integer_n_neighbors_accepted():
    X = uniform(34, N_BAD, 2)
    a = vecchia_neighbors(X, np.int32(3), return_distance=True)
    b = vecchia_neighbors(X, 3, return_distance=True)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("n_neighbors", [0, -1, 2.5, "3", None])
def test_bad_n_neighbors_raises(n_neighbors):
    X = uniform(31, N_BAD, 2)
    with pytest.raises((ValueError, TypeError)) as exc:
        vecchia_neighbors(X, n_neighbors)
    if not isinstance(n_neighbors, str | None):  # spec: ValueError
        assert issubclass(exc.type, ValueError)
    with pytest.raises((ValueError, TypeError)):
        kneighbors_graph(X, n_neighbors, ordering="none")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_data_raises(value):
    X = uniform(32, N_BAD, 2)
    X[7, 1] = value
    with pytest.raises(ValueError):
        vecchia_neighbors(X, 3)
    with pytest.raises(ValueError):
        vecchia_neighbors(X, 3, ordering="none")
    with pytest.raises(ValueError):
        maximin_ordering(X)
    with pytest.raises(ValueError):
        kneighbors_graph(X, 3, ordering="maximin")


@pytest.mark.parametrize(
    "X",
    [np.arange(5.0), np.empty((0, 2)), np.empty((0, 0))],
    ids=["1d", "empty", "empty_0_features"],
)
def test_bad_shapes_raise(X):
    with pytest.raises(ValueError):
        vecchia_neighbors(X, 2)
    with pytest.raises(ValueError):
        vecchia_neighbors(X, 2, ordering="none")
