"""Training checkpoints: what identifies one, and rebuilding the trained model it holds.

:class:`~tabresnet_course.training.Trainer` writes ``best.pt`` and ``last.pt`` (atomically, with
:mod:`tabresnet_course.artifacts`) holding its full state under :data:`CHECKPOINT_KIND` and the
model's class and configuration (:func:`model_description`); :func:`load_trained_model` rebuilds
the model from them. Chapter "The complete training loop" teaches this file.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from tabresnet_course.artifacts import load_checkpoint
from tabresnet_course.errors import InputError, collapse_whitespace
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import TabularResNet

__all__ = ["CHECKPOINT_KIND", "load_trained_model", "model_description"]

CHECKPOINT_KIND = "tabresnet_course.training_checkpoint"
"""The ``kind`` of a training checkpoint (what :meth:`~tabresnet_course.training.Trainer.fit`
resumes from)."""


def model_description(model: nn.Module) -> dict[str, Any]:
    """Class name and plain-dict configuration of a model, as stored in checkpoints."""
    config = getattr(model, "config", None)
    return {
        "model_class": type(model).__name__,
        "model_config": config.to_dict() if hasattr(config, "to_dict") else None,
    }


def load_trained_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored in a training checkpoint (``best.pt`` or ``last.pt``) with its weights."""
    checkpoint = load_checkpoint(path, map_location)
    builders = {
        "TabularResNet": TabularResNet.from_config,
        "TabularResNetWithMFP": TabularResNetWithMFP.from_base_config,
    }
    name, config = checkpoint.get("model_class"), checkpoint.get("model_config")
    if name not in builders or config is None:
        raise InputError(f"{path} holds a {name!r} model without a stored configuration; cannot rebuild it")
    try:
        model = builders[name](config)
        model.load_state_dict(checkpoint["model_state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # edited or damaged configuration
        reason = collapse_whitespace(error)[:300]
        raise InputError(
            f"{path}: its model_state does not fit its model_config: {type(error).__name__}: {reason}"
        ) from None
    return model
