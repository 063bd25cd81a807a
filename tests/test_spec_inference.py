"""Tests for specification inference (tabresnet_course.features.inference), the ``spec`` command and
``train`` without ``--spec``, on OCSF exports of shapes the package's generator does not produce
(tests/foreign_shapes.py)."""

from __future__ import annotations

import json

import foreign_shapes as shapes
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from cli_helpers import TINY_TRAIN, assert_error, call, stderr_lines

from tabresnet_course.features.inference import (
    REPORT_COLUMNS,
    feature_report,
    infer_feature_spec,
    profile_columns,
)
from tabresnet_course.features.spec import FeatureSpec

NEVER = shapes.IDENTIFIERS | {"message", "time_dt", "start_time", "end_time", "metadata.logged_time"}
"""Columns of the shapes that no feature may read: identifiers, free text, timestamps other than time."""


def sources(spec: FeatureSpec) -> dict[str, list[str]]:
    """Feature name -> its source paths."""
    return {
        f.name: [f.source] if isinstance(f.source, str) else list(f.source) for f in spec.numerical + spec.categorical
    }


def present_source(inferred, name: str) -> str:
    """The source a feature of an inferred specification actually reads (the report's)."""
    return inferred.report.set_index("feature").loc[name, "source"]


def write_shape(shape: str, path_stem, seed: int, later: bool = False):
    """Write the events of ``shape`` (a..f); a ``later`` file lacks a column and has a new one."""
    if shape == "e":
        frame = shapes.flat_authentication(200 if later else 300, seed)
        if later:
            frame = frame.drop(columns=["user.name"]).assign(**{"unmapped.new_field": "x"})
        path = path_stem.with_suffix(".parquet")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        return path, len(frame)
    builder = {
        "a": shapes.web_shop_api,
        "b": shapes.cloud_api_calls,
        "c": shapes.dns_queries,
        "d": shapes.network_flows,
        "f": shapes.http_without_time,
    }[shape]
    events = builder(200 if later else 300, seed)
    if later:
        for i, event in enumerate(events):
            event.pop("src_endpoint" if i % 2 else "http_response", None)
            event["brand_new"] = {"field": i % 3}
    path = path_stem.with_suffix(".jsonl")
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path, len(events)


# --- end to end on every foreign shape ------------------------------------------------------


@pytest.mark.parametrize("shape", ["a", "b", "c", "d", "e", "f"])
def test_foreign_shape_trains_and_scores_without_a_spec(tmp_path, shape):
    baseline, _ = write_shape(shape, tmp_path / "baseline", seed=10)
    later, num_later = write_shape(shape, tmp_path / "later", seed=11, later=True)
    trained = call("train", "--events", baseline, "--out", tmp_path / "detector", *TINY_TRAIN)
    assert trained.returncode == 0, trained.stderr
    lines = stderr_lines(trained.stderr)
    assert not [line for line in lines if "error:" in line or "warning:" in line], lines
    dropped = [line for line in lines if line.startswith("tabresnet-course: note: built-in feature")]
    assert dropped and all(line.endswith("absent from the data") for line in dropped)  # one line each
    assert any(line.startswith("features (") for line in lines)

    config = json.loads((tmp_path / "detector" / "config.json").read_text())
    used = FeatureSpec.from_dict(config["feature_spec"])  # the saved detector records the spec it used
    read = [path for paths in sources(used).values() for path in paths]
    assert not set(read) & NEVER, set(read) & NEVER
    assert ("hour_sin" in used.numerical_columns) == (shape != "f")

    scored = call("score", "--model", tmp_path / "detector", "--events", later, "--out", tmp_path / "scores.csv")
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == num_later and np.isfinite(scores["score"]).all()


# --- what is inferred for shapes (a) and (b) ------------------------------------------------


def test_shape_a_picks_the_http_fields_user_and_service_and_no_identifier():
    inferred = infer_feature_spec(shapes.web_shop_api())
    expected = {
        "http_method": "http_request.method",
        "http_status": "http_response.code",
        "url_path": "http_request.url.path",
        "latency": "http_response.latency",
        "duration": "duration",
        "user": "actor.user.name",
        "service": "service.name",
    }
    for name, source in expected.items():
        assert present_source(inferred, name) == source, name
    excluded = dict(zip(inferred.excluded["column"], inferred.excluded["reason"]))
    for column in ("metadata.uid", "unmapped.trace_id", "unmapped.span_id", "actor.session.uid"):
        assert "identifier" in excluded[column], (column, excluded[column])
    assert excluded["message"].startswith("free text")
    assert excluded["metadata.logged_time"].startswith("a timestamp")
    assert excluded["status"].startswith("caption of the enumeration status_id")
    assert "src_country" in inferred.dropped and "absent" in inferred.dropped["src_country"]
    assert present_source(inferred, "unmapped_k8s_pod") == "unmapped.k8s_pod"  # vendor fields are used


