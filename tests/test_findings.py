"""Detection Findings (tabresnet_course.detection.findings): one OCSF 1.8.0 Detection Finding per
alert, every one valid for the package's validator (extended to class 2004), stable uids, the
triggering event and its explaining fields where the schema puts them; ``score --findings``."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import call

from tabresnet_course.detection.detector import train_ocsf_anomaly_detector
from tabresnet_course.detection.findings import (
    SEVERITY_BANDS,
    detection_findings,
    finding_uid,
    findings_jsonl,
    severity_ids,
)
from tabresnet_course.events.files import write_events
from tabresnet_course.ocsf.generator import generate_ocsf_events
from tabresnet_course.ocsf.schema import OCSF_VERSION, validate_event

TINY = {"d_model": 16, "num_blocks": 1, "num_epochs": 1, "batch_size": 128, "device": "cpu"}
CREATED = 1_772_800_000_000


@pytest.fixture(scope="module")
def detector():
    return train_ocsf_anomaly_detector(generate_ocsf_events(600, days=2, seed=0, anomalies=False), **TINY)


@pytest.fixture(scope="module")
def evaluation():
    return generate_ocsf_events(2000, days=1, seed=1)


@pytest.fixture(scope="module")
def scored(detector, evaluation):
    scores = detector.score(evaluation.frame)
    findings = detection_findings(evaluation.frame, scores, detector, alert_rate=0.01, created_time=CREATED)
    return scores, findings


def test_one_valid_finding_per_alert_in_input_order(detector, evaluation, scored):
    scores, findings = scored
    alerting = np.flatnonzero(detector.alerts(scores, alert_rate=0.01))
    assert len(findings) == len(alerting) > 0
    assert {i: p for i, f in enumerate(findings) if (p := validate_event(f))} == {}
    uids = evaluation.frame["metadata.uid"].to_numpy()[alerting]
    assert [f["finding_info"]["related_events"][0]["uid"] for f in findings] == list(uids)
    assert [f["evidences"][0]["uid"] for f in findings] == list(uids)
    assert len({f["finding_info"]["uid"] for f in findings}) == len(findings)


def test_classification_metadata_and_numbers(detector, evaluation, scored):
    scores, findings = scored
    finding = findings[0]
    expected = {
        "class_uid": 2004,
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "status_id": 1,
        "is_alert": True,
        "time": CREATED,
    }
    assert {key: finding[key] for key in expected} == expected
    assert finding["metadata"]["version"] == OCSF_VERSION == "1.8.0"
    assert finding["metadata"]["product"]["feature"]["uid"] == detector.checksum
    assert finding["finding_info"]["analytic"] == {
        "name": f"TabularResNet anomaly detector ({detector.config.scorer})",
        "uid": detector.checksum,
        "type_id": 4,
        "type": "Learning (ML/DL)",
        "algorithm": detector.config.scorer,
    }
    threshold = detector.alert_threshold(alert_rate=0.01)
    row = int(np.flatnonzero(evaluation.frame["metadata.uid"] == finding["evidences"][0]["uid"])[0])
    assert finding["unmapped"]["anomaly_score"] == scores[row] > threshold.score
    assert finding["unmapped"]["percentile"] == detector.percentiles(scores[row : row + 1])[0]
    assert finding["severity_id"] == severity_ids([finding["unmapped"]["percentile"]])[0]
    event_time = int(evaluation.frame["time"].iloc[row])
    assert finding["start_time"] == finding["end_time"] == finding["finding_info"]["first_seen_time"] == event_time


def test_evidence_explanation_and_observables(detector, evaluation, scored):
    _, findings = scored
    finding = findings[0]
    row = int(np.flatnonzero(evaluation.frame["metadata.uid"] == finding["evidences"][0]["uid"])[0])
    event = evaluation.to_events()[row]
    evidence = finding["evidences"][0]
    for key in ("src_endpoint", "dst_endpoint", "user", "actor", "device", "process", "file", "api"):
        assert evidence.get(key) == event.get(key) if key in event else key not in evidence
    explained = detector.explain(evaluation.frame.iloc[[row]], 3)
    analysis = finding["anomaly_analyses"][0]
    assert analysis["analysis_targets"] == [{"name": event["class_name"], "type": "OCSF event class"}]
    assert [a["observation_parameter"] for a in analysis["anomalies"]] == ["anomaly_score", *explained["field"]]
    assert [a["observations"][0]["value"] for a in analysis["anomalies"][1:]] == list(explained["value"])
    assert [b["observations"][0]["value"] for b in analysis["baselines"][1:]] == list(explained["typical"])
    assert all(field in finding["finding_info"]["desc"] for field in explained["field"])
    for observable in finding.get("observables", []):
        path = observable["name"].removeprefix("evidences[0].")
        value = evidence
        for part in path.split("."):
            value = value[part]
        assert str(value) == observable["value"] and observable["event_uid"] == event["metadata"]["uid"]


def test_uids_are_stable_and_depend_on_the_event_and_the_detector(detector, evaluation, scored):
    scores, findings = scored
    again = detection_findings(evaluation.frame, scores, detector, alert_rate=0.01, created_time=CREATED + 5)
    assert [f["finding_info"]["uid"] for f in again] == [f["finding_info"]["uid"] for f in findings]
    event = evaluation.to_events()[0]
    assert finding_uid("a" * 64, event) != finding_uid("b" * 64, event)
    anonymous = {key: value for key, value in event.items() if key != "metadata"}
    assert finding_uid("a" * 64, anonymous) == finding_uid("a" * 64, copy.deepcopy(anonymous))
    assert finding_uid("a" * 64, anonymous) != finding_uid("a" * 64, {**anonymous, "time": 1})


def test_events_without_uid_still_give_valid_findings(detector, evaluation):
    frame = evaluation.frame.drop(columns=["metadata.uid"])
    scores = detector.score(frame)
    findings = detection_findings(frame, scores, detector, alert_rate=0.01, created_time=CREATED)
    assert findings and all(validate_event(f) == [] for f in findings)
    assert all("related_events" not in f["finding_info"] and "uid" not in f["evidences"][0] for f in findings)


def test_severity_bands():
    assert [band for _, band in SEVERITY_BANDS] == [5, 4, 3, 2, 1]
    np.testing.assert_array_equal(
        severity_ids([100, 99.995, 99.99, 99.95, 99.9, 99.5, 99, 50, 0]), [5, 4, 4, 3, 3, 2, 2, 1, 1]
    )


def test_no_alert_no_finding_and_mismatched_scores(detector, evaluation):
    frame = evaluation.frame.iloc[:10]
    assert detection_findings(frame, np.zeros(10), detector) == []
    with pytest.raises(ValueError, match="one score per event"):
        detection_findings(frame, np.zeros(9), detector)


def test_jsonl_round_trip(scored):
    _, findings = scored
    lines = findings_jsonl(findings).splitlines()
    assert [json.loads(line) for line in lines] == findings


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda f: f["finding_info"].pop("uid"), "requires 'finding_info.uid'"),
        (lambda f: f["finding_info"].update(uid=7), "finding_info.uid must be a non-empty string"),
        (lambda f: f.update(is_alert="yes"), "is_alert must be a boolean"),
        (lambda f: f.update(status_id=7), "status_id 7 is not one of"),
        (lambda f: f.update(activity_id=4), "activity_id 4 is not defined for class 2004"),
        (lambda f: f.update(evidences=[{"name": "x"}]), "evidences[0] needs at least one of"),
        (lambda f: f.update(evidences={"data": {}}), "evidences must be an array of objects"),
        (lambda f: f.update(observables=[{"name": "x"}]), "observables[0].type_id must be an integer"),
        (lambda f: f["anomaly_analyses"][0].pop("anomalies"), "anomaly_analyses[0] requires 'anomalies'"),
        (
            lambda f: f["anomaly_analyses"][0]["anomalies"][0]["observations"][0].update(value=1.5),
            "anomaly_analyses[0].anomalies[0].observations[0].value must be a string",
        ),
        (
            lambda f: f["anomaly_analyses"][0]["baselines"][0].pop("observations"),
            "anomaly_analyses[0].baselines[0] requires 'observations'",
        ),
        (lambda f: f["finding_info"].update(created_time="now"), "finding_info.created_time must be an integer"),
    ],
)
def test_the_validator_catches_broken_findings(scored, change, problem):
    finding = copy.deepcopy(scored[1][0])
    change(finding)
    assert any(problem in found for found in validate_event(finding)), validate_event(finding)


def without_times(finding: dict) -> dict:
    """A finding without its creation times (``time``, ``finding_info.created_time``)."""
    finding = copy.deepcopy(finding)
    del finding["time"], finding["finding_info"]["created_time"]
    return finding


def test_score_findings_from_the_command_line(detector, evaluation, tmp_path):
    detector.save(tmp_path / "detector")
    write_events(evaluation, tmp_path / "eval.jsonl")
    outputs = {}
    for size in (300, 100_000):  # findings are written chunk by chunk: the same either way
        out, found = f"s{size}.csv", f"f{size}.jsonl"
        result = call(
            "score", "--model", "detector", "--events", "eval.jsonl", "--out", out, "--findings", found,
            "--alert-rate", "0.01", "--chunk-size", size, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        findings = [json.loads(line) for line in (tmp_path / found).read_text().splitlines()]
        scores = pd.read_csv(tmp_path / out, dtype={"uid": str})
        assert len(findings) == int(scores["alert"].sum()) > 0
        assert [f["evidences"][0]["uid"] for f in findings] == scores.loc[scores["alert"], "uid"].tolist()
        assert all(validate_event(f) == [] for f in findings)
        record = json.loads((tmp_path / f"{out}.threshold.json").read_text())
        assert record["findings"] == found and record["alerts"] == len(findings)
        outputs[size] = [without_times(f) for f in findings]
    assert outputs[300] == outputs[100_000]
    again = call(
        "score", "--model", "detector", "--events", "eval.jsonl", "--out", "s300.csv", "--findings", "f300.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr
