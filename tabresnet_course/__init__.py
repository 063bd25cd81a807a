"""tabresnet_course: self-supervised TabularResNet embeddings for OCSF logs.

The package behind the tutorial book in ``book/``; each module is taught by one chapter
(CONTRIBUTING.md has the map). The names below are the ones the README teaches. Each is loaded
from its home module on first use, so that commands which never touch a model (such as
``tabresnet-course generate``) do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

HOMES: dict[str, str] = {
    "MASK_INDEX": "tabresnet_course.model",
    "NUM_RESERVED_INDICES": "tabresnet_course.model",
    "PADDING_INDEX": "tabresnet_course.model",
    "UNKNOWN_INDEX": "tabresnet_course.model",
    "TabularResNet": "tabresnet_course.model",
    "TabularResNetConfig": "tabresnet_course.model",
    "TrainingConfig": "tabresnet_course.training",
    "train_self_supervised": "tabresnet_course.training",
    "read_events": "tabresnet_course.events.files",
    "infer_feature_spec": "tabresnet_course.features.inference",
    "DetectorConfig": "tabresnet_course.detection.config",
    "OCSFAnomalyDetector": "tabresnet_course.detection.detector",
    "train_ocsf_anomaly_detector": "tabresnet_course.detection.detector",
    "generate_ocsf_events": "tabresnet_course.ocsf.generator",
}
"""Each top-level name and the module it lives in."""

__all__ = [*HOMES, "__version__"]


def __getattr__(name: str) -> Any:
    """Import a top-level name's home module the first time the name is asked for."""
    if name in HOMES:
        return getattr(importlib.import_module(HOMES[name]), name)
    raise AttributeError(f"module 'tabresnet_course' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
