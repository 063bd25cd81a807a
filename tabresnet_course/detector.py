"""An OCSF anomaly detector: a self-supervised TabularResNet encoder plus kNN distance scoring.

Training (:func:`train_ocsf_anomaly_detector`) runs the whole pipeline of the book on a clean
baseline period: flatten the events, featurise them (``OCSFFeaturizer``), turn the features into
tensors (``TabularPreprocessor``), pre-train a ``TabularResNet`` without labels, embed the
baseline events and keep those embeddings as the *reference set*. Scoring a new event is then
the mean Euclidean distance from its embedding to its ``k`` nearest reference embeddings
(``sklearn.neighbors.NearestNeighbors``): events unlike anything in the baseline score high.

The reference set must be clean. Bursty attacks (brute force, port scans) form dense clusters
of near-identical events; if such a burst is in the reference set, the burst's own records are
each other's nearest neighbours and score as normal (chapter "The OCSF pipeline" shows the
effect with :func:`tabresnet_course.evaluation.contamination_effect`).

The saved detector is one directory with ``weights.pt`` (the encoder's ``state_dict``, loadable
with ``torch.load(weights_only=True)``), ``config.json`` (every configuration and fitted
preprocessing state as plain JSON) and ``reference_embeddings.npy`` (``allow_pickle=False``):
nothing is pickled. Chapter "The OCSF pipeline" teaches this file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import NearestNeighbors
from tqdm.auto import tqdm

from tabresnet_course.artifacts import (
    FORMAT_VERSION,
    atomic_write_bytes,
    ordinary_mode,
    package_version,
    save_json_atomic,
)
from tabresnet_course.errors import InputError, collapse_whitespace
from tabresnet_course.flat import as_flat_frame
from tabresnet_course.model import TabularResNet, TabularResNetConfig

DEFAULT_K = 5
"""Neighbours averaged by the kNN score. Small k reacts to isolated oddities; a larger k also
flags small groups of similar anomalies (a group of ``g < k`` records cannot hide behind itself)."""

DETECTOR_KIND = "tabresnet_course.OCSFAnomalyDetector"
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference_embeddings.npy"


# --------------------------------------------------------------------------- inputs


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_encoder(config: TabularResNetConfig | dict[str, Any], seed: int) -> TabularResNet:
    """A freshly initialised encoder whose weights depend only on ``config`` and ``seed`` (the
    global torch random state is left untouched). The untrained baseline uses the same call."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TabularResNet.from_config(config)


# --------------------------------------------------------------------------- kNN scoring


class KNNScorer:
    """Mean Euclidean distance to the ``k`` nearest rows of a reference set (higher = more
    anomalous), with scikit-learn's ``NearestNeighbors`` (or ``faiss``, if installed and asked
    for with ``backend="faiss"``). Accepts dense arrays, and sparse matrices with scikit-learn."""

    def __init__(self, k: int = DEFAULT_K, backend: str = "sklearn") -> None:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if backend not in ("sklearn", "faiss"):
            raise ValueError(f"backend must be 'sklearn' or 'faiss', got {backend!r}")
        self.k = int(k)
        self.backend = backend

    def fit(self, reference: Any) -> "KNNScorer":
        """Index the reference rows ``(n_ref, d)``; needs at least ``k`` of them."""
        if reference.shape[0] < self.k:
            raise ValueError(f"the reference set has {reference.shape[0]} rows, fewer than k={self.k}")
        if self.backend == "faiss":
            self.index_ = faiss_index(np.ascontiguousarray(reference, dtype=np.float32))
        else:
            self.index_ = NearestNeighbors(n_neighbors=self.k).fit(reference)
        return self

    def score(self, query: Any) -> np.ndarray:
        """``(n_query,)`` mean distance of each query row to its ``k`` nearest reference rows."""
        if self.backend == "faiss":
            squared, _ = self.index_.search(np.ascontiguousarray(query, dtype=np.float32), self.k)
            return np.sqrt(np.maximum(squared, 0.0)).mean(axis=1).astype(np.float64)
        distances, _ = self.index_.kneighbors(query)  # (n_query, k)
        return distances.mean(axis=1)


