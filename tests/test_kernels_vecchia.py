"""Kernel-level checks of the maximin and ordered k-NN kernels.

Marked ``kernels`` so CI also runs them with ``NUMBA_BOUNDSCHECK=1``: small
inputs that reach every branch (duplicates, ties, a generic-kernel callback,
the residual embedding) against the O(n^2) references.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import Matern, RationalQuadratic, WhiteKernel

from sklearn_pcct import (
    KernelCorrelationDistance,
    ResidualCorrelationDistance,
    maximin_ordering,
    vecchia_neighbors,
)

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _vecchia_reference import (  # noqa: E402
    metric_distances,
    naive_maximin,
    naive_predecessors,
)

pytestmark = pytest.mark.kernels


def _data(kind, rng):
    if kind == "grid":  # exact ties everywhere
        return rng.integers(0, 4, (60, 2)).astype(np.float64)
    if kind == "duplicates":
        return rng.random((8, 3))[rng.integers(0, 8, 70)]
    return rng.random((80, 2))


@pytest.mark.parametrize("kind", ["uniform", "grid", "duplicates"])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
def test_maximin_and_predecessors_kernels(kind, metric):
    X = _data(kind, np.random.default_rng(0))
    D = metric_distances(X, None, metric)
    order, ell = maximin_ordering(X, metric=metric, first=3)
    ref_order, ref_ell = naive_maximin(D, 3)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ell, ref_ell, rtol=1e-12)
    for ordering in (order, np.random.default_rng(1).permutation(len(X))):
        got_order, nb, dist = vecchia_neighbors(
            X, 7, ordering=ordering, metric=metric, return_distance=True
        )
        ref_nb, ref_dist = naive_predecessors(D, got_order, 7)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)
        if kind != "uniform":  # ties: compare the distances of the chosen points
            rows = np.repeat(got_order[:, None], 7, axis=1)
            chosen = np.where(nb >= 0, D[rows, np.maximum(nb, 0)], np.inf)
            np.testing.assert_allclose(chosen, ref_dist, rtol=1e-12)
        else:
            np.testing.assert_array_equal(nb, ref_nb)


@pytest.mark.parametrize(
    "metric",
    [
        KernelCorrelationDistance(Matern([0.2, 0.4], nu=2.5) + WhiteKernel(0.05)),
        KernelCorrelationDistance(RationalQuadratic(0.3)),
        ResidualCorrelationDistance(Matern(0.3, nu=0.5), np.array([[0.3, 0.3], [0.7, 0.6]])),
    ],
    ids=["fast", "generic", "residual"],
)
def test_correlation_kernels(metric):
    X = np.random.default_rng(2).random((50, 2))
    D = metric.pairwise(X)
    order, nb, dist = vecchia_neighbors(X, 5, metric=metric, return_distance=True)
    ref_nb, ref_dist = naive_predecessors(D, order, 5)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(nb, ref_nb)
    ref_order, _ = naive_maximin(D, int(order[0]))
    np.testing.assert_array_equal(order, ref_order)
