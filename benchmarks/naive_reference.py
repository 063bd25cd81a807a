"""The seed chapter's training code, written out literally, as the baseline of the benchmarks.

Everything here follows the seed draft of "Part 4: Self-Supervised Training" line by line:
an augmentation class with a Python loop over the categorical columns, a contrastive loss that
embeds the two views in two separate forward passes and masks the self-similarity with
``-inf``, a masked-feature-prediction loss with a Python loop over the categorical features,
a ``Dataset`` whose ``__getitem__`` returns one row (so ``DataLoader`` collates every batch
from 256 single-row tensors), and a float32 eager training loop.

Only three things depart from the seed's text, and each keeps the work the same while making
the two training paths compute the same quantity, so that the benchmark compares speed and not
a different method:

- The model is the package's :class:`~tabresnet_course.model.TabularResNet` (wrapped in
  :class:`~tabresnet_course.mfp.TabularResNetWithMFP` for MFP), so the comparison isolates
  the training path.
- Categorical indices follow the package's reserved-index scheme: a random category is drawn
  among the real ones (``k + NUM_RESERVED_INDICES``), and a masked cell becomes ``MASK_INDEX``
  (the seed wrote ``0``, which the package reserves for missing values) through the model's
  own ``mask_inputs``, which also puts the learned mask value into masked numerical cells.
- The MFP categorical loss sums the cross-entropy of the masked cells feature by feature (the
  seed's loop) and divides by the number of masked cells, the package's weighting. The seed
  divided each feature's mean by the number of features instead, which weights a feature with
  one masked cell as much as one with sixty; the cost of the loop is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tabresnet_course.model import NUM_RESERVED_INDICES


class SeedAugmentation:
    """The seed's ``TabularAugmentation``: Gaussian noise, and random categories column by column."""

    def __init__(self, noise_level: float = 0.1, dropout_prob: float = 0.2) -> None:
        self.noise_level = noise_level
        self.dropout_prob = dropout_prob

    def augment_numerical(self, numerical_features: torch.Tensor) -> torch.Tensor:
        """Add Gaussian noise to numerical features."""
        noise = torch.randn_like(numerical_features) * self.noise_level
        return numerical_features + noise

    def augment_categorical(self, categorical_features: torch.Tensor, cardinalities: Sequence[int]) -> torch.Tensor:
        """Randomly replace some categorical features with random (real) categories."""
        augmented = categorical_features.clone()
        mask = torch.rand_like(categorical_features.float()) < self.dropout_prob
        for i, cardinality in enumerate(cardinalities):  # the seed's Python loop over columns
            random_cats = (
                torch.randint(0, cardinality, (categorical_features.size(0),), device=categorical_features.device)
                + NUM_RESERVED_INDICES
            )
            augmented[:, i] = torch.where(mask[:, i], random_cats, categorical_features[:, i])
        return augmented


