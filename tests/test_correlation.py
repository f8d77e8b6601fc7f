"""KernelCorrelationDistance and ResidualCorrelationDistance against brute force.

The reference distances (``tests/_vecchia_reference.py``) are computed from
scikit-learn kernel matrices: ``rho = K(X, Y) / sqrt(diag(X) diag(Y))`` and
``d = sqrt(1 - |rho|)``, 0 for identical rows; the residual kernel
``K(X, Y) - K(X, Z) K_ZZ^{-1} K(Z, Y)`` goes through a Cholesky factor.

Kernel correlation distances must agree to ``rtol=1e-9`` (plus ``1e-11``
absolute for the nearest pairs, where ``1 - rho`` cancels); residual
correlation distances to ``1e-7`` absolute (the cancellation is worse, and
the jitter policy may differ by ~1e-10). Orders are compared exactly where
the distances are computed the same way up to rounding, and by the greedy
maximin property (ties within the tolerance) for the residual metric.
"""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)
from sklearn.neighbors import KNeighborsTransformer
from sklearn.neighbors import kneighbors_graph as sk_kneighbors_graph

from sklearn_pcct import (
    KernelCorrelationDistance,
    PCCTNeighbors,
    PCCTTransformer,
    ResidualCorrelationDistance,
    kneighbors_graph,
    maximin_ordering,
    vecchia_neighbors,
)

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _vecchia_reference import (  # noqa: E402
    RefKernelCorrelation,
    RefResidualCorrelation,
    assert_knn_rows_equal,
    assert_maximin_valid,
    assert_predecessors_equal,
    assert_vecchia_graph_equal,
    metric_distances,
    naive_maximin,
    naive_predecessors,
    reference_first,
    reference_order,
)

KC_TOL = dict(rtol=1e-9, atol=1e-11)
RES_TOL = dict(rtol=0.0, atol=1e-7)


def _aniso(d, lo=0.3, hi=0.9):
    return np.linspace(lo, hi, d) if d > 1 else np.array([0.5])


# kernel factories of the number of features; the fast Numba paths first, then generic ones
KERNELS = {
    "rbf": lambda d: RBF(0.4),
    "rbf_aniso": lambda d: RBF(_aniso(d)),
    "matern05": lambda d: Matern(0.4, nu=0.5),
    "matern15": lambda d: Matern(0.4, nu=1.5),
    "matern25": lambda d: Matern(0.4, nu=2.5),
    "matern_inf": lambda d: Matern(0.4, nu=np.inf),
    "matern05_aniso": lambda d: Matern(_aniso(d), nu=0.5),
    "matern15_aniso": lambda d: Matern(_aniso(d), nu=1.5),
    "matern25_aniso": lambda d: Matern(_aniso(d), nu=2.5),
    "const_times_matern15": lambda d: ConstantKernel(2.0) * Matern(0.4, nu=1.5),
    "rbf_times_const": lambda d: RBF(_aniso(d)) * ConstantKernel(0.5),
    "matern25_plus_white": lambda d: Matern(0.4, nu=2.5) + WhiteKernel(0.05),
    "const_rbf_aniso_plus_white": lambda d: ConstantKernel(0.7) * RBF(_aniso(d)) + WhiteKernel(0.1),
    "white_plus_matern15": lambda d: WhiteKernel(0.02) + Matern(0.4, nu=1.5),
    "matern05_length_scale_array_of_one": lambda d: Matern(np.array([0.4]), nu=0.5),
    "generic_const_times_rbf_plus_white": lambda d: (
        ConstantKernel(2.0) * (RBF(0.4) + WhiteKernel(0.05))
    ),
    "generic_const_plus_rbf": lambda d: ConstantKernel(0.3) + RBF(0.4),
    "generic_rbf_times_rbf": lambda d: RBF(0.5) * RBF(_aniso(d, 0.6, 1.2)),
    "generic_rational_quadratic": lambda d: RationalQuadratic(length_scale=0.5, alpha=1.5),
    "generic_matern10": lambda d: Matern(0.4, nu=1.0),
    "generic_dot_product": lambda d: DotProduct(sigma_0=0.1) + ConstantKernel(0.01),
}
# a few kernels also run in 1 and 3 dimensions
KERNEL_DIMS = [(k, 2) for k in KERNELS] + [
    (k, d)
    for k in ("rbf_aniso", "matern15_aniso", "matern05", "generic_rational_quadratic")
    for d in (1, 3)
]


