"""Test-time flip: run a detector on each frame and on its mirror image, and merge the two with NMS.

A face the detector half-misses in one view (turned, partly covered by a mask) is often found
in the other, so the union proposes more faces, masked ones most of all (docs/detectors.md:
test-split masked faces with any box at IoU >= 0.5 go from 0.911 to 0.932 with RetinaFace). It
costs a second detector pass per frame; both views go through the inner detector in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskwatch.models.detections import Detections
from maskwatch.models.detectors.base import FaceDetector
from maskwatch.models.detectors.nms import nms

MIRRORED_LANDMARKS = [1, 0, 2, 4, 3]
"""Landmark order after mirroring: the eyes and the mouth corners swap sides (nose stays)."""


def mirror(det: Detections, width: int) -> Detections:
    """Detections of a horizontally flipped frame of ``width`` pixels, mapped back onto the original."""
    boxes = det.boxes.copy()
    boxes[:, 0], boxes[:, 2] = width - det.boxes[:, 2], width - det.boxes[:, 0]
    landmarks = None
    if det.landmarks is not None:
        landmarks = det.landmarks[:, MIRRORED_LANDMARKS].copy()
        landmarks[:, :, 0] = width - landmarks[:, :, 0]
    return Detections(boxes, det.scores, landmarks)


class FlipAugmentedDetector:
    """Wraps a detector: each frame and its mirror in one batch, mirrored boxes mapped back, NMS at ``iou``."""

    def __init__(self, inner: FaceDetector, iou: float) -> None:
        self.inner = inner
        self.iou = iou
        self.name = f"{inner.name}+flip"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        found = self.inner.detect([*frames, *(np.ascontiguousarray(f[:, ::-1]) for f in frames)])
        out = []
        for frame, direct, flipped in zip(frames, found[: len(frames)], found[len(frames) :], strict=True):
            out.append(nms(_concat(direct, mirror(flipped, frame.shape[1])), self.iou))
        return out


def _concat(a: Detections, b: Detections) -> Detections:
    """Both sets of detections; landmarks kept when every non-empty part has them."""
    parts = [d for d in (a, b) if len(d)]
    if len(parts) < 2:
        return parts[0] if parts else a
    landmarks = None
    if all(d.landmarks is not None for d in parts):
        landmarks = np.concatenate([d.landmarks for d in parts])
    return Detections(
        np.concatenate([d.boxes for d in parts]), np.concatenate([d.scores for d in parts]), landmarks
    )
