"""
=================================================
Serving queries while a worker rebuilds the index
=================================================

A search service cannot stop answering while its index changes. This
example builds the pattern that :class:`~sklearn_pcct.PCCTNeighbors` is
designed for: the main thread serves ``kneighbors`` requests from a
:class:`~sklearn_pcct.PCCTSnapshot` held in one variable, while a worker
thread of a :class:`concurrent.futures.ThreadPoolExecutor` prepares the next
version of the index — by :meth:`~sklearn_pcct.PCCTNeighbors.partial_fit`
and :meth:`~sklearn_pcct.PCCTNeighbors.remove`, or by a full refit — and
hands back a new snapshot. The main thread then swaps the variable. Every
request is answered by exactly one version, and we check afterwards that
each answer is the brute-force answer *of the version that served it*.

A full refit numbers the samples from 0 again, so the example also shows how
to keep stable application keys across it, and how a long request that
spans a swap stays consistent. (The example
:ref:`sphx_glr_auto_examples_plot_streaming_updates.py` introduces updates,
ids and snapshots; here they are put to work.)
"""

# %%
# The data and the application's keys
# -----------------------------------
#
# Locations arrive in batches on a 100 km x 100 km map: clusters of
# different sizes on scattered background, with each batch drawn around a
# different set of active clusters. The service keeps a sliding window of
# the 30 000 most recent locations.
#
# The application stores every location it has ever received in one array
# ``X_all``, in arrival order: the row number in ``X_all`` is the
# application's **key** of a location (think of a database primary key).
# Sample ids of the index are not keys: they are stable across
# ``partial_fit`` and ``remove``, but a fresh ``fit`` starts again from 0.
# So every served version carries its own ``keys`` array, with
# ``keys[id]`` the key of the sample ``id``.

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct import PCCTNeighbors, PCCTSnapshot

rng = np.random.default_rng(0)
n_window, n_batch, n_clusters = 30_000, 3_000, 60
centres = rng.uniform(5, 95, size=(n_clusters, 2))
spread = rng.uniform(0.3, 3.0, size=n_clusters)


def draw(n):
    """``n`` locations around 20 randomly chosen active clusters."""
    active = rng.choice(n_clusters, size=20, replace=False)
    which = active[rng.integers(0, 20, size=n)]
    X = centres[which] + rng.normal(size=(n, 2)) * spread[which, None]
    background = rng.random(n) < 0.1
    X[background] = rng.uniform(0, 100, size=(background.sum(), 2))
    return X


X_all = np.concatenate([draw(n_window)] + [draw(n_batch) for _ in range(4)])
print(f"{len(X_all)} locations: a window of {n_window}, then 4 batches of {n_batch}")

# %%
# One variable for what is being served
# -------------------------------------
#
# What the request handler needs is the snapshot *and* the key array that
# belongs to it, plus a label for the record. They go into one small
# immutable object, and the service swaps that object as a whole: a handler
# that reads the variable once gets a snapshot and keys that belong
# together. Two separate variables could be swapped one at a time and read
# in between.
#
# ``version_`` counts the updates since the last ``fit``, so after a refit
# it starts from 0 again; the label therefore also counts the refits
# (``generation``).


@dataclass(frozen=True)
class Served:
    snapshot: PCCTSnapshot
    keys: np.ndarray  # keys[id] = row of X_all
    generation: int  # number of full refits so far

    @property
    def label(self):
        return f"g{self.generation}v{self.snapshot.version_}"


def make_served(model, keys, generation):
    """Snapshot ``model`` and build its read layout before it is served."""
    snap = model.snapshot()
    # The first query of a new version lays the tree out for fast reading
    # (one pass over its nodes). Doing it here, on the worker, keeps that
    # cost off the serving path.
    snap.tree_
    keys = keys.copy()
    keys.flags.writeable = False
    return Served(snap, keys, generation)


