"""Hardware limit: achieved GFLOP/s of a training step against the matmul peak of the machine.

The useful work of a TabularResNet step is its matrix products. One row through every
``nn.Linear`` costs ``2 * sum(in * out)`` FLOPs forward and about twice that backward (the
gradients with respect to the inputs and to the weights), so a step of ``R`` rows costs
``3 * R * 2 * sum(in * out)``, with ``R = 2B`` for the contrastive objective (two views) and
``R = B`` for MFP. Embedding look-ups, normalisation, activations, the loss and the optimiser
are not counted: they are the overhead the achieved figure pays for.

The peak is measured in the same run: ``torch.matmul`` on exactly the step's shapes (for every
linear layer, the forward product and the two backward products), and one large square product
(the best case of the BLAS library). Both in float32 and, where the hardware runs it natively,
bfloat16. The step times come from the package's trainer (``Trainer.train_epoch`` over a short
loader), interleaved with the peak measurements.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmarks.bench_training import QUICK_SETUP, SEED_SETUP, linear_flops_per_row, new_model, structured_data
from benchmarks.common import Settings, bf16_supported, time_call, time_interleaved
from tabresnet_course.data import TensorBatchLoader
from tabresnet_course.training import Trainer, TrainingConfig


def step_gemms(model: torch.nn.Module, rows: int) -> list[tuple[int, int, int]]:
    """``(m, k, n)`` of every matrix product of one training step over ``rows`` rows: per
    linear layer ``(in -> out)``, forward ``(rows, in) @ (in, out)``, input gradient
    ``(rows, out) @ (out, in)`` and weight gradient ``(out, rows) @ (rows, in)``."""
    shapes = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            i, o = module.in_features, module.out_features
            shapes += [(rows, i, o), (rows, o, i), (o, rows, i)]
    return shapes


def gemm_timer(shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device):
    """A function that runs ``torch.matmul`` once for every shape (operands made up front)."""
    operands = [
        (torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)) for m, k, n in shapes
    ]

    def run() -> None:
        for a, b in operands:
            torch.matmul(a, b)

    return run


def square_peak(size: int, dtype: torch.dtype, device: torch.device, settings: Settings) -> float:
    """GFLOP/s of one ``size``-square ``torch.matmul`` (median of the repeats)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    stats = time_call(lambda: torch.matmul(a, b), device, max(3, settings.repeats), max(1, settings.warmup))
    return 2 * size**3 / stats["median"] / 1e9


class ShortEpochs:
    """Calling it runs one short epoch (``batches`` steps) of the package's trainer."""

    def __init__(
        self, setup: dict[str, Any], objective: str, precision: str, device: torch.device, batches: int
    ) -> None:
        rows = batches * setup["batch_size"]
        numerical, categorical = structured_data(rows, setup["num_numerical"], setup["cardinalities"])
        config = TrainingConfig(
            objective=objective,
            augmentation="noise_swap",
            temperature=setup["temperature"],
            mask_prob=setup["mask_prob"],
            num_epochs=1,
            learning_rate=setup["learning_rate"],
            weight_decay=setup["weight_decay"],
            schedule="constant",
            grad_clip_norm=None,
            patience=None,
            precision=precision,
            progress=False,
            device=str(device),
            seed=0,
        )
        self.trainer = Trainer(new_model(setup, objective), setup["cardinalities"], config)
        self.loader = self.trainer.prepare_loader(
            TensorBatchLoader(numerical, categorical, batch_size=setup["batch_size"], seed=0, device=device)
        )
        # What Trainer.fit does before its first epoch (no scheduler with schedule="constant").
        self.trainer.steps_per_epoch = math.ceil(len(self.loader) / config.accumulation_steps)
        self.epoch = 0

    def __call__(self) -> float:
        self.epoch += 1
        return self.trainer.train_epoch(self.loader, self.epoch)


def run(settings: Settings) -> dict[str, Any]:
    """The ``hardware`` section of the results."""
    setup = QUICK_SETUP if settings.quick else SEED_SETUP
    device = settings.device
    batches = 2 if settings.quick else 8
    square = 256 if settings.quick else (8192 if device.type == "cuda" else 2048)
    precisions = [("fp32", torch.float32)]
    if bf16_supported(device):
        precisions.append(("bf16", torch.bfloat16))
    result: dict[str, Any] = {"batches_per_timing": batches, "square_size": square, "objectives": {}}
    for objective in ("contrastive", "mfp"):
        model = new_model(setup, objective)
        rows = setup["batch_size"] * (2 if objective == "contrastive" else 1)
        shapes = step_gemms(model, rows)
        flops_per_step = 3 * rows * linear_flops_per_row(model)
        assert flops_per_step == sum(2 * m * k * n for m, k, n in shapes)
        timers = {}
        for name, dtype in precisions:
            timers[f"step {name}"] = ShortEpochs(setup, objective, name, device, batches)
            timers[f"matmul {name}"] = gemm_timer(shapes, dtype, device)
        stats = time_interleaved(timers, device, settings.repeats, settings.warmup)
        entry: dict[str, Any] = {"flops_per_step": flops_per_step, "gemm_shapes": shapes, "precisions": {}}
        for name, _ in precisions:
            step_seconds = stats[f"step {name}"]["median"] / batches
            matmul_seconds = stats[f"matmul {name}"]["median"]
            achieved = flops_per_step / step_seconds / 1e9
            peak = flops_per_step / matmul_seconds / 1e9
            entry["precisions"][name] = {
                "step_seconds": step_seconds,
                "step_timing": stats[f"step {name}"],
                "achieved_gflops": achieved,
                "matmul_same_shapes_gflops": peak,
                "matmul_timing": stats[f"matmul {name}"],
                "fraction_of_same_shape_peak": achieved / peak,
            }
        result["objectives"][objective] = entry
    for name, dtype in precisions:
        result[f"square_matmul_gflops_{name}"] = square_peak(square, dtype, device, settings)
    if device.type == "cpu":
        result["thread_scaling"] = thread_scaling(setup, precisions[-1][0], batches, settings)
    return result


def thread_scaling(setup: dict[str, Any], precision: str, batches: int, settings: Settings) -> dict[str, Any]:
    """Contrastive step time with one thread and with PyTorch's default (one per core), side by side."""
    default = torch.get_num_threads()
    epochs = ShortEpochs(setup, "contrastive", precision, torch.device("cpu"), batches)

    def with_threads(count: int):
        def run() -> None:
            torch.set_num_threads(count)
            try:
                epochs()
            finally:
                torch.set_num_threads(default)

        return run

    cpu = torch.device("cpu")
    stats = time_interleaved(
        {"1": with_threads(1), str(default): with_threads(default)}, cpu, settings.repeats, settings.warmup
    )
    return {
        "precision": precision,
        "default_threads": default,
        "step_seconds": {threads: s["median"] / batches for threads, s in stats.items()},
        "timings": stats,
        "speedup_default_vs_1": stats["1"]["median"] / stats[str(default)]["median"],
    }
