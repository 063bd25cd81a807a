"""Per-entity rate features computed from ``time`` with no look-ahead.

Burst attacks (brute force, port scans) are anomalous by rate and fan-out rather than by any
single field: one failed logon is ordinary, sixty from one address in five minutes are not. Like
the per-entity baselines of security tools (Elastic ML's ``by_field_name``, OpenSearch's entity
detectors), :func:`rate_features` counts, for every event, what its source address or user did
in a window that *ends at that event*: only earlier events and the event itself count (events
with the same timestamp count in input order), so a feature never depends on the future. A
burst keeps high rates even when a few bursts sit in the reference period, because a kNN or a
forest on these columns still finds the burst far from the mass of ordinary, low-rate events.

Input is the flat dotted-column frame of chapter "The OCSF pipeline". Only ``time`` (epoch
milliseconds) is required; an absent entity or measure column gives zeros (real exports differ).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tabresnet_course.events.flat import first_present
from tabresnet_course.features.spec import USER_SOURCES
from tabresnet_course.values import MS_PER_MINUTE, to_float

__all__ = [
    "AUTHENTICATION_CLASS_UID",
    "FAILURE_STATUS_ID",
    "RATE_FEATURES",
    "RATE_INPUT_COLUMNS",
    "SOURCE_COLUMNS",
    "ChunkedRates",
    "distinct_per_minute",
    "event_times",
    "numeric_column",
    "rate_feature_names",
    "rate_features",
    "readable_times",
    "windowed_sum",
]

SOURCE_COLUMNS: tuple[str, ...] = ("src_endpoint.ip",)
AUTHENTICATION_CLASS_UID = 3002
FAILURE_STATUS_ID = 2

RATE_FEATURES: tuple[str, ...] = (
    "events_per_source_1m",
    "failed_logons_per_source_{m}m",
    "failed_logons_per_user_{m}m",
    "distinct_ports_per_source_1m",
    "bytes_out_per_source_1h",
    "bytes_out_per_user_1h",
)
"""Column names of :func:`rate_features` (``{m}`` is ``failed_logon_minutes``)."""


RATE_INPUT_COLUMNS: tuple[str, ...] = (
    "time",
    *SOURCE_COLUMNS,
    *USER_SOURCES,
    "class_uid",
    "status_id",
    "traffic.bytes_out",
    "dst_endpoint.port",
)
"""The flat columns :func:`rate_features` reads with its default entity columns."""


def rate_feature_names(failed_logon_minutes: int = 5) -> list[str]:
    """The columns :func:`rate_features` returns, in order."""
    return [name.format(m=failed_logon_minutes) for name in RATE_FEATURES]


def numeric_column(frame: pd.DataFrame, column: str, default: float = 0.0) -> np.ndarray:
    """``frame[column]`` as float64; what :func:`~tabresnet_course.values.to_float` cannot read
    (missing values, text that is not a number, infinities, numbers beyond float64) and an
    absent column count as ``default``."""
    if column not in frame.columns:
        return np.full(len(frame), default)
    values = to_float(frame[column])
    return np.where(np.isnan(values), default, values)


def readable_times(frame: pd.DataFrame) -> np.ndarray:
    """Boolean ``(N,)``: which events have a ``time`` that is a number of epoch milliseconds
    a timestamp can hold (none when the column is absent)."""
    if "time" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    times = to_float(frame["time"])
    with np.errstate(invalid="ignore"):
        return (times >= pd.Timestamp.min.value // 1_000_000 + 1) & (times <= pd.Timestamp.max.value // 1_000_000)


def event_times(frame: pd.DataFrame) -> np.ndarray:
    """The ``time`` column as int64 epoch milliseconds; ``ValueError`` naming the first bad row."""
    if "time" not in frame.columns:
        raise ValueError(f"rate features need a 'time' column (epoch ms); columns: {list(frame.columns)[:10]}")
    readable = readable_times(frame)
    if not readable.all():
        row = int(np.flatnonzero(~readable)[0])
        raise ValueError(f"column 'time', row {row}: {frame['time'].iloc[row]!r} is not an epoch-millisecond time")
    return to_float(frame["time"]).astype(np.int64)


def windowed_sum(times: np.ndarray, entity: pd.Series, values: np.ndarray, window_ms: int) -> np.ndarray:
    """For each row, the sum of ``values`` over the rows of the same ``entity`` whose time lies in
    ``(time - window_ms, time]`` and that come at or before it in time order (ties in input
    order). Rows without an entity get 0. ``times`` must already be sorted."""
    known = entity.notna().to_numpy()
    out = np.zeros(len(times))
    if not known.any():
        return out
    table = pd.DataFrame(
        {
            "entity": entity.to_numpy()[known].astype(str),
            "time": pd.to_datetime(times[known], unit="ms"),
            "value": values[known],
        },
        index=np.flatnonzero(known),
    )
    groups = table.groupby("entity", sort=False)
    rolled = groups.rolling(f"{int(window_ms)}ms", on="time")["value"].sum()
    # The result lists the groups in order of appearance, each in input order.
    rows = table.index.to_numpy()[np.argsort(groups.ngroup().to_numpy(), kind="stable")]
    out[rows] = rolled.to_numpy()
    return out


def rate_features(
    frame: pd.DataFrame,
    *,
    failed_logon_minutes: int = 5,
    source_columns: Sequence[str] = SOURCE_COLUMNS,
    user_columns: Sequence[str] = USER_SOURCES,
    untimed: str = "raise",
) -> pd.DataFrame:
    """Per-entity rates of each event, computed causally (chapter "The OCSF pipeline").

    Columns (see :data:`RATE_FEATURES`), for the event's source address (``source_columns``) or
    user (first present of ``user_columns``), counting the event itself:

    - ``events_per_source_1m``: events in the last minute;
    - ``failed_logons_per_{source,user}_{m}m``: failed logons (Authentication, ``status_id`` 2)
      in the last ``failed_logon_minutes`` minutes;
    - ``distinct_ports_per_source_1m``: distinct ``dst_endpoint.port`` values so far in the
      current clock minute (a tumbling window, which counts distinct values exactly);
    - ``bytes_out_per_{source,user}_1h``: ``traffic.bytes_out`` in the last hour.

    An event without a readable ``time`` (or a frame without the column) raises ``ValueError``
    naming the row, or, with ``untimed="zero"`` (what the detector uses, so that every readable
    record gets a score), gets zero rates and counts towards no other event's rates.

    Returns a float64 frame with ``frame``'s index, in ``frame``'s row order.
    """
    minutes = int(failed_logon_minutes)
    if minutes < 1 or minutes != failed_logon_minutes:
        raise ValueError(f"failed_logon_minutes must be a positive integer, got {failed_logon_minutes!r}")
    if untimed not in ("raise", "zero"):
        raise ValueError(f"untimed must be 'raise' or 'zero', got {untimed!r}")
    options = {"failed_logon_minutes": minutes, "source_columns": source_columns, "user_columns": user_columns}
    if untimed == "zero":
        timed = readable_times(frame)
        result = pd.DataFrame(0.0, index=frame.index, columns=rate_feature_names(minutes))
        if timed.any():
            result.loc[timed] = rate_features(frame[timed], **options).to_numpy()
        return result
    times = event_times(frame)
    order = np.argsort(times, kind="stable")
    ordered = frame.iloc[order]
    sorted_times = times[order]
    source = first_present(ordered, source_columns).reset_index(drop=True)
    user = first_present(ordered, user_columns).reset_index(drop=True)
    failed = (numeric_column(ordered, "class_uid", -1) == AUTHENTICATION_CLASS_UID) & (
        numeric_column(ordered, "status_id", -1) == FAILURE_STATUS_ID
    )
    bytes_out = numeric_column(ordered, "traffic.bytes_out")
    ones = np.ones(len(ordered))
    columns = {
        "events_per_source_1m": windowed_sum(sorted_times, source, ones, MS_PER_MINUTE),
        f"failed_logons_per_source_{minutes}m": windowed_sum(
            sorted_times, source, failed * 1.0, minutes * MS_PER_MINUTE
        ),
        f"failed_logons_per_user_{minutes}m": windowed_sum(sorted_times, user, failed * 1.0, minutes * MS_PER_MINUTE),
        "distinct_ports_per_source_1m": distinct_per_minute(sorted_times, source, ordered, "dst_endpoint.port"),
        "bytes_out_per_source_1h": windowed_sum(sorted_times, source, bytes_out, 60 * MS_PER_MINUTE),
        "bytes_out_per_user_1h": windowed_sum(sorted_times, user, bytes_out, 60 * MS_PER_MINUTE),
    }
    result = np.empty((len(frame), len(columns)))
    result[order] = np.column_stack(list(columns.values()))
    return pd.DataFrame(result, index=frame.index, columns=list(columns))


def distinct_per_minute(times: np.ndarray, entity: pd.Series, ordered: pd.DataFrame, column: str) -> np.ndarray:
    """For each row (sorted by time), the number of distinct non-missing ``column`` values the
    row's ``entity`` has shown so far in the current clock minute, this row included."""
    if column not in ordered.columns:
        return np.zeros(len(times))
    table = pd.DataFrame(
        {
            "entity": entity.to_numpy(),
            "minute": times // MS_PER_MINUTE,
            "value": ordered[column].to_numpy(),
        }
    )
    usable = table["entity"].notna() & table["value"].notna()
    first_seen = usable & ~table.duplicated(["entity", "minute", "value"])
    counts = first_seen.astype(float).groupby([table["entity"], table["minute"]], dropna=True).cumsum()
    out = np.zeros(len(times))
    known = table["entity"].notna().to_numpy()
    out[known] = counts.reindex(table.index[known]).to_numpy()
    return out


