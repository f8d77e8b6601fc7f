"""``import sklearn_pcct`` stays light: no GPU libraries, no Numba kernels.

Each check runs in a fresh interpreter. Stand-in ``jax`` and ``cupy`` packages
are put first on the path, so an import of either is seen even on machines
where the real libraries are not installed (a ``try: import jax`` would
otherwise fail silently and leave no trace in ``sys.modules``).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

GPU_LIBRARIES = ("jax", "jaxlib", "cupy", "cupy_backends")
KERNEL_MODULE = "sklearn_pcct._backends._numba"


@pytest.fixture
def fake_gpu_libraries(tmp_path):
    """A directory of stand-in GPU packages that record being imported."""
    root = tmp_path / "fake_site"
    for name in GPU_LIBRARIES:
        pkg = root / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(
            textwrap.dedent(
                f"""
                import os
                with open(os.environ["FAKE_IMPORT_LOG"], "a") as f:
                    f.write({name!r} + "\\n")
                raise ImportError("stand-in {name} for sklearn_pcct's import tests")
                """
            )
        )
    return root


def _run(code, fake_root, tmp_path):
    log = tmp_path / "imports.log"
    log.write_text("")
    env = dict(os.environ)
    env["FAKE_IMPORT_LOG"] = str(log)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(fake_root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    attempted = [line for line in log.read_text().splitlines() if line]
    return modules, attempted


def test_fake_libraries_are_detected(fake_gpu_libraries, tmp_path):
    # the stand-ins do record an import (so the tests below can fail)
    modules, attempted = _run(
        """
        import json, sys
        try:
            import jax  # noqa: F401
        except ImportError:
            pass
        print(json.dumps(sorted(sys.modules)))
        """,
        fake_gpu_libraries,
        tmp_path,
    )
    assert attempted == ["jax"]


def test_bare_import_loads_no_gpu_library_and_no_kernels(fake_gpu_libraries, tmp_path):
    modules, attempted = _run(
        """
        import json, sys
        import sklearn_pcct
        from sklearn_pcct import PCCTNeighbors, PCCTTransformer  # noqa: F401
        print(json.dumps(sorted(sys.modules)))
        """,
        fake_gpu_libraries,
        tmp_path,
    )
    assert attempted == [], f"import sklearn_pcct tried to import {attempted}"
    loaded_gpu = [m for m in modules if m.split(".")[0] in GPU_LIBRARIES]
    assert not loaded_gpu, loaded_gpu
    kernels = [m for m in modules if m == KERNEL_MODULE or m.startswith(KERNEL_MODULE + ".")]
    assert not kernels, f"import sklearn_pcct imported the Numba kernels: {kernels}"
    assert "sklearn_pcct" in modules


def test_fitting_numpy_data_loads_no_gpu_library(fake_gpu_libraries, tmp_path):
    modules, attempted = _run(
        """
        import json, sys
        import numpy as np
        from sklearn_pcct import PCCTNeighbors, PCCTTransformer
        X = np.random.default_rng(0).normal(size=(50, 3))
        PCCTNeighbors(n_neighbors=3).fit(X).kneighbors(X[:5])
        PCCTTransformer(n_neighbors=3).fit_transform(X)
        print(json.dumps(sorted(sys.modules)))
        """,
        fake_gpu_libraries,
        tmp_path,
    )
    assert attempted == [], f"fitting NumPy data tried to import {attempted}"
    assert not [m for m in modules if m.split(".")[0] in GPU_LIBRARIES]
    # the Numba backend is loaded lazily, on first use
    assert KERNEL_MODULE in modules
