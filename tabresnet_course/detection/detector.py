"""An OCSF anomaly detector: a self-supervised TabularResNet encoder plus kNN distance scoring.

Training (:func:`train_ocsf_anomaly_detector`) runs the whole pipeline of the book on a clean
baseline period (one step per function of :mod:`tabresnet_course.detection.pipeline`): flatten the
events, featurise them (``OCSFFeaturizer``), turn the features into tensors
(``TabularPreprocessor``), pre-train a ``TabularResNet`` without labels, embed the baseline
events and keep those embeddings as the *reference set*. Scoring a new event is then the mean
Euclidean distance from its embedding to its ``k`` nearest reference embeddings
(:class:`~tabresnet_course.detection.scorers.KNNScorer`): events unlike anything in the baseline
score high. :meth:`OCSFAnomalyDetector.score_chunks` scores a file chunk by chunk, in bounded memory.

The reference set must be clean. Bursty attacks (brute force, port scans) form dense clusters
of near-identical events; if such a burst is in the reference set, the burst's own records are
each other's nearest neighbours and score as normal (chapter "The OCSF pipeline" shows the
effect with :func:`tabresnet_course.evaluation.contamination_effect`).

Every setting lives in one :class:`~tabresnet_course.detection.config.DetectorConfig`; the
command line takes its defaults from it. The scorer (``DetectorConfig.scorer``, built by
:func:`tabresnet_course.detection.scorers.build_detector_scorer`) is the embedding kNN, a
subsampled kNN ensemble, or a fusion of the embedding kNN with a second opinion on the raw
features: a kNN (``"fusion_knn"``, the default: an event is as strange as the stranger of its
two reference ranks) or an Isolation Forest, with or without per-entity rate features
(:mod:`tabresnet_course.features.rates`). The saved detector is one directory of plain files,
nothing pickled (:mod:`tabresnet_course.detection.saved`). Training also keeps held-out normal
scores (:mod:`tabresnet_course.detection.calibration`), so that a score becomes a percentile and an
alert at a chosen false-alarm rate (:meth:`OCSFAnomalyDetector.alert_threshold`). Chapter "The OCSF
pipeline" teaches this file.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError
from tqdm.auto import tqdm

from tabresnet_course.artifacts import (
    atomic_write_directory,
    json_bytes,
    npy_bytes,
    package_version,
    read_checked_bytes,
    sha256,
    torch_bytes,
)
from tabresnet_course.detection.base import Scorer
from tabresnet_course.detection.calibration import AlertThreshold, Calibration, cross_fitted_scores, events_per_day
from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.detection.pipeline import (
    build_encoder,
    fit_preprocessing,
    pretrain_encoder,
    protect_columns,
    reference_subset,
)
from tabresnet_course.detection.refine import refine_reference
from tabresnet_course.detection.saved import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    DETECTOR_FORMAT_VERSION,
    DETECTOR_KIND,
    FEATURES_FILE,
    REFERENCE_FILE,
    REFERENCE_SAMPLE_FILE,
    REFERENCE_SCORES_FILE,
    WEIGHTS_FILE,
    calibration_bytes,
    float64_npy_bytes,
    is_saved_detector,
    load_weights,
    read_calibration,
    read_config,
    read_features,
    read_reference,
    read_reference_scores,
    read_sample,
    rebuild_parts,
    sample_bytes,
)
from tabresnet_course.detection.scorers import (
    DETECTOR_SCORERS,
    ReferenceRankFusion,
    build_detector_scorer,
    tree_features,
)
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import as_flat_frame
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import TabularResNet, embed_in_batches
from tabresnet_course.runtime import resolve_device, scoring_threads, threads

__all__ = ["OCSFAnomalyDetector", "train_ocsf_anomaly_detector"]


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
        config: the :class:`~tabresnet_course.detection.config.DetectorConfig` (``k``,
            ``embedding_batch_size``, and how the encoder was trained); the defaults when ``None``.
        training: plain-JSON record of the training run (history, rows; saved with the detector).
        reference_sample: a bounded sample of the raw reference events (flat frame) that
            :meth:`explain` draws neighbours and typical values from, or ``None``.
        calibration: the held-out normal scores behind :meth:`percentiles` and
            :meth:`alert_threshold` (:class:`~tabresnet_course.detection.calibration.Calibration`),
            or ``None`` (detectors saved before format 2, or with a new reference set).
        reference_scores: ``(members, n_ref)`` the fusion scorer's sorted reference scores from an
            earlier fit on the same rows (a saved detector's), used instead of recomputed.
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
        calibration: Calibration | None = None,
        knn_backend: str = "auto",
        reference_scores: np.ndarray | None = None,
    ) -> None:
        self.model = model.eval()
        self.featurizer = featurizer
        self.preprocessor = preprocessor
        self.config = config if config is not None else DetectorConfig()
        self.training = dict(training or {})
        self.knn_backend = knn_backend
        self.reference_embeddings: np.ndarray | None = None
        self.reference_features: np.ndarray | None = None
        self.scorer_: Scorer | None = None
        self.reference_sample = reference_sample
        self.calibration = calibration
        self.explainer_: Any = None
        self.checksum_: str | None = None
        if reference_embeddings is not None:
            self.set_reference_embeddings(reference_embeddings, reference_features, reference_scores)

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

    def set_reference_embeddings(
        self, embeddings: np.ndarray, features: np.ndarray | None = None, reference_scores: np.ndarray | None = None
    ) -> None:
        """Use ``embeddings`` ``(n_ref, d_model)`` (and, for the fusion scorers, the same rows'
        ``features`` from :meth:`raw_features`) as the reference set and fit the scorer on it;
        ``reference_scores`` are the fusion's stored reference scores of these rows, if known."""
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
        if reference_scores is not None and not isinstance(scorer, ReferenceRankFusion):
            raise ValueError(f"scorer {self.config.scorer!r} keeps no reference scores")
        if self.raw_view is None:
            self.scorer_ = scorer.fit(embeddings)
        elif features is None or len(features) != len(embeddings):
            raise ValueError(
                f"scorer {self.config.scorer!r} needs reference features for the {len(embeddings)} reference rows"
            )
        else:
            features = np.asarray(features, dtype=np.float64)
            self.scorer_ = scorer.fit([embeddings, features], reference_scores)
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
        ``config.embedding_batch_size`` rows counted from the first row, with
        :func:`~tabresnet_course.runtime.scoring_threads` threads (1 unless set: measured faster)."""
        if self.scorer_ is None:
            raise NotFittedError("this detector has no reference set; call with_reference(events) first")
        if self.raw_view is not None and (features is None or len(features) != len(numerical)):
            raise ValueError(f"scorer {self.config.scorer!r} needs raw features for the {len(numerical)} rows")
        size = self.config.embedding_batch_size
        blocks = []
        with threads(scoring_threads()):
            embeddings = self.embed_arrays(numerical, categorical)  # (N, d_model)
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
                scores, ready = _complete_chunks(waiting, scores)
                yield from ready
            buffered = sum(len(part[0]) for part in pending)
            if buffered:
                rest = self.score_arrays(*(np.concatenate(column) for column in zip(*pending)))
                bar.update(len(rest))
                scores = np.concatenate([scores, rest])
        yield from _complete_chunks(waiting, scores)[1]

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

    # -- from scores to alerts (chapter "The OCSF pipeline") ------------------------------------

    def calibrated(self) -> Calibration:
        """The :class:`~tabresnet_course.detection.calibration.Calibration`; a detector without
        one raises :class:`InputError` saying to retrain it."""
        if self.calibration is None:
            raise InputError(
                "this detector has no calibration (it was saved before format 2, or given a new reference "
                "set); retrain it to get percentiles, alerts and findings"
            )
        return self.calibration

    def percentiles(self, scores: Any) -> np.ndarray:
        """``(n,)`` 0-100: the share of held-out normal baseline events scoring lower than each score."""
        return self.calibrated().percentiles(scores)

    def alert_threshold(self, alert_rate: float | None = None, alerts_per_day: float | None = None) -> AlertThreshold:
        """The threshold for ``alert_rate`` (the share of normal events accepted as false
        alarms; default 0.001) or ``alerts_per_day`` (through the baseline's event rate)."""
        return self.calibrated().threshold(alert_rate, alerts_per_day)

    def alerts(self, scores: Any, alert_rate: float | None = None, alerts_per_day: float | None = None) -> np.ndarray:
        """``(n,)`` booleans: which scores are above :meth:`alert_threshold`."""
        return np.asarray(scores, dtype=np.float64) > self.alert_threshold(alert_rate, alerts_per_day).score

    @property
    def checksum(self) -> str:
        """The SHA-256 of the detector's ``config.json`` (which records the checksum of every
        other file): the one identity of a saved detector, named in its findings."""
        if self.checksum_ is None:
            self.checksum_ = sha256(self.saved_files()[CONFIG_FILE])
        return self.checksum_

    def refined_rows(self, embeddings: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Indices of the baseline rows (their ``embeddings`` and raw ``features``) that the
        reference set keeps after refinement (``config.refine_share``; chapter "The OCSF pipeline",
        :func:`~tabresnet_course.detection.refine.refine_reference`)."""
        codes = features if self.raw_view == "codes" else None
        layout = (self.model.config.num_numerical_features, self.cardinalities) if codes is not None else (None, None)
        return refine_reference(embeddings, codes, self.k, self.config.refine_share, self.config.seed, *layout)

    def with_reference(self, events: Any) -> OCSFAnomalyDetector:
        """A detector sharing this encoder and preprocessing whose reference set is the
        embeddings of ``events``, refined as in training (used by the evaluation's baselines and
        contamination demo), and whose reference sample for :meth:`explain` is drawn from them."""
        from tabresnet_course.detection.explain import reference_sample

        frame = as_flat_frame(events)
        numerical, categorical = self.preprocess(frame)
        embeddings = self.embed_arrays(numerical, categorical)
        features = self.raw_features(frame, numerical, categorical)
        kept = self.refined_rows(embeddings, features)
        return OCSFAnomalyDetector(
            self.model,
            self.featurizer,
            self.preprocessor,
            embeddings[kept],
            None if features is None else features[kept],
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
            "format_version": DETECTOR_FORMAT_VERSION,
            "package_version": package_version(),
            "model_config": self.model.config.to_dict(),
            "feature_spec": spec.to_dict() if spec is not None else None,
            "featurizer": self.featurizer.to_dict(),
            "preprocessor": self.preprocessor.to_dict(),
            "detector_config": self.config.to_dict(),
            "training": self.training,
            "k": self.k,
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
        }

    def saved_files(self) -> dict[str, bytes]:
        """The files of the saved detector by name, ``config.json`` (with every other file's
        checksum) included."""
        if self.reference_embeddings is None:
            raise NotFittedError("cannot save a detector without a reference set")
        weights = torch_bytes({name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()})
        files = {WEIGHTS_FILE: weights, REFERENCE_FILE: npy_bytes(self.reference_embeddings)}
        if self.reference_features is not None:
            files[FEATURES_FILE] = npy_bytes(self.reference_features)
        if self.reference_sample is not None:
            files[REFERENCE_SAMPLE_FILE] = sample_bytes(self.reference_sample)
        if self.calibration is not None:
            files[CALIBRATION_FILE] = calibration_bytes(self.calibration)
        if isinstance(self.scorer_, ReferenceRankFusion):
            files[REFERENCE_SCORES_FILE] = float64_npy_bytes(np.stack(self.scorer_.reference_scores_))
        config = self.config_dict()
        config["files"] = {name: sha256(data) for name, data in files.items()}
        files[CONFIG_FILE] = json_bytes(config)
        return files

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the detector to ``directory`` (:meth:`saved_files`: ``weights.pt``,
        ``config.json``, ``reference_embeddings.npy``, ``reference_features.npy`` for the fusion
        scorers, ``reference_sample.json`` and ``calibration_scores.npy`` when it has them)
        atomically (:func:`~tabresnet_course.artifacts.atomic_write_directory`).
        An existing ``directory`` is refused (:class:`InputError`) unless ``overwrite=True``, and
        is only ever replaced when it is empty or holds a saved detector. Returns the directory."""
        files = self.saved_files()
        self.checksum_ = sha256(files[CONFIG_FILE])
        return atomic_write_directory(
            directory, files, overwrite=overwrite, what="saved detector", replaceable=is_saved_detector
        )

    @classmethod
    def load(
        cls, directory: str | os.PathLike, device: str | torch.device = "cpu", knn_backend: str = "auto"
    ) -> OCSFAnomalyDetector:
        """Read a detector written by :meth:`save` (scoring with ``knn_backend``). Raises
        :class:`InputError` naming the file when the directory or a file is missing, a file is
        corrupted, the format version is not one this package reads, or the configuration does
        not match the weights."""
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
        calibration = None
        if CALIBRATION_FILE in checksums:  # detectors saved before format 2 have none
            data = read_checked_bytes(directory / CALIBRATION_FILE, checksums[CALIBRATION_FILE], CONFIG_FILE)
            calibration = read_calibration(data, directory / CALIBRATION_FILE, config.get("calibration"))
        scores = None
        if features is not None and REFERENCE_SCORES_FILE in checksums:
            data = read_checked_bytes(directory / REFERENCE_SCORES_FILE, checksums[REFERENCE_SCORES_FILE], CONFIG_FILE)
            members = len(DETECTOR_SCORERS[detector_config.scorer])
            scores = read_reference_scores(data, directory / REFERENCE_SCORES_FILE, members, len(embeddings))
        elif features is not None and config["format_version"] < 3:
            warnings.warn(
                f"{directory} was saved before format 3 and keeps no {REFERENCE_SCORES_FILE}: its reference "
                "scores are recomputed at every load (slow with a large reference); retrain it to store them",
                stacklevel=2,
            )
        detector = cls(
            model.to(resolve_device(device)),
            featurizer,
            preprocessor,
            embeddings,
            features,
            config=detector_config,
            training=config.get("training") or {},
            reference_sample=sample,
            calibration=calibration,
            knn_backend=knn_backend,
            reference_scores=scores,
        )
        detector.checksum_ = sha256((directory / CONFIG_FILE).read_bytes())
        return detector


def _complete_chunks(
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

    Last, the detector is calibrated on every baseline row it embedded: each reference row is
    scored by a copy of the scorer fitted on the other nine tenths of the reference
    (:func:`~tabresnet_course.detection.calibration.cross_fitted_scores`), each row that
    refinement dropped by the fitted scorer (which never saw it), and these held-out scores, with
    the baseline's events per day, become its ``calibration``
    (:meth:`OCSFAnomalyDetector.percentiles`, :meth:`OCSFAnomalyDetector.alert_threshold`).
    """
    from tabresnet_course.detection.explain import reference_sample

    config = (config if config is not None else DetectorConfig()).with_options(**options)  # checked before featurising
    frame = as_flat_frame(events)
    if len(frame) < 2 * config.k:
        raise ValueError(f"need at least {2 * config.k} events to train a detector with k={config.k}, got {len(frame)}")
    featurizer, preprocessor, (numerical, categorical) = fit_preprocessing(frame, feature_spec)
    model_config = config.model_config(numerical.shape[1], list(preprocessor.cardinalities_))
    training, protected = protect_columns(config.training, config.protected_columns, preprocessor)
    model, history = pretrain_encoder(model_config, numerical, categorical, replace(config, training=training))
    encoder = model.base_model if isinstance(model, TabularResNetWithMFP) else model
    reference_rows = reference_subset(len(frame), config.reference_size, config.seed)
    detector = OCSFAnomalyDetector(
        encoder,
        featurizer,
        preprocessor,
        config=config,
        reference_sample=reference_sample(frame.iloc[reference_rows], featurizer, config.seed),
    )
    features = detector.raw_features(frame, numerical, categorical)
    embeddings = detector.embed_arrays(
        numerical[reference_rows], categorical[reference_rows], progress=config.training.progress
    )
    baseline_rows = reference_rows
    kept = detector.refined_rows(embeddings, None if features is None else features[baseline_rows])
    dropped = np.setdiff1d(np.arange(len(baseline_rows)), kept)
    reference_rows = reference_rows[kept]
    detector.set_reference_embeddings(embeddings[kept], None if features is None else features[reference_rows])
    reference = (
        detector.reference_embeddings
        if features is None
        else [detector.reference_embeddings, detector.reference_features]
    )
    held_out = cross_fitted_scores(detector.scorer_, reference, seed=config.seed)
    if len(dropped):  # rows refinement dropped are held out by construction: the fitted scorer never saw them
        views = embeddings[dropped] if features is None else [embeddings[dropped], features[baseline_rows[dropped]]]
        held_out = np.concatenate([held_out, detector.scorer_.score(views)])
    detector.calibration = Calibration(held_out, events_per_day(frame["time"]) if "time" in frame.columns else None)
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
