"""Reliability of the command line on bad input, damaged artefacts and repeated runs (issue 7).

Every bad input either ends with status 2 and exactly one line ``tabresnet-course: error: ...``
that names the file, line or field (never a traceback), or is processed with the bad records
counted and located on stderr and one output row per good record. Most cases call the command
line in this process (``cli.main``, which is what ``python -m tabresnet_course`` runs); two run in
a real process. Nothing here repeats the cases of test_cli.py, test_events_io.py or
test_detector.py, which test the same promises one layer down.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from cli_helpers import TINY_TRAIN, assert_error, call, run_process, stderr_lines

from tabresnet_course.detection.detector import OCSFAnomalyDetector
from tabresnet_course.detection.saved import CONFIG_FILE, REFERENCE_FILE, WEIGHTS_FILE
from tabresnet_course.events import files as events_io
from tabresnet_course.events.files import MAX_NESTING, read_events
from tabresnet_course.ocsf.generator import generate_ocsf_events

# --------------------------------------------------------------------------- helpers


def assert_scored(
    result: subprocess.CompletedProcess, csv: Path, lines: list[int], skipped: list[int] = ()
) -> pd.DataFrame:
    """Status 0; one finite score per good record, in order; the skipped records counted and
    (the first five) located in one warning line."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(csv, dtype={"uid": str}, keep_default_na=False)
    assert scores["line"].tolist() == lines
    assert np.isfinite(scores["score"].to_numpy(dtype=float)).all()
    warnings = [line for line in stderr_lines(result.stderr) if "warning" in line]
    if skipped:
        assert len(warnings) == 1, result.stderr
        assert f"skipped {len(skipped)}" in warnings[0]
        for number in skipped[:5]:
            assert f"line {number}:" in warnings[0], (number, warnings[0])
    else:
        assert warnings == [], result.stderr
    return scores


def write_lines(path: Path, items) -> Path:
    """JSON Lines from events (dicts, written with NaN allowed) and raw text or bytes lines."""
    chunks = []
    for item in items:
        if isinstance(item, dict):
            item = json.dumps(item)
        chunks.append(item if isinstance(item, bytes) else item.encode("utf-8"))
    path.write_bytes(b"\n".join(chunks) + b"\n")
    return path


def changed(event: dict, path: str, value=None, delete: bool = False) -> dict:
    """A deep copy of ``event`` with the dotted ``path`` set to ``value`` (or deleted)."""
    event = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    node = event
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return event


def by_class(events: list[dict], class_uid: int) -> dict:
    return next(e for e in events if e["class_uid"] == class_uid)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def good():
    """Clean events to build test files from (all six classes)."""
    return generate_ocsf_events(60, days=1, seed=1, anomalies=False).to_events()


def dirty_baseline(good: list[dict]) -> list:
    """300 clean events plus absurd values, wrong types and two unreadable lines."""
    auth, http, net = by_class(good, 3002), by_class(good, 4002), by_class(good, 4001)
    odd = [
        changed(net, "traffic.bytes_out", 1e308),
        changed(net, "traffic.bytes_in", 10**30),
        changed(net, "traffic.bytes_out", "lots"),
        changed(auth, "user.name", 12345),
        changed(http, "http_response.latency", float("nan")),
        changed(auth, "duration", float("inf")),
        changed(http, "http_response.code", "OK"),
        changed(net, "dst_endpoint.port", 10**400),
        '{"class_uid": 4001, "time": ',
        "[1, 2, 3]",
    ]
    return generate_ocsf_events(300, days=2, seed=0, anomalies=False).to_events() + odd


@pytest.fixture(scope="module")
def work(tmp_path_factory, good):
    """A dirty baseline file and a tiny detector trained on it through the command line."""
    work = tmp_path_factory.mktemp("reliability")
    write_lines(work / "base.jsonl", dirty_baseline(good))
    write_lines(work / "clean.jsonl", dirty_baseline(good)[:300])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = call("train", "--events", work / "base.jsonl", "--out", work / "detector", *TINY_TRAIN)
    finally:
        torch.set_num_threads(threads)
    # Training on it works; the two unreadable lines are reported, not silently dropped.
    assert result.returncode == 0, result.stderr
    warning = [line for line in stderr_lines(result.stderr) if "warning" in line]
    assert len(warning) == 1 and "read 308 of 310 records" in warning[0], result.stderr
    assert "line 309: invalid JSON" in warning[0] and "line 310: a JSON array, not an object" in warning[0]
    return work


