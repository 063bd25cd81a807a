"""From a table of features to model-ready arrays: :class:`TabularPreprocessor` and
:func:`preprocess_ocsf_data`.

:class:`TabularPreprocessor` turns a ``pandas.DataFrame`` of numerical and categorical columns
into a float32 matrix and an int64 matrix of category indices, in the reserved-index scheme of
:mod:`tabresnet_course.model`. It is a scikit-learn ``BaseEstimator`` (``fit`` returns ``self``,
fitted attributes end in ``_``, ``get_params``/``set_params`` and ``sklearn.base.clone`` work,
``NotFittedError`` before ``fit``) built on ``SimpleImputer``, ``StandardScaler``/``RobustScaler``
and ``OrdinalEncoder``, and saves itself as plain JSON-able data
(:meth:`TabularPreprocessor.to_dict`), never as a pickle. It is not a ``TransformerMixin``:
``transform`` returns two arrays, one per input kind, which a scikit-learn ``Pipeline`` cannot
chain. Cells are read as numbers and as category text by :mod:`tabresnet_course.values`.

Chapter "The complete training loop" teaches this file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from tabresnet_course.model import NUM_RESERVED_INDICES, PADDING_INDEX, UNKNOWN_INDEX
from tabresnet_course.values import MISSING_INDICATOR_SUFFIX, category_texts, missing_indicator_name, to_float

if TYPE_CHECKING:
    from sklearn.preprocessing import OrdinalEncoder

__all__ = [
    "TabularPreprocessor",
    "make_ordinal_encoder",
    "preprocess_ocsf_data",
]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _category_frame(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The ``columns`` of ``df`` as :func:`~tabresnet_course.values.category_text` strings, with
    ``np.nan`` (what ``OrdinalEncoder`` takes for missing) where a value is missing."""
    strings = {}
    for column in columns:
        text = category_texts(df[column])
        text[pd.isna(text)] = np.nan
        strings[column] = text
    return pd.DataFrame(strings, index=df.index)


def make_ordinal_encoder(categories: Sequence[Sequence[str]]) -> OrdinalEncoder:
    """The encoder used for every categorical column: unseen -> -1, missing -> -2.

    The known ``categories`` get ``np.nan`` appended, which is how ``OrdinalEncoder`` learns that
    missing values exist (and encodes them as ``encoded_missing_value``, not as unknown).
    """
    from sklearn.preprocessing import OrdinalEncoder  # scikit-learn loads only when preprocessing

    return OrdinalEncoder(
        categories=[np.array([*c, np.nan], dtype=object) for c in categories],
        handle_unknown="use_encoded_value",
        unknown_value=-1,
        encoded_missing_value=-2,
        dtype=np.float64,
    )


