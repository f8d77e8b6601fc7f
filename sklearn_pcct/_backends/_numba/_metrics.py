"""Distance functions used by every Numba kernel.

Built-in metrics are selected by an integer code so that the kernels can be
compiled once and cached on disk (``cache=True``). A user-supplied metric
arrives as a first-class function value of the fixed signature
``float64(readonly float64[:], readonly float64[:])`` (see :data:`USER_SIGNATURE`);
its type does not depend on the particular function, so the kernels that take
it stay cacheable too.

All distances are accumulated in float64 in the *difference form*
(``sum (a_k - b_k)^2`` and so on), never with the ``|a|^2 + |b|^2 - 2 a.b``
identity, and without ``fastmath``: build-time and query-time distances of
the same pair are bit-identical, which the pruning rules rely on.
"""

import numpy as np
from numba import cfunc, njit, types
from numba.extending import overload

__all__ = [
    "EUCLIDEAN",
    "MANHATTAN",
    "CHEBYSHEV",
    "MINKOWSKI",
    "HAVERSINE",
    "USER",
    "USER_SIGNATURE",
    "distance",
    "no_user_metric",
]

EUCLIDEAN = 0
MANHATTAN = 1
CHEBYSHEV = 2
MINKOWSKI = 3
HAVERSINE = 4
USER = 5

_ROW = types.Array(types.float64, 1, "A", readonly=True)
USER_SIGNATURE = types.float64(_ROW, _ROW)


def _call_user(user, a, b):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_call_user)
def _call_user_impl(user, a, b):
    # User metrics see float64 rows only (the adapter converts their data);
    # for other dtypes the branch is compiled but never taken.
    if a.dtype == types.float64 and b.dtype == types.float64:
        return lambda user, a, b: user(a, b)
    return lambda user, a, b: np.nan


@njit(cache=True)
def distance(a, b, code, p, w, user):
    """Distance between two rows ``a`` and ``b`` (1-D arrays of equal length).

    ``code`` selects the metric, ``p`` is the Minkowski power, ``w`` holds the
    Minkowski weights (length 0 when unweighted) and ``user`` is the user
    metric (called only when ``code == USER``).
    """
    m = a.shape[0]
    if code == EUCLIDEAN:
        s = 0.0
        for i in range(m):
            t = np.float64(a[i]) - np.float64(b[i])
            s += t * t
        return np.sqrt(s)
    if code == MANHATTAN:
        s = 0.0
        for i in range(m):
            s += abs(np.float64(a[i]) - np.float64(b[i]))
        return s
    if code == CHEBYSHEV:
        s = 0.0
        for i in range(m):
            t = abs(np.float64(a[i]) - np.float64(b[i]))
            if t > s:
                s = t
        return s
    if code == MINKOWSKI:
        s = 0.0
        if w.shape[0] > 0:
            for i in range(m):
                s += w[i] * abs(np.float64(a[i]) - np.float64(b[i])) ** p
        else:
            for i in range(m):
                s += abs(np.float64(a[i]) - np.float64(b[i])) ** p
        return s ** (1.0 / p)
    if code == HAVERSINE:
        s0 = np.sin(0.5 * (np.float64(a[0]) - np.float64(b[0])))
        s1 = np.sin(0.5 * (np.float64(a[1]) - np.float64(b[1])))
        h = s0 * s0 + np.cos(np.float64(a[0])) * np.cos(np.float64(b[0])) * s1 * s1
        if h > 1.0:
            h = 1.0
        return 2.0 * np.arcsin(np.sqrt(h))
    return _call_user(user, a, b)


def _never(a, b):  # pragma: no cover - never called
    return 0.0


no_user_metric = cfunc(USER_SIGNATURE, cache=True)(_never)
"""Placeholder passed as ``user`` for the built-in metrics."""
