"""Progress reports (``verbose``): silent by default, lines or a bar otherwise.

Reporting must never change a result: every reporting path is compared with
the silent one, and with an independent brute-force reference where the
silent path is itself under test elsewhere.
"""

import io
import sys
import types

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from sklearn_pcct import (
    PCCTNeighbors,
    PCCTTransformer,
    _progress,
    kneighbors_graph,
    maximin_ordering,
    vecchia_neighbors,
)
from sklearn_pcct._progress import progress


@pytest.fixture
def X():
    return np.random.default_rng(0).random((3000, 3))


class _TTY(io.StringIO):
    def isatty(self):
        return True


def _lines(err):
    return [line for line in err.splitlines() if line.startswith("[sklearn_pcct]")]


def test_silent_by_default(X, capsys):
    PCCTNeighbors().fit(X).kneighbors(X[:10])
    PCCTTransformer().fit_transform(X)
    maximin_ordering(X)
    vecchia_neighbors(X, 5)
    kneighbors_graph(X, 5, ordering="maximin")
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_1_skips_small_fits(X, capsys):
    PCCTNeighbors(verbose=1).fit(X).partial_fit(X[:10])
    assert capsys.readouterr().err == ""


def test_verbose_1_reports_large_fits(X, capsys, monkeypatch):
    monkeypatch.setattr(_progress, "LARGE", 1000)
    nn = PCCTNeighbors(n_neighbors=4, verbose=1, algorithm="cover_tree").fit(X)
    nn.partial_fit(X[:2000] + 0.5)
    nn.kneighbors()
    lines = _lines(capsys.readouterr().err)
    assert lines[0] == "[sklearn_pcct] PCCTNeighbors.fit: 3,000 points"
    assert any(line.startswith("[sklearn_pcct] PCCTNeighbors.fit:  50%") for line in lines)
    assert any("PCCTNeighbors.partial_fit: done in" in line for line in lines)
    assert any("PCCTNeighbors.kneighbors: done in" in line for line in lines)
    # a kd-tree fit (built in milliseconds) reports its start and its end
    nn = PCCTNeighbors(n_neighbors=4, verbose=1, algorithm="kd_tree").fit(X)
    nn.kneighbors()
    lines = _lines(capsys.readouterr().err)
    assert lines[0] == "[sklearn_pcct] PCCTNeighbors.fit: 3,000 points"
    assert any("PCCTNeighbors.fit: done in" in line for line in lines)
    assert any("PCCTNeighbors.kneighbors: done in" in line for line in lines)


def test_log_lines_every_tenth_and_last():
    log = io.StringIO()
    with progress(1, 1000, "job", min_total=0, stream=log) as report:
        for done in range(0, 1001, 50):
            report(done)
    lines = log.getvalue().splitlines()
    assert lines[0] == "[sklearn_pcct] job: 1,000 points"
    percents = [line.split(":")[1].split("%")[0].strip() for line in lines[1:-1]]
    assert percents == [str(10 * i) for i in range(1, 10)]
    assert lines[-1].startswith("[sklearn_pcct] job: done in ")


def test_no_last_line_on_error():
    log = io.StringIO()
    with pytest.raises(RuntimeError):
        with progress(2, 10, "job", stream=log) as report:
            report(3)
            raise RuntimeError("boom")
    assert "done" not in log.getvalue()


def test_terminal_gets_a_bar():
    tty = _TTY()
    with progress(2, 10, "job", stream=tty) as report:
        for done in range(1, 11):
            report(done)
    text = tty.getvalue()
    assert "[sklearn_pcct]" not in text  # not log lines
    assert "job" in text and "100%" in text and "10/10" in text


def test_notebook_gets_a_bar(monkeypatch):
    class ZMQInteractiveShell:
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert _progress._in_notebook()
    monkeypatch.setattr(_progress, "_tqdm", lambda interactive: None if not interactive else 1)
    # interactive, so a bar is chosen even on a non-terminal stream
    chosen = {}
    monkeypatch.setattr(
        _progress, "_Bar", lambda *args: chosen.setdefault("bar", _progress._Silent())
    )
    progress(2, 10, "job", stream=io.StringIO())
    assert "bar" in chosen


