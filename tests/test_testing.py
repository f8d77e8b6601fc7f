"""The brute-force oracles and tie-aware assertions of sklearn_pcct._testing."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct._metric import MetricSpec
from sklearn_pcct._testing import (
    assert_knn_equal,
    assert_radius_equal,
    brute_force_knn,
    brute_force_radius,
)

EUCLIDEAN = MetricSpec("euclidean")


def _rows(*rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r) for r in rows]
    return out


def test_brute_force_knn_orders_ties_by_index(rng):
    X = rng.integers(0, 3, (200, 2)).astype(np.float64)
    Q = rng.integers(0, 3, (20, 2)).astype(np.float64)
    D = np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    order = np.argsort(D, axis=1, kind="stable")  # stable: ties by index
    for k in (1, 7, 200):
        dist, ind = brute_force_knn(X, Q, k, EUCLIDEAN)
        np.testing.assert_array_equal(ind, order[:, :k])
        np.testing.assert_array_equal(dist, np.take_along_axis(D, order[:, :k], axis=1))


def test_brute_force_knn_exclude_self_matches_sklearn_rule(rng):
    # duplicates: sklearn drops the sample itself, or the first column when
    # more duplicates than neighbours push it out of the k + 1 nearest
    X = rng.random((5, 2))[rng.integers(0, 5, 60)]
    for k in (1, 3, 30):
        dist, ind = brute_force_knn(X, None, k, EUCLIDEAN, exclude_self=True)
        full_d, full_i = brute_force_knn(X, X, k + 1, EUCLIDEAN)
        for i in range(len(X)):
            row = list(full_i[i])
            row.remove(i if i in row else row[0])
            np.testing.assert_array_equal(ind[i], row)
        assert not np.any(ind == np.arange(len(X))[:, None])
        _, ind_sk = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors()
        assert_knn_equal(dist, ind, dist, ind_sk)  # same sets up to ties
    with pytest.raises(ValueError):
        brute_force_knn(X, X, 2, EUCLIDEAN, exclude_self=True)


def test_brute_force_radius_is_inclusive():
    X = np.array([[0.0], [1.0], [2.0], [1.0]])
    dist, ind = brute_force_radius(X, np.array([[0.0], [1.0]]), [1.0, 0.0], MetricSpec("manhattan"))
    np.testing.assert_array_equal(ind[0], [0, 1, 3])
    np.testing.assert_array_equal(dist[0], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(ind[1], [1, 3])
    dist, ind = brute_force_radius(X, None, 0.0, MetricSpec("manhattan"), exclude_self=True)
    np.testing.assert_array_equal(ind[1], [3])
    assert ind[0].size == 0 and ind[0].dtype == np.int64


def test_assert_knn_equal_tie_handling():
    d = np.array([[0.0, 1.0, 1.0, 2.0, 3.0, 3.0]])
    ref = np.array([[5, 1, 2, 9, 4, 7]])
    assert_knn_equal(d, np.array([[5, 2, 1, 9, 4, 7]]), d, ref)  # permuted inner tie
    assert_knn_equal(d, np.array([[5, 2, 1, 9, 8, 0]]), d, ref)  # cut-off last group
    with pytest.raises(AssertionError, match="outside tied distances"):
        assert_knn_equal(d, np.array([[5, 2, 3, 9, 4, 7]]), d, ref)  # wrong tie member
    with pytest.raises(AssertionError, match="outside tied distances"):
        assert_knn_equal(d, np.array([[5, 1, 2, 6, 4, 7]]), d, ref)  # wrong untied
    with pytest.raises(AssertionError, match="repeated"):
        assert_knn_equal(d, np.array([[5, 1, 2, 9, 4, 4]]), d, ref)
    with pytest.raises(AssertionError, match="distance"):
        assert_knn_equal(d + 1e-9, ref, d, ref)
    assert_knn_equal(d + 1e-9, ref, d, ref, rtol=0, atol=1e-8)


def test_assert_knn_equal_recomputes_distances():
    X = np.array([[0.0], [1.0], [1.0], [3.0]])
    Q = np.array([[0.0]])
    dist, ind = brute_force_knn(X, Q, 2, EUCLIDEAN)
    # index 3 is not at distance 1: rejected once the data are given
    assert_knn_equal(dist, np.array([[0, 3]]), dist, ind)
    with pytest.raises(AssertionError, match="lies at"):
        assert_knn_equal(dist, np.array([[0, 3]]), dist, ind, X_fit=X, X_query=Q, metric_spec=EUCLIDEAN)
    assert_knn_equal(dist, np.array([[0, 2]]), dist, ind, X_fit=X, X_query=Q, metric_spec=EUCLIDEAN)


def test_assert_radius_equal_boundary():
    ref_d, ref_i = _rows([0.0, 1.0, 1.0 + 1e-12]), _rows([4, 2, 7])
    # points tied with the radius (within rtol) may be present or absent
    assert_radius_equal(_rows([1.0, 0.0]), _rows([2, 4]), ref_d, ref_i, 1.0)
    assert_radius_equal(_rows([0.0, 1.0 + 1e-12]), _rows([4, 7]), ref_d, ref_i, 1.0)
    # ... but not with an exact boundary
    with pytest.raises(AssertionError, match=r"missing \[2\]"):
        assert_radius_equal(_rows([0.0]), _rows([4]), ref_d, ref_i, 1.0, rtol=0)
    with pytest.raises(AssertionError, match=r"extra \[7\]"):
        assert_radius_equal(
            _rows([0.0, 1.0, 1.0 + 1e-12]), _rows([4, 2, 7]), ref_d, ref_i, 1.0, rtol=0
        )
    with pytest.raises(AssertionError, match="not sorted"):
        assert_radius_equal(_rows([1.0, 0.0]), _rows([2, 4]), ref_d, ref_i, 1.0, sorted_rows=True)
    with pytest.raises(AssertionError, match="expected"):
        assert_radius_equal(_rows([0.5, 0.0]), _rows([2, 4]), ref_d, ref_i, 1.0)