def uniform(seed, n, d):
    return np.random.default_rng(seed).random((n, d))


def centered(seed, n, d):
    """Data around 0, so a dot-product kernel has negative correlations."""
    return np.random.default_rng(seed).random((n, d)) - 0.5


def data_for(kernel_id, seed, n, d):
    return centered(seed, n, d) if "dot_product" in kernel_id else uniform(seed, n, d)


def kc_pair(kernel_id, d):
    kernel = KERNELS[kernel_id](d)
    return KernelCorrelationDistance(kernel), RefKernelCorrelation(kernel)


RESIDUAL_KERNELS = {
    "rbf": lambda d: RBF(0.25),
    "matern15": lambda d: Matern(0.3, nu=1.5),
    "const_matern25_aniso": lambda d: (
        ConstantKernel(1.5) * Matern(np.linspace(0.2, 0.35, d), nu=2.5)
    ),
    "generic_rational_quadratic": lambda d: RationalQuadratic(length_scale=0.25, alpha=2.0),
    # the nugget enters r(x, x) only (K_ZZ and k(x, Z) are cross-covariances)
    "matern15_plus_white": lambda d: Matern(0.3, nu=1.5) + WhiteKernel(0.01),
}

# well separated inducing points: K_ZZ is well conditioned (cond < 10)
INDUCING_POINTS = {
    1: np.array([[0.2], [0.5], [0.8]]),
    2: np.array([[0.2, 0.2], [0.8, 0.2], [0.2, 0.8], [0.8, 0.8], [0.5, 0.5]]),
    3: np.array([[0.2, 0.2, 0.2], [0.8, 0.8, 0.2], [0.8, 0.2, 0.8], [0.2, 0.8, 0.8]]),
}


def inducing_points(d):
    return INDUCING_POINTS[d].copy()


def residual_data(seed, n, d, gap=0.06):
    """Uniform points at least ``gap`` away from the inducing points.

    Near an inducing point the residual variance vanishes and ``1 - rho``
    becomes ill-conditioned: with this gap a ``1e-10`` relative jitter on
    ``K_ZZ`` moves the distances by less than ``2e-8``, well inside
    :data:`RES_TOL`, whichever jitter policy the implementation follows.
    """
    rng = np.random.default_rng(seed)
    Z = INDUCING_POINTS[d]
    rows = []
    while len(rows) < n:
        x = rng.random(d)
        if np.min(np.sqrt(np.sum((Z - x) ** 2, axis=1))) >= gap:
            rows.append(x)
    return np.array(rows)


def res_pair(kernel_id, d, absolute):
    kernel = RESIDUAL_KERNELS[kernel_id](d)
    Z = inducing_points(d)
    return (
        ResidualCorrelationDistance(kernel, Z, absolute=absolute),
        RefResidualCorrelation(kernel, Z, absolute=absolute),
    )


def impl_matrix(metric, X, Y=None):
    """The implementation's distances, through the documented ``metric(a, b)`` call."""
    Y = X if Y is None else Y
    return np.array([[metric(a, b) for b in Y] for a in X], dtype=np.float64)


# ------------------------------------------------------------------ the metric as a callable


@pytest.mark.parametrize("kernel_id", list(KERNELS))
def test_kernel_correlation_call_matches_reference(kernel_id):
    d = 2
    metric, ref = kc_pair(kernel_id, d)
    X = data_for(kernel_id, 1, 12, d)
    X[5] = X[2]  # identical rows: distance exactly 0 (even with a WhiteKernel)
    M = impl_matrix(metric, X)
    D = metric_distances(X, None, ref)
    np.testing.assert_allclose(M, D, **KC_TOL)
    assert M[5, 2] == 0.0 and M[2, 5] == 0.0
    value = metric(X[0], X[1])
    assert isinstance(value, float | np.floating)


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("kernel_id", list(RESIDUAL_KERNELS))
def test_residual_correlation_call_matches_reference(kernel_id, absolute):
    d = 2
    metric, ref = res_pair(kernel_id, d, absolute)
    X = residual_data(2, 10, d)
    X[7] = X[3]
    M = impl_matrix(metric, X)
    np.testing.assert_allclose(M, metric_distances(X, None, ref), **RES_TOL)
    assert M[7, 3] == 0.0


