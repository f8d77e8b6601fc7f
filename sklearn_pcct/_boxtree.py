"""The kd-tree of the low-dimensional Vecchia engine (numpy only).

In two or three dimensions (and for uniform-like data up to about eight)
a Vecchia pipeline spends its time on bookkeeping per point, not on
distance evaluations; a balanced kd-tree with tight bounding boxes and leaf
buckets prunes with box bounds cheaper than a distance and is built
without any search. :func:`sklearn_pcct.maximin_ordering` and
:func:`sklearn_pcct.vecchia_neighbors` use it with ``algorithm="kd_tree"``
(or ``"auto"``); the answers are the cover tree's, bit for bit.

Layout: an implicit complete binary tree of depth ``depth``. Node ``v`` at
level ``t`` (``v = 2^t - 1 + j``) holds the positions
``[(j n) >> t, ((j + 1) n) >> t)``; its children are ``2v + 1`` and
``2v + 2``; all leaves are at level ``depth``.

======================  ================================================
``perm[u]``             sample index of position ``u``
``points[u]``           ``X[perm[u]]`` in float64
``lo[v]`` / ``hi[v]``   tight bounding box of the points of node ``v``
``leaf_of[u]``          the leaf that holds position ``u``
======================  ================================================

:class:`BoxForest` is the updatable form used by the estimators: a kd-tree
of the samples live at the last rebuild, a kd-tree of the samples inserted
since, and per tree a mask of the rows not removed (see
:mod:`sklearn_pcct._forest`).
"""

from dataclasses import dataclass

import numpy as np

from ._dynamic import PointStore, read_only_fields
from ._metric import MetricSpec

__all__ = ["BoxTree", "BoxPart", "BoxForest", "check_box_tree"]


@dataclass(frozen=True, eq=False)
class BoxTree:
    """A kd-tree over the rows of a dataset (see the module docstring)."""

    perm: np.ndarray
    points: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    leaf_of: np.ndarray
    metric: MetricSpec

    def __post_init__(self):
        # read-only also after unpickling: versions share the tree, and the
        # kernels are compiled for read-only arrays only
        read_only_fields(self, ("perm", "points", "lo", "hi", "leaf_of"))

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def n_samples(self):
        """Number of points."""
        return self.points.shape[0]

    @property
    def n_features(self):
        """Number of coordinates."""
        return self.points.shape[1]

    @property
    def n_nodes(self):
        """Number of nodes (``2^(depth + 1) - 1``)."""
        return self.lo.shape[0]

    @property
    def depth(self):
        """Level of the leaves."""
        return int(np.log2(self.n_nodes + 1)) - 1


@dataclass(frozen=True, eq=False)
class BoxPart:
    """One kd-tree of a :class:`BoxForest` and which of its rows are live.

    Attributes
    ----------
    tree : BoxTree
        The kd-tree of the rows (shared by the versions that keep it).
    ids : ndarray of shape (n_rows,)
        Ascending sample id of each row of ``tree``.
    pos_ids : ndarray of shape (n_rows,)
        Sample id of each position (``ids[tree.perm]``): the k-NN kernels
        report ids directly, ties broken by id.
    alive : ndarray of shape (n_rows,), dtype uint8
        1 for the rows whose sample is live (new in each version that
        removes some of them).
    n_live : int
        Number of live rows.
    """

    tree: BoxTree
    ids: np.ndarray
    pos_ids: np.ndarray
    alive: np.ndarray
    n_live: int

    def __post_init__(self):
        read_only_fields(self, ("ids", "pos_ids", "alive"))

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def n_rows(self):
        """Rows of the tree, removed ones included."""
        return self.ids.shape[0]

    def live_ids(self):
        """Ascending ids of the live rows."""
        return self.ids[self.alive.view(bool)]

    def rows_of(self, ids):
        """``(held, rows)``: which of ``ids`` this tree holds, and their rows."""
        row = np.minimum(np.searchsorted(self.ids, ids), self.n_rows - 1)
        held = self.ids[row] == ids
        return held, row[held]

    def nbytes(self):
        """Bytes of the tree and its id arrays."""
        t = self.tree
        return sum(a.nbytes for a in (t.perm, t.points, t.lo, t.hi, t.leaf_of, self.ids,
                                      self.pos_ids, self.alive))


