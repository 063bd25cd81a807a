"""End-to-end tests of the ``tabresnet-course`` command line, run as a subprocess and, for the
many error cases, in this process (tests/cli_helpers.py)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from cli_helpers import ROOT, TINY_TRAIN, assert_error, call, run_process


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A baseline, an evaluation file and a detector trained on the baseline, via the CLI."""
    work = tmp_path_factory.mktemp("cli")
    steps = [
        (
            "generate",
            "--events",
            600,
            "--days",
            2,
            "--seed",
            0,
            "--out",
            "base.jsonl",
            "--labels",
            "base.csv",
            "--no-anomalies",
        ),
        (
            "generate",
            "--events",
            2000,
            "--days",
            1,
            "--seed",
            1,
            "--out",
            "eval.jsonl",
            "--labels",
            "eval.csv",
            "--start",
            "2026-03-04T00:00:00Z",
        ),
        ("train", "--events", "base.jsonl", "--out", "detector", *TINY_TRAIN),
    ]
    for step in steps:
        result = run_process(*step, cwd=work)
        assert result.returncode == 0, result.stderr
    return work


def test_end_to_end_generate_train_score_evaluate(work):
    assert sorted(p.name for p in (work / "detector").iterdir()) == [
        "calibration_scores.npy",
        "config.json",
        "reference_embeddings.npy",
        "reference_features.npy",
        "reference_sample.json",
        "reference_scores.npy",
        "weights.pt",
    ]
    assert json.loads((work / "detector" / "config.json").read_text())["training"]["training_rows"] == 600
    result = run_process("score", "--model", "detector", "--events", "eval.jsonl", "--out", "scores.csv", cwd=work)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(work / "scores.csv", dtype={"uid": str})
    labels = pd.read_csv(work / "eval.csv", dtype={"uid": str})
    assert list(scores.columns) == ["line", "uid", "score", "percentile", "alert"]
    assert scores["line"].tolist() == list(range(1, 2001))
    assert scores["uid"].tolist() == labels["uid"].tolist()  # events and labels share one order
    result = run_process("evaluate", "--scores", "scores.csv", "--labels", "eval.csv", "--budget", "0.02", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "overall" in result.stdout and "port_scan" in result.stdout and "auroc" in result.stdout
    assert "2000 scored records" in result.stdout


def test_score_skips_bad_lines_and_keeps_line_numbers(work):
    lines = (work / "eval.jsonl").read_text().splitlines()[:50]
    lines[2] = '{"class_uid": 3002, "time": '  # truncated JSON on line 3
    lines[6] = "[1, 2, 3]"  # not an object on line 7
    (work / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = run_process("score", "--model", "detector", "--events", "bad.jsonl", "--out", "bad_scores.csv", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "skipped 2" in result.stderr and "line 3" in result.stderr and "line 7" in result.stderr
    scores = pd.read_csv(work / "bad_scores.csv")
    assert len(scores) == 48
    assert scores["line"].tolist() == [n for n in range(1, 51) if n not in (3, 7)]

    strict = call("score", "--model", "detector", "--events", "bad.jsonl", "--out", "strict.csv", "--strict", cwd=work)
    assert_error(strict, "bad.jsonl", "line 3")
    assert not (work / "strict.csv").exists()


def test_parquet_input_scores_by_row(work):
    here = dict(cwd=work)
    result = call(
        "generate",
        "--events",
        300,
        "--days",
        1,
        "--seed",
        5,
        "--out",
        "small.parquet",
        "--labels",
        "small.csv",
        "--no-anomalies",
        **here,
    )
    assert result.returncode == 0, result.stderr
    result = call("score", "--model", "detector", "--events", "small.parquet", "--out", "small_scores.csv", **here)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(work / "small_scores.csv")
    assert scores["line"].tolist() == list(range(1, 301))


def test_nothing_is_overwritten_without_overwrite(work):
    here = dict(cwd=work)
    before = (work / "eval.csv").read_bytes()
    result = call("generate", "--events", 2000, "--out", "other.jsonl", "--labels", "eval.csv", **here)
    assert_error(result, "eval.csv", "--overwrite")
    assert (work / "eval.csv").read_bytes() == before and not (work / "other.jsonl").exists()
    result = call("train", "--events", "base.jsonl", "--out", "detector", *TINY_TRAIN, **here)
    assert_error(result, "detector", "overwrite")
    (work / "taken.csv").write_text("x\n")
    result = call("score", "--model", "detector", "--events", "eval.jsonl", "--out", "taken.csv", **here)
    assert_error(result, "taken.csv", "--overwrite")
    assert (work / "taken.csv").read_text() == "x\n"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("score", "--model", "detector", "--events", "missing.jsonl", "--out", "s.csv"), ["missing.jsonl"]),
        (("score", "--model", "no_detector", "--events", "eval.jsonl", "--out", "s.csv"), ["no_detector"]),
        (("train", "--events", "missing.jsonl", "--out", "d2"), ["missing.jsonl"]),
        (("train", "--events", "base.jsonl", "--out", "d2", "--spec", "missing.yaml"), ["missing.yaml"]),
        (("evaluate", "--scores", "missing.csv", "--labels", "eval.csv"), ["missing.csv"]),
        (("evaluate", "--scores", "eval.csv", "--labels", "eval.csv"), ["eval.csv", "line", "score"]),
        (("train", "--events", "base.jsonl", "--out", "d2", "--objective", "magic"), ["--objective", "magic"]),
        (("evaluate", "--scores", "s.csv", "--labels", "eval.csv", "--budget", "2"), ["--budget"]),
        (("generate", "--events", "-5", "--out", "x.jsonl", "--labels", "x.csv"), ["--events"]),
        (
            ("generate", "--events", 100, "--out", "x.txt", "--labels", "x.csv", "--no-anomalies"),
            ["x.txt", "extension"],
        ),
        (("generate", "--events", 100, "--out", "x.jsonl", "--labels", "x.csv"), ["num_events=100", "2000"]),
        (("generate", "--events", 100, "--out", "x.jsonl", "--labels", "x.csv", "--start", "yesterday"), ["--start"]),
        (("frobnicate",), ["frobnicate"]),
    ],
)
def test_bad_input_gives_one_line_and_status_2(work, args, fragments):
    assert_error(call(*args, cwd=work), *fragments)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("score", "--model", "detector", "--events", "missing.jsonl", "--out", "s.csv"), ["missing.jsonl"]),
        (("train", "--events", "base.jsonl", "--out", "d2", "--objective", "magic"), ["--objective", "magic"]),
    ],
)
def test_bad_input_in_a_real_process(work, args, fragments):
    assert_error(run_process(*args, cwd=work), *fragments)


