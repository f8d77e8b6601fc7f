"""
==================================================
A live neighbour graph on a stream of points
==================================================

A fitted index (here the kd-tree that ``algorithm="auto"`` picks for two
features; the cover tree with ``algorithm="cover_tree"``) can take new points
and lose old ones without a rebuild.
This example keeps the exact 10-nearest-neighbour graph of a sliding window
of 20 000 locations current while batches of points arrive and the oldest
ones leave, with :meth:`~sklearn_pcct.PCCTTransformer.partial_fit` and
:meth:`~sklearn_pcct.PCCTTransformer.remove`. It checks the final graph
against :class:`sklearn.neighbors.KNeighborsTransformer` refitted on the
live points, shows how sample ids behave after removals, freezes an old
version with :meth:`~sklearn_pcct.PCCTTransformer.snapshot`, and updates the
index on a worker thread while the main thread keeps answering queries.
"""

# %%
# A stream of locations
# ---------------------
#
# The points imitate events on a 100 km x 100 km map: dense clusters of
# different sizes on top of scattered background. The clusters drift a
# little from one batch to the next, so the window of recent points slowly
# moves. Batch 0 is the initial window of 20 000 points; every later batch
# brings 1 000 new points, and the 1 000 oldest leave.

import time
from concurrent.futures import ThreadPoolExecutor

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import KNeighborsTransformer

from sklearn_pcct import PCCTTransformer

rng = np.random.default_rng(0)
n_window, n_batch, n_batches, n_clusters = 20_000, 1_000, 8, 30
centres = rng.uniform(10, 90, size=(n_clusters, 2))
spread = rng.uniform(0.3, 3.0, size=n_clusters)
velocity = rng.normal(scale=1.5, size=(n_clusters, 2))


def draw(n, step):
    """``n`` locations of batch ``step`` (clusters moved ``step`` times)."""
    which = rng.integers(0, n_clusters, size=n)
    X = centres[which] + step * velocity[which] + rng.normal(size=(n, 2)) * spread[which, None]
    background = rng.random(n) < 0.1
    X[background] = rng.uniform(0, 100, size=(background.sum(), 2))
    return X


batches = [draw(n_window, 0)] + [draw(n_batch, step) for step in range(1, n_batches + 1)]
X_all = np.concatenate(batches)  # the row of id i is X_all[i], see below
batch_of = np.repeat(np.arange(n_batches + 1), [len(b) for b in batches])
print(f"{n_window} initial points, then {n_batches} batches of {n_batch} in and out")

# %%
# Fit, then keep the graph current
# --------------------------------
#
# ``graph_`` is the graph ``fit_transform`` returns, for the samples that
# are live now. It is built on first access; after that every ``partial_fit``
# and ``remove`` updates it incrementally instead of recomputing it: only
# the rows of the new points, the rows a new point enters (found by one
# reverse search) and the rows that lost a neighbour are touched.
#
# The Numba kernels are compiled (or loaded from the on-disk cache) on first
# use, so one small warm-up run goes first. The table shows the time of each
# batch (insert, remove and the graph update together) and how many of the
# rows live before and after it now have a different neighbour list. Every
# point sits in about ``n_neighbors`` lists, so a batch of 1 000 in and
# 1 000 out changes up to 2 x 1 000 x 10 rows: about half of this graph,
# at a fraction of the cost of a rebuild.

warm = PCCTTransformer(n_neighbors=2).fit(X_all[:200])
warm.graph_
warm.partial_fit(X_all[200:300]).remove(np.arange(50))
warm.graph_

n_neighbors = 10
model = PCCTTransformer(n_neighbors=n_neighbors, mode="distance")
start = time.perf_counter()
graph = model.fit(batches[0]).graph_
print(f"fit + first graph_: {time.perf_counter() - start:.2f} s, graph {graph.shape}")


def neighbour_lists(graph, ids):
    """The neighbour lists of the rows ``ids`` of a graph, one row each."""
    return graph[ids].indices.reshape(ids.size, -1)


