"""The Numba kernels called directly on small hand-made inputs.

Marked ``kernels``: CI runs this module a second time with
``NUMBA_BOUNDSCHECK=1`` so that an out-of-bounds index fails loudly.
"""

import math

import numba
import numpy as np
import pytest

from sklearn_pcct import _dynamic as dyn
from sklearn_pcct._backends import get_backend
from sklearn_pcct._backends._numba import _kernels_build as kb
from sklearn_pcct._backends._numba import _metrics as km
from sklearn_pcct._metric import MetricSpec, pairwise_distances
from sklearn_pcct._tree import check_tree_invariants

pytestmark = pytest.mark.kernels

BACKEND = get_backend("numba")


def _ro(a):
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(
    "d, expected",
    [(1.0, 0), (2.0, 1), (0.5, -1), (3.0, 2), (4.0, 2), (math.nextafter(4.0, 5.0), 3),
     (math.nextafter(4.0, 0.0), 2), (0.75, 0), (2.0**-1074, -1074), (1e300, 997)],
)
def test_ceil_log2_is_exact_at_powers_of_two(d, expected):
    assert kb.ceil_log2(d) == expected
    assert d <= math.ldexp(1.0, expected)
    assert d > math.ldexp(1.0, expected - 1)


@pytest.mark.parametrize("name", ["euclidean", "manhattan", "chebyshev", "minkowski", "haversine"])
@pytest.mark.parametrize("d", [1, 2, 5, 9])
def test_distance_matches_reference(name, d, rng):
    if name == "haversine":
        d = 2
    A = _ro(rng.normal(size=(6, d)))
    B = _ro(rng.normal(size=(5, d)))
    spec = MetricSpec(name, p=3.0)
    code = {"euclidean": 0, "manhattan": 1, "chebyshev": 2, "minkowski": 3, "haversine": 4}[name]
    w = _ro(np.empty(0))
    users = [km.no_user_metric] + ([None] if code <= km.CHEBYSHEV else [])
    for user in users:  # the full body, and the fast one where it applies
        got = _distances(A, B, code, 3.0, w, user)
        np.testing.assert_allclose(got, pairwise_distances(A, B, spec), rtol=1e-13, atol=1e-15)


@numba.njit
def _distances(A, B, code, p, w, user):
    out = np.empty((A.shape[0], B.shape[0]))
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = km.distance(A, i, B, j, code, p, w, user)
    return out


def _four_sums_reference(a, b, op, start=0):
    """The distances' summation order in plain Python floats (IEEE double)."""
    m = len(a)
    stop4 = m - (m - start) % 4
    sums = [0.0, 0.0, 0.0, 0.0]
    for t in range(start, m):
        x, y = float(a[t]), float(b[t])
        term = x * y if op == "dot" else abs(x - y) if op == "abs" else (x - y) * (x - y)
        sums[(t - start) % 4 if t < stop4 else 0] += term
    return (sums[0] + sums[1]) + (sums[2] + sums[3])


@numba.njit
def _raw_pairs(A, B, code):
    out = np.empty((A.shape[0], B.shape[0]))
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = km.raw_distance(A, i, B, j, code)
    return out


@numba.njit
def _dot_pairs(A, B, start):
    out = np.empty((A.shape[0], B.shape[0]))
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = km._dot(A, i, B, j, start, A.shape[1])
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32, "float64-float32"])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_vector_lanes_sum_in_the_scalar_order_bit_for_bit(dtype, layout, rng):
    # _lanes computes the four partial sums as one 4-lane vector on C rows
    # (euclidean, manhattan, the correlation's dot product); other layouts
    # take the scalar loop. Both must give the reference's bits
    # (rows of very different scales make any other order round differently).
    for m in (1, 3, 4, 5, 8, 13, 64, 67):
        A = rng.normal(size=(7, m)) * 10.0 ** rng.integers(-6, 7, size=(7, 1))
        B = A[::-1] + rng.normal(size=(7, m)) * 10.0 ** rng.integers(-6, 7, size=(7, m))
        if dtype == "float64-float32":  # float64 queries on float32 rows (the kd-tree's)
            A, B = A.astype(np.float64), B.astype(np.float32)
        else:
            A, B = A.astype(dtype), B.astype(dtype)
        if layout == "F":
            A, B = np.asfortranarray(A), np.asfortranarray(B)
        elif layout == "strided":
            A, B = np.repeat(A, 2, axis=1)[:, ::2], np.repeat(B, 2, axis=1)[:, ::2]
        for code, op in ((km.EUCLIDEAN, "square"), (km.MANHATTAN, "abs")):
            got = _raw_pairs(A, B, code)
            want = np.array([[_four_sums_reference(a, b, op) for b in B] for a in A])
            np.testing.assert_array_equal(got, want)
        for start in {0, min(3, m)}:  # the correlation's dot product starts past column 0
            got = _dot_pairs(A, B, start)
            want = np.array([[_four_sums_reference(a, b, "dot", start) for b in B] for a in A])
            np.testing.assert_array_equal(got, want)


