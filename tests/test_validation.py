"""Bad input: a clear scikit-learn style error, and the estimator is unchanged.

Every failing call on a fitted estimator is followed by a check that the
fitted state (``tree_`` and its arrays, every fitted attribute, the set of
attributes) is exactly what it was, and that the estimator still answers.
"""

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsTransformer, NearestNeighbors
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_pcct import PCCTNeighbors, PCCTTransformer

N_SAMPLES, N_FEATURES = 40, 3


@pytest.fixture
def rng():
    return np.random.default_rng(31415)


@pytest.fixture
def X(rng):
    return rng.normal(size=(N_SAMPLES, N_FEATURES))


@pytest.fixture
def Q(rng):
    return rng.normal(size=(7, N_FEATURES))


# -- state snapshots ----------------------------------------------------------


def _tree_fields(tree):
    """``{name: value}`` of every field of a TreeVersion (a frozen dataclass)."""
    return {f.name: getattr(tree, f.name) for f in dataclasses.fields(tree)}


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _fitted_state(est):
    """The instance attributes that are not constructor parameters."""
    params = est.get_params(deep=False)
    return {k: v for k, v in vars(est).items() if k not in params and k != "tree_"}


def _snapshot(est):
    """Everything a failing call must leave alone."""
    state = {k: _copy(v) for k, v in _fitted_state(est).items()}
    tree = getattr(est, "tree_", None)
    tree_state = None
    if tree is not None:
        tree_state = {name: _copy(value) for name, value in _tree_fields(tree).items()}
    return tree, tree_state, state