oldest = 0  # ids leave in the order they arrived
update_times, changed_rows = [], []
print(f"{'batch':>5}{'live':>8}{'ids':>8}{'update [s]':>12}{'changed rows':>14}")
for step, X_new in enumerate(batches[1:], start=1):
    previous = graph
    start = time.perf_counter()
    model.partial_fit(X_new)
    model.remove(np.arange(oldest, oldest + n_batch))
    graph = model.graph_
    update_times.append(time.perf_counter() - start)
    oldest += n_batch
    # rows of points live before and after the batch whose list changed
    kept = model.live_ids_[model.live_ids_ < previous.shape[0]]
    changed = np.any(neighbour_lists(graph, kept) != neighbour_lists(previous, kept), axis=1)
    changed_rows.append(changed.sum())
    print(
        f"{step:>5}{model.live_ids_.size:>8}{model.n_samples_fit_:>8}"
        f"{update_times[-1]:>12.3f}{changed_rows[-1]:>14}"
    )

# %%
# For comparison, a rebuild: a fresh transformer fitted on the live points,
# with its graph computed from scratch.

X_live = X_all[model.live_ids_]
start = time.perf_counter()
PCCTTransformer(n_neighbors=n_neighbors, mode="distance").fit_transform(X_live)
refit_time = time.perf_counter() - start
print(f"refit + graph from scratch: {refit_time:.3f} s, mean update: {np.mean(update_times):.3f} s")

# %%
# The same graph as a refit from scratch
# --------------------------------------
#
# After the last batch the live graph must be the graph
# :class:`~sklearn.neighbors.KNeighborsTransformer` computes on the live
# points. Its rows and columns are positions in ``X_live``; those of
# ``graph_`` are sample ids, so we select the live rows and columns first.
# Both store each row's neighbours in ascending distance, with the point
# itself first at distance zero.

live = model.live_ids_
X_live = X_all[live]
reference = KNeighborsTransformer(n_neighbors=n_neighbors, mode="distance").fit_transform(X_live)
ours = model.graph_[live][:, live]
ours.sort_indices()
reference.sort_indices()
print(
    "same neighbours:",
    np.array_equal(ours.indptr, reference.indptr)
    and np.array_equal(ours.indices, reference.indices),
)
print("same distances:", np.allclose(ours.data, reference.data))

# %%
# Sample ids after removals
# -------------------------
#
# Ids are stable: the ``i``-th row inserted since ``fit`` (by ``fit`` or by
# ``partial_fit``) keeps id ``i`` for good, and removed ids are never reused.
# That is why ``X_all[i]`` above is the point with id ``i``.
#
# * ``n_samples_fit_`` counts the ids issued so far, removed ones included;
#   it is the number of columns (and, for ``graph_``, of rows) of every
#   graph;
# * ``live_ids_`` lists the ids still present, in ascending order;
# * the graph rows of removed ids are empty, and no row points to them;
# * ``kneighbors()`` without ``X`` returns one row per *live* id, in the
#   order of ``live_ids_``.

graph = model.graph_
print("n_samples_fit_:", model.n_samples_fit_, " live:", live.size, " graph_:", graph.shape)
print("live_ids_ from", live[0], "to", live[-1])
row_sizes = np.diff(graph.indptr)
print("entries in the rows of removed ids:", row_sizes[:oldest].sum())
print("entries per live row:", np.unique(row_sizes[live]))
print("columns used by live rows, lowest:", graph.indices.min())
dist, ind = model.kneighbors(n_neighbors=3)
print("kneighbors() rows:", ind.shape[0], "- row 0 is id", live[0], "with neighbours", ind[0])

# %%
# Snapshots: an old version keeps answering
# -----------------------------------------
#
# Every update builds a new immutable version of the tree that shares its
# untouched parts with the previous one.
# :meth:`~sklearn_pcct.PCCTTransformer.snapshot` keeps the current version
# alive: it returns a picklable object with the query methods, which answers
# as the estimator did when the snapshot was taken, whatever happens to the
# estimator afterwards. Here we take one, then remove the 10 nearest
# neighbours of a query point from the estimator.

query = X_live[:1] + 0.01
snap = model.snapshot()
before = model.kneighbors(query, n_neighbors=3, return_distance=False)
model.remove(model.kneighbors(query, return_distance=False)[0])
print(snap)
print("snapshot: ", snap.kneighbors(query, n_neighbors=3, return_distance=False))
print("estimator:", model.kneighbors(query, n_neighbors=3, return_distance=False))
print(
    "snapshot unchanged:",
    np.array_equal(snap.kneighbors(query, n_neighbors=3, return_distance=False), before),
)

