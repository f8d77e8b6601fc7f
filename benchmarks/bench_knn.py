"""Exact k-nearest-neighbour benchmark: sklearn-pcct against its peers.

For each workload, in one process and on the same data, every method is timed on
(1) building its index, (2) the all-kNN self graph (``X=None`` semantics: the k
nearest neighbours of every fitted point, excluding the point itself) and (3) k
neighbours of ``--n-queries`` fresh points. Each phase is the median of
``--repeats`` runs; the JIT warm-up is measured and printed on its own line and
is never part of the timed runs. See ``benchmarks/README.md`` for the columns.

Run ``python benchmarks/bench_knn.py --workload all`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

# A returned neighbour counts as correct when its true distance is within this
# relative tolerance of the exact k-th neighbour distance (tie-safe recall).
RTOL = 1e-9
# Brute-force methods (sklearn brute, faiss flat) are skipped when the all-kNN
# graph would cost more than this many n * n * d multiply-adds.
BRUTE_MAX_WORK = 2e12
# Recall is an exact-method check: a peer counts as "exact" for the ratio
# columns only if it is declared exact and its measured recall is 1.
EXACT_RECALL = 1.0 - 1e-12

ALL_PEERS = (
    "ckdtree",
    "pykdtree",
    "kd_tree",
    "ball_tree",
    "brute",
    "faiss",
    "hnswlib",
    "pynndescent",
    "ours_cover_tree",  # ours with algorithm="cover_tree", outside the peer ratios
)


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    n: int
    k: int
    make: object  # (rng, n, n_queries) -> (X, Q)
    # default peers when --peers is not given (ours on the cover tree alone only on request)
    peers: tuple = tuple(p for p in ALL_PEERS if p != "ours_cover_tree")
    max_n: int | None = None


def _uniform(d):
    def make(rng, n, n_queries):
        return rng.random((n, d)), rng.random((n_queries, d))

    return make


def _manifold64(rng, n, n_queries):
    """A 3-D nonlinear manifold in 64-D: X = sin(Z A) + 0.5 cos(2 Z B), Z ~ U[0,1]^3."""
    a = rng.standard_normal((3, 64))
    b = rng.standard_normal((3, 64))

    def embed(z):
        return np.sin(z @ a) + 0.5 * np.cos(2.0 * (z @ b))

    return embed(rng.random((n, 3))), embed(rng.random((n_queries, 3)))


def _gmm16(rng, n, n_queries):
    """50 isotropic Gaussian clusters in 16-D: centres ~ U[-5,5]^16, std ~ U[0.2,1]."""
    centres = rng.uniform(-5.0, 5.0, (50, 16))
    scales = rng.uniform(0.2, 1.0, 50)

    def sample(m):
        label = rng.integers(0, 50, m)
        return centres[label] + scales[label, None] * rng.standard_normal((m, 16))

    return sample(n), sample(n_queries)


def _digits(rng, n, n_queries):
    """sklearn's digits (1797 x 64, pixels 0..16).

    There is no held-out set: the queries are digits resampled with replacement
    plus N(0, 0.5^2) pixel noise, so they are near, but never on, fitted points.
    With ``--n`` below 1797 the fitted points are a random subset.
    """
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float64)
    if n < len(data):
        data = data[np.sort(rng.choice(len(data), n, replace=False))]
    picks = rng.integers(0, len(data), n_queries)
    return data, data[picks] + rng.normal(0.0, 0.5, (n_queries, data.shape[1]))


WORKLOADS = {
    w.name: w
    for w in (
        Workload("uniform2", "uniform [0,1]^2", 100_000, 16, _uniform(2)),
        Workload("uniform8", "uniform [0,1]^8", 100_000, 16, _uniform(8)),
        Workload(
            "manifold64",
            "3-D nonlinear manifold in 64-D (sin(ZA) + 0.5 cos(2ZB))",
            50_000,
            16,
            _manifold64,
        ),
        Workload("gmm16", "50-cluster Gaussian mixture in 16-D", 100_000, 16, _gmm16),
        Workload("digits", "sklearn digits (64-D)", 1797, 10, _digits, max_n=1797),
        Workload("uniform8_1m", "uniform [0,1]^8", 1_000_000, 16, _uniform(8), peers=("ckdtree",)),
    )
}


# --------------------------------------------------------------------------- methods


def drop_self(dist, ind):
    """Turn a (n, k + 1) self query into the (n, k) graph that excludes each point.

    Removes the column holding the point itself; where duplicates pushed the
    point out of its own k + 1 neighbours, removes the last column instead.
    """
    n = ind.shape[0]
    is_self = ind == np.arange(n)[:, None]
    is_self &= np.cumsum(is_self, axis=1) == 1
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return dist[keep].reshape(n, -1), ind[keep].reshape(n, -1)


def _as_2d(dist, ind, m):
    return np.asarray(dist).reshape(m, -1), np.asarray(ind).reshape(m, -1)


class Method:
    """One kNN implementation: build an index, its self graph, fresh queries."""

    key = ""
    name = ""
    exact = "yes"
    module = None  # importable module that must be present
    brute = False

    def __init__(self, n_jobs, seed):
        self.n_jobs = n_jobs
        self.n_threads = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        self.seed = seed

    def unavailable(self):
        """Reason the method cannot run here (None when it can)."""
        if not self.module:
            return None
        try:
            found = importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else "not installed"

    def skip_reason(self, n, d, k):
        if self.brute and float(n) * n * d > BRUTE_MAX_WORK:
            return (
                f"brute force all-kNN needs n^2 d = {float(n) * n * d:.1e} > {BRUTE_MAX_WORK:.0e}"
            )
        return None

    def build(self, X, k):
        raise NotImplementedError

    def self_knn(self, index, X, k):
        """(dist, ind) of shape (n, k): neighbours of each fitted point, excluding itself."""
        return drop_self(*self.query(index, X, k + 1))

    def query(self, index, Q, k):
        raise NotImplementedError


class Ours(Method):
    key = "ours"
    name = "sklearn-pcct PCCTNeighbors (ours)"
    module = "sklearn_pcct"

    def build(self, X, k):
        from sklearn_pcct import PCCTNeighbors

        return PCCTNeighbors(n_neighbors=k, n_jobs=self.n_jobs).fit(X)

    def self_knn(self, index, X, k):
        return index.kneighbors()

    def query(self, index, Q, k):
        return index.kneighbors(Q)


class OursCoverTree(Ours):
    """Ours on the cover tree alone (``algorithm="cover_tree"``): not a peer."""

    key = "ours_cover_tree"
    name = "sklearn-pcct PCCTNeighbors(algorithm='cover_tree') (ours, not a peer)"

    def build(self, X, k):
        from sklearn_pcct import PCCTNeighbors

        return PCCTNeighbors(n_neighbors=k, n_jobs=self.n_jobs, algorithm="cover_tree").fit(X)


class CKDTree(Method):
    key = "ckdtree"
    name = "scipy cKDTree (workers=n_jobs)"
    module = "scipy"

    def build(self, X, k):
        from scipy.spatial import cKDTree

        return cKDTree(X)

    def query(self, index, Q, k):
        return _as_2d(*index.query(Q, k, workers=self.n_jobs), len(Q))


class PyKDTree(Method):
    key = "pykdtree"
    name = "pykdtree KDTree (OpenMP)"
    module = "pykdtree"

    def build(self, X, k):
        from pykdtree.kdtree import KDTree

        return KDTree(X)

    def query(self, index, Q, k):
        dist, ind = _as_2d(*index.query(Q, k=k), len(Q))
        return dist, ind.astype(np.int64)


class Sklearn(Method):
    module = "sklearn"

    def __init__(self, algorithm, n_jobs, seed):
        super().__init__(n_jobs, seed)
        self.algorithm = algorithm
        self.key = algorithm
        self.name = f"sklearn NearestNeighbors {algorithm}"
        self.brute = algorithm == "brute"

    def build(self, X, k):
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k, algorithm=self.algorithm, n_jobs=self.n_jobs).fit(X)

    def self_knn(self, index, X, k):
        return index.kneighbors()  # sklearn has X=None semantics itself

    def query(self, index, Q, k):
        return index.kneighbors(Q)


class Faiss(Method):
    key = "faiss"
    name = "faiss IndexFlatL2 (float32)"
    exact = "yes (float32)"
    module = "faiss"
    brute = True

    def build(self, X, k):
        import faiss

        faiss.omp_set_num_threads(self.n_threads)
        index = faiss.IndexFlatL2(X.shape[1])
        index.add(np.ascontiguousarray(X, dtype=np.float32))
        return index

    def query(self, index, Q, k):
        sq, ind = index.search(np.ascontiguousarray(Q, dtype=np.float32), k)
        return np.sqrt(np.maximum(sq, 0)), ind


class Hnswlib(Method):
    key = "hnswlib"
    name = "hnswlib (M=16, efC=200, ef=max(50,2k))"
    exact = "no"
    module = "hnswlib"

    def build(self, X, k):
        import hnswlib

        index = hnswlib.Index(space="l2", dim=X.shape[1])
        index.init_index(max_elements=len(X), M=16, ef_construction=200, random_seed=self.seed)
        index.add_items(X, np.arange(len(X)), num_threads=self.n_threads)
        index.set_ef(max(50, 2 * k))
        return index

    def query(self, index, Q, k):
        ind, sq = index.knn_query(Q, k=k, num_threads=self.n_threads)
        return np.sqrt(np.maximum(sq, 0)), ind.astype(np.int64)


class PyNNDescent(Method):
    key = "pynndescent"
    name = "pynndescent NNDescent (prepared)"
    exact = "no"
    module = "pynndescent"

    def build(self, X, k):
        import numba
        from pynndescent import NNDescent

        threads = numba.get_num_threads()  # NNDescent changes Numba's global thread count
        try:
            index = NNDescent(
                X, n_neighbors=max(30, k + 1), random_state=self.seed, n_jobs=self.n_jobs
            )
            index.prepare()  # the search graph: part of building, not of the first query
        finally:
            numba.set_num_threads(threads)
        return index

    def query(self, index, Q, k):
        return _as_2d(*index.query(Q, k=k)[::-1], len(Q))


def make_methods(n_jobs, seed):
    peers = {
        "ours_cover_tree": OursCoverTree(n_jobs, seed),
        "ckdtree": CKDTree(n_jobs, seed),
        "pykdtree": PyKDTree(n_jobs, seed),
        **{a: Sklearn(a, n_jobs, seed) for a in ("kd_tree", "ball_tree", "brute")},
        "faiss": Faiss(n_jobs, seed),
        "hnswlib": Hnswlib(n_jobs, seed),
        "pynndescent": PyNNDescent(n_jobs, seed),
    }
    return Ours(n_jobs, seed), peers


# --------------------------------------------------------------------------- memory


def _proc_status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def _release_free_memory():
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc: hand freed heap pages back to the OS


class PeakMemory:
    """Peak resident memory a block of code adds on top of what was resident before it.

    On Linux the kernel's own high-water mark is used: ``/proc/self/clear_refs``
    (``5``) resets ``VmHWM`` to the current RSS, and ``VmHWM`` after the block
    minus RSS before it is the exact peak, C/C++/OpenMP allocations included.
    Elsewhere it falls back to sampling psutil's RSS every 2 ms in a thread
    (can miss short peaks), or reports nothing.
    """

    def __init__(self):
        self.mode = self._detect()
        self.peak = None

    @staticmethod
    def _detect():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            _proc_status_bytes("VmHWM")
            return "vmhwm"
        except OSError:
            pass
        if importlib.util.find_spec("psutil") is not None:
            return "psutil"
        return "none"

    def __enter__(self):
        _release_free_memory()
        if self.mode == "vmhwm":
            self._base = _proc_status_bytes("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        elif self.mode == "psutil":
            import psutil

            proc = psutil.Process()
            self._base = self._max = proc.memory_info().rss
            self._stop = threading.Event()

            def sample():
                while not self._stop.wait(0.002):
                    self._max = max(self._max, proc.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.mode == "vmhwm":
            self.peak = max(0, _proc_status_bytes("VmHWM") - self._base)
        elif self.mode == "psutil":
            self._stop.set()
            self._thread.join()
            self.peak = max(0, self._max - self._base)
        return False


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    method: str
    exact: str
    status: str = "ok"
    build: list = field(default_factory=list)
    allknn: list = field(default_factory=list)
    queries: list = field(default_factory=list)
    peak_bytes: int | None = None
    recall: float | None = None
    query_recall: float | None = None

    def median(self, phase):
        values = getattr(self, phase)
        return statistics.median(values) if values else None

    @property
    def ok(self):
        return self.status == "ok"


def thread_limits(n_jobs):
    """Cap BLAS/OpenMP pools (sklearn brute's BLAS, pykdtree, faiss) when n_jobs != -1."""
    if n_jobs == -1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, n_jobs))


