"""Bring your own OCSF: profile a flat table and infer a :class:`~tabresnet_course.features.spec.FeatureSpec` for it.

Chapter "The OCSF pipeline" teaches this file. :func:`profile_columns` describes every flat column
(share of events where it is present, type, distinct values, for numbers their range and skew).
:func:`infer_feature_spec` starts from the built-in specification
(:meth:`FeatureSpec.default <tabresnet_course.features.spec.FeatureSpec.default>`), keeps the built-in
features whose source is in the data, drops the others with a reason, and proposes a feature for
every column the built-in specification does not know: cyclical time comes from ``time``, numbers
get ``log1p`` when they are non-negative and heavy-tailed (bytes, counts, durations), text becomes a
category that is hashed above a cardinality threshold, and IP addresses, ports, URL paths and HTTP
status codes get the transforms the built-in specification uses for them. Columns that would only
add noise or leak the identity of single events are left out, each with its reason: per-event
identifiers (``metadata.uid``, trace and span ids, session uids, values that look like UUIDs),
timestamps other than ``time``, free text (``message``), constant columns, and captions of OCSF
enumerations (``severity`` next to ``severity_id``). The result holds the specification, the
reasons, and :func:`feature_report` (one row per feature: source, kind, transform, coverage,
distinct values, hashed or not); :meth:`InferredSpec.to_file` writes a commented YAML file that a
person can edit and pass back to ``tabresnet-course train --spec``.

The rules look at names and values only, never at the package's generator, so that exports of any
producer (other OCSF versions, vendors, converters) get a sensible specification.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tabresnet_course.artifacts import atomic_write_bytes
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import as_flat_frame, first_present
from tabresnet_course.features.spec import CategoricalFeature, FeatureSpec, NumericalFeature, source_paths
from tabresnet_course.features.transforms import CATEGORICAL_TRANSFORMS, NUMERICAL_TRANSFORMS, UUID_PATTERN
from tabresnet_course.values import missing_indicator_name, to_float

__all__ = [
    "CODE_MAX_VALUES",
    "DERIVED",
    "ENTITY_WORDS",
    "ENUM_MAX_VALUES",
    "EPOCH_MS_RANGE",
    "EPOCH_SECONDS_2001",
    "FREE_TEXT_WORDS",
    "HEAVY_TAIL_SKEW",
    "ID_WORDS",
    "MAX_CATEGORIES",
    "MIN_COVERAGE",
    "MIN_PRESENT_TO_JUDGE",
    "NEAR_UNIQUE_SHARE",
    "NUM_BUCKETS",
    "PER_EVENT_WORDS",
    "PROFILE_COLUMNS",
    "QUANTITY_WORDS",
    "REPORT_COLUMNS",
    "SAMPLE_DISTINCT",
    "TIME_WORDS",
    "Decision",
    "InferredSpec",
    "decide_column",
    "feature_report",
    "format_report",
    "infer_feature_spec",
    "name_words",
    "profile_column",
    "profile_columns",
]

MAX_CATEGORIES = 200
"""An inferred category with more distinct values than this (at fit time) is hashed."""
NUM_BUCKETS = 128
"""Hash buckets of an inferred category that is hashed."""
MIN_COVERAGE = 0.01
"""Columns present in a smaller share of the events are left out."""
NEAR_UNIQUE_SHARE = 0.5
"""A category with at least this many distinct values per present value identifies events."""
MIN_PRESENT_TO_JUDGE = 20
"""Cardinality shares are only judged on columns present in at least this many events."""
ENUM_MAX_VALUES = 64
"""An ``*_id`` / ``*_uid`` column of integers with at most this many values is an OCSF enumeration."""
CODE_MAX_VALUES = 16
"""Another integer column with at most this many values (and no quantity in its name) is a code."""
HEAVY_TAIL_SKEW = 2.0
"""Skewness above which a number is log-transformed."""
EPOCH_SECONDS_2001 = 1e9
"""A number named like a time and at least this large is an epoch timestamp (seconds or ms)."""
EPOCH_MS_RANGE = (946_684_800_000, 4_102_444_800_000)
"""Any number column entirely in this range (2000 to 2100 in epoch milliseconds) is a timestamp."""
SAMPLE_DISTINCT = 2000
"""Distinct values examined per column for value patterns (UUIDs, IPs, URLs, dates, words)."""

REPORT_COLUMNS = ["feature", "kind", "source", "transform", "coverage", "distinct", "hashed"]
"""The columns of :func:`feature_report`."""
PROFILE_COLUMNS = [
    "column",
    "type",
    "coverage",
    "present",
    "distinct",
    "minimum",
    "maximum",
    "median",
    "skew",
    "median_words",
    "median_length",
    "id_like",
    "ip",
    "url",
    "iso_time",
]
"""The columns of :func:`profile_columns`."""

# Names ------------------------------------------------------------------------------------

ID_WORDS = {"uid", "id", "guid", "uuid", "pid", "ppid", "tid"}
"""Last name parts that mark an identifier (``metadata.uid``, ``request_id``, ``process.pid``)."""
PER_EVENT_WORDS = {
    "trace",
    "traceid",
    "span",
    "spanid",
    "request",
    "session",
    "correlation",
    "transaction",
    "event",
    "message",
    "log",
    "metadata",
    "pid",
    "ppid",
    "tid",
}
"""Name parts of identifiers that never recur for long: never an enumeration, never an entity."""
ENTITY_WORDS = {
    "user",
    "users",
    "actor",
    "account",
    "device",
    "host",
    "endpoint",
    "org",
    "group",
    "groups",
    "cloud",
    "service",
    "svc",
    "app",
    "application",
    "api",
    "tenant",
    "project",
    "role",
    "policy",
    "region",
    "zone",
    "instance",
    "container",
    "image",
    "agent",
    "domain",
    "customer",
    "team",
    "owner",
    "resource",
    "resources",
    "bucket",
    "cluster",
    "node",
    "namespace",
    "pod",
    "vpc",
    "product",
    "vendor",
    "database",
    "db",
    "queue",
    "topic",
}
"""Name parts of things that recur (a user, a host): their identifiers are categories, not event ids."""
TIME_WORDS = {"time", "timestamp", "ts", "date", "datetime", "dt", "at", "created", "modified", "epoch"}
"""Name parts of timestamps (``start_time``, ``time_dt``, ``created_at``)."""
QUANTITY_WORDS = {
    "bytes",
    "byte",
    "size",
    "count",
    "packets",
    "packet",
    "duration",
    "latency",
    "length",
    "len",
    "ms",
    "millis",
    "elapsed",
    "rtt",
    "total",
    "sum",
    "amount",
    "volume",
    "octets",
    "rate",
    "items",
    "num",
    "quantity",
    "qty",
}
"""Name parts of non-negative quantities that span orders of magnitude (log1p)."""
FREE_TEXT_WORDS = {
    "message",
    "msg",
    "raw",
    "data",
    "description",
    "desc",
    "comment",
    "body",
    "text",
    "summary",
    "details",
    "detail",
    "reason",
}
"""Name parts of free text (``message``, ``raw_data``, ``status_detail``)."""
DERIVED = {
    "category_uid": ("class_uid", "class_uid = category_uid * 1000 + n"),
    "activity_id": ("type_uid", "type_uid = class_uid * 100 + activity_id"),
}
"""OCSF attributes that another attribute determines, by the schema's own formula."""

