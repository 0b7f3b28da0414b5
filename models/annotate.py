"""Drawing faces on frames: boxes coloured by class, with a label and its probability."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# BGR colours by class: green with_mask, red without_mask, amber incorrect_mask.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "with_mask": (60, 180, 60),
    "without_mask": (40, 40, 220),
    "incorrect_mask": (0, 170, 255),
}
OTHER_COLOR = (200, 200, 200)


def draw_faces(
    frame: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    probs: Sequence[float] | np.ndarray | None = None,
    captions: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw each face's box and label onto ``frame`` (BGR uint8, changed in place and returned).

    ``boxes`` is (N, 4) pixel ``x1, y1, x2, y2``; ``labels`` N class names; ``probs`` either N
    probabilities of the label or an (N, C) array whose row maximum is shown; ``captions``
    optional extra text per face (e.g. a track id).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(labels) != len(boxes):
        raise ValueError(f"draw_faces: {len(boxes)} boxes but {len(labels)} labels")
    p = None
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        p = p.max(axis=1) if p.ndim == 2 else p.reshape(-1)
        if len(p) != len(boxes):
            raise ValueError(f"draw_faces: {len(boxes)} boxes but {len(p)} probabilities")
    h, w = frame.shape[:2]
    thickness = max(2, round(min(h, w) / 360))
    scale = max(0.5, min(h, w) / 1000)
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = CLASS_COLORS.get(label, OTHER_COLOR)
        cv2.rectangle(frame, (x1, y1), (x2, y2), color, thickness)
        text = label if p is None else f"{label} {p[i]:.0%}"
        if captions is not None:
            text = f"{captions[i]} {text}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(y2 + th + 4, h - base)
        cv2.rectangle(frame, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, cv2.FILLED)
        cv2.putText(frame, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return frame


def draw_caption(frame: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` (camera id, timestamp) in the top-left corner on a dark band."""
    h, w = frame.shape[:2]
    scale = max(0.5, min(h, w) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(frame, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), cv2.FILLED)
    cv2.putText(frame, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def blur_boxes(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Pixelate-and-blur the region of each box (privacy), in place."""
    h, w = frame.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        pad_x, pad_y = (x2 - x1) * 0.1, (y2 - y1) * 0.1
        a, b = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
        c, d = min(int(x2 + pad_x), w), min(int(y2 + pad_y), h)
        if c - a < 2 or d - b < 2:
            continue
        roi = frame[b:d, a:c]
        small = cv2.resize(roi, (max(1, (c - a) // 12), max(1, (d - b) // 12)), interpolation=cv2.INTER_AREA)
        frame[b:d, a:c] = cv2.GaussianBlur(
            cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST), (0, 0), 3
        )
    return frame
