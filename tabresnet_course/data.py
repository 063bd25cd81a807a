"""From the preprocessed feature matrices to batches of tensors.

The matrices come from :class:`~tabresnet_course.preprocess.TabularPreprocessor`.

- :class:`OCSFDataset` is the seed chapter's ``torch.utils.data.Dataset`` over the two matrices.
- :class:`TensorBatchLoader` is the fast path: it slices whole batches out of the two tensors
  with one permutation per epoch (no per-row ``__getitem__``, no collate), reshuffles
  deterministically with :meth:`TensorBatchLoader.set_epoch`, and shards the same global
  permutation across processes for distributed training, as ``DistributedSampler`` does.

Chapters "The complete training loop" and "Training best practices" teach this file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from tabresnet_course.model import Batch, check_batch

__all__ = [
    "IndexedDataLoader",
    "OCSFDataset",
    "TensorBatchLoader",
    "as_feature_tensors",
    "derive_seed",
    "writable_array",
]


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys, e.g. ``derive_seed(seed, epoch, step)``.

    Distinct key tuples give unrelated seeds (``numpy.random.SeedSequence`` hashing), so
    ``(seed=0, epoch=1)`` and ``(seed=1, epoch=0)`` do not collide as ``seed + epoch`` would.
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def writable_array(values: Any) -> np.ndarray:
    """``values`` as a numpy array PyTorch can share: copied only if it is read-only or not numeric."""
    array = np.asarray(values)
    if array.dtype == object:
        raise ValueError("feature matrices must be numeric; run TabularPreprocessor on the table first")
    return array if array.flags.writeable else array.copy()


def as_feature_tensors(numerical: Any, categorical: Any) -> Batch:
    """Check and convert the two feature matrices: float32 ``(N, n_num)`` and int64 ``(N, n_cat)``."""
    numerical, categorical = (
        x if torch.is_tensor(x) else torch.from_numpy(writable_array(x)) for x in (numerical, categorical)
    )
    check_batch(numerical, categorical)
    return numerical.to(torch.float32), categorical.to(torch.int64)


class OCSFDataset(Dataset):
    """The seed chapter's map-style dataset: row ``i`` is ``(numerical[i], categorical[i])``.

    Accepts numpy arrays or tensors; stores float32 numerical and int64 categorical tensors.
    Works with any ``torch.utils.data.DataLoader``; :class:`TensorBatchLoader` serves the same
    data much faster. Taught in chapter "The complete training loop".
    """

    def __init__(self, numerical: Any, categorical: Any) -> None:
        self.numerical, self.categorical = as_feature_tensors(numerical, categorical)

    def __len__(self) -> int:
        return self.numerical.shape[0]

    def __getitem__(self, index: int) -> Batch:
        return self.numerical[index], self.categorical[index]


class TensorBatchLoader:
    """Batches sliced from two pre-built tensors, one permutation per epoch.

    Each epoch draws one permutation of all rows from ``(seed, epoch)`` and cuts it into global
    batches of ``batch_size * world_size`` rows; process ``rank`` gets its own contiguous slice
    of ``batch_size`` rows of every global batch. With ``world_size == 1`` that is an ordinary
    shuffled loader. The shards are disjoint and cover every row once, like
    ``DistributedSampler``; when the rows do not divide evenly among the processes and
    ``drop_last`` is false, the permutation is padded with its own first rows so every process
    gets the same number of rows (``DistributedSampler`` does the same).

    Iterating uses the current epoch and then advances it, so a plain ``for`` loop over epochs
    reshuffles every time, reproducibly; :meth:`set_epoch` fixes the epoch explicitly (the
    trainer does, so that a resumed run sees the same batches as an uninterrupted one).

    Args:
        numerical: ``(N, n_num)`` array or tensor.
        categorical: ``(N, n_cat)`` integer array or tensor.
        batch_size: rows per batch on each process.
        shuffle: draw a new permutation every epoch (else rows stay in order).
        drop_last: drop the last, incomplete (global) batch.
        seed: seed of the permutations.
        rank, world_size: this process and the number of processes.
        device: optionally move the two tensors to this device once, up front.

    Taught in chapter "The complete training loop"; sharding in "Training best practices".
    """

    def __init__(
        self,
        numerical: Any,
        categorical: Any,
        batch_size: int = 256,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.numerical, self.categorical = as_feature_tensors(numerical, categorical)
        if self.numerical.shape[0] == 0:
            raise ValueError("cannot batch an empty table (0 rows)")
        if device is not None:
            self.numerical = self.numerical.to(device)
            self.categorical = self.categorical.to(device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    @classmethod
    def from_dataset(cls, dataset: OCSFDataset, **kwargs: Any) -> TensorBatchLoader:
        """A loader over the tensors of an :class:`OCSFDataset` (no copy)."""
        return cls(dataset.numerical, dataset.categorical, **kwargs)

    def shard(self, rank: int, world_size: int) -> TensorBatchLoader:
        """The same loader (same tensors, seed and batch size) for process ``rank`` of ``world_size``."""
        loader = TensorBatchLoader(
            self.numerical,
            self.categorical,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
        )
        loader.epoch = self.epoch
        return loader

    @property
    def num_rows(self) -> int:
        """Number of rows in the whole table (all shards)."""
        return self.numerical.shape[0]

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The row indices this process visits in ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        n, per_rank, ranks = self.num_rows, self.batch_size, self.world_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(n, generator=generator)  # (N,)
        else:
            order = torch.arange(n)
        global_batch = per_rank * ranks
        if self.drop_last:
            order = order[: (n // global_batch) * global_batch]
        elif n % ranks:
            pad = ranks - n % ranks  # repeat the first rows so every process gets as many rows
            order = torch.cat([order, order.repeat(math.ceil(pad / n))[:pad]])
        full = order.shape[0] // global_batch
        head = order[: full * global_batch].view(full, ranks, per_rank)[:, self.rank].reshape(-1)
        tail = order[full * global_batch :].view(ranks, -1)[self.rank]  # last, smaller global batch
        return torch.cat([head, tail])

    def __len__(self) -> int:
        n, global_batch = self.num_rows, self.batch_size * self.world_size
        if self.drop_last:
            return n // global_batch
        return math.ceil(math.ceil(n / self.world_size) * self.world_size / global_batch)

    def __iter__(self) -> Iterator[Batch]:
        indices = self.epoch_indices().to(self.numerical.device)
        self.epoch += 1
        for batch in indices.split(self.batch_size):
            yield self.numerical[batch], self.categorical[batch]  # (B, n_num), (B, n_cat)


class IndexedDataLoader:
    """The batches of a ``DataLoader`` over an :class:`OCSFDataset` (or a two-tensor
    ``TensorDataset``), served by indexing the dataset's tensors instead of calling
    ``__getitem__`` once per row and collating.

    The batches are the loader's own, in the same order: the same batch sampler (so its batch
    size, ``shuffle``, ``drop_last``, ``generator`` and any custom sampler) and the same random
    draws (the one a ``DataLoader`` iterator makes for its worker seed, then the sampler's).
    :meth:`wrap` returns ``None`` for a loader it cannot serve exactly, such as one with a custom
    ``collate_fn``. :class:`~tabresnet_course.training.Trainer` wraps every loader it can, so the
    seed's ``DataLoader(OCSFDataset(...), batch_size=256, shuffle=True)`` call trains at the speed
    of :class:`TensorBatchLoader`. Taught in chapter "Training best practices".
    """

    def __init__(self, loader: DataLoader, numerical: torch.Tensor, categorical: torch.Tensor) -> None:
        self.loader = loader
        self.sampler = loader.sampler  # the trainer calls sampler.set_epoch for a DistributedSampler
        self.numerical, self.categorical = numerical, categorical

    @classmethod
    def wrap(cls, loader: Any) -> IndexedDataLoader | None:
        """An indexed view of ``loader``, or ``None`` when its batches are not plain row slices."""
        if (
            not isinstance(loader, DataLoader)
            or loader.batch_sampler is None
            or loader.collate_fn is not default_collate
        ):
            return None
        dataset = loader.dataset
        if type(dataset) is OCSFDataset:
            return cls(loader, dataset.numerical, dataset.categorical)
        if type(dataset) is TensorDataset and len(dataset.tensors) == 2:
            return cls(loader, *dataset.tensors)
        return None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)  # DataLoader's worker-seed draw
        for indices in self.loader.batch_sampler:
            rows = torch.as_tensor(indices)
            yield self.numerical[rows], self.categorical[rows]  # (B, n_num), (B, n_cat)


"""Largest magnitude a numerical value may have: the model computes in float32."""
