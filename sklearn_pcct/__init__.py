"""Exact nearest neighbours for scikit-learn with a parallel compressed cover tree."""

from ._correlation import KernelCorrelationDistance, ResidualCorrelationDistance
from ._neighbors import PCCTNeighbors
from ._show_versions import show_versions
from ._transformer import PCCTTransformer
from ._updates import PCCTSnapshot
from ._vecchia import kneighbors_graph, maximin_ordering, vecchia_neighbors
from ._version import __version__

__all__ = [
    "KernelCorrelationDistance",
    "PCCTNeighbors",
    "PCCTSnapshot",
    "PCCTTransformer",
    "ResidualCorrelationDistance",
    "__version__",
    "kneighbors_graph",
    "maximin_ordering",
    "show_versions",
    "vecchia_neighbors",
]
