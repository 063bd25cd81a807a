"""Where and how the package computes: device, precision, autocast and the distributed run.

One resolver each for the device (``"auto"`` -> CUDA when available, else CPU), the numerical
precision (``"auto"`` -> bfloat16 where the hardware multiplies it natively) and the rank and
size of a ``torchrun`` job. Training, the detector and the command line all take these from here.

Chapter "Training best practices" teaches this file.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_mean",
    "autocast",
    "cleanup_distributed",
    "cpu_has_native_bf16",
    "distributed_rank",
    "distributed_world_size",
    "init_distributed",
    "resolve_device",
    "resolve_precision",
]


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available (this process's GPU under torchrun), else CPU; a CUDA
    device when CUDA is missing raises ``ValueError``. The one device resolver of the package."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def distributed_world_size() -> int:
    """Number of processes of this run: the process group's size once joined, else the
    ``WORLD_SIZE`` that ``torchrun`` sets (1 for a plain run)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def distributed_rank() -> int:
    """This process's rank: the process group's once joined, else ``torchrun``'s ``RANK`` (0 for
    a plain run). Only rank 0 writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: str = "auto") -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; under ``torchrun`` (``WORLD_SIZE > 1``) also joins the
    process group if needed: NCCL when training on CUDA, gloo on CPU."""
    if distributed_world_size() <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def all_reduce_mean(total: torch.Tensor, count: float) -> float:
    """``sum(total) / sum(count)`` over all processes of the run (this process's alone without DDP)."""
    pair = torch.stack([total.detach().double(), torch.tensor(count, dtype=torch.float64, device=total.device)])
    if distributed_world_size() > 1:
        dist.all_reduce(pair)
    return float(pair[0] / pair[1])


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX tiles or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> the fastest precision that trains like fp32 on ``device``: ``"bf16"`` on a
    CPU with native bfloat16 matrix units and on CUDA GPUs that support bfloat16, ``"amp"``
    (float16 with a gradient scaler) on older GPUs, ``"fp32"`` elsewhere. Other values are
    returned unchanged. Chapter "Training best practices" measures the difference."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "amp"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device_type: str) -> AbstractContextManager:
    """Autocast context of a ``TrainingConfig.precision`` (a no-op for ``"fp32"``)."""
    precision = resolve_precision(precision, torch.device(device_type))
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def cleanup_distributed() -> None:
    """Leave the process group (call once at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