def test_shape_b_cloud_calls_use_the_actor_uid_service_and_region():
    inferred = infer_feature_spec(shapes.cloud_api_calls())
    for name, source in {
        "user": "actor.user.uid",
        "service": "api.service.name",
        "api_operation": "api.operation",
        "src_subnet": "src_endpoint.ip",
        "cloud_region": "cloud.region",
    }.items():
        assert present_source(inferred, name) == source, name
    excluded = set(inferred.excluded["column"])
    assert {"metadata.uid", "metadata.correlation_uid", "api.request.uid", "unmapped.eventID"} <= excluded
    report = inferred.report.set_index("feature")
    assert report.loc["unmapped_readonly", "transform"] == "bool"
    assert report.loc["cloud_region", "origin"] == "inferred" and report.loc["user", "origin"] == "built-in"


# --- the rules, column by column ------------------------------------------------------------


@pytest.fixture(scope="module")
def crafted():
    """A flat table with one column per rule, and its inferred specification."""
    rng = np.random.default_rng(0)
    n = 200
    uuids = [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        for h in ("".join(rng.choice(list("0123456789abcdef"), 32)) for _ in range(n))
    ]
    frame = pd.DataFrame(
        {
            "time": 1_780_000_000_000 + np.arange(n) * 60_000,
            "class_uid": 6003,
            "unmapped.request_id": uuids,
            "actor.user.uid": [uuids[i % 10] for i in range(n)],  # an entity: uuids, but few and recurring
            "unmapped.correlation": ["".join(rng.choice(list("0123456789abcdef"), 32)) for _ in range(20)] * 10,
            "start_time": 1_780_000_000_000 + np.arange(n) * 60_000 - 5,
            "created_at": pd.Series(pd.date_range("2026-05-01", periods=n, freq="min")).dt.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "unmapped.response_time": rng.integers(1, 40, n),
            "unmapped.bytes_sent": pd.array(
                [int(v) if i % 4 else None for i, v in enumerate(rng.lognormal(8, 2, n))], dtype="Int64"
            ),
            "unmapped.temperature": rng.normal(20, 2, n),
            "unmapped.client_ip": [f"192.0.{i % 5}.{i % 50}" for i in range(n)],
            "unmapped.upstream_port": rng.choice([443, 8080, 50123], n),
            "unmapped.status_code": rng.choice([200, 404, 503], n),
            "unmapped.target": [f"/api/{('items', 'orders', 'users')[i % 3]}/{i}" for i in range(n)],
            "unmapped.flag": rng.random(n) < 0.5,
            "unmapped.rcode_id": rng.choice([0, 3], n),
            "unmapped.outcome_id": rng.choice([1, 2], n),
            "unmapped.outcome": rng.choice(["ok", "failed"], n),
            "unmapped.note": [f"user {i} did something with item {i * 7} at step {i % 13}" for i in range(n)],
            "unmapped.agent": [f"agent/{i % 60}" for i in range(n)],
            "unmapped.rare": ["x"] + [None] * (n - 1),
            "unmapped.empty": [None] * n,
            "unmapped.amount_text": [f"{v:.2f}" for v in rng.lognormal(3, 1, n)],
            "unmapped.mixed": [1 if i % 2 else "one" for i in range(n)],
            "unmapped.constant": "same",
        }
    )
    return frame, infer_feature_spec(frame, max_categories=20)


@pytest.mark.parametrize(
    "column, fragment",
    [
        ("unmapped.request_id", "identifier by its name"),
        ("unmapped.correlation", "look like generated identifiers"),
        ("start_time", "timestamp"),
        ("created_at", "timestamp"),
        ("unmapped.outcome", "caption of the enumeration unmapped.outcome_id"),
        ("unmapped.note", "free text"),
        ("unmapped.rare", "present in only"),
        ("unmapped.empty", "never present"),
        ("unmapped.mixed", "cannot read"),
        ("unmapped.constant", "constant"),
    ],
)
def test_columns_left_out_with_their_reason(crafted, column, fragment):
    _, inferred = crafted
    excluded = dict(zip(inferred.excluded["column"], inferred.excluded["reason"]))
    assert fragment in excluded[column], excluded.get(column)


