"""The kd-tree engine of the estimators (``algorithm="kd_tree"`` / ``"auto"``).

A kd-tree fit answers k-nearest-neighbour queries with the kd-tree and
builds the cover tree only when something needs it (radius queries,
updates, ``tree_``). Oracles: the same estimator with
``algorithm="cover_tree"``, which must give the same answers bit for bit
(both evaluate the same distance function and break ties by index), on
adversarial data (ties, duplicates, huge offsets with tiny scales, under-
and overflowing squares, float32), and scikit-learn's brute force.
"""

import pickle
import threading

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._compat import InvalidParameterError

pytestmark = pytest.mark.kernels  # also run with NUMBA_BOUNDSCHECK=1 in CI


def _data(kind, n, d, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, d))
    if kind == "grid":  # ties everywhere
        return rng.integers(0, 4, (n, d)).astype(np.float64)
    if kind == "duplicates":
        return rng.random((9, d))[rng.integers(0, 9, n)]
    if kind == "offset_tiny":
        return 1e8 + 1e-6 * rng.random((n, d))
    if kind == "tiny":  # squares of differences underflow
        return 1e-170 * rng.random((n, d))
    if kind == "huge":  # squares of differences overflow
        return 1e170 * rng.standard_normal((n, d))
    if kind == "float32":
        return rng.random((n, d)).astype(np.float32)
    raise ValueError(kind)


KINDS = ["uniform", "grid", "duplicates", "offset_tiny", "tiny", "huge", "float32"]
METRICS = [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2), ("minkowski", 1),
           ("minkowski", 2), ("minkowski", np.inf)]