def score(work: Path, events: Path, *extra) -> tuple[subprocess.CompletedProcess, Path]:
    out = events.with_name(events.stem + "_scores.csv")
    out.unlink(missing_ok=True)
    return call("score", "--model", work / "detector", "--events", events, "--out", out, *extra), out


# --------------------------------------------------------------------------- records that are skipped


def test_unreadable_records_are_skipped_counted_and_located(work, good):
    lines = [
        good[0],  # 1
        "null",
        "42",
        '"text"',  # 2-4: JSON values that are not objects
        good[1],  # 5
        {"time": 1772413311676, "metadata": {"uid": "no-class"}},  # 6: no class_uid
        {"class_uid": {"id": 3002}, "time": 1},  # 7: class_uid is an object
        b'{"class_uid": 3002, "user": {"name": "\xff"}}',  # 8: not UTF-8
        "",  # 9: blank, not a record
        good[2],  # 10
        '{"class_uid": 3002, "time": ',  # 11: truncated JSON
        '{"class_uid": 3002} trailing',  # 12: extra data
        good[3],  # 13
    ]
    result, out = score(work, write_lines(work / "dirty.jsonl", lines))
    scores = assert_scored(result, out, [1, 5, 10, 13], skipped=[2, 3, 4, 6, 7, 8, 11, 12])
    warning = next(line for line in stderr_lines(result.stderr) if "warning" in line)
    assert "read 4 of 12 records from dirty.jsonl" in warning
    assert "3 not object" in warning and "2 no class uid" in warning and "1 invalid utf8" in warning
    assert scores["uid"].tolist() == [good[i]["metadata"]["uid"] for i in range(4)]


def nested(depth: int, open_: str = '{"a":', close: str = "}") -> str:
    """An event whose field ``z`` nests ``depth`` objects (or arrays): ``depth + 1`` levels in all."""
    return '{"class_uid": 3002, "z": ' + open_ * depth + "1" + close * depth + "}"


def test_records_nested_very_deeply_are_skipped_never_a_crash(work, good):
    depths = [50, MAX_NESTING - 1, MAX_NESTING, 300, 900, 990, 1000, 5000]  # 1000 and more: beyond json's limit
    lines = [good[0]] + [nested(d) for d in depths] + [nested(5000, "[", "]"), good[1]]
    result, out = score(work, write_lines(work / "deep.jsonl", lines))
    assert_scored(result, out, [1, 2, 3, 11], skipped=list(range(4, 11)))
    assert "line 4: nested more than 100 levels deep" in result.stderr
    assert "7 too deep" in result.stderr


@pytest.mark.parametrize("python_path", [False, True])
def test_the_nesting_limit_is_the_same_for_every_format_and_reader(tmp_path, good, monkeypatch, python_path):
    if python_path:  # the line-by-line reader, as for a file Arrow cannot take
        monkeypatch.setattr(events_io, "_arrow_json_table", lambda data: None)
    lines = [json.dumps(good[0]), nested(MAX_NESTING - 1), nested(MAX_NESTING), nested(150, "[", "]")]
    path = write_lines(tmp_path / "deep.jsonl", lines)
    result = read_events(path)
    assert result.lines.tolist() == [1, 2] and [(p.line, p.kind) for p in result.problems] == [
        (3, "too_deep"),
        (4, "too_deep"),
    ]
    assert "line 3: nested more than 100 levels deep" in result.summary()
    (tmp_path / "deep.json").write_text("[" + ",".join(lines) + "]")
    array = read_events(tmp_path / "deep.json")
    assert array.lines.tolist() == [1, 2] and [p.describe("element") for p in array.problems] == [
        "element 3: nested more than 100 levels deep",
        "element 4: nested more than 100 levels deep",
    ]
    from tabresnet_course.errors import InputError

    with pytest.raises(InputError, match="deep.jsonl line 3: nested more than 100 levels deep"):
        read_events(path, strict=True)


# --------------------------------------------------------------------------- records that are scored


