"""The self-supervised training loop: objective, optimiser, schedule, validation, checkpoints.

One :class:`Trainer` runs the whole loop and reads top to bottom: build the objective
(contrastive, masked feature prediction, or both), AdamW (Loshchilov and Hutter, 2019) with a
linear warm-up and cosine decay (Loshchilov and Hutter, 2017), gradient clipping, optional mixed
precision, a validation loss every epoch, :class:`EarlyStopping`, atomic checkpoints that
resume bit for bit on CPU (what they hold: :mod:`tabresnet_course.checkpoints`), and
DistributedDataParallel when started by ``torchrun``.
:func:`train_self_supervised` keeps the seed chapter's call working on top of it.

Determinism: every random draw of training step ``s`` of epoch ``e`` comes from seeds derived
from ``(seed, e, s)``: the batch order (:class:`~tabresnet_course.data.TensorBatchLoader`), the
augmentation or masking generator, and dropout. Nothing carries over from one epoch to the next
except the model, optimiser, scheduler and early-stopping state, all of which a checkpoint
holds, so a run resumed after epoch ``k`` continues exactly as if it had never stopped.

Chapters "The complete training loop" and "Training best practices" teach this file.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import TqdmWarning

with warnings.catch_warnings():  # in a notebook without ipywidgets, tqdm.auto falls back to text bars
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from tabresnet_course.artifacts import atomic_save_torch, load_checkpoint, with_format_version
from tabresnet_course.augment import MarginalResampling, TabularAugmentation
from tabresnet_course.checkpoints import CHECKPOINT_KIND, model_description
from tabresnet_course.contrastive import contrastive_loss
from tabresnet_course.data import IndexedDataLoader, TensorBatchLoader, derive_seed
from tabresnet_course.errors import InputError
from tabresnet_course.mfp import TabularResNetWithMFP, masked_feature_prediction_loss
from tabresnet_course.runtime import (
    all_reduce_mean,
    autocast,
    distributed_rank,
    distributed_world_size,
    init_distributed,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "EarlyStopping",
    "SelfSupervisedObjective",
    "Trainer",
    "TrainingConfig",
    "TrainingHistory",
    "held_out_loss",
    "make_lr_scheduler",
    "train_self_supervised",
]

VALIDATION_STREAM = 2**31 - 1  # seed key of the validation generators (training uses epochs)
LOADER_STREAM = 2**31 - 2  # seed key of the global RNG that a torch DataLoader shuffles with


class EarlyStopping:
    """Stop when the monitored loss has not improved by more than ``min_delta`` for ``patience``
    consecutive calls (the seed chapter's API).

    ``early_stopping(val_loss)`` returns ``True`` when training should stop. The first call sets
    ``best_loss``; later calls either improve it (``val_loss < best_loss - min_delta``: new best,
    ``counter`` back to 0) or count one more epoch without improvement. A NaN loss never
    improves. Taught in chapter "Training best practices".
    """

    def __init__(self, patience: int = 10, min_delta: float = 1e-4) -> None:
        if int(patience) < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.counter = 0
        self.best_loss: float | None = None
        self.early_stop = False

    def __call__(self, val_loss: float) -> bool:
        val_loss = float(val_loss)
        if self.best_loss is None and not math.isnan(val_loss):
            self.best_loss = val_loss
        elif self.best_loss is not None and val_loss < self.best_loss - self.min_delta:
            self.best_loss = val_loss
            self.counter = 0
        else:
            self.counter += 1
        self.early_stop = self.counter >= self.patience
        return self.early_stop

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state, stored in checkpoints."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "counter": self.counter,
            "best_loss": self.best_loss,
            "early_stop": self.early_stop,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.patience = int(state["patience"])
        self.min_delta = float(state["min_delta"])
        self.counter = int(state["counter"])
        self.best_loss = None if state["best_loss"] is None else float(state["best_loss"])
        self.early_stop = bool(state["early_stop"])


@dataclass
class TrainingConfig:
    """Every setting of a training run, as plain data (``to_dict``/``from_dict`` round-trip JSON).

    Objective: ``"contrastive"`` (SCARF-style NT-Xent), ``"mfp"`` (masked feature prediction,
    needs a :class:`~tabresnet_course.mfp.TabularResNetWithMFP`) or ``"both"``
    (``contrastive_weight * contrastive + mfp_weight * mfp``). Schedule: ``"warmup_cosine"``
    (linear warm-up from 1% of ``learning_rate`` over ``warmup_epochs``, then cosine decay to
    ``min_lr`` at the last step) or ``"constant"``. Precision: ``"auto"`` (the default:
    see :func:`resolve_precision`), ``"fp32"``, ``"bf16"`` (autocast to bfloat16, CPU or CUDA) or
    ``"amp"`` (float16 autocast with a gradient scaler, CUDA only).
    ``patience=None`` turns early stopping off; it only ever watches the validation loss.
    ``accumulation_steps`` batches are accumulated into one optimisation step.
    ``protected_numerical`` / ``protected_categorical`` are column indices the contrastive
    augmentation never changes (chapter "Contrastive learning": never corrupt an event's type or
    status; the detector resolves them from feature names). Taught in chapters "The complete
    training loop" and "Training best practices".
    """

    objective: str = "contrastive"
    contrastive_weight: float = 1.0
    mfp_weight: float = 1.0
    temperature: float = 1.0
    augmentation: str = "marginal"
    corruption_rate: float = 0.6
    protected_numerical: list[int] = field(default_factory=list)
    protected_categorical: list[int] = field(default_factory=list)
    mask_prob: float = 0.15
    num_epochs: int = 50
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5
    grad_clip_norm: float | None = 1.0
    accumulation_steps: int = 1
    precision: str = "auto"
    seed: int = 0
    patience: int | None = 10
    min_delta: float = 1e-4
    restore_best_weights: bool = True
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    overwrite_checkpoints: bool = False
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        choices = {
            "objective": ("contrastive", "mfp", "both"),
            "augmentation": ("marginal", "noise_swap"),
            "schedule": ("warmup_cosine", "constant"),
            "precision": ("auto", "fp32", "bf16", "amp"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        positive = ("temperature", "learning_rate", "num_epochs", "accumulation_steps", "checkpoint_every")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "warmup_epochs", "min_lr", "min_delta", "contrastive_weight", "mfp_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("corruption_rate", "mask_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.min_lr > self.learning_rate:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed learning_rate ({self.learning_rate})")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        for name in ("protected_numerical", "protected_categorical"):
            columns = getattr(self, name)
            if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in columns):
                raise ValueError(f"{name} must hold column indices >= 0, got {columns!r}")
            setattr(self, name, sorted(set(columns)))

    def to_dict(self) -> dict[str, Any]:
        """All settings as a plain dict (JSON-able, stored in every checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainingConfig fields: {unknown}")
        return cls(**values)


@dataclass
class TrainingHistory:
    """Per-epoch record of a run; ``to_dataframe()`` gives one row per epoch.

    ``val_loss`` is ``None`` for epochs without a validation set; ``learning_rate`` is the rate
    after the epoch's last optimisation step; ``epoch_time_s`` includes validation. Plotted in
    chapter "The complete training loop".
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    epoch_time_s: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False

    def append(self, epoch: int, train_loss: float, val_loss: float | None, lr: float, seconds: float) -> None:
        """Record one finished epoch."""
        self.epoch.append(epoch)
        self.train_loss.append(train_loss)
        self.val_loss.append(val_loss)
        self.learning_rate.append(lr)
        self.epoch_time_s.append(seconds)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per epoch, indexed by epoch; missing validation losses are NaN."""
        columns = ("epoch", "train_loss", "val_loss", "learning_rate", "epoch_time_s")
        frame = pd.DataFrame({name: getattr(self, name) for name in columns})
        frame["val_loss"] = frame["val_loss"].astype(float)
        return frame.set_index("epoch")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored in checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingHistory:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()})


