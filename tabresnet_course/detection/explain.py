"""Why was this event flagged? Per-field explanations from an event's nearest normal neighbours.

Chapter "Explaining alerts" teaches this file. The detector scores an event by how far its
embedding lies from the reference set; :class:`NeighbourExplainer` says *which fields* make it
differ from the normal events it is closest to. For an event ``x`` with the ``k`` nearest
reference events ``r_1 .. r_k`` (nearest in the detector's embedding space), the contribution
of a field ``f`` is the mean, over the neighbours, of the event's distance to each of them in
that field's preprocessed columns:

- a numerical column ``j`` (standardised by the preprocessor): ``|x_j - r_ij|``, in standard
  deviations of the reference;
- a categorical column ``j``: ``[x_j != r_ij] * -log p_j(x_j)``, a mismatch weighted by the
  surprisal of the event's category under its (add-one smoothed) frequency ``p_j`` in the
  reference, so that a mismatch on a never-seen value (an unknown category) counts most and a
  mismatch between two common values little.

A field groups the columns that come from one attribute: a feature and its ``_missing``
indicator, or the sine and cosine of the hour of day. Each explanation row shows the event's raw
value of the field (the value in the flat table, not a hashed bucket or a transformed number)
and the neighbours' values as the typical ones. Everything is computed from the detector's
featuriser, preprocessor, encoder and a bounded sample of its reference events, so it does not
depend on which score the detector reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from tabresnet_course.errors import collapse_whitespace
from tabresnet_course.events.flat import as_flat_frame, first_present
from tabresnet_course.features.spec import source_paths
from tabresnet_course.features.transforms import cat_identity, num_identity
from tabresnet_course.model import NUM_RESERVED_INDICES
from tabresnet_course.values import missing_indicator_name

__all__ = [
    "CHUNK_ROWS",
    "EXPLANATION_COLUMNS",
    "MAX_TEXT_LENGTH",
    "MAX_TYPICAL_VALUES",
    "MISSING_TEXT",
    "REFERENCE_SAMPLE_SIZE",
    "ExplainedField",
    "NeighbourExplainer",
    "explained_fields",
    "explanation_columns",
    "number_text",
    "reference_sample",
    "shown_values",
    "short_text",
    "source_columns",
    "typical_values",
]

REFERENCE_SAMPLE_SIZE = 2048
"""Reference events a detector keeps (raw) for explanations: neighbours and typical values."""

EXPLANATION_COLUMNS = ("event", "rank", "field", "value", "typical", "contribution")
"""Columns of :meth:`NeighbourExplainer.explain`'s tidy table."""

MISSING_TEXT = "(missing)"
MAX_TEXT_LENGTH = 120
MAX_TYPICAL_VALUES = 3
CHUNK_ROWS = 8192
CYCLIC_TRANSFORMS = {"hour_sin": "hour", "hour_cos": "hour", "weekday_sin": "weekday", "weekday_cos": "weekday"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass
class ExplainedField:
    """One explained attribute: its ``name``, how its value is shown (``kind``: ``"number"``,
    ``"category"``, ``"hour"`` or ``"weekday"``), the flat column(s) it is read from, and the
    positions of its columns in the preprocessed numerical and categorical arrays."""

    name: str
    kind: str
    source: str | list[str]
    numerical: list[int] = field(default_factory=list)
    categorical: list[int] = field(default_factory=list)


def explained_fields(featurizer: Any, preprocessor: Any) -> list[ExplainedField]:
    """The fields of a fitted featuriser and preprocessor, in feature order: each numerical
    feature with its missing indicators, the sine and cosine of one cyclical time feature
    together (named without ``_sin``/``_cos``), and each categorical feature."""
    fields: dict[str, ExplainedField] = {}
    owner: dict[str, str] = {}
    for feature in featurizer.spec.numerical:
        kind = CYCLIC_TRANSFORMS.get(feature.transform, "number")
        name = feature.name.removesuffix("_sin").removesuffix("_cos") if kind != "number" else feature.name
        fields.setdefault(name, ExplainedField(name, kind, feature.source))
        owner[feature.name] = owner[missing_indicator_name(feature.name)] = name
    for position, column in enumerate(preprocessor.numerical_feature_names_):  # the preprocessor's indicators too
        fields[owner[column]].numerical.append(position)
    for position, feature in enumerate(featurizer.spec.categorical):
        fields[feature.name] = ExplainedField(feature.name, "category", feature.source, categorical=[position])
    return list(fields.values())


def source_columns(featurizer: Any) -> list[str]:
    """Every flat column the featuriser's specification reads."""
    columns: list[str] = []
    for feature in [*featurizer.spec.numerical, *featurizer.spec.categorical]:
        for source in source_paths(feature.source):
            if source not in columns:
                columns.append(source)
    return columns


def reference_sample(events: Any, featurizer: Any, seed: int, size: int = REFERENCE_SAMPLE_SIZE) -> pd.DataFrame:
    """A seeded sample of at most ``size`` reference events (in their original order), restricted
    to the flat columns the featuriser reads: what a saved detector keeps for explanations."""
    frame = as_flat_frame(events)
    rows = np.arange(len(frame))
    if len(frame) > size:
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=size, replace=False))
    columns = [c for c in source_columns(featurizer) if c in frame.columns]
    return frame.iloc[rows][columns].reset_index(drop=True)


