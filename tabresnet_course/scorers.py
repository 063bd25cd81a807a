"""Anomaly scorers with one shape: ``fit(reference)`` learns what normal looks like, ``score(query)``
returns one number per query row (higher = stranger).

- :class:`KNNScorer`: mean distance to the ``k`` nearest reference rows (exact, brute force).
- :class:`SubsampledKNNScorer`: the same score averaged over members that each see a small random
  subsample of the reference, the trick that keeps Isolation Forest (Liu, Ting & Zhou, 2008)
  robust when the reference holds a burst of near-duplicate attack rows.
- :class:`PyODScorer`: PyOD's ECOD, COPOD, HBOS, LOF and Isolation Forest behind the same shape.
- :func:`rank_fusion` / :class:`RankFusionScorer`: several scores combined by normalised ranks.

Every scorer validates its input (2-D, finite, the same columns at fit and score time), is
deterministic for its ``seed`` and reports its configuration with ``get_params``. Chapter "The
OCSF pipeline" compares them (``python -m tabresnet_course.study``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

DEFAULT_K = 5
"""Neighbours averaged by the kNN scores."""


def check_matrix(array: Any, name: str, num_columns: int | None = None) -> Any:
    """``array`` as a 2-D float matrix (dense ``float64`` or scipy sparse ``csr``) after checking
    that it has at least one row, only finite values and, when given, ``num_columns`` columns."""
    matrix = sp.csr_matrix(array, dtype=np.float64) if sp.issparse(array) else np.asarray(array, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix (rows x features), got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    values = matrix.data if sp.issparse(matrix) else matrix
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(values)).sum())} NaN or infinite values")
    if num_columns is not None and matrix.shape[1] != num_columns:
        raise ValueError(f"{name} has {matrix.shape[1]} columns but the scorer was fitted on {num_columns}")
    return matrix


def check_fitted(scorer: Any, attribute: str) -> None:
    """Raise ``ValueError`` when ``scorer.fit`` has not been called yet."""
    if not hasattr(scorer, attribute):
        raise ValueError(f"this {type(scorer).__name__} is not fitted; call fit(reference) first")


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` after checking it is an integer of at least ``minimum``."""
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class KNNScorer:
    """Mean Euclidean distance to the ``k`` nearest reference rows (exact, scikit-learn brute
    force; dense or sparse input). Taught in chapter "The OCSF pipeline".

    A group of ``g < k`` similar anomalies cannot hide behind itself, but a burst of more than
    ``k`` near-duplicates in the reference makes its own kind look normal (see
    :class:`SubsampledKNNScorer`).
    """

    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = check_positive_int(k, "k")

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {"k": self.k}

    def fit(self, reference: Any) -> KNNScorer:
        """Index the reference rows ``(n_ref, d)``; needs at least ``k`` of them."""
        reference = check_matrix(reference, "reference")
        if reference.shape[0] < self.k:
            raise ValueError(f"the reference has {reference.shape[0]} rows, fewer than k={self.k}")
        self.num_features_ = reference.shape[1]
        self.index_ = NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(reference)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` mean distance of each query row to its ``k`` nearest reference rows."""
        check_fitted(self, "index_")
        distances, _ = self.index_.kneighbors(check_matrix(query, "query", self.num_features_))  # (n_query, k)
        return distances.mean(axis=1)


class SubsampledKNNScorer:
    """kNN scores averaged over ``num_subsamples`` members, each fitted on a seeded random
    ``subsample_size`` rows of the reference (chapter "The OCSF pipeline").

    Why a burst stops hiding: a burst of ``b`` near-duplicate attack rows in a reference of ``n``
    rows hides its kind from plain kNN as soon as ``b >= k``. A member sees on average only
    ``b * subsample_size / n`` of them; when that is below ``k``, the burst's ``k``-th neighbour
    is a normal row and the burst scores high again (Isolation Forest's trees see 256 rows each
    for the same reason). The price: rare but normal rows also lose their few look-alikes.
    ``aggregate`` is ``"mean"`` or ``"median"`` over the members.
    """

    def __init__(
        self,
        k: int = DEFAULT_K,
        num_subsamples: int = 25,
        subsample_size: int = 256,
        seed: int = 0,
        aggregate: str = "mean",
    ) -> None:
        self.k = check_positive_int(k, "k")
        self.num_subsamples = check_positive_int(num_subsamples, "num_subsamples")
        self.subsample_size = check_positive_int(subsample_size, "subsample_size", minimum=self.k)
        if aggregate not in ("mean", "median"):
            raise ValueError(f"aggregate must be 'mean' or 'median', got {aggregate!r}")
        self.seed = int(seed)
        self.aggregate = aggregate

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {
            "k": self.k,
            "num_subsamples": self.num_subsamples,
            "subsample_size": self.subsample_size,
            "seed": self.seed,
            "aggregate": self.aggregate,
        }

    def fit(self, reference: Any) -> SubsampledKNNScorer:
        """Draw the members' subsamples (without replacement within a member; all rows when the
        reference is smaller than ``subsample_size``) and keep the rows any member uses."""
        reference = check_matrix(reference, "reference")
        num_rows = reference.shape[0]
        if num_rows < self.k:
            raise ValueError(f"the reference has {num_rows} rows, fewer than k={self.k}")
        size = min(self.subsample_size, num_rows)
        rng = np.random.default_rng(self.seed)
        self.subsamples_ = np.stack([rng.choice(num_rows, size=size, replace=False) for _ in range(self.num_subsamples)])
        used = np.unique(self.subsamples_)  # (n_used,) rows of the reference any member sees
        self.reference_ = reference[used]
        self.member_columns_ = np.searchsorted(used, self.subsamples_)  # (members, size) columns of reference_
        self.num_features_ = reference.shape[1]
        return self

    def score(self, query: Any, max_distances: int = 2**22) -> np.ndarray:
        """``(n_query,)`` mean (or median) over the members of their kNN scores. The distances to
        the used reference rows are computed once per chunk of ``max_distances`` values; each
        member then reads its own columns."""
        check_fitted(self, "member_columns_")
        query = check_matrix(query, "query", self.num_features_)
        rows = max(1, max_distances // self.reference_.shape[0])
        chunks = []
        for start in range(0, query.shape[0], rows):
            distances = euclidean_distances(query[start : start + rows], self.reference_)  # (c, n_used)
            member = distances[:, self.member_columns_]  # (c, members, size)
            nearest = np.partition(member, self.k - 1, axis=2)[:, :, : self.k]  # (c, members, k)
            chunks.append(nearest.mean(axis=2))  # (c, members)
        member_scores = np.concatenate(chunks)  # (n_query, members)
        return np.median(member_scores, axis=1) if self.aggregate == "median" else member_scores.mean(axis=1)


PYOD_DETECTORS = ("ecod", "copod", "hbos", "lof", "iforest")
"""Names :class:`PyODScorer` accepts."""


class PyODScorer:
    """One of PyOD's detectors (Zhao et al., 2019) behind the ``fit`` / ``score`` shape:
    ``"ecod"`` (empirical-CDF tails), ``"copod"`` (copula tails), ``"hbos"`` (histograms),
    ``"lof"`` (local outlier factor, novelty mode) or ``"iforest"`` (Isolation Forest).
    ``params`` go to the PyOD constructor; ``seed`` seeds the randomised ones. PyOD is an
    optional dependency (extras ``book`` and ``test``). Chapter "The OCSF pipeline".
    """

    def __init__(self, name: str, seed: int = 0, **params: Any) -> None:
        if name not in PYOD_DETECTORS:
            raise ValueError(f"name must be one of {PYOD_DETECTORS}, got {name!r}")
        self.name = name
        self.seed = int(seed)
        self.params = dict(params)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {"name": self.name, "seed": self.seed, **self.params}

    def build(self) -> Any:
        """A fresh, unfitted PyOD detector."""
        try:
            from pyod.models.copod import COPOD
            from pyod.models.ecod import ECOD
            from pyod.models.hbos import HBOS
            from pyod.models.iforest import IForest
            from pyod.models.lof import LOF
        except ImportError:
            raise ImportError("PyODScorer needs the pyod package (pip install pyod)") from None
        if self.name == "iforest":
            return IForest(random_state=self.seed, **self.params)
        return {"ecod": ECOD, "copod": COPOD, "hbos": HBOS, "lof": LOF}[self.name](**self.params)

    def fit(self, reference: Any) -> PyODScorer:
        """Fit the detector on the dense reference rows ``(n_ref, d)``."""
        reference = check_matrix(reference, "reference")
        if sp.issparse(reference):
            raise ValueError("PyODScorer needs a dense reference matrix (call .toarray() first)")
        self.num_features_ = reference.shape[1]
        self.detector_ = self.build().fit(reference)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` PyOD ``decision_function`` (higher = more anomalous)."""
        check_fitted(self, "detector_")
        query = check_matrix(query, "query", self.num_features_)
        if sp.issparse(query):
            raise ValueError("PyODScorer needs a dense query matrix (call .toarray() first)")
        return np.asarray(self.detector_.decision_function(query), dtype=np.float64)


def rank_fusion(scores: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Combine several ``(n,)`` score arrays of the same rows by their normalised ranks: each array
    becomes ``rank / n`` (ties share their mean rank), and the result is the weighted mean
    (chapter "The OCSF pipeline"). Ranks make scores on different scales comparable; a row only
    one detector finds strange still rises to the top half."""
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    if not arrays:
        raise ValueError("rank_fusion needs at least one score array")
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"score arrays must be 1-D and of equal length, got shapes {sorted(lengths)}")
    for position, array in enumerate(arrays):
        if not np.isfinite(array).all():
            raise ValueError(f"score array {position} holds NaN or infinite values")
    weights = np.ones(len(arrays)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(arrays),) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {len(arrays)} non-negative numbers with a positive sum, got {weights}")
    ranks = np.stack([rankdata(a) / len(a) for a in arrays])  # (members, n)
    return weights @ ranks / weights.sum()


class RankFusionScorer:
    """Several scorers fitted on the same reference, their query scores fused by
    :func:`rank_fusion`. Ranks are taken within the query batch, so a row's fused score depends
    on the other rows scored with it: score a whole period at once. Chapter "The OCSF pipeline".
    """

    def __init__(self, members: Sequence[Any], weights: Sequence[float] | None = None) -> None:
        if not members:
            raise ValueError("RankFusionScorer needs at least one member scorer")
        self.members = list(members)
        self.weights = None if weights is None else [float(w) for w in weights]

    def get_params(self) -> dict[str, Any]:
        """The members' classes and parameters, and the weights."""
        return {
            "members": [{"class": type(m).__name__, **m.get_params()} for m in self.members],
            "weights": self.weights,
        }

    def fit(self, reference: Any) -> RankFusionScorer:
        """Fit every member on ``reference``."""
        for member in self.members:
            member.fit(reference)
        self.fitted_ = True
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` fused normalised ranks of the members' scores (in ``(0, 1]``)."""
        check_fitted(self, "fitted_")
        return rank_fusion([member.score(query) for member in self.members], self.weights)
