"""Tests for FeatureSpec and OCSFFeaturizer (tabresnet_course.features.spec); flattening: test_flat.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import flatten_events
from tabresnet_course.features.spec import CategoricalFeature, FeatureSpec, NumericalFeature, OCSFFeaturizer
from tabresnet_course.features.transforms import (
    cat_port_bucket,
    cat_status_class,
    cat_subnet,
    cat_url_template,
    stable_bucket,
)
from tabresnet_course.ocsf.generator import generate_ocsf_events


@pytest.fixture(scope="module")
def generated():
    return generate_ocsf_events(3000, days=3, seed=8)


@pytest.fixture(scope="module")
def fitted(generated):
    return OCSFFeaturizer().fit(generated.frame)


# --- transforms -----------------------------------------------------------------------------


def test_url_template():
    paths = pd.Series(
        [
            "/api/v2/orders/123?x=1",
            "/pages/77/edit",
            "/attachments/00ab34cd9f12",
            "/api/v1/payments/3f2b1c4d-1a2b-4c3d-8e9f-0123456789ab",
            "/search",
            None,
            "/",
            "/v1/items/x#frag",
        ]
    )
    assert cat_url_template(paths).tolist() == [
        "/api/v2/orders/{id}",
        "/pages/{id}/edit",
        "/attachments/{id}",
        "/api/v1/payments/{id}",
        "/search",
        None,
        "/",
        "/v1/items/x",
    ]


def test_port_bucket_status_class_and_subnet():
    ports = pd.Series([443, 22, 8443, 1000, 30000, 55000, -1, 70000, "abc", None], dtype=object)
    assert cat_port_bucket(ports).tolist() == [
        "443",
        "22",
        "8443",
        "system",
        "registered",
        "ephemeral",
        None,
        None,
        None,
        None,
    ]
    codes = pd.array([200, 201, 304, 404, 503, 99, None], dtype="Int64")
    assert cat_status_class(pd.Series(codes)).tolist() == ["2xx", "2xx", "3xx", "4xx", "5xx", None, None]
    ips = pd.Series(["10.20.3.14", "192.0.2.7", "2001:db8::1", "not-an-ip", None], dtype=object)
    assert cat_subnet(ips).tolist() == ["10.20.3.0/24", "192.0.2.0/24", "2001:db8::/48", None, None]


def test_cyclical_time_is_utc():
    # 2026-03-02 is a Monday; 06:00 UTC -> hour_sin = 1, weekday 0 -> weekday_sin 0 / cos 1.
    t = 1772431200000
    frame = pd.DataFrame({"time": [t, t + 3 * 86_400_000 + 12 * 3_600_000]})  # Thursday 18:00
    spec = FeatureSpec(
        numerical=[NumericalFeature(n, "time", n) for n in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")]
    )
    out = OCSFFeaturizer(spec).fit_transform(frame)
    np.testing.assert_allclose(out.iloc[0].to_numpy(), [1.0, 0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(out.iloc[1, :2].to_numpy(), [-1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        out.iloc[1, 2:].to_numpy(), [math.sin(2 * math.pi * 3 / 7), math.cos(2 * math.pi * 3 / 7)]
    )


def test_cyclical_time_of_a_date_time_column_equals_epoch_milliseconds():
    t = np.array([1772431200000, 1772431200000 + 3 * 86_400_000 + 12 * 3_600_000 + 17])
    spec = FeatureSpec(numerical=[NumericalFeature(n, "time", n) for n in ("hour_sin", "hour_cos", "weekday_sin")])
    epoch = OCSFFeaturizer(spec).fit_transform(pd.DataFrame({"time": t}))
    for stamps in (
        pd.to_datetime(t, unit="ms", utc=True),
        pd.to_datetime(t, unit="ms"),
        pd.to_datetime(t, unit="ms", utc=True).tz_convert("America/New_York"),
    ):
        frame = pd.DataFrame({"time": list(stamps) + [pd.NaT]})
        out = OCSFFeaturizer(spec).fit_transform(frame)
        np.testing.assert_allclose(out.iloc[:2].to_numpy(), epoch.to_numpy(), atol=1e-12)
        assert out.iloc[2].isna().all()


def test_default_spec_reads_the_mapping_variants_of_producers():
    events = [
        {
            "class_uid": 6003,
            "http_request": {"method": "GET"},
            "service": {"name": "cart"},
            "actor": {"user": {"uid": "u-1"}},
        },
        {
            "class_uid": 6003,
            "http_request": {"http_method": "post", "url": {"url_string": "https://a.example/x/42?q"}},
            "api": {"service": {"name": "s3"}},
            "user": {"email_addr": "bob@example.org"},
        },
        {"class_uid": 3002, "dst_endpoint": {"svc_name": "ldap"}, "actor": {"user": {"name": "carol", "uid": "u-3"}}},
    ]
    out = OCSFFeaturizer().fit_transform(events)
    assert out["http_method"].tolist() == ["get", "post", None]
    assert out["service"].tolist() == ["cart", "s3", "ldap"]
    assert out["user"].tolist() == ["u-1", "bob@example.org", "carol"]
    assert out["url_path"].tolist() == [None, "https://a.example/x/{id}", None]


# --- the featuriser -------------------------------------------------------------------------


def test_transform_on_mixed_classes(generated, fitted):
    out = fitted.transform(generated.frame)
    assert list(out.columns) == fitted.numerical_columns + fitted.categorical_columns
    assert out.index.equals(generated.frame.index)
    assert all(out[c].dtype == np.float64 for c in fitted.numerical_columns)
    assert all(out[c].dtype == object for c in fitted.categorical_columns)
    for c in fitted.categorical_columns:
        assert all(v is None or isinstance(v, str) for v in out[c])
    is_http = (generated.frame["class_uid"] == 4002).to_numpy()
    assert out.loc[is_http, "latency"].notna().all() and out.loc[~is_http, "latency"].isna().all()
    np.testing.assert_array_equal(out["latency_missing"].to_numpy(), (~is_http).astype(float))
    assert set(out.loc[is_http, "http_status"]) <= {"2xx", "3xx", "4xx", "5xx"}
    assert set(out["class_uid"]) == {"1001", "1007", "3002", "4001", "4002", "6003"}
    assert sum(fitted.coercion_report_.values()) == 0
    assert not any(fitted.hashed_.values())
    finite = out[fitted.numerical_columns].to_numpy()
    assert np.all(np.isfinite(finite) | np.isnan(finite))


def test_transform_accepts_events_generated_and_read_results(generated, fitted):
    from_frame = fitted.transform(generated.frame.iloc[:50])
    from_events = fitted.transform(generated.to_events()[:50])
    pd.testing.assert_frame_equal(from_frame, from_events)
    pd.testing.assert_frame_equal(fitted.transform(generated), fitted.transform(generated.frame))
    with pytest.raises(ValueError, match="expected a flat DataFrame"):
        fitted.transform(42)


def test_unknown_class_and_missing_sub_objects(fitted):
    events = [
        {
            "time": 1772431200000,
            "class_uid": 5001,
            "activity_id": 1,
            "type_uid": 500101,
            "severity_id": 1,
            "device": {"hostname": "h1", "os": {"name": "Linux"}},
        },
        {
            "time": 1772431200000,
            "class_uid": 4002,
            "activity_id": 3,
            "type_uid": 400203,
            "http_request": {"http_method": "GET"},
        },  # no http_response at all
    ]
    out = fitted.transform(flatten_events(events))
    assert out.loc[0, "class_uid"] == "5001" and out.loc[0, "type_uid"] == "500101"
    assert np.isnan(out.loc[1, "latency"]) and out.loc[1, "latency_missing"] == 1.0
    assert out.loc[1, "http_method"] == "get" and out.loc[1, "http_status"] is None
    assert np.isfinite(out.loc[0, "hour_sin"])
    assert sum(fitted.coercion_report_.values()) == 0


def test_absent_columns_are_missing_not_errors():
    frame = pd.DataFrame({"class_uid": [4001, 4001], "time": [0, 1]})
    featurizer = OCSFFeaturizer().fit(frame)
    out = featurizer.transform(frame)
    assert out["bytes_in"].isna().all() and (out["bytes_in_missing"] == 1.0).all()
    assert out["user"].isna().all()
    assert "traffic.bytes_in" in featurizer.absent_sources_ and "class_uid" not in featurizer.absent_sources_


def test_unreadable_values_become_missing_and_are_counted(fitted):
    frame = pd.DataFrame(
        {
            "class_uid": pd.Series([4001, "oops", 4001], dtype=object),
            "time": [1772431200000, 1772431200000, 1772431200000],
            "traffic.bytes_out": pd.Series([1000, "lots", float("inf")], dtype=object),
            "dst_endpoint.port": pd.Series([443, "https", 99999], dtype=object),
            "src_endpoint.ip": ["10.0.0.1", "nope", None],
            "is_mfa": pd.Series([True, "maybe", None], dtype=object),
        }
    )
    out = fitted.transform(frame)
    report = fitted.coercion_report_
    assert report["bytes_out"] == 2 and out["bytes_out"].isna().tolist() == [False, True, True]
    assert report["dst_port"] == 2 and out["dst_port"].tolist() == ["443", None, None]
    assert report["src_subnet"] == 1 and report["is_mfa"] == 1
    assert report["class_uid"] == 0 and out["class_uid"].tolist() == ["4001", "oops", "4001"]
    assert out["bytes_out_missing"].tolist() == [0.0, 1.0, 1.0]


def test_high_cardinality_is_hashed_with_a_stable_hash():
    frame = pd.DataFrame({"class_uid": [3002] * 400, "user.name": [f"user{i}" for i in range(400)]})
    spec = FeatureSpec(categorical=[CategoricalFeature("user", "user.name", max_categories=100, num_buckets=16)])
    featurizer = OCSFFeaturizer(spec).fit(frame)
    assert featurizer.hashed_ == {"user": True} and featurizer.cardinality_ == {"user": 400}
    out = featurizer.transform(frame)
    assert set(out["user"]) <= {f"#{b}" for b in range(16)}
    assert out.loc[7, "user"] == f"#{stable_bucket('user7', 16)}"
    # Another interpreter with another hash salt (the package is loaded without its
    # torch-importing __init__ to keep the test fast) puts every value in the same bucket.
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/tabresnet_course"
    code = (
        "import sys, types; pkg = types.ModuleType('tabresnet_course'); "
        f"pkg.__path__ = [{package_dir!r}]; sys.modules['tabresnet_course'] = pkg; "
        "from tabresnet_course.features.transforms import stable_bucket; "
        "print([stable_bucket(f'user{i}', 16) for i in range(20)], hash('user7'))"
    )
    seed = "4242" if os.environ.get("PYTHONHASHSEED") != "4242" else "4243"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    )
    buckets, salted = run.stdout.strip().rsplit(" ", 1)
    assert buckets == str([stable_bucket(f"user{i}", 16) for i in range(20)])
    assert int(salted) != hash("user7")  # the built-in hash did change between the processes


def test_coalesced_sources_take_the_first_present_value():
    frame = pd.DataFrame({"api.service.name": ["storage", None, None], "dst_endpoint.svc_name": ["x", "dns", None]})
    spec = FeatureSpec(categorical=[CategoricalFeature("service", ["api.service.name", "dst_endpoint.svc_name"])])
    assert OCSFFeaturizer(spec).fit_transform(frame)["service"].tolist() == ["storage", "dns", None]


def test_transform_before_fit_and_sklearn_conventions(generated):
    featurizer = OCSFFeaturizer()
    with pytest.raises(NotFittedError):
        featurizer.transform(generated.frame)
    assert featurizer.get_params() == {"spec": featurizer.spec}
    copy = clone(featurizer)
    assert copy.spec.to_dict() == featurizer.spec.to_dict() and not hasattr(copy, "hashed_")
    with pytest.raises(ValueError, match="unknown parameter"):
        featurizer.set_params(bogus=1)


def test_featurizer_dict_round_trip(generated, fitted):
    data = json.loads(json.dumps(fitted.to_dict()))
    again = OCSFFeaturizer.from_dict(data)
    pd.testing.assert_frame_equal(again.transform(generated.frame), fitted.transform(generated.frame))
    assert OCSFFeaturizer.from_dict(OCSFFeaturizer().to_dict()).to_dict()["fitted"] is None


# --- the specification ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_spec_file_round_trip(tmp_path, suffix):
    spec = FeatureSpec.default()
    path = spec.to_file(tmp_path / f"spec{suffix}")
    loaded = FeatureSpec.from_file(path)
    assert loaded == spec and loaded.to_dict() == spec.to_dict()
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown numerical transform 'sqrt'"):
        NumericalFeature("x", "traffic.bytes_in", "sqrt")
    with pytest.raises(ValueError, match="repeated: a"):
        FeatureSpec(numerical=[NumericalFeature("a", "x")], categorical=[CategoricalFeature("a", "y")])
    with pytest.raises(ValueError, match="unknown keys in feature specification: extra"):
        FeatureSpec.from_dict({"numerical": [], "extra": 1})
    with pytest.raises(ValueError, match="source must be"):
        CategoricalFeature("x", "")
    (tmp_path / "bad.yaml").write_text("numerical: [ {name: a, source: x, transform: nope} ]\n")
    with pytest.raises(InputError, match="bad.yaml: feature 'a': unknown numerical transform"):
        FeatureSpec.from_file(tmp_path / "bad.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="broken.json: not valid JSON"):
        FeatureSpec.from_file(tmp_path / "broken.json")
    with pytest.raises(InputError, match="missing.json: cannot read"):
        FeatureSpec.from_file(tmp_path / "missing.json")


# --- property test --------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "time",
        "class_uid",
        "traffic",
        "bytes_in",
        "bytes_out",
        "http_response",
        "latency",
        "code",
        "dst_endpoint",
        "port",
        "ip",
        "src_endpoint",
        "user",
        "name",
        "duration",
        "is_mfa",
        "http_request",
        "url",
        "path",
        "x",
        "a.b",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["10.0.0.1", "443", "/a/123", "2xx", "nan", "inf", "1e999"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=12,
)
_RECORDS = st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fit_records=_RECORDS, records=_RECORDS)
def test_arbitrary_records_never_crash_the_featurizer(fit_records, records):
    featurizer = OCSFFeaturizer(FeatureSpec.default())
    featurizer.fit(flatten_events(fit_records))
    frame = flatten_events(records)
    assert len(frame) == len(records)
    out = featurizer.transform(frame)
    assert len(out) == len(records)
    numbers = out[featurizer.numerical_columns].to_numpy(dtype=np.float64)
    assert np.all(np.isfinite(numbers) | np.isnan(numbers))
    for column in featurizer.categorical_columns:
        assert all(v is None or isinstance(v, str) for v in out[column])
    assert all(isinstance(v, int) and v >= 0 for v in featurizer.coercion_report_.values())
