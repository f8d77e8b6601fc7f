"""``show_versions()``: what to paste into a bug report."""

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys

from ._version import __version__

__all__ = ["show_versions"]

_DEPENDENCIES = (
    "numpy", "scipy", "scikit-learn", "numba", "llvmlite", "joblib", "threadpoolctl", "tqdm",
)


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _system_info():
    return {
        "python": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "machine": platform.platform(),
        "cpu cores": str(os.cpu_count()),
    }


def _dependencies_info():
    info = {"sklearn-pcct": __version__}
    info.update({name: _version(name) for name in _DEPENDENCIES})
    return info


def _numba_info():
    """Numba's threading layer (started by a tiny parallel query) and threads."""
    import numba

    info = {}
    try:
        import numpy as np

        from ._neighbors import PCCTNeighbors

        # the threading layer is chosen when the first parallel kernel runs
        PCCTNeighbors(n_neighbors=1).fit(np.eye(2)).kneighbors()
        info["threading layer"] = numba.threading_layer()
    except Exception as exc:  # report, never fail: this is a diagnostic
        info["threading layer"] = f"unavailable ({type(exc).__name__}: {exc})"
    info["threading layer requested"] = str(numba.config.THREADING_LAYER)
    info["threads"] = str(numba.get_num_threads())
    info["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
    info["JIT cache directory"] = _jit_cache_dir()
    return info


def _jit_cache_dir():
    """Where Numba caches the kernels (it falls back to a user directory when
    the package's own ``__pycache__`` is not writable)."""
    import numba

    try:
        from ._backends._numba import _kernels_query

        return str(_kernels_query.knn._cache._cache_path)
    except Exception as exc:  # a private Numba attribute: report, never fail
        return f"unknown ({type(exc).__name__}); NUMBA_CACHE_DIR={numba.config.CACHE_DIR!r}"


def _jax_info():
    import jax

    devices = ", ".join(f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices())
    return f"{jax.__version__}; devices: {devices}"


def _cupy_info():
    import cupy

    runtime = cupy.cuda.runtime
    names = []
    for i in range(runtime.getDeviceCount()):
        name = runtime.getDeviceProperties(i)["name"]
        names.append(f"{i}: {name.decode() if isinstance(name, bytes) else name}")
    return f"{cupy.__version__}; devices: {', '.join(names) or 'none'}"


def _optional_backends_info():
    """Version and devices of each optional GPU library, or why there are none."""
    info = {}
    for module, describe in (("jax", _jax_info), ("cupy", _cupy_info)):
        if importlib.util.find_spec(module) is None:
            info[module] = "not installed"
            continue
        try:
            info[module] = describe()
        except Exception as exc:  # installed but unusable: say why
            info[module] = f"installed, unusable ({type(exc).__name__}: {exc})"
    return info


def _versions_info():
    """All the sections of :func:`show_versions`, as a dict of dicts."""
    return {
        "System": _system_info(),
        "Python dependencies": _dependencies_info(),
        "Numba": _numba_info(),
        "Optional GPU backends": _optional_backends_info(),
    }


def show_versions():
    """Print the versions and settings that matter for a bug report.

    Prints the Python and platform, the versions of sklearn-pcct and of its
    dependencies, Numba's threading layer (the one in use, after running a
    tiny parallel query, and the one requested), the thread count and its
    cap, the JIT cache directory, and the optional GPU libraries (jax,
    cupy) that are installed, with their devices. Importing those libraries
    is deferred to this call.

    See Also
    --------
    sklearn.show_versions : The same report for scikit-learn.

    Examples
    --------
    >>> from sklearn_pcct import show_versions
    >>> show_versions()  # doctest: +ELLIPSIS
    <BLANKLINE>
    System:
    ...
    """
    for section, entries in _versions_info().items():
        print(f"\n{section}:")
        width = max(len(key) for key in entries)
        for key, value in entries.items():
            print(f"{key:>{width}}: {value}")
