"""Reading and writing OCSF events (JSON Lines, JSON arrays, Parquet) with error reports.

Chapter "The OCSF pipeline" teaches this file. :func:`read_events` turns a file of events into
the *flat table* the rest of the package works on: one row per event, one column per dotted
attribute path (``http_response.latency``). Bad records (malformed JSON, values that are not
objects, events without ``class_uid``) are skipped, counted and reported with their line
numbers; ``strict=True`` stops at the first one instead. :func:`write_events` writes JSON
Lines, JSON or Parquet atomically and never overwrites a file unless asked to.

Speed: a clean JSON Lines file is parsed by Arrow's C++ JSON reader (faster than calling
``json.loads`` on every line); a file with bad lines is parsed line by line with ``json`` to
locate them, and its good lines go back through Arrow. Both paths give the same table.

The column conventions of the flat table are those of :mod:`tabresnet_course.events.flat`.
"""

from __future__ import annotations

import json
import json.scanner
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import NoneType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from tabresnet_course.artifacts import atomic_write, refuse_existing
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import (
    as_flat_frame,
    check_records,
    flatten_events,
    frame_to_events,
    gc_paused,
    json_text,
    nest_columns,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "JSON_LINES_SUFFIXES",
    "JSON_SUFFIXES",
    "MAX_NESTING",
    "PARQUET_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "EventChunks",
    "ProblemSummary",
    "ReadProblem",
    "ReadReport",
    "ReadResult",
    "arrow_table_to_frame",
    "checked_input_path",
    "read_events",
    "write_events",
]

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED_SUFFIXES = JSON_LINES_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES

# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadProblem:
    """One skipped record: where it was (line, array element or row) and why (chapter "The OCSF pipeline")."""

    line: int
    kind: str  # "invalid_json", "invalid_utf8", "not_object", "no_class_uid" or "too_deep"
    message: str

    def describe(self, unit: str = "line") -> str:
        """``"line 3: invalid JSON (...)"``."""
        return f"{unit} {self.line}: {self.message}"


class ProblemSummary:
    """What :class:`ReadResult` and :class:`ReadReport` say about skipped records; needs
    ``path``, ``problems``, ``num_records``, ``num_read`` and ``unit``."""

    path: Path
    problems: list[ReadProblem]
    num_records: int
    num_read: int
    unit: str

    @property
    def num_skipped(self) -> int:
        """Records skipped (one problem each)."""
        return len(self.problems)

    @property
    def problem_counts(self) -> dict[str, int]:
        """Skipped records per kind of problem."""
        return dict(Counter(p.kind for p in self.problems))

    def summary(self, max_listed: int = 5) -> str:
        """One line: ``read 998 of 1000 records from x.jsonl; skipped 2 (line 3: ..., line 7: ...)``."""
        read = f"read {self.num_read} of {self.num_records} records from {self.path.name}"
        return f"{read}; {self.skipped_summary(max_listed)}"

    def skipped_summary(self, max_listed: int = 5) -> str:
        """What was skipped: ``skipped 2 (line 3: ..., line 7: ...)``, or ``skipped 0``."""
        if not self.problems:
            return "skipped 0"
        listed = ", ".join(p.describe(self.unit) for p in self.problems[:max_listed])
        more = len(self.problems) - max_listed
        if more > 0:
            counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.problem_counts.items())
            listed += f", ... {more} more; by kind: {counts}"
        return f"skipped {self.num_skipped} ({listed})"


@dataclass
class ReadResult(ProblemSummary):
    """What :func:`read_events` found in a file (chapter "The OCSF pipeline").

    ``frame`` holds the good records as a flat table of dotted columns; ``lines`` the source
    position of each of its rows (line of a JSON Lines file, element of a JSON array, row of a
    Parquet file; 1-based); ``problems`` every skipped record; ``num_records`` the records
    seen (blank lines are not records).
    """

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray
    problems: list[ReadProblem] = field(default_factory=list)
    num_records: int = 0
    unit: str = "line"

    @property
    def num_read(self) -> int:
        """Records kept."""
        return len(self.frame)

    @property
    def uids(self) -> pd.Series | None:
        """``metadata.uid`` of each kept record, when the file has that attribute."""
        return self.frame["metadata.uid"] if "metadata.uid" in self.frame.columns else None

    def to_events(self) -> list[dict[str, Any]]:
        """The kept records as nested dicts again."""
        return frame_to_events(self.frame)


