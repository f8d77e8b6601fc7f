"""Brute-force oracles and tie-aware assertions for testing neighbour searches.

These helpers depend on NumPy only. Distances are computed as the kernels
define them, in float64 and in the *difference form*
(:func:`sklearn_pcct._metric.pairwise_distances`), never with the
``|a|^2 + |b|^2 - 2 a.b`` identity that makes scikit-learn's brute-force
Euclidean distances accurate to about ``1e-7`` only. Neighbours are ordered
by ``(distance, sample index)``, the tie rule of every query in the package,
so an exact search must reproduce :func:`brute_force_knn` index for index
wherever both compute the same distances bit for bit (small-integer data,
for instance); elsewhere the assertions allow ties within a tolerance.
"""

import numpy as np

from ._metric import pairwise_distances

__all__ = [
    "brute_force_knn",
    "brute_force_radius",
    "assert_knn_equal",
    "assert_radius_equal",
]


def _as_2d_float64(X):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {X.shape}")
    return X.astype(np.float64, copy=False)


def _queries(X_fit, X_query, exclude_self):
    if exclude_self:
        if X_query is not None:
            raise ValueError("exclude_self=True queries the fitted samples: pass X_query=None")
        return X_fit
    if X_query is None:
        raise ValueError("X_query=None needs exclude_self=True")
    return X_query


def _exclude_self_columns(ind):
    """Mask dropping each row's own index, or its first column when it is absent.

    This is scikit-learn's rule for ``kneighbors(X=None)``: when more
    duplicates than neighbours push the sample itself out of the ``k + 1``
    columns of ``ind``, the first column is dropped instead.
    """
    mask = ind != np.arange(ind.shape[0])[:, None]
    absent = np.all(mask, axis=1)
    mask[absent, 0] = False
    return mask


def _smallest(D, k):
    """The ``k`` smallest entries of every row of ``D``, ordered by (value, column)."""
    n = D.shape[1]
    if k < n:
        # Only candidates up to the k-th smallest value matter; take enough
        # columns to hold every entry tied with it in every row.
        kth = np.partition(D, k - 1, axis=1)[:, k - 1]
        m = int(np.max(np.sum(D <= kth[:, None], axis=1)))
        cand = np.argpartition(D, m - 1, axis=1)[:, :m] if m < n else None
    else:
        cand = None
    if cand is None:
        cand = np.broadcast_to(np.arange(n), D.shape)
    vals = np.take_along_axis(D, cand, axis=1)
    order = np.lexsort((cand, vals), axis=-1)[:, :k]
    ind = np.take_along_axis(cand, order, axis=1).astype(np.int64)
    return np.take_along_axis(vals, order, axis=1), ind


def brute_force_knn(X_fit, X_query, k, metric_spec, exclude_self=False):
    """Exact ``k`` nearest neighbours by brute force.

    Parameters
    ----------
    X_fit : array-like of shape (n_samples_fit, n_features)
        The fitted samples. float32 data are converted to float64 exactly.
    X_query : array-like of shape (n_queries, n_features) or None
        The queries; must be None when ``exclude_self`` is True.
    k : int
        Number of neighbours, at most ``n_samples_fit`` (``n_samples_fit - 1``
        when ``exclude_self`` is True).
    metric_spec : MetricSpec
        The metric (see :func:`sklearn_pcct._metric.resolve_metric`).
    exclude_self : bool, default=False
        Query every fitted sample and exclude the sample itself, with
        scikit-learn's ``kneighbors(X=None)`` semantics (including its
        corner case when duplicates push the sample out of the first
        ``k + 1`` neighbours).

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        Distances, ascending in each row.
    ind : ndarray of shape (n_queries, k), int64
        Sample indices; rows are sorted by ``(distance, index)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._metric import MetricSpec
    >>> from sklearn_pcct._testing import brute_force_knn
    >>> X = np.array([[0.0], [2.0], [1.0], [1.0]])
    >>> brute_force_knn(X, np.array([[1.5]]), 3, MetricSpec("euclidean"))
    (array([[0.5, 0.5, 0.5]]), array([[1, 2, 3]]))
    >>> brute_force_knn(X, None, 1, MetricSpec("euclidean"), exclude_self=True)[1]
    array([[2],
           [2],
           [3],
           [2]])
    """
    X_fit = _as_2d_float64(X_fit)
    Q = _as_2d_float64(_queries(X_fit, X_query, exclude_self))
    n_fit = X_fit.shape[0]
    k = int(k)
    n_cols = k + 1 if exclude_self else k
    if not 1 <= n_cols <= n_fit:
        raise ValueError(f"k={k} is out of range for {n_fit} fitted samples")
    # Identical query rows have identical neighbour lists: compute each once
    # (this keeps duplicate-heavy data cheap).
    Q_unique, inverse = np.unique(Q, axis=0, return_inverse=True)
    D = pairwise_distances(Q_unique, X_fit, metric_spec)
    dist, ind = _smallest(D, n_cols)
    inverse = inverse.reshape(-1)
    dist, ind = dist[inverse], ind[inverse]
    if exclude_self:
        mask = _exclude_self_columns(ind)
        ind = ind[mask].reshape(len(Q), k)
        dist = dist[mask].reshape(len(Q), k)
    return dist, ind