class SelfSupervisedObjective(nn.Module):
    """The training loss as a module: ``objective(numerical, categorical, generator) -> loss``.

    Computing the whole loss inside one ``forward`` lets DistributedDataParallel wrap it (the
    contrastive loss embeds two views, MFP also calls ``mask_inputs``). For ``"contrastive"``
    only the encoder is held, so MFP heads that receive no gradient never confuse DDP.
    """

    def __init__(self, model: nn.Module, cardinalities: Sequence[int], config: TrainingConfig) -> None:
        super().__init__()
        if config.objective in ("mfp", "both") and not isinstance(model, TabularResNetWithMFP):
            raise ValueError(
                f"objective={config.objective!r} needs a TabularResNetWithMFP, got "
                f"{type(model).__name__}; wrap the encoder first: "
                f"TabularResNetWithMFP(model, cardinalities, num_numerical)"
            )
        expected = list(getattr(model, "categorical_cardinalities", cardinalities))
        if [int(c) for c in cardinalities] != expected:
            raise ValueError(f"cardinalities {list(cardinalities)} do not match the model's {expected}")
        outside = [c for c in config.protected_categorical if c >= len(expected)]
        if outside:
            raise ValueError(f"protected_categorical {outside} outside the {len(expected)} categorical columns")
        encoder = model.base_model if isinstance(model, TabularResNetWithMFP) else model
        self.model = model if config.objective != "contrastive" else encoder
        self.cardinalities = [int(c) for c in cardinalities]
        self.config = config

    def augmenter(self, generator: torch.Generator) -> MarginalResampling | TabularAugmentation:
        """The configured augmentation, leaving the protected columns as they are."""
        protected = {
            "protected_numerical": self.config.protected_numerical,
            "protected_categorical": self.config.protected_categorical,
        }
        if self.config.augmentation == "marginal":
            return MarginalResampling(corruption_rate=self.config.corruption_rate, generator=generator, **protected)
        return TabularAugmentation(generator=generator, **protected)

    def forward(
        self, numerical: torch.Tensor, categorical: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:  # numerical (B, n_num), categorical (B, n_cat) -> scalar loss
        config, loss = self.config, torch.zeros((), device=numerical.device)
        if config.objective in ("contrastive", "both"):
            augmenter = self.augmenter(generator)
            model = self.model.base_model if isinstance(self.model, TabularResNetWithMFP) else self.model
            contrastive = contrastive_loss(
                model, numerical, categorical, self.cardinalities, config.temperature, augmenter
            )
            loss = loss + (config.contrastive_weight if config.objective == "both" else 1.0) * contrastive
        if config.objective in ("mfp", "both"):
            mfp = masked_feature_prediction_loss(
                self.model, numerical, categorical, mask_prob=config.mask_prob, generator=generator
            )
            loss = loss + (config.mfp_weight if config.objective == "both" else 1.0) * mfp
        return loss


@torch.no_grad()
def held_out_loss(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    seed: int,
    *,
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    precision: str = "auto",
) -> float:
    """A loss that can be compared before and after training: ``model`` in eval mode, and batch
    ``i`` gets its own generator seeded from ``(seed, i)``, so the same weights always give the
    same value. ``loss(numerical, categorical, generator)`` defaults to ``model`` itself (an
    objective module). Mean over rows, over all processes under DDP; the model's training mode is
    restored. :meth:`Trainer.evaluate` and the chapters' before/after losses use it."""
    loss = model if loss is None else loss
    device = next(model.parameters()).device
    rank, world_size = distributed_rank(), distributed_world_size()
    if hasattr(batches, "set_epoch"):
        batches.set_epoch(0)
    was_training = model.training
    model.eval()
    total, rows = torch.zeros((), device=device, dtype=torch.float64), 0
    try:
        for index, (numerical, categorical) in enumerate(batches):
            numerical, categorical = numerical.to(device), categorical.to(device)  # (B, n_num), (B, n_cat)
            generator = torch.Generator(device=device).manual_seed(
                derive_seed(seed, VALIDATION_STREAM, index * world_size + rank)
            )
            with autocast(precision, device.type):
                value = loss(numerical, categorical, generator)
            total += value.double() * numerical.shape[0]
            rows += numerical.shape[0]
    finally:
        model.train(was_training)
    return all_reduce_mean(total, rows)


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr: float
) -> LRScheduler:
    """Linear warm-up from 1% of the base rate to the base rate over ``warmup_steps``, then
    cosine decay to ``min_lr`` at step ``total_steps``; stepped once per optimisation step.
    Plotted in chapter "Training best practices"."""
    warmup_steps = max(0, min(int(warmup_steps), total_steps - 1))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


