"""The ``tabresnet-course`` command line (also ``python -m tabresnet_course``).

Five commands follow the pipeline of chapter "The OCSF pipeline": ``generate`` writes seeded
OCSF events and their labels, ``spec`` infers a feature specification for a file of events
(written as commented YAML to edit), ``train`` fits a detector on a (clean) baseline file (with
an inferred specification unless ``--spec`` is given), ``score`` writes one anomaly score per
readable record (with its percentile among held-out normal events, an alert flag at a calibrated
threshold and, with ``--findings``, one OCSF Detection Finding per alert) and ``evaluate``
compares scores with labels.
Bad input (a missing file, a malformed record in ``--strict`` mode, a bad option) ends with
one line ``tabresnet-course: error: ...`` on stderr and exit status 2; nothing is overwritten
without ``--overwrite``. Progress bars and notes go to stderr, results to files or stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from tabresnet_course import __version__
from tabresnet_course.artifacts import atomic_write, atomic_write_bytes, refuse_existing, save_json_atomic
from tabresnet_course.errors import InputError, collapse_whitespace

__all__ = ["build_parser", "main", "score_table"]

PROG = "tabresnet-course"
MAX_LISTED_PROBLEMS = 5

TRAIN_OPTIONS = {
    "epochs": "num_epochs",
    "objective": "objective",
    "seed": "seed",
    "device": "device",
    "batch_size": "batch_size",
    "d_model": "d_model",
    "num_blocks": "num_blocks",
}
"""``train``'s options (argparse ``dest``) and the ``DetectorConfig`` settings they change."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` with usage errors reported as a single line (and exit status 2), and
    defaults that ``help_defaults()`` supplies only when the help is shown."""

    help_defaults: Callable[[], dict[str, Any]] | None = None

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line on stderr and exit with status 2."""
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")

    def format_help(self) -> str:
        """The help text, with the defaults of ``help_defaults()`` filled in."""
        if self.help_defaults is not None:
            self.set_defaults(**self.help_defaults())
        return super().format_help()


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def budget_fraction(text: str) -> float:
    """``argparse`` type: a fraction in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.01, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {value}")
    return value


def alert_rate(text: str) -> float:
    """``argparse`` type: a share of events in (0, 1) (``score --alert-rate``)."""
    from tabresnet_course.detection.calibration import check_alert_rate

    try:
        return check_alert_rate(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def alerts_per_day(text: str) -> float:
    """``argparse`` type: a positive number of alerts per day (``score --alerts-per-day``)."""
    from tabresnet_course.detection.calibration import check_alerts_per_day

    try:
        return check_alerts_per_day(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def utc_datetime(text: str) -> dt.datetime:
    """``argparse`` type: an ISO 8601 date or time; without a time zone it is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-03-02T00:00:00Z, got {text!r}"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all five commands."""
    parser = ArgumentParser(
        prog=PROG,
        description="Generate OCSF events, train TabularResNet encoders, score and evaluate anomalies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_generate(commands)
    add_spec(commands)
    add_train(commands)
    add_score(commands)
    add_evaluate(commands)
    return parser


def add_events_input(command: argparse.ArgumentParser) -> None:
    """``--events PATH`` and ``--strict``, shared by the commands that read events."""
    command.add_argument("--events", type=Path, required=True, metavar="PATH", help="events: .jsonl, .json or .parquet")
    command.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable record instead of skipping it"
    )


