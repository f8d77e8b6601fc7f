"""The immutable tree version: a compressed cover tree in flat arrays.

Layout (ALGORITHMS.md sections 2.3 and 3.2, with sibling blocks). Node ids
come from a depth-first walk that numbers all children of a node at once:
the root is node 0, the children of node ``v`` are the consecutive ids
``[child_start[v], child_stop[v])`` and all descendants of ``v`` (``v``
excluded) form the contiguous range ``[child_start[v], desc_stop[v])``.

==========================  ==============================================
``points[v]``               the point of node ``v``
``node_sample[v]``          sample index of the point of ``v``
``level[v]``                level ``l(v)``; the root's is above every other
``parent[v]``               parent node, ``-1`` for the root
``parent_dist[v]``          ``d(v, parent(v))`` (0 for the root)
``radius[v]``               upper bound on ``d(v, x)`` over the subtree of
                            ``v`` (exact up to a rounding slack)
``child_start/child_stop``  the children of ``v``, levels descending
``desc_stop[v]``            end of the range of the descendants of ``v``
``dup_ptr/dup_idx``         CSR lists of the other samples at distance
                            exactly zero from ``v`` (duplicate groups)
==========================  ==============================================

Invariants (Elkin--Kurlin, Def. 2.1), with ``C_i = {v : l(v) >= i}``:

* covering: every non-root ``v`` has ``l(v) < l(parent)`` and
  ``d(v, parent) <= 2^(l(v) + 1)``;
* separation: distinct nodes of ``C_i`` are more than ``2^i`` apart;
* nesting: ``C_(i+1)`` is a subset of ``C_i`` (automatic);
* radius: ``radius[v] >= d(v, x)`` for every ``x`` below ``v``.

Queries are exact as long as covering and the radius bound hold; separation
only bounds their cost. :func:`check_tree_invariants` verifies all four and
labels a failure as a correctness or a performance defect.
"""

import functools
from dataclasses import dataclass

import numpy as np

from ._metric import MetricSpec, pairwise_distances

__all__ = ["TreeVersion", "check_tree_invariants", "TreeInvariantError"]


@dataclass(frozen=True, eq=False)
class TreeVersion:
    """One immutable version of a compressed cover tree (see module docstring).

    All arrays are read-only. ``version`` counts the updates that led to it
    (0 for a freshly built tree).
    """

    points: np.ndarray
    node_sample: np.ndarray
    level: np.ndarray
    parent: np.ndarray
    parent_dist: np.ndarray
    radius: np.ndarray
    child_start: np.ndarray
    child_stop: np.ndarray
    desc_stop: np.ndarray
    dup_ptr: np.ndarray
    dup_idx: np.ndarray
    n_samples: int
    metric: MetricSpec
    version: int = 0

    def __post_init__(self):
        for name in (
            "points", "node_sample", "level", "parent", "parent_dist", "radius",
            "child_start", "child_stop", "desc_stop", "dup_ptr", "dup_idx",
        ):
            arr = getattr(self, name)
            if arr.flags.writeable:
                arr = arr.view()
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    @functools.cached_property
    def live_ids(self):
        """Sorted sample indices held by the tree (read-only)."""
        ids = np.sort(np.concatenate([self.node_sample, self.dup_idx]))
        ids.flags.writeable = False
        return ids

    @property
    def n_nodes(self):
        """Number of nodes (distinct points)."""
        return self.points.shape[0]

    @property
    def n_features(self):
        """Number of features of the points."""
        return self.points.shape[1]

    def __setstate__(self, state):
        # Arrays restored by pickle or memmapped by joblib are made read-only
        # again, so a loaded version is as immutable as the original.
        self.__dict__.update(state)
        self.__post_init__()


class TreeInvariantError(AssertionError):
    """A cover-tree invariant does not hold.

    ``kind`` is ``"correctness"`` for violations that can make queries wrong
    (structure, covering, radius, duplicates) and ``"separation"`` for those
    that only cost speed.
    """

    def __init__(self, kind, message):
        super().__init__(f"[{kind}] {message}")
        self.kind = kind


