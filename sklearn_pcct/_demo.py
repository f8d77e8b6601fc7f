"""The ``python -m sklearn_pcct demo`` job: exact kNN graphs next to the peers."""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from ._neighbors import PCCTNeighbors

__all__ = ["spatial_dataset", "run_demo"]


def spatial_dataset(n_samples=100_000, random_state=0):
    """Clustered 2-D spatial points: a default dataset for the demo.

    Half of the points form 40 Gaussian clusters of varied widths, the rest
    lie uniformly in the unit square, rounded to 6 decimals (so some points
    repeat exactly, as in real coordinate data).

    Parameters
    ----------
    n_samples : int, default=100_000
        Number of points.
    random_state : int, default=0
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, float64, in a random order.

    Examples
    --------
    >>> from sklearn_pcct._demo import spatial_dataset
    >>> spatial_dataset(1000).shape
    (1000, 2)
    """
    rng = np.random.default_rng(random_state)
    n_clustered = n_samples // 2
    centres = rng.random((40, 2))
    widths = 10.0 ** rng.uniform(-3, -1.5, 40)
    labels = rng.integers(0, 40, n_clustered)
    clustered = centres[labels] + rng.normal(size=(n_clustered, 2)) * widths[labels, None]
    uniform = rng.random((n_samples - n_clustered, 2))
    X = np.vstack([clustered, uniform])
    return np.round(X[rng.permutation(n_samples)], 6)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _check_rows(X, dist, ind, k, n_check, rng, out):
    """Compare a random sample of rows with an exact brute-force search."""
    rows = rng.choice(X.shape[0], size=min(n_check, X.shape[0]), replace=False)
    D = np.sqrt(((X[rows, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    D[np.arange(rows.size), rows] = np.inf  # X=None excludes the sample itself
    ref = np.sort(D, axis=1)[:, :k]
    ok_dist = np.allclose(dist[rows], ref, rtol=1e-12, atol=0)
    ok_ind = np.allclose(D[np.arange(rows.size)[:, None], ind[rows]], ref, rtol=1e-12, atol=0)
    out(f"  exactness: {rows.size} random rows vs brute force: "
        f"distances {'OK' if ok_dist else 'MISMATCH'}, indices {'OK' if ok_ind else 'MISMATCH'}")
    return ok_dist and ok_ind


def _peer_timings(X, k, n_jobs, out):
    try:
        from scipy.spatial import cKDTree
    except ImportError:  # pragma: no cover - scipy is a dependency
        cKDTree = None
    rows = []
    if cKDTree is not None:
        tree, tb = _timed(lambda: cKDTree(X))
        _, tq = _timed(lambda: tree.query(X, k + 1, workers=n_jobs))
        rows.append(("scipy cKDTree", tb, tq))
    for algorithm in ("kd_tree", "ball_tree"):
        est, tb = _timed(
            lambda a=algorithm: NearestNeighbors(n_neighbors=k, algorithm=a, n_jobs=n_jobs).fit(X)
        )
        _, tq = _timed(lambda e=est: e.kneighbors())
        rows.append((f"sklearn {algorithm}", tb, tq))
    for name, tb, tq in rows:
        out(f"  {name:<16} build {tb:8.3f} s   kNN graph {tq:8.3f} s   total {tb + tq:8.3f} s")
    return rows


def _one(name, X, k, n_jobs, n_check, rng, out, verbose=0):
    out(f"\n{name}: {X.shape[0]} points, {X.shape[1]} features, k = {k}")
    est, tb = _timed(
        lambda: PCCTNeighbors(n_neighbors=k, n_jobs=n_jobs, verbose=verbose).fit(X)
    )
    (dist, ind), tq = _timed(lambda: est.kneighbors())
    graph = est.kneighbors_graph(mode="distance")
    out(f"  {'sklearn-pcct':<16} build {tb:8.3f} s   kNN graph {tq:8.3f} s   total {tb + tq:8.3f} s"
        f"   (graph nnz {graph.nnz})")
    ok = _check_rows(X, dist, ind, k, n_check, rng, out)
    if verbose:
        out("  timing the peers ...")
    _peer_timings(X, k, n_jobs, out)
    return ok


def run_demo(
    n_samples=100_000, n_neighbors=15, n_jobs=-1, n_check=200, random_state=0, out=print,
    verbose=0,
):
    """Build exact kNN graphs of two datasets and compare them with the peers.

    Parameters
    ----------
    n_samples : int, default=100_000
        Size of the generated spatial dataset.
    n_neighbors : int, default=15
        Neighbours per point.
    n_jobs : int, default=-1
        Threads for every method.
    n_check : int, default=200
        Rows checked against brute force per dataset.
    random_state : int, default=0
        Seed of the data and of the checked rows.
    out : callable, default=print
        Where the report lines go.
    verbose : int, default=0
        ``> 0`` shows the progress of the fits and neighbour queries of
        100,000 points or more (``2``: of every size) on standard error.

    Returns
    -------
    ok : bool
        Whether every checked row matched brute force.

    Examples
    --------
    >>> from sklearn_pcct._demo import run_demo
    >>> run_demo(n_samples=500, n_check=20, out=lambda line: None)
    True
    """
    rng = np.random.default_rng(random_state)
    datasets = {"spatial": spatial_dataset(n_samples, random_state),
                "digits": load_digits().data.astype(np.float64)}
    # compile the kernels of both datasets' paths once (the spatial data take
    # the kd-tree, digits' 64 features the cover tree, whose batch insertion
    # takes other kernels for larger rounds), and say what it cost
    t_jit = sum(
        _timed(lambda X=X: PCCTNeighbors(n_neighbors=2, n_jobs=n_jobs).fit(X[:2000]).kneighbors())[1]
        for X in datasets.values()
    )
    out(f"warm-up (Numba compile or cache load): {t_jit:.2f} s")
    ok = True
    for name, X in datasets.items():
        ok &= _one(name, X, n_neighbors, n_jobs, n_check, rng, out, verbose)
    out("\nall checked rows exact" if ok else "\nMISMATCH against brute force")
    return ok