def test_missing_time_class_fields_and_whole_sub_objects_are_scored(work, good):
    http, auth = by_class(good, 4002), by_class(good, 3002)
    lines = [
        changed(http, "time", delete=True),
        changed(http, "http_response", delete=True),
        changed(http, "http_request", delete=True),
        changed(auth, "metadata", delete=True),  # no uid either
        {k: v for k, v in auth.items() if not isinstance(v, dict)},  # every sub-object gone
        {"class_uid": 3002},
        changed(auth, "user", {}),  # an empty object
    ]
    result, out = score(work, write_lines(work / "holes.jsonl", lines))
    scores = assert_scored(result, out, list(range(1, 8)))
    assert scores["uid"].tolist()[3:6] == ["", "", ""]


def test_strings_where_numbers_belong_and_numbers_where_strings_belong(work, good):
    http, auth, net = by_class(good, 4002), by_class(good, 3002), by_class(good, 4001)
    lines = [
        changed(net, "traffic.bytes_out", "lots"),
        changed(net, "time", "yesterday"),
        changed(http, "http_response.code", "OK"),
        changed(net, "dst_endpoint.port", "https"),
        changed(auth, "class_uid", "oops"),
        changed(auth, "user.name", 12345),
        changed(net, "src_endpoint.ip", 10),
        changed(http, "http_request.http_method", 7),
        changed(auth, "is_mfa", "maybe"),
        changed(auth, "user.name", {"first": "eve"}),  # an object where a string belongs
        changed(net, "src_endpoint.ip", ["10.0.0.1"]),  # a list where a string belongs
        changed(auth, "user", "bob"),  # a string where an object belongs
        changed(net, "traffic", [1, 2]),  # a list where an object belongs
        changed(net, "traffic.bytes_out", True),
    ]
    result, out = score(work, write_lines(work / "types.jsonl", lines))
    assert_scored(result, out, list(range(1, len(lines) + 1)))


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_nan_infinity_and_absurdly_large_numbers_are_scored(work, good, suffix):
    net, auth = by_class(good, 4001), by_class(good, 3002)
    literal = json.dumps(changed(net, "traffic.bytes_out", 0)).replace('"bytes_out": 0', '"bytes_out": VALUE')
    lines = [literal.replace("VALUE", text) for text in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")] + [
        changed(net, "traffic.bytes_out", 1e308),
        changed(net, "traffic.bytes_in", -1e308),
        changed(net, "traffic.bytes_out", 10**30),
        changed(net, "traffic.bytes_out", -(10**40)),
        changed(net, "traffic.bytes_out", 2**64),
        changed(net, "traffic.bytes_out", 10**400),
        changed(net, "time", 10**30),
        changed(net, "time", 1e308),
        changed(net, "dst_endpoint.port", 2**70),
        changed(auth, "class_uid", 10**30),
        changed(auth, "user.name", 1e308),
        changed(auth, "duration", float("nan")),
    ]
    if suffix == ".jsonl":
        path = write_lines(work / "numbers.jsonl", lines)
    else:
        path = work / "numbers.json"
        path.write_text("[" + ",".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "]")
    result, out = score(work, path)
    assert_scored(result, out, list(range(1, len(lines) + 1)))


def test_unseen_categories_and_unknown_classes_are_scored_and_counted(work, good):
    auth, http, net = by_class(good, 3002), by_class(good, 4002), by_class(good, 4001)
    lines = [
        {
            "time": 1772431200000,
            "class_uid": 5001,
            "class_name": "Device Inventory Info",
            "activity_id": 2,
            "type_uid": 500102,
            "severity_id": 1,
            "device": {"hostname": "new-host", "os": {"name": "Plan 9"}},
        },
        changed(auth, "class_uid", 9999),
        changed(auth, "user.name", "mallory"),
        changed(auth, "src_endpoint.location.country", "ZZ"),
        changed(net, "dst_endpoint.port", 31337),
        changed(http, "http_request.http_method", "BREW"),
        changed(http, "http_request.url.path", "/never/seen/before"),
    ]
    path = write_lines(work / "unseen.jsonl", lines)
    result, out = score(work, path)
    assert_scored(result, out, list(range(1, len(lines) + 1)))
    detector = OCSFAnomalyDetector.load(work / "detector")
    detector.score(read_events(path).frame)
    unknown = detector.preprocessor.last_report_["unknown_categories"]
    assert unknown["class_uid"] == 2 and unknown["type_uid"] >= 1 and unknown["http_method"] == 1


