"""The live k-NN graph of the fitted points, kept current across updates.

The graph is held densely by sample id: ``ind[x]`` / ``dist[x]`` are the
``k`` nearest live samples of the live sample ``x`` (itself included, the
rows of ``kneighbors(X_live)``), sorted by ``(distance, id)``; rows of
removed ids hold ``-1`` / ``inf``. After an update only the rows that can
change are recomputed (ALGORITHMS.md section 8, issue 3):

* insert: rows of the new points (k-NN queries), and rows whose list a new
  point enters -- found by a reverse search for ``d(x, y) < tau(x)``, the
  current k-th distance, and merged without any new query;
* remove: rows that lost a neighbour are queried again; others keep their
  lists (their k nearest are all still there).

No sklearn here; the estimators turn the arrays into CSR matrices.
"""

from dataclasses import dataclass

import numpy as np

from . import _core

__all__ = ["KNNGraph", "knn_graph", "graph_after_insert", "graph_after_remove"]


@dataclass(frozen=True, eq=False)
class KNNGraph:
    """Dense k-NN lists by sample id (see the module docstring)."""

    ind: np.ndarray
    dist: np.ndarray

    @property
    def k(self):
        """Neighbours per row."""
        return self.ind.shape[1]


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


def knn_graph(state, k, backend, n_threads=1):
    """The graph of the live samples of ``state`` from scratch.

    Parameters
    ----------
    state : FittedState
    k : int
        Neighbours per row (at most the number of live samples).
    backend : Backend
    n_threads : int, default=1

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
    n_ids = state.n_samples_fit
    ind = np.full((n_ids, k), -1, dtype=np.int64)
    dist = np.full((n_ids, k), np.inf)
    d, i = _core.knn_fitted(state.tree, k, backend, n_threads)
    ind[state.live_ids] = i
    dist[state.live_ids] = d
    return KNNGraph(*_readonly(ind, dist))


def _grow(graph, n_ids):
    ind = np.full((n_ids, graph.k), -1, dtype=np.int64)
    dist = np.full((n_ids, graph.k), np.inf)
    ind[: graph.ind.shape[0]] = graph.ind
    dist[: graph.dist.shape[0]] = graph.dist
    return ind, dist


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
    k = graph.k
    ind, dist = _grow(graph, new_state.n_samples_fit)
    tree = new_state.tree
    # rows of the new samples
    d_new, i_new = _core.knn(tree, X_new, k, backend, n_threads)
    # old rows that a new sample enters: d(x, y) < tau(x)
    tau = np.full(new_state.n_samples_fit, -np.inf)
    old = new_state.live_ids[new_state.live_ids < new_ids[0]]
    tau[old] = dist[old, k - 1]
    q, x, d = backend.reverse_knn(tree, X_new, tau, n_threads)
    if x.size:
        rows = np.unique(x)
        # candidates: the old lists of these rows plus the entering samples
        cand_row = np.concatenate([np.repeat(rows, k), x])
        cand_ind = np.concatenate([ind[rows].ravel(), new_ids[q]])
        cand_dist = np.concatenate([dist[rows].ravel(), d])
        order = np.lexsort((cand_ind, cand_dist, cand_row))
        cand_row, cand_ind, cand_dist = cand_row[order], cand_ind[order], cand_dist[order]
        start = np.searchsorted(cand_row, rows)
        take = (start[:, None] + np.arange(k)).ravel()
        ind[rows] = cand_ind[take].reshape(-1, k)
        dist[rows] = cand_dist[take].reshape(-1, k)
    ind[new_ids] = i_new
    dist[new_ids] = d_new
    return KNNGraph(*_readonly(ind, dist))


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
    hit = np.flatnonzero(np.any(gone[np.maximum(ind, 0)] & (ind >= 0), axis=1))
    if hit.size:
        d, i = _core.knn(new_state.tree, X_of(hit), graph.k, backend, n_threads)
        ind[hit] = i
        dist[hit] = d
    return KNNGraph(*_readonly(ind, dist))
