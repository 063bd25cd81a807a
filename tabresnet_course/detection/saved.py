"""The saved detector's directory format: file names, and reading and checking each file.

A saved detector is one directory with ``weights.pt`` (the encoder's ``state_dict``, loadable
with ``torch.load(weights_only=True)``), ``config.json`` (the ``DetectorConfig``, every fitted
preprocessing state and the training record as plain JSON, with a checksum of every other file)
and ``reference_embeddings.npy`` (``allow_pickle=False``), plus ``reference_features.npy`` for
the fusion scorers (the raw reference rows, numericals next to category codes; the kNN index or
the seeded forest is rebuilt from them at load time) and ``reference_sample.json`` (a bounded
sample of the raw reference events, for explanations; detectors saved without it still load)
and, since format 2, ``calibration_scores.npy`` (the held-out normal scores of
:mod:`tabresnet_course.detection.calibration`, float64; ``config.json``'s ``calibration`` says how
they were made and the baseline's events per day; format 1 detectors still load, uncalibrated)
and, since format 3, ``reference_scores.npy`` for the fusion scorers (every member's sorted
reference scores, ``(members, n_ref)`` float64: the yardstick of
:class:`~tabresnet_course.detection.scorers.ReferenceRankFusion`, whose leave-one-out kNN
scores would otherwise cost a search of every reference row at every load; older detectors
recompute them, slowly, with a warning): nothing is pickled. :meth:`~tabresnet_course.detection.detector.OCSFAnomalyDetector.save` and
:meth:`~tabresnet_course.detection.detector.OCSFAnomalyDetector.load` write and read it; the file
mechanics (atomic directory replace, checksums, safe loads) are :mod:`tabresnet_course.artifacts`'.
Chapter "The OCSF pipeline" teaches this file.
"""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabresnet_course.artifacts import load_json, load_npy_bytes, load_state_dict_bytes, package_version
from tabresnet_course.detection.calibration import Calibration
from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.errors import InputError, collapse_whitespace
from tabresnet_course.model import TabularResNet, TabularResNetConfig

__all__ = [
    "CALIBRATION_FILE",
    "CONFIG_FILE",
    "DETECTOR_FORMAT_VERSION",
    "DETECTOR_KIND",
    "FEATURES_FILE",
    "REFERENCE_FILE",
    "REFERENCE_SAMPLE_FILE",
    "REFERENCE_SCORES_FILE",
    "WEIGHTS_FILE",
    "calibration_bytes",
    "float64_npy_bytes",
    "is_saved_detector",
    "load_weights",
    "read_calibration",
    "read_config",
    "read_features",
    "read_reference",
    "read_reference_scores",
    "read_sample",
    "rebuild_parts",
    "sample_bytes",
]

DETECTOR_KIND = "tabresnet_course.OCSFAnomalyDetector"
"""``config.json``'s ``kind``: what marks a directory as a saved detector."""
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference_embeddings.npy"
FEATURES_FILE = "reference_features.npy"
REFERENCE_SAMPLE_FILE = "reference_sample.json"
CALIBRATION_FILE = "calibration_scores.npy"
REFERENCE_SCORES_FILE = "reference_scores.npy"
DETECTOR_FORMAT_VERSION = 3
"""The saved detector's layout: 2 added ``calibration_scores.npy``, 3 ``reference_scores.npy``.
Detectors of format 1 load without a calibration, of formats 1 and 2 recompute their reference
scores at load; a newer format asks for a newer package."""


