"""The scorer contract: what every anomaly scorer of :mod:`tabresnet_course.detection` implements.

A :class:`Scorer` is a scikit-learn estimator (``BaseEstimator``, as PyOD's ``BaseDetector``):
the constructor only stores its arguments, unchanged, under their own names, so ``get_params``,
``set_params`` and ``sklearn.base.clone`` work; ``fit(reference)`` learns what normal looks like
and returns the scorer, storing what it learned in attributes whose names end in ``_``;
``score(query)`` returns one number per query row (higher = stranger) and raises
``sklearn.exceptions.NotFittedError`` before ``fit``. A subclass that leaves out ``fit`` or
``score`` cannot be instantiated. Chapter "The OCSF pipeline" teaches the scorers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["Scorer"]


class Scorer(BaseEstimator, ABC):
    """An anomaly scorer: ``fit(reference) -> self``, ``score(query) -> (n_query,)`` scores
    (higher = more anomalous), scikit-learn's ``get_params(deep=True)`` and ``clone``, and
    ``NotFittedError`` before ``fit`` (:meth:`check_fitted`). Chapter "The OCSF pipeline"."""

    @abstractmethod
    def fit(self, reference: Any) -> Scorer:
        """Learn what normal looks like from the reference rows; returns ``self``."""

    @abstractmethod
    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` anomaly scores of the query rows, higher = stranger."""

    def check_fitted(self) -> None:
        """Raise ``sklearn.exceptions.NotFittedError`` (a ``ValueError``) unless :meth:`fit` has
        stored its fitted attributes (the names ending in ``_``)."""
        check_is_fitted(self, msg="this %(name)s is not fitted; call fit(reference) first")
