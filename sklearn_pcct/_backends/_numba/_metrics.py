"""Distance functions used by every Numba kernel.

Built-in metrics are selected by an integer code so that the kernels can be
compiled once and cached on disk (``cache=True``). A user-supplied metric
arrives as a first-class function value of the fixed signature
``float64(readonly float64[:], readonly float64[:])`` (see :data:`USER_SIGNATURE`);
its type does not depend on the particular function, so the kernels that take
it stay cacheable too. The kernels are compiled at most twice: for
``user=None`` (euclidean, manhattan, chebyshev, with a small distance body
that runs without reference counting) and for a function (every metric).

All distances are accumulated in float64 in the *difference form*
(``sum (a_k - b_k)^2`` and so on), never with the ``|a|^2 + |b|^2 - 2 a.b``
identity, and without ``fastmath``: build-time and query-time distances of
the same pair are bit-identical, which the pruning rules rely on.

The small helpers here (and those of the query and kd-tree kernels) are
compiled with ``forceinline=True``: compiled once per signature and inlined
by LLVM, not copied into every call site by Numba's IR inliner
(``inline="always"``), whose copies of the IR made the cold compile of a
cover-tree k-NN search 40 s instead of 14 s at the same speed. The update
kernels keep Numba's inliner: there LLVM's forced inlining of their many
small accessors took minutes to compile.

Flags and constants passed from one kernel to another are wrapped as
``np.bool_(True)`` / ``np.int64(0)``: a bare ``True`` or ``0`` is typed as a
literal, and every distinct literal compiles the callee once more.
"""

import math

import numpy as np
from numba import cfunc, njit, types
from numba.extending import overload

from ._lanes import abs_lanes, dot_lanes, square_lanes

__all__ = [
    "EUCLIDEAN",
    "MANHATTAN",
    "CHEBYSHEV",
    "MINKOWSKI",
    "HAVERSINE",
    "USER",
    "CORRELATION",
    "EUCLIDEAN_TAG",
    "USER_SIGNATURE",
    "distance",
    "finish_distance",
    "metric_code",
    "metric_tag",
    "no_user_metric",
    "raw_distance",
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


@njit(cache=True, forceinline=True)
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
        if a > 700.0:  # the correlation is below 1e-300 (and a may be inf)
            return 1.0
        if a >= 0.5:
            return -math.expm1(-a) - a * math.exp(-a)
        # 1 - (1 + a) e^-a = sum_{n>=2} (-1)^n (n - 1) a^n / n!
        s = 0.0
        term = 1.0  # a^n / n!
        for n in range(1, 30):
            term *= np.divide(a, n)  # no ZeroDivisionError path (see distance)
            if n >= 2:
                s += (n - 1) * term if n % 2 == 0 else -(n - 1) * term
        return s
    a = math.sqrt(5.0) * r
    if a > 700.0:
        return 1.0
    if a >= 0.5:
        return -math.expm1(-a) - (a + a * a / 3.0) * math.exp(-a)
    # 1 - (1 + a + a^2/3) e^-a = -sum_{n>=2} (-1)^n (1 - n + n(n-1)/3) a^n / n!
    s = 0.0
    term = 1.0
    for n in range(1, 30):
        term *= np.divide(a, n)
        if n >= 2:
            c = (1.0 - n + n * (n - 1) / 3.0) * term
            s += -c if n % 2 == 0 else c
    return s


def _call_user(user, a, b):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_call_user)
def _call_user_impl(user, a, b):
    # User metrics see float64 rows only (the adapter converts their data);
    # for other dtypes the branch is compiled but never taken.
    if a.dtype == types.float64 and b.dtype == types.float64:
        return lambda user, a, b: user(a, b)
    return lambda user, a, b: np.nan


