"""The kernels' metric arguments ``(code, p, w, user)`` of a metric spec.

Every kernel takes the metric as these four trailing arguments (see
:mod:`._metrics`); user metrics become first-class functions of the
kernels' fixed signature, compiled once per function.
"""

import ctypes
import functools

import numba
import numpy as np

from . import _metrics as km
from ._boxes import _read_only

__all__ = ["CODES", "metric_args"]

CODES = {
    "euclidean": km.EUCLIDEAN,
    "manhattan": km.MANHATTAN,
    "chebyshev": km.CHEBYSHEV,
    "minkowski": km.MINKOWSKI,
    "haversine": km.HAVERSINE,
    "callable": km.USER,
    "correlation": km.CORRELATION,
}

_EMPTY_W = np.empty(0, dtype=np.float64)
_EMPTY_W.flags.writeable = False


@functools.lru_cache(maxsize=64)
def _compile_user_metric(func):
    """Wrap a user metric as a first-class function of the kernels' signature."""
    try:
        jitted = func if isinstance(func, numba.core.dispatcher.Dispatcher) else numba.njit(func)
        return numba.cfunc(km.USER_SIGNATURE)(jitted)
    except Exception as exc:  # numba raises many error types while typing
        raise TypeError(
            "A callable metric must be compilable by Numba in nopython mode as "
            "f(a, b) -> float for two 1-D float64 arrays (decorate it with "
            f"@numba.njit to see why it is not): {exc}"
        ) from exc


_ROW_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)


@functools.lru_cache(maxsize=16)
def _compile_python_metric(obj):
    """A first-class function that calls ``obj._generic_distance`` through ctypes.

    For kernels with no Numba fast path: the kernels stay compiled and
    cached for the fixed user signature, and each distance calls back into
    Python (the callback takes the GIL).
    """
    def call(pa, pb, n):
        a = np.ctypeslib.as_array((ctypes.c_double * n).from_address(pa))
        b = np.ctypeslib.as_array((ctypes.c_double * n).from_address(pb))
        return obj._generic_distance(a, b)

    callback = _ROW_CALLBACK(call)

    def metric(a, b):  # pragma: no cover - compiled
        ac = np.ascontiguousarray(a)
        bc = np.ascontiguousarray(b)
        return callback(ac.ctypes.data, bc.ctypes.data, ac.shape[0])

    compiled = numba.cfunc(km.USER_SIGNATURE)(metric)
    compiled._pcct_callback = callback  # keep the ctypes thunk alive
    return compiled


def metric_args(spec):
    """``(code, p, w, user)`` for the kernels, from a :class:`~sklearn_pcct._metric.MetricSpec`."""
    code = CODES[spec.name]
    w = _EMPTY_W if spec.w is None else _read_only(np.ascontiguousarray(spec.w, np.float64))
    if code == km.CORRELATION and w[0] < 0:  # a kernel with no fast path
        return km.USER, float(spec.p), w, _compile_python_metric(spec.func)
    if code == km.USER:
        return code, float(spec.p), w, _compile_user_metric(spec.func)
    if code <= km.CHEBYSHEV:
        # kernels compiled for ``user=None`` carry only these metrics, in a
        # distance small enough to run without reference counting (see
        # _metrics.distance); euclidean as a type, compiled on its own
        # (_metrics.metric_code)
        return km.EUCLIDEAN_TAG if code == km.EUCLIDEAN else code, float(spec.p), w, None
    return code, float(spec.p), w, km.no_user_metric