class ChunkedRates:
    """:func:`rate_features` (with ``untimed="zero"``) of events that arrive in chunks, such as a
    file scored chunk by chunk (chapter "The OCSF pipeline"). Each :meth:`transform` computes the
    rates of the previous chunks' timed events that may still fall in a window (those less than
    the longest window, one hour, older than the latest time seen) followed by the chunk, and
    keeps the chunk's rows; only the :data:`RATE_INPUT_COLUMNS` of that context are held.

    Exact for time-ordered input: when no event is older than an event of an earlier chunk, the
    rates equal those of :func:`rate_features` on all the events at once, whatever the chunk
    sizes (byte sums are exact while they are whole numbers below 2**53). An event older than
    an earlier chunk's events cannot count towards them any more, and older context may be gone.
    """

    def __init__(self, failed_logon_minutes: int = 5) -> None:
        self.failed_logon_minutes = failed_logon_minutes
        self.window_ms = max(60, int(failed_logon_minutes)) * MS_PER_MINUTE
        self.context: pd.DataFrame | None = None

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rates of ``frame``'s events (``frame``'s index, in its row order), counting the
        context of the chunks before it; the context then moves on to include ``frame``."""
        current = frame[[c for c in RATE_INPUT_COLUMNS if c in frame.columns]].reset_index(drop=True)
        joined = current if self.context is None else pd.concat([self.context, current], ignore_index=True)
        rates = rate_features(joined, failed_logon_minutes=self.failed_logon_minutes, untimed="zero")
        timed = readable_times(joined)
        if timed.any():
            times = to_float(joined["time"])
            self.context = joined[timed & (times > times[timed].max() - self.window_ms)]
        rows = rates.to_numpy()[len(joined) - len(current) :]
        return pd.DataFrame(rows, index=frame.index, columns=rates.columns)
