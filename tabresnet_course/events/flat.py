"""The flat table: nested OCSF events to one row per event and one column per dotted path, and back.

Chapter "The OCSF pipeline" teaches this file. Everything after the events works on the *flat
table*: one row per event, one column per dotted attribute path (``http_response.latency``).
:func:`flatten_events` builds it from nested dicts, :func:`frame_to_events` builds the nested
dicts back, and :func:`as_flat_frame` takes whatever a caller has (a flat frame, nested dicts,
events read from a file or generated) to the flat frame. :func:`first_present` reads one
attribute that producers put in several places.

Column conventions of the flat table: integer columns are ``int64`` (``Int64`` when some
events lack the attribute), booleans ``bool`` (``boolean``), numbers with a fraction
``float64`` (NaN when missing), and everything else, strings included, ``object`` columns with
``None`` for missing values (converting to pandas' ``str`` dtype would cost more than parsing).
A list becomes its compact JSON text (``'["a","b"]'``). Absent attributes and explicit ``null``
are both missing values.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, repeat
from operator import itemgetter
from types import NoneType
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "as_flat_frame",
    "check_records",
    "first_present",
    "flatten_event",
    "flatten_events",
    "frame_to_events",
    "gc_paused",
    "json_text",
    "nest_columns",
]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small containers.

    Building 100k nested dicts triggers dozens of full collections that find nothing (the
    dicts hold no reference cycles) and double the run time; the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Nested events -> flat table
# --------------------------------------------------------------------------------------------


def check_records(events: Iterable[Any]) -> list[dict]:
    """``events`` as a list, or ``ValueError`` naming the first one that is not a dict (1-based)."""
    records = list(events)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"event {number} is a {type(record).__name__}, not a dict")
    return records


def flatten_events(events: Iterable[dict], sep: str = ".") -> pd.DataFrame:
    """The flat table of many nested events: one row each, one column per dotted path.

    Chapter "The OCSF pipeline".

    Works column by column rather than event by event: events whose objects have the same
    keys are handled together (one ``itemgetter`` call per object instead of a Python loop per
    attribute). Columns follow the conventions of the module docstring and come in the order
    their attribute first appears, grouped under their parent object.
    """
    records = check_records(events)
    n = len(records)
    pieces: dict[str, list[tuple[np.ndarray, list, set]]] = {}
    if n:
        with gc_paused():
            _collect(records, np.arange(n), "", pieces, sep)
    first_row = {
        name: min(int(rows[0]) for rows, _, _ in parts if len(rows))
        for name, parts in pieces.items()
        if any(len(rows) for rows, _, _ in parts)
    }
    names = _tree_order(sorted(first_row, key=first_row.__getitem__), sep)
    data = {name: _column_from_pieces(pieces[name], n) for name in names}
    return pd.DataFrame(data, index=pd.RangeIndex(n), columns=names, copy=False)


def flatten_event(event: dict, sep: str = ".") -> dict[str, Any]:
    """One nested event as ``{dotted path: value}`` (chapter "The OCSF pipeline").

    The same walk as :func:`flatten_events`, for one event: nested objects are walked (an
    empty object contributes nothing), a list is stored as its compact JSON text
    (``["a","b"]`` -> ``'["a","b"]'``) so that every cell is a scalar, ``null`` stays ``None``.
    """
    pieces: dict[str, list[tuple[np.ndarray, list, set]]] = {}
    _collect(check_records([event]), np.zeros(1, dtype=np.int64), "", pieces, sep)
    return {name: parts[-1][1][0] for name, parts in pieces.items()}


def _tree_order(names: list[str], sep: str) -> list[str]:
    """Dotted names grouped under their parents, each level in the order given.

    With ``names`` sorted by the record they first appear in, this is the order Arrow's JSON
    reader gives, so both reading paths of :func:`~tabresnet_course.events.files.read_events`
    produce the same columns in the same order (exactly so when the records come in a few
    shapes, as OCSF classes do).
    """
    tree: dict = {}
    for name in names:
        node = tree
        for part in name.split(sep):
            node = node.setdefault(part, {})
        node[None] = name  # the column that ends here
    out: list[str] = []

    def walk(node: dict) -> None:
        for key, child in node.items():
            if key is None:
                out.append(child)
            else:
                walk(child)

    walk(tree)
    return out


def _uniform_columns(items: list[dict]) -> tuple[list, list] | None:
    """Keys and value columns when every dict has exactly the keys of the first one."""
    keys = list(items[0])
    if len(set(map(len, items))) != 1:
        return None
    try:
        if not keys:
            return keys, []
        if len(keys) == 1:
            return keys, [list(map(itemgetter(keys[0]), items))]
        return keys, list(zip(*map(itemgetter(*keys), items)))
    except KeyError:
        return None


def _collect(
    items: list[dict], rows: np.ndarray, prefix: str, out: dict[str, list[tuple[np.ndarray, list, set]]], sep: str
) -> None:
    """Append the leaf columns found under ``prefix`` in ``items`` (rows ``rows``) to ``out``."""
    uniform = _uniform_columns(items)
    if uniform is None:
        codes_of: dict[tuple, int] = {}
        codes = [codes_of.setdefault(s, len(codes_of)) for s in map(tuple, items)]
        if len(codes_of) <= max(16, len(items) // 50):  # a few shapes: handle each one together
            codes_array = np.array(codes)
            for g in range(len(codes_of)):
                idx = np.flatnonzero(codes_array == g)
                _collect([items[i] for i in idx], rows[idx], prefix, out, sep)
            return
        keys = list(dict.fromkeys(chain.from_iterable(items)))  # many shapes: one pass per key
        uniform = keys, [[d.get(k) for d in items] for k in keys]
    for key, column in zip(*uniform):
        name = f"{prefix}{key}"
        kinds = set(map(type, column))
        if dict in kinds:
            if len(kinds) == 1:  # the usual case: an object in every row
                _collect(column, rows, name + sep, out, sep)
                continue
            is_dict = np.array([type(v) is dict for v in column], dtype=bool)
            idx = np.flatnonzero(is_dict)
            _collect([column[i] for i in idx], rows[idx], name + sep, out, sep)
            if kinds - {dict, NoneType}:  # scalars next to objects under the same name
                rest = np.flatnonzero(~is_dict)
                out.setdefault(name, []).append((rows[rest], [column[i] for i in rest], kinds - {dict}))
            continue
        if list in kinds or tuple in kinds:
            column = [json_text(v) if type(v) in (list, tuple) else v for v in column]
            kinds = (kinds - {list, tuple}) | {str}
        out.setdefault(name, []).append((rows, column, kinds))


def json_text(value: Any) -> str:
    """Compact JSON text of a list (how lists are stored in the flat table)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _object_array(values: list | tuple) -> np.ndarray:
    """A 1-D object array holding exactly these Python values."""
    return np.fromiter(values, dtype=object, count=len(values))  # never unpacks nested sequences


