"""Exact nearest neighbours for scikit-learn with a parallel compressed cover tree."""

from ._neighbors import PCCTNeighbors
from ._transformer import PCCTTransformer
from ._version import __version__

__all__ = ["PCCTNeighbors", "PCCTTransformer", "__version__"]