@dataclass
class ReadReport(ProblemSummary):
    """The running totals of a file read in chunks by :class:`EventChunks` (chapter "The OCSF
    pipeline"): the same counts and summary lines as a :class:`ReadResult` of the whole file."""

    path: Path
    problems: list[ReadProblem] = field(default_factory=list)
    num_records: int = 0
    num_read: int = 0
    unit: str = "line"

    def add(self, chunk: ReadResult) -> None:
        """Count one chunk's records and problems."""
        self.problems.extend(chunk.problems)
        self.num_records += chunk.num_records
        self.num_read += chunk.num_read
        self.unit = chunk.unit


def read_events(path: str | os.PathLike, strict: bool = False) -> ReadResult:
    """Read OCSF events from ``.jsonl``/``.ndjson``, ``.json`` (an array) or ``.parquet``.

    Chapter "The OCSF pipeline".

    Parquet files may hold nested structs (as pyarrow writes nested dicts) or flat columns
    with dotted names. Malformed JSON lines, values that are not objects, records without
    ``class_uid`` (or whose ``class_uid`` is an object) and records nested more than
    :data:`MAX_NESTING` levels deep are skipped and listed in ``problems``; with
    ``strict=True`` the first one raises :class:`~tabresnet_course.errors.InputError` naming
    the file and line. A missing, unreadable or empty file, or an unknown extension, always
    raises ``InputError``.
    """
    path = checked_input_path(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path, strict)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from error
    if not data or data.isspace():
        raise InputError(f"{path}: file is empty")
    if suffix in JSON_LINES_SUFFIXES:
        return _read_json_lines(path, data, strict)
    return _read_json_array(path, data, strict)


