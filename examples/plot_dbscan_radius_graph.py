"""
===============================
DBSCAN on an exact radius graph
===============================

:class:`~sklearn.cluster.DBSCAN` needs, for every point, all the points
within ``eps`` of it. :meth:`PCCTNeighbors.radius_neighbors_graph
<sklearn_pcct.PCCTNeighbors.radius_neighbors_graph>` computes exactly that,
as a sparse matrix of distances, and ``DBSCAN(metric="precomputed")`` reads
it. The clusters are the ones DBSCAN finds on the raw coordinates, label for
label.

This example also explains how DBSCAN reads a sparse graph (stored zeros
count, missing entries do not), why the graph must keep its explicit zeros,
and why a k-nearest-neighbour graph such as the output of
:class:`~sklearn_pcct.PCCTTransformer` is not the graph DBSCAN needs.
"""

# %%
# The data
# --------
#
# Two interleaved moons and two blobs over a background of uniform noise. We
# add two kinds of exact duplicates, which real data often have (repeated
# records, positions rounded to a grid): 200 points that repeat points of
# the clusters, and a *stack* of 12 copies of one location far from
# everything else, such as a sensor that kept reporting the same position.

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

from sklearn_pcct import PCCTNeighbors, PCCTTransformer

rng = np.random.default_rng(0)
moons, _ = make_moons(n_samples=6_000, noise=0.06, random_state=0)
blobs, _ = make_blobs(
    n_samples=4_000, centers=[[2.6, 1.9], [-1.6, 1.8]], cluster_std=0.22, random_state=0
)
background = rng.uniform([-2.5, -1.5], [3.5, 3.0], size=(800, 2))
X = np.vstack([moons, blobs, background])
repeats = X[rng.choice(len(X), size=200, replace=False)]
stack = np.tile([[4.0, 2.8]], (12, 1))
X = np.vstack([X, repeats, stack])
stack_rows = np.arange(len(X) - len(stack), len(X))
print(X.shape)

# %%
# DBSCAN on the raw coordinates
# -----------------------------
#
# This is the reference: scikit-learn's DBSCAN searches the neighbourhoods
# itself, with a k-d tree.

eps, min_samples = 0.08, 10

start = time.perf_counter()
reference = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(X)
t_reference = time.perf_counter() - start
n_clusters = reference.max() + 1
print(f"{n_clusters} clusters, {np.sum(reference == -1)} noise points, {t_reference:.2f} s")

# %%
# DBSCAN on the PCCT radius graph
# -------------------------------
#
# ``radius_neighbors_graph(X, mode="distance")`` returns a CSR matrix whose row
# ``i`` stores the distance from point ``i`` to every point within ``eps``
# (the boundary included, as in DBSCAN), itself included at distance zero.
# DBSCAN with ``metric="precomputed"`` and the same ``eps`` and
# ``min_samples`` finds the same clusters.
#
# ``mode="distance"`` matters: in ``mode="connectivity"`` every stored value
# is 1, and DBSCAN would compare those ones with ``eps``.
#
# The Numba kernels are compiled (or loaded from the on-disk cache) on first
# use, so we make one small call before timing.

PCCTNeighbors(radius=eps).fit(X[:100]).radius_neighbors_graph(mode="distance")

start = time.perf_counter()
nn = PCCTNeighbors(radius=eps, n_jobs=-1).fit(X)
graph = nn.radius_neighbors_graph(X, mode="distance")
t_graph = time.perf_counter() - start

dbscan = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
start = time.perf_counter()
labels = dbscan.fit_predict(graph)
t_dbscan = time.perf_counter() - start

print(f"graph: {graph.shape}, {graph.nnz} stored distances")
print("same labels as DBSCAN on the raw data:", np.array_equal(labels, reference))
print(f"radius graph {t_graph:.2f} s + DBSCAN on it {t_dbscan:.2f} s")
print(f"DBSCAN on the raw data             {t_reference:.2f} s")

# %%
# On two Euclidean features, scikit-learn's k-d tree is a very strong
# baseline, and DBSCAN's own search is hard to beat here. The graph pays off
# with a metric a k-d tree does not support, on data of low intrinsic
# dimension spread over many features, and when the graph is reused, as
# below. The numbers depend on your machine and on how busy it is.
#
# One graph for several ``eps``
# -----------------------------
#
# DBSCAN ignores the stored distances larger than its ``eps``. A graph built
# with the largest radius of interest therefore serves every smaller ``eps``
# too: the neighbourhood search runs once for the whole sweep.

for smaller_eps in [0.05, 0.06, 0.07]:
    from_graph = DBSCAN(eps=smaller_eps, min_samples=min_samples, metric="precomputed")
    direct = DBSCAN(eps=smaller_eps, min_samples=min_samples)
    same = np.array_equal(from_graph.fit_predict(graph), direct.fit_predict(X))
    print(f"eps={smaller_eps}: {from_graph.labels_.max() + 1:>2} clusters, same labels: {same}")

# %%
# How DBSCAN reads a sparse graph
# -------------------------------
#
# For a sparse precomputed matrix, scikit-learn's neighbourhood of point
# ``i`` is the set of *stored* entries of row ``i`` whose value is at most
# ``eps``:
#
# * an entry that is absent means "not a neighbour" (farther than the graph
#   looked), not "distance zero";
# * an entry that is stored with the value zero is a neighbour at distance
#   zero. These explicit zeros are the diagonal (each point is in its own
#   neighbourhood and counts towards ``min_samples``) and exact duplicates.
#
# PCCTNeighbors stores every pair within the radius, zeros included:

