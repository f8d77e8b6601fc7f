"""Batch updates: partial_fit / remove / snapshot against brute force (issue 3).

Every check maps the brute-force answer on the live points back to sample ids
through ``live_ids_`` (ascending, so the tie rule "lowest index first" of the
oracle is the tie rule "lowest id first" of the estimator). On integer grid
data every distance is computed exactly (or, for ``p = 3``, from an exact
integer sum), so there the neighbour ids must match index for index; on
continuous data the comparison is tie-aware.
"""

import dataclasses
import io
import os
import pickle
import re
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsTransformer

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._metric import pairwise_distances, resolve_metric
from sklearn_pcct._testing import (
    assert_knn_equal,
    assert_radius_equal,
    brute_force_knn,
    brute_force_radius,
)
from sklearn_pcct._tree import check_tree_invariants

RTOL = 1e-10

METRICS = {
    "euclidean": dict(metric="euclidean"),
    "manhattan": dict(metric="manhattan"),
    "chebyshev": dict(metric="chebyshev"),
    "minkowski_p3": dict(metric="minkowski", p=3),
}
DTYPES = {"float64": np.float64, "float32": np.float32}
# radii that are never a distance of the integer grid data (no boundary ties)
GRID_RADII = (0.5, 1.2, 1.7, 2.5)


def _spec(params):
    return resolve_metric(params.get("metric", "minkowski"), params.get("p", 2), None)[0]


def _objs(rows):
    out = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        out[i] = r
    return out


# -- the model: what the estimator must hold ---------------------------------


