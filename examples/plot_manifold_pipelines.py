"""
============================================================
Manifold learning pipelines that compute the graph only once
============================================================

:class:`~sklearn.manifold.Isomap` and :class:`~sklearn.manifold.TSNE` only
look at the nearest neighbours of each point. With ``metric="precomputed"``
they read those neighbours from a sparse graph instead of searching for them,
so :class:`~sklearn_pcct.PCCTTransformer`, which computes the exact
k-nearest-neighbour graph of :class:`sklearn.neighbors.KNeighborsTransformer`,
can go in front of them in a :class:`~sklearn.pipeline.Pipeline`.

A pipeline built with ``memory=`` caches the output of its transformers with
:class:`joblib.Memory`. When only a parameter of the final estimator changes
(the number of Isomap components or neighbours, the t-SNE perplexity), the
pipeline loads the graph from the cache instead of computing it again. This
example builds the graph once, with enough neighbours for every setting it
tries, and reuses it across three Isomap and two t-SNE fits.
"""

# %%
# The data
# --------
#
# 1 000 points on an S-shaped surface in 3-D, coloured by their position
# along the S. The coordinates are continuous, so no two distances tie and
# every neighbour list is unique.

import time
from pathlib import Path
from tempfile import TemporaryDirectory

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_s_curve
from sklearn.manifold import TSNE, Isomap
from sklearn.neighbors import KNeighborsTransformer
from sklearn.pipeline import Pipeline

from sklearn_pcct import PCCTTransformer

X, position = make_s_curve(n_samples=1000, random_state=0)
print(X.shape)

# %%
# How many neighbours the graph needs
# -----------------------------------
#
# A precomputed graph must hold at least as many neighbours per point as the
# estimator reads:
#
# * ``Isomap(n_neighbors=k)`` reads ``k`` neighbours;
# * t-SNE (Barnes-Hut) reads ``int(3 * perplexity + 1)`` neighbours.
#
# Both call the graph with each point left out of its own list, which is why
# the graph has one entry more per row: in ``mode="distance"``,
# PCCTTransformer stores ``n_neighbors + 1`` entries, the first being the
# point itself at distance zero. ``n_neighbors=46`` is enough for t-SNE up to
# a perplexity of 15 and for Isomap up to 46 neighbours.
#
# Extra neighbours cost little: each estimator keeps the ones it needs, the
# nearest first.

n_neighbors = 46
graph = PCCTTransformer(n_neighbors=n_neighbors).fit_transform(X)
print(type(graph).__name__, graph.shape, "entries per row:", graph.getnnz(axis=1)[0])

# %%
# It is scikit-learn's graph
# --------------------------
#
# The graph is the one :class:`~sklearn.neighbors.KNeighborsTransformer`
# computes: same neighbours in the same order, and the same distances up to
# rounding (the two compute them with different formulas).

reference = KNeighborsTransformer(n_neighbors=n_neighbors).fit_transform(X)
print("same neighbours, same order:", np.array_equal(graph.indices, reference.indices))
print("same distances:", np.allclose(graph.data, reference.data, rtol=1e-12, atol=1e-12))

# %%
# A cached Isomap pipeline
# ------------------------
#
# ``memory`` takes a directory (or a :class:`joblib.Memory`). We use a
# temporary one, removed at the end of the example. Each cached graph is one
# ``output.pkl`` file in it, so counting these files tells how many graphs
# were computed.

cache = TemporaryDirectory(prefix="pcct_cache_")


def n_cached_graphs():
    return len(list(Path(cache.name).rglob("output.pkl")))


isomap = Pipeline(
    [
        ("graph", PCCTTransformer(n_neighbors=n_neighbors)),
        ("isomap", Isomap(n_neighbors=10, metric="precomputed")),
    ],
    memory=cache.name,
)

# %%
# The first fit computes the graph and stores it; the next ones, with other
# downstream parameters, load it. The ``graph`` step of the fitted pipeline is
# the transformer restored from the cache.

