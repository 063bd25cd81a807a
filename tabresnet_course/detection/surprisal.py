"""Masked-feature-prediction surprisal: how unexpected is each field of an event given the others?

A model pre-trained with masked feature prediction (:class:`~tabresnet_course.mfp.TabularResNetWithMFP`)
predicts a hidden cell from the rest of the row. Hiding one field at a time and reading off the
negative log-likelihood of the value actually observed gives a per-field *surprisal* in nats:
``-log p(value | other fields)`` for a categorical field, and a Gaussian negative log-likelihood
``0.5 * log(2 pi s^2) + (x - x_hat)^2 / (2 s^2)`` for a numerical one, with ``s^2`` the field's
mean squared prediction error on the reference. The sum over fields is an anomaly score; the
per-field values say which fields made an event strange. Chapter "Masked feature prediction"
proposes this score; the study (``python -m tabresnet_course.study``) measures it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tabresnet_course.detection.base import Scorer
from tabresnet_course.mfp import TabularResNetWithMFP, cell_cross_entropy
from tabresnet_course.model import check_batch

__all__ = ["MIN_VARIANCE", "MFPSurprisalScorer"]

MIN_VARIANCE = 1e-4
"""Floor of a numerical field's error variance (a field the model predicts perfectly on the
reference would otherwise make any deviation infinitely surprising)."""


class MFPSurprisalScorer(Scorer):
    """Sum of per-field MFP surprisals (higher = stranger), with ``fit`` / ``score`` taking
    ``(numerical (N, n_num), categorical (N, n_cat))`` pairs from the detector's preprocessor.

    ``fit(reference)`` estimates each numerical field's error variance on the reference;
    :meth:`field_surprisal` returns the ``(N, n_num + n_cat)`` matrix (numerical fields first, in
    column order, then categorical ones), :meth:`score` its row sums. Each field is masked for
    every row of a chunk at once: one forward pass over ``n_fields * rows`` masked copies, with
    ``rows`` chosen so the logits stay under ``max_logits`` numbers. Deterministic (eval mode).

    Args:
        model: a trained MFP model; it is put in eval mode.
        field_names: optional names of the fields, numerical then categorical.
        max_logits: memory bound of one forward pass, in logit values.
    """

    def __init__(
        self, model: TabularResNetWithMFP, field_names: Sequence[str] | None = None, max_logits: int = 2**23
    ) -> None:
        if not isinstance(model, TabularResNetWithMFP):
            raise TypeError(f"model must be a TabularResNetWithMFP, got {type(model).__name__}")
        num_fields = model.num_numerical + len(model.categorical_cardinalities)
        if field_names is not None and len(field_names) != num_fields:
            raise ValueError(f"field_names has {len(field_names)} names for {num_fields} fields")
        self.model = model.eval()
        self.field_names = field_names
        self.max_logits = max_logits

    @property
    def num_numerical(self) -> int:
        """Numerical fields (the model's)."""
        return self.model.num_numerical

    @property
    def num_categorical(self) -> int:
        """Categorical fields (the model's)."""
        return len(self.model.categorical_cardinalities)

    @property
    def num_fields(self) -> int:
        """All fields, numerical then categorical."""
        return self.num_numerical + self.num_categorical

    def _check_pair(self, data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(numerical, categorical)`` as float32 / int64 tensors after checking their shapes."""
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"{name} must be a (numerical, categorical) pair of arrays")
        numerical = torch.as_tensor(np.asarray(data[0]), dtype=torch.float32)  # (N, n_num)
        categorical = torch.as_tensor(np.asarray(data[1]), dtype=torch.long)  # (N, n_cat)
        if numerical.ndim != 2 or numerical.shape[1] != self.num_numerical:
            raise ValueError(
                f"{name} numerical must have shape (N, {self.num_numerical}), got {tuple(numerical.shape)}"
            )
        if categorical.ndim != 2 or categorical.shape[1] != self.num_categorical:
            raise ValueError(
                f"{name} categorical must have shape (N, {self.num_categorical}), got {tuple(categorical.shape)}"
            )
        if not torch.isfinite(numerical).all():
            raise ValueError(f"{name} numerical holds NaN or infinite values")
        check_batch(numerical, categorical)
        return numerical, categorical

    @torch.no_grad()
    def masked_predictions(
        self, numerical: torch.Tensor, categorical: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Categorical NLL ``(N, n_cat)`` and numerical squared error ``(N, n_num)`` of every field,
        each computed with only that field masked.

        Copy ``f`` of a chunk has field ``f`` masked; all copies go through the encoder in one
        pass. Only the masked field's head is evaluated for each copy (the rows of the
        prediction head that :meth:`TabularResNetWithMFP.forward` would pick for that field),
        which is what keeps this affordable: the full head has ``n_cat * max_table`` logits."""
        model = self.model
        device = next(model.parameters()).device
        fields, n_num = self.num_fields, self.num_numerical
        heads = model.field_heads()  # each field's rows of the prediction head
        rows = max(1, int(self.max_logits) // max(1, fields * max(model.d_model, heads.valid_classes.shape[-1])))
        eye = torch.eye(fields, dtype=torch.bool, device=device)  # (F, F): copy f masks field f
        nll_chunks, error_chunks = [], []
        for num, cat in zip(numerical.split(rows), categorical.split(rows)):
            num, cat = num.to(device), cat.to(device)
            b = len(num)
            mask = eye.repeat_interleave(b, dim=0)  # (F * b, F), copy f = rows f*b .. f*b + b - 1
            masked = model.mask_inputs(num.repeat(fields, 1), cat.repeat(fields, 1), mask[:, :n_num], mask[:, n_num:])
            embedding = model.embed(*masked).float().view(fields, b, -1)  # (F, b, d)
            logits = torch.baddbmm(
                heads.categorical_bias[:, None, :], embedding[n_num:], heads.categorical_weight.transpose(1, 2)
            )  # (n_cat, b, T)
            logits = logits.masked_fill(~heads.valid_classes[:, None, :], torch.finfo(logits.dtype).min)
            nll_chunks.append(cell_cross_entropy(logits, cat.T).T.cpu())  # (b, n_cat)
            predictions = torch.einsum("fbd,fd->fb", embedding[:n_num], heads.numerical_weight)  # (n_num, b)
            predictions = predictions + heads.numerical_bias[:, None]
            error_chunks.append(((predictions.T - num.float()) ** 2).cpu())  # (b, n_num)
        return torch.cat(nll_chunks), torch.cat(error_chunks)

    def fit(self, reference: Any) -> MFPSurprisalScorer:
        """Estimate each numerical field's error variance ``s^2`` on the reference pair."""
        numerical, categorical = self._check_pair(reference, "reference")
        _, errors = self.masked_predictions(numerical, categorical)  # (N, n_num)
        self.variance_ = errors.double().mean(0).clamp(min=MIN_VARIANCE).numpy()  # (n_num,)
        return self

    def field_surprisal(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """``(N, n_num + n_cat)`` surprisal in nats of each field given the others."""
        self.check_fitted()
        numerical_t, categorical_t = self._check_pair((numerical, categorical), "query")
        nll, errors = self.masked_predictions(numerical_t, categorical_t)
        variance = self.variance_[None, :]  # (1, n_num)
        gaussian = 0.5 * np.log(2 * math.pi * variance) + errors.double().numpy() / (2 * variance)  # (N, n_num)
        return np.hstack([gaussian, nll.double().numpy()])

    def score(self, query: Any) -> np.ndarray:
        """``(N,)`` total surprisal of each row of the ``(numerical, categorical)`` pair."""
        if not isinstance(query, (tuple, list)) or len(query) != 2:
            raise ValueError("query must be a (numerical, categorical) pair of arrays")
        return self.field_surprisal(query[0], query[1]).sum(axis=1)
