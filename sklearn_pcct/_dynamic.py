"""The dynamic, persistent form of the tree: chunked copy-on-write arrays.

ALGORITHMS.md sections 3.1 and 10. Every per-node field lives in fixed-size
*chunks* of :data:`CHUNK` nodes kept in an append-only :class:`ChunkPool`;
a version maps chunk ``c`` to its slot ``node_map[c]`` in the pool. An update
copies a chunk into a fresh slot the first time it writes to it (slots at or
above the update's ``base`` belong to the new version), so a new version
costs only the chunks its writes touched -- path copying mapped to arrays --
and every older :class:`DynamicTree` keeps answering exactly as before.

Per node ``v`` (integer fields, ``ipool[node_map[v >> SHIFT], FIELD, v & MASK]``):

``ROW``      id of the sample whose coordinates the node holds
``LEVEL``    level ``l(v)`` (the root's is at least one above every other)
``PARENT``   parent node, ``-1`` for the root
``FIRST``    head of the child list (levels descending, ties by node id)
``NEXT``     next sibling in the parent's child list
``COUNT``    live samples at distance zero represented by the node; a node
             whose count drops to zero is removed from the tree

and (float fields) ``PDIST`` = ``d(v, parent)`` and ``RADIUS`` = an upper
bound on ``d(v, x)`` over the subtree of ``v``. Per sample id ``i`` the id
pool holds ``ID_NODE``: the node that represents it, ``-1`` once removed.
Coordinates live in an append-only :class:`PointStore` indexed by id.

This module is NumPy only; the kernels that read and write these arrays
are in the backends.
"""

from dataclasses import dataclass

import numpy as np

from ._metric import MetricSpec

__all__ = [
    "CHUNK",
    "SHIFT",
    "MASK",
    "ROW",
    "LEVEL",
    "PARENT",
    "FIRST",
    "NEXT",
    "COUNT",
    "PDIST",
    "RADIUS",
    "NO_LEVEL",
    "n_chunks",
    "ChunkPool",
    "PointStore",
    "DynamicTree",
    "compact",
    "read_only_fields",
]

SHIFT = 4
CHUNK = 1 << SHIFT
MASK = CHUNK - 1
ROW, LEVEL, PARENT, FIRST, NEXT, COUNT = range(6)
N_INT = 6
PDIST, RADIUS = range(2)
N_FLOAT = 2
NO_LEVEL = -(2**30)  # level of a root without children


def read_only_fields(obj, names):
    """Replace the writeable array fields ``names`` of a frozen dataclass by read-only views.

    Versions share these arrays: they are never written in place, also
    after unpickling (which gives writeable arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from dataclasses import dataclass
    >>> from sklearn_pcct._dynamic import read_only_fields
    >>> @dataclass(frozen=True)
    ... class Box:
    ...     a: np.ndarray
    >>> box = Box(np.zeros(2))
    >>> read_only_fields(box, ("a",))
    >>> box.a.flags.writeable
    False
    """
    for name in names:
        arr = getattr(obj, name)
        if arr.flags.writeable:
            arr = arr.view()
            arr.flags.writeable = False
            object.__setattr__(obj, name, arr)


def n_chunks(n):
    """Chunks needed for ``n`` slots (nodes or ids).

    >>> from sklearn_pcct._dynamic import CHUNK, n_chunks
    >>> n_chunks(0), n_chunks(1), n_chunks(CHUNK), n_chunks(CHUNK + 1)
    (0, 1, 1, 2)
    """
    return (n + MASK) >> SHIFT


class ChunkPool:
    """Append-only storage of chunks shared by the versions of one tree.

    ``ints`` has shape ``(capacity, n_int, CHUNK)`` and ``floats``
    ``(capacity, n_float, CHUNK)``; slots ``[0, top)`` are in use. Slots are
    never rewritten once a version that uses them is published; growing
    copies the used slots into larger arrays (old versions keep reading the
    old ones, which hold the same data).
    """

    def __init__(self, n_int, n_float, capacity=16):
        self.ints = np.empty((capacity, n_int, CHUNK), dtype=np.int64)
        self.floats = np.empty((capacity, n_float, CHUNK), dtype=np.float64)
        self.top = 0

    def reserve(self, n_slots):
        """Make room for ``n_slots`` more slots above ``top``."""
        need = self.top + n_slots
        if need > self.ints.shape[0]:
            cap = max(need, 2 * self.ints.shape[0])
            ints = np.empty((cap,) + self.ints.shape[1:], dtype=np.int64)
            floats = np.empty((cap,) + self.floats.shape[1:], dtype=np.float64)
            ints[: self.top] = self.ints[: self.top]
            floats[: self.top] = self.floats[: self.top]
            self.ints, self.floats = ints, floats

    def slot_bytes(self):
        """Bytes of one slot (all fields of ``CHUNK`` entries)."""
        return (self.ints.shape[1] + self.floats.shape[1]) * CHUNK * 8

    def __getstate__(self):
        # pickle the used slots only (np.empty capacity is not data)
        return {
            "ints": self.ints[: self.top].copy(),
            "floats": self.floats[: self.top].copy(),
            "top": self.top,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)


