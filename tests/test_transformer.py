"""PCCTTransformer reproduces sklearn's KNeighborsTransformer (algorithm='brute')."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import config_context
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import KNeighborsTransformer

from sklearn_pcct import PCCTTransformer

# sklearn's brute-force euclidean distances come from a GEMM expansion and are
# only accurate to about 1e-8; the cover tree computes them in difference form.
ATOL = 1e-7

N_FIT, N_NEW, N_FEATURES = 120, 37, 4


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def X(rng):
    return rng.normal(size=(N_FIT, N_FEATURES))


@pytest.fixture
def X_new(rng):
    return rng.normal(size=(N_NEW, N_FEATURES))


def _pair(mode, n_neighbors, metric="minkowski", **kwargs):
    ours = PCCTTransformer(mode=mode, n_neighbors=n_neighbors, metric=metric, **kwargs)
    ref = KNeighborsTransformer(
        mode=mode, n_neighbors=n_neighbors, metric=metric, algorithm="brute", **kwargs
    )
    return ours, ref


def _assert_same_graph(A, B, Xq, Xfit, metric, *, atol=ATOL):
    """Same CSR structure, same neighbours per row (ties aware), same weights.

    Rows are compared as (distance, index) lists. Indices must agree wherever
    the distance is unambiguous; inside a group of (numerically) tied
    distances the index sets must agree, except for the last group of a row,
    where the selection of which tied samples fill the row is arbitrary: there
    every selected sample must lie at the tied distance (checked against the
    exact distance matrix).
    """
    assert A.format == B.format == "csr"
    assert type(A) is type(B)
    assert A.shape == B.shape
    np.testing.assert_array_equal(A.indptr, B.indptr)
    D = pairwise_distances(Xq, Xfit, metric=metric)
    for i in range(A.shape[0]):
        sa, sb = slice(A.indptr[i], A.indptr[i + 1]), slice(B.indptr[i], B.indptr[i + 1])
        ia, ib = A.indices[sa], B.indices[sb]
        da_true, db_true = D[i, ia], D[i, ib]
        # both rows hold k nearest samples: same multiset of true distances
        np.testing.assert_allclose(np.sort(da_true), np.sort(db_true), rtol=0, atol=atol)
        kth = db_true.max()
        inner_a = set(ia[da_true < kth - atol].tolist())
        inner_b = set(ib[db_true < kth - atol].tolist())
        assert inner_a == inner_b, f"row {i}: different neighbour sets"
        assert np.all(np.abs(da_true[da_true >= kth - atol] - kth) <= atol)
        # no duplicate columns in a row
        assert len(set(ia.tolist())) == len(ia)


def _assert_rows_sorted(A):
    for i in range(A.shape[0]):
        row = A.data[A.indptr[i] : A.indptr[i + 1]]
        assert np.all(np.diff(row) >= 0), f"row {i} not sorted by distance"


@pytest.mark.parametrize("metric", ["minkowski", "euclidean", "manhattan"])
@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize("n_neighbors", [1, 5])
def test_fit_transform_matches_sklearn(X, metric, mode, n_neighbors):
    ours, ref = _pair(mode, n_neighbors, metric)
    A = ours.fit_transform(X)
    B = ref.fit_transform(X)
    _assert_same_graph(A, B, X, X, "euclidean" if metric == "minkowski" else metric)
    if mode == "distance":
        _assert_rows_sorted(A)
        # same distances once each row is put in column order
        np.testing.assert_allclose(A.toarray(), B.toarray(), rtol=0, atol=ATOL)
        assert A.dtype == B.dtype == np.float64
    else:
        np.testing.assert_array_equal(A.data, np.ones(A.nnz))
        np.testing.assert_array_equal(A.toarray(), B.toarray())
        assert A.dtype == B.dtype


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transform_new_data_matches_sklearn(X, X_new, metric, mode):
    k = 6
    ours, ref = _pair(mode, k, metric)
    ours.fit(X)
    ref.fit(X)
    A = ours.transform(X_new)
    B = ref.transform(X_new)
    assert A.shape == (N_NEW, N_FIT)
    _assert_same_graph(A, B, X_new, X, metric)
    expected_per_row = k + 1 if mode == "distance" else k
    np.testing.assert_array_equal(np.diff(A.indptr), expected_per_row)
    if mode == "distance":
        _assert_rows_sorted(A)
        np.testing.assert_allclose(A.toarray(), B.toarray(), rtol=0, atol=ATOL)
        # the stored weights are the true distances
        D = pairwise_distances(X_new, X, metric=metric)
        rows = np.repeat(np.arange(N_NEW), np.diff(A.indptr))
        np.testing.assert_allclose(A.data, D[rows, A.indices], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_distance_mode_stores_explicit_zero_diagonal(X, metric):
    k = 5
    A = PCCTTransformer(n_neighbors=k, metric=metric).fit_transform(X)
    B = KNeighborsTransformer(n_neighbors=k, metric=metric, algorithm="brute").fit_transform(X)
    n = X.shape[0]
    assert A.nnz == B.nnz == n * (k + 1)
    np.testing.assert_array_equal(np.diff(A.indptr), k + 1)
    for i in range(n):
        row = slice(A.indptr[i], A.indptr[i + 1])
        # the sample itself is its first neighbour, stored as an explicit 0
        assert A.indices[row][0] == i
        assert A.data[row][0] == 0.0
    # explicit zeros survive: eliminate_zeros would remove exactly the diagonal
    C = A.copy()
    C.eliminate_zeros()
    assert C.nnz == n * k
    np.testing.assert_array_equal(A.diagonal(), 0.0)


def test_connectivity_mode_nnz(X):
    k = 4
    A = PCCTTransformer(mode="connectivity", n_neighbors=k).fit_transform(X)
    assert A.nnz == X.shape[0] * k
    # transforming the training data: each sample is its own first neighbour
    np.testing.assert_array_equal(A.diagonal(), 1.0)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_fit_transform_equals_fit_then_transform(X, mode):
    A = PCCTTransformer(mode=mode, n_neighbors=3).fit_transform(X)
    B = PCCTTransformer(mode=mode, n_neighbors=3).fit(X).transform(X)
    assert type(A) is type(B)
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_array_equal(A.data, B.data)


@pytest.mark.parametrize("sparse_interface", ["spmatrix", "sparray"])
def test_output_container_follows_sklearn_config(X, sparse_interface):
    try:
        ctx = config_context(sparse_interface=sparse_interface)
    except TypeError:  # pragma: no cover - scikit-learn < 1.8
        pytest.skip("sklearn has no sparse_interface option")
    with ctx:
        A = PCCTTransformer(n_neighbors=3).fit_transform(X)
        B = KNeighborsTransformer(n_neighbors=3, algorithm="brute").fit_transform(X)
    assert type(A) is type(B)
    assert sp.issparse(A)


def test_ties_on_integer_grid_match_sklearn_tie_aware():
    # many exact ties (integer coordinates, manhattan distances are exact)
    rng = np.random.default_rng(7)
    X = rng.permutation(np.array([[i, j] for i in range(8) for j in range(8)], dtype=float))
    for metric in ("manhattan", "euclidean", "chebyshev"):
        A = PCCTTransformer(n_neighbors=5, metric=metric).fit_transform(X)
        B = KNeighborsTransformer(n_neighbors=5, metric=metric, algorithm="brute").fit_transform(X)
        _assert_same_graph(A, B, X, X, metric)
        _assert_rows_sorted(A)
        # ties are broken by sample index
        for i in range(A.shape[0]):
            row = slice(A.indptr[i], A.indptr[i + 1])
            order = np.lexsort((A.indices[row], A.data[row]))
            np.testing.assert_array_equal(order, np.arange(order.size))


def test_get_feature_names_out_like_sklearn(X):
    ours = PCCTTransformer(n_neighbors=3).fit(X)
    ref = KNeighborsTransformer(n_neighbors=3).fit(X)
    names = ours.get_feature_names_out()
    ref_names = ref.get_feature_names_out()
    assert names.dtype == ref_names.dtype == object
    assert names.shape == ref_names.shape == (N_FIT,)
    expected = [n.replace("kneighborstransformer", "pccttransformer") for n in ref_names]
    assert list(names) == expected
    assert names[0] == "pccttransformer0"
    assert names[-1] == f"pccttransformer{N_FIT - 1}"


def test_get_feature_names_out_unfitted_raises_like_sklearn():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        KNeighborsTransformer().get_feature_names_out()
    with pytest.raises(NotFittedError):
        PCCTTransformer().get_feature_names_out()


def test_float32_input_matches_sklearn(X, X_new):
    X32, Q32 = X.astype(np.float32), X_new.astype(np.float32)
    A = PCCTTransformer(n_neighbors=4).fit(X32).transform(Q32)
    B = KNeighborsTransformer(n_neighbors=4, algorithm="brute").fit(X32).transform(Q32)
    assert A.dtype == B.dtype
    # float32 inputs: distances agree to float32 precision
    _assert_same_graph(A, B, Q32.astype(np.float64), X32.astype(np.float64), "euclidean", atol=1e-5)
    _assert_rows_sorted(A)
    for i in range(A.shape[0]):
        ra = A.data[A.indptr[i] : A.indptr[i + 1]]
        rb = np.sort(B.data[B.indptr[i] : B.indptr[i + 1]])
        np.testing.assert_allclose(ra, rb, rtol=0, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["auto", "cover_tree"])
@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_more_duplicates_than_neighbours_keep_the_smallest_indices(mode, algorithm):
    # 8 samples share one point and 3 another: a row of the first group
    # cannot hold all 8, so it holds the smallest indices (its own diagonal
    # entry may be missing); sklearn's transformer gives the same sets. Rows
    # of the second group hold its 3 samples and, at a tied distance, the
    # smallest index of the first group (sklearn breaks that tie arbitrarily)
    X = np.array([[0.0, 0.0]] * 8 + [[5.0, 5.0]] * 3)
    k = 3 + (mode == "distance")
    ours = PCCTTransformer(mode=mode, n_neighbors=3, algorithm=algorithm)
    ref = KNeighborsTransformer(mode=mode, n_neighbors=3, algorithm="brute")
    for G, R, Q in ((ours.fit_transform(X), ref.fit_transform(X), X),
                    (ours.transform(X[::-1]), ref.transform(X[::-1]), X[::-1])):
        assert G.format == "csr" and G.nnz == len(X) * k
        np.testing.assert_array_equal(G.indptr, np.arange(0, len(X) * k + 1, k))
        rows = G.indices.reshape(len(X), k)
        first = Q[:, 0] == 0.0
        np.testing.assert_array_equal(rows[first], np.tile(np.arange(k), (8, 1)))
        np.testing.assert_array_equal(
            np.sort(rows[first], axis=1), np.sort(R.indices.reshape(len(X), k)[first], axis=1)
        )
        expected = [8, 9, 10] if k == 3 else [0, 8, 9, 10]
        np.testing.assert_array_equal(np.sort(rows[~first], axis=1),
                                      np.tile(expected, (3, 1)))
