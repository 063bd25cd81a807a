"""Explanations: how faithful the candidate attributions are, and what explaining costs.

``python benchmarks/bench_explain.py [--seeds 0 1 2 3] [--quick]`` trains the default detector
(contrastive encoder, kNN on embeddings) on a clean baseline per seed and, on the evaluation
period's attacks, measures for each candidate how often a field the scenario changed is among the
top 3 (the hit rate, per scenario):

- ``neighbour_rarity`` (the package's :class:`~tabresnet_course.detection.explain.NeighbourExplainer`):
  per-field distance to the k nearest reference events, category mismatches weighted by surprisal;
- ``neighbour_mismatch``: the same without the rarity weight (every category mismatch counts 1);
- ``occlusion``: the drop of the kNN score when a field's columns take the nearest neighbour's
  values, through the encoder (one extra forward pass and kNN search per field);
- ``mfp_surprisal``: per-field surprisal of an MFP model trained on the same baseline
  (:mod:`tabresnet_course.detection.surprisal`; a second model, as the default detector has no MFP head).

It then times ``detector.score`` and ``detector.explain(top=3)`` side by side on all evaluation
events and prints their ratio. Results go to stdout as Markdown and to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_explain.py` from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import time_interleaved
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.explain import NeighbourExplainer
from tabresnet_course.ocsf.generator import generate_baseline_and_evaluation
from tabresnet_course.ocsf.scenarios import CHANGED_FEATURES as CHANGED_FIELDS

"""The fields each scenario changes (as in tests/test_explain.py)."""

STRICT_OFF_HOURS = {"src_country", "hour"}
"""The off-hours scenario's fields without the attacker's address (reported separately)."""


def occlusion(
    detector: OCSFAnomalyDetector,
    explainer: NeighbourExplainer,
    numerical: np.ndarray,
    categorical: np.ndarray,
    neighbours: np.ndarray,
) -> np.ndarray:
    """``(N, n_fields)`` kNN score drop when each field's columns take the nearest neighbour's values."""
    base = detector.scorer_.score(detector.embed_arrays(numerical, categorical))
    nearest = neighbours[:, 0]
    drops = np.zeros((len(numerical), len(explainer.fields)))
    for f, explained in enumerate(explainer.fields):
        occluded_num, occluded_cat = numerical.copy(), categorical.copy()
        occluded_num[:, explained.numerical] = explainer.numerical_[nearest][:, explained.numerical]
        occluded_cat[:, explained.categorical] = explainer.categorical_[nearest][:, explained.categorical]
        drops[:, f] = base - detector.scorer_.score(detector.embed_arrays(occluded_num, occluded_cat))
    return drops


def mfp_surprisal(
    detector: OCSFAnomalyDetector,
    explainer: NeighbourExplainer,
    baseline: Any,
    numerical: np.ndarray,
    categorical: np.ndarray,
) -> np.ndarray:
    """``(N, n_fields)`` MFP surprisal per field, from an MFP model trained on the baseline like
    the detector (its epochs and seed)."""
    from tabresnet_course.detection.surprisal import MFPSurprisalScorer
    from tabresnet_course.study.run import train_mfp_model

    train_numerical, train_categorical = detector.preprocess(baseline)
    model = train_mfp_model(detector, train_numerical, train_categorical)
    scorer = MFPSurprisalScorer(model).fit((explainer.numerical_, explainer.categorical_))
    return scorer.field_surprisal(numerical, categorical) @ explainer.membership_


def hit_rates(
    contributions: np.ndarray, fields: list[str], scenarios: np.ndarray, changed: dict[str, set[str]]
) -> dict[str, float]:
    """Share of each scenario's events with a changed field among their top 3 contributions."""
    top = np.argsort(-contributions, axis=1, kind="stable")[:, :3]
    named = [{fields[f] for f in row} for row in top]
    return {s: float(np.mean([bool(changed[s] & named[i]) for i in np.flatnonzero(scenarios == s)])) for s in changed}


