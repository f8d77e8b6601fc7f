"""The brute-force engine of the Vecchia conditioning sets (``algorithm="brute"``).

Oracles: the cover-tree path, which must give the same answers bit for bit
(ordering, neighbours and distances: both evaluate the same distance
function), and the O(n^2) NumPy references of ``_vecchia_reference``
(scikit-learn kernel matrices). The residual-correlation path selects its
candidates with approximate distances (a BLAS matrix product and a
polynomial exponential) and error bounds, so it is tried where those bounds
are stressed: small residual variances (points next to inducing points),
duplicates, coordinates whose squared differences underflow, huge
offsets, uncorrelated points (distance ties at 1), the signed form.
"""

import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)
from threadpoolctl import threadpool_info

from sklearn_pcct import (
    KernelCorrelationDistance,
    ResidualCorrelationDistance,
    kneighbors_graph,
    maximin_ordering,
    vecchia_neighbors,
)
from sklearn_pcct._backends._numba import _kernels_brute as kb
from sklearn_pcct._backends._numba import _metrics as km
from sklearn_pcct._compat import InvalidParameterError

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _vecchia_reference import (  # noqa: E402
    RefResidualCorrelation,
    assert_predecessors_equal,
    metric_distances,
    naive_predecessors,
)

pytestmark = pytest.mark.kernels  # also run with NUMBA_BOUNDSCHECK=1 in CI


def _residual(kernel, Z, absolute=True):
    return ResidualCorrelationDistance(kernel, Z, absolute=absolute)


def _inducing(rng, m, d):
    return rng.random((m, d))


RESIDUAL_KERNELS = {
    "rbf": RBF(0.2),
    "matern05": Matern(0.2, nu=0.5),
    "matern15": Matern(0.15, nu=1.5),
    "matern25_aniso_const": ConstantKernel(2.5) * Matern([0.1, 0.3], nu=2.5),
    "matern15_plus_white": Matern(0.2, nu=1.5) + WhiteKernel(0.05),
}


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype, (x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y)


def _both(X, k, **kw):
    """``(brute, cover tree)`` results of vecchia_neighbors with distances."""
    got = vecchia_neighbors(X, k, algorithm="brute", return_distance=True, **kw)
    ref = vecchia_neighbors(X, k, algorithm="cover_tree", return_distance=True, **kw)
    return got, ref


# -- the approximate correlation and its error bound ---------------------------

@pytest.mark.parametrize("kind", [km.RBF, km.MATERN05, km.MATERN15, km.MATERN25])
def test_correlation_approx_is_within_its_bound(kind):
    """The polynomial exponential against the kernels' own formulas.

    The bound used by the candidate selection is 1e-9; the approximation
    must be far inside it on every scale of r (tiny, the bulk, the tail,
    past the cap at z = 45).
    """
    rng = np.random.default_rng(kind)
    r = np.concatenate([
        np.linspace(0.0, 80.0, 400_001), rng.uniform(0.0, 1e-3, 20_000),
        rng.uniform(0.0, 1e-12, 2_000), np.geomspace(1e-300, 1e3, 5_000), [np.inf, 1e300],
    ])
    c1, c2, p1, p2 = kb.correlation_form(kind)
    approx = np.array([kb.correlation_approx(x, c1, c2, p1, p2) for x in r[:2000]])
    approx = np.concatenate([approx, _approx_many(r[2000:], c1, c2, p1, p2)])
    exact = 1.0 - np.array(_omr_many(kind, r))
    assert np.max(np.abs(approx - exact)) < kb.CORRELATION_APPROX_ERR / 1000
    assert np.all(approx >= 0.0)


@numba.njit
def _approx_many(r, c1, c2, p1, p2):
    out = np.empty(r.size)
    for i in range(r.size):
        out[i] = kb.correlation_approx(r[i], c1, c2, p1, p2)
    return out


@numba.njit
def _omr_many(kind, r):
    out = np.empty(r.size)
    for i in range(r.size):
        out[i] = km.one_minus_correlation(kind, r[i])
    return out


