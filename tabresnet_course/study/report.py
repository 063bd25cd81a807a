"""The study's report: bootstrap intervals, the summary table, plots, ``meta.json``, and the
command line ``python -m tabresnet_course.study --grid default|smoke|confirm --out DIR [--jobs N]``.

Outputs in ``--out``: ``runs.csv`` (one row per run x method x scenario, ``overall`` included:
AUROC, average precision, recall at a 1% alert budget), ``summary.csv`` (means and hierarchical
bootstrap 95% intervals), ``differences.csv`` (paired differences between methods on the same
runs, with hierarchical intervals: the candidates minus the baselines, trained minus untrained),
``meta.json`` (command, date, hardware, versions, grid) and plots. Runs are nested, training
seeds within data seeds, so every interval resamples data seeds first and training seeds within
them (the hierarchical bootstrap of Saravanan, Berman & Sober, 2020): a method that ignores the
training seed does not count its repeated rows as independent evidence. Chapter "The OCSF
pipeline" reads the committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tabresnet_course import evaluation
from tabresnet_course.study.grid import GRIDS, Grid
from tabresnet_course.study.run import ALERT_BUDGET, METHODS, run_study

__all__ = [
    "BASELINES",
    "CANDIDATES",
    "TRAINED_PAIRS",
    "bootstrap_interval",
    "hierarchical_interval",
    "main",
    "paired_differences",
    "plot_summary",
    "summarise",
    "write_outputs",
]

BASELINES = ("raw_knn", "lof", "isolation_forest", "ecod")
"""The simple methods every candidate is compared with (paired differences)."""
CANDIDATES = (
    "detector_fusion_knn",
    "detector_fusion_multiscale",
    "detector_fusion_refined",
    "retrained_fusion_refined",
    "raw_multiscale_knn",
    "raw_share_knn",
    "raw_subsampled_knn",
)
"""The methods compared with each of :data:`BASELINES`, the detector's scorers among them."""
TRAINED_PAIRS = (
    ("embedding_knn", "untrained_knn"),
    ("embedding_multiscale_knn", "untrained_multiscale_knn"),
    ("detector_fusion_knn", "untrained_fusion_knn"),
    ("detector_fusion_multiscale", "untrained_fusion_multiscale"),
    ("detector_fusion_refined", "untrained_fusion_refined"),
)
"""``(trained, untrained)``: the same scorer on the trained and on the untrained encoder."""
GROUP = ["profile", "factor", "level"]
"""The columns that identify a cell of the grid in ``runs.csv``."""


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


