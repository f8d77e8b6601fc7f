"""Kernel and residual correlation distances (ALGORITHMS.md section 9.6).

For a covariance kernel ``k`` with correlation
``rho(x, y) = k(x, y) / sqrt(k(x, x) k(y, y))`` the distance
``sqrt(1 - |rho(x, y)|)`` is a (pseudo)metric: write the normalised Gram
matrix as inner products of unit vectors ``u_x``; then
``sqrt(1 - |rho|) = min(|u_x - u_y|, |u_x + u_y|) / sqrt(2)``. The same holds
for the residual kernel of a predictive process (a Schur complement, hence
positive semi-definite). That licenses cover trees on these distances.

Both metrics work by an *embedding*: each row ``x`` becomes
``[x / length_scale | v(x) | 1 / sqrt(residual variance)]`` (the last two
parts for the residual metric only), and the Numba kernels evaluate the
distance of two embedded rows in ``O(n_features + n_inducing)``. Kernels
without a Numba fast path go through the generic path: the same embedding
of the raw coordinates, and the scikit-learn kernel called from Python for
every pair (tens of microseconds per distance).

Identical coordinates are at distance 0. A ``WhiteKernel`` nugget therefore
lowers the correlation of distinct points only, which keeps the distance a
metric (white noise is positive semi-definite on distinct locations).
"""

import numbers
import pickle

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    Kernel,
    Matern,
    Product,
    Sum,
    WhiteKernel,
)

from ._metric import MetricSpec

__all__ = ["KernelCorrelationDistance", "ResidualCorrelationDistance"]

# kind codes shared with the Numba kernels (_backends/_numba/_metrics.py)
_RBF, _M05, _M15, _M25, _GENERIC = 0, 1, 2, 3, -1
_MATERN_KINDS = {0.5: _M05, 1.5: _M15, 2.5: _M25, np.inf: _RBF}

# residual variances below this fraction of k(x, x) are treated as zero
_MIN_RELATIVE_VARIANCE = 1e-9


def _fast_path(kernel):
    """``(kind, length_scale, variance, noise)`` of a supported kernel, else None.

    Supported: ``[ConstantKernel *] (RBF | Matern(nu in 0.5, 1.5, 2.5, inf))
    [+ WhiteKernel]`` in either operand order.
    """
    noise = 0.0
    k = kernel
    if isinstance(k, Sum):
        if isinstance(k.k2, WhiteKernel):
            noise, k = k.k2.noise_level, k.k1
        elif isinstance(k.k1, WhiteKernel):
            noise, k = k.k1.noise_level, k.k2
        else:
            return None
    variance = 1.0
    if isinstance(k, Product):
        if isinstance(k.k1, ConstantKernel):
            variance, k = k.k1.constant_value, k.k2
        elif isinstance(k.k2, ConstantKernel):
            variance, k = k.k2.constant_value, k.k1
        else:
            return None
    if isinstance(k, Matern):  # Matern subclasses RBF: test it first
        kind = _MATERN_KINDS.get(float(k.nu))
        if kind is None:
            return None
    elif type(k) is RBF:
        kind = _RBF
    else:
        return None
    return kind, np.asarray(k.length_scale, dtype=np.float64), float(variance), float(noise)


def _one_minus_rho(kind, r):
    """NumPy twin of the kernels' ``one_minus_correlation`` (same formulas)."""
    r = np.asarray(r, dtype=np.float64)
    if kind == _RBF:
        return -np.expm1(-0.5 * r * r)
    if kind == _M05:
        return -np.expm1(-r)
    a = (np.sqrt(3.0) if kind == _M15 else np.sqrt(5.0)) * r
    poly = a if kind == _M15 else a + a * a / 3.0
    with np.errstate(invalid="ignore"):  # inf * 0 at a = inf
        out = -np.expm1(-a) - poly * np.exp(-a)
    out = np.where(a > 700.0, 1.0, out)  # as the kernels: correlation < 1e-300
    small = a < 0.5
    if np.any(small):
        s = np.zeros(int(small.sum()))
        term = np.ones_like(s)
        x = a[small]
        for n in range(1, 30):
            term = term * x / n
            if n >= 2:
                c = (n - 1.0) if kind == _M15 else -(1.0 - n + n * (n - 1) / 3.0)
                s += c * term if n % 2 == 0 else -c * term
        out[small] = s
    return out