@pytest.mark.parametrize(
    "column, kind, transform",
    [
        ("actor.user.uid", "categorical", "identity"),
        ("unmapped.response_time", "numerical", "log1p"),
        ("unmapped.bytes_sent", "numerical", "log1p"),
        ("unmapped.temperature", "numerical", "identity"),
        ("unmapped.client_ip", "categorical", "subnet"),
        ("unmapped.upstream_port", "categorical", "port_bucket"),
        ("unmapped.status_code", "categorical", "status_class"),
        ("unmapped.target", "categorical", "url_template"),
        ("unmapped.flag", "categorical", "bool"),
        ("unmapped.rcode_id", "categorical", "identity"),
        ("unmapped.amount_text", "numerical", "log1p"),
        ("unmapped.agent", "categorical", "identity"),
    ],
)
def test_columns_become_features_with_a_fitting_transform(crafted, column, kind, transform):
    _, inferred = crafted
    row = inferred.report[inferred.report["source"] == column]
    assert len(row) == 1, column
    assert (row["kind"].iloc[0], row["transform"].iloc[0]) == (kind, transform)


def test_hashing_missing_indicators_and_the_profile(crafted):
    frame, inferred = crafted
    report = inferred.report.set_index("source")
    assert report.loc["unmapped.agent", "hashed"] and report.loc["unmapped.agent", "distinct"] == 60
    assert not report.loc["unmapped.flag", "hashed"]
    bytes_feature = next(f for f in inferred.spec.numerical if f.source == "unmapped.bytes_sent")
    assert bytes_feature.missing_indicator and report.loc["unmapped.bytes_sent", "coverage"] == pytest.approx(0.75)
    profile = profile_columns(frame).set_index("column")
    assert profile.loc["unmapped.request_id", "distinct"] == 200 and profile.loc["unmapped.rare", "coverage"] == 1 / 200
    assert (
        profile.loc["unmapped.temperature", "type"] == "number" and abs(profile.loc["unmapped.temperature", "skew"]) < 1
    )
    assert profile.loc["unmapped.bytes_sent", "skew"] > 2
    assert set(inferred.columns["column"]) == set(frame.columns)


def test_no_usable_feature_is_the_one_error():
    frame = pd.DataFrame(
        {
            "metadata.uid": [f"id-{i}" for i in range(50)],
            "message": [f"a long line of text {i} here" for i in range(50)],
        }
    )
    with pytest.raises(ValueError, match="no usable feature"):
        infer_feature_spec(frame)


def test_feature_report_of_any_spec():
    events = shapes.network_flows(100)
    report = feature_report(FeatureSpec.default(), events)
    assert list(report.columns) == REPORT_COLUMNS
    assert len(report) == len(FeatureSpec.default().numerical) + len(FeatureSpec.default().categorical)
    rows = report.set_index("feature")
    assert rows.loc["bytes_in", "coverage"] == 1.0 and rows.loc["user", "coverage"] == 0.0
    assert rows.loc["user", "source"] == "(absent)" and rows.loc["dst_port", "transform"] == "port_bucket"


# --- the spec command and the round trip ----------------------------------------------------


def test_spec_command_writes_a_commented_spec_that_round_trips(tmp_path):
    events, _ = write_shape("a", tmp_path / "export", seed=3)
    inferred = infer_feature_spec(shapes.web_shop_api(300, 3))
    for name in ("spec.yaml", "spec.json"):
        result = call("spec", "--events", events, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert FeatureSpec.from_file(tmp_path / name) == inferred.spec
    assert "left out" in result.stdout and "message: free text" in result.stdout
    assert all(column in result.stdout.splitlines()[1] for column in REPORT_COLUMNS)
    text = (tmp_path / "spec.yaml").read_text()
    assert "# - unmapped.trace_id: an identifier" in text and "# inferred: text" in text
    assert "# - src_country: source src_endpoint.location.country absent" in text
    assert FeatureSpec.from_dict(yaml.safe_load(inferred.to_yaml())) == inferred.spec
    assert FeatureSpec.from_dict(json.loads(json.dumps(inferred.spec.to_dict()))) == inferred.spec

    assert_error(call("spec", "--events", events, "--out", tmp_path / "spec.yaml"), "spec.yaml", "--overwrite")
    assert_error(call("spec", "--events", events, "--out", tmp_path / "spec.txt"), "spec.txt", ".yaml")
    assert_error(call("spec", "--events", tmp_path / "missing.jsonl", "--out", tmp_path / "s.yaml"), "missing.jsonl")

    edited = text.replace("- name: unmapped_k8s_pod", "- name: pod")
    (tmp_path / "edited.yaml").write_text(edited)
    trained = call(
        "train", "--events", events, "--out", tmp_path / "detector", "--spec", tmp_path / "edited.yaml", *TINY_TRAIN
    )
    assert trained.returncode == 0, trained.stderr
    assert "note: built-in feature" not in trained.stderr and " pod " in trained.stderr  # the report, no drop notes