def _assert_equal_values(a, b, where):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_equal_values(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert a == b or a is b, f"{where}: {a!r} != {b!r}"


def _assert_unchanged(est, snapshot, Q=None, answers=None):
    tree, tree_state, state = snapshot
    after = _fitted_state(est)
    added, removed = set(after) - set(state), set(state) - set(after)
    assert not added and not removed, (
        f"a failing call added {sorted(added)} and removed {sorted(removed)}"
    )
    for k in state:
        _assert_equal_values(after[k], state[k], k)
    assert getattr(est, "tree_", None) is tree, "a failing call replaced tree_"
    if tree is not None:
        for name, value in _tree_fields(tree).items():
            if isinstance(value, np.ndarray):
                assert not value.flags.writeable, f"tree_.{name} became writeable"
            _assert_equal_values(value, tree_state[name], f"tree_.{name}")
        assert est.n_features_in_ == tree.n_features
        assert est.n_samples_fit_ == tree.n_samples
    if Q is not None:
        np.testing.assert_array_equal(_answers(est, Q), answers)


def _answers(est, Q):
    with warnings.catch_warnings():
        # numpy queries on an estimator fitted on a DataFrame warn; fine here
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        if isinstance(est, PCCTTransformer):
            return est.transform(Q).toarray()
        dist, ind = est.kneighbors(Q, n_neighbors=3)
    return np.hstack([dist, ind])


def _fitted(est, X, Q):
    est.fit(X)
    return est, _snapshot(est), _answers(est, Q)


# -- bad data -----------------------------------------------------------------


def _bad_inputs(X):
    nan = X.copy()
    nan[3, 1] = np.nan
    inf = X.copy()
    inf[5, 0] = np.inf
    neg_inf = X.copy()
    neg_inf[0, 2] = -np.inf
    strings = np.array([["a", "b", "c"]] * 4, dtype=object)
    return {
        "nan": nan,
        "inf": inf,
        "-inf": neg_inf,
        "empty_samples": np.empty((0, X.shape[1])),
        "empty_features": np.empty((X.shape[0], 0)),
        "1d": X[0],
        "scalar": np.float64(1.0),
        "3d": X[None],
        "complex": X + 1j,
        "object_strings": strings,
    }


# Inputs on which our message must be sklearn's, with the class name swapped.
SAME_AS_SKLEARN = (
    "nan", "inf", "-inf", "empty_samples", "empty_features", "1d", "scalar", "3d",
    "complex", "object_strings",
)  # fmt: skip

SPARSE = {
    "csr_matrix": sp.csr_matrix,
    "csr_array": sp.csr_array,
    "csc_matrix": sp.csc_matrix,
    "coo_array": sp.coo_array,
}


def _sklearn_error(ref_call):
    with pytest.raises(Exception) as exc_info:  # noqa: B017 - any error, compared below
        ref_call()
    return exc_info.value


def _assert_same_error(exc, ref_exc, name, ref_name):
    assert type(exc) is type(ref_exc), (exc, ref_exc)
    assert str(exc) == str(ref_exc).replace(ref_name, name)


QUERY_METHODS = {
    PCCTNeighbors: ("kneighbors", "kneighbors_graph", "radius_neighbors", "radius_neighbors_graph"),
    PCCTTransformer: ("transform", "kneighbors", "kneighbors_graph"),
}
REFERENCE = {PCCTNeighbors: NearestNeighbors, PCCTTransformer: KNeighborsTransformer}
QUERY_CASES = [(cls, m) for cls, methods in QUERY_METHODS.items() for m in methods]


@pytest.mark.parametrize("bad", SAME_AS_SKLEARN)
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_bad_data_in_fit_like_sklearn_and_refit_changes_nothing(cls, bad, X, Q):
    data = _bad_inputs(X)[bad]
    ref_cls = REFERENCE[cls]
    ref_exc = _sklearn_error(lambda: ref_cls(algorithm="brute").fit(data))
    # unfitted estimator
    with pytest.raises(type(ref_exc)) as exc_info:
        cls().fit(data)
    _assert_same_error(exc_info.value, ref_exc, cls.__name__, ref_cls.__name__)
    # fitted estimator: the failing refit leaves the fitted state alone
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    with pytest.raises(type(ref_exc)):
        est.fit(data)
    _assert_unchanged(est, snap, Q, answers)
    if cls is PCCTTransformer:
        with pytest.raises(type(ref_exc)):
            est.fit_transform(data)
        _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize("bad", SAME_AS_SKLEARN)
@pytest.mark.parametrize(("cls", "method"), QUERY_CASES)
def test_bad_data_in_queries_like_sklearn(cls, method, bad, X, Q):
    data = _bad_inputs(X)[bad]
    ref_cls = REFERENCE[cls]
    ref = ref_cls(n_neighbors=3, algorithm="brute").fit(X)
    ref_exc = _sklearn_error(lambda: getattr(ref, method)(data))
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    with pytest.raises(type(ref_exc)) as exc_info:
        getattr(est, method)(data)
    _assert_same_error(exc_info.value, ref_exc, cls.__name__, ref_cls.__name__)
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize(("cls", "method"), QUERY_CASES)
def test_wrong_feature_count_in_queries(cls, method, X, Q):
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    for n_features in (N_FEATURES - 1, N_FEATURES + 1):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"X has {n_features} features, but {cls.__name__} is expecting "
                f"{N_FEATURES} features as input."
            ),
        ):
            getattr(est, method)(np.ones((2, n_features)))
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize(
    "strings",
    [np.array([["a", "b", "c"]] * 4), [["a", "b", "c"], ["d", "e", "f"]]],
    ids=["unicode_array", "list_of_strings"],
)
def test_string_data_rejected(strings, X, Q):
    # sklearn's NearestNeighbors (dtype='numeric') words this differently;
    # any clear ValueError that names strings will do.
    with pytest.raises(ValueError, match="string"):
        PCCTNeighbors().fit(strings)
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    with pytest.raises(ValueError, match="string"):
        est.kneighbors(strings)
    with pytest.raises(ValueError, match="string"):
        est.fit(strings)
    _assert_unchanged(est, snap, Q, answers)


# -- sparse input -------------------------------------------------------------

SPARSE_MESSAGE = "Sparse data was passed for X, but dense data is required"


@pytest.mark.parametrize("container", SPARSE)
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_sparse_input_in_fit_is_rejected(cls, container, X, Q):
    Xs = SPARSE[container](X)
    with pytest.raises(TypeError, match=SPARSE_MESSAGE):
        cls().fit(Xs)
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    with pytest.raises(TypeError, match=SPARSE_MESSAGE):
        est.fit(Xs)
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize("container", SPARSE)
@pytest.mark.parametrize(("cls", "method"), QUERY_CASES)
def test_sparse_input_in_queries_is_rejected(cls, method, container, X, Q):
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    with pytest.raises(TypeError, match=SPARSE_MESSAGE):
        getattr(est, method)(SPARSE[container](Q))
    _assert_unchanged(est, snap, Q, answers)


