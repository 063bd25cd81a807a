"""Property-based tests (hypothesis) of the preprocessing chain on arbitrary input.

test_features.py already checks that arbitrary nested records never crash ``flatten_events`` and
``OCSFFeaturizer``. Here: ``TabularPreprocessor`` on arbitrary tables, and the whole chain
records -> flat table -> features -> tensors -> ``TabularResNet``, fitted on clean or dirty
records: nothing crashes, every tensor is finite with indices inside the embedding tables, and a
plain-JSON round trip of the fitted state gives identical transforms.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabresnet_course.detection.pipeline import fit_preprocessing
from tabresnet_course.events.flat import flatten_event, flatten_events
from tabresnet_course.features.spec import OCSFFeaturizer
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet
from tabresnet_course.ocsf.generator import generate_ocsf_events
from tabresnet_course.preprocess import TabularPreprocessor

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Cells of a raw table or values of a record: everything a log can hold, and worse.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**30, -(10**40), 2**63, -(2**63) - 1, 2**64, 10**400]),  # beyond int64, and float
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 3.5e38, -0.0]),
    st.text(max_size=8),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "12", "443", "10.0.0.1", "/a/123", "true"]),
)


def check_tensors(numerical: np.ndarray, categorical: np.ndarray, preprocessor: TabularPreprocessor, rows: int) -> None:
    """float32 finite numbers and int64 indices inside each column's table ``0 .. c + 2``."""
    assert numerical.dtype == np.float32 and numerical.shape == (rows, len(preprocessor.numerical_feature_names_))
    assert np.isfinite(numerical).all()
    if preprocessor.clip_value is not None:
        assert (np.abs(numerical) <= preprocessor.clip_value).all()
    assert categorical.dtype == np.int64 and categorical.shape == (rows, len(preprocessor.categorical_cols))
    assert (categorical >= 0).all()
    assert (categorical < np.array(preprocessor.cardinalities_, dtype=np.int64) + NUM_RESERVED_INDICES).all()


def same_arrays(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- TabularPreprocessor


@st.composite
def tables(draw):
    """Two tables with the same columns (to fit on, and to transform), the column lists and
    the preprocessor's options. Columns are object (mixed cells), float64 or nullable Int64."""
    num_numerical, num_categorical = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    if num_numerical + num_categorical == 0:
        num_categorical = 1
    names = [f"c{i}" for i in range(num_numerical + num_categorical)]

    def column(rows: int) -> pd.Series:
        kind = draw(st.sampled_from(["object", "float", "Int64"]))
        if kind == "float":
            values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=rows, max_size=rows))
            return pd.Series(values, dtype=np.float64)
        if kind == "Int64":
            values = draw(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=rows, max_size=rows))
            return pd.Series(values, dtype="Int64")
        return pd.Series(draw(st.lists(SCALARS, min_size=rows, max_size=rows)), dtype=object)

    def table(rows: int) -> pd.DataFrame:
        return pd.DataFrame({name: column(rows) for name in names})

    numerical, categorical = names[:num_numerical], names[num_numerical:]
    options = dict(
        scaler=draw(st.sampled_from(["standard", "robust"])),
        clip_value=draw(st.sampled_from([None, 10.0, 1.0])),
        min_category_count=draw(st.sampled_from([1, 2])),
        log1p_cols=draw(st.lists(st.sampled_from(numerical), unique=True)) if numerical else [],
        missing_indicators=draw(st.booleans()),
    )
    return table(draw(st.integers(1, 12))), table(draw(st.integers(1, 6))), numerical, categorical, options


@settings(max_examples=150, **SETTINGS)
@given(tables())
def test_preprocessor_on_arbitrary_tables(drawn):
    fit_frame, new_frame, numerical, categorical, options = drawn
    preprocessor = TabularPreprocessor(numerical, categorical, **options)
    try:
        preprocessor.fit(fit_frame)
    except ValueError as error:  # the one refusal: a categorical column with no usable category
        assert "has no category seen at least" in str(error), error
        return
    saved = json.dumps(preprocessor.to_dict(), allow_nan=False)  # what a detector's config.json holds
    restored = TabularPreprocessor.from_dict(json.loads(saved))
    assert restored.to_dict() == preprocessor.to_dict()
    for frame in (fit_frame, new_frame):
        arrays = preprocessor.transform(frame)
        check_tensors(*arrays, preprocessor, len(frame))
        indicators = arrays[0][:, len(numerical) :]
        assert set(np.unique(indicators)) <= {0.0, 1.0}
        assert same_arrays(restored.transform(frame), arrays)
        assert same_arrays(preprocessor.transform(frame), arrays)  # and again: no hidden state


