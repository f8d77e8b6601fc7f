"""Numba's thread count around each parallel call, and how work is cut for it."""

import ctypes
import functools
import threading
from contextlib import contextmanager

import numba
import numpy as np

__all__ = ["chunks", "pieces", "threads", "threads_set"]


@functools.lru_cache(maxsize=1)
def _libgomp():
    """GNU OpenMP's runtime if this process can load it, else None."""
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:  # pragma: no cover - not a GNU/Linux OpenMP platform
        return None


# Numba's "workqueue" threading layer is not thread-safe: two Python threads
# entering parallel kernels at once abort the process. Calls are serialised
# under it (and while no layer has started yet, since the first call picks it).
_WORKQUEUE_LOCK = threading.RLock()


def _needs_serialising():
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet
        return True


@contextmanager
def threads(n_threads):
    """Run Numba's parallel kernels on ``n_threads`` threads, then restore.

    Also restores OpenMP's ``max-active-levels``: Numba's OpenMP threading
    layer enables nested parallelism for the whole process when it starts,
    which makes other OpenMP libraries in the process (GPBoost, for one)
    oversubscribe the cores by orders of magnitude. Under the workqueue
    layer, which cannot run two parallel regions at once, calls from
    different Python threads take turns.
    """
    if _needs_serialising():
        with _WORKQUEUE_LOCK, threads_set(n_threads) as n:
            yield n
    else:
        with threads_set(n_threads) as n:
            yield n


@contextmanager
def threads_set(n_threads):
    # read before any Numba threading call: the first one starts the pool
    gomp = _libgomp()
    old_levels = gomp.omp_get_max_active_levels() if gomp is not None else None
    n = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    old_threads = numba.get_num_threads()
    old_chunk = numba.get_parallel_chunksize()
    numba.set_num_threads(n)
    numba.set_parallel_chunksize(1)
    try:
        yield n
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(old_threads)
        if gomp is not None and gomp.omp_get_max_active_levels() != old_levels:
            gomp.omp_set_max_active_levels(old_levels)


def pieces(start, stop, n_pieces=50):
    """About ``n_pieces`` consecutive ranges covering ``[start, stop)`` (progress steps)."""
    bounds = np.unique(np.linspace(start, stop, n_pieces + 1).astype(np.int64))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def chunks(n, n_threads):
    """Block boundaries for ``n`` queries: many small blocks balance the load."""
    n_blocks = max(1, min(n, n_threads * 64, max(1, n // 16)))
    return np.linspace(0, n, n_blocks + 1).astype(np.int64)