# -- n_neighbors ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["kneighbors", "kneighbors_graph"])
@pytest.mark.parametrize("query", ["X=None", "X"])
def test_n_neighbors_larger_than_n_samples_fit_like_sklearn(method, query, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    ref = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(X)
    args = () if query == "X=None" else (Q,)
    too_many = N_SAMPLES if query == "X=None" else N_SAMPLES + 1
    ref_exc = _sklearn_error(lambda: getattr(ref, method)(*args, n_neighbors=too_many))
    with pytest.raises(ValueError) as exc_info:
        getattr(est, method)(*args, n_neighbors=too_many)
    _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")
    inequality = (
        "n_neighbors < n_samples_fit" if query == "X=None" else ("n_neighbors <= n_samples_fit")
    )
    n_queries = N_SAMPLES if query == "X=None" else Q.shape[0]
    assert str(exc_info.value) == (
        f"Expected {inequality}, but n_neighbors = {too_many}, "
        f"n_samples_fit = {N_SAMPLES}, n_samples = {n_queries}"
    )
    _assert_unchanged(est, snap, Q, answers)
    # the largest valid value works
    getattr(est, method)(*args, n_neighbors=too_many - 1)


@pytest.mark.parametrize("query", ["X=None", "X"])
def test_n_neighbors_larger_than_n_samples_fit_in_constructor(query, X, Q):
    too_many = N_SAMPLES if query == "X=None" else N_SAMPLES + 1
    args = () if query == "X=None" else (Q,)
    # fit does not check n_neighbors against the data; the queries do
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=too_many), X, Q)
    ref = NearestNeighbors(n_neighbors=too_many, algorithm="brute").fit(X)
    for method in ("kneighbors", "kneighbors_graph"):
        ref_exc = _sklearn_error(lambda method=method: getattr(ref, method)(*args))
        with pytest.raises(ValueError) as exc_info:
            getattr(est, method)(*args)
        _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")
    _assert_unchanged(est, snap, Q, answers)


def test_transformer_n_neighbors_too_large_like_sklearn(X):
    # distance mode asks for n_neighbors + 1 (the sample itself)
    ref_exc = _sklearn_error(
        lambda: KNeighborsTransformer(n_neighbors=N_SAMPLES, algorithm="brute").fit_transform(X)
    )
    with pytest.raises(ValueError) as exc_info:
        PCCTTransformer(n_neighbors=N_SAMPLES).fit_transform(X)
    _assert_same_error(exc_info.value, ref_exc, "PCCTTransformer", "KNeighborsTransformer")
    # the largest valid value works and fills every row
    A = PCCTTransformer(n_neighbors=N_SAMPLES - 1).fit_transform(X)
    assert A.nnz == N_SAMPLES * N_SAMPLES