def checked_input_path(path: str | os.PathLike) -> Path:
    """``path`` after checking that it is an existing regular file with a supported extension."""
    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(f"{path}: unknown extension {path.suffix!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    return path


def _problem(path: Path, strict: bool, line: int, kind: str, message: str, unit: str = "line") -> ReadProblem:
    """Record a problem, or raise it at once in strict mode."""
    if strict:
        raise InputError(f"{path} {unit} {line}: {message}")
    return ReadProblem(line, kind, message)


def _decode_lines(data: bytes) -> list[str | UnicodeDecodeError]:
    """Split a JSON Lines file into text lines (the decoding error for a line that is not UTF-8)."""
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        pass
    lines: list[str | UnicodeDecodeError] = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            lines.append(error)
    return lines


_SCAN = json.scanner.make_scanner(json.JSONDecoder())


def _parse_line(line: str) -> Any:
    """``json.loads(line)`` through the C scanner directly (skips the per-call Python wrapper)."""
    try:
        value, end = _SCAN(line, 0)
    except StopIteration:
        return json.loads(line)  # leading whitespace or not JSON at all: let json explain
    if end != len(line) and not line[end:].isspace():
        return json.loads(line)  # raises "Extra data"
    return value


def _read_json_lines(path: Path, data: bytes, strict: bool, first: int = 1) -> ReadResult:
    """Parse JSON Lines: Arrow's C++ reader when it can, Python line by line when it must.

    A clean file goes straight through ``pyarrow.json`` (several times faster than
    ``json.loads``). Otherwise every line is parsed with ``json`` to find and report the bad
    ones, and the good lines go through Arrow again (or, if Arrow still cannot take them, for
    example because one attribute mixes types, through :func:`~tabresnet_course.events.flat.flatten_events`).
    ``first`` is the line number of the first line of ``data``.
    """
    if first == 1 and data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark is not part of line 1
        data = data[3:]
    num_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    table = _arrow_json_table(data)
    if table is not None and table.num_rows == num_lines:  # one row per line: nothing skipped
        return _arrow_table_to_result(path, table, strict, "line", first)
    lines = _decode_lines(data)
    records: list[dict] = []
    good_lines: list[str] = []
    numbers: list[int] = []
    problems: list[ReadProblem] = []
    num_records = 0
    with gc_paused():
        for number, line in enumerate(lines, start=first):
            if isinstance(line, UnicodeDecodeError):
                num_records += 1
                message = f"not UTF-8 text ({line.reason} at byte {line.start})"
                problems.append(_problem(path, strict, number, "invalid_utf8", message))
                continue
            if not line or line.isspace():
                continue
            num_records += 1
            try:
                value = _parse_line(line)
            except ValueError as error:  # json.JSONDecodeError is a ValueError
                message = getattr(error, "msg", str(error))
                column = getattr(error, "colno", None)
                where = f" at column {column}" if column is not None else ""
                problems.append(_problem(path, strict, number, "invalid_json", f"invalid JSON ({message}{where})"))
                continue
            except RecursionError:  # deeper than json's own limit (about 1000 levels)
                problems.append(_problem(path, strict, number, "too_deep", _TOO_DEEP))
                continue
            if type(value) is not dict:
                problems.append(
                    _problem(path, strict, number, "not_object", f"a JSON {_json_kind(value)}, not an object")
                )
            elif type(value.get("class_uid")) in (NoneType, dict):  # an object is no class either
                problems.append(_problem(path, strict, number, "no_class_uid", "no class_uid"))
            elif line.count("{") + line.count("[") > MAX_NESTING and _nesting_depth(value) > MAX_NESTING:
                problems.append(_problem(path, strict, number, "too_deep", _TOO_DEEP))  # (counting is cheap)
            else:
                records.append(value)
                good_lines.append(line)
                numbers.append(number)
    frame = None
    if records and len(records) < num_lines:  # skipped or blank lines may be all Arrow tripped on
        table = _arrow_json_table("\n".join(good_lines).encode("utf-8"))
        if table is not None and table.num_rows == len(records):
            frame = _arrow_table_to_frame(table)
    if frame is None:
        frame = flatten_events(records)
    return ReadResult(path, frame, np.asarray(numbers, dtype=np.int64), problems, num_records, "line")


MAX_NESTING = 100
"""Objects and arrays nested deeper than this make a record unreadable (OCSF needs a handful)."""
_TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"


def _nesting_depth(record: dict | list) -> int:
    """Levels of objects and arrays in a decoded JSON object or array (``{}`` is 1), counted
    level by level without recursion; stops counting past :data:`MAX_NESTING`. Records no
    deeper than that are safe to flatten recursively."""
    depth, level = 0, [record]
    while level and depth <= MAX_NESTING:
        depth += 1
        below: list = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below.extend([v for v in children if type(v) is dict or type(v) is list])
        level = below
    return depth


# One thread: with several, the order of the inferred columns depends on which block of the
# file finishes first, and the same file must always give the same table.
_ARROW_READ_OPTIONS = pa_json.ReadOptions(use_threads=False)
_ARROW_LEAF_TYPES = (pa.int64(), pa.float64(), pa.bool_(), pa.string(), pa.null())


def _arrow_schema_ok(kind: pa.DataType) -> bool | None:
    """True: kept as is; None: holds timestamps to re-read as text; False: not for Arrow."""
    if pa.types.is_struct(kind):
        verdicts = [_arrow_schema_ok(kind.field(i).type) for i in range(kind.num_fields)]
        return False if False in verdicts else (None if None in verdicts else True)
    if pa.types.is_timestamp(kind):
        return None
    if pa.types.is_list(kind):  # lists become JSON text; only simple items give the same text
        return kind.value_type in (pa.int64(), pa.bool_(), pa.string(), pa.null())
    return kind in _ARROW_LEAF_TYPES


def _timestamps_as_text(kind: pa.DataType) -> pa.DataType:
    """The same type with every inferred timestamp turned back into a string."""
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _timestamps_as_text(f.type)) for f in kind])
    return pa.string() if pa.types.is_timestamp(kind) else kind