class TabularPreprocessor(BaseEstimator):
    """Numerical and categorical columns of a DataFrame -> ``(float32 (N, n_num'), int64 (N, n_cat))``.

    Numerical columns: non-numbers (strings) become NaN and are counted; columns in
    ``log1p_cols`` get ``sign(x) * log1p(|x|)``; infinities and values beyond float32's range
    (after the log) become NaN and are counted; every column that had a missing
    value during ``fit`` gets a 0/1 missing-indicator column ``<column>_missing`` (appended after
    the numerical columns, names in ``numerical_feature_names_``), unless the input already has a
    column of that name (the featuriser's own indicator); missing values are imputed with the fitted
    median; values are scaled (``StandardScaler`` or ``RobustScaler``) and clipped to
    ``[-clip_value, clip_value]``.

    Categorical columns (values compared as :func:`~tabresnet_course.values.category_text`, so
    ``443.0`` is ``"443"`` and ``True`` is ``"true"``): missing -> ``PADDING_INDEX``; a category
    not seen during ``fit``, or seen fewer than ``min_category_count`` times -> ``UNKNOWN_INDEX``;
    the k-th fitted category (sorted) -> ``k + NUM_RESERVED_INDICES``.

    Fitted attributes: ``cardinalities_`` (real categories per column), ``categories_``,
    ``numerical_feature_names_``, ``indicator_columns_``, ``median_``, ``center_``, ``scale_``,
    and ``last_report_`` (counts from the latest ``fit``/``transform``: values coerced to NaN,
    non-finite values, unseen or rare categories). Taught in chapter "Training best practices".

    Args:
        numerical_cols: numerical column names.
        categorical_cols: categorical column names.
        min_category_count: categories seen fewer times than this in ``fit`` map to ``UNKNOWN_INDEX``.
        clip_value: bound on the absolute value of a scaled numerical feature (``None``: no clipping).
        scaler: ``"standard"`` (mean / standard deviation) or ``"robust"`` (median / IQR).
        log1p_cols: numerical columns to compress with ``sign(x) * log1p(|x|)`` before scaling.
        missing_indicators: add the 0/1 missing-indicator columns (turn off when the features
            already carry their own, as :class:`~tabresnet_course.features.spec.OCSFFeaturizer`'s do).
    """

    def __init__(
        self,
        numerical_cols: Sequence[str] = (),
        categorical_cols: Sequence[str] = (),
        min_category_count: int = 1,
        clip_value: float | None = 10.0,
        scaler: str = "standard",
        log1p_cols: Sequence[str] = (),
        missing_indicators: bool = True,
    ) -> None:
        self.numerical_cols = numerical_cols
        self.categorical_cols = categorical_cols
        self.min_category_count = min_category_count
        self.clip_value = clip_value
        self.scaler = scaler
        self.log1p_cols = log1p_cols
        self.missing_indicators = missing_indicators

    # -- validation -------------------------------------------------------------------------

    def _require_fitted(self) -> None:
        """Raise scikit-learn's ``NotFittedError`` (a ``ValueError``) before ``fit``."""
        if not hasattr(self, "cardinalities_"):
            raise NotFittedError("this TabularPreprocessor is not fitted yet; call fit(df) first")

    def _check_params(self) -> None:
        numerical, categorical = list(self.numerical_cols), list(self.categorical_cols)
        if not numerical and not categorical:
            raise ValueError("TabularPreprocessor needs at least one numerical or categorical column")
        duplicated = sorted({c for c in numerical + categorical if (numerical + categorical).count(c) > 1})
        if duplicated:
            raise ValueError(f"columns listed more than once: {duplicated}")
        unknown_log = sorted(set(self.log1p_cols) - set(numerical))
        if unknown_log:
            raise ValueError(f"log1p_cols {unknown_log} are not in numerical_cols")
        if int(self.min_category_count) < 1:
            raise ValueError(f"min_category_count must be >= 1, got {self.min_category_count}")
        if self.clip_value is not None and not self.clip_value > 0:
            raise ValueError(f"clip_value must be > 0 or None, got {self.clip_value}")
        if self.scaler not in ("standard", "robust"):
            raise ValueError(f"scaler must be 'standard' or 'robust', got {self.scaler!r}")

    def _check_frame(self, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
        for column in [*self.numerical_cols, *self.categorical_cols]:
            if column not in df.columns:
                raise ValueError(f"column {column!r} is missing from the DataFrame")

    # -- the numerical half -----------------------------------------------------------------

    def _numerical_matrix(self, df: pd.DataFrame, report: dict[str, Any]) -> np.ndarray:
        """Raw float64 ``(N, n_num)`` with NaN for every unusable value, counted in ``report``."""
        columns = []
        for name in self.numerical_cols:
            raw = df[name]
            values = to_float(raw, finite=False)
            coerced = int((raw.notna().to_numpy() & np.isnan(values)).sum())
            if coerced:
                report["coerced_to_nan"][name] = coerced
            if name in self.log1p_cols:
                values = np.sign(values) * np.log1p(np.abs(values))
            unusable = ~np.isnan(values) & ~(np.abs(values) <= FLOAT32_MAX)  # infinite, or beyond float32
            if unusable.any():
                report["non_finite"][name] = int(unusable.sum())
                values = np.where(unusable, np.nan, values)
            columns.append(values)
        return np.column_stack(columns) if columns else np.zeros((len(df), 0))

    def _transform_numerical(self, matrix: np.ndarray) -> np.ndarray:
        indicator_positions = [list(self.numerical_cols).index(c) for c in self.indicator_columns_]
        indicators = np.isnan(matrix[:, indicator_positions]).astype(np.float64)  # (N, n_ind)
        filled = np.where(np.isnan(matrix), np.asarray(self.median_), matrix)  # (N, n_num)
        scaled = (filled - np.asarray(self.center_)) / np.asarray(self.scale_)
        bound = self.clip_value if self.clip_value is not None else FLOAT32_MAX  # finite in float32
        scaled = np.clip(scaled, -bound, bound)
        return np.concatenate([scaled, indicators], axis=1).astype(np.float32)

    # -- the categorical half ---------------------------------------------------------------

    def _transform_categorical(self, strings: pd.DataFrame, report: dict[str, Any]) -> np.ndarray:
        if not self.categorical_cols:
            return np.zeros((len(strings), 0), dtype=np.int64)
        codes = self._encoder.transform(strings)  # (N, n_cat): k, -1 unseen or rare, -2 missing
        indices = np.where(codes >= 0, codes + NUM_RESERVED_INDICES, UNKNOWN_INDEX)
        indices = np.where(codes == -2, PADDING_INDEX, indices).astype(np.int64)
        for j, name in enumerate(self.categorical_cols):
            unknown = int((codes[:, j] == -1).sum())
            if unknown:
                report["unknown_categories"][name] = unknown
        return indices

    def _build_encoder(self) -> None:
        if self.categorical_cols:
            sample = pd.DataFrame({c: [v[0]] for c, v in zip(self.categorical_cols, self.categories_)})
            self._encoder = make_ordinal_encoder(self.categories_).fit(sample)

    # -- the estimator API ------------------------------------------------------------------

    @staticmethod
    def _empty_report() -> dict[str, Any]:
        return {"rows": 0, "coerced_to_nan": {}, "non_finite": {}, "unknown_categories": {}}

    def _warn_coerced(self, report: dict[str, Any], stage: str) -> None:
        if report["coerced_to_nan"]:
            details = ", ".join(f"{c!r}: {n}" for c, n in report["coerced_to_nan"].items())
            warnings.warn(
                f"{stage}: non-numeric values in numerical columns were treated as missing ({details})",
                UserWarning,
                stacklevel=3,
            )

    def fit(self, df: pd.DataFrame, y: Any = None) -> TabularPreprocessor:
        """Learn medians, scaling and categories from ``df``; returns ``self``."""
        return self._fit(df, warn=True)

    def _fit(self, df: pd.DataFrame, warn: bool) -> TabularPreprocessor:
        self._check_params()
        self._check_frame(df)
        report = self._empty_report()
        report["rows"] = len(df)
        if len(df) == 0:
            raise ValueError("cannot fit a TabularPreprocessor on an empty DataFrame")
        matrix = self._numerical_matrix(df, report)
        had_missing = np.isnan(matrix).any(axis=0)
        self.indicator_columns_ = [
            c
            for c, m in zip(self.numerical_cols, had_missing)
            if m and self.missing_indicators and missing_indicator_name(c) not in self.numerical_cols
        ]
        if matrix.shape[1]:
            from sklearn.impute import SimpleImputer
            from sklearn.preprocessing import RobustScaler, StandardScaler

            imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(matrix)
            self.median_ = imputer.statistics_.tolist()
            scaler = (StandardScaler() if self.scaler == "standard" else RobustScaler()).fit(imputer.transform(matrix))
            center = scaler.mean_ if self.scaler == "standard" else scaler.center_
            self.center_, self.scale_ = center.tolist(), scaler.scale_.tolist()
        else:
            self.median_, self.center_, self.scale_ = [], [], []
        self.numerical_feature_names_ = [*self.numerical_cols, *map(missing_indicator_name, self.indicator_columns_)]

        strings = _category_frame(df, self.categorical_cols)
        self.categories_: list[list[str]] = []
        for name in self.categorical_cols:
            counts = strings[name].value_counts(dropna=True)  # one hashed pass per column
            kept = sorted(str(c) for c, n in counts.items() if n >= int(self.min_category_count))
            if not kept:
                raise ValueError(
                    f"categorical column {name!r} has no category seen at least "
                    f"{self.min_category_count} time(s) in the fitted data; drop the column "
                    f"or lower min_category_count"
                )
            self.categories_.append(kept)
        self.cardinalities_ = [len(c) for c in self.categories_]
        self._build_encoder()
        self._transform_categorical(strings, report)
        self.last_report_ = report
        if warn:
            self._warn_coerced(report, "fit")
        return self

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(numerical float32 (N, len(numerical_feature_names_)), categorical int64 (N, n_cat))``."""
        self._require_fitted()
        self._check_frame(df)
        report = self._empty_report()
        report["rows"] = len(df)
        numerical = self._transform_numerical(self._numerical_matrix(df, report))
        categorical = self._transform_categorical(_category_frame(df, self.categorical_cols), report)
        self.last_report_ = report
        self._warn_coerced(report, "transform")
        return numerical, categorical

    def fit_transform(self, df: pd.DataFrame, y: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``fit(df)`` then ``transform(df)`` (coerced values are reported once, by ``transform``)."""
        return self._fit(df, warn=False).transform(df)

    # -- saving without pickle --------------------------------------------------------------

    FITTED = (
        "indicator_columns_",
        "median_",
        "center_",
        "scale_",
        "numerical_feature_names_",
        "categories_",
        "cardinalities_",
    )

    def to_dict(self) -> dict[str, Any]:
        """Parameters and fitted state as plain JSON-able data; :meth:`from_dict` restores it."""
        self._require_fitted()
        params = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in self.get_params().items()}
        return {
            "kind": "tabresnet_course.TabularPreprocessor",
            "version": 1,
            "params": params,
            "fitted": {name: getattr(self, name) for name in self.FITTED},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output; transforms are identical."""
        if not isinstance(values, dict) or values.get("kind") != "tabresnet_course.TabularPreprocessor":
            raise ValueError("not a saved TabularPreprocessor (missing kind 'tabresnet_course.TabularPreprocessor')")
        if values.get("version") != 1:
            raise ValueError(f"unsupported TabularPreprocessor version {values.get('version')!r}")
        fitted, params = values.get("fitted"), values.get("params")
        if not isinstance(fitted, dict) or not isinstance(params, dict):
            raise ValueError("saved TabularPreprocessor: 'params' and 'fitted' must be mappings")
        missing = [name for name in cls.FITTED if name not in fitted]
        if missing:
            raise ValueError(f"saved TabularPreprocessor lacks fitted fields {missing}")
        unknown = sorted(set(params) - set(cls().get_params()))
        if unknown:
            raise ValueError(f"saved TabularPreprocessor: unknown params {unknown}")
        preprocessor = cls(**params)
        preprocessor._check_params()
        for name in cls.FITTED:
            setattr(preprocessor, name, fitted[name])
        preprocessor._check_fitted()
        preprocessor._build_encoder()
        return preprocessor

    def _check_fitted(self) -> None:
        """Raise ``ValueError`` naming the first fitted field that does not fit the columns
        (an edited or damaged saved preprocessor would otherwise transform wrongly, silently)."""
        numerical, categorical = list(self.numerical_cols), list(self.categorical_cols)

        def numbers(name: str, positive: bool = False) -> None:
            value = getattr(self, name)
            ok = (
                isinstance(value, list)
                and len(value) == len(numerical)
                and all(
                    isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and math.isfinite(v)
                    and (v > 0 or not positive)
                    for v in value
                )
            )
            if not ok:
                kind = "positive finite numbers" if positive else "finite numbers"
                raise ValueError(
                    f"saved TabularPreprocessor: {name} must be {len(numerical)} {kind} "
                    f"(one per numerical column), got {value!r}"
                )

        numbers("median_")
        numbers("center_")
        numbers("scale_", positive=True)
        indicators = self.indicator_columns_
        if not isinstance(indicators, list) or not set(indicators) <= set(numerical):
            raise ValueError(
                f"saved TabularPreprocessor: indicator_columns_ must list numerical columns, got {indicators!r}"
            )
        names = [*numerical, *map(missing_indicator_name, indicators)]
        if self.numerical_feature_names_ == [*numerical, *(f"{c}_{MISSING_INDICATOR_SUFFIX}" for c in indicators)]:
            self.numerical_feature_names_ = names  # saved before the indicators were named "<column>_missing"
        if self.numerical_feature_names_ != names:
            raise ValueError(
                f"saved TabularPreprocessor: numerical_feature_names_ should be {names}, "
                f"got {self.numerical_feature_names_!r}"
            )
        categories = self.categories_
        if (
            not isinstance(categories, list)
            or len(categories) != len(categorical)
            or not all(
                isinstance(c, list) and c and all(isinstance(v, str) for v in c) and len(set(c)) == len(c)
                for c in categories
            )
        ):
            raise ValueError(
                f"saved TabularPreprocessor: categories_ must hold one non-empty list of distinct "
                f"strings per categorical column ({len(categorical)})"
            )
        if self.cardinalities_ != [len(c) for c in categories]:
            raise ValueError(
                f"saved TabularPreprocessor: cardinalities_ {self.cardinalities_!r} do not match "
                f"categories_ ({[len(c) for c in categories]})"
            )


def preprocess_ocsf_data(
    df: pd.DataFrame, numerical_cols: Sequence[str], categorical_cols: Sequence[str], **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, TabularPreprocessor]:
    """The seed's one-call preprocessing: fit a :class:`TabularPreprocessor` on ``df`` and
    return ``(numerical, categorical, preprocessor)``. Keep ``preprocessor`` to transform new
    events the same way: unlike the seed's ``LabelEncoder`` version, it maps unseen categories
    to ``UNKNOWN_INDEX`` instead of crashing. ``kwargs`` go to :class:`TabularPreprocessor`."""
    preprocessor = TabularPreprocessor(list(numerical_cols), list(categorical_cols), **kwargs)
    numerical, categorical = preprocessor.fit_transform(df)
    return numerical, categorical, preprocessor
