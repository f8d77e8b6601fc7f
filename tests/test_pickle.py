"""Fitted estimators survive pickle and joblib, in this process and a fresh one."""

import dataclasses
import io
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone

from sklearn_pcct import PCCTNeighbors, PCCTTransformer

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # for _metrics_for_tests under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))
JIT_MODULES = ("numba", "llvmlite")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2718)
    X = rng.normal(size=(150, 3))
    X[10] = X[3]  # a duplicate, so the duplicate lists are not empty
    Q = rng.normal(size=(20, 3))
    latlon = np.column_stack([rng.uniform(-1.5, 1.5, 150), rng.uniform(-np.pi, np.pi, 150)])
    Q_latlon = np.column_stack([rng.uniform(-1.5, 1.5, 20), rng.uniform(-np.pi, np.pi, 20)])
    return {"X": X, "Q": Q, "latlon": latlon, "Q_latlon": Q_latlon}


BUILTIN_CASES = {
    "euclidean": (PCCTNeighbors, dict(n_neighbors=4, radius=0.8), "X"),
    "manhattan_float32": (
        PCCTNeighbors,
        dict(n_neighbors=4, radius=1.0, metric="manhattan"),
        "X32",
    ),
    "chebyshev": (PCCTNeighbors, dict(n_neighbors=4, radius=0.6, metric="chebyshev"), "X"),
    "weighted_minkowski": (
        PCCTNeighbors,
        dict(n_neighbors=4, radius=1.0, p=3, metric_params={"w": np.array([1.0, 2.0, 0.5])}),
        "X",
    ),
    "haversine": (PCCTNeighbors, dict(n_neighbors=4, radius=0.3, metric="haversine"), "latlon"),
    "transformer_distance": (PCCTTransformer, dict(n_neighbors=4), "X"),
    "transformer_connectivity": (PCCTTransformer, dict(n_neighbors=4, mode="connectivity"), "X"),
}


def _inputs(data, key):
    if key == "X32":
        return data["X"].astype(np.float32), data["Q"].astype(np.float32)
    if key == "latlon":
        return data["latlon"], data["Q_latlon"]
    return data["X"], data["Q"]


def _fit(case, data):
    cls, params, key = BUILTIN_CASES[case]
    X, Q = _inputs(data, key)
    est = cls(**params).fit(X)
    answers(est, Q)  # query before pickling: nothing cached may leak into the state
    return est, Q


def answers(est, Q):
    """Every kind of answer, as a dict of plain arrays (also used in the subprocess)."""
    out = {}
    d, i = est.kneighbors(Q)
    out["knn_dist"], out["knn_ind"] = d, i
    d, i = est.kneighbors()
    out["knn_self_dist"], out["knn_self_ind"] = d, i
    G = est.kneighbors_graph(Q, mode="distance")
    out["knn_graph"] = G.toarray()
    if hasattr(est, "radius_neighbors"):
        d, i = est.radius_neighbors(Q, sort_results=True)
        out["rad_dist"] = np.concatenate(list(d))
        out["rad_ind"] = np.concatenate(list(i))
        out["rad_counts"] = np.array([len(r) for r in i])
        d, i = est.radius_neighbors(sort_results=True)
        out["rad_self_dist"] = np.concatenate(list(d))
        out["rad_self_ind"] = np.concatenate(list(i))
        out["rad_graph"] = est.radius_neighbors_graph(Q, mode="distance").toarray()
    if hasattr(est, "transform"):
        out["transform"] = est.transform(Q).toarray()
    return out