# %%
# Updating on a worker thread
# ---------------------------
#
# An update never modifies a version that a query is reading: it builds the
# new version on the side and then swaps it in with a single assignment.
# Updates are serialised by a lock that queries never take. So a service can
# run ``partial_fit`` / ``remove`` on a worker thread while its main thread
# keeps querying the same estimator; every query sees either the old
# version or the new one, never a mixture. (The two threads share the
# cores, so each runs slower than it would alone.)
#
# Below, the worker inserts a batch of points right at the query locations,
# which changes every query's nearest neighbour. The main thread queries
# until the worker is done and records each answer; afterwards, every
# recorded answer must be the old one or the new one. How many are old and
# how many new depends on the timing of the two threads.

queries = X_live[rng.choice(live.size, size=200, replace=False)] + 0.001
arriving = queries + rng.normal(scale=1e-4, size=queries.shape)
old_answer = model.kneighbors(queries, n_neighbors=1, return_distance=False)

answers = []
with ThreadPoolExecutor(max_workers=1) as pool:
    future = pool.submit(model.partial_fit, arriving)
    while not future.done():
        answers.append(model.kneighbors(queries, n_neighbors=1, return_distance=False))
    future.result()  # re-raises an error of the worker, if any
new_answer = model.kneighbors(queries, n_neighbors=1, return_distance=False)
answers.append(new_answer)

n_old = sum(np.array_equal(a, old_answer) for a in answers)
n_new = sum(np.array_equal(a, new_answer) for a in answers)
print(
    f"{len(answers)} answers while updating: {n_old} old version, {n_new} new version, "
    f"{len(answers) - n_old - n_new} mixed"
)

# %%
# A request that asks several questions should see one version for all of
# them. Hold a snapshot for it: the request handlers read the reference
# ``current``, the worker applies the update to the estimator and returns a
# snapshot of the result, and the main thread swaps the reference when the
# worker is done. Here the worker removes the points inserted above again.
#
# A full rebuild fits the same pattern (the worker fits a fresh estimator and
# returns its snapshot), but a fresh ``fit`` numbers the samples from 0
# again, so the ids of the old and the new version do not match.

arrived_ids = np.arange(model.n_samples_fit_ - len(arriving), model.n_samples_fit_)


def remove_and_snapshot(ids):
    return model.remove(ids).snapshot()


current = model.snapshot()
served = []
with ThreadPoolExecutor(max_workers=1) as pool:
    future = pool.submit(remove_and_snapshot, arrived_ids)
    while not future.done():
        view = current  # one version for the whole request
        ind = view.kneighbors(queries, n_neighbors=1, return_distance=False)
        served.append((view.version_, ind))
    current = future.result()
print(
    f"served {len(served)} requests from version {served[0][0]};"
    f" now serving version {current.version_}"
)
print(
    "new points gone from the answers:",
    np.array_equal(current.kneighbors(queries, n_neighbors=1, return_distance=False), old_answer),
)

# %%
# Update time and the moving window
# ---------------------------------
#
# Left: the live points at the end, coloured by the batch that
# brought them. Right: the time to apply one batch (insert 1 000, remove
# 1 000, and bring ``graph_`` up to date) next to the time to refit the
# transformer and compute the graph from scratch. An update costs in
# proportion to the rows it touches, so small batches gain the most; a
# batch that replaces a large part of the window is better done as a
# refit. The numbers depend on your machine.

final = model.live_ids_  # all from X_all: the points that arrived above are gone
fig, (ax_map, ax_time) = plt.subplots(1, 2, figsize=(11, 4.8))
sc = ax_map.scatter(*X_all[final].T, c=batch_of[final], s=1, cmap="viridis", rasterized=True)
fig.colorbar(sc, ax=ax_map, label="batch")
ax_map.set_aspect("equal")
ax_map.set_xlabel("x [km]")
ax_map.set_ylabel("y [km]")
ax_map.set_title(f"{final.size} live points")

steps = np.arange(1, n_batches + 1)
ax_time.bar(steps, update_times, width=0.6, label="partial_fit + remove + graph_")
ax_time.axhline(refit_time, color="tab:red", ls="--", label="refit + graph from scratch")
ax_time.set_xlabel("batch")
ax_time.set_ylabel("time [s]")
ax_time.set_title(f"{n_batch} points in, {n_batch} out, per batch")
ax_time.set_ylim(0, 1.4 * max(refit_time, max(update_times)))
ax_time.legend(loc="upper left")
fig.tight_layout()
plt.show()
