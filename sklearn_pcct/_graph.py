"""The live k-NN graph of the fitted points, kept current across updates.

The graph is held densely by sample id: ``ind[x]`` / ``dist[x]`` hold the
``c(x)`` nearest live samples of the live sample ``x`` (itself included, as
in ``kneighbors(X_live)``), sorted by ``(distance, id)``, for some
``k <= c(x) <= k + reserve``, padded with ``-1`` / ``inf`` (rows of removed
ids are all padding). The graph is the first ``k`` columns. After an update
only the rows that can change are touched (ALGORITHMS.md section 8):

* insert: rows of the new points (k-NN queries), and rows whose list a new
  point enters -- found by a reverse search for ``d(x, y) < tau(x)``, the
  last distance held for ``x`` -- merged without any new query (a held
  list is an exact prefix of the neighbour order, so the merge is exact);
* remove: removed samples leave the lists; only a row left with fewer than
  ``k`` entries is queried again (the reserve makes this rare).

No sklearn here; the estimators turn the arrays into CSR matrices.
"""

from dataclasses import dataclass

import numpy as np

from . import _core

__all__ = ["KNNGraph", "knn_graph", "graph_after_insert", "graph_after_remove"]


@dataclass(frozen=True, eq=False)
class KNNGraph:
    """Dense neighbour lists by sample id (see the module docstring)."""

    ind: np.ndarray
    dist: np.ndarray
    k: int

    @property
    def capacity(self):
        """Entries held per row at most (``k`` plus the reserve)."""
        return self.ind.shape[1]


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _padded(n_rows, capacity):
    return (np.full((n_rows, capacity), -1, dtype=np.int64),
            np.full((n_rows, capacity), np.inf))


def knn_graph(state, k, backend, n_threads=1, reserve=0, progress=None):
    """The graph of the live samples of ``state`` from scratch.

    Parameters
    ----------
    state : FittedState
    k : int
        Neighbours per row (at most the number of live samples).
    backend : Backend
    n_threads : int, default=1
    reserve : int, default=0
        Extra neighbours held per row, so that removals rarely need a query.
    progress : callable, default=None
        Called with the amount searched so far, out of
        ``state.fitted_search_size``.

    Returns
    -------
    graph : KNNGraph

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._core import build_dynamic
    >>> from sklearn_pcct._graph import knn_graph
    >>> from sklearn_pcct._metric import MetricSpec
    >>> from sklearn_pcct._state import FittedState
    >>> be = get_backend("numba")
    >>> state = FittedState(build_dynamic(np.array([[0.0], [1.0], [3.0]]),
    ...                                   MetricSpec("euclidean"), be), "numba")
    >>> knn_graph(state, 2, be).ind
    array([[0, 1],
           [1, 0],
           [2, 1]])
    """
    ind, dist = _padded(state.n_samples_fit, k + reserve)
    held = min(k + reserve, state.n_live)
    d, i = state.knn_fitted(held, backend, n_threads, progress)
    ind[state.live_ids, :held] = i
    dist[state.live_ids, :held] = d
    return KNNGraph(*_readonly(ind, dist), k)


def graph_after_insert(graph, new_state, new_ids, X_new, backend, n_threads=1):
    """The graph after inserting the samples ``new_ids`` (rows ``X_new``).

    Parameters
    ----------
    graph : KNNGraph
        The graph of the state before the insertion.
    new_state : FittedState
        The state after it.
    new_ids : ndarray of shape (n_new,)
    X_new : ndarray of shape (n_new, n_features)
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    graph : KNNGraph
    """
    cap = graph.capacity
    n_old = graph.ind.shape[0]
    ind = np.empty((new_state.n_samples_fit, cap), dtype=np.int64)
    dist = np.empty((new_state.n_samples_fit, cap))
    ind[:n_old] = graph.ind
    dist[:n_old] = graph.dist
    ind[n_old:] = -1
    dist[n_old:] = np.inf
    # old rows that a new sample enters: d(x, y) < tau(x), the last held distance
    tau = np.full(new_state.n_samples_fit, -np.inf)
    old = new_state.live_ids[new_state.live_ids < new_ids[0]]
    tau[old] = dist[old, cap - 1]
    short = old[ind[old, cap - 1] < 0]  # rows holding fewer than cap entries
    if short.size:
        count = (ind[short] >= 0).sum(axis=1)
        tau[short] = dist[short, count - 1]
    # ... found with the rows of the new samples
    held = min(cap, new_state.n_live)
    d_new, i_new, q, x, d = backend.knn_and_reverse(
        new_state.query_index, X_new, held, tau, n_threads
    )
    if x.size:
        backend.merge_rows(ind, dist, x, new_ids[q], d, n_threads)
    ind[new_ids, :held] = i_new
    dist[new_ids, :held] = d_new
    return KNNGraph(*_readonly(ind, dist), graph.k)


def graph_after_remove(graph, new_state, removed, X_of, backend, n_threads=1):
    """The graph after removing the samples ``removed``.

    Parameters
    ----------
    graph : KNNGraph
        The graph of the state before the removal.
    new_state : FittedState
        The state after it (at least ``graph.k`` live samples).
    removed : ndarray of shape (n_removed,)
    X_of : callable
        ``X_of(ids)`` returns the coordinates of the samples ``ids``.
    backend : Backend
    n_threads : int, default=1

    Returns
    -------
    graph : KNNGraph
    """
    ind, dist = graph.ind.copy(), graph.dist.copy()
    gone = np.zeros(ind.shape[0], dtype=bool)
    gone[removed] = True
    ind[removed] = -1
    dist[removed] = np.inf
    lost = gone[np.maximum(ind, 0)] & (ind >= 0)
    hit = np.flatnonzero(np.any(lost, axis=1))
    if hit.size:
        # drop the removed entries, keeping the order of the others
        keep = ~lost[hit] & (ind[hit] >= 0)
        order = np.argsort(~keep, axis=1, kind="stable")
        sub_ind = np.take_along_axis(ind[hit], order, axis=1)
        sub_dist = np.take_along_axis(dist[hit], order, axis=1)
        count = keep.sum(axis=1)
        pad = np.arange(graph.capacity)[None, :] >= count[:, None]
        sub_ind[pad] = -1
        sub_dist[pad] = np.inf
        ind[hit] = sub_ind
        dist[hit] = sub_dist
        short = hit[count < graph.k]
        if short.size:
            held = min(graph.capacity, new_state.n_live)
            d, i = _core.knn(new_state.query_index, X_of(short), held, backend, n_threads)
            ind[short] = -1
            dist[short] = np.inf
            ind[short, :held] = i
            dist[short, :held] = d
    return KNNGraph(*_readonly(ind, dist), graph.k)