def add_generate(commands: Any) -> None:
    """The ``generate`` command: seeded events and labels."""
    command = commands.add_parser(
        "generate",
        help="write seeded synthetic OCSF events and their labels",
        description="Write seeded synthetic OCSF 1.8.0 events (JSON Lines, JSON or Parquet, by extension) "
        "and a labels CSV (uid, is_anomaly, scenario). About 2%% of the events belong to injected "
        "attack campaigns unless --no-anomalies is given.",
    )
    command.add_argument("--events", type=positive_int, required=True, metavar="N", help="number of events")
    command.add_argument(
        "--days", type=positive_int, default=7, metavar="D", help="length of the period in days (default 7)"
    )
    command.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    command.add_argument(
        "--out", type=Path, required=True, metavar="PATH", help="events file: .jsonl, .json or .parquet"
    )
    command.add_argument("--labels", type=Path, required=True, metavar="CSV", help="labels file to write")
    command.add_argument("--no-anomalies", action="store_true", help="a clean period (for a training baseline)")
    command.add_argument(
        "--start",
        type=utc_datetime,
        default=None,
        metavar="ISO8601",
        help="first instant of the period (default 2026-03-02T00:00Z; no time zone means UTC)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace existing output files")
    command.set_defaults(handler=run_generate)


def add_spec(commands: Any) -> None:
    """The ``spec`` command: infer a feature specification and print the feature report."""
    command = commands.add_parser(
        "spec",
        help="infer a feature specification for a file of events",
        description="Profile every column of the events of PATH and write a feature specification: the "
        "built-in OCSF features present in the data, plus inferred ones for the other columns; per-event "
        "identifiers, timestamps other than time and free text are left out. Prints one row per feature "
        "(source, kind, transform, coverage, distinct values, hashed) and why each column was left out. "
        "A .yaml file is commented with the reason for each choice: edit it and pass it to "
        "'train --spec'.",
    )
    add_events_input(command)
    command.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="specification to write: .yaml, .yml or .json"
    )
    command.add_argument(
        "--max-categories",
        type=positive_int,
        metavar="N",
        help="hash inferred categories with more distinct values than N (default %(default)s)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing file")
    command.set_defaults(handler=run_spec)
    command.help_defaults = spec_defaults


def spec_defaults() -> dict[str, Any]:
    """``spec``'s defaults for the help text (``spec_inference``'s, imported only then)."""
    from tabresnet_course.features.inference import MAX_CATEGORIES

    return {"max_categories": MAX_CATEGORIES}


def train_defaults() -> dict[str, Any]:
    """``train``'s defaults, by ``dest``: ``DetectorConfig``'s. Imported only for the help text,
    since the detector loads PyTorch; when parsing, an option not given stays ``None`` and the
    detector's own default applies."""
    from tabresnet_course.detection.config import DetectorConfig

    options = DetectorConfig().options()
    return {dest: options[name] for dest, name in TRAIN_OPTIONS.items()}


def add_train(commands: Any) -> None:
    """The ``train`` command: fit and save a detector."""
    command = commands.add_parser(
        "train",
        help="train a detector on a clean baseline file",
        description="Train a self-supervised TabularResNet on the events of PATH and save the detector "
        "(weights, configuration and reference embeddings) to DIR. The events are also the kNN "
        "reference set, so they must come from a clean period: attacks in them are learned as "
        "normal. Also runs under 'torchrun --nproc_per_node=K -m tabresnet_course train ...' "
        "(only rank 0 writes).",
    )
    add_events_input(command)
    command.add_argument("--out", type=Path, required=True, metavar="DIR", help="detector directory to write")
    command.add_argument("--epochs", type=positive_int, metavar="E", help="maximum epochs (default %(default)s)")
    command.add_argument(
        "--objective", choices=("contrastive", "mfp", "both"), help="self-supervised objective (default %(default)s)"
    )
    command.add_argument("--seed", type=int, metavar="S", help="random seed (default %(default)s)")
    command.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default %(default)s")
    command.add_argument(
        "--spec",
        type=Path,
        default=None,
        metavar="FILE",
        help="feature specification (.json, .yaml or .yml; default: inferred from the events "
        "as 'tabresnet-course spec' does)",
    )
    command.add_argument("--batch-size", type=positive_int, metavar="B", help="default %(default)s")
    command.add_argument("--d-model", type=positive_int, metavar="D", help="embedding size (default %(default)s)")
    command.add_argument("--num-blocks", type=positive_int, metavar="N", help="residual blocks (default %(default)s)")
    command.add_argument("--overwrite", action="store_true", help="replace an existing detector directory")
    command.set_defaults(handler=run_train)
    command.help_defaults = train_defaults