def test_correlation_forms_match_scikit_learn_kernels():
    """``P(z) exp(-z)`` is the kernel's correlation at the scaled distance."""
    r = np.linspace(0.0, 6.0, 61)
    x = np.zeros((1, 1))
    for kind, kernel in [(km.RBF, RBF(1.0)), (km.MATERN05, Matern(1.0, nu=0.5)),
                         (km.MATERN15, Matern(1.0, nu=1.5)), (km.MATERN25, Matern(1.0, nu=2.5))]:
        c1, c2, p1, p2 = kb.correlation_form(kind)
        z = c1 * r + c2 * r * r
        np.testing.assert_allclose((1 + z * (p1 + p2 * z)) * np.exp(-z),
                                   kernel(x, r[:, None])[0], rtol=1e-12, atol=1e-15)


# -- brute force equals the cover tree ----------------------------------------

@pytest.mark.parametrize("ordering", ["random", "maximin", "none"])
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("kernel_id", list(RESIDUAL_KERNELS))
def test_residual_brute_equals_cover_tree(kernel_id, absolute, ordering):
    rng = np.random.default_rng(len(kernel_id))
    X = rng.random((400, 2))
    Z = _inducing(rng, 40, 2) + 0.003
    metric = _residual(RESIDUAL_KERNELS[kernel_id], Z, absolute)
    got, ref = _both(X, 12, metric=metric, ordering=ordering, random_state=1)
    _same(got, ref)


@pytest.mark.parametrize("d", [1, 3])
def test_residual_brute_other_dimensions(d):
    rng = np.random.default_rng(d)
    X = rng.random((300, d))
    metric = _residual(Matern(0.3, nu=1.5), _inducing(rng, 12, d) + 0.002)
    got, ref = _both(X, 8, metric=metric, ordering="random", random_state=0)
    _same(got, ref)


def test_residual_brute_matches_the_numpy_reference():
    """Independent oracle: scikit-learn kernel matrices, a Cholesky solve."""
    rng = np.random.default_rng(11)
    X = rng.random((250, 2))
    Z = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.5, 0.5]])
    X = X[np.min(np.linalg.norm(X[:, None] - Z[None], axis=2), axis=1) > 0.06]
    kernel = Matern(0.3, nu=1.5) + WhiteKernel(0.01)
    for absolute in (True, False):
        metric = _residual(kernel, Z, absolute)
        order, nb, dist = vecchia_neighbors(X, 7, ordering="random", metric=metric,
                                            algorithm="brute", random_state=4,
                                            return_distance=True)
        D = metric_distances(X, None, RefResidualCorrelation(kernel, Z, absolute=absolute))
        nb_ref, dist_ref = naive_predecessors(D, order, 7)
        assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=0.0, atol=1e-7)


@pytest.mark.parametrize("case", ["duplicates", "underflow", "offset", "near_inducing",
                                  "uncorrelated", "clustered"])
def test_residual_brute_adversarial(case):
    rng = np.random.default_rng(3)
    kernel = Matern(0.2, nu=1.5)
    Z = _inducing(rng, 25, 2) + 0.004
    if case == "duplicates":  # zero distances, many ties
        X = rng.random((15, 2))[rng.integers(0, 15, 300)]
    elif case == "underflow":  # differences whose squares underflow
        X = np.repeat(rng.random((30, 2)), 10, axis=0)
        X += 1e-170 * rng.random(X.shape)
    elif case == "offset":  # huge offset, length scale to match
        X = 1e6 + rng.random((300, 2))
        Z = 1e6 + Z
    elif case == "near_inducing":  # residual variances close to the floor
        X = np.vstack([Z + 5e-4, rng.random((250, 2))])
        kernel = RBF(0.3)
    elif case == "uncorrelated":  # most pairs at distance 1 (exact ties)
        X = 50.0 * rng.random((300, 2))
        kernel = Matern(0.01, nu=0.5)
        Z = X[:20] + 1e-3
    else:  # clustered
        centers = rng.random((6, 2))
        X = centers[rng.integers(0, 6, 300)] + 0.01 * rng.standard_normal((300, 2))
    metric = _residual(kernel, Z)
    for ordering in ("random", "none"):
        got, ref = _both(X, 10, metric=metric, ordering=ordering, random_state=2)
        _same(got, ref)