def _check_2d(X, name="X"):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
    return X


class _CorrelationBase:
    """Shared machinery: embedding, spec, reference distances, ``__call__``."""

    absolute = True

    def _check_kernel(self):
        if not isinstance(self.kernel, Kernel):
            raise TypeError(
                "kernel must be a sklearn.gaussian_process.kernels.Kernel, got "
                f"{type(self.kernel).__name__}"
            )
        fast = _fast_path(self.kernel)
        if fast is not None and fast[2] + fast[3] <= 0.0:
            raise ValueError(
                "the kernel's variance k(x, x) is zero, so its correlation is "
                "undefined; use a ConstantKernel with constant_value > 0"
            )
        return fast

    # -- the embedding ------------------------------------------------------
    def _coordinates(self, X, fast):
        """``X / length_scale`` on the fast path, ``X`` on the generic one."""
        if fast is None:
            return X
        ls = fast[1]
        if ls.ndim == 1 and ls.shape[0] not in (1, X.shape[1]):
            raise ValueError(
                f"the kernel has {ls.shape[0]} length scales but X has "
                f"{X.shape[1]} features"
            )
        if np.any(ls <= 0) or not np.all(np.isfinite(ls)):
            raise ValueError("the kernel's length scales must be finite and > 0")
        return X / ls

    def _diag(self, X, fast):
        if fast is not None:
            return np.full(X.shape[0], fast[2] + fast[3])
        diag = np.asarray(self.kernel.diag(X), dtype=np.float64)
        bad = ~(diag > 0)
        if np.any(bad):
            raise ValueError(
                f"the kernel's variance k(x, x) is not positive at "
                f"{int(bad.sum())} point(s) (first: row {int(np.flatnonzero(bad)[0])}), "
                "so its correlation is undefined there"
            )
        return diag

    def _params(self, fast, n_inducing):
        kind = _GENERIC if fast is None else fast[0]
        variance = 1.0 if fast is None else fast[2]
        noise = 0.0 if fast is None else fast[3]
        gamma = variance / (variance + noise)
        return np.array([kind, n_inducing, variance, gamma, float(self.absolute)])

    def _pcct_spec(self):
        """The :class:`MetricSpec` the tree kernels use (validates the kernel)."""
        fast = self._check_kernel()
        return MetricSpec("correlation", w=self._params(fast, self._n_inducing()), func=self)

    def _n_inducing(self):
        return 0

    # -- reference distances and the callable interface ---------------------
    def _split(self, E, fast):
        """``(coordinates, v, 1/sqrt(variance))`` parts of embedded rows."""
        m = self._n_inducing()
        if m == 0 and fast is not None:
            return E, None, None
        nc = E.shape[1] - m - 1
        return E[:, :nc], E[:, nc:nc + m], E[:, nc + m]

    def _pairwise_embedded(self, A, B):
        """Distances between embedded rows (NumPy; the kernels' formulas)."""
        A = np.asarray(A, dtype=np.float64)
        B = np.asarray(B, dtype=np.float64)
        fast = _fast_path(self.kernel)
        ua, va, sa = self._split(A, fast)
        ub, vb, sb = self._split(B, fast)
        diff = ua[:, None, :] - ub[None, :, :]
        same = np.all(diff == 0.0, axis=2)
        if fast is None:
            cov = np.asarray(self.kernel(ua, ub), dtype=np.float64)
            variance = 1.0
            omr = None
        else:
            with np.errstate(under="ignore"):
                sq = np.sum(diff * diff, axis=2)
            big = np.max(np.abs(diff), axis=2) if diff.shape[2] else np.zeros(sq.shape)
            r = np.sqrt(sq)
            tiny = (sq < 2.0**-960) & (big > 0)
            if np.any(tiny):
                scaled = diff[tiny] / big[tiny][:, None]
                r[tiny] = big[tiny] * np.sqrt(np.sum(scaled * scaled, axis=1))
            omr = _one_minus_rho(fast[0], r)
            variance, gamma = fast[2], fast[2] / (fast[2] + fast[3])
        if va is None:  # plain kernel correlation on the fast path
            val = (1.0 - gamma) + gamma * omr
        else:
            cov = variance * (1.0 - omr) if fast is not None else cov
            rho = (cov - va @ vb.T) * (sa[:, None] * sb[None, :])
            if self.absolute:
                rho = np.abs(rho)
            val = np.minimum(1.0 - rho, 2.0)
        D = np.sqrt(np.maximum(val, 0.0))
        D[same] = 0.0
        return D

    def _generic_distance(self, a, b):
        """Distance of two embedded rows on the generic path (Python)."""
        return float(self._pairwise_embedded(a[None, :], b[None, :])[0, 0])

    def __call__(self, a, b):
        """Distance between two points given as 1-D arrays of coordinates.

        The interface of a callable metric, e.g. for
        :func:`sklearn.metrics.pairwise_distances`; the cover trees of this
        package evaluate the same distance on embedded rows instead.

        Parameters
        ----------
        a, b : array-like of shape (n_features,)
            The two points.

        Returns
        -------
        distance : float
            Their distance, in ``[0, 1]`` (in ``[0, sqrt(2)]`` for a
            :class:`ResidualCorrelationDistance` with ``absolute=False``).

        Examples
        --------
        >>> from sklearn.gaussian_process.kernels import RBF
        >>> from sklearn_pcct import KernelCorrelationDistance
        >>> metric = KernelCorrelationDistance(RBF(length_scale=1.0))
        >>> round(metric([0.0, 0.0], [1.0, 0.0]), 4)  # sqrt(1 - exp(-1/2))
        0.6273
        >>> metric([0.0, 0.0], [0.0, 0.0])
        0.0
        """
        X = _check_2d(np.vstack([np.ravel(a), np.ravel(b)]))
        E = self._embed(X)
        return float(self._pairwise_embedded(E[:1], E[1:])[0, 0])

    def pairwise(self, X, Y=None):
        """Dense distance matrix between the rows of ``X`` and ``Y``.

        Computed in NumPy with the formulas of the Numba kernels, in
        ``O(n_samples_X * n_samples_Y)`` memory: a reference for small data.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
            The first points.
        Y : array-like of shape (n_samples_Y, n_features), default=None
            The second points; ``X`` when None.

        Returns
        -------
        D : ndarray of shape (n_samples_X, n_samples_Y)
            ``D[i, j]`` is the distance between ``X[i]`` and ``Y[j]``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.gaussian_process.kernels import RBF
        >>> from sklearn_pcct import KernelCorrelationDistance
        >>> metric = KernelCorrelationDistance(RBF(length_scale=1.0))
        >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> metric.pairwise(X).round(4)
        array([[0.    , 0.6273, 0.9299],
               [0.6273, 0.    , 0.9581],
               [0.9299, 0.9581, 0.    ]])
        >>> metric.pairwise(X, X[:2]).shape
        (3, 2)
        """
        EX = self._embed(_check_2d(X))
        EY = EX if Y is None else self._embed(_check_2d(Y, "Y"))
        return self._pairwise_embedded(EX, EY)