def add_score(commands: Any) -> None:
    """The ``score`` command: one score per readable record."""
    command = commands.add_parser(
        "score",
        help="score events with a saved detector",
        description="Score every readable record of PATH and write CSV with columns line, uid, score, "
        "percentile, alert: one row per readable record, in input order; 'line' is the record's line (JSON "
        "Lines), element (JSON array) or row (Parquet) number, 1-based; 'uid' is metadata.uid (empty when "
        "absent); a higher score is more anomalous; 'percentile' (0-100) is the share of held-out normal "
        "baseline events scoring lower and 'alert' whether the score is above the threshold set by "
        "--alert-rate or --alerts-per-day (printed, and written to CSV.threshold.json). Records that cannot "
        "be read get NO row: their count and first line numbers are printed to stderr (with --strict the "
        "first one is an error). The file is read, scored and written chunk by chunk, so memory does not "
        "grow with it (a JSON array is parsed whole).",
    )
    command.add_argument("--model", type=Path, required=True, metavar="DIR", help="detector directory from 'train'")
    add_events_input(command)
    command.add_argument("--out", type=Path, required=True, metavar="CSV", help="scores file to write")
    command.add_argument(
        "--explain",
        type=positive_int,
        default=None,
        metavar="K",
        help="also write the K fields that set each record apart from its nearest normal "
        "events: top_fields and, per rank i, field_i, value_i, typical_i, contribution_i",
    )
    threshold = command.add_mutually_exclusive_group()
    threshold.add_argument(
        "--alert-rate",
        type=alert_rate,
        default=None,
        metavar="R",
        help="share of normal events accepted as false alarms (default 0.001)",
    )
    threshold.add_argument(
        "--alerts-per-day",
        type=alerts_per_day,
        default=None,
        metavar="N",
        help="false alarms per day accepted, turned into a rate by the baseline's events per day",
    )
    command.add_argument(
        "--findings",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help="also write one OCSF 1.8.0 Detection Finding (class 2004) per alert, as JSON Lines, with the "
        "--explain K (default 3) fields that explain it",
    )
    command.add_argument("--overwrite", action="store_true", help="replace existing output files")
    command.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="records read per chunk (default 16384); the scores do not depend on it",
    )
    command.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="'local' (default): this process, CSV to --out; 'spark': --events is a Hive-partitioned Parquet "
        "directory (region=/accountId=/eventDay=) scored on Apache Spark (pip install tabresnet-course[spark]), "
        "written as Parquet to the directory --out with the partition columns, uid, score and the --explain "
        "columns, partitioned like the input; the same scores as 'local'",
    )
    command.add_argument(
        "--where",
        default=None,
        metavar="SQL",
        help="with --engine spark: a condition on the partition columns, such as \"eventDay >= '20260301'\"; "
        "the other partitions are never read",
    )
    command.set_defaults(handler=run_score)


def add_evaluate(commands: Any) -> None:
    """The ``evaluate`` command: metrics from scores and labels."""
    command = commands.add_parser(
        "evaluate",
        help="compare scores with labels",
        description="Join scores (from 'score') and labels (from 'generate') on uid and print AUROC, "
        "average precision and recall at the alert budget, overall and per attack scenario "
        "(each scenario against all normal records).",
    )
    command.add_argument("--scores", type=Path, required=True, metavar="CSV", help="scores file from 'score'")
    command.add_argument("--labels", type=Path, required=True, metavar="CSV", help="labels file from 'generate'")
    command.add_argument(
        "--budget",
        type=budget_fraction,
        default=0.01,
        metavar="FRACTION",
        help="share of records an analyst can review (default 0.01)",
    )
    command.set_defaults(handler=run_evaluate)