# --------------------------------------------------------------------------- whole files that are refused


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("empty.jsonl", b"", ["empty.jsonl: file is empty"]),
        ("blank.jsonl", b"\n  \n\n", ["blank.jsonl: file is empty"]),
        ("empty.json", b"[]", ["empty.json: file is empty (an empty array)"]),
        ("zero.parquet", b"", ["zero.parquet: not a readable Parquet file"]),
        ("text.parquet", b"PAR1 not really PAR1", ["text.parquet: not a readable Parquet file"]),
        ("number.json", b"42", ["number.json: expected a JSON array of events, found a JSON number"]),
        ("broken.json", b'[{"class_uid": 1},\n{oops}]', ["broken.json line 2: invalid JSON"]),
        ("events.csv", b"class_uid\n1\n", ["events.csv: unknown extension '.csv'"]),
    ],
)
def test_empty_and_unusable_files(work, name, content, fragments):
    (work / name).write_bytes(content)
    result, out = score(work, work / name)
    assert_error(result, *fragments)
    assert not out.exists()


def test_parquet_without_rows_and_with_clashing_column_paths(work):
    pq.write_table(pa.table({"class_uid": pa.array([], pa.int64())}), work / "norows.parquet")
    assert_error(score(work, work / "norows.parquet")[0], "norows.parquet: file is empty (no rows)")
    table = pa.table(
        {"class_uid": [3002, 3002], "user": pa.array([{"name": "a"}, {"name": "b"}]), "user.name": ["c", "d"]}
    )
    pq.write_table(table, work / "clash.parquet")
    assert_error(score(work, work / "clash.parquet")[0], "clash.parquet: column 'user.name' appears twice")


@pytest.mark.parametrize("command", ["score", "train"])
def test_a_file_of_only_bad_records_is_one_error_line(work, command):
    path = write_lines(work / "all_bad.jsonl", ["{bad", "[1]", '{"time": 1}'])
    if command == "score":
        result = score(work, path)[0]
    else:
        result = call("train", "--events", path, "--out", work / "never", *TINY_TRAIN)
        assert not (work / "never").exists()
    assert_error(
        result,
        "all_bad.jsonl: no readable events; skipped 3 (line 1: invalid JSON",
        "line 2: a JSON array, not an object",
        "line 3: no class_uid)",
    )
    (work / "all_bad.json").write_text('[1, "x", null]')
    assert_error(score(work, work / "all_bad.json")[0], "all_bad.json: no readable events; skipped 3 (element 1:")


def test_directories_where_files_belong(work):
    (work / "adir.jsonl").mkdir(exist_ok=True)
    assert_error(score(work, work / "adir.jsonl")[0], "adir.jsonl: not a regular file")
    assert_error(
        call("score", "--model", work / "base.jsonl", "--events", work / "base.jsonl", "--out", work / "x.csv"),
        "base.jsonl: no such detector directory",
    )
    (work / "spec_dir.json").mkdir(exist_ok=True)
    assert_error(
        call("train", "--events", work / "base.jsonl", "--out", work / "d2", "--spec", work / "spec_dir.json"),
        "spec_dir.json: cannot read",
    )
    assert_error(
        call("evaluate", "--scores", work / "adir.jsonl", "--labels", work / "adir.jsonl"),
        "adir.jsonl: not a regular file",
    )


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a file with mode 000")
def test_an_unreadable_file(work):
    path = work / "secret.jsonl"
    shutil.copy(work / "base.jsonl", path)
    path.chmod(0)
    try:
        assert_error(score(work, path)[0], "secret.jsonl: cannot read (Permission denied)")
    finally:
        path.chmod(0o644)


