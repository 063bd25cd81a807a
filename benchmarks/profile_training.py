"""Where a training step's time goes: the profile behind the training-throughput figures.

Usage::

    python benchmarks/profile_training.py [--objective contrastive|mfp] [--steps 8] [--threads N]

Runs one untimed epoch of the seed's configuration (see :mod:`benchmarks.bench_training`), then
``--steps`` steps of the naive reference, the package in float32 and (where bfloat16 is native)
the package in bfloat16 under :mod:`torch.profiler`, and prints per step: wall time, matrix
products, dropout's random numbers, the optimiser, and everything else. The groups are taken
from the CPU self-time of the profiled operators, so they add up to the profiled time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/profile_training.py` from the repository root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

import tabresnet_course.model as model_module  # noqa: E402
from benchmarks.bench_training import SEED_SETUP, NaiveRun, PackageRun, SeedCallRun, structured_data  # noqa: E402
from benchmarks.common import bf16_supported  # noqa: E402

GROUPS = ("matrix products", "dropout masks", "optimiser", "everything else")
DROPOUT_RANGE = "dropout mask"

MATRIX_PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear"}


def group_of(operator: str) -> str:
    """The group an ATen operator's self time belongs to."""
    name = operator.removeprefix("aten::")
    if name in MATRIX_PRODUCTS:
        return "matrix products"
    if "bernoulli" in name:  # nn.Dropout's mask (the naive loop's model)
        return "dropout masks"
    if "adam" in name or name.startswith("_foreach"):
        return "optimiser"
    return "everything else"


def limited_loader(loader: Any, steps: int) -> list[Any]:
    """The first ``steps`` batches of ``loader``, materialised."""
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == steps:
            break
    return batches


def profile_steps(run: Any, steps: int) -> dict[str, float]:
    """Milliseconds per step, in total and per group, over ``steps`` steps of one epoch."""
    run.loader = limited_loader(run.loader, steps)
    if isinstance(run, PackageRun):
        run.trainer.steps_per_epoch = steps
    run.run_epoch(0)  # warm-up on the same batches
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        started = time.perf_counter()
        run.run_epoch(1)
        wall = time.perf_counter() - started
    per_step = {"wall": 1e3 * wall / steps, **{group: 0.0 for group in GROUPS}}
    for event in profiler.key_averages():
        if event.key == DROPOUT_RANGE:  # FastDropout's mask: the whole range, taken out of its operators
            per_step["dropout masks"] += event.cpu_time_total / 1e3 / steps
            per_step["everything else"] -= (event.cpu_time_total - event.self_cpu_time_total) / 1e3 / steps
        else:
            per_step[group_of(event.key)] += event.self_cpu_time_total / 1e3 / steps
    return per_step


def labelled_dropout_masks() -> None:
    """Make FastDropout's mask a named range in the profile (this script only)."""
    unlabelled = model_module.dropout_scale

    def dropout_scale(*args: Any) -> torch.Tensor:
        with record_function(DROPOUT_RANGE):
            return unlabelled(*args)

    model_module.dropout_scale = dropout_scale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objective", choices=("contrastive", "mfp"), default="contrastive")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) first")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    setup = {**SEED_SETUP, "num_rows": SEED_SETUP["batch_size"] * args.steps}
    data = structured_data(setup["num_rows"], setup["num_numerical"], setup["cardinalities"])
    runs = {
        "naive fp32": NaiveRun(setup, args.objective, data, device),
        "package fp32": PackageRun(setup, args.objective, data, device, "fp32"),
    }
    if bf16_supported(device):
        runs["package bf16"] = PackageRun(setup, args.objective, data, device, "bf16")
    runs["seed call"] = SeedCallRun(setup, args.objective, data, device)
    labelled_dropout_masks()
    columns = ["wall", *GROUPS]
    print(f"{args.objective}, {torch.get_num_threads()} thread(s), ms per step (share of the profiled time)")
    print("| step | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, run in runs.items():
        per_step = profile_steps(run, args.steps)
        profiled = sum(per_step[c] for c in columns[1:])
        cells = [f"{per_step['wall']:.0f} ms"] + [
            f"{per_step[c]:.0f} ms ({100 * per_step[c] / profiled:.0f}%)" for c in columns[1:]
        ]
        print(f"| {args.objective}, {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