def _dynamic_insert(X):
    # one point at a time, in index order (a batch is inserted in random order)
    tree = BACKEND.build_dynamic(X[:1], MetricSpec("euclidean"), 1)
    for i in range(1, len(X)):
        tree = BACKEND.insert(tree, X[i : i + 1], 1)
    nodes = np.arange(tree.n_nodes)
    fields = {name: tree.node_field(getattr(dyn, name), nodes)
              for name in ("ROW", "LEVEL", "PARENT")}
    return tree, fields


def test_insert_levels_on_a_line():
    # ALGORITHMS.md 5.1: root 0, then 40, 44, 45.5 -> the lowest failing level rule
    X = np.array([[0.0], [40.0], [44.0], [45.5]])
    tree, f = _dynamic_insert(X)
    assert tree.n_nodes == 4 and tree.root == 0
    levels = dict(zip(f["ROW"].tolist(), f["LEVEL"].tolist(), strict=True))
    parents = dict(zip(f["ROW"].tolist(), f["PARENT"].tolist(), strict=True))
    assert levels[1] == 5  # d(40, 0) = 40 <= 2^6: J = 6
    assert levels[2] == 1 and parents[2] == 1  # d(44, 40) = 4 = 2^2: J = 2
    assert levels[3] == 0 and parents[3] == 2  # d(45.5, 44) = 1.5: J = 1
    check_tree_invariants(BACKEND.freeze(tree))


def test_orphan_rises_and_root_is_replaced():
    # removing 40 orphans 44 (level 1): it must rise under the root, whose
    # removal then promotes the orphan of highest level
    X = np.array([[0.0], [40.0], [44.0], [45.5]])
    tree, _ = _dynamic_insert(X)
    after = BACKEND.remove(tree, np.array([1]), 1)
    frozen = BACKEND.freeze(after)
    check_tree_invariants(frozen)
    lev = dict(zip(frozen.node_sample.tolist(), frozen.level.tolist(), strict=True))
    assert lev[2] == 5  # d(44, 0) = 44 <= 2^6 = 2^(l + 1): l = 5
    no_root = BACKEND.freeze(BACKEND.remove(after, np.array([0]), 1))
    check_tree_invariants(no_root)
    assert no_root.node_sample[0] == 2 and no_root.parent[0] == -1
    check_tree_invariants(BACKEND.freeze(tree))  # the old version is intact


def test_duplicates_join_a_group_and_radius_is_exact(rng):
    base = rng.random((20, 3))
    X = base[rng.integers(0, 20, 200)]
    tree, _ = _dynamic_insert(X)
    assert tree.n_nodes == len(np.unique(X, axis=0))
    tree = BACKEND.build(X, MetricSpec("euclidean"), 1)
    check_tree_invariants(tree)
    # every radius is the exact subtree radius (plus a tiny slack)
    for v in range(tree.n_nodes):
        lo, hi = tree.child_start[v], tree.desc_stop[v]
        if hi > lo:
            exact = pairwise_distances(tree.points[[v]], tree.points[lo:hi],
                                       MetricSpec("euclidean")).max()
            assert exact <= tree.radius[v] <= exact * (1 + 1e-9)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("k", [1, 7])
