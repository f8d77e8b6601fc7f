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

import math

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
    "CORRELATION",
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
CORRELATION = 6

# Correlation metrics (see sklearn_pcct/_correlation.py): the parameter vector
# ``w`` holds [kind, n_inducing, signal variance, gamma, absolute]; a row is
# [coordinates / length_scale | v (n_inducing) | 1/sqrt(residual variance)]
# (the last two parts only when n_inducing > 0).
RBF = 0
MATERN05 = 1
MATERN15 = 2
MATERN25 = 3

_ROW = types.Array(types.float64, 1, "A", readonly=True)
USER_SIGNATURE = types.float64(_ROW, _ROW)


# Sums of powers outside [_TINY, _HUGE] may have under- or overflowed: points
# 1e-200 apart would otherwise be "duplicates" and points 1e200 apart "inf".
_TINY = 2.0**-960
_HUGE = 2.0**960


@njit(cache=True)
def _scaled_minkowski(A, i, B, j, p, w):
    """``(sum w_t |a_t - b_t|^p)^(1/p)`` computed as ``m * (sum (|.|/m)^p)^(1/p)``.

    ``m`` is the largest coordinate difference, so no term under- or
    overflows; used only on the rare rows where the direct sum did.
    """
    m = 0.0
    for t in range(A.shape[1]):
        x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
        if x > m:
            m = x
    if m == 0.0:
        return 0.0
    s = 0.0
    for t in range(A.shape[1]):
        x = abs(np.float64(A[i, t]) - np.float64(B[j, t])) / m
        term = x * x if p == 2.0 else x**p
        if w.shape[0] > 0:
            term *= w[t]
        s += term
    if p == 2.0:
        return m * np.sqrt(s)
    return m * s ** (1.0 / p)


@njit(cache=True)
def one_minus_correlation(kind, r):
    """``1 - rho(r)`` without cancellation, for the scaled distance ``r``.

    ``rho`` is the RBF (``exp(-r^2/2)``) or Matern (nu = 0.5, 1.5, 2.5)
    correlation of scikit-learn's kernels; near ``r = 0`` the difference is
    summed as a series so tiny distances keep their full relative precision.
    """
    if kind == RBF:
        return -math.expm1(-0.5 * r * r)
    if kind == MATERN05:
        return -math.expm1(-r)
    if kind == MATERN15:
        a = math.sqrt(3.0) * r
        if a >= 0.5:
            return -math.expm1(-a) - a * math.exp(-a)
        # 1 - (1 + a) e^-a = sum_{n>=2} (-1)^n (n - 1) a^n / n!
        s = 0.0
        term = 1.0  # a^n / n!
        for n in range(1, 30):
            term *= a / n
            if n >= 2:
                s += (n - 1) * term if n % 2 == 0 else -(n - 1) * term
        return s
    a = math.sqrt(5.0) * r
    if a >= 0.5:
        return -math.expm1(-a) - (a + a * a / 3.0) * math.exp(-a)
    # 1 - (1 + a + a^2/3) e^-a = -sum_{n>=2} (-1)^n (1 - n + n(n-1)/3) a^n / n!
    s = 0.0
    term = 1.0
    for n in range(1, 30):
        term *= a / n
        if n >= 2:
            c = (1.0 - n + n * (n - 1) / 3.0) * term
            s += -c if n % 2 == 0 else c
    return s


@njit(cache=True)
def _correlation(A, i, B, j, w):
    """Kernel or residual correlation distance ``sqrt(1 - |rho|)`` of two rows."""
    kind = int(w[0])
    m = int(w[1])
    nc = A.shape[1] - m - 1 if m > 0 else A.shape[1]
    s = 0.0
    for t in range(nc):
        x = np.float64(A[i, t]) - np.float64(B[j, t])
        s += x * x
    if s < _TINY:
        big = 0.0
        for t in range(nc):
            x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
            if x > big:
                big = x
        if big == 0.0:  # identical coordinates: the same point
            return 0.0
        s = 0.0
        for t in range(nc):
            x = (np.float64(A[i, t]) - np.float64(B[j, t])) / big
            s += x * x
        r = big * math.sqrt(s)
    else:
        r = math.sqrt(s)
    omr = one_minus_correlation(kind, r)
    if m == 0:
        gamma = w[3]
        val = (1.0 - gamma) + gamma * omr
        return math.sqrt(val) if val > 0.0 else 0.0
    dot = 0.0
    for t in range(nc, nc + m):
        dot += np.float64(A[i, t]) * np.float64(B[j, t])
    rho = (w[2] * (1.0 - omr) - dot) * (np.float64(A[i, nc + m]) * np.float64(B[j, nc + m]))
    if w[4] != 0.0:
        rho = abs(rho)
    val = 1.0 - rho
    if val <= 0.0:
        return 0.0
    if val > 2.0:
        val = 2.0
    return math.sqrt(val)


