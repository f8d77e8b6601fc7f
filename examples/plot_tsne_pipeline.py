"""
=========================================
t-SNE on an exact neighbour graph
=========================================

:class:`~sklearn_pcct.PCCTTransformer` computes the exact k-nearest-neighbour
graph that :class:`sklearn.neighbors.KNeighborsTransformer` would compute, as
a sparse matrix. Estimators that accept ``metric="precomputed"`` read their
neighbours from it, so the transformer goes in front of them in a pipeline.
Here it feeds :class:`~sklearn.manifold.TSNE` on 600 handwritten digits.
"""

# %%
# The data
# --------

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsTransformer
from sklearn.pipeline import make_pipeline

from sklearn_pcct import PCCTTransformer

X, y = load_digits(return_X_y=True)
X, y = X[:600], y[:600]
print(X.shape)

# %%
# How many neighbours t-SNE needs
# -------------------------------
#
# With the Barnes-Hut solver, t-SNE uses the ``3 * perplexity + 1`` nearest
# neighbours of each point. The transformer must provide at least that many.
# In ``mode="distance"`` (the default) it stores ``n_neighbors + 1`` entries
# per row, because each point is its own first neighbour, at distance zero.

perplexity = 20
n_neighbors = int(3 * perplexity + 1)

graph = PCCTTransformer(n_neighbors=n_neighbors).fit_transform(X)
print(type(graph).__name__, graph.shape, "entries per row:", graph.getnnz(axis=1)[0])

# %%
# The same graph as scikit-learn's
# --------------------------------
#
# The digits have integer pixel values, so many pairs of points are at
# exactly the same distance. The distances in every row agree with those of
# :class:`~sklearn.neighbors.KNeighborsTransformer`; only the choice among
# points tied at the last place can differ, because PCCTTransformer always
# prefers the lower index while scikit-learn documents no order for ties.

reference = KNeighborsTransformer(n_neighbors=n_neighbors).fit_transform(X)
print("same distances:", np.allclose(graph.data, reference.data))
same_sets = [set(graph[i].indices) == set(reference[i].indices) for i in range(X.shape[0])]
print(f"rows with the same neighbours: {np.sum(same_sets)} of {X.shape[0]}")

# %%
# The pipeline
# ------------
#
# ``TSNE(metric="precomputed")`` with ``init="random"`` takes the sparse graph
# as its input. Nothing else changes.

tsne_pipeline = make_pipeline(
    PCCTTransformer(n_neighbors=n_neighbors),
    TSNE(
        metric="precomputed",
        perplexity=perplexity,
        init="random",
        max_iter=500,
        random_state=0,
    ),
)
start = time.perf_counter()
embedding = tsne_pipeline.fit_transform(X)
print(f"embedding {embedding.shape} in {time.perf_counter() - start:.1f} s")

# %%
# Plot the embedding
# ------------------

fig, ax = plt.subplots(figsize=(6, 6))
ax.scatter(embedding[:, 0], embedding[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=12)
for digit in range(10):
    centre = np.median(embedding[y == digit], axis=0)
    ax.annotate(
        str(digit),
        centre,
        fontsize=16,
        weight="bold",
        ha="center",
        va="center",
        bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7},
    )
ax.set_title(f"t-SNE of {X.shape[0]} digits on a PCCTTransformer graph")
ax.set_xticks([])
ax.set_yticks([])
fig.tight_layout()
plt.show()