def _assert_same_answers(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _tree_fields(tree):
    return {f.name: getattr(tree, f.name) for f in dataclasses.fields(tree)}


def _assert_same_fitted_state(est, loaded):
    assert type(loaded) is type(est)
    assert loaded.get_params().keys() == est.get_params().keys()
    for k in vars(est):
        a, b = vars(est)[k], vars(loaded)[k]
        if k == "_pcct_state_":  # the tree version: compared field by field below
            assert (a.n_samples_fit, a.n_live, a.dynamic.version) == (
                b.n_samples_fit, b.n_live, b.dynamic.version
            )
            np.testing.assert_array_equal(a.live_ids, b.live_ids)
            continue
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        elif isinstance(a, dict):
            assert a.keys() == b.keys()
        else:
            assert a == b, k
    for name, value in _tree_fields(est.tree_).items():
        other = getattr(loaded.tree_, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype, name
            np.testing.assert_array_equal(other, value, err_msg=name)
        else:
            assert other == value, name


def _assert_tree_read_only(est):
    for name, value in _tree_fields(est.tree_).items():
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable, f"tree_.{name} is writeable"
            if value.size:
                with pytest.raises(ValueError, match="read-only"):
                    value.flat[0] = value.flat[0]


# -- round trips in this process --------------------------------------------------


def _pickle_round_trip(est, tmp_path):
    return pickle.loads(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))


def _pickle_protocol_2(est, tmp_path):
    return pickle.loads(pickle.dumps(est, protocol=2))


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def _joblib_compressed(est, tmp_path):
    path = tmp_path / "est.joblib.gz"
    joblib.dump(est, path, compress=3)
    return joblib.load(path)


def _joblib_mmap(est, tmp_path):
    path = tmp_path / "est_mmap.joblib"
    joblib.dump(est, path)
    return joblib.load(path, mmap_mode="r")


def _joblib_mmap_r_plus(est, tmp_path):
    # even a writeable memory map must come back as a read-only tree
    path = tmp_path / "est_mmap_rplus.joblib"
    joblib.dump(est, path)
    return joblib.load(path, mmap_mode="r+")


ROUND_TRIPS = {
    "pickle": _pickle_round_trip,
    "pickle_protocol_2": _pickle_protocol_2,
    "joblib": _joblib_round_trip,
    "joblib_compressed": _joblib_compressed,
    "joblib_mmap_r": _joblib_mmap,
    "joblib_mmap_r+": _joblib_mmap_r_plus,
}


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("case", BUILTIN_CASES)
def test_round_trip_answers_identically(case, how, data, tmp_path):
    est, Q = _fit(case, data)
    expected = answers(est, Q)
    loaded = ROUND_TRIPS[how](est, tmp_path)
    _assert_same_fitted_state(est, loaded)
    _assert_tree_read_only(loaded)
    _assert_same_answers(answers(loaded, Q), expected)
    # the original is untouched by pickling
    _assert_tree_read_only(est)
    _assert_same_answers(answers(est, Q), expected)


@pytest.mark.parametrize("algorithm", ["kd_tree", "cover_tree"])
def test_joblib_mmap_arrays_are_memory_maps(algorithm, data, tmp_path):
    est, Q = _fit("euclidean", data)
    est = clone(est).set_params(algorithm=algorithm).fit(data["X"])
    loaded = _joblib_mmap(est, tmp_path)
    state = loaded._pcct_state_
    # the index's points: the kd-tree's, or the cover tree's
    points = state.forest.parts[0].tree.points if algorithm == "kd_tree" else loaded.tree_.points
    assert isinstance(points, np.memmap) or isinstance(points.base, np.memmap)
    assert not points.flags.writeable
    _assert_tree_read_only(loaded)


def test_loaded_estimator_can_be_refitted(data, tmp_path):
    est, Q = _fit("euclidean", data)
    loaded = _joblib_mmap(est, tmp_path)
    loaded.fit(data["X"][:50])
    assert loaded.n_samples_fit_ == 50
    ref = PCCTNeighbors(n_neighbors=4, radius=0.8).fit(data["X"][:50])
    _assert_same_answers(answers(loaded, Q), answers(ref, Q))


# -- no JIT objects in the state --------------------------------------------------


def _walk(obj, path="est", seen=None):
    """Yield ``(path, value)`` for everything reachable through the state."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield path, obj
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for i, v in enumerate(obj.ravel()):
                yield from _walk(v, f"{path}[{i}]", seen)
        return
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name), f"{path}.{f.name}", seen)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(k, f"{path}<key {k!r}>", seen)
            yield from _walk(v, f"{path}[{k!r}]", seen)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]", seen)
        return
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict) and not isinstance(obj, type):
        for k, v in state.items():
            yield from _walk(v, f"{path}.{k}", seen)


def _is_jit_object(value):
    module = type(value).__module__ or ""
    if isinstance(value, type):
        module = value.__module__ or ""
    return module.split(".")[0] in JIT_MODULES


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.globals = []

    def find_class(self, module, name):
        self.globals.append((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("case", BUILTIN_CASES)
def test_builtin_metric_state_has_no_jit_objects(case, data):
    est, _ = _fit(case, data)
    offenders = [p for p, v in _walk(est) if _is_jit_object(v)]
    assert not offenders, f"JIT objects in the fitted state: {offenders}"
    # the same through the pickle stream: no global from numba/llvmlite is needed
    unpickler = _RecordingUnpickler(io.BytesIO(pickle.dumps(est)))
    loaded = unpickler.load()
    jit_globals = [g for g in unpickler.globals if g[0].split(".")[0] in JIT_MODULES]
    assert not jit_globals, f"the pickle references {jit_globals}"
    # the read-optimised index travels with the state: the kd-tree index
    # (its cover tree is rebuilt when needed) or the cover tree
    index = ("sklearn_pcct._boxtree", "BoxForest") if est._pcct_state_.forest is not None else (
        "sklearn_pcct._tree", "TreeVersion")
    assert index in unpickler.globals
    offenders = [p for p, v in _walk(loaded) if _is_jit_object(v)]
    assert not offenders


def test_state_walk_finds_jit_objects():
    # the walker above does see a Numba dispatcher where there is one
    from _metrics_for_tests import jitted_manhattan

    assert any(_is_jit_object(v) for _, v in _walk({"m": [jitted_manhattan]}))


# -- user metrics -------------------------------------------------------------------


def _callable_estimators(data):
    from _metrics_for_tests import jitted_manhattan, plain_chebyshev

    out = {}
    for name, metric in (("jitted", jitted_manhattan), ("plain", plain_chebyshev)):
        est = PCCTNeighbors(n_neighbors=4, radius=1.0, metric=metric).fit(data["X"])
        answers(est, data["Q"])
        out[name] = est
    return out


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib_mmap_r"])
@pytest.mark.parametrize("which", ["jitted", "plain"])
def test_callable_metric_round_trip(which, how, data, tmp_path):
    est = _callable_estimators(data)[which]
    expected = answers(est, data["Q"])
    loaded = ROUND_TRIPS[how](est, tmp_path)
    assert loaded.metric is est.metric  # module-level functions pickle by reference
    _assert_tree_read_only(loaded)
    _assert_same_answers(answers(loaded, data["Q"]), expected)
    # and they are the true L1 / L-inf neighbours
    from sklearn.neighbors import NearestNeighbors

    ref_metric = "manhattan" if which == "jitted" else "chebyshev"
    ref = NearestNeighbors(n_neighbors=4, metric=ref_metric).fit(data["X"])
    d, i = ref.kneighbors(data["Q"])
    np.testing.assert_allclose(expected["knn_dist"], d, rtol=1e-12, atol=1e-12)


# -- a fresh interpreter -------------------------------------------------------------

_FRESH_SCRIPT = textwrap.dedent(
    """
    import pickle, sys
    import joblib
    import numpy as np
    sys.path.insert(0, {tests_dir!r})
    from test_pickle import answers
    path, out, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
    if fmt == "pickle":
        with open(path, "rb") as f:
            payload = pickle.load(f)
    else:
        payload = joblib.load(path, mmap_mode="r" if fmt == "joblib_mmap" else None)
    result = {{}}
    for name, (est, Q) in payload.items():
        for field in ("points", "radius", "node_sample"):
            assert not getattr(est.tree_, field).flags.writeable, (name, field)
        for k, v in answers(est, Q).items():
            result[name + "/" + k] = v
    np.savez(out, **result)
    """
)


def _run_fresh(path, fmt, tmp_path):
    out = tmp_path / f"answers_{fmt}.npz"
    script = _FRESH_SCRIPT.format(tests_dir=str(TESTS_DIR))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(out), fmt],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=1800,  # a cold Numba cache compiles every kernel in the child
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("fmt", ["pickle", "joblib_mmap"])
def test_fresh_process_answers_identically(fmt, data, tmp_path):
    payload = {case: _fit(case, data) for case in BUILTIN_CASES}
    if fmt == "pickle":
        payload.update(
            {f"callable_{k}": (v, data["Q"]) for k, v in _callable_estimators(data).items()}
        )
    expected = {}
    for name, (est, Q) in payload.items():
        for k, v in answers(est, Q).items():
            expected[f"{name}/{k}"] = v
    path = tmp_path / f"payload.{fmt}"
    if fmt == "pickle":
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    else:
        joblib.dump(payload, path)
    got = _run_fresh(path, fmt, tmp_path)
    _assert_same_answers(got, expected)