def hierarchical_interval(
    values: np.ndarray,
    data_seeds: np.ndarray,
    rng: np.random.Generator,
    num_resamples: int = 2_000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` under the hierarchical bootstrap (Saravanan,
    Berman & Sober, 2020): each resample draws the data seeds with replacement, then, within each
    drawn seed, its runs (training seeds) with replacement. NaN values are left out; NaN when none
    is left."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    values, data_seeds = values[keep], np.asarray(data_seeds)[keep]
    if len(values) == 0:
        return math.nan, math.nan
    groups = [values[data_seeds == seed] for seed in np.unique(data_seeds)]
    width = max(len(group) for group in groups)
    padded = np.full((len(groups), width), np.nan)  # (data seeds, runs)
    for row, group in enumerate(groups):
        padded[row, : len(group)] = group
    sizes = np.array([len(group) for group in groups])
    seeds = rng.integers(0, len(groups), size=(num_resamples, len(groups)))  # (B, D)
    runs = (rng.random((num_resamples, len(groups), width)) * sizes[seeds][..., None]).astype(np.int64)  # (B, D, W)
    drawn = padded[seeds[..., None], runs]  # (B, D, W); every drawn seed keeps its number of runs
    means = np.nanmean(np.where(np.arange(width) < sizes[seeds][..., None], drawn, np.nan), axis=(1, 2))
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def summarise(runs: pd.DataFrame, seed: int = 0, num_resamples: int = 2_000) -> pd.DataFrame:
    """Mean and hierarchical bootstrap 95% interval (:func:`hierarchical_interval`) of every metric,
    per profile x factor x level x method x scenario (seeded ``numpy.random.Generator``)."""
    rng = np.random.default_rng(seed)
    rows = []
    keys = [*GROUP, "method", "scenario"]
    for group, table in runs.groupby(keys, sort=False):
        row = dict(zip(keys, group), runs=len(table), data_seeds=table["data_seed"].nunique())
        for metric in evaluation.METRIC_COLUMNS:
            values = table[metric].to_numpy(dtype=np.float64)
            low, high = hierarchical_interval(values, table["data_seed"].to_numpy(), rng, num_resamples)
            row.update(
                {
                    metric: float(np.nanmean(values)) if np.isfinite(values).any() else math.nan,
                    f"{metric}_low": low,
                    f"{metric}_high": high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(
    runs: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    num_resamples: int = 2_000,
) -> pd.DataFrame:
    """``method`` minus ``rival`` on the same runs (same data and training seed), per profile x
    factor x level x scenario, for AUROC and average precision: the mean difference, its
    hierarchical bootstrap 95% interval, and the share of data seeds on which the method is ahead
    (mean over that seed's runs). ``pairs`` defaults to every candidate minus every baseline and
    every trained minus untrained scorer, where both were scored."""
    if pairs is None:
        pairs = [(method, rival) for method in CANDIDATES for rival in BASELINES] + list(TRAINED_PAIRS)
    scored = set(runs["method"])
    pairs = [(method, rival) for method, rival in pairs if method in scored and rival in scored]
    rng = np.random.default_rng(seed)
    rows = []
    index = [*GROUP, "scenario", "data_seed", "train_seed"]
    metrics = ["auroc", "average_precision"]
    wide = runs.pivot_table(index=index, columns="method", values=metrics)
    for group, table in wide.groupby(level=[*GROUP, "scenario"], sort=False):
        data_seeds = table.index.get_level_values("data_seed").to_numpy()
        for method, rival in pairs:
            row = dict(zip([*GROUP, "scenario"], group), method=method, rival=rival, runs=len(table))
            for metric in metrics:
                difference = (table[(metric, method)] - table[(metric, rival)]).to_numpy(dtype=np.float64)
                low, high = hierarchical_interval(difference, data_seeds, rng, num_resamples)
                per_seed = pd.Series(difference).groupby(data_seeds).mean()
                row.update(
                    {
                        metric: float(np.nanmean(difference)) if np.isfinite(difference).any() else math.nan,
                        f"{metric}_low": low,
                        f"{metric}_high": high,
                        f"{metric}_seeds_ahead": float((per_seed > 0).mean()),
                    }
                )
            rows.append(row)
    return pd.DataFrame(rows)


def plot_summary(summary: pd.DataFrame, out: Path) -> list[Path]:
    """One plot per profile: every method's overall AUROC and average precision (mean, 95%
    hierarchical interval) at every contamination level. Returns the files written."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    written = []
    overall = summary[summary["scenario"] == "overall"]
    for profile, table in overall.groupby("profile", sort=False):
        methods = [m for m in METHODS if m in set(table["method"])]
        fig, axes = plt.subplots(1, 2, figsize=(14, 0.35 * len(methods) + 2), sharey=True)
        for ax, metric in zip(axes, ("auroc", "average_precision")):
            for offset, (level, rows) in enumerate(table.groupby("level", sort=False)):
                rows = rows.set_index("method").reindex(methods)
                ax.errorbar(
                    rows[metric],
                    np.arange(len(methods)) + 0.12 * offset,
                    xerr=[rows[metric] - rows[f"{metric}_low"], rows[f"{metric}_high"] - rows[metric]],
                    fmt="o",
                    ms=3,
                    capsize=2,
                    label="clean" if level == "centre" else level,
                )
            ax.set_yticks(np.arange(len(methods)), methods)
            ax.set_xlabel(f"overall {metric} (mean, 95% hierarchical bootstrap interval)")
            ax.grid(axis="x", alpha=0.3)
        axes[0].legend(loc="lower left", fontsize=7)
        axes[0].set_title(profile)
        fig.tight_layout()
        written.append(out / f"methods_overall_{profile}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def _cpu_seconds() -> float:
    """User and system CPU seconds of this process and of its finished worker processes (the
    study's cost independent of what else the machine runs)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def write_outputs(runs: pd.DataFrame, grid: Grid, out: Path, argv: Sequence[str], seconds: float) -> list[Path]:
    """``runs.csv``, ``summary.csv``, ``meta.json`` and the plots in ``out``."""
    from tabresnet_course.artifacts import package_version

    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(runs)
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    paired_differences(runs).to_csv(out / "differences.csv", index=False)
    meta = {
        "command": "python -m tabresnet_course.study " + " ".join(argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(_cpu_seconds(), 1),
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
            "full_seed_levels": list(grid.full_seed_levels),
            "profiles": list(grid.profiles),
        },
        "methods": list(grid.methods or METHODS),
        "alert_budget": ALERT_BUDGET,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    files = ["runs.csv", "summary.csv", "differences.csv", "meta.json"]
    return [*(out / name for name in files), *plot_summary(summary, out)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tabresnet_course.study --grid default|smoke|confirm --out DIR [--jobs N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tabresnet_course.study",
        description="Run the detection study: which detector finds the generator's attacks, over seeds.",
    )
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
        overall[["profile", "method", "runs", "auroc", "auroc_low", "auroc_high", "average_precision"]]
        .round(3)
        .to_string(index=False)
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