# --------------------------------------------------------------------------- showing values


def short_text(text: str) -> str:
    """One line of at most ``MAX_TEXT_LENGTH`` characters."""
    text = collapse_whitespace(text)
    return text if len(text) <= MAX_TEXT_LENGTH else text[: MAX_TEXT_LENGTH - 3] + "..."


def number_text(value: float) -> str:
    """``3021554321`` for integral values, ``12.5`` otherwise, ``(missing)`` for NaN."""
    if not np.isfinite(value):
        return MISSING_TEXT
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else f"{value:.6g}"


def shown_values(frame: pd.DataFrame, explained: ExplainedField) -> tuple[np.ndarray, np.ndarray | None]:
    """``(text, numbers)`` of one field for every row: the raw value as an analyst reads it
    (object array of str), and for ``"number"`` fields the values themselves (float64, NaN when
    missing; ``None`` for other kinds)."""
    values = first_present(frame, explained.source)
    if explained.kind == "category":
        text = cat_identity(values)
        return np.array([MISSING_TEXT if t is None else short_text(t) for t in text], dtype=object), None
    numbers = num_identity(values)
    if explained.kind == "number":
        return np.array([number_text(v) for v in numbers], dtype=object), numbers
    shown = np.full(len(numbers), MISSING_TEXT, dtype=object)
    valid = np.isfinite(numbers) & (np.abs(numbers) < 2**52)
    times = pd.to_datetime(numbers[valid], unit="ms", utc=True)
    shown[valid] = times.strftime("%H:%M UTC") if explained.kind == "hour" else [WEEKDAYS[d] for d in times.day_of_week]
    return shown, None


def typical_values(texts: np.ndarray, numbers: np.ndarray | None) -> np.ndarray:
    """The neighbours' values of one field, one text per event from ``(n, k)`` arrays of the
    neighbours' shown values (and numbers): a range ``low to high`` where there are numbers,
    else the most frequent distinct values (at most ``MAX_TYPICAL_VALUES``)."""
    out = np.empty(len(texts), dtype=object)
    present = np.zeros(len(texts), dtype=bool) if numbers is None else np.isfinite(numbers).any(axis=1)  # (n,)
    for i in np.flatnonzero(~present):
        out[i] = ", ".join(text for text, _ in Counter(texts[i].tolist()).most_common(MAX_TYPICAL_VALUES))
    if present.any():
        low = np.min(np.where(np.isfinite(numbers), numbers, np.inf), axis=1)  # (n,)
        high = np.max(np.where(np.isfinite(numbers), numbers, -np.inf), axis=1)  # (n,)
        for i in np.flatnonzero(present):
            out[i] = number_text(low[i]) if low[i] == high[i] else f"{number_text(low[i])} to {number_text(high[i])}"
    return out


