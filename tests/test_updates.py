"""Batch updates against brute force: random and adversarial update sequences (issue 3).

Random interleavings of ``partial_fit`` / ``remove`` (hypothesis) and longer
deterministic sequences on adversarial data, each step checked against the
model of :mod:`_updates_oracle` (see there for the comparison rules).
"""

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_pcct import PCCTNeighbors, PCCTTransformer
from sklearn_pcct._testing import (
    brute_force_knn,
)

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from _updates_oracle import (  # noqa: E402
    DTYPES,
    GRID_RADII,
    METRICS,
    RTOL,
    Model,
    check_against_model,
    check_graph_rows,
    spec_of,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240917)


# -- hypothesis: random interleavings of updates -------------------------------


@st.composite
def _coords(draw, d, grid_size, exact, n):
    if exact:
        vals = draw(st.lists(st.integers(0, grid_size - 1), min_size=n * d, max_size=n * d))
        return np.array(vals, dtype=np.float64).reshape(n, d)
    vals = draw(st.lists(st.integers(0, 4000), min_size=n * d, max_size=n * d))
    return np.array(vals, dtype=np.float64).reshape(n, d) * (grid_size / 4000.0)


def _draw_batch(data, model, d, grid_size, exact, max_rows=12):
    """Rows: fresh points, copies of issued points (live or removed), copies within the batch."""
    m = data.draw(st.integers(1, max_rows), label="batch size")
    fresh = data.draw(_coords(d, grid_size, exact, m), label="fresh rows")
    rows = []
    for j in range(m):
        how = data.draw(st.sampled_from(["fresh", "issued", "batch"]) if model is not None
                        else st.sampled_from(["fresh", "batch"]))
        if how == "issued":
            rows.append(model.points[data.draw(st.integers(0, model.n_ids - 1))])
        elif how == "batch" and rows:
            rows.append(rows[data.draw(st.integers(0, len(rows) - 1))])
        else:
            rows.append(fresh[j])
    return np.array(rows, dtype=np.float64)


def _draw_removal(data, est, model):
    """Ids to remove, leaving at least one live sample."""
    ids = model.ids
    kind = data.draw(st.sampled_from(["random", "all_but_few", "root", "root_group", "none"]))
    if kind == "none":
        return np.zeros(0, dtype=np.int64)
    if len(ids) < 2:
        return None
    if kind == "random":
        m = data.draw(st.integers(1, len(ids) - 1))
        perm = data.draw(st.permutations(ids.tolist()))
        return np.array(perm[:m], dtype=np.int64)
    if kind == "all_but_few":
        keep = data.draw(st.integers(1, min(3, len(ids) - 1)))
        perm = data.draw(st.permutations(ids.tolist()))
        return np.array(perm[keep:], dtype=np.int64)
    tree = est.tree_
    root = int(tree.node_sample[0])
    if kind == "root":
        return np.array([root])
    group = np.concatenate(([root], tree.dup_idx[tree.dup_ptr[0] : tree.dup_ptr[1]]))
    if len(group) >= len(ids):
        group = group[: len(ids) - 1]
    return np.array(data.draw(st.permutations(group.tolist())), dtype=np.int64)


def _run_updates(data, est_factory, dtype, spec, exact, n_steps, on_step):
    d = data.draw(st.integers(1, 3), label="n_features")
    grid_size = data.draw(st.integers(2, 4), label="grid size")
    est = est_factory()
    model = None
    snapshots = []
    Q = None
    for _ in range(n_steps):
        ops = ["fit", "partial_fit"] if model is None else [
            "fit", "partial_fit", "partial_fit", "remove", "remove", "snapshot"
        ]
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "fit" or model is None:
            X = _draw_batch(data, None, d, grid_size, exact, max_rows=25)
            getattr(est, op)(X.astype(dtype))
            model = Model(X, dtype)
            Q_extra = data.draw(_coords(d, grid_size, exact, 4), label="queries")
            Q = np.vstack([Q_extra, X[:2], [np.full(d, (grid_size - 1) / 2.0)]])
        elif op == "partial_fit":
            X = _draw_batch(data, model, d, grid_size, exact)
            # float64 rows are cast to a float32 tree by the estimator itself
            cast = data.draw(st.booleans(), label="cast before partial_fit")
            assert est.partial_fit(X.astype(dtype) if cast else X) is est
            model.insert(X)
        elif op == "remove":
            ids = _draw_removal(data, est, model)
            if ids is None:
                continue
            assert est.remove(ids) is est
            model.remove(ids)
        else:
            snapshots.append((est.snapshot(), model.copy()))
        on_step(est, model, Q)
    return est, model, Q, snapshots


