"""The transforms of a feature specification: one flat column in, one feature column out.

Chapter "The OCSF pipeline" teaches this file. Numerical transforms return ``float64`` arrays (NaN
when missing or unreadable), categorical ones object arrays of text (``None`` when missing or
unreadable); :class:`~tabresnet_course.features.spec.FeatureSpec` names them by the keys of
:data:`NUMERICAL_TRANSFORMS` and :data:`CATEGORICAL_TRANSFORMS`. Cells are read by
:func:`~tabresnet_course.values.to_float` and :func:`~tabresnet_course.values.category_text`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tabresnet_course.values import MS_PER_DAY, MS_PER_HOUR, category_text, category_texts, map_distinct, to_float

__all__ = [
    "CATEGORICAL_TRANSFORMS",
    "NUMERICAL_TRANSFORMS",
    "UUID_PATTERN",
    "WELL_KNOWN_PORTS",
    "cat_bool",
    "cat_identity",
    "cat_lower",
    "cat_port_bucket",
    "cat_status_class",
    "cat_subnet",
    "cat_url_template",
    "hash_categories",
    "num_hour_cos",
    "num_hour_sin",
    "num_identity",
    "num_log1p",
    "num_weekday_cos",
    "num_weekday_sin",
    "stable_bucket",
]


def num_identity(values: pd.Series) -> np.ndarray:
    """The value as a number."""
    return to_float(values)


def num_log1p(values: pd.Series) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: byte counts and latencies span many orders of magnitude."""
    x = to_float(values)
    return np.sign(x) * np.log1p(np.abs(x))


def _hour_of_day(values: pd.Series) -> np.ndarray:
    """Hour of day (UTC, fractional) of an epoch-milliseconds timestamp."""
    return np.mod(to_float(values), MS_PER_DAY) / MS_PER_HOUR


def _weekday(values: pd.Series) -> np.ndarray:
    """Day of week (UTC, Monday = 0) of an epoch-milliseconds timestamp; 1970-01-01 was a Thursday."""
    return np.mod(np.floor(to_float(values) / MS_PER_DAY) + 3, 7)


def num_hour_sin(values: pd.Series) -> np.ndarray:
    """``sin(2 pi hour / 24)`` of ``time`` (epoch ms, UTC): 23:00 sits next to 00:00."""
    return np.sin(2 * np.pi * _hour_of_day(values) / 24.0)


def num_hour_cos(values: pd.Series) -> np.ndarray:
    """``cos(2 pi hour / 24)`` of ``time`` (epoch ms, UTC)."""
    return np.cos(2 * np.pi * _hour_of_day(values) / 24.0)


def num_weekday_sin(values: pd.Series) -> np.ndarray:
    """``sin(2 pi weekday / 7)`` of ``time`` (epoch ms, UTC)."""
    return np.sin(2 * np.pi * _weekday(values) / 7.0)


def num_weekday_cos(values: pd.Series) -> np.ndarray:
    """``cos(2 pi weekday / 7)`` of ``time`` (epoch ms, UTC)."""
    return np.cos(2 * np.pi * _weekday(values) / 7.0)


def cat_identity(values: pd.Series) -> np.ndarray:
    """The value as text (``200`` and ``200.0`` both give ``"200"``; booleans ``"true"``/``"false"``)."""
    return category_texts(values)


def cat_lower(values: pd.Series) -> np.ndarray:
    """The value as lower-case text."""

    def lower(value: Any) -> str | None:
        text = category_text(value)
        return None if text is None else text.lower()

    return map_distinct(values, lower)


def cat_bool(values: pd.Series) -> np.ndarray:
    """``"true"`` / ``"false"`` from booleans, 0/1 or their text; anything else is invalid."""
    table = {"true": "true", "false": "false", "1": "true", "0": "false"}
    return map_distinct(values, lambda v: table.get((category_text(v) or "").lower()))


def _subnet(value: Any) -> str | None:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def cat_subnet(values: pd.Series) -> np.ndarray:
    """The ``/24`` network of an IPv4 address (``/48`` for IPv6): ``"10.20.3.0/24"``."""
    return map_distinct(values, _subnet)


