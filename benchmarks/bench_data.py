"""Data path: generating OCSF events, and going from JSON Lines to model-ready tensors.

- ``generate``: :func:`tabresnet_course.ocsf.generator.generate_ocsf_events` (the flat table), and
  writing the events as JSON Lines with :func:`tabresnet_course.events.files.write_events`.
- ``json.loads floor``: ``[json.loads(line) for line in lines]`` on the file's lines, already in
  memory. Any parser written in Python pays at least this much per event, and it stops at
  dictionaries: nothing is flattened, featurised or encoded.
- ``package``: the file -> :func:`~tabresnet_course.events.files.read_events` ->
  :class:`~tabresnet_course.features.spec.OCSFFeaturizer` ->
  :class:`~tabresnet_course.preprocess.TabularPreprocessor` -> two tensors; once with a featuriser and
  preprocessor fitted beforehand (the cost of every new file at scoring time), once fitting
  both on the file (the cost at training time).

The floor and the package paths are timed side by side (rotating order, median of repeats).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Settings, summarize, time_interleaved
from tabresnet_course.events.files import read_events, write_events
from tabresnet_course.features.spec import OCSFFeaturizer
from tabresnet_course.ocsf.generator import generate_ocsf_events
from tabresnet_course.preprocess import TabularPreprocessor


def to_tensors(path: Path, featurizer: OCSFFeaturizer | None, preprocessor: TabularPreprocessor | None):
    """JSON Lines file -> ``(numerical float32 (N, n_num), categorical int64 (N, n_cat))`` tensors,
    fitting the featuriser and the preprocessor on the file when none are given."""
    frame = read_events(path).frame
    if featurizer is None:
        featurizer = OCSFFeaturizer().fit(frame)
        features = featurizer.transform(frame)
        preprocessor = TabularPreprocessor(featurizer.numerical_columns, featurizer.categorical_columns)
        numerical, categorical = preprocessor.fit_transform(features)
    else:
        numerical, categorical = preprocessor.transform(featurizer.transform(frame))
    return torch.from_numpy(numerical), torch.from_numpy(categorical)


def run(settings: Settings) -> dict[str, Any]:
    """The ``data`` section of the results."""
    num_events = 2_000 if settings.quick else 50_000
    cpu = torch.device("cpu")
    generation = []
    writing = []
    with tempfile.TemporaryDirectory(prefix="tabresnet_bench_") as tmp:
        path = Path(tmp) / "events.jsonl"
        for index in range(settings.warmup + settings.repeats):
            started = time.perf_counter()
            events = generate_ocsf_events(num_events, seed=0)
            generated = time.perf_counter()
            write_events(events, path, overwrite=True)
            written = time.perf_counter()
            if index >= settings.warmup:
                generation.append(generated - started)
                writing.append(written - generated)
        file_bytes = path.stat().st_size
        lines = path.read_text(encoding="utf-8").splitlines()

        # Fit once, outside the timings, for the scoring-time path.
        frame = read_events(path).frame
        featurizer = OCSFFeaturizer().fit(frame)
        preprocessor = TabularPreprocessor(featurizer.numerical_columns, featurizer.categorical_columns)
        preprocessor.fit(featurizer.transform(frame))
        numerical, categorical = to_tensors(path, featurizer, preprocessor)

        timings = time_interleaved(
            {
                "json.loads floor": lambda: [json.loads(line) for line in lines],
                "package (fitted)": lambda: to_tensors(path, featurizer, preprocessor),
                "package (fit + transform)": lambda: to_tensors(path, None, None),
            },
            cpu,
            settings.repeats,
            settings.warmup,
        )
    result: dict[str, Any] = {
        "num_events": num_events,
        "file_bytes": file_bytes,
        "tensor_shapes": [list(numerical.shape), list(categorical.shape)],
        "generate": {
            "seconds": summarize(generation),
            "events_per_second": num_events / summarize(generation)["median"],
        },
        "write_jsonl": {
            "seconds": summarize(writing),
            "events_per_second": num_events / summarize(writing)["median"],
        },
        "paths": {},
    }
    floor = timings["json.loads floor"]["median"]
    for name, stats in timings.items():
        result["paths"][name] = {
            "seconds": stats,
            "events_per_second": num_events / stats["median"],
            "ratio_to_json_loads": floor / stats["median"],
        }
    return result
