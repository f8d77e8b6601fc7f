"""The kd-tree engine of the Vecchia functions (``algorithm="kd_tree"``).

Oracles: the O(n^2) greedy maximin ordering and brute-force predecessor
search of ``_vecchia_reference``, and the cover-tree path, which must give
the same answers bit for bit (ordering, lengthscales, neighbours and
distances) on adversarial data: integer grids (ties everywhere),
duplicates, identical rows, huge offsets with tiny scales, float32.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn_pcct import kneighbors_graph, maximin_ordering, vecchia_neighbors
from sklearn_pcct._backends import get_backend
from sklearn_pcct._boxtree import check_box_tree
from sklearn_pcct._compat import InvalidParameterError
from sklearn_pcct._metric import MetricSpec

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _vecchia_reference import (  # noqa: E402
    assert_predecessors_equal,
    metric_distances,
    naive_maximin,
    naive_predecessors,
    reference_first,
)

pytestmark = pytest.mark.kernels  # also run with NUMBA_BOUNDSCHECK=1 in CI

BOX_METRICS = ["euclidean", "manhattan", "chebyshev"]


def _data(kind, n, d, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, d))
    if kind == "grid":  # massive ties, exact distances
        return rng.integers(0, 4, (n, d)).astype(np.float64)
    if kind == "duplicates":
        return rng.random((7, d))[rng.integers(0, 7, n)]
    if kind == "offset_tiny":  # huge offset, tiny spread: rounding-sensitive
        return 1e8 + 1e-6 * rng.random((n, d))
    if kind == "tiny":  # squares of the differences underflow
        return 1e-170 * rng.random((n, d))
    if kind == "huge":  # squares of the differences overflow
        return 1e170 * rng.standard_normal((n, d))
    if kind == "clustered":
        centers = 100.0 * rng.random((5, d))
        return centers[rng.integers(0, 5, n)] + 0.01 * rng.standard_normal((n, d))
    if kind == "float32":
        return rng.random((n, d)).astype(np.float32)
    raise ValueError(kind)


# Exact power-of-two rescaling of the data for the numpy oracle, where its
# sums of squares would under- or overflow (our kernels rescale the same way).
ORACLE_SCALE = {"tiny": 560, "huge": -560}


def _oracle_data(kind, X):
    return np.ldexp(np.asarray(X, dtype=np.float64), ORACLE_SCALE.get(kind, 0))


def _oracle_distances(kind, D):
    return np.ldexp(D, -ORACLE_SCALE.get(kind, 0))


KINDS = ["uniform", "grid", "duplicates", "offset_tiny", "tiny", "huge", "clustered", "float32"]


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 33, 1000])
def test_box_tree_layout(n, d):
    """Permutation, tight boxes, full leaves, owners: checked by brute force."""
    X = _data("duplicates", n, d, seed=n + d)
    be = get_backend("numba")
    tree = be.build_box(X, MetricSpec("euclidean"))
    check_box_tree(tree, X, be.box_leaf_size(d))
    if n >= 2 * be.box_leaf_size(d):  # splits leave no leaf below half full
        sizes = np.bincount(tree.leaf_of)
        assert sizes[sizes > 0].min() >= be.box_leaf_size(d) // 2


def test_box_tree_checker_fails_on_a_broken_box():
    X = _data("uniform", 200, 2)
    be = get_backend("numba")
    tree = be.build_box(X, MetricSpec("euclidean"))
    hi = tree.hi.copy()
    hi[5, 0] += 1e-12
    broken = type(tree)(tree.perm, tree.points, tree.lo, hi, tree.leaf_of, tree.metric)
    with pytest.raises(AssertionError, match="box of node 5"):
        check_box_tree(broken, X, be.box_leaf_size(2))


@pytest.mark.parametrize("first", ["center", 3])
@pytest.mark.parametrize("metric", BOX_METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_kd_maximin_matches_naive(kind, metric, first):
    X = _data(kind, 150, 2, seed=1)
    order, ls = maximin_ordering(X, metric=metric, first=first, algorithm="kd_tree")
    Xo = _oracle_data(kind, X)
    D = metric_distances(Xo, None, metric)
    ref_order, ref_ls = naive_maximin(D, reference_first(Xo, first, metric))
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ls, _oracle_distances(kind, ref_ls), rtol=1e-9)


@pytest.mark.parametrize("ordering", ["maximin", "random", "none"])
@pytest.mark.parametrize("metric", BOX_METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_kd_vecchia_matches_brute_force(kind, metric, ordering):
    X = _data(kind, 150, 3, seed=2)
    order, nb, dist = vecchia_neighbors(
        X, 7, ordering=ordering, metric=metric, algorithm="kd_tree", random_state=0,
        return_distance=True,
    )
    Xo = _oracle_data(kind, X)
    D = metric_distances(Xo, None, metric)
    if ordering == "maximin":
        ref = naive_maximin(D, reference_first(Xo, "center", metric))[0]
        np.testing.assert_array_equal(order, ref)
    nb_ref, dist_ref = naive_predecessors(D, order, 7)
    dist = np.ldexp(dist, ORACLE_SCALE.get(kind, 0))
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=1e-9)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("kind", KINDS)
def test_kd_tree_and_cover_tree_agree_bit_for_bit(kind, d):
    """Same ordering, lengthscales, neighbours and distances, to the last bit."""
    X = _data(kind, 400, d, seed=3)
    for metric in BOX_METRICS:
        a = maximin_ordering(X, metric=metric, algorithm="kd_tree")
        b = maximin_ordering(X, metric=metric, algorithm="cover_tree")
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        for ordering in ("maximin", "random"):
            a = vecchia_neighbors(X, 12, ordering=ordering, metric=metric, random_state=1,
                                  algorithm="kd_tree", return_distance=True)
            b = vecchia_neighbors(X, 12, ordering=ordering, metric=metric, random_state=1,
                                  algorithm="cover_tree", return_distance=True)
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("n", [1, 2, 3, 17])
def test_kd_tiny_inputs_and_wide_sets(n):
    X = _data("grid", n, 2, seed=n)
    for m in (1, n, n + 4):
        a = vecchia_neighbors(X, m, algorithm="kd_tree", return_distance=True)
        b = vecchia_neighbors(X, m, algorithm="cover_tree", return_distance=True)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert a[1].shape == (n, m)


def test_kd_identical_rows():
    X = np.ones((64, 2))
    order, ls = maximin_ordering(X, algorithm="kd_tree")
    np.testing.assert_array_equal(order, np.arange(64))  # center: first minimum
    assert np.isposinf(ls[0]) and np.all(ls[1:] == 0.0)
    _, nb = vecchia_neighbors(X, 3, algorithm="kd_tree")
    np.testing.assert_array_equal(nb[5], [0, 1, 2])  # ties by index


def test_kd_results_do_not_depend_on_threads_or_progress_reports(capsys):
    X = _data("clustered", 3000, 2, seed=4)
    ref = vecchia_neighbors(X, 10, algorithm="kd_tree", n_jobs=1, return_distance=True)
    for n_jobs, verbose in [(2, 0), (-1, 2)]:
        got = vecchia_neighbors(X, 10, algorithm="kd_tree", n_jobs=n_jobs,
                                verbose=verbose, return_distance=True)
        for x, y in zip(ref, got, strict=True):
            np.testing.assert_array_equal(x, y)
    assert "kd-tree" in capsys.readouterr().err
    order, ls = maximin_ordering(X, algorithm="kd_tree", verbose=2)
    np.testing.assert_array_equal(order, ref[0])
    assert "maximin ordering" in capsys.readouterr().err


@pytest.mark.parametrize("metric", BOX_METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_kd_overlapped_ordering_and_sets_equal_the_sequential_ones(kind, metric, monkeypatch):
    """With 2 threads the sets of the ranks already ordered are answered while
    the maximin ordering goes on, on leaves that the ordering fills: forced
    here on small data, in pieces of 5 ranks."""
    import sklearn_pcct._backends._numba as numba_backend
    from sklearn_pcct._backends._numba import _boxes

    X = _data(kind, 700, 2, seed=6)
    kw = dict(metric=metric, algorithm="kd_tree", return_distance=True)
    ref = vecchia_neighbors(X, 9, n_jobs=1, **kw)
    ct = vecchia_neighbors(X, 9, metric=metric, algorithm="cover_tree", return_distance=True)
    monkeypatch.setattr(numba_backend, "_OVERLAP_MIN", 1)
    monkeypatch.setattr(_boxes, "PIECE_MIN", 5)
    calls = []
    real = _boxes.maximin_conditioning
    monkeypatch.setattr(_boxes, "maximin_conditioning",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        got = vecchia_neighbors(X, 9, n_jobs=2, **kw)
        for x, y, z in zip(ref, got, ct, strict=True):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(z, y)
    assert len(calls) == 3  # the overlapped path ran
    g = kneighbors_graph(X, 9, ordering="maximin", mode="distance", metric=metric,
                         algorithm="kd_tree", n_jobs=2)
    g_ref = kneighbors_graph(X, 9, ordering="maximin", mode="distance", metric=metric,
                             algorithm="kd_tree", n_jobs=1)
    assert (g != g_ref).nnz == 0 and len(calls) == 4


def test_kd_overlapped_ordering_at_full_size():
    """The default pieces (n / 64 ranks) on 40,000 clustered points."""
    X = _data("clustered", 40_000, 2, seed=7)
    ref = vecchia_neighbors(X, 20, n_jobs=1, return_distance=True)
    got = vecchia_neighbors(X, 20, n_jobs=2, return_distance=True)
    for x, y in zip(ref, got, strict=True):
        np.testing.assert_array_equal(x, y)
    # a brute-force spot check of some ranks
    order, nb = ref[0], ref[1]
    for r in (1, 2, 50, 999, 20_000, 39_999):
        d = np.sqrt(((X[order[:r]] - X[order[r]]) ** 2).sum(axis=1))
        expect = order[:r][np.lexsort((order[:r], d))][:20]
        np.testing.assert_array_equal(nb[r][: len(expect)], expect)


@pytest.mark.parametrize("ordering", ["maximin", "random"])
@pytest.mark.parametrize("include_self", [False, True])
def test_kd_ordered_graph_equals_cover_tree_graph(ordering, include_self):
    X = _data("grid", 300, 2, seed=5)
    kw = dict(ordering=ordering, mode="distance", include_self=include_self, random_state=2)
    a = kneighbors_graph(X, 6, algorithm="kd_tree", **kw)
    b = kneighbors_graph(X, 6, algorithm="cover_tree", **kw)
    assert (a != b).nnz == 0
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indptr, b.indptr)


@pytest.mark.parametrize("algorithm", ["ball_tree", "Brute", "", None, 1])
def test_bad_algorithm_raises(algorithm):
    X = _data("uniform", 20, 2)
    for call in (
        lambda: maximin_ordering(X, algorithm=algorithm),
        lambda: vecchia_neighbors(X, 3, algorithm=algorithm),
        lambda: kneighbors_graph(X, 3, algorithm=algorithm),
        lambda: kneighbors_graph(X, 3, ordering="none", algorithm=algorithm),
    ):
        with pytest.raises(InvalidParameterError, match="'algorithm' parameter"):
            call()


@pytest.mark.parametrize(
    "metric, params",
    [("haversine", None), ("minkowski", {"p": 3}), ("minkowski", {"p": 2, "w": [1.0, 2.0]}),
     (lambda a, b: float(np.abs(a - b).sum()), None)],
)
def test_kd_tree_refuses_metrics_without_box_bounds(metric, params):
    X = _data("uniform", 30, 2) - 0.5
    with pytest.raises(ValueError, match="algorithm='cover_tree'"):
        vecchia_neighbors(X, 3, metric=metric, metric_params=params, algorithm="kd_tree")
    # "auto" falls back to the cover tree, with the same answer
    got = vecchia_neighbors(X, 3, metric=metric, metric_params=params, return_distance=True)
    ref = vecchia_neighbors(X, 3, metric=metric, metric_params=params, return_distance=True,
                            algorithm="cover_tree")
    for x, y in zip(got, ref, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("metric, p", [("minkowski", 1), ("minkowski", 2), ("minkowski", np.inf),
                                       ("l2", 2), ("cityblock", 2)])
def test_kd_tree_accepts_minkowski_aliases(metric, p):
    X = _data("grid", 80, 2, seed=6)
    a = kneighbors_graph(X, 4, ordering="maximin", metric=metric, p=p, algorithm="kd_tree")
    b = kneighbors_graph(X, 4, ordering="maximin", metric=metric, p=p, algorithm="cover_tree")
    assert (a != b).nnz == 0


def test_auto_picks_the_kd_tree_only_for_box_metrics_in_up_to_64_dimensions(monkeypatch):
    from sklearn_pcct import _core

    built = []
    real_box, real_cover = _core.build_box, _core.build
    monkeypatch.setattr(_core, "build_box", lambda *a, **k: built.append("kd") or real_box(*a, **k))
    monkeypatch.setattr(_core, "build", lambda *a, **k: built.append("cover") or real_cover(*a, **k))
    rng = np.random.default_rng(7)
    vecchia_neighbors(rng.random((50, 64)), 3)
    vecchia_neighbors(rng.random((50, 65)), 3)
    vecchia_neighbors(rng.random((50, 2)), 3, metric="haversine")
    maximin_ordering(rng.random((50, 2)), metric="chebyshev")
    assert built == ["kd", "cover", "cover", "kd"]


@pytest.mark.parametrize("ordering", ["random", "none", "reversed"])
def test_kd_zero_distance_ties_go_to_the_smallest_indices(ordering):
    """Hundreds of copies of one point: every set is the smallest earlier indices.

    A search that stopped at the first k copies (a pruning rule that is not
    strict at the k-th distance) returns copies in tree order instead.
    """
    n, m = 300, 6
    X = np.zeros((n, 2))
    X[250:] = 1.0  # a second group of copies
    arg = np.arange(n)[::-1] if ordering == "reversed" else ordering
    order, nb, dist = vecchia_neighbors(X, m, ordering=arg, random_state=3,
                                        algorithm="kd_tree", return_distance=True)
    group = X[:, 0]
    for r in range(1, n):
        prev = order[:r]
        same = np.sort(prev[group[prev] == group[order[r]]])
        other = np.sort(prev[group[prev] != group[order[r]]])
        want = np.concatenate([same, other])[:m]
        np.testing.assert_array_equal(nb[r, : len(want)], want)
        assert np.all(nb[r, len(want):] == -1)
        np.testing.assert_array_equal(dist[r, : len(same[:m])], 0.0)


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_kd_ties_at_the_kth_distance_go_to_the_smallest_indices(side):
    """Copies at distance exactly 1 on both sides of the last point: the smaller
    indices win, wherever the tree put them (a box exactly at the k-th distance
    must still be searched)."""
    for n_small, n_big, k in [(a, b, k) for a in (3, 6, 20) for b in (3, 9, 20) for k in (2, 5)]:
        X = np.concatenate([np.full(n_small, side), np.full(n_big, -side), [0.0],
                            10.0 + np.arange(40.0)])[:, None]
        q = n_small + n_big
        order = np.concatenate([np.delete(np.arange(len(X)), q), [q]])  # 0.0 comes last
        want = np.concatenate([np.arange(n_small), n_small + np.arange(n_big)])[:k]
        for algorithm in ("kd_tree", "cover_tree"):
            _, nb, dist = vecchia_neighbors(X, k, ordering=order, algorithm=algorithm,
                                            return_distance=True)
            np.testing.assert_array_equal(nb[-1], want, err_msg=f"{n_small} {n_big} {k}")
            np.testing.assert_array_equal(dist[-1], 1.0)
