"""Metric descriptions shared by every layer (numpy only).

A cover tree prunes with the triangle inequality, so only true metrics (or
pseudometrics) are accepted. :func:`resolve_metric` turns the sklearn-style
triple ``(metric, p, metric_params)`` into a frozen :class:`MetricSpec`, or
explains why a requested distance cannot be used and what to use instead.
:func:`pairwise_distances` is a slow, obviously-correct NumPy implementation
used by the invariant checker and the reference oracles.
"""

from dataclasses import dataclass, field
from numbers import Real

import numpy as np

__all__ = ["MetricSpec", "resolve_metric", "check_features", "embed", "pairwise_distances", "VALID_METRICS"]

# the range outside which a sum of powers may have under- or overflowed
# (the same thresholds as the Numba kernels)
_TINY = 2.0**-960
_HUGE = 2.0**960

VALID_METRICS = (
    "euclidean",
    "l2",
    "manhattan",
    "cityblock",
    "l1",
    "chebyshev",
    "infinity",
    "minkowski",
    "haversine",
)

_ALIASES = {
    "l2": "euclidean",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "infinity": "chebyshev",
}

_NOT_METRICS = {
    "sqeuclidean": (
        "squared Euclidean distance violates the triangle inequality; use "
        "metric='euclidean' (same neighbours, take the square of the distances)"
    ),
    "cosine": (
        "cosine distance (1 - cos) violates the triangle inequality; "
        "L2-normalise the rows and use metric='euclidean' (same neighbours, "
        "cosine distance = euclidean**2 / 2)"
    ),
    "correlation": (
        "correlation distance (1 - r) violates the triangle inequality; centre "
        "and L2-normalise the rows and use metric='euclidean' (same neighbours)"
    ),
    "precomputed": (
        "a precomputed distance matrix needs no tree; use "
        "sklearn.neighbors.NearestNeighbors(metric='precomputed')"
    ),
    "nan_euclidean": "missing values are not supported; impute them first",
}


@dataclass(frozen=True)
class MetricSpec:
    """A validated metric.

    Parameters
    ----------
    name : {"euclidean", "manhattan", "chebyshev", "minkowski", "haversine", \
            "callable", "correlation"}
        Canonical metric name.
    p : float, default=2.0
        Power of the Minkowski metric (``name == "minkowski"`` only).
    w : ndarray of shape (n_features,) or None, default=None
        Non-negative Minkowski weights, or None.
    func : callable or None, default=None
        The user's metric when ``name == "callable"``; the correlation metric
        object (see :mod:`sklearn_pcct._correlation`) when
        ``name == "correlation"``, whose parameter vector is then ``w``.

    Notes
    -----
    Correlation metrics work on *embedded* rows: :func:`embed` maps data to
    the rows the tree stores and the kernels compare.
    """

    name: str
    p: float = 2.0
    w: np.ndarray | None = field(default=None, compare=False)
    func: object = field(default=None, compare=False)


def resolve_metric(metric, p=2, metric_params=None):
    """Validate ``metric``, ``p`` and ``metric_params`` as sklearn maps them.

    Parameters
    ----------
    metric : str or callable
        Metric name, or a Numba-compilable function ``f(a, b) -> float`` of
        two 1-D float64 arrays that satisfies the triangle inequality.
    p : float, default=2
        Minkowski power; ``metric_params["p"]`` takes precedence.
    metric_params : dict or None, default=None
        Extra parameters: ``p`` and ``w`` for ``"minkowski"``.

    Returns
    -------
    spec : MetricSpec
        The canonical metric.
    effective_metric : str or callable
        What sklearn stores in ``effective_metric_``.
    effective_params : dict
        What sklearn stores in ``effective_metric_params_``.

    Examples
    --------
    >>> from sklearn_pcct._metric import resolve_metric
    >>> spec, name, params = resolve_metric("minkowski", p=1)
    >>> spec.name, name, params
    ('manhattan', 'manhattan', {})
    """
    params = {} if metric_params is None else dict(metric_params)
    if hasattr(metric, "_pcct_spec"):  # a correlation metric object
        if params:
            raise ValueError(
                "metric_params are not used by a correlation metric object; set "
                "the kernel's parameters instead"
            )
        return metric._pcct_spec(), metric, {}
    if callable(metric):
        if params:
            raise ValueError(
                "metric_params are not supported with a callable metric; bind "
                "them in the function (for example with a closure)"
            )
        return MetricSpec("callable", func=metric), metric, {}
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string or a callable, got {metric!r}")
    if metric in _NOT_METRICS:
        raise ValueError(
            f"metric={metric!r} cannot be used by a cover tree: {_NOT_METRICS[metric]}."
        )
    if metric not in VALID_METRICS:
        raise ValueError(
            f"metric={metric!r} is not supported. Supported metrics: "
            f"{sorted(VALID_METRICS)}, or a Numba-jitted callable that is a "
            "true metric."
        )
    if metric != "minkowski":
        unknown = set(params)
        if unknown:
            raise ValueError(
                f"metric_params {sorted(unknown)} are not used by metric={metric!r}"
            )
        return MetricSpec(_ALIASES.get(metric, metric)), metric, params
    unknown = set(params) - {"p", "w"}
    if unknown:
        raise ValueError(
            f"metric_params {sorted(unknown)} are not used by metric='minkowski'"
        )
    eff_p = params.pop("p", p)
    w = params.pop("w", None)
    if not isinstance(eff_p, Real) or isinstance(eff_p, bool) or np.isnan(eff_p):
        raise ValueError(f"p must be a number >= 1, got {eff_p!r}")
    if eff_p < 1:
        raise ValueError(
            f"p={eff_p} < 1 does not give a metric (the triangle inequality "
            "fails) and cannot be used by a cover tree; use p >= 1, or "
            "sklearn.neighbors.NearestNeighbors(algorithm='brute')."
        )
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("the Minkowski weights w must be a 1-D array of finite values >= 0")
    if w is None and eff_p == 1:
        return MetricSpec("manhattan"), "manhattan", {}
    if w is None and eff_p == 2:
        return MetricSpec("euclidean"), "euclidean", {}
    if w is None and np.isinf(eff_p):
        return MetricSpec("chebyshev"), "chebyshev", {}
    if np.isinf(eff_p):
        raise ValueError("weighted Minkowski with p=inf is not supported")
    spec = MetricSpec("minkowski", p=float(eff_p), w=w)
    return spec, "minkowski", {"p": eff_p, "w": None if w is None else w}


