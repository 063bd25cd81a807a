"""Tests for reading and writing events (tabresnet_course.events.files)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tabresnet_course.errors import InputError
from tabresnet_course.events import files as events_io
from tabresnet_course.events.files import ReadResult, read_events, write_events
from tabresnet_course.events.flat import flatten_events
from tabresnet_course.ocsf.generator import generate_ocsf_events


@pytest.fixture(scope="module")
def generated():
    return generate_ocsf_events(3000, days=2, seed=4)


@pytest.fixture(scope="module")
def events(generated):
    return generated.to_events()


@pytest.fixture(params=["arrow", "python"])
def reader_path(request, monkeypatch):
    """Run a test through Arrow's fast path and through the line-by-line Python path."""
    if request.param == "python":
        monkeypatch.setattr(events_io, "_arrow_json_table", lambda data: None)
    return request.param


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert sorted(actual.columns) == sorted(expected.columns)
    for column in expected.columns:
        assert actual[column].dtype == expected[column].dtype, column
        assert actual[column].equals(expected[column]), column


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events.jsonl", "events.ndjson", "events.json", "events.parquet", "flat.parquet"])
def test_round_trip_gives_the_generator_frame(tmp_path, generated, reader_path, name):
    layout = "flat" if name.startswith("flat") else "nested"
    path = write_events(generated, tmp_path / name, layout=layout)
    result = read_events(path)
    assert result.num_read == result.num_records == len(generated)
    assert result.problems == [] and result.summary().endswith("skipped 0")
    assert_same_frame(result.frame, generated.frame)
    np.testing.assert_array_equal(result.lines, np.arange(1, len(generated) + 1))
    assert result.uids.tolist() == generated.labels["uid"].tolist()


def test_arrow_and_python_paths_agree_column_for_column(tmp_path, generated, monkeypatch):
    path = write_events(generated, tmp_path / "e.jsonl")
    fast = read_events(path)
    monkeypatch.setattr(events_io, "_arrow_json_table", lambda data: None)
    slow = read_events(path)
    assert list(fast.frame.columns) == list(slow.frame.columns)
    assert_same_frame(slow.frame, fast.frame)


def test_written_jsonl_is_one_compact_event_per_line(tmp_path, events):
    path = write_events(events[:10], tmp_path / "e.jsonl")
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == events[:10]


def test_parquet_nested_as_pyarrow_writes_dicts(tmp_path, events):
    path = tmp_path / "from_pylist.parquet"
    pq.write_table(pa.Table.from_struct_array(pa.array(events[:500])), path)  # schema from all rows
    result = read_events(path)
    assert_same_frame(result.frame, flatten_events(events[:500]))
    assert result.unit == "row"


def test_parquet_with_dotted_column_names_and_missing_class(tmp_path):
    table = pa.table(
        {
            "time": [1, 2, 3],
            "class_uid": [4001, None, 4002],
            "src_endpoint.ip": ["10.0.0.1", "10.0.0.2", None],
            "http_response.code": [None, None, 200],
        }
    )
    pq.write_table(table, tmp_path / "dotted.parquet")
    result = read_events(tmp_path / "dotted.parquet")
    assert result.num_read == 2 and result.num_records == 3
    assert [(p.line, p.kind) for p in result.problems] == [(2, "no_class_uid")]
    assert result.summary() == "read 2 of 3 records from dotted.parquet; skipped 1 (row 2: no class_uid)"
    assert result.frame["src_endpoint.ip"].tolist() == ["10.0.0.1", None]
    assert result.frame["http_response.code"].dtype == "Int64"
    np.testing.assert_array_equal(result.lines, [1, 3])
    with pytest.raises(InputError, match="dotted.parquet row 2: no class_uid"):
        read_events(tmp_path / "dotted.parquet", strict=True)


# --- bad records ----------------------------------------------------------------------------


def _dirty_lines(events):
    lines = [json.dumps(e) for e in events[:8]]
    lines[2] = '{"class_uid": 4001, "time": '  # line 3: truncated
    lines[4] = "[1, 2, 3]"  # line 5: not an object
    lines[6] = '{"time": 1, "metadata": {"version": "1.8.0"}}'  # line 7: no class_uid
    lines.insert(7, "")  # line 8: blank, not a record
    return lines


