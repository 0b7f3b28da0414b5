"""RetinaFace's anchors, decoding and per-image NMS outside the network, vectorized over a batch.

The network (``retinaface_mnv2.onnx``) returns, for N inputs of one size H × W (multiples of 32),
``loc`` (N, A, 4), ``landmarks`` (N, A, 10) and ``conf`` (N, A, 2) over the A anchors of that
size. Anchors follow peteryuX/retinaface-tf2's MobileNetV2 config: steps 8/16/32 with square
anchors of 16/32, 64/128 and 256/512 px, variances 0.1 and 0.2.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
STRIDE = 32


@lru_cache(maxsize=16)
def anchors(height: int, width: int) -> np.ndarray:
    """(A, 4) anchors ``cx, cy, w, h`` in pixels of an ``height`` × ``width`` input (cached per size)."""
    levels = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step, (np.arange(cols) + 0.5) * step, indexing="ij")
        per_size = [np.stack([cx, cy, np.full_like(cx, s), np.full_like(cy, s)], -1) for s in sizes]
        levels.append(np.stack(per_size, 2).reshape(-1, 4))
    out = np.concatenate(levels).astype(np.float32)
    out.setflags(write=False)
    return out


def decode(
    loc: np.ndarray, landmarks: np.ndarray, conf: np.ndarray, height: int, width: int, threshold: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per input of a ``height`` × ``width`` batch, the anchors scoring ``>= threshold``: boxes (K, 4)
    x1 y1 x2 y2, scores (K,), landmarks (K, 5, 2), in input pixels. Only candidates are decoded."""
    prior = anchors(height, width)
    if loc.shape[1] != len(prior):
        raise ValueError(f"{loc.shape[1]} anchors in the output, {len(prior)} expected for {width}x{height}")
    n = loc.shape[0]
    scores = conf[..., 1]
    out = []
    for i in range(n):
        keep = np.flatnonzero(scores[i] >= threshold)
        p = prior[keep]
        d = loc[i, keep]
        centre = p[:, :2] + d[:, :2] * VARIANCES[0] * p[:, 2:]
        size = p[:, 2:] * np.exp(d[:, 2:] * VARIANCES[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
        points = p[:, None, :2] + landmarks[i, keep].reshape(-1, 5, 2) * VARIANCES[0] * p[:, None, 2:]
        out.append((boxes, scores[i, keep], points))
    return out


def nms_indices(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS at ``iou``, best score first (OpenCV's C++ NMS)."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)