@pytest.mark.parametrize("n_neighbors", [0, -1, -5, 2.5, 3.0, np.float64(2.0)])
@pytest.mark.parametrize("method", ["kneighbors", "kneighbors_graph"])
@pytest.mark.parametrize("query", ["X=None", "X"])
def test_invalid_n_neighbors_in_kneighbors_like_sklearn(method, query, n_neighbors, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    ref = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(X)
    args = () if query == "X=None" else (Q,)
    ref_exc = _sklearn_error(lambda: getattr(ref, method)(*args, n_neighbors=n_neighbors))
    assert isinstance(ref_exc, ValueError | TypeError)
    with pytest.raises(type(ref_exc)) as exc_info:
        getattr(est, method)(*args, n_neighbors=n_neighbors)
    _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")
    _assert_unchanged(est, snap, Q, answers)


def test_numpy_integer_n_neighbors_accepted(X, Q):
    est = PCCTNeighbors().fit(X)
    dist, ind = est.kneighbors(Q, n_neighbors=np.int64(4))
    assert dist.shape == ind.shape == (Q.shape[0], 4)
    ref_dist, ref_ind = NearestNeighbors().fit(X).kneighbors(Q, n_neighbors=np.int32(4))
    np.testing.assert_array_equal(ind, ref_ind)


@pytest.mark.parametrize("n_neighbors", [0, -1, 1.5, "3"])
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_invalid_n_neighbors_in_constructor(cls, n_neighbors, X, Q):
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        cls(n_neighbors=n_neighbors).fit(X)
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    est.set_params(n_neighbors=n_neighbors)
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        est.fit(X)
    est.set_params(n_neighbors=3)
    _assert_unchanged(est, snap, Q, answers)


# -- radius ---------------------------------------------------------------------


@pytest.mark.parametrize("radius", [-1, -1e-12, -np.inf, np.nan])
def test_negative_radius_in_constructor(radius, X, Q):
    with pytest.raises(InvalidParameterError, match="'radius' parameter of PCCTNeighbors"):
        PCCTNeighbors(radius=radius).fit(X)
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    est.set_params(radius=radius)
    with pytest.raises(InvalidParameterError, match="radius"):
        est.fit(X)
    est.set_params(radius=1.0)
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize("radius", [-1, -0.5, -1e-300, -np.inf, np.nan])
@pytest.mark.parametrize("method", ["radius_neighbors", "radius_neighbors_graph"])
@pytest.mark.parametrize("query", ["X=None", "X"])
def test_negative_radius_in_queries(method, query, radius, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    args = () if query == "X=None" else (Q,)
    with pytest.raises(ValueError, match="radius must be a non-negative number"):
        getattr(est, method)(*args, radius=radius)
    _assert_unchanged(est, snap, Q, answers)
    getattr(est, method)(*args, radius=0.0)


def test_sort_results_needs_return_distance_like_sklearn(X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    ref = NearestNeighbors(algorithm="brute").fit(X)
    for args in ((), (Q,)):
        ref_exc = _sklearn_error(
            lambda args=args: ref.radius_neighbors(*args, return_distance=False, sort_results=True)
        )
        with pytest.raises(ValueError) as exc_info:
            est.radius_neighbors(*args, return_distance=False, sort_results=True)
        _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")
        assert str(exc_info.value) == "return_distance must be True if sort_results is True."
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize("method", ["kneighbors_graph", "radius_neighbors_graph"])
def test_unknown_graph_mode_like_sklearn(method, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    ref = NearestNeighbors(algorithm="brute").fit(X)
    ref_exc = _sklearn_error(lambda: getattr(ref, method)(Q, mode="weights"))
    with pytest.raises(type(ref_exc)) as exc_info:
        getattr(est, method)(Q, mode="weights")
    _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")
    _assert_unchanged(est, snap, Q, answers)


# -- metrics ----------------------------------------------------------------------

NON_METRICS = {
    # metric, p, metric_params -> what the message must explain / suggest
    "sqeuclidean": (dict(metric="sqeuclidean"), "triangle inequality", "metric='euclidean'"),
    "cosine": (dict(metric="cosine"), "triangle inequality", "metric='euclidean'"),
    "correlation": (dict(metric="correlation"), "triangle inequality", "metric='euclidean'"),
    "p=0.5": (dict(p=0.5), "triangle inequality", "p >= 1"),
    "minkowski p=0.5": (dict(metric="minkowski", p=0.5), "triangle inequality", "p >= 1"),
    "metric_params p=0.3": (
        dict(metric="minkowski", metric_params={"p": 0.3}),
        "triangle inequality",
        "p >= 1",
    ),
}


@pytest.mark.parametrize("case", NON_METRICS)
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_non_metrics_are_rejected_with_an_explanation(cls, case, X, Q):
    params, why, instead = NON_METRICS[case]
    with pytest.raises(ValueError) as exc_info:
        cls(**params).fit(X)
    msg = str(exc_info.value)
    assert why in msg
    assert instead in msg
    # a fitted estimator is left alone by the failing refit
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    est.set_params(**params)
    with pytest.raises(ValueError, match=re.escape(why)):
        est.fit(X)
    _assert_unchanged(est, snap)


def test_unknown_metric_lists_supported_ones(X):
    with pytest.raises(ValueError, match="not supported") as exc_info:
        PCCTNeighbors(metric="braycurtis").fit(X)
    assert "euclidean" in str(exc_info.value)


def test_haversine_needs_two_features(rng, X):
    with pytest.raises(ValueError, match="haversine.*2 features.*got 3"):
        PCCTNeighbors(metric="haversine").fit(X)


def test_failing_haversine_refit_changes_nothing(rng, X):
    latlon = rng.uniform(-1.0, 1.0, size=(30, 2))
    Q2 = rng.uniform(-1.0, 1.0, size=(5, 2))
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3, metric="haversine"), latlon, Q2)
    with pytest.raises(ValueError, match="haversine.*2 features.*got 3"):
        est.fit(X)
    _assert_unchanged(est, snap, Q2, answers)


@pytest.mark.parametrize("p", [2, 3])
def test_weighted_minkowski_with_wrong_length_weights(p, X):
    for w in (np.ones(N_FEATURES - 1), np.ones(N_FEATURES + 1)):
        with pytest.raises(
            ValueError, match=f"weights w have {w.size} entries.*{N_FEATURES} features"
        ):
            PCCTNeighbors(p=p, metric_params={"w": w}).fit(X)


def test_failing_weighted_minkowski_refit_changes_nothing(rng, X, Q):
    params = dict(n_neighbors=3, p=3, metric_params={"w": np.arange(1.0, N_FEATURES + 1)})
    est, snap, answers = _fitted(PCCTNeighbors(**params), X, Q)
    with pytest.raises(ValueError, match="weights w"):
        est.fit(X[:, :2])
    _assert_unchanged(est, snap, Q, answers)


@pytest.mark.parametrize(
    "w", [np.array([1.0, -1.0, 1.0]), np.array([1.0, np.nan, 1.0]), np.ones((3, 1))]
)
def test_weighted_minkowski_with_invalid_weights(w, X):
    with pytest.raises(ValueError, match="weights w"):
        PCCTNeighbors(p=3, metric_params={"w": w}).fit(X)


@pytest.mark.parametrize("backend", ["foo", "jax-gpu", "", None, 1])
@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_unknown_backend(cls, backend, X, Q):
    with pytest.raises(InvalidParameterError, match="'backend' parameter"):
        cls(backend=backend).fit(X)
    est, snap, answers = _fitted(cls(n_neighbors=3), X, Q)
    est.set_params(backend=backend)
    with pytest.raises(InvalidParameterError, match="'backend' parameter"):
        est.fit(X)
    est.set_params(backend="auto")
    _assert_unchanged(est, snap, Q, answers)


class _Opaque:
    pass


def _not_numba_compilable(a, b):
    # a Python object numba cannot type
    return float(len({_Opaque(): a}))


def test_callable_metric_not_compilable_by_numba(X, Q):
    with pytest.raises(TypeError, match="compilable by Numba"):
        PCCTNeighbors(metric=_not_numba_compilable).fit(X)
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), X, Q)
    est.set_params(metric=_not_numba_compilable)
    with pytest.raises(TypeError, match="compilable by Numba"):
        est.fit(X)
    _assert_unchanged(est, snap)