def _call_user(user, a, b):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_call_user)
def _call_user_impl(user, a, b):
    # User metrics see float64 rows only (the adapter converts their data);
    # for other dtypes the branch is compiled but never taken.
    if a.dtype == types.float64 and b.dtype == types.float64:
        return lambda user, a, b: user(a, b)
    return lambda user, a, b: np.nan


@njit(cache=True, inline="always")
def distance(A, i, B, j, code, p, w, user):
    """Distance between the rows ``A[i]`` and ``B[j]`` (2-D arrays, same width).

    ``code`` selects the metric, ``p`` is the Minkowski power, ``w`` holds the
    Minkowski weights (length 0 when unweighted) and ``user`` is the user
    metric (called only when ``code == USER``). Rows are read in place: no
    array views are created on the built-in paths.
    """
    m = A.shape[1]
    if code == EUCLIDEAN or code == MANHATTAN:
        # four independent partial sums in a fixed order: the same rounding
        # every time, and no serial dependency chain on long rows
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        t = 0
        if code == EUCLIDEAN:
            while t + 4 <= m:
                x0 = np.float64(A[i, t]) - np.float64(B[j, t])
                x1 = np.float64(A[i, t + 1]) - np.float64(B[j, t + 1])
                x2 = np.float64(A[i, t + 2]) - np.float64(B[j, t + 2])
                x3 = np.float64(A[i, t + 3]) - np.float64(B[j, t + 3])
                s0 += x0 * x0
                s1 += x1 * x1
                s2 += x2 * x2
                s3 += x3 * x3
                t += 4
            while t < m:
                x0 = np.float64(A[i, t]) - np.float64(B[j, t])
                s0 += x0 * x0
                t += 1
            s = (s0 + s1) + (s2 + s3)
            if s < _TINY or s > _HUGE:
                return _scaled_minkowski(A, i, B, j, 2.0, w)
            return np.sqrt(s)
        while t + 4 <= m:
            s0 += abs(np.float64(A[i, t]) - np.float64(B[j, t]))
            s1 += abs(np.float64(A[i, t + 1]) - np.float64(B[j, t + 1]))
            s2 += abs(np.float64(A[i, t + 2]) - np.float64(B[j, t + 2]))
            s3 += abs(np.float64(A[i, t + 3]) - np.float64(B[j, t + 3]))
            t += 4
        while t < m:
            s0 += abs(np.float64(A[i, t]) - np.float64(B[j, t]))
            t += 1
        return (s0 + s1) + (s2 + s3)
    if code == CHEBYSHEV:
        s = 0.0
        for t in range(m):
            x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
            if x > s:
                s = x
        return s
    if code == MINKOWSKI:
        s = 0.0
        if w.shape[0] > 0:
            for t in range(m):
                s += w[t] * abs(np.float64(A[i, t]) - np.float64(B[j, t])) ** p
        else:
            for t in range(m):
                s += abs(np.float64(A[i, t]) - np.float64(B[j, t])) ** p
        if s < _TINY or s > _HUGE:
            return _scaled_minkowski(A, i, B, j, p, w)
        return s ** (1.0 / p)
    if code == HAVERSINE:
        a0 = np.float64(A[i, 0])
        b0 = np.float64(B[j, 0])
        d0 = a0 - b0
        d1 = np.float64(A[i, 1]) - np.float64(B[j, 1])
        s0 = np.sin(0.5 * d0)
        s1 = np.sin(0.5 * d1)
        c = np.cos(a0) * np.cos(b0)
        h = s0 * s0 + c * s1 * s1
        if h < _TINY and c >= 0.0:
            # the squares (even the halved differences) may have underflowed;
            # at these angles 2 arcsin(sqrt(h)) is hypot(d0, sqrt(c) d1) to
            # the last bit
            return math.hypot(d0, math.sqrt(c) * d1)
        if h > 1.0:
            h = 1.0
        return 2.0 * np.arcsin(np.sqrt(h))
    if code == CORRELATION:
        return _correlation(A, i, B, j, w)
    return _call_user(user, A[i], B[j])


def _never(a, b):  # pragma: no cover - never called
    return 0.0


no_user_metric = cfunc(USER_SIGNATURE, cache=True)(_never)
"""Placeholder passed as ``user`` for the built-in metrics."""
