"""Numba helpers shared by the tree-building kernels.

The insertion and deletion kernels themselves work on the dynamic,
copy-on-write form of the tree (:mod:`._kernels_update`).
"""

import math

import numpy as np
from numba import njit

__all__ = ["RADIUS_SLACK", "ceil_log2", "pow2"]

# Relative slack added to stored radii so that rounding in the distances can
# never make a radius too small (ALGORITHMS.md section 13).
RADIUS_SLACK = 2.0**-40


@njit(cache=True)
def ceil_log2(d):
    """Smallest integer ``e`` with ``d <= 2**e`` for ``d > 0`` (exact, via frexp)."""
    m, e = math.frexp(d)
    if m == 0.5:
        return e - 1
    return e


_POW2_LOW = -1100  # 2^l is 0.0 below -1074 and inf above 1023
_POW2 = np.array([math.ldexp(1.0, e) if e < 1024 else math.inf for e in range(_POW2_LOW, 1025)])


@njit(cache=True, inline="always")
def pow2(e):
    """``2.0 ** e`` for an integer level ``e``: ``math.ldexp(1.0, e)`` from a table.

    ``math.ldexp`` is a library call that costs several distance
    evaluations' worth of time in the search loops; the table gives the
    same (exact) values.
    """
    i = min(max(e - _POW2_LOW, 0), _POW2.shape[0] - 1)
    return _POW2[i]