METRIC_PROPERTY_CASES = [
    ("rbf", None),
    ("matern05_aniso", None),
    ("matern25_plus_white", None),
    ("generic_rational_quadratic", None),
    ("generic_dot_product", None),
    ("residual_rbf", True),
    ("residual_rbf", False),
    ("residual_matern15", True),
    ("residual_matern15", False),
]


@pytest.mark.parametrize("case, absolute", METRIC_PROPERTY_CASES)
def test_correlation_metrics_are_metrics(case, absolute):
    """Symmetry, d(x, x) = 0, triangle inequality on all triples, range."""
    d = 2
    if case.startswith("residual_"):
        metric, ref = res_pair(case.removeprefix("residual_"), d, absolute)
        X = residual_data(3, 12, d)  # metric(a, b) refactors K_ZZ: slow
    else:
        metric, ref = kc_pair(case, d)
        X = data_for(case, 3, 16, d)
    upper = np.sqrt(2.0) if absolute is False else 1.0
    for M in (impl_matrix(metric, X), metric_distances(X, None, ref)):
        assert np.all(np.isfinite(M))
        np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-12)
        assert np.all(np.abs(np.diag(M)) <= 1e-7)
        assert M.min() >= 0.0 and M.max() <= upper + 1e-12
        # d(i, k) <= d(i, j) + d(j, k) for all i, j, k
        excess = M[:, None, :] - (M[:, :, None] + M[None, :, :])
        assert excess.max() <= 1e-9, excess.max()
    if absolute is False:  # the signed form reaches beyond 1 for anti-correlated residuals
        assert impl_matrix(metric, X).max() > 1.0


# ----------------------------------------------------------------- maximin and Vecchia


@pytest.mark.parametrize("kernel_id, d", KERNEL_DIMS)
def test_vecchia_kernel_correlation_matches_naive(kernel_id, d):
    metric, ref = kc_pair(kernel_id, d)
    X = data_for(kernel_id, 40 + d, 100, d)
    order, nb, dist = vecchia_neighbors(X, 6, metric=metric, return_distance=True)
    D = metric_distances(X, None, ref)
    start = reference_first(X, "center", ref)
    ref_order, _ = naive_maximin(D, start)
    np.testing.assert_array_equal(order, ref_order)
    nb_ref, dist_ref = naive_predecessors(D, ref_order, 6)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **KC_TOL)


@pytest.mark.parametrize(
    "kernel_id", ["rbf_aniso", "matern15", "const_rbf_aniso_plus_white", "generic_matern10"]
)
@pytest.mark.parametrize("first", ["center", "random", 11])
def test_maximin_kernel_correlation_matches_naive(kernel_id, first):
    d = 2
    metric, ref = kc_pair(kernel_id, d)
    X = data_for(kernel_id, 50, 120, d)
    order, ls = maximin_ordering(X, metric=metric, first=first, random_state=2)
    assert order.dtype == np.int64 and ls.dtype == np.float64
    D = metric_distances(X, None, ref)
    ref_order, ref_ls = naive_maximin(D, reference_first(X, first, ref, random_state=2))
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(ls, ref_ls, **KC_TOL)
    assert np.all(np.diff(ls) <= 0) and np.all(ls[1:] <= 1.0)


