"""Masked feature prediction (MFP): hide some cells of a row and train the encoder to fill them in.

The task is BERT's masked language modelling (Devlin et al., 2019) applied to table rows, as
in TabTransformer (Huang et al., 2020) and VIME (Yoon et al., 2020). A masked categorical cell
is replaced by the reserved ``MASK_INDEX`` (never by a real category), and a masked numerical
cell by a learned per-feature value, as SAINT (Somepalli et al., 2021) learns mask embeddings.
The loss is cross-entropy on masked categorical cells plus mean squared error on masked
numerical cells. Chapter "Masked feature prediction" teaches this file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from tabresnet_course.augment import draw_uniform
from tabresnet_course.model import MASK_INDEX, NUM_RESERVED_INDICES, TabularResNet, TabularResNetConfig, check_batch

__all__ = [
    "FieldHeads",
    "TabularResNetWithMFP",
    "cell_cross_entropy",
    "mask_features",
    "masked_feature_prediction_loss",
    "reconstruction_report",
]


class FieldHeads(NamedTuple):
    """The prediction head of :class:`TabularResNetWithMFP` split by field (views of its weights):
    categorical column ``j``'s rows for each class of its index table, padded to ``max_table``
    and flagged by ``valid_classes``, then one row per numerical column."""

    categorical_weight: torch.Tensor
    """``(n_cat, max_table, d_model)``"""
    categorical_bias: torch.Tensor
    """``(n_cat, max_table)``"""
    valid_classes: torch.Tensor
    """``(n_cat, max_table)`` booleans: the classes column ``j`` can hold (not ``MASK_INDEX``)."""
    numerical_weight: torch.Tensor
    """``(n_num, d_model)``"""
    numerical_bias: torch.Tensor
    """``(n_num,)``"""


class TabularResNetWithMFP(nn.Module):
    """A :class:`TabularResNet` with prediction heads that reconstruct every feature of a row.

    One linear layer maps the embedding to all predictions at once: for categorical column
    ``j`` a block of ``c_j + NUM_RESERVED_INDICES`` logits (its whole index table, so the
    model can also predict "missing"), then one value per numerical column. That single layer
    is exactly a set of per-feature linear heads, evaluated in one matrix product. The logits
    are laid out as ``(B, n_cat, max_table)``; classes a column cannot hold (past the end of
    its table, and ``MASK_INDEX``, which is never a true value) get the lowest finite logit.

    Args:
        base_model: the encoder being pre-trained.
        categorical_cardinalities: real categories per column; must match ``base_model``.
        num_numerical: number of numerical columns; must match ``base_model``.
    """

    def __init__(self, base_model: TabularResNet, categorical_cardinalities: Sequence[int], num_numerical: int) -> None:
        super().__init__()
        cardinalities = [int(c) for c in categorical_cardinalities]
        if cardinalities != base_model.categorical_cardinalities:
            raise ValueError(
                f"categorical_cardinalities {cardinalities} do not match the base model's "
                f"{base_model.categorical_cardinalities}"
            )
        if num_numerical != base_model.num_numerical_features:
            raise ValueError(
                f"num_numerical {num_numerical} does not match the base model's {base_model.num_numerical_features}"
            )
        self.base_model = base_model
        self.config: TabularResNetConfig = base_model.config
        self.d_model = base_model.d_model
        self.categorical_cardinalities = cardinalities
        self.num_numerical = num_numerical
        table_sizes = torch.tensor([c + NUM_RESERVED_INDICES for c in cardinalities], dtype=torch.long)
        self.num_categorical_logits = int(table_sizes.sum())
        offsets = torch.cumsum(table_sizes, 0) - table_sizes  # (n_cat,) first head output of each column
        classes = torch.arange(int(table_sizes.max()) if cardinalities else 0)  # (max_table,)
        valid = (classes < table_sizes[:, None]) & (classes != MASK_INDEX)  # (n_cat, max_table)
        self.register_buffer("valid_classes", valid, persistent=False)
        self.register_buffer("logit_index", torch.where(valid, offsets[:, None] + classes, 0), persistent=False)
        self.prediction_head = nn.Linear(self.d_model, self.num_categorical_logits + num_numerical)
        # SAINT-style learned mask: a masked numerical cell shows this value instead of its own.
        self.numerical_mask_value = nn.Parameter(torch.zeros(num_numerical))

    @classmethod
    def from_base_config(cls, config: TabularResNetConfig | dict[str, Any]) -> TabularResNetWithMFP:
        """Rebuild the wrapper (untrained) from its base model's configuration, e.g. to load a
        ``state_dict`` saved from a wrapper whose ``config.to_dict()`` was stored as JSON."""
        base = TabularResNet.from_config(config)
        return cls(base, base.categorical_cardinalities, base.num_numerical_features)

    def field_heads(self) -> FieldHeads:
        """Each field's rows of the prediction head (:class:`FieldHeads`), the layout
        :meth:`forward` reads its logits in, for evaluating one field's head on its own
        (chapter "Masked feature prediction": the per-field surprisal)."""
        weight, bias = self.prediction_head.weight, self.prediction_head.bias  # (n_logits + n_num, d), (...)
        return FieldHeads(
            categorical_weight=weight[self.logit_index],
            categorical_bias=bias[self.logit_index],
            valid_classes=self.valid_classes,
            numerical_weight=weight[self.num_categorical_logits :],
            numerical_bias=bias[self.num_categorical_logits :],
        )

    def embed(self, numerical: torch.Tensor, categorical: torch.Tensor | None) -> torch.Tensor:
        """The base model's embeddings ``(B, d_model)``."""
        return self.base_model.embed(numerical, categorical)

    def mask_inputs(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor,
        num_mask: torch.Tensor,
        cat_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hide the masked cells: categorical ones become ``MASK_INDEX``, numerical ones the
        learned mask value of their column. Shapes are unchanged."""
        if (categorical == MASK_INDEX).any():
            raise ValueError(f"categorical input already holds MASK_INDEX ({MASK_INDEX}) before masking")
        mask_value = self.numerical_mask_value.to(numerical.dtype)  # (n_num,)
        return torch.where(num_mask, mask_value, numerical), categorical.masked_fill(cat_mask, MASK_INDEX)

    def forward(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor | None,
        return_embedding: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``(B, d_model)`` when ``return_embedding`` (so the wrapper also works with
        :func:`tabresnet_course.contrastive.contrastive_loss`), otherwise
        ``(categorical_logits (B, n_cat, max_table), numerical_predictions (B, n_num))``."""
        embedding = self.base_model(numerical, categorical, return_embedding=True)  # (B, d_model)
        if return_embedding:
            return embedding
        outputs = self.prediction_head(embedding)  # (B, n_cat_logits + n_num)
        flat_logits, numerical_predictions = outputs.split([self.num_categorical_logits, self.num_numerical], dim=1)
        # index_select (not flat_logits[:, self.logit_index]): same values, much faster backward.
        picked = flat_logits.index_select(1, self.logit_index.flatten())  # (B, n_cat * max_table)
        logits = picked.view(flat_logits.shape[0], *self.logit_index.shape)  # (B, n_cat, max_table)
        logits = logits.masked_fill(~self.valid_classes, torch.finfo(logits.dtype).min)
        return logits, numerical_predictions


def mask_features(
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the cells to hide: each cell independently with probability ``mask_prob``.

    Returns boolean masks ``(B, n_num)`` and ``(B, n_cat)``;
    :meth:`TabularResNetWithMFP.mask_inputs` applies them.
    """
    check_batch(numerical, categorical)
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    num_numerical = numerical.shape[1]
    shape = (numerical.shape[0], num_numerical + categorical.shape[1])
    mask = draw_uniform(shape, numerical.device, generator) < mask_prob  # (B, n_num + n_cat)
    return mask[:, :num_numerical], mask[:, num_numerical:]


def cell_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every categorical cell: logits ``(..., T)``, targets ``(...)`` -> ``(...)``
    (e.g. ``(B, n_cat, T)`` -> ``(B, n_cat)``, or ``(M, T)`` -> ``(M,)``), computed in float32."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (..., T)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the cells where ``mask`` is true; a graph-connected 0 if none."""
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def masked_feature_prediction_loss(
    model: TabularResNetWithMFP,
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    mask_prob: float = 0.15,
    numerical_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MFP loss of one batch ``(B, n_num)``, ``(B, n_cat)``.

    The loss is the mean cross-entropy over the masked categorical cells plus
    ``numerical_weight`` times the mean squared error over the masked numerical cells (in the
    standardised units of the inputs). Unmasked cells do not contribute; a kind of feature with
    no masked cell contributes 0, so the loss stays finite (and differentiable) even when
    nothing is masked.
    """
    num_mask, cat_mask = mask_features(numerical, categorical, mask_prob, generator)
    masked_numerical, masked_categorical = model.mask_inputs(numerical, categorical, num_mask, cat_mask)
    logits, predictions = model(masked_numerical, masked_categorical)  # (B, n_cat, T), (B, n_num)
    # Cross-entropy of the masked cells only, (M, T) logits: a log-softmax over every cell would
    # be thrown away for the ~85% that are not masked.
    masked_cells = cell_cross_entropy(logits[cat_mask], categorical[cat_mask])  # (M,)
    categorical_loss = masked_cells.sum() / cat_mask.sum().clamp(min=1)
    numerical_loss = masked_mean((predictions.float() - numerical.float()) ** 2, num_mask)
    return categorical_loss + numerical_weight * numerical_loss


def report_rows(
    names: Sequence[str] | None,
    kind: str,
    metric: str,
    model_scores: torch.Tensor,
    baseline_scores: torch.Tensor,
    mask: torch.Tensor,
) -> pd.DataFrame:
    """One report row per column: scores ``(B, k)`` averaged over the masked cells of each
    column (NaN for a column with no masked cell)."""
    counts = mask.sum(0)  # (k,)

    def column_means(scores: torch.Tensor) -> list[float]:
        means = torch.where(mask, scores.float(), 0.0).sum(0) / counts.clamp(min=1)  # (k,)
        return torch.where(counts > 0, means, float("nan")).tolist()

    return pd.DataFrame(
        {
            "feature": list(names) if names is not None else [f"{kind}_{j}" for j in range(mask.shape[1])],
            "kind": kind,
            "masked_cells": counts.tolist(),
            "metric": metric,
            "model": column_means(model_scores),
            "baseline": column_means(baseline_scores),
        }
    )


def reconstruction_report(
    model: TabularResNetWithMFP,
    numerical: torch.Tensor,
    categorical: torch.Tensor,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
    numerical_names: Sequence[str] | None = None,
    categorical_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """How well the model fills in masked cells, per feature, next to a trivial baseline.

    One row per feature with the number of masked cells, the model's score on them (accuracy
    for a categorical column, mean squared error for a numerical one) and the score of the
    trivial guess (the column's most frequent index, or the column's mean, both taken from the
    batch itself). Features with no masked cell get NaN. Used in chapter "Masked feature
    prediction" for the before/after table.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        num_mask, cat_mask = mask_features(numerical, categorical, mask_prob, generator)
        logits, predictions = model(*model.mask_inputs(numerical, categorical, num_mask, cat_mask))
    model.train(was_training)
    frames = []
    if categorical.shape[1]:
        majority = torch.mode(categorical, dim=0).values  # (n_cat,)
        hits = logits.argmax(-1) == categorical  # (B, n_cat)
        frames.append(
            report_rows(categorical_names, "categorical", "accuracy", hits, categorical == majority, cat_mask)
        )
    if numerical.shape[1]:
        errors = (predictions - numerical) ** 2  # (B, n_num)
        mean_errors = (numerical - numerical.mean(0)) ** 2  # (B, n_num)
        frames.append(report_rows(numerical_names, "numerical", "mse", errors, mean_errors, num_mask))
    return pd.concat(frames, ignore_index=True)