def test_bad_lines_are_skipped_counted_and_located(tmp_path, events, reader_path):
    path = write_lines(tmp_path / "dirty.jsonl", _dirty_lines(events))
    result = read_events(path)
    assert result.num_records == 8 and result.num_read == 5 and result.num_skipped == 3
    assert [(p.line, p.kind) for p in result.problems] == [(3, "invalid_json"), (5, "not_object"), (7, "no_class_uid")]
    np.testing.assert_array_equal(result.lines, [1, 2, 4, 6, 9])
    assert result.frame["metadata.uid"].tolist() == [events[i]["metadata"]["uid"] for i in (0, 1, 3, 5, 7)]
    summary = result.summary()
    assert summary.startswith("read 5 of 8 records from dirty.jsonl; skipped 3 (line 3: invalid JSON (")
    assert "line 5: a JSON array, not an object" in summary and summary.endswith("line 7: no class_uid)")
    assert result.problem_counts == {"invalid_json": 1, "not_object": 1, "no_class_uid": 1}


def test_strict_mode_raises_at_the_first_bad_line(tmp_path, events):
    path = write_lines(tmp_path / "dirty.jsonl", _dirty_lines(events))
    with pytest.raises(InputError, match=r"dirty\.jsonl line 3: invalid JSON"):
        read_events(path, strict=True)
    good = write_events(events[:5], tmp_path / "good.jsonl")
    assert read_events(good, strict=True).num_read == 5


def test_summary_lists_a_few_problems_and_counts_the_rest(tmp_path, events):
    lines = [json.dumps(events[0])] + ["not json"] * 8 + ['"text"'] * 3
    result = read_events(write_lines(tmp_path / "many.jsonl", lines))
    assert result.num_skipped == 11
    summary = result.summary(max_listed=2)
    assert "line 2: invalid JSON" in summary and "line 4" not in summary
    assert "9 more" in summary and "8 invalid json" in summary and "3 not object" in summary


def test_non_object_values_of_every_kind(tmp_path):
    lines = ['{"class_uid": 4001}', "null", "3", '"x"', "true", "[]"]
    result = read_events(write_lines(tmp_path / "kinds.jsonl", lines))
    assert [p.message for p in result.problems] == [
        "a JSON null, not an object",
        "a JSON number, not an object",
        "a JSON string, not an object",
        "a JSON boolean, not an object",
        "a JSON array, not an object",
    ]


def test_invalid_utf8_line_is_a_problem(tmp_path, events):
    data = (
        json.dumps(events[0]).encode()
        + b"\n"
        + b'{"class_uid": 4001, "x": "\xff"}\n'
        + json.dumps(events[1]).encode()
        + b"\n"
    )
    (tmp_path / "bytes.jsonl").write_bytes(data)
    result = read_events(tmp_path / "bytes.jsonl")
    assert [(p.line, p.kind) for p in result.problems] == [(2, "invalid_utf8")]
    assert result.num_read == 2


def test_crlf_and_blank_lines(tmp_path, events):
    text = "\r\n".join(json.dumps(e) for e in events[:3]) + "\r\n\r\n"
    (tmp_path / "crlf.jsonl").write_bytes(text.encode())
    result = read_events(tmp_path / "crlf.jsonl")
    assert result.num_read == result.num_records == 3 and not result.problems


def test_json_array_with_bad_elements(tmp_path, events):
    path = tmp_path / "array.json"
    path.write_text(json.dumps([events[0], 5, {"time": 1}, events[1]]))
    result = read_events(path)
    assert result.unit == "element" and result.num_read == 2 and result.num_records == 4
    assert [p.describe(result.unit) for p in result.problems] == [
        "element 2: a JSON number, not an object",
        "element 3: no class_uid",
    ]
    with pytest.raises(InputError, match=r"array\.json element 2"):
        read_events(path, strict=True)
    path.write_text(json.dumps(events[0]))  # a single object is one event
    assert read_events(path).num_read == 1
    path.write_text("[\n" + json.dumps(events[0]) + ",\n{oops}\n]")
    with pytest.raises(InputError, match=r"array\.json line 3: invalid JSON"):
        read_events(path)
    path.write_text("42")
    with pytest.raises(InputError, match="expected a JSON array"):
        read_events(path)


