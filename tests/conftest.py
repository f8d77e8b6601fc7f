"""Shared fixtures: a seeded random generator and adversarial data sets.

Every generator takes ``(rng, n, d, dtype)`` and returns a C-contiguous
array of shape ``(n, d)`` (``identical`` always returns 64 rows). The data
kinds follow ALGORITHMS.md sections 12, 13 and 16.7: duplicates, massive
ties, huge offsets (cancellation in the GEMM form), tiny scales (underflow)
and exponentially spaced points (huge aspect ratio, deep levels).
"""

import numpy as np
import pytest


def uniform(rng, n, d, dtype=np.float64):
    """Uniform on the unit cube."""
    return rng.random((n, d)).astype(dtype)


def clustered(rng, n, d, dtype=np.float64):
    """A Gaussian mixture: 8 tight clusters spread over ``[0, 10]^d``."""
    centers = 10.0 * rng.random((8, d))
    labels = rng.integers(0, len(centers), n)
    scales = np.array([0.01, 0.03, 0.1, 0.3, 0.01, 0.03, 0.1, 0.3])
    X = centers[labels] + scales[labels, None] * rng.standard_normal((n, d))
    return X.astype(dtype)


def duplicates(rng, n, d, dtype=np.float64, n_distinct=10):
    """``n`` rows drawn (with repetition) from ``n_distinct`` distinct rows."""
    rows = rng.random((n_distinct, d))
    return np.ascontiguousarray(rows[rng.integers(0, n_distinct, n)], dtype=dtype)


def identical(rng, n, d, dtype=np.float64):
    """64 copies of one random row (``n`` is ignored)."""
    return np.tile(rng.random((1, d)), (64, 1)).astype(dtype)


def manifold(rng, n, d, dtype=np.float64):
    """A smooth manifold of intrinsic dimension ``min(3, d - 1)`` (a curve if ``d <= 2``).

    For ``d > 3`` a 3-D latent cube goes through a random linear map and a
    ``sin`` so the embedding is curved; for small ``d`` a 1-D curve is used.
    """
    if d == 1:
        return (rng.random((n, 1)) ** 2).astype(dtype)
    if d <= 3:
        t = 2.0 * np.pi * rng.random(n)
        return np.stack([np.cos((j + 1) * t) for j in range(d)], axis=1).astype(dtype)
    Z = rng.random((n, 3))
    A = rng.standard_normal((3, d))
    return np.sin(Z @ A).astype(dtype)


def grid(rng, n, d, dtype=np.float64):
    """Integer grid points (massive ties, some duplicates)."""
    side = max(3, int(round(n ** (1.0 / d))))
    return rng.integers(0, side, (n, d)).astype(dtype)


def offset(rng, n, d, dtype=np.float64):
    """Uniform data shifted by ``1e8`` (the GEMM form cancels catastrophically)."""
    return (1e8 + rng.random((n, d))).astype(dtype)


def tiny(rng, n, d, dtype=np.float64):
    """Uniform data scaled to ``1e-150`` (``1e-36`` in float32, which has no 1e-150)."""
    scale = 1e-150 if np.dtype(dtype) == np.float64 else 1e-36
    return (scale * rng.random((n, d))).astype(dtype)


def exponential(rng, n, d, dtype=np.float64):
    """Points ``2**-j`` on the first axis, ``j = 0 .. n-1``, in that order.

    Huge aspect ratio and one level per point; past the smallest subnormal
    the points become exact zeros (duplicates).
    """
    X = np.zeros((n, d), dtype=dtype)
    X[:, 0] = np.ldexp(1.0, -np.arange(n)).astype(dtype)
    return X


DATA_KINDS = {
    "uniform": uniform,
    "clustered": clustered,
    "duplicates": duplicates,
    "identical": identical,
    "manifold": manifold,
    "grid": grid,
    "offset": offset,
    "tiny": tiny,
    "exponential": exponential,
}


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test sees the same data."""
    return np.random.default_rng(0)


@pytest.fixture
def data_factory(rng):
    """``data_factory(kind, n, d, dtype=np.float64)``: C-contiguous data of a kind.

    ``kind`` is a key of :data:`DATA_KINDS`; the rows are drawn from the
    test's seeded ``rng``, so successive calls give different (but
    reproducible) data.
    """

    def factory(kind, n, d, dtype=np.float64):
        return np.ascontiguousarray(DATA_KINDS[kind](rng, n, d, dtype))

    return factory


@pytest.fixture(params=list(DATA_KINDS))
def data_kind(request):
    """Every data kind in turn."""
    return request.param


@pytest.fixture
def duplicates_1e5(rng):
    """1e5 rows drawn from 10 distinct values (fast: the tree has 10 nodes)."""
    return duplicates(rng, 100_000, 2)