# a longer search: PCCT_UPDATES_EXAMPLES=500 python -m pytest tests/test_updates.py -k random
N_EXAMPLES = int(os.environ.get("PCCT_UPDATES_EXAMPLES", "10"))
HYP = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("metric", list(METRICS))
@HYP
@given(data=st.data())
def test_random_updates_match_brute_force(metric, dtype, data):
    params = METRICS[metric]
    spec = spec_of(params)
    exact = data.draw(st.booleans(), label="integer grid data")
    radius = data.draw(
        st.sampled_from(GRID_RADII) if exact else st.floats(0.1, 2.0), label="radius"
    )

    # the kd-tree index ("auto" with a box metric) or the cover tree
    algorithm = data.draw(st.sampled_from(["auto", "cover_tree"]), label="algorithm")

    def on_step(est, model, Q):
        check_against_model(est, model, spec, Q, radius, exact)

    est, model, Q, snapshots = _run_updates(
        data, lambda: PCCTNeighbors(algorithm=algorithm, **params), dtype, spec, exact,
        n_steps=7, on_step=on_step,
    )
    # snapshots answer as the estimator did when they were taken
    for snap, snap_model in snapshots:
        check_against_model(snap, snap_model, spec, Q, radius, exact)
    if snapshots:
        snap, snap_model = snapshots[0]
        check_against_model(pickle.loads(pickle.dumps(snap)), snap_model, spec, Q, radius, exact)




@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "minkowski_p3"])
@settings(HYP, max_examples=N_EXAMPLES + 2)
@given(data=st.data())
def test_random_updates_transformer_graph(metric, data):
    params = METRICS[metric]
    spec = spec_of(params)
    exact = data.draw(st.booleans(), label="integer grid data")
    mode = data.draw(st.sampled_from(["distance", "connectivity"]), label="mode")
    n_neighbors = data.draw(st.integers(1, 3), label="n_neighbors")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    algorithm = data.draw(st.sampled_from(["auto", "cover_tree"]), label="algorithm")
    k = n_neighbors + (mode == "distance")

    def on_step(est, model, Q):
        # reading graph_ (or not) decides whether the next update is incremental
        if data.draw(st.booleans(), label="read graph_"):
            if len(model.ids) < k:
                with pytest.raises(ValueError):
                    _ = est.graph_
                return
            check_graph_rows(est.graph_, model, spec, n_neighbors, mode, exact)
            # graph_ is what a fresh fit_transform of the live points gives
            fresh = PCCTTransformer(n_neighbors=n_neighbors, mode=mode, **params)
            F = fresh.fit_transform(model.X_live)
            G = est.graph_[model.ids]
            np.testing.assert_array_equal(G.indptr, F.indptr)
            np.testing.assert_array_equal(G.indices, model.ids[F.indices])
            np.testing.assert_allclose(G.data, F.data, rtol=RTOL, atol=0)

    _run_updates(
        data, lambda: PCCTTransformer(n_neighbors=n_neighbors, mode=mode,
                                      algorithm=algorithm, **params),
        dtype, spec, exact, n_steps=8, on_step=on_step,
    )


# -- longer deterministic sequences on adversarial data ------------------------


@pytest.mark.parametrize(
    "kind, metric",
    [("clustered", "euclidean"), ("duplicates", "chebyshev"), ("exponential", "euclidean"),
     ("grid", "manhattan"), ("offset", "euclidean"), ("tiny", "chebyshev"),
     ("manifold", "euclidean")],
)
def test_update_sequences_on_adversarial_data(kind, metric, data_factory):
    """A few hundred points, batches of new data and duplicates, removals of the root."""
    rng = np.random.default_rng(len(kind))
    d = 1 if kind == "exponential" else 3
    n = 60 if kind == "exponential" else 150
    X = data_factory(kind, n, d)
    pool = data_factory(kind, 4 * n, d)
    if kind == "exponential":  # the deep chain, inserted in shuffled batches
        pool = X[rng.permutation(n)]
    spec = spec_of({"metric": metric})
    est = PCCTNeighbors(metric=metric).fit(X[: n // 2])
    model = Model(X[: n // 2], np.float64)
    Q = np.vstack([data_factory(kind, 10, d), X[:3]])
    radius = float(np.median(brute_force_knn(X, None, 3, spec, exclude_self=True)[0][:, -1]))
    exact = kind == "grid"
    for step in range(10):
        if step % 3 == 0:
            new = np.vstack([pool[step * n // 10 : (step + 1) * n // 10],
                             model.points[rng.integers(0, model.n_ids, 5)]])
            est.partial_fit(new)
            model.insert(new)
        elif step % 3 == 1:
            tree = est.tree_
            root_group = np.concatenate(
                ([tree.node_sample[0]], tree.dup_idx[tree.dup_ptr[0] : tree.dup_ptr[1]])
            )
            others = rng.choice(model.ids, size=len(model.ids) // 5, replace=False)
            gone = np.union1d(root_group, others)[: len(model.ids) - 8]
            est.remove(gone)
            model.remove(gone)
        else:
            # the nodes of the highest levels (below the root) and their groups
            tree = est.tree_
            top = np.argsort(-tree.level[1:], kind="stable")[:4] + 1
            gone = np.unique(tree.node_sample[top])
            est.remove(gone)
            model.remove(gone)
        check_against_model(est, model, spec, Q, radius, exact)