def check_features(spec, n_features):
    """Raise ``ValueError`` if data with ``n_features`` columns cannot use ``spec``.

    Parameters
    ----------
    spec : MetricSpec
    n_features : int

    Examples
    --------
    >>> from sklearn_pcct._metric import MetricSpec, check_features
    >>> check_features(MetricSpec("haversine"), 3)
    Traceback (most recent call last):
    ...
    ValueError: metric='haversine' needs exactly 2 features (latitude, longitude in radians), got 3
    """
    if spec.name == "haversine" and n_features != 2:
        raise ValueError(
            "metric='haversine' needs exactly 2 features (latitude, longitude "
            f"in radians), got {n_features}"
        )
    if spec.name == "minkowski" and spec.w is not None and spec.w.shape[0] != n_features:
        raise ValueError(
            f"the Minkowski weights w have {spec.w.shape[0]} entries but X "
            f"has {n_features} features"
        )


def embed(X, spec):
    """The rows the tree stores for the data ``X`` (``X`` itself for most metrics).

    Correlation metrics map every row to ``[x / length_scale | v(x) |
    1 / sqrt(variance)]`` in float64 (see :mod:`sklearn_pcct._correlation`);
    this also validates the data against the metric (feature count, zero
    variance) and raises ``ValueError`` if they do not fit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MetricSpec

    Returns
    -------
    E : ndarray of shape (n_samples, n_embedded)
        C-contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._metric import MetricSpec, embed
    >>> embed(np.ones((2, 3)), MetricSpec("euclidean")).shape
    (2, 3)
    """
    if spec.name != "correlation":
        return X
    return np.ascontiguousarray(spec.func._embed(X), dtype=np.float64)


def pairwise_distances(A, B, spec):
    """Dense distance matrix between the rows of ``A`` and ``B`` (float64).

    A slow reference implementation in the difference form.

    Parameters
    ----------
    A : array-like of shape (n_a, n_features)
    B : array-like of shape (n_b, n_features)
    spec : MetricSpec

    Returns
    -------
    D : ndarray of shape (n_a, n_b)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_pcct._metric import MetricSpec, pairwise_distances
    >>> pairwise_distances(np.zeros((1, 2)), np.array([[3.0, 4.0]]), MetricSpec("euclidean"))
    array([[5.]])
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if spec.name == "callable":
        return np.array([[float(spec.func(a, b)) for b in B] for a in A]).reshape(
            len(A), len(B)
        )
    if spec.name == "correlation":  # rows are embedded (see embed)
        return spec.func._pairwise_embedded(A, B)
    D = np.empty((len(A), len(B)))
    for i, a in enumerate(A):
        diff = np.abs(a[None, :] - B)
        if spec.name in ("euclidean", "minkowski"):
            power = 2.0 if spec.name == "euclidean" else spec.p
            terms = diff**power
            if spec.w is not None and spec.name == "minkowski":
                terms = terms * spec.w
            total = terms.sum(axis=1)
            D[i] = np.sqrt(total) if power == 2.0 else total ** (1.0 / power)
            # where the sum of powers under- or overflowed (points 1e-200
            # apart are not at distance zero), scale by the largest difference
            bad = (total < _TINY) | (total > _HUGE)
            if np.any(bad) and diff.shape[1]:
                sub = diff[bad]
                scale = sub.max(axis=1)
                sub = sub / np.where(scale > 0, scale, 1.0)[:, None]
                terms = sub**power
                if spec.w is not None and spec.name == "minkowski":
                    terms = terms * spec.w
                total = terms.sum(axis=1)
                D[i, bad] = scale * (np.sqrt(total) if power == 2.0 else total ** (1.0 / power))
        elif spec.name == "manhattan":
            D[i] = diff.sum(axis=1)
        elif spec.name == "chebyshev":
            D[i] = diff.max(axis=1) if diff.shape[1] else 0.0
        elif spec.name == "haversine":
            d0 = a[0] - B[:, 0]
            d1 = a[1] - B[:, 1]
            s0 = np.sin(0.5 * d0)
            s1 = np.sin(0.5 * d1)
            c = np.cos(a[0]) * np.cos(B[:, 0])
            h = np.minimum(s0 * s0 + c * s1 * s1, 1.0)
            D[i] = 2.0 * np.arcsin(np.sqrt(h))
            # where the squares (even the halved differences) may have
            # underflowed: at these angles the distance is a hypot
            tiny = (h < _TINY) & (c >= 0.0)
            D[i, tiny] = np.hypot(d0[tiny], np.sqrt(c[tiny]) * d1[tiny])
        else:  # pragma: no cover - resolve_metric never produces it
            raise ValueError(spec.name)
    return D
