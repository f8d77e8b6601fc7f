"""The contract every backend fulfils (numpy and typing only)."""

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backend", "Capabilities", "BackendUnavailableError"]


class BackendUnavailableError(ImportError):
    """The requested backend's library is not installed or has no device."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    Parameters
    ----------
    dtypes : tuple of str
        Floating dtypes the backend keeps without conversion.
    device : str
        ``"cpu"`` or ``"gpu"``.
    metrics : tuple of str
        Canonical metric names it supports (``"callable"`` for user metrics).
    """

    dtypes: tuple
    device: str
    metrics: tuple


class Backend(Protocol):
    """Operations over :class:`~sklearn_pcct._tree.TreeVersion` objects.

    The query operations also take the kd-tree index of the estimators
    (:class:`~sklearn_pcct._boxtree.BoxForest`) where the backend supports
    box metrics; its answers are sample ids.

    ``n_threads`` is always an explicit positive integer; backends never read
    configuration of their own. ``progress``, where accepted, is ``None`` or
    a callable that the backend calls with the number of units (rows,
    queries, selections) done so far, between kernel calls.
    """

    name: str
    capabilities: Capabilities

    def build(self, X, metric, n_threads, progress=None):
        """Build a tree over the rows of ``X`` (sample ids ``0..n-1``)."""

    def build_dynamic(self, X, metric, n_threads, progress=None):
        """The updatable :class:`~sklearn_pcct._dynamic.DynamicTree` of ``X``."""

    def insert(self, tree, X, n_threads, progress=None):
        """A new DynamicTree version with the rows of ``X`` added (next ids)."""

    def remove(self, tree, ids, n_threads):
        """A new DynamicTree version without the live samples ``ids``."""

    def freeze(self, tree):
        """The read-optimised TreeVersion of a DynamicTree (ids as sample indices)."""

    def reverse_knn(self, tree, Q, tau, n_threads):
        """``(q, x, dist)`` for every pair with ``d(Q[q], x) < tau[x]``."""

    def knn_and_reverse(self, tree, Q, k, tau, n_threads):
        """``knn(tree, Q, k) + reverse_knn(tree, Q, tau)`` (one search where it can)."""

    def merge_rows(self, ind, dist, rows, cand_ind, cand_dist, n_threads):
        """Merge candidates into the sorted neighbour rows ``rows``, in place."""

    def knn(self, tree, Q, k, n_threads, progress=None):
        """``(dist, ind)`` of shape ``(n_queries, k)``, sorted by (dist, ind)."""

    def knn_fitted(self, tree, k, n_threads, progress=None):
        """Same as :meth:`knn` with the fitted samples as queries (self included)."""

    def radius(self, tree, Q, r, n_threads):
        """``(indptr, ind, dist)`` CSR layout of the neighbours within ``r[i]``."""

    def radius_fitted(self, tree, r, n_threads):
        """Same as :meth:`radius` with the fitted samples as queries."""

    def supports_box(self, metric):
        """Whether :meth:`build_box` indexes data in ``metric``."""

    def build_box(self, X, metric):
        """A kd-tree (:class:`~sklearn_pcct._boxtree.BoxTree`) of the rows of ``X``.

        :meth:`knn`, :meth:`maximin` and :meth:`ordered_knn` accept it in
        place of a cover tree, with the same answers.
        """

    def maximin(self, tree, X, first, progress=None):
        """``(order, lengthscales)``: exact maximin ordering of the samples ``X``."""

    def maximin_conditioning(self, tree, X, first, k, n_threads):
        """``(order, lengthscales, dist, ind)``: :meth:`maximin`, then its Vecchia sets.

        Row ``r`` of ``dist`` / ``ind``: the ``k`` nearest samples of
        ``order[:r]`` to ``order[r]``, as :meth:`ordered_knn` gives them.
        """

    def ordered_knn(self, tree, Q, qrank, rank, k, n_threads, progress=None, out_rows=None):
        """:meth:`knn` restricted to samples ``s`` with ``rank[s] < qrank[i]``.

        Query ``i``'s answer goes to row ``out_rows[i]`` of the results (a
        permutation of the queries; default ``i``).
        """

    def ordered_knn_brute(self, X, order, k, metric, n_threads, progress=None):
        """``(dist, ind)`` by rank: the ``k`` nearest of ``X[order[:r]]`` to ``X[order[r]]``.

        Brute force over the predecessors (no index); the same answers as
        :meth:`ordered_knn` on a tree.
        """
