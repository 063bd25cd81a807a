"""Measuring anomaly detectors: AUROC, average precision, recall at an alert budget, baselines.

Every number is computed on one split with labels kept outside the features. AUROC and
average precision come from scikit-learn (``roc_auc_score``, ``average_precision_score``);
recall at an alert budget answers the operator's question "if I can look at the top 1% of
records, which share of the attacks do I see?". The baselines follow the advice of ADBench
(Han et al., 2022) and its re-runs (Livernoche et al., 2024): kNN distance on the raw
preprocessed features, Isolation Forest (Liu et al., 2008) and the same encoder with random
weights, all on the same split as the learned embeddings. Chapter "The OCSF pipeline" teaches
this file; :func:`knn_profile_accuracy`, a check of representation quality, is used in the
training chapters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from tabresnet_course.detection.detector import OCSFAnomalyDetector
from tabresnet_course.detection.scorers import DEFAULT_K, IsolationForestScorer, OneHotKNNScorer, tree_features
from tabresnet_course.events.flat import as_flat_frame
from tabresnet_course.ocsf.contamination import scenario_share_mask

__all__ = [
    "METRIC_COLUMNS",
    "compare_detectors",
    "contamination_effect",
    "contamination_mask",
    "detection_metrics",
    "flag_probabilities",
    "isolation_forest_scores",
    "knn_profile_accuracy",
    "method_scores",
    "metric_pivot",
    "per_scenario_metrics",
    "raw_knn_scores",
    "untrained_encoder_scores",
]

METRIC_COLUMNS = ["auroc", "average_precision", "recall_at_budget"]
"""The metrics of every table: AUROC, average precision and recall at the alert budget."""


# --------------------------------------------------------------------------- metrics


def flag_probabilities(scores: Sequence[float] | np.ndarray, alert_budget: float) -> np.ndarray:
    """Probability that each record is among the ``ceil(alert_budget * n)`` highest scores.

    Records strictly above the cut-off score are flagged (1.0); records tied *at* the cut-off
    share the remaining alerts equally, so ties neither help nor hurt a detector (this is the
    expected value of breaking ties at random). Everything else gets 0.0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 <= alert_budget <= 1.0:
        raise ValueError(f"alert_budget must be between 0 and 1, got {alert_budget}")
    n_alerts = min(len(scores), math.ceil(alert_budget * len(scores) - 1e-9))
    flags = np.zeros(len(scores))
    if n_alerts == 0:
        return flags
    cutoff = np.sort(scores)[::-1][n_alerts - 1]
    above = scores > cutoff
    tied = scores == cutoff
    flags[above] = 1.0
    flags[tied] = (n_alerts - above.sum()) / tied.sum()
    return flags


def check_labels_and_scores(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as a boolean array and ``scores`` as float64, after checking they line up."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or len(labels) != len(scores):
        raise ValueError(
            f"labels and scores must be 1-D and of equal length, got shapes {labels.shape} and {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} NaN or infinite values")
    if labels.dtype != bool:
        values = set(np.unique(labels).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be boolean or 0/1, got values {sorted(values)[:5]}")
        labels = labels.astype(bool)
    return labels, scores


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float, str]:
    """AUROC and average precision, or NaN with a note when the slice holds a single class."""
    if labels.all() or not labels.any():
        only = "anomalous" if labels.any() else "normal"
        return math.nan, math.nan, f"single class: only {only} records, AUROC and AP undefined"
    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores)), ""


def detection_metrics(
    labels: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    alert_budget: float = 0.01,
) -> dict[str, Any]:
    """AUROC, average precision and recall at ``alert_budget`` of one set of scores (chapter
    "The OCSF pipeline").

    ``labels`` are true for anomalous records; higher ``scores`` mean more anomalous. Recall at
    the budget is the share of anomalous records among the top ``alert_budget`` fraction of all
    records (ties at the cut-off shared, see :func:`flag_probabilities`). A slice with a single
    class gets NaN for the undefined metrics and a ``note`` saying why, instead of an error.
    """
    labels, scores = check_labels_and_scores(labels, scores)
    auroc, ap, note = ranking_metrics(labels, scores)
    flags = flag_probabilities(scores, alert_budget)
    recall = float(flags[labels].sum() / labels.sum()) if labels.any() else math.nan
    return {
        "n_anomalous": int(labels.sum()),
        "n_normal": int((~labels).sum()),
        "auroc": auroc,
        "average_precision": ap,
        "recall_at_budget": recall,
        "alert_budget": float(alert_budget),
        "note": note,
    }


