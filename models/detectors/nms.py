"""Non-maximum suppression on :class:`Faces` (OpenCV's, which every backend already has)."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.core.faces import Faces


def nms(faces: Faces, iou: float) -> Faces:
    """Keep the best-scoring box of each cluster overlapping by more than ``iou``, best first."""
    if len(faces) < 2:
        return faces
    xywh = np.column_stack([faces.boxes[:, :2], faces.boxes[:, 2:] - faces.boxes[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), faces.scores.tolist(), float(faces.scores.min()) - 1e-6, iou)
    return faces[np.asarray(keep, dtype=int).ravel()]


def resize_long_side(frame: np.ndarray, long_side: int | None) -> tuple[np.ndarray, float]:
    """``frame`` resized so its long side is ``long_side`` (None: unchanged), and the scale applied."""
    h, w = frame.shape[:2]
    if not long_side or max(h, w) == long_side:
        return frame, 1.0
    scale = long_side / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=interp), scale