@njit(cache=True, forceinline=True)
def _dot(A, i, B, j, a, b):
    """``A[i, a:b] . B[j, a:b]`` in float64, in four interleaved partial sums.

    A fixed summation order (not ``fastmath``), so every kernel gets the
    same bits; the four independent chains (one 4-lane vector on C rows, see
    :mod:`._lanes`) run much faster than one (the residual correlation's dot
    product dominates its distance).
    """
    s0, s1, s2, s3 = dot_lanes(A, i, B, j, a, b)
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, forceinline=True)
def raw_distance(A, i, B, j, code):
    """Euclidean, manhattan or chebyshev distance before its last step.

    The sum of squared differences (euclidean: the distance is its square
    root, see :func:`finish_distance`), the sum of absolute differences
    (manhattan) or their maximum (chebyshev), summed exactly as
    :func:`distance` sums them: the kd-tree kernels evaluate a whole leaf
    bucket this way, in a loop without branches, and finish the few that
    matter.
    """
    m = A.shape[1]
    if code == CHEBYSHEV:
        s = 0.0
        for t in range(m):
            x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
            if x > s:
                s = x
    else:
        # four partial sums in a fixed order (see _lanes): the same rounding
        # every time, no serial dependency chain on long rows, and one 4-lane
        # vector on C-contiguous float rows
        if code == EUCLIDEAN:
            s0, s1, s2, s3 = square_lanes(A, i, B, j, 0, m)
        else:
            s0, s1, s2, s3 = abs_lanes(A, i, B, j, 0, m)
        s = (s0 + s1) + (s2 + s3)
    return s


@njit(cache=True, forceinline=True)
def finish_distance(A, i, B, j, code, s):
    """The distance of rows ``A[i]`` and ``B[j]`` from their :func:`raw_distance` ``s``.

    Equal to :func:`distance` bit for bit (euclidean, manhattan,
    chebyshev).
    """
    d = s
    if code == EUCLIDEAN:
        if s >= _TINY and s <= _HUGE:
            d = np.sqrt(s)
        else:
            d = _euclidean_rescaled(A, i, B, j)
    return d


@njit(cache=True, forceinline=True)
def _distance_fast(A, i, B, j, code, p, w, user):
    """Euclidean, manhattan and chebyshev: the small body (see :func:`distance`)."""
    return finish_distance(A, i, B, j, code, raw_distance(A, i, B, j, code))


@njit(cache=True, forceinline=True)
def _euclidean_rescaled(A, i, B, j):
    """The euclidean distance where the plain sum of squares over- or underflowed."""
    m = A.shape[1]
    # Euclidean only from here: the sum of squares over- or underflowed
    # (points 1e-200 apart would otherwise be "duplicates", points 1e200
    # apart "inf"). Recompute it as 2^e (sum (|.| 2^-e)^2)^(1/2) with 2^e
    # above the largest difference: no term under- or overflows, and scaling
    # by a power of two is exact.
    big = 0.0
    for t in range(m):
        x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
        if x > big:
            big = x
    # (no early return for big == 0: e is then 0 and the sum 0; an extra exit
    # here brings the reference counting back)
    e = math.frexp(big)[1]
    s = 0.0
    for t in range(m):
        x = math.ldexp(np.float64(A[i, t]) - np.float64(B[j, t]), -e)
        s += x * x
    return math.ldexp(np.sqrt(s), e)


