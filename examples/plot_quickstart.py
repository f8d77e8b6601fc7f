"""
================================================
Exact neighbours on a 20 000-point spatial layer
================================================

This example fits :class:`~sklearn_pcct.PCCTNeighbors` on a synthetic map of
20 000 locations, checks a sample of its answers against scikit-learn's brute
force search, times it next to scikit-learn's k-d tree, and draws the
neighbours of one query point.
"""

# %%
# A synthetic spatial dataset
# ---------------------------
#
# The points imitate buildings on a 100 km x 100 km map: a few dense towns of
# different sizes on top of scattered countryside. Coordinates are in
# kilometres, so Euclidean distances are in kilometres too.

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct import PCCTNeighbors

rng = np.random.default_rng(0)
n_samples, n_towns = 20_000, 40
towns = rng.uniform(0, 100, size=(n_towns, 2))
town_size = rng.uniform(0.3, 4.0, size=n_towns)
which = rng.integers(0, n_towns, size=n_samples)
X = towns[which] + rng.normal(size=(n_samples, 2)) * town_size[which, None]
countryside = rng.random(n_samples) < 0.15
X[countryside] = rng.uniform(0, 100, size=(countryside.sum(), 2))

# New locations to look up, drawn the same way.
queries = towns[rng.integers(0, n_towns, size=5_000)] + rng.normal(size=(5_000, 2))
print(f"{X.shape[0]} fitted points, {queries.shape[0]} queries")

# %%
# Fit and query
# -------------
#
# The interface is the one of :class:`sklearn.neighbors.NearestNeighbors`.
# ``n_jobs=-1`` runs the queries on all cores.
#
# The Numba kernels are compiled (or loaded from the on-disk cache) on their
# first call, so we make one small call before timing anything.

PCCTNeighbors(n_neighbors=2).fit(X[:100]).kneighbors(queries[:10])

n_neighbors = 10
nn = PCCTNeighbors(n_neighbors=n_neighbors, n_jobs=-1).fit(X)
dist, ind = nn.kneighbors(queries)
print(dist.shape, ind.shape, dist.dtype, ind.dtype)

# %%
# Check exactness against brute force
# -----------------------------------
#
# The search is exact: for a random sample of queries, the neighbours and
# distances must be those of an exhaustive search. (With continuous data,
# exact ties are improbable; when they occur, PCCTNeighbors orders tied points
# by index.) The brute-force search computes Euclidean distances through
# ``|x|^2 - 2 x.y + |y|^2``, which loses a few digits to rounding, so the
# distances are compared with a tolerance.

sample = rng.choice(queries.shape[0], size=500, replace=False)
brute = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(X)
dist_ref, ind_ref = brute.kneighbors(queries[sample])

print("same indices:", np.array_equal(ind[sample], ind_ref))
print("same distances:", np.allclose(dist[sample], dist_ref))
print(f"largest distance difference: {np.abs(dist[sample] - dist_ref).max():.1e} km")

# %%
# Timings next to scikit-learn's k-d tree
# ---------------------------------------
#
# Best of three runs of ``fit`` and of ``kneighbors`` on the 5 000 queries,
# next to scikit-learn's k-d tree and ball tree. With two Euclidean features
# ``PCCTNeighbors`` answers on its own kd-tree index (``algorithm="auto"``;
# ``algorithm="cover_tree"`` selects the compressed cover tree, the index for
# metrics a k-d tree cannot use). The numbers depend on your machine and on
# how busy it is.


def best_of(func, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


estimators = {
    "PCCTNeighbors": PCCTNeighbors(n_neighbors=n_neighbors, n_jobs=-1),
    "NearestNeighbors(kd_tree)": NearestNeighbors(
        n_neighbors=n_neighbors, algorithm="kd_tree", n_jobs=-1
    ),
    "NearestNeighbors(ball_tree)": NearestNeighbors(
        n_neighbors=n_neighbors, algorithm="ball_tree", n_jobs=-1
    ),
}
print(f"{'estimator':<30}{'fit [s]':>10}{'kneighbors [s]':>16}")
for name, est in estimators.items():
    t_fit = best_of(lambda est=est: est.fit(X))
    t_query = best_of(lambda est=est: est.kneighbors(queries))
    print(f"{name:<30}{t_fit:>10.4f}{t_query:>16.4f}")

# %%
# The neighbours of one query
# ---------------------------
#
# The left panel shows the whole map and one query; the right panel zooms in
# on it, with its 10 nearest neighbours and the circle through the 10th. A
# radius query with that radius returns the same points (the boundary is
# included).

q = queries[[0]]
q_dist, q_ind = nn.kneighbors(q)
r_ind = nn.radius_neighbors(q, radius=q_dist[0, -1], return_distance=False)[0]
print("radius query finds the same points:", set(r_ind) == set(q_ind[0]))

fig, (ax_map, ax_zoom) = plt.subplots(1, 2, figsize=(11, 5.2))
for ax in (ax_map, ax_zoom):
    ax.scatter(X[:, 0], X[:, 1], s=1, c="0.75", rasterized=True)
    ax.scatter(*X[q_ind[0]].T, s=30, c="tab:blue", label=f"{n_neighbors} nearest")
    ax.scatter(*q.T, s=80, marker="*", c="tab:red", label="query")
    ax.set_aspect("equal")
    ax.set_xlabel("x [km]")
ax_map.set_ylabel("y [km]")
ax_map.set_title("20 000 locations")

radius = q_dist[0, -1]
ax_zoom.add_patch(plt.Circle(q[0], radius, fill=False, ls="--", color="tab:blue"))
half = 4 * radius
ax_zoom.set_xlim(q[0, 0] - half, q[0, 0] + half)
ax_zoom.set_ylim(q[0, 1] - half, q[0, 1] + half)
ax_zoom.set_title(f"zoom: 10th neighbour at {radius:.3f} km")
ax_zoom.legend(loc="upper right")
ax_map.indicate_inset_zoom(ax_zoom, edgecolor="k")
fig.tight_layout()
plt.show()