def is_saved_detector(directory: Path) -> bool:
    """Whether ``directory/config.json`` says it is a saved detector."""
    try:
        return json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")).get("kind") == DETECTOR_KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` (:func:`~tabresnet_course.artifacts.load_json`), checked for kind, format
    version and the required keys."""
    config = load_json(path)
    if not isinstance(config, dict) or config.get("kind") != DETECTOR_KIND:
        raise InputError(f"{path} does not describe a saved detector (kind is not {DETECTOR_KIND!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= DETECTOR_FORMAT_VERSION:
        raise InputError(
            f"{path} has format_version {version!r}, but this package (tabresnet_course "
            f"{package_version()}) reads format_version 1 to {DETECTOR_FORMAT_VERSION}; it was written by "
            f"tabresnet_course {config.get('package_version', 'of an unknown version')}: upgrade, or retrain"
        )
    missing = [key for key in ("model_config", "featurizer", "preprocessor", "k", "files") if key not in config]
    if missing:
        raise InputError(f"{path} lacks the field(s) {missing}")
    if not isinstance(config["k"], int) or isinstance(config["k"], bool) or config["k"] < 1:
        raise InputError(f"{path}: k must be a positive integer, got {config['k']!r}")
    return config


def rebuild_parts(path: Path, config: dict[str, Any]) -> tuple[Any, Any, TabularResNet, DetectorConfig]:
    """Featuriser, preprocessor, (untrained) encoder and :class:`DetectorConfig` from
    ``config.json``, checked against each other: the preprocessor's output must be exactly what
    the encoder expects."""
    from tabresnet_course.features.spec import OCSFFeaturizer
    from tabresnet_course.preprocess import TabularPreprocessor

    try:
        featurizer = OCSFFeaturizer.from_dict(config["featurizer"])
        preprocessor = TabularPreprocessor.from_dict(config["preprocessor"])
        model_config = TabularResNetConfig.from_dict(config["model_config"])
        detector_config = DetectorConfig.from_saved(config)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise InputError(f"{path}: cannot rebuild the detector: {collapse_whitespace(error)}") from None
    for kind in ("numerical", "categorical"):
        made = list(getattr(featurizer, f"{kind}_columns"))
        wanted = list(getattr(preprocessor, f"{kind}_cols"))
        if made != wanted:
            only_spec, only_fitted = [c for c in made if c not in wanted], [c for c in wanted if c not in made]
            difference = (
                f"only in the featurizer: {only_spec}; only in the preprocessor: {only_fitted}"
                if only_spec or only_fitted
                else "the same names in another order"
            )
            raise InputError(
                f"{path}: the featurizer and the preprocessor disagree on the {kind} features ({difference})"
            )
    expected = (len(preprocessor.numerical_feature_names_), list(preprocessor.cardinalities_))
    found = (model_config.num_numerical_features, model_config.categorical_cardinalities)
    if expected != found:
        raise InputError(
            f"{path}: model_config expects {found[0]} numerical features and cardinalities "
            f"{found[1]}, but the preprocessor produces {expected[0]} and {expected[1]}"
        )
    try:
        model = TabularResNet.from_config(model_config)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: cannot build the model of model_config: {collapse_whitespace(error)}") from None
    return featurizer, preprocessor, model, detector_config


def load_weights(model: TabularResNet, data: bytes, path: Path) -> None:
    """Load a weights-only ``state_dict`` into ``model``; a file that is not one, or whose
    tensors do not fit the configured model, raises :class:`InputError`."""
    state = load_state_dict_bytes(data, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = collapse_whitespace(error)[:300]
        raise InputError(f"{path} does not match the model in {CONFIG_FILE}: {reason}") from None


def read_features(data: bytes, path: Path, num_rows: int) -> np.ndarray:
    """The reference rows' raw features ``(num_rows, n)``, read without pickle and checked."""
    features = load_npy_bytes(data, path)
    if features.ndim != 2 or len(features) != num_rows or not np.isfinite(features).all():
        raise InputError(f"{path} must hold finite features of shape ({num_rows}, n), got {features.shape}")
    return features


def read_reference(data: bytes, path: Path, d_model: int) -> np.ndarray:
    """The reference embeddings ``(n_ref, d_model)``, read without pickle and checked."""
    embeddings = load_npy_bytes(data, path)
    if embeddings.ndim != 2 or embeddings.shape[1] != d_model or not np.isfinite(embeddings).all():
        raise InputError(f"{path} must hold finite embeddings of shape (n, {d_model}), got {embeddings.shape}")
    return embeddings


def float64_npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as float64 ``.npy`` bytes, without pickle (the reference scores: float64, so
    that a loaded detector ranks exactly as the trained one)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def read_reference_scores(data: bytes, path: Path, members: int, num_rows: int) -> np.ndarray:
    """The fusion members' sorted reference scores ``(members, num_rows)``, read without pickle
    and checked."""
    scores = load_npy_bytes(data, path)
    if scores.shape != (members, num_rows) or not np.isfinite(scores).all() or (np.diff(scores, axis=1) < 0).any():
        raise InputError(
            f"{path} must hold {members} sorted finite rows of {num_rows} reference scores, got shape {scores.shape}"
        )
    return scores.astype(np.float64)


def sample_bytes(sample: pd.DataFrame) -> bytes:
    """The reference sample as compact JSON: a list of nested OCSF events."""
    from tabresnet_course.events.flat import frame_to_events

    finite = sample.replace([np.inf, -np.inf], np.nan)
    events = frame_to_events(finite)
    return (json.dumps(events, separators=(",", ":"), allow_nan=False, default=_epoch_milliseconds) + "\n").encode(
        "utf-8"
    )


def _epoch_milliseconds(value: Any) -> int:
    """A date-time from a Parquet timestamp column as OCSF writes times: epoch milliseconds (the
    featuriser reads date-time columns the same way, so the saved sample featurises alike)."""
    if isinstance(value, datetime.datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return int(stamp.value // 1_000_000)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_sample(data: bytes, path: Path) -> pd.DataFrame:
    """The reference sample written by :func:`sample_bytes`, checked to be a list of events."""
    from tabresnet_course.events.flat import flatten_events

    try:
        events = json.loads(data.decode("utf-8"))
        if not isinstance(events, list) or not events:
            raise ValueError("expected a non-empty JSON list of events")
        return flatten_events(events)
    except (UnicodeDecodeError, ValueError, TypeError) as error:
        raise InputError(f"{path} is not a valid reference sample: {collapse_whitespace(error)[:200]}") from None


def calibration_bytes(calibration: Calibration) -> bytes:
    """The held-out normal scores as a float64 ``.npy`` file (no pickle; float64 so that a loaded
    detector's percentiles and thresholds equal the trained one's)."""
    return float64_npy_bytes(calibration.scores)


def read_calibration(data: bytes, path: Path, values: Any) -> Calibration:
    """The :class:`Calibration` of :func:`calibration_bytes` and ``config.json``'s ``calibration``."""
    scores = load_npy_bytes(data, path)
    if not isinstance(values, dict):
        raise InputError(f"{path}: {CONFIG_FILE} lacks the calibration's description")
    try:
        return Calibration.from_dict(values, scores)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path} is not a valid calibration: {collapse_whitespace(error)}") from None
