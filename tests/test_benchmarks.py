"""Tests for benchmarks/: the one command runs and writes its JSON, and the naive reference
computes the same losses as the package, so the speed comparison is apples to apples.

Timings are never asserted: they depend on the machine and its load.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not of the package
    sys.path.insert(0, str(ROOT))

from benchmarks.naive_reference import SeedAugmentation, seed_contrastive_loss, seed_mfp_loss, seed_nt_xent
from tabresnet_course.contrastive import contrastive_loss, nt_xent_loss
from tabresnet_course.mfp import TabularResNetWithMFP, mask_features, masked_feature_prediction_loss
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet

CARDINALITIES = [5, 3, 7]


def batch(rows: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    numerical = torch.randn(rows, 6, generator=generator)
    categorical = (
        torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in CARDINALITIES], dim=1)
        + NUM_RESERVED_INDICES
    )
    return numerical, categorical


def encoder(seed: int = 0) -> TabularResNet:
    torch.manual_seed(seed)
    return TabularResNet(6, CARDINALITIES, d_model=16, num_blocks=2, dropout=0.1).eval()


def test_quick_run_writes_json_with_expected_keys(tmp_path):
    out = tmp_path / "results.json"
    process = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--only", "hardware", "--device", "cpu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    report = json.loads(out.read_text())
    for key in ("schema_version", "command", "quick", "machine", "results", "errors", "table", "targets"):
        assert key in report
    assert report["quick"] is True and report["errors"] == {}
    for key in ("cpu_model", "torch_version", "torch_num_threads", "device", "load_average_at_start"):
        assert key in report["machine"]
    hardware = report["results"]["hardware"]
    for objective in ("contrastive", "mfp"):
        fp32 = hardware["objectives"][objective]["precisions"]["fp32"]
        for key in ("achieved_gflops", "matmul_same_shapes_gflops", "fraction_of_same_shape_peak", "step_timing"):
            assert key in fp32
        for key in ("median", "min", "max", "samples"):
            assert key in fp32["step_timing"]
    assert "square_matmul_gflops_fp32" in hardware
    assert report["table"] and {"benchmark", "what", "value", "unit", "spread", "note"} <= set(report["table"][0])
    assert "| benchmark |" in process.stdout


def test_seed_nt_xent_equals_package_nt_xent():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(2, 24, 16, generator=generator)
    for temperature in (0.07, 0.5, 1.0):
        torch.testing.assert_close(seed_nt_xent(z1, z2, temperature), nt_xent_loss(z1, z2, temperature))


class FixedViews:
    """Hands out two given views: as the package's augmenter and as the seed's augmenter."""

    def __init__(self, view1, view2):
        self.views = (view1, view2)
        self.numerical_calls = 0
        self.categorical_calls = 0

    def two_views(self, numerical, categorical, cardinalities):
        return self.views

    def augment_numerical(self, numerical):
        self.numerical_calls += 1
        return self.views[self.numerical_calls - 1][0]

    def augment_categorical(self, categorical, cardinalities):
        self.categorical_calls += 1
        return self.views[self.categorical_calls - 1][1]


def test_two_forward_passes_equal_one_stacked_pass():
    numerical, categorical = batch()
    augmenter = SeedAugmentation()
    view1, view2 = (
        (augmenter.augment_numerical(numerical), augmenter.augment_categorical(categorical, CARDINALITIES))
        for _ in range(2)
    )
    model = encoder()
    naive = seed_contrastive_loss(model, numerical, categorical, CARDINALITIES, 0.07, FixedViews(view1, view2))
    package = contrastive_loss(model, numerical, categorical, CARDINALITIES, 0.07, FixedViews(view1, view2))
    torch.testing.assert_close(naive, package)


def test_seed_augmentation_draws_only_real_categories():
    numerical, categorical = batch(rows=2000)
    augmented = SeedAugmentation(dropout_prob=1.0).augment_categorical(categorical, CARDINALITIES)
    sizes = torch.tensor(CARDINALITIES)
    assert bool((augmented >= NUM_RESERVED_INDICES).all())
    assert bool((augmented < sizes + NUM_RESERVED_INDICES).all())
    assert augmented.shape == categorical.shape


@pytest.mark.parametrize("mask_prob", [0.0, 0.15, 0.6])
def test_looped_mfp_loss_equals_package_mfp_loss(mask_prob):
    numerical, categorical = batch(rows=64)
    model = TabularResNetWithMFP(encoder(), CARDINALITIES, 6).eval()
    with torch.no_grad():
        model.numerical_mask_value.normal_()
    num_mask, cat_mask = mask_features(numerical, categorical, mask_prob, torch.Generator().manual_seed(3))
    naive = seed_mfp_loss(model, numerical, categorical, num_mask=num_mask, cat_mask=cat_mask)
    package = masked_feature_prediction_loss(
        model, numerical, categorical, mask_prob, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(naive, package)


def test_streaming_and_knn_backend_rows_and_targets():
    from benchmarks.run import table_rows, targets

    timing = {"median": 2.0, "min": 1.0, "max": 4.0}
    results = {
        "scoring": {
            "backends": {
                "num_reference": 100,
                "num_queries": 10,
                "k": 5,
                "dim": 64,
                "auto": "faiss",
                "results": {
                    "faiss": {"seconds": timing, "queries_per_second": 5.0, "recall_at_k": 1.0},
                    "faiss_hnsw": {"seconds": timing, "queries_per_second": 9.0, "recall_at_k": 0.75},
                },
            }
        },
        "streaming": {
            "sizes": [10, 100],
            "memory_ratio": 1.5,
            "memory_ratio_target": 1.2,
            "memory_limit_bytes": 2 * 1024**3,
            "runs": {
                "10": {"seconds": 1.0, "events_per_second": 10.0, "peak_rss_bytes": 2**29},
                "100": {"seconds": 2.0, "events_per_second": 50.0, "peak_rss_bytes": 3 * 2**28},
            },
        },
    }
    rows = {row["what"]: row for row in table_rows(results)}
    assert (
        rows["kNN backend faiss (auto)"]["value"] == "5.00"
        and "recall@5 0.750" in rows["kNN backend faiss_hnsw"]["note"]
    )
    assert (
        rows["score 100 events (JSON Lines)"]["value"] == "50.0"
        and "peak RSS 768 MiB" in rows["score 100 events (JSON Lines)"]["note"]
    )
    goals = {goal["target"].split(":")[1].strip()[:12]: goal for goal in targets(results)}
    assert goals["peak RSS at "]["met"] is False and goals["peak RSS < 2"]["met"] is True


def test_reference_rows_and_targets():
    from benchmarks.run import reference_rows, reference_targets

    timing = {"median": 1e-4, "min": 1e-4, "max": 1e-4}
    runs = [
        {"reference_rows": 20_000, "k": 5, "events": n, "seconds": n / rate, "events_per_second": rate,
         "ratio_to_json_loads": 0.05, "peak_rss_bytes": rss, "events_per_cpu_second": rate}
        for n, rate, rss in ((30_000, 5_000.0, 600 * 2**20), (300_000, 9_000.0, 630 * 2**20))
    ]  # fmt: skip
    reference = {
        "reference_sizes": [20_000],
        "event_sizes": [30_000, 300_000],
        "ks": [5],
        "runs": runs,
        "startup_seconds": {"20000_k5": 0.5},
        "stages": [
            {
                "reference_rows": 20_000,
                "k": 5,
                "events": 4096,
                "seconds_per_event": {"embed": {"1_threads": timing, "2_threads": {**timing, "median": 2e-4}}},
                "events_per_second_per_core": 10_000.0,
                "core_hours_per_day": 27.8,
            }
        ],
        "rate_targets": {"20000": 8_000},
        "memory_limit_bytes": 2**30,
        "memory_ratio_target": 1.2,
        "startup_limit_seconds": 2.0,
        "events_per_day": 10**9,
    }
    rows = {row["what"]: row for row in reference_rows(reference)}
    assert rows["score 300,000 events, 20,000 reference, k=5"]["value"] == "9,000"
    assert "0.0500x json.loads" in rows["score 300,000 events, 20,000 reference, k=5"]["note"]
    assert rows["stage embed, 20,000 reference, k=5"]["note"] == "1 thread; 2 threads: 0.500x that"
    assert rows["load a detector, 20,000 reference, k=5"]["value"] == "0.500"
    goals = {goal["target"]: goal for goal in reference_targets(reference)}
    assert goals["score 300,000 events, 20,000 reference, k=5: >= 8,000 events/s"]["met"] is True
    assert goals["20,000 reference, k=5: peak RSS <= 1 GiB (MiB)"]["value"] == 630
    assert goals["20,000 reference, k=5: peak RSS flat, 300,000 vs 30,000 events <= 1.2x"]["met"] is True
    assert goals["20,000 reference, k=5: detector load < 2 s"]["met"] is True
    assert reference_rows(None) == [] and reference_targets({}) == []