def brute_force_radius(X_fit, X_query, radius, metric_spec, exclude_self=False):
    """Exact radius neighbours (``distance <= radius``) by brute force.

    Parameters
    ----------
    X_fit : array-like of shape (n_samples_fit, n_features)
        The fitted samples.
    X_query : array-like of shape (n_queries, n_features) or None
        The queries; must be None when ``exclude_self`` is True.
    radius : float or array-like of shape (n_queries,)
        Inclusive radius, one for all queries or one per query.
    metric_spec : MetricSpec
        The metric.
    exclude_self : bool, default=False
        Query every fitted sample and leave out the sample itself (by index,
        so its duplicates stay in).

    Returns
    -------
    dist : ndarray of shape (n_queries,), dtype=object
        One float64 array per query, ascending.
    ind : ndarray of shape (n_queries,), dtype=object
        One int64 array per query, sorted by ``(distance, index)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._metric import MetricSpec
    >>> from sklearn_pcct._testing import brute_force_radius
    >>> X = np.array([[0.0], [2.0], [1.0]])
    >>> dist, ind = brute_force_radius(X, np.array([[0.0]]), 1.0, MetricSpec("manhattan"))
    >>> dist[0], ind[0]
    (array([0., 1.]), array([0, 2]))
    >>> brute_force_radius(X, None, 1.0, MetricSpec("manhattan"), exclude_self=True)[1][2]
    array([0, 1])
    """
    X_fit = _as_2d_float64(X_fit)
    Q = _as_2d_float64(_queries(X_fit, X_query, exclude_self))
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(Q),))
    D = pairwise_distances(Q, X_fit, metric_spec)
    out_dist = np.empty(len(Q), dtype=object)
    out_ind = np.empty(len(Q), dtype=object)
    for i in range(len(Q)):
        hit = np.flatnonzero(D[i] <= r[i])
        if exclude_self:
            hit = hit[hit != i]
        d = D[i, hit]
        order = np.lexsort((hit, d))
        out_dist[i] = d[order]
        out_ind[i] = hit[order].astype(np.int64)
    return out_dist, out_ind


def _tied(a, b, rtol, atol):
    return np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))


