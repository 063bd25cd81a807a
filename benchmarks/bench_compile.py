"""Does ``torch.compile`` pay? The package's trainer with and without a compiled encoder.

The residual blocks of the encoder (``model.blocks``, nearly all of its FLOPs and all of its
dropout and normalisation) are compiled with ``torch.compile`` (Inductor, default mode); the
input checks and embedding look-ups stay eager. Both runs use the best precision of the device
(bfloat16 where it is native, else float32) and train side by side, epoch by epoch, on the same
short loader. Reported: the compile time (first epoch minus an eager epoch), the steady-state
step time of each, and the ratio. The package leaves compilation off unless this shows a gain.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.bench_hardware import ShortEpochs
from benchmarks.bench_training import QUICK_SETUP, SEED_SETUP
from benchmarks.common import Settings, bf16_supported, synchronize, time_interleaved


def run(settings: Settings) -> dict[str, Any]:
    """The ``compile`` section of the results."""
    setup = QUICK_SETUP if settings.quick else SEED_SETUP
    device = settings.device
    precision = "bf16" if bf16_supported(device) else "fp32"
    batches = 2 if settings.quick else 8
    result: dict[str, Any] = {"precision": precision, "batches_per_timing": batches, "objectives": {}}
    for objective in ("contrastive", "mfp"):
        eager = ShortEpochs(setup, objective, precision, device, batches)
        compiled = ShortEpochs(setup, objective, precision, device, batches)
        model = compiled.trainer.model
        encoder = model.base_model if hasattr(model, "base_model") else model
        encoder.blocks = torch.compile(encoder.blocks)
        eager()  # warm the eager path so the difference below is compilation
        synchronize(device)
        started = time.perf_counter()
        compiled()
        synchronize(device)
        first = time.perf_counter() - started
        stats = time_interleaved({"eager": eager, "compiled": compiled}, device, settings.repeats, settings.warmup)
        result["objectives"][objective] = {
            "first_compiled_epoch_seconds": first,
            "compile_seconds": first - stats["eager"]["median"],
            "eager_step_seconds": stats["eager"]["median"] / batches,
            "compiled_step_seconds": stats["compiled"]["median"] / batches,
            "speedup": stats["eager"]["median"] / stats["compiled"]["median"],
            "eager_timing": stats["eager"],
            "compiled_timing": stats["compiled"],
        }
    return result