_ID_VALUE = re.compile(r"(?=.*\d)[0-9a-fA-F]{16,}|(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-+=]{24,}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_URL_VALUE = re.compile(r"/|https?://", re.IGNORECASE)


def name_words(column: str) -> tuple[list[str], list[str]]:
    """The words of a dotted column's last part and of its parent: ``actor.session.uid`` ->
    ``(["uid"], ["session"])``; camelCase and ``-`` split like ``_``."""
    parts = column.split(".")

    def words(part: str) -> list[str]:
        return [w for w in re.split(r"[_\-\s]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", part).lower()) if w]

    return words(parts[-1]), words(parts[-2]) if len(parts) > 1 else []


# --------------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------------


def _distinct_sample(present: pd.Series) -> pd.Series:
    """Up to :data:`SAMPLE_DISTINCT` distinct present values (the most frequent first)."""
    try:
        return pd.Series(present.value_counts(dropna=True).index[:SAMPLE_DISTINCT], dtype=object)
    except TypeError:  # unhashable values
        return pd.Series(present.iloc[:SAMPLE_DISTINCT].to_list(), dtype=object)


def _value_type(values: pd.Series, sample: pd.Series) -> str:
    """``boolean``, ``integer``, ``number`` (numbers written as text included), ``text``, ``list``
    (JSON text), ``datetime`` or ``other`` (binary, objects, mixed types)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        finite = to_float(sample)
        finite = finite[np.isfinite(finite)]
        return "integer" if len(finite) and bool(np.all(finite == np.floor(finite))) else "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    kinds = set(map(type, sample))
    if kinds <= {bool, np.bool_} and kinds:
        return "boolean"
    if kinds and all(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
        return "integer"
    if kinds and all(
        issubclass(k, (int, float, np.integer, np.floating)) and not issubclass(k, (bool, np.bool_)) for k in kinds
    ):
        return "number"
    if kinds == {str}:
        if sample.str.startswith("[").all() and sample.str.endswith("]").all():
            return "list"
        numbers = pd.Series(to_float(sample, finite=False))
        if numbers.notna().mean() >= 0.95:
            return "integer" if bool((numbers.dropna() == np.floor(numbers.dropna())).all()) else "number"
        return "text"
    return "other"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def profile_column(name: str, values: pd.Series) -> dict[str, Any]:
    """One row of :func:`profile_columns` (chapter "The OCSF pipeline")."""
    present = values[values.notna()]
    sample = _distinct_sample(present)
    kind = _value_type(values, sample) if len(present) else "empty"
    try:
        distinct = int(present.nunique())
    except TypeError:
        distinct = len(sample)
    row: dict[str, Any] = dict.fromkeys(PROFILE_COLUMNS, np.nan)
    row.update(
        column=name, type=kind, coverage=len(present) / max(len(values), 1), present=len(present), distinct=distinct
    )
    if kind in ("integer", "number", "boolean"):
        numbers = to_float(present) if kind != "boolean" else np.zeros(0)
        numbers = numbers[np.isfinite(numbers)]
        if len(numbers):
            skew = float(pd.Series(numbers).skew()) if len(numbers) > 2 else 0.0
            row.update(
                minimum=float(numbers.min()),
                maximum=float(numbers.max()),
                median=float(np.median(numbers)),
                skew=skew if np.isfinite(skew) else 0.0,
            )
    elif kind in ("text", "list"):
        text = sample.astype(str)
        row.update(
            median_words=float(text.str.split().str.len().median()),
            median_length=float(text.str.len().median()),
            id_like=float(text.map(lambda v: bool(UUID_PATTERN.fullmatch(v) or _ID_VALUE.fullmatch(v))).mean()),
            ip=float(text.map(_is_ip).mean()),
            url=float(text.map(lambda v: bool(_URL_VALUE.match(v))).mean()),
            iso_time=float(text.map(lambda v: bool(_ISO_TIME.match(v))).mean()),
        )
    return row


def profile_columns(frame: Any) -> pd.DataFrame:
    """One row per flat column: ``coverage`` (share of events where it is present), ``type``,
    ``distinct`` values, for numbers ``minimum``/``maximum``/``median``/``skew``, for text the
    median words and length and the shares of distinct values that look like identifiers, IP
    addresses, URLs or ISO times (chapter "The OCSF pipeline")."""
    frame = as_flat_frame(frame)
    return pd.DataFrame([profile_column(str(c), frame[c]) for c in frame.columns], columns=PROFILE_COLUMNS)


# --------------------------------------------------------------------------------------------
# One decision per column
# --------------------------------------------------------------------------------------------


@dataclass
class Decision:
    """What happens to one column: a feature (``feature`` set) or left out, and why."""

    column: str
    reason: str
    feature: NumericalFeature | CategoricalFeature | None = None


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.01 or share == 0 else f"{100 * share:.1f}%"


def _values(count: int) -> str:
    return f"{count} distinct value{'' if count == 1 else 's'}"


def _counts(row: pd.Series) -> str:
    return f"{_values(row['distinct'])} in {row['present']} events"


def _left_out(row: pd.Series, columns: set[str]) -> str | None:
    """Why a column is left out before any transform is chosen, or ``None``."""
    name, kind = row["column"], row["type"]
    last, parent = name_words(name)
    if kind == "empty":
        return "never present (always null)"
    if kind == "other":
        return "values the featuriser cannot read (binary, objects or mixed types)"
    if row["coverage"] < MIN_COVERAGE:
        return f"present in only {_pct(row['coverage'])} of events (under {_pct(MIN_COVERAGE)})"
    if row["distinct"] == 1 and row["coverage"] == 1.0:
        return "constant: the same value in every event"
    numeric = kind in ("integer", "number")
    time_name = bool(set(last) & TIME_WORDS) and not set(last) & QUANTITY_WORDS
    if (
        kind == "datetime"
        or (kind == "text" and row["iso_time"] >= 0.9)
        or (kind == "text" and time_name and row["distinct"] >= NEAR_UNIQUE_SHARE * row["present"])
        or (numeric and time_name and row["minimum"] >= EPOCH_SECONDS_2001)
        or (numeric and row["minimum"] >= EPOCH_MS_RANGE[0] and row["maximum"] < EPOCH_MS_RANGE[1])
    ):
        return "a timestamp other than time (hour and weekday come from time only)"
    if name in DERIVED and DERIVED[name][0] in columns:
        return f"determined by {DERIVED[name][0]} ({DERIVED[name][1]})"
    caption_of = [f"{name}_id", f"{name}_uid"]
    if name.endswith("_name"):  # class_name -> class_uid, activity_name -> activity_id
        caption_of += [f"{name[:-5]}_id", f"{name[:-5]}_uid"]
    enum = next((c for c in caption_of if c in columns and c != name), None)
    if kind == "text" and enum is not None:
        return f"caption of the enumeration {enum} (the same information as text)"
    per_event = bool(set(last + parent) & PER_EVENT_WORDS) and not set(parent) & ENTITY_WORDS
    entity = bool(set(parent) & ENTITY_WORDS or set(last[:-1]) & ENTITY_WORDS)
    if (last and last[-1] in ID_WORDS) or {"trace", "span", "traceid", "spanid"} & set(last):
        small_enum = kind == "integer" and row["distinct"] <= ENUM_MAX_VALUES and not per_event
        if not small_enum and (per_event or not entity):
            return f"an identifier by its name ({_counts(row)})"
    if kind == "text" and not entity and row["id_like"] >= 0.8 and row["distinct"] >= 10:
        return f"values look like generated identifiers: UUIDs, hex or long tokens ({_counts(row)})"
    wordy = row["median_words"] >= 4 or row["median_length"] >= 64
    if (
        kind == "text"
        and row["url"] < 0.8
        and row["distinct"] > 20
        and ((wordy and row["distinct"] >= 0.2 * row["present"]) or set(last) & FREE_TEXT_WORDS)
    ):
        return f"free text (median {row['median_words']:.0f} words, {_counts(row)})"
    return None


def _numerical(row: pd.Series, name: str) -> tuple[NumericalFeature, str]:
    """A numerical feature for a number column, ``log1p`` when heavy-tailed."""
    last, _ = name_words(row["column"])
    low, high, median, skew = row["minimum"], row["maximum"], row["median"], row["skew"]
    span = f"range {low:g} to {high:g}, skewness {skew:.1f}"
    quantity = bool(set(last) & (QUANTITY_WORDS | TIME_WORDS))  # a time-named number that is no timestamp: a duration
    ratio = (high + 1) / (max(median, 0) + 1)
    if low >= 0 and quantity:
        transform, why = "log1p", f"a non-negative quantity or duration by its name ({span}): log1p"
    elif low >= 0 and (skew > HEAVY_TAIL_SKEW or ratio >= 100):
        transform, why = "log1p", f"non-negative and heavy-tailed ({span}): log1p"
    elif abs(skew) > HEAVY_TAIL_SKEW:
        transform, why = "log1p", f"heavy-tailed with negative values ({span}): signed log1p"
    else:
        transform, why = "identity", f"a number ({span}): as is"
    missing = row["coverage"] < 1.0
    if missing:
        why += f"; present in {_pct(row['coverage'])} of events, with a missing indicator"
    return NumericalFeature(name, row["column"], transform, missing_indicator=missing), why


def _is_port(row: pd.Series) -> bool:
    return row["type"] == "integer" and name_words(row["column"])[0][-1:] == ["port"]


def _is_http_status(row: pd.Series) -> bool:
    named = bool(set(name_words(row["column"])[0]) & {"code", "status"})
    return row["type"] == "integer" and named and row["minimum"] >= 100 and row["maximum"] < 600


def _categorical_transform(row: pd.Series) -> tuple[str, str]:
    """The categorical transform of a column and why."""
    last, _ = name_words(row["column"])
    kind = row["type"]
    if kind == "boolean":
        return "bool", "true/false"
    if _is_port(row):
        return "port_bucket", "a port: well-known ports kept, others bucketed"
    if _is_http_status(row):
        return "status_class", "an HTTP status code: its class (2xx ... 5xx)"
    if kind == "integer":
        enum = bool(last) and last[-1] in ID_WORDS
        return "identity", "an enumeration or entity id" if enum else "an integer code"
    if kind == "text" and row["ip"] >= 0.9:
        return "subnet", "IP addresses: their /24 (IPv6 /48) network"
    if kind == "text" and row["url"] >= 0.8:
        return "url_template", "URLs or paths: ids in them replaced by {id}"
    return "identity", "a list (JSON text)" if kind == "list" else "text"


def _is_code(row: pd.Series) -> bool:
    """An integer column that is a category: an enumeration or entity id, a port, an HTTP
    status, or a column of few values with no quantity in its name."""
    last, _ = name_words(row["column"])
    if row["type"] != "integer":
        return False
    if (last and last[-1] in ID_WORDS) or _is_port(row) or _is_http_status(row):
        return True
    return row["distinct"] <= CODE_MAX_VALUES and not set(last) & QUANTITY_WORDS


def decide_column(
    row: pd.Series, frame: pd.DataFrame, name: str, max_categories: int = MAX_CATEGORIES, num_buckets: int = NUM_BUCKETS
) -> Decision:
    """The decision for one column the built-in specification does not use; ``row`` is its
    :func:`profile_columns` row, ``name`` the feature name to give it (chapter "The OCSF pipeline")."""
    column = row["column"]
    why_not = _left_out(row, set(frame.columns))
    if why_not is not None:
        return Decision(column, why_not)
    if row["type"] in ("integer", "number") and not _is_code(row):
        feature, why = _numerical(row, name)
        return Decision(column, why, feature)
    transform, why = _categorical_transform(row)
    values = first_present(frame, column)
    text = pd.Series(CATEGORICAL_TRANSFORMS[transform](values), dtype=object)
    readable = int(text.notna().sum())
    distinct = int(text.nunique(dropna=True))
    if readable == 0:
        return Decision(column, f"no value readable as {transform}")
    if readable >= MIN_PRESENT_TO_JUDGE and distinct >= NEAR_UNIQUE_SHARE * readable:
        return Decision(
            column,
            f"near-unique per event, an identifier rather than a category ({_values(distinct)} in {readable} events)",
        )
    if distinct == 1 and readable == len(frame):
        return Decision(column, f"constant after the transform {transform}")
    why += f"; {_values(distinct)} in {_pct(readable / len(frame))} of events"
    if distinct > max_categories:
        why += f", hashed into {num_buckets} buckets (more than {max_categories})"
    feature = CategoricalFeature(name, column, transform, max_categories=max_categories, num_buckets=num_buckets)
    return Decision(column, why, feature)


# --------------------------------------------------------------------------------------------
# The report and the inferred specification
# --------------------------------------------------------------------------------------------


def feature_report(spec: FeatureSpec, frame: Any) -> pd.DataFrame:
    """One row per feature of ``spec`` on ``frame`` (chapter "The OCSF pipeline"): ``source`` (the
    source paths present, ``|``-separated), ``kind``, ``transform``, ``coverage`` (share of events
    with a readable value), ``distinct`` values (before hashing) and ``hashed`` (whether fitting on
    ``frame`` hashes the category; always ``False`` for numbers)."""
    frame = as_flat_frame(frame)
    rows = []
    for kind, items, transforms in (
        ("numerical", spec.numerical, NUMERICAL_TRANSFORMS),
        ("categorical", spec.categorical, CATEGORICAL_TRANSFORMS),
    ):
        for feature in items:
            sources = source_paths(feature.source)
            values = pd.Series(transforms[feature.transform](first_present(frame, feature.source)))
            if kind == "numerical":
                values = values.where(np.isfinite(values))
            distinct = int(values.nunique(dropna=True))
            rows.append(
                {
                    "feature": feature.name,
                    "kind": kind,
                    "source": " | ".join(s for s in sources if s in frame.columns) or "(absent)",
                    "transform": feature.transform,
                    "coverage": float(values.notna().mean()),
                    "distinct": distinct,
                    "hashed": kind == "categorical" and feature.hashes(distinct),
                }
            )
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def format_report(report: pd.DataFrame) -> str:
    """A feature report as a text table (coverage in percent, without the long reasons), as the
    command line prints it."""
    shown = report[[c for c in REPORT_COLUMNS + ["origin"] if c in report.columns]]
    return shown.assign(coverage=[_pct(c) for c in shown["coverage"]]).to_string(index=False)


@dataclass
class InferredSpec:
    """The result of :func:`infer_feature_spec` (chapter "The OCSF pipeline").

    ``spec`` is the specification; ``report`` its :func:`feature_report` on the data, with the
    ``origin`` (built-in or inferred) and ``reason`` of each feature; ``columns`` the
    :func:`profile_columns` table with the ``decision`` (the feature a column feeds, or
    ``"left out"``) and its ``reason``; ``dropped`` the built-in features absent from the data,
    with why.
    """

    spec: FeatureSpec
    report: pd.DataFrame
    columns: pd.DataFrame
    dropped: dict[str, str]
    num_events: int

    @property
    def excluded(self) -> pd.DataFrame:
        """The columns left out and why."""
        left = self.columns[self.columns["decision"] == "left out"]
        return left[["column", "reason"]].reset_index(drop=True)

    def summary(self) -> str:
        """The report table, then the columns left out and the built-in features dropped, with
        their reasons (what ``tabresnet-course spec`` prints)."""
        counts = self.report["origin"].value_counts()
        head = (
            f"{len(self.report)} features ({counts.get('built-in', 0)} built-in, "
            f"{counts.get('inferred', 0)} inferred) from {self.num_events} events:"
        )
        lines = [head, format_report(self.report)]
        if len(self.excluded):
            lines.append(f"left out ({len(self.excluded)} columns):")
            lines += [f"  {c}: {r}" for c, r in zip(self.excluded["column"], self.excluded["reason"])]
        if self.dropped:
            lines.append(f"built-in features dropped ({len(self.dropped)}):")
            lines += [f"  {name}: {reason}" for name, reason in self.dropped.items()]
        return "\n".join(lines)

    def to_yaml(self, title: str = "") -> str:
        """The specification as YAML with a comment above each feature saying why it was chosen,
        and the columns left out and the built-in features dropped listed at the end."""

        def comment(text: str) -> str:
            return "# " + " ".join(str(text).split())

        reasons = dict(zip(self.report["feature"], zip(self.report["origin"], self.report["reason"])))
        lines = [
            comment(
                f"Feature specification inferred by tabresnet_course{' from ' + title if title else ''} "
                f"({self.num_events} events)."
            ),
            "# Edit it (remove a feature, change a transform, add a source) and pass it back with",
            "#   tabresnet-course train --spec THIS_FILE ...",
            "# Transforms: numerical identity, log1p, hour_sin/cos, weekday_sin/cos; categorical identity,",
            "# lower, bool, subnet, port_bucket, status_class, url_template. Hashing: max_categories, num_buckets.",
            f"format_version: {self.spec.to_dict()['format_version']}",
        ]
        for kind, items in (("numerical", self.spec.numerical), ("categorical", self.spec.categorical)):
            lines.append(f"{kind}:" if items else f"{kind}: []")
            for feature in items:
                origin, reason = reasons[feature.name]
                lines.append(comment(f"{origin}: {reason}"))
                lines.append(yaml.safe_dump([asdict(feature)], sort_keys=False, width=1000).rstrip("\n"))
        if len(self.excluded):
            lines.append("# Columns left out:")
            lines += [comment(f"- {c}: {r}") for c, r in zip(self.excluded["column"], self.excluded["reason"])]
        if self.dropped:
            lines.append("# Built-in features dropped:")
            lines += [comment(f"- {name}: {reason}") for name, reason in self.dropped.items()]
        return "\n".join(lines) + "\n"

    def to_file(self, path: str | os.PathLike, overwrite: bool = False, title: str = "") -> Path:
        """Write the specification: commented YAML (``.yaml``, ``.yml``) or plain JSON (``.json``),
        atomically; an existing file raises :class:`~tabresnet_course.errors.InputError` unless
        ``overwrite=True``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.spec.to_dict(), indent=2) + "\n"
        elif suffix in (".yaml", ".yml"):
            text = self.to_yaml(title)
        else:
            raise InputError(f"{path}: feature specification must be .json, .yaml or .yml")
        return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def _unique_name(column: str, taken: set[str]) -> str:
    """A feature name from a dotted column (``unmapped.region`` -> ``unmapped_region``), unique
    among ``taken`` together with its missing indicator."""
    base = re.sub(r"[^0-9A-Za-z]+", "_", column).strip("_").lower() or "column"
    name, number = base, 1
    while name in taken or missing_indicator_name(name) in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def _builtin_drop_reason(feature: NumericalFeature | CategoricalFeature, frame: pd.DataFrame) -> str:
    sources = source_paths(feature.source)
    present = [s for s in sources if s in frame.columns]
    if not present:
        return f"source {' | '.join(sources)} absent from the data"
    return f"source {' | '.join(present)} present but no value is readable ({feature.transform})"