def run_method(method, X, Q, k, repeats, n_jobs):
    """Time build / all-kNN / queries ``repeats`` times; peak memory over all of them."""
    result = Result(method.name, method.exact)
    index = graph = answer = None
    with thread_limits(n_jobs), PeakMemory() as mem:
        for _ in range(repeats):
            index = graph = answer = None  # free the previous run before the next one
            t0 = time.perf_counter()
            index = method.build(X, k)
            t1 = time.perf_counter()
            graph = method.self_knn(index, X, k)
            t2 = time.perf_counter()
            answer = method.query(index, Q, k)
            t3 = time.perf_counter()
            result.build.append(t1 - t0)
            result.allknn.append(t2 - t1)
            result.queries.append(t3 - t2)
    result.peak_bytes = mem.peak
    return result, graph[1], answer[1]


def warm_up(method, X, Q, k, n_jobs):
    """One untimed-in-the-table run on a subset: JIT compile, thread pools, imports."""
    t0 = time.perf_counter()
    with thread_limits(n_jobs):
        index = method.build(X, k)
        method.self_knn(index, X, k)
        method.query(index, Q, k)
    return time.perf_counter() - t0


def exact_kth(X, Q, k, n_jobs):
    """Exact k-th neighbour distances: of every fitted point (self excluded) and of Q."""
    from scipy.spatial import cKDTree

    tree = cKDTree(X)
    self_dist = np.asarray(tree.query(X, k + 1, workers=n_jobs)[0]).reshape(len(X), -1)
    query_dist = np.asarray(tree.query(Q, k, workers=n_jobs)[0]).reshape(len(Q), -1)
    # The point itself sits at distance 0, first among its k + 1: the k-th
    # neighbour of the self-excluded graph is the last column, duplicates or not.
    return self_dist[:, -1], query_dist[:, -1]


