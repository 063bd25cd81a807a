"""Scoring: embed new events and score them by kNN distance to a reference set.

The encoder is the seed's default configuration (random weights: speed does not depend on
them); the reference set is 100,000 embedded rows and the queries are 10,000 rows, both already
preprocessed (the data benchmark measures the way from JSON Lines to tensors). Scoring runs
through :class:`tabresnet_course.detection.detector.OCSFAnomalyDetector` (``embed_arrays``, batches of
4096 rows in eval mode) and its :class:`~tabresnet_course.detection.scorers.KNNScorer` (scikit-learn
``NearestNeighbors``, k = 5). Reported: events per second for embed + kNN, and for each part.

``backends`` compares the kNN backends of :class:`tabresnet_course.detection.scorers.KNNScorer` on the
same embeddings of the detector's encoder size (d_model 64, 2 blocks): 100,000 reference rows,
10,000 queries, k = 5, the backends timed in turn, in an order that rotates every repeat; the
approximate ``faiss_hnsw`` also reports its recall@k against exact search.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.bench_training import (
    QUICK_SETUP,
    SEED_SETUP,
    new_model,
    structured_data,
)
from benchmarks.common import Settings, summarize, synchronize, time_call
from tabresnet_course.detection.config import DetectorConfig
from tabresnet_course.detection.detector import OCSFAnomalyDetector
from tabresnet_course.detection.scorers import (
    APPROXIMATE_KNN_BACKENDS,
    KNNScorer,
    installed_knn_backends,
)


def run(settings: Settings) -> dict[str, Any]:
    """The ``scoring`` section of the results."""
    setup = QUICK_SETUP if settings.quick else SEED_SETUP
    num_reference, num_queries = (2_000, 500) if settings.quick else (100_000, 10_000)
    device = settings.device
    model = new_model(setup, "contrastive").to(device).eval()
    detector = OCSFAnomalyDetector(model, featurizer=None, preprocessor=None, config=DetectorConfig(scorer="knn"))
    reference = structured_data(num_reference, setup["num_numerical"], setup["cardinalities"], seed=1)
    queries = structured_data(num_queries, setup["num_numerical"], setup["cardinalities"], seed=2)

    synchronize(device)
    started = time.perf_counter()
    reference_embeddings = detector.embed_arrays(*reference)
    embedded = time.perf_counter()
    detector.set_reference_embeddings(reference_embeddings)  # fits the kNN index
    indexed = time.perf_counter()

    embeddings = detector.embed_arrays(*queries)
    score = time_call(
        lambda: detector.scorer_.score(detector.embed_arrays(*queries)), device, settings.repeats, settings.warmup
    )
    embed = time_call(lambda: detector.embed_arrays(*queries), device, settings.repeats, settings.warmup)
    knn = time_call(lambda: detector.scorer_.score(embeddings), device, settings.repeats, settings.warmup)
    return {
        "num_reference": num_reference,
        "num_queries": num_queries,
        "k": detector.k,
        "embedding_dim": int(reference_embeddings.shape[1]),
        "reference_embed_seconds": embedded - started,
        "reference_index_seconds": indexed - embedded,
        "embed_plus_knn": {"seconds": score, "events_per_second": num_queries / score["median"]},
        "embed_only": {"seconds": embed, "events_per_second": num_queries / embed["median"]},
        "knn_only": {"seconds": knn, "events_per_second": num_queries / knn["median"]},
        "threads": torch.get_num_threads(),
        "backends": compare_backends(settings, setup),
    }


def compare_backends(settings: Settings, setup: dict[str, Any]) -> dict[str, Any]:
    """Queries per second of every installed kNN backend on the same embeddings (d = 64)."""
    setup = {**setup, "d_model": 64, "num_blocks": 2}
    num_reference, num_queries = (2_000, 500) if settings.quick else (100_000, 10_000)
    model = new_model(setup, "contrastive").to(settings.device).eval()
    detector = OCSFAnomalyDetector(model, featurizer=None, preprocessor=None)
    reference = detector.embed_arrays(
        *structured_data(num_reference, setup["num_numerical"], setup["cardinalities"], seed=1)
    )
    queries = detector.embed_arrays(
        *structured_data(num_queries, setup["num_numerical"], setup["cardinalities"], seed=2)
    )
    names = [*installed_knn_backends(), *(APPROXIMATE_KNN_BACKENDS if "faiss" in installed_knn_backends() else ())]
    scorers = {name: KNNScorer(5, name).fit(reference) for name in names}
    exact = scorers["sklearn"].kneighbors(queries)[1]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(settings.warmup + settings.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            started = time.perf_counter()
            scorers[name].score(queries)
            if repeat >= settings.warmup:
                samples[name].append(time.perf_counter() - started)
    results = {}
    for name in names:
        neighbours = scorers[name].kneighbors(queries)[1]
        recall = sum(len(set(a) & set(b)) for a, b in zip(neighbours, exact)) / exact.size
        seconds = summarize(samples[name])
        results[name] = {
            "seconds": seconds,
            "queries_per_second": num_queries / seconds["median"],
            "recall_at_k": recall,
        }
    return {
        "num_reference": num_reference,
        "num_queries": num_queries,
        "k": 5,
        "dim": int(reference.shape[1]),
        "auto": installed_knn_backends()[0],
        "results": results,
    }
