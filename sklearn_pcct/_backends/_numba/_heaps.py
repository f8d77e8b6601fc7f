"""Array-backed binary min-heap of ``(key, node, distance)`` triples.

Shared by the insertion search and the k-NN search: three parallel arrays
``(h_key, h_node, h_dist)`` hold the heap, the caller keeps its size and
grows the arrays with :func:`grow` when they are full.
"""

import numpy as np
from numba import njit

__all__ = ["grow", "heap_push", "heap_pop"]


@njit(cache=True)
def grow(a, size):
    """A copy of ``a`` with room for at least ``size`` entries (doubling)."""
    out = np.empty(max(2 * a.shape[0], size), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, forceinline=True)
def heap_push(h_key, h_node, h_dist, size, key, node, dist):
    """Push onto a heap of ``size`` entries (room assumed)."""
    j = size
    while j > 0:
        par = (j - 1) >> 1
        if h_key[par] > key:
            h_key[j] = h_key[par]
            h_node[j] = h_node[par]
            h_dist[j] = h_dist[par]
            j = par
        else:
            break
    h_key[j] = key
    h_node[j] = node
    h_dist[j] = dist


@njit(cache=True, forceinline=True)
def heap_pop(h_key, h_node, h_dist, size):
    """Remove the minimum of a heap of ``size`` entries (read it first)."""
    # one exit only: an early return in an inlined function can make Numba
    # keep reference counting of the arrays on every call (see
    # _metrics.distance)
    size -= 1
    if size > 0:
        xk = h_key[size]
        xn = h_node[size]
        xd = h_dist[size]
        j = 0
        while True:
            left = 2 * j + 1
            if left >= size:
                break
            sm = left
            if left + 1 < size and h_key[left + 1] < h_key[left]:
                sm = left + 1
            if h_key[sm] < xk:
                h_key[j] = h_key[sm]
                h_node[j] = h_node[sm]
                h_dist[j] = h_dist[sm]
                j = sm
            else:
                break
        h_key[j] = xk
        h_node[j] = xn
        h_dist[j] = xd
