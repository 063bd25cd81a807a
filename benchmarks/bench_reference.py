"""Scoring at the reference sizes users have (issue 24): the recipe end to end, threads per stage,
and the cost model.

The recipe, as a new user runs it: ``generate --events N --no-anomalies`` as the baseline (N =
20,000 and 100,000; the reference is the whole baseline), ``train --epochs 1``, then ``score``
on generated files of 30,000 and 300,000 events, each ``score`` in a fresh process
(``bench_streaming.cli``: wall time from process start to exit, peak RSS). The same with ``k =
200``: a detector with the k = 5 one's encoder and reference rows, refitted with ``k = 200``
(reference scores and calibration recomputed through the public API). Beside every file: the
rate of bare ``json.loads`` on its lines, and ``OCSFAnomalyDetector.load``'s start-up time in a
fresh process.

``stages`` times each stage of scoring in this process on 4,096 events of the 30,000-event file,
with 1 and with 2 threads (:func:`tabresnet_course.runtime.threads`), interleaved (wall time):
reading (JSON Lines -> flat frame), featurising (preprocess + raw view), embedding, the
embedding kNN and the raw-feature kNN. The one-thread CPU seconds per event of the stages
(``time.process_time``: what the work costs, whatever else shares the machine), summed, give
events per second per core, the cost model's unit.

Run alone with ``python benchmarks/bench_reference.py [--quick] [--keep DIR]``; ``--keep`` reuses
(or writes) the baselines, detectors and event files in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_reference.py` from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_streaming import cli, generate_events_file
from benchmarks.common import Settings, summarize

REFERENCE_SIZES = (20_000, 100_000)
EVENT_SIZES = (30_000, 300_000)
KS = (5, 200)
QUICK = {"reference_sizes": (400, 800), "event_sizes": (500, 2_000), "ks": (5, 20)}
RATE_TARGETS = {20_000: 8_000, 100_000: 3_000}
"""events/s the issue asks for at each reference size."""
MEMORY_LIMIT_BYTES = 1024**3
MEMORY_RATIO_TARGET = 1.2
STARTUP_LIMIT_S = 2.0
STAGE_EVENTS = 4_096
EVENTS_PER_DAY = 10**9
"""The cost model's workload."""

LOAD_TIMER = """
import sys, time
from tabresnet_course.detection.detector import OCSFAnomalyDetector
started = time.perf_counter()
OCSFAnomalyDetector.load(sys.argv[1])
print(time.perf_counter() - started)
"""


def json_loads_rate(path: Path) -> float:
    """Lines per second of bare ``json.loads`` on the file (the floor of any JSON Lines reader)."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        count = sum(1 for line in handle if line.strip() and json.loads(line) is not None)
    return count / (time.perf_counter() - started)


def startup_seconds(detector: Path) -> float:
    """``OCSFAnomalyDetector.load`` in a fresh process, imports excluded."""
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_TIMER, str(detector)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.split()[-1])


def derive(source: Path, target: Path, k: int) -> None:
    """A detector with ``source``'s encoder and reference rows refitted with ``k`` neighbours."""
    from tabresnet_course.detection.calibration import Calibration, cross_fitted_scores
    from tabresnet_course.detection.detector import OCSFAnomalyDetector

    base = OCSFAnomalyDetector.load(source)
    config = base.config.with_options(k=k)
    detector = OCSFAnomalyDetector(
        base.model,
        base.featurizer,
        base.preprocessor,
        base.reference_embeddings,
        base.reference_features,
        config=config,
        training=base.training,
        reference_sample=base.reference_sample,
    )
    views = [detector.reference_embeddings, detector.reference_features]
    per_day = base.calibration.events_per_day if base.calibration is not None else None
    detector.calibration = Calibration(cross_fitted_scores(detector.scorer_, views, seed=config.seed), per_day)
    detector.save(target, overwrite=True)


def prepare(directory: Path, sizes: tuple[int, ...], events: tuple[int, ...], ks: tuple[int, ...]) -> None:
    """Baselines, detectors and event files, unless ``directory`` has them already."""
    for size in sizes:
        if not (directory / f"detector_{size}_k{ks[0]}").exists():
            cli(
                "generate",
                "--events",
                size,
                "--no-anomalies",
                "--seed",
                7,
                "--out",
                f"baseline_{size}.jsonl",
                "--labels",
                f"baseline_{size}.csv",
                "--overwrite",
                cwd=directory,
            )
            cli(
                "train",
                "--events",
                f"baseline_{size}.jsonl",
                "--out",
                f"detector_{size}_k{ks[0]}",
                "--epochs",
                1,
                "--device",
                "cpu",
                "--overwrite",
                cwd=directory,
            )
        for k in ks[1:]:
            if not (directory / f"detector_{size}_k{k}").exists():
                derive(directory / f"detector_{size}_k{ks[0]}", directory / f"detector_{size}_k{k}", k)
    for size in events:
        generate_events_file(directory, size)


