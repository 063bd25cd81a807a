"""Scoring: embed new events and score them by kNN distance to a reference set.

The encoder is the seed's default configuration (random weights: speed does not depend on
them); the reference set is 100,000 embedded rows and the queries are 10,000 rows, both already
preprocessed (the data benchmark measures the way from JSON Lines to tensors). Scoring runs
through :class:`tabresnet_course.detector.OCSFAnomalyDetector` (``embed_arrays``, batches of
4096 rows in eval mode) and its :class:`~tabresnet_course.detector.KNNScorer` (scikit-learn
``NearestNeighbors``, k = 5). Reported: events per second for embed + kNN, and for each part.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.bench_training import QUICK_SETUP, SEED_SETUP, new_model, structured_data
from benchmarks.common import Settings, synchronize, time_call
from tabresnet_course.detector import DetectorConfig, OCSFAnomalyDetector


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
    score = time_call(lambda: detector.scorer_.score(detector.embed_arrays(*queries)), device, settings.repeats, settings.warmup)
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
    }