def faiss_index(reference: np.ndarray) -> Any:
    """An exact L2 ``faiss`` index over ``reference`` (only when faiss is installed)."""
    try:
        import faiss
    except ImportError:
        raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu)") from None
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    return index


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
        k: neighbours averaged by the score (see ``DEFAULT_K``).
        training: plain-JSON record of how the encoder was trained (saved with the detector).
        batch_size: rows per forward pass when embedding.
    """

    def __init__(
        self,
        model: TabularResNet,
        featurizer: Any,
        preprocessor: Any,
        reference_embeddings: np.ndarray | None = None,
        *,
        k: int = DEFAULT_K,
        training: dict[str, Any] | None = None,
        batch_size: int = 4096,
    ) -> None:
        self.model = model.eval()
        self.featurizer = featurizer
        self.preprocessor = preprocessor
        self.k = int(k)
        self.training = dict(training or {})
        self.batch_size = int(batch_size)
        self.reference_embeddings: np.ndarray | None = None
        self.knn_: KNNScorer | None = None
        if reference_embeddings is not None:
            self.set_reference_embeddings(reference_embeddings)

    # -- the pipeline, one step per method ---------------------------------------------------

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
        features = self.featurizer.transform(frame)
        numerical, categorical = self.preprocessor.transform(features)
        if len(numerical) != len(frame):
            raise RuntimeError(f"preprocessing returned {len(numerical)} rows for {len(frame)} events")
        return numerical, categorical

    @torch.no_grad()
    def embed_arrays(self, numerical: np.ndarray, categorical: np.ndarray, progress: bool = False) -> np.ndarray:
        """Preprocessed arrays -> ``(N, d_model)`` float32 embeddings, in eval mode, in batches
        (a tqdm bar on stderr when ``progress``)."""
        self.model.eval()
        device = self.device
        numerical_t = torch.as_tensor(numerical, dtype=torch.float32)  # (N, n_num)
        categorical_t = torch.as_tensor(categorical, dtype=torch.long)  # (N, n_cat)
        batches = zip(numerical_t.split(self.batch_size), categorical_t.split(self.batch_size))
        total = -(-len(numerical_t) // self.batch_size)
        chunks = [
            self.model(num.to(device), cat.to(device), return_embedding=True).float().cpu()  # (B, d_model)
            for num, cat in tqdm(batches, total=total, desc="embedding", disable=not progress, leave=False)
        ]
        if not chunks:
            return np.zeros((0, self.model.d_model), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def embed(self, events: Any, progress: bool = False) -> np.ndarray:
        """``(N, d_model)`` embeddings of ``events``, one row per input record, in input order."""
        return self.embed_arrays(*self.preprocess(events), progress=progress)

    def set_reference_embeddings(self, embeddings: np.ndarray) -> None:
        """Use ``embeddings`` ``(n_ref, d_model)`` as the kNN reference set."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.model.d_model:
            raise ValueError(
                f"reference embeddings must have shape (n, {self.model.d_model}), got {embeddings.shape}"
            )
        self.reference_embeddings = embeddings
        self.knn_ = KNNScorer(self.k).fit(embeddings)

    def score(self, events: Any, progress: bool = False) -> np.ndarray:
        """``(N,)`` anomaly scores: mean distance of each record's embedding to its ``k`` nearest
        reference embeddings. One score per input record, in input order; higher = more anomalous."""
        if self.knn_ is None:
            raise ValueError("this detector has no reference set; call with_reference(events) first")
        embeddings = self.embed(events, progress=progress)
        if len(embeddings) == 0:
            return np.zeros(0)
        return self.knn_.score(embeddings)

    def with_reference(self, events: Any) -> "OCSFAnomalyDetector":
        """A detector sharing this encoder and preprocessing whose reference set is the
        embeddings of ``events`` (used by the evaluation's baselines and contamination demo)."""
        return OCSFAnomalyDetector(
            self.model,
            self.featurizer,
            self.preprocessor,
            self.embed(events),
            k=self.k,
            training=self.training,
            batch_size=self.batch_size,
        )

    def untrained_copy(self, seed: int | None = None) -> "OCSFAnomalyDetector":
        """The same architecture and preprocessing with freshly initialised weights (by default
        the training seed, i.e. the very weights training started from) and no reference set."""
        seed = int(self.training.get("seed", 0)) if seed is None else int(seed)
        model = build_encoder(self.model.config, seed).to(self.device)
        return OCSFAnomalyDetector(
            model, self.featurizer, self.preprocessor, k=self.k, training={"seed": seed}, batch_size=self.batch_size
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
            "training": self.training,
            "k": self.k,
        }

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the detector to ``directory`` (``weights.pt``, ``config.json``,
        ``reference_embeddings.npy``) atomically: the files go to a temporary directory next to
        it, which is then renamed into place. An existing ``directory`` is refused
        (``FileExistsError``) unless ``overwrite=True``, and is only ever replaced when it is
        empty or holds a saved detector. Returns the directory."""
        if self.reference_embeddings is None:
            raise ValueError("cannot save a detector without a reference set")
        directory = Path(directory)
        check_replaceable(directory, overwrite)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            weights = weights_bytes(self.model)
            reference = npy_bytes(self.reference_embeddings)
            config = self.config_dict()
            config["files"] = {WEIGHTS_FILE: sha256(weights), REFERENCE_FILE: sha256(reference)}
            atomic_write_bytes(staging / WEIGHTS_FILE, weights)  # fsync-ed, like config.json
            atomic_write_bytes(staging / REFERENCE_FILE, reference)
            save_json_atomic(config, staging / CONFIG_FILE)
            staging.chmod(ordinary_mode(directory=True))  # mkdtemp makes it private
            replace_directory(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "OCSFAnomalyDetector":
        """Read a detector written by :meth:`save`. Raises :class:`InputError` naming the file
        when the directory or a file is missing, a file is corrupted, the format version is not
        one this package reads, or the configuration does not match the weights."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError(f"{directory}: no such detector directory")
        config = read_config(directory / CONFIG_FILE)
        weights = read_checked(directory / WEIGHTS_FILE, config)
        reference = read_checked(directory / REFERENCE_FILE, config)
        featurizer, preprocessor, model = rebuild_parts(directory / CONFIG_FILE, config)
        load_weights(model, weights, directory / WEIGHTS_FILE)
        embeddings = read_reference(reference, directory / REFERENCE_FILE, model.d_model)
        if config["k"] > len(embeddings):
            raise InputError(
                f"{directory / CONFIG_FILE}: k={config['k']} is more than the {len(embeddings)} "
                f"reference embeddings in {REFERENCE_FILE}"
            )
        return cls(
            model.to(resolve_device(device)),
            featurizer,
            preprocessor,
            embeddings,
            k=config["k"],
            training=config.get("training") or {},
        )


