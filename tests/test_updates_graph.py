"""The transformer's live graph after updates, against sklearn's transformer (issue 3)."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import KNeighborsTransformer

from sklearn_pcct import PCCTTransformer
from sklearn_pcct._metric import pairwise_distances

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _updates_oracle import (  # noqa: E402
    RTOL,
    Model,
    check_graph_rows,
    grid_data,
    spec_of,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240917)


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
    spec = spec_of({"metric": metric})
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
        check_graph_rows(G, model, spec, n_neighbors, mode, exact=False)
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
    X = grid_data(rng, 60, d=2, side=4)  # 16 distinct points, many duplicates
    est = PCCTTransformer(n_neighbors=4, mode=mode).fit(X)
    model = Model(X, np.float64)
    spec = spec_of({"metric": "euclidean"})
    check_graph_rows(est.graph_, model, spec, 4, mode, exact=True)
    for step in range(10):
        if step % 3 == 0:
            new = np.vstack([grid_data(rng, 4, 2, 5), model.points[model.ids[:3]]])
            est.partial_fit(new)
            model.insert(new)
        else:
            root = est.tree_.node_sample[0]
            gone = np.unique(np.concatenate(([root], rng.choice(model.ids, 4, replace=False))))
            est.remove(gone)
            model.remove(gone)
        check_graph_rows(est.graph_, model, spec, 4, mode, exact=True)


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
    spec = spec_of({"metric": "euclidean"})
    check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=False)
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
    check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=False)


def test_transformer_graph_follows_parameter_changes(rng):
    X = grid_data(rng, 50, d=2, side=5)
    est = PCCTTransformer(n_neighbors=2).fit(X)
    model = Model(X, np.float64)
    spec = spec_of({"metric": "euclidean"})
    _ = est.graph_
    est.partial_fit(X[:4])
    model.insert(X[:4])
    for n_neighbors, mode in [(3, "distance"), (3, "connectivity"), (4, "connectivity"),
                              (2, "distance")]:
        est.set_params(n_neighbors=n_neighbors, mode=mode)
        check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=True)
        est.remove(model.ids[:2])
        model.remove(model.ids[:2])
        check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact=True)


def test_transformer_fit_resets_graph(rng):
    est = PCCTTransformer(n_neighbors=2).fit(grid_data(rng, 30))
    _ = est.graph_
    est.remove([0, 1, 2])
    X = grid_data(rng, 20)
    G = est.fit_transform(X)
    assert G.shape == (20, 20) and est.version_ == 0
    check_graph_rows(G, Model(X, np.float64), spec_of({"metric": "euclidean"}), 2, "distance",
                      exact=True)