# --------------------------------------------------------------------------- the whole chain

KEYS = st.sampled_from(
    [
        "class_uid",
        "type_uid",
        "time",
        "duration",
        "status_id",
        "severity_id",
        "traffic",
        "bytes_in",
        "bytes_out",
        "http_response",
        "code",
        "latency",
        "http_request",
        "http_method",
        "url",
        "path",
        "user",
        "name",
        "src_endpoint",
        "dst_endpoint",
        "ip",
        "port",
        "location",
        "country",
        "process",
        "parent_process",
        "is_mfa",
        "metadata",
        "uid",
        "x",
        "a.b",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def baseline() -> list[dict]:
    """Clean events of all six classes: every default categorical feature has a value."""
    events = generate_ocsf_events(120, days=1, seed=5, anomalies=False).to_events()
    assert {e["class_uid"] for e in events} == {1001, 1007, 3002, 4001, 4002, 6003}
    return events


@st.composite
def records(draw, baseline: list[dict]) -> list[dict]:
    """Arbitrary nested dicts, and baseline events with one attribute replaced by anything."""

    def mutated() -> dict:
        event = json.loads(json.dumps(draw(st.sampled_from(baseline))))
        path = draw(st.sampled_from(sorted(flatten_event(event)))).split(".")
        node = event
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(VALUES)
        return event

    count = draw(st.integers(1, 8))
    return [mutated() if draw(st.booleans()) else draw(st.dictionaries(KEYS, VALUES, max_size=6)) for _ in range(count)]


def encoder_for(preprocessor: TabularPreprocessor) -> TabularResNet:
    torch.manual_seed(0)
    return TabularResNet(
        len(preprocessor.numerical_feature_names_), preprocessor.cardinalities_, d_model=8, num_blocks=1
    ).eval()


def embeddings_are_finite(model: TabularResNet, numerical: np.ndarray, categorical: np.ndarray) -> None:
    with torch.no_grad():
        out = model(torch.from_numpy(numerical), torch.from_numpy(categorical), return_embedding=True)  # (N, 8)
    assert out.shape == (len(numerical), 8) and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def fitted(baseline):
    frame = flatten_events(baseline)
    featurizer, preprocessor, arrays = fit_preprocessing(frame)
    check_tensors(*arrays, preprocessor, len(frame))
    return featurizer, preprocessor, encoder_for(preprocessor)


def test_chain_on_arbitrary_records_scored_by_a_clean_fit(baseline, fitted):
    featurizer, preprocessor, model = fitted

    @settings(max_examples=80, **SETTINGS)
    @given(records(baseline))
    def check(new_records):
        features = featurizer.transform(flatten_events(new_records))
        arrays = preprocessor.transform(features)
        check_tensors(*arrays, preprocessor, len(new_records))
        embeddings_are_finite(model, *arrays)

    check()


def test_chain_fitted_on_dirty_records_round_trips_through_json(baseline):
    clean = baseline[:60]

    @settings(max_examples=30, **SETTINGS)
    @given(records(baseline), records(baseline))
    def check(dirty, new_records):
        featurizer, preprocessor, arrays = fit_preprocessing(flatten_events(clean + dirty))
        check_tensors(*arrays, preprocessor, len(clean) + len(dirty))
        featurizer_again = OCSFFeaturizer.from_dict(json.loads(json.dumps(featurizer.to_dict(), allow_nan=False)))
        preprocessor_again = TabularPreprocessor.from_dict(
            json.loads(json.dumps(preprocessor.to_dict(), allow_nan=False))
        )
        frame = flatten_events(new_records)
        features = featurizer.transform(frame)
        pd.testing.assert_frame_equal(featurizer_again.transform(frame), features)
        arrays = preprocessor.transform(features)
        assert same_arrays(preprocessor_again.transform(features), arrays)
        check_tensors(*arrays, preprocessor, len(new_records))
        embeddings_are_finite(encoder_for(preprocessor), *arrays)

    check()
