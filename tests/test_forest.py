"""Updates of the estimators' kd-tree index (``sklearn_pcct._forest``).

With ``algorithm="kd_tree"`` (or ``"auto"`` in few dimensions)
``partial_fit`` / ``remove`` keep the kd-trees: a tree of the samples
inserted since the last rebuild, masks of the removed rows, and a rebuild
once either grows past its fraction. Oracles: brute force on the live
points, and the same updates with ``algorithm="cover_tree"`` (the same
distance function and tie rule, so the same answers bit for bit).
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_pcct import PCCTNeighbors, PCCTTransformer, _forest
from sklearn_pcct._metric import MetricSpec
from sklearn_pcct._testing import assert_knn_equal, brute_force_knn

pytestmark = pytest.mark.kernels  # also run with NUMBA_BOUNDSCHECK=1 in CI


def _pair(**kw):
    return PCCTNeighbors(algorithm="kd_tree", **kw), PCCTNeighbors(algorithm="cover_tree", **kw)


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype, (x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y)


class _Live:
    """The live points by id (the model the estimators must agree with)."""

    def __init__(self, X):
        self.points = np.asarray(X, dtype=np.float64)
        self.live = np.ones(len(X), dtype=bool)

    def insert(self, X):
        self.points = np.vstack([self.points, X])
        self.live = np.r_[self.live, np.ones(len(X), dtype=bool)]

    def remove(self, ids):
        assert self.live[ids].all()
        self.live[ids] = False

    @property
    def ids(self):
        return np.flatnonzero(self.live)


def _check(est, model, Q, k, spec):
    ids = model.ids
    X_live = model.points[ids]
    np.testing.assert_array_equal(est.live_ids_, ids)
    assert est.n_samples_fit_ == len(model.points)
    kq = min(k, len(ids))
    d, i = est.kneighbors(Q, kq)
    d_ref, i_ref = brute_force_knn(X_live, Q, kq, spec)
    assert_knn_equal(d, i, d_ref, ids[i_ref], rtol=1e-12,
                     X_fit=model.points, X_query=Q, metric_spec=spec)
    if len(ids) > kq:
        d, i = est.kneighbors(None, kq)
        d_ref, i_ref = brute_force_knn(X_live, None, kq, spec, exclude_self=True)
        assert_knn_equal(d, i, d_ref, ids[i_ref], rtol=1e-12,
                         X_fit=model.points, X_query=X_live, metric_spec=spec)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
@pytest.mark.parametrize("data", ["uniform", "duplicates", "grid"])
def test_long_update_sequence_matches_brute_force_and_the_cover_tree(metric, data,
                                                                      monkeypatch):
    # small fractions: the sequence crosses both rebuild rules several times
    monkeypatch.setattr(_forest, "DELTA_FRACTION", 0.2)
    monkeypatch.setattr(_forest, "DEAD_FRACTION", 0.15)
    rng = np.random.default_rng(len(data) + len(metric))

    def draw(n):
        if data == "uniform":
            return rng.random((n, 3))
        if data == "duplicates":
            return rng.random((12, 3))[rng.integers(0, 12, n)]
        return rng.integers(0, 4, (n, 3)).astype(np.float64)

    spec = MetricSpec(metric)
    X = draw(200)
    kd, ct = _pair(n_neighbors=6, metric=metric)
    kd.fit(X)
    ct.fit(X)
    model = _Live(X)
    n_parts = set()
    for step in range(14):
        if rng.random() < 0.55:
            new = draw(int(rng.integers(1, 40)))
            kd.partial_fit(new)
            ct.partial_fit(new)
            model.insert(new)
        else:
            ids = rng.choice(model.ids, int(rng.integers(1, 30)), replace=False)
            kd.remove(ids)
            ct.remove(ids)
            model.remove(ids)
        state = kd._pcct_state_
        assert state.forest is not None and state.deferred and kd.version_ == step + 1
        n_parts.add(len(state.forest.parts))
        Q = np.vstack([draw(15), model.points[:5]])
        _check(kd, model, Q, 6, spec)
        _same(kd.kneighbors(Q), ct.kneighbors(Q))
        _same(kd.kneighbors(), ct.kneighbors())
    assert n_parts == {1, 2}  # both with and without a tree of new samples


def test_ties_across_the_two_trees_go_by_id():
    # the same point in the rebuilt tree (small ids) and in the tree of the
    # new samples (large ids): equal distances list the smaller id first
    X = np.zeros((40, 2))
    X[:, 0] = np.arange(40)
    nn = PCCTNeighbors(n_neighbors=4, algorithm="kd_tree").fit(X)
    nn.partial_fit([[5.0, 0.0], [5.0, 0.0], [30.0, 0.0]])
    assert len(nn._pcct_state_.forest.parts) == 2
    d, i = nn.kneighbors([[5.0, 0.0]])
    np.testing.assert_array_equal(i, [[5, 40, 41, 4]])
    np.testing.assert_array_equal(d, [[0.0, 0.0, 0.0, 1.0]])
    nn.remove([5])
    d, i = nn.kneighbors([[5.0, 0.0]])
    np.testing.assert_array_equal(i, [[40, 41, 4, 6]])
    # the sample itself drops out of its row, its duplicates stay
    ind = nn.kneighbors(n_neighbors=2, return_distance=False)
    row = np.searchsorted(nn.live_ids_, 40)
    np.testing.assert_array_equal(ind[row], [41, 4])


def test_more_neighbours_than_the_first_tree_holds():
    # almost every sample of the first tree removed: the second tree must
    # fill the rows, and k equal to the live count works
    rng = np.random.default_rng(3)
    X = rng.random((100, 2))
    nn = PCCTNeighbors(n_neighbors=3, algorithm="kd_tree").fit(X)
    new = rng.random((10, 2))
    nn.partial_fit(new)
    nn.remove(np.arange(5, 100))  # 95 of 110: a rebuild
    nn.partial_fit(rng.random((1, 2)))
    model_ids = nn.live_ids_
    assert len(model_ids) == 16
    allX = np.vstack([X, new, nn._pcct_state_.points_of([110])])
    d, i = nn.kneighbors(allX[:3], 16)
    d_ref, i_ref = brute_force_knn(allX[model_ids], allX[:3], 16, MetricSpec("euclidean"))
    assert_knn_equal(d, i, d_ref, model_ids[i_ref], rtol=1e-12)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        nn.kneighbors(allX[:3], 17)


def test_remove_everything_then_insert():
    rng = np.random.default_rng(4)
    X = rng.random((30, 2))
    nn = PCCTNeighbors(n_neighbors=2, algorithm="kd_tree").fit(X)
    nn.remove(np.arange(30))
    assert nn._pcct_state_.forest.parts == () and len(nn.live_ids_) == 0
    with pytest.raises(ValueError):
        nn.kneighbors(X[:2])
    nn.partial_fit(X[:5])
    np.testing.assert_array_equal(nn.live_ids_, np.arange(30, 35))
    np.testing.assert_array_equal(nn.kneighbors(X[:1], 1)[1], [[30]])


def test_versions_answer_as_before_after_later_updates():
    rng = np.random.default_rng(5)
    X = rng.random((300, 3))
    nn = PCCTNeighbors(n_neighbors=5, algorithm="kd_tree").fit(X)
    Q = rng.random((40, 3))
    snaps = [(nn.snapshot(), nn.kneighbors(Q))]
    for _ in range(6):
        nn.partial_fit(rng.random((20, 3)))
        snaps.append((nn.snapshot(), nn.kneighbors(Q)))
        nn.remove(rng.choice(nn.live_ids_, 15, replace=False))
        snaps.append((nn.snapshot(), nn.kneighbors(Q)))
    for snap, answer in snaps:
        _same(snap.kneighbors(Q), answer)
        loaded = pickle.loads(pickle.dumps(snap))
        _same(loaded.kneighbors(Q), answer)
        # shared by versions, and the kernels are compiled for read-only arrays
        for part in loaded._pcct_state_.forest.parts:
            for a in (part.tree.perm, part.tree.points, part.tree.lo, part.tree.hi,
                      part.tree.leaf_of, part.ids, part.pos_ids, part.alive):
                assert not a.flags.writeable


def test_radius_queries_and_tree_after_updates_use_the_live_samples():
    # the kd-tree index answers radius queries (live samples of both trees);
    # tree_ builds the cover tree of the live samples with the same ids
    rng = np.random.default_rng(6)
    X = rng.integers(0, 5, (150, 2)).astype(np.float64)
    kd, ct = _pair(radius=1.0)
    for est in (kd, ct):
        est.fit(X).partial_fit(X[:20] + 0.5)
        est.remove([3, 4, 151])
    assert kd._pcct_state_.deferred
    Q = rng.integers(0, 5, (10, 2)).astype(np.float64)
    for q in (Q, None):
        for r in (0.0, 1.0, 2.3):  # 0 and 1: boundary ties of the integer grid
            a = kd.radius_neighbors(q, r, sort_results=True)
            b = ct.radius_neighbors(q, r, sort_results=True)
            for x, y in zip(a[0], b[0], strict=True):
                np.testing.assert_array_equal(x, y)
            for x, y in zip(a[1], b[1], strict=True):
                np.testing.assert_array_equal(x, y)
    a = kd.radius_neighbors(Q, np.linspace(0.5, 2.0, len(Q)))  # one radius per query
    b = ct.radius_neighbors(Q, np.linspace(0.5, 2.0, len(Q)))
    for x, y in zip(a[1], b[1], strict=True):
        np.testing.assert_array_equal(np.sort(x), np.sort(y))
    assert kd._pcct_state_.deferred  # radius queries run on the kd-tree index
    _ = kd.tree_
    assert not kd._pcct_state_.deferred
    assert kd.tree_.n_samples == ct.tree_.n_samples == 170  # ids issued
    _same(kd.kneighbors(Q), ct.kneighbors(Q))


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_live_graph_of_a_kd_index_with_many_reverse_pairs(mode):
    # a new point at the centre of 100 points on a sphere enters every row
    # (more than the reverse search's first-pass room per query)
    rng = np.random.default_rng(7)
    S = rng.standard_normal((100, 8))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    tr = PCCTTransformer(n_neighbors=80, mode=mode, algorithm="kd_tree").fit(S)
    _ = tr.graph_
    tr.partial_fit(np.zeros((1, 8)))
    G = tr.graph_
    F = PCCTTransformer(n_neighbors=80, mode=mode, algorithm="cover_tree").fit_transform(
        np.vstack([S, np.zeros((1, 8))]))
    assert sp.issparse(G) and (G != F).nnz == 0
    np.testing.assert_array_equal(G.indices, F.indices)
    assert np.count_nonzero(G[:100].toarray()[:, 100]) == 100  # in every row


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_live_graph_of_a_kd_index_follows_updates(mode, monkeypatch):
    monkeypatch.setattr(_forest, "DELTA_FRACTION", 0.3)
    rng = np.random.default_rng(8)
    X = rng.random((400, 4))
    kd = PCCTTransformer(n_neighbors=5, mode=mode, algorithm="kd_tree").fit(X)
    _ = kd.graph_
    pool = [X]
    live = np.ones(400, dtype=bool)
    for step in range(8):
        if step % 3 == 2:
            ids = rng.choice(np.flatnonzero(live), 30, replace=False)
            kd.remove(ids)
            live[ids] = False
        else:
            new = rng.random((25, 4))
            new[:3] = pool[0][:3]  # duplicates of live (or removed) points
            kd.partial_fit(new)
            pool.append(new)
            live = np.r_[live, np.ones(25, dtype=bool)]
        allX = np.vstack(pool)
        ids = np.flatnonzero(live)
        fresh = PCCTTransformer(n_neighbors=5, mode=mode, algorithm="cover_tree")
        F = fresh.fit_transform(allX[ids])
        G = kd.graph_[ids]
        np.testing.assert_array_equal(G.indptr, F.indptr)
        np.testing.assert_array_equal(G.indices, ids[F.indices])
        np.testing.assert_allclose(G.data, F.data, rtol=1e-12, atol=0)
        assert kd._pcct_state_.deferred  # the graph never needed the cover tree


def test_a_new_version_costs_a_fraction_of_a_full_copy():
    rng = np.random.default_rng(9)
    X = rng.random((20_000, 3))
    nn = PCCTNeighbors(algorithm="kd_tree").fit(X)
    nn.partial_fit(rng.random((200, 3)))
    f = nn._pcct_state_.forest
    assert f.nbytes_own() <= 0.05 * f.nbytes_full(), (f.nbytes_own(), f.nbytes_full())
    nn.remove(rng.choice(20_000, 200, replace=False))
    f2 = nn._pcct_state_.forest
    assert f2.parts[0].tree is f.parts[0].tree  # the big tree is shared
    assert f2.nbytes_own() <= 0.05 * f2.nbytes_full(), (f2.nbytes_own(), f2.nbytes_full())


def test_a_failed_update_leaves_the_kd_index_unchanged():
    rng = np.random.default_rng(10)
    X = rng.random((100, 2))
    nn = PCCTNeighbors(n_neighbors=3, algorithm="kd_tree").fit(X).partial_fit(X[:5] + 0.1)
    state = nn._pcct_state_
    before = nn.kneighbors()
    for bad in (np.full((2, 3), 0.5), np.array([[np.nan, 0.0]]), np.zeros((0, 2))):
        with pytest.raises(ValueError):
            nn.partial_fit(bad)
    with pytest.raises(ValueError):
        nn.remove([105])
    with pytest.raises(ValueError):
        nn.remove([1, 1])
    assert nn._pcct_state_ is state
    _same(nn.kneighbors(), before)
    nn.partial_fit([[0.5, 0.5]])  # the next id is 105, as if nothing failed
    assert nn.n_samples_fit_ == 106