def _check_recomputed(dist, ind, X_fit, X_query, metric_spec, rtol, atol):
    """Every returned ``(i, ind[i, j])`` pair must be at distance ``dist[i, j]``."""
    X_fit = _as_2d_float64(X_fit)
    Q = X_fit if X_query is None else _as_2d_float64(X_query)
    Q_unique, inverse = np.unique(Q, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if Q_unique.shape[0] * X_fit.shape[0] <= 4_000_000:
        D = pairwise_distances(Q_unique, X_fit, metric_spec)
        got = np.take_along_axis(D[inverse], ind, axis=1)
    else:  # one row at a time
        got = np.vstack(
            [pairwise_distances(Q[i : i + 1], X_fit[ind[i]], metric_spec) for i in range(len(ind))]
        )
    bad = ~_tied(got, dist, rtol, atol)
    if np.any(bad):
        i, j = np.argwhere(bad)[0]
        raise AssertionError(
            f"query {i}: neighbour {ind[i, j]} is reported at distance "
            f"{float(dist[i, j])!r} but lies at {float(got[i, j])!r}"
        )


def assert_knn_equal(
    dist,
    ind,
    dist_ref,
    ind_ref,
    rtol=1e-10,
    atol=0.0,
    *,
    X_fit=None,
    X_query=None,
    metric_spec=None,
):
    """Assert that two k-NN results agree up to ties.

    Distances must agree to ``rtol`` (and ``atol``). Indices must agree
    exactly, except inside a group of consecutive reference distances that
    are tied within the same tolerance: a group that ends before the last
    column must hold the same *set* of indices in both results; the last
    group (even of size one) may be cut off by ``k``, with more samples tied
    with it than columns left, so there the indices must only be distinct
    and, when the data are given, lie at the reported distances (that is,
    be valid neighbours at the tied distance). To check the tie rule itself
    (lowest indices first), compare exactly computed distances with
    ``numpy.testing.assert_array_equal``.

    Parameters
    ----------
    dist, ind : ndarray of shape (n_queries, k)
        The result under test.
    dist_ref, ind_ref : ndarray of shape (n_queries, k)
        The reference result, rows sorted by distance.
    rtol : float, default=1e-10
        Relative tolerance on distances; also decides which reference
        distances count as tied.
    atol : float, default=0.0
        Absolute tolerance on distances, for references whose zero
        distances are not exact (GEMM-based Euclidean distances).
    X_fit : array-like of shape (n_samples_fit, n_features), default=None
        If given with ``metric_spec``, every returned distance is checked
        against a recomputation from the data.
    X_query : array-like of shape (n_queries, n_features), default=None
        The queries; None means the fitted samples (``kneighbors(X=None)``).
    metric_spec : MetricSpec, default=None
        The metric used for the recomputation.

    Raises
    ------
    AssertionError
        With the first offending query.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._testing import assert_knn_equal
    >>> dist = np.array([[0.0, 1.0, 1.0]])
    >>> assert_knn_equal(dist, np.array([[4, 3, 7]]), dist, np.array([[4, 7, 3]]))
    >>> assert_knn_equal(dist, np.array([[3, 4, 7]]), dist, np.array([[4, 7, 3]]))
    Traceback (most recent call last):
    ...
    AssertionError: query 0: indices [3 4 7] differ from [4 7 3] outside tied distances
    """
    dist = np.asarray(dist, dtype=np.float64)
    dist_ref = np.asarray(dist_ref, dtype=np.float64)
    ind = np.asarray(ind)
    ind_ref = np.asarray(ind_ref)
    if dist.shape != dist_ref.shape or ind.shape != ind_ref.shape or dist.shape != ind.shape:
        raise AssertionError(
            f"shapes differ: dist {dist.shape}, ind {ind.shape}, "
            f"dist_ref {dist_ref.shape}, ind_ref {ind_ref.shape}"
        )
    close = _tied(dist, dist_ref, rtol, atol)
    if not np.all(close):
        i, j = np.argwhere(~close)[0]
        raise AssertionError(
            f"query {i}, column {j}: distance {float(dist[i, j])!r} differs from "
            f"{float(dist_ref[i, j])!r} (rtol={rtol}, atol={atol})"
        )
    if ind.size:
        srt = np.sort(ind, axis=1)
        repeated = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        if np.any(repeated):
            i = int(np.argmax(repeated))
            raise AssertionError(f"query {i}: repeated indices {ind[i]}")
        # tie groups: runs of consecutive reference distances tied with the
        # previous one; canonical form = indices sorted inside each group
        new_group = ~_tied(dist_ref[:, 1:], dist_ref[:, :-1], rtol, atol)
        group = np.concatenate(
            [np.zeros((len(ind), 1), dtype=np.int64), np.cumsum(new_group, axis=1)], axis=1
        )
        last = group == group[:, -1:]  # the last group may be cut off by k

        def canonical(a):
            return np.take_along_axis(a, np.lexsort((a, group), axis=-1), axis=1)

        bad = np.any((canonical(ind) != canonical(ind_ref)) & ~last, axis=1)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise AssertionError(
                f"query {i}: indices {ind[i]} differ from {ind_ref[i]} outside tied distances"
            )
    if X_fit is not None and metric_spec is not None:
        _check_recomputed(dist, ind, X_fit, X_query, metric_spec, rtol, atol)


def _flatten(dist, ind):
    """Row ids, indices and distances of a list of per-query arrays."""
    lens = np.array([len(a) for a in ind], dtype=np.int64)
    dlens = np.array([len(a) for a in dist], dtype=np.int64)
    if not np.array_equal(lens, dlens):
        i = int(np.argmax(lens != dlens))
        raise AssertionError(f"query {i}: {lens[i]} indices but {dlens[i]} distances")
    rows = np.repeat(np.arange(len(ind)), lens)
    if lens.sum():
        idx = np.concatenate([np.asarray(a, dtype=np.int64) for a in ind])
        dst = np.concatenate([np.asarray(a, dtype=np.float64) for a in dist])
    else:
        idx = np.empty(0, dtype=np.int64)
        dst = np.empty(0, dtype=np.float64)
    return rows, idx, dst


def assert_radius_equal(
    dist,
    ind,
    dist_ref,
    ind_ref,
    radius,
    rtol=1e-10,
    atol=0.0,
    *,
    sorted_rows=False,
):
    """Assert that two radius-neighbour results agree up to the boundary.

    Each query must return the reference neighbours within ``radius`` with
    matching distances (to ``rtol`` and ``atol``) and nothing else, except
    for reference neighbours whose distance is tied with the radius within
    that tolerance: those may be present or absent. The reference may hold
    neighbours beyond ``radius``; compute it with a slightly larger radius
    so that it lists every point tied with the boundary. Pass ``rtol=0``
    and ``atol=0`` to demand exact boundary inclusion.

    Parameters
    ----------
    dist, ind : ndarray of shape (n_queries,), dtype=object
        The result under test, as returned by ``radius_neighbors``.
    dist_ref, ind_ref : ndarray of shape (n_queries,), dtype=object
        The reference (for example from :func:`brute_force_radius`).
    radius : float or array-like of shape (n_queries,)
        The radius of the query.
    rtol : float, default=1e-10
        Relative tolerance on distances and on the boundary.
    atol : float, default=0.0
        Absolute tolerance on distances and on the boundary.
    sorted_rows : bool, default=False
        Also require every row of the result to be sorted by
        ``(distance, index)``, as ``sort_results=True`` promises.

    Raises
    ------
    AssertionError
        With the first offending query.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._testing import assert_radius_equal
    >>> def objs(*rows):
    ...     out = np.empty(len(rows), dtype=object)
    ...     out[:] = [np.asarray(r) for r in rows]
    ...     return out
    >>> assert_radius_equal(objs([1.0, 0.0]), objs([2, 5]), objs([0.0, 1.0]), objs([5, 2]), 1.0)
    >>> assert_radius_equal(objs([0.0]), objs([5]), objs([0.0, 1.0]), objs([5, 2]), 1.0, rtol=0)
    Traceback (most recent call last):
    ...
    AssertionError: query 0: missing [2], extra [] (radius 1.0)
    """
    n = len(ind_ref)
    if len(ind) != n or len(dist) != n or len(dist_ref) != n:
        raise AssertionError("the results have different numbers of queries")
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    rows_a, a, da = _flatten(dist, ind)
    rows_b, b, db = _flatten(dist_ref, ind_ref)
    width = int(max(a.max(initial=-1), b.max(initial=-1))) + 1
    key_a = rows_a * width + a
    key_b = rows_b * width + b

    def fail(mask, keys, message):
        i = int(keys[np.argmax(mask)] // width)
        raise AssertionError(f"query {i}: {message(i)}")

    order_a = np.argsort(key_a, kind="stable")
    sk = key_a[order_a]
    if np.any(sk[1:] == sk[:-1]):
        fail(np.append(sk[1:] == sk[:-1], False), sk, lambda i: "repeated indices")
    if sorted_rows and a.size > 1:
        same_row = rows_a[1:] == rows_a[:-1]
        ok = (da[1:] > da[:-1]) | ((da[1:] == da[:-1]) & (a[1:] > a[:-1]))
        if np.any(same_row & ~ok):
            fail(same_row & ~ok, key_a, lambda i: "row not sorted by (distance, index)")
    r_b = r[rows_b]
    on_edge = _tied(db, r_b, rtol, atol) & (rtol > 0 or atol > 0)
    inside = db <= r_b
    must = key_b[~on_edge & inside]
    allowed = key_b[on_edge | inside]
    missing = ~np.isin(must, key_a)
    extra = ~np.isin(key_a, allowed)
    if np.any(missing) or np.any(extra):
        first = min(
            [int(must[np.argmax(missing)] // width)] * bool(np.any(missing))
            + [int(key_a[np.argmax(extra)] // width)] * bool(np.any(extra))
        )
        miss = np.sort(must[missing][must[missing] // width == first] % width)
        ext = np.sort(key_a[extra][key_a[extra] // width == first] % width)
        raise AssertionError(
            f"query {first}: missing {miss}, extra {ext} (radius {float(r[first])!r})"
        )
    order_b = np.argsort(key_b, kind="stable")
    pos = order_b[np.searchsorted(key_b[order_b], key_a)]
    close = _tied(da, db[pos], rtol, atol)
    if not np.all(close):
        j = int(np.argmax(~close))
        raise AssertionError(
            f"query {rows_a[j]}: neighbour {a[j]} at distance {float(da[j])!r}, "
            f"expected {float(db[pos[j]])!r}"
        )
