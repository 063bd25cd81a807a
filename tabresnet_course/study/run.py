"""The detection study: which detector finds the generator's attacks, with clean and contaminated
baselines, over seeds (``python -m tabresnet_course.study --grid default --out DIR``).

One *run* is a configuration (:class:`StudyConfig`), a data seed and a training seed: generate a
baseline and an evaluation period (:func:`~tabresnet_course.ocsf.generator.generate_baseline_and_evaluation`),
optionally mix a share of attack events into the baseline (:func:`contaminated_baseline`), train
the detector on it, fit every method of :data:`METHODS` on it and score the evaluation period.
The grid varies one factor at a time around a centre configuration (:func:`study_grid`), and
the centre and the contamination levels run on every data x training seed. Outputs in ``--out``:
``runs.csv`` (one row per run x method x scenario, ``overall`` included: AUROC, average
precision, recall at a 1% alert budget), ``summary.csv`` (means and seeded bootstrap 95%
intervals over runs), ``meta.json`` (command, date, hardware, versions, grid) and plots.
Chapter "The OCSF pipeline" reads the committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler

from tabresnet_course import evaluation
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.scorers import (
    KNNScorer,
    PyODScorer,
    SubsampledKNNScorer,
    build_detector_scorer,
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

ALERT_BUDGET = 0.01
PROTECTED: dict[str, tuple[str, ...]] = {"none": (), "class_type_status": ("class_uid", "type_uid", "status_id")}
"""Levels of :attr:`StudyConfig.protected`: feature names the contrastive augmentation keeps
(the default specification's class, activity (``type_uid``) and status columns)."""
CONTAMINATION_SEED_OFFSET = 10_000
"""Event seed of the attack pool mixed into a contaminated baseline: ``data_seed + offset``
(never the baseline's ``data_seed`` or the evaluation's ``data_seed + 1``)."""


@dataclass(frozen=True)
class StudyConfig:
    """One configuration of the study: data sizes, training settings, scoring ``k`` and the share
    of attack events in the training file (``contamination``), and the columns the augmentation
    keeps (``protected``, a key of :data:`PROTECTED`)."""

    num_baseline: int = 8_000
    num_evaluation: int = 10_000
    epochs: int = 10
    objective: str = "contrastive"
    corruption_rate: float = 0.3
    temperature: float = 0.1
    d_model: int = 64
    k: int = 5
    contamination: float = 0.0
    protected: str = "none"

    def data_key(self, data_seed: int) -> tuple:
        """What the generated and contaminated data depend on."""
        return (self.num_baseline, self.num_evaluation, self.contamination, data_seed)

    def detector_key(self, data_seed: int, train_seed: int) -> tuple:
        """What the trained detector depends on (not ``k``: scoring only)."""
        return (
            *self.data_key(data_seed),
            train_seed,
            self.epochs,
            self.objective,
            self.corruption_rate,
            self.temperature,
            self.d_model,
            self.protected,
        )

    def mfp_key(self, data_seed: int, train_seed: int) -> tuple:
        """What the MFP-surprisal model depends on (always trained with the MFP objective)."""
        return (*self.data_key(data_seed), train_seed, self.epochs, self.d_model)


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid: the factor it varies (``"centre"`` for the centre), the
    level, and the seeds it runs on."""

    factor: str
    level: str
    config: StudyConfig
    data_seeds: tuple[int, ...]
    train_seeds: tuple[int, ...]


@dataclass(frozen=True)
class Grid:
    """A centre configuration, the levels each factor takes in turn, and the seeds."""

    name: str
    centre: StudyConfig
    variations: dict[str, tuple] = field(default_factory=dict)
    data_seeds: tuple[int, ...] = (0, 1, 2)
    train_seeds: tuple[int, ...] = (0, 1, 2)
    sweep_train_seeds: tuple[int, ...] = (0,)
    full_seed_factors: tuple[str, ...] = ("contamination",)
    methods: tuple[str, ...] | None = None
    """The methods scored (all of :data:`METHODS` when ``None``)."""


GRIDS: dict[str, Grid] = {
    "default": Grid(
        name="default",
        centre=StudyConfig(),
        variations={
            "contamination": (0.01, 0.02, 0.05),
            "num_baseline": (4_000, 16_000),
            "epochs": (3, 20),
            "objective": ("mfp", "both"),
            "corruption_rate": (0.6, 0.8),
            "temperature": (0.5, 1.0),
            "d_model": (32, 128),
            "k": (1, 20),
            "protected": ("class_type_status",),
        },
    ),
    "smoke": Grid(
        name="smoke",
        centre=StudyConfig(num_baseline=1_500, num_evaluation=1_500, epochs=1, d_model=16),
        variations={"contamination": (0.05,), "k": (10,)},
        data_seeds=(0, 1),
        train_seeds=(0,),
    ),
    "confirm": Grid(
        name="confirm",
        centre=StudyConfig(),
        variations={"contamination": (0.02,)},
        data_seeds=(3, 4, 5),
        methods=(
            "embedding_knn",
            "untrained_knn",
            "raw_knn",
            "isolation_forest",
            "lof",
            "rates_raw_knn",
            "detector_fusion_knn",
            "untrained_fusion_knn",
            "detector_fusion_rates",
        ),
    ),
}
"""The study's grids: ``default`` (every factor, the committed results), ``smoke`` (the tests),
and ``confirm`` (the chosen centre, clean and with 2% contamination, on data seeds 3-5, which
the choice of defaults never saw)."""


def study_grid(grid: Grid) -> list[Cell]:
    """The cells of ``grid``: the centre and the contamination levels on every data x training
    seed, every other level on every data seed x ``sweep_train_seeds``."""
    cells = [Cell("centre", "centre", grid.centre, grid.data_seeds, grid.train_seeds)]
    for factor, levels in grid.variations.items():
        if factor not in {f.name for f in dataclasses.fields(StudyConfig)}:
            raise ValueError(f"grid {grid.name!r} varies {factor!r}, which is not a StudyConfig field")
        seeds = grid.train_seeds if factor in grid.full_seed_factors else grid.sweep_train_seeds
        for level in levels:
            config = dataclasses.replace(grid.centre, **{factor: level})
            cells.append(Cell(factor, str(level), config, grid.data_seeds, seeds))
    return cells


# --------------------------------------------------------------------------- data


def contaminated_baseline(baseline: GeneratedEvents, contamination: float, seed: int) -> pd.DataFrame:
    """The baseline's flat frame plus attack events making up ``contamination`` of the result,
    spread across attack types in the generator's proportions and timed inside the baseline
    period (as when a "clean" period already held attacks). The attacks come from a separate,
    seeded period of the same organisation (:func:`evaluation.contamination_mask` picks the same
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
    detector: OCSFAnomalyDetector, numerical: np.ndarray, categorical: np.ndarray, config: StudyConfig, seed: int
) -> TabularResNetWithMFP:
    """An MFP model (encoder + prediction heads) of the detector's architecture trained with the
    MFP objective on the detector's preprocessed training rows, as the detector trainer would.
    (The trainer keeps only the encoder, so the study trains its own to read the heads.)"""
    from tabresnet_course.detection.detector import batch_loader, build_encoder, split_rows
    from tabresnet_course.training import Trainer, TrainingConfig

    model_config = detector.model.config
    encoder = build_encoder(model_config, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        model = TabularResNetWithMFP(encoder, detector.cardinalities, numerical.shape[1])
    training = TrainingConfig(
        objective="mfp", num_epochs=config.epochs, patience=5, seed=seed, device="cpu", progress=False
    )
    train_rows, validation_rows = split_rows(len(numerical), 0.1, seed)
    train = batch_loader(numerical[train_rows], categorical[train_rows], 256, seed, True)
    validation = batch_loader(numerical[validation_rows], categorical[validation_rows], 256, seed, False)
    Trainer(model, detector.cardinalities, training).fit(train, validation)
    return model.eval()


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
        ``"codes"`` (numericals next to integer category codes, for trees), ``"rates"``
        (log1p rate features standardised on the reference), ``"one_hot+rates"`` /
        ``"codes+rates"``, or the detector's ``"trees"`` / ``"trees+rates"`` views."""
        return self.cached(("matrix", kind, *self.data_key), lambda: self.build_matrices(kind))

    def build_matrices(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if "+" in kind:
            parts = [self.raw_matrices(part) for part in kind.split("+")]
            return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])
        reference, query = self.arrays
        if kind in ("trees", "trees+rates"):  # the detector's fusion view (scorers.tree_features)
            frames = (self.data.train_frame, self.data.evaluation.frame)
            rates = [rate_features(f).to_numpy() if kind == "trees+rates" else None for f in frames]
            return tree_features(*reference, rates[0]), tree_features(*query, rates[1])
        if kind == "one_hot":
            cardinalities = self.detector.cardinalities
            return tuple(evaluation.one_hot_features(*a, cardinalities).toarray() for a in (reference, query))
        if kind == "codes":
            return tuple(np.hstack([a[0], a[1].astype(np.float32)]) for a in (reference, query))
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
            model = train_mfp_model(self.detector, *reference, self.config, self.train_seed)
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
        "isolation_forest": lambda: run.raw_scores(
            "isolation_forest", True, False, lambda: evaluation.isolation_forest_scores(*run.arrays, seed=seed)
        ),
        "ecod": raw("ecod", False, lambda: PyODScorer("ecod"), "one_hot"),
        "copod": raw("copod", False, lambda: PyODScorer("copod"), "one_hot"),
        "hbos": raw("hbos", False, lambda: PyODScorer("hbos"), "one_hot"),
        "lof": raw("lof", False, lambda: PyODScorer("lof"), "one_hot"),
        "rates_raw_knn": raw("rates_raw_knn", False, lambda: KNNScorer(k), "one_hot+rates"),
        "rates_raw_iforest": raw(
            "rates_raw_iforest", True, lambda: PyODScorer("iforest", seed=seed, n_estimators=200), "codes+rates"
        ),
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

    for scorer, kind in (("fusion_knn", "trees"), ("fusion_iforest", "trees"), ("fusion_rates", "trees+rates")):
        methods[f"detector_{scorer}"] = detector_scorer(scorer, kind)
    methods["untrained_fusion_knn"] = detector_scorer("fusion_knn", "trees", trained=False)
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


# --------------------------------------------------------------------------- summary and plots


def bootstrap_interval(
    values: np.ndarray, rng: np.random.Generator, num_resamples: int = 2_000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    means = values[rng.integers(0, len(values), size=(num_resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def summarise(runs: pd.DataFrame, seed: int = 0, num_resamples: int = 2_000) -> pd.DataFrame:
    """Mean and bootstrap 95% interval over runs of every metric, per factor x level x method x
    scenario (seeded ``numpy.random.Generator``)."""
    rng = np.random.default_rng(seed)
    rows = []
    keys = ["factor", "level", "method", "scenario"]
    for group, table in runs.groupby(keys, sort=False):
        row = dict(zip(keys, group), runs=len(table))
        for metric in evaluation.METRIC_COLUMNS:
            values = table[metric].to_numpy(dtype=np.float64)
            low, high = bootstrap_interval(values, rng, num_resamples)
            row.update(
                {
                    metric: float(np.nanmean(values)) if np.isfinite(values).any() else math.nan,
                    f"{metric}_low": low,
                    f"{metric}_high": high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def plot_summary(summary: pd.DataFrame, out: Path) -> list[Path]:
    """Plots of the summary: methods (overall AUROC and AP, clean vs contaminated), burst attacks
    vs contamination, and the embedding kNN across every factor. Returns the files written."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    written = []
    overall = summary[summary["scenario"] == "overall"]
    methods = [m for m in METHODS if m in set(overall["method"])]
    levels = overall[overall["factor"].isin(["centre", "contamination"])]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for ax, metric in zip(axes, ("auroc", "average_precision")):
        for offset, (level, table) in enumerate(levels.groupby("level", sort=False)):
            table = table.set_index("method").reindex(methods)
            y = np.arange(len(methods)) + 0.15 * offset
            ax.errorbar(
                table[metric],
                y,
                xerr=[table[metric] - table[f"{metric}_low"], table[f"{metric}_high"] - table[metric]],
                fmt="o",
                ms=4,
                capsize=2,
                label="clean" if level == "centre" else f"contamination {level}",
            )
        ax.set_yticks(np.arange(len(methods)), methods)
        ax.set_xlabel(f"overall {metric} (mean, 95% bootstrap interval)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    written.append(out / "methods_overall.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    factors = [f for f in dict.fromkeys(summary["factor"]) if f != "centre"]
    fig, axes = plt.subplots(1, max(1, len(factors)), figsize=(3.2 * max(1, len(factors)), 3.5), squeeze=False)
    centre = overall[overall["factor"] == "centre"].set_index("method")
    for ax, factor in zip(axes[0], factors):
        shown = ("detector_fusion_knn", "embedding_knn", "raw_knn", "isolation_forest", "mfp_surprisal")
        for method in [m for m in shown if m in methods]:
            table = pd.concat(
                [
                    centre.loc[[method]].assign(level="centre"),
                    overall[(overall["factor"] == factor) & (overall["method"] == method)],
                ]
            )
            ax.errorbar(
                table["level"].astype(str),
                table["auroc"],
                yerr=[table["auroc"] - table["auroc_low"], table["auroc_high"] - table["auroc"]],
                fmt="o-",
                ms=3,
                capsize=2,
                label=method,
            )
        ax.set_title(factor)
        ax.tick_params(axis="x", rotation=45)
    axes[0][0].set_ylabel("overall AUROC")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    written.append(out / "factors_overall_auroc.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def write_outputs(runs: pd.DataFrame, grid: Grid, out: Path, argv: Sequence[str], seconds: float) -> list[Path]:
    """``runs.csv``, ``summary.csv``, ``meta.json`` and the plots in ``out``."""
    from tabresnet_course.artifacts import package_version

    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(runs)
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    meta = {
        "command": "python -m tabresnet_course.study " + " ".join(argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {
            "tabresnet_course": package_version(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "grid": {
            "name": grid.name,
            "centre": dataclasses.asdict(grid.centre),
            "variations": {k: list(v) for k, v in grid.variations.items()},
            "data_seeds": list(grid.data_seeds),
            "train_seeds": list(grid.train_seeds),
            "sweep_train_seeds": list(grid.sweep_train_seeds),
            "full_seed_factors": list(grid.full_seed_factors),
        },
        "methods": list(grid.methods or METHODS),
        "alert_budget": ALERT_BUDGET,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return [out / "runs.csv", out / "summary.csv", out / "meta.json", *plot_summary(summary, out)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tabresnet_course.study --grid default|smoke|confirm --out DIR [--jobs N]``."""
    parser = argparse.ArgumentParser(prog="python -m tabresnet_course.study", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default", help="which grid to run")
    parser.add_argument("--out", required=True, type=Path, help="directory for runs.csv, summary.csv, plots")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine more threads are slower)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes (default 1; 2 on a 2-core machine about halves the time)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    for name in ("threads", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    argv = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "runs.partial.csv"  # the runs so far, for a look before the grid ends
    runs = run_study(
        GRIDS[args.grid],
        progress=not args.quiet,
        on_run=lambda table: table.to_csv(partial, index=False),
        jobs=args.jobs,
        threads=args.threads,
    )
    partial.unlink()
    written = write_outputs(runs, GRIDS[args.grid], args.out, argv, time.perf_counter() - started)
    overall = summarise(runs[(runs["factor"] == "centre") & (runs["scenario"] == "overall")])
    print(
        overall[["method", "runs", "auroc", "auroc_low", "auroc_high", "average_precision"]]
        .round(3)
        .to_string(index=False)
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
