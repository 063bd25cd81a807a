"""Streaming ``score``: files read in chunks (events_io.EventChunks), scored in fixed blocks
(OCSFAnomalyDetector.score_chunks) and written chunk by chunk give byte for byte the output of
the in-memory path, with the same report of skipped records. The detector has the
``fusion_rates`` scorer, whose rate features depend on earlier events (the hardest case for
chunks): chunks carry them (rates.ChunkedRates), which is exact for time-ordered input, as the
generated files are."""

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_helpers import call, stderr_lines

from tabresnet_course.cli import score_table
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.errors import InputError
from tabresnet_course.events.files import EventChunks, read_events, write_events
from tabresnet_course.ocsf.generator import generate_ocsf_events

TINY = {
    "scorer": "fusion_rates",
    "d_model": 16,
    "num_blocks": 1,
    "num_epochs": 1,
    "batch_size": 128,
    "device": "cpu",
    "embedding_batch_size": 64,
}
CHUNK_SIZES = (7, 64, 100_000)  # smaller than, equal to and larger than a scoring block; the whole file


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A saved detector (scoring blocks of 64 rows), a JSON Lines file with bad lines and a
    Parquet file of several row groups with rows that lack class_uid."""
    work = tmp_path_factory.mktemp("streaming")
    detector = train_ocsf_anomaly_detector(generate_ocsf_events(400, days=2, seed=3, anomalies=False), **TINY)
    detector.save(work / "detector")
    events = generate_ocsf_events(300, days=1, seed=4)
    assert (np.diff(events.frame["time"].to_numpy()) >= 0).all()  # time-ordered, as byte identity needs
    write_events(events, work / "clean.jsonl")
    lines = (work / "clean.jsonl").read_bytes().split(b"\n")
    lines[2] = b'{"class_uid": 3002, "time": '  # truncated JSON
    lines[40] = b"[1, 2, 3]"  # not an object
    lines[41] = b""  # a blank line: not a record
    lines[77] = b'{"time": 5}'  # no class_uid
    lines[150] = b'{"class_uid": 3002, "x": "\xff"}'  # not UTF-8
    (work / "bad.jsonl").write_bytes(b"\n".join(lines))
    frame = events.frame.copy()
    frame.loc[[5, 130, 131], "class_uid"] = None
    table = pq.read_table(write_events(frame, work / "one_group.parquet"))
    pq.write_table(table, work / "groups.parquet", row_group_size=50)
    return work


def in_memory_csv(work, name: str) -> bytes:
    """The scores file as the in-memory path writes it: the whole file read, scored at once."""
    result = read_events(work / name)
    detector = OCSFAnomalyDetector.load(work / "detector")
    scores = detector.score(result.frame)
    buffer = io.StringIO()
    score_table(result, scores, detector, detector.alert_threshold()).to_csv(buffer, index=False, float_format="%.8g")
    return buffer.getvalue().encode("utf-8")


@pytest.mark.parametrize("name", ["bad.jsonl", "groups.parquet"])
def test_streaming_score_is_byte_identical_to_the_in_memory_path(work, name):
    assert pq.ParquetFile(work / "groups.parquet").num_row_groups == 6
    expected = in_memory_csv(work, name)
    warnings = []
    for size in CHUNK_SIZES:
        out = work / f"{name}.{size}.csv"
        result = call(
            "score", "--model", "detector", "--events", name, "--out", out.name, "--chunk-size", size, cwd=work
        )
        assert result.returncode == 0, result.stderr
        assert out.read_bytes() == expected, size
        warnings.append([line for line in stderr_lines(result.stderr) if "warning" in line])
    assert warnings[0] == warnings[1] == warnings[2]
    assert warnings[0] == [f"tabresnet-course: warning: {read_events(work / name).summary(5)}"]
    assert len(pd.read_csv(work / f"{name}.7.csv")) == (295 if name == "bad.jsonl" else 297)


def test_chunks_carry_the_file_line_numbers_and_the_whole_file_report(work):
    whole = read_events(work / "bad.jsonl")
    chunks = EventChunks(work / "bad.jsonl", chunk_size=10)
    parts = list(chunks)
    assert len(parts) == 30
    np.testing.assert_array_equal(np.concatenate([p.lines for p in parts]), whole.lines)
    assert [p.line for p in chunks.report.problems] == [p.line for p in whole.problems] == [3, 41, 78, 151]
    assert (chunks.report.num_read, chunks.report.num_records) == (whole.num_read, whole.num_records)
    assert chunks.report.summary() == whole.summary()
    uids = pd.concat([p.uids for p in parts], ignore_index=True)
    assert uids.tolist() == whole.uids.tolist()


def test_strict_names_the_line_in_a_later_chunk(work):
    with pytest.raises(InputError, match=r"bad.jsonl line 3: invalid JSON"):
        list(EventChunks(work / "bad.jsonl", chunk_size=2, strict=True))
    with pytest.raises(InputError, match=r"groups.parquet row 6: no class_uid"):
        list(EventChunks(work / "groups.parquet", chunk_size=4, strict=True))


def test_parquet_is_read_row_group_by_row_group(work):
    chunks = list(EventChunks(work / "groups.parquet", chunk_size=1000))
    assert [c.num_records for c in chunks] == [50] * 6
    assert [c.num_records for c in EventChunks(work / "groups.parquet", chunk_size=30)] == [30, 20] * 6
    assert [p.line for c in chunks for p in c.problems] == [6, 131, 132]


def test_json_arrays_are_parsed_whole_then_cut(work):
    path = write_events(read_events(work / "clean.jsonl"), work / "events.json")
    chunks = EventChunks(path, chunk_size=100)
    parts = list(chunks)
    assert [p.num_read for p in parts] == [100, 100, 100]
    assert parts[1].lines[0] == 101 and chunks.report.num_read == 300


def test_empty_and_missing_files_are_errors(work):
    (work / "blank.jsonl").write_text("\n  \n")
    with pytest.raises(InputError, match="file is empty"):
        list(EventChunks(work / "blank.jsonl", chunk_size=1))
    with pytest.raises(InputError, match="no such file"):
        EventChunks(work / "missing.jsonl")
    with pytest.raises(ValueError, match="chunk_size"):
        EventChunks(work / "bad.jsonl", chunk_size=0)


def test_no_readable_record_leaves_no_output(work):
    (work / "junk.jsonl").write_text("not json\n[1]\n")
    result = call(
        "score", "--model", "detector", "--events", "junk.jsonl", "--out", "junk.csv", "--chunk-size", 1, cwd=work
    )
    assert result.returncode == 2 and "no readable events; skipped 2" in result.stderr
    assert not (work / "junk.csv").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".junk.csv")]


def test_score_chunks_yields_each_chunk_with_its_scores(work):
    detector = OCSFAnomalyDetector.load(work / "detector")
    frame = read_events(work / "clean.jsonl").frame
    pieces = [frame.iloc[:0], frame.iloc[:70], frame.iloc[70:71], frame.iloc[71:]]
    scored = list(detector.score_chunks(pieces))
    assert [chunk is piece for (chunk, _), piece in zip(scored, pieces)] == [True] * 4
    assert [len(s) for _, s in scored] == [0, 70, 1, 229]
    np.testing.assert_array_equal(np.concatenate([s for _, s in scored]), detector.score(frame))
