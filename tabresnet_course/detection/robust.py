"""Neighbour scorers that stay sharp when the baseline holds attack campaigns (chapter "The OCSF pipeline").

A k-th neighbour distance with a small ``k`` cannot see a campaign that has ``k`` or more
near-copies in the reference: a slow brute force or a persistent scanner that ran during the
"baseline" day becomes its own normal. Two scorers here tie the neighbourhood to the size of the
reference instead of to a fixed count, so a pattern is normal only when it makes up at least a
``share`` of the reference:

- :class:`ReferenceShareKNNScorer`: the mean distance to the ``max(k, ceil(share * n_ref))``
  nearest reference rows;
- :class:`MultiScaleKNNScorer`: a small-``k`` member (sharp on a clean baseline, where an event
  unlike its few nearest neighbours is strange) and that large-``k`` member, each in units of its
  median reference score, fused by their maximum (an event strange at either scale is strange).

Measured on OCSF events from an independent producer with a quarter of every campaign in the
training window (issue 23 of this project): ``k = 5`` fell to AUROC 0.43, while ``k`` at 0.5% of
the reference held 0.93 and cost three points on the clean baseline; the fusion keeps both. The
subsampled-reference ensemble, the other remedy (Liu, Ting & Zhou, 2008, for Isolation Forest's
subsampled trees), is :class:`~tabresnet_course.detection.scorers.SubsampledKNNScorer`;
baseline refinement is :mod:`tabresnet_course.detection.refine`.

Both scorers take dense or sparse rows (exact neighbours by scikit-learn's brute-force
``NearestNeighbors``) or, with ``num_numerical`` and ``cardinalities``, the detector's compact
codes view (numericals next to integer category codes) under the one-hot distance
(:class:`~tabresnet_course.detection.knn.CodesKNNIndex`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_array

from tabresnet_course.detection.base import Scorer
from tabresnet_course.detection.knn import CodesKNNIndex

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_SHARE", "MultiScaleKNNScorer", "ReferenceShareKNNScorer", "reference_share_k"]

DEFAULT_SHARE = 0.02
"""Share of the reference a pattern must make up to look normal to the large-``k`` member: a
campaign with fewer near-copies than ``share * n_ref`` in the baseline stays visible."""

DEFAULT_MAX_ROWS = 5_000
"""Reference rows the large-``k`` member searches at most (a seeded random subsample beyond)."""

_COMBINES = ("max", "mean")


def reference_share_k(num_rows: int, share: float, minimum: int) -> int:
    """The neighbour count for a reference of ``num_rows``: ``ceil(share * num_rows)``, at least
    ``minimum`` and at most ``num_rows - 1`` (a row must have that many *other* rows)."""
    return max(1, min(num_rows - 1, max(minimum, math.ceil(share * num_rows))))


def _check_settings(k: Any, share: Any, max_rows: Any, num_numerical: Any, cardinalities: Any) -> None:
    """``ValueError`` naming the first setting out of range."""
    for name, value, minimum in (("k", k, 1), ("max_rows", max_rows, 2)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(share, bool) or not isinstance(share, Real) or not 0.0 < share < 1.0:
        raise ValueError(f"share must be a number in (0, 1), got {share!r}")
    if (num_numerical is None) != (cardinalities is None):
        raise ValueError("give both num_numerical and cardinalities (the codes view's layout), or neither")
    if cardinalities is not None and (num_numerical < 0 or min(cardinalities, default=0) < 0):
        raise ValueError(f"num_numerical and cardinalities must be >= 0, got {num_numerical!r}, {cardinalities!r}")


class _NeighbourRows(Scorer):
    """What both scorers share: input checks, the exact neighbour indexes (scikit-learn's brute
    force, or :class:`~tabresnet_course.detection.knn.CodesKNNIndex` for the codes view) and the
    leave-one-out distances of the reference rows.

    The large member searches a seeded random subsample of at most ``max_rows`` reference rows
    (all of them when the reference is smaller) with ``k = ceil(share * subsample size)``: a
    campaign keeps the same share of the subsample on average, so the criterion is the same,
    and the cost of a query stays bounded however large the baseline."""

    k: int
    share: float
    max_rows: int
    seed: int
    num_numerical: int | None
    cardinalities: Sequence[int] | None

    def rows(self, matrix: Any, name: str) -> Any:
        """``matrix`` checked: 2-D, finite, dense for the codes view, and the width it was fitted on."""
        codes = self.cardinalities is not None
        matrix = check_array(matrix, accept_sparse=not codes and "csr", dtype=np.float64, input_name=name)
        width = getattr(self, "num_columns_", None)
        if codes and width is None:
            width = self.num_numerical + len(self.cardinalities)
        if width is not None and matrix.shape[1] != width:
            raise ValueError(f"{name} has {matrix.shape[1]} columns but the scorer expects {width}")
        return matrix

    def build(self, rows: Any) -> Any:
        """An exact neighbour index of ``rows``."""
        if self.cardinalities is None:
            return NearestNeighbors(algorithm="brute").fit(rows)
        return CodesKNNIndex(rows[:, : self.num_numerical], rows[:, self.num_numerical :])

    def search(self, index: Any, rows: Any, count: int, exclude_self: bool = False) -> np.ndarray:
        """``(n, count)`` distances from ``rows`` to their nearest rows of ``index``, nearest first
        (``exclude_self``: ``rows`` are the indexed rows and each leaves itself out)."""
        if self.cardinalities is None:
            return index.kneighbors(None if exclude_self else rows, count)[0]
        split = self.num_numerical
        return index.kneighbors(rows[:, :split], rows[:, split:], count, exclude_self)[0]

    def index(self, reference: Any, small: bool) -> tuple[np.ndarray | None, np.ndarray]:
        """Index ``reference``: a seeded subsample of at most ``max_rows`` rows for the large
        member (``large_k_`` neighbours) and, when ``small``, all rows for the ``k``-neighbour
        member. Returns the reference rows' leave-one-out distances to both (``(n_ref, k)`` or
        ``None``, and ``(n_ref, large_k_)``; a row of the subsample leaves itself out)."""
        rows = self.rows(reference, "reference")
        num_rows = rows.shape[0]
        if num_rows <= self.k:
            raise ValueError(f"the reference has {num_rows} rows, need more than k={self.k}")
        self.num_columns_ = rows.shape[1]
        if num_rows > self.max_rows:
            subsample = np.random.default_rng(self.seed).choice(num_rows, size=self.max_rows, replace=False)
            self.subsample_ = np.sort(subsample)
        else:
            self.subsample_ = np.arange(num_rows)
        inside = np.zeros(num_rows, dtype=bool)
        inside[self.subsample_] = True
        self.large_k_ = reference_share_k(len(self.subsample_), self.share, self.k)
        self.large_index_ = self.build(rows[inside])
        large = np.empty((num_rows, self.large_k_))
        large[inside] = self.search(self.large_index_, rows[inside], self.large_k_, exclude_self=True)
        if not inside.all():
            large[~inside] = self.search(self.large_index_, rows[~inside], self.large_k_)
        if not small:
            return None, large
        self.small_index_ = self.large_index_ if inside.all() else self.build(rows)
        return self.search(self.small_index_, rows, self.k, exclude_self=True), large

    def distances(self, query: Any, small: bool) -> tuple[np.ndarray | None, np.ndarray]:
        """The query rows' distances to their ``k`` nearest reference rows (when ``small``) and
        to their ``large_k_`` nearest rows of the subsample, nearest first."""
        self.check_fitted()
        rows = self.rows(query, "query")
        large = self.search(self.large_index_, rows, self.large_k_)
        return (self.search(self.small_index_, rows, self.k) if small else None), large


class ReferenceShareKNNScorer(_NeighbourRows):
    """Mean distance to the ``max(k, ceil(share * n_ref))`` nearest reference rows (of a seeded
    subsample of at most ``max_rows`` of them): ``k`` grows with the reference, so a campaign
    hides only if its near-copies make up ``share`` of the baseline (chapter "The OCSF pipeline";
    see the module docstring for the measurement)."""

    def __init__(
        self,
        share: float = DEFAULT_SHARE,
        k: int = 5,
        num_numerical: int | None = None,
        cardinalities: Sequence[int] | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        seed: int = 0,
    ) -> None:
        _check_settings(k, share, max_rows, num_numerical, cardinalities)
        self.share = share
        self.k = k
        self.num_numerical = num_numerical
        self.cardinalities = cardinalities
        self.max_rows = max_rows
        self.seed = seed

    def fit(self, reference: Any) -> ReferenceShareKNNScorer:
        """Index the reference rows and keep their leave-one-out scores."""
        self.reference_scores_ = self.index(reference, small=False)[1].mean(axis=1)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` mean distance to the ``large_k_`` nearest reference rows."""
        return self.distances(query, small=False)[1].mean(axis=1)

    def leave_one_out_scores(self) -> np.ndarray:
        """``(n_ref,)`` every reference row's score among the other rows."""
        self.check_fitted()
        return self.reference_scores_