class Model:
    """Points of every issued id, which ids are live, and the update count."""

    def __init__(self, X, dtype):
        self.dtype = dtype
        self.points = np.asarray(X, dtype=dtype).copy()
        self.live = np.ones(len(self.points), dtype=bool)
        self.version = 0

    def copy(self):
        other = Model(self.points, self.dtype)
        other.live = self.live.copy()
        other.version = self.version
        return other

    def insert(self, X):
        self.points = np.vstack([self.points, np.asarray(X, dtype=self.dtype)])
        self.live = np.concatenate([self.live, np.ones(len(X), dtype=bool)])
        self.version += 1

    def remove(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        assert np.all(self.live[ids])
        self.live[ids] = False
        self.version += 1

    @property
    def n_ids(self):
        return len(self.points)

    @property
    def ids(self):
        return np.flatnonzero(self.live)

    @property
    def X_live(self):
        return self.points[self.live]


# -- checks against brute force ------------------------------------------------


def _check_knn(dist, ind, dist_ref, ind_ref, exact, model, spec, X_query):
    assert ind.dtype.kind == "i"
    if exact:
        np.testing.assert_array_equal(ind, ind_ref)
        np.testing.assert_allclose(dist, dist_ref, rtol=RTOL, atol=0)
    else:
        assert_knn_equal(
            dist, ind, dist_ref, ind_ref, rtol=RTOL,
            X_fit=model.points, X_query=X_query, metric_spec=spec,
        )


def _check_radius(dist, ind, dist_ref, ind_ref, radius, exact):
    # on grid data no distance is within RTOL of the radius: exact boundary
    assert_radius_equal(dist, ind, dist_ref, ind_ref, radius, rtol=RTOL, sorted_rows=True)
    if exact:
        for a, b in zip(ind, ind_ref, strict=True):
            np.testing.assert_array_equal(a, b)


def _expected_csr(n_ids, row_ids, ind_rows, data_rows):
    """CSR of shape (n_ids, n_ids) with the given rows at ``row_ids``, others empty."""
    counts = np.zeros(n_ids, dtype=np.int64)
    counts[row_ids] = [len(r) for r in ind_rows]
    indptr = np.concatenate(([0], np.cumsum(counts)))
    if len(ind_rows):
        indices = np.concatenate([np.asarray(r, dtype=np.int64) for r in ind_rows])
        data = np.concatenate([np.asarray(r, dtype=np.float64) for r in data_rows])
    else:
        indices, data = np.zeros(0, np.int64), np.zeros(0)
    return indptr, indices, data


def _assert_csr(A, shape, indptr, indices, data):
    assert sp.issparse(A) and A.format == "csr"
    assert A.shape == shape
    np.testing.assert_array_equal(A.indptr, indptr)
    np.testing.assert_array_equal(A.indices, indices)
    np.testing.assert_array_equal(A.data, data)


def check_against_model(est, model, spec, Q, radius, exact, check_tree=True):
    """Every query of ``est`` (estimator or snapshot) against brute force on ``model``."""
    ids, X_live, n_ids = model.ids, model.X_live, model.n_ids
    n_live = len(ids)
    assert est.n_samples_fit_ == n_ids
    np.testing.assert_array_equal(est.live_ids_, ids)
    assert est.version_ == model.version
    tree = est.tree_
    if check_tree:
        check_tree_invariants(tree)
    np.testing.assert_array_equal(tree.live_ids, ids)
    Q = np.asarray(Q, dtype=model.dtype)

    # kneighbors(Q)
    for k in sorted({1, min(3, n_live), n_live}):
        dist, ind = est.kneighbors(Q, n_neighbors=k)
        d_ref, i_ref = brute_force_knn(X_live, Q, k, spec)
        _check_knn(dist, ind, d_ref, ids[i_ref], exact, model, spec, Q)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        est.kneighbors(Q, n_neighbors=n_live + 1)
    A = est.kneighbors_graph(Q, n_neighbors=min(2, n_live), mode="distance")
    d, i = est.kneighbors(Q, n_neighbors=min(2, n_live))
    k = d.shape[1]
    _assert_csr(A, (len(Q), n_ids), np.arange(0, len(Q) * k + 1, k), i.ravel(), d.ravel())

    # kneighbors(X=None): rows are the live ids, self excluded
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        est.kneighbors(None, n_neighbors=n_live)
    for k in sorted({1, min(3, n_live - 1), n_live - 1} & set(range(1, n_live))):
        dist, ind = est.kneighbors(None, n_neighbors=k)
        d_ref, i_ref = brute_force_knn(X_live, None, k, spec, exclude_self=True)
        _check_knn(dist, ind, d_ref, ids[i_ref], exact, model, spec, X_live)
        for mode in ("distance", "connectivity"):
            A = est.kneighbors_graph(None, n_neighbors=k, mode=mode)
            data = dist if mode == "distance" else np.ones_like(dist)
            _assert_csr(A, (n_ids, n_ids), *_expected_csr(n_ids, ids, list(ind), list(data)))

    # radius_neighbors(Q) and radius_neighbors(X=None)
    if not hasattr(est, "radius_neighbors"):  # PCCTTransformer
        return
    dist, ind = est.radius_neighbors(Q, radius=radius, sort_results=True)
    d_ref, i_ref = brute_force_radius(X_live, Q, radius * (1 + 1e-9), spec)
    _check_radius(dist, ind, d_ref, _objs([ids[r] for r in i_ref]), radius, exact)
    dist, ind = est.radius_neighbors(None, radius=radius, sort_results=True)
    assert len(ind) == n_live
    d_ref, i_ref = brute_force_radius(X_live, None, radius * (1 + 1e-9), spec, exclude_self=True)
    _check_radius(dist, ind, d_ref, _objs([ids[r] for r in i_ref]), radius, exact)
    A = est.radius_neighbors_graph(None, radius=radius, mode="distance", sort_results=True)
    _assert_csr(A, (n_ids, n_ids), *_expected_csr(n_ids, ids, list(ind), list(dist)))
    # connectivity rows are not sorted (sort_results applies to mode='distance')
    A = est.radius_neighbors_graph(None, radius=radius, mode="connectivity")
    A.sort_indices()
    rows = [np.sort(r) for r in ind]
    _assert_csr(A, (n_ids, n_ids),
                *_expected_csr(n_ids, ids, rows, [np.ones(len(r)) for r in rows]))


# -- hypothesis: random interleavings of updates -------------------------------


@st.composite
def _coords(draw, d, grid_size, exact, n):
    if exact:
        vals = draw(st.lists(st.integers(0, grid_size - 1), min_size=n * d, max_size=n * d))
        return np.array(vals, dtype=np.float64).reshape(n, d)
    vals = draw(st.lists(st.integers(0, 4000), min_size=n * d, max_size=n * d))
    return np.array(vals, dtype=np.float64).reshape(n, d) * (grid_size / 4000.0)


def _draw_batch(data, model, d, grid_size, exact, max_rows=12):
    """Rows: fresh points, copies of issued points (live or removed), copies within the batch."""
    m = data.draw(st.integers(1, max_rows), label="batch size")
    fresh = data.draw(_coords(d, grid_size, exact, m), label="fresh rows")
    rows = []
    for j in range(m):
        how = data.draw(st.sampled_from(["fresh", "issued", "batch"]) if model is not None
                        else st.sampled_from(["fresh", "batch"]))
        if how == "issued":
            rows.append(model.points[data.draw(st.integers(0, model.n_ids - 1))])
        elif how == "batch" and rows:
            rows.append(rows[data.draw(st.integers(0, len(rows) - 1))])
        else:
            rows.append(fresh[j])
    return np.array(rows, dtype=np.float64)


def _draw_removal(data, est, model):
    """Ids to remove, leaving at least one live sample."""
    ids = model.ids
    kind = data.draw(st.sampled_from(["random", "all_but_few", "root", "root_group", "none"]))
    if kind == "none":
        return np.zeros(0, dtype=np.int64)
    if len(ids) < 2:
        return None
    if kind == "random":
        m = data.draw(st.integers(1, len(ids) - 1))
        perm = data.draw(st.permutations(ids.tolist()))
        return np.array(perm[:m], dtype=np.int64)
    if kind == "all_but_few":
        keep = data.draw(st.integers(1, min(3, len(ids) - 1)))
        perm = data.draw(st.permutations(ids.tolist()))
        return np.array(perm[keep:], dtype=np.int64)
    tree = est.tree_
    root = int(tree.node_sample[0])
    if kind == "root":
        return np.array([root])
    group = np.concatenate(([root], tree.dup_idx[tree.dup_ptr[0] : tree.dup_ptr[1]]))
    if len(group) >= len(ids):
        group = group[: len(ids) - 1]
    return np.array(data.draw(st.permutations(group.tolist())), dtype=np.int64)


def _run_updates(data, est_factory, dtype, spec, exact, n_steps, on_step):
    d = data.draw(st.integers(1, 3), label="n_features")
    grid_size = data.draw(st.integers(2, 4), label="grid size")
    est = est_factory()
    model = None
    snapshots = []
    Q = None
    for _ in range(n_steps):
        ops = ["fit", "partial_fit"] if model is None else [
            "fit", "partial_fit", "partial_fit", "remove", "remove", "snapshot"
        ]
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "fit" or model is None:
            X = _draw_batch(data, None, d, grid_size, exact, max_rows=25)
            getattr(est, op)(X.astype(dtype))
            model = Model(X, dtype)
            Q_extra = data.draw(_coords(d, grid_size, exact, 4), label="queries")
            Q = np.vstack([Q_extra, X[:2], [np.full(d, (grid_size - 1) / 2.0)]])
        elif op == "partial_fit":
            X = _draw_batch(data, model, d, grid_size, exact)
            # float64 rows are cast to a float32 tree by the estimator itself
            cast = data.draw(st.booleans(), label="cast before partial_fit")
            assert est.partial_fit(X.astype(dtype) if cast else X) is est
            model.insert(X)
        elif op == "remove":
            ids = _draw_removal(data, est, model)
            if ids is None:
                continue
            assert est.remove(ids) is est
            model.remove(ids)
        else:
            snapshots.append((est.snapshot(), model.copy()))
        on_step(est, model, Q)
    return est, model, Q, snapshots


# a longer search: PCCT_UPDATES_EXAMPLES=500 python -m pytest tests/test_updates.py -k random
N_EXAMPLES = int(os.environ.get("PCCT_UPDATES_EXAMPLES", "10"))
HYP = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("metric", list(METRICS))
@HYP
@given(data=st.data())
def test_random_updates_match_brute_force(metric, dtype, data):
    params = METRICS[metric]
    spec = _spec(params)
    exact = data.draw(st.booleans(), label="integer grid data")
    radius = data.draw(
        st.sampled_from(GRID_RADII) if exact else st.floats(0.1, 2.0), label="radius"
    )

    # the kd-tree index ("auto" with a box metric) or the cover tree
    algorithm = data.draw(st.sampled_from(["auto", "cover_tree"]), label="algorithm")

    def on_step(est, model, Q):
        check_against_model(est, model, spec, Q, radius, exact)

    est, model, Q, snapshots = _run_updates(
        data, lambda: PCCTNeighbors(algorithm=algorithm, **params), dtype, spec, exact,
        n_steps=7, on_step=on_step,
    )
    # snapshots answer as the estimator did when they were taken
    for snap, snap_model in snapshots:
        check_against_model(snap, snap_model, spec, Q, radius, exact)
    if snapshots:
        snap, snap_model = snapshots[0]
        check_against_model(pickle.loads(pickle.dumps(snap)), snap_model, spec, Q, radius, exact)


def _graph_oracle(model, spec, n_neighbors, mode):
    """The graph KNeighborsTransformer gives for the live points, in id space (exact)."""
    ids = model.ids
    k = n_neighbors + (mode == "distance")
    d_ref, i_ref = brute_force_knn(model.X_live, model.X_live, k, spec)
    data = d_ref if mode == "distance" else np.ones_like(d_ref)
    return _expected_csr(model.n_ids, ids, list(ids[i_ref]), list(data))


def _check_graph_rows(G, model, spec, n_neighbors, mode, exact):
    n_ids = model.n_ids
    indptr, indices, data = _graph_oracle(model, spec, n_neighbors, mode)
    assert sp.issparse(G) and G.format == "csr" and G.shape == (n_ids, n_ids)
    np.testing.assert_array_equal(G.indptr, indptr)
    if exact:
        np.testing.assert_array_equal(G.indices, indices)
        np.testing.assert_allclose(G.data, data, rtol=RTOL, atol=0)
        return
    k = n_neighbors + (mode == "distance")
    got_i = G.indices.reshape(-1, k)
    ref_i = indices.reshape(-1, k)
    ref_d = data.reshape(-1, k)
    if mode == "distance":
        got_d = G.data.reshape(-1, k)
    else:
        assert np.all(G.data == 1.0)
        ref_d = brute_force_knn(model.X_live, model.X_live, k, spec)[0]
        got_d = ref_d
    assert_knn_equal(got_d, got_i, ref_d, ref_i, rtol=RTOL,
                     X_fit=model.points, X_query=model.X_live, metric_spec=spec)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "minkowski_p3"])