class PointStore:
    """Append-only coordinates indexed by sample id (``data[:n]`` in use)."""

    def __init__(self, n_features, dtype, capacity=16):
        self.data = np.empty((capacity, n_features), dtype=dtype)
        self.n = 0

    def append(self, X):
        """Store the rows of ``X`` under the next ids; returns the first id."""
        need = self.n + X.shape[0]
        if need > self.data.shape[0]:
            data = np.empty((max(need, 2 * self.data.shape[0]), self.data.shape[1]),
                            dtype=self.data.dtype)
            data[: self.n] = self.data[: self.n]
            self.data = data
        self.data[self.n : need] = X
        first = self.n
        self.n = need
        return first

    def __getstate__(self):
        return {"data": self.data[: self.n].copy(), "n": self.n}

    def __setstate__(self, state):
        self.__dict__.update(state)


@dataclass(frozen=True, eq=False)
class DynamicTree:
    """One immutable version of the dynamic tree (see the module docstring).

    Attributes
    ----------
    points : PointStore
        Coordinates by sample id (shared by the versions of one tree).
    node_pool, id_pool : ChunkPool
        Node fields and the id-to-node map (shared, append-only).
    node_map : ndarray of shape (n_node_chunks,)
        Slot of each node chunk in ``node_pool`` (-1: never written).
    id_map : ndarray of shape (n_id_chunks,)
        Slot of each id chunk in ``id_pool``.
    n_nodes : int
        Node ids issued so far (removed nodes keep their ids).
    n_ids : int
        Sample ids issued so far.
    n_live : int
        Samples not removed.
    root : int
        Root node, -1 when the tree is empty.
    metric : MetricSpec
    version : int
        Number of updates since the tree was built.
    own_slots : tuple of int
        ``(node_slots, id_slots)`` written by the update that made this
        version (its memory cost beyond the version it came from).
    """

    points: PointStore
    node_pool: ChunkPool
    id_pool: ChunkPool
    node_map: np.ndarray
    id_map: np.ndarray
    n_nodes: int
    n_ids: int
    n_live: int
    root: int
    metric: MetricSpec
    version: int = 0
    own_slots: tuple = (0, 0)

    def __post_init__(self):
        read_only_fields(self, ("node_map", "id_map"))

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def n_features(self):
        """Number of features of the points."""
        return self.points.data.shape[1]

    @property
    def dtype(self):
        """Floating dtype of the points."""
        return self.points.data.dtype

    @classmethod
    def empty(cls, n_features, dtype, metric, capacity=16):
        """A tree without points."""
        return cls(
            points=PointStore(n_features, dtype, capacity),
            node_pool=ChunkPool(N_INT, N_FLOAT, n_chunks(capacity) + 1),
            id_pool=ChunkPool(1, 0, n_chunks(capacity) + 1),
            node_map=np.zeros(0, dtype=np.int64),
            id_map=np.zeros(0, dtype=np.int64),
            n_nodes=0,
            n_ids=0,
            n_live=0,
            root=-1,
            metric=metric,
        )

    def id_node(self, ids=None):
        """Node of each id (``-1`` for removed ids); all ids by default."""
        ids = np.arange(self.n_ids) if ids is None else np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        return self.id_pool.ints[self.id_map[ids >> SHIFT], 0, ids & MASK]

    def live_ids(self):
        """Sorted ids of the samples not removed."""
        return np.flatnonzero(self.id_node() >= 0)

    def node_field(self, field, nodes, floating=False):
        """Gather an integer (or, with ``floating``, float) field of ``nodes``."""
        nodes = np.asarray(nodes, dtype=np.int64)
        pool = self.node_pool.floats if floating else self.node_pool.ints
        return pool[self.node_map[nodes >> SHIFT], field, nodes & MASK]

    def nbytes_own(self):
        """Bytes this version added on top of the version it was made from."""
        return (
            self.own_slots[0] * self.node_pool.slot_bytes()
            + self.own_slots[1] * self.id_pool.slot_bytes()
            + self.node_map.nbytes
            + self.id_map.nbytes
        )

    def nbytes_full(self):
        """Bytes of a full, unshared copy of this version (points included)."""
        return (
            n_chunks(self.n_nodes) * self.node_pool.slot_bytes()
            + n_chunks(self.n_ids) * self.id_pool.slot_bytes()
            + self.node_map.nbytes
            + self.id_map.nbytes
            + self.n_ids * self.points.data.itemsize * self.n_features
        )


def compact(tree):
    """A copy of ``tree`` in fresh storage holding this version's data only.

    Older versions' chunks, capacity reserves and the coordinates of ids
    issued after this version are dropped (used when pickling).
    """
    node_slots = np.where(tree.node_map >= 0, tree.node_map, 0)
    id_slots = np.where(tree.id_map >= 0, tree.id_map, 0)
    node_pool = ChunkPool(N_INT, N_FLOAT, 1)
    node_pool.ints = tree.node_pool.ints[node_slots]
    node_pool.floats = tree.node_pool.floats[node_slots]
    node_pool.top = node_slots.shape[0]
    id_pool = ChunkPool(1, 0, 1)
    id_pool.ints = tree.id_pool.ints[id_slots]
    id_pool.floats = tree.id_pool.floats[id_slots]
    id_pool.top = id_slots.shape[0]
    points = PointStore(tree.n_features, tree.dtype, 1)
    points.data = tree.points.data[: tree.n_ids].copy()
    points.n = tree.n_ids
    return DynamicTree(
        points=points,
        node_pool=node_pool,
        id_pool=id_pool,
        node_map=np.where(tree.node_map >= 0, np.arange(node_slots.shape[0]), -1),
        id_map=np.where(tree.id_map >= 0, np.arange(id_slots.shape[0]), -1),
        n_nodes=tree.n_nodes,
        n_ids=tree.n_ids,
        n_live=tree.n_live,
        root=tree.root,
        metric=tree.metric,
        version=tree.version,
    )