def test_an_unreadable_file_simulated(work, monkeypatch):
    """The same case as test_an_unreadable_file, for runs as root (who can read mode 000): both
    the whole-file read (read_events) and the streaming one (EventChunks opens the file)."""
    path = shutil.copy(work / "base.jsonl", work / "locked.jsonl")
    real_read_bytes = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    def locked_open(file, *args, **kwargs):
        if Path(file).name == "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(events_io, "open", locked_open, raising=False)
    with pytest.raises(events_io.InputError, match="locked.jsonl: cannot read"):
        read_events(path)
    assert_error(score(work, Path(path))[0], "locked.jsonl: cannot read (Permission denied)")


# --------------------------------------------------------------------------- outputs are never replaced unasked


def test_outputs_are_never_replaced_unasked(work):
    (work / "out_dir.csv").mkdir(exist_ok=True)
    (work / "out_dir.csv" / "keep.txt").write_text("keep")
    for extra in ([], ["--overwrite"]):
        result = call(
            "score",
            "--model",
            work / "detector",
            "--events",
            work / "base.jsonl",
            "--out",
            work / "out_dir.csv",
            *extra,
        )
        assert_error(result, "out_dir.csv is a directory")
    assert (work / "out_dir.csv" / "keep.txt").read_text() == "keep"

    result = call(
        "generate",
        "--events",
        50,
        "--no-anomalies",
        "--out",
        work / "gen.jsonl",
        "--labels",
        work / "out_dir.csv",
        "--overwrite",
    )
    assert_error(result, "out_dir.csv is a directory")
    assert not (work / "gen.jsonl").exists(), "nothing is written when one of the outputs is refused"

    before = (work / "base.jsonl").read_bytes()
    result = call("score", "--model", work / "detector", "--events", work / "base.jsonl", "--out", work / "base.jsonl")
    assert_error(result, "base.jsonl already exists; pass --overwrite")
    result = call("train", "--events", work / "base.jsonl", "--out", work / "base.jsonl", "--overwrite", *TINY_TRAIN)
    assert_error(result, "base.jsonl exists and is not a directory")
    assert (work / "base.jsonl").read_bytes() == before
    result = call("train", "--events", work / "base.jsonl", "--out", work / "out_dir.csv", "--overwrite", *TINY_TRAIN)
    assert_error(result, "out_dir.csv is not empty and does not hold a saved detector")
    assert (work / "out_dir.csv" / "keep.txt").read_text() == "keep"
    assert not [p.name for p in work.iterdir() if p.name.endswith(".tmp")], "no temporary files left behind"


# --------------------------------------------------------------------------- feature specifications


@pytest.mark.parametrize(
    "name, text, fragments",
    [
        ("broken.json", "{", ["broken.json: not valid JSON"]),
        ("broken.yaml", "numerical: [ {name: a\n", ["broken.yaml: not valid YAML"]),
        ("list.json", "[1, 2]", ["list.json: a feature specification must be a mapping, got list"]),
        ("none.yaml", "", ["none.yaml: a feature specification must be a mapping"]),
        ("nothing.json", "{}", ["nothing.json: a feature specification needs at least one feature"]),
        (
            "sqrt.json",
            '{"numerical": [{"name": "a", "source": "time", "transform": "sqrt"}]}',
            ["sqrt.json: feature 'a': unknown numerical transform 'sqrt'; choose from"],
        ),
        (
            "upper.yaml",
            "categorical:\n  - {name: c, source: class_uid, transform: upper}\n",
            ["upper.yaml: feature 'c': unknown categorical transform 'upper'"],
        ),
        ("typo.json", '{"numerical": [{"name": "a", "sourc": "time"}]}', ["typo.json: numerical feature 'a'", "sourc"]),
        (
            "extra.json",
            '{"numerical": [], "categoricals": []}',
            ["extra.json: unknown keys in feature specification: categoricals"],
        ),
        (
            "buckets.json",
            '{"categorical": [{"name": "c", "source": "class_uid", "num_buckets": "ten"}]}',
            ["buckets.json: feature 'c': num_buckets must be an integer, got 'ten'"],
        ),
        (
            "maxcat.yaml",
            "categorical:\n  - {name: c, source: class_uid, max_categories: 2.5}\n",
            ["maxcat.yaml: feature 'c': max_categories must be an integer or null, got 2.5"],
        ),
        (
            "flag.json",
            '{"numerical": [{"name": "a", "source": "time", "missing_indicator": "yes"}]}',
            ["flag.json: feature 'a': missing_indicator must be true or false, got 'yes'"],
        ),
        (
            "name.json",
            '{"numerical": [{"name": 5, "source": "time"}]}',
            ["name.json: feature 5: name must be a string"],
        ),
        ("source.json", '{"numerical": [{"name": "a", "source": ""}]}', ["source.json: feature 'a': source must be"]),
        (
            "twice.json",
            '{"numerical": [{"name": "a", "source": "time"}], "categorical": [{"name": "a", "source": "x"}]}',
            ["twice.json: feature names must be unique; repeated: a"],
        ),
        (
            "version.json",
            '{"format_version": 2, "numerical": [{"name": "a", "source": "time"}]}',
            ["version.json: feature specification format_version 2 is not supported"],
        ),
        ("spec.txt", "{}", ["spec.txt: feature specification must be .json, .yaml or .yml"]),
        (
            "absent.json",
            '{"numerical": [{"name": "t", "source": "time"}], "categorical": [{"name": "c", "source": "no.such.field"}]}',
            [
                "categorical feature 'c' (source 'no.such.field') has no readable value in any of the 300 training events"
            ],
        ),
    ],
)
def test_bad_feature_specification_for_train(work, tmp_path, name, text, fragments):
    (tmp_path / name).write_text(text)
    result = call(
        "train",
        "--events",
        work / "clean.jsonl",
        "--out",
        tmp_path / "detector",
        "--spec",
        tmp_path / name,
        *TINY_TRAIN,
    )
    assert_error(result, *fragments)
    assert not (tmp_path / "detector").exists()


