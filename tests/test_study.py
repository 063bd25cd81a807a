"""The detection study (tabresnet_course.study: grid, run, report): data contamination, summary statistics, and the smoke grid end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.evaluation import METRIC_COLUMNS
from tabresnet_course.ocsf.generator import generate_baseline_and_evaluation
from tabresnet_course.study.grid import GRIDS, PROTECTED, study_grid
from tabresnet_course.study.report import bootstrap_interval, main
from tabresnet_course.study.run import METHODS, contaminated_baseline, run_metrics, run_study, study_units


def test_contaminated_baseline_holds_the_share_of_attacks_inside_the_baseline_period():
    baseline, _ = generate_baseline_and_evaluation(num_baseline=4_000, num_evaluation=2_000, seed=0)
    mixed = contaminated_baseline(baseline, 0.05, seed=10_000)
    added = len(mixed) - len(baseline.frame)
    assert added == pytest.approx(0.05 * len(mixed), abs=8)
    assert mixed["time"].is_monotonic_increasing
    assert (
        mixed["time"]
        .between(baseline.frame["time"].min() - 3_600_000 * 24, baseline.frame["time"].max() + 3_600_000 * 24)
        .all()
    )
    new = mixed[~mixed["metadata.uid"].isin(baseline.frame["metadata.uid"])]
    assert {3002, 4001, 4002} <= set(new["class_uid"].astype(int))  # brute force, scans, storms all present
    assert contaminated_baseline(baseline, 0.0, seed=1) is baseline.frame
    pd.testing.assert_frame_equal(mixed, contaminated_baseline(baseline, 0.05, seed=10_000))
    with pytest.raises(ValueError, match="contamination"):
        contaminated_baseline(baseline, 0.6, seed=1)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.array([0.8, 0.9, 0.85, 0.7, np.nan])
    low, high = bootstrap_interval(values, np.random.default_rng(0))
    assert (low, high) == bootstrap_interval(values, np.random.default_rng(0))
    assert low < np.nanmean(values) < high
    assert np.isnan(bootstrap_interval(np.array([np.nan]), np.random.default_rng(0))[0])


def test_default_grid_runs_the_centre_and_contamination_on_three_by_three_seeds():
    cells = study_grid(GRIDS["default"])
    full = [c for c in cells if c.factor in ("centre", "contamination")]
    assert all(len(c.data_seeds) >= 3 and len(c.train_seeds) >= 3 for c in full)
    assert {c.config.contamination for c in full} == {0.0, 0.01, 0.02, 0.05}
    assert {c.factor for c in cells} >= {
        "num_baseline",
        "epochs",
        "objective",
        "corruption_rate",
        "temperature",
        "d_model",
        "k",
        "protected",
    }
    assert all(c.config.protected in PROTECTED for c in cells)


def test_units_hold_every_run_once_and_share_data_only_within_a_unit():
    grid = GRIDS["default"]
    cells = study_grid(grid)
    runs = [(seed, position) for seed, positions in study_units(grid) for position in positions]
    assert sorted(runs) == sorted((seed, p) for p, cell in enumerate(cells) for seed in cell.data_seeds)
    for seed, positions in study_units(grid):
        assert len({cells[p].config.data_key(seed) for p in positions}) == 1


def test_smoke_grid_writes_tidy_runs_summary_and_plots(tmp_path, one_thread):
    assert main(["--grid", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    num_runs = sum(len(c.data_seeds) * len(c.train_seeds) for c in study_grid(GRIDS["smoke"]))
    overall = runs[runs["scenario"] == "overall"]
    assert len(overall) == num_runs * len(METHODS) and set(overall["method"]) == set(METHODS)
    assert runs.groupby(["factor", "level", "data_seed", "train_seed", "method"]).size().nunique() == 1
    assert overall[METRIC_COLUMNS].notna().all().all()
    assert overall["auroc"].between(0, 1).all()
    clean_raw_knn = overall[(overall["method"] == "raw_knn") & (overall["factor"] == "centre")]
    assert (clean_raw_knn["auroc"] > 0.75).all()  # the data carry signal
    summary = pd.read_csv(tmp_path / "summary.csv")
    finite = summary.dropna(subset=["auroc"])
    assert (finite["auroc_low"] <= finite["auroc"] + 1e-12).all() and (
        finite["auroc"] <= finite["auroc_high"] + 1e-12
    ).all()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["grid"]["name"] == "smoke" and meta["command"].endswith(
        "--grid smoke --out " + str(tmp_path) + " --quiet"
    )
    assert (tmp_path / "methods_overall.png").stat().st_size > 0 and (tmp_path / "factors_overall_auroc.png").exists()
    in_workers = run_study(GRIDS["smoke"], progress=False, jobs=2)  # units in two processes: the same table
    keys = ["factor", "level", "data_seed", "train_seed", "method", "scenario"]
    assert in_workers[keys].astype(str).values.tolist() == runs[keys].astype(str).values.tolist()
    np.testing.assert_allclose(
        in_workers[METRIC_COLUMNS].to_numpy(float), runs[METRIC_COLUMNS].to_numpy(float), rtol=1e-9
    )


COMMITTED = Path(__file__).resolve().parents[1] / "book" / "data" / "study" / "default"
RERUN_METHODS = ("raw_knn", "isolation_forest", "embedding_knn", "untrained_knn", "detector_fusion_knn")


def test_one_committed_run_of_the_default_grid_is_reproduced(one_thread):
    """Re-run the centre configuration with data seed 0 and training seed 0 (about 30-60 s on one
    CPU thread: 18,000 generated events, 10 epochs) and compare every scenario's AUROC and AP with
    the committed row: the raw-feature methods to rounding, the trained ones within half the
    committed 95% interval (other hardware may round differently)."""
    committed = pd.read_csv(COMMITTED / "runs.csv", dtype={"level": str})
    summary = pd.read_csv(COMMITTED / "summary.csv", dtype={"level": str})
    cell = next(c for c in study_grid(GRIDS["default"]) if c.factor == "centre")
    rerun = run_metrics(cell, 0, 0, {}, RERUN_METHODS)
    keys = ["method", "scenario"]
    row = committed[(committed["factor"] == "centre") & (committed["data_seed"] == 0) & (committed["train_seed"] == 0)]
    joined = rerun.merge(row, on=keys, suffixes=("", "_committed"), validate="one_to_one")
    joined = joined.merge(summary[summary["factor"] == "centre"], on=keys, suffixes=("", "_summary"))
    assert len(joined) == len(rerun) == len(RERUN_METHODS) * joined["scenario"].nunique()
    for metric in ("auroc", "average_precision"):
        difference = (joined[metric] - joined[f"{metric}_committed"]).abs()
        raw = joined["method"].isin(["raw_knn", "isolation_forest"])
        assert (difference[raw] < 1e-9).all(), joined.loc[raw, keys + [metric, f"{metric}_committed"]]
        half_width = (joined[f"{metric}_high"] - joined[f"{metric}_low"]) / 2
        assert (difference[~raw] <= half_width[~raw] + 1e-9).all(), joined.loc[
            ~raw, keys + [metric, f"{metric}_committed"]
        ]
