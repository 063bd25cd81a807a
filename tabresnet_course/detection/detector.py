"""An OCSF anomaly detector: a self-supervised TabularResNet encoder plus kNN distance scoring.

Training (:func:`train_ocsf_anomaly_detector`) runs the whole pipeline of the book on a clean
baseline period: flatten the events, featurise them (``OCSFFeaturizer``), turn the features into
tensors (``TabularPreprocessor``), pre-train a ``TabularResNet`` without labels, embed the
baseline events and keep those embeddings as the *reference set*. Scoring a new event is then
the mean Euclidean distance from its embedding to its ``k`` nearest reference embeddings
(:class:`~tabresnet_course.detection.scorers.KNNScorer`): events unlike anything in the baseline score
high. :meth:`OCSFAnomalyDetector.score_chunks` scores a file chunk by chunk, in bounded memory.

The reference set must be clean. Bursty attacks (brute force, port scans) form dense clusters
of near-identical events; if such a burst is in the reference set, the burst's own records are
each other's nearest neighbours and score as normal (chapter "The OCSF pipeline" shows the
effect with :func:`tabresnet_course.evaluation.contamination_effect`).

Every setting lives in one :class:`DetectorConfig` (model size, training, batch size, validation
fraction, reference size, ``k``, the scorer, the protected columns); the command line takes its
defaults from it. The scorer (``DetectorConfig.scorer``, built by
:func:`tabresnet_course.detection.scorers.build_detector_scorer`) is the embedding kNN, a subsampled kNN
ensemble, or a fusion of the embedding kNN with a second opinion on the raw features: a kNN
(``"fusion_knn"``, the default: an event is as strange as the stranger of its two reference
ranks) or an Isolation Forest, with or without per-entity rate features
(:mod:`tabresnet_course.features.rates`).

The saved detector is one directory with ``weights.pt`` (the encoder's ``state_dict``, loadable
with ``torch.load(weights_only=True)``), ``config.json`` (the ``DetectorConfig``, every fitted
preprocessing state and the training record as plain JSON) and ``reference_embeddings.npy``
(``allow_pickle=False``), plus ``reference_features.npy`` for the fusion scorers (the raw
reference rows, numericals next to category codes; the kNN index or the seeded forest is
rebuilt from them at load time) and, for explanations
(:meth:`OCSFAnomalyDetector.explain`), ``reference_sample.json`` (a bounded sample of the raw
reference events; detectors saved without it still load): nothing is pickled. The file mechanics (atomic directory replace,
checksums, safe loads) are :mod:`tabresnet_course.artifacts`'. Chapter "The OCSF pipeline"
teaches this file.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError
from tqdm.auto import tqdm

from tabresnet_course.artifacts import (
    FORMAT_VERSION,
    atomic_write_directory,
    json_bytes,
    load_json,
    load_npy_bytes,
    load_state_dict_bytes,
    npy_bytes,
    package_version,
    read_checked_bytes,
    sha256,
    torch_bytes,
)
from tabresnet_course.detection.scorers import DETECTOR_SCORERS, build_detector_scorer, tree_features
from tabresnet_course.errors import InputError, collapse_whitespace
from tabresnet_course.events.flat import as_flat_frame
from tabresnet_course.model import (
    EMBEDDING_BATCH_SIZE,
    TabularResNet,
    TabularResNetConfig,
    embed_in_batches,
)
from tabresnet_course.runtime import distributed_world_size, resolve_device
from tabresnet_course.training import Trainer, TrainingConfig

DEFAULT_K = 5
"""Neighbours averaged by the kNN score. Small k reacts to isolated oddities; a larger k also
flags small groups of similar anomalies (a group of ``g < k`` records cannot hide behind itself)."""

DETECTOR_KIND = "tabresnet_course.OCSFAnomalyDetector"
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference_embeddings.npy"
FEATURES_FILE = "reference_features.npy"
REFERENCE_SAMPLE_FILE = "reference_sample.json"


# --------------------------------------------------------------------------- inputs


# --------------------------------------------------------------------------- configuration


def detector_training_defaults() -> TrainingConfig:
    """The detector's training settings, the detection study's centre configuration (chapter
    "The OCSF pipeline"): ``TrainingConfig``'s, with 10 epochs, patience 5, no progress bars
    (a small encoder on a baseline of thousands of events converges in a few epochs), 30% of
    the cells corrupted and temperature 0.1 (the contrastive settings under which the
    ``fusion_knn`` scorer beat raw-feature kNN on both AUROC and average precision)."""
    return TrainingConfig(num_epochs=10, patience=5, progress=False, corruption_rate=0.3, temperature=0.1)


@dataclass
class DetectorConfig:
    """Every setting of :func:`train_ocsf_anomaly_detector`, in one place (chapter "The OCSF
    pipeline"); round-trips through plain JSON and is stored in the saved detector.

    The model fields are those of :class:`~tabresnet_course.model.TabularResNetConfig` that do
    not depend on the data (the detector's encoder is smaller than the model's default: width 64,
    two blocks); ``training`` is a :class:`~tabresnet_course.training.TrainingConfig`;
    ``batch_size`` and ``validation_fraction`` shape training; ``reference_size`` rows of the
    baseline (all when ``None``) form the reference set, scored with ``k`` neighbours by
    ``scorer`` (one of :data:`~tabresnet_course.detection.scorers.DETECTOR_SCORERS`);
    ``protected_columns`` names features the contrastive augmentation never changes (names the
    feature specification lacks are skipped; the training record lists the ones protected);
    the defaults are those the detection study supports (chapter "The OCSF pipeline": the
    ``fusion_knn`` scorer, whose raw-feature kNN sees the magnitudes the embedding compresses
    and keeps bursts visible when the baseline holds attacks, and no protected columns, since
    protecting class, activity and status made no consistent difference);
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
    scorer: str = "fusion_knn"
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
        if "detector_config" in config:  # saved before scorer / protected_columns existed: kNN, nothing protected
            saved = {"scorer": "knn", "protected_columns": [], **config["detector_config"]}
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
        )