@pytest.mark.parametrize("n_neighbors", [1, 5, 39, 40, 43])
@pytest.mark.parametrize("ordering", ["none", "random", "explicit"])
def test_vecchia_kernel_correlation_orderings(ordering, n_neighbors):
    n = 40
    metric, ref = kc_pair("matern25_aniso", 2)
    X = uniform(8, n, 2)
    arg = np.random.default_rng(5).permutation(n) if ordering == "explicit" else ordering
    order, nb, dist = vecchia_neighbors(
        X, n_neighbors, ordering=arg, metric=metric, random_state=9, return_distance=True
    )
    ref_order = reference_order(X, arg, random_state=9)
    np.testing.assert_array_equal(order, ref_order)
    D = metric_distances(X, None, ref)
    nb_ref, dist_ref = naive_predecessors(D, ref_order, n_neighbors)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **KC_TOL)


@pytest.mark.parametrize("kernel_id", ["rbf", "matern15_aniso", "matern25_plus_white"])
def test_vecchia_kernel_correlation_duplicates(kernel_id):
    """Identical rows are at distance 0 (also with a WhiteKernel) and are ordered last."""
    metric, ref = kc_pair(kernel_id, 2)
    rng = np.random.default_rng(17)
    X = rng.random((15, 2))[rng.integers(0, 15, 90)]
    order, nb, dist = vecchia_neighbors(X, 5, metric=metric, return_distance=True)
    D = metric_distances(X, None, ref)
    ref_order, _ = naive_maximin(D, reference_first(X, "center", ref))
    np.testing.assert_array_equal(order, ref_order)
    nb_ref, dist_ref = naive_predecessors(D, ref_order, 5)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **KC_TOL)
    np.testing.assert_array_equal(dist == 0.0, dist_ref == 0.0)
    n_distinct = len(np.unique(X, axis=0))
    assert np.all(dist[n_distinct:, 0] == 0.0)


def test_vecchia_kernel_correlation_large():
    d = 3
    kernel = ConstantKernel(2.0) * Matern(_aniso(d), nu=2.5)
    metric, ref = KernelCorrelationDistance(kernel), RefKernelCorrelation(kernel)
    X = uniform(60, 2000, d)
    order, nb, dist = vecchia_neighbors(X, 10, metric=metric, return_distance=True)
    D = metric_distances(X, None, ref)
    ref_order, _ = naive_maximin(D, reference_first(X, "center", ref))
    np.testing.assert_array_equal(order, ref_order)
    nb_ref, dist_ref = naive_predecessors(D, ref_order, 10)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **KC_TOL)


def test_kernel_correlation_float32_input():
    metric, ref = kc_pair("matern15_aniso", 2)
    X = uniform(61, 80, 2).astype(np.float32)
    order, nb, dist = vecchia_neighbors(X, 4, ordering="none", metric=metric, return_distance=True)
    assert dist.dtype == np.float64
    X64 = X.astype(np.float64)
    D = metric_distances(X64, None, ref)
    nb_ref, dist_ref = naive_predecessors(D, np.arange(80), 4)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **KC_TOL)


def test_uncorrelated_points_tie_by_index():
    """Grid points far apart on the length scale: every distance is exactly 1 (or 0 for
    duplicates), so orders and neighbours follow the index tie rule exactly."""
    rng = np.random.default_rng(63)
    X = rng.integers(0, 6, (120, 2)) / 10.0  # duplicates; distinct points >= 0.1 apart
    for kernel in (RBF(1e-3), ConstantKernel(3.0) * Matern(1e-3, nu=2.5)):
        metric, ref = KernelCorrelationDistance(kernel), RefKernelCorrelation(kernel)
        D = metric_distances(X, None, ref)
        assert set(np.unique(D)) == {0.0, 1.0}
        order, nb, dist = vecchia_neighbors(X, 5, metric=metric, return_distance=True)
        ref_order, _ = naive_maximin(D, reference_first(X, "center", ref))
        np.testing.assert_array_equal(order, ref_order)
        nb_ref, dist_ref = naive_predecessors(D, ref_order, 5)
        np.testing.assert_array_equal(nb, nb_ref)
        np.testing.assert_array_equal(dist, dist_ref)
        o, ls = maximin_ordering(X, metric=metric, first=7)
        ref_o, ref_ls = naive_maximin(D, 7)
        np.testing.assert_array_equal(o, ref_o)
        np.testing.assert_array_equal(ls, ref_ls)