# --------------------------------------------------------------------------- damaged or foreign detectors


def set_checksum(config: dict, directory: Path, name: str) -> None:
    config["files"][name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()


def truncate(directory: Path, name: str, keep: int | None = None) -> None:
    data = (directory / name).read_bytes()
    (directory / name).write_bytes(data[: len(data) // 2 if keep is None else keep])


def drop_first_categorical(config: dict, directory: Path) -> None:
    featurizer = config["featurizer"]
    name = featurizer["spec"]["categorical"].pop(0)["name"]
    featurizer["fitted"]["hashed"].pop(name)
    featurizer["fitted"]["cardinality"].pop(name)


DAMAGE = {
    "newer format": (
        lambda c, d: c.update(format_version=4),
        ["config.json has format_version 4", "reads format_version 1 to 3"],
    ),
    "older format": (lambda c, d: c.update(format_version=0), ["config.json has format_version 0"]),
    "no format": (lambda c, d: c.pop("format_version"), ["config.json has format_version None"]),
    "another kind": (
        lambda c, d: c.update(kind="sklearn.Pipeline"),
        ["config.json does not describe a saved detector"],
    ),
    "weights truncated": (
        lambda c, d: truncate(d, WEIGHTS_FILE),
        ["weights.pt is corrupted: its SHA-256 does not match"],
    ),
    "weights truncated, checksum forged": (
        lambda c, d: (truncate(d, WEIGHTS_FILE), set_checksum(c, d, WEIGHTS_FILE)),
        ["weights.pt is not a weights-only state_dict"],
    ),
    "reference truncated": (lambda c, d: truncate(d, REFERENCE_FILE), ["reference_embeddings.npy is corrupted"]),
    "reference emptied, checksum forged": (
        lambda c, d: (truncate(d, REFERENCE_FILE, 0), set_checksum(c, d, REFERENCE_FILE)),
        ["reference_embeddings.npy is not a valid .npy array"],
    ),
    "reference cut, checksum forged": (
        lambda c, d: (truncate(d, REFERENCE_FILE, 200), set_checksum(c, d, REFERENCE_FILE)),
        ["reference_embeddings.npy is not a valid .npy array"],
    ),
    "another d_model": (
        lambda c, d: c["model_config"].update(d_model=32),
        ["weights.pt does not match the model in config.json"],
    ),
    "dropout not a number": (
        lambda c, d: c["model_config"].update(dropout="x"),
        ["config.json: cannot build the model of model_config"],
    ),
    "unknown model option": (
        lambda c, d: c["model_config"].update(width=3),
        ["config.json: cannot rebuild the detector", "width"],
    ),
    "spec lost a feature": (
        drop_first_categorical,
        [
            "config.json: the featurizer and the preprocessor disagree on the categorical features",
            "only in the preprocessor: ['class_uid']",
        ],
    ),
    "unknown transform": (
        lambda c, d: c["featurizer"]["spec"]["numerical"][0].update(transform="sqrt"),
        ["config.json: cannot rebuild the detector: feature 'bytes_in': unknown numerical transform 'sqrt'"],
    ),
    "preprocessor medians cut": (
        lambda c, d: c["preprocessor"]["fitted"].update(median_=[0.0]),
        ["config.json", "median_ must be", "finite numbers (one per numerical column), got [0.0]"],
    ),
    "preprocessor categories edited": (
        lambda c, d: c["preprocessor"]["fitted"]["categories_"].__setitem__(0, 5),
        ["config.json", "categories_ must hold"],
    ),
    "k beyond the reference set": (
        lambda c, d: c.update(k=100_000),
        ["config.json: k=100000 is more than the", "reference embeddings"],
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_incompatible_detector_is_refused(work, tmp_path, damage):
    change, fragments = DAMAGE[damage]
    directory = shutil.copytree(work / "detector", tmp_path / "detector")
    config = json.loads((directory / CONFIG_FILE).read_text())
    change(config, directory)
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    out = tmp_path / "scores.csv"
    result = call("score", "--model", directory, "--events", work / "clean.jsonl", "--out", out)
    assert_error(result, *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, fragment", [('{"kind": ', "config.json is not valid JSON"), (None, "config.json: no such file")]
)
def test_a_detector_with_a_broken_or_missing_config(work, tmp_path, text, fragment):
    directory = shutil.copytree(work / "detector", tmp_path / "detector")
    if text is None:
        (directory / CONFIG_FILE).unlink()
    else:
        (directory / CONFIG_FILE).write_text(text)
    result = call("score", "--model", directory, "--events", work / "clean.jsonl", "--out", tmp_path / "s.csv")
    assert_error(result, fragment)


def test_a_detector_from_another_package_version_with_the_same_format_loads(work, tmp_path):
    directory = shutil.copytree(work / "detector", tmp_path / "detector")
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["package_version"] = "99.0.0"
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    ours = call("score", "--model", work / "detector", "--events", work / "base.jsonl", "--out", tmp_path / "a.csv")
    theirs = call("score", "--model", directory, "--events", work / "base.jsonl", "--out", tmp_path / "b.csv")
    assert ours.returncode == theirs.returncode == 0, theirs.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize(
    "value, shown", [("inf", "'inf'"), ("nan", "'nan'"), ("-inf", "'-inf'"), ("high", "'high'"), ("1e999", "'inf'")]
)
def test_evaluate_names_a_score_that_is_not_a_finite_number(tmp_path, value, shown):
    (tmp_path / "labels.csv").write_text("uid,is_anomaly,scenario\na,false,normal\nb,true,port_scan\nc,false,normal\n")
    (tmp_path / "scores.csv").write_text(f"line,uid,score\n1,a,0.5\n2,b,{value}\n3,c,0.1\n")
    result = call("evaluate", "--scores", tmp_path / "scores.csv", "--labels", tmp_path / "labels.csv")
    assert_error(result, "scores.csv line 3: score must be a finite number, got " + shown)


# --------------------------------------------------------------------------- in a real process


def test_in_a_real_process_bad_records_are_reported_and_a_bad_file_is_one_line(work, good):
    path = write_lines(work / "process.jsonl", [good[0], "{oops", good[1], "7", changed(good[2], "time", "soon")])
    result = run_process("score", "--model", work / "detector", "--events", path, "--out", work / "process.csv")
    assert_scored(result, work / "process.csv", [1, 3, 5], skipped=[2, 4])
    write_lines(work / "process_bad.jsonl", ["{oops", "7"])
    result = run_process(
        "score", "--model", work / "detector", "--events", work / "process_bad.jsonl", "--out", work / "p.csv"
    )
    assert_error(result, "process_bad.jsonl: no readable events; skipped 2 (line 1: invalid JSON")


# --------------------------------------------------------------------------- determinism


def test_generate_writes_byte_identical_files_for_the_same_seed(tmp_path):
    for run in ("a", "b", "c"):
        seed = "7" if run != "c" else "8"
        for suffix in (".jsonl", ".parquet"):
            result = call(
                "generate",
                "--events",
                400,
                "--days",
                1,
                "--seed",
                seed,
                "--no-anomalies",
                "--out",
                tmp_path / f"{run}{suffix}",
                "--labels",
                tmp_path / f"{run}{suffix}.csv",
            )
            assert result.returncode == 0, result.stderr
    for name in ("{}.jsonl", "{}.parquet", "{}.jsonl.csv", "{}.parquet.csv"):
        a, b, c = ((tmp_path / name.format(run)).read_bytes() for run in "abc")
        assert a == b, name
        assert a != c, name


def test_the_same_seed_trains_the_same_detector_and_gives_identical_scores(work, tmp_path, one_thread):
    again = tmp_path / "again"
    result = call("train", "--events", work / "base.jsonl", "--out", again, *TINY_TRAIN)
    assert result.returncode == 0, result.stderr
    first, second = (OCSFAnomalyDetector.load(d) for d in (work / "detector", again))
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], tensor), name
    assert (work / "detector" / REFERENCE_FILE).read_bytes() == (again / REFERENCE_FILE).read_bytes()
    history = [dict(d.training["history"]) for d in (first, second)]
    for h in history:
        h.pop("epoch_time_s")
    assert history[0] == history[1]
    configs = [json.loads((d / CONFIG_FILE).read_text()) for d in (work / "detector", again)]
    for config in configs:
        config["training"]["history"].pop("epoch_time_s")
        config["files"].pop(WEIGHTS_FILE)  # torch.save's archive is not byte-stable; its tensors are (above)
    assert configs[0] == configs[1]
    for directory in (work / "detector", again):
        out = tmp_path / f"{directory.name}.csv"
        assert call("score", "--model", directory, "--events", work / "clean.jsonl", "--out", out).returncode == 0
    assert (tmp_path / "detector.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()


# --------------------------------------------------------------------------- training checkpoints


def test_a_checkpoint_from_another_configuration_is_refused(tmp_path, one_thread):
    from tabresnet_course.artifacts import atomic_save_torch, load_checkpoint, with_format_version
    from tabresnet_course.checkpoints import load_trained_model
    from tabresnet_course.data import TensorBatchLoader
    from tabresnet_course.errors import InputError
    from tabresnet_course.model import TabularResNet
    from tabresnet_course.training import Trainer, TrainingConfig

    rng = np.random.default_rng(0)
    numerical = rng.standard_normal((64, 3)).astype(np.float32)
    categorical = rng.integers(3, 7, (64, 2))

    def trainer(d_model: int = 16, run: str = "run") -> Trainer:
        torch.manual_seed(0)
        config = TrainingConfig(num_epochs=1, progress=False, device="cpu", checkpoint_dir=str(tmp_path / run))
        return Trainer(TabularResNet(3, [4, 4], d_model=d_model, num_blocks=1), [4, 4], config)

    def loader(batch_size: int = 32) -> TensorBatchLoader:
        return TensorBatchLoader(numerical, categorical, batch_size=batch_size)

    trainer().fit(loader())
    last = tmp_path / "run" / "last.pt"
    with pytest.raises(ValueError, match=r"last\.pt was written for a different model configuration"):
        trainer(d_model=8, run="other").fit(loader(), resume_from=last)
    with pytest.raises(ValueError, match=r"last\.pt was written with 2 steps per epoch, this run has 4"):
        trainer(run="third").fit(loader(batch_size=16), resume_from=last)
    atomic_save_torch(with_format_version({"kind": "something else"}), tmp_path / "other.pt")
    with pytest.raises(InputError, match=r"other\.pt is not a training checkpoint"):
        trainer(run="fourth").fit(loader(), resume_from=tmp_path / "other.pt")
    edited = load_checkpoint(last)  # weights-only: plain data we can change and save again
    edited["model_config"]["d_model"] = 32
    atomic_save_torch(edited, tmp_path / "edited.pt")
    with pytest.raises(InputError, match=r"edited\.pt: its model_state does not fit its model_config"):
        load_trained_model(tmp_path / "edited.pt")
