"""Training throughput: the package's trainer against the seed's literal training loop.

One contrastive epoch and one MFP epoch of the seed's default configuration (50 numerical and
4 categorical features with cardinalities 100, 50, 200, 1000; ``d_model=256``, 6 blocks,
batch 256; 10,000 rows as in the seed's example), trained with the same optimiser (AdamW, lr
1e-3, weight decay 1e-4, constant rate, no clipping: the seed's loop), the same temperature
(0.07), the same augmentation (noise 0.1, swap 0.2) and the same mask rate (0.15), on the same
seeded structured data, by:

- ``naive``: :mod:`benchmarks.naive_reference` (two forward passes, Python loops, per-row
  ``Dataset`` + ``DataLoader``, float32 eager);
- ``package fp32``: :class:`tabresnet_course.training.Trainer` with a
  :class:`tabresnet_course.data.TensorBatchLoader` (one forward pass of both views, vectorised
  augmentation and MFP loss, batches sliced from pre-built tensors);
- ``package bf16``: the same with ``precision="bf16"`` (bfloat16 autocast), where the hardware
  runs bfloat16 natively.

The variants train side by side: every epoch runs each variant once, in an order that rotates
from epoch to epoch. The first epoch is warm-up; the throughput is the number of rows divided
by the median epoch time of the others. The per-epoch training losses give the loss check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.common import Settings, bf16_supported, summarize, synchronize
from benchmarks.naive_reference import SeedAugmentation, naive_epoch, seed_dataloader
from tabresnet_course.data import OCSFDataset, TensorBatchLoader
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet
from tabresnet_course.training import Trainer, TrainingConfig, train_self_supervised

SEED_SETUP = {
    "num_numerical": 50,
    "cardinalities": [100, 50, 200, 1000],
    "d_model": 256,
    "num_blocks": 6,
    "dropout": 0.1,
    "batch_size": 256,
    "num_rows": 10_000,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "temperature": 0.07,
    "mask_prob": 0.15,
    "epochs": 6,
}
QUICK_SETUP = {
    **SEED_SETUP,
    "num_numerical": 8,
    "cardinalities": [5, 7, 11, 13],
    "d_model": 32,
    "num_blocks": 2,
    "batch_size": 64,
    "num_rows": 512,
    "epochs": 2,
}

# Loss checks (see benchmarks/README.md, "How to read the table").
FINAL_LOSS_EPOCHS = 2  # "final loss" = mean training loss of the last two epochs
NAIVE_RTOL = 0.05  # naive vs package: different random streams (seed-to-seed spread 1-2%)
BF16_RTOL = 0.02  # bf16 vs fp32 package: the same random streams, every epoch


def structured_data(
    rows: int, num_numerical: int, cardinalities: list[int], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded rows from 16 hidden groups, with structure to learn in every column.

    Numerical columns are the group's centre plus unit noise; categorical column ``j`` takes a
    value tied to the group with probability 0.7 and a uniform one otherwise. Returns float32
    ``(rows, num_numerical)`` and int64 ``(rows, n_cat)`` indices in the reserved-index scheme.
    """
    rng = np.random.default_rng(seed)
    groups = 16
    group = rng.integers(0, groups, rows)
    centres = rng.normal(0.0, 1.0, (groups, num_numerical))
    numerical = centres[group] + rng.normal(0.0, 1.0, (rows, num_numerical))
    columns = []
    for j, cardinality in enumerate(cardinalities):
        tied = (group * (2 * j + 3) + j) % cardinality
        uniform = rng.integers(0, cardinality, rows)
        columns.append(np.where(rng.random(rows) < 0.7, tied, uniform))
    categorical = np.stack(columns, axis=1) + NUM_RESERVED_INDICES
    return numerical.astype(np.float32), categorical.astype(np.int64)