n_zeros = np.sum(graph.data == 0)
n_diagonal = len(X)
print(f"explicit zeros: {n_zeros} = {n_diagonal} on the diagonal + {n_zeros - n_diagonal} others")

# %%
# The others are between duplicates, and they are what make the stack a
# cluster: its 12 points are each other's neighbours at distance zero, so
# each has 12 >= ``min_samples`` neighbours. A graph that lost its stored zeros (for example after
# :meth:`scipy.sparse.csr_matrix.eliminate_zeros`) says the opposite, and
# the stack turns into noise. (DBSCAN puts the diagonal back itself, so the
# diagonal zeros are not the problem.)

pruned = graph.copy()
pruned.eliminate_zeros()
labels_pruned = dbscan.fit_predict(pruned)
print("stack labels, full graph:  ", np.unique(labels[stack_rows]))
print("stack labels, zeros pruned:", np.unique(labels_pruned[stack_rows]))
print("same labels as DBSCAN on the raw data:", np.array_equal(labels_pruned, reference))

# %%
# Because DBSCAN adds the diagonal itself, the graph of the fitted points with
# each point left out of its own row, ``radius_neighbors_graph()`` called
# without ``X``, works as well. It still keeps the zeros between distinct
# duplicates.

graph_self_excluded = nn.radius_neighbors_graph(mode="distance")
labels_self_excluded = dbscan.fit_predict(graph_self_excluded)
print(f"{graph_self_excluded.nnz} stored distances, {np.sum(graph_self_excluded.data == 0)} zeros")
print("same labels as DBSCAN on the raw data:", np.array_equal(labels_self_excluded, reference))

# %%
# No transformer needed, and not a k-NN one
# -----------------------------------------
#
# Manifold learners read a fixed number of neighbours per point, which is
# what :class:`~sklearn_pcct.PCCTTransformer` computes. DBSCAN reads a fixed
# *radius*: a point in a dense region has many more than ``min_samples``
# neighbours within ``eps``, and a k-nearest-neighbour graph keeps only the
# first ``k`` of them. With ``k + 1 >= min_samples`` the core points come out
# right, but links between points are cut. Build the radius graph with
# ``PCCTNeighbors`` and pass it to ``fit``; no pipeline step is needed.
#
# Below, a 10-NN graph gives almost the same clustering, but not the same:
# a few border points become noise, a moon sheds small fragments, and the
# stack splits in two, because each copy's row holds only 10 of its 11 twins
# (the lowest ids win ties) and the last copy is in no other copy's row.

knn_graph = PCCTTransformer(n_neighbors=min_samples).fit_transform(X)
labels_knn = dbscan.fit_predict(knn_graph)
print("cluster sizes, radius graph:", np.bincount(labels + 1)[1:])
print("cluster sizes, k-NN graph:  ", np.bincount(labels_knn + 1)[1:])
print(f"noise points: {np.sum(labels_knn == -1)} instead of {np.sum(reference == -1)}")
print(f"adjusted Rand index against DBSCAN(eps): {adjusted_rand_score(reference, labels_knn):.3f}")

# %%
# The points that moved: for each cluster of the reference, those outside
# the k-NN cluster that holds most of it, and the new noise points.

main_piece = {-1: -1}
for c in range(n_clusters):
    main_piece[c] = np.bincount(labels_knn[reference == c] + 1).argmax() - 1
moved = labels_knn != np.array([main_piece[c] for c in reference])
print(f"{np.sum(moved)} points moved")

# For the plot, colour each k-NN cluster like the reference cluster it
# overlaps most.
parent = np.array(
    [np.bincount(reference[labels_knn == k] + 1).argmax() - 1 for k in range(labels_knn.max() + 1)]
)
labels_knn_coloured = np.where(labels_knn == -1, -1, parent[labels_knn])

# %%
# Plot the clusters
# -----------------
#
# Left: the clusters found on the radius graph (noise in grey, the stack
# circled), which are DBSCAN's. Right: the clusters found on the k-NN graph,
# each in the colour of the reference cluster it overlaps most, with the
# points that moved circled in black.


def draw(ax, lab, title):
    noise = lab == -1
    ax.scatter(*X[noise].T, s=2, c="0.8", rasterized=True)
    ax.scatter(*X[~noise].T, s=2, c=lab[~noise], cmap="tab10", vmin=0, vmax=9, rasterized=True)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


fig, (ax_radius, ax_knn) = plt.subplots(1, 2, figsize=(12, 5))
draw(ax_radius, labels, f"radius graph: {n_clusters} clusters, as DBSCAN(eps={eps})")
ax_radius.scatter(*stack[0], s=300, facecolors="none", edgecolors="k")
ax_radius.annotate(
    "12 duplicates", stack[0], xytext=(-20, 0), textcoords="offset points", ha="right", va="center"
)
draw(ax_knn, labels_knn_coloured, f"{min_samples}-NN graph: {labels_knn.max() + 1} clusters")
ax_knn.scatter(*X[moved].T, s=40, facecolors="none", edgecolors="k", label="moved")
ax_knn.legend(loc="lower right")
fig.tight_layout()
plt.show()
