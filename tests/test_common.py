"""scikit-learn's estimator API checks (``check_estimator``) on both estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_pcct import PCCTNeighbors, PCCTTransformer


@parametrize_with_checks([PCCTNeighbors(), PCCTTransformer()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