class MultiScaleKNNScorer(_NeighbourRows):
    """A small-``k`` and a large-``k`` neighbour distance on the same rows, fused (chapter "The
    OCSF pipeline").

    The small member is the mean distance to the ``k`` nearest reference rows, the large one the
    mean distance to the ``max(k, ceil(share * m))`` nearest rows of a seeded subsample of
    ``m = min(n_ref, max_rows)`` reference rows.
    Each is divided by its median leave-one-out score on the reference, so both read "times a
    typical baseline row's distance", and ``combine="max"`` takes the larger: an event far from
    its few nearest neighbours (a point anomaly on a clean baseline) or far from the bulk of a
    neighbourhood the size of ``share`` of the baseline (a campaign whose near-copies sit in the
    baseline) scores high. ``"mean"`` averages them.
    """

    def __init__(
        self,
        k: int = 5,
        share: float = DEFAULT_SHARE,
        combine: str = "max",
        num_numerical: int | None = None,
        cardinalities: Sequence[int] | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        seed: int = 0,
    ) -> None:
        _check_settings(k, share, max_rows, num_numerical, cardinalities)
        if combine not in _COMBINES:
            raise ValueError(f"combine must be one of {_COMBINES}, got {combine!r}")
        self.k = k
        self.share = share
        self.combine = combine
        self.num_numerical = num_numerical
        self.cardinalities = cardinalities
        self.max_rows = max_rows
        self.seed = seed

    def scales(self, distances: tuple[np.ndarray | None, np.ndarray]) -> np.ndarray:
        """``(2, n)`` the small-``k`` and large-``k`` mean neighbour distances."""
        small, large = distances
        return np.stack([small.mean(axis=1), large.mean(axis=1)])

    def fused(self, scales: np.ndarray) -> np.ndarray:
        """``(n,)`` the members in units of their reference medians, combined."""
        units = scales / self.medians_[:, None]
        return units.max(axis=0) if self.combine == "max" else units.mean(axis=0)

    def fit(self, reference: Any) -> MultiScaleKNNScorer:
        """Index the reference, measure each member's median reference score, keep the fused
        leave-one-out scores of the reference rows."""
        scales = self.scales(self.index(reference, small=True))
        medians = np.median(scales, axis=1)
        self.medians_ = np.where(medians > 0, medians, 1.0)  # a reference of duplicates: raw distances
        self.reference_scores_ = self.fused(scales)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` the fused small- and large-``k`` scores (1 = a typical baseline row)."""
        return self.fused(self.scales(self.distances(query, small=True)))

    def leave_one_out_scores(self) -> np.ndarray:
        """``(n_ref,)`` every reference row's fused score among the other rows."""
        self.check_fitted()
        return self.reference_scores_