# --------------------------------------------------------------------------- helpers


def show_progress() -> bool:
    """Progress bars only for a person watching a terminal, not in logs, pipes or notebooks."""
    return sys.stderr.isatty()


def note(message: str) -> None:
    """An informational line on stderr."""
    print(message, file=sys.stderr, flush=True)


def read_events_reported(path: Path, strict: bool) -> Any:
    """Read events, telling stderr how many records were skipped and where."""
    from tabresnet_course.events.files import read_events

    result = read_events(path, strict=strict)
    report_skipped(result, path)
    return result


def report_skipped(result: Any, path: Path) -> None:
    """Tell stderr how many records of ``path`` were skipped and where (``result``: a
    ``ReadResult`` or ``ReadReport``); no readable record at all is an error."""
    if result.num_read == 0:  # one error line that says why, instead of a warning and an error
        raise InputError(f"{path}: no readable events; {result.skipped_summary(MAX_LISTED_PROBLEMS)}")
    if result.num_skipped:
        note(f"{PROG}: warning: {result.summary(MAX_LISTED_PROBLEMS)}")


def read_csv_checked(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV file with at least ``columns``; uids are read as text."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        frame = pd.read_csv(path, dtype={"uid": str}, keep_default_na=False, na_values={"score": [""]})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable CSV file ({collapse_whitespace(error)})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing} (found {list(frame.columns)})")
    return frame


