"""The only module that imports private scikit-learn helpers."""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

try:  # scikit-learn >= 1.8 honours set_config(sparse_interface=...)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # pragma: no cover - older scikit-learn

    def _align_api_if_sparse(X):
        return X


__all__ = [
    "_fit_context",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "check_is_fitted",
    "validate_data",
    "align_sparse_api",
]

align_sparse_api = _align_api_if_sparse
