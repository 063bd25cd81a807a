"""The detection study (tabresnet_course.study: grid, run, report): contaminated data, hierarchical intervals, paired differences, and the smoke grid end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.evaluation import METRIC_COLUMNS
from tabresnet_course.study.grid import CONTAMINATIONS, GRIDS, StudyConfig, study_grid
from tabresnet_course.study.report import bootstrap_interval, hierarchical_interval, main, paired_differences
from tabresnet_course.study.run import METHODS, detector_method, run_metrics, run_study, study_data, study_units


def test_study_data_puts_a_share_of_every_campaign_into_the_baseline():
    config = StudyConfig(profile="cloud_saas", num_baseline=2_000, num_evaluation=2_500, contamination="campaign_q25")
    data = study_data(config, 0)
    evaluation = data.evaluation.labels
    assert 0.005 < evaluation["is_anomaly"].mean() < 0.08  # a realistic few per cent to score
    assert data.evaluation.profile == "cloud_saas" and len(data.evaluation.frame) == 2_500
    added = len(data.train_frame) - 2_000
    assert added == pytest.approx(0.02 * len(data.train_frame), abs=10)
    assert data.train_frame["time"].is_monotonic_increasing
    clean = study_data(StudyConfig(num_baseline=2_000, num_evaluation=2_500), 0)
    assert len(clean.train_frame) == 2_000
    with pytest.raises(ValueError, match="contamination must be one of"):
        StudyConfig(contamination="0.02")


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.array([0.8, 0.9, 0.85, 0.7, np.nan])
    low, high = bootstrap_interval(values, np.random.default_rng(0))
    assert (low, high) == bootstrap_interval(values, np.random.default_rng(0))
    assert low < np.nanmean(values) < high
    assert np.isnan(bootstrap_interval(np.array([np.nan]), np.random.default_rng(0))[0])


def test_hierarchical_interval_does_not_count_repeated_training_seeds_as_evidence():
    per_seed = np.array([0.80, 0.90, 0.85, 0.70, 0.95, 0.75])
    values, seeds = np.repeat(per_seed, 3), np.repeat(np.arange(6), 3)  # a method blind to the training seed
    flat = bootstrap_interval(values, np.random.default_rng(0))
    nested = hierarchical_interval(values, seeds, np.random.default_rng(0))
    assert nested == hierarchical_interval(values, seeds, np.random.default_rng(0))
    assert nested[0] < per_seed.mean() < nested[1]
    assert nested[1] - nested[0] > 1.4 * (flat[1] - flat[0])  # about sqrt(3) wider
    one_seed = hierarchical_interval(np.array([0.5, 0.7]), np.array([1, 1]), np.random.default_rng(0))
    assert 0.5 <= one_seed[0] <= one_seed[1] <= 0.7
    assert np.isnan(hierarchical_interval(np.array([np.nan]), np.array([0]), np.random.default_rng(0))[0])


def test_paired_differences_compare_methods_on_the_same_runs():
    rows = []
    for data_seed in range(4):
        for train_seed in range(2):
            for method, auroc in (("detector_fusion_knn", 0.9 + 0.01 * data_seed), ("raw_knn", 0.85), ("lof", 0.95)):
                rows.append(
                    {"profile": "p", "factor": "centre", "level": "centre", "scenario": "overall", "method": method,
                     "data_seed": data_seed, "train_seed": train_seed, "auroc": auroc, "average_precision": 0.5}
                )  # fmt: skip
    differences = paired_differences(pd.DataFrame(rows)).set_index(["method", "rival"])
    assert set(differences.index) == {("detector_fusion_knn", "raw_knn"), ("detector_fusion_knn", "lof")}
    ahead = differences.loc[("detector_fusion_knn", "raw_knn")]
    assert ahead["auroc"] == pytest.approx(0.065) and ahead["auroc_low"] > 0 and ahead["auroc_seeds_ahead"] == 1.0
    behind = differences.loc[("detector_fusion_knn", "lof")]
    assert behind["auroc_high"] < 0 and behind["auroc_seeds_ahead"] == 0.0 and behind["average_precision"] == 0.0


def test_default_grid_runs_both_profiles_and_both_contamination_modes_on_ten_by_two_seeds():
    grid = GRIDS["default"]
    cells = study_grid(grid)
    assert {c.config.profile for c in cells} == {"enterprise", "cloud_saas"}
    settings = {(c.config.profile, c.config.contamination) for c in cells}
    for profile in ("enterprise", "cloud_saas"):
        assert {(profile, "clean"), (profile, "spread"), (profile, "campaign_q25")} <= settings
    assert all(len(c.data_seeds) >= 10 and len(c.train_seeds) >= 2 for c in cells)
    assert CONTAMINATIONS["campaign_q25"] == ("campaign", 0.25, 0.02)
    assert not set(GRIDS["confirm"].data_seeds) & set(grid.data_seeds)  # confirmed on unseen data
    assert detector_method(DetectorConfig()) == "detector_fusion_refined" in GRIDS["confirm"].methods
    assert detector_method(DetectorConfig(scorer="knn", refine_share=0.0)) == "embedding_knn"
    with pytest.raises(ValueError, match="measures refinement"):
        detector_method(DetectorConfig(scorer="knn"))


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
    assert runs.groupby(["profile", "factor", "level", "data_seed", "train_seed", "method"]).size().nunique() == 1
    assert overall[METRIC_COLUMNS].notna().all().all()
    assert overall["auroc"].between(0, 1).all()
    clean_raw_knn = overall[(overall["method"] == "raw_knn") & (overall["factor"] == "centre")]
    assert (clean_raw_knn["auroc"] > 0.75).all()  # the data carry signal
    differences = pd.read_csv(tmp_path / "differences.csv")
    assert {("detector_fusion_refined", "lof"), ("embedding_knn", "untrained_knn")} <= set(
        zip(differences["method"], differences["rival"])
    )
    summary = pd.read_csv(tmp_path / "summary.csv")
    finite = summary.dropna(subset=["auroc"])
    assert (finite["auroc_low"] <= finite["auroc"] + 1e-12).all() and (
        finite["auroc"] <= finite["auroc_high"] + 1e-12
    ).all()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["grid"]["name"] == "smoke" and meta["command"].endswith(
        "--grid smoke --out " + str(tmp_path) + " --quiet"
    )
    assert (tmp_path / "methods_overall_enterprise.png").stat().st_size > 0
    in_workers = run_study(GRIDS["smoke"], progress=False, jobs=2)  # units in two processes: the same table
    keys = ["profile", "factor", "level", "data_seed", "train_seed", "method", "scenario"]
    assert in_workers[keys].astype(str).values.tolist() == runs[keys].astype(str).values.tolist()
    np.testing.assert_allclose(
        in_workers[METRIC_COLUMNS].to_numpy(float), runs[METRIC_COLUMNS].to_numpy(float), rtol=1e-9
    )


COMMITTED = Path(__file__).resolve().parents[1] / "book" / "data" / "study" / "default"
RERUN_METHODS = ("raw_knn", "isolation_forest", "embedding_knn", detector_method(DetectorConfig()))


def test_one_committed_run_of_the_default_grid_is_reproduced(one_thread):
    """Re-run the clean centre of the enterprise profile with data seed 0 and training seed 0
    (about 15-30 s on one CPU thread: 9,000 generated events, 10 epochs) and compare every
    scenario's AUROC and AP with the committed row: the raw-feature methods to rounding, the
    trained ones within half the committed 95% interval (other hardware may round differently)."""
    committed = pd.read_csv(COMMITTED / "runs.csv", dtype={"level": str})
    summary = pd.read_csv(COMMITTED / "summary.csv", dtype={"level": str})
    cell = next(c for c in study_grid(GRIDS["default"]) if c.factor == "centre" and c.config.profile == "enterprise")
    rerun = run_metrics(cell, 0, 0, {}, RERUN_METHODS)
    keys = ["method", "scenario"]
    centre = (committed["profile"] == "enterprise") & (committed["factor"] == "centre")
    row = committed[centre & (committed["data_seed"] == 0) & (committed["train_seed"] == 0)]
    joined = rerun.merge(row, on=keys, suffixes=("", "_committed"), validate="one_to_one")
    summary = summary[(summary["profile"] == "enterprise") & (summary["factor"] == "centre")]
    joined = joined.merge(summary, on=keys, suffixes=("", "_summary"))
    assert len(joined) == len(rerun) == len(RERUN_METHODS) * joined["scenario"].nunique()
    for metric in ("auroc", "average_precision"):
        difference = (joined[metric] - joined[f"{metric}_committed"]).abs()
        raw = joined["method"].isin(["raw_knn", "isolation_forest"])
        assert (difference[raw] < 1e-9).all(), joined.loc[raw, keys + [metric, f"{metric}_committed"]]
        half_width = (joined[f"{metric}_high"] - joined[f"{metric}_low"]) / 2
        assert (difference[~raw] <= half_width[~raw] + 1e-9).all(), joined.loc[
            ~raw, keys + [metric, f"{metric}_committed"]
        ]