def test_knn_and_radius_kernels_match_brute_force(k, n_threads, rng):
    X = np.round(rng.random((300, 2)) * 8) / 8  # a grid: many ties and duplicates
    Q = np.round(rng.random((40, 2)) * 8) / 8
    spec = MetricSpec("euclidean")
    tree = BACKEND.build(X, spec, n_threads)
    check_tree_invariants(tree)
    D = pairwise_distances(Q, X, spec)
    dist, ind = BACKEND.knn(tree, Q, k, n_threads)
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), D.shape), D), axis=1)[:, :k]
    np.testing.assert_array_equal(ind, order)
    np.testing.assert_array_equal(dist, np.take_along_axis(D, order, axis=1))
    r = np.full(len(Q), 0.25)
    indptr, rind, rdist = BACKEND.radius(tree, Q, r, n_threads)
    for i in range(len(Q)):
        got = rind[indptr[i]:indptr[i + 1]]
        assert sorted(got.tolist()) == np.flatnonzero(D[i] <= 0.25).tolist()
        np.testing.assert_array_equal(rdist[indptr[i]:indptr[i + 1]], D[i, got])


def test_fitted_queries_cover_every_sample(rng):
    X = np.repeat(rng.random((50, 3)), 3, axis=0)
    tree = BACKEND.build(X, MetricSpec("manhattan"), 2)
    dist, ind = BACKEND.knn_fitted(tree, 4, 2)
    D = pairwise_distances(X, X, MetricSpec("manhattan"))
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :4], rtol=1e-14)
    assert np.all(ind[:, 0] == np.arange(len(X)) - np.arange(len(X)) % 3)  # smallest duplicate
    indptr, rind, _ = BACKEND.radius_fitted(tree, 0.3, 2)
    assert np.array_equal(np.diff(indptr), (D <= 0.3).sum(axis=1))


def test_user_metric_kernel_path(rng):
    import numba

    @numba.njit
    def l1(a, b):
        return np.abs(a - b).sum()

    X = rng.random((200, 4)).astype(np.float32)
    tree = BACKEND.build(X, MetricSpec("callable", func=l1), 1)
    assert tree.points.dtype == np.float64
    dist, ind = BACKEND.knn(tree, X[:10], 3, 1)
    D = pairwise_distances(X[:10], X, MetricSpec("manhattan"))
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :3], rtol=1e-12)