# --------------------------------------------------------------------------- training


def train_ocsf_anomaly_detector(
    events: Any,
    *,
    feature_spec: Any = None,
    objective: str = "contrastive",
    num_epochs: int = 20,
    d_model: int = 64,
    num_blocks: int = 2,
    dropout: float = 0.1,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    validation_fraction: float = 0.1,
    patience: int | None = 5,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    reference_size: int | None = None,
    k: int = DEFAULT_K,
    **training_options: Any,
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
    generator / reader result with a ``.frame``. ``training_options`` go to
    ``TrainingConfig`` (e.g. ``temperature``, ``corruption_rate``, ``mask_prob``, ``precision``).
    Under ``torchrun`` every process calls this function; the trainer shards the batches.
    """
    from tabresnet_course.training import TrainingConfig

    config = TrainingConfig(
        objective=objective, num_epochs=num_epochs, learning_rate=learning_rate, patience=patience,
        seed=seed, device=device, progress=progress, **training_options,
    )  # validates the options before the (slower) featurisation
    frame = as_flat_frame(events)
    if len(frame) < 2 * k:
        raise ValueError(f"need at least {2 * k} events to train a detector with k={k}, got {len(frame)}")
    featurizer, preprocessor, (numerical, categorical) = fit_preprocessing(frame, feature_spec)
    model_config = TabularResNetConfig(
        num_numerical_features=numerical.shape[1],
        categorical_cardinalities=list(preprocessor.cardinalities_),
        d_model=d_model,
        num_blocks=num_blocks,
        dropout=dropout,
    )
    encoder, history = pretrain_encoder(model_config, numerical, categorical, config, batch_size, validation_fraction)
    detector = OCSFAnomalyDetector(encoder, featurizer, preprocessor, k=k)
    reference_rows = reference_subset(len(frame), reference_size, seed)
    detector.set_reference_embeddings(
        detector.embed_arrays(numerical[reference_rows], categorical[reference_rows], progress=progress)
    )
    detector.training = {
        "config": config.to_dict(),
        "history": history,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "validation_fraction": float(validation_fraction),
        "training_rows": int(len(frame)),
        "reference_rows": int(len(reference_rows)),
    }
    return detector


def fit_preprocessing(frame: pd.DataFrame, feature_spec: Any = None) -> tuple[Any, Any, tuple[np.ndarray, np.ndarray]]:
    """Fit the featuriser and the preprocessor on ``frame``; returns both and the arrays."""
    from tabresnet_course.data import TabularPreprocessor
    from tabresnet_course.features import FeatureSpec, OCSFFeaturizer

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

    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun the trainer shards each batch
    batch_size = max(1, min(int(batch_size), len(numerical) // world_size))
    return TensorBatchLoader(numerical, categorical, batch_size=batch_size, shuffle=shuffle, drop_last=True, seed=seed)


def pretrain_encoder(
    model_config: TabularResNetConfig,
    numerical: np.ndarray,
    categorical: np.ndarray,
    config: Any,
    batch_size: int,
    validation_fraction: float,
) -> tuple[TabularResNet, dict[str, Any]]:
    """Build the encoder from ``config.seed`` (wrapped for MFP when the objective needs it),
    train it with the package ``Trainer`` and return the encoder and the history as a dict."""
    from tabresnet_course.mfp import TabularResNetWithMFP
    from tabresnet_course.training import Trainer

    encoder = build_encoder(model_config, config.seed)
    model: torch.nn.Module = encoder
    if config.objective in ("mfp", "both"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            model = TabularResNetWithMFP(encoder, model_config.categorical_cardinalities, model_config.num_numerical_features)
    train_rows, validation_rows = split_rows(len(numerical), validation_fraction, config.seed)
    train = batch_loader(numerical[train_rows], categorical[train_rows], batch_size, config.seed, True)
    validation = (
        batch_loader(numerical[validation_rows], categorical[validation_rows], batch_size, config.seed, False)
        if len(validation_rows)
        else None
    )
    trainer = Trainer(model, model_config.categorical_cardinalities, config)
    history = trainer.fit(train, validation)
    return encoder.eval(), history.to_dict()


def reference_subset(num_rows: int, reference_size: int | None, seed: int) -> np.ndarray:
    """Rows of the training events kept as the kNN reference set: all of them, or a seeded
    random ``reference_size`` of them (in their original order)."""
    if reference_size is None or reference_size >= num_rows:
        return np.arange(num_rows)
    if reference_size < 1:
        raise ValueError(f"reference_size must be >= 1 or None, got {reference_size}")
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=reference_size, replace=False))


# --------------------------------------------------------------------------- artefact helpers


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (stored in ``config.json`` to detect corrupted files)."""
    return hashlib.sha256(data).hexdigest()


def weights_bytes(model: TabularResNet) -> bytes:
    """The encoder's ``state_dict`` (tensors only, on CPU) serialised by ``torch.save``."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format, without pickle."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def check_replaceable(directory: Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty directory or a saved detector, and refuse even
    those without ``overwrite``."""
    if not directory.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{directory} already exists; pass overwrite=True (--overwrite) to replace it")
    if not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory; refusing to replace it")
    if any(directory.iterdir()) and not is_saved_detector(directory):
        raise FileExistsError(f"{directory} is not empty and does not hold a saved detector; refusing to replace it")


def is_saved_detector(directory: Path) -> bool:
    """Whether ``directory/config.json`` says it is a saved detector."""
    try:
        return json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")).get("kind") == DETECTOR_KIND
    except (OSError, ValueError, AttributeError):
        return False


def replace_directory(staging: Path, directory: Path) -> None:
    """Move ``staging`` to ``directory``. An existing ``directory`` is first renamed aside and
    removed only after the new one is in place, so a crash leaves one complete version."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
    os.replace(directory, aside / "old")
    try:
        os.replace(staging, directory)
    except BaseException:
        os.replace(aside / "old", directory)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def read_config(path: Path) -> dict[str, Any]:
    """``config.json``, checked for kind, format version and the required keys."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (is this a saved detector directory?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None
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


def read_checked(path: Path, config: dict[str, Any]) -> bytes:
    """The bytes of ``path``, checked against the SHA-256 recorded in ``config.json``."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (the detector directory is incomplete)")
    data = path.read_bytes()
    expected = config["files"].get(path.name) if isinstance(config["files"], dict) else None
    if expected != sha256(data):
        raise InputError(f"{path} is corrupted: its SHA-256 does not match the one recorded in {CONFIG_FILE}")
    return data


def rebuild_parts(path: Path, config: dict[str, Any]) -> tuple[Any, Any, TabularResNet]:
    """Featuriser, preprocessor and (untrained) encoder from ``config.json``, checked against
    each other: the preprocessor's output must be exactly what the encoder expects."""
    from tabresnet_course.data import TabularPreprocessor
    from tabresnet_course.features import OCSFFeaturizer

    try:
        featurizer = OCSFFeaturizer.from_dict(config["featurizer"])
        preprocessor = TabularPreprocessor.from_dict(config["preprocessor"])
        model_config = TabularResNetConfig.from_dict(config["model_config"])
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise InputError(f"{path}: cannot rebuild the detector: {collapse_whitespace(error)}") from None
    for kind in ("numerical", "categorical"):
        made = list(getattr(featurizer, f"{kind}_columns"))
        wanted = list(getattr(preprocessor, f"{kind}_cols"))
        if made != wanted:
            only_spec, only_fitted = [c for c in made if c not in wanted], [c for c in wanted if c not in made]
            difference = (f"only in the featurizer: {only_spec}; only in the preprocessor: {only_fitted}"
                          if only_spec or only_fitted else "the same names in another order")
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
    return featurizer, preprocessor, model


def load_weights(model: TabularResNet, data: bytes, path: Path) -> None:
    """Load a weights-only ``state_dict`` into ``model``; a file that is not one, or whose
    tensors do not fit the configured model, raises :class:`InputError`."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        reason = collapse_whitespace(error)[:200]
        raise InputError(f"{path} is not a weights-only state_dict: {type(error).__name__}: {reason}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a state_dict (got {type(state).__name__})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = collapse_whitespace(error)[:300]
        raise InputError(f"{path} does not match the model in {CONFIG_FILE}: {reason}") from None


def read_reference(data: bytes, path: Path, d_model: int) -> np.ndarray:
    """The reference embeddings ``(n_ref, d_model)``, read without pickle and checked."""
    try:
        embeddings = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:  # EOFError: an empty file
        raise InputError(f"{path} is not a valid .npy array: {error}") from None
    if embeddings.ndim != 2 or embeddings.shape[1] != d_model or not np.isfinite(embeddings).all():
        raise InputError(f"{path} must hold finite embeddings of shape (n, {d_model}), got {embeddings.shape}")
    return embeddings