# %%
# The jobs of the worker
# ----------------------
#
# The worker owns the estimator: only it calls ``partial_fit``, ``remove``
# and ``fit``, one job at a time (a single-thread executor runs its jobs in
# order). Each job returns a new ``Served``; it never touches the
# variable the main thread serves from.
#
# * ``slide`` inserts a batch of new keys and removes the oldest keys of
#   the window. The new samples get the next ids, so the new keys are
#   appended to ``keys``. To remove keys, the job needs their ids: ``keys``
#   is increasing (ids and keys both grow in arrival order), so
#   :func:`numpy.searchsorted` inverts it.
# * ``refit`` rebuilds a fresh estimator on the live samples, say to start a
#   new generation with other parameters, or after many updates. The fresh
#   ``fit`` numbers the live samples ``0, 1, ...`` in the order of their
#   old ids, so the new key array is ``keys[live_ids_]`` of the old version:
#   new id ``j`` is the old sample ``live_ids_[j]``, because ascending ids
#   map to ascending positions.
#
# Both threads share the machine's cores, so each estimator runs its
# kernels on one thread (``n_jobs=1``).

n_neighbors = 5


class Worker:
    def __init__(self):
        self.model = PCCTNeighbors(n_neighbors=n_neighbors, n_jobs=1)
        self.generation = 0

    def fit(self, keys):
        self.model.fit(X_all[keys])
        self.keys = np.asarray(keys)
        return make_served(self.model, self.keys, self.generation)

    def slide(self, new_keys, old_keys):
        self.model.partial_fit(X_all[new_keys])
        self.keys = np.concatenate([self.keys, new_keys])
        self.model.remove(np.searchsorted(self.keys, old_keys))
        return make_served(self.model, self.keys, self.generation)

    def refit(self):
        live_keys = self.keys[self.model.live_ids_]
        self.model = PCCTNeighbors(n_neighbors=n_neighbors, n_jobs=1)
        self.generation += 1
        return self.fit(live_keys)


# %%
# The serving loop
# ----------------
#
# The Numba kernels are compiled (or loaded from the on-disk cache) on first
# use, so a tiny warm-up runs first. Then the initial version is fitted and
# served.
#
# The main thread plays a service with a steady stream of requests — one
# every 4 ms, each asking for the 5 nearest locations of 20 points near
# the active clusters. Each request reads ``current`` *once*, queries that
# snapshot, and translates the returned ids into keys with the key array of
# the same object. We record which version answered, when, and how long it
# took.
#
# The schedule: serve for a while, then hand the worker a job — two slides
# of the window, a full refit, and one more slide on the refitted index —
# and keep serving until the worker's future is done. Then the main thread
# swaps ``current`` in one assignment. Here the swap falls between two
# requests; with several handler threads, a request that started before
# the swap holds its own reference to the old version and finishes on it
# (the last section shows such a request). A slide is two updates, an
# insertion and a removal, so the versions served are 0, 2, 4, and after
# the refit 0 and 2 again.

warm = PCCTNeighbors(n_neighbors=2).fit(X_all[:300])
warm.partial_fit(X_all[300:400]).remove(np.arange(50)).snapshot().kneighbors(X_all[:5])

worker = Worker()
start = time.perf_counter()
current = worker.fit(np.arange(n_window))
print(f"initial fit on {n_window} points: {time.perf_counter() - start:.2f} s")

next_key = n_window  # first key not inserted yet
oldest_key = 0  # oldest key still in the window


def slide_job():
    global next_key, oldest_key
    new_keys = np.arange(next_key, next_key + n_batch)
    old_keys = np.arange(oldest_key, oldest_key + n_batch)
    next_key += n_batch
    oldest_key += n_batch
    return worker.slide, new_keys, old_keys


jobs = [slide_job(), slide_job(), (worker.refit,), slide_job()]
job_names = ["slide", "slide", "refit", "slide"]

served_by = {current.label: current}  # every version that served a request
records = []  # (label, t_start, latency, queries, ids, keys, distances)
job_spans, swaps = [], []
t0 = time.perf_counter()
request_every = 0.004


def serve_one():
    """Answer one request from whatever is being served now."""
    view = current  # read once: one version for the whole request
    queries = centres[rng.integers(0, n_clusters, size=20)] + rng.normal(scale=2.0, size=(20, 2))
    t_start = time.perf_counter()
    dist, ids = view.snapshot.kneighbors(queries)
    keys = view.keys[ids]  # what the application returns to its client
    latency = time.perf_counter() - t_start
    records.append((view.label, t_start - t0, latency, queries, ids, keys, dist))


