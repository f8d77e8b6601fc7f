"""Persistence of updates: snapshots, old tree versions, pickling, memory (issue 3).

Also ``partial_fit`` on an unfitted estimator and feature names.
"""

import io
import pickle
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._testing import (
    assert_knn_equal,
    brute_force_knn,
)
from sklearn_pcct._tree import check_tree_invariants

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _updates_oracle import (  # noqa: E402
    RTOL,
    assert_tree_arrays,
    assert_unchanged,
    check_model,
    fitted_with_removals,
    grid_data,
    record,
    spec_of,
    tree_arrays,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240917)


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
        history.append((snap, _answers(est, Q), est.tree_, tree_arrays(est.tree_)))
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
        assert_tree_arrays(tree, arrays)
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
    est, model = fitted_with_removals(cls, rng)
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(buf)):
        m = model.copy()
        check_model(loaded, m, rng)
        new = grid_data(rng, 7, d=3)
        loaded.partial_fit(new)
        m.insert(new)
        check_model(loaded, m, rng)
        loaded.remove(loaded.live_ids_[::4])
        m.remove(m.ids[::4])
        check_model(loaded, m, rng)
    check_model(est, model, rng)  # the original is untouched


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
    d_ref, i_ref = brute_force_knn(X[ids], Q, 3, spec_of({"metric": "euclidean"}))
    assert_knn_equal(dist, ind, d_ref, ids[i_ref], rtol=RTOL)




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
    assert_tree_arrays(a.tree_, tree_arrays(b.tree_))
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
    rec = record(est)
    with pytest.raises(ValueError, match="feature names should match"):
        est.partial_fit(pd.DataFrame(rng.random((2, 3)), columns=["a", "b", "x"]))
    with pytest.raises(ValueError, match="feature names"):
        est.partial_fit(pd.DataFrame(rng.random((2, 3)), columns=["c", "b", "a"]))
    with pytest.raises(ValueError):
        est.partial_fit(pd.DataFrame(rng.random((2, 4)), columns=cols + ["d"]))
    assert_unchanged(est, rec)
    np.testing.assert_array_equal(est.feature_names_in_, cols)

    plain = cls(n_neighbors=2).fit(df.values)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.partial_fit(df.iloc[:2])
    assert not hasattr(plain, "feature_names_in_")
    assert plain.n_samples_fit_ == 32
