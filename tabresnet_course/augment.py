"""Augmentations that turn one table row into a "view" for contrastive learning.

Two augmentations live here, both taught in chapter "Contrastive learning":

- :class:`TabularAugmentation`, the simple first version: Gaussian noise on numerical columns
  and, with a small probability, a uniformly random real category in a categorical column.
- :class:`MarginalResampling`, the recommended one, from SCARF (Bahri et al., 2022): for each row
  a random subset of the features is replaced by the values those features take in other rows
  of the batch, so every corrupted value is drawn from that feature's empirical marginal.

Both respect the reserved categorical indices of :mod:`tabresnet_course.model`: they never turn
a real category into ``PADDING_INDEX``, ``MASK_INDEX`` or ``UNKNOWN_INDEX``, and they leave cells
that already hold a reserved index (a missing or unknown value) as they are. Both can protect
columns that must never change (for example ``status`` in an authentication log, whose flip
would turn a failed login into a successful one), and both draw their random numbers from an
optional ``torch.Generator`` so that a seed reproduces the same views.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tabresnet_course.model import NUM_RESERVED_INDICES, Batch, check_batch

__all__ = [
    "MarginalResampling",
    "TabularAugmentation",
    "draw_uniform",
]


def draw_uniform(shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform numbers in ``[0, 1)`` drawn on the generator's device and returned on ``device``.

    Drawing where the generator lives keeps a seeded CPU generator usable for GPU batches.
    """
    draw_device = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=draw_device).to(device)


def draw_normal(shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal numbers drawn on the generator's device and returned on ``device``."""
    draw_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=draw_device).to(device)


def free_columns(protected: Sequence[int], num_columns: int, device: torch.device) -> torch.Tensor:
    """Boolean mask ``(num_columns,)``: true for columns an augmentation may change."""
    free = torch.ones(num_columns, dtype=torch.bool, device=device)
    for column in protected:
        if not 0 <= column < num_columns:
            raise ValueError(f"protected column {column} is outside 0..{num_columns - 1}")
    free[list(protected)] = False
    return free


def cardinality_tensor(cardinalities: Sequence[int] | torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
    """Cardinalities as a ``(n_cat,)`` long tensor on the batch's device, checked against it."""
    sizes = torch.as_tensor(cardinalities, dtype=torch.long, device=categorical.device).reshape(-1)
    if sizes.numel() != categorical.shape[1]:
        raise ValueError(f"got {sizes.numel()} cardinalities for {categorical.shape[1]} categorical columns")
    if (sizes < 1).any():
        raise ValueError(f"cardinalities must all be >= 1, got {sizes.tolist()}")
    return sizes


class TabularAugmentation:
    """The seed chapter's augmentation: Gaussian noise plus random category swaps.

    Numerical cells get ``N(0, noise_level**2)`` noise. Each categorical cell that holds a real
    category is, with probability ``swap_prob``, replaced by a real category drawn uniformly from
    its column (it may draw the same one); cells holding a reserved index stay as they are.
    Taught in chapter "Contrastive learning", which also explains why :class:`MarginalResampling`
    is the better default: uniform draws over-sample rare categories, and noise depends on scale.

    Args:
        noise_level: standard deviation of the numerical noise (in standardised units).
        swap_prob: probability that a categorical cell is replaced.
        protected_numerical: numerical column indices that are never changed.
        protected_categorical: categorical column indices that are never changed.
        generator: optional ``torch.Generator`` for reproducible views.
    """

    def __init__(
        self,
        noise_level: float = 0.1,
        swap_prob: float = 0.2,
        protected_numerical: Sequence[int] = (),
        protected_categorical: Sequence[int] = (),
        generator: torch.Generator | None = None,
    ) -> None:
        if noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level}")
        if not 0.0 <= swap_prob <= 1.0:
            raise ValueError(f"swap_prob must be in [0, 1], got {swap_prob}")
        self.noise_level = noise_level
        self.swap_prob = swap_prob
        self.protected_numerical = tuple(int(i) for i in protected_numerical)
        self.protected_categorical = tuple(int(i) for i in protected_categorical)
        self.generator = generator

    def augment_numerical(self, numerical: torch.Tensor) -> torch.Tensor:
        """Add Gaussian noise to every unprotected numerical column; ``(B, n_num)`` in and out."""
        noise = draw_normal(numerical.shape, numerical.device, self.generator)  # (B, n_num)
        free = free_columns(self.protected_numerical, numerical.shape[1], numerical.device)  # (n_num,)
        noisy = numerical + self.noise_level * noise.to(numerical.dtype)  # (B, n_num)
        return torch.where(free, noisy, numerical)

    def augment_categorical(
        self, categorical: torch.Tensor, cardinalities: Sequence[int] | torch.Tensor
    ) -> torch.Tensor:
        """Swap real categories for uniformly random real ones; ``(B, n_cat)`` in and out."""
        sizes = cardinality_tensor(cardinalities, categorical)  # (n_cat,)
        u = draw_uniform((2, *categorical.shape), categorical.device, self.generator)  # (2, B, n_cat)
        free = free_columns(self.protected_categorical, categorical.shape[1], categorical.device)
        swap = (u[0] < self.swap_prob) & free & (categorical >= NUM_RESERVED_INDICES)  # (B, n_cat)
        code = torch.minimum((u[1] * sizes).long(), sizes - 1)  # (B, n_cat) uniform in 0..c-1
        return torch.where(swap, code + NUM_RESERVED_INDICES, categorical)

    def __call__(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor,
        cardinalities: Sequence[int] | torch.Tensor,
    ) -> Batch:
        """One augmented view ``(numerical (B, n_num), categorical (B, n_cat))``."""
        check_batch(numerical, categorical)
        return self.augment_numerical(numerical), self.augment_categorical(categorical, cardinalities)

    def two_views(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor,
        cardinalities: Sequence[int] | torch.Tensor,
    ) -> tuple[Batch, Batch]:
        """Two independently augmented views of the same batch (SimCLR style)."""
        return self(numerical, categorical, cardinalities), self(numerical, categorical, cardinalities)


