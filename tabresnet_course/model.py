"""The TabularResNet encoder: a residual MLP for mixed numerical and categorical rows.

The block layout follows the ResNet baseline of Gorishniy et al. (2021), "Revisiting deep
learning models for tabular data", which itself adapts the pre-activation residual block of
He et al. (2016). Chapter "The TabularResNet model" walks through this file.

Reserved categorical indices
----------------------------
Every categorical column is stored as integer indices into its own embedding table. The first
``NUM_RESERVED_INDICES`` rows of every table are reserved, and every module of the package uses
this one scheme, so that a mask or a missing value can never collide with a real category:

====================  =====  ===========================================================
name                  index  meaning
====================  =====  ===========================================================
``PADDING_INDEX``     0      value missing in the record (absent field, null)
``MASK_INDEX``        1      value hidden on purpose by masked feature prediction
``UNKNOWN_INDEX``     2      value present but not seen when the preprocessor was fitted
real categories       3 ...  the k-th real category (k = 0, 1, ...) is stored as ``k + 3``
====================  =====  ===========================================================

A column with cardinality ``c`` (``c`` real categories) therefore has an embedding table of
``c + NUM_RESERVED_INDICES`` rows and accepts indices ``0 .. c + 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "Batch",
    "DROPOUT_RESOLUTION",
    "EMBEDDING_BATCH_SIZE",
    "FastDropout",
    "MASK_INDEX",
    "NUM_RESERVED_INDICES",
    "PADDING_INDEX",
    "ResidualBlock",
    "TabularResNet",
    "TabularResNetConfig",
    "UNKNOWN_INDEX",
    "check_batch",
    "dropout_scale",
    "embed_in_batches",
    "encode_category_codes",
    "make_norm",
]

Batch = tuple[torch.Tensor, torch.Tensor]
"""One batch of model input: ``(numerical (B, n_num) float32, categorical (B, n_cat) int64)``."""

EMBEDDING_BATCH_SIZE = 4096
"""Rows per forward pass when a whole table is embedded (:func:`embed_in_batches`)."""

PADDING_INDEX = 0
MASK_INDEX = 1
UNKNOWN_INDEX = 2
NUM_RESERVED_INDICES = 3


def check_batch(numerical: torch.Tensor, categorical: torch.Tensor) -> None:
    """Raise ``ValueError`` unless a batch is two 2-D tensors with the same number of rows and
    integer categorical indices; every module that takes a batch calls this first."""
    if numerical.dim() != 2 or categorical.dim() != 2:
        raise ValueError(
            f"numerical and categorical must be 2-D (rows, columns), got shapes "
            f"{tuple(numerical.shape)} and {tuple(categorical.shape)}"
        )
    if numerical.shape[0] != categorical.shape[0]:
        raise ValueError(
            f"numerical and categorical disagree on the number of rows: {numerical.shape[0]} != {categorical.shape[0]}"
        )
    if categorical.is_floating_point() or categorical.is_complex() or categorical.dtype == torch.bool:
        raise ValueError(f"categorical must hold integer indices, got dtype {categorical.dtype}")


def encode_category_codes(codes: torch.Tensor) -> torch.Tensor:
    """Shift zero-based real category codes past the reserved indices (code ``k`` -> ``k + 3``)."""
    return codes + NUM_RESERVED_INDICES


@dataclass
class TabularResNetConfig:
    """Every hyperparameter of a :class:`TabularResNet`; round-trips through plain JSON."""

    num_numerical_features: int
    categorical_cardinalities: list[int] = field(default_factory=list)
    d_model: int = 256
    num_blocks: int = 6
    dropout: float = 0.1
    num_classes: int | None = None
    categorical_embedding_dim: int = 16
    hidden_factor: float = 2.0
    normalization: str = "layernorm"

    def __post_init__(self) -> None:
        self.categorical_cardinalities = [int(c) for c in self.categorical_cardinalities]
        if self.num_numerical_features < 0:
            raise ValueError(f"num_numerical_features must be >= 0, got {self.num_numerical_features}")
        if any(c < 1 for c in self.categorical_cardinalities):
            raise ValueError(f"categorical_cardinalities must all be >= 1, got {self.categorical_cardinalities}")
        if self.num_numerical_features == 0 and not self.categorical_cardinalities:
            raise ValueError("a TabularResNet needs at least one numerical or categorical feature")
        if self.normalization not in ("layernorm", "batchnorm"):
            raise ValueError(f"normalization must be 'layernorm' or 'batchnorm', got {self.normalization!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TabularResNetConfig:
        return cls(**values)


def make_norm(kind: str, width: int) -> nn.Module:
    """The normalisation layer used throughout the network: ``LayerNorm`` or ``BatchNorm1d``."""
    return nn.LayerNorm(width) if kind == "layernorm" else nn.BatchNorm1d(width)


DROPOUT_RESOLUTION = 2**15
"""Drop probabilities of :class:`FastDropout` are multiples of ``1 / DROPOUT_RESOLUTION``."""


def dropout_scale(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A dropout mask already scaled: each entry is ``0`` with probability ``p`` (rounded to a
    multiple of ``1 / DROPOUT_RESOLUTION``) and ``1 / (1 - p)`` otherwise, independently.

    One 64-bit random word from the default generator gives four 16-bit draws, each compared on
    its low 15 bits (the top one's sign bit is always zero), so the mask costs a quarter of the
    random numbers, and much less time, than ``torch.bernoulli``'s one float draw per entry.
    """
    count = shape.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_()  # (ceil(count / 4),)
    draws = words.view(torch.int16)[:count].view(shape) & (DROPOUT_RESOLUTION - 1)  # (*shape,) in [0, 2^15)
    keep = draws >= round(p * DROPOUT_RESOLUTION)
    scale = torch.full((), 1.0 / (1.0 - p), dtype=dtype, device=device)
    return torch.where(keep, scale, torch.zeros((), dtype=dtype, device=device))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper random mask (:func:`dropout_scale`): the same distribution,
    the drop probability rounded to a multiple of ``1 / 32768`` (0.1 becomes 0.100006). The
    mask is multiplied in, so autograd keeps it for the backward pass as ``nn.Dropout`` does.
    Taught in chapter "Training best practices" (the dropout mask was a third of a training step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        return x * dropout_scale(x.shape, self.p, x.dtype, x.device)


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(Dropout(ReLU(Linear(Norm(x))))))``: Gorishniy et al.'s ResNet block."""

    def __init__(self, d_model: int, d_hidden: int, dropout: float, normalization: str) -> None:
        super().__init__()
        self.norm = make_norm(normalization, d_model)
        self.linear_in = nn.Linear(d_model, d_hidden)
        self.linear_out = nn.Linear(d_hidden, d_model)
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, d_model)
        h = self.dropout(torch.relu(self.linear_in(self.norm(x))))  # (B, d_hidden)
        return x + self.dropout(self.linear_out(h))  # (B, d_model)


