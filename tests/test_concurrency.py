"""Queries and updates from several threads (issue 3).

Every update publishes a new immutable version with one assignment, so a
query running in another thread must answer exactly as one of the versions
that existed -- never a mixture of two -- and concurrent updates are
serialised: none of them is lost.
"""

import threading
import time

import numpy as np
import pytest

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._metric import MetricSpec
from sklearn_pcct._testing import brute_force_knn
from sklearn_pcct._tree import check_tree_invariants

SPEC = MetricSpec("euclidean")
K = 4
RTOL = 1e-10
N_READERS = 3


def _run_threads(targets, timeout=60):
    """Run the callables in threads; re-raise the first exception of any of them."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: B036 - reported in the main thread
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def _plan(rng, X0, Q, n_updates):
    """A fixed sequence of updates and, for every version, its live ids, points and answer.

    Each update changes the k-NN answer of some query (an insert lands next to
    it, a removal takes its nearest neighbour), so the answers of all versions
    are pairwise different and a reader's result identifies one version.
    """
    d = X0.shape[1]
    points = X0.copy()
    live = np.ones(len(X0), dtype=bool)

    def expected():
        ids = np.flatnonzero(live)
        dist, ind = brute_force_knn(points[ids], Q, K, SPEC)
        return {"ids": ids, "dist": dist, "ind": ids[ind]}

    versions = [expected()]
    updates = []
    for u in range(n_updates):
        j = u % len(Q)
        if u % 2 == 0:
            new = rng.random((30, d))
            new[0] = Q[j] + 1e-7 * (1 + rng.random(d))  # the new 1-NN of Q[j]
            new[1:5] = points[rng.choice(np.flatnonzero(live), 4)]  # duplicates
            new[5] = new[1]  # and a duplicate inside the batch
            updates.append(("partial_fit", new))
            points = np.vstack([points, new])
            live = np.concatenate([live, np.ones(len(new), dtype=bool)])
        else:
            nearest = versions[-1]["ind"][j, 0]
            others = rng.choice(np.flatnonzero(live), 20, replace=False)
            ids = np.unique(np.concatenate(([nearest], others)))
            updates.append(("remove", ids))
            live[ids] = False
        versions.append(expected())
    for a in range(len(versions)):
        for b in range(a):
            assert not np.array_equal(versions[a]["ind"], versions[b]["ind"])
    return updates, versions


def _matching_versions(result, versions):
    dist, ind = result
    return [
        v for v, exp in enumerate(versions)
        if np.array_equal(ind, exp["ind"])
        and np.allclose(dist, exp["dist"], rtol=RTOL, atol=0)
    ]


# "auto": the kd-tree index takes the updates (3 features); "cover_tree": the cover tree
@pytest.mark.parametrize("n_jobs, algorithm", [(None, "auto"), (2, "auto"), (2, "cover_tree")])
def test_readers_see_whole_versions(n_jobs, algorithm):
    rng = np.random.default_rng(99)
    X0 = rng.random((3000, 3))
    Q = rng.random((40, 3))
    updates, versions = _plan(rng, X0, Q, n_updates=30)
    est = PCCTNeighbors(n_neighbors=K, n_jobs=n_jobs, algorithm=algorithm).fit(X0)
    assert _matching_versions(est.kneighbors(Q), versions) == [0]

    done = threading.Event()
    start = threading.Barrier(N_READERS + 1)
    seen = [[] for _ in range(N_READERS)]
    snap_seen = [[] for _ in range(N_READERS)]

    def writer():
        start.wait()
        for v, (op, arg) in enumerate(updates, start=1):
            getattr(est, op)(arg)
            # only this thread writes: the estimator is now at version v
            assert est.version_ == v
            np.testing.assert_array_equal(est.live_ids_, versions[v]["ids"])
            time.sleep(0.003)
        done.set()

    def reader(r):
        def run():
            start.wait()
            n = 0
            while not done.is_set() or n < 5:
                seen[r].append(est.kneighbors(Q))
                if n % 4 == 0:  # a snapshot is one consistent version
                    snap = est.snapshot()
                    snap_seen[r].append(
                        (snap.version_, snap.live_ids_.copy(), snap.kneighbors(Q))
                    )
                n += 1

        return run

    _run_threads([writer] + [reader(r) for r in range(N_READERS)])

    observed = set()
    for results in seen:
        last = 0
        for result in results:
            match = _matching_versions(result, versions)
            assert len(match) == 1, f"a query answered as versions {match} (a mixture?)"
            # one thread never sees an older version after a newer one
            assert match[0] >= last
            last = match[0]
            observed.add(match[0])
    for snaps in snap_seen:
        for version, ids, result in snaps:
            np.testing.assert_array_equal(ids, versions[version]["ids"])
            assert _matching_versions(result, versions) == [version]
    assert len(observed) >= 2, "the readers never overlapped the writer"
    assert _matching_versions(est.kneighbors(Q), versions) == [len(updates)]
    check_tree_invariants(est.tree_)


@pytest.mark.parametrize("algorithm", ["auto", "cover_tree"])
def test_transformer_graph_readers_see_whole_versions(algorithm):
    rng = np.random.default_rng(5)
    X0 = rng.random((400, 2))
    n_neighbors = 3
    est = PCCTTransformer(n_neighbors=n_neighbors, algorithm=algorithm).fit(X0)
    _ = est.graph_  # incremental updates from here on

    points = X0.copy()
    live = np.ones(len(X0), dtype=bool)
    updates, graphs = [], []

    def expected_rows():
        ids = np.flatnonzero(live)
        dist, ind = brute_force_knn(points[ids], points[ids], n_neighbors + 1, SPEC)
        return ids, ids[ind], dist

    graphs.append(expected_rows())
    for u in range(16):
        if u % 2 == 0:
            new = rng.random((20, 2))
            new[:3] = points[rng.choice(np.flatnonzero(live), 3)]
            updates.append(("partial_fit", new))
            points = np.vstack([points, new])
            live = np.concatenate([live, np.ones(len(new), dtype=bool)])
        else:
            ids = rng.choice(np.flatnonzero(live), 25, replace=False)
            updates.append(("remove", ids))
            live[ids] = False
        graphs.append(expected_rows())

    done = threading.Event()
    start = threading.Barrier(3)
    seen = [[], []]

    def writer():
        start.wait()
        for op, arg in updates:
            getattr(est, op)(arg)
            time.sleep(0.003)
        done.set()

    def reader(r):
        def run():
            start.wait()
            n = 0
            while not done.is_set() or n < 3:
                seen[r].append(est.graph_)
                n += 1

        return run

    _run_threads([writer, reader(0), reader(1)])

    n_ids = np.cumsum([len(X0)] + [len(a) if op == "partial_fit" else 0 for op, a in updates])

    def matches(G, v):
        ids, ind, dist = graphs[v]
        if G.shape != (n_ids[v], n_ids[v]) or G.nnz != ind.size:
            return False
        rows = G[ids]
        return np.array_equal(rows.indices, ind.ravel()) and np.allclose(
            rows.data, dist.ravel(), rtol=RTOL, atol=0
        )

    observed = set()
    for results in seen:
        for G in results:
            match = [v for v in range(len(graphs)) if matches(G, v)]
            assert len(match) == 1, f"graph_ matches versions {match}"
            observed.add(match[0])
    assert len(observed) >= 2
    assert [v for v in range(len(graphs)) if matches(est.graph_, v)] == [len(updates)]


@pytest.mark.parametrize("cls", [PCCTNeighbors, PCCTTransformer])
def test_concurrent_updates_all_land(cls):
    rng = np.random.default_rng(3)
    n0, d = 500, 3
    X0 = rng.random((n0, d))
    est = cls(n_neighbors=2).fit(X0)
    n_batches, batch = 15, 8
    # rows tagged by thread and batch: all distinct, far from X0
    batches = {
        t: [np.column_stack([np.full(batch, 10.0 + 100 * t + b), rng.random((batch, d - 1))])
            for b in range(n_batches)]
        for t in range(2)
    }
    to_remove = rng.permutation(n0)[:300].reshape(15, 20)
    start = threading.Barrier(3)

    def inserter(t):
        def run():
            start.wait()
            for X in batches[t]:
                est.partial_fit(X)

        return run

    def remover():
        start.wait()
        for ids in to_remove:
            est.remove(ids)

    _run_threads([inserter(0), inserter(1), remover])

    n_new = 2 * n_batches * batch
    assert est.n_samples_fit_ == n0 + n_new
    assert est.version_ == 2 * n_batches + len(to_remove)
    expected_live = np.setdiff1d(np.arange(n0 + n_new), to_remove.ravel())
    np.testing.assert_array_equal(est.live_ids_, expected_live)
    check_tree_invariants(est.tree_)
    # every batch got a block of consecutive ids, in order
    blocks = []
    all_points = np.empty((n0 + n_new, d))
    all_points[:n0] = X0
    for t in range(2):
        for X in batches[t]:
            dist, ind = est.kneighbors(X, n_neighbors=1)
            assert np.all(dist == 0)
            ids = ind[:, 0]
            np.testing.assert_array_equal(ids, ids[0] + np.arange(batch))
            all_points[ids] = X
            blocks.append(ids[0])
    assert sorted(blocks) == list(range(n0, n0 + n_new, batch))
    Q = rng.random((30, d))
    dist, ind = est.kneighbors(Q, n_neighbors=3)
    d_ref, i_ref = brute_force_knn(all_points[expected_live], Q, 3, SPEC)
    np.testing.assert_array_equal(ind, expected_live[i_ref])
    np.testing.assert_allclose(dist, d_ref, rtol=RTOL, atol=0)
    if cls is PCCTTransformer:
        G = est.graph_
        ids = expected_live
        d_ref, i_ref = brute_force_knn(all_points[ids], all_points[ids], 3, SPEC)
        np.testing.assert_array_equal(G[ids].indices, ids[i_ref].ravel())


class _RendezvousNeighbors(PCCTNeighbors):
    """Makes two threads meet inside ``fit`` (when it is not serialised)."""

    def fit(self, X, y=None):
        try:
            self._rendezvous.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return super().fit(X, y)


def test_concurrent_first_partial_fit_calls_both_land():
    rng = np.random.default_rng(11)
    est = _RendezvousNeighbors(n_neighbors=1)
    est._rendezvous = threading.Barrier(2)
    A, B = rng.random((10, 2)), rng.random((7, 2)) + 5.0
    _run_threads([lambda: est.partial_fit(A), lambda: est.partial_fit(B)])
    assert est.n_samples_fit_ == 17
    np.testing.assert_array_equal(est.live_ids_, np.arange(17))
    assert np.all(est.kneighbors(np.vstack([A, B]), n_neighbors=1)[0] == 0)


_WORKQUEUE_SCRIPT = """
import threading
import numba
import numpy as np
from sklearn_pcct import PCCTNeighbors

X = np.random.default_rng(0).random((4000, 3))
Q = np.random.default_rng(1).random((2000, 3))
est = PCCTNeighbors(n_neighbors=5, n_jobs=2)
results, errors = {}, []

def work(i):
    try:
        for _ in range(5):
            local = PCCTNeighbors(n_neighbors=5, n_jobs=2).fit(X[i::2])
            local.partial_fit(Q[:100])
            results[i] = local.kneighbors(Q)
    except BaseException as exc:
        errors.append(exc)

threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
assert numba.threading_layer() == "workqueue", numba.threading_layer()
D = np.linalg.norm(Q[:, None] - X[None, 0::2], axis=2)
D = np.hstack([D, np.linalg.norm(Q[:, None] - Q[None, :100], axis=2)])
ref = np.sort(D, axis=1)[:, :5]
np.testing.assert_allclose(results[0][0], ref, rtol=1e-12)
print("ok")
"""


def test_workqueue_layer_calls_take_turns():
    # Numba's workqueue layer aborts the process when two threads enter a
    # parallel region at once; the backend serialises calls under it.
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run(
        [sys.executable, "-c", _WORKQUEUE_SCRIPT], env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
