"""Drawing faces on frames: boxes coloured by class, with a label and its probability."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskwatch.core.faces import Faces

# BGR colours by class: green with_mask, red without_mask, amber incorrect_mask.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "with_mask": (60, 180, 60),
    "without_mask": (40, 40, 220),
    "incorrect_mask": (0, 170, 255),
}
OTHER_COLOR = (200, 200, 200)


def draw_faces(
    frame: np.ndarray,
    faces: Faces,
    labels: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw each face's box and label onto ``frame`` (BGR uint8, changed in place and returned).

    ``labels`` overrides the faces' own classes (e.g. a track's decided class, ``outside_zone``);
    the probability shown is that of the label, or the face's highest one for a label that is no
    class (none for unclassified faces). ``captions``: optional text before each label (e.g. a track id).
    """
    labels = faces.labels if labels is None else list(labels)
    if len(labels) != len(faces):
        raise ValueError(f"draw_faces: {len(faces)} faces but {len(labels)} labels")
    if captions is not None and len(captions) != len(faces):
        raise ValueError(f"draw_faces: {len(faces)} faces but {len(captions)} captions")
    h, w = frame.shape[:2]
    thickness = max(2, round(min(h, w) / 360))
    scale = max(0.5, min(h, w) / 1000)
    for i, (box, label) in enumerate(zip(faces.boxes.tolist(), labels, strict=True)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = CLASS_COLORS.get(label, OTHER_COLOR)
        cv2.rectangle(frame, (x1, y1), (x2, y2), color, thickness)
        text = label
        if faces.probs is not None and faces.probs.shape[1]:
            row = faces.probs[i]
            p = row[faces.classes.index(label)] if label in faces.classes else row.max()
            text = f"{label} {p:.0%}"
        if captions is not None:
            text = f"{captions[i]} {text}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(y2 + th + 4, h - base)
        cv2.rectangle(frame, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, cv2.FILLED)
        cv2.putText(frame, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return frame
