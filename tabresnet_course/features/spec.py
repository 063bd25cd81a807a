"""From the flat table of OCSF events to named model features: ``FeatureSpec`` and ``OCSFFeaturizer``.

Chapter "The OCSF pipeline" teaches this file. The featuriser works on the *flat table* of
dotted columns that :func:`~tabresnet_course.events.flat.flatten_events`,
:func:`~tabresnet_course.events.files.read_events` and
:func:`~tabresnet_course.ocsf.generator.generate_ocsf_events` produce (and takes events in any form
:func:`~tabresnet_course.events.flat.as_flat_frame` accepts). A :class:`FeatureSpec` says which
columns become which features and how (log of byte counts, cyclical hour of day, ``/24``
subnets, port buckets, templated URL paths, ...). :class:`OCSFFeaturizer` applies it with
vectorised pandas and returns numerical features as ``float64`` (NaN when missing) and
categorical features as strings (``None`` when missing); it does *not* encode or scale them,
which is the job of ``tabresnet_course.preprocess.TabularPreprocessor``.

Mixed-class OCSF data is full of holes (an HTTP event has no ``file.size``): an absent field,
or a whole absent column, is a missing value, never an error. A value that cannot be read
(text where a number belongs, an address that is not an IP) becomes missing too, and is counted
in ``OCSFFeaturizer.coercion_report_`` so that nothing is lost silently.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.exceptions import NotFittedError

from tabresnet_course.artifacts import atomic_write_bytes
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import (
    as_flat_frame,
    flatten_event,  # noqa: F401 (re-exported: chapters and tests import it from here)
    flatten_events,  # noqa: F401 (re-exported: chapters and tests import it from here)
)

SPEC_FORMAT_VERSION = 1

# --------------------------------------------------------------------------------------------
# Transforms: numerical ones return float64 arrays, categorical ones object arrays of str/None
# --------------------------------------------------------------------------------------------

MS_PER_DAY = 86_400_000


def _to_float(values: pd.Series) -> np.ndarray:
    """Numbers as float64; text that is not a number, and infinities, become NaN; date-times
    (a Parquet timestamp column) become epoch milliseconds, a naive one read as UTC."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        out = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64).astype(np.float64)
        out[stamps.isna().to_numpy()] = np.nan
        return out
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        except (OverflowError, TypeError, ValueError):  # e.g. an integer beyond float range
            out = _map_unique(values, _safe_float).astype(np.float64)
    out = np.array(out, dtype=np.float64, copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def _safe_float(value: Any) -> float:
    if value is None or isinstance(value, (dict, list)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def _map_unique(values: pd.Series, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` applied once per distinct non-missing value (missing stays ``None``)."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells: fall back to one call per cell
        return np.array([None if _is_missing(v) else fn(v) for v in values], dtype=object)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = None
    return mapped[codes]  # code -1 (missing) picks the trailing None


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    """Canonical text of one scalar: ``200`` and ``200.0`` -> ``"200"``, ``True`` -> ``"true"``."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None
        return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def num_identity(values: pd.Series) -> np.ndarray:
    """The value as a number."""
    return _to_float(values)


def num_log1p(values: pd.Series) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: byte counts and latencies span many orders of magnitude."""
    x = _to_float(values)
    return np.sign(x) * np.log1p(np.abs(x))


def _hour_of_day(values: pd.Series) -> np.ndarray:
    """Hour of day (UTC, fractional) of an epoch-milliseconds timestamp."""
    return np.mod(_to_float(values), MS_PER_DAY) / 3_600_000.0


def _weekday(values: pd.Series) -> np.ndarray:
    """Day of week (UTC, Monday = 0) of an epoch-milliseconds timestamp; 1970-01-01 was a Thursday."""
    return np.mod(np.floor(_to_float(values) / MS_PER_DAY) + 3, 7)


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
    return _map_unique(values, _text)


def cat_lower(values: pd.Series) -> np.ndarray:
    """The value as lower-case text."""

    def lower(value: Any) -> str | None:
        text = _text(value)
        return None if text is None else text.lower()

    return _map_unique(values, lower)


def cat_bool(values: pd.Series) -> np.ndarray:
    """``"true"`` / ``"false"`` from booleans, 0/1 or their text; anything else is invalid."""
    table = {"true": "true", "false": "false", "1": "true", "0": "false"}
    return _map_unique(values, lambda v: table.get((_text(v) or "").lower()))


def _subnet(value: Any) -> str | None:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def cat_subnet(values: pd.Series) -> np.ndarray:
    """The ``/24`` network of an IPv4 address (``/48`` for IPv6): ``"10.20.3.0/24"``."""
    return _map_unique(values, _subnet)


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
    port = _to_float(values)
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
    code = _to_float(values)
    valid = (code >= 100) & (code < 600)
    labels = np.array([None, "1xx", "2xx", "3xx", "4xx", "5xx"], dtype=object)
    return labels[np.where(valid, np.floor(code / 100), 0).astype(np.int64)]


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=[^/]*\d)[0-9a-fA-F]{8,}$")
_NUMBER = re.compile(r"^\d+$")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{24,}$")


def _template_path(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    path = re.split(r"[?#]", text, maxsplit=1)[0]
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if _NUMBER.match(segment) or _UUID.match(segment) or _HEX.match(segment) or _TOKEN.match(segment):
            segments[i] = "{id}"
    return "/".join(segments) or "/"


def cat_url_template(values: pd.Series) -> np.ndarray:
    """URL path with ids replaced: ``/api/v2/orders/123?x=1`` -> ``/api/v2/orders/{id}``.

    A segment becomes ``{id}`` when it is all digits, a UUID, a hex string of 8+ characters
    with a digit, or a token of 24+ characters; query strings and fragments are dropped.
    """
    return _map_unique(values, _template_path)


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
    return _map_unique(pd.Series(values, dtype=object), lambda v: f"#{stable_bucket(str(v), num_buckets)}")


# --------------------------------------------------------------------------------------------
# The specification
# --------------------------------------------------------------------------------------------


def _check_type(name: Any, field_name: str, value: Any, kind: type, optional: bool = False) -> None:
    """Raise ``ValueError`` naming the feature and field unless ``value`` is a ``kind``
    (``bool`` is not an ``int`` here; ``None`` is allowed when ``optional``)."""
    if optional and value is None:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", int: "an integer", bool: "true or false"}[kind]
        expected += " or null" if optional else ""
        raise ValueError(f"feature {name!r}: {field_name} must be {expected}, got {value!r}")


def _check_source(name: str, source: Any) -> str | list[str]:
    if isinstance(source, str) and source:
        return source
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, str) and s for s in source):
        return list(source)
    raise ValueError(f"feature {name!r}: source must be a dotted path or a non-empty list of them, got {source!r}")


@dataclass
class NumericalFeature:
    """A number taken from ``source`` (a dotted path, or a list: first present value wins).

    Chapter "The OCSF pipeline".
    """

    name: str
    source: str | list[str]
    transform: str = "identity"
    missing_indicator: bool = False  # also emit "<name>_missing" (1.0 where the value is missing)

    def __post_init__(self) -> None:
        _check_type(self.name, "name", self.name, str)
        self.source = _check_source(self.name, self.source)
        _check_type(self.name, "transform", self.transform, str)
        _check_type(self.name, "missing_indicator", self.missing_indicator, bool)
        if self.transform not in NUMERICAL_TRANSFORMS:
            raise ValueError(
                f"feature {self.name!r}: unknown numerical transform {self.transform!r}; "
                f"choose from {sorted(NUMERICAL_TRANSFORMS)}"
            )


@dataclass
class CategoricalFeature:
    """A category taken from ``source``; hashed into ``num_buckets`` when, at fit time, it has
    more than ``max_categories`` distinct values (``None``: never hashed). Chapter "The OCSF pipeline"."""

    name: str
    source: str | list[str]
    transform: str = "identity"
    max_categories: int | None = None
    num_buckets: int = 128

    def __post_init__(self) -> None:
        _check_type(self.name, "name", self.name, str)
        self.source = _check_source(self.name, self.source)
        _check_type(self.name, "transform", self.transform, str)
        _check_type(self.name, "max_categories", self.max_categories, int, optional=True)
        _check_type(self.name, "num_buckets", self.num_buckets, int)
        if self.transform not in CATEGORICAL_TRANSFORMS:
            raise ValueError(
                f"feature {self.name!r}: unknown categorical transform {self.transform!r}; "
                f"choose from {sorted(CATEGORICAL_TRANSFORMS)}"
            )
        if self.num_buckets < 1 or (self.max_categories is not None and self.max_categories < 1):
            raise ValueError(f"feature {self.name!r}: num_buckets and max_categories must be positive")

    def hashes(self, cardinality: int) -> bool:
        """Whether a fit that finds ``cardinality`` distinct values hashes this feature."""
        return self.max_categories is not None and cardinality > self.max_categories


USER_SOURCES = [
    "user.name",
    "actor.user.name",
    "user.email_addr",
    "actor.user.email_addr",
    "user.uid",
    "actor.user.uid",
]
"""Where OCSF producers put the user: the event's ``user`` (Authentication) or the ``actor``'s
(API and other activity), by name, then e-mail address, then unique id."""


@dataclass
class FeatureSpec:
    """Which flat columns become which features (chapter "The OCSF pipeline").

    Round-trips through plain JSON or YAML (:meth:`to_dict`, :meth:`from_dict`,
    :meth:`from_file`, :meth:`to_file`).
    """

    numerical: list[NumericalFeature] = field(default_factory=list)
    categorical: list[CategoricalFeature] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.numerical = [f if isinstance(f, NumericalFeature) else NumericalFeature(**f) for f in self.numerical]
        self.categorical = [
            f if isinstance(f, CategoricalFeature) else CategoricalFeature(**f) for f in self.categorical
        ]
        names = self.numerical_columns + self.categorical_columns
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
        if not names:
            raise ValueError("a feature specification needs at least one feature")

    @property
    def numerical_columns(self) -> list[str]:
        """Names of the numerical output columns (missing indicators follow the features)."""
        return [f.name for f in self.numerical] + [f"{f.name}_missing" for f in self.numerical if f.missing_indicator]

    @property
    def categorical_columns(self) -> list[str]:
        """Names of the categorical output columns."""
        return [f.name for f in self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "format_version": SPEC_FORMAT_VERSION,
            "numerical": [asdict(f) for f in self.numerical],
            "categorical": [asdict(f) for f in self.categorical],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they are usually typos)."""
        if not isinstance(data, dict):
            raise ValueError(f"a feature specification must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"format_version", "numerical", "categorical"}
        if unknown:
            raise ValueError(f"unknown keys in feature specification: {', '.join(sorted(unknown))}")
        version = data.get("format_version", SPEC_FORMAT_VERSION)
        if version != SPEC_FORMAT_VERSION:
            raise ValueError(
                f"feature specification format_version {version!r} is not supported (expected {SPEC_FORMAT_VERSION})"
            )
        parts = {}
        for kind, feature_cls in (("numerical", NumericalFeature), ("categorical", CategoricalFeature)):
            items = data.get(kind) or []
            if not isinstance(items, list):
                raise ValueError(f"'{kind}' must be a list of features")
            built = []
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ValueError(f"{kind} feature {i} must be a mapping, got {item!r}")
                allowed = set(feature_cls.__dataclass_fields__)
                extra = set(item) - allowed
                if extra or "name" not in item or "source" not in item:
                    raise ValueError(
                        f"{kind} feature {item.get('name', i)!r}: needs name and source; "
                        f"unknown keys: {', '.join(sorted(extra)) or 'none'}"
                    )
                built.append(feature_cls(**item))
            parts[kind] = built
        return cls(**parts)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FeatureSpec:
        """Load a specification from ``.json``, ``.yaml`` or ``.yml``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".yaml", ".yml"):
            raise InputError(f"{path}: feature specification must be .json, .yaml or .yml")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise InputError(f"{path}: cannot read ({error.strerror or error})") from error
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise InputError(f"{path}: not valid {'JSON' if suffix == '.json' else 'YAML'} ({error})") from error
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as error:
            raise InputError(f"{path}: {error}") from error

    def to_file(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the specification as JSON or YAML (by extension), atomically; an existing file
        raises :class:`~tabresnet_course.errors.InputError` unless ``overwrite=True``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        elif suffix in (".yaml", ".yml"):
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            raise InputError(f"{path}: feature specification must be .json, .yaml or .yml")
        return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)

    @classmethod
    def infer(cls, frame: Any, **options: Any) -> FeatureSpec:
        """The specification :func:`~tabresnet_course.features.inference.infer_feature_spec` infers for
        ``frame`` (its ``.spec``; the reasons and the report are on its full result)."""
        from tabresnet_course.features.inference import infer_feature_spec

        return infer_feature_spec(frame, **options).spec

    @classmethod
    def default(cls) -> FeatureSpec:
        """Features for common OCSF attributes of the six generated classes. Sources list the
        places producers and OCSF versions put the same attribute (first present wins)."""
        num, cat = NumericalFeature, CategoricalFeature
        return cls(
            numerical=[
                num("bytes_in", "traffic.bytes_in", "log1p", missing_indicator=True),
                num("bytes_out", "traffic.bytes_out", "log1p", missing_indicator=True),
                num("latency", "http_response.latency", "log1p", missing_indicator=True),
                num("duration", "duration", "log1p", missing_indicator=True),
                num("file_size", "file.size", "log1p", missing_indicator=True),
                num("hour_sin", "time", "hour_sin"),
                num("hour_cos", "time", "hour_cos"),
                num("weekday_sin", "time", "weekday_sin"),
                num("weekday_cos", "time", "weekday_cos"),
            ],
            categorical=[
                cat("class_uid", "class_uid"),
                cat("type_uid", "type_uid"),
                cat("status_id", "status_id"),
                cat("severity_id", "severity_id"),
                cat("user", USER_SOURCES, max_categories=500, num_buckets=256),
                cat("src_subnet", "src_endpoint.ip", "subnet", max_categories=500, num_buckets=256),
                cat("dst_subnet", "dst_endpoint.ip", "subnet", max_categories=500, num_buckets=256),
                cat("src_country", "src_endpoint.location.country"),
                cat("dst_port", "dst_endpoint.port", "port_bucket"),
                cat("http_method", ["http_request.http_method", "http_request.method"], "lower"),
                cat("http_status", "http_response.code", "status_class"),
                cat(
                    "url_path",
                    ["http_request.url.path", "http_request.url.url_string"],
                    "url_template",
                    max_categories=1000,
                    num_buckets=256,
                ),
                cat("service", ["api.service.name", "service.name", "dst_endpoint.svc_name"], max_categories=500),
                cat("api_operation", "api.operation", max_categories=500),
                cat("process", "process.name", max_categories=500),
                cat("parent_process", "process.parent_process.name", max_categories=500),
                cat("process_user", "process.user.name", max_categories=500),
                cat("is_mfa", "is_mfa", "bool"),
                cat("logon_type", "logon_type_id"),
                cat("auth_protocol", "auth_protocol_id"),
            ],
        )


# --------------------------------------------------------------------------------------------
# The featuriser
# --------------------------------------------------------------------------------------------


def _source_values(frame: pd.DataFrame, source: str | list[str]) -> tuple[pd.Series, list[str]]:
    """The source column (first present value across several), and the sources that are absent."""
    paths = [source] if isinstance(source, str) else source
    present = [p for p in paths if p in frame.columns]
    absent = [p for p in paths if p not in frame.columns]
    if not present:
        return pd.Series(np.full(len(frame), None, dtype=object), index=frame.index, dtype=object), absent
    values = frame[present[0]]
    for path in present[1:]:
        values = values.astype(object).where(values.notna(), frame[path].astype(object))
    return values, absent


class OCSFFeaturizer:
    """Named features from the flat OCSF table, scikit-learn style (chapter "The OCSF pipeline").

    ``fit`` only decides, per categorical feature, whether its cardinality calls for hashing;
    ``transform`` returns a DataFrame with :attr:`numerical_columns` (``float64``, NaN when
    missing) then :attr:`categorical_columns` (text, ``None`` when missing), on the input's
    index. After each call, ``coercion_report_`` counts per output column the values that
    were present but unreadable (and therefore became missing).
    """

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec if spec is not None else FeatureSpec.default()

    # scikit-learn conventions ---------------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments."""
        return {"spec": self.spec}

    def set_params(self, **params: Any) -> OCSFFeaturizer:
        """Set constructor arguments (only ``spec``)."""
        for key, value in params.items():
            if key != "spec":
                raise ValueError(f"unknown parameter {key!r} for OCSFFeaturizer")
            self.spec = value
        return self

    @property
    def numerical_columns(self) -> list[str]:
        """Names of the numerical output columns."""
        return self.spec.numerical_columns

    @property
    def categorical_columns(self) -> list[str]:
        """Names of the categorical output columns."""
        return self.spec.categorical_columns

    # fit / transform ------------------------------------------------------------------------

    def _categorical_text(self, frame: pd.DataFrame, feature: CategoricalFeature) -> tuple[np.ndarray, int, list[str]]:
        values, absent = _source_values(frame, feature.source)
        text = CATEGORICAL_TRANSFORMS[feature.transform](values)
        coerced = int((values.notna().to_numpy() & pd.isna(text)).sum())
        return text, coerced, absent

    def fit(self, frame: Any, y: Any = None) -> OCSFFeaturizer:
        """Learn which categorical features to hash (cardinality above ``max_categories``)."""
        frame = as_flat_frame(frame)
        self.cardinality_: dict[str, int] = {}
        self.hashed_: dict[str, bool] = {}
        absent: set[str] = set()
        for feature in self.spec.categorical:
            text, _, missing_sources = self._categorical_text(frame, feature)
            absent.update(missing_sources)
            count = int(pd.Series(text, dtype=object).nunique(dropna=True))
            self.cardinality_[feature.name] = count
            self.hashed_[feature.name] = feature.hashes(count)
        for feature in self.spec.numerical:
            absent.update(
                p
                for p in ([feature.source] if isinstance(feature.source, str) else feature.source)
                if p not in frame.columns
            )
        self.absent_sources_ = sorted(absent)
        return self

    def transform(self, frame: Any) -> pd.DataFrame:
        """Features of every row: numerical float64 columns, then categorical text columns."""
        if not hasattr(self, "hashed_"):
            raise NotFittedError("this OCSFFeaturizer is not fitted yet; call fit(frame) first")
        frame = as_flat_frame(frame)
        data: dict[str, Any] = {}
        report: dict[str, int] = {}
        indicators: dict[str, np.ndarray] = {}
        for feature in self.spec.numerical:
            values, _ = _source_values(frame, feature.source)
            out = NUMERICAL_TRANSFORMS[feature.transform](values)
            out = np.where(np.isfinite(out), out, np.nan)
            data[feature.name] = out
            report[feature.name] = int((values.notna().to_numpy() & np.isnan(out)).sum())
            if feature.missing_indicator:
                indicators[f"{feature.name}_missing"] = np.isnan(out).astype(np.float64)
        data.update(indicators)
        for feature in self.spec.categorical:
            text, coerced, _ = self._categorical_text(frame, feature)
            if self.hashed_.get(feature.name, False):
                text = hash_categories(text, feature.num_buckets)
            data[feature.name] = pd.Series(text, index=frame.index, dtype=object)
            report[feature.name] = coerced
        self.coercion_report_ = report
        columns = self.numerical_columns + self.categorical_columns
        return pd.DataFrame(data, index=frame.index, columns=columns)

    def fit_transform(self, frame: Any, y: Any = None) -> pd.DataFrame:
        """``fit(frame).transform(frame)``."""
        return self.fit(frame).transform(frame)

    # plain-JSON persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Specification plus fitted state, as plain JSON types."""
        fitted = None
        if hasattr(self, "hashed_"):
            fitted = {
                "cardinality": dict(self.cardinality_),
                "hashed": dict(self.hashed_),
                "absent_sources": list(self.absent_sources_),
            }
        return {"format_version": SPEC_FORMAT_VERSION, "spec": self.spec.to_dict(), "fitted": fitted}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OCSFFeaturizer:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "spec" not in data:
            raise ValueError("an OCSFFeaturizer dictionary needs a 'spec' entry")
        featurizer = cls(FeatureSpec.from_dict(data["spec"]))
        fitted = data.get("fitted")
        if fitted:
            names = set(featurizer.categorical_columns)
            if set(fitted["hashed"]) != names:
                raise ValueError("fitted state does not match the specification's categorical features")
            featurizer.cardinality_ = {k: int(v) for k, v in fitted["cardinality"].items()}
            featurizer.hashed_ = {k: bool(v) for k, v in fitted["hashed"].items()}
            featurizer.absent_sources_ = list(fitted.get("absent_sources", []))
        return featurizer
