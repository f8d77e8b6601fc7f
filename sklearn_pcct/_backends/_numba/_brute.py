"""The Numba backend's brute-force engine for Vecchia sets (no index).

Thin wrappers around :mod:`._kernels_brute`: the rows are put in rank
order and processed in blocks of consecutive ranks; for the residual
correlation metric each block's dot products come from one matrix product
(BLAS) and the kernel evaluates exactly only the pairs its error bounds
cannot rule out. :class:`NumbaBackend` dispatches to :func:`ordered_knn`.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from . import _kernels_brute as kb
from . import _metrics as km

__all__ = ["ordered_knn", "is_residual"]

# bytes of one tile's matrix of dot products (rows x predecessors)
_TILE_BYTES = 4 * 2**20


def is_residual(metric_args):
    """A residual correlation metric on the Numba fast path."""
    code, _, w, _ = metric_args
    return code == km.CORRELATION and w[0] >= 0 and w[1] > 0


def _tiles(n):
    """Tiles of consecutive ranks whose matrices of dot products stay small.

    Tile ``[a, b)`` needs ``(b - a) x b`` of them: at most 128 rows, at
    least 8.
    """
    bounds = [0]
    while bounds[-1] < n:
        a = bounds[-1]
        rows = max(8, min(128, _TILE_BYTES // (8 * min(n, a + 128))))
        bounds.append(min(n, a + rows))
    return np.array(bounds, dtype=np.int64)


def ordered_knn(X, order, k, metric_args, progress=None):
    """``(dist, ind)`` by rank: row ``r`` holds the ``k`` nearest of ``X[order[:r]]``.

    ``X`` holds the (embedded) rows by sample index; the result rows are
    indexed by rank, sorted by ``(distance, sample index)`` and padded with
    ``inf`` / ``-1``. ``progress`` is called with the number of ranks done
    after each block. Runs on the caller's Numba thread setting.
    """
    code, p, w, user = metric_args
    n = X.shape[0]
    perm = np.ascontiguousarray(order, dtype=np.int64)
    E = np.ascontiguousarray(X[perm])
    dist = np.empty((n, k))
    ind = np.empty((n, k), dtype=np.int64)
    if is_residual(metric_args):
        nu = int(w[1])
        nc = E.shape[1] - nu - 1
        CT = np.ascontiguousarray(E[:, :nc].T, dtype=np.float64)
        V = np.ascontiguousarray(E[:, nc:nc + nu], dtype=np.float64)
        s = np.ascontiguousarray(E[:, nc + nu], dtype=np.float64)
        vn = np.sqrt(np.einsum("ij,ij->i", V, V)) * (1.0 + 1e-12)
        form = np.array(kb.correlation_form(w[0]))
        tiles = _tiles(n)
        # each thread task runs its own matrix product: BLAS on one thread
        n_steps = 10 if progress is not None else 1
        steps = np.unique(np.linspace(0, tiles.size - 1, n_steps + 1).astype(np.int64))
        with threadpool_limits(limits=1, user_api="blas"):
            for a, b in zip(steps[:-1], steps[1:], strict=True):
                kb.residual_rows(tiles[a:b + 1], E, perm, V, CT, s, vn, form, w, code, p,
                                 user, dist, ind)
                if progress is not None:
                    progress(int(tiles[b]))
        return dist, ind
    if progress is not None:  # pieces of equal work (row r costs r)
        bounds = np.unique(np.sqrt(np.linspace(0.0, 1.0, 51)) * n).astype(np.int64)
        bounds = sorted(set(bounds.tolist()) | {0, n})
    else:
        bounds = [0, n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        kb.ordered_rows(a, b, E, perm, code, p, w, user, dist, ind)
        if progress is not None:
            progress(b)
    return dist, ind