@njit(cache=True)
def _distance_full(A, i, B, j, code, p, w, user):
    """Every metric (kernels compiled for a user-metric argument).

    Called, not inlined: inlining this large body at every call site of
    every kernel would multiply their compile time.
    """
    if code <= CHEBYSHEV:
        return _distance_fast(A, i, B, j, code, p, w, user)
    m = A.shape[1]
    if code == MINKOWSKI:
        s = 0.0
        if w.shape[0] > 0:
            for t in range(m):
                s += w[t] * np.power(abs(np.float64(A[i, t]) - np.float64(B[j, t])), p)
        else:
            for t in range(m):
                s += np.power(abs(np.float64(A[i, t]) - np.float64(B[j, t])), p)
        if s >= _TINY and s <= _HUGE:
            return np.power(s, np.reciprocal(p))
    elif code == HAVERSINE:
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
            # the last bit (computed with an exact power-of-two scaling:
            # math.hypot would add a raise path)
            y0 = abs(d0)
            y1 = np.sqrt(c) * abs(d1)
            big = y0 if y0 > y1 else y1
            if big == 0.0:
                return 0.0
            e = math.frexp(big)[1]
            y0 = math.ldexp(y0, -e)
            y1 = math.ldexp(y1, -e)
            return math.ldexp(np.sqrt(y0 * y0 + y1 * y1), e)
        if h > 1.0:
            h = 1.0
        return 2.0 * math.asin(np.sqrt(h))
    elif code == CORRELATION:
        # kernel or residual correlation distance sqrt(1 - |rho|); see the
        # layout of ``w`` and of the rows at RBF above
        kind = np.int64(w[0])  # int() would add a raise path (see above)
        nu = np.int64(w[1])
        nc = m - nu - 1 if nu > 0 else m
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
            e = math.frexp(big)[1]  # scale by 2^-e: exact, and no division
            s = 0.0
            for t in range(nc):
                x = math.ldexp(np.float64(A[i, t]) - np.float64(B[j, t]), -e)
                s += x * x
            r = math.ldexp(np.sqrt(s), e)
        else:
            r = np.sqrt(s)
        omr = one_minus_correlation(kind, r)
        if nu == 0:
            val = (1.0 - w[3]) + w[3] * omr
            return np.sqrt(val) if val > 0.0 else 0.0
        dot = _dot(A, i, B, j, nc, nc + nu)
        rho = (w[2] * (1.0 - omr) - dot) * (np.float64(A[i, nc + nu]) * np.float64(B[j, nc + nu]))
        if w[4] != 0.0:
            rho = abs(rho)
        val = 1.0 - rho
        if val <= 0.0:
            return 0.0
        if val > 2.0:
            val = 2.0
        return np.sqrt(val)
    else:
        return _call_user(user, A[i], B[j])
    # Minkowski only from here: rescaled as in the Euclidean case of
    # _distance_fast
    big = 0.0
    for t in range(m):
        x = abs(np.float64(A[i, t]) - np.float64(B[j, t]))
        if x > big:
            big = x
    if big == 0.0:
        return 0.0
    e = math.frexp(big)[1]
    s = 0.0
    for t in range(m):
        term = np.power(math.ldexp(abs(np.float64(A[i, t]) - np.float64(B[j, t])), -e), p)
        if w.shape[0] > 0:
            term *= w[t]
        s += term
    return math.ldexp(np.power(s, np.reciprocal(p)), e)


def metric_tag(code):
    """The metric code as a type: a tuple of ``code`` zeros (a tuple stays as it is).

    A kernel that takes the metric as a tag reads its code with
    :func:`metric_code` as a compile-time constant: the metric's branches
    inside the distance and box loops fold away (about 2x on the kd-tree
    searches, 1.5x on a cover-tree k-NN search in 8-D), and each metric is
    compiled on its own, only when it is used.
    """
    if isinstance(code, tuple):
        return (0,) * len(code)
    return (0,) * int(code)


def metric_code(code):  # pragma: no cover - replaced by the overload
    """The metric code of ``code``: an integer, or a :func:`metric_tag`."""
    return len(code) if isinstance(code, tuple) else code


@overload(metric_code)
def _metric_code_impl(code):
    if isinstance(code, types.BaseTuple):
        n = len(code)
        return lambda code: n
    return lambda code: code


# The euclidean metric as a type: every kernel gets it so (the other
# metrics of the fast path share one compiled version, see _kernel_args.metric_args).
EUCLIDEAN_TAG = metric_tag(EUCLIDEAN)


@njit(cache=True, forceinline=True)
def distance(A, i, B, j, code, p, w, user):
    """Distance between the rows ``A[i]`` and ``B[j]`` (2-D arrays, same width).

    ``code`` selects the metric (an integer, or a :func:`metric_tag`), ``p`` is the Minkowski power, ``w`` holds the
    Minkowski weights (length 0 when unweighted) or the correlation
    parameters, and ``user`` is the user metric (called only when
    ``code == USER``). Rows are read in place: no array views are created on
    the built-in paths.

    Two bodies, chosen when a kernel is compiled by the *type* of ``user``:
    with ``user=None`` only euclidean, manhattan and chebyshev (the kernels'
    fast path); with a compiled function (e.g. :data:`no_user_metric`) every
    metric. The body is inlined into the kernels' innermost loops, so the fast
    one is kept small and free of calls, divisions by variables and other operations
    that may raise: otherwise Numba keeps a reference-count increment and
    decrement of ``A``, ``B`` and ``w`` on every evaluation (its pruning pass
    gives up on large or raising regions), which costs more than an 8-D
    distance itself.
    """
    if user is None:  # pruned at compile time
        return _distance_fast(A, i, B, j, metric_code(code), p, w, user)
    return _distance_full(A, i, B, j, metric_code(code), p, w, user)


def _never(a, b):  # pragma: no cover - never called
    return 0.0


no_user_metric = cfunc(USER_SIGNATURE, cache=True)(_never)
"""Placeholder passed as ``user`` for the built-in metrics."""
