"""Failed and degenerate updates: errors, unchanged state, emptied estimators (issue 3).

A failed ``partial_fit`` / ``remove`` leaves the estimator exactly as it was;
input layouts and id kinds that must work; removing every sample.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._tree import check_tree_invariants

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _updates_oracle import (  # noqa: E402
    Model,
    assert_unchanged,
    check_model,
    fitted_with_removals,
    grid_data,
    record,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240917)


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
    est, model = fitted_with_removals(cls, rng, dtype)
    rec = record(est)
    bad = _bad_batches(model.points.shape[1])[case]
    with pytest.raises((ValueError, TypeError)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            est.partial_fit(bad)
    assert_unchanged(est, rec)
    # the next update works and is exact
    new = grid_data(rng, 6, d=3)
    est.partial_fit(new.astype(dtype))
    model.insert(new)
    check_model(est, model, rng)
    est.remove([0, 44])
    model.remove([0, 44])
    check_model(est, model, rng)


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
    est, model = fitted_with_removals(cls, rng)
    assert set(_bad_ids(est)) == set(BAD_ID_NAMES)
    rec = record(est)
    with pytest.raises(ValueError):
        est.remove(_bad_ids(est)[case])
    assert_unchanged(est, rec)
    live = est.live_ids_
    ids = [live[0], live[-1], live[len(live) // 2]]
    est.remove(ids)
    model.remove(ids)
    check_model(est, model, rng)
    new = grid_data(rng, 4, d=3)
    est.partial_fit(new)
    model.insert(new)
    check_model(est, model, rng)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
@pytest.mark.parametrize("ids", [[], np.zeros(0, dtype=np.int64), np.zeros(0)],
                         ids=["list", "int_array", "float_array"])
def test_empty_remove_is_a_noop(cls, ids, rng):
    est, model = fitted_with_removals(cls, rng)
    rec = record(est)
    assert est.remove(ids) is est
    assert_unchanged(est, rec)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_error_messages_of_remove(cls, rng):
    est, _ = fitted_with_removals(cls, rng)
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
    est.partial_fit(grid_data(rng, 10))
    assert est.n_samples_fit_ == 10 and est.version_ == 0


def test_failed_fit_after_updates_keeps_updated_state(rng):
    est, model = fitted_with_removals(PCCTNeighbors, rng)
    rec = record(est)
    with pytest.raises(ValueError):
        est.fit([[np.nan, 0.0, 0.0]])
    assert_unchanged(est, rec)
    check_model(est, model, rng)


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_partial_fit_float32_overflow_is_rejected(cls, rng):
    est, _ = fitted_with_removals(cls, rng, np.float32)
    rec = record(est)
    with pytest.raises(ValueError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est.partial_fit(np.array([[1e300, 0.0, 0.0]]))
    assert_unchanged(est, rec)


@pytest.mark.parametrize(
    "ids",
    [np.array([0, 5], dtype=np.int32), np.array([0, 5], dtype=np.uint64), [0, 5], (5, 0),
     np.int64(5), 5, np.array([5, 0], dtype=np.int8)],
    ids=["int32", "uint64", "list", "tuple", "np_scalar", "int", "int8"],
)
def test_remove_accepts_integer_ids_of_any_kind(ids, rng):
    est, model = fitted_with_removals(PCCTNeighbors, rng)
    est.remove(ids)
    model.remove(np.atleast_1d(np.asarray(ids)).astype(np.int64))
    check_model(est, model, rng)


def test_live_ids_are_read_only(rng):
    est, _ = fitted_with_removals(PCCTNeighbors, rng)
    with pytest.raises(ValueError):
        est.live_ids_[0] = 1
    with pytest.raises(ValueError):
        est.snapshot().live_ids_[0] = 1


def test_refit_with_other_features_resets_ids(rng):
    est, _ = fitted_with_removals(PCCTNeighbors, rng)
    X = grid_data(rng, 20, d=2)
    est.fit(X)
    assert est.n_samples_fit_ == 20 and est.version_ == 0 and est.n_features_in_ == 2
    np.testing.assert_array_equal(est.live_ids_, np.arange(20))
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(grid_data(rng, 3, d=3))
    model = Model(X, np.float64)
    new = grid_data(rng, 3, d=2)
    est.partial_fit(new)
    model.insert(new)
    est.remove([19, 0])
    model.remove([19, 0])
    check_model(est, model, rng)


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
    est, model = fitted_with_removals(cls, rng)
    new = grid_data(rng, 6, d=3)
    given_rows = _layouts(new)[layout]
    est.partial_fit(given_rows)
    model.insert(new)
    if isinstance(given_rows, np.ndarray) and given_rows.flags.writeable:
        given_rows[...] = 99  # the estimator holds its own copy of the rows
    check_model(est, model, rng)


# -- removing every sample ------------------------------------------------------


def _emptied(rng):
    X = grid_data(rng, 12)
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
    new = grid_data(rng, 5)
    est.partial_fit(new)
    model = Model(np.vstack([est._pcct_state_.dynamic.points.data[:12], new]), np.float64)
    model.live[:12] = False
    model.version = 2
    check_model(est, model, rng)


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
