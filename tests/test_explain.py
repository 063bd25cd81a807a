"""Tests for tabresnet_course.detection.explain and OCSFAnomalyDetector.explain: faithfulness on the
generator's attacks, determinism, odd input, the saved reference sample and ``score --explain``."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import call
from sklearn.exceptions import NotFittedError

from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.explain import (
    EXPLANATION_COLUMNS,
    MISSING_TEXT,
    explained_fields,
    explanation_columns,
)
from tabresnet_course.detection.saved import CONFIG_FILE, REFERENCE_SAMPLE_FILE
from tabresnet_course.events.files import write_events
from tabresnet_course.ocsf.generator import generate_baseline_and_evaluation
from tabresnet_course.ocsf.scenarios import CHANGED_FEATURES as CHANGED_FIELDS

"""The fields each scenario changes (tabresnet_course.ocsf.scenarios), as explanation names."""


@pytest.fixture(scope="module")
def periods():
    return generate_baseline_and_evaluation(num_baseline=3000, num_evaluation=10_000, seed=0)


@pytest.fixture(scope="module")
def detector(periods):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_ocsf_anomaly_detector(periods[0], num_epochs=3, seed=0, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def attacks(periods):
    evaluation = periods[1]
    rows = np.flatnonzero(evaluation.labels["scenario"].isin(list(CHANGED_FIELDS)).to_numpy())
    return evaluation.frame.iloc[rows].reset_index(drop=True), evaluation.labels["scenario"].to_numpy()[rows]


@pytest.fixture(scope="module")
def explained(detector, attacks):
    return detector.explain(attacks[0], top=3)


def test_the_changed_field_is_among_the_top_three_for_nine_in_ten_attack_events(explained, attacks):
    fields = explained.groupby("event")["field"].agg(set)
    for scenario, changed in CHANGED_FIELDS.items():
        events = np.flatnonzero(attacks[1] == scenario)
        hits = [bool(changed & fields.get(event, set())) for event in events]
        assert len(hits) >= 4 and np.mean(hits) >= 0.9, (scenario, np.mean(hits))


def test_the_table_is_tidy_ranked_and_shows_raw_values(explained, attacks):
    assert tuple(explained.columns) == EXPLANATION_COLUMNS
    assert explained.groupby("event")["rank"].agg(list).map(lambda r: r == list(range(1, len(r) + 1))).all()
    assert (explained["contribution"] > 0).all()
    assert (explained.groupby("event")["contribution"].diff().dropna() <= 0).all()
    exfiltration = explained[
        (explained["field"] == "bytes_out")
        & np.isin(explained["event"], np.flatnonzero(attacks[1] == "data_exfiltration"))
    ]
    raw = attacks[0]["traffic.bytes_out"].to_numpy()[exfiltration["event"].to_numpy()]
    assert exfiltration["value"].tolist() == [str(int(v)) for v in raw]  # the raw count, not log1p
    scan = explained[(explained["field"] == "dst_port")]
    ports = attacks[0]["dst_endpoint.port"].to_numpy()[scan["event"].to_numpy()]
    assert scan["value"].tolist() == [str(int(p)) for p in ports]  # the port, not its bucket
    assert not explained["value"].str.startswith("#").any()  # never a hashed bucket


def test_explanations_are_deterministic_and_survive_saving(detector, attacks, explained, tmp_path):
    frame = attacks[0].iloc[:60]
    pd.testing.assert_frame_equal(detector.explain(frame), explained[explained["event"] < 60].reset_index(drop=True))
    saved = detector.save(tmp_path / "detector")
    assert (saved / REFERENCE_SAMPLE_FILE).stat().st_size < 2_000_000
    pd.testing.assert_frame_equal(OCSFAnomalyDetector.load(saved).explain(frame), detector.explain(frame))


def test_missing_fields_unknown_categories_and_empty_input_do_not_crash(detector):
    odd = [
        {"time": 1_773_000_000_000, "class_uid": 4003, "query": {"hostname": "x.example"}},  # unknown class
        {"class_uid": 3002, "user": {"name": "nobody-ever-seen"}, "src_endpoint": {"ip": "not an ip"}},  # no time
        {"time": "yesterday", "traffic": {"bytes_out": "lots"}, "http_response": {"code": None}},
        {},
    ]
    table = detector.explain(odd, top=5)
    assert set(table["event"]) <= {0, 1, 2, 3} and {0, 1} <= set(table["event"])
    assert table["value"].map(type).eq(str).all() and table["typical"].map(type).eq(str).all()
    assert (table[table["field"] == "hour"]["value"] == MISSING_TEXT).all()
    first = table[table["event"] == 0]
    assert first["field"].iloc[0] in ("class_uid", "type_uid") and first["value"].iloc[0] in ("4003", MISSING_TEXT)
    assert detector.explain([], top=2).columns.tolist() == list(EXPLANATION_COLUMNS)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        detector.explain(odd, top=0)


def test_fields_group_indicators_and_cyclical_time(detector):
    fields = {f.name: f for f in explained_fields(detector.featurizer, detector.preprocessor)}
    assert fields["hour"].kind == "hour" and len(fields["hour"].numerical) == 2
    assert len(fields["bytes_out"].numerical) == 2  # the value and its missing indicator
    assert fields["dst_port"].kind == "category" and "hour_sin" not in fields
    columns = sum(len(f.numerical) + len(f.categorical) for f in fields.values())
    assert columns == len(detector.preprocessor.numerical_feature_names_) + len(detector.cardinalities)


def test_a_detector_saved_without_a_sample_loads_and_says_how_to_explain(detector, attacks, tmp_path):
    saved = detector.save(tmp_path / "old")
    config = json.loads((saved / CONFIG_FILE).read_text())
    del config["files"][REFERENCE_SAMPLE_FILE]
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    (saved / REFERENCE_SAMPLE_FILE).unlink()
    old = OCSFAnomalyDetector.load(saved)
    np.testing.assert_array_equal(old.score(attacks[0].iloc[:20]), detector.score(attacks[0].iloc[:20]))
    with pytest.raises(NotFittedError, match="with_reference"):
        old.explain(attacks[0].iloc[:5])
    assert len(old.with_reference(detector.reference_sample).explain(attacks[0].iloc[:5])) > 0


def test_wide_columns_hold_one_row_per_event(explained, attacks):
    wide = explanation_columns(explained, len(attacks[0]) + 2, top=4)
    assert len(wide) == len(attacks[0]) + 2
    assert wide.columns.tolist()[:5] == ["top_fields", "field_1", "value_1", "typical_1", "contribution_1"]
    first = explained[explained["event"] == 0]
    assert wide.loc[0, "top_fields"] == ";".join(first["field"])
    assert wide.loc[len(attacks[0]), "top_fields"] == "" and np.isnan(wide.loc[len(attacks[0]), "contribution_1"])


def test_score_explain_adds_columns_that_survive_pandas(detector, periods, tmp_path):
    events = periods[1].frame.iloc[1200:1500]
    write_events(events, tmp_path / "events.jsonl")
    detector.save(tmp_path / "detector")
    plain = call("score", "--model", "detector", "--events", "events.jsonl", "--out", "plain.csv", cwd=tmp_path)
    explained = call(
        "score",
        "--model",
        "detector",
        "--events",
        "events.jsonl",
        "--out",
        "explained.csv",
        "--explain",
        "3",
        cwd=tmp_path,
    )
    assert plain.returncode == 0 and explained.returncode == 0, plain.stderr + explained.stderr
    table = pd.read_csv(tmp_path / "explained.csv", dtype=str, keep_default_na=False)
    assert len(table) == len(events) == len((tmp_path / "explained.csv").read_text().splitlines()) - 1
    assert table.columns.tolist()[:6] == ["line", "uid", "score", "percentile", "alert", "top_fields"]
    assert table.columns.tolist()[-4:] == ["field_3", "value_3", "typical_3", "contribution_3"]
    plain_table = pd.read_csv(tmp_path / "plain.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(table[["line", "uid", "score", "percentile", "alert"]], plain_table)
    assert plain_table.columns.tolist() == ["line", "uid", "score", "percentile", "alert"]
    wanted = explanation_columns(detector.explain(events, 3), len(events), 3)
    assert table["top_fields"].tolist() == wanted["top_fields"].tolist()
    assert table["value_1"].tolist() == wanted["value_1"].tolist()
    np.testing.assert_allclose(pd.to_numeric(table["contribution_1"]), wanted["contribution_1"], rtol=1e-7)
