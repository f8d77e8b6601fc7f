"""The model and brute-force checks shared by the update tests (issue 3).

Every check maps the brute-force answer on the live points back to sample ids
through ``live_ids_`` (ascending, so the tie rule "lowest index first" of the
oracle is the tie rule "lowest id first" of the estimator). On integer grid
data every distance is computed exactly (or, for ``p = 3``, from an exact
integer sum), so there the neighbour ids must match index for index; on
continuous data the comparison is tie-aware.
"""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_pcct import PCCTTransformer
from sklearn_pcct._metric import resolve_metric
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


def spec_of(params):
    return resolve_metric(params.get("metric", "minkowski"), params.get("p", 2), None)[0]


def object_array(rows):
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


def check_knn(dist, ind, dist_ref, ind_ref, exact, model, spec, X_query):
    assert ind.dtype.kind == "i"
    if exact:
        np.testing.assert_array_equal(ind, ind_ref)
        np.testing.assert_allclose(dist, dist_ref, rtol=RTOL, atol=0)
    else:
        assert_knn_equal(
            dist, ind, dist_ref, ind_ref, rtol=RTOL,
            X_fit=model.points, X_query=X_query, metric_spec=spec,
        )


def check_radius(dist, ind, dist_ref, ind_ref, radius, exact):
    # on grid data no distance is within RTOL of the radius: exact boundary
    assert_radius_equal(dist, ind, dist_ref, ind_ref, radius, rtol=RTOL, sorted_rows=True)
    if exact:
        for a, b in zip(ind, ind_ref, strict=True):
            np.testing.assert_array_equal(a, b)


def expected_csr(n_ids, row_ids, ind_rows, data_rows):
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


def assert_csr(A, shape, indptr, indices, data):
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
        check_knn(dist, ind, d_ref, ids[i_ref], exact, model, spec, Q)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        est.kneighbors(Q, n_neighbors=n_live + 1)
    A = est.kneighbors_graph(Q, n_neighbors=min(2, n_live), mode="distance")
    d, i = est.kneighbors(Q, n_neighbors=min(2, n_live))
    k = d.shape[1]
    assert_csr(A, (len(Q), n_ids), np.arange(0, len(Q) * k + 1, k), i.ravel(), d.ravel())

    # kneighbors(X=None): rows are the live ids, self excluded
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        est.kneighbors(None, n_neighbors=n_live)
    for k in sorted({1, min(3, n_live - 1), n_live - 1} & set(range(1, n_live))):
        dist, ind = est.kneighbors(None, n_neighbors=k)
        d_ref, i_ref = brute_force_knn(X_live, None, k, spec, exclude_self=True)
        check_knn(dist, ind, d_ref, ids[i_ref], exact, model, spec, X_live)
        for mode in ("distance", "connectivity"):
            A = est.kneighbors_graph(None, n_neighbors=k, mode=mode)
            data = dist if mode == "distance" else np.ones_like(dist)
            assert_csr(A, (n_ids, n_ids), *expected_csr(n_ids, ids, list(ind), list(data)))

    # radius_neighbors(Q) and radius_neighbors(X=None)
    if not hasattr(est, "radius_neighbors"):  # PCCTTransformer
        return
    dist, ind = est.radius_neighbors(Q, radius=radius, sort_results=True)
    d_ref, i_ref = brute_force_radius(X_live, Q, radius * (1 + 1e-9), spec)
    check_radius(dist, ind, d_ref, object_array([ids[r] for r in i_ref]), radius, exact)
    dist, ind = est.radius_neighbors(None, radius=radius, sort_results=True)
    assert len(ind) == n_live
    d_ref, i_ref = brute_force_radius(X_live, None, radius * (1 + 1e-9), spec, exclude_self=True)
    check_radius(dist, ind, d_ref, object_array([ids[r] for r in i_ref]), radius, exact)
    A = est.radius_neighbors_graph(None, radius=radius, mode="distance", sort_results=True)
    assert_csr(A, (n_ids, n_ids), *expected_csr(n_ids, ids, list(ind), list(dist)))
    # connectivity rows are not sorted (sort_results applies to mode='distance')
    A = est.radius_neighbors_graph(None, radius=radius, mode="connectivity")
    A.sort_indices()
    rows = [np.sort(r) for r in ind]
    assert_csr(A, (n_ids, n_ids),
                *expected_csr(n_ids, ids, rows, [np.ones(len(r)) for r in rows]))



def graph_oracle(model, spec, n_neighbors, mode):
    """The graph KNeighborsTransformer gives for the live points, in id space (exact)."""
    ids = model.ids
    k = n_neighbors + (mode == "distance")
    d_ref, i_ref = brute_force_knn(model.X_live, model.X_live, k, spec)
    data = d_ref if mode == "distance" else np.ones_like(d_ref)
    return expected_csr(model.n_ids, ids, list(ids[i_ref]), list(data))


def check_graph_rows(G, model, spec, n_neighbors, mode, exact):
    n_ids = model.n_ids
    indptr, indices, data = graph_oracle(model, spec, n_neighbors, mode)
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




# -- deterministic helpers -----------------------------------------------------


def grid_data(rng, n, d=2, side=4):
    return rng.integers(0, side, (n, d)).astype(np.float64)


def tree_arrays(tree):
    return {
        f.name: np.array(getattr(tree, f.name), copy=True)
        for f in dataclasses.fields(tree)
        if isinstance(getattr(tree, f.name), np.ndarray)
    }


def assert_tree_arrays(tree, saved):
    now = tree_arrays(tree)
    assert now.keys() == saved.keys()
    for name, arr in saved.items():
        assert now[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(now[name], arr, err_msg=name)


def record(est):
    """Everything visible of a fitted estimator, copied."""
    out = {
        "state": est._pcct_state_,
        "n_samples_fit_": est.n_samples_fit_,
        "live_ids_": est.live_ids_.copy(),
        "version_": est.version_,
        "tree": tree_arrays(est.tree_),
        "tree_scalars": (est.tree_.n_samples, est.tree_.version, est.tree_.metric),
        "n_features_in_": est.n_features_in_,
        "keys": sorted(vars(est)),
    }
    if isinstance(est, PCCTTransformer):
        G = est.graph_
        out["graph"] = (G.shape, G.indptr.copy(), G.indices.copy(), G.data.copy())
    return out


def assert_unchanged(est, rec):
    assert est._pcct_state_ is rec["state"]
    assert est.n_samples_fit_ == rec["n_samples_fit_"]
    np.testing.assert_array_equal(est.live_ids_, rec["live_ids_"])
    assert est.version_ == rec["version_"]
    assert_tree_arrays(est.tree_, rec["tree"])
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




def fitted_with_removals(cls, rng, dtype=np.float64, **params):
    X = grid_data(rng, 40, d=3)
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


def check_model(est, model, rng, radius=1.2):
    spec = spec_of({"metric": est.metric, "p": est.p})
    Q = np.vstack([grid_data(rng, 5, d=model.points.shape[1]), model.points[:3]])
    check_against_model(est, model, spec, Q, radius, exact=True)
    if isinstance(est, PCCTTransformer):
        check_graph_rows(est.graph_, model, spec, est.n_neighbors, est.mode, exact=True)
