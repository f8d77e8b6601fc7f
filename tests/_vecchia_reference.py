"""Slow, obviously-correct O(n^2) references for the Vecchia and correlation tests.

Only NumPy, SciPy and scikit-learn are used here, never ``sklearn_pcct``:

* :func:`metric_distances`: dense distance matrices for the string metrics
  (``scipy.spatial.distance.cdist``, ``sklearn.metrics.pairwise.haversine_distances``),
  for a Python/Numba callable (a double loop), and for the two correlation
  metrics described by :class:`RefKernelCorrelation` and
  :class:`RefResidualCorrelation` (computed from scikit-learn kernel matrices);
* :func:`naive_maximin`: the greedy farthest-point ordering, a fresh
  ``argmax`` at every step (ties: smallest index);
* :func:`naive_predecessors`: the ``m`` nearest earlier points of every rank,
  sorted by ``(distance, original index)``;
* assertion helpers that accept index swaps among distances tied within a
  tolerance.

Conventions follow ``/tmp/spec/vecchia_api.md``: correlation distances are
``sqrt(1 - |rho|)`` (or ``sqrt(1 - rho)`` for the signed residual form) and
are exactly 0 for identical rows; the cross-covariance ``kernel(X, Y)`` is
evaluated with ``Y`` given explicitly, so a ``WhiteKernel`` nugget only
enters the variances ``kernel.diag``.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from sklearn.metrics.pairwise import haversine_distances
from sklearn.utils import check_random_state

__all__ = [
    "RefKernelCorrelation",
    "RefResidualCorrelation",
    "metric_distances",
    "center_distances",
    "reference_first",
    "naive_maximin",
    "naive_predecessors",
    "reference_order",
    "reference_vecchia",
    "reference_vecchia_graph",
    "assert_predecessors_equal",
    "assert_maximin_valid",
    "assert_vecchia_graph_equal",
    "assert_knn_rows_equal",
]


def _as_2d(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {X.shape}")
    return X


def _identical_rows(X, Y):
    """Boolean (n_x, n_y) mask of pairs of bit-for-bit equal rows (0.0 == -0.0)."""
    if X.shape[1] == 0:
        return np.ones((len(X), len(Y)), dtype=bool)
    return cdist(X, Y, "chebyshev") == 0.0


def _correlation_to_distance(rho, absolute):
    rho = np.clip(rho, -1.0, 1.0)
    c = np.abs(rho) if absolute else rho
    return np.sqrt(np.clip(1.0 - c, 0.0, None))


class RefKernelCorrelation:
    """Reference kernel correlation distance ``sqrt(1 - |k(x,y)| / sqrt(k(x,x) k(y,y)))``.

    Parameters
    ----------
    kernel : sklearn.gaussian_process.kernels.Kernel
        The covariance. ``kernel(X, Y)`` (``Y`` explicit: no WhiteKernel
        nugget) gives the cross-covariances, ``kernel.diag`` the variances.
    """

    def __init__(self, kernel):
        self.kernel = kernel

    def variances(self, X):
        v = np.asarray(self.kernel.diag(X), dtype=np.float64)
        if np.any(~(v > 0.0)):
            raise ValueError("kernel variance k(x, x) <= 0: correlation undefined")
        return v

    def distances(self, X, Y):
        K = np.asarray(self.kernel(X, Y), dtype=np.float64)
        rho = K / np.sqrt(np.outer(self.variances(X), self.variances(Y)))
        D = _correlation_to_distance(rho, absolute=True)
        D[_identical_rows(X, Y)] = 0.0
        return D


class RefResidualCorrelation:
    """Reference residual correlation distance given inducing points ``Z``.

    ``r(x, y) = k(x, y) - k(x, Z) K_ZZ^{-1} k(Z, y)`` with ``K_ZZ = kernel(Z, Z)``
    factored by Cholesky (``jitter * mean(diag)`` added only if the plain
    factorisation fails); ``d = sqrt(1 - |r(x,y)| / sqrt(r(x,x) r(y,y)))``
    (signed ``r`` if ``absolute=False``), 0 for identical rows.

    A WhiteKernel nugget follows scikit-learn's ``k(X, Y)`` convention: it is
    absent from ``K_ZZ = kernel(Z, Z)`` and from the cross-covariances, and
    present in the variances ``r(x, x)`` (through ``kernel.diag``).
    """

    def __init__(self, kernel, inducing_points, *, jitter=1e-10, absolute=True):
        self.kernel = kernel
        self.Z = _as_2d(inducing_points)
        self.jitter = jitter
        self.absolute = absolute
        Kzz = np.asarray(kernel(self.Z, self.Z), dtype=np.float64)
        try:
            self.L = scipy.linalg.cholesky(Kzz, lower=True)
        except np.linalg.LinAlgError:
            Kzz = Kzz + jitter * np.mean(np.diag(Kzz)) * np.eye(len(Kzz))
            self.L = scipy.linalg.cholesky(Kzz, lower=True)

    def _V(self, X):
        if X.shape[1] != self.Z.shape[1]:
            raise ValueError("inducing points and data have different numbers of features")
        return scipy.linalg.solve_triangular(
            self.L, np.asarray(self.kernel(self.Z, X), dtype=np.float64), lower=True
        )

    def variances(self, X):
        prior = np.asarray(self.kernel.diag(X), dtype=np.float64)
        V = self._V(X)
        r = prior - np.sum(V * V, axis=0)
        if np.any(~(r > 1e-12 * prior)):
            raise ValueError("zero residual variance")
        return r

    def residual_covariance(self, X, Y):
        R = np.asarray(self.kernel(X, Y), dtype=np.float64) - self._V(X).T @ self._V(Y)
        return R

    def distances(self, X, Y):
        R = self.residual_covariance(X, Y)
        rho = R / np.sqrt(np.outer(self.variances(X), self.variances(Y)))
        D = _correlation_to_distance(rho, absolute=self.absolute)
        D[_identical_rows(X, Y)] = 0.0
        return D


def metric_distances(X, Y=None, metric="euclidean", metric_params=None):
    """Dense reference distance matrix between the rows of ``X`` and ``Y``.

    Parameters
    ----------
    X : array-like of shape (n_x, n_features)
    Y : array-like of shape (n_y, n_features) or None (means ``X``)
    metric : str, callable, RefKernelCorrelation or RefResidualCorrelation
        ``"euclidean"``, ``"manhattan"``, ``"chebyshev"``, ``"minkowski"``
        (``metric_params["p"]``, default 2, optional ``"w"``), ``"haversine"``,
        a callable ``f(a, b) -> float``, or a reference correlation object.
    metric_params : dict or None

    Returns
    -------
    D : ndarray of shape (n_x, n_y), float64
    """
    X = _as_2d(X)
    Y = X if Y is None else _as_2d(Y)
    params = dict(metric_params or {})
    if isinstance(metric, (RefKernelCorrelation, RefResidualCorrelation)):
        return metric.distances(X, Y)
    if callable(metric):
        return np.array([[float(metric(a, b)) for b in Y] for a in X]).reshape(len(X), len(Y))
    name = {"l2": "euclidean", "l1": "manhattan", "cityblock": "manhattan"}.get(metric, metric)
    if name == "euclidean":
        return cdist(X, Y, "euclidean")
    if name == "manhattan":
        return cdist(X, Y, "cityblock")
    if name in ("chebyshev", "infinity"):
        return cdist(X, Y, "chebyshev")
    if name == "minkowski":
        p = params.get("p", 2)
        w = params.get("w")
        if w is None:
            return cdist(X, Y, "minkowski", p=p)
        return cdist(X, Y, "minkowski", p=p, w=np.asarray(w, dtype=np.float64))
    if name == "haversine":
        return haversine_distances(X, Y)
    raise ValueError(f"unknown metric {metric!r}")


def center_distances(X, metric="euclidean", metric_params=None):
    """Distances from every row of ``X`` to the coordinate mean ``X.mean(0)``."""
    X = _as_2d(X)
    return metric_distances(X, X.mean(axis=0)[None, :], metric, metric_params)[:, 0]


def reference_first(X, first, metric="euclidean", metric_params=None, random_state=None):
    """The first point of the maximin ordering, as the spec defines it."""
    n = len(X)
    if isinstance(first, str) and first == "center":
        return int(np.argmin(center_distances(X, metric, metric_params)))  # first minimum
    if isinstance(first, str) and first == "random":
        return int(check_random_state(random_state).randint(n))
    return int(first)


def naive_maximin(D, first_index):
    """Greedy maximin ordering of a dense distance matrix.

    At every step a fresh ``np.argmax`` over the current distance of each
    unselected point to the selected set (``np.argmax`` returns the first
    maximum, hence ties go to the smallest index).

    Returns
    -------
    order : ndarray of shape (n,), int64
    lengthscales : ndarray of shape (n,), float64
        ``lengthscales[r] = min(D[order[r], order[:r]])``, ``inf`` for ``r = 0``.
    """
    D = np.asarray(D, dtype=np.float64)
    n = D.shape[0]
    order = np.empty(n, dtype=np.int64)
    ls = np.empty(n, dtype=np.float64)
    key = np.full(n, np.inf)
    selected = np.zeros(n, dtype=bool)
    nxt = int(first_index)
    for r in range(n):
        order[r] = nxt
        ls[r] = key[nxt]
        selected[nxt] = True
        key = np.minimum(key, D[nxt])
        if r + 1 < n:
            masked = np.where(selected, -1.0, key)
            nxt = int(np.argmax(masked))
    return order, ls


def naive_predecessors(D, order, m):
    """The ``m`` nearest predecessors of every rank.

    Row ``r`` holds the original indices of the ``m`` points of ``order[:r]``
    nearest to ``order[r]``, sorted by ``(distance, original index)``, padded
    with -1 (distances with ``inf``).
    """
    D = np.asarray(D, dtype=np.float64)
    order = np.asarray(order, dtype=np.int64)
    n = len(order)
    nb = np.full((n, m), -1, dtype=np.int64)
    dist = np.full((n, m), np.inf)
    for r in range(1, n):
        prev = order[:r]
        d = D[order[r], prev]
        srt = np.lexsort((prev, d))[:m]
        nb[r, : len(srt)] = prev[srt]
        dist[r, : len(srt)] = d[srt]
    return nb, dist


def reference_order(X, ordering, metric="euclidean", metric_params=None, random_state=None):
    """The permutation that ``vecchia_neighbors`` must use for ``ordering``."""
    n = len(X)
    if isinstance(ordering, str):
        if ordering == "none":
            return np.arange(n, dtype=np.int64)
        if ordering == "random":
            return check_random_state(random_state).permutation(n).astype(np.int64)
        if ordering == "maximin":
            D = metric_distances(X, None, metric, metric_params)
            return naive_maximin(D, reference_first(X, "center", metric, metric_params))[0]
        raise ValueError(ordering)
    return np.asarray(ordering, dtype=np.int64)


def reference_vecchia(
    X, m, ordering="maximin", metric="euclidean", metric_params=None, random_state=None
):
    """``(order, neighbors, distances, D)`` computed by brute force."""
    D = metric_distances(X, None, metric, metric_params)
    order = reference_order(X, ordering, metric, metric_params, random_state)
    nb, dist = naive_predecessors(D, order, m)
    return order, nb, dist, D


def reference_vecchia_graph(D, order, m, mode="connectivity", include_self=False):
    """The Vecchia conditioning graph in original index space (CSR, float64).

    Row ``order[r]`` lists its ``m`` nearest predecessors sorted by
    ``(distance, index)``; with ``include_self`` the point itself comes first
    and is followed by ``m - 1`` predecessors.
    """
    n = len(order)
    k = m - 1 if include_self else m
    nb, dist = naive_predecessors(D, order, max(k, 1)) if k > 0 else (None, None)
    rows_idx = [None] * n
    rows_val = [None] * n
    for r, i in enumerate(order):
        idx, val = [], []
        if include_self:
            idx.append(i)
            val.append(0.0)
        if k > 0:
            valid = nb[r, :k] >= 0
            idx.extend(nb[r, :k][valid].tolist())
            val.extend(dist[r, :k][valid].tolist())
        rows_idx[i] = idx
        rows_val[i] = val
    indptr = np.concatenate([[0], np.cumsum([len(a) for a in rows_idx])]).astype(np.int64)
    indices = np.array([j for a in rows_idx for j in a], dtype=np.int64)
    data = np.array([v for a in rows_val for v in a], dtype=np.float64)
    if mode == "connectivity":
        data = np.ones_like(data)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


# --------------------------------------------------------------------------- assertions


def _close(a, b, rtol, atol):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    with np.errstate(invalid="ignore"):
        ok = np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))
    return ok | both_inf


def assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, *, rtol=1e-9, atol=0.0):
    """Assert that ``(nb, dist)`` is a correct nearest-predecessor result for ``order``.

    Exact requirements: shapes and dtypes, the padding (-1 / inf exactly where
    the reference pads), distinct indices, every index a predecessor in
    ``order``. Up to the tolerance: the reported distances equal the true
    distances ``D[order[r], nb[r]]`` and the reference distances column by
    column (so the set of neighbours can only differ by swaps among tied
    distances), and they are non-decreasing. Indices must equal the reference
    exactly wherever the reference distance is not tied (within the
    tolerance) with another candidate predecessor's distance.
    """
    order = np.asarray(order)
    nb = np.asarray(nb)
    dist = np.asarray(dist)
    assert nb.shape == nb_ref.shape, (nb.shape, nb_ref.shape)
    assert dist.shape == dist_ref.shape, (dist.shape, dist_ref.shape)
    assert nb.dtype == np.int64, nb.dtype
    assert dist.dtype == np.float64, dist.dtype
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    pad_ref = nb_ref < 0
    np.testing.assert_array_equal(nb < 0, pad_ref, err_msg="padding (-1) differs")
    np.testing.assert_array_equal(nb[pad_ref], -1)
    assert np.all(np.isposinf(dist[pad_ref])), "padded distances must be inf"
    for r in range(n):
        valid = ~pad_ref[r]
        got, got_d = nb[r, valid], dist[r, valid]
        ref, ref_d = nb_ref[r, valid], dist_ref[r, valid]
        if len(got) == 0:
            continue
        q = order[r]
        assert len(np.unique(got)) == len(got), f"rank {r}: repeated neighbours {got}"
        assert np.all((got >= 0) & (got < n)), f"rank {r}: indices out of range {got}"
        assert np.all(rank[got] < r), f"rank {r} (point {q}): non-predecessors in {got}"
        true_d = D[q, got]
        bad = ~_close(got_d, true_d, rtol, atol)
        assert not np.any(bad), (
            f"rank {r} (point {q}): reported distances {got_d[bad]} for {got[bad]}, "
            f"true {true_d[bad]}"
        )
        bad = ~_close(got_d, ref_d, rtol, atol)
        assert not np.any(bad), (
            f"rank {r} (point {q}): distances {got_d} differ from the reference {ref_d} "
            f"(neighbours {got} vs {ref})"
        )
        assert np.all(np.diff(got_d) >= -(atol + rtol * np.abs(got_d[1:]))), (
            f"rank {r}: distances not sorted {got_d}"
        )
        # exact indices where the reference distance is unambiguous among all predecessors
        prev_d = D[q, order[:r]]
        for j in range(len(ref)):
            n_tied = np.count_nonzero(_close(prev_d, ref_d[j], rtol, atol))
            if n_tied == 1:
                assert got[j] == ref[j], (
                    f"rank {r} (point {q}), column {j}: neighbour {got[j]} instead of "
                    f"{ref[j]} (no tie at distance {ref_d[j]!r})"
                )


def assert_maximin_valid(order, lengthscales, D, first=None, *, rtol=1e-9, atol=0.0):
    """Assert that ``order`` is a greedy maximin ordering of ``D`` up to ties.

    At every step the chosen point must have the largest distance to the
    points chosen before (within the tolerance), and ``lengthscales`` must
    match that distance. Use exact comparison with :func:`naive_maximin`
    where distances are computed exactly (the index tie rule).
    """
    order = np.asarray(order)
    ls = np.asarray(lengthscales)
    n = D.shape[0]
    np.testing.assert_array_equal(np.sort(order), np.arange(n), err_msg="not a permutation")
    if first is not None:
        assert order[0] == first, (order[0], first)
    assert np.isposinf(ls[0]), ls[0]
    key = np.full(n, np.inf)
    selected = np.zeros(n, dtype=bool)
    for r in range(n):
        i = order[r]
        if r > 0:
            best = np.max(key[~selected])
            assert _close(key[i], best, rtol, atol), (
                f"rank {r}: point {i} at distance {key[i]!r} chosen, but "
                f"{np.flatnonzero(~selected)[np.argmax(key[~selected])]} is at {best!r}"
            )
            assert _close(ls[r], key[i], rtol, atol), (r, ls[r], key[i])
        selected[i] = True
        key = np.minimum(key, D[i])


def assert_knn_rows_equal(ind, dist, ind_ref, D_rows, *, rtol=1e-9, atol=0.0, dist_check=True):
    """Row-wise k-NN comparison with ties: ``ind[i]`` must be a valid answer.

    ``D_rows[i]`` is the full reference distance row of query ``i``; ``ind_ref``
    the reference answer. Every returned index must be distinct, the sorted
    true distances of ``ind[i]`` must equal those of ``ind_ref[i]``, reported
    distances (if ``dist_check``) must equal the true ones, and indices must
    agree where the reference distance is not tied with any other sample.
    """
    for i in range(len(ind_ref)):
        got = np.asarray(ind[i])
        ref = np.asarray(ind_ref[i])
        assert len(got) == len(ref), (i, got, ref)
        assert len(np.unique(got)) == len(got), f"row {i}: repeated {got}"
        true_got = D_rows[i, got]
        true_ref = D_rows[i, ref]
        assert np.all(_close(np.sort(true_got), np.sort(true_ref), rtol, atol)), (
            f"row {i}: neighbours {got} at {true_got}, reference {ref} at {true_ref}"
        )
        if dist_check:
            assert np.all(_close(np.asarray(dist[i]), true_got, rtol, atol)), (
                f"row {i}: reported {dist[i]}, true {true_got}"
            )
        for j in range(len(ref)):
            if np.count_nonzero(_close(D_rows[i], true_ref[j], rtol, atol)) == 1:
                assert got[j] == ref[j], f"row {i}, column {j}: {got[j]} instead of {ref[j]}"


def assert_vecchia_graph_equal(G, D, order, m, mode, include_self, *, rtol=1e-9, atol=0.0):
    """Assert that ``G`` is the Vecchia conditioning graph of ``order`` (up to ties).

    CSR (n, n) float64; row ``order[r]``: with ``include_self`` the point
    itself first (data 0 in distance mode, 1 in connectivity mode), then its
    nearest predecessors sorted by distance, as many as the reference has,
    checked with :func:`assert_predecessors_equal`.
    """
    n = len(order)
    assert sp.issparse(G) and G.format == "csr", type(G)
    assert G.shape == (n, n), G.shape
    assert G.dtype == np.float64, G.dtype
    k = m - 1 if include_self else m
    kk = max(k, 1)
    nb_ref, dist_ref = naive_predecessors(D, order, kk)
    if k == 0:
        nb_ref[:] = -1
        dist_ref[:] = np.inf
    nb = np.full((n, kk), -1, dtype=np.int64)
    dist = np.full((n, kk), np.inf)
    for r, i in enumerate(order):
        cols = G.indices[G.indptr[i] : G.indptr[i + 1]].astype(np.int64)
        vals = G.data[G.indptr[i] : G.indptr[i + 1]]
        expected = int(np.count_nonzero(nb_ref[r] >= 0)) + int(include_self)
        assert len(cols) == expected, (
            f"row {i} (rank {r}): {len(cols)} stored entries, expected {expected}: {cols}"
        )
        if include_self:
            assert cols[0] == i, f"row {i}: first entry {cols[0]} is not the point itself"
            expected_self = 0.0 if mode == "distance" else 1.0
            assert vals[0] == expected_self, (i, vals[0])
            cols, vals = cols[1:], vals[1:]
        if mode == "connectivity":
            np.testing.assert_array_equal(vals, 1.0)
            vals = D[i, cols]
        nb[r, : len(cols)] = cols
        dist[r, : len(cols)] = vals
    assert_predecessors_equal(order, nb, dist, D, nb_ref, dist_ref, rtol=rtol, atol=atol)