class KernelCorrelationDistance(_CorrelationBase):
    """Correlation distance ``sqrt(1 - |rho(x, y)|)`` of a Gaussian-process kernel.

    ``rho(x, y) = k(x, y) / sqrt(k(x, x) k(y, y))``; identical points are at
    distance 0. Pass an instance as ``metric=`` to any estimator or function
    of this package: Vecchia neighbours in this distance are the most
    correlated earlier points (Kang and Katzfuss, 2023), which is what an
    anisotropic or non-stationary kernel needs.

    Parameters
    ----------
    kernel : sklearn.gaussian_process.kernels.Kernel
        The covariance. Numba fast path: ``RBF`` and ``Matern`` with
        ``nu`` in {0.5, 1.5, 2.5, inf}, isotropic or anisotropic
        ``length_scale``, optionally times a ``ConstantKernel`` and plus a
        ``WhiteKernel``. Any other kernel uses a generic path that calls the
        kernel from Python for every distance (slow: fine for a few
        thousand points).

    See Also
    --------
    ResidualCorrelationDistance : The same on the residual of a predictive process.

    Notes
    -----
    The distance is a pseudometric for every positive semi-definite kernel,
    with values in ``[0, 1]``. It is evaluated in float64 without
    cancellation for the fast-path kernels (``1 - rho`` as a series near 0).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process.kernels import RBF
    >>> from sklearn_pcct import KernelCorrelationDistance, PCCTNeighbors
    >>> metric = KernelCorrelationDistance(RBF(length_scale=[1.0, 10.0]))
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> round(metric(X[0], X[1]), 4)
    0.6273
    >>> PCCTNeighbors(n_neighbors=1, metric=metric).fit(X).kneighbors([[0.0, 1.5]])[1]
    array([[2]])
    """

    def __init__(self, kernel):
        self.kernel = kernel

    def __repr__(self):
        return f"KernelCorrelationDistance(kernel={self.kernel!r})"

    def _embed(self, X):
        """Embedded rows ``[x / length_scale]`` (fast path) or ``[x | 1/sqrt(k(x,x))]``."""
        fast = self._check_kernel()
        X = np.asarray(X, dtype=np.float64)
        U = self._coordinates(X, fast)
        if fast is not None:
            return np.ascontiguousarray(U)
        diag = self._diag(X, fast)
        return np.ascontiguousarray(np.hstack([U, (1.0 / np.sqrt(diag))[:, None]]))


