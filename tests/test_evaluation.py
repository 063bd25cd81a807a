"""Tests for tabresnet_course.evaluation: metrics against hand-computed values, baselines."""

import math

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.detection.scorers import one_hot_features
from tabresnet_course.evaluation import (
    contamination_mask,
    detection_metrics,
    flag_probabilities,
    isolation_forest_scores,
    metric_pivot,
    per_scenario_metrics,
    raw_knn_scores,
)
from tabresnet_course.model import NUM_RESERVED_INDICES


def test_detection_metrics_match_hand_computed_values():
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    metrics = detection_metrics(labels, scores, alert_budget=0.25)
    # Pairs (anomaly, normal) ranked correctly: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); not (0.35 > 0.4).
    assert metrics["auroc"] == pytest.approx(3 / 4)
    # Ranking: 0.8 (hit, precision 1), 0.4 (miss), 0.35 (hit, precision 2/3).
    assert metrics["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    # One alert (25% of 4 records): the 0.8 record, one of two anomalies.
    assert metrics["recall_at_budget"] == pytest.approx(0.5)
    assert (metrics["n_anomalous"], metrics["n_normal"], metrics["note"]) == (2, 2, "")


def test_perfect_and_inverted_scores():
    labels = np.array([False, False, False, True])
    assert detection_metrics(labels, [0, 1, 2, 3], 0.25)["auroc"] == 1.0
    assert detection_metrics(labels, [3, 2, 1, 0], 0.25)["auroc"] == 0.0
    assert detection_metrics(labels, [3, 2, 1, 0], 0.25)["recall_at_budget"] == 0.0


def test_ties_at_the_cutoff_share_the_alerts():
    flags = flag_probabilities([1.0, 1.0, 0.0, 0.0], alert_budget=0.25)
    np.testing.assert_allclose(flags, [0.5, 0.5, 0.0, 0.0])
    metrics = detection_metrics([1, 0, 0, 0], [1.0, 1.0, 0.0, 0.0], alert_budget=0.25)
    assert metrics["recall_at_budget"] == pytest.approx(0.5)


@pytest.mark.parametrize("n, budget", [(1000, 0.01), (7, 0.5), (10, 0.0), (3, 1.0), (201, 0.013)])
def test_flag_probabilities_spend_exactly_the_budget(n, budget):
    scores = np.random.default_rng(0).integers(0, 5, size=n).astype(float)  # many ties
    flags = flag_probabilities(scores, budget)
    assert flags.sum() == pytest.approx(math.ceil(budget * n - 1e-9))
    assert ((flags >= 0) & (flags <= 1)).all()


@pytest.mark.parametrize("labels, only", [([0, 0, 0], "normal"), ([1, 1, 1], "anomalous")])
def test_single_class_slice_gives_nan_and_a_note(labels, only):
    metrics = detection_metrics(labels, [0.1, 0.2, 0.3])
    assert math.isnan(metrics["auroc"]) and math.isnan(metrics["average_precision"])
    assert only in metrics["note"]
    if only == "normal":
        assert math.isnan(metrics["recall_at_budget"])
    else:
        assert metrics["recall_at_budget"] == pytest.approx(1 / 3)


def test_bad_inputs_are_refused_with_a_message():
    with pytest.raises(ValueError, match="equal length"):
        detection_metrics([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN or infinite"):
        detection_metrics([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="0/1"):
        detection_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="alert_budget"):
        detection_metrics([0, 1], [0.1, 0.2], alert_budget=1.5)


def labels_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [f"e{i}" for i in range(8)],
            "is_anomaly": [False, False, False, False, True, True, True, True],
            "scenario": ["normal"] * 4 + ["scan", "scan", "exfil", "exfil"],
        }
    )


def test_per_scenario_metrics_compare_each_scenario_with_all_normals():
    labels = labels_frame()
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.8, 0.05, 0.25])
    table = per_scenario_metrics(labels, scores, alert_budget=0.25)
    assert list(table["scenario"]) == ["overall", "exfil", "scan"]
    rows = table.set_index("scenario")
    # scan: 0.95 and 0.8 against normals 0.1, 0.2, 0.3, 0.9 -> 4 + 3 of 8 pairs.
    assert rows.loc["scan", "auroc"] == pytest.approx(7 / 8)
    # exfil: 0.05 beats none, 0.25 beats 0.1 and 0.2 -> 2 of 8 pairs.
    assert rows.loc["exfil", "auroc"] == pytest.approx(2 / 8)
    assert rows.loc["overall", "auroc"] == pytest.approx(9 / 16)
    # The budget (2 alerts of 8) is spent on the whole split: 0.95 (scan) and 0.9 (normal).
    assert rows.loc["scan", "recall_at_budget"] == pytest.approx(0.5)
    assert rows.loc["exfil", "recall_at_budget"] == 0.0
    assert rows.loc["overall", "recall_at_budget"] == pytest.approx(0.25)
    assert list(rows["n_normal"]) == [4, 4, 4]
    assert list(rows["n_anomalous"]) == [4, 2, 2]


def test_per_scenario_metrics_on_a_split_without_anomalies():
    labels = labels_frame().iloc[:4]
    table = per_scenario_metrics(labels, [0.1, 0.2, 0.3, 0.4])
    assert list(table["scenario"]) == ["overall"]
    assert math.isnan(table.loc[0, "auroc"]) and "only normal" in table.loc[0, "note"]