def _pair(**kw):
    return PCCTNeighbors(algorithm="kd_tree", **kw), PCCTNeighbors(algorithm="cover_tree", **kw)


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype, (x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("metric, p", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_kd_fit_answers_as_the_cover_tree(kind, metric, p):
    X = _data(kind, 300, 3)
    Q = _data(kind, 40, 3, seed=1)
    kd, ct = _pair(n_neighbors=7, metric=metric, p=p)
    kd.fit(X)
    ct.fit(X)
    assert kd._pcct_state_.forest is not None and kd._pcct_state_.deferred
    for q in (None, Q, X[:25]):
        _same(kd.kneighbors(q), ct.kneighbors(q))
    for mode in ("connectivity", "distance"):
        a, b = kd.kneighbors_graph(mode=mode), ct.kneighbors_graph(mode=mode)
        assert (a != b).nnz == 0
        np.testing.assert_array_equal(a.indices, b.indices)
    assert kd._pcct_state_.deferred  # k-NN queries never build the cover tree


@pytest.mark.parametrize("metric, p", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_kd_radius_queries_answer_as_the_cover_tree(kind, metric, p):
    # radii equal to distances that occur (the inclusive boundary), on the
    # adversarial data: the kd-tree's box bounds must never drop a point
    X = _data(kind, 300, 3)
    Q = _data(kind, 20, 3, seed=2)
    kd, ct = _pair(metric=metric, p=p)
    kd.fit(X)
    ct.fit(X)
    d5 = ct.kneighbors(Q, 5)[0][:, -1]
    for q, r in ((Q, d5), (None, float(np.median(d5))), (Q, 0.0)):
        a = kd.radius_neighbors(q, r, sort_results=True)
        b = ct.radius_neighbors(q, r, sort_results=True)
        assert len(a[1]) == len(b[1])
        for x, y in zip(a[0], b[0], strict=True):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(a[1], b[1], strict=True):
            np.testing.assert_array_equal(x, y)
    assert all(len(i) >= 5 for i in kd.radius_neighbors(Q, d5)[1])  # the 5th is at d5
    assert kd._pcct_state_.deferred


@pytest.mark.parametrize("n_neighbors", [63, 64, 65, 200, 299])
@pytest.mark.parametrize("kind", ["uniform", "grid", "duplicates"])
def test_kd_many_neighbours_as_the_cover_tree(kind, n_neighbors):
    # up to 64 neighbours the kd search keeps its candidates in a sorted
    # array, beyond in a heap: both sides of the switch, with ties
    X = _data(kind, 300, 2)
    Q = _data(kind, 30, 2, seed=1)
    kd, ct = _pair(n_neighbors=n_neighbors)
    kd.fit(X)
    ct.fit(X)
    for q in (None, Q):
        _same(kd.kneighbors(q), ct.kneighbors(q))


@pytest.mark.parametrize("d", [1, 2, 8])
def test_kd_fit_matches_scikit_learn(d):
    X = _data("uniform", 400, d, seed=d)
    Q = _data("uniform", 50, d, seed=d + 10)
    ours = PCCTNeighbors(n_neighbors=5).fit(X)
    ref = NearestNeighbors(n_neighbors=5, algorithm="kd_tree").fit(X)  # difference form
    for q in (None, Q):
        dist, ind = ours.kneighbors(q)
        dist_r, ind_r = ref.kneighbors(q)
        np.testing.assert_array_equal(ind, ind_r)
        np.testing.assert_allclose(dist, dist_r, rtol=1e-12, atol=1e-15)


def test_duplicates_beyond_k_follow_scikit_learns_self_rule():
    X = np.zeros((12, 2))
    X[6:] = 1.0
    kd, ct = _pair(n_neighbors=3)
    _same(kd.fit(X).kneighbors(), ct.fit(X).kneighbors())
    ind = kd.kneighbors()[1]
    np.testing.assert_array_equal(ind[0], [1, 2, 3])
    np.testing.assert_array_equal(ind[1], [0, 2, 3])
    # sample 5 is not among its 4 nearest (0, 1, 2, 3): the first is dropped
    np.testing.assert_array_equal(ind[5], [1, 2, 3])
    np.testing.assert_array_equal(ind[11], [7, 8, 9])


def test_auto_picks_the_kd_tree_for_box_metrics_in_up_to_64_dimensions():
    rng = np.random.default_rng(0)

    def uses_kd(X, **kw):
        return PCCTNeighbors(**kw).fit(X)._pcct_state_.forest is not None

    assert uses_kd(rng.random((50, 8)))
    assert uses_kd(rng.random((50, 16)))
    assert uses_kd(rng.random((50, 64)))
    assert uses_kd(rng.random((50, 2)), metric="manhattan")
    assert uses_kd(rng.random((50, 3)), p=np.inf)
    assert not uses_kd(rng.random((50, 65)))
    assert not uses_kd(rng.random((50, 2)), metric="haversine")
    assert not uses_kd(rng.random((50, 2)), p=3)
    assert not uses_kd(rng.random((50, 2)), metric_params={"w": np.array([1.0, 2.0])})
    assert not uses_kd(rng.random((50, 2)), algorithm="cover_tree")
    assert uses_kd(rng.random((50, 80)), algorithm="kd_tree")


@pytest.mark.parametrize("metric, params", [
    ("haversine", None), ("minkowski", {"p": 3}), ("minkowski", {"w": np.array([1.0, 2.0])}),
    (lambda a, b: float(np.abs(a - b).sum()), None),
])
def test_kd_tree_refuses_metrics_without_box_bounds(metric, params):
    X = np.random.default_rng(0).random((20, 2)) - 0.5
    est = PCCTNeighbors(metric=metric, metric_params=params, algorithm="kd_tree")
    with pytest.raises(ValueError, match="algorithm='cover_tree'"):
        est.fit(X)
    assert not hasattr(est, "n_features_in_")


@pytest.mark.parametrize("algorithm", ["ball_tree", "brute", "KD_TREE", None, 1])
def test_bad_algorithm_raises(algorithm):
    with pytest.raises(InvalidParameterError, match="'algorithm' parameter"):
        PCCTNeighbors(algorithm=algorithm).fit(np.zeros((3, 2)))


def test_radius_queries_on_the_kd_tree_and_tree_builds_the_cover_tree_once():
    X = _data("grid", 200, 2, seed=3)
    Q = _data("grid", 20, 2, seed=4)
    kd, ct = _pair(radius=1.5)
    kd.fit(X)
    ct.fit(X)
    state = kd._pcct_state_
    assert state.deferred and kd.version_ == 0 and kd.n_samples_fit_ == 200
    np.testing.assert_array_equal(kd.live_ids_, np.arange(200))
    for q in (Q, None):
        a = kd.radius_neighbors(q, sort_results=True)
        b = ct.radius_neighbors(q, sort_results=True)
        for x, y in zip(a[0], b[0], strict=True):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(a[1], b[1], strict=True):
            np.testing.assert_array_equal(x, y)
        ga = kd.radius_neighbors_graph(q, mode="distance", sort_results=True)
        gb = ct.radius_neighbors_graph(q, mode="distance", sort_results=True)
        np.testing.assert_array_equal(ga.indptr, gb.indptr)
        np.testing.assert_array_equal(ga.indices, gb.indices)
        np.testing.assert_array_equal(ga.data, gb.data)
    assert state.deferred  # radius queries run on the kd-tree too
    tree = kd.tree_
    assert not state.deferred
    assert tree is kd.tree_ and tree.n_nodes == ct.tree_.n_nodes
    _same(kd.kneighbors(Q), ct.kneighbors(Q))  # still the kd-tree, same answers


def test_updates_after_a_kd_fit_equal_the_cover_tree_estimators():
    rng = np.random.default_rng(5)
    X = _data("duplicates", 300, 3)
    new = rng.random((30, 3))
    kd, ct = _pair(n_neighbors=6)
    kd.fit(X)
    ct.fit(X)
    old = kd.snapshot() if hasattr(kd, "snapshot") else None
    kd.partial_fit(new)
    ct.partial_fit(new)
    # the update keeps the kd-tree index: no cover tree is built
    assert kd.version_ == 1 and kd._pcct_state_.forest is not None
    assert kd._pcct_state_.deferred
    _same(kd.kneighbors(), ct.kneighbors())
    kd.remove([0, 5, 301])
    ct.remove([0, 5, 301])
    _same(kd.kneighbors(new), ct.kneighbors(new))
    if old is not None:  # the first version stays queryable
        _same(old.kneighbors(new[:5], 4), PCCTNeighbors(algorithm="cover_tree").fit(X)
              .kneighbors(new[:5], 4))


def test_a_failed_update_leaves_a_kd_fit_unchanged():
    X = _data("uniform", 100, 2)
    est = PCCTNeighbors(n_neighbors=3).fit(X)
    state = est._pcct_state_
    before = est.kneighbors()
    with pytest.raises(ValueError):
        est.partial_fit(np.full((2, 3), 0.5))  # wrong feature count
    with pytest.raises(ValueError):
        est.partial_fit(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError):
        est.remove([100])
    assert est._pcct_state_ is state and est.version_ == 0
    _same(est.kneighbors(), before)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transformer_on_a_kd_fit(mode):
    rng = np.random.default_rng(6)
    X = _data("grid", 250, 2, seed=6)
    new = rng.integers(0, 4, (20, 2)).astype(np.float64)
    kw = dict(n_neighbors=5, mode=mode)
    a = PCCTTransformer(algorithm="kd_tree", **kw)
    b = PCCTTransformer(algorithm="cover_tree", **kw)
    assert (a.fit_transform(X) != b.fit_transform(X)).nnz == 0
    assert (a.transform(new) != b.transform(new)).nnz == 0
    assert a._pcct_state_.deferred
    a.partial_fit(new)
    b.partial_fit(new)
    assert (a.graph_ != b.graph_).nnz == 0
    a.remove([1, 2, 260])
    b.remove([1, 2, 260])
    assert (a.graph_ != b.graph_).nnz == 0


def test_a_kd_fit_pickles_without_building_the_cover_tree():
    X = _data("float32", 300, 4)
    est = PCCTNeighbors(n_neighbors=4).fit(X)
    clone = pickle.loads(pickle.dumps(est))
    assert clone._pcct_state_.deferred
    _same(clone.kneighbors(X[:30]), est.kneighbors(X[:30]))
    clone.partial_fit(X[:3])  # updates the pickled kd-tree index
    ref = PCCTNeighbors(n_neighbors=4, algorithm="cover_tree").fit(X).partial_fit(X[:3])
    _same(clone.kneighbors(), ref.kneighbors())


def test_concurrent_first_uses_build_the_cover_tree_once(monkeypatch):
    from sklearn_pcct import _core

    X = _data("uniform", 2000, 3)
    est = PCCTNeighbors(radius=0.1).fit(X)
    builds = []
    real = _core.build_dynamic
    monkeypatch.setattr(_core, "build_dynamic",
                        lambda *a, **k: builds.append(1) or real(*a, **k))
    results = [None] * 6
    barrier = threading.Barrier(6)

    def work(i):
        barrier.wait()
        if i % 2:  # tree_ builds the cover tree on first use
            results[i] = est.tree_
        else:  # radius and k-NN queries run on the kd-tree meanwhile
            results[i] = (est.radius_neighbors(X[:50], sort_results=True)[1],
                          est.kneighbors(X[:50], 3)[1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [1]
    assert results[1] is results[3] is results[5] is est.tree_
    ref = PCCTNeighbors(radius=0.1, algorithm="cover_tree").fit(X)
    want = ref.radius_neighbors(X[:50], sort_results=True)[1]
    for i in range(0, 6, 2):
        for x, y in zip(results[i][0], want, strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(results[i][1], ref.kneighbors(X[:50], 3)[1])