@pytest.mark.parametrize("n", [1, 2, 3, 9])
def test_residual_brute_tiny_inputs_and_wide_sets(n):
    rng = np.random.default_rng(n)
    X = rng.random((n, 2))
    metric = _residual(RBF(0.3), _inducing(rng, 4, 2) + 0.01)
    for k in (1, n, n + 3):
        got, ref = _both(X, k, metric=metric, ordering="random", random_state=0)
        _same(got, ref)
        assert got[1].shape == (n, k)
        assert np.all(got[1][0] == -1)


def test_residual_brute_float32_input():
    rng = np.random.default_rng(5)
    X = rng.random((200, 2)).astype(np.float32)
    metric = _residual(Matern(0.2, nu=2.5), _inducing(rng, 10, 2))
    got, ref = _both(X, 6, metric=metric, ordering="random", random_state=0)
    _same(got, ref)
    assert got[2].dtype == np.float64


# -- every other metric: exact distances for every predecessor -------------

@pytest.mark.parametrize("metric, params", [
    ("euclidean", None), ("manhattan", None), ("chebyshev", None), ("haversine", None),
    ("minkowski", {"p": 3}), ("minkowski", {"p": 2, "w": [1.0, 3.0]}),
    (KernelCorrelationDistance(Matern(0.3, nu=0.5)), None),
    (KernelCorrelationDistance(RationalQuadratic(0.3, alpha=1.0)), None),  # Python path
    (ResidualCorrelationDistance(RationalQuadratic(0.3), [[0.3, 0.3], [0.7, 0.6]]), None),
    (lambda a, b: float(np.abs(a - b).sum()), None),
])
def test_brute_equals_cover_tree_for_every_metric(metric, params):
    rng = np.random.default_rng(2)
    X = rng.random((120, 2))
    X[60:70] = X[5]  # duplicates
    for ordering in ("maximin", "random"):
        got, ref = _both(X, 5, metric=metric, metric_params=params, ordering=ordering,
                         random_state=0)
        _same(got, ref)


@pytest.mark.parametrize("ordering", ["maximin", "random"])
@pytest.mark.parametrize("include_self", [False, True])
def test_brute_ordered_graph_equals_cover_tree_graph(ordering, include_self):
    rng = np.random.default_rng(9)
    X = rng.random((150, 2))
    metric = _residual(Matern(0.2, nu=1.5), _inducing(rng, 15, 2) + 0.002)
    kw = dict(ordering=ordering, mode="distance", include_self=include_self, metric=metric,
              random_state=0)
    a = kneighbors_graph(X, 6, algorithm="brute", **kw)
    b = kneighbors_graph(X, 6, algorithm="cover_tree", **kw)
    assert (a != b).nnz == 0
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indptr, b.indptr)


# -- threads, progress, the choice of "auto" -----------------------------------

def test_brute_results_do_not_depend_on_threads_or_progress_reports(capsys):
    rng = np.random.default_rng(4)
    X = rng.random((900, 2))
    metric = _residual(Matern(0.1, nu=1.5), _inducing(rng, 30, 2) + 0.001)
    runs = [
        vecchia_neighbors(X, 9, metric=metric, ordering="random", random_state=0,
                          algorithm="brute", n_jobs=n_jobs, verbose=verbose,
                          return_distance=True)
        for n_jobs, verbose in [(1, 0), (2, 0), (-1, 1)]
    ]
    for other in runs[1:]:
        _same(runs[0], other)
    assert "conditioning sets (brute force)" in capsys.readouterr().err


def test_brute_restores_thread_settings():
    before_numba = numba.get_num_threads()
    before_blas = [i["num_threads"] for i in threadpool_info()]
    rng = np.random.default_rng(0)
    X = rng.random((300, 2))
    vecchia_neighbors(X, 5, metric=_residual(RBF(0.2), _inducing(rng, 8, 2)),
                      ordering="random", algorithm="brute", n_jobs=1)
    assert numba.get_num_threads() == before_numba
    assert [i["num_threads"] for i in threadpool_info()] == before_blas