def seed_nt_xent(embeddings1: torch.Tensor, embeddings2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """The seed's NT-Xent formula: a ``(2B, 2B)`` similarity matrix with ``-inf`` on the diagonal."""
    batch_size = embeddings1.size(0)
    embeddings = torch.cat([embeddings1, embeddings2], dim=0)
    embeddings = F.normalize(embeddings, dim=1)
    similarity_matrix = torch.matmul(embeddings, embeddings.T) / temperature
    labels = torch.cat([torch.arange(batch_size, 2 * batch_size), torch.arange(0, batch_size)], dim=0).to(
        embeddings.device
    )
    mask = torch.eye(2 * batch_size, dtype=torch.bool, device=embeddings.device)
    similarity_matrix = similarity_matrix.masked_fill(mask, float("-inf"))
    return F.cross_entropy(similarity_matrix, labels)


def seed_contrastive_loss(
    model: nn.Module,
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    cardinalities: Sequence[int],
    temperature: float = 0.07,
    augmenter: SeedAugmentation | None = None,
) -> torch.Tensor:
    """The seed's ``contrastive_loss``: two augmented views, two separate forward passes."""
    if augmenter is None:
        augmenter = SeedAugmentation()
    num_aug1 = augmenter.augment_numerical(numerical)
    cat_aug1 = augmenter.augment_categorical(categorical, cardinalities)
    embeddings1 = model(num_aug1, cat_aug1, return_embedding=True)
    num_aug2 = augmenter.augment_numerical(numerical)
    cat_aug2 = augmenter.augment_categorical(categorical, cardinalities)
    embeddings2 = model(num_aug2, cat_aug2, return_embedding=True)
    return seed_nt_xent(embeddings1, embeddings2, temperature)


def seed_mfp_loss(
    model: nn.Module,
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    mask_prob: float = 0.15,
    num_mask: torch.Tensor | None = None,
    cat_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The seed's ``complete_masked_feature_prediction_loss`` with its loop over features.

    ``num_mask``/``cat_mask`` may be given (the tests pass the package's masks to check that
    both losses agree); otherwise they are drawn as the seed draws them.
    """
    if cat_mask is None:
        cat_mask = torch.rand_like(categorical.float()) < mask_prob
    if num_mask is None:
        num_mask = torch.rand_like(numerical) < mask_prob
    masked_numerical, masked_categorical = model.mask_inputs(numerical, categorical, num_mask, cat_mask)
    cat_predictions, num_predictions = model(masked_numerical, masked_categorical)
    cat_loss = torch.zeros((), device=numerical.device)
    for i in range(categorical.size(1)):  # the seed's Python loop over categorical features
        mask_i = cat_mask[:, i]
        if mask_i.sum() > 0:
            pred_i = cat_predictions[:, i, :]
            target_i = categorical[:, i]
            cat_loss = cat_loss + F.cross_entropy(pred_i[mask_i], target_i[mask_i], reduction="sum")
    cat_loss = cat_loss / cat_mask.sum().clamp(min=1)
    if num_mask.any():
        num_loss = F.mse_loss(num_predictions[num_mask], numerical[num_mask])
    else:
        num_loss = torch.zeros((), device=numerical.device)
    return cat_loss + num_loss


class SeedDataset(Dataset):
    """The seed's ``OCSFDataset``: one row per ``__getitem__``."""

    def __init__(self, numerical_data, categorical_data) -> None:
        self.numerical = torch.as_tensor(numerical_data, dtype=torch.float32)
        self.categorical = torch.as_tensor(categorical_data, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.numerical)

    def __getitem__(self, idx: int):
        return self.numerical[idx], self.categorical[idx]


def seed_dataloader(numerical, categorical, batch_size: int = 256, seed: int = 0) -> DataLoader:
    """The seed's ``DataLoader(dataset, batch_size=256, shuffle=True, num_workers=0)``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        SeedDataset(numerical, categorical), batch_size=batch_size, shuffle=True, num_workers=0, generator=generator
    )


def naive_epoch(
    model: nn.Module,
    dataloader: DataLoader,
    optimizer: torch.optim.Optimizer,
    cardinalities: Sequence[int],
    augmenter: SeedAugmentation,
    objective: str = "contrastive",
    temperature: float = 0.07,
    mask_prob: float = 0.15,
    device: str | torch.device = "cpu",
) -> float:
    """One epoch of the seed's ``train_self_supervised`` loop; returns the mean batch loss."""
    epoch_loss, num_batches = 0.0, 0
    for numerical, categorical in dataloader:
        numerical = numerical.to(device)
        categorical = categorical.to(device)
        if objective == "contrastive":
            loss = seed_contrastive_loss(
                model, numerical, categorical, cardinalities, temperature=temperature, augmenter=augmenter
            )
        else:
            loss = seed_mfp_loss(model, numerical, categorical, mask_prob=mask_prob)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        num_batches += 1
    return epoch_loss / num_batches
