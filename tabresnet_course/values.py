"""One table cell read the one way the whole package reads it: as a number or as category text.

Chapters "The OCSF pipeline" and "Training best practices" rely on this file. Every layer reads
cells through it: the featuriser (:mod:`tabresnet_course.features.spec`), the rates, spec
inference, the preprocessor (:mod:`tabresnet_course.preprocess`) and the explanations, so ``443``,
``443.0`` and ``"443"`` are the same number and the same category everywhere. It also names the
missing-indicator columns and holds the units of epoch-millisecond times. It imports nothing from
the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MISSING_INDICATOR_SUFFIX",
    "MS_PER_DAY",
    "MS_PER_HOUR",
    "MS_PER_MINUTE",
    "category_text",
    "category_texts",
    "map_distinct",
    "missing_indicator_name",
    "to_float",
]

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

MISSING_INDICATOR_SUFFIX = "_missing"
"""Suffix of a 0/1 missing-indicator column: ``bytes_in`` -> ``bytes_in_missing``."""


def missing_indicator_name(column: str) -> str:
    """The name of the 0/1 column that marks where ``column`` is missing."""
    return f"{column}{MISSING_INDICATOR_SUFFIX}"


def to_float(values: pd.Series, *, finite: bool = True) -> np.ndarray:
    """A column as a new float64 array: numbers (and numbers written as text) as themselves,
    booleans as 0/1, date-times (a Parquet timestamp column) as epoch milliseconds (a naive one
    read as UTC); text that is not a number, containers and integers too large for float64
    become NaN. Infinities become NaN too, unless ``finite=False`` keeps them (the preprocessor
    counts them apart from unreadable text)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        out = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64).astype(np.float64)
        out[stamps.isna().to_numpy()] = np.nan
    elif pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        out = np.array(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    else:
        try:
            out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        except (OverflowError, TypeError, ValueError):  # e.g. an integer beyond float range
            out = map_distinct(values, _cell_float).astype(np.float64)
        out = np.array(out, dtype=np.float64)
    if finite:
        out[~np.isfinite(out)] = np.nan
    return out


def _cell_float(value: Any) -> float:
    if isinstance(value, (dict, list)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def category_text(value: Any) -> str | None:
    """Canonical text of one present cell: ``443`` and ``443.0`` -> ``"443"``, ``True`` ->
    ``"true"``, ``0.5`` -> ``"0.5"``; an infinite or NaN number -> ``None`` (missing). The text of a
    value never depends on the other values of its column."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None
        return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def category_texts(values: pd.Series) -> np.ndarray:
    """:func:`category_text` of every cell: an object array of str, ``None`` where missing."""
    return map_distinct(values, category_text)


def map_distinct(values: pd.Series, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` applied once per distinct present value, as an object array (missing stays ``None``)."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells: fall back to one call per cell
        return np.array([None if _is_missing(v) else fn(v) for v in values], dtype=object)
    if pd.api.types.is_float_dtype(uniques.dtype):  # keep float32 cells float32: 0.1 stays "0.1"
        uniques = uniques.to_numpy()
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = None
    return mapped[codes]  # code -1 (missing) picks the trailing None


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
