"""Backend registry: names to lazily imported adapters.

``import sklearn_pcct`` imports no backend library; an adapter module is
imported the first time its backend is resolved.
"""

import importlib
import importlib.util

from ._base import Backend, BackendUnavailableError, Capabilities

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "Capabilities",
    "BACKENDS",
    "available_backends",
    "get_backend",
    "resolve_backend",
]

# name -> (adapter module, adapter class, library it needs, install hint)
BACKENDS = {
    "numba": ("sklearn_pcct._backends._numba", "NumbaBackend", "numba", "pip install numba"),
}


def get_backend(name):
    """Instantiate the backend called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`BACKENDS`.

    Returns
    -------
    backend : Backend

    Raises
    ------
    BackendUnavailableError
        If its library cannot be imported.

    Examples
    --------
    >>> from sklearn_pcct._backends import get_backend
    >>> get_backend("numba").name
    'numba'
    """
    try:
        module, cls, library, hint = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown backend {name!r}; choose one of {sorted(BACKENDS)} or 'auto'"
        ) from None
    if importlib.util.find_spec(library) is None:
        raise BackendUnavailableError(
            f"backend {name!r} needs {library}, which is not installed; "
            f"install it with `{hint}`"
        )
    return getattr(importlib.import_module(module), cls)()


def resolve_backend(name, X=None):
    """Resolve ``"auto"`` (or an explicit name) to a backend instance.

    ``"auto"`` picks ``"numba"`` for host arrays; GPU backends are chosen
    from the input's array type once they exist.

    Parameters
    ----------
    name : str
        ``"auto"`` or a key of :data:`BACKENDS`.
    X : array-like, default=None
        The input, used by ``"auto"``.

    Returns
    -------
    backend : Backend

    Examples
    --------
    >>> from sklearn_pcct._backends import resolve_backend
    >>> resolve_backend("auto").name
    'numba'
    """
    if name == "auto":
        name = "numba"
    return get_backend(name)


def available_backends():
    """Names of the backends whose libraries import on this machine.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from sklearn_pcct._backends import available_backends
    >>> "numba" in available_backends()
    True
    """
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except BackendUnavailableError:
            continue
        names.append(name)
    return names