def serve_for(seconds=None, until=None):
    """Serve a request every ``request_every`` s for ``seconds`` or until ``until`` is done."""
    deadline = time.perf_counter() + (seconds or 0)
    while (until is not None and not until.done()) or (
        until is None and time.perf_counter() < deadline
    ):
        next_request = time.perf_counter() + request_every
        serve_one()
        time.sleep(max(0.0, next_request - time.perf_counter()))


with ThreadPoolExecutor(max_workers=1) as pool:
    for name, (func, *args) in zip(job_names, jobs, strict=True):
        serve_for(seconds=0.4)
        job_start = time.perf_counter() - t0
        future = pool.submit(func, *args)
        serve_for(until=future)
        new = future.result()  # re-raises an error of the worker, if any
        current = new  # the swap: a single assignment
        swaps.append(time.perf_counter() - t0)
        job_spans.append((name, job_start, swaps[-1]))
        served_by[current.label] = current
        print(f"{name:>6} took {swaps[-1] - job_start:.2f} s -> now serving {current.label}")
    serve_for(seconds=0.4)

labels = [r[0] for r in records]
print(f"{len(records)} requests served, by version:")
for label in served_by:
    print(f"  {label}: {labels.count(label)} requests, {served_by[label].snapshot}")

# %%
# Ids across the refit
# --------------------
#
# The refit renumbered the samples: the same id means a different location
# before and after it, while keys keep their meaning. In generation 0 every
# location was inserted in arrival order, so ids and keys coincide; the
# slides removed the oldest ids. After the refit, id 0 is the oldest live
# location, whatever its key.

before, after = served_by["g0v4"], served_by["g1v0"]
first_live = before.snapshot.live_ids_[0]
print(f"before the refit: first live id {first_live} -> key {before.keys[first_live]}")
print(f"after the refit:  first live id 0 -> key {after.keys[0]}")
print(
    "ids issued:", before.snapshot.n_samples_fit_, "before,", after.snapshot.n_samples_fit_, "after"
)
same_points = np.array_equal(
    np.sort(before.keys[before.snapshot.live_ids_]), after.keys[after.snapshot.live_ids_]
)
print("same live locations before and after the refit:", same_points)

# %%
# Every answer is the brute-force answer of its version
# -----------------------------------------------------
#
# For every version that served a request, we rebuild its live points from
# the snapshot alone — ``live_ids_``, mapped through the version's keys into
# ``X_all`` — and run scikit-learn's exhaustive search on them. Brute
# force returns positions ``p`` in that array; ``live_ids_[p]`` are the ids
# the snapshot should have returned, and ``keys[live_ids_[p]]`` the keys.
# The distances agree up to rounding (brute force computes
# ``|x|^2 - 2 x.y + |y|^2``).

n_checked = 0
all_ok = True
for label, view in served_by.items():
    mine = [r for r in records if r[0] == label]
    if not mine:
        continue
    live = view.snapshot.live_ids_
    brute = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(
        X_all[view.keys[live]]
    )
    queries = np.concatenate([r[3] for r in mine])
    dist_ref, pos_ref = brute.kneighbors(queries)
    ids = np.concatenate([r[4] for r in mine])
    keys = np.concatenate([r[5] for r in mine])
    dist = np.concatenate([r[6] for r in mine])
    ok_ids = np.array_equal(ids, live[pos_ref])
    ok_keys = np.array_equal(keys, view.keys[live[pos_ref]])
    ok_dist = np.allclose(dist, dist_ref)
    all_ok &= ok_ids and ok_keys and ok_dist
    n_checked += len(queries)
    print(f"{label}: {len(mine):4d} requests, ids {ok_ids}, keys {ok_keys}, distances {ok_dist}")
print(f"all {n_checked} served queries equal brute force on their version: {all_ok}")

# %%
# The same check against the *next* version shows that the versions differ
# where it matters: a good part of the answers of one version are not
# answers of the next (the window slid, new clusters became active). The
# refit is the exception: it changes the ids, not the points, so once the
# ids are translated into keys its answers are the same.

