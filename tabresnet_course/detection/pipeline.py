"""The steps of training a detector, one function each: fit the preprocessing, build and pre-train
the encoder on a seeded train/validation split, choose the reference rows.

:func:`~tabresnet_course.detection.detector.train_ocsf_anomaly_detector` chains them; the study
(:mod:`tabresnet_course.study.run`) pre-trains its MFP-surprisal model with the same
:func:`pretrain_encoder`. Chapter "The OCSF pipeline" teaches this file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from tabresnet_course.data import TensorBatchLoader
from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import TabularResNet, TabularResNetConfig
from tabresnet_course.runtime import distributed_world_size
from tabresnet_course.training import Trainer, TrainingConfig

__all__ = [
    "batch_loader",
    "build_encoder",
    "fit_preprocessing",
    "pretrain_encoder",
    "protect_columns",
    "reference_subset",
    "split_rows",
]


def build_encoder(config: TabularResNetConfig | dict[str, Any], seed: int) -> TabularResNet:
    """A freshly initialised encoder whose weights depend only on ``config`` and ``seed`` (the
    global torch random state is left untouched). The untrained baseline uses the same call."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TabularResNet.from_config(config)


def fit_preprocessing(frame: pd.DataFrame, feature_spec: Any = None) -> tuple[Any, Any, tuple[np.ndarray, np.ndarray]]:
    """Fit the featuriser and the preprocessor on ``frame``; returns both and the arrays."""
    from tabresnet_course.features.spec import FeatureSpec, OCSFFeaturizer
    from tabresnet_course.preprocess import TabularPreprocessor

    spec = feature_spec if feature_spec is not None else FeatureSpec.default()
    featurizer = OCSFFeaturizer(spec).fit(frame)
    for feature in spec.categorical:  # the preprocessor needs at least one category per column
        if featurizer.cardinality_[feature.name] == 0:
            raise ValueError(
                f"categorical feature {feature.name!r} (source {feature.source!r}) has no readable value "
                f"in any of the {len(frame)} training events; remove it from the feature specification"
            )
    features = featurizer.transform(frame)
    # The feature specification already adds "<name>_missing" columns where it wants them.
    preprocessor = TabularPreprocessor(
        list(featurizer.numerical_columns), list(featurizer.categorical_columns), missing_indicators=False
    )
    return featurizer, preprocessor, preprocessor.fit_transform(features)


def protect_columns(training: TrainingConfig, names: list[str], preprocessor: Any) -> tuple[TrainingConfig, list[str]]:
    """``training`` with the feature ``names`` the preprocessor produces added to its protected
    column indices, and the names protected (names it lacks are skipped, so a default list works
    with any feature specification)."""
    numerical = list(preprocessor.numerical_feature_names_)
    categorical = list(preprocessor.categorical_cols)
    protected = [name for name in names if name in numerical or name in categorical]
    return replace(
        training,
        protected_numerical=[*training.protected_numerical, *(numerical.index(n) for n in protected if n in numerical)],
        protected_categorical=[
            *training.protected_categorical,
            *(categorical.index(n) for n in protected if n in categorical),
        ],
    ), protected


def split_rows(num_rows: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded ``(train_rows, validation_rows)`` split; no validation rows when
    ``validation_fraction`` is 0 or would leave fewer than 2 rows on either side."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    order = np.random.default_rng(seed).permutation(num_rows)
    num_validation = round(validation_fraction * num_rows)
    if num_validation < 2 or num_rows - num_validation < 2:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    return np.sort(order[num_validation:]), np.sort(order[:num_validation])


def batch_loader(numerical: np.ndarray, categorical: np.ndarray, batch_size: int, seed: int, shuffle: bool) -> Any:
    """A ``TensorBatchLoader`` whose batches all hold at least 2 rows (the contrastive loss
    needs a negative): the last, incomplete batch is dropped when there are full ones."""
    batch_size = max(1, min(int(batch_size), len(numerical) // distributed_world_size()))  # torchrun shards each batch
    return TensorBatchLoader(numerical, categorical, batch_size=batch_size, shuffle=shuffle, drop_last=True, seed=seed)


def pretrain_encoder(
    model_config: TabularResNetConfig,
    numerical: np.ndarray,
    categorical: np.ndarray,
    config: DetectorConfig,
) -> tuple[TabularResNet | TabularResNetWithMFP, dict[str, Any]]:
    """Build the encoder from ``config.seed`` (wrapped in a
    :class:`~tabresnet_course.mfp.TabularResNetWithMFP`, its heads seeded with ``seed + 1``, when
    ``config.training.objective`` is ``"mfp"`` or ``"both"``), train it with the package's
    ``Trainer`` on a seeded split (``config.validation_fraction``, batches of
    ``config.batch_size``) and return the trained model in eval mode (the encoder, or the
    wrapper whose ``base_model`` it is) and the history as a dict. The detector and the study's
    MFP-surprisal model are both pre-trained here."""
    training, seed = config.training, config.seed
    encoder = build_encoder(model_config, seed)
    model: TabularResNet | TabularResNetWithMFP = encoder
    if training.objective in ("mfp", "both"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            model = TabularResNetWithMFP(
                encoder, model_config.categorical_cardinalities, model_config.num_numerical_features
            )
    train_rows, validation_rows = split_rows(len(numerical), config.validation_fraction, seed)
    train = batch_loader(numerical[train_rows], categorical[train_rows], config.batch_size, seed, True)
    validation = (
        batch_loader(numerical[validation_rows], categorical[validation_rows], config.batch_size, seed, False)
        if len(validation_rows)
        else None
    )
    history = Trainer(model, model_config.categorical_cardinalities, training).fit(train, validation)
    return model.eval(), history.to_dict()


def reference_subset(num_rows: int, reference_size: int | None, seed: int) -> np.ndarray:
    """Rows of the training events kept as the kNN reference set: all of them, or a seeded
    random ``reference_size`` of them (in their original order)."""
    if reference_size is None or reference_size >= num_rows:
        return np.arange(num_rows)
    if reference_size < 1:
        raise ValueError(f"reference_size must be >= 1 or None, got {reference_size}")
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=reference_size, replace=False))
