"""Docstrings: numpydoc validation of the public API, doctests of every module.

Two families of tests:

* ``test_public_docstring``: every name of ``sklearn_pcct.__all__`` and every
  public method and property that this package defines on the public classes
  (directly or through its own mixins and base classes) goes through
  :func:`numpydoc.validate.validate`. Members inherited unchanged from
  scikit-learn (``get_params``, ``set_output``, ...) are scikit-learn's
  docstrings and are not checked here. Only the codes of the ignore lists
  below are tolerated, each with its reason.
* ``test_docstring_examples``: the ``>>>`` examples of every module of the
  package, private modules included, run as doctests (one test per module).
"""

import doctest
import functools
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import sklearn_pcct

# --------------------------------------------------------------------------
# numpydoc validation of the public API
# --------------------------------------------------------------------------

# Codes tolerated everywhere.
IGNORED_EVERYWHERE = {
    # RT02 wants the first line of a single return value to be its type only.
    # scikit-learn names its return values ("self : object", "A : sparse
    # matrix of shape ..."), and the neighbour methods keep its docstrings.
    "RT02",
}

# Extra codes tolerated on methods (``__call__`` included).
IGNORED_FOR_METHODS = {
    # ES01: a one-line summary is enough for ``fit``/``transform``-like
    # methods; the extended description of the estimator is on its class.
    "ES01",
    # SA01: the cross references are on the class docstring; a See Also on
    # every method would repeat them (scikit-learn does not have them either).
    "SA01",
}

# Extra codes tolerated on properties: a property is a fitted attribute read
# without a call, listed (with its type and shape) in the Attributes section
# of its class, whose example shows it in use. It has no parameters and no
# Returns section to check (numpydoc does not ask for them on properties);
# its docstring must still have a summary, capitalised and ending with a
# period, in the standard layout.
IGNORED_FOR_PROPERTIES = {"ES01", "SA01", "EX01"}

# Dunder methods that are public API: the correlation distances are called as
# ``metric(a, b)``.
PUBLIC_DUNDERS = {"__call__"}


def _member_kind(cls, name):
    """``(kind, module)`` of the member ``name`` of ``cls``, or None for data.

    ``kind`` is "property" or "method"; ``module`` is where its code is
    defined, which says whether the docstring is ours or scikit-learn's.
    Plain data attributes (a class-level default such as
    ``KernelCorrelationDistance.absolute``) have no docstring of their own
    and give None.
    """
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, property):
        return "property", raw.fget.__module__
    if isinstance(raw, functools.cached_property):
        return "property", raw.func.__module__
    value = getattr(cls, name)  # unwraps staticmethod, classmethod, available_if
    if inspect.isroutine(value):
        return "method", getattr(value, "__module__", None) or ""
    return None


def _ours(module):
    return module == "sklearn_pcct" or module.startswith("sklearn_pcct.")


def _public_api():
    """``(dotted name, kind)`` of every documented object of the public API."""
    items = []
    for name in sorted(sklearn_pcct.__all__):
        if name == "__version__":
            continue
        obj = getattr(sklearn_pcct, name)
        items.append((f"sklearn_pcct.{name}", "class" if inspect.isclass(obj) else "function"))
        if not inspect.isclass(obj):
            continue
        for member in sorted(dir(obj)):
            if member.startswith("_") and member not in PUBLIC_DUNDERS:
                continue
            found = _member_kind(obj, member)
            if found is not None and _ours(found[1]):
                items.append((f"sklearn_pcct.{name}.{member}", found[0]))
    return items


PUBLIC_API = _public_api()


def _ignored(kind):
    if kind == "method":
        return IGNORED_EVERYWHERE | IGNORED_FOR_METHODS
    if kind == "property":
        return IGNORED_EVERYWHERE | IGNORED_FOR_PROPERTIES
    return IGNORED_EVERYWHERE