def per_scenario_metrics(
    labels_df: pd.DataFrame,
    scores: Sequence[float] | np.ndarray,
    alert_budget: float = 0.01,
    *,
    label_column: str = "is_anomaly",
    scenario_column: str = "scenario",
) -> pd.DataFrame:
    """Metrics overall and for each attack scenario, one row each (chapter "The OCSF pipeline").

    ``labels_df`` is row-aligned with ``scores`` (one label row per scored record). A scenario's
    row compares that scenario's anomalous records with *all* normal records of the split. The
    alert budget is spent once, on the whole split (the operator does not know the scenario),
    so a scenario's recall is the share of its records that land among the overall top
    ``alert_budget`` fraction.
    """
    if len(labels_df) != len(scores):
        raise ValueError(f"labels_df has {len(labels_df)} rows but there are {len(scores)} scores")
    for column in (label_column, scenario_column):
        if column not in labels_df.columns:
            raise ValueError(f"labels_df has no column {column!r} (columns: {list(labels_df.columns)})")
    labels, scores = check_labels_and_scores(labels_df[label_column].to_numpy(), scores)
    flags = flag_probabilities(scores, alert_budget)
    scenarios = labels_df[scenario_column].to_numpy()
    rows = [slice_row("overall", labels, scores, flags, np.ones(len(labels), dtype=bool))]
    for scenario in sorted(set(scenarios[labels].tolist()), key=str):
        in_slice = ~labels | (scenarios == scenario)
        rows.append(slice_row(str(scenario), labels, scores, flags, in_slice))
    table = pd.DataFrame(rows)
    table["alert_budget"] = float(alert_budget)
    return table


def slice_row(
    name: str, labels: np.ndarray, scores: np.ndarray, flags: np.ndarray, in_slice: np.ndarray
) -> dict[str, Any]:
    """One row of :func:`per_scenario_metrics`: ranking metrics on the slice, recall from the
    flags computed on the whole split."""
    slice_labels = labels[in_slice]
    auroc, ap, note = ranking_metrics(slice_labels, scores[in_slice])
    hits = flags[in_slice][slice_labels]
    return {
        "scenario": name,
        "n_anomalous": int(slice_labels.sum()),
        "n_normal": int((~slice_labels).sum()),
        "auroc": auroc,
        "average_precision": ap,
        "recall_at_budget": float(hits.mean()) if len(hits) else math.nan,
        "note": note,
    }


# --------------------------------------------------------------------------- representations


def knn_profile_accuracy(
    train_features: Any, train_labels: Any, test_features: Any, test_labels: Any, n_neighbors: int = 10
) -> float:
    """How well a representation recovers a hidden label (the simulated profile of an event):
    the accuracy on the test rows of an ``n_neighbors``-nearest-neighbour classifier fitted on
    the training rows. Compares embeddings with each other and with the raw features
    (chapters "The complete training loop" and "Training best practices")."""
    knn = KNeighborsClassifier(n_neighbors=n_neighbors).fit(train_features, train_labels)
    return float(knn.score(test_features, test_labels))


# --------------------------------------------------------------------------- baselines


def raw_knn_scores(
    reference: tuple[np.ndarray, np.ndarray],
    query: tuple[np.ndarray, np.ndarray],
    cardinalities: Sequence[int],
    k: int = DEFAULT_K,
) -> np.ndarray:
    """kNN baseline: mean distance of each query row to its ``k`` nearest reference rows in the
    raw feature space of :func:`~tabresnet_course.detection.scorers.one_hot_features`
    (:class:`~tabresnet_course.detection.scorers.OneHotKNNScorer`, the detector's raw kNN, on the
    codes view of :func:`~tabresnet_course.detection.scorers.tree_features`). ``reference`` and
    ``query`` are ``(numerical, categorical)`` pairs from the detector's preprocessor."""
    scorer = OneHotKNNScorer(reference[0].shape[1], cardinalities, k)
    return scorer.fit(tree_features(*reference)).score(tree_features(*query))


def isolation_forest_scores(
    reference: tuple[np.ndarray, np.ndarray],
    query: tuple[np.ndarray, np.ndarray],
    *,
    seed: int = 0,
    n_estimators: int = 200,
) -> np.ndarray:
    """Isolation Forest baseline (Liu et al., 2008), fitted on the reference rows:
    :class:`~tabresnet_course.detection.scorers.IsolationForestScorer` on the numericals next to
    the *integer* category codes (:func:`~tabresnet_course.detection.scorers.tree_features`).
    ``reference`` and ``query`` are ``(numerical, categorical)`` pairs from the detector's
    preprocessor; higher means more anomalous."""
    scorer = IsolationForestScorer(n_estimators, seed)
    return scorer.fit(tree_features(*reference)).score(tree_features(*query))


def untrained_encoder_scores(
    detector: OCSFAnomalyDetector, reference_events: Any, query_events: Any, *, seed: int | None = None
) -> np.ndarray:
    """The same architecture with random weights (the initialisation the trained model started
    from, when ``seed`` is the training seed), embedded and scored with kNN like the detector.
    The gap to the trained detector is what self-supervised training added."""
    untrained = detector.untrained_copy(seed=seed).with_reference(reference_events)
    return untrained.score(query_events)


