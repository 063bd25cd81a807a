"""Where and how the package computes: device, precision, autocast and the distributed run.

One resolver each for the device (``"auto"`` -> CUDA when available, else CPU), the numerical
precision (``"auto"`` -> bfloat16 where the hardware multiplies it natively) and the rank and
size of a ``torchrun`` job. Training, the detector and the command line all take these from here.

Chapter "Training best practices" teaches this file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

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
    "scoring_threads",
    "threads",
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


def scoring_threads() -> int | None:
    """Threads for embedding and neighbour search while scoring: ``TABRESNET_SCORING_THREADS``
    (``"auto"``: PyTorch's and faiss's own choice, one per core), by default 1. Measured per
    stage (``benchmarks/bench_reference.py``, rows "stage ..."): on the shared 2-core machine
    the embedding and the embedding kNN always ran slower with two threads than with one (the
    embedding up to ten times), because the second thread spins waiting for a core, and the
    raw-feature kNN gained at most 1.3x; featurising and reading are single-threaded Python
    either way. On an idle many-core machine, try ``auto`` and re-measure."""
    value = os.environ.get("TABRESNET_SCORING_THREADS", "1")
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"TABRESNET_SCORING_THREADS must be a positive integer or 'auto', got {value!r}")
    return int(value)


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` threads in PyTorch's and faiss's thread pools (faiss only if
    installed), restoring the previous counts after; ``None`` changes nothing. Scoring sets it
    per stage from measurements, not assumptions (``benchmarks/bench_reference.py``): on a small
    shared CPU, threads waiting for each other can make a block slower, not faster."""
    if count is None:
        yield
        return
    try:
        import faiss
    except ImportError:
        faiss = None
    before = torch.get_num_threads(), faiss.omp_get_max_threads() if faiss is not None else None
    torch.set_num_threads(count)
    if faiss is not None:
        faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        if faiss is not None:
            faiss.omp_set_num_threads(before[1])