WELL_KNOWN_PORTS = frozenset(
    {
        20,
        21,
        22,
        23,
        25,
        53,
        67,
        68,
        69,
        80,
        88,
        110,
        123,
        135,
        137,
        138,
        139,
        143,
        161,
        162,
        389,
        443,
        445,
        465,
        514,
        587,
        636,
        993,
        995,
        1433,
        1521,
        2049,
        3306,
        3389,
        5432,
        5900,
        5985,
        5986,
        6379,
        8080,
        8443,
        9200,
        27017,
    }
)


def cat_port_bucket(values: pd.Series) -> np.ndarray:
    """Well-known ports kept (``"443"``); others ``"system"`` (<1024), ``"registered"``, ``"ephemeral"``."""
    port = to_float(values)
    valid = (port >= 0) & (port <= 65535) & (np.floor(port) == port)
    safe = np.where(valid, port, 0).astype(np.int64)
    out = np.select(
        [valid & np.isin(safe, list(WELL_KNOWN_PORTS)), valid & (safe < 1024), valid & (safe < 49152), valid],
        [safe.astype(str).astype(object), "system", "registered", "ephemeral"],
        default=None,
    ).astype(object)
    out[~valid] = None
    return out


def cat_status_class(values: pd.Series) -> np.ndarray:
    """HTTP status class: ``"2xx"`` ... ``"5xx"`` (codes outside 100-599 are invalid)."""
    code = to_float(values)
    valid = (code >= 100) & (code < 600)
    labels = np.array([None, "1xx", "2xx", "3xx", "4xx", "5xx"], dtype=object)
    return labels[np.where(valid, np.floor(code / 100), 0).astype(np.int64)]


UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
"""A UUID, with or without its hyphens (use ``fullmatch``): a URL segment or a value that names one thing."""
_HEX = re.compile(r"(?=.*\d)[0-9a-fA-F]{8,}")
_NUMBER = re.compile(r"\d+")
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{24,}")


def _template_path(value: Any) -> str | None:
    text = category_text(value)
    if text is None:
        return None
    path = re.split(r"[?#]", text, maxsplit=1)[0]
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if any(p.fullmatch(segment) for p in (_NUMBER, UUID_PATTERN, _HEX, _TOKEN)):
            segments[i] = "{id}"
    return "/".join(segments) or "/"


def cat_url_template(values: pd.Series) -> np.ndarray:
    """URL path with ids replaced: ``/api/v2/orders/123?x=1`` -> ``/api/v2/orders/{id}``.

    A segment becomes ``{id}`` when it is all digits, a UUID, a hex string of 8+ characters
    with a digit, or a token of 24+ characters; query strings and fragments are dropped.
    """
    return map_distinct(values, _template_path)


NUMERICAL_TRANSFORMS: dict[str, Callable[[pd.Series], np.ndarray]] = {
    "identity": num_identity,
    "log1p": num_log1p,
    "hour_sin": num_hour_sin,
    "hour_cos": num_hour_cos,
    "weekday_sin": num_weekday_sin,
    "weekday_cos": num_weekday_cos,
}
CATEGORICAL_TRANSFORMS: dict[str, Callable[[pd.Series], np.ndarray]] = {
    "identity": cat_identity,
    "lower": cat_lower,
    "bool": cat_bool,
    "subnet": cat_subnet,
    "port_bucket": cat_port_bucket,
    "status_class": cat_status_class,
    "url_template": cat_url_template,
}


def stable_bucket(value: str, num_buckets: int) -> int:
    """Bucket of a string from BLAKE2b: the same in every process (unlike the salted ``hash()``).

    Chapter "The OCSF pipeline".
    """
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_buckets


def hash_categories(values: np.ndarray, num_buckets: int) -> np.ndarray:
    """Replace each text value by its bucket label ``"#17"``; each distinct value is hashed once.

    Chapter "The OCSF pipeline".
    """
    return map_distinct(pd.Series(values, dtype=object), lambda v: f"#{stable_bucket(str(v), num_buckets)}")
