"""The mask classifier interface and its backends: N face crops in, N probability rows out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from maskwatch.core.labels import CLASSES

DEFAULT_MODEL_PATH = Path(__file__).with_name("mask_classifier.keras")


@runtime_checkable
class MaskClassifier(Protocol):
    """Classifies face crops; rows of ``predict`` follow :data:`models.labels.CLASSES`."""

    name: str
    classes: tuple[str, ...]
    placeholder: bool

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, len(classes)) float32 probabilities for N BGR uint8 crops, in one batched call."""
        ...


class PlaceholderClassifier:
    """Not a model: gives every face uniform probabilities and says so (``placeholder = True``)."""

    name = "placeholder"
    classes = CLASSES
    placeholder = True

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.full((len(crops), len(self.classes)), 1.0 / len(self.classes), dtype=np.float32)