def parse_labels(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``is_anomaly`` as booleans (``True``/``False`` or ``1``/``0``), naming the first bad row."""
    text = frame["is_anomaly"].astype(str).str.strip().str.lower()
    mapping = {"true": True, "1": True, "false": False, "0": False}
    bad = ~text.isin(list(mapping))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path} line {row + 2}: is_anomaly must be true/false or 1/0, got {frame['is_anomaly'].iloc[row]!r}"
        )
    return frame.assign(is_anomaly=text.map(mapping).astype(bool))


# --------------------------------------------------------------------------- the commands


def run_generate(args: argparse.Namespace) -> int:
    """``generate``: seeded events to ``--out``, their labels to ``--labels``."""
    from tabresnet_course.events.files import SUPPORTED_SUFFIXES, write_events
    from tabresnet_course.ocsf.generator import DEFAULT_START, generate_ocsf_events

    if args.out.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{args.out}: unknown extension {args.out.suffix!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if args.out.resolve() == args.labels.resolve():
        raise InputError(f"--out and --labels are the same file: {args.out}")
    refuse_existing(args.out, args.overwrite)
    refuse_existing(args.labels, args.overwrite)
    start = args.start if args.start is not None else DEFAULT_START
    generated = generate_ocsf_events(args.events, args.days, args.seed, not args.no_anomalies, start)
    write_events(generated, args.out, overwrite=args.overwrite)
    atomic_write_bytes(args.labels, generated.labels.to_csv(index=False).encode("utf-8"), overwrite=args.overwrite)
    anomalous = int(generated.labels["is_anomaly"].sum())
    note(f"wrote {len(generated)} events ({anomalous} anomalous) to {args.out} and labels to {args.labels}")
    return 0


def infer_spec_reported(result: Any, **options: Any) -> Any:
    """The :class:`~tabresnet_course.features.inference.InferredSpec` of the events read (``options``
    go to ``infer_feature_spec``); "no usable feature" names the file."""
    from tabresnet_course.features.inference import infer_feature_spec

    try:
        return infer_feature_spec(result.frame, **options)
    except ValueError as error:
        raise InputError(f"{result.path}: {error}") from None


def run_spec(args: argparse.Namespace) -> int:
    """``spec``: infer a feature specification, print the report, write the file."""
    if args.out.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InputError(f"{args.out}: feature specification must be .json, .yaml or .yml")
    refuse_existing(args.out, args.overwrite)
    result = read_events_reported(args.events, args.strict)
    given = {"max_categories": args.max_categories} if args.max_categories is not None else {}
    inferred = infer_spec_reported(result, **given)
    print(inferred.summary())
    inferred.to_file(args.out, overwrite=args.overwrite, title=args.events.name)
    note(
        f"wrote the feature specification to {args.out}; edit it and pass it back with "
        f"'{PROG} train --spec {args.out} ...'"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    """``train``: read, train, save (rank 0 only under torchrun). Without ``--spec`` the feature
    specification is inferred; once the detector is saved, each built-in feature absent from the
    data is noted (one line each) and the feature report printed, so that an error stays one line."""
    from tabresnet_course.detection.detector import train_ocsf_anomaly_detector
    from tabresnet_course.detection.saved import is_saved_detector
    from tabresnet_course.features.inference import feature_report, format_report
    from tabresnet_course.features.spec import FeatureSpec
    from tabresnet_course.runtime import cleanup_distributed, distributed_rank

    refuse_existing(args.out, args.overwrite, "saved detector", is_saved_detector)
    spec = FeatureSpec.from_file(args.spec) if args.spec is not None else None
    result = read_events_reported(args.events, args.strict)
    inferred = infer_spec_reported(result) if spec is None else None
    given = {name: getattr(args, dest) for dest, name in TRAIN_OPTIONS.items() if getattr(args, dest) is not None}
    try:
        detector = train_ocsf_anomaly_detector(
            result.frame, feature_spec=spec or inferred.spec, progress=show_progress(), **given
        )
        if distributed_rank() == 0:
            detector.save(args.out, overwrite=args.overwrite)
            for name, reason in inferred.dropped.items() if inferred is not None else ():
                note(f"{PROG}: note: built-in feature {name!r} dropped: {reason}")
            report = inferred.report if inferred is not None else feature_report(spec, result.frame)
            note(f"features ({len(report)}):\n{format_report(report)}")
            epochs = len(detector.training["history"]["epoch"])
            note(f"trained on {result.num_read} events for {epochs} epoch(s); saved the detector to {args.out}")
    finally:
        cleanup_distributed()
    return 0


def run_score(args: argparse.Namespace) -> int:
    """``score``: one CSV row per readable record, in input order, read, scored and written
    chunk by chunk into a temporary file that replaces ``--out`` when complete (and the same for
    ``--findings``); the alert threshold is printed and written to ``--out`` + ``.threshold.json``."""
    from tabresnet_course.detection.detector import OCSFAnomalyDetector
    from tabresnet_course.events.files import DEFAULT_CHUNK_SIZE, EventChunks

    if args.engine == "spark":
        return run_score_spark(args)
    if args.where is not None:
        raise InputError("--where filters the partitions of a lake: it needs --engine spark")
    sidecar = args.out.with_name(args.out.name + ".threshold.json")
    outputs = [args.out, sidecar] + ([args.findings] if args.findings is not None else [])
    if len({path.resolve() for path in outputs}) < len(outputs):
        raise InputError(f"--out ({args.out}), its .threshold.json and --findings must be three different files")
    for path in (args.out, args.findings):  # the sidecar goes with --out: replaced with it
        if path is not None:
            refuse_existing(path, args.overwrite)
    detector = OCSFAnomalyDetector.load(args.model)
    threshold = score_threshold(detector, args)
    chunks = EventChunks(args.events, args.chunk_size or DEFAULT_CHUNK_SIZE, args.strict)
    alerts = 0

    def write(path: Path, findings: Path | None = None) -> None:
        nonlocal alerts
        scored = detector.score_chunks(chunks, progress=show_progress())
        alerts = write_scores(path, scored, detector, args.explain, threshold, findings)
        report_skipped(chunks.report, args.events)

    if args.findings is None:
        atomic_write(args.out, write, overwrite=args.overwrite)
    else:
        atomic_write(
            args.findings,
            lambda findings: atomic_write(args.out, lambda path: write(path, findings), overwrite=args.overwrite),
            overwrite=args.overwrite,
        )
    note(f"wrote {chunks.report.num_read} scores to {args.out}")
    if threshold is not None:
        note(threshold.describe())
        record = {
            **threshold.to_dict(),
            "detector": str(args.model),
            "detector_sha256": detector.checksum,
            "events": str(args.events),
            "scored": chunks.report.num_read,
            "alerts": alerts,
            "findings": None if args.findings is None else str(args.findings),
        }
        save_json_atomic(record, sidecar)
        where = f" and {alerts} findings to {args.findings}" if args.findings is not None else ""
        note(f"{alerts} alerts{where}; the threshold is recorded in {sidecar}")
    return 0


def score_threshold(detector: Any, args: argparse.Namespace) -> Any:
    """The :class:`~tabresnet_course.detection.calibration.AlertThreshold` of ``score``'s options;
    ``None`` for a detector saved before calibration existed, unless an alert option or
    ``--findings`` asks for one (then an :class:`InputError` says to retrain)."""
    if detector.calibration is None:
        if args.findings is not None:
            raise InputError(
                f"{args.model} was saved before calibration existed, so it cannot write findings; retrain it "
                f"with '{PROG} train', or run 'score' without --findings"
            )
        if args.alert_rate is not None or args.alerts_per_day is not None:
            raise InputError(
                f"{args.model} was saved before calibration existed, so it has no alert threshold; retrain it "
                f"with '{PROG} train', or run 'score' without --alert-rate / --alerts-per-day"
            )
        note(f"{PROG}: note: {args.model} has no calibration (saved before format 2): no percentile or alert column")
        return None
    return detector.alert_threshold(alert_rate=args.alert_rate, alerts_per_day=args.alerts_per_day)


def run_score_spark(args: argparse.Namespace) -> int:
    """``score --engine spark``: the lake ``--events`` scored on Spark
    (:func:`tabresnet_course.spark.score_lake`) into the Parquet directory ``--out``."""
    local_only = {"--alert-rate": args.alert_rate, "--alerts-per-day": args.alerts_per_day}
    local_only |= {"--findings": args.findings, "--chunk-size": args.chunk_size, "--strict": args.strict or None}
    given = [name for name, value in local_only.items() if value is not None]
    if given:
        raise InputError(f"{', '.join(given)} work with --engine local only")
    from tabresnet_course.spark import score_lake, spark_session

    try:
        spark = spark_session()
    except (ImportError, RuntimeError) as error:  # no pyspark, or no Java
        raise InputError(f"--engine spark: {error}") from None
    partitions = score_lake(spark, args.events, args.model, args.out, args.where, args.explain or 0, args.overwrite)
    note(f"wrote the scores to {args.out}, partitioned by {', '.join(partitions) or 'nothing'}")
    return 0


def write_scores(
    path: Path,
    scored: Iterable[tuple[Any, np.ndarray]],
    detector: Any = None,
    explain: int | None = None,
    threshold: Any = None,
    findings: Path | None = None,
) -> int:
    """Write the CSV of ``score``: a header, then the rows of each ``(chunk, scores)`` pair, with
    ``percentile`` and ``alert`` when a ``threshold`` is given, ``explain`` explaining fields per
    row (``--explain``) when it is given, and the Detection Findings of the alerts to
    ``findings`` (JSON Lines) when it is given. Returns the number of alerts."""
    from tabresnet_course.detection.findings import detection_findings, findings_jsonl

    created = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    alerts = 0
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(open(path, "w", encoding="utf-8", newline=""))
        found = stack.enter_context(open(findings, "w", encoding="utf-8")) if findings is not None else None
        for number, (chunk, scores) in enumerate(scored):
            table = score_table(chunk, scores, detector, threshold)
            if explain is not None:
                table = pd.concat([table, explanation_table(detector, chunk.frame, explain)], axis=1)
            table.to_csv(file, header=number == 0, index=False, float_format="%.8g")
            if threshold is not None:
                alerts += int((scores > threshold.score).sum())
            if found is not None:
                top = explain if explain is not None else 3
                made = detection_findings(
                    chunk.frame, scores, detector, threshold=threshold, top=top, created_time=created
                )
                found.write(findings_jsonl(made))
    return alerts


def score_table(chunk: Any, scores: np.ndarray, detector: Any = None, threshold: Any = None) -> pd.DataFrame:
    """The ``line``, ``uid`` (empty when absent) and ``score`` columns of a read chunk, and, when
    a ``threshold`` is given, the detector's ``percentile`` and ``alert`` (score above it)."""
    uids = chunk.uids if chunk.uids is not None else pd.Series([None] * chunk.num_read)
    uids = uids.astype(object).where(uids.notna(), "").to_numpy()
    table = pd.DataFrame({"line": chunk.lines, "uid": uids, "score": scores})
    if threshold is not None:
        table["percentile"] = detector.percentiles(scores)
        table["alert"] = scores > threshold.score
    return table


def explanation_table(detector: Any, frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """``score --explain``'s extra columns for the records of ``frame``, one row each
    (:func:`tabresnet_course.detection.explain.explanation_columns`)."""
    from tabresnet_course.detection.explain import explanation_columns

    return explanation_columns(detector.explain(frame, top), len(frame), top)


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: join scores and labels on uid, print the metrics table."""
    from tabresnet_course.evaluation import per_scenario_metrics

    scores = read_csv_checked(args.scores, ("line", "uid", "score"))
    labels = parse_labels(read_csv_checked(args.labels, ("uid", "is_anomaly", "scenario")), args.labels)
    if labels["uid"].duplicated().any():
        raise InputError(f"{args.labels}: uid {labels['uid'][labels['uid'].duplicated()].iloc[0]!r} appears twice")
    if scores["score"].isna().any():
        row = int(np.flatnonzero(scores["score"].isna().to_numpy())[0])
        raise InputError(f"{args.scores} line {row + 2}: empty score")
    numbers = pd.to_numeric(scores["score"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(numbers).all():
        row = int(np.flatnonzero(~np.isfinite(numbers))[0])
        shown = str(scores["score"].iloc[row])
        raise InputError(f"{args.scores} line {row + 2}: score must be a finite number, got {shown!r}")
    scores = scores.assign(score=numbers)
    joined = scores.merge(labels, on="uid", how="left", indicator=True)
    unlabelled = int((joined["_merge"] == "left_only").sum())
    if unlabelled == len(joined):
        raise InputError(f"{args.scores}: none of the {len(joined)} scored uids appear in {args.labels}")
    if unlabelled:
        note(f"{PROG}: warning: {unlabelled} scored records have no label in {args.labels} and are left out")
    joined = joined[joined["_merge"] == "both"].reset_index(drop=True)
    unscored = len(labels) - joined["uid"].nunique()
    if unscored:
        note(f"{PROG}: warning: {unscored} labelled records have no score (unreadable or not scored)")
    table = per_scenario_metrics(joined[["uid", "is_anomaly", "scenario"]], joined["score"].to_numpy(), args.budget)
    alerts = int(np.ceil(args.budget * len(joined) - 1e-9))
    print(
        f"{len(joined)} scored records, {int(joined['is_anomaly'].sum())} anomalous; "
        f"alert budget {args.budget:g} = top {alerts} scores"
    )
    shown = table.drop(columns=["alert_budget"])
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="nan"))
    return 0


# --------------------------------------------------------------------------- entry point


def one_line(error: BaseException) -> str:
    """An exception as one line; ``OSError`` as ``file: reason``."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return collapse_whitespace(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except (InputError, ValueError, OSError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
