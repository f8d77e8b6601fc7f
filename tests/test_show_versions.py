"""``show_versions()`` prints what a bug report needs, without GPU imports."""

import subprocess
import sys

import numba
import numpy
import scipy
import sklearn

import sklearn_pcct
from sklearn_pcct._show_versions import _versions_info


def test_show_versions_prints_every_section(capsys):
    sklearn_pcct.show_versions()
    out = capsys.readouterr().out
    for section in ("System:", "Python dependencies:", "Numba:", "Optional GPU backends:"):
        assert section in out
    assert f"sklearn-pcct: {sklearn_pcct.__version__}" in out
    assert f"numpy: {numpy.__version__}" in out
    assert f"scipy: {scipy.__version__}" in out
    assert f"scikit-learn: {sklearn.__version__}" in out
    assert f"numba: {numba.__version__}" in out


def test_threading_layer_and_threads_are_real():
    info = _versions_info()["Numba"]
    # the report starts a parallel kernel, so the layer is known
    assert info["threading layer"] == numba.threading_layer()
    assert info["threading layer"] in ("omp", "tbb", "workqueue")
    assert int(info["threads"]) == numba.get_num_threads()
    assert int(info["NUMBA_NUM_THREADS"]) == numba.config.NUMBA_NUM_THREADS


def test_optional_backends_listed():
    info = _versions_info()["Optional GPU backends"]
    assert set(info) == {"jax", "cupy"}
    for name, text in info.items():
        installed = __import__("importlib").util.find_spec(name) is not None
        assert (text == "not installed") == (not installed)


def test_import_does_not_load_gpu_libraries():
    code = (
        "import sys, sklearn_pcct; "
        "assert not {'jax', 'cupy'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jit_cache_directory_holds_the_kernels():
    import os

    path = _versions_info()["Numba"]["JIT cache directory"]
    assert os.path.isdir(path)
    assert any(name.startswith("_kernels_query.knn") and name.endswith(".nbi")
               for name in os.listdir(path))
