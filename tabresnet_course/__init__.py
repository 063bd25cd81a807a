"""tabresnet_course: self-supervised TabularResNet embeddings for OCSF logs.

The package behind the tutorial book in ``book/``; each module is taught by one chapter. The
model names below are loaded on first use, so that commands which never touch a model (such as
``tabresnet-course generate``) do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

MODEL_NAMES = (
    "MASK_INDEX",
    "NUM_RESERVED_INDICES",
    "PADDING_INDEX",
    "UNKNOWN_INDEX",
    "TabularResNet",
    "TabularResNetConfig",
)

__all__ = [*MODEL_NAMES, "__version__"]


def __getattr__(name: str) -> Any:
    """Import ``tabresnet_course.model`` the first time one of its names is asked for."""
    if name in MODEL_NAMES:
        return getattr(importlib.import_module("tabresnet_course.model"), name)
    raise AttributeError(f"module 'tabresnet_course' has no attribute {name!r}")