@dataclass(frozen=True, eq=False)
class BoxForest:
    """One immutable version of the estimators' updatable kd-tree index.

    ``parts[0]`` indexes the samples live at the last rebuild; ``parts[1]``
    (if any) those inserted since, whose ids are all larger. Removed samples
    stay in their tree, masked out. Versions share the trees they do not
    change and the append-only coordinate store.

    Attributes
    ----------
    parts : tuple of BoxPart
        The trees (none when no sample is live).
    points : PointStore
        Coordinates by sample id (shared by the versions of one index).
    n_ids : int
        Sample ids issued so far.
    metric : MetricSpec
    version : int
        Number of updates since the fit.
    own_bytes : int
        Bytes this version added on top of the version it was made from.
    """

    parts: tuple
    points: PointStore
    n_ids: int
    metric: MetricSpec
    version: int = 0
    own_bytes: int = 0

    @property
    def n_live(self):
        """Number of live samples."""
        return sum(part.n_live for part in self.parts)

    @property
    def n_features(self):
        """Number of coordinates."""
        return self.points.data.shape[1]

    @property
    def dtype(self):
        """Floating dtype of the stored points."""
        return self.points.data.dtype

    def live_ids(self):
        """Sorted ids of the live samples (the parts' id ranges do not overlap)."""
        if not self.parts:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([part.live_ids() for part in self.parts])

    def is_live(self, ids):
        """Boolean mask: which of ``ids`` (each in ``[0, n_ids)``) are live."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(ids.shape, dtype=bool)
        for part in self.parts:
            held, rows = part.rows_of(ids)
            out[held] = part.alive[rows] == 1
        return out

    def nbytes_own(self):
        """Bytes this version added on top of the version it was made from."""
        return self.own_bytes

    def nbytes_full(self):
        """Bytes of a full, unshared copy of this version (points included)."""
        return (sum(part.nbytes() for part in self.parts)
                + self.n_ids * self.points.data.itemsize * self.n_features)


def check_box_tree(tree, X, leaf_size):
    """Verify the layout of ``tree`` built on the rows of ``X``.

    Checks that ``perm`` is a permutation, ``points`` the permuted rows,
    every box the tight bounding box of its node's points, the leaves at
    most ``leaf_size`` points and ``leaf_of`` their owners.

    Parameters
    ----------
    tree : BoxTree
    X : ndarray of shape (n_samples, n_features)
    leaf_size : int

    Raises
    ------
    AssertionError
        Naming the first property that fails.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._backends import get_backend
    >>> from sklearn_pcct._boxtree import check_box_tree
    >>> from sklearn_pcct._metric import MetricSpec
    >>> X = np.random.default_rng(0).random((100, 2))
    >>> be = get_backend("numba")
    >>> check_box_tree(be.build_box(X, MetricSpec("euclidean")), X, be.box_leaf_size(2))
    """
    n = X.shape[0]
    assert np.array_equal(np.sort(tree.perm), np.arange(n)), "perm is not a permutation"
    assert np.array_equal(tree.points, np.asarray(X, dtype=np.float64)[tree.perm]), (
        "points are not the permuted rows"
    )
    depth = tree.depth
    assert tree.n_nodes == (1 << (depth + 1)) - 1, "not a complete binary tree"
    for v in range(tree.n_nodes):
        t = int(np.log2(v + 1))
        j = v - ((1 << t) - 1)
        a, b = (j * n) >> t, ((j + 1) * n) >> t
        if b > a:
            P = tree.points[a:b]
            assert np.array_equal(tree.lo[v], P.min(axis=0)), f"box of node {v} (lo)"
            assert np.array_equal(tree.hi[v], P.max(axis=0)), f"box of node {v} (hi)"
        if t == depth:
            assert b - a <= leaf_size, f"leaf {v} holds {b - a} > {leaf_size} points"
            assert np.all(tree.leaf_of[a:b] == v), f"leaf_of of leaf {v}"