class Trainer:
    """Self-supervised training of a :class:`~tabresnet_course.model.TabularResNet` (or its MFP
    wrapper) with everything a real run needs; see the module docstring.

    Args:
        model: the model to train (changed in place).
        cardinalities: real categories per categorical column (must match the model).
        config: a :class:`TrainingConfig` (default settings if ``None``).
        optimizer: use this optimiser instead of building a fused AdamW from the config.
        scheduler: use this scheduler (stepped once per optimisation step) instead of the one
            the config describes.
        early_stopping: use this :class:`EarlyStopping` instead of one built from
            ``config.patience``.

    Taught in chapter "The complete training loop".
    """

    def __init__(
        self,
        model: nn.Module,
        cardinalities: Sequence[int],
        config: TrainingConfig | None = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: LRScheduler | None = None,
        early_stopping: EarlyStopping | None = None,
    ) -> None:
        self.config = config = config if config is not None else TrainingConfig()
        self.rank, self.world_size, local_rank = init_distributed(config.device)
        self.device = resolve_device(config.device, local_rank)
        self.precision = resolve_precision(config.precision, self.device)
        if self.precision == "amp" and self.device.type != "cuda":
            raise ValueError("precision='amp' (float16 + GradScaler) needs CUDA; use 'bf16' or 'fp32' on CPU")
        self.model = model.to(self.device)
        self.objective = SelfSupervisedObjective(self.model, cardinalities, config)
        self.train_objective: nn.Module = self.objective
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            unused = getattr(getattr(model, "base_model", model), "classifier", None) is not None
            self.train_objective = DistributedDataParallel(
                self.objective, device_ids=device_ids, find_unused_parameters=unused
            )
        self.optimizer = optimizer or torch.optim.AdamW(  # fused: one kernel per step, same update
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
        self.scheduler = scheduler
        self.user_scheduler = scheduler is not None
        if early_stopping is None and config.patience is not None:
            early_stopping = EarlyStopping(config.patience, config.min_delta)
        self.early_stopping = early_stopping
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "amp")
        self.history = TrainingHistory()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.steps_per_epoch = 0

    @property
    def is_main_process(self) -> bool:
        """Only rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    def autocast(self) -> AbstractContextManager:
        """Autocast context of the configured precision (a no-op for fp32)."""
        return autocast(self.precision, self.device.type)

    def prepare_loader(self, loader: Iterable) -> Iterable:
        """Shard a :class:`TensorBatchLoader` for this process; check a ``DataLoader`` under DDP
        and serve its batches by index when it can (:class:`~tabresnet_course.data.IndexedDataLoader`)."""
        if isinstance(loader, TensorBatchLoader) and loader.world_size != self.world_size:
            return loader.shard(self.rank, self.world_size)
        if self.world_size > 1 and isinstance(loader, DataLoader):
            if not isinstance(loader.sampler, DistributedSampler):
                raise ValueError(
                    "under torchrun a DataLoader needs a DistributedSampler; or pass a TensorBatchLoader, "
                    "which the trainer shards itself"
                )
        return IndexedDataLoader.wrap(loader) or loader

    # -- one epoch ----------------------------------------------------------------------------

    def train_epoch(self, loader: Iterable, epoch: int) -> float:
        """One pass over ``loader`` (0-based ``epoch``); returns the mean training loss."""
        accumulation = self.config.accumulation_steps
        self.objective.train()
        batches = self.epoch_batches(loader, epoch)
        total, count = torch.zeros((), device=self.device, dtype=torch.float64), 0
        bar = self.progress_bar(epoch)
        for step in range(self.steps_per_epoch):
            micro_steps = min(accumulation, len(loader) - step * accumulation)
            for loss in self.optimisation_step(batches, micro_steps, epoch, step):
                total += loss.double()
                count += 1
            bar.update()
            if step % 10 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        return self.checked_mean_loss(total, count, epoch)

    def epoch_batches(self, loader: Iterable, epoch: int) -> Iterator:
        """An iterator over ``loader``'s batches of ``epoch``, in that epoch's seeded order."""
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        elif isinstance(getattr(loader, "sampler", None), DistributedSampler):
            loader.sampler.set_epoch(epoch)
        torch.manual_seed(derive_seed(self.config.seed, LOADER_STREAM, epoch, self.rank))  # DataLoader shuffling
        return iter(loader)

    def optimisation_step(self, batches: Iterator, micro_steps: int, epoch: int, step: int) -> list[torch.Tensor]:
        """Accumulate the gradients of ``micro_steps`` batches, clip them, step the optimiser and
        the schedule; returns the (detached) loss of each micro-batch."""
        config = self.config
        losses = []
        for micro in range(micro_steps):
            numerical, categorical = next(batches)
            numerical = numerical.to(self.device, non_blocking=True)  # (B, n_num)
            categorical = categorical.to(self.device, non_blocking=True)  # (B, n_cat)
            # All randomness of this micro-batch: a function of (seed, epoch, step, micro-batch).
            stream = self.rank * config.accumulation_steps + micro
            augment_seed, dropout_seed = (derive_seed(config.seed, epoch, step, stream, k) for k in (0, 1))
            generator = torch.Generator(device=self.device).manual_seed(augment_seed)
            torch.manual_seed(dropout_seed)
            last_micro = micro == micro_steps - 1
            sync = nullcontext() if last_micro or self.world_size == 1 else self.train_objective.no_sync()
            with sync:
                with self.autocast():
                    loss = self.train_objective(numerical, categorical, generator)
                self.grad_scaler.scale(loss / micro_steps).backward()
            losses.append(loss.detach())
        if config.grad_clip_norm is not None:
            self.grad_scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip_norm)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        return losses

    def progress_bar(self, epoch: int) -> tqdm:
        """The epoch's tqdm bar (disabled without ``config.progress`` and on ranks other than 0)."""
        return tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.config.num_epochs}",
            leave=False,
            disable=not (self.config.progress and self.is_main_process),
        )

    def checked_mean_loss(self, total: torch.Tensor, count: int, epoch: int) -> float:
        """The epoch's mean training loss over all processes; a NaN or infinite one is an error."""
        mean_loss = all_reduce_mean(total, count)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"the training loss became {mean_loss} in epoch {epoch + 1}; check the inputs for NaN or "
                f"infinite values (TabularPreprocessor removes them) or lower the learning rate"
            )
        return mean_loss

    def evaluate(self, loader: Iterable) -> float:
        """The objective on ``loader`` in eval mode, with fixed generators (:func:`held_out_loss`):
        the same model gives the same value every time, so epochs can be compared. Mean over rows
        (all processes)."""
        loader = self.prepare_loader(loader)
        return held_out_loss(self.objective, loader, self.config.seed, precision=self.precision)

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume after ``epoch`` completed epochs: tensors and plain data."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return with_format_version(
            {
                "kind": CHECKPOINT_KIND,
                "epoch": epoch,
                **model_description(self.model),
                "model_state": self.model.state_dict(),
                "best_model_state": self.best_state,
                "optimizer_state": self.optimizer.state_dict(),
                "scheduler_state": self.scheduler.state_dict() if self.scheduler is not None else None,
                "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler.is_enabled() else None,
                "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
                "history": self.history.to_dict(),
                "training_config": self.config.to_dict(),
                "cardinalities": list(self.objective.cardinalities),
                "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.world_size,
                "rng_state": rng,
            }
        )

    def save_checkpoint(self, path: str | os.PathLike, epoch: int) -> None:
        """Write :meth:`checkpoint_state` atomically (rank 0 only)."""
        if self.is_main_process:
            atomic_save_torch(self.checkpoint_state(epoch), path)

    def load_checkpoint_state(self, path: str | os.PathLike) -> int:
        """Restore a checkpoint written by :meth:`save_checkpoint`; returns its completed epochs."""
        checkpoint = load_checkpoint(path, map_location=self.device)
        if checkpoint.get("kind") != CHECKPOINT_KIND:
            raise InputError(f"{path} is not a training checkpoint (kind {checkpoint.get('kind')!r})")
        if checkpoint["model_config"] != model_description(self.model)["model_config"]:
            raise ValueError(f"{path} was written for a different model configuration: {checkpoint['model_config']}")
        if checkpoint["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(
                f"{path} was written with {checkpoint['steps_per_epoch']} steps per epoch, this run has "
                f"{self.steps_per_epoch}: the training data, batch size or number of processes changed"
            )
        ignored = {"progress", "checkpoint_dir", "checkpoint_every", "device", "overwrite_checkpoints"}
        saved, current = checkpoint["training_config"], self.config.to_dict()
        changed = sorted(k for k in current if k not in ignored and saved.get(k) != current[k])
        if changed:
            warnings.warn(
                f"resuming {path} with changed settings {changed}; the run will not match an uninterrupted one",
                stacklevel=2,
            )
        self.model.load_state_dict(checkpoint["model_state"])
        self.best_state = checkpoint["best_model_state"]
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.scheduler is not None and checkpoint["scheduler_state"] is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        if checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])
        if self.early_stopping is not None and checkpoint["early_stopping"] is not None:
            self.early_stopping.load_state_dict(checkpoint["early_stopping"])
        self.history = TrainingHistory.from_dict(checkpoint["history"])
        torch.set_rng_state(checkpoint["rng_state"]["torch"].cpu())
        return int(checkpoint["epoch"])

    def check_checkpoint_dir(self) -> Path | None:
        """The checkpoint directory; refuses to overwrite another run's checkpoints unless asked."""
        if self.config.checkpoint_dir is None:
            return None
        directory = Path(self.config.checkpoint_dir)
        existing = [name for name in ("best.pt", "last.pt") if (directory / name).exists()]
        if existing and not self.config.overwrite_checkpoints:
            raise InputError(
                f"{directory} already holds {existing} from another run; pass resume_from=... to continue "
                f"it, choose another checkpoint_dir, or set overwrite_checkpoints=True"
            )
        return directory

    # -- the loop -----------------------------------------------------------------------------

    def fit(
        self,
        train_loader: Iterable,
        val_loader: Iterable | None = None,
        *,
        resume_from: str | os.PathLike | None = None,
        stop_after_epoch: int | None = None,
    ) -> TrainingHistory:
        """Train for ``config.num_epochs`` epochs (fewer if early stopping fires).

        ``resume_from`` continues a run from one of its checkpoints. ``stop_after_epoch`` ends
        this call after that epoch, as if the job had been killed right after writing its
        checkpoint (used to demonstrate and test resuming). Returns the :class:`TrainingHistory`.
        """
        train_loader = self.prepare_loader(train_loader)
        val_loader = self.prepare_loader(val_loader) if val_loader is not None else None
        start_epoch, directory = self.start_run(len(train_loader), resume_from)
        stop_at = self.config.num_epochs if stop_after_epoch is None else min(stop_after_epoch, self.config.num_epochs)

        for epoch in range(start_epoch, stop_at):
            started = time.perf_counter()
            train_loss = self.train_epoch(train_loader, epoch)
            val_loss = self.evaluate(val_loader) if val_loader is not None else None
            improved, stop = self.end_epoch(epoch, train_loss, val_loss, time.perf_counter() - started)
            if directory is not None:
                self.write_checkpoints(directory, epoch + 1, improved, finished=stop or epoch + 1 == stop_at)
            if stop:
                break

        self.restore_best_weights()
        return self.history

    def start_run(self, num_batches: int, resume_from: str | os.PathLike | None) -> tuple[int, Path | None]:
        """Build the schedule for ``num_batches`` batches per epoch and restore ``resume_from``;
        returns the first epoch to run and the checkpoint directory (or ``None``)."""
        config = self.config
        self.steps_per_epoch = math.ceil(num_batches / config.accumulation_steps)
        if not self.user_scheduler and config.schedule == "warmup_cosine":
            total_steps = config.num_epochs * self.steps_per_epoch
            warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
            self.scheduler = make_lr_scheduler(self.optimizer, total_steps, warmup_steps, config.min_lr)
        if resume_from is None:
            return 0, self.check_checkpoint_dir()
        start_epoch = self.load_checkpoint_state(resume_from)
        return start_epoch, Path(config.checkpoint_dir) if config.checkpoint_dir else None

    def end_epoch(self, epoch: int, train_loss: float, val_loss: float | None, seconds: float) -> tuple[bool, bool]:
        """Record the epoch in the history, keep the best weights, ask early stopping and log a
        line; returns ``(improved, stop)``."""
        self.history.append(epoch + 1, train_loss, val_loss, self.optimizer.param_groups[0]["lr"], seconds)
        improved = val_loss is not None and (
            self.history.best_val_loss is None or val_loss < self.history.best_val_loss
        )
        if improved:
            self.history.best_val_loss, self.history.best_epoch = val_loss, epoch + 1
            if self.config.restore_best_weights:
                self.best_state = copy.deepcopy(self.model.state_dict())
        stop = bool(val_loss is not None and self.early_stopping and self.early_stopping(val_loss))
        self.history.stopped_early = stop
        if self.config.progress and self.is_main_process:
            shown = f"{val_loss:.4f}" if val_loss is not None else "-"
            tqdm.write(
                f"epoch {epoch + 1:3d}/{self.config.num_epochs}  train {train_loss:.4f}  val {shown}  "
                f"lr {self.history.learning_rate[-1]:.2e}  {seconds:.1f}s",
                file=sys.stderr,
            )
        return improved, stop

    def write_checkpoints(self, directory: Path, epoch: int, improved: bool, finished: bool) -> None:
        """``best.pt`` when the validation loss improved; ``last.pt`` every ``checkpoint_every``
        epochs and at the end."""
        if improved:
            self.save_checkpoint(directory / "best.pt", epoch)
        if epoch % self.config.checkpoint_every == 0 or finished:
            self.save_checkpoint(directory / "last.pt", epoch)

    def restore_best_weights(self) -> None:
        """At the end of a run (all epochs, or stopped early), load the best epoch's weights when
        ``config.restore_best_weights``; a run cut short by ``stop_after_epoch`` keeps its own."""
        reached_end = self.history.stopped_early or len(self.history.epoch) == self.config.num_epochs
        if reached_end and self.config.restore_best_weights and self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def train_self_supervised(
    model: nn.Module,
    dataloader: Iterable,
    optimizer: torch.optim.Optimizer,
    cardinalities: Sequence[int],
    num_epochs: int = 50,
    device: str = "cpu",
    **options: Any,
) -> list[float]:
    """The seed chapter's function, now backed by :class:`Trainer`; returns per-epoch training losses.

    The seed's call ``train_self_supervised(model, dataloader, optimizer, cardinalities,
    num_epochs=50, device="cpu")`` trains contrastively with the caller's optimiser at a
    constant learning rate for exactly ``num_epochs`` epochs, as before. ``options``:
    ``val_loader``; ``early_stopping`` (an :class:`EarlyStopping`); ``scheduler`` (an
    ``LRScheduler`` stepped per optimisation step, or ``"warmup_cosine"``); ``resume_from``;
    and any :class:`TrainingConfig` field (``objective``, ``temperature``, ``grad_clip_norm``,
    ``precision``, ``seed``, ``progress``, ``checkpoint_dir``, ...). Early stopping is off unless
    ``early_stopping`` or ``patience`` is given. Taught in chapter "The complete training loop".
    """
    val_loader = options.pop("val_loader", None)
    early_stopping = options.pop("early_stopping", None)
    scheduler = options.pop("scheduler", None)
    resume_from = options.pop("resume_from", None)
    unknown = sorted(set(options) - {f.name for f in fields(TrainingConfig)})
    if unknown:
        raise TypeError(f"train_self_supervised got unknown options {unknown}")
    options.setdefault("patience", None)
    options.setdefault("schedule", "warmup_cosine" if scheduler == "warmup_cosine" else "constant")
    options.setdefault("learning_rate", optimizer.param_groups[0]["lr"])
    options.setdefault("min_lr", min(TrainingConfig.min_lr, options["learning_rate"]))
    config = TrainingConfig(num_epochs=num_epochs, device=device, **options)
    trainer = Trainer(
        model,
        cardinalities,
        config,
        optimizer=optimizer,
        scheduler=scheduler if isinstance(scheduler, LRScheduler) else None,
        early_stopping=early_stopping,
    )
    return trainer.fit(dataloader, val_loader, resume_from=resume_from).train_loss
