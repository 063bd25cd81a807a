"""Tests for the OCSF 1.8.0 generator and validator (tabresnet_course.ocsf.generator)."""

from __future__ import annotations

import copy
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.ocsf.classes import GENERATED_CLASSES
from tabresnet_course.ocsf.generator import DEFAULT_START, generate_baseline_and_evaluation, generate_ocsf_events
from tabresnet_course.ocsf.profiles import ENTERPRISE
from tabresnet_course.ocsf.scenarios import SCENARIOS, scenario_counts
from tabresnet_course.ocsf.schema import OCSF_VERSION, validate_event

NUM_EVENTS = 6000


@pytest.fixture(scope="module")
def evaluation():
    return generate_ocsf_events(NUM_EVENTS, days=3, seed=1)


@pytest.fixture(scope="module")
def evaluation_events(evaluation):
    return evaluation.to_events()


def _first_of_class(events, class_uid):
    return next(e for e in events if e["class_uid"] == class_uid)


def _leaf_keys(event, prefix=""):
    for key, value in event.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


# --- validity -------------------------------------------------------------------------------


def test_every_generated_event_is_valid(evaluation_events):
    assert {e["class_uid"] for e in evaluation_events} == set(GENERATED_CLASSES)
    problems = {i: validate_event(e) for i, e in enumerate(evaluation_events)}
    assert {i: p for i, p in problems.items() if p} == {}


@pytest.mark.parametrize("class_uid", GENERATED_CLASSES)
def test_each_class_has_its_identifiers_and_attributes(evaluation_events, class_uid):
    event = _first_of_class(evaluation_events, class_uid)
    assert event["category_uid"] == class_uid // 1000
    assert event["type_uid"] == class_uid * 100 + event["activity_id"]
    assert event["metadata"]["version"] == OCSF_VERSION == "1.8.0"
    assert event["metadata"]["product"]["vendor_name"]
    assert isinstance(event["time"], int)
    required = {
        3002: [
            "user.name",
            "src_endpoint.ip",
            "src_endpoint.location.country",
            "is_mfa",
            "logon_type_id",
            "auth_protocol_id",
            "duration",
        ],
        4001: [
            "src_endpoint.ip",
            "dst_endpoint.ip",
            "dst_endpoint.port",
            "dst_endpoint.svc_name",
            "traffic.bytes_in",
            "traffic.bytes_out",
        ],
        4002: [
            "http_request.http_method",
            "http_request.url.path",
            "http_request.url.hostname",
            "http_request.user_agent",
            "http_response.code",
            "http_response.latency",
        ],
        6003: ["api.operation", "api.service.name", "actor.user.name", "src_endpoint.ip"],
        1007: [
            "process.name",
            "process.pid",
            "process.cmd_line",
            "process.user.name",
            "process.parent_process.name",
            "device.hostname",
            "actor.user.name",
        ],
        1001: ["file.name", "file.path", "file.size", "device.hostname", "actor.user.name"],
    }[class_uid]
    assert set(required) <= set(_leaf_keys(event))


def test_integer_typed_attributes_are_ints(evaluation_events):
    for event in evaluation_events[:2000]:
        for path in (
            "http_response.latency",
            "http_response.code",
            "duration",
            "traffic.bytes_out",
            "dst_endpoint.port",
            "file.size",
            "process.pid",
        ):
            node = event
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                assert type(node) is int, (path, node)


def test_times_are_utc_epoch_ms_inside_the_period(evaluation):
    start_ms = int(DEFAULT_START.timestamp() * 1000)
    times = evaluation.frame["time"].to_numpy()
    assert times.min() >= start_ms and times.max() < start_ms + 3 * 86_400_000
    assert np.all(np.diff(times) >= 0)  # time-ordered