def test_public_api_collection():
    """The collection holds our members and leaves scikit-learn's out."""
    names = {name for name, _ in PUBLIC_API}
    kinds = dict(PUBLIC_API)
    # inherited from our own mixins and base classes
    assert kinds["sklearn_pcct.PCCTNeighbors.kneighbors"] == "method"
    assert kinds["sklearn_pcct.PCCTNeighbors.fit"] == "method"
    assert kinds["sklearn_pcct.PCCTNeighbors.partial_fit"] == "method"
    assert kinds["sklearn_pcct.PCCTSnapshot.radius_neighbors"] == "method"
    assert kinds["sklearn_pcct.PCCTNeighbors.live_ids_"] == "property"
    assert kinds["sklearn_pcct.PCCTTransformer.graph_"] == "property"
    assert kinds["sklearn_pcct.PCCTTransformer.fit_transform"] == "method"
    assert kinds["sklearn_pcct.KernelCorrelationDistance.__call__"] == "method"
    assert kinds["sklearn_pcct.vecchia_neighbors"] == "function"
    # inherited unchanged from scikit-learn
    for foreign in ("get_params", "set_params", "get_metadata_routing"):
        assert f"sklearn_pcct.PCCTNeighbors.{foreign}" not in names
    assert "sklearn_pcct.PCCTTransformer.set_output" not in names
    assert "sklearn_pcct.PCCTTransformer.get_feature_names_out" not in names
    assert "sklearn_pcct.__version__" not in names


def _report(result, errors):
    lines = "\n".join(f"  {code}: {message}" for code, message in errors)
    return (
        f"\n{result['file']}:{result['file_line']}\n"
        f"{result['docstring']}\n# numpydoc errors\n{lines}"
    )


@pytest.mark.parametrize(
    "name, kind", PUBLIC_API, ids=[name.removeprefix("sklearn_pcct.") for name, _ in PUBLIC_API]
)
def test_public_docstring(name, kind):
    """The docstring passes numpydoc's validator (up to the ignore lists)."""
    validation = pytest.importorskip("numpydoc.validate")
    result = validation.validate(name)
    errors = [(code, msg) for code, msg in result["errors"] if code not in _ignored(kind)]
    assert not errors, _report(result, errors)


# --------------------------------------------------------------------------
# doctests of every module
# --------------------------------------------------------------------------


def _all_modules():
    prefix = sklearn_pcct.__name__ + "."
    found = [info.name for info in pkgutil.walk_packages(sklearn_pcct.__path__, prefix)]
    return sorted([sklearn_pcct.__name__, *found])


MODULES = _all_modules()

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


class _Finder(doctest.DocTestFinder):
    """DocTestFinder that also looks into ``functools.cached_property``.

    The standard finder recurses into the functions, classes and properties
    of a class, but not into cached properties.
    """

    def _find(self, tests, obj, name, module, source_lines, globs, seen):
        super()._find(tests, obj, name, module, source_lines, globs, seen)
        if inspect.isclass(obj) and self._recurse:
            for valname, val in vars(obj).items():
                if isinstance(val, functools.cached_property) and self._from_module(
                    module, val.func
                ):
                    super()._find(
                        tests, val.func, f"{name}.{valname}", module, source_lines, globs, seen
                    )


def _doctests(module_name):
    module = importlib.import_module(module_name)
    tests = _Finder(exclude_empty=True).find(module, module_name)
    return sorted((test for test in tests if test.examples), key=lambda test: test.name)


def _run(tests):
    """``(n_tried, n_failed, report)`` of the doctests, numpy printing at its defaults."""
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS, verbose=False)
    out = []
    # The examples are written for NumPy's default print options (and avoid
    # printing NumPy scalars, whose repr changed in NumPy 2). Reset them in
    # case an earlier test in this process changed them.
    with np.printoptions(
        precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False,
        nanstr="nan", infstr="inf", sign="-", floatmode="maxprec", legacy=False,
    ):
        for test in tests:
            runner.run(test, out=out.append)
    return runner.tries, runner.failures, "".join(out)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    """Every ``>>>`` example of the module runs and prints what it shows."""
    tests = _doctests(module_name)
    if not tests:
        pytest.skip(f"{module_name} has no docstring examples")
    tried, failed, report = _run(tests)
    assert tried > 0
    assert failed == 0, f"{failed} of {tried} examples failed in {module_name}:\n{report}"


def test_docstring_examples_are_found():
    """The doctest collection is not vacuous.

    Every module that defines a public name has examples, and so do the
    private modules with documented helpers (the examples of the core
    algorithms and the backends are part of their documentation).
    """
    counts = {name: sum(len(t.examples) for t in _doctests(name)) for name in MODULES}
    for name in sklearn_pcct.__all__:
        obj = getattr(sklearn_pcct, name)
        module = getattr(obj, "__module__", None)
        if module is not None and _ours(module):
            assert counts[module] > 0, f"no examples in {module} (defines {name})"
    for module in ("sklearn_pcct._core", "sklearn_pcct._backends", "sklearn_pcct._testing"):
        assert counts[module] > 0, f"no examples in {module}"
    assert sum(counts.values()) >= 100, counts
