"""Baseline refinement: drop the rows of a baseline that look like attacks before fitting on it.

Chapter "The OCSF pipeline". In the manner of Self-supervise, Refine, Repeat (Yoon, Sohn, Li,
Arik, Lee & Pfister, TMLR 2022): the baseline is split into ``num_folds`` disjoint folds, one
detector (a clone of ``refiner``) is fitted on each fold and scores the rows outside it, and the
rows that any member finds most anomalous are dropped before the reference is fitted (and,
optionally, before the encoder is retrained: :func:`refined_rows` gives the rows to keep). A
campaign with ``b`` near-copies in the baseline leaves only about ``b / num_folds`` in each fold,
so a fold's member sees its rows as rare even where a detector fitted on the whole baseline
would not.

- :func:`fold_outlier_scores`: every baseline row's refinement score (the largest quantile any
  other fold's member gives it);
- :func:`refined_rows`: the rows kept after dropping the ``drop_share`` highest;
- :class:`RefinedScorer`: a :class:`~tabresnet_course.detection.base.Scorer` that refines its
  reference, then fits ``scorer`` on the rows kept;
- :func:`refine_reference`: the detector's pipeline step (``DetectorConfig.refine_share``): the
  baseline rows its reference set keeps, judged by :func:`detector_refiner` on the embedding and
  the raw features.

A reference may be one matrix or a sequence of matrices with the same rows (the views of a
:class:`~tabresnet_course.detection.scorers.ReferenceRankFusion`); the refiner gets the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.base import clone

from tabresnet_course.detection.base import Scorer
from tabresnet_course.detection.robust import ReferenceShareKNNScorer
from tabresnet_course.detection.scorers import ReferenceRankFusion

__all__ = [
    "DEFAULT_NUM_FOLDS",
    "RefinedScorer",
    "detector_refiner",
    "fold_outlier_scores",
    "refine_reference",
    "refined_rows",
]

DEFAULT_NUM_FOLDS = 5
"""Disjoint folds of the baseline, one refinement member each."""


def _num_rows(reference: Any) -> int:
    """Rows of a matrix, or of every matrix of a sequence of views (which must agree)."""
    if isinstance(reference, Sequence):
        counts = {view.shape[0] for view in reference}
        if len(counts) != 1:
            raise ValueError(f"the reference views have different numbers of rows: {sorted(counts)}")
        return counts.pop()
    return reference.shape[0]


def _take(reference: Any, rows: np.ndarray) -> Any:
    """The ``rows`` of a matrix or of every view."""
    if isinstance(reference, Sequence):
        return [view[rows] for view in reference]
    return reference[rows]


def _check_folds(num_folds: Any, num_rows: int) -> None:
    if isinstance(num_folds, bool) or not isinstance(num_folds, Integral) or num_folds < 2:
        raise ValueError(f"num_folds must be an integer >= 2, got {num_folds!r}")
    if num_rows < 2 * num_folds:
        raise ValueError(f"the reference has {num_rows} rows, too few for {num_folds} folds")


def fold_outlier_scores(
    refiner: Scorer, reference: Any, num_folds: int = DEFAULT_NUM_FOLDS, seed: int = 0
) -> np.ndarray:
    """``(n,)`` in ``(0, 1]``: every reference row's largest quantile among the scores that a
    member fitted on another fold gives the rows outside its fold (Yoon et al., 2022: a row any
    member finds anomalous is suspect). Folds are a seeded random partition."""
    num_rows = _num_rows(reference)
    _check_folds(num_folds, num_rows)
    folds = np.array_split(np.random.default_rng(seed).permutation(num_rows), num_folds)
    suspicion = np.zeros(num_rows)
    for fold in folds:
        outside = np.setdiff1d(np.arange(num_rows), fold)
        member = clone(refiner).fit(_take(reference, np.sort(fold)))
        quantiles = rankdata(member.score(_take(reference, outside))) / len(outside)
        suspicion[outside] = np.maximum(suspicion[outside], quantiles)
    return suspicion


def refined_rows(
    refiner: Scorer, reference: Any, drop_share: float = 0.05, num_folds: int = DEFAULT_NUM_FOLDS, seed: int = 0
) -> np.ndarray:
    """Sorted indices of the reference rows kept after dropping the ``round(drop_share * n)``
    rows with the highest :func:`fold_outlier_scores` (ties: the later row goes first)."""
    if isinstance(drop_share, bool) or not isinstance(drop_share, Real) or not 0.0 <= drop_share < 0.5:
        raise ValueError(f"drop_share must be a number in [0, 0.5), got {drop_share!r}")
    suspicion = fold_outlier_scores(refiner, reference, num_folds, seed)
    order = np.argsort(suspicion, kind="stable")
    return np.sort(order[: len(order) - round(drop_share * len(order))])


class RefinedScorer(Scorer):
    """``scorer`` fitted on the reference rows that survive refinement by ``refiner``
    (:func:`refined_rows`: ``num_folds`` disjoint folds, the ``drop_share`` most suspect rows
    dropped; Yoon et al., 2022). ``kept_`` holds the indices of the rows kept. Chapter "The OCSF
    pipeline"."""

    def __init__(
        self,
        scorer: Scorer,
        refiner: Scorer,
        drop_share: float = 0.05,
        num_folds: int = DEFAULT_NUM_FOLDS,
        seed: int = 0,
    ) -> None:
        self.scorer = scorer
        self.refiner = refiner
        self.drop_share = drop_share
        self.num_folds = num_folds
        self.seed = seed

    def fit(self, reference: Any) -> RefinedScorer:
        """Refine the reference, then fit a clone of ``scorer`` on the rows kept."""
        self.kept_ = refined_rows(self.refiner, reference, self.drop_share, self.num_folds, self.seed)
        self.scorer_ = clone(self.scorer).fit(_take(reference, self.kept_))
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` the fitted scorer's scores."""
        self.check_fitted()
        return self.scorer_.score(query)


def detector_refiner(k: int, num_numerical: int | None = None, cardinalities: Sequence[int] | None = None) -> Scorer:
    """The detector's refinement member: a
    :class:`~tabresnet_course.detection.robust.ReferenceShareKNNScorer` on the embedding and,
    given the codes view's layout, the larger reference rank of it and of one on the raw features
    (a row strange in either view is suspect)."""
    if cardinalities is None:
        return ReferenceShareKNNScorer(k=k)
    raw = ReferenceShareKNNScorer(k=k, num_numerical=num_numerical, cardinalities=cardinalities)
    return ReferenceRankFusion([ReferenceShareKNNScorer(k=k), raw], combine="max")


def refine_reference(
    embeddings: np.ndarray,
    features: np.ndarray | None,
    k: int,
    drop_share: float,
    seed: int,
    num_numerical: int | None = None,
    cardinalities: Sequence[int] | None = None,
) -> np.ndarray:
    """Sorted indices of the baseline rows a detector keeps as its reference set (chapter "The
    OCSF pipeline"): :func:`refined_rows` with :func:`detector_refiner` on the embeddings and, when
    given, the rows' codes view ``features`` (``num_numerical`` numericals, then one code per
    column of ``cardinalities``). All rows when ``drop_share`` is 0 or the baseline is too small
    for :data:`DEFAULT_NUM_FOLDS` folds of more than ``k`` rows each."""
    num_rows = len(embeddings)
    if drop_share == 0 or num_rows < DEFAULT_NUM_FOLDS * (k + 1):
        return np.arange(num_rows)
    if features is None:
        return refined_rows(detector_refiner(k), embeddings, drop_share, seed=seed)
    refiner = detector_refiner(k, num_numerical, cardinalities)
    return refined_rows(refiner, [embeddings, features], drop_share, seed=seed)
