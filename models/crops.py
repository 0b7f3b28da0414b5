"""Cutting face crops out of frames: vectorised box arithmetic, one resize per face."""

from __future__ import annotations

import cv2
import numpy as np


def expand_boxes(
    boxes: np.ndarray, margin: float, width: int, height: int, square: bool = True
) -> np.ndarray:
    """Grow (N, 4) x1, y1, x2, y2 boxes by ``margin`` of their size (squared up), clipped to the frame."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    if square:
        bw = bh = np.maximum(bw, bh)
    half_w = bw * (1 + 2 * margin) / 2
    half_h = bh * (1 + 2 * margin) / 2
    out = np.column_stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def crop_faces(frame: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> list[np.ndarray]:
    """BGR crops of ``boxes`` (with margin) from one frame; empty boxes give a 1x1 crop."""
    h, w = frame.shape[:2]
    crops = []
    for x1, y1, x2, y2 in expand_boxes(boxes, margin, w, h).round().astype(int):
        crop = frame[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
        crops.append(crop if crop.size else np.zeros((1, 1, 3), np.uint8))
    return crops


def resize_batch(crops: list[np.ndarray], size: int) -> np.ndarray:
    """Stack crops resized to ``size`` x ``size`` into one (N, size, size, 3) uint8 RGB array."""
    out = np.empty((len(crops), size, size, 3), dtype=np.uint8)
    for i, crop in enumerate(crops):
        interp = cv2.INTER_AREA if min(crop.shape[:2]) > size else cv2.INTER_LINEAR
        out[i] = cv2.cvtColor(cv2.resize(crop, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)
    return out