def infer_feature_spec(
    events: Any,
    *,
    base: FeatureSpec | None = None,
    max_categories: int = MAX_CATEGORIES,
    num_buckets: int = NUM_BUCKETS,
) -> InferredSpec:
    """Infer a feature specification for ``events`` (anything
    :func:`~tabresnet_course.events.flat.as_flat_frame` takes), chapter "The OCSF pipeline".

    The features of ``base`` (the built-in specification when ``None``) with a readable value in
    the data are kept, the others dropped with a reason; every other column gets a
    :func:`decide_column` decision: a feature, or left out with a reason. Inferred categories with
    more than ``max_categories`` distinct values are hashed into ``num_buckets`` buckets. Raises
    ``ValueError`` ("no usable feature") when nothing is left.
    """
    frame = as_flat_frame(events)
    if len(frame) == 0:
        raise ValueError("cannot infer a feature specification from 0 events")
    base = base if base is not None else FeatureSpec.default()
    base_report = feature_report(base, frame)
    usable = dict(zip(base_report["feature"], base_report["coverage"] > 0))
    kept = {
        kind: [f for f in getattr(base, kind) if usable.get(f.name, False)] for kind in ("numerical", "categorical")
    }
    dropped = {
        f.name: _builtin_drop_reason(f, frame)
        for f in base.numerical + base.categorical
        if not usable.get(f.name, False)
    }
    profile = profile_columns(frame)
    used_by: dict[str, str] = {}
    for feature in kept["numerical"] + kept["categorical"]:
        for source in source_paths(feature.source):
            used_by.setdefault(source, feature.name)
    taken = {f.name for f in kept["numerical"] + kept["categorical"]} | {
        missing_indicator_name(f.name) for f in kept["numerical"]
    }
    decisions, inferred_reasons = [], {}
    for _, row in profile.iterrows():
        column = row["column"]
        if column in used_by:
            decisions.append((f"built-in {used_by[column]}", "used by the built-in feature"))
            continue
        decision = decide_column(row, frame, _unique_name(column, taken), max_categories, num_buckets)
        if decision.feature is None:
            decisions.append(("left out", decision.reason))
            continue
        feature = decision.feature
        kept["numerical" if isinstance(feature, NumericalFeature) else "categorical"].append(feature)
        taken.update({feature.name, missing_indicator_name(feature.name)})
        inferred_reasons[feature.name] = decision.reason
        decisions.append((f"inferred {feature.name}", decision.reason))
    if not kept["numerical"] and not kept["categorical"]:
        raise ValueError(
            f"no usable feature in {len(frame)} events: every built-in source is absent and every "
            f"other column is left out ({len(profile)} columns; see 'tabresnet-course spec')"
        )
    spec = FeatureSpec(**kept)
    report = feature_report(spec, frame)
    report["origin"] = np.where(report["feature"].isin(list(inferred_reasons)), "inferred", "built-in")
    report["reason"] = [
        inferred_reasons.get(name, f"{source} in {_pct(coverage)} of events")
        for name, source, coverage in zip(report["feature"], report["source"], report["coverage"])
    ]
    columns = profile.assign(decision=[d for d, _ in decisions], reason=[r for _, r in decisions])
    return InferredSpec(spec, report, columns, dropped, len(frame))
