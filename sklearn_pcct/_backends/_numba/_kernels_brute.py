"""Numba kernels of the brute-force engine for Vecchia sets (no tree).

Where a metric defeats every tree -- the residual correlation of a
predictive process with many inducing points has most pairs at distance
close to 1, so no bound prunes -- the conditioning sets are cheapest by
brute force over each point's predecessors. The rows are given in rank
order (row ``r`` is the point of rank ``r``), so the predecessors of row
``r`` are rows ``0 .. r - 1``. Every returned distance is the exact
distance of :func:`._metrics.distance` and ties are broken by sample index,
as in the tree kernels.

:func:`ordered_rows` evaluates every predecessor exactly.
:func:`residual_rows` is the residual-correlation path: the dot products
``v_i . v_j`` of a block of rows come from one matrix product (BLAS, in the
caller), each pair then gets an approximate distance and a rigorous bound
on its error, and only the pairs that the bounds cannot rule out are
evaluated exactly (about ``k`` per row).
"""

import math

import numpy as np
from numba import njit, prange

from ._kernels_query import _result_offer, _result_store
from ._metrics import _TINY, MATERN05, MATERN15, MATERN25, RBF, distance

__all__ = [
    "CORRELATION_APPROX_ERR", "correlation_approx", "correlation_form", "ordered_rows",
    "residual_rows",
]

# unit roundoff of float64
_U = 2.0**-53


@njit(cache=True, parallel=True)
def ordered_rows(ra, rb, E, perm, code, p, w, user, out_dist, out_ind):
    """Rows ``ra .. rb - 1`` of the exact predecessor k-NN, in place.

    ``E`` holds the points in rank order and ``perm[r]`` the sample index
    of rank ``r``; ``k`` is the width of ``out_dist`` / ``out_ind`` (rows
    indexed by rank). Rows are sorted by ``(distance, sample index)`` and
    padded with ``inf`` / ``-1``. Parallel over the rows.
    """
    k = out_ind.shape[1]
    for r in prange(ra, rb):
        rd = np.empty(k, dtype=np.float64)
        ri = np.empty(k, dtype=np.int64)
        cnt = 0
        for j in range(r):
            d = distance(E, r, E, j, code, p, w, user)
            cnt = _result_offer(rd, ri, cnt, k, d, perm[j])
        _result_store(rd, ri, cnt, k, out_dist, out_ind, r)


# The correlation of every fast-path kernel is P(z) exp(-z), z = c1 r + c2 r^2,
# P(z) = 1 + p1 z + p2 z^2, in the scaled distance r:
_CORRELATION_FORMS = {
    RBF: (0.0, 0.5, 0.0, 0.0),
    MATERN05: (1.0, 0.0, 0.0, 0.0),
    MATERN15: (math.sqrt(3.0), 0.0, 1.0, 0.0),
    MATERN25: (math.sqrt(5.0), 0.0, 1.0, 1.0 / 3.0),
}
# a bound on |correlation_approx - (1 - one_minus_correlation)| for every
# r >= 0: the approximation is within ~2e-12 relative (see its docstring),
# the kernels' own formulas within a few ulps; measured below 1.1e-13
CORRELATION_APPROX_ERR = 1e-9


def correlation_form(kind):
    """``(c1, c2, p1, p2)`` of the correlation of the kernel ``kind``."""
    return _CORRELATION_FORMS[int(kind)]


@njit(cache=True, inline="always")
def correlation_approx(r, c1, c2, p1, p2):
    """``P(z) exp(-z)`` without a library call, so that loops of it vectorise.

    ``exp(-z) = exp(-z / 1024)^1024``: a degree-7 Taylor polynomial at
    ``w = z / 1024 <= 0.044`` (truncation below 4e-16 relative, Horner
    rounding about 1e-15), then ten squarings (each doubles the relative
    error and adds one rounding): within about 2.2e-12 relative. ``z`` is
    capped at 45, where every correlation of the forms above is below
    1e-16.
    """
    z = c1 * r + c2 * (r * r)
    z = z if z < 45.0 else 45.0
    w = z * (1.0 / 1024.0)
    y = 1.0 - w * (1.0 - w * (0.5 - w * (1.0 / 6.0 - w * (1.0 / 24.0 - w * (
        1.0 / 120.0 - w * (1.0 / 720.0 - w * (1.0 / 5040.0)))))))
    for _ in range(10):
        y = y * y
    return (1.0 + z * (p1 + p2 * z)) * y