def _arrow_json_table(data: bytes) -> pa.Table | None:
    """JSON Lines parsed by ``pyarrow.json`` and flattened to dotted columns, or None.

    None means "use the Python path": Arrow rejected the text (malformed or non-object lines,
    one attribute with two JSON types, duplicate keys), or would read it differently from
    :func:`~tabresnet_course.events.flat.flatten_events` (lists of objects, keys containing dots, integers beyond 2**53).
    Strings Arrow takes for timestamps are read again as text.
    """
    try:
        table = pa_json.read_json(pa.BufferReader(data), read_options=_ARROW_READ_OPTIONS)
        verdict = _arrow_schema_ok(pa.struct(list(table.schema)))
        if verdict is False:
            return None
        if verdict is None:
            schema = pa.schema(list(_timestamps_as_text(pa.struct(list(table.schema)))))
            options = pa_json.ParseOptions(explicit_schema=schema)
            table = pa_json.read_json(pa.BufferReader(data), read_options=_ARROW_READ_OPTIONS, parse_options=options)
        table.validate(full=True)  # Arrow's parser does not check that strings are UTF-8
    except (pa.ArrowException, ValueError, RecursionError):  # RecursionError: objects nested very deeply
        return None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    if len(set(table.column_names)) != table.num_columns:
        return None
    if max((name.count(".") for name in table.column_names), default=0) >= MAX_NESTING - 1:
        return None  # maybe records nested too deeply: the Python path measures them
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_floating(column.type) and column.null_count < len(column):
            largest = pc.max(pc.abs(column)).as_py()
            if largest is not None and 2**53 <= largest < float("inf"):
                return None  # maybe integers too large for float64: keep them exact
    return table


def _json_kind(value: Any) -> str:
    """JSON's name for the type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _read_json_array(path: Path, data: bytes, strict: bool) -> ReadResult:
    try:
        with gc_paused():
            value = json.loads(data)
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise InputError(f"{path} line {error.lineno}: invalid JSON ({error.msg} at column {error.colno})") from error
    except RecursionError as error:
        raise InputError(f"{path}: invalid JSON (nested too deeply)") from error
    if isinstance(value, dict):
        value = [value]  # a single event
    if not isinstance(value, list):
        raise InputError(f"{path}: expected a JSON array of events, found a JSON {_json_kind(value)}")
    if not value:
        raise InputError(f"{path}: file is empty (an empty array)")
    records, numbers, problems = [], [], []
    for number, item in enumerate(value, start=1):
        if type(item) is not dict:
            problems.append(
                _problem(path, strict, number, "not_object", f"a JSON {_json_kind(item)}, not an object", "element")
            )
        elif type(item.get("class_uid")) in (NoneType, dict):
            problems.append(_problem(path, strict, number, "no_class_uid", "no class_uid", "element"))
        elif _nesting_depth(item) > MAX_NESTING:
            problems.append(_problem(path, strict, number, "too_deep", _TOO_DEEP, "element"))
        else:
            records.append(item)
            numbers.append(number)
    frame = flatten_events(records)
    return ReadResult(path, frame, np.asarray(numbers, dtype=np.int64), problems, len(value), "element")


def _read_parquet(path: Path, strict: bool) -> ReadResult:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"{path}: not a readable Parquet file ({error})") from error
    if table.num_rows == 0:
        raise InputError(f"{path}: file is empty (no rows)")
    return _arrow_table_to_result(path, _flat_parquet_table(path, table), strict, "row")


def _flat_parquet_table(path: Path, table: pa.Table) -> pa.Table:
    """A Parquet table with its nested structs flattened to ``parent.child`` columns."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()  # nested structs -> "parent.child" columns
    repeated = sorted({name for name in table.column_names if table.column_names.count(name) > 1})
    if repeated:
        raise InputError(
            f"{path}: column {repeated[0]!r} appears twice (a dotted column name and a nested field give the same path)"
        )
    return table


# --------------------------------------------------------------------------------------------
# Reading in chunks
# --------------------------------------------------------------------------------------------

DEFAULT_CHUNK_SIZE = 16_384
"""Lines (JSON Lines), elements (JSON) or rows (Parquet) per chunk of :class:`EventChunks`."""