@pytest.mark.parametrize(
    "metric",
    [
        KernelCorrelationDistance(Matern(_aniso(2), nu=1.5)),
        KernelCorrelationDistance(RationalQuadratic(0.5, alpha=1.5)),
        ResidualCorrelationDistance(RationalQuadratic(0.25, alpha=2.0), inducing_points(2)),
    ],
    ids=["fast", "generic", "residual_generic"],
)
def test_correlation_n_jobs_invariant(metric):
    """The generic path calls back into Python: it must also work from parallel threads."""
    X = residual_data(64, 150, 2)
    a = vecchia_neighbors(X, 6, metric=metric, n_jobs=1, return_distance=True)
    b = vecchia_neighbors(X, 6, metric=metric, n_jobs=2, return_distance=True)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    Q = residual_data(65, 40, 2)
    r1 = PCCTNeighbors(n_neighbors=4, metric=metric, n_jobs=1).fit(X).kneighbors(Q)
    r2 = PCCTNeighbors(n_neighbors=4, metric=metric, n_jobs=2).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(r1[1], r2[1])
    np.testing.assert_allclose(r1[0], r2[0], rtol=1e-12)


def test_isotropic_rbf_neighbours_are_euclidean_neighbours():
    """RBF correlation decreases with distance: same predecessors as euclidean (§9.6)."""
    X = uniform(62, 150, 2)
    _, nb_e = vecchia_neighbors(X, 5, ordering="none")
    _, nb_c = vecchia_neighbors(X, 5, ordering="none", metric=KernelCorrelationDistance(RBF(0.5)))
    np.testing.assert_array_equal(nb_c, nb_e)


@pytest.mark.parametrize("ordering", ["maximin", "random"])
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("kernel_id", list(RESIDUAL_KERNELS))
def test_vecchia_residual_matches_naive(kernel_id, absolute, ordering):
    d = 2
    metric, ref = res_pair(kernel_id, d, absolute)
    X = residual_data(70, 80, d)
    order, nb, dist = vecchia_neighbors(
        X, 5, ordering=ordering, metric=metric, random_state=3, return_distance=True
    )
    D = metric_distances(X, None, ref)
    if ordering == "maximin":
        _, ls = maximin_ordering(X, metric=metric)
        center_d = metric_distances(X, X.mean(0)[None], ref)[:, 0]
        assert center_d[order[0]] <= center_d.min() + RES_TOL["atol"]
        assert_maximin_valid(order, ls, D, **RES_TOL)
    else:
        np.testing.assert_array_equal(order, reference_order(X, "random", random_state=3))
    nb_ref, dist_ref = naive_predecessors(D, order, 5)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **RES_TOL)
    upper = 1.0 if absolute else np.sqrt(2.0)
    assert np.all(dist[np.isfinite(dist)] <= upper + 1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_vecchia_residual_other_dimensions(d):
    metric, ref = res_pair("const_matern25_aniso", d, True)
    X = residual_data(71 + d, 70, d)
    order, nb, dist = vecchia_neighbors(X, 4, ordering="none", metric=metric, return_distance=True)
    D = metric_distances(X, None, ref)
    nb_ref, dist_ref = naive_predecessors(D, np.arange(70), 4)
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **RES_TOL)


def test_residual_singular_inducing_matrix_uses_jitter():
    """A repeated inducing point makes K_ZZ singular: jitter is needed, and suffices."""
    Z = np.vstack([inducing_points(2), inducing_points(2)[1:2]])
    X = residual_data(73, 30, 2)
    for kernel in (RBF(0.25), Matern(0.3, nu=1.5)):
        metric = ResidualCorrelationDistance(kernel, Z)
        ref = RefResidualCorrelation(kernel, Z)
        np.testing.assert_allclose(
            impl_matrix(metric, X[:12]), metric_distances(X[:12], None, ref), **RES_TOL
        )
        order, nb, dist = vecchia_neighbors(
            X, 4, ordering="none", metric=metric, return_distance=True
        )
        D = metric_distances(X, None, ref)
        nb_ref, dist_ref = naive_predecessors(D, order, 4)
        assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, **RES_TOL)


