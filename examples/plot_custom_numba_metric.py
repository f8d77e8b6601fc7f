"""
==========================================
Your own metric: a periodic box with Numba
==========================================

Besides its built-in metrics, :class:`~sklearn_pcct.PCCTNeighbors` accepts a
distance of your own: a function of two 1-D ``float64`` arrays that Numba
can compile. It runs inside the compiled tree search, so the search stays
exact and fast.

Here the points are particles in a periodic box, as in a molecular dynamics
simulation: a particle that leaves through one side comes back through the
opposite one, and the distance between two particles is the length of the
shortest way between them across any side. This example writes that
distance, checks the neighbours it gives against brute force, and shows what
goes wrong, without any error, with a function that is not a metric.
"""

# %%
# The periodic distance
# ---------------------
#
# On a box of side lengths ``L``, the periodic difference along axis ``j`` is
# ``min(d, L[j] - d)`` with ``d = |a[j] - b[j]| mod L[j]``, and the distance
# is the Euclidean norm of these differences. This is a true metric (it is
# the Euclidean distance of the flat torus). Two points that differ by whole
# box lengths are at distance zero, which the tree accepts and treats as
# duplicates.
#
# The function receives only the two points. Parameters such as the box are
# bound in a *closure*: a factory function takes them and returns a compiled
# function that uses them. Numba freezes the captured array as a constant
# when it compiles the function. (``metric_params`` are not passed to a
# callable metric; see below.)

import time

import matplotlib.pyplot as plt
import numba
import numpy as np
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct import PCCTNeighbors


def make_periodic_distance(box, squared=False):
    """Return a Numba-compiled periodic distance for a box of sides ``box``.

    With ``squared=True`` it returns the squared distance instead, which is
    not a metric (it is used at the end of this example).
    """
    box = np.asarray(box, dtype=np.float64)

    @numba.njit
    def periodic_distance(a, b):
        total = 0.0
        for j in range(a.shape[0]):
            d = abs(a[j] - b[j]) % box[j]
            d = min(d, box[j] - d)
            total += d * d
        return total if squared else np.sqrt(total)

    return periodic_distance


# %%
# Numba compiles a function on its first call, which takes a moment. A new
# closure, even with the same box, is a new function and is compiled again,
# so make the metric once and reuse it.

box = np.array([10.0, 5.0])
periodic = make_periodic_distance(box)
start = time.perf_counter()
print(periodic(np.array([0.5, 0.5]), np.array([9.5, 4.5])))  # sqrt(1**2 + 1**2)
print(f"first call, with compilation: {time.perf_counter() - start:.2f} s")

# %%
# The particles
# -------------
#
# 10 000 particles in 25 clumps, wrapped into the box: clumps near a side
# continue on the opposite side.

rng = np.random.default_rng(0)
n_samples, n_clumps = 10_000, 25
centres = rng.random((n_clumps, 2)) * box
X = centres[rng.integers(0, n_clumps, size=n_samples)] + 0.35 * rng.normal(size=(n_samples, 2))
X %= box
print(X.shape)

# %%
# Fit and query
# -------------
#
# The metric is passed as ``metric=``. The tree's own kernels are compiled
# once and cached on disk; the first fit with a new function only compiles a
# small wrapper that lets the kernels call it, once per function and
# process, so the second fit is faster. A plain Python function would be
# compiled with :func:`numba.njit` for you; decorating it yourself shows
# Numba's errors, if any, where you define it.

n_neighbors = 10
for attempt in ["first", "second"]:
    start = time.perf_counter()
    nn = PCCTNeighbors(n_neighbors=n_neighbors, metric=periodic, n_jobs=-1).fit(X)
    dist, ind = nn.kneighbors()  # the k-NN graph of X, each point left out
    print(f"{attempt} fit and k-NN graph: {time.perf_counter() - start:.2f} s")

start = time.perf_counter()
euclidean = PCCTNeighbors(n_neighbors=n_neighbors, n_jobs=-1).fit(X)
euclidean_ind = euclidean.kneighbors(return_distance=False)
print(f"built-in euclidean, for comparison: {time.perf_counter() - start:.2f} s")

# %%
# Check against brute force
# -------------------------
#
# For a random sample of 500 points, compute the periodic distance to every
# particle with NumPy, leave each point out of its own list as
# ``kneighbors()`` does, and sort. Indices and distances must agree.

sample = rng.choice(n_samples, size=500, replace=False)


def brute_force(rows, k, squared=False):
    diff = np.abs(X[rows, None, :] - X[None, :, :]) % box
    diff = np.minimum(diff, box - diff)
    D = (diff**2).sum(axis=-1)
    if not squared:
        D = np.sqrt(D)
    D[np.arange(len(rows)), rows] = np.inf  # leave the point itself out
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, axis=1), order


dist_ref, ind_ref = brute_force(sample, n_neighbors)
print("same indices:", np.array_equal(ind[sample], ind_ref))
print("same distances:", np.allclose(dist[sample], dist_ref))

# %%
# scikit-learn's brute-force search accepts the same compiled function as a
# callable metric and calls it from Python once per pair of points, which is
# slow, so only 20 points are checked that way.