class EventChunks:
    """A file of events read in chunks of at most ``chunk_size`` records, so that memory does
    not grow with the file (chapter "The OCSF pipeline").

    Iterating yields one :class:`ReadResult` per chunk, with the file's own line (element, row)
    numbers; ``report`` keeps the running totals and, once the iteration is over, says what
    :func:`read_events` would say about the whole file (the same problems, counts and summary).
    Concatenating the chunks' frames gives the rows and values of ``read_events`` (a column
    may have another dtype in a chunk, for example ``int64`` where the whole file needs
    ``float64``; :class:`~tabresnet_course.features.spec.OCSFFeaturizer` reads both alike).

    JSON Lines files are read ``chunk_size`` lines at a time, Parquet files row group by row
    group in batches of at most ``chunk_size`` rows (``pyarrow.parquet.ParquetFile.iter_batches``). A JSON array is parsed whole (the ``json`` module has no incremental parser) and only
    then cut into chunks. The path is checked at once; the records when iterated.
    """

    def __init__(self, path: str | os.PathLike, chunk_size: int = DEFAULT_CHUNK_SIZE, strict: bool = False) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.path = checked_input_path(path)
        self.chunk_size = chunk_size
        self.strict = strict
        self.report = ReadReport(self.path)

    def __iter__(self) -> Iterator[ReadResult]:
        """The chunks in file order; ``report`` starts again from zero."""
        self.report = ReadReport(self.path)
        suffix = self.path.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            chunks = self._parquet_chunks()
        elif suffix in JSON_LINES_SUFFIXES:
            chunks = self._json_lines_chunks()
        else:
            chunks = self._sliced(read_events(self.path, self.strict))
        for chunk in chunks:
            self.report.add(chunk)
            yield chunk

    def _json_lines_chunks(self) -> Iterator[ReadResult]:
        """Blocks of ``chunk_size`` lines, each parsed like a whole file."""
        first, empty = 1, True
        try:
            with open(self.path, "rb") as file:
                while lines := list(islice(file, self.chunk_size)):
                    data = b"".join(lines)
                    if not data.isspace():
                        empty = False
                        yield _read_json_lines(self.path, data, self.strict, first)
                    first += len(lines)
        except OSError as error:
            raise InputError(f"{self.path}: cannot read ({error.strerror or error})") from error
        if empty:
            raise InputError(f"{self.path}: file is empty")

    def _parquet_chunks(self) -> Iterator[ReadResult]:
        """Row group by row group, in batches of at most ``chunk_size`` rows."""
        try:
            parquet = pq.ParquetFile(self.path)
            if parquet.metadata.num_rows == 0:
                raise InputError(f"{self.path}: file is empty (no rows)")
            first = 1
            for group in range(parquet.num_row_groups):
                for batch in parquet.iter_batches(batch_size=self.chunk_size, row_groups=[group]):
                    table = _flat_parquet_table(self.path, pa.Table.from_batches([batch]))
                    yield _arrow_table_to_result(self.path, table, self.strict, "row", first)
                    first += batch.num_rows
        except (OSError, pa.ArrowException) as error:
            raise InputError(f"{self.path}: not a readable Parquet file ({error})") from error

    def _sliced(self, result: ReadResult) -> Iterator[ReadResult]:
        """A whole :class:`ReadResult` cut into chunks (its problems go with the first)."""
        for start in range(0, max(result.num_read, 1), self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            first = start == 0
            yield ReadResult(
                result.path,
                result.frame.iloc[rows].reset_index(drop=True),
                result.lines[rows],
                result.problems if first else [],
                result.num_records if first else 0,
                result.unit,
            )


def _arrow_table_to_result(path: Path, table: pa.Table, strict: bool, unit: str, first: int = 1) -> ReadResult:
    """Drop (and report) rows without ``class_uid``; convert the rest to the flat frame. Row
    ``i`` of ``table`` is record number ``first + i``."""
    if "class_uid" in table.column_names:
        has_class = table.column("class_uid").is_valid().to_numpy(zero_copy_only=False)
    else:
        has_class = np.zeros(table.num_rows, dtype=bool)
    problems = [
        _problem(path, strict, int(row) + first, "no_class_uid", "no class_uid", unit)
        for row in np.flatnonzero(~has_class)
    ]
    keep = np.flatnonzero(has_class)
    if len(keep) < table.num_rows:
        table = table.take(pa.array(keep))
    frame = _arrow_table_to_frame(table)
    return ReadResult(path, frame, keep.astype(np.int64) + first, problems, len(has_class), unit)


def arrow_table_to_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Events as Arrow data (nested structs or flat dotted columns, as a Parquet file or Spark's
    ``mapInArrow`` hands them over) as the flat frame, by the conversion every Parquet read goes
    through; every row is kept (no ``class_uid`` check). Chapter "The OCSF pipeline"."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    return _arrow_table_to_frame(_flat_parquet_table(Path("<Arrow data>"), table))


def _arrow_table_to_frame(table: pa.Table) -> pd.DataFrame:
    """A flat Arrow table as the flat frame (column conventions of :mod:`tabresnet_course.events.flat`)."""
    data = {name: _arrow_to_pandas(table.column(name)) for name in table.column_names}
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows), columns=table.column_names, copy=False)