labels_in_order = list(served_by)
for old, new in pairwise(labels_in_order):
    mine = [r for r in records if r[0] == old]
    if not mine:
        continue
    view = served_by[new]
    live = view.snapshot.live_ids_
    brute = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(
        X_all[view.keys[live]]
    )
    keys_next = view.keys[live[brute.kneighbors(np.concatenate([r[3] for r in mine]))[1]]]
    keys_served = np.concatenate([r[5] for r in mine])
    differ = np.any(keys_next != keys_served, axis=1).mean()
    print(f"queries of {old} whose answer differs under {new}: {differ:.0%}")

# %%
# A long request across a swap
# ----------------------------
#
# Some requests ask several questions that must agree, for example the
# neighbours of every live sample (``kneighbors()`` without ``X``, one row
# per live sample) *and* the ids those rows belong to (``live_ids_``). Read
# from one snapshot, they belong together even if the variable is swapped
# and the estimator updated while the request runs. Here a request thread
# starts that report, and meanwhile the worker slides the window once more
# and the main thread swaps; the report is then checked against brute force
# on the version it read.


def report():
    view = current  # read once
    dist, ids = view.snapshot.kneighbors()  # rows: view.snapshot.live_ids_
    return view, view.snapshot.live_ids_, ids


with ThreadPoolExecutor(max_workers=1) as requests, ThreadPoolExecutor(max_workers=1) as pool:
    long_request = requests.submit(report)
    update = pool.submit(*slide_job())
    current = update.result()  # swapped, possibly while the report is still running
    print("swapped to", current.label, "; report done at the swap:", long_request.done())
    view, rows, ids = long_request.result()

live = view.snapshot.live_ids_
X_live = X_all[view.keys[live]]
ref = NearestNeighbors(n_neighbors=n_neighbors + 1, algorithm="brute").fit(X_live)
sample = rng.choice(live.size, size=2_000, replace=False)  # brute force on a sample of rows
pos_ref = ref.kneighbors(X_live[sample], return_distance=False)[:, 1:]  # drop the point itself
print(f"report read {view.label} while {current.label} is served")
print(
    "the version served now has other live ids than the report's rows:",
    not np.array_equal(current.snapshot.live_ids_, rows),
)
print("sampled report rows equal brute force:", np.array_equal(ids[sample], live[pos_ref]))

# %%
# Latency over time
# -----------------
#
# Each dot is one request: when it started and how long the snapshot took
# to answer it, coloured by the version that answered. The shaded spans are
# the worker's jobs, the dashed lines the swaps. Requests never wait for the
# worker: queries take no lock, and the swap is one assignment between two
# requests. What the worker does cost them is CPU time: the two threads
# share the machine's cores (and Python's interpreter between kernel
# calls), so whether and how much latency rises while the worker runs
# depends on how many cores are free. The numbers depend on your machine
# and on how busy it is; the slowest 0.5 % of the requests are above the
# top of the plot.

t_start = np.array([r[1] for r in records])
latency_ms = 1e3 * np.array([r[2] for r in records])
fig, ax = plt.subplots(figsize=(11, 4.5))
colours = plt.get_cmap("tab10")
for i, label in enumerate(served_by):
    mask = np.array([lab == label for lab in labels])
    if mask.any():
        ax.scatter(t_start[mask], latency_ms[mask], s=6, color=colours(i), label=f"by {label}")
for name, a, b in job_spans:
    ax.axvspan(a, b, color="0.85", zorder=0)
    ax.text((a + b) / 2, 0.97, name, transform=ax.get_xaxis_transform(), ha="center", va="top")
for t in swaps:
    ax.axvline(t, color="k", ls="--", lw=1)
ax.set_ylim(0, 1.2 * np.percentile(latency_ms, 99.5))
ax.set_xlabel("time since the first request [s]")
ax.set_ylabel("request latency [ms]")
ax.set_title(f"kneighbors of 20 points, k = {n_neighbors}; grey: worker busy, dashed: swap")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", markerscale=3)
fig.tight_layout()
plt.show()
