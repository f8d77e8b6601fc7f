"""Sphinx configuration for the sklearn-pcct documentation.

Build with ``python -m sphinx -b html doc doc/_build/html -W --keep-going``
(or ``make -C doc html``). The build works offline: an intersphinx inventory
that cannot be downloaded is reported, but does not fail a ``-W`` build.
"""

import logging
import os
import sys
from datetime import date
from pathlib import Path

from sphinx.util import logging as sphinx_logging

import sklearn_pcct

# Local extensions: doc/_ext/pcct_results.py renders the benchmark tables of
# benchmarks/RESULTS.md; doc/_ext/pcct_results_plots.py draws their figures.
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

# -- Project -----------------------------------------------------------------

project = "sklearn-pcct"
author = "sklearn-pcct developers"
copyright = f"{date.today().year}, {author}"
release = sklearn_pcct.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "pcct_results",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# autodoc / autosummary: one generated page per public name, in doc/generated/.
# The class template (``_templates/class.rst``) lists the methods itself.
autosummary_generate = True
autodoc_typehints = "none"

# numpydoc renders the sections; the class template lists the methods itself.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- intersphinx ---------------------------------------------------------------

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "joblib": ("https://joblib.readthedocs.io/en/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "numba": ("https://numba.readthedocs.io/en/stable", None),
}
# Fail fast when there is no network, and keep downloaded inventories a week.
intersphinx_timeout = 10
intersphinx_cache_limit = 7


class _OfflineIntersphinxFilter(logging.Filter):
    """Report an unreachable intersphinx inventory without failing ``-W``.

    Sphinx logs "failed to reach any of the inventories" as an untyped
    warning, which ``suppress_warnings`` cannot select and which ``-W`` turns
    into an error. Offline (or when a documentation host is down) the only
    effect is that links into that project become plain text, so the
    message is re-emitted at INFO level, prefixed so that it stays visible.
    Build with ``-D pcct_strict_intersphinx=1`` to keep it a warning (and to
    keep the references of :func:`_offline_docstring_reference` strict).
    """

    def filter(self, record):
        if record.levelno == logging.WARNING and "failed to reach any of the inventories" in str(
            record.msg
        ):
            record.levelno = logging.INFO
            record.levelname = "INFO"
            record.msg = "intersphinx (non-fatal, offline?): " + str(record.msg)
        return True


# -- sphinx-gallery ------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "plot_",
    "doc_module": ("sklearn_pcct",),
    "backreferences_dir": "generated",
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
}

# Examples draw with the non-interactive backend.
os.environ.setdefault("MPLBACKEND", "agg")

# -- matplotlib plot directive (the figures of user_guide/performance.rst) -----

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"savefig.bbox": "tight"}

# -- HTML ----------------------------------------------------------------------

try:
    import pydata_sphinx_theme  # noqa: F401
except ImportError:  # pragma: no cover - depends on the doc environment
    html_theme = "alabaster"
    html_theme_options = {"description": "Exact nearest neighbours with a cover tree"}
else:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
    }
    html_sidebars = {"getting_started": [], "whats_new": []}

html_title = f"{project} {release}"
html_static_path = ["_static"]
html_css_files = ["pcct.css"]
html_show_sourcelink = False


_docs_logger = sphinx_logging.getLogger("sklearn_pcct.doc")


def _offline_docstring_reference(app, env, node, contnode):
    """Render docstring references into scikit-learn's docs as plain text offline.

    The docstrings (ours, copied from scikit-learn, and the ones inherited from
    ``BaseEstimator``) use scikit-learn's glossary terms and labels, such as
    ``:term:`fit``` or ``:ref:`metadata_routing```, which only intersphinx can
    resolve. When the scikit-learn inventory could not be loaded, such a
    reference becomes its plain text and is noted at INFO level instead of
    failing the build. References written in the ``.rst`` pages stay strict,
    and so does everything when the inventory is available.
    """
    if "sklearn" in (getattr(env, "intersphinx_named_inventory", None) or {}):
        return None  # online: a missing reference is a real error
    if node.get("refdomain") != "std" or node.get("reftype") not in ("term", "ref"):
        return None
    if "docstring of" not in str(node.source or ""):
        return None
    _docs_logger.info(
        "intersphinx (non-fatal, offline?): unresolved %s %r in %s",
        node["reftype"],
        node["reftarget"],
        node.source,
    )
    return contnode


def _relax_offline_references(app, config):
    if not int(config.pcct_strict_intersphinx):
        # sphinx.util.logging.getLogger("sphinx.ext.intersphinx") logs here.
        logging.getLogger("sphinx.sphinx.ext.intersphinx").addFilter(_OfflineIntersphinxFilter())
        # After intersphinx's resolver (priority 500), which wins when it can.
        app.connect("missing-reference", _offline_docstring_reference, priority=900)


def setup(app):
    app.add_config_value("pcct_strict_intersphinx", 0, "env")
    app.connect("config-inited", _relax_offline_references)
