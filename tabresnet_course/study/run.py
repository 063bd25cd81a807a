"""The detection study's runs: which detector finds the generator's attacks, with clean and
contaminated baselines, over seeds (``python -m tabresnet_course.study --grid default --out DIR``).

One *run* is a configuration (:class:`~tabresnet_course.study.grid.StudyConfig`), a data seed and
a training seed: generate a baseline and an evaluation period
(:func:`~tabresnet_course.ocsf.generator.generate_baseline_and_evaluation`), optionally mix a
share of attack events into the baseline (:func:`contaminated_baseline`), train the detector on
it, fit every method of :data:`METHODS` on it and score the evaluation period. The grid
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
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.pipeline import pretrain_encoder
from tabresnet_course.detection.scorers import (
    IsolationForestScorer,
    KNNScorer,
    PyODScorer,
    SubsampledKNNScorer,
    build_detector_scorer,
    one_hot_features,
    rank_fusion,
    tree_features,
)
from tabresnet_course.detection.surprisal import MFPSurprisalScorer
from tabresnet_course.features.rates import rate_features
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.ocsf.generator import (
    GeneratedEvents,
    generate_baseline_and_evaluation,
    generate_ocsf_events,
)
from tabresnet_course.study.grid import PROTECTED, Cell, Grid, StudyConfig, study_grid

__all__ = [
    "ALERT_BUDGET",
    "CONTAMINATION_SEED_OFFSET",
    "DETECTOR_METHODS",
    "METHODS",
    "Run",
    "StudyData",
    "contaminated_baseline",
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
CONTAMINATION_SEED_OFFSET = 10_000
"""Event seed of the attack pool mixed into a contaminated baseline: ``data_seed + offset``
(never the baseline's ``data_seed`` or the evaluation's ``data_seed + 1``)."""


# --------------------------------------------------------------------------- data


def contaminated_baseline(baseline: GeneratedEvents, contamination: float, seed: int) -> pd.DataFrame:
    """The baseline's flat frame plus attack events making up ``contamination`` of the result,
    spread across attack types in the generator's proportions and timed inside the baseline
    period (as when a "clean" period already held attacks). The attacks come from a separate,
    seeded period of the same organisation (:func:`~tabresnet_course.evaluation.contamination_mask` picks the same
    share of each scenario's events), so the evaluation period stays the same at every level."""
    if not 0.0 <= contamination < 0.5:
        raise ValueError(f"contamination must be in [0, 0.5), got {contamination}")
    frame = baseline.frame
    num_attacks = round(contamination * len(frame) / (1.0 - contamination))
    if num_attacks == 0:
        return frame
    pool = generate_ocsf_events(max(2_000, 60 * num_attacks), baseline.days, seed, True, baseline.start)
    labels = pool.labels.reset_index(drop=True)
    scenarios = sorted(set(labels.loc[labels["is_anomaly"], "scenario"]))
    share = num_attacks / int(labels["is_anomaly"].sum())
    moved = evaluation.contamination_mask(labels, scenarios, share, seed=seed)
    mixed = pd.concat([frame, pool.frame.reset_index(drop=True)[moved]], ignore_index=True)
    return mixed.iloc[np.argsort(mixed["time"].to_numpy(), kind="stable")].reset_index(drop=True)


@dataclass
class StudyData:
    """One data seed's training frame (possibly contaminated) and labelled evaluation period."""

    train_frame: pd.DataFrame
    evaluation: GeneratedEvents


def study_data(config: StudyConfig, data_seed: int) -> StudyData:
    """Generate the periods of ``data_seed`` and contaminate the baseline as configured."""
    baseline, evaluation_period = generate_baseline_and_evaluation(
        num_baseline=config.num_baseline, num_evaluation=config.num_evaluation, seed=data_seed
    )
    train_frame = contaminated_baseline(baseline, config.contamination, data_seed + CONTAMINATION_SEED_OFFSET)
    return StudyData(train_frame, evaluation_period)


# --------------------------------------------------------------------------- models (detector API calls)


def train_detector(config: StudyConfig, frame: pd.DataFrame, seed: int) -> OCSFAnomalyDetector:
    """The detector of a run, trained on CPU with the package's trainer (its scorer is the
    plain kNN: the study scores every method itself from the embeddings)."""
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


def method_table(run: Run) -> dict[str, Callable[[], np.ndarray]]:
    """Every method of the study: name -> a function computing its ``(n_query,)`` scores."""
    k, seed = run.config.k, run.train_seed

    def raw(name: str, seeded: bool, scorer: Callable[[], Any], kind: str) -> Callable[[], np.ndarray]:
        uses_k = "knn" in name
        return lambda: run.raw_scores(name, seeded, uses_k, lambda: run.fit_score(scorer(), run.raw_matrices(kind)))

    methods: dict[str, Callable[[], np.ndarray]] = {
        "embedding_knn": lambda: run.fit_score(KNNScorer(k), run.embeddings(True)),
        "untrained_knn": lambda: run.fit_score(KNNScorer(k), run.embeddings(False)),
        "embedding_subsampled_knn": lambda: run.fit_score(SubsampledKNNScorer(k, seed=seed), run.embeddings(True)),
        "raw_knn": raw("raw_knn", False, lambda: KNNScorer(k), "one_hot"),
        "raw_subsampled_knn": raw("raw_subsampled_knn", True, lambda: SubsampledKNNScorer(k, seed=seed), "one_hot"),
        "isolation_forest": raw("isolation_forest", True, lambda: IsolationForestScorer(seed=seed), "codes"),
        "ecod": raw("ecod", False, lambda: PyODScorer("ecod"), "one_hot"),
        "copod": raw("copod", False, lambda: PyODScorer("copod"), "one_hot"),
        "hbos": raw("hbos", False, lambda: PyODScorer("hbos"), "one_hot"),
        "lof": raw("lof", False, lambda: PyODScorer("lof"), "one_hot"),
        "rates_raw_knn": raw("rates_raw_knn", False, lambda: KNNScorer(k), "one_hot+rates"),
        "rates_raw_iforest": raw("rates_raw_iforest", True, lambda: IsolationForestScorer(seed=seed), "codes+rates"),
        "mfp_surprisal": run.mfp_surprisal,
    }
    methods["fusion_embedding_iforest"] = lambda: rank_fusion(
        [methods["embedding_knn"](), methods["isolation_forest"]()]
    )
    methods["fusion_embedding_rates"] = lambda: rank_fusion(
        [methods["embedding_knn"](), methods["rates_raw_iforest"]()]
    )

    def detector_scorer(scorer: str, kind: str, trained: bool = True) -> Callable[[], np.ndarray]:
        return lambda: run.fit_score(
            build_detector_scorer(
                scorer,
                k,
                seed,
                num_numerical=run.detector.model.config.num_numerical_features,
                cardinalities=run.detector.cardinalities,
            ),
            tuple(zip(run.embeddings(trained), run.raw_matrices(kind))),
        )

    for scorer, kind in (("fusion_knn", "codes"), ("fusion_iforest", "codes"), ("fusion_rates", "codes+rates")):
        methods[f"detector_{scorer}"] = detector_scorer(scorer, kind)
    methods["untrained_fusion_knn"] = detector_scorer("fusion_knn", "codes", trained=False)
    return methods


METHODS: tuple[str, ...] = (
    "embedding_knn",
    "untrained_knn",
    "embedding_subsampled_knn",
    "raw_knn",
    "raw_subsampled_knn",
    "isolation_forest",
    "ecod",
    "copod",
    "hbos",
    "lof",
    "rates_raw_knn",
    "rates_raw_iforest",
    "mfp_surprisal",
    "fusion_embedding_iforest",
    "fusion_embedding_rates",
    "detector_fusion_knn",
    "untrained_fusion_knn",
    "detector_fusion_iforest",
    "detector_fusion_rates",
)
"""The methods a run can score, in table order. ``fusion_*`` average ranks within the scored
period (:func:`~tabresnet_course.detection.scorers.rank_fusion`); ``detector_fusion_*`` are the
detector's own scorers (:func:`~tabresnet_course.detection.scorers.build_detector_scorer`: ranks among the
reference's scores, so an event's score does not depend on the others scored with it);
``untrained_fusion_knn`` is the default scorer on the untrained encoder (what training adds)."""

DETECTOR_METHODS: dict[str, str] = {
    "knn": "embedding_knn",
    "subsampled_knn": "embedding_subsampled_knn",
    "fusion_knn": "detector_fusion_knn",
    "fusion_iforest": "detector_fusion_iforest",
    "fusion_rates": "detector_fusion_rates",
}
"""The study method that measures each ``DetectorConfig.scorer`` (chapter "The OCSF pipeline")."""


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