def test_grouped_build_order_is_valid_and_deterministic(rng):
    # inputs above the grouped-build threshold take the two-phase insertion order
    X = rng.random((9000, 2))
    a = BACKEND.build(X, MetricSpec("euclidean"), 2)
    b = BACKEND.build(X, MetricSpec("euclidean"), 1)
    for field in ("node_sample", "level", "parent", "radius"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    check_tree_invariants(a, max_pairs=500_000)


def _locate_brute_force(tree, X_new, spec):
    """O(n m) insertion rule of ALGORITHMS.md 5.1: ``(J, parent, d, dup)`` per point."""
    nodes = np.arange(tree.n_nodes)
    rows = tree.node_field(dyn.ROW, nodes)
    live = tree.node_field(dyn.COUNT, nodes) > 0
    level = tree.node_field(dyn.LEVEL, nodes)
    D = pairwise_distances(X_new, tree.points.data[rows], spec)
    out = []
    for i in range(len(X_new)):
        zero = np.flatnonzero(live & (D[i] == 0.0))
        if zero.size:
            out.append((0, zero[0], 0.0, zero[0]))
            continue
        best = None
        for v in np.flatnonzero(live):
            d = D[i, v]
            if v == tree.root or d <= math.ldexp(1.0, int(level[v])):
                key = (kb.ceil_log2(d), d, v)
                best = key if best is None or key < best else best
        out.append((best[0], best[2], best[1], -1))
    return out


@pytest.mark.parametrize(
    "data", ["uniform", "duplicates", "grid_ties", "tiny_offset", "float32", "removed"]
)
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev", "minkowski"])
def test_flat_locate_equals_dynamic_locate_and_brute_force(data, metric, rng):
    from sklearn_pcct._backends._numba import _kernels_batch as kbt
    from sklearn_pcct._backends._numba import _kernels_locate as kl
    from sklearn_pcct._backends._numba._kernel_args import metric_args

    if data == "grid_ties":  # many equal distances: ties broken by node id
        X = np.stack(np.meshgrid(np.arange(12.0), np.arange(12.0)), -1).reshape(-1, 2)
        X = X[rng.permutation(len(X))]
    elif data == "tiny_offset":  # huge offset, tiny scale
        X = 1e8 + 1e-4 * rng.random((150, 3))
    else:
        X = rng.random((150, 4))
    if data == "duplicates":
        X = X[rng.integers(0, 40, 150)]
    if data == "float32":
        X = X.astype(np.float32)
    spec = MetricSpec(metric, p=3.0)
    tree = BACKEND.build_dynamic(X[:100], spec, 2)
    if data == "removed":  # freed node ids are not in the tree
        tree = BACKEND.remove(tree, rng.choice(100, 30, replace=False), 1)
    P = _ro(tree.points.data[: tree.n_ids])
    Q = np.concatenate([X[100:], X[:7]])  # new points and exact duplicates
    P = _ro(np.concatenate([P, Q.astype(P.dtype)]))
    ids = np.arange(tree.n_ids, tree.n_ids + len(Q))
    ip, fp, cm = tree.node_pool.ints, tree.node_pool.floats, tree.node_map.copy()
    args = metric_args(spec)
    layout = kl.locate_layout(P, ip, fp, cm, tree.root, tree.n_nodes)
    assert layout[0][0] == tree.root
    assert np.array_equal(np.sort(layout[0]), np.flatnonzero(tree.node_field(
        dyn.COUNT, np.arange(tree.n_nodes)) > 0))
    for n_blocks in (1, 5):
        flat = kl.locate_flat(P, ids, np.zeros(0, dtype=np.int64), *layout, n_blocks, *args)
        dyn_ = kbt.locate(P, ids, ip, fp, cm, tree.root, n_blocks, *args)
        for a, b in zip(flat, dyn_, strict=True):
            np.testing.assert_array_equal(a, b)  # same nodes visited: same counts too
    expected = _locate_brute_force(tree, Q.astype(P.dtype), spec)
    J, par, pd, dup, _ = flat
    for t, (j, a, d, du) in enumerate(expected):
        assert (J[t], par[t], dup[t]) == (j, a, du), t
        assert pd[t] == pytest.approx(d, rel=1e-12, abs=0.0), t


@pytest.mark.parametrize("n_threads", [1, 2])
def test_build_is_the_same_with_flat_or_dynamic_locate(n_threads, monkeypatch, rng):
    from sklearn_pcct._backends._numba import _tree_updates as tu

    X = np.concatenate([rng.random((1500, 3)), rng.random((300, 3)).round(1)])
    X = X[rng.permutation(len(X))]
    X_new = np.concatenate([rng.random((400, 3)), X[:50]])
    trees = []
    for ratio in (0.0, np.inf):  # every round flat / every round dynamic
        monkeypatch.setattr(tu, "_FLAT_LOCATE_RATIO", ratio)
        tree = BACKEND.build_dynamic(X, MetricSpec("euclidean"), n_threads)
        tree = BACKEND.insert(tree, X_new, n_threads)
        trees.append(tree)
    a, b = trees
    assert a.n_nodes == b.n_nodes and a.root == b.root
    nodes = np.arange(a.n_nodes)
    for name in ("ROW", "LEVEL", "PARENT", "FIRST", "NEXT", "COUNT"):
        np.testing.assert_array_equal(a.node_field(getattr(dyn, name), nodes),
                                      b.node_field(getattr(dyn, name), nodes))
    for name in ("PDIST", "RADIUS"):
        np.testing.assert_array_equal(
            a.node_field(getattr(dyn, name), nodes, floating=True),
            b.node_field(getattr(dyn, name), nodes, floating=True),
        )
    check_tree_invariants(BACKEND.freeze(a))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_merge_rows_keeps_the_first_entries_of_each_merged_row(n_threads, rng):
    n, cap = 40, 5
    ind = np.full((n, cap), -1)
    dist = np.full((n, cap), np.inf)
    lists = []
    for r in range(n):  # sorted rows, some short (padded), many ties
        c = int(rng.integers(0, cap + 1))
        d = rng.integers(0, 4, c).astype(float)
        ids = rng.choice(500, c, replace=False)
        o = np.lexsort((ids, d))
        ind[r, :c], dist[r, :c] = ids[o], d[o]
        lists.append(list(zip(d[o].tolist(), ids[o].tolist(), strict=True)))
    m = 70
    rows = rng.integers(0, n, m)
    new_ind = 500 + rng.permutation(m)
    new_dist = rng.integers(0, 4, m).astype(float)
    BACKEND.merge_rows(ind, dist, rows, new_ind, new_dist, n_threads)
    for r in range(n):
        merged = sorted(lists[r] + [(float(new_dist[t]), int(new_ind[t]))
                                    for t in np.flatnonzero(rows == r)])[:cap]
        merged += [(np.inf, -1)] * (cap - len(merged))
        assert dist[r].tolist() == [e[0] for e in merged]
        assert ind[r].tolist() == [e[1] for e in merged]


def _same_dynamic_trees(a, b):
    assert a.n_nodes == b.n_nodes and a.root == b.root
    nodes = np.arange(a.n_nodes)
    for name in ("ROW", "LEVEL", "PARENT", "FIRST", "NEXT", "COUNT"):
        np.testing.assert_array_equal(a.node_field(getattr(dyn, name), nodes),
                                      b.node_field(getattr(dyn, name), nodes), err_msg=name)
    for name in ("PDIST", "RADIUS"):
        np.testing.assert_array_equal(
            a.node_field(getattr(dyn, name), nodes, floating=True),
            b.node_field(getattr(dyn, name), nodes, floating=True), err_msg=name,
        )


@pytest.mark.parametrize("data", ["far_cluster", "duplicates", "grid_ties", "float32"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_build_is_the_same_with_all_pairs_or_searched_conflicts(data, n_threads, monkeypatch,
                                                                rng):
    # step 3 of a round: comparing all pairs of new nodes (conflicts_dense) and
    # searching the marked subtrees (conflicts) find the same conflict graph,
    # so the same tree. A tight cluster far from the tree puts its points at
    # high levels: rows of hundreds of partners (beyond conflicts_dense's slab).
    from sklearn_pcct._backends._numba import _tree_updates as tu

    if data == "grid_ties":
        X = np.stack(np.meshgrid(np.arange(30.0), np.arange(30.0)), -1).reshape(-1, 2)
        X = X[rng.permutation(len(X))]
        X, X_new = X[:400], X[400:]
    else:
        X = rng.random((600, 3))
        X_new = 5.0 + 1e-3 * rng.random((700, 3))
        if data == "duplicates":
            X, X_new = X[rng.integers(0, 50, len(X))], X_new[rng.integers(0, 20, len(X_new))]
        elif data == "float32":
            X, X_new = X.astype(np.float32), X_new.astype(np.float32)
    trees = []
    for dense_max in (10**9, 0):  # every round all pairs / every round searched
        monkeypatch.setattr(tu, "_DENSE_CONFLICTS_MAX", dense_max)
        tree = BACKEND.build_dynamic(X, MetricSpec("euclidean"), n_threads)
        trees.append(BACKEND.insert(tree, X_new, n_threads))
    _same_dynamic_trees(*trees)
    frozen = BACKEND.freeze(trees[0])
    check_tree_invariants(frozen)
    X_all = np.concatenate([X, X_new])
    d, i = BACKEND.knn(frozen, X_all[::7], 4, n_threads)
    D = pairwise_distances(X_all[::7], X_all, MetricSpec("euclidean"))
    np.testing.assert_allclose(d, np.sort(D, axis=1)[:, :4], rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "data", ["uniform", "duplicates", "grid_ties", "tiny_offset", "float32", "clustered"]
)
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_removal_is_the_same_with_flat_or_one_by_one_reattachment(
    data, metric, n_threads, monkeypatch, rng
):
    # the orphans of a removal located on a flat copy, block by block, then
    # improved by the subtrees of the earlier orphans of their block, must give
    # the tree of re-attaching them one by one on the dynamic tree
    from sklearn_pcct._backends._numba import _tree_updates as tu

    if data == "grid_ties":
        X = np.stack(np.meshgrid(np.arange(25.0), np.arange(25.0)), -1).reshape(-1, 2)
        X = X[rng.permutation(len(X))]
    elif data == "tiny_offset":
        X = 1e8 + 1e-4 * rng.random((600, 3))
    elif data == "clustered":
        X = rng.normal(size=(600, 3)) * 0.01 + rng.integers(0, 4, (600, 1))
    else:
        X = rng.random((600, 3))
    if data == "duplicates":
        X = X[rng.integers(0, 200, len(X))]
    if data == "float32":
        X = X.astype(np.float32)
    spec = MetricSpec(metric)
    tree = BACKEND.build_dynamic(X, spec, n_threads)
    removals = [rng.choice(len(X), 150, replace=False)]
    removals.append(rng.choice(np.setdiff1d(np.arange(len(X)), removals[0]), 100,
                               replace=False))
    removals.append(None)  # the root's samples
    monkeypatch.setattr(tu, "_REATTACH_PROBE", 1)
    monkeypatch.setattr(tu, "_REATTACH_BLOCK", 7)  # many blocks, orphans across blocks
    results = []
    for ratio in (0.0, np.inf):  # flat blocks / one by one
        monkeypatch.setattr(tu, "_FLAT_LOCATE_RATIO", ratio)
        t = tree
        for ids in removals:
            if ids is None:
                ids = np.flatnonzero(t.id_node() == t.root)
            t = BACKEND.remove(t, ids, n_threads)
        results.append(t)
    _same_dynamic_trees(*results)
    frozen = BACKEND.freeze(results[0])
    check_tree_invariants(frozen)
    live = results[0].live_ids()
    Q = rng.random((20, X.shape[1])).astype(X.dtype) if data != "tiny_offset" else X[:20]
    d, i = BACKEND.knn(frozen, Q, 5, n_threads)
    D = pairwise_distances(Q, X[live], spec)
    np.testing.assert_allclose(d, np.sort(D, axis=1)[:, :5], rtol=1e-12, atol=0)


@pytest.mark.parametrize("slab", [1, 128])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("data", ["uniform", "duplicates"])
def test_reverse_knn_equals_brute_force(slab, n_threads, data, monkeypatch, rng):
    # every pair (i, x) with d(Q[i], x) < tau[x]; slab=1 overflows the
    # per-block slabs, so those blocks are searched a second time
    import sklearn_pcct._backends._numba as nb

    monkeypatch.setattr(nb, "_REVERSE_SLAB", slab)
    X = rng.random((700, 3))
    if data == "duplicates":
        X = X[rng.integers(0, 150, len(X))]
    spec = MetricSpec("euclidean")
    tree = BACKEND.build(X, spec, n_threads)
    Q = np.concatenate([rng.random((300, 3)), X[:20]])
    tau = rng.uniform(0.0, 0.3, len(X))
    tau[rng.random(len(X)) < 0.1] = -np.inf  # excluded samples
    q, x, d = BACKEND.reverse_knn(tree, Q, tau, n_threads)
    D = pairwise_distances(Q, X, spec)
    want = set(zip(*np.nonzero(D < tau[None, :]), strict=True))
    got = list(zip(q.tolist(), x.tolist(), strict=True))
    assert len(got) == len(set(got)) == len(want)
    assert set(got) == {(int(a), int(b)) for a, b in want}
    np.testing.assert_allclose(d, D[q, x], rtol=1e-12, atol=0)


@pytest.mark.parametrize("slab", [1, 128])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("data", ["uniform", "duplicates"])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
def test_reverse_knn_on_a_kd_index_equals_brute_force(slab, n_threads, data, metric,
                                                       monkeypatch, rng):
    # the same pairs over a kd-tree index with removed rows and two trees;
    # slab=1 sends most queries to the second, exact-size search
    from sklearn_pcct import _forest
    from sklearn_pcct._backends._numba import _boxes

    monkeypatch.setattr(_boxes, "_REVERSE_SLAB", slab)
    X = rng.random((900, 3))
    if data == "duplicates":
        X = X[rng.integers(0, 150, len(X))]
    spec = MetricSpec(metric)
    forest = _forest.build_forest(X[:800], spec, BACKEND)
    forest = _forest.insert(forest, X[800:], BACKEND)  # a second tree
    gone = rng.choice(900, 60, replace=False)
    forest = _forest.remove(forest, gone, BACKEND)
    assert len(forest.parts) == 2 and forest.n_live == 840
    Q = np.concatenate([rng.random((300, 3)), X[:20]])
    tau = rng.uniform(0.0, 0.3, len(X))
    tau[rng.random(len(X)) < 0.1] = -np.inf  # excluded samples
    D = pairwise_distances(Q, X, spec)
    live = np.ones(len(X), dtype=bool)
    live[gone] = False
    want = set(zip(*np.nonzero((D < tau[None, :]) & live[None, :]), strict=True))
    knn_ref = BACKEND.knn(forest, Q, 7, n_threads)
    for both in (False, True):  # alone, and with the k-NN search in one traversal
        if both:
            dist, ind, q, x, d = BACKEND.knn_and_reverse(forest, Q, 7, tau, n_threads)
            np.testing.assert_array_equal(ind, knn_ref[1])
            np.testing.assert_array_equal(dist, knn_ref[0])
        else:
            q, x, d = BACKEND.reverse_knn(forest, Q, tau, n_threads)
        got = list(zip(q.tolist(), x.tolist(), strict=True))
        assert len(got) == len(set(got)) == len(want)
        assert set(got) == {(int(a), int(b)) for a, b in want}
        np.testing.assert_allclose(d, D[q, x], rtol=1e-12, atol=0)
    # the k-NN answer itself: brute force over the live samples, ties by id
    Dl = np.where(live[None, :], D, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), Dl.shape), Dl), axis=1)[:, :7]
    np.testing.assert_array_equal(knn_ref[1], order)
    np.testing.assert_allclose(knn_ref[0], np.take_along_axis(Dl, order, 1), rtol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("data", ["uniform", "grid"])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev"])
def test_radius_on_a_kd_index_equals_brute_force(n_threads, data, metric, rng):
    # two trees and removed rows; distances at exactly r are included
    from sklearn_pcct import _forest

    X = rng.random((700, 3)) if data == "uniform" else rng.integers(0, 5, (700, 3)) * 1.0
    spec = MetricSpec(metric)
    forest = _forest.build_forest(X[:620], spec, BACKEND)
    forest = _forest.insert(forest, X[620:], BACKEND)
    gone = rng.choice(700, 50, replace=False)
    forest = _forest.remove(forest, gone, BACKEND)
    assert len(forest.parts) == 2
    Q = np.concatenate([X[:30], rng.random((40, 3)) * (1 if data == "uniform" else 4)])
    r = rng.choice([0.0, 0.3, 1.0, 2.0], len(Q))
    indptr, ind, dist = BACKEND.radius(forest, Q, r, n_threads)
    D = pairwise_distances(Q, X, spec)
    live = np.ones(len(X), dtype=bool)
    live[gone] = False
    for i in range(len(Q)):
        want = np.flatnonzero((D[i] <= r[i]) & live)
        row = ind[indptr[i]:indptr[i + 1]]
        np.testing.assert_array_equal(np.sort(row), want)
        np.testing.assert_allclose(dist[indptr[i]:indptr[i + 1]], D[i, row], rtol=1e-12)
    # the fitted form: one row per live sample, itself included
    indptr, ind, dist = BACKEND.radius_fitted(forest, 1.0, n_threads)
    ids = np.flatnonzero(live)
    assert indptr.shape[0] == ids.shape[0] + 1
    for j in (0, 17, len(ids) - 1):
        near = pairwise_distances(X[ids[j:j + 1]], X, spec)[0] <= 1.0
        want = np.flatnonzero(near & live)
        np.testing.assert_array_equal(np.sort(ind[indptr[j]:indptr[j + 1]]), want)
