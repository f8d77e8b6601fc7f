"""Scale check of issue 2: build and k-NN graph of n = 10^6 uniform points in 8-D.

Builds ``PCCTNeighbors`` on ``n`` uniform [0, 1]^d points, computes the k-NN
graph of the fitted data (``kneighbors_graph(mode="distance")``, self
excluded), checks ``--check-rows`` random rows against brute force and prints
the times and the peak resident memory. Optionally times scipy's cKDTree on
the same data (``--ckdtree``).

Run on a quiet machine (it takes tens of minutes on 2 cores)::

    python benchmarks/bench_million.py --n 1000000 --d 8 --k 16
"""

import argparse
import resource
import time

import numpy as np

from sklearn_pcct import PCCTNeighbors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--check-rows", type=int, default=200)
    parser.add_argument("--ckdtree", action="store_true", help="also time scipy cKDTree")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    X = rng.random((args.n, args.d))
    warm = PCCTNeighbors(n_neighbors=args.k, n_jobs=args.n_jobs).fit(X[:2000])
    t0 = time.perf_counter()
    warm.kneighbors_graph(mode="distance")
    print(f"JIT warm-up (2,000 points; not in the figures below): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    nn = PCCTNeighbors(n_neighbors=args.k, n_jobs=args.n_jobs).fit(X)
    t1 = time.perf_counter()
    print(f"build: {t1 - t0:.1f} s", flush=True)
    G = nn.kneighbors_graph(mode="distance")
    t2 = time.perf_counter()
    print(f"k={args.k} graph (X=None): {t2 - t1:.1f} s, nnz {G.nnz}", flush=True)

    rows = rng.choice(args.n, min(args.check_rows, args.n), replace=False)
    exact = True
    for r in rows:
        d = np.sqrt(((X - X[r]) ** 2).sum(axis=1))
        d[r] = np.inf
        exact &= np.allclose(np.sort(G[[r]].data), np.sort(d)[: args.k], rtol=1e-10, atol=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"exact on {rows.size} random rows: {exact}; peak RSS {peak:.0f} MiB")

    if args.ckdtree:
        from scipy.spatial import cKDTree

        t0 = time.perf_counter()
        tree = cKDTree(X)
        t1 = time.perf_counter()
        tree.query(X, k=args.k + 1, workers=args.n_jobs)
        t2 = time.perf_counter()
        print(f"scipy cKDTree: build {t1 - t0:.2f} s, all-kNN {t2 - t1:.1f} s")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