class TabularResNet(nn.Module):
    """Residual MLP encoder that maps one table row to a ``d_model``-dimensional embedding.

    The defaults of the arguments are those of :class:`TabularResNetConfig`, written there once.

    Args:
        num_numerical_features: number of numerical columns (may be 0).
        categorical_cardinalities: number of *real* categories per categorical column (may be
            empty); each table gets ``NUM_RESERVED_INDICES`` extra rows, see the module docstring.
        d_model: width of the residual stream, which is also the embedding size.
        num_blocks: number of residual blocks.
        dropout: dropout inside the blocks.
        num_classes: ``None`` for an embedding model, or the number of classes of a
            classification head ``Linear(ReLU(embedding))``.
        categorical_embedding_dim: width of each categorical column's embedding.
        hidden_factor: the hidden width of a block is ``hidden_factor * d_model``.
        normalization: ``"layernorm"`` (default; per-row, batch-independent) or ``"batchnorm"``
            (the paper's choice).
    """

    def __init__(
        self,
        num_numerical_features: int,
        categorical_cardinalities: Sequence[int] = (),
        d_model: int = TabularResNetConfig.d_model,
        num_blocks: int = TabularResNetConfig.num_blocks,
        dropout: float = TabularResNetConfig.dropout,
        num_classes: int | None = TabularResNetConfig.num_classes,
        *,
        categorical_embedding_dim: int = TabularResNetConfig.categorical_embedding_dim,
        hidden_factor: float = TabularResNetConfig.hidden_factor,
        normalization: str = TabularResNetConfig.normalization,
    ) -> None:
        super().__init__()
        self.config = TabularResNetConfig(
            num_numerical_features=num_numerical_features,
            categorical_cardinalities=list(categorical_cardinalities),
            d_model=d_model,
            num_blocks=num_blocks,
            dropout=dropout,
            num_classes=num_classes,
            categorical_embedding_dim=categorical_embedding_dim,
            hidden_factor=hidden_factor,
            normalization=normalization,
        )
        self.d_model = d_model
        self.num_numerical_features = num_numerical_features
        self.categorical_cardinalities = list(self.config.categorical_cardinalities)
        table_sizes = torch.tensor([c + NUM_RESERVED_INDICES for c in self.categorical_cardinalities], dtype=torch.long)
        # All categorical columns share one embedding matrix; column j's rows start at offsets[j].
        offsets = torch.cumsum(table_sizes, 0) - table_sizes
        self.register_buffer("table_sizes", table_sizes, persistent=False)
        self.register_buffer("category_offsets", offsets, persistent=False)
        self.category_embedding = nn.Embedding(int(table_sizes.sum()), categorical_embedding_dim)
        input_width = num_numerical_features + len(self.categorical_cardinalities) * categorical_embedding_dim
        self.input_projection = nn.Linear(input_width, d_model)
        d_hidden = int(hidden_factor * d_model)
        self.blocks = nn.Sequential(
            *[ResidualBlock(d_model, d_hidden, dropout, normalization) for _ in range(num_blocks)]
        )
        self.output_norm = make_norm(normalization, d_model)
        self.classifier = nn.Linear(d_model, num_classes) if num_classes is not None else None

    @classmethod
    def from_config(cls, config: TabularResNetConfig | dict[str, Any]) -> TabularResNet:
        """Build a model from a :class:`TabularResNetConfig` or its ``to_dict()`` form."""
        if isinstance(config, dict):
            config = TabularResNetConfig.from_dict(config)
        values = config.to_dict()
        return cls(
            values.pop("num_numerical_features"),
            values.pop("categorical_cardinalities"),
            **values,
        )

    def get_num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_inputs(self, numerical: torch.Tensor, categorical: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the column when a batch does not fit this model."""
        check_batch(numerical, categorical)
        if numerical.shape[1] != self.num_numerical_features:
            raise ValueError(
                f"numerical must have shape (batch, {self.num_numerical_features}), got {tuple(numerical.shape)}"
            )
        num_cat = len(self.categorical_cardinalities)
        if categorical.shape[1] != num_cat:
            raise ValueError(f"categorical must have shape (batch, {num_cat}), got {tuple(categorical.shape)}")
        if categorical.numel():
            bad = (categorical < 0) | (categorical >= self.table_sizes)
            if bad.any():
                column = int(bad.any(dim=0).nonzero()[0])
                raise ValueError(
                    f"categorical column {column} holds index "
                    f"{int(categorical[:, column][bad[:, column]][0])}, outside "
                    f"0..{int(self.table_sizes[column]) - 1} (cardinality "
                    f"{self.categorical_cardinalities[column]} + {NUM_RESERVED_INDICES} reserved)"
                )

    def embed(self, numerical: torch.Tensor, categorical: torch.Tensor | None) -> torch.Tensor:
        """Map a batch to embeddings of shape ``(batch, d_model)``."""
        if categorical is None:
            categorical = torch.zeros(numerical.shape[0], 0, dtype=torch.long, device=numerical.device)
        self.check_inputs(numerical, categorical)
        batch = numerical.shape[0]
        cat_vectors = self.category_embedding(categorical + self.category_offsets)  # (B, n_cat, d_cat)
        x = torch.cat([numerical, cat_vectors.reshape(batch, -1)], dim=1)  # (B, n_num + n_cat * d_cat)
        x = self.blocks(self.input_projection(x))  # (B, d_model)
        return self.output_norm(x)  # (B, d_model)

    def forward(
        self,
        numerical: torch.Tensor,
        categorical: torch.Tensor | None = None,
        return_embedding: bool = False,
    ) -> torch.Tensor:
        """Embeddings ``(batch, d_model)``, or class logits ``(batch, num_classes)`` when the model
        has a classifier and ``return_embedding`` is false."""
        embedding = self.embed(numerical, categorical)
        if self.classifier is None or return_embedding:
            return embedding
        return self.classifier(torch.relu(embedding))  # (B, num_classes)


@torch.no_grad()
def embed_in_batches(
    model: TabularResNet,
    numerical: np.ndarray | torch.Tensor,
    categorical: np.ndarray | torch.Tensor,
    batch_size: int = EMBEDDING_BATCH_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Embeddings ``(N, d_model)`` float32 of a whole table, in eval mode and in blocks of
    ``batch_size`` rows (a tqdm bar on stderr when ``progress``); the model's training mode is
    restored afterwards. Used by the chapters and by the detector.

    Every forward pass has the same shape: the last block is padded to ``batch_size`` rows
    (zeros, missing categories) and the padding dropped. A matrix product's last bits depend on
    how many rows it multiplies, so without the padding a row's embedding would change with the
    rows embedded beside it; with it, a row gets the same bits in any grouping, which is what
    lets a Spark job split a table into arbitrary partitions and still reproduce the
    single-machine scores (chapter "The OCSF pipeline", :mod:`tabresnet_course.spark`)."""
    size = int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    numerical_t = torch.as_tensor(numerical, dtype=torch.float32)  # (N, n_num)
    categorical_t = torch.as_tensor(categorical, dtype=torch.long)  # (N, n_cat)
    rows = len(numerical_t)
    if rows == 0:
        return np.zeros((0, model.d_model), dtype=np.float32)
    padding = -rows % size
    numerical_t = torch.cat([numerical_t, numerical_t.new_zeros(padding, numerical_t.shape[1])])  # (N + pad, n_num)
    categorical_t = torch.cat(
        [categorical_t, categorical_t.new_full((padding, categorical_t.shape[1]), PADDING_INDEX)]
    )  # (N + pad, n_cat)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = zip(numerical_t.split(size), categorical_t.split(size))
    try:
        chunks = [
            model(num.to(device), cat.to(device), return_embedding=True).float().cpu()  # (batch_size, d_model)
            for num, cat in tqdm(
                batches, total=len(numerical_t) // size, desc="embedding", disable=not progress, leave=False
            )
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)[:rows].numpy()  # (N, d_model)
