"""Figures of the performance chapter, drawn from ``benchmarks/RESULTS.md``.

Each function draws one figure with matplotlib's pyplot (the ``.. plot::``
directive saves it). The numbers come from :mod:`pcct_results`, which reads
the tables of RESULTS.md, so the figures always show the tables printed next
to them.
"""

import re

import matplotlib.pyplot as plt
import numpy as np
from pcct_results import number, table_rows

# The k-NN workloads: (RESULTS.md heading prefix, short label).
KNN_WORKLOADS = [
    ("manifold64: 3-D", "manifold64\nn=50k, d=64"),
    ("gmm16:", "gmm16\nn=100k, d=16"),
    ("uniform8: uniform", "uniform8\nn=100k, d=8"),
    ("uniform2:", "uniform2\nn=100k, d=2"),
    ("digits:", "digits\nn=1,797, d=64"),
]

UPDATE_TABLES = [
    ("manifold64: insert", "manifold64, insert 1 %"),
    ("manifold64: remove", "manifold64, remove 1 %"),
    ("uniform8: insert", "uniform8, insert 1 %"),
    ("uniform8: remove", "uniform8, remove 1 %"),
]

OURS, EXACT, APPROX = "tab:red", "tab:blue", "0.65"


def _short(method):
    """A short label for a RESULTS.md method name."""
    name = method.replace("`", "")
    name = name.replace("sklearn NearestNeighbors ", "sklearn ")
    name = name.replace("sklearn-pcct PCCTNeighbors (ours)", "sklearn-pcct (ours)")
    if name.startswith("ours (cover tree)"):
        return "ours, cover tree: update + live graph"
    if name.startswith("ours:"):
        if "without a live graph" in name:
            return "ours: index update only"
        if "rebuild" in name:
            return "ours: refit + graph"
        if "incremental" in name:
            return "ours: update + live graph"
    name = name.replace(" rebuild + query(X_live, k+1)", " rebuild + query")
    name = name.replace(" rebuild + kneighbors_graph()", " rebuild + graph")
    name = name.replace(" add_items / mark_deleted + knn_query", " update + query")
    name = name.replace(" IndexIDMap(IndexFlatL2) add_with_ids / remove_ids + search",
                        " flat index update + search")
    return re.sub(r"\s*\((?!ours).*\)$", "", name)  # settings in parentheses


def _colour(row):
    method, exact = row["method"], row.get("exact", "yes")
    if "ours" in method:
        return OURS
    return EXACT if exact.startswith("yes") else APPROX


def _bars(ax, labels, values, colours, unit="s"):
    y = np.arange(len(labels))
    ax.barh(y, values, color=colours)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    for yi, v in zip(y, values, strict=True):
        ax.text(v * 1.08, yi, f"{v:.3g} {unit}", va="center", fontsize=7)
    ax.set_xlim(min(values) / 2, max(values) * 6)
    ax.tick_params(axis="x", labelsize=8)


def _legend(fig):
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (OURS, EXACT, APPROX)]
    fig.legend(handles, ["sklearn-pcct", "exact peers", "approximate peers"],
               loc="lower center", ncol=3, fontsize=8, frameon=False)


def knn_summary():
    """Ours over the fastest exact peer, per workload, for the graph and the queries."""
    graph, queries, labels = [], [], []
    for heading, label in KNN_WORKLOADS:
        ours = next(r for r in table_rows(heading) if "ours" in r["method"])
        graph.append(number(ours["(build+allkNN)/fastest exact"]))
        queries.append(number(ours["queries/fastest exact"]))
        labels.append(label)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    b1 = ax.bar(x - 0.2, graph, 0.4, label="build + all-kNN graph", color=OURS)
    b2 = ax.bar(x + 0.2, queries, 0.4, label="2,000 new queries", color="tab:orange")
    ax.bar_label(b1, fmt="%.2g", fontsize=8)
    ax.bar_label(b2, fmt="%.2g", fontsize=8)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(0.15, 20)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("time of sklearn-pcct /\nfastest exact peer", fontsize=9)
    ax.text(-0.45, 0.17, "below 1: sklearn-pcct faster", ha="left", va="bottom", fontsize=8)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    fig.tight_layout()


def knn_times():
    """Build + all-kNN time of every method, one panel per workload."""
    fig, axes = plt.subplots(len(KNN_WORKLOADS), 1, figsize=(7.5, 13))
    for ax, (heading, label) in zip(axes, KNN_WORKLOADS, strict=True):
        rows = [r for r in table_rows(heading)
                if number(r["build s"]) is not None and number(r["all-kNN s"]) is not None]
        values = [number(r["build s"]) + number(r["all-kNN s"]) for r in rows]
        _bars(ax, [_short(r["method"]) for r in rows], values, [_colour(r) for r in rows])
        ax.set_title(label.replace("\n", ": ") + " (build + all-kNN graph, log scale)",
                     fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _legend(fig)


def update_times():
    """Time to an exact refreshed k-NN graph after a 1 % update, per method."""
    fig, axes = plt.subplots(len(UPDATE_TABLES), 1, figsize=(7.5, 10))
    for ax, (heading, label) in zip(axes, UPDATE_TABLES, strict=True):
        rows = [r for r in table_rows(heading) if number(r["refreshed graph s"]) is not None]
        values = [number(r["refreshed graph s"]) for r in rows]
        _bars(ax, [_short(r["method"]) for r in rows], values, [_colour(r) for r in rows])
        ax.set_title(f"{label}: time to the refreshed k = 16 graph (log scale)", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _legend(fig)


def _vecchia_label(method):
    method = method.replace("`", "")
    if method.startswith("ours:"):
        label = re.sub(r"\(.*\)", "", method)
        return label + " (cover tree)" if "cover_tree" in method else label
    rules = [
        ("fpsample QuickFPS", "fpsample QuickFPS (float32)"),
        ("scipy cKDTree on dyadic", "scipy cKDTree, dyadic prefixes"),
        ("scipy cKDTree, GpGp", "scipy cKDTree, GpGp scheme"),
        ("sklearn kd_tree on dyadic", "sklearn kd_tree, dyadic prefixes"),
        ("GPBoost, its random", "GPBoost, its random ordering"),
        ("GPBoost", "GPBoost, our ordering"),
    ]
    return next((short for prefix, short in rules if method.startswith(prefix)), method)


def vecchia_times():
    """Median times of the Vecchia steps at n = 10^5, d = 2, m = 30."""
    rows = [r for r in table_rows("n = 10^5") if number(r["median s"]) is not None]
    labels = [f"{_vecchia_label(r['method'])}\n{r['step']}" for r in rows]
    values = [number(r["median s"]) for r in rows]
    colours = [OURS if r["method"].startswith("ours") else EXACT for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    _bars(ax, labels, values, colours)
    ax.set_title("Vecchia set-up, n = 100,000, d = 2, m = 30 (median s, log scale)",
                 fontsize=9)
    fig.tight_layout()
