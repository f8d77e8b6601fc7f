"""Vecchia benchmark: exact maximin ordering and conditioning sets against peers.

For each ``--n`` and ``--d``, in one process and on the same uniform [0, 1]^d
points, every method is timed on one step of a Vecchia approximation:

* **ordering**: our ``maximin_ordering(X)``; fpsample's farthest point sampling
  (vanilla ``fps_sampling`` and the QuickFPS ``bucket_fps_kdline_sampling``),
  the only exact maximin orderings found in a Python package;
* **conditioning**: the ``m`` nearest predecessors of every point in a *given*
  ordering (our maximin order, passed explicitly): our
  ``vecchia_neighbors(X, m, ordering=order)``; an exact increasing-k prefix
  search (GpGp's ``find_ordered_nn`` algorithm) on scipy's cKDTree and on
  sklearn's kd_tree; brute force (small n); GPBoost's Vecchia neighbour search,
  timed as the construction of a ``GPModel(gp_approx="vecchia")`` on the data
  in our order (``vecchia_ordering="none"``) and with GPBoost's own random
  ordering.

A second table (``--rc-n``) compares the residual-correlation neighbour
selection of GPBoost's full-scale Vecchia (VIF) approximation with ours
(``metric=ResidualCorrelationDistance(Matern(...), Z)``).

Each time is the median of ``--repeats`` runs (a run longer than
``--slow-s`` seconds is not repeated); our Numba compile (warm-up) is measured
and printed on its own line and is never part of the timed runs. Our result is
checked against brute force on ``--check-ranks`` random ranks; every peer's
neighbours are compared with ours. See ``benchmarks/README.md``.

Run ``python benchmarks/bench_vecchia.py`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

try:  # run as a script, benchmarks/ is on sys.path already
    import bench_knn
except ImportError:  # pragma: no cover - imported from elsewhere
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_knn

from bench_knn import (
    PeakMemory,
    finish,
    fmt_s,
    loadavg,
    machine_info,
    print_machine,
    thread_limits,
)

# A returned neighbour counts as correct when its true distance is within this
# relative tolerance of the exact m-th predecessor distance (tie-safe).
RTOL = 1e-9
# Brute-force peers (numpy conditioning sets, vanilla FPS) are skipped above
# this many n * n * d operations.
BRUTE_MAX_WORK = 1e10
# issue 4's bars, for n = 1e5, d = 2, m = 30: ordering + conditioning sets at
# least this many times faster than GPBoost's neighbour search ...
GPBOOST_BAR = 10.0
# ... and than the fastest other exact method measured
EXACT_BAR = 2.0
BAR_N, BAR_D, BAR_M = 100_000, 2, 30
# a float32 ordering peer that parts from ours is "exact to float32" when the
# points it picks are this close (relative) to the farthest remaining ones
F32_GAP = 1e-6
# beyond this n only the cKDTree peer runs unless --peers names others
LARGE_N = 100_000

ALL_PEERS = (
    "fps",
    "fps_kdline",
    "ckdtree",
    "ckdtree_gpgp",
    "kd_tree",
    "brute",
    "gpboost",
    "gpboost_random",
    "covertreex",
)
LARGE_N_PEERS = ("ckdtree", "fps_kdline")

COVERTREEX_WHY = (
    "not installable here: covertreex 0.4.5, its only release on PyPI, requires "
    "Python >= 3.12 and ships only a cp312 wheel"
)


# --------------------------------------------------------------------------- helpers


def n_threads(n_jobs):
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def row_dist(X, rows, cols):
    """Float64 distances from the points ``rows`` (q,) to ``cols`` (q, k); -1 gives inf."""
    safe = np.where(cols >= 0, cols, 0)
    diff = X[safe] - X[rows][:, None, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    dist[cols < 0] = np.inf
    return dist


def first_m_true(mask, values, m):
    """Per row, the values at the first ``m`` True columns of ``mask`` (-1 padded)."""
    pos = np.argsort(~mask, axis=1, kind="stable")[:, :m]
    out = np.take_along_axis(values, pos, axis=1)
    ok = np.take_along_axis(mask, pos, axis=1)
    return np.where(ok, out, -1)


def brute_predecessors(Xr, m, ranks, chunk_work=20_000_000):
    """Exact m nearest predecessors (rank space, sorted by distance then rank) by brute force."""
    out = np.full((len(ranks), m), -1, dtype=np.int64)
    dist_out = np.full((len(ranks), m), np.inf)
    for i, r in enumerate(ranks):
        r = int(r)
        if r == 0:
            continue
        d = np.sqrt(((Xr[:r] - Xr[r]) ** 2).sum(axis=1))
        k = min(r, m)
        idx = np.argpartition(d, k - 1)[:k] if k < r else np.arange(r)
        idx = idx[np.lexsort((idx, d[idx]))]
        out[i, :k] = idx
        dist_out[i, :k] = d[idx]
    return out, dist_out


# --------------------------------------------------------------------------- exact peers


def ordered_nn_dyadic(Xr, m, backend, n_jobs, factor=2.5, chunk=1 << 16):
    """Exact m nearest predecessors of every rank of ``Xr`` (rows in rank order).

    The first 2m + 1 ranks by brute force; then the ranks in dyadic blocks
    [P/2, P), P = n, n/2, ...: a tree on the prefix ``Xr[:P]`` answers the
    k = ``factor`` * m nearest of each rank in the block, and the answers that
    precede the rank are kept. A rank with at least m of them is resolved (any
    closer predecessor would be among the k answers, so they are its m nearest
    predecessors, ties at the m-th distance aside); the few others are asked
    again with k doubled. In a maximin (or random) ordering about half or more
    of a block's neighbours precede it, so nearly every rank is resolved by its
    first query. Returns ranks, -1 padded.
    """
    n = len(Xr)
    nb = np.full((n, m), -1, dtype=np.int64)
    first = min(n, 2 * m + 1)
    nb[:first] = brute_predecessors(Xr, m, np.arange(first))[0]
    hi = n
    while hi > first:
        lo = max(first, hi // 2)
        search = _make_search(Xr[:hi], backend, n_jobs)
        query = np.arange(lo, hi)
        k = min(hi, int(math.ceil(factor * m)))
        while query.size:
            query = _resolve(search, Xr, query, k, m, hi, nb, chunk)
            k = min(hi, 2 * k)
        hi = lo
    return nb


def ordered_nn_gpgp(Xr, m, backend, n_jobs, chunk=1 << 16):
    """Exact m nearest predecessors of every rank, GpGp's ``find_ordered_nn``
    algorithm (Guinness 2018; also gpvecchia's ``find_nn``): the first 2m + 1 ranks
    by brute force; then rounds in which a tree on the prefix ``Xr[:P]`` (P = 1 +
    the largest unresolved rank) answers the k nearest of every unresolved rank,
    k = 2m, 4m, ...; a rank is resolved once m of its answers precede it.
    Returns ranks, -1 padded."""
    n = len(Xr)
    nb = np.full((n, m), -1, dtype=np.int64)
    first = min(n, 2 * m + 1)
    nb[:first] = brute_predecessors(Xr, m, np.arange(first))[0]
    query = np.arange(first, n)
    k = m
    while query.size:
        P = int(query[-1]) + 1
        k = min(P, 2 * k)
        query = _resolve(_make_search(Xr[:P], backend, n_jobs), Xr, query, k, m, P, nb, chunk)
    return nb


def _resolve(search, Xr, query, k, m, P, nb, chunk):
    """Ask the k nearest of the query ranks among Xr[:P]; store the resolved ones
    in ``nb`` and return the unresolved ranks."""
    left = []
    for start in range(0, query.size, chunk):
        q = query[start : start + chunk]
        ind = search(Xr[q], k)
        mask = ind < q[:, None]
        done = (mask.sum(axis=1) >= m) | (k >= P)
        nb[q[done]] = first_m_true(mask[done], ind[done], m)
        left.append(q[~done])
    return np.concatenate(left)


def _make_search(P, backend, n_jobs):
    if backend == "ckdtree":
        from scipy.spatial import cKDTree

        tree = cKDTree(P)

        def search(Q, k):
            ind = tree.query(Q, k, workers=n_jobs)[1]
            return np.asarray(ind, dtype=np.int64).reshape(len(Q), -1)

        return search
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(algorithm="kd_tree", n_jobs=n_jobs).fit(P)

    def search(Q, k):
        return nn.kneighbors(Q, n_neighbors=k, return_distance=False).astype(np.int64)

    return search


def brute_all_predecessors(Xr, m, cell_budget=4_000_000):
    """Exact m nearest predecessors of every rank by blocked brute force (numpy)."""
    n = len(Xr)
    nb = np.full((n, m), -1, dtype=np.int64)
    sq = np.einsum("ij,ij->i", Xr, Xr)
    start = 1
    while start < n:
        block = int((math.sqrt(start * start + 4 * cell_budget) - start) / 2)
        stop = min(n, start + max(1, block))
        q = np.arange(start, stop)
        start = stop
        d2 = sq[q][:, None] + sq[None, :stop] - 2.0 * (Xr[q] @ Xr[:stop].T)
        d2[np.arange(stop)[None, :] >= q[:, None]] = np.inf  # only predecessors
        k = min(m, stop)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d2, part, axis=1)
        srt = np.argsort(pd, axis=1, kind="stable")
        part = np.take_along_axis(part, srt, axis=1)
        pd = np.take_along_axis(pd, srt, axis=1)
        nb[q, :k] = np.where(np.isfinite(pd), part, -1)
    return nb


# --------------------------------------------------------------------------- GPBoost


@contextlib.contextmanager
def openmp_nesting_off():
    """Run GPBoost with nested OpenMP parallelism off, as in a fresh process.

    Numba's OpenMP threading layer (ours) turns nesting on process-wide
    (libgomp's max-active-levels 1 -> 255); GPBoost, linked to the same libgomp,
    nests ``omp parallel for`` regions (its residual-correlation distances) and
    then oversubscribes the cores: its full-scale Vecchia likelihood ran 60x
    slower at n = 1,500 after our code had run. The previous value is restored.
    """
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
        prev = gomp.omp_get_max_active_levels()
    except (OSError, AttributeError):
        yield
        return
    gomp.omp_set_max_active_levels(1)
    try:
        yield
    finally:
        gomp.omp_set_max_active_levels(prev)


def gpboost_model(X, m, ordering, n_jobs, seed, approx="vecchia", **kwargs):
    import gpboost as gpb

    return gpb.GPModel(
        gp_coords=X,
        cov_function="matern",
        cov_fct_shape=1.5,
        gp_approx=approx,
        num_neighbors=m,
        vecchia_ordering=ordering,
        num_parallel_threads=n_threads(n_jobs),
        seed=seed,
        **kwargs,
    )


def matern15(d, length_scale):
    s = math.sqrt(3.0) * d / length_scale
    return (1.0 + s) * np.exp(-s)


def vecchia_nll(Xr, y, nb, nugget, var, length_scale, chunk=20_000):
    """Negative log-likelihood of y under the Vecchia approximation of
    var * Matern_{3/2}(length_scale) + nugget * I with conditioning sets ``nb``
    (ranks, -1 padded), applied to the response as GPBoost's gp_approx="vecchia"
    does for a Gaussian likelihood."""
    n, m = nb.shape
    counts = (nb >= 0).sum(axis=1)
    total = 0.5 * (math.log(2 * math.pi * (var + nugget)) + y[0] ** 2 / (var + nugget))
    groups = [np.flatnonzero(counts == c) for c in np.unique(counts[1:])]
    for rows_c in groups:
        rows_c = rows_c[rows_c > 0]
        for start in range(0, rows_c.size, chunk):
            rows = rows_c[start : start + chunk]
            c = int(counts[rows[0]])
            N = nb[rows, :c]
            S = Xr[N]
            dNN = np.sqrt(((S[:, :, None, :] - S[:, None, :, :]) ** 2).sum(-1))
            K = var * matern15(dNN, length_scale) + nugget * np.eye(c)
            kx = var * matern15(np.sqrt(((S - Xr[rows][:, None, :]) ** 2).sum(-1)), length_scale)
            b = np.linalg.solve(K, kx[..., None])[..., 0]
            D = var + nugget - (kx * b).sum(axis=1)
            resid = y[rows] - (b * y[N]).sum(axis=1)
            total += 0.5 * float(np.sum(np.log(2 * math.pi * D) + resid**2 / D))
    return total


# --------------------------------------------------------------------------- methods


@dataclass
class Outcome:
    seconds: float
    order: np.ndarray | None = None  # original indices by rank (ordering methods)
    nb: np.ndarray | None = None  # original indices, rows by rank (conditioning)
    model: object = None  # GPBoost's model (for the likelihood check)
    lengthscales: np.ndarray | None = None  # ours: maximin_ordering's second output


@dataclass
class Row:
    key: str
    name: str
    step: str  # "ordering", "conditioning", "ordering + conditioning"
    exact: str
    status: str = "ok"
    times: list = field(default_factory=list)
    peak_bytes: int | None = None
    agreement: str = "–"
    recall: float | None = None  # conditioning: tie-safe fraction of neighbours = ours
    identical: float | None = None  # conditioning: fraction of rows with our exact set
    order_exact: bool | None = None  # ordering: identical to ours (same first point)
    order_f32: bool | None = None  # ordering: maximin up to float32 near-ties

    @property
    def ok(self):
        return self.status == "ok"

    @property
    def median(self):
        return statistics.median(self.times) if self.times else None


class Method:
    key = ""
    name = ""
    step = "conditioning"
    exact = "yes"
    module = None
    brute = False

    def __init__(self, args):
        self.args = args
        self.n_jobs = args.n_jobs

    def unavailable(self):
        if self.module and importlib.util.find_spec(self.module) is None:
            return "not installed"
        return None

    def skip_reason(self, n, d):
        if self.brute and float(n) * n * d > BRUTE_MAX_WORK:
            return f"skipped: brute force, n^2 d = {float(n) * n * d:.1e} > {BRUTE_MAX_WORK:.0e}"
        return None

    def run(self, X, Xr, order, m):
        raise NotImplementedError


class OursOrdering(Method):
    key = "ours_order"
    name = "ours: maximin_ordering(X)"
    step = "ordering"
    module = "sklearn_pcct"

    def run(self, X, Xr, order, m):
        from sklearn_pcct import maximin_ordering

        t0 = time.perf_counter()
        got, lengthscales = maximin_ordering(X, n_jobs=self.n_jobs)
        t = time.perf_counter() - t0
        return Outcome(t, order=np.asarray(got, dtype=np.int64), lengthscales=lengthscales)


class OursConditioning(Method):
    key = "ours_cond"
    name = "ours: vecchia_neighbors(X, m, ordering=order)"
    module = "sklearn_pcct"

    def run(self, X, Xr, order, m):
        from sklearn_pcct import vecchia_neighbors

        t0 = time.perf_counter()
        _, nb = vecchia_neighbors(X, m, ordering=order, n_jobs=self.n_jobs)
        return Outcome(time.perf_counter() - t0, nb=np.asarray(nb, dtype=np.int64))


class OursBoth(Method):
    key = "ours_total"
    name = "ours: vecchia_neighbors(X, m) (maximin ordering and conditioning sets, one call)"
    step = "ordering + conditioning"
    module = "sklearn_pcct"
    algorithm = "auto"

    def run(self, X, Xr, order, m):
        from sklearn_pcct import vecchia_neighbors

        t0 = time.perf_counter()
        got, nb = vecchia_neighbors(X, m, algorithm=self.algorithm, n_jobs=self.n_jobs)
        t = time.perf_counter() - t0
        return Outcome(t, order=np.asarray(got, dtype=np.int64), nb=np.asarray(nb, dtype=np.int64))


class OursBothCoverTree(OursBoth):
    key = "ours_total_cover"
    name = 'ours: vecchia_neighbors(X, m, algorithm="cover_tree") (one call, the cover tree)'
    algorithm = "cover_tree"


class FpsVanilla(Method):
    key = "fps"
    name = "fpsample fps_sampling (vanilla FPS, float32, 1 thread)"
    step = "ordering"
    exact = "yes (float32)"
    module = "fpsample"
    brute = True

    def run(self, X, Xr, order, m):
        import fpsample

        t0 = time.perf_counter()
        got = fpsample.fps_sampling(X, len(X), start_idx=int(order[0]))
        return Outcome(time.perf_counter() - t0, order=np.asarray(got, dtype=np.int64))


class FpsKdline(Method):
    key = "fps_kdline"
    name = "fpsample bucket_fps_kdline_sampling (QuickFPS, float32, 1 thread)"
    step = "ordering"
    exact = "yes (float32)"
    module = "fpsample"

    def height(self, n):
        if self.args.fps_h is not None:
            return self.args.fps_h
        return 5 if n <= 30_000 else 7 if n <= 300_000 else 9

    def run(self, X, Xr, order, m):
        import fpsample

        h = self.height(len(X))
        t0 = time.perf_counter()
        # its start_idx does not select the first point (fpsample 1.0.2); the
        # ordering is checked against ours started from its actual first point
        got = fpsample.bucket_fps_kdline_sampling(X, len(X), h=h, start_idx=int(order[0]))
        return Outcome(time.perf_counter() - t0, order=np.asarray(got, dtype=np.int64))


class PrefixTrees(Method):
    key = "ckdtree"
    name = "scipy cKDTree on dyadic prefixes, k = 2.5m, filtered by rank"
    module = "scipy"
    backend = "ckdtree"
    algorithm = staticmethod(ordered_nn_dyadic)

    def run(self, X, Xr, order, m):
        t0 = time.perf_counter()
        Xr_ = np.ascontiguousarray(X[order])  # the reordering is part of the method
        nb = self.algorithm(Xr_, m, self.backend, self.n_jobs)
        nb = np.where(nb >= 0, order[np.where(nb >= 0, nb, 0)], -1)
        return Outcome(time.perf_counter() - t0, nb=nb)


class PrefixTreesGpGp(PrefixTrees):
    key = "ckdtree_gpgp"
    name = "scipy cKDTree, GpGp find_ordered_nn (increasing k, shrinking prefix)"
    algorithm = staticmethod(ordered_nn_gpgp)


class PrefixTreesSklearn(PrefixTrees):
    key = "kd_tree"
    name = "sklearn kd_tree on dyadic prefixes, k = 2.5m, filtered by rank"
    module = "sklearn"
    backend = "kd_tree"


class Brute(Method):
    key = "brute"
    name = "numpy brute force (blocked, float64)"
    brute = True

    def run(self, X, Xr, order, m):
        t0 = time.perf_counter()
        Xr_ = np.ascontiguousarray(X[order])
        nb = brute_all_predecessors(Xr_, m)
        nb = np.where(nb >= 0, order[np.where(nb >= 0, nb, 0)], -1)
        return Outcome(time.perf_counter() - t0, nb=nb)


class GPBoostSameOrder(Method):
    key = "gpboost"
    name = 'GPBoost GPModel(gp_approx="vecchia") construction, X in our order ("none")'
    exact = "yes (Ra-Kim search)"
    module = "gpboost"

    def run(self, X, Xr, order, m):
        Xr_ = np.ascontiguousarray(X[order])
        with openmp_nesting_off():
            t0 = time.perf_counter()
            model = gpboost_model(Xr_, m, "none", self.n_jobs, self.args.seed)
            return Outcome(time.perf_counter() - t0, model=model)


class GPBoostRandom(Method):
    key = "gpboost_random"
    name = 'GPBoost GPModel(gp_approx="vecchia") construction, its random ordering'
    step = "random ordering + conditioning"
    exact = "yes (Ra-Kim search)"
    module = "gpboost"

    def run(self, X, Xr, order, m):
        with openmp_nesting_off():
            t0 = time.perf_counter()
            model = gpboost_model(X, m, "random", self.n_jobs, self.args.seed)
            return Outcome(time.perf_counter() - t0, model=model)


class Covertreex(Method):
    key = "covertreex"
    name = "covertreex cover_tree(...).knn(k, predecessor_mode=True)"
    module = "covertreex"

    def unavailable(self):
        if importlib.util.find_spec("covertreex") is None:
            return COVERTREEX_WHY
        return "installed, but no runner: its predecessor mode was not tested on Python 3.11"


def make_methods(args):
    ours = [OursOrdering(args), OursConditioning(args), OursBoth(args)]
    if not args.no_cover_tree:
        ours.append(OursBothCoverTree(args))
    peers = {
        "fps": FpsVanilla(args),
        "fps_kdline": FpsKdline(args),
        "ckdtree": PrefixTrees(args),
        "ckdtree_gpgp": PrefixTreesGpGp(args),
        "kd_tree": PrefixTreesSklearn(args),
        "brute": Brute(args),
        "gpboost": GPBoostSameOrder(args),
        "gpboost_random": GPBoostRandom(args),
        "covertreex": Covertreex(args),
    }
    return ours, peers


# --------------------------------------------------------------------------- checks


def check_ours(X, order, lengthscales, nb, m, n_ranks, n_maximin, rng):
    """Our ordering and conditioning sets against brute force; "" when exact."""
    from scipy.spatial import cKDTree

    n = len(X)
    problems = []
    if not np.array_equal(np.sort(order), np.arange(n)):
        return "ordering is not a permutation"
    centre = np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1))
    if order[0] != int(np.flatnonzero(centre == centre.min())[0]):
        problems.append(f"order[0] = {order[0]} is not the point nearest the mean")
    if not np.isinf(lengthscales[0]) or np.any(np.diff(lengthscales[1:]) > 0):
        problems.append("lengthscales not inf then non-increasing")
    if nb.shape != (n, m):
        return f"neighbours have shape {nb.shape}, expected {(n, m)}"
    Xr = X[order]
    ranks = np.sort(rng.choice(np.arange(1, n), min(n_ranks, n - 1), replace=False))
    ref, ref_d = brute_predecessors(Xr, m, ranks)
    got = np.full_like(nb[ranks], -1)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    valid = nb[ranks] >= 0
    got[valid] = rank_of[nb[ranks][valid]]
    bad_ls = ~np.isclose(lengthscales[ranks], ref_d[:, 0], rtol=RTOL, atol=0)
    if bad_ls.any():
        problems.append(f"{bad_ls.sum()} lengthscales differ from brute force")
    got_d = row_dist(Xr, ranks, got)
    if np.any((got >= 0) & (got >= ranks[:, None])):
        problems.append("non-predecessors among the neighbours")
    if not np.array_equal(got < 0, ref < 0):
        problems.append("wrong -1 padding")
    close = np.isclose(got_d, ref_d, rtol=RTOL, atol=0) | (np.isinf(got_d) & np.isinf(ref_d))
    if not close.all():
        problems.append(f"{(~close.all(axis=1)).sum()} of {len(ranks)} checked rows differ")
    elif not np.array_equal(got, ref):
        problems.append("ties broken against (distance, index)")
    # maximin: at rank r no later point is farther from the first r points
    for r in np.unique(np.geomspace(1, n - 1, n_maximin).astype(np.int64)):
        far = cKDTree(Xr[:r]).query(Xr[r:], k=1, workers=-1)[0]
        if far.max() > lengthscales[r] * (1 + RTOL) or not np.isclose(far[0], lengthscales[r]):
            problems.append(f"not maximin at rank {r}")
            break
    return "; ".join(problems)


def compare_neighbours(X, order, ours_nb, peer_nb, m, chunk=100_000):
    """Tie-safe fraction of the peer's neighbours that are ours, and the fraction
    of rows holding exactly our set. A peer neighbour counts when it precedes the
    row's point, is not repeated, and lies within our m-th distance (1 + RTOL)."""
    n = len(X)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    hits = expected = same = 0
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        pts = order[rows]
        ours = ours_nb[rows]
        peer = np.sort(peer_nb[rows], axis=1)
        kth = row_dist(X, pts, ours)
        kth = np.where(ours >= 0, kth, -np.inf).max(axis=1)
        valid = peer >= 0
        valid &= rank_of[np.where(valid, peer, 0)] < rows[:, None]
        valid[:, 1:] &= peer[:, 1:] != peer[:, :-1]
        d = row_dist(X, pts, np.where(valid, peer, -1))
        hits += np.count_nonzero(valid & (d <= kth[:, None] * (1 + RTOL)))
        expected += np.minimum(rows, m).sum()
        same += np.count_nonzero(np.all(np.sort(ours, axis=1) == peer, axis=1))
    return hits / max(expected, 1), same / n


def maximin_gap(X, seq, ranks):
    """Largest relative shortfall, over ``ranks``, of the distance of the point chosen
    at rank r to the first r points, below the largest such distance among all the
    points not yet chosen (0: maximin at those ranks)."""
    from scipy.spatial import cKDTree

    worst = 0.0
    for r in ranks:
        far = cKDTree(X[seq[:r]]).query(X[seq[r:]], k=1, workers=-1)[0]
        worst = max(worst, (far.max() - far[0]) / far.max())
    return worst


def compare_ordering(X, peer_order, ours_order, n_jobs, n_check):
    """(exact, exact to float32, text): the peer's ordering against ours from the
    same first point; where they part, how far the peer is from maximin there and
    at ``n_check`` log-spaced ranks (float32 peers part at near-ties)."""
    from sklearn_pcct import maximin_ordering

    n = len(X)
    if len(peer_order) != n or not np.array_equal(np.sort(peer_order), np.arange(n)):
        return False, False, "not a permutation"
    first = int(peer_order[0])
    note = ""
    if first != ours_order[0]:
        ours_order = maximin_ordering(X, first=first, n_jobs=n_jobs)[0]
        note = f"; starts at {first}, not at the centre point: ours from there"
    same = peer_order == ours_order
    if same.all():
        return True, True, "identical" + note
    r = int(np.argmin(same))
    X32 = X.astype(np.float32).astype(np.float64)
    if np.array_equal(peer_order, maximin_ordering(X32, first=first, n_jobs=n_jobs)[0]):
        return (
            True,
            True,
            f"identical to ours on X rounded to float32 (on X up to rank {r:,})" + note,
        )
    ranks = np.unique(np.r_[r, np.geomspace(1, n - 1, n_check).astype(np.int64)])
    gap = maximin_gap(X, peer_order, ranks)
    f32 = bool(gap <= F32_GAP)
    return (
        False,
        f32,
        (
            f"same as ours up to rank {r:,}; maximin to rel. {gap:.0e} there and at "
            f"{len(ranks) - 1} other ranks" + note
        ),
    )


# --------------------------------------------------------------------------- running


def time_method(method, X, Xr, order, m, repeats, slow_s, n_jobs):
    """Median-able times of ``repeats`` runs (one when a run exceeds slow_s), the
    last outcome and the peak memory over all runs."""
    times, outcome = [], None
    with thread_limits(n_jobs), PeakMemory() as mem:
        for _ in range(repeats):
            outcome = None
            gc.collect()
            outcome = method.run(X, Xr, order, m)
            times.append(outcome.seconds)
            if outcome.seconds > slow_s:
                break
    return times, outcome, mem.peak


def fmt_x(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_mib(b):
    return "n/a" if b is None else f"{b / 2**20:.0f}"


def print_table(rows):
    print(
        "| method | step | exact | runs | median s | peak MiB | agreement with ours | peer / ours |"
    )
    print("|---|---|---|---:|---:|---:|---|---:|")
    ours = {r.step: r for r in rows if r.key.startswith("ours")}
    for r in rows:
        if not r.ok:
            print(f"| {r.name} | {r.step} | {r.exact} | – | {r.status} | – | – | – |")
            continue
        base = ours.get(r.step) or ours.get("conditioning")
        if r.step.startswith("random ordering"):
            base = ours.get("ordering + conditioning")
        ratio = "–"
        if not r.key.startswith("ours") and base is not None and base.median:
            ratio = fmt_x(r.median / base.median)
        print(
            f"| {r.name} | {r.step} | {r.exact} | {len(r.times)} | {fmt_s(r.median)} "
            f"| {fmt_mib(r.peak_bytes)} | {r.agreement} | {ratio} |"
        )


def warm_up(methods, X, m, args):
    """One untimed run of every method on a subset: our Numba compile, peers' set-up."""
    from sklearn_pcct import maximin_ordering

    order = maximin_ordering(X, n_jobs=args.n_jobs)[0]
    Xr = np.ascontiguousarray(X[order])
    times = {}
    for method in methods:
        t0 = time.perf_counter()
        try:
            with thread_limits(args.n_jobs):
                method.run(X, Xr, order, min(m, len(X) - 1))
            times[method.key] = time.perf_counter() - t0
        except Exception as exc:  # a method that fails is reported, never fatal
            traceback.print_exc(file=sys.stderr)
            times[method.key] = f"failed ({type(exc).__name__}: {exc})"
    return times


def run_case(n, d, args, ours, peers, emit):
    m = args.m
    rng = np.random.default_rng(args.seed)
    X = rng.random((n, d))
    keys = args.peers if args.peers is not None else (ALL_PEERS if n <= LARGE_N else LARGE_N_PEERS)
    print(f"\n## uniform [0,1]^{d}, n = {n:,}, m = {m}\n")
    print(
        f"median of {args.repeats} timed runs (runs over {args.slow_s:g} s are not repeated), "
        f"seed {args.seed}, n_jobs {args.n_jobs}, load average at start {loadavg()}\n"
    )
    methods, skipped = [], {}
    for key in keys:
        peer = peers[key]
        reason = peer.unavailable() or peer.skip_reason(n, d)
        if reason is None:
            methods.append(peer)
        else:
            skipped[key] = reason
    if args.peers is None and n > LARGE_N:
        print(f"n > {LARGE_N:,}: peers {', '.join(LARGE_N_PEERS)} only (--peers to add others)\n")

    wn = min(n, args.warmup_n)
    t0 = time.perf_counter()
    warm = warm_up(ours, X[:wn], m, args)
    ours_warm = [warm[o.key] for o in ours]
    text = (
        fmt_s(time.perf_counter() - t0)
        if all(isinstance(t, float) for t in ours_warm)
        else "; ".join(str(t) for t in ours_warm if isinstance(t, str))
    )
    print(
        f"JIT warm-up ours (maximin_ordering + vecchia_neighbors on the first {wn:,} points; "
        f"Numba compile or cache load; NOT in the table): {text} s"
    )
    warm.update(warm_up(methods, X[:wn], m, args))
    others = ", ".join(
        f"{m_.key} {fmt_s(warm[m_.key]) if isinstance(warm[m_.key], float) else warm[m_.key]}"
        for m_ in methods
    )
    if others:
        print(f"warm-up peers (same subset, NOT in the table), s: {others}")

    overhead = None
    if any(meth.key.startswith("gpboost") for meth in methods):
        overhead = gpboost_overhead(X, m, args)
        print(
            "GPBoost construction with its neighbour search deferred (gp_approx="
            f'"vecchia_correlation_based"), NOT in the table: {fmt_s(overhead)} s'
        )

    rows = []
    failures = []
    # ours: the ordering, then the conditioning sets given that ordering
    r_order = Row(ours[0].key, ours[0].name, "ordering", "yes")
    r_cond = Row(ours[1].key, ours[1].name, "conditioning", "yes")
    # the ordering and the sets in one call (one tree): what a user runs
    r_total = Row(ours[2].key, ours[2].name, "ordering + conditioning", "yes")
    r_order.times, out_o, r_order.peak_bytes = time_method(
        ours[0], X, None, None, m, args.repeats, args.slow_s, args.n_jobs
    )
    order, lengthscales = out_o.order, out_o.lengthscales
    Xr = np.ascontiguousarray(X[order])
    r_cond.times, out_c, r_cond.peak_bytes = time_method(
        ours[1], X, Xr, order, m, args.repeats, args.slow_s, args.n_jobs
    )
    ours_nb = out_c.nb
    r_total.times, out_b, r_total.peak_bytes = time_method(
        ours[2], X, None, None, m, args.repeats, args.slow_s, args.n_jobs
    )
    same = np.array_equal(out_b.order, order) and np.array_equal(out_b.nb, ours_nb)
    del out_o, out_c, out_b
    # the same call on the cover tree (algorithm="cover_tree"): same answer
    r_cover = None
    if len(ours) > 3:
        r_cover = Row(ours[3].key, ours[3].name, "ordering + conditioning", "yes")
        r_cover.times, out_t, r_cover.peak_bytes = time_method(
            ours[3], X, None, None, m, args.repeats, args.slow_s, args.n_jobs
        )
        if not (np.array_equal(out_t.order, order) and np.array_equal(out_t.nb, ours_nb)):
            r_cover.exact = "**NO: differs from the kd-tree path**"
            failures.append(f"n={n} d={d}: the cover-tree path differs from the kd-tree path")
        del out_t
    t0 = time.perf_counter()
    check = check_ours(
        X, order, lengthscales, ours_nb, m, args.check_ranks, args.check_maximin, rng
    )
    t_check = time.perf_counter() - t0
    label = "yes (checked)" if not check else f"**NO: {check}**"
    for r in (r_order, r_cond, r_total):
        r.exact = label
    if check:
        failures.append(f"n={n} d={d}: {check}")
    if not same:
        r_total.exact = "**NO: differs from the two calls**"
        failures.append(f"n={n} d={d}: vecchia_neighbors(X, m) differs from the two calls")
    r_order.agreement = r_cond.agreement = "–"
    rows += [r_order, r_cond, r_total]
    if r_cover is not None:
        if r_cover.exact == "yes":
            r_cover.exact = label
        rows.append(r_cover)

    nll_notes = []
    for method in methods:
        row = Row(method.key, method.name, method.step, method.exact)
        if isinstance(warm.get(method.key), str):
            row.status = warm[method.key]
            rows.append(row)
            continue
        try:
            row.times, outcome, row.peak_bytes = time_method(
                method, X, Xr, order, m, args.repeats, args.slow_s, args.n_jobs
            )
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            row.status = f"failed ({type(exc).__name__}: {exc})"
            rows.append(row)
            continue
        if outcome.order is not None:
            row.order_exact, row.order_f32, row.agreement = compare_ordering(
                X, outcome.order, order, args.n_jobs, args.check_maximin
            )
        elif outcome.nb is not None:
            row.recall, row.identical = compare_neighbours(X, order, ours_nb, outcome.nb, m)
            row.agreement = f"{row.recall:.6f} (rows identical {row.identical:.6f})"
        elif method.key == "gpboost":
            row.agreement = gpboost_agreement(outcome.model, Xr, order, ours_nb, n, args, nll_notes)
        elif method.key == "gpboost_random":
            row.agreement = "n/a: its own random ordering, not exposed"
        del outcome
        rows.append(row)
    for key, reason in skipped.items():
        rows.append(Row(key, peers[key].name, peers[key].step, peers[key].exact, status=reason))
    order_keys = [r.key for r in rows[:3]] + list(keys)
    rows.sort(key=lambda r: order_keys.index(r.key) if r.key in order_keys else 99)

    print(
        f"\nexactness check of ours: brute force on {min(args.check_ranks, n - 1)} random ranks "
        f"and the maximin property at {args.check_maximin} ranks, {t_check:.2f} s, not a table "
        "entry\n"
    )
    print_table(rows)
    print()
    for note in nll_notes:
        print(note)
    bars(rows, n, d, m, overhead, emit)
    print(f"\nload average at end: {loadavg()}")
    for r in rows:
        emit(
            {
                "type": "result",
                "n": n,
                "d": d,
                "m": m,
                "method": r.key,
                "name": r.name,
                "step": r.step,
                "exact": r.exact,
                "status": r.status,
                "warmup_s": warm.get(r.key) if isinstance(warm.get(r.key), float) else None,
                "median_s": r.median,
                "runs_s": r.times,
                "peak_bytes": r.peak_bytes,
                "agreement": r.agreement,
                "recall_vs_ours": r.recall,
                "rows_identical": r.identical,
                "order_identical": r.order_exact,
                "order_exact_to_float32": r.order_f32,
            }
        )
    return failures


def gpboost_agreement(model, Xr, order, ours_nb, n, args, notes):
    """GPBoost keeps its neighbour sets internal; compare its Vecchia likelihood
    with the one computed from our sets for the same ordering instead."""
    if n > args.nll_max_n:
        return f"not checked (n > --nll-max-n {args.nll_max_n:,})"
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    nb_rank = np.where(ours_nb >= 0, rank_of[np.where(ours_nb >= 0, ours_nb, 0)], -1)
    y = np.random.default_rng(args.seed + 7).standard_normal(n)
    nugget, var, ls = 0.1, 1.0, args.rc_length_scale
    with openmp_nesting_off():
        t0 = time.perf_counter()
        theirs = float(model.neg_log_likelihood(cov_pars=[nugget, var, ls], y=y))
        t1 = time.perf_counter()
    mine = vecchia_nll(Xr, y, nb_rank, nugget, var, ls)
    t2 = time.perf_counter()
    rel = abs(theirs - mine) / abs(mine)
    notes.append(
        f"GPBoost likelihood check: its Vecchia NLL {theirs:.10g} ({t1 - t0:.2f} s) vs the NLL "
        f"from our conditioning sets {mine:.10g} ({t2 - t1:.2f} s): rel. diff {rel:.1e}"
    )
    verdict = "equal" if rel < 1e-9 else "DIFFERENT"
    return f"sets not exposed; Vecchia NLL {verdict} to ours (rel. {rel:.0e})"


def bars(rows, n, d, m, overhead, emit):
    by = {r.key: r for r in rows if r.ok and r.times}
    ours = by.get("ours_total")
    if ours is None:
        return
    lines = []
    gp = [by[k] for k in ("gpboost", "gpboost_random") if k in by]
    if gp:
        best = min(gp, key=lambda r: r.median)
        ratio = best.median / ours.median
        lines.append(
            f"GPBoost (faster of its runs, {best.key}, {fmt_s(best.median)} s) / ours "
            f"(ordering + conditioning, {fmt_s(ours.median)} s): {fmt_x(ratio)}x"
        )
        if overhead is not None:
            net = best.median - overhead
            lines.append(
                f"  less GPBoost's construction without the search ({fmt_s(overhead)} s): "
                f"{fmt_x(net / ours.median)}x"
            )
        if (n, d, m) == (BAR_N, BAR_D, BAR_M):
            verdict = "met" if ratio >= GPBOOST_BAR else "NOT met"
            lines.append(f"bar (issue 4): at least {GPBOOST_BAR:g}x faster than GPBoost: {verdict}")
    exact_order = [
        r
        for r in rows
        if r.ok
        and r.times
        and r.step == "ordering"
        and r.order_exact
        and not r.key.startswith("ours")
    ]
    exact_cond = [
        r
        for r in rows
        if r.ok
        and r.times
        and r.step == "conditioning"
        and not r.key.startswith("ours")
        and r.recall is not None
        and r.recall >= 1 - 1e-12
    ]
    gp_same = by.get("gpboost")
    if gp_same is not None and "equal" in gp_same.agreement:
        exact_cond.append(gp_same)
    f32_order = [
        r
        for r in rows
        if r.ok and r.times and r.step == "ordering" and r.order_f32 and not r.order_exact
    ]
    best_o = min(exact_order, key=lambda r: r.median, default=None)
    best_c = min(exact_cond, key=lambda r: r.median, default=None)
    best_f = min(exact_order + f32_order, key=lambda r: r.median, default=None)
    if best_c is not None:
        lines.append(
            f"conditioning only: fastest exact peer {best_c.key} {fmt_s(best_c.median)} s / ours "
            f"{fmt_s(by['ours_cond'].median)} s = {fmt_x(best_c.median / by['ours_cond'].median)}x"
        )
    if best_o is not None:
        lines.append(
            f"ordering only: fastest exact peer {best_o.key} {fmt_s(best_o.median)} s / ours "
            f"{fmt_s(by['ours_order'].median)} s = {fmt_x(best_o.median / by['ours_order'].median)}x"
        )
    else:
        lines.append("ordering only: no peer produced our exact maximin ordering at this n")
    if best_f is not None and best_f is not best_o:
        lines.append(
            f"ordering only, counting orderings exact up to float32 near-ties: {best_f.key} "
            f"{fmt_s(best_f.median)} s / ours {fmt_s(by['ours_order'].median)} s = "
            f"{fmt_x(best_f.median / by['ours_order'].median)}x"
        )
        if best_c is not None:
            other = best_f.median + best_c.median
            lines.append(
                f"  pipeline with it ({best_f.key} + {best_c.key}, {fmt_s(other)} s) / ours "
                f"({fmt_s(ours.median)} s): {fmt_x(other / ours.median)}x (not a bar: it departs "
                "from the exact float64 ordering)"
            )
    if best_o is not None and best_c is not None:
        other = best_o.median + best_c.median
        ratio = other / ours.median
        lines.append(
            f"fastest other exact pipeline ({best_o.key} + {best_c.key}, {fmt_s(other)} s) / ours "
            f"({fmt_s(ours.median)} s): {fmt_x(ratio)}x"
        )
        if (n, d, m) == (BAR_N, BAR_D, BAR_M):
            verdict = "met" if ratio >= EXACT_BAR else "NOT met"
            lines.append(
                f"bar (issue 4): at least {EXACT_BAR:g}x faster than the fastest other exact "
                f"method: {verdict}"
            )
    elif (n, d, m) == (BAR_N, BAR_D, BAR_M) and best_c is not None:
        # no peer gave the exact ordering: judge on the conditioning step, and on the
        # pipeline with a float32-exact ordering peer where there is one
        ratios = [best_c.median / by["ours_cond"].median]
        if best_f is not None:
            ratios.append((best_f.median + best_c.median) / ours.median)
        verdict = "met" if min(ratios) >= EXACT_BAR else "NOT met"
        lines.append(
            f"bar (issue 4): at least {EXACT_BAR:g}x faster than the fastest other exact "
            f"method, judged on the conditioning step"
            + (" and on the float32 pipeline above" if best_f is not None else "")
            + f": {verdict}"
        )
    if n >= 1_000_000:
        lines.append(
            f"n = {n:,}: ours completed, ordering + conditioning {fmt_s(ours.median)} s "
            f"(peak {fmt_mib(by['ours_order'].peak_bytes)} / "
            f"{fmt_mib(by['ours_cond'].peak_bytes)} MiB)"
        )
    for line in lines:
        print(line)
    emit({"type": "bars", "n": n, "d": d, "m": m, "lines": lines})


# --------------------------------------------------------------------------- residual correlation


def residual_factor(Z, length_scale):
    """Cholesky factor of the inducing points' Matern 3/2 correlation matrix
    (jitter 1e-10 * mean diagonal only when needed, as ResidualCorrelationDistance)."""
    KZ = matern15(cdist(Z, Z), length_scale)
    try:
        return np.linalg.cholesky(KZ)
    except np.linalg.LinAlgError:
        return np.linalg.cholesky(KZ + 1e-10 * np.mean(np.diag(KZ)) * np.eye(len(Z)))


def residual_brute(Xr, Z, length_scale, m, ranks=None, cell_budget=4_000_000):
    """Exact m nearest predecessors (ranks, and distances) in the residual
    correlation distance of a Matern 3/2 kernel given inducing points Z, by
    brute force with BLAS: r(x, y) = k(x, y) - v(x).v(y), v = L^-1 k(Z, .),
    d = sqrt(1 - |r(x, y)| / sqrt(r(x, x) r(y, y))). ``ranks``: only those rows."""
    from scipy.linalg import solve_triangular

    n = len(Xr)
    V = solve_triangular(
        residual_factor(Z, length_scale), matern15(cdist(Z, Xr), length_scale), lower=True
    )
    var = 1.0 - np.einsum("ij,ij->j", V, V)
    ranks = np.arange(n) if ranks is None else np.asarray(ranks)
    nb = np.full((len(ranks), m), -1, dtype=np.int64)
    nd = np.full((len(ranks), m), np.inf)
    start = 0
    while start < len(ranks):
        cells = (np.arange(1, len(ranks) - start + 1)) * np.maximum(ranks[start:], 1)
        block = max(1, int(np.searchsorted(cells, cell_budget, side="right")))
        q = ranks[start : start + block]
        stop = int(q[-1])
        if stop > 0:
            R = matern15(cdist(Xr[q], Xr[:stop]), length_scale) - V[:, q].T @ V[:, :stop]
            C = 1.0 - np.abs(R) / np.sqrt(var[q][:, None] * var[None, :stop])
            C[np.arange(stop)[None, :] >= q[:, None]] = np.inf  # only predecessors
            k = min(m, stop)
            part = np.argpartition(C, k - 1, axis=1)[:, :k]
            pc = np.take_along_axis(C, part, axis=1)
            srt = np.argsort(pc, axis=1, kind="stable")
            part = np.take_along_axis(part, srt, axis=1)
            pc = np.take_along_axis(pc, srt, axis=1)
            ok = np.isfinite(pc)
            nb[start : start + block, :k] = np.where(ok, part, -1)
            nd[start : start + block, :k] = np.where(ok, np.sqrt(np.maximum(pc, 0.0)), np.inf)
        start += block
    return nb, nd, V, var


def residual_row_dist(Xr, V, var, rows, cols, length_scale):
    """Residual correlation distances from the ranks ``rows`` to ``cols`` (ranks; -1: inf)."""
    safe = np.where(cols >= 0, cols, 0)
    k = matern15(row_dist(Xr, rows, safe), length_scale)
    r = k - np.einsum("ci,cki->ck", V[:, rows].T, V[:, safe.ravel()].T.reshape(*safe.shape, -1))
    c = 1.0 - np.abs(r) / np.sqrt(var[rows][:, None] * var[safe])
    out = np.sqrt(np.maximum(c, 0.0))
    out[cols < 0] = np.inf
    return out


def residual_agreement(Xr, V, var, rows, ours, ref, ref_d, m, length_scale, atol=1e-7, chunk=2000):
    """For the ranks ``rows`` (ours, ref, ref_d: one line per rank): the tie-safe
    fraction of our neighbours (ranks) within the exact m-th residual distance
    (+ atol), and the fraction of rows holding exactly the reference set."""
    hits = expected = same = 0
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        r = rows[sl]
        got = np.sort(ours[sl], axis=1)
        valid = (got >= 0) & (got < r[:, None])
        valid[:, 1:] &= got[:, 1:] != got[:, :-1]
        d = residual_row_dist(Xr, V, var, r, np.where(valid, got, -1), length_scale)
        kth = np.where(np.isfinite(ref_d[sl]), ref_d[sl], -np.inf).max(axis=1)
        hits += np.count_nonzero(valid & (d <= kth[:, None] + atol))
        expected += np.minimum(r, m).sum()
        same += np.count_nonzero(np.all(got == np.sort(ref[sl], axis=1), axis=1))
    return hits / max(expected, 1), same / max(len(rows), 1)


def gpboost_fsa(Xr, y, m, M, length_scale, approx, args):
    """(construction s, median likelihood-evaluation s, runs) of GPBoost's
    full-scale Vecchia model on Xr in its order."""
    t0 = time.perf_counter()
    model = gpboost_model(
        Xr,
        m,
        "none",
        args.n_jobs,
        args.seed,
        approx=approx,
        num_ind_points=M,
        ind_points_selection="kmeans++",
        matrix_inversion_method="cholesky",
    )
    t_build = time.perf_counter() - t0
    nll = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.neg_log_likelihood(cov_pars=[0.1, 1.0, length_scale], y=y)
        nll.append(time.perf_counter() - t0)
        if nll[-1] > args.slow_s:
            break
    return t_build, statistics.median(nll), len(nll)


def residual_case(args, emit):
    """GPBoost's full-scale Vecchia (VIF) residual-correlation neighbours vs ours."""
    from sklearn.cluster import KMeans
    from sklearn.gaussian_process.kernels import Matern

    from sklearn_pcct import ResidualCorrelationDistance, maximin_ordering, vecchia_neighbors

    n, d, m, M, ls = args.rc_n, args.d[0], args.m, args.rc_inducing, args.rc_length_scale
    rng = np.random.default_rng(args.seed)
    X = rng.random((n, d))
    y = np.random.default_rng(args.seed + 7).standard_normal(n)
    print(
        f"\n## residual-correlation neighbours: uniform [0,1]^{d}, n = {n:,}, m = {m}, "
        f"{M} inducing points, Matern nu = 1.5, length scale {ls:g}, {args.rc_ordering} "
        "ordering\n"
    )
    print(
        f"median of {args.repeats} timed runs (runs over {args.slow_s:g} s are not repeated), "
        f"load average at start {loadavg()}\n"
    )
    if args.rc_ordering == "maximin":
        order = maximin_ordering(X, n_jobs=args.n_jobs)[0]
    else:
        order = np.random.default_rng(args.seed + 1).permutation(n)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    Xr = np.ascontiguousarray(X[order])
    t0 = time.perf_counter()
    Z = KMeans(n_clusters=M, n_init=1, random_state=args.seed).fit(X).cluster_centers_
    t_z = time.perf_counter() - t0
    kernel = Matern(length_scale=ls, nu=1.5)
    wn = min(n, args.warmup_n)
    t0 = time.perf_counter()
    warm_metric = ResidualCorrelationDistance(kernel, Z)
    vecchia_neighbors(X[:wn], m, ordering="none", metric=warm_metric, n_jobs=args.n_jobs)
    if not args.no_cover_tree:  # its kernels too: compiling them is not search time
        vecchia_neighbors(X[:wn], m, ordering="none", metric=warm_metric, n_jobs=args.n_jobs,
                          algorithm="cover_tree")
    print(
        f"JIT warm-up ours (residual metric on the first {wn:,} points, both engines; "
        "NOT in the table): "
        f"{fmt_s(time.perf_counter() - t0)} s"
    )
    print(
        f"inducing points Z (ours and brute force): sklearn KMeans(n_clusters={M}, n_init=1), "
        f"{t_z:.2f} s, NOT in the table\n"
    )

    def timed(algorithm):
        times, nb = [], None
        with PeakMemory() as mem:
            for _ in range(args.repeats):
                nb = None
                gc.collect()
                t0 = time.perf_counter()
                metric = ResidualCorrelationDistance(kernel, Z)
                _, nb = vecchia_neighbors(
                    X, m, ordering=order, metric=metric, n_jobs=args.n_jobs, algorithm=algorithm
                )
                times.append(time.perf_counter() - t0)
                if times[-1] > args.slow_s:
                    break
        return times, nb, mem.peak

    table = []
    times, nb, peak = timed("auto")
    ours_s = statistics.median(times)
    ours_nb = np.asarray(nb, dtype=np.int64)
    ours_rank = np.where(ours_nb >= 0, rank_of[np.where(ours_nb >= 0, ours_nb, 0)], -1)
    ranks = np.sort(rng.choice(np.arange(1, n), min(args.check_ranks, n - 1), replace=False))
    ref, ref_d, V, var = residual_brute(Xr, Z, ls, m, ranks)
    recall, _ = residual_agreement(Xr, V, var, ranks, ours_rank[ranks], ref, ref_d, m, ls)
    check = "" if recall >= 1 - 1e-12 else f"{recall:.6f} of the neighbours on checked rows"
    table.append(
        [
            "ours: vecchia_neighbors(X, m, ordering=order, metric=ResidualCorrelationDistance("
            "Matern(ls, nu=1.5), Z)) (auto: brute-force screening with error bounds)",
            "yes (checked)" if not check else f"**NO: {check}**",
            len(times),
            "–",
            fmt_s(ours_s),
            fmt_mib(peak),
            "–",
            "–",
        ]
    )
    if not args.no_cover_tree:
        ctimes, cnb, cpeak = timed("cover_tree")
        same = np.array_equal(np.asarray(cnb), ours_nb)
        table.append(
            [
                "ours, algorithm=\"cover_tree\" (the same call on the cover tree)",
                "yes" if same else "**NO: differs from the brute-force call**",
                len(ctimes),
                "–",
                fmt_s(statistics.median(ctimes)),
                fmt_mib(cpeak),
                "identical to ours" if same else "differs",
                "–",
            ]
        )

    brute_s = None
    if float(n) * n * M / 2 > args.rc_brute_max_work:
        table.append(
            [
                "numpy brute force (BLAS, float64)",
                "yes",
                0,
                "–",
                f"skipped: n^2 M / 2 > {args.rc_brute_max_work:.0e}",
                "–",
                "–",
                "–",
            ]
        )
    else:
        btimes = []
        with thread_limits(args.n_jobs), PeakMemory() as mem:
            for _ in range(args.repeats):
                gc.collect()
                t0 = time.perf_counter()
                bnb, bnd, V, var = residual_brute(Xr, Z, ls, m)
                btimes.append(time.perf_counter() - t0)
                if btimes[-1] > args.slow_s:
                    break
        brute_s = statistics.median(btimes)
        every = np.arange(n)
        recall, same = residual_agreement(Xr, V, var, every, ours_rank, bnb, bnd, m, ls)
        table.append(
            [
                "numpy brute force (BLAS, float64; same Z, kernel and ordering as ours)",
                "yes",
                len(btimes),
                "–",
                fmt_s(brute_s),
                fmt_mib(mem.peak),
                f"ours vs it, every rank: {recall:.6f} (rows identical {same:.6f})",
                fmt_x(brute_s / ours_s),
            ]
        )
        if recall < 1 - 1e-12:
            check = (check + "; " if check else "") + f"brute-force agreement {recall:.6f}"
            table[0][1] = f"**NO: {check}**"

    gp_rows, est = {}, None
    if importlib.util.find_spec("gpboost") is None:
        table.append(["GPBoost full-scale Vecchia", "–", 0, "not installed", "–", "–", "–", "–"])
    else:
        for approx in ("full_scale_vecchia", "full_scale_vecchia_correlation_based"):
            with openmp_nesting_off():
                gp_rows[approx] = gpboost_fsa(Xr, y, m, M, ls, approx, args)
            gc.collect()
        est = gp_rows["full_scale_vecchia_correlation_based"][1] - gp_rows["full_scale_vecchia"][1]
        for approx, what in (
            ("full_scale_vecchia", "Euclidean neighbours, found in the construction"),
            (
                "full_scale_vecchia_correlation_based",
                "residual-correlation neighbours, searched in every likelihood evaluation",
            ),
        ):
            t_build, t_nll, runs = gp_rows[approx]
            corr = "correlation" in approx
            table.append(
                [
                    f'GPBoost GPModel(gp_approx="{approx}"), X in this order ("none"): {what}',
                    "yes (cover tree)" if corr else "yes (Ra-Kim search)",
                    runs,
                    fmt_s(t_build),
                    f"{fmt_s(t_nll)} (likelihood evaluation)",
                    "n/a",
                    "n/a: its inducing points (kmeans++, own RNG) are neither exposed nor settable",
                    fmt_x(est / ours_s) + " (search estimate)" if corr else "–",
                ]
            )
    print(
        "| method | exact | runs | construction s | neighbour search s | peak MiB "
        "| agreement | peer / ours |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for line in table:
        print("| " + " | ".join(str(x) for x in line) + " |")
    print()
    print(
        f"ours checked against brute force on {len(ranks)} random ranks"
        + ("" if brute_s is None else " and on every rank (the brute-force row)")
    )
    if est is not None:
        print(
            "GPBoost's residual-correlation search, estimated as the difference of its two "
            f"likelihood evaluations: {fmt_s(est)} s; / ours {fmt_s(ours_s)} s = "
            f"{fmt_x(est / ours_s)}x"
        )
    emit(
        {
            "type": "residual",
            "n": n,
            "d": d,
            "m": m,
            "inducing": M,
            "ordering": args.rc_ordering,
            "ours_s": ours_s,
            "ours_runs_s": times,
            "brute_s": brute_s,
            "gpboost": gp_rows,
            "check": check or "ok",
        }
    )
    print(f"load average at end: {loadavg()}")
    return [f"residual n={n}: {check}"] if check else []


# --------------------------------------------------------------------------- main


def versions():
    found = bench_knn.versions()
    for name in ("gpboost", "fpsample", "covertreex"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    for name in ("pykdtree", "faiss-cpu", "hnswlib", "pynndescent"):
        found.pop(name, None)
    return found


def gpboost_overhead(X, m, args):
    """GPBoost's construction with its neighbour search deferred
    (gp_approx="vecchia_correlation_based" finds the neighbours only when the
    likelihood is evaluated): the part of the construction that is not the search."""
    times = []
    for _ in range(args.repeats):
        gc.collect()
        with openmp_nesting_off():
            t0 = time.perf_counter()
            model = gpboost_model(X, m, "none", args.n_jobs, args.seed, "vecchia_correlation_based")
            times.append(time.perf_counter() - t0)
        del model
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="point counts"
    )
    parser.add_argument("--d", type=int, nargs="+", default=[2], help="dimensions")
    parser.add_argument("--m", type=int, default=30, help="conditioning-set size")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is shown")
    parser.add_argument(
        "--slow-s", type=float, default=60.0, help="a run longer than this is not repeated"
    )
    parser.add_argument("--seed", type=int, default=0, help="numpy Generator seed")
    parser.add_argument(
        "--peers",
        type=functools.partial(bench_knn.parse_peers, all_peers=ALL_PEERS),
        default=None,
        help=f"comma list from {', '.join(ALL_PEERS)}, or 'all' / 'none' (default: all "
        f"installed; for n > {LARGE_N:,}: {', '.join(LARGE_N_PEERS)})",
    )
    parser.add_argument("--n-jobs", type=int, default=-1, help="threads for every method")
    parser.add_argument("--check-ranks", type=int, default=200, help="ranks checked by brute force")
    parser.add_argument(
        "--check-maximin", type=int, default=10, help="ranks where the maximin property is checked"
    )
    parser.add_argument(
        "--nll-max-n", type=int, default=100_000, help="largest n for GPBoost's likelihood check"
    )
    parser.add_argument("--fps-h", type=int, default=None, help="QuickFPS tree height")
    parser.add_argument("--warmup-n", type=int, default=2000, help="warm-up subset size")
    parser.add_argument(
        "--rc-n",
        type=int,
        default=10_000,
        help="n of the residual-correlation table (0: skip it)",
    )
    parser.add_argument("--rc-inducing", type=int, default=200, help="inducing points (rc table)")
    parser.add_argument(
        "--rc-length-scale", type=float, default=0.1, help="Matern length scale (rc table)"
    )
    parser.add_argument(
        "--rc-ordering",
        choices=("random", "maximin"),
        default="random",
        help="ordering of the rc table (random: GPBoost's default)",
    )
    parser.add_argument(
        "--rc-brute-max-work",
        type=float,
        default=2e11,
        help="largest n^2 M / 2 for the rc table's brute force",
    )
    parser.add_argument(
        "--no-cover-tree", action="store_true",
        help='skip the row of vecchia_neighbors(X, m, algorithm="cover_tree")',
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line per row")
    args = parser.parse_args(argv)
    if min(args.n) < args.m + 2 or args.m < 1 or args.repeats < 1 or args.warmup_n < 100:
        parser.error("need n >= m + 2, m >= 1, --repeats >= 1, --warmup-n >= 100")
    if args.n_jobs == 0 or args.n_jobs < -1:
        parser.error("--n-jobs must be -1 or a positive integer")

    def emit(record):
        if args.json:
            print(json.dumps(record, default=lambda o: o.item() if hasattr(o, "item") else str(o)))

    info = machine_info(args.n_jobs)
    info["versions"] = versions()
    info["load_average_start"] = loadavg()
    print("# sklearn-pcct Vecchia benchmark: maximin ordering and conditioning sets\n")
    print_machine(info, args.n_jobs)
    print(f"- load average at start: {info['load_average_start']}")
    spec = importlib.util.find_spec("sklearn_pcct")
    print(f"- sklearn_pcct imported from: {Path(spec.origin).parent if spec else 'not installed'}")
    emit({"type": "machine", **info})

    ours, peers = make_methods(args)
    failed = []
    for d in args.d:
        for n in args.n:
            failed += run_case(n, d, args, ours, peers, emit)
    if args.rc_n:
        failed += residual_case(args, emit)

    return finish(info, failed, emit)


if __name__ == "__main__":
    sys.exit(main())