def test_diurnal_and_weekend_patterns():
    frame = generate_ocsf_events(20_000, days=7, seed=3, anomalies=False).frame
    days = (frame["time"].to_numpy() - int(DEFAULT_START.timestamp() * 1000)) // 86_400_000
    per_day = np.bincount(days, minlength=7)
    assert per_day[5:].max() < 0.5 * per_day[:5].min()  # DEFAULT_START is a Monday
    hours = (frame["time"].to_numpy() // 3_600_000) % 24
    per_hour = np.bincount(hours, minlength=24)
    assert per_hour.max() > 3 * per_hour.min()


# --- validator -------------------------------------------------------------------------------


def _break(event, path, value=None, delete=False):
    broken = copy.deepcopy(event)
    node = broken
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    if delete:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("class_uid", "path", "value", "delete", "expected"),
    [
        (4002, "type_uid", 400299, False, "type_uid"),
        (4002, "category_uid", 3, False, "category_uid"),
        (6003, "activity_id", 8, False, "activity_id 8"),
        (4001, "severity_id", 7, False, "severity_id 7"),
        (4001, "status_id", 3, False, "status_id 3"),
        (4001, "status", "Failure", False, "status"),
        (3002, "metadata.version", "1.1.0", False, "metadata.version"),
        (3002, "metadata", None, True, "metadata"),
        (3002, "time", None, True, "'time'"),
        (3002, "time", "2026-03-02T00:00:00Z", False, "time must be an integer"),
        (4002, "http_response.latency", 12.5, False, "http_response.latency must be an integer"),
        (4002, "http_response.code", None, True, "http_response.code"),
        (6003, "api.operation", None, True, "api.operation"),
        (3002, "user", None, True, "'user'"),
        (1001, "file", None, True, "'file'"),
        (1007, "process", None, True, "'process'"),
        (1007, "device", None, True, "'device'"),
        (1001, "class_name", "Process Activity", False, "class_name"),
        (1001, "metadata.product", None, True, "metadata.product"),
    ],
)
def test_validate_event_catches_broken_events(evaluation_events, class_uid, path, value, delete, expected):
    event = _first_of_class(evaluation_events, class_uid)
    assert validate_event(event) == []
    problems = validate_event(_break(event, path, value, delete))
    assert problems, path
    assert any(expected in p for p in problems), problems


def test_validate_event_on_non_objects_and_unknown_classes():
    assert validate_event([1, 2]) == ["event is a list, not an object"]
    assert "missing required attribute 'class_uid'" in validate_event({})
    unknown = {
        "time": 1,
        "class_uid": 5001,
        "category_uid": 5,
        "activity_id": 1,
        "type_uid": 500101,
        "severity_id": 1,
        "metadata": {"version": "1.8.0", "product": {"name": "x"}},
    }
    assert validate_event(unknown) == []
    assert validate_event({**unknown, "type_uid": 500102})


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_events():
    a = generate_ocsf_events(3000, days=2, seed=11)
    b = generate_ocsf_events(3000, days=2, seed=11)
    assert json.dumps(a.to_events()) == json.dumps(b.to_events())
    assert a.labels.equals(b.labels)


def test_default_profile_events_are_pinned():
    """The default ("enterprise") profile reproduces the events generated before profiles existed
    (checksums computed then): a committed study reproduces from them."""
    generated = generate_ocsf_events(3000, seed=1)
    old_labels = generated.labels[["uid", "is_anomaly", "scenario"]]
    assert int(pd.util.hash_pandas_object(generated.frame, index=True).sum()) == 1201678406106510289
    assert int(pd.util.hash_pandas_object(old_labels, index=True).sum()) == 4615602510443904506