def recall(X, Y, ind, kth, exclude_self):
    """Fraction of returned neighbours whose true distance is <= the exact k-th distance.

    Distances are recomputed in float64 from the returned indices (what a method
    reports as distance is not trusted); indices that are out of range,
    repeated in a row, or (for the self graph) the point itself never count.
    """
    ind = np.sort(np.asarray(ind, dtype=np.int64), axis=1)
    m, k = ind.shape
    valid = (ind >= 0) & (ind < len(X))
    valid[:, 1:] &= ind[:, 1:] != ind[:, :-1]
    if exclude_self:
        valid &= ind != np.arange(m)[:, None]
    safe = np.where(valid, ind, 0)
    limit = kth * (1.0 + RTOL)
    chunk = max(1, 4_000_000 // (k * X.shape[1]))
    hits = 0
    for start in range(0, m, chunk):
        rows = slice(start, start + chunk)
        diff = X[safe[rows]] - Y[rows, None, :]
        dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        hits += np.count_nonzero(valid[rows] & (dist <= limit[rows, None]))
    return hits / (m * k)


# --------------------------------------------------------------------------- reporting


def fmt_s(t):
    if t is None:
        return "–"
    return f"{t:.3f}" if t < 1 else f"{t:.3g}"


def fmt_recall(r):
    if r is None:
        return "–"
    if r == 1.0:
        return "1.000"
    return f"{min(r, 0.9999):.4f}"  # never round an inexact answer up to 1


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}"


def fastest_exact(peer_results, key):
    exact = [r for r in peer_results if r.ok and r.exact != "no" and r.recall >= EXACT_RECALL]
    return min(exact, key=key, default=None)


def build_plus_allknn(r):
    return r.median("build") + r.median("allknn")


def print_table(results, ours_key, n_queries):
    peers = [r for key, r in results if not key.startswith(ours_key)]
    best_graph = fastest_exact(peers, build_plus_allknn)
    best_query = fastest_exact(peers, lambda r: r.median("queries"))
    q_label = "2k" if n_queries == 2000 else f"{n_queries}"
    print(
        f"| method | exact | build s | all-kNN s | {q_label} queries s | peak MiB | recall "
        "| (build+allkNN)/fastest exact | queries/fastest exact |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for key, r in results:
        if not r.ok:
            print(f"| {r.method} | {r.exact} | {r.status} | – | – | – | – | – | – |")
            continue
        g = build_plus_allknn(r) / build_plus_allknn(best_graph) if best_graph else None
        q = r.median("queries") / best_query.median("queries") if best_query else None
        ratios[key] = (g, q)
        mib = None if r.peak_bytes is None else r.peak_bytes / 2**20
        print(
            f"| {r.method} | {r.exact} | {fmt_s(r.median('build'))} "
            f"| {fmt_s(r.median('allknn'))} | {fmt_s(r.median('queries'))} "
            f"| {'n/a' if mib is None else f'{mib:.1f}'} | {fmt_recall(r.recall)} "
            f"| {fmt_ratio(g)} | {fmt_ratio(q)} |"
        )
    print()
    for label, best, value in (
        ("build+all-kNN", best_graph, build_plus_allknn),
        ("queries", best_query, lambda r: r.median("queries")),
    ):
        if best is None:
            print(f"fastest exact peer ({label}): none ran with recall 1; ratios are blank")
        else:
            print(f"fastest exact peer ({label}): {best.method}, {fmt_s(value(best))} s")
    return ratios


def versions():
    names = (
        "sklearn-pcct",
        "numpy",
        "scipy",
        "scikit-learn",
        "numba",
        "threadpoolctl",
        "pykdtree",
        "faiss-cpu",
        "hnswlib",
        "pynndescent",
        "psutil",
    )
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine_info(n_jobs):
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "n_jobs": n_jobs,
    }
    if hasattr(os, "sched_getaffinity"):
        info["cores_usable"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["cpu"] = models[0]
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            total = next(line for line in f if line.startswith("MemTotal"))
        info["memory_gib"] = round(int(total.split()[1]) / 2**20, 1)
    with contextlib.suppress(ImportError):
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        info["thread_pools"] = sorted(
            {f"{p['internal_api']}x{p['num_threads']}" for p in threadpool_info()}
        )
    env = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    info["env"] = {v: os.environ[v] for v in env if v in os.environ}
    info["versions"] = versions()
    return info


def loadavg():
    with contextlib.suppress(OSError, AttributeError):
        return tuple(round(x, 2) for x in os.getloadavg())
    return None

def print_machine(info, n_jobs):
    """The machine, thread and version lines that head every benchmark's report."""
    print(f"- machine: {info['cpu']}, {info['cores']} cores", end="")
    if "cores_usable" in info:
        print(f" ({info['cores_usable']} usable)", end="")
    print(f", {info.get('memory_gib', '?')} GiB, {info['platform']}, Python {info['python']}")
    print(f"- threads: n_jobs {n_jobs}, Numba {info.get('numba_threads', '?')}, ", end="")
    print(f"pools {info.get('thread_pools', '?')}, env {info['env'] or '{}'}")
    print("- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))


def finish(info, failed, emit):
    """Print the closing load average and any failed exactness check; the exit status."""
    end = loadavg()
    print(f"\nload average at start {info['load_average_start']}, at end {end}")
    emit({"type": "end", "load_average_end": end, "failed_checks": failed})
    if failed:
        print("\nEXACTNESS CHECK FAILED:\n" + "\n".join(f"- {f}" for f in failed))
        return 1
    return 0



# --------------------------------------------------------------------------- main


def run_workload(workload, args, ours, peers, emit):
    rng = np.random.default_rng(args.seed)
    n = args.n or workload.n
    if workload.max_n is not None and n > workload.max_n:
        print(f"note: {workload.name} has {workload.max_n} points; --n {n} capped")
        n = workload.max_n
    k = args.k or workload.k
    t0 = time.perf_counter()
    X, Q = workload.make(rng, n, args.n_queries)
    X, Q = np.ascontiguousarray(X, np.float64), np.ascontiguousarray(Q, np.float64)
    t_data = time.perf_counter() - t0
    if k >= len(X):
        raise SystemExit(f"k = {k} needs more than {len(X)} points")
    keys = workload.peers if args.peers is None else args.peers

    print(f"\n## {workload.name}: {workload.description}, n = {n:,}, d = {X.shape[1]}, k = {k}")
    print(
        f"\n{len(Q):,} queries, median of {args.repeats} timed runs, seed {args.seed}, "
        f"n_jobs {args.n_jobs}, load average at start {loadavg()}, data made in {t_data:.2f} s\n"
    )

    t0 = time.perf_counter()
    kth_self, kth_query = exact_kth(X, Q, k, args.n_jobs)
    print(
        "exact reference for the recall column (scipy cKDTree, not a table entry): "
        f"{time.perf_counter() - t0:.2f} s"
    )

    m = min(len(X), args.warmup_n)
    wx, wq = X[:m], Q[: min(len(Q), 200)]
    wk = min(k, m - 1)
    methods = [("ours", ours)]
    results = []
    for key in keys:
        method = peers[key]
        reason = method.unavailable() or method.skip_reason(n, X.shape[1], k)
        if reason is None:
            methods.append((key, method))
        else:
            status = reason if reason == "not installed" else f"skipped ({reason})"
            results.append((key, Result(method.name, method.exact, status=status)))

    warm = {}
    for key, method in methods:
        try:
            warm[key] = warm_up(method, wx, wq, wk, args.n_jobs)
        except Exception as exc:  # a method that fails is reported, never fatal
            traceback.print_exc(file=sys.stderr)
            warm[key] = f"failed ({type(exc).__name__}: {exc})"
        if key == "ours":
            print(
                f"JIT warm-up ours (fit + kneighbors() + kneighbors(Q) on the first {m:,} "
                f"points, k = {wk}; Numba compile or cache load; NOT in the table): "
                f"{fmt_s(warm[key]) if isinstance(warm[key], float) else warm[key]} s"
            )
    others = ", ".join(
        f"{key} {fmt_s(t) if isinstance(t, float) else t}"
        for key, t in warm.items()
        if key != "ours"
    )
    if others:
        print(f"warm-up peers (same subset, NOT in the table), s: {others}")
    print()

    for key, method in methods:
        if isinstance(warm[key], str):
            results.append((key, Result(method.name, method.exact, status=warm[key])))
            continue
        try:
            result, graph, answer = run_method(method, X, Q, k, args.repeats, args.n_jobs)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            status = f"failed ({type(exc).__name__}: {exc})"
            results.append((key, Result(method.name, method.exact, status=status)))
            continue
        result.recall = recall(X, X, graph, kth_self, exclude_self=True)
        result.query_recall = recall(X, Q, answer, kth_query, exclude_self=False)
        del graph, answer
        results.append((key, result))

    order = ["ours", *keys]
    results.sort(key=lambda item: order.index(item[0]))
    ratios = print_table(results, "ours", len(Q))
    print(f"load average at end: {loadavg()}")

    for key, r in results:
        g, q = ratios.get(key, (None, None))
        emit(
            {
                "type": "result",
                "workload": workload.name,
                "n": n,
                "d": X.shape[1],
                "k": k,
                "n_queries": len(Q),
                "repeats": args.repeats,
                "seed": args.seed,
                "method": key,
                "name": r.method,
                "exact": r.exact,
                "status": r.status,
                "warmup_s": warm.get(key) if isinstance(warm.get(key), float) else None,
                "build_s": r.median("build"),
                "allknn_s": r.median("allknn"),
                "queries_s": r.median("queries"),
                "build_runs_s": r.build,
                "allknn_runs_s": r.allknn,
                "queries_runs_s": r.queries,
                "peak_mib": None if r.peak_bytes is None else r.peak_bytes / 2**20,
                "recall": r.recall,
                "query_recall": r.query_recall,
                "ratio_build_allknn": g,
                "ratio_queries": q,
            }
        )


def parse_peers(text, all_peers=None):
    """``--peers`` value: ``"all"``, ``"none"`` or a comma list of keys of ``all_peers``.

    ``all_peers`` defaults to this script's peers; the other benchmarks pass
    their own (``functools.partial``).
    """
    all_peers = ALL_PEERS if all_peers is None else all_peers
    if text in ("all", ""):
        return list(all_peers)
    if text == "none":
        return []
    keys = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(keys) - set(all_peers))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {unknown}; choose from {', '.join(all_peers)}, 'all' or 'none'"
        )
    return keys


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload", required=True, choices=[*WORKLOADS, "all"], help="workload to run"
    )
    parser.add_argument("--n", type=int, help="fitted points (default: the workload's)")
    parser.add_argument("--k", type=int, help="neighbours (default: 16, digits 10)")
    parser.add_argument("--n-queries", type=int, default=2000, help="fresh query points")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is shown")
    parser.add_argument("--seed", type=int, default=0, help="numpy Generator seed")
    parser.add_argument(
        "--peers",
        type=parse_peers,
        default=None,
        help=f"comma list from {', '.join(ALL_PEERS)}, or 'all' / 'none' "
        "(default: all installed; cKDTree only for uniform8_1m)",
    )
    parser.add_argument("--n-jobs", type=int, default=-1, help="threads for every method")
    parser.add_argument(
        "--warmup-n", type=int, default=2000, help="subset size of the untimed warm-up run"
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line per row")
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 2:
        parser.error("--n must be at least 2")
    if args.k is not None and args.k < 1:
        parser.error("--k must be at least 1")
    if args.n_queries < 1 or args.repeats < 1 or args.warmup_n < 2:
        parser.error("--n-queries and --repeats must be >= 1, --warmup-n >= 2")
    if args.n_jobs == 0 or args.n_jobs < -1:
        parser.error("--n-jobs must be -1 or a positive integer")

    def emit(record):
        if args.json:
            print(json.dumps(record))

    info = machine_info(args.n_jobs)
    info["memory_measure"] = PeakMemory().mode
    info["load_average_start"] = loadavg()
    print("# sklearn-pcct kNN benchmark\n")
    print_machine(info, args.n_jobs)
    print(f"- peak memory measured with: {info['memory_measure']}")
    print(f"- load average at start: {info['load_average_start']}")
    emit({"type": "machine", **info})

    ours, peers = make_methods(args.n_jobs, args.seed)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for name in names:
        run_workload(WORKLOADS[name], args, ours, peers, emit)

    end = loadavg()
    print(f"\nload average at start {info['load_average_start']}, at end {end}")
    emit({"type": "end", "load_average_end": end})


if __name__ == "__main__":
    main()