def test_residual_with_nugget_accepts_inducing_point_data():
    """With a WhiteKernel the residual variance at an inducing point is the nugget (> 0)."""
    kernel = Matern(0.4, nu=1.5) + WhiteKernel(0.01)
    Z = inducing_points(2)
    X = np.vstack([residual_data(72, 40, 2), Z[:2]])
    for absolute in (True, False):
        metric = ResidualCorrelationDistance(kernel, Z, absolute=absolute)
        order, nb, dist = vecchia_neighbors(X, 4, metric=metric, return_distance=True)
        finite = dist[nb >= 0]
        assert np.all(np.isfinite(finite)) and np.all(finite >= 0)
        assert np.all(finite <= (1.0 if absolute else np.sqrt(2.0)) + 1e-12)
        M = impl_matrix(metric, X[-3:])
        assert np.all(np.diag(M) <= 1e-7)


# ------------------------------------------------------------------------ kneighbors_graph


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_kneighbors_graph_kernel_correlation(mode, include_self):
    metric, ref = kc_pair("const_rbf_aniso_plus_white", 2)
    X = uniform(80, 70, 2)
    D = metric_distances(X, None, ref)
    G = kneighbors_graph(
        X, 4, mode=mode, ordering="maximin", metric=metric, include_self=include_self
    )
    order = reference_order(X, "maximin", ref)
    assert_vecchia_graph_equal(G, D, order, 4, mode, include_self, **KC_TOL)
    # without an ordering: sklearn's k-NN graph on the precomputed distances
    G = kneighbors_graph(X, 4, mode=mode, metric=metric, include_self=include_self)
    S = sk_kneighbors_graph(D, 4, mode=mode, metric="precomputed", include_self=include_self)
    np.testing.assert_array_equal(G.indptr, S.indptr)
    rows = [G.indices[G.indptr[i] : G.indptr[i + 1]] for i in range(70)]
    vals = [G.data[G.indptr[i] : G.indptr[i + 1]] for i in range(70)]
    ref_rows = [S.indices[S.indptr[i] : S.indptr[i + 1]] for i in range(70)]
    assert_knn_rows_equal(rows, vals, ref_rows, D, dist_check=mode == "distance", **KC_TOL)


def test_kneighbors_graph_residual():
    metric, ref = res_pair("matern15", 2, False)
    X = residual_data(81, 60, 2)
    G = kneighbors_graph(X, 5, mode="distance", ordering="random", metric=metric, random_state=4)
    order = reference_order(X, "random", random_state=4)
    assert_vecchia_graph_equal(
        G, metric_distances(X, None, ref), order, 5, "distance", False, **RES_TOL
    )


# ---------------------------------------------------------------------------- estimators


def _reference_knn(D, k):
    idx = np.broadcast_to(np.arange(D.shape[1]), D.shape)
    return np.lexsort((idx, D), axis=-1)[:, :k]


ESTIMATOR_CASES = [
    "rbf",
    "matern15_aniso",
    "matern25_plus_white",
    "generic_rational_quadratic",
    "residual_abs",
    "residual_signed",
]


def _estimator_data(case, seed, n, d=2):
    return residual_data(seed, n, d) if case.startswith("residual") else uniform(seed, n, d)


def _estimator_metric(case, d=2):
    if case == "residual_abs":
        return res_pair("matern15", d, True)
    if case == "residual_signed":
        return res_pair("rbf", d, False)
    if case == "residual_generic":
        return res_pair("generic_rational_quadratic", d, True)
    return kc_pair(case, d)


