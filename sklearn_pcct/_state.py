"""The fitted state of an estimator: one immutable object per tree version.

An estimator holds exactly one :class:`FittedState`; ``partial_fit`` and
``remove`` build a new one from the current one and swap it in with a single
attribute assignment, so a query that read the state once sees one version
from start to end, never a mixture (no sklearn imports here).
"""

import threading

from . import _core
from ._backends import resolve_backend
from ._dynamic import compact

__all__ = ["FittedState", "UPDATE_LOCK"]

# fit, partial_fit and remove of all estimators are serialised (one writer per
# tree family, ALGORITHMS.md section 10); queries never take it.
UPDATE_LOCK = threading.RLock()


class FittedState:
    """A tree version with its lazily built read-optimised form.

    Parameters
    ----------
    dynamic : DynamicTree
        The version (immutable).
    backend : str
        Name of the backend that runs the kernels.
    tree : TreeVersion or None, default=None
        Its read-optimised form if already built (else built on first use).
    """

    def __init__(self, dynamic, backend, tree=None):
        self.dynamic = dynamic
        self.backend = backend
        self._tree = tree
        self._live_ids = None
        self._lock = threading.Lock()
        self.cache = {}  # per-version derived data (e.g. a live kNN graph)

    @property
    def tree(self):
        """The :class:`~sklearn_pcct._tree.TreeVersion` of this version."""
        if self._tree is None:
            with self._lock:
                if self._tree is None:
                    self._tree = _core.freeze(self.dynamic, resolve_backend(self.backend))
        return self._tree

    @property
    def live_ids(self):
        """Sorted live sample ids (read-only int64 array)."""
        if self._live_ids is None:
            ids = self.dynamic.live_ids()
            ids.flags.writeable = False
            self._live_ids = ids
        return self._live_ids

    @property
    def n_live(self):
        """Number of live samples."""
        return self.dynamic.n_live

    @property
    def n_samples_fit(self):
        """Sample ids issued so far."""
        return self.dynamic.n_ids

    def __getstate__(self):
        # this version alone, compacted, with its read-optimised form when
        # built (loaded states answer at once; joblib memory-maps its arrays)
        return {"dynamic": compact(self.dynamic), "backend": self.backend,
                "tree": self._tree, "cache": dict(self.cache)}

    def __setstate__(self, state):
        self.__init__(state["dynamic"], state["backend"], state["tree"])
        self.cache.update(state["cache"])