class MarginalResampling:
    """SCARF's corruption: resample a random subset of each row's features from other rows.

    For every row, ``round(corruption_rate * F)`` of its ``F`` unprotected features (numerical
    and categorical columns counted together) are chosen uniformly at random, a fresh subset per
    row, and each chosen cell takes the value of the same column in another row of the batch,
    picked uniformly among the other rows. The corrupted values therefore follow each feature's
    empirical marginal, so common values stay common and rare ones stay rare. A categorical cell
    is only replaced when both its own value and the donor's are real categories, so missing
    values are neither created nor destroyed. Taught in chapter "Contrastive learning".

    Args:
        corruption_rate: fraction of the unprotected features corrupted in every row (SCARF's
            default 0.6).
        protected_numerical: numerical column indices that are never changed.
        protected_categorical: categorical column indices that are never changed.
        generator: optional ``torch.Generator`` for reproducible views.
    """

    def __init__(
        self,
        corruption_rate: float = 0.6,
        protected_numerical: Sequence[int] = (),
        protected_categorical: Sequence[int] = (),
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 <= corruption_rate <= 1.0:
            raise ValueError(f"corruption_rate must be in [0, 1], got {corruption_rate}")
        self.corruption_rate = corruption_rate
        self.protected_numerical = tuple(int(i) for i in protected_numerical)
        self.protected_categorical = tuple(int(i) for i in protected_categorical)
        self.generator = generator

    def corruption_mask(
        self, batch_size: int, num_numerical: int, num_categorical: int, device: torch.device
    ) -> torch.Tensor:
        """Boolean ``(B, n_num + n_cat)``: which cells to corrupt, the numerical columns first."""
        free = torch.cat(
            [
                free_columns(self.protected_numerical, num_numerical, device),
                free_columns(self.protected_categorical, num_categorical, device),
            ]
        )  # (F,)
        num_corrupted = round(self.corruption_rate * int(free.sum()))
        keys = draw_uniform((batch_size, free.numel()), device, self.generator)  # (B, F)
        keys = keys.masked_fill(~free, 2.0)  # protected columns always rank last
        ranks = keys.argsort(dim=1).argsort(dim=1)  # (B, F) rank of each cell within its row
        return ranks < num_corrupted

    def __call__(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor,
        cardinalities: Sequence[int] | torch.Tensor | None = None,
    ) -> Batch:
        """One corrupted view ``(numerical (B, n_num), categorical (B, n_cat))``.

        ``cardinalities`` is only checked against the batch: resampling needs no table sizes.
        """
        check_batch(numerical, categorical)
        if cardinalities is not None:
            cardinality_tensor(cardinalities, categorical)
        batch, num_numerical = numerical.shape
        if batch < 2:
            raise ValueError(f"marginal resampling needs a batch of at least 2 rows, got {batch}")
        device = numerical.device
        corrupt = self.corruption_mask(batch, num_numerical, categorical.shape[1], device)  # (B, F)
        # A donor row per cell, never the row itself: offset 1..B-1 rows down, wrapping around.
        offset = 1 + (draw_uniform(corrupt.shape, device, self.generator) * (batch - 1)).long()
        rows = torch.arange(batch, device=device).unsqueeze(1)  # (B, 1)
        donors = (rows + offset.clamp(max=batch - 1)) % batch  # (B, F)
        num_donor = numerical.gather(0, donors[:, :num_numerical])  # (B, n_num)
        cat_donor = categorical.gather(0, donors[:, num_numerical:])  # (B, n_cat)
        both_real = (categorical >= NUM_RESERVED_INDICES) & (cat_donor >= NUM_RESERVED_INDICES)
        new_numerical = torch.where(corrupt[:, :num_numerical], num_donor, numerical)
        new_categorical = torch.where(corrupt[:, num_numerical:] & both_real, cat_donor, categorical)
        return new_numerical, new_categorical

    def two_views(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor,
        cardinalities: Sequence[int] | torch.Tensor | None = None,
    ) -> tuple[Batch, Batch]:
        """SCARF's pair of views: the clean batch as the anchor, and one corrupted copy."""
        check_batch(numerical, categorical)
        return (numerical, categorical), self(numerical, categorical, cardinalities)
