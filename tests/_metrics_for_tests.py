"""Module-level user metrics for the pickle tests (importable by reference)."""

import numba
import numpy as np


@numba.njit(cache=False)
def jitted_manhattan(a, b):
    """L1 distance as a Numba-jitted callable metric."""
    s = 0.0
    for i in range(a.shape[0]):
        s += abs(a[i] - b[i])
    return s


def plain_chebyshev(a, b):
    """L-infinity distance as a plain Python function (Numba compiles it)."""
    return np.max(np.abs(a - b))
