"""Exact nearest neighbours for scikit-learn with a parallel compressed cover tree."""

from ._neighbors import PCCTNeighbors
from ._transformer import PCCTTransformer
from ._updates import PCCTSnapshot
from ._version import __version__

__all__ = ["PCCTNeighbors", "PCCTSnapshot", "PCCTTransformer", "__version__"]
