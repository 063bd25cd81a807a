"""tabresnet_course: self-supervised TabularResNet embeddings for OCSF logs.

The package behind the tutorial book in ``book/``; each module is taught by one chapter.
"""

from tabresnet_course.model import (
    MASK_INDEX,
    NUM_RESERVED_INDICES,
    PADDING_INDEX,
    UNKNOWN_INDEX,
    TabularResNet,
    TabularResNetConfig,
)

__version__ = "0.1.0"

__all__ = [
    "MASK_INDEX",
    "NUM_RESERVED_INDICES",
    "PADDING_INDEX",
    "UNKNOWN_INDEX",
    "TabularResNet",
    "TabularResNetConfig",
    "__version__",
]
