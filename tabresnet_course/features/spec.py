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

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.exceptions import NotFittedError

from tabresnet_course.artifacts import atomic_write_bytes
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import as_flat_frame, first_present
from tabresnet_course.features.transforms import CATEGORICAL_TRANSFORMS, NUMERICAL_TRANSFORMS, hash_categories
from tabresnet_course.values import missing_indicator_name

__all__ = [
    "SPEC_FORMAT_VERSION",
    "USER_SOURCES",
    "CategoricalFeature",
    "FeatureSpec",
    "NumericalFeature",
    "OCSFFeaturizer",
    "source_paths",
]

SPEC_FORMAT_VERSION = 1

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


USER_SOURCES: tuple[str, ...] = (
    "user.name",
    "actor.user.name",
    "user.email_addr",
    "actor.user.email_addr",
    "user.uid",
    "actor.user.uid",
)
"""Where OCSF producers put the user: the event's ``user`` (Authentication) or the ``actor``'s
(API and other activity), by name, then e-mail address, then unique id. The ``user`` feature and
the per-user rates (:mod:`tabresnet_course.features.rates`) read it, first present wins."""


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
        return [f.name for f in self.numerical] + [
            missing_indicator_name(f.name) for f in self.numerical if f.missing_indicator
        ]

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


def source_paths(source: str | list[str]) -> list[str]:
    """The dotted paths of a feature's ``source``, in order (one path or a list of them)."""
    return [source] if isinstance(source, str) else list(source)


def _absent(frame: pd.DataFrame, source: str | list[str]) -> list[str]:
    return [p for p in source_paths(source) if p not in frame.columns]


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
        values = first_present(frame, feature.source)
        text = CATEGORICAL_TRANSFORMS[feature.transform](values)
        coerced = int((values.notna().to_numpy() & pd.isna(text)).sum())
        return text, coerced, _absent(frame, feature.source)

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
            absent.update(_absent(frame, feature.source))
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
            values = first_present(frame, feature.source)
            out = NUMERICAL_TRANSFORMS[feature.transform](values)
            out = np.where(np.isfinite(out), out, np.nan)
            data[feature.name] = out
            report[feature.name] = int((values.notna().to_numpy() & np.isnan(out)).sum())
            if feature.missing_indicator:
                indicators[missing_indicator_name(feature.name)] = np.isnan(out).astype(np.float64)
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