# --- whole-file errors ----------------------------------------------------------------------


def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: no such file"):
        read_events(tmp_path / "nope.jsonl")
    for name, content in (("empty.jsonl", ""), ("blank.jsonl", "\n \n"), ("empty.json", "[]")):
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match=f"{name}: file is empty"):
            read_events(tmp_path / name)
    (tmp_path / "events.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="events.csv: unknown extension"):
        read_events(tmp_path / "events.csv")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(InputError, match="dir.jsonl: not a regular file"):
        read_events(tmp_path / "dir.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="bad.parquet: not a readable Parquet file"):
        read_events(tmp_path / "bad.parquet")
    assert issubclass(InputError, ValueError)


# --- values the fast path must not change ---------------------------------------------------


def test_mixed_types_timestamps_big_integers_and_lists(tmp_path, reader_path):
    records = [
        {
            "class_uid": 4001,
            "port": 443,
            "when": "2026-03-02T10:00:00Z",
            "big": 2**60 + 1,
            "tags": ["a", "b"],
            "nested": [{"k": 1}],
        },
        {"class_uid": 4001, "port": "https", "when": "2026-03-02T11:00:00Z", "big": 3, "tags": [], "nested": []},
    ]
    path = write_lines(tmp_path / "mixed.jsonl", [json.dumps(r) for r in records])
    frame = read_events(path).frame
    assert frame["port"].tolist() == [443, "https"] and frame["port"].dtype == object
    assert frame["when"].tolist() == ["2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z"]
    assert frame["big"].tolist() == [2**60 + 1, 3]
    assert frame["tags"].tolist() == ['["a","b"]', "[]"]
    assert frame["nested"].tolist() == ['[{"k":1}]', "[]"]


def test_clean_file_with_timestamps_stays_text(tmp_path, reader_path):
    lines = [
        json.dumps({"class_uid": 3002, "time_dt": f"2026-03-0{d}T10:00:00Z", "x": {"y": 1.5}}) for d in range(1, 4)
    ]
    frame = read_events(write_lines(tmp_path / "ts.jsonl", lines)).frame
    assert frame["time_dt"].tolist() == ["2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z", "2026-03-03T10:00:00Z"]
    assert frame["x.y"].dtype == np.float64


# --- writing --------------------------------------------------------------------------------


def test_write_refuses_to_overwrite_and_is_atomic(tmp_path, generated, events):
    path = write_events(events[:3], tmp_path / "out.jsonl")
    with pytest.raises(InputError, match="out.jsonl already exists"):
        write_events(events[:5], path)
    assert len(path.read_text().splitlines()) == 3
    write_events(generated.frame.iloc[:5], path, overwrite=True)
    assert len(path.read_text().splitlines()) == 5
    with pytest.raises(ValueError, match="event 2 cannot be written as JSON"):
        write_events([events[0], {"class_uid": 1, "x": float("nan")}], tmp_path / "nan.jsonl")
    assert not (tmp_path / "nan.jsonl").exists()
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl"]  # no temporary files left behind
    with pytest.raises(InputError, match="unknown extension"):
        write_events(events, tmp_path / "out.txt")
    with pytest.raises(ValueError, match="not a dict"):
        write_events([1, 2], tmp_path / "ints.jsonl")


def test_write_parquet_from_dicts_and_read_result(tmp_path, events):
    path = write_events(events[:100], tmp_path / "dicts.parquet")
    result = read_events(path)
    assert_same_frame(result.frame, flatten_events(events[:100]))
    again = write_events(result, tmp_path / "again.jsonl")
    assert [json.loads(line) for line in again.read_text().splitlines()] == events[:100]
    assert isinstance(result, ReadResult) and result.to_events() == events[:100]