def _column_from_pieces(pieces: list[tuple[np.ndarray, list, set]], n: int) -> Any:
    """One typed column (see the module docstring) from the pieces found for one name."""
    kinds: set = set().union(*(p[2] for p in pieces))
    if len(pieces) == 1 and len(pieces[0][0]) == n:
        values = _object_array(pieces[0][1])
        missing = None
    else:
        values = np.full(n, None, dtype=object)
        filled = np.zeros(n, dtype=bool)
        for rows, column, _ in pieces:
            values[rows] = _object_array(column)
            filled[rows] = True
        missing = ~filled
    if NoneType in kinds:
        nulls = np.equal(values, None)
        missing = nulls if missing is None else missing | nulls
    return _typed(values, missing, kinds - {NoneType})


def _typed(values: np.ndarray, missing: np.ndarray | None, kinds: set) -> Any:
    """Convert an object array to int64/Int64, bool/boolean or float64 when the kinds allow."""
    any_missing = missing is not None and bool(missing.any())
    try:
        if kinds == {int}:
            if not any_missing:
                return values.astype(np.int64)
            values[missing] = 0
            return pd.arrays.IntegerArray(values.astype(np.int64), missing)
        if kinds == {bool}:
            if not any_missing:
                return values.astype(bool)
            values[missing] = False
            return pd.arrays.BooleanArray(values.astype(bool), missing)
        if kinds and kinds <= {int, float}:
            if any_missing:
                values[missing] = np.nan
            return values.astype(np.float64)
    except OverflowError:  # an integer beyond 64 bits: keep the Python objects
        if any_missing:
            values[missing] = None
    return pd.Series(values, dtype=object, copy=False)


# --------------------------------------------------------------------------------------------
# Flat table -> nested events
# --------------------------------------------------------------------------------------------