def method_scores(
    detector: OCSFAnomalyDetector,
    reference_events: Any,
    query_events: Any,
    *,
    seed: int = 0,
    methods: Iterable[str] = ("embedding_knn", "raw_knn", "isolation_forest", "untrained_knn"),
) -> dict[str, np.ndarray]:
    """Scores of every method in ``methods`` on ``query_events``, each fitted on
    ``reference_events`` (the detector is used as trained; its own reference set is replaced
    by ``reference_events`` so that every method sees the same reference)."""
    reference = detector.preprocess(reference_events)
    query = detector.preprocess(query_events)
    scorers = {
        "embedding_knn": lambda: detector.with_reference(reference_events).score(query_events),
        "raw_knn": lambda: raw_knn_scores(reference, query, detector.cardinalities, detector.k),
        "isolation_forest": lambda: isolation_forest_scores(reference, query, seed=seed),
        "untrained_knn": lambda: untrained_encoder_scores(detector, reference_events, query_events),
    }
    unknown = set(methods) - set(scorers)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {sorted(scorers)}")
    return {name: scorers[name]() for name in methods}


def compare_detectors(
    detector: OCSFAnomalyDetector,
    reference_events: Any,
    query_events: Any,
    query_labels: pd.DataFrame,
    *,
    alert_budget: float = 0.01,
    seed: int = 0,
    methods: Iterable[str] = ("embedding_knn", "raw_knn", "isolation_forest", "untrained_knn"),
) -> pd.DataFrame:
    """The comparison of chapter "The OCSF pipeline", as one tidy table: a row per (method,
    scenario) with AUROC, average precision and recall at ``alert_budget``.

    Every method is fitted on ``reference_events`` and scored on the same ``query_events``
    (row-aligned with ``query_labels``): ``embedding_knn`` (the trained detector),
    ``raw_knn`` (:func:`raw_knn_scores`), ``isolation_forest`` (:func:`isolation_forest_scores`)
    and ``untrained_knn`` (:func:`untrained_encoder_scores`).
    """
    scores = method_scores(detector, reference_events, query_events, seed=seed, methods=methods)
    tables = [
        per_scenario_metrics(query_labels, method_score, alert_budget).assign(method=name)
        for name, method_score in scores.items()
    ]
    table = pd.concat(tables, ignore_index=True)
    return table[["method", *[c for c in table.columns if c != "method"]]]


def metric_pivot(table: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """``compare_detectors``' tidy table as scenario x method for one metric (for display)."""
    if metric not in METRIC_COLUMNS:
        raise ValueError(f"metric must be one of {METRIC_COLUMNS}, got {metric!r}")
    order = list(dict.fromkeys(table["scenario"]))
    pivot = table.pivot(index="scenario", columns="method", values=metric)
    return pivot.loc[order, list(dict.fromkeys(table["method"]))]


# --------------------------------------------------------------------------- contamination


def contamination_mask(
    labels_df: pd.DataFrame,
    scenarios: Sequence[str],
    fraction: float = 0.5,
    *,
    seed: int = 0,
    scenario_column: str = "scenario",
    label_column: str = "is_anomaly",
) -> np.ndarray:
    """Boolean mask of the records to move from an evaluation set into the kNN reference set:
    a random ``fraction`` of the anomalous records of each scenario in ``scenarios``.

    Those records are removed from the evaluation set, so a contaminated reference never holds
    the very record being scored, only other events of the same campaign (as happens when the
    "clean" baseline period already contained an ongoing attack).
    """
    labels = labels_df[[label_column, scenario_column]].set_axis(["is_anomaly", "scenario"], axis=1)
    return scenario_share_mask(labels, scenarios, fraction, seed)


def contamination_effect(
    detector: OCSFAnomalyDetector,
    reference_events: Any,
    query_events: Any,
    query_labels: pd.DataFrame,
    scenarios: Sequence[str],
    *,
    fraction: float = 0.5,
    alert_budget: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-scenario metrics of the detector with a clean reference set and with one that also
    holds ``fraction`` of the anomalies of ``scenarios`` (see :func:`contamination_mask`), both
    evaluated on the same remaining records. Column ``reference`` says which is which."""
    query_frame = as_flat_frame(query_events).reset_index(drop=True)
    reference_frame = as_flat_frame(reference_events)
    moved = contamination_mask(query_labels, scenarios, fraction, seed=seed)
    kept_frame, kept_labels = query_frame[~moved], query_labels.reset_index(drop=True)[~moved]
    contaminated = pd.concat([reference_frame, query_frame[moved]], ignore_index=True)
    tables = []
    for name, reference in (("clean", reference_frame), ("contaminated", contaminated)):
        scores = detector.with_reference(reference).score(kept_frame)
        tables.append(per_scenario_metrics(kept_labels, scores, alert_budget).assign(reference=name))
    table = pd.concat(tables, ignore_index=True)
    return table[["reference", *[c for c in table.columns if c != "reference"]]]