def run_seed(seed: int, num_baseline: int, num_evaluation: int, epochs: int, repeats: int) -> dict[str, Any]:
    """Hit rates of every candidate and the score / explain timings for one seed."""
    baseline, evaluation = generate_baseline_and_evaluation(
        num_baseline=num_baseline, num_evaluation=num_evaluation, seed=seed
    )
    detector = train_ocsf_anomaly_detector(
        baseline, scorer="knn", num_epochs=epochs, seed=seed, device="cpu", progress=False
    )
    detector.explain(evaluation.frame.iloc[:1])  # builds the explainer (embeds the reference sample once)
    explainer = detector.explainer_
    rows = np.flatnonzero(evaluation.labels["scenario"].isin(list(CHANGED_FIELDS)).to_numpy())
    scenarios = evaluation.labels["scenario"].to_numpy()[rows]
    numerical, categorical = explainer.preprocess(evaluation.frame.iloc[rows])
    neighbours = explainer.neighbours(numerical, categorical)
    mismatch = (categorical[:, None, :] != explainer.categorical_[neighbours]).mean(axis=1)
    distance = np.abs(numerical[:, None, :] - explainer.numerical_[neighbours]).mean(axis=1)
    candidates = {
        "neighbour_rarity": explainer.contributions(numerical, categorical, neighbours),
        "neighbour_mismatch": np.hstack([distance, mismatch]) @ explainer.membership_,
        "occlusion": occlusion(detector, explainer, numerical, categorical, neighbours),
        "mfp_surprisal": mfp_surprisal(detector, explainer, baseline, numerical, categorical),
    }
    names = [f.name for f in explainer.fields]
    rates = {name: hit_rates(c, names, scenarios, CHANGED_FIELDS) for name, c in candidates.items()}
    strict = {**CHANGED_FIELDS, "off_hours_new_country": STRICT_OFF_HOURS}
    rates["neighbour_rarity (off-hours without the address)"] = hit_rates(
        candidates["neighbour_rarity"], names, scenarios, strict
    )
    timings = time_interleaved(
        {"score": lambda: detector.score(evaluation), "explain": lambda: detector.explain(evaluation, top=3)},
        torch.device("cpu"),
        repeats=repeats,
        warmup=1,
    )
    return {
        "seed": seed,
        "hit_rates": rates,
        "events": len(evaluation),
        "reference_rows": len(baseline),
        "explain_reference_rows": len(explainer.numerical_),
        "score_seconds": timings["score"],
        "explain_seconds": timings["explain"],
        "explain_over_score": timings["explain"]["median"] / timings["score"]["median"],
    }


def main(argv: list[str] | None = None) -> None:
    """Run every seed, print the Markdown tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--baseline", type=int, default=3000, help="baseline events (default 3000)")
    parser.add_argument("--evaluation", type=int, default=10_000, help="evaluation events (default 10000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed, one repeat (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_explain.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds, repeats = ([args.seeds[0]], 1) if args.quick else (args.seeds, args.repeats)
    started = time.perf_counter()
    results = [run_seed(s, args.baseline, args.evaluation, args.epochs, repeats) for s in seeds]
    table = pd.DataFrame(
        [{"seed": r["seed"], "method": m, **rates} for r in results for m, rates in r["hit_rates"].items()]
    )
    print(f"Hit rate: share of attack events with a changed field among the top 3 ({len(seeds)} seed(s))\n")
    print(table.groupby("method", sort=False)[list(CHANGED_FIELDS)].mean().round(3).to_markdown())
    print("\n| seed | events | reference | score s | explain s | explain / score |\n|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['seed']} | {r['events']} | {r['reference_rows']} | {r['score_seconds']['median']:.2f} | "
            f"{r['explain_seconds']['median']:.2f} | {r['explain_over_score']:.2f} |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s in all; JSON: {args.out}")
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