small = sample[:20]
brute = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric=periodic).fit(X)
dist_sk, ind_sk = brute.kneighbors(X[small], n_neighbors=n_neighbors + 1)
# Queried with the points themselves, scikit-learn lists each point first, at
# distance zero; drop that column.
print("same indices as sklearn brute force:", np.array_equal(ind[small], ind_sk[:, 1:]))
print("same distances:", np.allclose(dist[small], dist_sk[:, 1:]))

# %%
# The periodic neighbours are not the plain Euclidean ones for the particles
# near a side of the box:

differs = np.any(np.sort(ind, axis=1) != np.sort(euclidean_ind, axis=1), axis=1)
print(f"points whose neighbours change with periodicity: {np.sum(differs)} of {n_samples}")

# %%
# Parameters go in the closure
# ----------------------------
#
# ``metric_params`` are for the built-in metrics. With a callable they are
# refused, with a reminder of what to do instead:

try:
    PCCTNeighbors(metric=periodic, metric_params={"box": box}).fit(X)
except ValueError as exc:
    print(f"ValueError: {exc}")

# %%
# A function that is not a metric gives wrong answers silently
# ------------------------------------------------------------
#
# The tree skips whole subtrees by the triangle inequality,
# ``d(a, c) <= d(a, b) + d(b, c)``. The package cannot check that your
# function obeys it. The *squared* periodic distance, for example, ranks
# neighbours exactly as the distance does, but it is not a metric: three
# points 1 apart on a line have squared distances 1 and 1 between
# neighbours, and 4 > 1 + 1 between the ends.
#
# A quick check on random triples of points finds the violations:

squared = make_periodic_distance(box, squared=True)


def triangle_violations(metric, n_triples=10_000):
    a, b, c = X[rng.integers(0, n_samples, size=(3, n_triples))]
    d_ab = np.array([metric(p, q) for p, q in zip(a, b, strict=True)])
    d_bc = np.array([metric(p, q) for p, q in zip(b, c, strict=True)])
    d_ac = np.array([metric(p, q) for p, q in zip(a, c, strict=True)])
    return np.sum(d_ac > (d_ab + d_bc) * (1 + 1e-12))


print("triangle violations, periodic distance:", triangle_violations(periodic))
print("triangle violations, squared distance: ", triangle_violations(squared))

# %%
# The tree accepts the squared distance and returns an answer without any
# warning, but for many points the answer is not the nearest neighbours.
# (Brute force with the squared distance finds the same neighbours as with
# the distance itself.)

sq_dist, sq_ind = PCCTNeighbors(n_neighbors=n_neighbors, metric=squared).fit(X).kneighbors()
sq_dist_ref, sq_ind_ref = brute_force(sample, n_neighbors, squared=True)
wrong = np.any(sq_ind[sample] != sq_ind_ref, axis=1)
print("brute force: same neighbours as the periodic distance:", np.array_equal(sq_ind_ref, ind_ref))
print(f"tree with the squared distance: {np.sum(wrong)} of {len(sample)} points answered wrongly")

# %%
# A passing check on random triples does not prove a function is a metric;
# a failing one proves it is not. To use a non-metric, search by brute force
# (:class:`sklearn.neighbors.NearestNeighbors` with ``algorithm="brute"``), or
# find a metric that ranks the same way, as the square root does here.
#
# Plot
# ----
#
# Left: the 100 nearest neighbours of the particle closest to a corner,
# periodic and plain Euclidean; the periodic ones wrap around to the other
# three corners. Right: the sampled points where the tree with the squared
# distance answered wrongly.

corner = np.argmin(np.linalg.norm(np.minimum(X, box - X), axis=1))
n_plot = 100
corner_periodic = nn.kneighbors(X[[corner]], n_neighbors=n_plot, return_distance=False)[0]
corner_euclidean = euclidean.kneighbors(X[[corner]], n_neighbors=n_plot, return_distance=False)[0]
fig, (ax_left, ax_right) = plt.subplots(1, 2, figsize=(12, 3.9))
for ax in (ax_left, ax_right):
    ax.scatter(*X.T, s=1, c="0.8", rasterized=True)
    ax.add_patch(plt.Rectangle((0, 0), *box, fill=False, color="k"))
    ax.set_xlim(-0.3, box[0] + 0.3)
    ax.set_ylim(-0.3, box[1] + 0.3)
    ax.set_aspect("equal")
ax_left.scatter(
    *X[corner_periodic].T, s=40, facecolors="none", edgecolors="tab:blue", label="periodic"
)
ax_left.scatter(*X[corner_euclidean].T, s=8, c="tab:orange", label="euclidean")
ax_left.scatter(*X[corner], s=150, marker="*", c="tab:red", label="query")
ax_left.set_title(f"{n_plot} nearest neighbours of a corner particle")
ax_left.legend(loc="center", framealpha=0.9)
ax_right.scatter(*X[sample[~wrong]].T, s=8, c="tab:green", label="right")
ax_right.scatter(*X[sample[wrong]].T, s=8, c="tab:red", label="wrong")
ax_right.set_title("squared distance (not a metric): tree vs brute force")
ax_right.legend(loc="center", framealpha=0.9)
fig.tight_layout()
plt.show()
