"""Tests for the flat table: flattening, nesting back, as_flat_frame (tabresnet_course.events.flat)."""

from __future__ import annotations

import gc
import json

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.events.files import read_events, write_events
from tabresnet_course.events.flat import (
    as_flat_frame,
    check_records,
    flatten_event,
    flatten_events,
    frame_to_events,
    gc_paused,
    nest_columns,
)
from tabresnet_course.ocsf.generator import generate_ocsf_events


@pytest.fixture(scope="module")
def generated():
    return generate_ocsf_events(3000, days=3, seed=8)


@pytest.fixture(scope="module")
def events(generated):
    return generated.to_events()


# --- nested events -> flat table ------------------------------------------------------------


def test_flatten_event_walks_objects_and_encodes_lists():
    event = {"a": 1, "b": {"c": {"d": "x"}, "e": None}, "tags": ["p", 2], "empty": {}, "t": (1, 2)}
    assert flatten_event(event) == {"a": 1, "b.c.d": "x", "b.e": None, "tags": '["p",2]', "t": "[1,2]"}
    assert flatten_event({"a": {"b": 1}}, sep="/") == {"a/b": 1}
    with pytest.raises(ValueError, match="event 1 is a list, not a dict"):
        flatten_event([1])


def test_flatten_events_matches_flatten_event(events):
    sample = events[:300]
    frame = flatten_events(sample)
    assert len(frame) == 300
    for i in (0, 57, 299):
        flat = flatten_event(sample[i])
        row = {k: v for k, v in frame.iloc[i].items() if not pd.isna(v)}
        assert row.keys() == flat.keys()
        assert all(row[k] == flat[k] for k in flat)
    with pytest.raises(ValueError, match="event 2 is a list"):
        flatten_events([{"a": 1}, [1]])


def test_flatten_events_conventions():
    frame = flatten_events(
        [
            {"a": 1, "b": {"c": True}, "s": "x", "f": 1.5, "n": None},
            {"a": None, "b": {"c": None}, "s": None, "f": 2, "extra": {"deep": {"er": 3}}},
        ]
    )
    assert list(frame.columns) == ["a", "b.c", "s", "f", "n", "extra.deep.er"]
    assert frame["a"].dtype == "Int64" and frame["b.c"].dtype == "boolean"
    assert frame["s"].dtype == object and frame["s"].tolist() == ["x", None]
    assert frame["f"].dtype == np.float64 and frame["f"].tolist() == [1.5, 2.0]
    assert frame["n"].isna().all()
    assert frame["extra.deep.er"].tolist()[1] == 3
    assert flatten_events([]).shape == (0, 0)
    assert flatten_events(iter([{"a": 1}]))["a"].tolist() == [1]  # any iterable of dicts


def test_check_records_numbers_events_from_one():
    assert check_records(({"a": 1},)) == [{"a": 1}]
    with pytest.raises(ValueError, match="event 3 is a int, not a dict"):
        check_records([{}, {}, 5])


def test_gc_paused_restores_the_previous_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- flat table -> nested events ------------------------------------------------------------


def test_frame_to_events_skips_missing_values_and_keeps_python_types(generated):
    events = frame_to_events(generated.frame.iloc[:50])
    for event in events:
        text = json.dumps(event)  # plain Python types only
        assert "NaN" not in text and "null" not in text
    assert frame_to_events(generated.frame.iloc[:0]) == []


def test_flatten_then_nest_gives_the_events_back(generated, events):
    assert frame_to_events(flatten_events(events)) == events
    pd.testing.assert_frame_equal(flatten_events(events), flatten_events(frame_to_events(generated.frame)))
    assert frame_to_events(pd.DataFrame({"a": [np.nan, 1.5]})) == [{}, {"a": 1.5}]


def test_nest_columns_groups_paths_and_refuses_a_value_that_is_also_an_object():
    def as_dict(keys, columns):
        return dict(zip(keys, columns))

    keys, columns = nest_columns([("a",), ("b", "c"), ("b", "d", "e")], [1, 2, 3], as_dict)
    assert keys == ["a", "b"] and columns == [1, {"c": 2, "d": {"e": 3}}]
    with pytest.raises(ValueError, match="column 'b.d' is both a value and an object"):
        nest_columns([("b", "d"), ("b", "d", "e")], [1, 2], as_dict)
    with pytest.raises(ValueError, match="column 'a' is both a value and an object"):
        frame_to_events(pd.DataFrame({"a": [1], "a.b": [2]}))


def test_the_parquet_writer_nests_with_the_same_rule(tmp_path):
    frame = pd.DataFrame({"a": [1], "a.b": [2]})
    with pytest.raises(ValueError, match="column 'a' is both a value and an object.*use layout='flat'"):
        write_events(frame, tmp_path / "clash.parquet")
    path = write_events(frame, tmp_path / "clash.parquet", layout="flat")
    assert read_events(path).frame.columns.tolist() == ["a", "a.b"]


# --- anything -> flat table -----------------------------------------------------------------


def test_as_flat_frame_takes_frames_events_and_objects_with_a_frame(tmp_path, generated, events):
    assert as_flat_frame(generated.frame) is generated.frame
    assert as_flat_frame(generated) is generated.frame
    result = read_events(write_events(events[:20], tmp_path / "e.jsonl"))
    assert as_flat_frame(result) is result.frame
    pd.testing.assert_frame_equal(as_flat_frame(events[:20]), flatten_events(events[:20]))
    pd.testing.assert_frame_equal(as_flat_frame(tuple(events[:20])), flatten_events(events[:20]))
    with pytest.raises(ValueError, match="event 2 is a int, not a dict"):
        as_flat_frame([{"a": 1}, 2])


@pytest.mark.parametrize("bad", ["events.jsonl", 42, {"class_uid": 1}, (e for e in [{"a": 1}])])
def test_as_flat_frame_refuses_other_inputs(bad):
    with pytest.raises(ValueError, match="expected a flat DataFrame of dotted columns"):
        as_flat_frame(bad)