# --------------------------------------------------------------------------- the explainer


class NeighbourExplainer:
    """Per-field explanations of events from their nearest reference events (chapter
    "Explaining alerts"; the maths is in the module docstring).

    ``fit(reference)`` preprocesses and embeds a sample of reference events (a flat frame, as
    :func:`reference_sample` returns), indexes the embeddings and counts each category;
    :meth:`contributions` gives the ``(N, n_fields)`` matrix and :meth:`explain` the tidy table
    of each event's ``top`` fields. Deterministic: exact neighbour search and stable sorting.

    Args:
        featurizer: a fitted ``OCSFFeaturizer``.
        preprocessor: a fitted ``TabularPreprocessor`` (features -> index/float arrays).
        embed: preprocessed ``(numerical, categorical)`` arrays -> ``(N, d)`` embeddings (the
            detector's ``embed_arrays``).
        k: neighbours per event (at most the number of reference events).
    """

    def __init__(
        self, featurizer: Any, preprocessor: Any, embed: Callable[[np.ndarray, np.ndarray], np.ndarray], k: int
    ) -> None:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.featurizer = featurizer
        self.preprocessor = preprocessor
        self.embed = embed
        self.k = int(k)
        self.fields = explained_fields(featurizer, preprocessor)

    def preprocess(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The flat frame -> preprocessed ``(numerical (N, n_num), categorical (N, n_cat))``."""
        return self.preprocessor.transform(self.featurizer.transform(frame))

    def fit(self, reference: Any) -> NeighbourExplainer:
        """Preprocess, embed and index the reference events; learn each category's surprisal."""
        frame = as_flat_frame(reference).reset_index(drop=True)
        if len(frame) == 0:
            raise ValueError("the explanation reference holds no events")
        self.numerical_, self.categorical_ = self.preprocess(frame)
        self.index_ = NearestNeighbors(n_neighbors=min(self.k, len(frame))).fit(
            self.embed(self.numerical_, self.categorical_)
        )
        sizes = [c + NUM_RESERVED_INDICES for c in self.preprocessor.cardinalities_]  # all indices of each column
        self.surprisal_ = np.zeros((len(sizes), max(sizes, default=1)))  # (n_cat, max indices): -log p_j(index)
        for j, size in enumerate(sizes):
            counts = np.bincount(self.categorical_[:, j], minlength=size)[:size]
            self.surprisal_[j, :size] = -np.log((counts + 1.0) / (len(frame) + size))  # add-one smoothed
        self.shown_ = [shown_values(frame, f) for f in self.fields]
        membership = np.zeros((self.numerical_.shape[1] + self.categorical_.shape[1], len(self.fields)))
        for f, explained in enumerate(self.fields):
            membership[explained.numerical, f] = 1.0
            membership[[self.numerical_.shape[1] + j for j in explained.categorical], f] = 1.0
        self.membership_ = membership  # (n_num + n_cat, n_fields): which columns make up each field
        return self

    def neighbours(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """``(N, k)`` positions of each event's nearest reference events in embedding space."""
        if len(numerical) == 0:
            return np.zeros((0, self.index_.n_neighbors), dtype=np.int64)
        return self.index_.kneighbors(self.embed(numerical, categorical), return_distance=False)

    def contributions(self, numerical: np.ndarray, categorical: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """``(N, n_fields)`` contribution of each field: mean distance to the neighbours in the
        field's columns (absolute standardised difference; rarity-weighted category mismatch)."""
        numerical_distance = np.abs(numerical[:, None, :] - self.numerical_[neighbours]).mean(axis=1)  # (N, n_num)
        mismatch = (categorical[:, None, :] != self.categorical_[neighbours]).mean(axis=1)  # (N, n_cat)
        surprisal = self.surprisal_[np.arange(categorical.shape[1]), categorical]  # (N, n_cat)
        return np.hstack([numerical_distance, mismatch * surprisal]) @ self.membership_  # (N, n_fields)

    def explain(self, events: Any, top: int = 3) -> pd.DataFrame:
        """The ``top`` fields that set each event apart from its nearest reference events.

        One row per event and field with a positive contribution, best first: ``event`` (the
        position of the record in ``events``), ``rank`` (1 = largest contribution), ``field``,
        ``value`` (the event's raw value), ``typical`` (the neighbours' values) and
        ``contribution``. Missing attributes and unknown categories are explained like any
        other value."""
        if int(top) < 1:
            raise ValueError(f"top must be a positive integer, got {top!r}")
        if not hasattr(self, "index_"):
            raise ValueError("this NeighbourExplainer is not fitted; call fit(reference) first")
        frame = as_flat_frame(events).reset_index(drop=True)
        top = min(int(top), len(self.fields))
        parts = [
            self.explain_chunk(frame.iloc[start : start + CHUNK_ROWS], start, top)
            for start in range(0, len(frame), CHUNK_ROWS)
        ]
        if not parts:
            return pd.DataFrame(
                {
                    name: pd.Series(dtype=dtype)
                    for name, dtype in zip(EXPLANATION_COLUMNS, ("int64", "int64", object, object, object, "float64"))
                }
            )
        return pd.concat(parts, ignore_index=True)

    def explain_chunk(self, frame: pd.DataFrame, first_event: int, top: int) -> pd.DataFrame:
        """:meth:`explain` for the rows of one chunk, whose first row is event ``first_event``."""
        numerical, categorical = self.preprocess(frame)
        neighbours = self.neighbours(numerical, categorical)  # (n, k)
        contributions = self.contributions(numerical, categorical, neighbours)  # (n, F)
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]  # (n, top)
        events, ranks = np.nonzero(np.take_along_axis(contributions, order, axis=1) > 0)
        chosen = order[events, ranks]
        values, typical = np.empty(len(chosen), dtype=object), np.empty(len(chosen), dtype=object)
        for f in np.unique(chosen):  # only the chosen fields are shown
            picked = np.flatnonzero(chosen == f)
            values[picked] = shown_values(frame.iloc[events[picked]], self.fields[f])[0]
            texts, numbers = self.shown_[f]
            near = neighbours[events[picked]]  # (n_f, k)
            typical[picked] = typical_values(texts[near], None if numbers is None else numbers[near])
        return pd.DataFrame(
            {
                "event": (events + first_event).astype(np.int64),
                "rank": (ranks + 1).astype(np.int64),
                "field": np.array([self.fields[f].name for f in chosen], dtype=object),
                "value": values,
                "typical": typical,
                "contribution": contributions[events, chosen],
            }
        )


def explanation_columns(explanations: pd.DataFrame, num_events: int, top: int) -> pd.DataFrame:
    """The tidy table of :meth:`NeighbourExplainer.explain` as one row per event (``num_events``
    rows): ``top_fields`` (the fields joined by ``;``) and, per rank ``i``, ``field_i``,
    ``value_i``, ``typical_i`` and ``contribution_i`` (empty where an event has fewer fields).
    The command line's ``score --explain`` appends these columns to the scores."""
    columns: dict[str, Any] = {"top_fields": np.full(num_events, "", dtype=object)}
    for rank in range(1, top + 1):
        rows = explanations[explanations["rank"] == rank]
        for name in ("field", "value", "typical"):
            column = np.full(num_events, "", dtype=object)
            column[rows["event"].to_numpy()] = rows[name].to_numpy()
            columns[f"{name}_{rank}"] = column
        contribution = np.full(num_events, np.nan)
        contribution[rows["event"].to_numpy()] = rows["contribution"].to_numpy()
        columns[f"contribution_{rank}"] = contribution
    grouped = explanations.groupby("event", sort=True)["field"].agg(";".join)
    columns["top_fields"][grouped.index.to_numpy()] = grouped.to_numpy()
    return pd.DataFrame(columns)
