"""Contrastive self-supervised learning: the NT-Xent loss and its use with a tabular encoder.

NT-Xent ("normalised temperature-scaled cross-entropy") is the loss of SimCLR (Chen et al.,
2020); SCARF (Bahri et al., 2022) applies it to tables with the views of
:class:`tabresnet_course.augment.MarginalResampling`. Chapter "Contrastive learning" teaches
this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tabresnet_course.augment import MarginalResampling, TabularAugmentation

__all__ = [
    "contrastive_loss",
    "nt_xent_loss",
]


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent loss of two batches of embeddings, where row ``i`` of ``z1`` and of ``z2`` are
    two views of the same record.

    Each of the ``2N`` views is classified among the other ``2N - 1`` views (its own
    similarity is removed), with its partner as the correct class; the cross-entropy is
    averaged over all ``2N`` views, i.e. over both orderings of the pair. The similarities are
    computed in float32 with autocast off, so the loss is safe inside ``torch.autocast``.
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both have shape (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"NT-Xent needs at least 2 records (the others are the negatives), got {n}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, D) unit vectors
        similarity = z @ z.T / temperature  # (2N, 2N) cosine similarity / temperature
    # Drop the diagonal (self-similarity) instead of filling it with -inf: (2N, 2N - 1). In the
    # flattened matrix the diagonal entries sit every 2N + 1 places, so after skipping entry 0 each
    # row of a (2N - 1, 2N + 1) view ends with one; slicing that column off removes them all
    # without a boolean mask (whose nonzero and scatter-backward are slow).
    m = 2 * n
    logits = similarity.flatten()[1:].view(m - 1, m + 1)[:, :-1].reshape(m, m - 1)
    # Row i < N has its partner at column N + i, which moves to N + i - 1 once column i is gone;
    # row N + i has its partner at column i < N + i, which does not move.
    positives = torch.cat([torch.arange(n - 1, 2 * n - 1, device=z.device), torch.arange(n, device=z.device)])  # (2N,)
    return F.cross_entropy(logits, positives)


def contrastive_loss(
    model: nn.Module,
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    cardinalities: Sequence[int] | torch.Tensor,
    temperature: float = 1.0,
    augmenter: TabularAugmentation | MarginalResampling | None = None,
) -> torch.Tensor:
    """SimCLR-style loss of a tabular encoder on one batch ``(B, n_num)``, ``(B, n_cat)``.

    Makes two views with ``augmenter`` (default: :class:`MarginalResampling`, SCARF's clean +
    corrupted pair), embeds both in one forward pass of ``2B`` rows through
    ``model(num, cat, return_embedding=True)`` and returns :func:`nt_xent_loss` of the halves.
    One pass of the stacked views equals two separate passes when the model normalises per row
    (the default ``normalization="layernorm"``); with ``normalization="batchnorm"`` the two
    views share the batch statistics of the stacked batch in training mode.
    """
    augmenter = augmenter if augmenter is not None else MarginalResampling()
    (num1, cat1), (num2, cat2) = augmenter.two_views(numerical, categorical, cardinalities)
    batch = numerical.shape[0]
    embeddings = model(torch.cat([num1, num2]), torch.cat([cat1, cat2]), return_embedding=True)  # (2B, d_model)
    return nt_xent_loss(embeddings[:batch], embeddings[batch:], temperature)