@pytest.mark.parametrize("case", ESTIMATOR_CASES)
def test_pcct_neighbors_with_correlation_metric(case):
    metric, ref = _estimator_metric(case)
    tol = RES_TOL if case.startswith("residual") else KC_TOL
    X = _estimator_data(case, 90, 150)
    Q = _estimator_data(case, 91, 25)
    Q[3] = X[10]  # a query equal to a fitted point: distance exactly 0
    nn = PCCTNeighbors(n_neighbors=6, metric=metric).fit(X)
    dist, ind = nn.kneighbors(Q)
    D = metric_distances(Q, X, ref)
    assert_knn_rows_equal(ind, dist, _reference_knn(D, 6), D, **tol)
    assert ind[3, 0] == 10 and dist[3, 0] == 0.0
    # kneighbors() on the fitted samples excludes each sample itself
    dist, ind = nn.kneighbors()
    DX = metric_distances(X, None, ref)
    DX_self = DX + np.diag(np.full(len(X), np.inf))
    assert_knn_rows_equal(ind, dist, _reference_knn(DX_self, 6), DX_self, **tol)
    # radius queries: every sample within the radius, nothing else (boundary ties aside)
    radius = float(np.median(np.sort(D, axis=1)[:, 4]))
    rdist, rind = nn.radius_neighbors(Q, radius=radius)
    atol = tol["atol"] + tol["rtol"] * radius
    for i in range(len(Q)):
        must = set(np.flatnonzero(D[i] < radius - atol))
        may = set(np.flatnonzero(D[i] <= radius + atol))
        got = set(rind[i].tolist())
        assert must <= got <= may, (i, sorted(must - got), sorted(got - may))
        np.testing.assert_allclose(rdist[i], D[i, rind[i]], rtol=tol["rtol"], atol=tol["atol"])


@pytest.mark.parametrize(
    "case", ["matern15_aniso", "generic_rational_quadratic", "residual_signed"]
)
def test_pcct_neighbors_updates_with_correlation_metric(case):
    """partial_fit and remove keep answering like brute force on the live samples."""
    metric, ref = _estimator_metric(case)
    tol = RES_TOL if case.startswith("residual") else KC_TOL
    X = _estimator_data(case, 96, 150)
    Q = _estimator_data(case, 97, 20)
    nn = PCCTNeighbors(n_neighbors=5, metric=metric).fit(X[:100])
    nn.partial_fit(X[100:])
    D = metric_distances(Q, X, ref)
    dist, ind = nn.kneighbors(Q)
    assert_knn_rows_equal(ind, dist, _reference_knn(D, 5), D, **tol)
    removed = np.arange(0, 150, 3)
    nn.remove(removed)
    D[:, removed] = np.inf
    dist, ind = nn.kneighbors(Q)
    assert_knn_rows_equal(ind, dist, _reference_knn(D, 5), D, **tol)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize("case", ["matern25_aniso", "residual_abs"])
def test_pcct_transformer_with_correlation_metric(case, mode):
    metric, ref = _estimator_metric(case)
    tol = RES_TOL if case.startswith("residual") else KC_TOL
    X = _estimator_data(case, 92, 100)
    Q = _estimator_data(case, 93, 20)
    ours = PCCTTransformer(n_neighbors=5, mode=mode, metric=metric).fit(X)
    theirs = KNeighborsTransformer(n_neighbors=5, mode=mode, metric="precomputed")
    theirs.fit(metric_distances(X, None, ref))
    for A, Dq in [
        (ours.transform(Q), metric_distances(Q, X, ref)),
        (ours.transform(X), metric_distances(X, None, ref)),
    ]:
        B = theirs.transform(Dq)
        assert A.format == "csr" and A.shape == B.shape
        np.testing.assert_array_equal(A.indptr, B.indptr)
        rows = [A.indices[A.indptr[i] : A.indptr[i + 1]] for i in range(A.shape[0])]
        vals = [A.data[A.indptr[i] : A.indptr[i + 1]] for i in range(A.shape[0])]
        ref_rows = [B.indices[B.indptr[i] : B.indptr[i + 1]] for i in range(B.shape[0])]
        assert_knn_rows_equal(rows, vals, ref_rows, Dq, dist_check=mode == "distance", **tol)
    G = PCCTTransformer(n_neighbors=5, mode=mode, metric=metric).fit_transform(X)
    np.testing.assert_array_equal(G.indptr, ours.transform(X).indptr)


