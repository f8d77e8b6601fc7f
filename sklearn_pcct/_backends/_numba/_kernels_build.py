"""Numba helpers shared by the tree-building kernels.

The insertion and deletion kernels themselves work on the dynamic,
copy-on-write form of the tree (:mod:`._kernels_update`).
"""

import math

from numba import njit

__all__ = ["RADIUS_SLACK", "ceil_log2"]

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