def stages(detector_dir: Path, events: Path, repeats: int) -> dict[str, Any]:
    """Seconds per event of every scoring stage with 1 and with 2 threads, interleaved."""
    from tabresnet_course.detection.detector import OCSFAnomalyDetector
    from tabresnet_course.events.files import read_events
    from tabresnet_course.runtime import threads

    detector = OCSFAnomalyDetector.load(detector_dir)
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample.jsonl"
        with events.open("rb") as handle:
            sample.write_bytes(b"".join(line for _, line in zip(range(STAGE_EVENTS), handle)))
        frame = read_events(sample).frame
        numerical, categorical = detector.preprocess(frame)
        features = detector.raw_features(frame, numerical, categorical)
        embeddings = detector.embed_arrays(numerical, categorical)
        embedding_knn, raw_knn = detector.scorer_.members
        work = {
            "read": lambda: read_events(sample),
            "featurise": lambda: detector.raw_features(frame, *detector.preprocess(frame)),
            "embed": lambda: detector.embed_arrays(numerical, categorical),
            "embedding kNN": lambda: embedding_knn.score(embeddings),
            "raw kNN": lambda: raw_knn.score(features),
        }
        samples: dict[str, dict[int, list[float]]] = {name: {1: [], 2: []} for name in work}
        cpu: dict[str, list[float]] = {name: [] for name in work}  # CPU seconds per event, one thread
        for repeat in range(repeats + 1):  # the first round warms up
            for count in (1, 2) if repeat % 2 else (2, 1):
                with threads(count):
                    for name, run in work.items():
                        started, cpu_started = time.perf_counter(), time.process_time()
                        run()
                        if repeat:
                            samples[name][count].append((time.perf_counter() - started) / len(frame))
                        if repeat and count == 1:
                            cpu[name].append((time.process_time() - cpu_started) / len(frame))
    result = {
        name: {f"{count}_threads": summarize(times) for count, times in by_count.items()}
        for name, by_count in samples.items()
    }
    for name, times in cpu.items():
        result[name]["1_thread_cpu"] = summarize(times)
    per_event = sum(stage["1_thread_cpu"]["median"] for stage in result.values())
    return {
        "events": len(frame),
        "k": detector.k,
        "reference_rows": len(detector.reference_embeddings),
        "seconds_per_event": result,
        "events_per_second_per_core": 1.0 / per_event,
        "core_hours_per_day": EVENTS_PER_DAY * per_event / 3600.0,
    }


def run(settings: Settings, keep: Path | None = None) -> dict[str, Any]:
    """The ``reference`` section of the results."""
    sizes, events, ks = (
        (QUICK["reference_sizes"], QUICK["event_sizes"], QUICK["ks"])
        if settings.quick
        else (REFERENCE_SIZES, EVENT_SIZES, KS)
    )
    with tempfile.TemporaryDirectory() as scratch:
        directory = keep if keep is not None else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        prepare(directory, sizes, events, ks)
        floors = {str(n): json_loads_rate(directory / f"events_{n}.jsonl") for n in events}
        runs, startup = [], {}
        for size in sizes:
            for k in ks:
                detector = directory / f"detector_{size}_k{k}"
                for count in events:
                    seconds, peak, cpu = cli(
                        "score",
                        "--model",
                        detector.name,
                        "--events",
                        f"events_{count}.jsonl",
                        "--out",
                        "scores.csv",
                        "--overwrite",
                        cwd=directory,
                    )
                    runs.append(
                        {
                            "reference_rows": size,
                            "k": k,
                            "events": count,
                            "seconds": seconds,
                            "events_per_second": count / seconds,
                            "cpu_seconds": cpu,
                            "events_per_cpu_second": count / cpu,
                            "ratio_to_json_loads": count / seconds / floors[str(count)],
                            "peak_rss_bytes": peak,
                        }
                    )
                startup[f"{size}_k{k}"] = startup_seconds(detector)
        cost = [
            stages(directory / f"detector_{size}_k{k}", directory / f"events_{events[0]}.jsonl", settings.repeats)
            for size in sizes
            for k in ks
        ]
    return {
        "reference_sizes": list(sizes),
        "event_sizes": list(events),
        "ks": list(ks),
        "json_loads_lines_per_second": floors,
        "runs": runs,
        "startup_seconds": startup,
        "stages": cost,
        "rate_targets": {str(size): RATE_TARGETS.get(size, rate) for size, rate in zip(sizes, RATE_TARGETS.values())},
        "memory_limit_bytes": MEMORY_LIMIT_BYTES,
        "memory_ratio_target": MEMORY_RATIO_TARGET,
        "startup_limit_seconds": STARTUP_LIMIT_S,
        "events_per_day": EVENTS_PER_DAY,
    }


def main() -> None:
    """Run the benchmark alone and print its tables."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="reuse or keep the generated files here")
    parser.add_argument("--out", type=Path, default=None, help="also write the section as JSON here")
    args = parser.parse_args()
    result = run(Settings(quick=args.quick, device=torch.device("cpu"), repeats=3, warmup=1), args.keep)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