def build_encoder(config: TabularResNetConfig | dict[str, Any], seed: int) -> TabularResNet:
    """A freshly initialised encoder whose weights depend only on ``config`` and ``seed`` (the
    global torch random state is left untouched). The untrained baseline uses the same call."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TabularResNet.from_config(config)


# --------------------------------------------------------------------------- the detector


class OCSFAnomalyDetector:
    """A trained encoder, the preprocessing that feeds it, and a kNN reference set (chapter
    "The OCSF pipeline").

    Build one with :func:`train_ocsf_anomaly_detector` or :meth:`load`. ``score(events)``
    returns one score per input record, in input order (higher = more anomalous).

    Args:
        model: the encoder (``TabularResNet``) in embedding mode.
        featurizer: a fitted ``OCSFFeaturizer`` (flat events -> named features).
        preprocessor: a fitted ``TabularPreprocessor`` (features -> index/float arrays).
        reference_embeddings: ``(n_ref, d_model)`` embeddings of the clean baseline, or ``None``.
        reference_features: ``(n_ref, n)`` raw rows of the same events (:meth:`raw_features`),
            needed by the fusion scorers only.
        config: the :class:`DetectorConfig` (``k``, ``embedding_batch_size``, and how the encoder
            was trained); the defaults when ``None``.
        training: plain-JSON record of the training run (history, rows; saved with the detector).
        reference_sample: a bounded sample of the raw reference events (flat frame) that
            :meth:`explain` draws neighbours and typical values from, or ``None``.
        knn_backend: the :class:`~tabresnet_course.detection.scorers.KNNScorer` backend (``"auto"``: the
            fastest exact one installed). A choice of this machine, not saved with the detector.
    """

    def __init__(
        self,
        model: TabularResNet,
        featurizer: Any,
        preprocessor: Any,
        reference_embeddings: np.ndarray | None = None,
        reference_features: np.ndarray | None = None,
        *,
        config: DetectorConfig | None = None,
        training: dict[str, Any] | None = None,
        reference_sample: pd.DataFrame | None = None,
        knn_backend: str = "auto",
    ) -> None:
        self.model = model.eval()
        self.featurizer = featurizer
        self.preprocessor = preprocessor
        self.config = config if config is not None else DetectorConfig()
        self.training = dict(training or {})
        self.knn_backend = knn_backend
        self.reference_embeddings: np.ndarray | None = None
        self.reference_features: np.ndarray | None = None
        self.scorer_: Any = None
        self.reference_sample = reference_sample
        self.explainer_: Any = None
        if reference_embeddings is not None:
            self.set_reference_embeddings(reference_embeddings, reference_features)

    # -- the pipeline, one step per method ---------------------------------------------------

    @property
    def k(self) -> int:
        """Neighbours averaged by the score (``config.k``)."""
        return self.config.k

    @property
    def cardinalities(self) -> list[int]:
        """Real categories per categorical column (the preprocessor's ``cardinalities_``)."""
        return list(self.preprocessor.cardinalities_)

    @property
    def device(self) -> torch.device:
        """Where the encoder's weights live."""
        return next(self.model.parameters()).device

    def preprocess(self, events: Any) -> tuple[np.ndarray, np.ndarray]:
        """Events -> ``(numerical float32 (N, n_num), categorical int64 (N, n_cat))``, row-aligned."""
        frame = as_flat_frame(events)
        if len(frame) == 0:
            numerical_columns = len(self.preprocessor.numerical_feature_names_)
            return np.zeros((0, numerical_columns), np.float32), np.zeros((0, len(self.cardinalities)), np.int64)
        features = self.featurizer.transform(frame)
        numerical, categorical = self.preprocessor.transform(features)
        if len(numerical) != len(frame):
            raise RuntimeError(f"preprocessing returned {len(numerical)} rows for {len(frame)} events")
        return numerical, categorical

    def embed_arrays(self, numerical: np.ndarray, categorical: np.ndarray, progress: bool = False) -> np.ndarray:
        """Preprocessed arrays -> ``(N, d_model)`` float32 embeddings, in eval mode, in batches of
        ``config.embedding_batch_size`` (:func:`~tabresnet_course.model.embed_in_batches`)."""
        return embed_in_batches(self.model, numerical, categorical, self.config.embedding_batch_size, progress)

    def embed(self, events: Any, progress: bool = False) -> np.ndarray:
        """``(N, d_model)`` embeddings of ``events``, one row per input record, in input order."""
        return self.embed_arrays(*self.preprocess(events), progress=progress)

    @property
    def raw_view(self) -> str | None:
        """The raw-feature view the scorer reads besides the embedding (``"codes"``,
        ``"codes+rates"``), or ``None``."""
        views = DETECTOR_SCORERS[self.config.scorer]
        return views[1] if len(views) > 1 else None

    def raw_features(
        self, frame: pd.DataFrame, numerical: np.ndarray, categorical: np.ndarray, rates: Any = None
    ) -> np.ndarray | None:
        """The scorer's raw view of preprocessed events (``None`` when it reads embeddings
        only): :func:`~tabresnet_course.detection.scorers.tree_features`, with the causal rate features of
        ``frame`` for ``"codes+rates"`` (zero for an event without a readable time). Rates count
        only the events passed in, plus, when ``rates`` is a
        :class:`~tabresnet_course.features.rates.ChunkedRates`, the recent events of the chunks it saw
        before: score a period in time order rather than event by event."""
        if self.raw_view is None:
            return None
        from tabresnet_course.features.rates import ChunkedRates

        if self.raw_view != "codes+rates":
            return tree_features(numerical, categorical)
        stream = rates if rates is not None else ChunkedRates()
        return tree_features(numerical, categorical, stream.transform(frame).to_numpy())

    def set_reference_embeddings(self, embeddings: np.ndarray, features: np.ndarray | None = None) -> None:
        """Use ``embeddings`` ``(n_ref, d_model)`` (and, for the fusion scorers, the same rows'
        ``features`` from :meth:`raw_features`) as the reference set and fit the scorer on it."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.model.d_model:
            raise ValueError(f"reference embeddings must have shape (n, {self.model.d_model}), got {embeddings.shape}")
        scorer = build_detector_scorer(
            self.config.scorer,
            self.k,
            self.config.seed,
            self.knn_backend,
            num_numerical=self.model.config.num_numerical_features,
            cardinalities=self.cardinalities,
        )
        if self.raw_view is None:
            self.scorer_ = scorer.fit(embeddings)
        elif features is None or len(features) != len(embeddings):
            raise ValueError(
                f"scorer {self.config.scorer!r} needs reference features for the {len(embeddings)} reference rows"
            )
        else:
            features = np.asarray(features, dtype=np.float64)
            self.scorer_ = scorer.fit([embeddings, features])
        self.reference_embeddings, self.reference_features = embeddings, features

    def score(self, events: Any, progress: bool = False) -> np.ndarray:
        """``(N,)`` anomaly scores, one per input record, in input order; higher = more
        anomalous. With ``scorer="knn"``, the mean distance of each record's embedding to its
        ``k`` nearest reference embeddings; the fusions combine its reference rank with a
        raw-feature kNN's (the larger of the two, ``"fusion_knn"``) or an Isolation Forest's
        (their mean). The same path as :meth:`score_chunks`."""
        [(_, scores)] = self.score_chunks([events], progress=progress)
        return scores

    def score_arrays(
        self, numerical: np.ndarray, categorical: np.ndarray, features: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores of preprocessed rows (and, for the fusion scorers, the same rows' ``features``
        from :meth:`raw_features`), embedded and scored in blocks of
        ``config.embedding_batch_size`` rows counted from the first row."""
        if self.scorer_ is None:
            raise NotFittedError("this detector has no reference set; call with_reference(events) first")
        if self.raw_view is not None and (features is None or len(features) != len(numerical)):
            raise ValueError(f"scorer {self.config.scorer!r} needs raw features for the {len(numerical)} rows")
        embeddings = self.embed_arrays(numerical, categorical)  # (N, d_model)
        size = self.config.embedding_batch_size
        blocks = []
        for start in range(0, len(embeddings), size):
            block = embeddings[start : start + size]
            view = block if self.raw_view is None else [block, features[start : start + size]]
            blocks.append(self.scorer_.score(view))
        return np.concatenate([np.zeros(0), *blocks])

    def score_chunks(self, chunks: Iterable[Any], progress: bool = False) -> Iterator[tuple[Any, np.ndarray]]:
        """Score events that come in chunks (anything :func:`~tabresnet_course.events.flat.as_flat_frame`
        takes, such as the chunks of :class:`~tabresnet_course.events.files.EventChunks`): yields
        ``(chunk, scores)`` for each chunk, in order, as soon as all its rows are scored
        (chapter "The OCSF pipeline").

        Rows are preprocessed chunk by chunk but embedded and scored in blocks of
        ``config.embedding_batch_size`` rows counted from the first row of the first chunk,
        whatever the chunk sizes, and the rate features of the ``"fusion_rates"`` scorer carry
        the recent events of earlier chunks (:class:`~tabresnet_course.features.rates.ChunkedRates`): the
        scores are bit for bit those of :meth:`score` on all the events at once, and memory holds
        one block, the chunks waiting for it and the last hour of events' rate columns. For
        ``"fusion_rates"`` that equality needs time-ordered input (no event older than an event
        of an earlier chunk), as OCSF exports and the generator's files are.
        """
        from tabresnet_course.features.rates import ChunkedRates

        if self.scorer_ is None:
            raise NotFittedError("this detector has no reference set; call with_reference(events) first")
        size = self.config.embedding_batch_size
        rates = ChunkedRates()
        waiting: deque[tuple[Any, int]] = deque()  # chunks not yet yielded, and their rows
        pending: list[list[np.ndarray]] = []  # preprocessed rows not yet scored: numerical, categorical(, raw)
        scores = np.zeros(0)  # scores of rows whose chunk is not complete yet
        with tqdm(desc="scoring", unit=" events", disable=not progress, leave=False) as bar:
            for chunk in chunks:
                frame = as_flat_frame(chunk)
                numerical, categorical = self.preprocess(frame)
                waiting.append((chunk, len(numerical)))
                if len(numerical):
                    features = self.raw_features(frame, numerical, categorical, rates)
                    pending.append([numerical, categorical] if features is None else [numerical, categorical, features])
                buffered = sum(len(part[0]) for part in pending)
                if buffered >= size:
                    full = buffered - buffered % size
                    joined = [np.concatenate(column) for column in zip(*pending)]
                    scores = np.concatenate([scores, self.score_arrays(*(column[:full] for column in joined))])
                    pending = [[column[full:] for column in joined]]
                    bar.update(full)
                scores, ready = complete_chunks(waiting, scores)
                yield from ready
            buffered = sum(len(part[0]) for part in pending)
            if buffered:
                rest = self.score_arrays(*(np.concatenate(column) for column in zip(*pending)))
                bar.update(len(rest))
                scores = np.concatenate([scores, rest])
        yield from complete_chunks(waiting, scores)[1]

    def explain(self, events: Any, top: int = 3) -> pd.DataFrame:
        """The ``top`` fields that set each event apart from its nearest normal neighbours, as a
        tidy table (columns ``event``, ``rank``, ``field``, ``value``, ``typical``,
        ``contribution``): :class:`~tabresnet_course.detection.explain.NeighbourExplainer` on the
        reference sample (chapter "Explaining alerts")."""
        from tabresnet_course.detection.explain import NeighbourExplainer

        if self.reference_sample is None:
            raise NotFittedError(
                "this detector keeps no reference sample to explain with (saved by an older version); "
                "rebuild it with with_reference(baseline events)"
            )
        if self.explainer_ is None:
            self.explainer_ = NeighbourExplainer(self.featurizer, self.preprocessor, self.embed_arrays, self.k)
            self.explainer_.fit(self.reference_sample)
        return self.explainer_.explain(events, top)

    def with_reference(self, events: Any) -> OCSFAnomalyDetector:
        """A detector sharing this encoder and preprocessing whose reference set is the
        embeddings of ``events`` (used by the evaluation's baselines and contamination demo),
        and whose reference sample for :meth:`explain` is drawn from them."""
        from tabresnet_course.detection.explain import reference_sample

        frame = as_flat_frame(events)
        numerical, categorical = self.preprocess(frame)
        return OCSFAnomalyDetector(
            self.model,
            self.featurizer,
            self.preprocessor,
            self.embed_arrays(numerical, categorical),
            self.raw_features(frame, numerical, categorical),
            config=self.config,
            training=self.training,
            reference_sample=reference_sample(frame, self.featurizer, self.config.seed),
            knn_backend=self.knn_backend,
        )

    def untrained_copy(self, seed: int | None = None) -> OCSFAnomalyDetector:
        """The same architecture and preprocessing with freshly initialised weights (by default
        the training seed, i.e. the very weights training started from) and no reference set."""
        seed = self.config.seed if seed is None else int(seed)
        model = build_encoder(self.model.config, seed).to(self.device)
        return OCSFAnomalyDetector(
            model,
            self.featurizer,
            self.preprocessor,
            config=self.config.with_options(seed=seed),
            training={"seed": seed},
            knn_backend=self.knn_backend,
        )

    # -- saving and loading ------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """Everything but the weights and the reference set, as plain JSON-able data."""
        spec = getattr(self.featurizer, "spec", None)
        return {
            "kind": DETECTOR_KIND,
            "format_version": FORMAT_VERSION,
            "package_version": package_version(),
            "model_config": self.model.config.to_dict(),
            "feature_spec": spec.to_dict() if spec is not None else None,
            "featurizer": self.featurizer.to_dict(),
            "preprocessor": self.preprocessor.to_dict(),
            "detector_config": self.config.to_dict(),
            "training": self.training,
            "k": self.k,
        }

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the detector to ``directory`` (``weights.pt``, ``config.json``,
        ``reference_embeddings.npy``, ``reference_features.npy`` for the fusion scorers and
        ``reference_sample.json`` when it has one) atomically
        (:func:`~tabresnet_course.artifacts.atomic_write_directory`).
        An existing ``directory`` is refused (:class:`InputError`) unless ``overwrite=True``, and
        is only ever replaced when it is empty or holds a saved detector. Returns the directory."""
        if self.reference_embeddings is None:
            raise NotFittedError("cannot save a detector without a reference set")
        weights = torch_bytes({name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()})
        files = {WEIGHTS_FILE: weights, REFERENCE_FILE: npy_bytes(self.reference_embeddings)}
        if self.reference_features is not None:
            files[FEATURES_FILE] = npy_bytes(self.reference_features)
        if self.reference_sample is not None:
            files[REFERENCE_SAMPLE_FILE] = sample_bytes(self.reference_sample)
        config = self.config_dict()
        config["files"] = {name: sha256(data) for name, data in files.items()}
        files[CONFIG_FILE] = json_bytes(config)
        return atomic_write_directory(
            directory, files, overwrite=overwrite, what="saved detector", replaceable=is_saved_detector
        )

    @classmethod
    def load(
        cls, directory: str | os.PathLike, device: str | torch.device = "cpu", knn_backend: str = "auto"
    ) -> OCSFAnomalyDetector:
        """Read a detector written by :meth:`save` (scoring with ``knn_backend``). Raises :class:`InputError` naming the file
        when the directory or a file is missing, a file is corrupted, the format version is not
        one this package reads, or the configuration does not match the weights."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError(f"{directory}: no such detector directory")
        config = read_config(directory / CONFIG_FILE)
        checksums = config["files"] if isinstance(config["files"], dict) else {}
        weights = read_checked_bytes(directory / WEIGHTS_FILE, checksums.get(WEIGHTS_FILE), CONFIG_FILE)
        reference = read_checked_bytes(directory / REFERENCE_FILE, checksums.get(REFERENCE_FILE), CONFIG_FILE)
        featurizer, preprocessor, model, detector_config = rebuild_parts(directory / CONFIG_FILE, config)
        load_weights(model, weights, directory / WEIGHTS_FILE)
        embeddings = read_reference(reference, directory / REFERENCE_FILE, model.d_model)
        sample = None
        if REFERENCE_SAMPLE_FILE in checksums:  # detectors saved before explanations have none
            sample_data = read_checked_bytes(
                directory / REFERENCE_SAMPLE_FILE, checksums[REFERENCE_SAMPLE_FILE], CONFIG_FILE
            )
            sample = read_sample(sample_data, directory / REFERENCE_SAMPLE_FILE)
        if config["k"] > len(embeddings):
            raise InputError(
                f"{directory / CONFIG_FILE}: k={config['k']} is more than the {len(embeddings)} "
                f"reference embeddings in {REFERENCE_FILE}"
            )
        features = None
        if len(DETECTOR_SCORERS[detector_config.scorer]) > 1:
            data = read_checked_bytes(directory / FEATURES_FILE, checksums.get(FEATURES_FILE), CONFIG_FILE)
            features = read_features(data, directory / FEATURES_FILE, len(embeddings))
        return cls(
            model.to(resolve_device(device)),
            featurizer,
            preprocessor,
            embeddings,
            features,
            config=detector_config,
            training=config.get("training") or {},
            reference_sample=sample,
            knn_backend=knn_backend,
        )


def complete_chunks(
    waiting: deque[tuple[Any, int]], scores: np.ndarray
) -> tuple[np.ndarray, list[tuple[Any, np.ndarray]]]:
    """Take from the front of ``waiting`` every chunk whose rows ``scores`` covers: returns the
    scores left over and the ``(chunk, its scores)`` pairs taken."""
    ready = []
    while waiting and waiting[0][1] <= len(scores):
        chunk, rows = waiting.popleft()
        ready.append((chunk, scores[:rows]))
        scores = scores[rows:]
    return scores, ready


# --------------------------------------------------------------------------- training


def train_ocsf_anomaly_detector(
    events: Any,
    *,
    feature_spec: Any = None,
    config: DetectorConfig | None = None,
    **options: Any,
) -> OCSFAnomalyDetector:
    """Train an :class:`OCSFAnomalyDetector` on ``events`` from a clean baseline period
    (chapter "The OCSF pipeline"; the seed's function, without its pickled scalers).

    The pipeline: featurise (``OCSFFeaturizer(feature_spec)``, default spec when ``None``),
    preprocess (``TabularPreprocessor``), pre-train a ``TabularResNet`` with the package's
    ``Trainer`` (``objective`` ``"contrastive"``, ``"mfp"`` or ``"both"``; a seeded
    ``validation_fraction`` of the rows is held out for the validation loss and early
    stopping with ``patience``), then embed the reference set and index it for kNN scoring.

    The reference set is the training events themselves (or a seeded random subset of
    ``reference_size`` of them, to bound scoring cost). **The caller is responsible for a clean
    baseline**: attacks present in ``events`` become "normal" to the detector, and bursts (brute
    force, port scans) hide completely behind their own near-duplicates.

    ``events``: a flat dotted-column DataFrame, a list of nested OCSF event dicts, or a
    generator / reader result with a ``.frame``. The settings are ``config`` (a
    :class:`DetectorConfig`, its defaults when ``None``) changed by ``options``: any field of
    ``DetectorConfig`` (``d_model``, ``num_blocks``, ``dropout``, ``batch_size``,
    ``validation_fraction``, ``reference_size``, ``k``) or of ``TrainingConfig`` (``objective``,
    ``num_epochs``, ``learning_rate``, ``patience``, ``seed``, ``device``, ``progress``,
    ``temperature``, ``precision``, ...). Under ``torchrun`` every process calls this
    function; the trainer shards the batches.
    """
    from tabresnet_course.detection.explain import reference_sample

    config = (config if config is not None else DetectorConfig()).with_options(**options)  # checked before featurising
    frame = as_flat_frame(events)
    if len(frame) < 2 * config.k:
        raise ValueError(f"need at least {2 * config.k} events to train a detector with k={config.k}, got {len(frame)}")
    featurizer, preprocessor, (numerical, categorical) = fit_preprocessing(frame, feature_spec)
    model_config = config.model_config(numerical.shape[1], list(preprocessor.cardinalities_))
    training, protected = protect_columns(config.training, config.protected_columns, preprocessor)
    encoder, history = pretrain_encoder(model_config, numerical, categorical, replace(config, training=training))
    reference_rows = reference_subset(len(frame), config.reference_size, config.seed)
    detector = OCSFAnomalyDetector(
        encoder,
        featurizer,
        preprocessor,
        config=config,
        reference_sample=reference_sample(frame.iloc[reference_rows], featurizer, config.seed),
    )
    features = detector.raw_features(frame, numerical, categorical)
    detector.set_reference_embeddings(
        detector.embed_arrays(
            numerical[reference_rows], categorical[reference_rows], progress=config.training.progress
        ),
        None if features is None else features[reference_rows],
    )
    detector.training = {
        "config": training.to_dict(),
        "protected_columns": protected,
        "history": history,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "validation_fraction": float(config.validation_fraction),
        "training_rows": len(frame),
        "reference_rows": len(reference_rows),
    }
    return detector


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
    from tabresnet_course.data import TensorBatchLoader

    batch_size = max(1, min(int(batch_size), len(numerical) // distributed_world_size()))  # torchrun shards each batch
    return TensorBatchLoader(numerical, categorical, batch_size=batch_size, shuffle=shuffle, drop_last=True, seed=seed)


def pretrain_encoder(
    model_config: TabularResNetConfig,
    numerical: np.ndarray,
    categorical: np.ndarray,
    config: DetectorConfig,
) -> tuple[TabularResNet, dict[str, Any]]:
    """Build the encoder from ``config.seed`` (wrapped for MFP when the objective needs it),
    train it with the package ``Trainer`` and return the encoder and the history as a dict."""
    from tabresnet_course.mfp import TabularResNetWithMFP

    training, seed = config.training, config.seed
    encoder = build_encoder(model_config, seed)
    model: torch.nn.Module = encoder
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
    return encoder.eval(), history.to_dict()


def reference_subset(num_rows: int, reference_size: int | None, seed: int) -> np.ndarray:
    """Rows of the training events kept as the kNN reference set: all of them, or a seeded
    random ``reference_size`` of them (in their original order)."""
    if reference_size is None or reference_size >= num_rows:
        return np.arange(num_rows)
    if reference_size < 1:
        raise ValueError(f"reference_size must be >= 1 or None, got {reference_size}")
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=reference_size, replace=False))


# --------------------------------------------------------------------------- reading a saved detector


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
    if version != FORMAT_VERSION:
        raise InputError(
            f"{path} has format_version {version!r}, but this package (tabresnet_course "
            f"{package_version()}) reads format_version {FORMAT_VERSION}; it was written by "
            f"tabresnet_course {config.get('package_version', 'of an unknown version')}"
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


def sample_bytes(sample: pd.DataFrame) -> bytes:
    """The reference sample as compact JSON: a list of nested OCSF events."""
    from tabresnet_course.events.flat import frame_to_events

    finite = sample.replace([np.inf, -np.inf], np.nan)
    events = frame_to_events(finite)
    return (json.dumps(events, separators=(",", ":"), allow_nan=False, default=epoch_milliseconds) + "\n").encode(
        "utf-8"
    )


def epoch_milliseconds(value: Any) -> int:
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