def frame_to_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Nested OCSF dictionaries from a flat frame of dotted columns (missing values are omitted).

    Chapter "The OCSF pipeline".

    Rows are grouped by which columns they fill (in a mixed-class table that is mostly by
    class), and each group is built column by column with :func:`nest_columns`, so the Python
    work per event is one ``dict`` per nested object. Integers come back as ``int``, booleans
    as ``bool``.
    """
    n = len(frame)
    if n == 0:
        return []
    columns = [str(c) for c in frame.columns]
    parts = [tuple(c.split(".")) for c in columns]
    present = frame.notna().to_numpy()  # (n, C) bool
    packed = np.packbits(present, axis=1)  # (n, ceil(C / 8)) uint8
    row_keys = np.ascontiguousarray(packed).view(f"S{packed.shape[1]}").ravel()  # (n,) one key per row
    patterns, inverse = np.unique(row_keys, return_inverse=True)
    out: list[Any] = [None] * n
    arrays = [_plain_values(frame.iloc[:, i]) for i in range(frame.shape[1])]
    with gc_paused():
        for g in range(len(patterns)):
            rows = np.flatnonzero(inverse == g)
            cols = np.flatnonzero(present[rows[0]])
            keys, values = nest_columns([parts[c] for c in cols], [arrays[c][rows].tolist() for c in cols], _dicts)
            events = _dicts(keys, values) if keys else [{} for _ in range(len(rows))]
            for pos, event in zip(rows.tolist(), events):
                out[pos] = event
    return out


def _dicts(keys: list[str], columns: list[list]) -> list[dict]:
    """One dict per row from equally long value lists, one list per key."""
    return list(map(dict, map(zip, repeat(keys), zip(*columns))))


def _plain_values(column: pd.Series) -> np.ndarray:
    """A numpy array whose ``tolist()`` gives plain Python values (missing slots are unused)."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        return column.to_numpy()
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return column.to_numpy(dtype=np.int64 if kind == "i" else np.uint64, na_value=0)
    if kind == "b":
        return column.to_numpy(dtype=bool, na_value=False)
    if kind == "f":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=object)


def nest_columns(
    paths: Sequence[tuple[str, ...]],
    columns: Sequence[Any],
    make_object: Callable[[list[str], list[Any]], Any],
    prefix: str = "",
) -> tuple[list[str], list[Any]]:
    """Group columns by the first part of their split dotted paths, recursively.

    Chapter "The OCSF pipeline". Returns the top-level keys in order of first appearance and
    one column per key: a leaf column as given, or ``make_object(child keys, child columns)``
    for a key with children. :func:`frame_to_events` builds Python dicts with it, the Parquet
    writer of :mod:`tabresnet_course.events.files` Arrow structs. A path that is both a value and
    the parent of another path raises ``ValueError`` naming it.
    """
    keys: list[str] = []
    leaves: dict[str, Any] = {}
    children: dict[str, tuple[list, list]] = {}
    for path, column in zip(paths, columns):
        head = path[0]
        if head not in leaves and head not in children:
            keys.append(head)
        if (len(path) == 1 and head in children) or (len(path) > 1 and head in leaves):
            raise ValueError(
                f"column {prefix + head!r} is both a value and an object "
                f"(other columns start with {prefix + head + '.'!r})"
            )
        if len(path) == 1:
            leaves[head] = column
        else:
            children.setdefault(head, ([], []))
            children[head][0].append(path[1:])
            children[head][1].append(column)
    out = [
        leaves[key] if key in leaves else make_object(*nest_columns(*children[key], make_object, prefix + key + "."))
        for key in keys
    ]
    return keys, out


# --------------------------------------------------------------------------------------------
# Anything -> flat table
# --------------------------------------------------------------------------------------------


def as_flat_frame(events: Any) -> pd.DataFrame:
    """The flat table of ``events``, whatever form they come in (chapter "The OCSF pipeline").

    A DataFrame of dotted columns is returned as is; an object with a ``.frame`` DataFrame
    (:class:`~tabresnet_course.events.files.ReadResult`,
    :class:`~tabresnet_course.ocsf.generator.GeneratedEvents`) gives that frame; a list or tuple of
    nested event dicts is flattened with :func:`flatten_events`. Anything else (a file name,
    a single dict, a generator) raises ``ValueError``.
    """
    if isinstance(events, pd.DataFrame):
        return events
    frame = getattr(events, "frame", None)
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(events, (list, tuple)):
        return flatten_events(events)
    raise ValueError(
        "expected a flat DataFrame of dotted columns, a list of event dicts or an object with a "
        f".frame DataFrame (events read or generated), got {type(events).__name__}"
    )


def first_present(frame: pd.DataFrame, paths: str | Sequence[str]) -> pd.Series:
    """Row-wise the first present value among the columns ``paths`` (a dotted path or a list of
    them, in order of preference), on ``frame``'s index: a lone present column is returned as
    is, several are merged into an ``object`` column, and none gives an ``object`` column of
    ``None``. Absent columns are skipped, never an error (real exports differ)."""
    present = [p for p in ([paths] if isinstance(paths, str) else paths) if p in frame.columns]
    if not present:
        return pd.Series(np.full(len(frame), None, dtype=object), index=frame.index, dtype=object)
    values = frame[present[0]]
    for path in present[1:]:
        values = values.astype(object).where(values.notna(), frame[path].astype(object))
    return values
