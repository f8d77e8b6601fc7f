"""Pipelines with PCCT give the same results as with sklearn's neighbour graphs.

The data are continuous random samples (no tied distances), so the neighbour
graphs are the same whichever exact method builds them.
"""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, SpectralClustering
from sklearn.datasets import make_blobs, make_s_curve
from sklearn.manifold import TSNE, Isomap
from sklearn.metrics import adjusted_rand_score, pairwise_distances
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from sklearn_pcct import PCCTNeighbors, PCCTTransformer


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _single_threaded_native_code():
    # The suite runs on 2 cores with 2 xdist workers: OpenMP (t-SNE's
    # Barnes-Hut gradient) and BLAS threads would only oversubscribe them.
    with threadpool_limits(limits=1):
        yield


def _transformers(n_neighbors, **kwargs):
    return (
        PCCTTransformer(n_neighbors=n_neighbors, mode="distance", **kwargs),
        KNeighborsTransformer(
            n_neighbors=n_neighbors, mode="distance", algorithm="brute", **kwargs
        ),
    )


def test_isomap_pipeline_matches_sklearn():
    X, _ = make_s_curve(250, random_state=0)
    k = 10
    ours, ref = _transformers(k)
    emb = make_pipeline(
        ours, Isomap(n_neighbors=k, n_components=2, metric="precomputed")
    ).fit_transform(X)
    emb_ref = make_pipeline(
        ref, Isomap(n_neighbors=k, n_components=2, metric="precomputed")
    ).fit_transform(X)
    assert emb.shape == (250, 2)
    np.testing.assert_allclose(emb, emb_ref, rtol=0, atol=1e-6)
    # and with Isomap's own neighbour search on the raw data
    emb_raw = Isomap(n_neighbors=k, n_components=2).fit_transform(X)
    np.testing.assert_allclose(emb, emb_raw, rtol=0, atol=1e-6)


def test_isomap_pipeline_transform_new_data(rng):
    X, _ = make_s_curve(200, random_state=1)
    X_new = X[:20] + rng.normal(scale=0.01, size=(20, 3))
    k = 8
    ours, ref = _transformers(k)
    p_ours = make_pipeline(ours, Isomap(n_neighbors=k, metric="precomputed")).fit(X)
    p_ref = make_pipeline(ref, Isomap(n_neighbors=k, metric="precomputed")).fit(X)
    np.testing.assert_allclose(p_ours.transform(X_new), p_ref.transform(X_new), rtol=0, atol=1e-6)


def test_tsne_pipeline_matches_sklearn(rng):
    X = rng.normal(size=(120, 5))
    perplexity = 3.0
    k = int(3 * perplexity + 1)  # what TSNE needs from a precomputed graph
    ours, ref = _transformers(k)

    def tsne():
        return TSNE(
            metric="precomputed",
            init="random",
            random_state=0,
            perplexity=perplexity,
            max_iter=250,
        )

    emb = make_pipeline(ours, tsne()).fit_transform(X)
    emb_ref = make_pipeline(ref, tsne()).fit_transform(X)
    assert emb.shape == (120, 2)
    np.testing.assert_allclose(emb, emb_ref, rtol=0, atol=1e-5)


def test_kneighbors_classifier_pipeline_matches_sklearn(rng):
    X, y = make_blobs(300, n_features=4, centers=3, cluster_std=3.0, random_state=0)
    X_test = rng.uniform(X.min(axis=0), X.max(axis=0), size=(100, 4))
    k = 7
    ours, ref = _transformers(k)
    clf = make_pipeline(ours, KNeighborsClassifier(n_neighbors=k, metric="precomputed"))
    clf_ref = make_pipeline(ref, KNeighborsClassifier(n_neighbors=k, metric="precomputed"))
    clf.fit(X, y)
    clf_ref.fit(X, y)
    pred = clf.predict(X_test)
    np.testing.assert_array_equal(pred, clf_ref.predict(X_test))
    np.testing.assert_allclose(
        clf.predict_proba(X_test), clf_ref.predict_proba(X_test), rtol=0, atol=1e-12
    )
    # same as a KNeighborsClassifier searching the raw data itself
    raw = KNeighborsClassifier(n_neighbors=k).fit(X, y)
    np.testing.assert_array_equal(pred, raw.predict(X_test))
    # the classifier's own training predictions too
    np.testing.assert_array_equal(clf.predict(X), clf_ref.predict(X))


def test_kneighbors_classifier_distance_weights(rng):
    X, y = make_blobs(200, n_features=3, centers=4, cluster_std=2.5, random_state=3)
    X_test = rng.uniform(X.min(axis=0), X.max(axis=0), size=(60, 3))
    k = 5
    ours, _ = _transformers(k, metric="manhattan")
    clf = make_pipeline(
        ours, KNeighborsClassifier(n_neighbors=k, metric="precomputed", weights="distance")
    ).fit(X, y)
    raw = KNeighborsClassifier(n_neighbors=k, metric="manhattan", weights="distance").fit(X, y)
    np.testing.assert_array_equal(clf.predict(X_test), raw.predict(X_test))
    np.testing.assert_allclose(
        clf.predict_proba(X_test), raw.predict_proba(X_test), rtol=0, atol=1e-9
    )


def test_spectral_clustering_pipeline_matches_sklearn():
    X, _ = make_blobs(240, n_features=3, centers=3, cluster_std=2.0, random_state=5)
    k = 10

    def spectral():
        return SpectralClustering(
            n_clusters=3,
            affinity="precomputed_nearest_neighbors",
            n_neighbors=k,
            random_state=0,
        )

    ours, ref = _transformers(k)
    labels = make_pipeline(ours, spectral()).fit_predict(X)
    labels_ref = make_pipeline(ref, spectral()).fit_predict(X)
    assert adjusted_rand_score(labels, labels_ref) == 1.0
    # SpectralClustering's own k-NN affinity on the raw data
    raw = SpectralClustering(
        n_clusters=3, affinity="nearest_neighbors", n_neighbors=k, random_state=0
    ).fit_predict(X)
    assert adjusted_rand_score(labels, raw) == 1.0


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_dbscan_on_radius_graph_matches_dbscan_on_raw_data(metric):
    X, _ = make_blobs(400, n_features=2, centers=4, cluster_std=1.0, random_state=2)
    eps = 0.6 if metric == "euclidean" else 0.8
    # no pair sits on the eps boundary, so the neighbourhoods are unambiguous
    D = pairwise_distances(X, metric=metric)
    assert np.min(np.abs(D - eps)) > 1e-9
    G = PCCTNeighbors(radius=eps, metric=metric).fit(X).radius_neighbors_graph(X, mode="distance")
    labels = DBSCAN(eps=eps, min_samples=5, metric="precomputed").fit_predict(G)
    labels_raw = DBSCAN(eps=eps, min_samples=5, metric=metric).fit_predict(X)
    # several clusters and some noise, so the comparison is not trivial
    assert len(set(labels_raw) - {-1}) >= 2
    np.testing.assert_array_equal(labels, labels_raw)
    # the graph holds exactly the eps-neighbourhoods (self as explicit zero)
    assert G.nnz == np.count_nonzero(D <= eps)
    np.testing.assert_array_equal(G.diagonal(), 0.0)
