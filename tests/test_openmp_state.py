"""Our parallel calls leave the process's OpenMP settings as they found them.

Numba's OpenMP threading layer enables nested parallelism for the whole
process when its thread pool starts; other OpenMP libraries in the same
process (GPBoost measured 120 s instead of 1.3 s for one likelihood) then
oversubscribe the cores. The backend restores ``max-active-levels``. The
check runs in a fresh interpreter, where our call is the one that starts
Numba's pool.
"""

import ctypes
import subprocess
import sys

import pytest

_SCRIPT = """
import ctypes, numpy as np
gomp = ctypes.CDLL("libgomp.so.1")
gomp.omp_set_max_active_levels({levels})
from sklearn_pcct import PCCTNeighbors, vecchia_neighbors
X = np.random.default_rng(0).random((3000, 2))
est = PCCTNeighbors(n_neighbors=3, n_jobs=2).fit(X)
est.kneighbors(X[:500])
est.radius_neighbors(X[:50], radius=0.05)
vecchia_neighbors(X, 4, n_jobs=2)
print(gomp.omp_get_max_active_levels())
"""


@pytest.mark.parametrize("levels", [1, 3])
def test_parallel_calls_keep_openmp_max_active_levels(levels):
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("GNU OpenMP runtime not available")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(levels=levels)],
        capture_output=True, text=True, check=True, timeout=600,
    )
    assert int(out.stdout.strip().splitlines()[-1]) == levels