def test_callable_metric_with_metric_params_is_rejected(X):
    def l1(a, b):
        return np.abs(a - b).sum()

    with pytest.raises(ValueError, match="metric_params"):
        PCCTNeighbors(metric=l1, metric_params={"p": 1}).fit(X)


# -- unfitted ---------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "method"), QUERY_CASES)
def test_unfitted_estimator_raises_not_fitted(cls, method, Q):
    est = cls()
    with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted yet"):
        getattr(est, method)(Q)
    if method != "transform":
        with pytest.raises(NotFittedError):
            getattr(est, method)()
    assert not hasattr(est, "tree_")


# -- pandas ---------------------------------------------------------------------


def _outcome(call):
    """``(exception or None, [(warning category, message)])`` of a call."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - compared with sklearn's outcome
            error = exc
        else:
            error = None
    return error, [(w.category, str(w.message)) for w in record]


def _assert_same_outcome(ours, ref, name, ref_name):
    exc, warns = ours
    ref_exc, ref_warns = ref
    if ref_exc is None:
        assert exc is None, exc
    else:
        assert exc is not None, f"sklearn raised {ref_exc!r}, we did not"
        _assert_same_error(exc, ref_exc, name, ref_name)
    assert warns == [(c, m.replace(ref_name, name)) for c, m in ref_warns]


@pytest.fixture
def df(X):
    return pd.DataFrame(X, columns=["alpha", "beta", "gamma"])


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_dataframe_sets_feature_names_in(cls, df, X, Q):
    est = cls(n_neighbors=3).fit(df)
    ref = REFERENCE[cls](n_neighbors=3).fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, ref.feature_names_in_)
    assert est.feature_names_in_.dtype == object
    assert list(est.feature_names_in_) == ["alpha", "beta", "gamma"]
    assert est.n_features_in_ == 3
    # answers are the same as with the plain array, without any warning
    q_df = pd.DataFrame(Q, columns=df.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _answers(est, q_df)
    np.testing.assert_array_equal(got, _answers(cls(n_neighbors=3).fit(X), Q))
    # numpy fit: no feature names
    assert not hasattr(cls().fit(X), "feature_names_in_")


QUERY_FRAMES = {
    "numpy": lambda Q: Q,
    "same_names": lambda Q: pd.DataFrame(Q, columns=["alpha", "beta", "gamma"]),
    "other_names": lambda Q: pd.DataFrame(Q, columns=["a", "b", "c"]),
    "reordered": lambda Q: pd.DataFrame(Q, columns=["beta", "alpha", "gamma"]),
    "int_names": lambda Q: pd.DataFrame(Q),
}


@pytest.mark.parametrize("fit_on", ["dataframe", "numpy"])
@pytest.mark.parametrize("query", QUERY_FRAMES)
@pytest.mark.parametrize(("cls", "method"), QUERY_CASES)
def test_feature_name_mismatch_like_sklearn(cls, method, query, fit_on, df, X, Q):
    data = df if fit_on == "dataframe" else X
    est = cls(n_neighbors=3).fit(data)
    ref_cls = REFERENCE[cls]
    ref = ref_cls(n_neighbors=3, algorithm="brute").fit(data)
    snap = _snapshot(est)
    q = QUERY_FRAMES[query](Q)
    ours = _outcome(lambda: getattr(est, method)(q))
    theirs = _outcome(lambda: getattr(ref, method)(q))
    _assert_same_outcome(ours, theirs, cls.__name__, ref_cls.__name__)
    _assert_unchanged(est, snap)


def test_mismatch_warning_is_emitted(df, Q):
    est = PCCTNeighbors(n_neighbors=3).fit(df)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.kneighbors(Q)
    est = PCCTNeighbors(n_neighbors=3).fit(df.to_numpy())
    with pytest.warns(UserWarning, match="X has feature names, but PCCTNeighbors"):
        est.kneighbors(pd.DataFrame(Q, columns=df.columns))


def test_mixed_type_column_names_like_sklearn(X):
    bad = pd.DataFrame(X, columns=["a", 1, "c"])
    ref_exc = _sklearn_error(lambda: NearestNeighbors().fit(bad))
    with pytest.raises(type(ref_exc)) as exc_info:
        PCCTNeighbors().fit(bad)
    _assert_same_error(exc_info.value, ref_exc, "PCCTNeighbors", "NearestNeighbors")


def test_failing_refit_with_nan_array_keeps_feature_names(df, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), df, Q)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    _assert_unchanged(est, snap)  # feature_names_in_ must not be dropped


def test_failing_refit_with_nan_dataframe_keeps_feature_names(df, X, Q):
    est, snap, answers = _fitted(PCCTNeighbors(n_neighbors=3), df, Q)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(pd.DataFrame(bad, columns=["x", "y", "z"]))
    _assert_unchanged(est, snap)  # feature_names_in_ must stay alpha, beta, gamma


def test_failing_refit_with_sparse_keeps_feature_names(df, X, Q):
    est, snap, _ = _fitted(PCCTNeighbors(n_neighbors=3), df, Q)
    with pytest.raises(TypeError, match=SPARSE_MESSAGE):
        est.fit(sp.csr_array(X))
    _assert_unchanged(est, snap)