def check_tree_invariants(tree, *, max_pairs=4_000_000, rtol=1e-9, random_state=0):
    """Verify the structure, covering, separation and radius invariants.

    Distances are recomputed with the slow NumPy reference metric. Pairwise
    checks (separation, radii) are exhaustive while they need at most
    ``max_pairs`` distances and sampled otherwise.

    Parameters
    ----------
    tree : TreeVersion
        The tree to check.
    max_pairs : int, default=4_000_000
        Budget of distance evaluations for the pairwise checks.
    rtol : float, default=1e-9
        Relative tolerance for rounding in recomputed distances.
    random_state : int, default=0
        Seed for the sampled checks.

    Raises
    ------
    TreeInvariantError
        With ``kind`` ``"correctness"`` or ``"separation"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct import PCCTNeighbors
    >>> from sklearn_pcct._tree import check_tree_invariants
    >>> X = np.random.default_rng(0).random((200, 3))
    >>> check_tree_invariants(PCCTNeighbors().fit(X).tree_)
    """
    rng = np.random.default_rng(random_state)
    n = tree.n_nodes
    spec = tree.metric

    def fail(kind, msg):
        raise TreeInvariantError(kind, msg)

    def d_rows(a, b):
        return pairwise_distances(tree.points[a], tree.points[b], spec)

    # -- structure: one root, sibling blocks, descendant ranges, duplicate groups
    if n == 0:
        if tree.dup_idx.size != 0:
            fail("correctness", "empty tree with samples")
        return
    if tree.parent[0] != -1 or np.any(tree.parent[1:] < 0):
        fail("correctness", "node 0 must be the only root")
    counts = tree.child_stop - tree.child_start
    if np.any(counts < 0) or counts.sum() != n - 1:
        fail("correctness", "child blocks must hold every non-root node once")
    owner = np.full(n, -1, dtype=np.int64)
    for v in np.flatnonzero(counts):
        block = slice(tree.child_start[v], tree.child_stop[v])
        if np.any(owner[block] != -1):
            fail("correctness", "child blocks overlap")
        owner[block] = v
    if not np.array_equal(owner[1:], tree.parent[1:]):
        fail("correctness", "child blocks disagree with parent pointers")
    if np.any(tree.parent[1:] >= np.arange(1, n)):
        fail("correctness", "a parent must have a smaller id than its children")
    depth_first = np.zeros(n, dtype=np.int64)  # end of each descendant range
    for v in range(n - 1, -1, -1):
        depth_first[v] = tree.child_stop[v] if counts[v] else tree.child_start[v]
        for c in range(tree.child_start[v], tree.child_stop[v]):
            if counts[c]:
                depth_first[v] = max(depth_first[v], depth_first[c])
    size = np.ones(n, dtype=np.int64)
    for v in range(n - 1, 0, -1):
        size[tree.parent[v]] += size[v]
    has = counts > 0
    if not np.array_equal(tree.desc_stop[has], depth_first[has]) or not np.array_equal(
        (tree.desc_stop - tree.child_start)[has], size[has] - 1
    ):
        fail("correctness", "descendant ranges do not match the parent pointers")
    for v in np.flatnonzero(has):
        desc = np.arange(tree.child_start[v], tree.desc_stop[v])
        a = tree.parent[desc]
        while True:  # every node of the range must descend from v
            above = (a != v) & (a > v)
            if not np.any(above):
                break
            a = np.where(above, tree.parent[np.maximum(a, 0)], a)
        if np.any(a != v):
            fail("correctness", f"the descendant range of node {v} holds other nodes")
    for v in range(n):  # children listed by level descending
        lv = tree.level[tree.child_start[v] : tree.child_stop[v]]
        if np.any(np.diff(lv) > 0):
            fail("correctness", f"children of node {v} are not sorted by level")
    members = np.sort(np.concatenate([tree.node_sample, tree.dup_idx]))
    if (
        np.any(np.diff(members) <= 0)
        or members[0] < 0
        or members[-1] >= tree.n_samples
    ):
        fail("correctness", "every live sample must belong to exactly one node")
    rep_is_min = [
        tree.node_sample[v] < tree.dup_idx[tree.dup_ptr[v]]
        for v in np.flatnonzero(np.diff(tree.dup_ptr))
    ]
    if not all(rep_is_min):
        fail("correctness", "a node must be represented by its smallest sample")

    # -- covering and parent distances
    child = np.arange(1, n)
    par = tree.parent[child]
    if np.any(tree.level[child] >= tree.level[par]):
        fail("correctness", "a child's level must be below its parent's")
    d_par = np.array([d_rows([c], [q])[0, 0] for c, q in zip(child, par, strict=True)])
    tol = rtol * (1.0 + d_par)
    if not np.allclose(d_par, tree.parent_dist[child], rtol=rtol, atol=0):
        fail("correctness", "parent_dist does not match the metric")
    cover = np.ldexp(1.0, tree.level[child] + 1)
    bad = d_par > cover + tol
    if np.any(bad):
        c = child[np.argmax(bad)]
        fail("correctness", f"cover condition fails at node {c}")

    # -- radius bounds (exhaustive or sampled over (node, descendant) pairs)
    total = int(np.sum(size - 1))
    frac = min(1.0, max_pairs / max(total, 1))
    for v in np.flatnonzero(has):
        desc = np.arange(tree.child_start[v], tree.desc_stop[v])
        if frac < 1.0:
            desc = desc[rng.random(desc.size) < frac]
            if desc.size == 0:
                continue
        dist = d_rows([v], desc)[0]
        if np.any(dist > tree.radius[v] * (1 + rtol) + rtol):
            fail("correctness", f"radius of node {v} is smaller than its subtree")

    # -- duplicates sit at distance zero from their node
    for v in range(n):
        dups = tree.dup_idx[tree.dup_ptr[v] : tree.dup_ptr[v + 1]]
        if dups.size and not np.all(np.diff(dups) > 0):
            fail("correctness", f"duplicate list of node {v} is not sorted")

    # -- separation of every cover set C_i: pairs more than 2^min(level) apart
    n_pairs = n * (n - 1) // 2
    if n_pairs <= max_pairs:
        ia, ib = np.triu_indices(n, k=1)
    else:
        m = max_pairs
        ia = rng.integers(0, n, m)
        ib = rng.integers(0, n, m)
        keep = ia != ib
        ia, ib = ia[keep], ib[keep]
    step = 200_000
    for s in range(0, ia.size, step):
        a, b = ia[s : s + step], ib[s : s + step]
        dist = np.array(
            [d_rows([x], [y])[0, 0] for x, y in zip(a, b, strict=True)]
        ) if spec.name == "callable" else _paired(tree.points[a], tree.points[b], spec)
        sep = np.ldexp(1.0, np.minimum(tree.level[a], tree.level[b]))
        bad = dist <= sep * (1 - rtol)
        if np.any(bad):
            k = np.argmax(bad)
            fail(
                "separation",
                f"nodes {a[k]} and {b[k]} are {dist[k]!r} apart but share the "
                f"cover set of level {min(tree.level[a[k]], tree.level[b[k]])}",
            )


def _paired(A, B, spec):
    """Row-wise distances ``d(A[i], B[i])`` with the reference metric."""
    out = np.empty(len(A))
    step = 4096
    for s in range(0, len(A), step):
        a, b = A[s : s + step], B[s : s + step]
        # pairwise on the diagonal only: evaluate each pair with a 1x1 call
        # would be slow, so reuse the vectorised formulas row-wise.
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if spec.name == "euclidean" and diff.shape[1]:
            scale = diff.max(axis=1)
            diff = diff / np.where(scale > 0, scale, 1.0)[:, None]
            out[s : s + step] = scale * np.sqrt((diff * diff).sum(axis=1))
        elif spec.name == "manhattan":
            out[s : s + step] = diff.sum(axis=1)
        elif spec.name == "chebyshev":
            out[s : s + step] = diff.max(axis=1) if diff.shape[1] else 0.0
        else:
            out[s : s + step] = [
                pairwise_distances(x[None], y[None], spec)[0, 0] for x, y in zip(a, b, strict=True)
            ]
    return out