def test_evaluate_names_a_bad_label(work, tmp_path):
    here = dict(cwd=work)
    labels = pd.read_csv(work / "eval.csv", dtype={"uid": str})
    labels["is_anomaly"] = labels["is_anomaly"].astype(object)
    labels.loc[4, "is_anomaly"] = "maybe"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    result = call("score", "--model", "detector", "--events", "eval.jsonl", "--out", tmp_path / "s.csv", **here)
    assert result.returncode == 0, result.stderr
    result = call("evaluate", "--scores", tmp_path / "s.csv", "--labels", tmp_path / "labels.csv", **here)
    assert_error(result, "labels.csv line 6", "maybe")


def test_help_of_every_command(work):
    here = dict(cwd=work)
    for command in ("generate", "spec", "train", "score", "evaluate"):
        result = call(command, "--help", **here)
        assert result.returncode == 0 and "usage:" in result.stdout
    assert "NO row" in call("score", "--help", **here).stdout
    assert "torchrun" in call("train", "--help", **here).stdout
    assert "inferred from the events" in call("train", "--help", **here).stdout


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on CPU is tested on Linux")
def test_train_under_torchrun_writes_one_detector_from_rank_0(work):
    import torch.distributed

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tabresnet_course",
            "train",
            "--events",
            "base.jsonl",
            "--out",
            "ddp_detector",
            *TINY_TRAIN,
        ],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("saved the detector to ddp_detector") == 1  # rank 0 only
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []  # no temporary leftovers
    from tabresnet_course.detection.detector import OCSFAnomalyDetector

    reference = OCSFAnomalyDetector.load(work / "ddp_detector").reference_embeddings
    assert reference.shape == (600 - round(0.05 * 600), 16)  # the default refine_share drops 5% of the baseline


def test_train_defaults_come_from_the_detector_config_and_generate_needs_no_torch():
    from tabresnet_course.detection.config import DetectorConfig

    defaults = DetectorConfig().options()
    shown = call("train", "--help").stdout
    for option, name in (("--epochs E", "num_epochs"), ("--d-model D", "d_model"), ("--num-blocks N", "num_blocks")):
        assert f"(default {defaults[name]})" in shown.rsplit(option, 1)[1].split("--", 1)[0], option
    script = "import sys; from tabresnet_course.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert result.stdout.strip() == "False", "building the parser (and so 'generate') must not import PyTorch"