def test_not_a_notebook_without_ipython(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not _progress._in_notebook()


def test_reporting_changes_no_result(X, capsys):
    order, ls = maximin_ordering(X, verbose=1)
    order0, ls0 = maximin_ordering(X)
    np.testing.assert_array_equal(order, order0)
    np.testing.assert_array_equal(ls, ls0)
    res = vecchia_neighbors(X, 7, return_distance=True, verbose=1)
    res0 = vecchia_neighbors(X, 7, return_distance=True)
    for a, b in zip(res, res0, strict=True):
        np.testing.assert_array_equal(a, b)
    g = kneighbors_graph(X, 4, ordering="random", random_state=1, mode="distance", verbose=1)
    g0 = kneighbors_graph(X, 4, ordering="random", random_state=1, mode="distance")
    assert (g != g0).nnz == 0
    err = capsys.readouterr().err
    for step in ("kd-tree", "maximin ordering", "conditioning sets"):
        assert f"vecchia_neighbors: {step}: done in" in err
    # the cover-tree path reports its own build step
    res1 = vecchia_neighbors(X, 7, return_distance=True, algorithm="cover_tree", verbose=1)
    for a, b in zip(res1, res0, strict=True):
        np.testing.assert_array_equal(a, b)
    err = capsys.readouterr().err
    for step in ("cover tree", "maximin ordering", "conditioning sets"):
        assert f"vecchia_neighbors: {step}: done in" in err


def test_reporting_estimators_match_brute_force(X, capsys):
    Q = X[:500] + 0.01
    dist, ind = PCCTNeighbors(n_neighbors=6, verbose=2).fit(X).kneighbors(Q)
    D = np.linalg.norm(Q[:, None] - X[None], axis=2)  # exact, unlike GEMM brute force
    ref_dist = np.sort(D, axis=1)[:, :6]
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)
    _, sk_ind = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(X).kneighbors(Q)
    assert np.mean(ind == sk_ind) > 0.99  # no ties in random data
    np.testing.assert_allclose(np.linalg.norm(X[ind] - Q[:, None], axis=2), ref_dist,
                               rtol=1e-12)
    graph = PCCTTransformer(n_neighbors=5, verbose=2).fit_transform(X)
    graph0 = PCCTTransformer(n_neighbors=5).fit_transform(X)
    assert (graph != graph0).nnz == 0
    err = capsys.readouterr().err
    assert "PCCTTransformer.graph_: done in" in err
    assert "PCCTNeighbors.kneighbors: done in" in err


@pytest.mark.kernels
def test_maximin_pieces_match_one_call(X):
    # the reporting path runs the ordering in pieces from a saved state
    calls = []
    from sklearn_pcct._backends import get_backend
    from sklearn_pcct._core import build, maximin
    from sklearn_pcct._metric import MetricSpec

    be = get_backend("numba")
    tree = build(X, MetricSpec("euclidean"), be)
    order, ls = maximin(tree, X, 17, be, progress=calls.append)
    order0, ls0 = maximin(tree, X, 17, be)
    np.testing.assert_array_equal(order, order0)
    np.testing.assert_array_equal(ls, ls0)
    assert calls == sorted(calls) and calls[-1] == X.shape[0] and len(calls) > 10
    # brute-force check of the maximin property on the pieces' result
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    for t in (1, 2, 100, 2999):
        np.testing.assert_allclose(ls[t], D[order[t], order[:t]].min(), rtol=1e-12)
        np.testing.assert_allclose(ls[t], D[:, order[:t]].min(axis=1).max(), rtol=1e-12)


def test_demo_cli_verbose(capsys):
    from sklearn_pcct.__main__ import main

    assert main(["demo", "--n-samples", "400", "--n-check", "20", "-vv"]) == 0
    out, err = capsys.readouterr()
    assert "all checked rows exact" in out
    assert "PCCTNeighbors.fit: done in" in err
