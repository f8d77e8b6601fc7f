"""Batch updates of a fitted estimator (partial_fit / remove) and snapshots.

Id policy
---------
Ids are stable: the ``i``-th row inserted since the last ``fit`` (by ``fit``
itself or by ``partial_fit``) has id ``i``; removed ids are never reused.
Queries return ids, ``n_samples_fit_`` is the number of ids issued so far
(the column count of every graph) and ``live_ids_`` lists the ids not
removed. With ``X=None`` the rows of ``kneighbors`` / ``radius_neighbors``
are the live ids in ascending order, and the graphs have one (possibly
empty) row per issued id.

Every update builds a new immutable tree version by path copying and swaps
it in with one assignment: queries running in other threads see the old or
the new version, never a mixture, and :meth:`UpdatesMixin.snapshot` keeps
any version queryable for as long as it is referenced.
"""

import numpy as np
from sklearn.utils import check_array

from ._backends import resolve_backend
from ._base import KNeighborsMixin, RadiusNeighborsMixin, _progress
from ._compat import check_is_fitted, validate_data
from ._metric import embed
from ._state import UPDATE_LOCK

__all__ = ["UpdatesMixin", "PCCTSnapshot"]


_DTYPES = [np.float64, np.float32]


def _validate_ids(ids, state):
    ids = np.asarray(ids)
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D array of sample ids, got shape {ids.shape}")
    if ids.size == 0:
        return ids.astype(np.int64)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integer sample ids, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    unknown = ids[(ids < 0) | (ids >= state.n_samples_fit)]
    if unknown.size:
        raise ValueError(
            f"unknown ids {np.unique(unknown)[:10].tolist()}: ids issued so far are "
            f"0..{state.n_samples_fit - 1}"
        )
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"ids {uniq[counts > 1][:10].tolist()} are repeated")
    removed = ids[~state.is_live(ids)]
    if removed.size:
        raise ValueError(f"ids {np.sort(removed)[:10].tolist()} were already removed")
    return ids


class UpdatesMixin:
    """``partial_fit``, ``remove`` and ``snapshot`` for the PCCT estimators."""

    def partial_fit(self, X, y=None):
        """Insert a batch of samples (the first call on an unfitted estimator fits).

        The rows get the next ids ``n_samples_fit_, n_samples_fit_ + 1, ...``.
        The tree is updated by batch insertion into a new version; versions
        held by :meth:`snapshot` are not affected. On error the estimator is
        left exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New samples, with the features seen in :term:`fit`.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> nn = PCCTNeighbors(n_neighbors=1).partial_fit([[0.0], [1.0]])
        >>> nn = nn.partial_fit([[5.0]])
        >>> nn.n_samples_fit_, nn.kneighbors([[4.0]])[1]
        (3, array([[2]]))
        """
        with UPDATE_LOCK:
            if "_pcct_state_" not in self.__dict__:
                return self.fit(X)
            state = self._pcct_state_
            # validated in the tree's dtype: values too large for float32 are
            # rejected as fit rejects them
            X = validate_data(
                self, X, accept_sparse=False, dtype=state.dtype, order="C",
                reset=False,
            )
            X = embed(X, state.metric)
            backend = resolve_backend(self.backend_)
            with _progress(self, X.shape[0], "partial_fit") as report:
                new_state = state.after_insert(X, backend, self._n_threads(), report or None)
            self._after_update(state, new_state, inserted=X, removed=None)
            self._pcct_state_ = new_state
        return self

    def remove(self, ids):
        """Delete the samples with the given ids.

        The nodes that lose their last sample are physically removed and
        their descendants re-attached (the tree stays a valid compressed
        cover tree), in a new version. On error (unknown, repeated or
        already removed ids) the estimator is left exactly as it was.

        Parameters
        ----------
        ids : array-like of int of shape (n_removed,)
            Live sample ids (see ``live_ids_``).

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> nn = PCCTNeighbors(n_neighbors=1).fit([[0.0], [1.0], [5.0]])
        >>> nn.remove([1]).live_ids_
        array([0, 2])
        >>> nn.kneighbors([[0.9]])[1]
        array([[0]])
        """
        check_is_fitted(self)
        with UPDATE_LOCK:
            state = self._pcct_state_
            ids = _validate_ids(ids, state)
            if ids.size == 0:
                return self
            backend = resolve_backend(self.backend_)
            new_state = state.after_remove(ids, backend, self._n_threads())
            self._after_update(state, new_state, inserted=None, removed=ids)
            self._pcct_state_ = new_state
        return self

    def _after_update(self, old_state, new_state, inserted, removed):
        """Hook for derived data kept current across updates (none here)."""

    def snapshot(self):
        """A frozen, picklable, queryable view of the current tree version.

        Later updates of the estimator do not change the snapshot.

        Returns
        -------
        snapshot : PCCTSnapshot
            A view of the current version: it answers the neighbour queries
            as the estimator answers them now.

        Examples
        --------
        >>> from sklearn_pcct import PCCTNeighbors
        >>> nn = PCCTNeighbors(n_neighbors=1).fit([[0.0], [1.0]])
        >>> snap = nn.snapshot()
        >>> nn = nn.remove([0])
        >>> snap.kneighbors([[0.1]])[1], nn.kneighbors([[0.1]])[1]
        (array([[0]]), array([[1]]))
        """
        check_is_fitted(self)
        return PCCTSnapshot(self)