def test_brute_with_a_given_ordering_builds_no_tree(monkeypatch):
    from sklearn_pcct import _core

    def no_tree(*args, **kwargs):
        raise AssertionError("no tree should be built")

    monkeypatch.setattr(_core, "build", no_tree)
    monkeypatch.setattr(_core, "build_box", no_tree)
    rng = np.random.default_rng(1)
    X = rng.random((60, 2))
    order, nb = vecchia_neighbors(X, 4, ordering="random", algorithm="brute", random_state=0)
    _, nb_ref = vecchia_neighbors(X, 4, ordering=order, algorithm="brute")
    np.testing.assert_array_equal(nb, nb_ref)


def test_auto_picks_brute_force_for_residual_metrics_up_to_a_size(monkeypatch):
    from sklearn_pcct import _core, _vecchia

    used = []
    real_brute, real_tree = _core.ordered_knn_brute, _core.ordered_knn
    monkeypatch.setattr(_core, "ordered_knn_brute",
                        lambda *a, **k: used.append("brute") or real_brute(*a, **k))
    monkeypatch.setattr(_core, "ordered_knn",
                        lambda *a, **k: used.append("tree") or real_tree(*a, **k))
    rng = np.random.default_rng(8)
    X = rng.random((80, 2))
    residual = _residual(Matern(0.2, nu=1.5), _inducing(rng, 6, 2))
    generic = _residual(RationalQuadratic(0.3), _inducing(rng, 6, 2))
    vecchia_neighbors(X, 3, metric=residual, ordering="random", random_state=0)
    vecchia_neighbors(X, 3, metric=generic, ordering="random", random_state=0)
    vecchia_neighbors(X, 3, metric=KernelCorrelationDistance(RBF(0.3)), ordering="random",
                      random_state=0)
    vecchia_neighbors(X, 3, ordering="random", random_state=0)
    monkeypatch.setattr(_vecchia, "_BRUTE_MAX_SAMPLES", 79)
    vecchia_neighbors(X, 3, metric=residual, ordering="random", random_state=0)
    assert used == ["brute", "tree", "tree", "tree", "tree"]


def test_maximin_ordering_refuses_brute_force():
    X = np.random.default_rng(0).random((20, 2))
    with pytest.raises(InvalidParameterError, match="always runs on a tree"):
        maximin_ordering(X, algorithm="brute")


def test_brute_bad_input_is_refused_before_any_work():
    X = np.random.default_rng(0).random((20, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        vecchia_neighbors(X, 3, algorithm="brute", ordering="random")
    with pytest.raises(ValueError, match="permutation"):
        vecchia_neighbors(np.ones((5, 2)), 2, algorithm="brute", ordering=[0, 1, 2, 3, 3])
    with pytest.raises(InvalidParameterError):
        vecchia_neighbors(np.ones((5, 2)), 0, algorithm="brute")


def test_residual_brute_is_exact_where_the_tree_prunes_nothing():
    """A larger case (many inducing points, short residual correlation)."""
    rng = np.random.default_rng(12)
    X = rng.random((2500, 2))
    Z = _inducing(rng, 120, 2) + 0.001
    metric = _residual(Matern(0.05, nu=1.5), Z)
    order, nb, dist = vecchia_neighbors(X, 15, metric=metric, ordering="random",
                                        algorithm="brute", random_state=0,
                                        return_distance=True)
    # 60 random ranks against the metric's NumPy distances (other rounding)
    for r in rng.choice(np.arange(1, 2500), 60, replace=False):
        prev = order[:r]
        d = metric.pairwise(X[order[r]][None], X[prev])[0]
        m = min(15, r)
        np.testing.assert_allclose(dist[r, :m], np.sort(d)[:m], rtol=0, atol=1e-9)
        np.testing.assert_allclose(d[_positions(prev, nb[r, :m])], dist[r, :m], rtol=0,
                                   atol=1e-9)


def _positions(values, wanted):
    """Positions of ``wanted`` in ``values`` (distinct entries)."""
    where = {int(v): i for i, v in enumerate(values)}
    return np.array([where[int(v)] for v in wanted])
