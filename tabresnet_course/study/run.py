"""The detection study's runs: which detector finds the generator's attacks, with clean and
contaminated baselines, over seeds (``python -m tabresnet_course.study --grid default --out DIR``).

One *run* is a configuration (:class:`~tabresnet_course.study.grid.StudyConfig`), a data seed and
a training seed: generate a baseline and an evaluation period of the configured generator profile
with the configured contamination (:func:`study_data`:
:func:`~tabresnet_course.ocsf.contamination.contaminated_split`, clean, spread or with a share of
every campaign in the training window), train the detector on the baseline, fit every method of
:data:`METHODS` on it and score the evaluation period. The grid
(:mod:`tabresnet_course.study.grid`) varies one factor at a time around a centre configuration;
:func:`run_study` runs it (in worker processes with ``jobs > 1``) and
:mod:`tabresnet_course.study.report` summarises and writes the results. Chapter "The OCSF
pipeline" reads the committed results.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler

from tabresnet_course import evaluation
from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.pipeline import pretrain_encoder
from tabresnet_course.detection.refine import RefinedScorer, detector_refiner, refine_reference
from tabresnet_course.detection.robust import MultiScaleKNNScorer, ReferenceShareKNNScorer
from tabresnet_course.detection.scorers import (
    IsolationForestScorer,
    KNNScorer,
    OneHotKNNScorer,
    PyODScorer,
    SubsampledKNNScorer,
    build_detector_scorer,
    one_hot_features,
    tree_features,
)
from tabresnet_course.detection.surprisal import MFPSurprisalScorer
from tabresnet_course.features.rates import rate_features
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.ocsf.contamination import contaminated_split
from tabresnet_course.ocsf.generator import GeneratedEvents
from tabresnet_course.study.grid import CONTAMINATIONS, PROTECTED, Cell, Grid, StudyConfig, study_grid

__all__ = [
    "ALERT_BUDGET",
    "DETECTOR_METHODS",
    "METHODS",
    "REFINE_SHARE",
    "Run",
    "StudyData",
    "detector_method",
    "method_table",
    "run_metrics",
    "run_study",
    "study_data",
    "study_units",
    "train_detector",
    "train_mfp_model",
    "unit_runs",
]

ALERT_BUDGET = 0.01
"""Share of the evaluation period an operator can look at: recall is measured at this budget."""
REFINE_SHARE = 0.05
"""Share of the baseline the ``*_fusion_refined`` methods drop (the detector's ``refine_share``)."""


# --------------------------------------------------------------------------- data


@dataclass
class StudyData:
    """One data seed's training frame (possibly contaminated) and labelled evaluation period."""

    train_frame: pd.DataFrame
    evaluation: GeneratedEvents


def study_data(config: StudyConfig, data_seed: int) -> StudyData:
    """The baseline (training frame) and evaluation period of ``data_seed`` for the configured
    profile and contamination (:data:`~tabresnet_course.study.grid.CONTAMINATIONS`)."""
    mode, overlap, share = CONTAMINATIONS[config.contamination]
    split = contaminated_split(
        config.num_baseline, config.num_evaluation, share, overlap, mode, config.profile, seed=data_seed
    )
    return StudyData(split.baseline.frame, split.evaluation)


# --------------------------------------------------------------------------- models (detector API calls)


def train_detector(config: StudyConfig, frame: pd.DataFrame, seed: int) -> OCSFAnomalyDetector:
    """The detector of a run, trained on CPU with the package's trainer (its scorer is the
    plain kNN on the unrefined baseline: the study scores every method itself from the
    embeddings)."""
    return train_ocsf_anomaly_detector(
        frame,
        objective=config.objective,
        num_epochs=config.epochs,
        d_model=config.d_model,
        seed=seed,
        device="cpu",
        progress=False,
        k=config.k,
        corruption_rate=config.corruption_rate,
        temperature=config.temperature,
        protected_columns=list(PROTECTED[config.protected]),
        scorer="knn",
        refine_share=0.0,
    )


def train_mfp_model(
    detector: OCSFAnomalyDetector, numerical: np.ndarray, categorical: np.ndarray
) -> TabularResNetWithMFP:
    """An MFP model (encoder + prediction heads) of the detector's architecture, pre-trained like
    the detector (:func:`~tabresnet_course.detection.pipeline.pretrain_encoder` with the
    detector's settings and seed) but with the MFP objective, on the detector's preprocessed
    training rows. (The detector keeps only the encoder, so the study trains its own to read
    the heads.)"""
    model, _ = pretrain_encoder(
        detector.model.config, numerical, categorical, detector.config.with_options(objective="mfp")
    )
    return model


# --------------------------------------------------------------------------- one run


class Run:
    """One run's inputs, computed on first use and shared through the study's ``cache`` with
    later runs that need the same thing (the same data, detector or raw-feature scores)."""

    def __init__(self, config: StudyConfig, data_seed: int, train_seed: int, cache: dict[tuple, Any]) -> None:
        self.config, self.data_seed, self.train_seed, self.cache = config, data_seed, train_seed, cache
        self.data_key = config.data_key(data_seed)

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``cache[key]``, computed by ``compute()`` the first time."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    @property
    def data(self) -> StudyData:
        return self.cached(("data", *self.data_key), lambda: study_data(self.config, self.data_seed))

    @property
    def detector(self) -> OCSFAnomalyDetector:
        key = ("detector", *self.config.detector_key(self.data_seed, self.train_seed))
        return self.cached(key, lambda: train_detector(self.config, self.data.train_frame, self.train_seed))

    @property
    def arrays(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Preprocessed ``(numerical, categorical)`` of the reference and the query (the
        preprocessing is fitted without randomness, so it is shared by every seed)."""
        detector = self.detector
        return self.cached(
            ("arrays", *self.data_key),
            lambda: (detector.preprocess(self.data.train_frame), detector.preprocess(self.data.evaluation)),
        )

    def raw_matrices(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Reference and query raw features: ``"one_hot"`` (dense, for distances and PyOD),
        ``"codes"`` (numericals next to integer category codes,
        :func:`~tabresnet_course.detection.scorers.tree_features`: the detector's raw view, for
        trees and the one-hot kNN), ``"rates"`` (log1p rate features standardised on the
        reference), or ``"one_hot+rates"`` / ``"codes+rates"``."""
        return self.cached(("matrix", kind, *self.data_key), lambda: self.build_matrices(kind))

    def build_matrices(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if "+" in kind:
            parts = [self.raw_matrices(part) for part in kind.split("+")]
            return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])
        reference, query = self.arrays
        if kind == "one_hot":
            cardinalities = self.detector.cardinalities
            return tuple(one_hot_features(*a, cardinalities).toarray() for a in (reference, query))
        if kind == "codes":
            return tree_features(*reference), tree_features(*query)
        if kind == "rates":
            ref_rates, query_rates = (
                np.log1p(rate_features(f).to_numpy()) for f in (self.data.train_frame, self.data.evaluation.frame)
            )
            scaler = StandardScaler().fit(ref_rates)
            return scaler.transform(ref_rates), scaler.transform(query_rates)
        raise ValueError(f"unknown raw feature kind {kind!r}")

    def embeddings(self, trained: bool) -> tuple[np.ndarray, np.ndarray]:
        """Reference and query embeddings of the trained detector or of its untrained copy."""
        key = ("embeddings", trained, *self.config.detector_key(self.data_seed, self.train_seed))
        detector = self.detector if trained else self.detector.untrained_copy()
        return self.cached(key, lambda: (detector.embed(self.data.train_frame), detector.embed(self.data.evaluation)))

    def raw_scores(self, method: str, seeded: bool, uses_k: bool, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Scores of a method on raw features, shared by runs on the same data (and training seed
        when ``seeded``, ``k`` when ``uses_k``) instead of recomputed for every configuration."""
        key = ("scores", method, *self.data_key, self.train_seed if seeded else None, self.config.k if uses_k else None)
        return self.cached(key, compute)

    def fit_score(self, scorer: Any, matrices: tuple[Any, Any]) -> np.ndarray:
        """``scorer`` fitted on the reference matrix and scored on the query matrix."""
        return scorer.fit(matrices[0]).score(matrices[1])

    def mfp_surprisal(self) -> np.ndarray:
        """Total MFP surprisal of the query under a model trained on the reference (shared by
        runs that differ only in the contrastive settings, the objective or ``k``)."""
        reference, query = self.arrays

        def compute() -> np.ndarray:
            model = train_mfp_model(self.detector, *reference)
            return MFPSurprisalScorer(model).fit(reference).score(query)

        return self.cached(("mfp_surprisal", *self.config.mfp_key(self.data_seed, self.train_seed)), compute)

    def retrained_refined_scores(self) -> np.ndarray:
        """One round of Self-supervise, Refine, Repeat (Yoon et al., 2022): the detector's
        refinement (:func:`~tabresnet_course.detection.refine.refine_reference`, on the trained
        embedding and the raw features) drops the most suspect baseline rows, a detector is
        retrained on the rows kept, and ``fusion_multiscale`` on its embedding and raw features,
        fitted on those rows, scores the query."""
        layout = (self.detector.model.config.num_numerical_features, self.detector.cardinalities)
        embeddings, codes = self.embeddings(True)[0], self.raw_matrices("codes")[0]
        kept = refine_reference(embeddings, codes, self.config.k, REFINE_SHARE, self.train_seed, *layout)
        frame = self.data.train_frame.iloc[kept].reset_index(drop=True)
        detector = train_detector(self.config, frame, self.train_seed)
        fusion = build_detector_scorer(
            "fusion_multiscale",
            self.config.k,
            self.train_seed,
            num_numerical=detector.model.config.num_numerical_features,
            cardinalities=detector.cardinalities,
        )
        reference, query = detector.preprocess(frame), detector.preprocess(self.data.evaluation)
        views = [detector.embed_arrays(*reference), tree_features(*reference)]
        return fusion.fit(views).score([detector.embed_arrays(*query), tree_features(*query)])


def method_table(run: Run) -> dict[str, Callable[[], np.ndarray]]:
    """Every method of the study: name -> a function computing its ``(n_query,)`` scores."""
    k, seed = run.config.k, run.train_seed

    def raw(name: str, seeded: bool, scorer: Callable[[], Any], kind: str) -> Callable[[], np.ndarray]:
        uses_k = "knn" in name
        return lambda: run.raw_scores(name, seeded, uses_k, lambda: run.fit_score(scorer(), run.raw_matrices(kind)))

    def layout() -> dict[str, Any]:
        return {
            "num_numerical": run.detector.model.config.num_numerical_features,
            "cardinalities": run.detector.cardinalities,
        }

    def detector_scorer(scorer: str, kind: str, trained: bool = True) -> Callable[[], np.ndarray]:
        def build() -> Any:
            if scorer != "fusion_refined":
                return build_detector_scorer(scorer, k, seed, **layout())
            fusion = build_detector_scorer("fusion_multiscale", k, seed, **layout())
            return RefinedScorer(fusion, detector_refiner(k, **layout()), REFINE_SHARE, seed=seed)

        return lambda: run.fit_score(build(), tuple(zip(run.embeddings(trained), run.raw_matrices(kind))))

    methods: dict[str, Callable[[], np.ndarray]] = {
        "raw_knn": raw("raw_knn", False, lambda: OneHotKNNScorer(k=k, **layout()), "codes"),
        "lof": raw("lof", False, lambda: PyODScorer("lof"), "one_hot"),
        "isolation_forest": raw("isolation_forest", True, lambda: IsolationForestScorer(seed=seed), "codes"),
        "ecod": raw("ecod", False, lambda: PyODScorer("ecod"), "one_hot"),
        "copod": raw("copod", False, lambda: PyODScorer("copod"), "one_hot"),
        "hbos": raw("hbos", False, lambda: PyODScorer("hbos"), "one_hot"),
        "raw_subsampled_knn": raw("raw_subsampled_knn", True, lambda: SubsampledKNNScorer(k, seed=seed), "one_hot"),
        "raw_share_knn": raw("raw_share_knn", False, lambda: ReferenceShareKNNScorer(k=k, **layout()), "codes"),
        "raw_multiscale_knn": raw("raw_multiscale_knn", False, lambda: MultiScaleKNNScorer(k, **layout()), "codes"),
        "embedding_knn": lambda: run.fit_score(KNNScorer(k), run.embeddings(True)),
        "untrained_knn": lambda: run.fit_score(KNNScorer(k), run.embeddings(False)),
        "embedding_subsampled_knn": lambda: run.fit_score(SubsampledKNNScorer(k, seed=seed), run.embeddings(True)),
        "embedding_multiscale_knn": lambda: run.fit_score(MultiScaleKNNScorer(k), run.embeddings(True)),
        "untrained_multiscale_knn": lambda: run.fit_score(MultiScaleKNNScorer(k), run.embeddings(False)),
        "mfp_surprisal": run.mfp_surprisal,
        "retrained_fusion_refined": run.retrained_refined_scores,
    }
    for scorer, kind in (("fusion_knn", "codes"), ("fusion_rates", "codes+rates"), ("fusion_iforest", "codes")):
        methods[f"detector_{scorer}"] = detector_scorer(scorer, kind)
    for scorer in ("fusion_knn", "fusion_multiscale", "fusion_refined"):
        methods[f"detector_{scorer}"] = detector_scorer(scorer, "codes")
        methods[f"untrained_{scorer}"] = detector_scorer(scorer, "codes", trained=False)
    return methods


METHODS: tuple[str, ...] = (
    "raw_knn",
    "lof",
    "isolation_forest",
    "ecod",
    "copod",
    "hbos",
    "raw_subsampled_knn",
    "raw_share_knn",
    "raw_multiscale_knn",
    "embedding_knn",
    "untrained_knn",
    "embedding_subsampled_knn",
    "embedding_multiscale_knn",
    "untrained_multiscale_knn",
    "detector_fusion_knn",
    "untrained_fusion_knn",
    "detector_fusion_multiscale",
    "untrained_fusion_multiscale",
    "detector_fusion_refined",
    "untrained_fusion_refined",
    "retrained_fusion_refined",
    "detector_fusion_rates",
    "detector_fusion_iforest",
    "mfp_surprisal",
)
"""The methods a run can score, in table order: the raw-feature baselines (kNN, PyOD's LOF, ECOD,
COPOD, HBOS, Isolation Forest); the robust raw-feature scorers (subsampled kNN,
:class:`~tabresnet_course.detection.robust.ReferenceShareKNNScorer` and
:class:`~tabresnet_course.detection.robust.MultiScaleKNNScorer` on the codes view); the same on
the trained and the untrained embedding; the detector's scorers
(:func:`~tabresnet_course.detection.scorers.build_detector_scorer`: ``detector_<scorer>``, and
``untrained_<scorer>`` on the untrained encoder, which isolates what training adds);
``retrained_fusion_refined`` (the baseline refined, the encoder retrained on the rows kept and
``fusion_multiscale`` fitted on them: Self-supervise, Refine, Repeat, one round); and the MFP
surprisal of chapter "Masked feature prediction"."""

DETECTOR_METHODS: dict[str, str] = {
    "knn": "embedding_knn",
    "subsampled_knn": "embedding_subsampled_knn",
    "fusion_knn": "detector_fusion_knn",
    "fusion_iforest": "detector_fusion_iforest",
    "fusion_rates": "detector_fusion_rates",
    "fusion_multiscale": "detector_fusion_multiscale",
}
"""The study method that measures each ``DetectorConfig.scorer`` on an unrefined reference."""


def detector_method(config: DetectorConfig) -> str:
    """The study method that measures a detector with ``config``'s scorer and refinement
    (``detector_fusion_refined`` for ``fusion_multiscale`` on a refined reference; chapter "The
    OCSF pipeline")."""
    if config.refine_share == 0:
        return DETECTOR_METHODS[config.scorer]
    if config.scorer != "fusion_multiscale" or config.refine_share != REFINE_SHARE:
        raise ValueError(f"the study measures refinement of {REFINE_SHARE} with fusion_multiscale only, got {config}")
    return "detector_fusion_refined"


def run_metrics(
    cell: Cell, data_seed: int, train_seed: int, cache: dict[tuple, Any], methods: Sequence[str] = METHODS
) -> pd.DataFrame:
    """Per-scenario metrics of ``methods`` in one run, as tidy rows with the run's settings."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown study methods {unknown}; known: {list(METHODS)}")
    run = Run(cell.config, data_seed, train_seed, cache)
    table_of = method_table(run)
    labels = run.data.evaluation.labels.reset_index(drop=True)
    tables = []
    for name in methods:
        started = time.perf_counter()
        scores = table_of[name]()
        table = evaluation.per_scenario_metrics(labels, scores, ALERT_BUDGET)
        tables.append(table.assign(method=name, seconds=time.perf_counter() - started))
    settings = {
        "factor": cell.factor,
        "level": cell.level,
        **dataclasses.asdict(cell.config),
        "data_seed": data_seed,
        "train_seed": train_seed,
    }
    table = pd.concat(tables, ignore_index=True).assign(**settings)
    return table[[*settings, "method", *[c for c in table.columns if c not in settings and c != "method"]]]


def study_units(grid: Grid) -> list[tuple[int, list[int]]]:
    """The grid's runs grouped into independent units of work: ``(data_seed, cell positions)``
    for each data seed and each set of cells that share generated data (every cache key holds
    the data, so nothing is shared between units). In data-seed, then grid order."""
    cells = study_grid(grid)
    units: dict[tuple, list[int]] = {}
    for data_seed in dict.fromkeys(seed for cell in cells for seed in cell.data_seeds):
        for position, cell in enumerate(cells):
            if data_seed in cell.data_seeds:
                units.setdefault((data_seed, *cell.config.data_key(data_seed)), []).append(position)
    return [(key[0], positions) for key, positions in units.items()]


def unit_runs(
    grid: Grid, data_seed: int, positions: Sequence[int], progress: bool = True, threads: int | None = None
) -> dict[int, pd.DataFrame]:
    """The runs of the cells at ``positions`` of the grid on ``data_seed``, sharing one cache
    (data, models, raw-feature scores): cell position -> its runs' table. ``threads`` sets
    torch's CPU threads first (for a worker process)."""
    if threads is not None:
        torch.set_num_threads(threads)
    cells = study_grid(grid)
    cache: dict[tuple, Any] = {}
    tables = {}
    started = time.perf_counter()
    for position in positions:
        cell = cells[position]
        runs = [run_metrics(cell, data_seed, seed, cache, grid.methods or METHODS) for seed in cell.train_seeds]
        tables[position] = pd.concat(runs, ignore_index=True)
        if progress:
            print(
                f"data_seed={data_seed} {cell.factor}={cell.level}: {len(runs)} runs "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return tables


def run_study(
    grid: Grid,
    progress: bool = True,
    on_run: Callable[[pd.DataFrame], None] | None = None,
    jobs: int = 1,
    threads: int = 1,
) -> pd.DataFrame:
    """Every run of ``grid``, as one tidy table (see the module docstring), in data-seed, then
    grid order. The runs come in units that share generated data (:func:`study_units`); with
    ``jobs > 1`` the units run in that many worker processes (each with ``threads`` torch
    threads; every run is seeded, so the table is the same as with one job). ``on_run``
    receives the table so far after every finished unit."""
    units = study_units(grid)
    finished: dict[tuple[int, int], pd.DataFrame] = {}

    def report(data_seed: int, tables: dict[int, pd.DataFrame]) -> None:
        finished.update({(data_seed, position): table for position, table in tables.items()})
        if on_run is not None:
            on_run(pd.concat([finished[key] for key in sorted(finished)], ignore_index=True))

    if jobs == 1:
        for data_seed, positions in units:
            report(data_seed, unit_runs(grid, data_seed, positions, progress))
    else:
        cells = study_grid(grid)
        units.sort(key=lambda unit: -sum(len(cells[position].train_seeds) for position in unit[1]))  # longest first
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {
                pool.submit(unit_runs, grid, seed, positions, progress, threads): seed for seed, positions in units
            }
            for future in as_completed(futures):
                report(futures[future], future.result())
    return pd.concat([finished[key] for key in sorted(finished)], ignore_index=True)