class ResidualCorrelationDistance(_CorrelationBase):
    """Correlation distance of the residual kernel after a predictive process.

    With inducing points ``Z`` the residual covariance is
    ``r(x, y) = k(x, y) - k(x, Z) K_ZZ^{-1} k(Z, y)`` and the distance is
    ``sqrt(1 - |r(x, y)| / sqrt(r(x, x) r(y, y)))`` (Gyger, Furrer and
    Sigrist, 2025), identical points at distance 0. This is the neighbour
    selection of full-scale (inducing points + Vecchia) approximations.

    Parameters
    ----------
    kernel : sklearn.gaussian_process.kernels.Kernel
        The covariance; the fast-path kernels are those of
        :class:`KernelCorrelationDistance`. ``k(x, Z)`` excludes a
        ``WhiteKernel`` nugget (scikit-learn's convention for ``k(X, Y)``)
        and ``r(x, x)`` includes it.
    inducing_points : array-like of shape (n_inducing, n_features)
        The points ``Z``.
    jitter : float, default=1e-10
        Added to the diagonal of ``K_ZZ``, relative to its mean diagonal,
        before the Cholesky factorisation; multiplied by 10 (up to 1e-4)
        while the factorisation fails.
    absolute : bool, default=True
        Use ``|r|`` (distances in ``[0, 1]``); False uses the signed
        correlation (distances in ``[0, sqrt(2)]``).

    See Also
    --------
    KernelCorrelationDistance : The correlation distance of the kernel itself.
    vecchia_neighbors : Conditioning sets, e.g. in this distance.

    Notes
    -----
    ``1 - rho`` cancels for highly correlated points: distances below about
    ``sqrt(1e-16 * cond(K_ZZ))`` carry no significant digits. A point whose
    residual variance is zero (below ``1e-9 k(x, x)``: typically a data
    point equal to an inducing point with no ``WhiteKernel`` nugget) has no
    correlation; embedding it raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process.kernels import Matern
    >>> from sklearn_pcct import ResidualCorrelationDistance, vecchia_neighbors
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 2))
    >>> metric = ResidualCorrelationDistance(Matern(0.2, nu=1.5), X[:10] + 0.01)
    >>> order, nbrs = vecchia_neighbors(X, 5, metric=metric)
    >>> nbrs.shape
    (200, 5)
    """

    def __init__(self, kernel, inducing_points, *, jitter=1e-10, absolute=True):
        self.kernel = kernel
        self.inducing_points = inducing_points
        self.jitter = jitter
        self.absolute = absolute

    def __repr__(self):
        return (
            f"ResidualCorrelationDistance(kernel={self.kernel!r}, "
            f"inducing_points=<array of shape {np.shape(self.inducing_points)}>, "
            f"jitter={self.jitter!r}, absolute={self.absolute!r})"
        )

    def _n_inducing(self):
        return int(np.shape(self.inducing_points)[0])

    def _check_kernel(self):
        fast = super()._check_kernel()
        Z = np.asarray(self.inducing_points, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[0] < 1:
            raise ValueError(
                f"inducing_points must be a non-empty 2-D array, got shape {Z.shape}"
            )
        if not np.all(np.isfinite(Z)):
            raise ValueError("inducing_points contain NaN or infinity")
        if not isinstance(self.jitter, numbers.Real) or not self.jitter >= 0:
            raise ValueError(f"jitter must be a number >= 0, got {self.jitter!r}")
        return fast

    def _factor(self, Z):
        """Lower Cholesky factor of ``K_ZZ + jitter * mean(diag) * I`` (cached).

        The cache key is the pickled kernel, the jitter and the bytes of
        ``Z``, so changed hyperparameters or inducing points refactor.
        """
        key = (pickle.dumps(self.kernel), float(self.jitter), Z.shape, Z.tobytes())
        cached = self.__dict__.get("_factor_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        L = self._compute_factor(Z)
        self.__dict__["_factor_cache"] = (key, L)
        return L

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_factor_cache", None)
        return state

    def _compute_factor(self, Z):
        K = np.asarray(self.kernel(Z, Z), dtype=np.float64)
        scale = float(np.mean(np.diag(K))) if K.size else 1.0
        if not scale > 0:
            raise ValueError("the kernel's variance at the inducing points is zero")
        jitter = float(self.jitter)
        while True:
            try:
                return cholesky(K + jitter * scale * np.eye(len(Z)), lower=True)
            except np.linalg.LinAlgError:
                if jitter >= 1e-4:
                    raise ValueError(
                        "K(Z, Z) is not positive definite even with a jitter of "
                        "1e-4; remove (near-)duplicate inducing points"
                    ) from None
                jitter = max(10.0 * jitter, 1e-12)

    def _embed(self, X):
        """Embedded rows ``[x (/ length_scale) | L^-1 k(Z, x) | 1/sqrt(r(x, x))]``."""
        fast = self._check_kernel()
        X = np.asarray(X, dtype=np.float64)
        Z = np.asarray(self.inducing_points, dtype=np.float64)
        if Z.shape[1] != X.shape[1]:
            raise ValueError(
                f"inducing_points have {Z.shape[1]} features but X has {X.shape[1]}"
            )
        U = self._coordinates(X, fast)
        L = self._factor(Z)
        V = solve_triangular(L, np.asarray(self.kernel(Z, X), dtype=np.float64), lower=True)
        diag = self._diag(X, fast)
        resid = diag - np.sum(V * V, axis=0)
        bad = ~(resid > _MIN_RELATIVE_VARIANCE * diag)
        if np.any(bad):
            raise ValueError(
                f"the residual variance r(x, x) is zero at {int(bad.sum())} point(s) "
                f"(first: row {int(np.flatnonzero(bad)[0])}), so their residual "
                "correlation is undefined: these points (nearly) coincide with "
                "inducing points; move the inducing points off the data or add a "
                "WhiteKernel nugget to the kernel"
            )
        return np.ascontiguousarray(np.hstack([U, V.T, (1.0 / np.sqrt(resid))[:, None]]))
