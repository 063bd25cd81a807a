"""The study's report: bootstrap intervals, the summary table, plots, ``meta.json``, and the
command line ``python -m tabresnet_course.study --grid default|smoke|confirm --out DIR [--jobs N]``.

Outputs in ``--out``: ``runs.csv`` (one row per run x method x scenario, ``overall`` included:
AUROC, average precision, recall at a 1% alert budget), ``summary.csv`` (means and seeded
bootstrap 95% intervals over runs), ``meta.json`` (command, date, hardware, versions, grid) and
plots. Chapter "The OCSF pipeline" reads the committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
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

__all__ = ["bootstrap_interval", "main", "plot_summary", "summarise", "write_outputs"]


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
        overall[["method", "runs", "auroc", "auroc_low", "auroc_high", "average_precision"]]
        .round(3)
        .to_string(index=False)
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