@settings(HYP, max_examples=N_EXAMPLES + 2)
@given(data=st.data())
def test_random_updates_transformer_graph(metric, data):
    params = METRICS[metric]
    spec = _spec(params)
    exact = data.draw(st.booleans(), label="integer grid data")
    mode = data.draw(st.sampled_from(["distance", "connectivity"]), label="mode")
    n_neighbors = data.draw(st.integers(1, 3), label="n_neighbors")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    algorithm = data.draw(st.sampled_from(["auto", "cover_tree"]), label="algorithm")
    k = n_neighbors + (mode == "distance")

    def on_step(est, model, Q):
        # reading graph_ (or not) decides whether the next update is incremental
        if data.draw(st.booleans(), label="read graph_"):
            if len(model.ids) < k:
                with pytest.raises(ValueError):
                    _ = est.graph_
                return
            _check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact)
            # graph_ is what a fresh fit_transform of the live points gives
            fresh = PCCTTransformer(n_neighbors=n_neighbors, mode=mode, **params)
            F = fresh.fit_transform(model.X_live)
            G = est.graph_[model.ids]
            np.testing.assert_array_equal(G.indptr, F.indptr)
            np.testing.assert_array_equal(G.indices, model.ids[F.indices])
            np.testing.assert_allclose(G.data, F.data, rtol=RTOL, atol=0)

    _run_updates(
        data, lambda: PCCTTransformer(n_neighbors=n_neighbors, mode=mode,
                                      algorithm=algorithm, **params),
        dtype, spec, exact, n_steps=8, on_step=on_step,
    )


# -- longer deterministic sequences on adversarial data ------------------------