@pytest.mark.parametrize(
    "case", ["matern15_aniso", "generic_rational_quadratic", "residual_signed", "residual_generic"]
)
def test_estimator_with_correlation_metric_pickles(case):
    metric, _ = _estimator_metric(case)
    X = _estimator_data(case, 94, 120)
    Q = _estimator_data(case, 95, 15)
    nn = PCCTNeighbors(n_neighbors=4, metric=metric).fit(X)
    dist, ind = nn.kneighbors(Q)
    nn2 = pickle.loads(pickle.dumps(nn))
    dist2, ind2 = nn2.kneighbors(Q)
    np.testing.assert_array_equal(ind2, ind)
    np.testing.assert_array_equal(dist2, dist)
    # the metric object alone, and an unfitted clone
    metric2 = pickle.loads(pickle.dumps(metric))
    assert metric2(X[0], X[1]) == metric(X[0], X[1])
    dist3, ind3 = clone(nn).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind3, ind)
    np.testing.assert_allclose(dist3, dist, rtol=1e-12)
    tr = PCCTTransformer(n_neighbors=4, metric=metric).fit(X)
    tr2 = pickle.loads(pickle.dumps(tr))
    A, B = tr.transform(Q), tr2.transform(Q)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_array_equal(A.data, B.data)


# ---------------------------------------------------------------------------- bad input


def _all_uses(metric, X):
    """Every public entry point must reject the metric on these data."""
    calls = {
        "vecchia_neighbors": lambda: vecchia_neighbors(X, 3, metric=metric),
        "vecchia_neighbors_none": lambda: vecchia_neighbors(X, 3, ordering="none", metric=metric),
        "maximin_ordering": lambda: maximin_ordering(X, metric=metric),
        "kneighbors_graph": lambda: kneighbors_graph(X, 3, ordering="maximin", metric=metric),
        "PCCTNeighbors.fit": lambda: PCCTNeighbors(n_neighbors=3, metric=metric).fit(X),
        "PCCTTransformer.fit": lambda: PCCTTransformer(n_neighbors=3, metric=metric).fit(X),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"{name} accepted the data")


@pytest.mark.parametrize(
    "kernel",
    [
        ConstantKernel(0.0) * RBF(),
        ConstantKernel(0.0) * Matern(nu=1.5),
        ConstantKernel(0.0) * RationalQuadratic(),
    ],
    ids=["rbf", "matern15", "generic"],
)
def test_zero_variance_kernel_raises(kernel):
    X = uniform(100, 20, 2)
    metric = KernelCorrelationDistance(kernel)
    _all_uses(metric, X)
    with pytest.raises(ValueError):
        metric(X[0], X[1])


@pytest.mark.parametrize(
    "kernel", [RBF([0.5, 0.5, 0.5]), Matern([0.5, 0.5, 0.5], nu=2.5)], ids=["rbf", "matern25"]
)
def test_length_scale_length_mismatch_raises(kernel):
    _all_uses(KernelCorrelationDistance(kernel), uniform(101, 20, 2))


def test_inducing_points_wrong_features_raises():
    metric = ResidualCorrelationDistance(RBF(0.3), inducing_points(3))
    _all_uses(metric, uniform(102, 20, 2))


@pytest.mark.parametrize(
    "kernel", [RBF(0.3), ConstantKernel(2.0) * Matern(0.4, nu=1.5)], ids=["rbf", "const_matern15"]
)
def test_data_point_at_inducing_point_without_nugget_raises(kernel):
    Z = inducing_points(2)
    X = np.vstack([residual_data(103, 20, 2), Z[2:3]])
    # the reference agrees that the residual variance vanishes there
    with pytest.raises(ValueError):
        RefResidualCorrelation(kernel, Z).variances(X)
    metric = ResidualCorrelationDistance(kernel, Z)
    _all_uses(metric, X)
    # also when the point arrives later: as an update or as a query
    nn = PCCTNeighbors(n_neighbors=3, metric=metric).fit(X[:-1])
    with pytest.raises(ValueError):
        nn.partial_fit(Z[2:3])
    with pytest.raises(ValueError):
        nn.kneighbors(Z[2:3])
    with pytest.raises(ValueError):
        metric(Z[2], X[0])
