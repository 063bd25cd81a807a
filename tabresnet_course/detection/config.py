"""The detector's settings: :class:`DetectorConfig`, one dataclass that round-trips through plain
JSON, is stored in the saved detector and gives the command line its defaults.

Chapter "The OCSF pipeline" teaches this file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from tabresnet_course.detection.scorers import DEFAULT_K, DETECTOR_SCORERS
from tabresnet_course.model import EMBEDDING_BATCH_SIZE, TabularResNetConfig
from tabresnet_course.training import TrainingConfig

__all__ = ["DetectorConfig", "detector_training_defaults"]


def detector_training_defaults() -> TrainingConfig:
    """The detector's training settings, the detection study's centre configuration (chapter
    "The OCSF pipeline"): ``TrainingConfig``'s, with 10 epochs, patience 5, no progress bars
    (a small encoder on a baseline of thousands of events converges in a few epochs), 30% of
    the cells corrupted and temperature 0.1 (the contrastive settings of the study's grids)."""
    return TrainingConfig(num_epochs=10, patience=5, progress=False, corruption_rate=0.3, temperature=0.1)


@dataclass
class DetectorConfig:
    """Every setting of :func:`~tabresnet_course.detection.detector.train_ocsf_anomaly_detector`,
    in one place (chapter "The OCSF pipeline"); round-trips through plain JSON and is stored in
    the saved detector.

    The model fields are those of :class:`~tabresnet_course.model.TabularResNetConfig` that do
    not depend on the data (the detector's encoder is smaller than the model's default: width 64,
    two blocks); ``training`` is a :class:`~tabresnet_course.training.TrainingConfig`;
    ``batch_size`` and ``validation_fraction`` shape training; ``reference_size`` rows of the
    baseline (all when ``None``) form the reference set, scored with ``k`` neighbours by
    ``scorer`` (one of :data:`~tabresnet_course.detection.scorers.DETECTOR_SCORERS`);
    ``protected_columns`` names features the contrastive augmentation never changes (names the
    feature specification lacks are skipped; the training record lists the ones protected);
    ``refine_share`` of the reference rows, those that members fitted on disjoint folds of the
    baseline find most anomalous, are dropped before the scorer is fitted
    (:func:`~tabresnet_course.detection.refine.refine_reference`; 0 keeps every row);
    the defaults are those the detection study supports (chapter "The OCSF pipeline": the
    ``fusion_multiscale`` scorer, which fuses a small-``k`` and a reference-share ``k``
    neighbour distance on the embedding and on the raw features, fitted on the baseline refined
    in the manner of Self-supervise, Refine, Repeat, so a campaign that ran during the baseline
    stays visible, where ``fusion_knn``, the previous default, was blind to it; and no protected
    columns, since protecting class, activity and status made no consistent difference);
    ``embedding_batch_size`` bounds the rows per forward pass when embedding.
    """

    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "d_model",
        "num_blocks",
        "dropout",
        "categorical_embedding_dim",
        "hidden_factor",
        "normalization",
    )

    d_model: int = 64
    num_blocks: int = 2
    dropout: float = TabularResNetConfig.dropout
    categorical_embedding_dim: int = TabularResNetConfig.categorical_embedding_dim
    hidden_factor: float = TabularResNetConfig.hidden_factor
    normalization: str = TabularResNetConfig.normalization
    training: TrainingConfig = field(default_factory=detector_training_defaults)
    batch_size: int = 256
    validation_fraction: float = 0.1
    reference_size: int | None = None
    k: int = DEFAULT_K
    scorer: str = "fusion_multiscale"
    refine_share: float = 0.05
    protected_columns: list[str] = field(default_factory=list)
    embedding_batch_size: int = EMBEDDING_BATCH_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.training, dict):
            self.training = TrainingConfig.from_dict(self.training)
        if self.scorer not in DETECTOR_SCORERS:
            raise ValueError(f"scorer must be one of {sorted(DETECTOR_SCORERS)}, got {self.scorer!r}")
        if isinstance(self.protected_columns, str) or not all(isinstance(c, str) for c in self.protected_columns):
            raise ValueError(f"protected_columns must be a list of feature names, got {self.protected_columns!r}")
        self.protected_columns = list(dict.fromkeys(self.protected_columns))
        for name in ("d_model", "num_blocks", "batch_size", "k", "embedding_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not 0.0 <= self.refine_share < 0.5:
            raise ValueError(f"refine_share must be in [0, 0.5), got {self.refine_share}")
        if self.reference_size is not None and self.reference_size < 1:
            raise ValueError(f"reference_size must be >= 1 or None, got {self.reference_size}")
        self.model_config(1, [])  # checks the model fields (normalization, ...)

    @property
    def seed(self) -> int:
        """The run's seed (``training.seed``): model weights, split, batches and reference subset."""
        return self.training.seed

    def model_config(self, num_numerical_features: int, cardinalities: list[int]) -> TabularResNetConfig:
        """The encoder's configuration for data with these features."""
        return TabularResNetConfig(
            num_numerical_features=num_numerical_features,
            categorical_cardinalities=list(cardinalities),
            **{name: getattr(self, name) for name in self.MODEL_FIELDS},
        )

    def options(self) -> dict[str, Any]:
        """Every setting by the name :meth:`with_options` takes: this class's fields and, in
        place of ``training``, ``TrainingConfig``'s (the command line's defaults come from here)."""
        top = {name: value for name, value in vars(self).items() if name != "training"}
        return {**self.training.to_dict(), **top}

    def with_options(self, **options: Any) -> DetectorConfig:
        """A copy with ``options`` changed: names of this class's fields, or of
        ``TrainingConfig``'s (``num_epochs``, ``seed``, ``objective``, ...), which go to ``training``.
        An unknown name raises ``TypeError``."""
        own = {f.name for f in fields(self)} - {"training"}
        unknown = sorted(set(options) - own - {f.name for f in fields(TrainingConfig)})
        if unknown:
            raise TypeError(f"unknown detector options {unknown}")
        training = {name: value for name, value in options.items() if name not in own}
        top = {name: value for name, value in options.items() if name in own}
        return replace(self, training=replace(self.training, **training), **top)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (``training`` nested as a dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectorConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown DetectorConfig fields: {unknown}")
        return cls(**values)

    @classmethod
    def from_saved(cls, config: dict[str, Any]) -> DetectorConfig:
        """The configuration stored in a saved detector's ``config.json``.

        The fields that the saved parts are built from win over ``detector_config``: ``k`` (the
        scorer's, top level since format 1) and the model fields (``model_config``, which the
        weights must match). Detectors saved before ``detector_config`` existed get the rest
        rebuilt from their training record."""
        model = {name: config["model_config"][name] for name in cls.MODEL_FIELDS if name in config["model_config"]}
        if "detector_config" in config:  # saved before scorer / protected_columns / refine_share: kNN, as trained
            saved = {"scorer": "knn", "protected_columns": [], "refine_share": 0.0, **config["detector_config"]}
            return replace(cls.from_dict(saved), k=config["k"], **model)
        training = config.get("training") or {}
        rows = (training.get("training_rows"), training.get("reference_rows"))
        defaults = cls()
        return cls(
            **model,
            training=TrainingConfig.from_dict(training["config"]) if "config" in training else defaults.training,
            batch_size=training.get("batch_size", defaults.batch_size),
            validation_fraction=training.get("validation_fraction", defaults.validation_fraction),
            reference_size=None if rows[0] is None or rows[0] == rows[1] else rows[1],
            k=config["k"],
            scorer="knn",
            protected_columns=[],
            refine_share=0.0,
        )
