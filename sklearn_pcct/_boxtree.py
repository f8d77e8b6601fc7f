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
"""

from dataclasses import dataclass

import numpy as np

from ._metric import MetricSpec

__all__ = ["BoxTree", "check_box_tree"]


@dataclass(frozen=True, eq=False)
class BoxTree:
    """A kd-tree over the rows of a dataset (see the module docstring)."""

    perm: np.ndarray
    points: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    leaf_of: np.ndarray
    metric: MetricSpec

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
