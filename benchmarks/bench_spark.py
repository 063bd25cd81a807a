"""Scoring a lake on Spark: engine start-up, warm engine time against one process, partition
count, and what a cluster would cost (``tabresnet_course.spark``).

A detector of the command line's default shape (width 64, two blocks, ``fusion_knn``, trained
for one epoch on 3,000 clean generated events, which are its reference set) scores 20,000
generated events (5,000 with ``--quick``) laid out as a Security Lake (2 regions x 2 accounts x
7 days = 28 Parquet files). Measured, each once, in this order:

- ``single process``: ``OCSFAnomalyDetector.score_chunks`` over the same events in one Parquet
  file, as ``score --engine local`` does, with torch on 1 thread and on 2;
- ``engine start``: a new ``local[1]`` session (JVM) plus the first job's Python worker, torch
  import and detector load: the first run's time minus the warm run's;
- ``warm``: the same :func:`~tabresnet_course.spark.score_lake` job again (workers and detector
  cached) on 28 partitions (one file each), then on the same files coalesced into 3 partitions,
  on ``local[1]`` (one core, one torch thread: the per-core rate, taken from 3 partitions) and
  ``local[2]`` (two workers of one thread: what two cores give).

Also computed, not timed: the bytes Spark scans after column pruning (the compressed column
chunks of the columns the detector reads, from the Parquet footers) against the whole files, and
a cost model: core-hours per day for 10^9 events a day at the measured warm per-core rate.

Run with ``python benchmarks/bench_spark.py [--quick]`` (needs pyspark and Java); it prints a
table and the CPU model. About three minutes on a 2-core VM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_spark.py` from the repository root
    sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq
import torch

from benchmarks.common import cpu_model, load_average
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.events.files import EventChunks, write_events
from tabresnet_course.features.spec import source_paths
from tabresnet_course.ocsf.generator import generate_ocsf_events
from tabresnet_course.spark import score_dataframe, score_lake, spark_session, write_lake

EVENTS_PER_DAY = 10**9
SETTINGS = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "4"}
ONE_FILE_PER_PARTITION = {"spark.sql.files.maxPartitionBytes": "128MB", "spark.sql.files.openCostInBytes": "128MB"}


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def single_process(model_dir: Path, path: Path, threads: int) -> float:
    """Seconds to score the Parquet file ``path`` as ``score --engine local`` does."""
    torch.set_num_threads(threads)
    detector = OCSFAnomalyDetector.load(model_dir)
    return timed(lambda: [None for _ in detector.score_chunks(EventChunks(path))])


def spark_job(master: str, lake: Path, model_dir: Path, out: Path) -> dict[str, float]:
    """A new session on ``master``; the lake scored cold, then warm, on its 28 partitions (one per
    file, :func:`~tabresnet_course.spark.score_lake`), then warm on the files coalesced into 3."""
    started = time.perf_counter()
    spark = spark_session(master, {**SETTINGS, **ONE_FILE_PER_PARTITION})
    spark.sparkContext.setLogLevel("ERROR")
    session = time.perf_counter() - started

    def job(coalesce: int | None = None) -> None:
        shutil.rmtree(out, ignore_errors=True)
        if coalesce is None:
            score_lake(spark, lake, model_dir, out)
        else:
            df = spark.read.parquet(str(lake)).coalesce(coalesce)
            score_dataframe(df, model_dir).write.mode("overwrite").parquet(str(out))

    cold, warm, coalesced = timed(job), timed(job), timed(lambda: job(3))
    partitions = spark.read.parquet(str(lake)).rdd.getNumPartitions()
    spark.stop()  # the next session starts a new context on the running JVM
    return {"session": session, "cold": cold, "warm": warm, "coalesced": coalesced, "partitions": partitions}


def scanned_bytes(lake: Path, model_dir: Path) -> tuple[int, int]:
    """Compressed bytes of the columns the detector reads (``metadata.uid``, ``class_uid`` and its
    features' sources) and of all columns, summed over the lake's files."""
    spec = OCSFAnomalyDetector.load(model_dir).featurizer.spec
    read = {
        "class_uid",
        "metadata.uid",
        *(p for f in [*spec.numerical, *spec.categorical] for p in source_paths(f.source)),
    }
    needed = total = 0
    for path in lake.rglob("*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(column)
                total += chunk.total_compressed_size
                needed += chunk.total_compressed_size if chunk.path_in_schema in read else 0
    return needed, total


def run(quick: bool) -> dict[str, Any]:
    size = 5_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        baseline = generate_ocsf_events(3_000, days=7, seed=7, anomalies=False)
        torch.set_num_threads(2)
        model_dir = train_ocsf_anomaly_detector(baseline, num_epochs=1, device="cpu").save(directory / "detector")
        events = generate_ocsf_events(size, days=7, seed=8)
        lake = directory / "lake"
        write_lake(events, lake, regions=("us-east-1", "eu-west-1"), accounts=("012345678901", "210987654321"))
        one_file = write_events(events, directory / "events.parquet")
        result: dict[str, Any] = {"events": size, "reference": 3_000, "cpu": cpu_model(), "load": load_average()}
        result["single_1_thread"] = single_process(model_dir, one_file, 1)
        result["single_2_threads"] = single_process(model_dir, one_file, 2)
        torch.set_num_threads(1)
        out = directory / "scores"
        result["local1"] = spark_job("local[1]", lake, model_dir, out)
        result["local2"] = spark_job("local[2]", lake, model_dir, out)
        result["scanned"] = scanned_bytes(lake, model_dir)
    return result


def table(result: dict[str, Any]) -> str:
    size = result["events"]
    single1, single2 = result["single_1_thread"], result["single_2_threads"]
    one, two = result["local1"], result["local2"]
    per_core = size / one["coalesced"]
    needed, total = result["scanned"]
    rows = [
        ("single process, 1 thread", f"{single1:.2f} s", f"{size / single1:,.0f} events/s"),
        ("single process, 2 threads", f"{single2:.2f} s", f"{size / single2:,.0f} events/s"),
        ("engine start: new session (JVM)", f"{one['session']:.1f} s", "local[1]"),
        ("engine start: first job's extra time", f"{one['cold'] - one['warm']:.1f} s", "workers, torch, detector"),
        (
            "warm local[1], 3 partitions",
            f"{one['coalesced']:.2f} s",
            f"{per_core:,.0f} events/s per core; {single1 / one['coalesced']:.2f} of one process at 1 thread",
        ),
        (
            f"warm local[1], {one['partitions']} partitions",
            f"{one['warm']:.2f} s",
            f"{one['warm'] / one['coalesced']:.2f}x the time of 3 partitions",
        ),
        (
            "warm local[2], 3 partitions",
            f"{two['coalesced']:.2f} s",
            f"{size / two['coalesced']:,.0f} events/s; {one['coalesced'] / two['coalesced']:.2f}x local[1]; "
            f"{single2 / two['coalesced']:.2f} of one process at 2 threads",
        ),
        (
            f"warm local[2], {two['partitions']} partitions",
            f"{two['warm']:.2f} s",
            f"{two['warm'] / two['coalesced']:.2f}x the time of 3 partitions",
        ),
        (
            "bytes scanned after column pruning",
            f"{needed / 1e6:.2f} MB",
            f"{needed / total:.0%} of {total / 1e6:.2f} MB",
        ),
        (
            "cost model: 10^9 events a day",
            f"{EVENTS_PER_DAY / per_core / 3600:,.0f} core-hours/day",
            f"at the warm local[1] rate; {needed / size * EVENTS_PER_DAY / 1e9:,.0f} GB scanned/day",
        ),
    ]
    lines = ["| what | value | note |", "|---|---:|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    return (
        "\n".join(lines) + f"\n\nCPU: {result['cpu']}; load average at start {result['load']}; {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events instead of 20,000")
    args = parser.parse_args()
    print(table(run(args.quick)))


if __name__ == "__main__":
    main()