class PCCTSnapshot(KNeighborsMixin, RadiusNeighborsMixin):
    """An immutable, queryable version of a fitted PCCT estimator.

    Made by :meth:`PCCTNeighbors.snapshot`; answers ``kneighbors``,
    ``kneighbors_graph``, ``radius_neighbors`` and ``radius_neighbors_graph``
    exactly as the estimator did when the snapshot was taken.

    Parameters
    ----------
    estimator : PCCTNeighbors or PCCTTransformer
        A fitted estimator. The snapshot shares its current (immutable) tree
        version, without copying it, and its query parameters.

    Attributes
    ----------
    n_neighbors, radius : int, float
        Defaults of the estimator at snapshot time (``radius`` is None for
        :class:`PCCTTransformer`).
    n_jobs : int or None
        Number of threads of the queries, as for the estimator.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when the
        estimator has it.
    effective_metric_ : str or callable
        The distance metric used.
    effective_metric_params_ : dict
        Additional keyword arguments for the metric.
    n_samples_fit_ : int
        Number of sample ids issued up to this version.
    live_ids_ : ndarray of shape (n_live,)
        Sorted ids of the samples not removed in this version.
    version_ : int
        Number of updates since the fit, at snapshot time.
    tree_ : TreeVersion
        The immutable cover tree of this version.
    backend_ : str
        The backend that built the tree.

    See Also
    --------
    PCCTNeighbors.snapshot : Take a snapshot of a fitted estimator.

    Examples
    --------
    >>> from sklearn_pcct import PCCTNeighbors
    >>> nn = PCCTNeighbors(n_neighbors=2).fit([[0.0], [1.0], [2.0]])
    >>> snap = nn.snapshot()
    >>> nn = nn.partial_fit([[0.4]])
    >>> snap.kneighbors([[0.3]])[1], nn.kneighbors([[0.3]])[1]
    (array([[0, 1]]), array([[3, 0]]))
    """

    def __init__(self, estimator):
        self._pcct_state_ = estimator._pcct_state_
        self.n_neighbors = estimator.n_neighbors
        self.radius = getattr(estimator, "radius", None)
        self.n_jobs = estimator.n_jobs
        self.backend_ = estimator.backend_
        self.n_features_in_ = estimator.n_features_in_
        self.effective_metric_ = estimator.effective_metric_
        self.effective_metric_params_ = estimator.effective_metric_params_
        if hasattr(estimator, "feature_names_in_"):
            self.feature_names_in_ = estimator.feature_names_in_

    def __repr__(self):
        return (
            f"PCCTSnapshot(version={self.version_}, n_live={self.live_ids_.shape[0]}, "
            f"n_samples_fit={self.n_samples_fit_})"
        )

    def _check_fitted(self):
        return self._pcct_state_

    def _validate_queries(self, X):
        X = check_array(X, accept_sparse=False, dtype=_DTYPES, order="C")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but PCCTSnapshot is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _backend(self):
        return resolve_backend(self.backend_)

    def _n_threads(self):
        from joblib import effective_n_jobs

        return max(1, int(effective_n_jobs(self.n_jobs)))

    @property
    def tree_(self):
        """The read-optimised cover tree of this version."""
        return self._pcct_state_.tree

    @property
    def n_samples_fit_(self):
        """Sample ids issued up to this version."""
        return self._pcct_state_.n_samples_fit

    @property
    def live_ids_(self):
        """Sorted live sample ids of this version."""
        return self._pcct_state_.live_ids

    @property
    def version_(self):
        """Number of updates since the fit, at snapshot time."""
        return self._pcct_state_.version