def _arrow_to_pandas(column: pa.ChunkedArray) -> Any:
    """One Arrow column in the conventions of :mod:`tabresnet_course.events.flat`."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    has_nulls = column.null_count > 0
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        target = np.int64 if pa.types.is_integer(kind) else bool
        values = pc.fill_null(column, 0 if target is np.int64 else False).to_numpy().astype(target)
        if not has_nulls:
            return values
        mask = column.is_null().to_numpy(zero_copy_only=False)
        return (pd.arrays.IntegerArray if target is np.int64 else pd.arrays.BooleanArray)(values, mask)
    if pa.types.is_floating(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return pd.Series([None if v is None else json_text(v) for v in column.to_pylist()], dtype=object)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return pd.Series(column.to_numpy(zero_copy_only=False), dtype=object, copy=False)
    return column.to_pandas()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_events(events: Any, path: str | os.PathLike, overwrite: bool = False, layout: str = "nested") -> Path:
    """Write events to ``.jsonl``/``.ndjson``, ``.json`` or ``.parquet``, atomically.

    Chapter "The OCSF pipeline".

    ``events`` may be anything :func:`~tabresnet_course.events.flat.as_flat_frame` takes: a flat
    frame of dotted columns, a list of nested dicts, or events read or generated (an object
    with a ``.frame``). Parquet files hold nested structs (``layout="nested"``) or flat dotted
    columns (``layout="flat"``). The data go to a temporary file in the same directory that
    replaces ``path`` only when complete; an existing ``path`` raises
    :class:`~tabresnet_course.errors.InputError` unless ``overwrite=True``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{path}: unknown extension {path.suffix!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if layout not in ("nested", "flat"):
        raise ValueError(f"layout must be 'nested' or 'flat', got {layout!r}")
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in PARQUET_SUFFIXES:
        table = _frame_to_table(as_flat_frame(events), layout)
        atomic_write(path, lambda tmp: pq.write_table(table, str(tmp)))
        return path
    # Nested dicts are written as given; anything else is built back from its flat table.
    records = check_records(events) if isinstance(events, (list, tuple)) else frame_to_events(as_flat_frame(events))
    chunks = []
    for number, record in enumerate(records, start=1):
        try:
            chunks.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise ValueError(f"event {number} cannot be written as JSON: {error}") from error
    if suffix in JSON_LINES_SUFFIXES:
        text = "".join(c + "\n" for c in chunks)
    else:
        text = "[\n" + ",\n".join(chunks) + "\n]\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _arrow_array(name: str, column: pd.Series) -> pa.Array:
    """One flat column as an Arrow array (a column mixing types cannot go to Parquet)."""
    try:
        return pa.Array.from_pandas(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(f"column {name!r} cannot be written to Parquet (mixed types?): {error}") from error


def _frame_to_table(frame: pd.DataFrame, layout: str) -> pa.Table:
    """A flat frame as an Arrow table, nested back into structs or kept flat."""
    names = [str(c) for c in frame.columns]
    arrays = [_arrow_array(name, frame.iloc[:, i]) for i, name in enumerate(names)]
    if layout == "flat":
        return pa.table(dict(zip(names, arrays)))
    try:
        keys, nested = nest_columns([tuple(n.split(".")) for n in names], arrays, _struct_array)
    except ValueError as error:
        raise ValueError(f"{error}; use layout='flat'") from error
    return pa.table(dict(zip(keys, nested)))


def _struct_array(keys: list[str], arrays: list[pa.Array]) -> pa.StructArray:
    """Fields as one struct array, null where all its fields are."""
    valid = arrays[0].is_valid()
    for array in arrays[1:]:
        valid = pc.or_(valid, array.is_valid())
    return pa.StructArray.from_arrays(arrays, names=keys, mask=pc.invert(valid))