def test_per_scenario_metrics_checks_alignment_and_columns():
    with pytest.raises(ValueError, match="8 rows but there are 3 scores"):
        per_scenario_metrics(labels_frame(), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no column 'scenario'"):
        per_scenario_metrics(labels_frame().drop(columns="scenario"), np.zeros(8))


def test_one_hot_features_make_a_differing_category_sqrt2_apart():
    numerical = np.array([[0.0], [0.0]], dtype=np.float32)
    categorical = np.array([[3, 4], [3, 5]])  # same first category, different second
    matrix = one_hot_features(numerical, categorical, cardinalities=[2, 3]).toarray()
    assert matrix.shape == (2, 1 + (2 + NUM_RESERVED_INDICES) + (3 + NUM_RESERVED_INDICES))
    assert np.linalg.norm(matrix[0] - matrix[1]) == pytest.approx(math.sqrt(2))


def test_raw_knn_and_isolation_forest_rank_an_outlier_first():
    rng = np.random.default_rng(0)
    reference = (rng.normal(size=(200, 3)).astype(np.float32), rng.integers(3, 6, size=(200, 2)))
    query_numerical = np.vstack([rng.normal(size=(20, 3)), [[8.0, 8.0, 8.0]]]).astype(np.float32)
    query = (query_numerical, rng.integers(3, 6, size=(21, 2)))
    knn = raw_knn_scores(reference, query, cardinalities=[3, 3], k=5)
    forest = isolation_forest_scores(reference, query, seed=0, n_estimators=50)
    assert knn.shape == forest.shape == (21,)
    assert knn.argmax() == 20 and forest.argmax() == 20
    np.testing.assert_array_equal(forest, isolation_forest_scores(reference, query, seed=0, n_estimators=50))


def test_metric_pivot_is_scenario_by_method():
    labels, scores = labels_frame(), np.linspace(0, 1, 8)
    table = pd.concat([per_scenario_metrics(labels, scores).assign(method=m) for m in ("a", "b")], ignore_index=True)
    pivot = metric_pivot(table, "auroc")
    assert list(pivot.index) == ["overall", "exfil", "scan"] and list(pivot.columns) == ["a", "b"]
    with pytest.raises(ValueError, match="metric must be one of"):
        metric_pivot(table, "accuracy")


def test_contamination_mask_moves_a_fraction_of_the_chosen_scenarios():
    labels = labels_frame()
    mask = contamination_mask(labels, ["scan"], fraction=0.5, seed=0)
    assert mask.sum() == 1 and labels.loc[mask, "scenario"].tolist() == ["scan"]
    np.testing.assert_array_equal(mask, contamination_mask(labels, ["scan"], fraction=0.5, seed=0))
    with pytest.raises(ValueError, match="brute_force"):
        contamination_mask(labels, ["brute_force"])


@pytest.fixture(scope="module")
def pipeline():
    from tabresnet_course.detection.detector import train_ocsf_anomaly_detector
    from tabresnet_course.ocsf.generator import generate_ocsf_events

    baseline = generate_ocsf_events(600, days=2, seed=3, anomalies=False)
    evaluation = generate_ocsf_events(2000, days=1, seed=4, anomalies=True)
    detector = train_ocsf_anomaly_detector(
        baseline, num_epochs=1, d_model=16, num_blocks=1, batch_size=128, device="cpu", seed=0
    )
    return detector, baseline, evaluation


def test_compare_detectors_gives_one_tidy_table(pipeline):
    from tabresnet_course.evaluation import compare_detectors

    detector, baseline, evaluation = pipeline
    table = compare_detectors(detector, baseline, evaluation, evaluation.labels, seed=0)
    methods = ["embedding_knn", "raw_knn", "isolation_forest", "untrained_knn"]
    assert list(dict.fromkeys(table["method"])) == methods
    scenarios = sorted(set(evaluation.labels.loc[evaluation.labels["is_anomaly"], "scenario"]))
    assert len(table) == len(methods) * (1 + len(scenarios))
    assert table[["auroc", "average_precision", "recall_at_budget"]].notna().all().all()
    assert ((table["auroc"] >= 0) & (table["auroc"] <= 1)).all()
    # The detector's own scores are the embedding method's scores.
    overall = table[(table["method"] == "embedding_knn") & (table["scenario"] == "overall")].iloc[0]
    expected = detection_metrics(evaluation.labels["is_anomaly"], detector.score(evaluation))
    assert overall["auroc"] == pytest.approx(expected["auroc"])
    with pytest.raises(ValueError, match="unknown methods"):
        compare_detectors(detector, baseline, evaluation, evaluation.labels, methods=["svm"])


def test_contamination_effect_hides_bursts_behind_their_neighbours(pipeline):
    from tabresnet_course.evaluation import contamination_effect

    detector, baseline, evaluation = pipeline
    table = contamination_effect(
        detector, baseline, evaluation, evaluation.labels, ["port_scan", "brute_force"], fraction=0.5
    )
    rows = table.set_index(["reference", "scenario"])
    assert set(table["reference"]) == {"clean", "contaminated"}
    for scenario in ("port_scan", "brute_force"):
        assert rows.loc[("contaminated", scenario), "auroc"] < rows.loc[("clean", scenario), "auroc"]
        # Half of the scenario moved into the reference set and out of the evaluation.
        assert rows.loc[("clean", scenario), "n_anomalous"] == rows.loc[("contaminated", scenario), "n_anomalous"]


def test_knn_profile_accuracy_recovers_separable_labels():
    from tabresnet_course.evaluation import knn_profile_accuracy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    separated = labels[:, None] * 10.0 + rng.standard_normal((200, 2))
    noise = rng.standard_normal((200, 2))
    assert knn_profile_accuracy(separated[:150], labels[:150], separated[150:], labels[150:]) == 1.0
    assert knn_profile_accuracy(noise[:150], labels[:150], noise[150:], labels[150:], n_neighbors=5) < 0.7
