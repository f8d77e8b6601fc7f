"""Trees built directly by the Numba backend on adversarial data.

Every tree must pass :func:`check_tree_invariants` (covering, radius,
separation, structure), be consistent with its data (points, duplicate
groups at distance zero) and answer k-NN and radius queries exactly like
brute force (ALGORITHMS.md sections 12, 13, 16 and 17).
"""

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_pcct import _core
from sklearn_pcct._backends import get_backend
from sklearn_pcct._metric import pairwise_distances, resolve_metric
from sklearn_pcct._testing import (
    assert_knn_equal,
    assert_radius_equal,
    brute_force_knn,
    brute_force_radius,
)
from sklearn_pcct._tree import TreeInvariantError, check_tree_invariants

pytestmark = pytest.mark.kernels

BACKEND = get_backend("numba")
RTOL = 1e-10

METRICS = {
    "euclidean": ("euclidean", 2, None),
    "manhattan": ("manhattan", 2, None),
    "chebyshev": ("chebyshev", 2, None),
    "minkowski_p3": ("minkowski", 3, None),
    "weighted_minkowski": ("minkowski", 1.5, {"w": np.array([1.0, 0.0, 2.0])}),
}


def spec_for(name, d=3):
    metric, p, params = METRICS[name]
    if params is not None:
        params = {"w": np.resize(params["w"], d)}
    return resolve_metric(metric, p, params)[0]


def build_checked(X, spec, n_threads=1):
    """Build through the functional API and verify the tree against ``X``."""
    tree = _core.build(X, spec, BACKEND, n_threads)
    check_tree_invariants(tree)
    assert tree.n_samples == len(X)
    np.testing.assert_array_equal(tree.points, X[tree.node_sample])
    members = np.sort(np.concatenate([tree.node_sample, tree.dup_idx]))
    np.testing.assert_array_equal(members, np.arange(len(X)))
    for v in np.flatnonzero(np.diff(tree.dup_ptr)):
        dups = tree.dup_idx[tree.dup_ptr[v] : tree.dup_ptr[v + 1]]
        assert np.all(pairwise_distances(tree.points[v : v + 1], X[dups], spec) == 0.0)
    return tree


def check_queries(tree, X, Q, spec, ks=(1, 5), exact=False):
    """k-NN and radius queries (fitted and explicit) against brute force.

    ``exact`` demands bit-identical distances and indices (data whose
    distances every implementation computes exactly, e.g. small integers).
    """
    n = len(X)
    for k in sorted({min(k, n) for k in ks}):
        for Qx, fitted in ((Q, False), (X, True)):
            if fitted:
                dist, ind = _core.knn_fitted(tree, k, BACKEND)
            else:
                dist, ind = _core.knn(tree, Qx, k, BACKEND)
            assert dist.dtype == np.float64 and ind.dtype == np.int64
            dr, ir = brute_force_knn(X, Qx, k, spec)
            if exact:
                np.testing.assert_array_equal(ind, ir)
                np.testing.assert_array_equal(dist, dr)
            else:
                assert_knn_equal(dist, ind, dr, ir, rtol=RTOL, X_fit=X, X_query=Qx, metric_spec=spec)
    dk, _ = brute_force_knn(X, Q, min(3, n), spec)
    for r in (0.0, float(dk[0, -1]), float(np.max(dk))):
        for Qx, fitted in ((Q, False), (X, True)):
            if fitted:
                indptr, ind, dist = _core.radius_fitted(tree, r, BACKEND)
            else:
                indptr, ind, dist = _core.radius(tree, Qx, r, BACKEND)
            assert indptr.shape == (len(Qx) + 1,) and indptr[0] == 0
            cuts = indptr[1:-1]
            got_d, got_i = _rows(np.split(dist, cuts)), _rows(np.split(ind, cuts))
            dr, ir = brute_force_radius(X, Qx, r * (1 + 1e-9), spec)
            tol = 0.0 if exact else RTOL
            assert_radius_equal(got_d, got_i, dr, ir, r, rtol=tol)


def _rows(parts):
    out = np.empty(len(parts), dtype=object)
    out[:] = parts
    return out