@njit(cache=True, parallel=True)
def residual_rows(tiles, E, perm, V, CT, s, vn, form, w, code, p, user, out_dist, out_ind):
    """Rows ``tiles[0] .. tiles[-1] - 1`` of the residual-correlation predecessor k-NN.

    ``E`` holds the embedded points in rank order (``[coordinates | v |
    1 / sqrt(residual variance)]``, see :mod:`sklearn_pcct._correlation`),
    ``V`` their ``v`` parts, ``CT`` their coordinates transposed (one row
    per coordinate), ``s`` their last column and ``vn`` their ``|v|``.
    ``form`` is the kernel's :func:`correlation_form` and ``w`` the
    metric's parameter vector. One thread task per tile of ranks
    ``tiles[c] .. tiles[c + 1] - 1`` (call with the BLAS library on one
    thread: each task runs its own matrix product). Same output as
    :func:`ordered_rows`, in place.
    """
    for c in prange(tiles.shape[0] - 1):
        _residual_tile(tiles[c], tiles[c + 1], E, perm, V, CT, s, vn, form, w, code, p,
                       user, out_dist, out_ind)


@njit(cache=True)
def _residual_tile(ra, rb, E, perm, V, CT, s, vn, form, w, code, p, user, out_dist, out_ind):
    """Ranks ``ra .. rb - 1`` of :func:`residual_rows`.

    The dot products ``G[i, j] = v_(ra + i) . v_j`` of the tile come from
    one matrix product (any summation order). Per row, pass 1 computes for
    every predecessor ``j`` the distance formula's value
    ``a_j = 1 - |rho|`` with ``G`` in place of the kernel's own dot product
    and :func:`correlation_approx` in place of its exponentials, and a
    bound ``e_j`` on the difference (two summation orders of a length-``M``
    dot product differ by at most ``2 M u |v_i| |v_j|``; the
    approximation error; the roundings after them). Pass 1 has no branches
    and no calls, so it runs in SIMD lanes. ``U``, the ``k``-th smallest
    ``a_j + e_j``, bounds the exact ``k``-th value from above, so only the
    ``j`` with ``a_j - e_j <= U`` can be among the ``k`` nearest; pass 2
    evaluates those exactly (about ``k`` per row).
    """
    k = out_ind.shape[1]
    nc = CT.shape[0]
    m_inducing = np.int64(w[1])
    variance = w[2]
    absolute = w[4] != 0.0
    dot_coef = 4.0 * (m_inducing + 2) * _U
    cov_err = variance * CORRELATION_APPROX_ERR
    c1, c2, p1, p2 = form[0], form[1], form[2], form[3]
    G = np.dot(V[ra:rb], V[:rb].T)
    sq = np.empty(rb, dtype=np.float64)
    hb = np.empty(rb, dtype=np.float64)
    rd = np.empty(k, dtype=np.float64)
    ri = np.empty(k, dtype=np.int64)
    for i in range(rb - ra):
        r = ra + i
        for j in range(r):
            sq[j] = 0.0
        for t in range(nc):
            c = CT[t, r]
            for j in range(r):
                x = CT[t, j] - c
                sq[j] += x * x
        si = s[r]
        vi = vn[r]
        for j in range(r):
            q = sq[j]
            corr = correlation_approx(np.sqrt(q), c1, c2, p1, p2)
            ss = si * s[j]
            vv = vi * vn[j]
            g = G[i, j]
            rho = (variance * corr - g) * ss
            if absolute:
                rho = abs(rho)
            a = 1.0 - rho
            a = a if a > 0.0 else 0.0
            a = a if a < 2.0 else 2.0
            err = (dot_coef * vv + 8.0 * _U * (variance + vv + abs(g)) + cov_err) * ss + 8.0 * _U
            # identical coordinates (distance 0) or an underflowing sum of
            # squares: left to the exact distance
            tiny = q < _TINY
            G[i, j] = 0.0 if tiny else a - err
            hb[j] = 2.0 if tiny else a + err
        # U: the k-th smallest upper bound (the result heap, ties by index)
        cnt = 0
        for j in range(r):
            cnt = _result_offer(rd, ri, cnt, k, hb[j], j)
        U = rd[0] if cnt == k else np.inf
        cnt = 0
        for j in range(r):
            if G[i, j] <= U:
                d = distance(E, r, E, j, code, p, w, user)
                cnt = _result_offer(rd, ri, cnt, k, d, perm[j])
        _result_store(rd, ri, cnt, k, out_dist, out_ind, r)