def test_campaign_labels_group_each_scenario_into_its_campaigns(evaluation):
    labels = evaluation.labels
    assert labels.loc[~labels["is_anomaly"], "campaign"].isna().all()
    attacks = labels[labels["is_anomaly"]]
    assert attacks["campaign"].notna().all()
    assert (attacks.groupby("campaign")["scenario"].nunique() == 1).all()
    assert (attacks["campaign"].str.split("/").str[0] == attacks["scenario"]).all()
    for scenario, events in attacks.groupby("scenario"):
        size = ENTERPRISE.scenario_plan[scenario].campaign_size
        assert events["campaign"].nunique() == -(-len(events) // size)  # full campaigns of the plan's size


def test_different_seeds_differ():
    a = generate_ocsf_events(3000, days=2, seed=11)
    b = generate_ocsf_events(3000, days=2, seed=12)
    assert json.dumps(a.to_events()) != json.dumps(b.to_events())
    assert not set(a.labels["uid"]) & set(b.labels["uid"])


# --- labels and scenarios -------------------------------------------------------------------


def test_scenarios_are_labelled_with_the_expected_counts(evaluation):
    counts = evaluation.scenario_counts()
    expected = scenario_counts(NUM_EVENTS)
    assert len(SCENARIOS) >= 6 and set(expected) == set(SCENARIOS)
    assert {k: counts[k] for k in SCENARIOS} == expected
    assert counts["normal"] == NUM_EVENTS - sum(expected.values())
    fraction = evaluation.labels["is_anomaly"].mean()
    assert 0.01 <= fraction <= 0.03
    assert (evaluation.labels["is_anomaly"] == (evaluation.labels["scenario"] != "normal")).all()


def test_label_fraction_is_one_to_three_percent_at_scale():
    labels = generate_ocsf_events(50_000, days=2, seed=2).labels
    assert 0.01 <= labels["is_anomaly"].mean() <= 0.03


def test_labels_key_every_event_and_never_appear_inside(evaluation, evaluation_events):
    uids = [e["metadata"]["uid"] for e in evaluation_events]
    assert len(set(uids)) == len(uids) == len(evaluation.labels)
    assert uids == evaluation.labels["uid"].tolist()
    forbidden = ("anomal", "scenario", "label")
    for event in evaluation_events:
        assert not any(word in key.lower() for key in _leaf_keys(event) for word in forbidden)
    assert not any(word in c.lower() for c in evaluation.frame.columns for word in forbidden)


def test_scenarios_look_like_their_description(evaluation):
    frame, labels = evaluation.frame, evaluation.labels
    scenario = labels["scenario"].to_numpy()

    exfil = frame[scenario == "data_exfiltration"]
    normal_out = frame.loc[scenario == "normal", "traffic.bytes_out"].dropna()
    assert exfil["traffic.bytes_out"].min() > normal_out.quantile(0.999)
    assert exfil["dst_endpoint.ip"].str.startswith("203.0.113.").all()

    scan = frame[scenario == "port_scan"]
    assert scan["src_endpoint.ip"].nunique() <= 2 and scan["dst_endpoint.port"].nunique() > 20
    assert scan["activity_id"].isin([1, 3, 5]).all()

    storm = frame[scenario == "latency_error_storm"]
    assert storm["http_response.code"].isin([500, 503, 504]).all()
    assert (storm["http_response.latency"] >= 2000).all()
    assert (storm["dst_endpoint.svc_name"] == "orders-api").all()

    brute = frame[scenario == "brute_force"]
    assert (brute["status_id"] == 2).all() and brute["src_endpoint.ip"].str.startswith("192.0.2.").all()

    privesc = frame[scenario == "privilege_escalation"]
    assert ((privesc["activity_id"] == 5) & (privesc["process.user.name"] == "root")).any()
    assert (privesc["process.parent_process.name"] == "nginx").any()
    assert (privesc["file.path"] == "/etc/shadow").any()

    offhours = frame[scenario == "off_hours_new_country"]
    logons = offhours[offhours["class_uid"] == 3002]
    assert len(logons) and (~logons["is_mfa"].astype(bool)).all()
    assert not logons["src_endpoint.location.country"].isin(ENTERPRISE.countries).any()
    assert (offhours.loc[offhours["class_uid"] == 6003, "activity_id"] == 2).all()

    drift = frame[scenario == "latency_drift"]
    search = frame[(scenario == "normal") & (frame["dst_endpoint.svc_name"] == "search")]
    assert drift["http_response.latency"].median() > 1.4 * search["http_response.latency"].median()


def test_baseline_has_no_anomalies_and_evaluation_comes_later():
    baseline, evaluation = generate_baseline_and_evaluation(3000, 3000, baseline_days=2, evaluation_days=1, seed=5)
    assert not baseline.labels["is_anomaly"].any()
    assert set(baseline.labels["scenario"]) == {"normal"}
    assert evaluation.labels["is_anomaly"].any()
    assert evaluation.frame["time"].min() >= baseline.start.timestamp() * 1000 + 2 * 86_400_000
    assert baseline.seed != evaluation.seed
    users = lambda g: set(g.frame["user.name"].dropna()) | set(g.frame["actor.user.name"].dropna())  # noqa: E731
    assert len(users(baseline) & users(evaluation)) > 50  # same organisation


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="timezone"):
        generate_ocsf_events(1000, start=dt.datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="num_events"):
        generate_ocsf_events(0)
    with pytest.raises(ValueError, match="too small"):
        generate_ocsf_events(50, anomalies=True)
    assert len(generate_ocsf_events(50, anomalies=False)) == 50


def test_validate_event_accepts_a_findings_class_with_its_own_status_enum():
    finding = {
        "time": 1772409600000,
        "class_uid": 2004,
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "severity_id": 4,
        "status_id": 1,
        "status": "New",
        "metadata": {"version": "1.8.0", "product": {"name": "Some EDR"}},
        "finding_info": {"uid": "f-1", "title": "Suspicious PowerShell"},
    }
    assert validate_event(finding) == []
    finding["severity_id"] = 42
    assert any("severity_id 42" in problem for problem in validate_event(finding))