def _last_ulp(rng, scale):
    base = scale * (1.0 + rng.random((40, 2)))
    up = np.nextafter(base, np.inf)
    down = np.nextafter(base, -np.inf)
    mixed = base.copy()
    mixed[:, 0] = up[:, 0]
    return np.vstack([base, up, down, mixed])


def _adversarial(name, rng):
    if name == "identical":
        return np.tile([[0.25, -1.5, 3.0]], (64, 1))
    if name == "two_copy_clusters":  # exact copies, interleaved
        a, b = rng.random(3), rng.random(3) + 5.0
        return np.array([a if i % 3 else b for i in range(150)])
    if name == "last_ulp":
        return _last_ulp(rng, 1.0)
    if name == "last_ulp_offset":
        return _last_ulp(rng, 1e8)
    if name == "last_ulp_tiny":  # squared differences underflow
        return _last_ulp(rng, 1e-150)
    if name == "integer_grid":
        g = np.arange(6.0)
        X = np.array([[a, b, c] for a in g for b in g for c in g])
        return np.vstack([X, X[::5]])
    if name == "exponential":  # 2**-j without underflow of squares or cubes
        X = np.zeros((300, 3))
        X[:, 0] = np.ldexp(1.0, -np.arange(300))
        return X
    if name == "far_outlier":
        X = rng.random((200, 3))
        X[77] = [1e12, -1e12, 3.0]
        return X
    if name == "offset":
        return 1e8 + rng.random((200, 3))
    if name == "tiny":
        return 1e-150 * rng.random((200, 3))
    if name == "sorted_line":  # sorted insertion order on a line
        X = np.zeros((300, 3))
        X[:, 0] = np.sort(rng.random(300))
        return X
    raise ValueError(name)


ADVERSARIAL = [
    "identical",
    "two_copy_clusters",
    "last_ulp",
    "last_ulp_offset",
    "last_ulp_tiny",
    "integer_grid",
    "exponential",
    "far_outlier",
    "offset",
    "tiny",
    "sorted_line",
]


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_trees(name, metric):
    rng = np.random.default_rng(0)
    X = np.ascontiguousarray(_adversarial(name, rng), dtype=np.float64)
    d = X.shape[1]
    spec = spec_for(metric, d)
    tree = build_checked(X, spec)
    Q = np.ascontiguousarray(np.vstack([X[::17][:10], X.mean(axis=0) + rng.standard_normal((5, d))]))
    exact = name in ("identical", "two_copy_clusters", "integer_grid") and metric in (
        "euclidean",
        "manhattan",
        "chebyshev",
    )
    check_queries(tree, X, Q, spec, ks=(1, 5, len(X)), exact=exact)


def test_identical_rows_form_one_node():
    X = np.tile([[1.0, 2.0]], (64, 1))
    tree = build_checked(X, spec_for("euclidean"))
    assert tree.n_nodes == 1 and tree.node_sample[0] == 0
    np.testing.assert_array_equal(tree.dup_idx, np.arange(1, 64))


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("same", [False, True])
def test_tiny_trees(n, same):
    X = np.array([[0.5, 0.5], [0.5, 0.5] if same else [3.0, -1.0]])[:n]
    spec = spec_for("euclidean", 2)
    tree = build_checked(X, spec)
    assert tree.n_nodes == (1 if same else n)
    Q = np.array([[0.0, 0.0], [0.5, 0.5], [10.0, 10.0]])
    check_queries(tree, X, Q, spec, ks=(1, 2))


def test_k_larger_than_n_is_padded():
    # documented kernel behaviour: missing neighbours are inf / -1
    X = np.array([[0.0], [1.0], [1.0]])
    tree = build_checked(X, spec_for("euclidean", 1))
    dist, ind = BACKEND.knn(tree, np.array([[0.2]]), 5, 1)
    np.testing.assert_array_equal(ind, [[0, 1, 2, -1, -1]])
    np.testing.assert_array_equal(dist[:, 3:], np.inf)
    np.testing.assert_allclose(dist[0, :3], [0.2, 0.8, 0.8])


def test_empty_tree():
    # n = 0 (ALGORITHMS.md 16.7). Run in a subprocess: the build writes out
    # of bounds on an empty input and can crash the interpreter.
    code = textwrap.dedent(
        """
        import numpy as np
        from sklearn_pcct import _core
        from sklearn_pcct._backends import get_backend
        from sklearn_pcct._metric import MetricSpec
        from sklearn_pcct._tree import check_tree_invariants
        be = get_backend("numba")
        tree = _core.build(np.empty((0, 2)), MetricSpec("euclidean"), be)
        assert tree.n_nodes == 0 and tree.n_samples == 0
        check_tree_invariants(tree)
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "metric, j",
    [
        ("euclidean", np.arange(400, 1100)),
        ("minkowski_p3", np.arange(750, 1100)),
        ("haversine", np.arange(400, 1100)),
        ("manhattan", np.arange(0, 1100, 3)),
    ],
    ids=["euclidean", "minkowski_p3", "haversine", "manhattan"],
)
def test_exponential_points_down_to_subnormals(metric, j):
    # Points 2**-j: huge aspect ratio, one level per point, subnormals from
    # j > 1022 and exact zeros (duplicates) from j > 1074. For j >~ 538 the
    # squared differences underflow (cubes from j >~ 360), so a naive sum of
    # powers puts distinct points at distance 0 from each other but not from
    # every query (ALGORITHMS.md 12.3: near-duplicates must keep their own
    # distances). The ranges keep the invariant check of these deep trees
    # (one level per point) fast.
    X = np.zeros((len(j), 2))  # haversine: latitudes 2**-j on one meridian
    X[:, 0] = np.ldexp(1.0, -j)
    spec = resolve_metric("haversine")[0] if metric == "haversine" else spec_for(metric, 2)
    tree = build_checked(X, spec)
    Q = np.ascontiguousarray(X[::10])
    for k in (1, 3):
        dist, ind = _core.knn(tree, Q, k, BACKEND)
        dr, ir = brute_force_knn(X, Q, k, spec)
        np.testing.assert_array_equal(ind, ir)
        np.testing.assert_array_equal(dist, dr)


def test_grouped_build_order_large_input():
    # From 8192 rows on, the backend inserts rows out of index order; the
    # tree must still be valid and answer exactly.
    rng = np.random.default_rng(0)
    X = rng.random((9000, 3))
    X[::9] = X[1::9][: len(X[::9])]  # duplicates
    spec = spec_for("euclidean")
    tree = build_checked(X, spec)
    Q = np.ascontiguousarray(np.vstack([rng.random((100, 3)), X[:50]]))
    for k in (1, 10):
        dist, ind = _core.knn(tree, Q, k, BACKEND)
        dr, ir = brute_force_knn(X, Q, k, spec)
        assert_knn_equal(dist, ind, dr, ir, rtol=RTOL, X_fit=X, X_query=Q, metric_spec=spec)
    indptr, ind, dist = _core.radius(tree, Q, 0.05, BACKEND)
    cuts = indptr[1:-1]
    dr, ir = brute_force_radius(X, Q, 0.05 * (1 + 1e-9), spec)
    assert_radius_equal(
        _rows(np.split(dist, cuts)), _rows(np.split(ind, cuts)), dr, ir, 0.05, rtol=RTOL
    )


def test_ties_between_duplicate_groups_in_large_input():
    # 12 integer points at distance exactly 5 from the origin, each repeated
    # many times: every sample ties with every other, so the k nearest are
    # the k smallest sample indices. From 8192 rows on, a duplicate group's
    # representative need not be its smallest sample; the search must still
    # offer the group's smaller indices.
    circle = np.array(
        [[5, 0], [-5, 0], [0, 5], [0, -5], [3, 4], [3, -4], [-3, 4], [-3, -4],
         [4, 3], [4, -3], [-4, 3], [-4, -3]], dtype=np.float64,
    )
    spec = spec_for("euclidean", 2)
    Q = np.zeros((1, 2))
    for n in (8191, 8192, 20000):
        X = circle[np.random.default_rng(0).integers(0, 12, n)]
        tree = build_checked(X, spec)
        dist, ind = _core.knn(tree, Q, 5, BACKEND)
        np.testing.assert_array_equal(dist, np.full((1, 5), 5.0))
        np.testing.assert_array_equal(ind, [[0, 1, 2, 3, 4]], err_msg=f"n={n}")


def test_same_tree_for_any_thread_count():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.random((1500, 3)), rng.random((20, 3))[rng.integers(0, 20, 500)]])
    spec = spec_for("euclidean")
    trees = [build_checked(X, spec, n_threads=t) for t in (1, 2)]
    for f in dataclasses.fields(trees[0]):
        a, b = getattr(trees[0], f.name), getattr(trees[1], f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
    Q = rng.random((200, 3))
    r1 = _core.knn(trees[0], Q, 8, BACKEND, 1)
    r2 = _core.knn(trees[0], Q, 8, BACKEND, 2)
    for a, b in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(a, b)
    r1 = _core.radius(trees[0], Q, 0.1, BACKEND, 1)
    r2 = _core.radius(trees[0], Q, 0.1, BACKEND, 2)
    for a, b in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_checker_labels_defects():
    # The checker itself: a too-small radius is a correctness defect, nodes
    # closer than their level allows are a separation (performance) defect.
    X = np.random.default_rng(0).random((100, 2))
    tree = build_checked(X, spec_for("euclidean", 2))
    with pytest.raises(TreeInvariantError) as err:
        check_tree_invariants(dataclasses.replace(tree, radius=tree.radius * 0.5))
    assert err.value.kind == "correctness"
    bad_dist = tree.parent_dist.copy()
    bad_dist[1] *= 1.5
    with pytest.raises(TreeInvariantError) as err:
        check_tree_invariants(dataclasses.replace(tree, parent_dist=bad_dist))
    assert err.value.kind == "correctness"
    # raise a child to just below its parent's level: covering and the
    # child order still hold, but it is now within 2^level of its parent
    for c in range(1, tree.n_nodes):
        p = tree.parent[c]
        siblings = np.flatnonzero(tree.parent == p)
        first = siblings[np.argmax(tree.level[siblings])]  # blocks: levels descending
        if c == first and tree.level[c] <= tree.level[p] - 2:
            break
    else:
        pytest.fail("no suitable node")
    level = tree.level.copy()
    level[c] = tree.level[p] - 1
    with pytest.raises(TreeInvariantError) as err:
        check_tree_invariants(dataclasses.replace(tree, level=level))
    assert err.value.kind == "separation"


# -- property test: small integer data, exact arithmetic --------------------------


@st.composite
def integer_data(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 3))
    values = draw(
        st.lists(st.integers(-4, 4), min_size=n * d, max_size=n * d)
    )
    return np.array(values, dtype=np.float64).reshape(n, d)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    X=integer_data(),
    metric=st.sampled_from(["euclidean", "manhattan", "chebyshev"]),
    k=st.integers(1, 40),
    r=st.sampled_from([0.0, 1.0, 2.0, 3.0, float(np.sqrt(2.0)), float(np.sqrt(5.0))]),
    q=st.lists(st.integers(-5, 5), min_size=3, max_size=3),
)
def test_property_integer_data(X, metric, k, r, q):
    n, d = X.shape
    spec = spec_for(metric, d)
    tree = build_checked(X, spec)
    k = min(k, n)
    Q = np.ascontiguousarray(np.vstack([np.array(q[:d], dtype=np.float64), X[: min(n, 3)]]))
    dist, ind = _core.knn(tree, Q, k, BACKEND)
    dr, ir = brute_force_knn(X, Q, k, spec)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_array_equal(dist, dr)
    dist, ind = _core.knn_fitted(tree, k, BACKEND)
    dr, ir = brute_force_knn(X, X, k, spec)
    np.testing.assert_array_equal(ind, ir)
    np.testing.assert_array_equal(dist, dr)
    indptr, ind, dist = _core.radius(tree, Q, r, BACKEND)
    cuts = indptr[1:-1]
    dr, ir = brute_force_radius(X, Q, r, spec)
    assert_radius_equal(
        _rows(np.split(dist, cuts)), _rows(np.split(ind, cuts)), dr, ir, r, rtol=0.0
    )