embeddings = {}
for params in [
    {"isomap__n_components": 2},
    {"isomap__n_components": 3},
    {"isomap__n_components": 2, "isomap__n_neighbors": 20},
]:
    start = time.perf_counter()
    embedding = isomap.set_params(**params).fit_transform(X)
    elapsed = time.perf_counter() - start
    embeddings[tuple(params.values())] = embedding
    print(f"{params}: {embedding.shape}, {elapsed:.2f} s, graphs in cache: {n_cached_graphs()}")

# %%
# The pipeline gives Isomap's own answer: Isomap searching the neighbours
# itself, on the raw coordinates, finds the same embedding.

direct = Isomap(n_neighbors=10, n_components=2).fit_transform(X)
print("same embedding as Isomap(n_neighbors=10):", np.allclose(embeddings[(2,)], direct))

# %%
# t-SNE reuses the same graph
# ---------------------------
#
# The cache key is made of the transformer (its class and parameters) and
# the input data, not of the rest of the pipeline. A t-SNE pipeline with the
# same transformer on the same ``X`` therefore finds the graph the Isomap
# pipeline stored, and the number of cached graphs stays at one through both
# perplexities.
#
# ``TSNE(metric="precomputed")`` needs ``init="random"``, since ``"pca"``
# needs the coordinates. It squares the distances it reads, as it does for
# its own Euclidean neighbours.

tsne = Pipeline(
    [
        ("graph", PCCTTransformer(n_neighbors=n_neighbors)),
        (
            "tsne",
            TSNE(metric="precomputed", init="random", max_iter=500, random_state=0),
        ),
    ],
    memory=cache.name,
)

perplexities = [5, 15]
tsne_embeddings = {}
for perplexity in perplexities:
    start = time.perf_counter()
    tsne_embeddings[perplexity] = tsne.set_params(tsne__perplexity=perplexity).fit_transform(X)
    elapsed = time.perf_counter() - start
    print(
        f"perplexity {perplexity:>2} (reads {int(3 * perplexity + 1):>2} neighbours): "
        f"{elapsed:.1f} s, graphs in cache: {n_cached_graphs()}"
    )

# %%
# A perplexity of 30 reads 91 neighbours, more than the graph holds
# (scikit-learn counts the point itself too: 92 entries against 47 per row).
# scikit-learn checks this and says so; the fix is a larger ``n_neighbors``
# in the transformer, which would be a new entry in the cache.

try:
    tsne.set_params(tsne__perplexity=30).fit(X)
except ValueError as exc:
    print(f"ValueError: {exc}")
print("graphs in cache:", n_cached_graphs())

# %%
# The cache is a directory on disk; remove it when done.

cache.cleanup()

# %%
# Plot the embeddings
# -------------------
#
# Isomap unrolls the S into a rectangle: it keeps the distances along the
# surface. t-SNE keeps neighbourhoods rather than distances, and at a low
# perplexity it tears the strip into local pieces that join up as the
# perplexity grows.

fig = plt.figure(figsize=(14, 3.6))
ax = fig.add_subplot(1, 4, 1, projection="3d")
ax.scatter(X[:, 0], X[:, 1], X[:, 2], c=position, cmap="viridis", s=4)
ax.view_init(elev=10, azim=-70)
ax.set_title("the data")
ax.set_xticks([])
ax.set_yticks([])
ax.set_zticks([])
panels = [("Isomap, 10 neighbours", embeddings[(2,)])] + [
    (f"t-SNE, perplexity {p}", tsne_embeddings[p]) for p in perplexities
]
for i, (title, emb) in enumerate(panels, start=2):
    ax = fig.add_subplot(1, 4, i)
    ax.scatter(emb[:, 0], emb[:, 1], c=position, cmap="viridis", s=4)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("One cached PCCTTransformer graph, three embeddings")
fig.tight_layout()
plt.show()
