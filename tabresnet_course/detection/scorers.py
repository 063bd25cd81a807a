"""Anomaly scorers, every one a :class:`~tabresnet_course.detection.base.Scorer`: ``fit(reference)``
learns what normal looks like, ``score(query)`` returns one number per query row (higher = stranger).

- :class:`KNNScorer`: mean distance to the ``k`` nearest reference rows (exact: scikit-learn,
  faiss or torch; or faiss's approximate HNSW).
- :class:`SubsampledKNNScorer`: the same score averaged over members that each see a small random
  subsample of the reference, the trick that keeps Isolation Forest (Liu, Ting & Zhou, 2008)
  robust when the reference holds a burst of near-duplicate attack rows.
- :class:`PyODScorer`: PyOD's ECOD, COPOD, HBOS and LOF behind the same contract.
- :func:`rank_fusion` / :class:`RankFusionScorer`: several scores combined by normalised ranks.
- :class:`IsolationForestScorer`: scikit-learn's Isolation Forest, the package's one forest.
- :class:`OneHotKNNScorer`: kNN on the raw features (numericals next to one-hot categories),
  read from the compact codes view of :func:`tree_features` (the package's one raw kNN), searched
  exactly without building the one-hot rows (:mod:`tabresnet_course.detection.knn`).
- :class:`ReferenceRankFusion`: members on their own views of the same rows, each query score
  turned into its rank among the member's reference scores (:func:`reference_ranks`), then
  averaged or maxed; a row's score does not depend on the other rows scored with it. Its
  reference scores can be restored from an earlier fit (``fit(references, stored_scores)``), as
  a saved detector does, instead of recomputed.
  :func:`build_detector_scorer` builds the detector's scorer (``DetectorConfig.scorer``) from
  :data:`DETECTOR_SCORERS`.

Every scorer validates its input (2-D, finite, the same columns at fit and score time), is
deterministic for its ``seed``, raises ``NotFittedError`` before ``fit`` and works with
scikit-learn's ``get_params`` and ``clone``. Chapter "The OCSF pipeline" compares them
(``python -m tabresnet_course.study``).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import OneHotEncoder

from tabresnet_course.detection.base import Scorer
from tabresnet_course.detection.knn import CodesKNNIndex
from tabresnet_course.detection.robust import MultiScaleKNNScorer
from tabresnet_course.model import NUM_RESERVED_INDICES

__all__ = [
    "APPROXIMATE_KNN_BACKENDS",
    "DEFAULT_K",
    "DETECTOR_SCORERS",
    "KNN_BACKENDS",
    "PYOD_DETECTORS",
    "IsolationForestScorer",
    "KNNScorer",
    "OneHotKNNScorer",
    "PyODScorer",
    "RankFusionScorer",
    "ReferenceRankFusion",
    "SubsampledKNNScorer",
    "build_detector_scorer",
    "installed_knn_backends",
    "one_hot_features",
    "rank_fusion",
    "reference_ranks",
    "reference_scores",
    "tree_features",
]

DEFAULT_K = 5
"""Neighbours averaged by the kNN scores (the detector's ``DetectorConfig.k``). Small k reacts to
isolated oddities; a larger k also flags small groups of similar anomalies (a group of ``g < k``
records cannot hide behind itself)."""


def _check_matrix(array: Any, name: str, num_columns: int | None = None) -> Any:
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


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


KNN_BACKENDS = ("faiss", "sklearn", "torch")
"""The exact kNN backends of :class:`KNNScorer`, fastest first (``benchmarks/bench_scoring.py``,
100,000 reference rows, d = 64, k = 5, on a shared 2-core Xeon: with one thread faiss answered
about 2.3x the queries per second of the other two, which were level; with two threads on the
loaded machine the three were within 25%, scikit-learn ahead); ``"auto"`` takes the first one
installed (scikit-learn for sparse input)."""

APPROXIMATE_KNN_BACKENDS = ("faiss_hnsw",)
"""Approximate backends, only when asked for by name: faiss's HNSW graph (M = 32, efSearch = 64)."""

QUERY_BLOCK = 4096
"""Query rows searched at once (bounds the memory of the distance tiles and of the re-ranking)."""

REFERENCE_BLOCK = 16_384
"""Reference rows per distance tile of the torch backend."""


def installed_knn_backends() -> list[str]:
    """The exact backends that can run here, in :data:`KNN_BACKENDS` order (faiss is optional)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return [name for name in KNN_BACKENDS if name != "faiss"]
    return list(KNN_BACKENDS)


def _import_faiss() -> Any:
    """The ``faiss`` module, or an ``ImportError`` that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise ImportError("the faiss backends need the faiss package (pip install faiss-cpu)") from None
    return faiss


class KNNScorer(Scorer):
    """Mean Euclidean distance to the ``k`` nearest reference rows (chapter "The OCSF pipeline").

    ``backend`` finds the neighbours: ``"sklearn"`` (``NearestNeighbors``, brute force; the only
    one for sparse input), ``"faiss"`` (exact ``IndexFlatL2``, if faiss is installed),
    ``"torch"`` (blocked matrix products and ``topk``), ``"auto"`` (the fastest exact one
    installed, :data:`KNN_BACKENDS`) or ``"faiss_hnsw"`` (approximate). The exact backends
    differ only in which of several equidistant rows they return: for dense input the distances
    to the chosen neighbours are always recomputed in float64 from the rows themselves, so they
    do not depend on the backend's float32 arithmetic.

    A group of ``g < k`` similar anomalies cannot hide behind itself, but a burst of more than
    ``k`` near-duplicates in the reference makes its own kind look normal (see
    :class:`SubsampledKNNScorer`).
    """

    def __init__(self, k: int = DEFAULT_K, backend: str = "auto") -> None:
        names = ("auto", *KNN_BACKENDS, *APPROXIMATE_KNN_BACKENDS)
        if backend not in names:
            raise ValueError(f"backend must be one of {names}, got {backend!r}")
        _check_positive_int(k, "k")
        self.k = k
        self.backend = backend

    def fit(self, reference: Any) -> KNNScorer:
        """Index the reference rows ``(n_ref, d)``; needs at least ``k`` of them."""
        reference = _check_matrix(reference, "reference")
        if reference.shape[0] < self.k:
            raise ValueError(f"the reference has {reference.shape[0]} rows, fewer than k={self.k}")
        backend = self.backend
        if backend == "auto":
            backend = "sklearn" if sp.issparse(reference) else installed_knn_backends()[0]
        if backend != "sklearn" and sp.issparse(reference):
            raise ValueError(f"backend {backend!r} needs a dense reference matrix (use 'sklearn' for sparse)")
        self.backend_ = backend
        self.num_features_ = reference.shape[1]
        self.reference_ = reference
        self.index_ = self.build_index(reference)
        return self

    def build_index(self, reference: Any) -> Any:
        """The backend's index of the reference rows."""
        if self.backend_ == "sklearn":
            return NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(reference)
        if self.backend_ == "torch":
            rows = torch.from_numpy(reference.astype(np.float32))  # (n_ref, d)
            return rows, (rows * rows).sum(dim=1)  # (n_ref, d), (n_ref,)
        faiss = _import_faiss()
        if self.backend_ == "faiss":
            index = faiss.IndexFlatL2(self.num_features_)
        else:
            index = faiss.IndexHNSWFlat(self.num_features_, 32)
            index.hnsw.efSearch = 64
        index.add(np.ascontiguousarray(reference, dtype=np.float32))
        return index

    def kneighbors(self, query: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, both ``(n_query, k)``, nearest first: each query row's ``k``
        nearest reference rows and its Euclidean distances to them."""
        self.check_fitted()
        query = _check_matrix(query, "query", self.num_features_)
        if sp.issparse(query):
            if self.backend_ != "sklearn":
                raise ValueError(f"backend {self.backend_!r} needs a dense query matrix")
            return self.index_.kneighbors(query)
        if sp.issparse(self.reference_):
            return self.index_.kneighbors(query)
        blocks = [
            self.exact_distances(block) for block in np.array_split(query, range(QUERY_BLOCK, len(query), QUERY_BLOCK))
        ]
        return np.concatenate([d for d, _ in blocks]), np.concatenate([i for _, i in blocks])

    def exact_distances(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backend's neighbours of a dense block of queries, their distances recomputed in
        float64 and sorted."""
        indices = self.neighbour_indices(query)  # (b, k)
        distances = np.sqrt(((query[:, None, :] - self.reference_[indices]) ** 2).sum(axis=2))  # (b, k)
        order = np.argsort(distances, axis=1, kind="stable")
        return np.take_along_axis(distances, order, axis=1), np.take_along_axis(indices, order, axis=1)

    def neighbour_indices(self, query: np.ndarray) -> np.ndarray:
        """``(b, k)`` indices of the ``k`` nearest reference rows of each query row."""
        if self.backend_ == "sklearn":
            return self.index_.kneighbors(query, return_distance=False)
        if self.backend_ == "torch":
            return _torch_nearest(torch.from_numpy(query.astype(np.float32)), *self.index_, self.k).numpy()
        _, indices = self.index_.search(np.ascontiguousarray(query, dtype=np.float32), self.k)
        return indices.astype(np.int64)

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` mean distance of each query row to its ``k`` nearest reference rows."""
        distances, _ = self.kneighbors(query)  # (n_query, k)
        return distances.mean(axis=1)

    def leave_one_out_scores(self) -> np.ndarray:
        """``(n_ref,)`` the score of every reference row with the row itself left out (it would
        find itself at distance 0): its mean distance to the ``k`` nearest *other* rows."""
        self.check_fitted()
        if self.k >= self.reference_.shape[0]:
            raise ValueError(f"the reference has {self.reference_.shape[0]} rows, need more than k={self.k}")
        distances, _ = NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(self.reference_).kneighbors()
        return distances.mean(axis=1)


@torch.no_grad()
def _torch_nearest(query: torch.Tensor, reference: torch.Tensor, squared_norms: torch.Tensor, k: int) -> torch.Tensor:
    """``(b, k)`` indices of the ``k`` rows of ``reference`` nearest to each row of ``query``,
    exact: ``||r||^2 - 2 q.r`` (the ``||q||^2`` term does not change a row's ranking) tile by
    tile of :data:`REFERENCE_BLOCK` rows, each tile's ``topk`` merged into the running best."""
    best_values = torch.empty(len(query), 0)  # (b, <=k)
    best_indices = torch.empty(len(query), 0, dtype=torch.long)  # (b, <=k)
    for start in range(0, len(reference), REFERENCE_BLOCK):
        rows = reference[start : start + REFERENCE_BLOCK]  # (R, d)
        tile = torch.addmm(squared_norms[start : start + REFERENCE_BLOCK], query, rows.T, alpha=-2.0)  # (b, R)
        values, indices = tile.topk(min(k, len(rows)), dim=1, largest=False)  # (b, k)
        values = torch.cat([best_values, values], dim=1)  # (b, <=2k)
        indices = torch.cat([best_indices, indices + start], dim=1)  # (b, <=2k)
        best_values, order = values.topk(min(k, values.shape[1]), dim=1, largest=False)  # (b, k)
        best_indices = indices.gather(1, order)  # (b, k)
    return best_indices


class SubsampledKNNScorer(Scorer):
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
        _check_positive_int(k, "k")
        _check_positive_int(num_subsamples, "num_subsamples")
        _check_positive_int(subsample_size, "subsample_size", minimum=k)
        if aggregate not in ("mean", "median"):
            raise ValueError(f"aggregate must be 'mean' or 'median', got {aggregate!r}")
        self.k = k
        self.num_subsamples = num_subsamples
        self.subsample_size = subsample_size
        self.seed = seed
        self.aggregate = aggregate

    def fit(self, reference: Any) -> SubsampledKNNScorer:
        """Draw the members' subsamples (without replacement within a member; all rows when the
        reference is smaller than ``subsample_size``) and keep the rows any member uses."""
        reference = _check_matrix(reference, "reference")
        num_rows = reference.shape[0]
        if num_rows < self.k:
            raise ValueError(f"the reference has {num_rows} rows, fewer than k={self.k}")
        size = min(self.subsample_size, num_rows)
        rng = np.random.default_rng(self.seed)
        self.subsamples_ = np.stack(
            [rng.choice(num_rows, size=size, replace=False) for _ in range(self.num_subsamples)]
        )
        used = np.unique(self.subsamples_)  # (n_used,) rows of the reference any member sees
        self.reference_ = reference[used]
        self.member_columns_ = np.searchsorted(used, self.subsamples_)  # (members, size) columns of reference_
        self.num_features_ = reference.shape[1]
        return self

    def score(self, query: Any, max_distances: int = 2**22) -> np.ndarray:
        """``(n_query,)`` mean (or median) over the members of their kNN scores. The distances to
        the used reference rows are computed once per chunk of ``max_distances`` values; each
        member then reads its own columns."""
        self.check_fitted()
        query = _check_matrix(query, "query", self.num_features_)
        rows = max(1, max_distances // self.reference_.shape[0])
        chunks = []
        for start in range(0, query.shape[0], rows):
            distances = euclidean_distances(query[start : start + rows], self.reference_)  # (c, n_used)
            member = distances[:, self.member_columns_]  # (c, members, size)
            nearest = np.partition(member, self.k - 1, axis=2)[:, :, : self.k]  # (c, members, k)
            chunks.append(nearest.mean(axis=2))  # (c, members)
        member_scores = np.concatenate(chunks)  # (n_query, members)
        return np.median(member_scores, axis=1) if self.aggregate == "median" else member_scores.mean(axis=1)


PYOD_DETECTORS = ("ecod", "copod", "hbos", "lof")
"""Names :class:`PyODScorer` accepts (the Isolation Forest is :class:`IsolationForestScorer`)."""


class PyODScorer(Scorer):
    """One of PyOD's deterministic detectors (Zhao et al., 2019) behind the scorer contract:
    ``"ecod"`` (empirical-CDF tails), ``"copod"`` (copula tails), ``"hbos"`` (histograms) or
    ``"lof"`` (local outlier factor, novelty mode). ``params`` (a dict) go to the PyOD
    constructor. PyOD is an optional dependency (extras ``book`` and ``test``). Chapter "The
    OCSF pipeline".
    """

    def __init__(self, name: str, params: dict[str, Any] | None = None) -> None:
        if name not in PYOD_DETECTORS:
            raise ValueError(f"name must be one of {PYOD_DETECTORS}, got {name!r}")
        self.name = name
        self.params = params

    def _build(self) -> Any:
        """A fresh, unfitted PyOD detector."""
        try:
            from pyod.models.copod import COPOD
            from pyod.models.ecod import ECOD
            from pyod.models.hbos import HBOS
            from pyod.models.lof import LOF
        except ImportError:
            raise ImportError("PyODScorer needs the pyod package (pip install pyod)") from None
        return {"ecod": ECOD, "copod": COPOD, "hbos": HBOS, "lof": LOF}[self.name](**(self.params or {}))

    def fit(self, reference: Any) -> PyODScorer:
        """Fit the detector on the dense reference rows ``(n_ref, d)``."""
        reference = _check_matrix(reference, "reference")
        if sp.issparse(reference):
            raise ValueError("PyODScorer needs a dense reference matrix (call .toarray() first)")
        self.num_features_ = reference.shape[1]
        self.detector_ = self._build().fit(reference)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` PyOD ``decision_function`` (higher = more anomalous)."""
        self.check_fitted()
        query = _check_matrix(query, "query", self.num_features_)
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


class RankFusionScorer(Scorer):
    """Several scorers fitted on the same reference, their query scores fused by
    :func:`rank_fusion`. Ranks are taken within the query batch, so a row's fused score depends
    on the other rows scored with it: score a whole period at once. Chapter "The OCSF pipeline".
    """

    def __init__(self, members: Sequence[Scorer], weights: Sequence[float] | None = None) -> None:
        if not members:
            raise ValueError("RankFusionScorer needs at least one member scorer")
        self.members = members
        self.weights = weights

    def fit(self, reference: Any) -> RankFusionScorer:
        """Fit every member on ``reference``."""
        for member in self.members:
            member.fit(reference)
        return self

    def check_fitted(self) -> None:
        """``NotFittedError`` unless every member is fitted."""
        for member in self.members:
            member.check_fitted()

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` fused normalised ranks of the members' scores (in ``(0, 1]``)."""
        self.check_fitted()
        return rank_fusion([member.score(query) for member in self.members], self.weights)


class IsolationForestScorer(Scorer):
    """Isolation Forest (Liu, Ting & Zhou, 2008; scikit-learn) behind the scorer contract:
    ``-score_samples`` (higher = more anomalous). Seeded, so refitting on the same rows gives
    the same forest, which is how a saved detector restores it without pickle. Give it the
    numericals next to integer category codes (:func:`tree_features`): a split on a code
    separates groups of categories, which trees handle well, whereas one-hot columns of
    high-cardinality fields (users, IPs) would dilute the random feature choice among thousands
    of nearly empty columns. Chapter "The OCSF pipeline"."""

    def __init__(self, n_estimators: int = 200, seed: int = 0) -> None:
        _check_positive_int(n_estimators, "n_estimators")
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, reference: Any) -> IsolationForestScorer:
        """Grow the forest on the dense reference rows ``(n_ref, d)``."""
        reference = _check_matrix(reference, "reference")
        if sp.issparse(reference):
            raise ValueError("IsolationForestScorer needs a dense reference matrix")
        self.num_features_ = reference.shape[1]
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(reference)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` negated ``score_samples``."""
        self.check_fitted()
        return -self.forest_.score_samples(_check_matrix(query, "query", self.num_features_))


def tree_features(numerical: np.ndarray, categorical: np.ndarray, rates: np.ndarray | None = None) -> np.ndarray:
    """Rows for a tree model: the numericals ``(N, n_num)``, the integer category codes
    ``(N, n_cat)`` as floats (a split on a code separates groups of categories) and, when
    given, rate features ``(N, n_rates)`` compressed with ``log1p`` (after clipping to
    ``[0, float64 max]``, so absurd byte counts stay finite)."""
    parts = [np.asarray(numerical, dtype=np.float64), np.asarray(categorical, dtype=np.float64)]
    if rates is not None:
        parts.append(np.log1p(np.clip(np.asarray(rates, dtype=np.float64), 0.0, np.finfo(np.float64).max)))
    return np.hstack(parts)


def one_hot_features(numerical: np.ndarray, categorical: np.ndarray, cardinalities: Sequence[int]) -> sp.csr_matrix:
    """Raw features for a distance: the (already scaled) numericals next to a one-hot encoding of
    every categorical column, as a sparse matrix.

    Integer category codes are not distances (category 7 is not "closer" to 8 than to 300), so
    each column becomes ``cardinality + NUM_RESERVED_INDICES`` indicator columns. Two records
    that differ in one categorical column are ``sqrt(2)`` apart, about the gap of a numerical
    feature that differs by 1.4 standard deviations.
    """
    if categorical.shape[1] == 0:
        return sp.csr_matrix(numerical.astype(np.float32))
    categories = [np.arange(c + NUM_RESERVED_INDICES) for c in cardinalities]
    encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", dtype=np.float32)
    one_hot = encoder.fit_transform(categorical)
    return sp.hstack([sp.csr_matrix(numerical.astype(np.float32)), one_hot], format="csr")


class OneHotKNNScorer(Scorer):
    """Mean Euclidean distance to the ``k`` nearest reference rows on the raw features of
    :func:`one_hot_features`, read from the codes view of :func:`tree_features` without rates:
    ``num_numerical`` numerical columns, then one integer code per categorical column of
    ``cardinalities`` (codes in ``[0, cardinality + NUM_RESERVED_INDICES)``). The detector stores
    that compact view, not the one-hot rows, and the search never builds them
    (:class:`~tabresnet_course.detection.knn.CodesKNNIndex`: exact, the neighbours of
    scikit-learn's brute force on the sparse one-hot rows). Chapter "The OCSF pipeline"."""

    def __init__(self, num_numerical: int, cardinalities: Sequence[int], k: int = DEFAULT_K) -> None:
        _check_positive_int(num_numerical, "num_numerical", minimum=0)
        for cardinality in cardinalities:
            _check_positive_int(cardinality, "cardinality", minimum=0)
        _check_positive_int(k, "k")
        self.num_numerical = num_numerical
        self.cardinalities = cardinalities
        self.k = k

    def _split(self, codes: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(numerical (n, num_numerical), category codes (n, n_categorical))`` of a codes
        matrix, every code checked to be an integer in its column's range."""
        codes = _check_matrix(codes, name, self.num_numerical + len(self.cardinalities))
        codes = codes.toarray() if sp.issparse(codes) else codes
        categorical = codes[:, self.num_numerical :]
        limits = np.asarray(self.cardinalities, dtype=np.float64) + NUM_RESERVED_INDICES
        bad = (categorical < 0) | (categorical >= limits) | (categorical != np.round(categorical))
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} row {row}, categorical column {column}: code {float(categorical[row, column]):g} is not an "
                f"integer in [0, {int(limits[column])})"
            )
        return codes[:, : self.num_numerical], categorical.astype(np.int64)

    def fit(self, reference: Any) -> OneHotKNNScorer:
        """Index the reference codes; needs more than ``k`` rows."""
        numerical, categorical = self._split(reference, "reference")
        if len(numerical) < self.k:
            raise ValueError(f"the reference has {len(numerical)} rows, fewer than k={self.k}")
        self.index_ = CodesKNNIndex(numerical, categorical)
        return self

    def kneighbors(self, query: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, both ``(n_query, k)``, nearest first."""
        self.check_fitted()
        return self.index_.kneighbors(*self._split(query, "query"), self.k)

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` mean one-hot distance of each query row to its ``k`` nearest reference rows."""
        return self.kneighbors(query)[0].mean(axis=1)

    def leave_one_out_scores(self) -> np.ndarray:
        """``(n_ref,)`` every reference row's score among the other rows (as :class:`KNNScorer`)."""
        self.check_fitted()
        if self.k >= len(self.index_):
            raise ValueError(f"the reference has {len(self.index_)} rows, need more than k={self.k}")
        index = self.index_
        return index.kneighbors(index.numerical, index.codes, self.k, exclude_self=True)[0].mean(axis=1)


def reference_scores(member: Scorer, reference: Any) -> np.ndarray:
    """``member``'s scores of its own reference rows, the yardstick a query score is ranked
    against. A kNN row would find itself at distance 0, so a member with
    ``leave_one_out_scores`` (:class:`KNNScorer`, :class:`OneHotKNNScorer`) scores each row
    among the *other* reference rows; other scorers score the rows as they are (a forest's
    subsampled trees see each row rarely)."""
    if hasattr(member, "leave_one_out_scores"):
        return member.leave_one_out_scores()
    return member.score(reference)


def reference_ranks(yardstick: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(n,)`` where ``scores`` fall among the sorted reference scores ``yardstick``: the share
    of the reference below (ties count half), in ``[0, 1]``, and beyond the largest reference
    score ``1 + (score - largest) / (largest - median)``, so events stranger than anything in
    the reference keep their order instead of all tying at 1 (which would blur the top of the
    alert list, where average precision is decided)."""
    below = np.searchsorted(yardstick, scores, side="left")
    not_above = np.searchsorted(yardstick, scores, side="right")
    ranks = (below + not_above) / (2.0 * len(yardstick))
    largest = yardstick[-1]
    spread = max(largest - float(np.median(yardstick)), 1e-12 * max(1.0, abs(largest)))
    return np.where(scores > largest, 1.0 + (scores - largest) / spread, ranks)


class ReferenceRankFusion(Scorer):
    """Members fitted on their own views of the same reference rows (say embeddings and raw
    features); a query row's score combines, over members, its *reference rank*
    (:func:`reference_ranks`: the share of the member's reference scores below the query's
    score, extended beyond the largest), so each member contributes on the same scale.
    ``combine="mean"`` takes the weighted mean (an event must look odd to every member);
    ``"max"`` takes the largest (an event odd to *any* member rises: one member may see what
    the other misses, as raw distances see a byte count the embedding compresses). Unlike
    :func:`rank_fusion`, a row's score does not depend on the other rows scored with it, so
    scoring in chunks or one event at a time gives the same numbers. Chapter "The OCSF
    pipeline".

    ``fit(references)`` and ``score(queries)`` take one matrix per member, in member order.
    """

    def __init__(
        self, members: Sequence[Scorer], weights: Sequence[float] | None = None, combine: str = "mean"
    ) -> None:
        if not members:
            raise ValueError("ReferenceRankFusion needs at least one member scorer")
        if combine not in ("mean", "max"):
            raise ValueError(f"combine must be 'mean' or 'max', got {combine!r}")
        if combine == "max" and weights is not None:
            raise ValueError("weights apply to combine='mean' only")
        if weights is not None and (len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, got {weights}")
        self.members = members
        self.weights = weights
        self.combine = combine

    def _check_views(self, views: Sequence[Any], name: str) -> list[Any]:
        """One matrix per member, all with the same number of rows."""
        views = list(views)
        if len(views) != len(self.members):
            raise ValueError(f"got {len(views)} {name} matrices for {len(self.members)} members")
        rows = {view.shape[0] for view in views}
        if len(rows) != 1:
            raise ValueError(f"the {name} matrices have different numbers of rows: {sorted(rows)}")
        return views

    def fit(self, references: Sequence[Any], stored_scores: Sequence[np.ndarray] | None = None) -> ReferenceRankFusion:
        """Fit every member on its reference matrix and keep its sorted reference scores
        (``reference_scores_``). ``stored_scores``: the ``reference_scores_`` of an earlier fit
        on the same rows (a saved detector stores them), taken instead of recomputed: the
        leave-one-out kNN scores cost a search of every reference row, refitting a member only
        indexes the rows (or regrows its seeded forest)."""
        references = self._check_views(references, "reference")
        if stored_scores is None:
            self.reference_scores_ = [
                np.sort(reference_scores(member.fit(view), _check_matrix(view, "reference")))
                for member, view in zip(self.members, references)
            ]
            return self
        stored = [np.asarray(scores, dtype=np.float64) for scores in stored_scores]
        rows = references[0].shape[0]
        if len(stored) != len(self.members) or any(
            a.shape != (rows,) or not np.isfinite(a).all() or (np.diff(a) < 0).any() for a in stored
        ):
            raise ValueError(f"stored_scores must be {len(self.members)} sorted finite arrays of {rows} scores")
        for member, view in zip(self.members, references):
            member.fit(view)
        self.reference_scores_ = stored
        return self

    def member_ranks(self, queries: Sequence[Any]) -> np.ndarray:
        """``(members, n_query)`` every member's reference ranks of the query rows."""
        self.check_fitted()
        queries = self._check_views(queries, "query")
        return np.stack(
            [
                reference_ranks(yardstick, member.score(view))
                for member, view, yardstick in zip(self.members, queries, self.reference_scores_)
            ]
        )

    def score(self, queries: Sequence[Any]) -> np.ndarray:
        """``(n_query,)`` the members' reference ranks, combined (``0`` or more; above 1 only
        beyond a member's largest reference score)."""
        ranks = self.member_ranks(queries)
        if self.combine == "max":
            return ranks.max(axis=0)
        weights = np.ones(len(ranks)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return weights @ ranks / weights.sum()


DETECTOR_SCORERS: dict[str, tuple[str, ...]] = {
    "knn": ("embedding",),
    "subsampled_knn": ("embedding",),
    "fusion_knn": ("embedding", "codes"),
    "fusion_iforest": ("embedding", "codes"),
    "fusion_rates": ("embedding", "codes+rates"),
    "fusion_multiscale": ("embedding", "codes"),
}
"""The detector's scorers (``DetectorConfig.scorer``) and the views of an event each reads:
the embedding, and for the fusions the raw features of :func:`tree_features` without or with
rate features (:mod:`tabresnet_course.features.rates`). The study measures them as ``embedding_knn``,
``embedding_subsampled_knn`` and ``detector_<name>`` for the fusions."""


def build_detector_scorer(
    name: str,
    k: int = DEFAULT_K,
    seed: int = 0,
    knn_backend: str = "auto",
    num_numerical: int | None = None,
    cardinalities: Sequence[int] | None = None,
) -> Scorer:
    """An unfitted scorer for ``DetectorConfig.scorer == name``: kNN (on ``knn_backend``) or
    subsampled kNN on the embeddings; for ``"fusion_knn"`` the larger reference rank of the
    embedding kNN and of a kNN on the raw features (:class:`OneHotKNNScorer`, which needs the
    preprocessed ``num_numerical`` and the ``cardinalities``); for ``"fusion_iforest"`` /
    ``"fusion_rates"`` the mean reference rank of the embedding kNN and an Isolation Forest on
    the raw features (with rate features for ``"fusion_rates"``); for ``"fusion_multiscale"`` the
    larger reference rank of :class:`~tabresnet_course.detection.robust.MultiScaleKNNScorer` on the
    embedding and on the raw features (robust to campaigns in the baseline; the detector fits it
    on the baseline rows that :func:`~tabresnet_course.detection.refine.refine_reference` keeps).
    Chapter "The OCSF pipeline"."""
    if name not in DETECTOR_SCORERS:
        raise ValueError(f"scorer must be one of {sorted(DETECTOR_SCORERS)}, got {name!r}")
    if name == "knn":
        return KNNScorer(k, backend=knn_backend)
    if name == "subsampled_knn":
        return SubsampledKNNScorer(k, seed=seed)
    if name in ("fusion_knn", "fusion_multiscale") and (num_numerical is None or cardinalities is None):
        raise ValueError(f"scorer {name!r} needs num_numerical and cardinalities (the raw features' layout)")
    if name == "fusion_knn":
        raw = OneHotKNNScorer(num_numerical, cardinalities, k)
        return ReferenceRankFusion([KNNScorer(k, backend=knn_backend), raw], combine="max")
    if name == "fusion_multiscale":
        raw = MultiScaleKNNScorer(k, num_numerical=num_numerical, cardinalities=cardinalities)
        return ReferenceRankFusion([MultiScaleKNNScorer(k), raw], combine="max")
    return ReferenceRankFusion([KNNScorer(k, backend=knn_backend), IsolationForestScorer(seed=seed)])