def new_model(setup: dict[str, Any], objective: str, seed: int = 0) -> torch.nn.Module:
    """The seed's model (wrapped with MFP heads for ``objective="mfp"``), from a fixed seed."""
    torch.manual_seed(seed)
    model = TabularResNet(
        setup["num_numerical"], setup["cardinalities"], setup["d_model"], setup["num_blocks"], setup["dropout"]
    )
    if objective == "mfp":
        model = TabularResNetWithMFP(model, setup["cardinalities"], setup["num_numerical"])
    return model


def linear_flops_per_row(model: torch.nn.Module) -> int:
    """Multiply-add FLOPs (2 per MAC) of one row through every ``nn.Linear`` of ``model``."""
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


class NaiveRun:
    """The seed's loop, one epoch at a time, with its own global-RNG stream."""

    def __init__(
        self, setup: dict[str, Any], objective: str, data: tuple[np.ndarray, np.ndarray], device: torch.device
    ) -> None:
        self.setup, self.objective, self.device = setup, objective, device
        self.model = new_model(setup, objective).to(device)
        self.model.train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=setup["learning_rate"], weight_decay=setup["weight_decay"]
        )
        self.loader = seed_dataloader(*data, batch_size=setup["batch_size"], seed=0)
        self.augmenter = SeedAugmentation(noise_level=0.1, dropout_prob=0.2)
        outside = self.capture_rng()
        torch.manual_seed(1)  # the naive run's own random stream starts here
        self.rng = self.capture_rng()
        self.restore_rng(outside)  # leave the global stream as it was

    def capture_rng(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def restore_rng(self, state: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> None:
        cpu, cuda = state if state is not None else self.rng
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)

    def run_epoch(self, epoch: int) -> float:
        self.restore_rng()  # the package reseeds the global RNG; keep the two streams apart
        setup = self.setup
        loss = naive_epoch(
            self.model,
            self.loader,
            self.optimizer,
            setup["cardinalities"],
            self.augmenter,
            self.objective,
            setup["temperature"],
            setup["mask_prob"],
            self.device,
        )
        self.rng = self.capture_rng()
        return loss


class PackageRun:
    """The package's public trainer, one epoch at a time (``Trainer.train_epoch``)."""

    def __init__(
        self,
        setup: dict[str, Any],
        objective: str,
        data: tuple[np.ndarray, np.ndarray],
        device: torch.device,
        precision: str,
    ) -> None:
        config = TrainingConfig(
            objective=objective,
            augmentation="noise_swap",
            temperature=setup["temperature"],
            mask_prob=setup["mask_prob"],
            num_epochs=setup["epochs"],
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
        loader = TensorBatchLoader(*data, batch_size=setup["batch_size"], seed=0, device=device)
        # What Trainer.fit does before its first epoch (no scheduler with schedule="constant").
        self.loader = self.trainer.prepare_loader(loader)
        self.trainer.steps_per_epoch = math.ceil(len(self.loader) / config.accumulation_steps)

    def run_epoch(self, epoch: int) -> float:
        return self.trainer.train_epoch(self.loader, epoch)


class SeedCallRun:
    """The call a reader copies from the seed: ``train_self_supervised(model, DataLoader(
    OCSFDataset(...), batch_size, shuffle=True), optimizer, cardinalities, ...)``, one epoch per
    call, with the seed's optimiser and the same augmentation, temperature and mask rate as the
    naive loop. Precision is left at the package default (``"auto"``)."""

    def __init__(
        self, setup: dict[str, Any], objective: str, data: tuple[np.ndarray, np.ndarray], device: torch.device
    ) -> None:
        self.setup, self.objective, self.device = setup, objective, device
        self.model = new_model(setup, objective)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=setup["learning_rate"], weight_decay=setup["weight_decay"]
        )
        self.loader = DataLoader(OCSFDataset(*data), batch_size=setup["batch_size"], shuffle=True)

    def run_epoch(self, epoch: int) -> float:
        setup = self.setup
        (loss,) = train_self_supervised(
            self.model,
            self.loader,
            self.optimizer,
            setup["cardinalities"],
            num_epochs=1,
            device=str(self.device),
            objective=self.objective,
            augmentation="noise_swap",
            temperature=setup["temperature"],
            mask_prob=setup["mask_prob"],
            grad_clip_norm=None,
            seed=epoch,
            progress=False,
        )
        return loss


@dataclass
class Variant:
    name: str
    run: Any
    losses: list[float]
    seconds: list[float]


def train_side_by_side(setup: dict[str, Any], objective: str, settings: Settings) -> dict[str, Any]:
    """Train every variant of one objective for ``setup["epochs"]`` epochs, interleaved."""
    device = settings.device
    data = structured_data(setup["num_rows"], setup["num_numerical"], setup["cardinalities"])
    variants = [
        Variant("naive", NaiveRun(setup, objective, data, device), [], []),
        Variant("package fp32", PackageRun(setup, objective, data, device, "fp32"), [], []),
    ]
    if bf16_supported(device):
        variants.append(Variant("package bf16", PackageRun(setup, objective, data, device, "bf16"), [], []))
    variants.append(Variant("seed call", SeedCallRun(setup, objective, data, device), [], []))
    for epoch in range(setup["epochs"]):
        shift = epoch % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            synchronize(device)
            started = time.perf_counter()
            loss = variant.run.run_epoch(epoch)
            synchronize(device)
            variant.seconds.append(time.perf_counter() - started)
            variant.losses.append(float(loss))

    warmup = min(settings.warmup, setup["epochs"] - 1)
    rows = setup["num_rows"]
    naive_timed = variants[0].seconds[warmup:]
    model = new_model(setup, objective)
    views = 2 if objective == "contrastive" else 1
    flops_per_epoch = 3 * views * linear_flops_per_row(model) * rows  # forward + backward ~ 3x forward
    result: dict[str, Any] = {"variants": {}}
    for variant in variants:
        timed = variant.seconds[warmup:]
        stats = summarize(timed)
        final = float(np.mean(variant.losses[-FINAL_LOSS_EPOCHS:]))
        result["variants"][variant.name] = {
            "epoch_seconds": stats,
            "samples_per_second": rows / stats["median"],
            "samples_per_second_min": rows / stats["max"],
            "samples_per_second_max": rows / stats["min"],
            "speedup_vs_naive": statistics_ratio(naive_timed, timed),
            "paired_speedup_vs_naive": float(np.median(np.array(naive_timed) / np.array(timed))),
            "achieved_gflops": flops_per_epoch / stats["median"] / 1e9,
            "losses": variant.losses,
            "final_loss": final,
        }
    naive_final = result["variants"]["naive"]["final_loss"]
    for entry in result["variants"].values():
        entry["final_loss_rel_diff_vs_naive"] = abs(entry["final_loss"] - naive_final) / abs(naive_final)
    if "package bf16" in result["variants"]:
        fp32 = np.array(result["variants"]["package fp32"]["losses"])
        bf16 = np.array(result["variants"]["package bf16"]["losses"])
        result["bf16_vs_fp32_max_rel_diff"] = float(np.max(np.abs(bf16 - fp32) / np.abs(fp32)))
    package = {name: v for name, v in result["variants"].items() if name != "naive"}
    within = {name: v for name, v in package.items() if v["final_loss_rel_diff_vs_naive"] <= NAIVE_RTOL} or package
    result["best_package_variant"] = max(within, key=lambda name: within[name]["speedup_vs_naive"])
    result["flops_per_epoch"] = flops_per_epoch
    return result


def statistics_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Ratio of the medians."""
    return float(np.median(numerator) / np.median(denominator))


def run(settings: Settings) -> dict[str, Any]:
    """Both objectives; returns the ``training`` section of the results."""
    setup = QUICK_SETUP if settings.quick else SEED_SETUP
    return {
        "setup": setup,
        "tolerances": {
            "final_loss_epochs": FINAL_LOSS_EPOCHS,
            "naive_vs_package_rtol": NAIVE_RTOL,
            "bf16_vs_fp32_rtol": BF16_RTOL,
        },
        "contrastive": train_side_by_side(setup, "contrastive", settings),
        "mfp": train_side_by_side(setup, "mfp", settings),
    }
