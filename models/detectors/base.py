"""The face detector interface: a batch of BGR frames in, one Detections per frame out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from maskwatch.models.detections import Detections


class WeightsError(FileNotFoundError):
    """A weights file is missing or corrupt; the message names the file and the fix."""


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces. ``name`` identifies backend and weights in results and logs."""

    name: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in each BGR uint8 frame; one :class:`Detections` per frame, in order."""
        ...


def require_file(path: Path, detector: str) -> Path:
    """Return ``path`` if it is a non-empty file, else raise :class:`WeightsError` naming the fix."""
    if not path.is_file() or path.stat().st_size == 0:
        state = "is empty" if path.is_file() else "does not exist"
        raise WeightsError(
            f"{detector}: weights file {path} {state}; install it with "
            f"`maskwatch models fetch {detector} --from DIR` or set MASKWATCH_DETECTOR__WEIGHTS_DIR"
        )
    return path
