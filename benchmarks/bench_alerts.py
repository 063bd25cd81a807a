"""Alerts: does a calibrated threshold give the false-alarm rate asked for, and what does it catch?

``python benchmarks/bench_alerts.py [--seeds 0 1 ... 9] [--quick]`` trains, per data seed, the
default detector (its default scorer and refinement) on a clean baseline (``--baseline`` events over 7 days) and
calibrates it as ``train`` does (:mod:`tabresnet_course.detection.calibration`). Then, at alert
rates 0.001 and 0.01 (and at 5 alerts per day):

- **realised false-alarm rate** on a fresh *clean* period (``--clean`` events over as many days as
  keep the baseline's events per day, after the evaluation period, its own seed): the share of
  its events above the threshold, as a ratio to the rate asked for (the target: within
  [0.5x, 2x] in every seed), and the alerts per day;
- **recall per attack type** on the usual evaluation period (3 days, attacks injected): the share
  of each scenario's events above the threshold;
- **a contaminated baseline**: the same clean baseline plus attack events making up
  ``--attack-share`` of it (``contaminated_split(mode="spread")``), trained and calibrated the
  same way: how far the threshold moves, and the realised false-alarm rate and recall then.

Results go to stdout as Markdown and to ``--out`` as JSON (the machine described).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_alerts.py` from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_description
from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.ocsf.contamination import contaminated_split
from tabresnet_course.ocsf.generator import DEFAULT_START, generate_ocsf_events

RATES = (0.001, 0.01)
ALERTS_PER_DAY = 5.0
BASELINE_DAYS = 7
CLEAN_SEED_OFFSET = 20_000
"""The clean period's event seed is ``seed + CLEAN_SEED_OFFSET`` (apart from the baseline's,
the evaluation's ``seed + 1`` and the contamination pool's ``seed + 10_000``)."""


def measure(detector: OCSFAnomalyDetector, clean: Any, clean_days: float, evaluation: Any) -> dict[str, Any]:
    """Per threshold: the threshold, the realised false-alarm rate and alerts per day on the clean
    period, and the recall of each attack type on the evaluation period."""
    clean_scores = detector.score(clean.frame)
    scores = detector.score(evaluation.frame)
    scenarios = evaluation.labels["scenario"].to_numpy()
    asked = {f"rate {rate:g}": {"alert_rate": rate} for rate in RATES}
    asked[f"{ALERTS_PER_DAY:g}/day"] = {"alerts_per_day": ALERTS_PER_DAY}
    results = {}
    for name, options in asked.items():
        threshold = detector.alert_threshold(**options)
        alerts = scores > threshold.score
        realised = float(np.mean(clean_scores > threshold.score))
        results[name] = {
            "threshold": threshold.score,
            "alert_rate": threshold.alert_rate,
            "held_out_above": threshold.held_out_above,
            "realised_rate": realised,
            "ratio": realised / threshold.alert_rate,
            "alerts_per_day_asked": threshold.alert_rate * threshold.events_per_day,
            "alerts_per_day_realised": float(np.sum(clean_scores > threshold.score)) / clean_days,
            "normal_rate_in_evaluation": float(np.mean(alerts[scenarios == "normal"])),
            "recall": {s: float(np.mean(alerts[scenarios == s])) for s in sorted(set(scenarios) - {"normal"})},
        }
    return results


def run_seed(seed: int, num_baseline: int, num_clean: int, attack_share: float, epochs: int) -> dict[str, Any]:
    """Clean and contaminated detectors of one data seed, measured on the same periods."""
    split = contaminated_split(
        num_baseline=num_baseline,
        num_evaluation=10_000,
        attack_share=attack_share,
        mode="spread",
        seed=seed,
        baseline_days=BASELINE_DAYS,
    )
    baseline = generate_ocsf_events(num_baseline, BASELINE_DAYS, seed, anomalies=False)  # the split's clean part
    clean_days = num_clean * BASELINE_DAYS / num_baseline  # the baseline's events per day
    clean = generate_ocsf_events(
        num_clean,
        max(1, round(clean_days)),
        seed + CLEAN_SEED_OFFSET,
        anomalies=False,
        start=DEFAULT_START + dt.timedelta(days=BASELINE_DAYS + 3),
    )
    options = {"num_epochs": epochs, "seed": seed, "device": "cpu", "progress": False}
    result: dict[str, Any] = {"seed": seed, "baseline": len(baseline), "clean_events": len(clean)}
    for name, frame in (("clean", baseline.frame), ("contaminated", split.baseline.frame)):
        started = time.perf_counter()
        detector = train_ocsf_anomaly_detector(frame, **options)
        result[f"{name}_train_seconds"] = time.perf_counter() - started
        result[name] = measure(detector, clean, max(1, round(clean_days)), split.evaluation)
    result["attack_events_in_contaminated_baseline"] = int(split.baseline.labels["is_anomaly"].sum())
    return result


def spread_table(results: list[dict[str, Any]], which: str) -> pd.DataFrame:
    """Per threshold: the realised / asked ratio over seeds (min, median, max) and how many seeds
    lie within [0.5x, 2x]."""
    rows = []
    for name in results[0][which]:
        ratios = np.array([r[which][name]["ratio"] for r in results])
        per_day = np.array([r[which][name]["alerts_per_day_realised"] for r in results])
        asked = np.array([r[which][name]["alerts_per_day_asked"] for r in results])
        rows.append(
            {
                "asked": name,
                "min ratio": ratios.min(),
                "median ratio": np.median(ratios),
                "max ratio": ratios.max(),
                "seeds in [0.5x, 2x]": f"{int(np.sum((ratios >= 0.5) & (ratios <= 2)))}/{len(ratios)}",
                "false alarms/day asked": np.median(asked),
                "realised (median)": np.median(per_day),
            }
        )
    return pd.DataFrame(rows)


def recall_table(results: list[dict[str, Any]], name: str) -> pd.DataFrame:
    """Median recall per attack type over seeds, clean against contaminated baseline."""
    scenarios = list(results[0]["clean"][name]["recall"])
    return pd.DataFrame(
        {
            which: [np.median([r[which][name]["recall"][s] for r in results]) for s in scenarios]
            for which in ("clean", "contaminated")
        },
        index=scenarios,
    )


def main(argv: list[str] | None = None) -> None:
    """Run every seed, print the Markdown tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--baseline", type=int, default=4000, help="baseline events over 7 days (default 4000)")
    parser.add_argument("--clean", type=int, default=20_000, help="clean-period events (default 20000)")
    parser.add_argument("--attack-share", type=float, default=0.02, help="contaminated baseline (default 0.02)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one seed, small periods (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_alerts.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds, num_clean = ([args.seeds[0]], 4000) if args.quick else (args.seeds, args.clean)
    started = time.perf_counter()
    results = [run_seed(s, args.baseline, num_clean, args.attack_share, args.epochs) for s in seeds]
    print(f"Realised false-alarm rate / rate asked, clean baseline ({len(seeds)} seeds)\n")
    print(spread_table(results, "clean").to_markdown(index=False, floatfmt=".3g"))
    print(f"\nThe same, baseline with {args.attack_share:g} attack events\n")
    print(spread_table(results, "contaminated").to_markdown(index=False, floatfmt=".3g"))
    shift = [r["contaminated"][n]["threshold"] - r["clean"][n]["threshold"] for r in results for n in r["clean"]]
    print(f"\nThreshold shift, contaminated - clean: median {np.median(shift):.3g}, max {np.max(shift):.3g}")
    for name in results[0]["clean"]:
        print(f"\nMedian recall per attack type at {name}\n")
        print(recall_table(results, name).to_markdown(floatfmt=".3f"))
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s in all; JSON: {args.out}")
    machine = machine_description(torch.device("cpu"))
    args.out.write_text(json.dumps({"machine": machine, "seconds": elapsed, "seeds": results}, indent=2))


if __name__ == "__main__":
    main()