@pytest.mark.parametrize(
    "kind, metric",
    [("clustered", "euclidean"), ("duplicates", "chebyshev"), ("exponential", "euclidean"),
     ("grid", "manhattan"), ("offset", "euclidean"), ("tiny", "chebyshev"),
     ("manifold", "euclidean")],
)
def test_update_sequences_on_adversarial_data(kind, metric, data_factory):
    """A few hundred points, batches of new data and duplicates, removals of the root."""
    rng = np.random.default_rng(len(kind))
    d = 1 if kind == "exponential" else 3
    n = 60 if kind == "exponential" else 150
    X = data_factory(kind, n, d)
    pool = data_factory(kind, 4 * n, d)
    if kind == "exponential":  # the deep chain, inserted in shuffled batches
        pool = X[rng.permutation(n)]
    spec = _spec({"metric": metric})
    est = PCCTNeighbors(metric=metric).fit(X[: n // 2])
    model = Model(X[: n // 2], np.float64)
    Q = np.vstack([data_factory(kind, 10, d), X[:3]])
    radius = float(np.median(brute_force_knn(X, None, 3, spec, exclude_self=True)[0][:, -1]))
    exact = kind == "grid"
    for step in range(10):
        if step % 3 == 0:
            new = np.vstack([pool[step * n // 10 : (step + 1) * n // 10],
                             model.points[rng.integers(0, model.n_ids, 5)]])
            est.partial_fit(new)
            model.insert(new)
        elif step % 3 == 1:
            tree = est.tree_
            root_group = np.concatenate(
                ([tree.node_sample[0]], tree.dup_idx[tree.dup_ptr[0] : tree.dup_ptr[1]])
            )
            others = rng.choice(model.ids, size=len(model.ids) // 5, replace=False)
            gone = np.union1d(root_group, others)[: len(model.ids) - 8]
            est.remove(gone)
            model.remove(gone)
        else:
            # the nodes of the highest levels (below the root) and their groups
            tree = est.tree_
            top = np.argsort(-tree.level[1:], kind="stable")[:4] + 1
            gone = np.unique(tree.node_sample[top])
            est.remove(gone)
            model.remove(gone)
        check_against_model(est, model, spec, Q, radius, exact)


# -- deterministic helpers -----------------------------------------------------


def _grid_data(rng, n, d=2, side=4):
    return rng.integers(0, side, (n, d)).astype(np.float64)


def _tree_arrays(tree):
    return {
        f.name: np.array(getattr(tree, f.name), copy=True)
        for f in dataclasses.fields(tree)
        if isinstance(getattr(tree, f.name), np.ndarray)
    }


def _assert_tree_arrays(tree, saved):
    now = _tree_arrays(tree)
    assert now.keys() == saved.keys()
    for name, arr in saved.items():
        assert now[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(now[name], arr, err_msg=name)


def _record(est):
    """Everything visible of a fitted estimator, copied."""
    out = {
        "state": est._pcct_state_,
        "n_samples_fit_": est.n_samples_fit_,
        "live_ids_": est.live_ids_.copy(),
        "version_": est.version_,
        "tree": _tree_arrays(est.tree_),
        "tree_scalars": (est.tree_.n_samples, est.tree_.version, est.tree_.metric),
        "n_features_in_": est.n_features_in_,
        "keys": sorted(vars(est)),
    }
    if isinstance(est, PCCTTransformer):
        G = est.graph_
        out["graph"] = (G.shape, G.indptr.copy(), G.indices.copy(), G.data.copy())
    return out


def _assert_unchanged(est, rec):
    assert est._pcct_state_ is rec["state"]
    assert est.n_samples_fit_ == rec["n_samples_fit_"]
    np.testing.assert_array_equal(est.live_ids_, rec["live_ids_"])
    assert est.version_ == rec["version_"]
    _assert_tree_arrays(est.tree_, rec["tree"])
    assert (est.tree_.n_samples, est.tree_.version, est.tree_.metric) == rec["tree_scalars"]
    assert est.n_features_in_ == rec["n_features_in_"]
    assert sorted(vars(est)) == rec["keys"]
    if "graph" in rec:
        G = est.graph_
        shape, indptr, indices, data = rec["graph"]
        assert G.shape == shape
        np.testing.assert_array_equal(G.indptr, indptr)
        np.testing.assert_array_equal(G.indices, indices)
        np.testing.assert_array_equal(G.data, data)


@pytest.fixture
def rng():
    return np.random.default_rng(20240917)


def _fitted_with_removals(cls, rng, dtype=np.float64, **params):
    X = _grid_data(rng, 40, d=3)
    est = cls(n_neighbors=3, **params).fit(X.astype(dtype))
    model = Model(X, dtype)
    est.partial_fit(X[:5].astype(dtype))  # exact duplicates
    model.insert(X[:5])
    gone = np.array([1, 7, 42])
    est.remove(gone)
    model.remove(gone)
    if isinstance(est, PCCTTransformer):
        _ = est.graph_  # cached, so that the next update is incremental
    return est, model


def _check_model(est, model, rng, radius=1.2):
    spec = _spec({"metric": est.metric, "p": est.p})
    Q = np.vstack([_grid_data(rng, 5, d=model.points.shape[1]), model.points[:3]])
    check_against_model(est, model, spec, Q, radius, exact=True)
    if isinstance(est, PCCTTransformer):
        _check_graph_rows(est.graph_, model, spec, est.n_neighbors, est.mode, exact=True)


# -- failed updates leave the estimator exactly as it was -----------------------


def _bad_batches(d):
    return {
        "nan": np.array([[np.nan] + [0.0] * (d - 1)]),
        "inf": np.array([[0.0] * (d - 1) + [np.inf]]),
        "-inf": np.array([[-np.inf] * d, [0.0] * d]),
        "nan_in_big_batch": np.vstack([np.zeros((10, d)), [[np.nan] * d]]),
        "too_many_features": np.zeros((2, d + 1)),
        "too_few_features": np.zeros((2, d - 1)),
        "sparse": sp.csr_matrix(np.ones((2, d))),
        "sparse_array": sp.csr_array(np.ones((2, d))),
        "1d": np.zeros(d),
        "3d": np.zeros((1, 2, d)),
        "empty": np.zeros((0, d)),
        "object_strings": np.array([["a"] * d], dtype=object),
        "strings": [["x"] * d],
        "complex": np.zeros((1, d), dtype=complex) + 1j,
    }


BAD_BATCH_NAMES = list(_bad_batches(3))


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", BAD_BATCH_NAMES)
def test_failed_partial_fit_leaves_estimator_unchanged(cls, dtype, case, rng):
    est, model = _fitted_with_removals(cls, rng, dtype)
    rec = _record(est)
    bad = _bad_batches(model.points.shape[1])[case]
    with pytest.raises((ValueError, TypeError)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            est.partial_fit(bad)
    _assert_unchanged(est, rec)
    # the next update works and is exact
    new = _grid_data(rng, 6, d=3)
    est.partial_fit(new.astype(dtype))
    model.insert(new)
    _check_model(est, model, rng)
    est.remove([0, 44])
    model.remove([0, 44])
    _check_model(est, model, rng)


def _bad_ids(est):
    n = est.n_samples_fit_
    live = est.live_ids_
    return {
        "unknown": [n],
        "far_unknown": [10**12],
        "negative": [-1],
        "repeated": [live[0], live[0]],
        "already_removed": [1],
        "removed_and_live": [live[0], 7],
        "live_and_unknown": [live[0], live[1], n + 3],
        "float": [float(live[0])],
        "float_array": np.array([live[0], live[1]], dtype=np.float64),
        "2d": np.array([[live[0], live[1]]]),
        "2d_column": np.array([[live[0]], [live[1]]]),
        "bool": np.array([True]),
        "string": "0",
        "none_object": np.array([None], dtype=object),
    }


BAD_ID_NAMES = [
    "unknown", "far_unknown", "negative", "repeated", "already_removed", "removed_and_live",
    "live_and_unknown", "float", "float_array", "2d", "2d_column", "bool", "string",
    "none_object",
]


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
@pytest.mark.parametrize("case", BAD_ID_NAMES)
def test_failed_remove_leaves_estimator_unchanged(cls, case, rng):
    est, model = _fitted_with_removals(cls, rng)
    assert set(_bad_ids(est)) == set(BAD_ID_NAMES)
    rec = _record(est)
    with pytest.raises(ValueError):
        est.remove(_bad_ids(est)[case])
    _assert_unchanged(est, rec)
    live = est.live_ids_
    ids = [live[0], live[-1], live[len(live) // 2]]
    est.remove(ids)
    model.remove(ids)
    _check_model(est, model, rng)
    new = _grid_data(rng, 4, d=3)
    est.partial_fit(new)
    model.insert(new)
    _check_model(est, model, rng)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
@pytest.mark.parametrize("ids", [[], np.zeros(0, dtype=np.int64), np.zeros(0)],
                         ids=["list", "int_array", "float_array"])
def test_empty_remove_is_a_noop(cls, ids, rng):
    est, model = _fitted_with_removals(cls, rng)
    rec = _record(est)
    assert est.remove(ids) is est
    _assert_unchanged(est, rec)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_error_messages_of_remove(cls, rng):
    est, _ = _fitted_with_removals(cls, rng)
    with pytest.raises(ValueError, match="unknown ids"):
        est.remove([est.n_samples_fit_])
    with pytest.raises(ValueError, match="repeated"):
        est.remove([3, 3])
    with pytest.raises(ValueError, match="already removed"):
        est.remove([7])


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_updates_of_unfitted_estimator(cls, rng):
    est = cls()
    with pytest.raises(NotFittedError):
        est.remove([0])
    with pytest.raises(NotFittedError):
        est.snapshot()
    with pytest.raises(ValueError):
        est.partial_fit([[np.nan, 0.0]])
    assert "_pcct_state_" not in vars(est) and not hasattr(est, "n_features_in_")
    est.partial_fit(_grid_data(rng, 10))
    assert est.n_samples_fit_ == 10 and est.version_ == 0


def test_failed_fit_after_updates_keeps_updated_state(rng):
    est, model = _fitted_with_removals(PCCTNeighbors, rng)
    rec = _record(est)
    with pytest.raises(ValueError):
        est.fit([[np.nan, 0.0, 0.0]])
    _assert_unchanged(est, rec)
    _check_model(est, model, rng)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_partial_fit_float32_overflow_is_rejected(cls, rng):
    est, _ = _fitted_with_removals(cls, rng, np.float32)
    rec = _record(est)
    with pytest.raises(ValueError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est.partial_fit(np.array([[1e300, 0.0, 0.0]]))
    _assert_unchanged(est, rec)


@pytest.mark.parametrize(
    "ids",
    [np.array([0, 5], dtype=np.int32), np.array([0, 5], dtype=np.uint64), [0, 5], (5, 0),
     np.int64(5), 5, np.array([5, 0], dtype=np.int8)],
    ids=["int32", "uint64", "list", "tuple", "np_scalar", "int", "int8"],
)
def test_remove_accepts_integer_ids_of_any_kind(ids, rng):
    est, model = _fitted_with_removals(PCCTNeighbors, rng)
    est.remove(ids)
    model.remove(np.atleast_1d(np.asarray(ids)).astype(np.int64))
    _check_model(est, model, rng)


def test_live_ids_are_read_only(rng):
    est, _ = _fitted_with_removals(PCCTNeighbors, rng)
    with pytest.raises(ValueError):
        est.live_ids_[0] = 1
    with pytest.raises(ValueError):
        est.snapshot().live_ids_[0] = 1


def test_refit_with_other_features_resets_ids(rng):
    est, _ = _fitted_with_removals(PCCTNeighbors, rng)
    X = _grid_data(rng, 20, d=2)
    est.fit(X)
    assert est.n_samples_fit_ == 20 and est.version_ == 0 and est.n_features_in_ == 2
    np.testing.assert_array_equal(est.live_ids_, np.arange(20))
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(_grid_data(rng, 3, d=3))
    model = Model(X, np.float64)
    new = _grid_data(rng, 3, d=2)
    est.partial_fit(new)
    model.insert(new)
    est.remove([19, 0])
    model.remove([19, 0])
    _check_model(est, model, rng)


def _layouts(X):
    ro = X.copy()
    ro.flags.writeable = False
    wide = np.zeros((len(X), 2 * X.shape[1]))
    wide[:, ::2] = X
    return {
        "fortran": np.asfortranarray(X),
        "strided": wide[:, ::2],
        "read_only": ro,
        "list": X.tolist(),
        "int": X.astype(np.int64),
        "float32": X.astype(np.float32),
    }


@pytest.mark.parametrize("layout", list(_layouts(np.zeros((1, 1)))))
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_partial_fit_input_layouts(layout, cls, rng):
    est, model = _fitted_with_removals(cls, rng)
    new = _grid_data(rng, 6, d=3)
    given_rows = _layouts(new)[layout]
    est.partial_fit(given_rows)
    model.insert(new)
    if isinstance(given_rows, np.ndarray) and given_rows.flags.writeable:
        given_rows[...] = 99  # the estimator holds its own copy of the rows
    _check_model(est, model, rng)


# -- removing every sample ------------------------------------------------------


def _emptied(rng):
    X = _grid_data(rng, 12)
    est = PCCTNeighbors(n_neighbors=2, radius=1.5).fit(X)
    est.remove(np.arange(12))
    return est


def test_remove_everything_then_refill(rng):
    est = _emptied(rng)
    assert est.n_samples_fit_ == 12 and est.live_ids_.size == 0 and est.version_ == 1
    check_tree_invariants(est.tree_)
    assert est.tree_.n_nodes == 0
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        est.kneighbors([[0.0, 0.0]], n_neighbors=1)
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        est.kneighbors(None, n_neighbors=1)
    A = est.radius_neighbors_graph(None)
    assert A.shape == (12, 12) and A.nnz == 0
    new = _grid_data(rng, 5)
    est.partial_fit(new)
    model = Model(np.vstack([est._pcct_state_.dynamic.points.data[:12], new]), np.float64)
    model.live[:12] = False
    model.version = 2
    _check_model(est, model, rng)


# run in a child process: the bug reads out of bounds and could crash the worker
_EMPTY_RADIUS_SCRIPT = """
import numpy as np
from sklearn_pcct import PCCTNeighbors
X = np.random.default_rng(0).integers(0, 4, (12, 2)).astype(float)
est = PCCTNeighbors(n_neighbors=2, radius=1.5).fit(X)
est.remove(np.arange(12))
Q = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]])
for obj in (est, est.snapshot()):
    for r in (1e6, 0.5, 1.5):
        dist, ind = obj.radius_neighbors(Q, radius=r)
        assert len(ind) == 3 and all(len(row) == 0 for row in ind), ind
        A = obj.radius_neighbors_graph(Q, radius=r)
        assert A.shape == (3, 12) and A.nnz == 0, A.nnz
print("ok")
"""


def test_radius_neighbors_with_no_live_sample():
    proc = subprocess.run(
        [sys.executable, "-c", _EMPTY_RADIUS_SCRIPT],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_radius_neighbors_none_with_no_live_sample(rng):
    est = _emptied(rng)
    dist, ind = est.radius_neighbors(None)
    assert len(ind) == len(dist) == est.live_ids_.size == 0


# -- persistence: snapshots and old tree versions --------------------------------


def _answers(obj, Q):
    return [
        *obj.kneighbors(Q, n_neighbors=4),
        *obj.kneighbors(None, n_neighbors=3),
        obj.kneighbors_graph(None, n_neighbors=3, mode="distance"),
        obj.kneighbors_graph(Q, n_neighbors=2, mode="connectivity"),
        *obj.radius_neighbors(Q, radius=0.4, sort_results=True),
        *obj.radius_neighbors(None, radius=0.4, sort_results=True),
        obj.radius_neighbors_graph(None, radius=0.4, mode="distance", sort_results=True),
        obj.radius_neighbors_graph(Q, radius=0.3),
        obj.n_samples_fit_,
        obj.live_ids_.copy(),
        obj.version_,
    ]


def _assert_same_answers(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if sp.issparse(x):
            assert sp.issparse(y) and x.shape == y.shape and x.format == y.format
            np.testing.assert_array_equal(x.indptr, y.indptr)
            np.testing.assert_array_equal(x.indices, y.indices)
            np.testing.assert_array_equal(x.data, y.data)
        elif isinstance(x, np.ndarray) and x.dtype == object:
            assert y.dtype == object and len(x) == len(y)
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v)
                assert u.dtype == v.dtype
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        else:
            assert x == y


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_snapshots_and_old_trees_survive_updates(metric, rng, tmp_path):
    X = rng.random((300, 3))
    X[50:60] = X[0]  # a duplicate group
    Q = np.vstack([rng.random((15, 3)), X[:2]])
    est = PCCTNeighbors(n_neighbors=4, radius=0.4, metric=metric).fit(X)
    history = []  # (snapshot, answers, tree, tree arrays)

    def keep():
        snap = est.snapshot()
        history.append((snap, _answers(est, Q), est.tree_, _tree_arrays(est.tree_)))
        _assert_same_answers(_answers(snap, Q), history[-1][1])

    keep()
    for step in range(16):
        if step % 3 == 2:
            root = est.tree_.node_sample[0]
            group = est.tree_.dup_idx[est.tree_.dup_ptr[0] : est.tree_.dup_ptr[1]]
            est.remove(np.concatenate(([root], group)))
        elif step % 2:
            live = est.live_ids_
            est.remove(rng.choice(live, size=len(live) // 10, replace=False))
        else:
            new = rng.random((25, 3))
            new[:5] = X[rng.integers(0, len(X), 5)]  # duplicates of fitted samples
            est.partial_fit(new)
        if step % 4 == 0:
            keep()
    keep()
    for snap, answers, tree, arrays in history:
        _assert_same_answers(_answers(snap, Q), answers)
        check_tree_invariants(tree)
        _assert_tree_arrays(tree, arrays)
        assert snap.tree_ is tree
        for loaded in (pickle.loads(pickle.dumps(snap)), _joblib_roundtrip(snap, tmp_path)):
            assert type(loaded).__name__ == "PCCTSnapshot"
            _assert_same_answers(_answers(loaded, Q), answers)
            check_tree_invariants(loaded.tree_)
    # the first snapshot still answers as the freshly fitted estimator
    fresh = PCCTNeighbors(n_neighbors=4, radius=0.4, metric=metric).fit(X)
    _assert_same_answers(_answers(history[0][0], Q), _answers(fresh, Q))


def _joblib_roundtrip(obj, tmp_path):
    path = tmp_path / "obj.joblib"
    joblib.dump(obj, path)
    return joblib.load(path)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_pickled_estimator_after_updates_keeps_updating(cls, rng):
    est, model = _fitted_with_removals(cls, rng)
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(buf)):
        m = model.copy()
        _check_model(loaded, m, rng)
        new = _grid_data(rng, 7, d=3)
        loaded.partial_fit(new)
        m.insert(new)
        _check_model(loaded, m, rng)
        loaded.remove(loaded.live_ids_[::4])
        m.remove(m.ids[::4])
        _check_model(loaded, m, rng)
    _check_model(est, model, rng)  # the original is untouched


def test_snapshot_attributes_and_validation(rng):
    X = pd.DataFrame(rng.random((30, 2)), columns=["u", "v"])
    est = PCCTNeighbors(n_neighbors=2, radius=0.3).fit(X)
    est.remove([0, 1])
    snap = est.snapshot()
    assert snap.n_neighbors == 2 and snap.radius == 0.3
    assert snap.n_features_in_ == 2
    np.testing.assert_array_equal(snap.feature_names_in_, ["u", "v"])
    assert "version=1" in repr(snap) and "n_live=28" in repr(snap)
    with pytest.raises(ValueError, match="2 features"):
        snap.kneighbors(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        snap.kneighbors([[np.nan, 0.0]])
    with pytest.raises(ValueError):
        snap.kneighbors(None, n_neighbors=28)
    est.set_params(n_neighbors=5)
    assert snap.kneighbors(X.values[:1])[0].shape == (1, 2)  # defaults frozen
    t_snap = PCCTTransformer(n_neighbors=3).fit(X.values).snapshot()
    assert t_snap.radius is None
    assert t_snap.kneighbors(X.values[:2])[1].shape == (2, 3)


# -- memory: an update costs the chunks it touched -------------------------------


@pytest.mark.parametrize("algorithm", ["kd_tree", "cover_tree"])
@pytest.mark.parametrize("update", ["partial_fit", "remove"])
def test_update_memory_is_a_small_fraction(update, algorithm):
    rng = np.random.default_rng(7)
    n = 20_000
    X = rng.random((n, 4))
    est = PCCTNeighbors(n_neighbors=3, algorithm=algorithm).fit(X)
    if update == "partial_fit":
        new = rng.random((n // 100, 4))
        est.partial_fit(new)
        X = np.vstack([X, new])
    else:
        est.remove(rng.choice(n, size=n // 100, replace=False))
    state = est._pcct_state_
    # the index that took the update: the kd-tree index or the cover tree
    dyn = state.forest if algorithm == "kd_tree" else state.dynamic
    assert dyn is not None and dyn.version == 1
    assert dyn.nbytes_own() <= 0.5 * dyn.nbytes_full(), (dyn.nbytes_own(), dyn.nbytes_full())
    # and the result is still exact
    ids = est.live_ids_
    Q = rng.random((20, 4))
    dist, ind = est.kneighbors(Q)
    d_ref, i_ref = brute_force_knn(X[ids], Q, 3, _spec({"metric": "euclidean"}))
    assert_knn_equal(dist, ind, d_ref, ids[i_ref], rtol=RTOL)


# -- the transformer's live graph --------------------------------------------------


def _sklearn_graph_in_id_space(X_live, ids, n_ids, **params):
    G = KNeighborsTransformer(algorithm="brute", **params).fit_transform(X_live)
    G = sp.csr_matrix(G)
    counts = np.zeros(n_ids, dtype=np.int64)
    counts[ids] = np.diff(G.indptr)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    return indptr, ids[G.indices], G.data


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transformer_graph_matches_sklearn_after_updates(mode, metric, rng):
    X = rng.normal(size=(150, 3))
    n_neighbors = 5
    est = PCCTTransformer(n_neighbors=n_neighbors, mode=mode, metric=metric)
    G0 = est.fit_transform(X)
    G_direct = est.graph_
    np.testing.assert_array_equal(G0.indices, G_direct.indices)
    np.testing.assert_array_equal(G0.data, G_direct.data)
    model = Model(X, np.float64)
    spec = _spec({"metric": metric})
    atol = 1e-7  # sklearn's GEMM euclidean distances
    k = n_neighbors + (mode == "distance")
    for step in range(8):
        if step % 2 == 0:
            new = rng.normal(size=(12, 3))
            new[:3] = model.points[rng.integers(0, model.n_ids, 3)]  # duplicates
            est.partial_fit(new)
            model.insert(new)
        else:
            gone = rng.choice(model.ids, size=10, replace=False)
            est.remove(gone)
            model.remove(gone)
        G = est.graph_
        assert type(G) is type(G0)
        assert G.shape == (model.n_ids, model.n_ids)
        removed = np.flatnonzero(~model.live)
        assert np.all(np.diff(G.indptr)[removed] == 0)
        assert np.all(np.diff(G.indptr)[model.ids] == k)
        _check_graph_rows(G, model, spec, n_neighbors, mode, exact=False)
        indptr, indices, data = _sklearn_graph_in_id_space(
            model.X_live, model.ids, model.n_ids,
            n_neighbors=n_neighbors, mode=mode, metric=metric,
        )
        np.testing.assert_array_equal(G.indptr, indptr)
        D = _dense_dist(model.points, spec)
        for i in model.ids:
            a = slice(G.indptr[i], G.indptr[i + 1])
            ia, ib = G.indices[a], indices[a]
            np.testing.assert_allclose(np.sort(D[i, ia]), np.sort(D[i, ib]), rtol=0, atol=atol)
            np.testing.assert_allclose(G.data[a], data[a], rtol=0, atol=atol)
            kth = D[i, ib].max()
            assert set(ia[D[i, ia] < kth - atol]) == set(ib[D[i, ib] < kth - atol])
        # equal to a fresh fit_transform on the live points
        F = PCCTTransformer(n_neighbors=n_neighbors, mode=mode, metric=metric).fit_transform(
            model.X_live
        )
        Gl = G[model.ids]
        np.testing.assert_array_equal(Gl.indptr, F.indptr)
        np.testing.assert_array_equal(Gl.indices, model.ids[F.indices])
        np.testing.assert_allclose(Gl.data, F.data, rtol=RTOL, atol=0)
        # and to transform of the live points
        T = est.transform(model.X_live)
        np.testing.assert_array_equal(T.indptr, Gl.indptr)
        np.testing.assert_array_equal(T.indices, Gl.indices)
        np.testing.assert_array_equal(T.data, Gl.data)


def _dense_dist(P, spec):
    return pairwise_distances(P, P, spec)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transformer_graph_grid_duplicates_exact(mode, rng):
    X = _grid_data(rng, 60, d=2, side=4)  # 16 distinct points, many duplicates
    est = PCCTTransformer(n_neighbors=4, mode=mode).fit(X)
    model = Model(X, np.float64)
    spec = _spec({"metric": "euclidean"})
    _check_graph_rows(est.graph_, model, spec, 4, mode, exact=True)
    for step in range(10):
        if step % 3 == 0:
            new = np.vstack([_grid_data(rng, 4, 2, 5), model.points[model.ids[:3]]])
            est.partial_fit(new)
            model.insert(new)
        else:
            root = est.tree_.node_sample[0]
            gone = np.unique(np.concatenate(([root], rng.choice(model.ids, 4, replace=False))))
            est.remove(gone)
            model.remove(gone)
        _check_graph_rows(est.graph_, model, spec, 4, mode, exact=True)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transformer_graph_too_few_live_samples(mode, rng):
    X = rng.normal(size=(12, 2))
    n_neighbors = 3
    k = n_neighbors + (mode == "distance")
    est = PCCTTransformer(n_neighbors=n_neighbors, mode=mode).fit(X)
    _ = est.graph_
    est.remove(np.arange(12 - k))  # exactly k live: still fine
    model = Model(X, np.float64)
    model.remove(np.arange(12 - k))
    spec = _spec({"metric": "euclidean"})
    _check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=False)
    est.remove([12 - k])
    model.remove([12 - k])
    with pytest.raises(ValueError) as expected:
        est.transform(model.X_live)
    for _ in range(2):  # also when built from scratch on the second access
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            _ = est.graph_
    est.kneighbors(model.X_live, n_neighbors=k - 1)  # other queries still work
    # back above k: the graph is rebuilt
    new = rng.normal(size=(3, 2))
    est.partial_fit(new)
    model.insert(new)
    _check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=False)


def test_transformer_graph_follows_parameter_changes(rng):
    X = _grid_data(rng, 50, d=2, side=5)
    est = PCCTTransformer(n_neighbors=2).fit(X)
    model = Model(X, np.float64)
    spec = _spec({"metric": "euclidean"})
    _ = est.graph_
    est.partial_fit(X[:4])
    model.insert(X[:4])
    for n_neighbors, mode in [(3, "distance"), (3, "connectivity"), (4, "connectivity"),
                              (2, "distance")]:
        est.set_params(n_neighbors=n_neighbors, mode=mode)
        _check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=True)
        est.remove(model.ids[:2])
        model.remove(model.ids[:2])
        _check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=True)


def test_transformer_fit_resets_graph(rng):
    est = PCCTTransformer(n_neighbors=2).fit(_grid_data(rng, 30))
    _ = est.graph_
    est.remove([0, 1, 2])
    X = _grid_data(rng, 20)
    G = est.fit_transform(X)
    assert G.shape == (20, 20) and est.version_ == 0
    _check_graph_rows(G, Model(X, np.float64), _spec({"metric": "euclidean"}), 2, "distance",
                      exact=True)


# -- partial_fit on an unfitted estimator, feature names ---------------------------


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_partial_fit_unfitted_equals_fit(cls, dtype, rng):
    X = rng.random((80, 3)).astype(dtype)
    X[10:20] = X[0]
    a = cls(n_neighbors=3, metric="manhattan").partial_fit(X)
    b = cls(n_neighbors=3, metric="manhattan").fit(X)
    for name in ("n_features_in_", "effective_metric_", "effective_metric_params_",
                 "backend_", "n_samples_fit_", "version_"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.live_ids_, np.arange(80))
    _assert_tree_arrays(a.tree_, _tree_arrays(b.tree_))
    assert a.tree_.points.dtype == dtype
    Q = rng.random((6, 3)).astype(dtype)
    _assert_same_answers(list(a.kneighbors(Q)) + list(a.kneighbors()),
                         list(b.kneighbors(Q)) + list(b.kneighbors()))
    if cls is PCCTTransformer:
        Ga, Gb = a.graph_, b.graph_
        np.testing.assert_array_equal(Ga.indices, Gb.indices)
        np.testing.assert_array_equal(Ga.data, Gb.data)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_partial_fit_feature_names(cls, rng):
    cols = ["a", "b", "c"]
    df = pd.DataFrame(rng.random((30, 3)), columns=cols)
    est = cls(n_neighbors=2).partial_fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, cols)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.partial_fit(pd.DataFrame(rng.random((5, 3)), columns=cols))
        est.kneighbors(df.iloc[:3])
    assert est.n_samples_fit_ == 35
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.partial_fit(rng.random((2, 3)))
    assert est.n_samples_fit_ == 37
    rec = _record(est)
    with pytest.raises(ValueError, match="feature names should match"):
        est.partial_fit(pd.DataFrame(rng.random((2, 3)), columns=["a", "b", "x"]))
    with pytest.raises(ValueError, match="feature names"):
        est.partial_fit(pd.DataFrame(rng.random((2, 3)), columns=["c", "b", "a"]))
    with pytest.raises(ValueError):
        est.partial_fit(pd.DataFrame(rng.random((2, 4)), columns=cols + ["d"]))
    _assert_unchanged(est, rec)
    np.testing.assert_array_equal(est.feature_names_in_, cols)

    plain = cls(n_neighbors=2).fit(df.values)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.partial_fit(df.iloc[:2])
    assert not hasattr(plain, "feature_names_in_")
    assert plain.n_samples_fit_ == 32
