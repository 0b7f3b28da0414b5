"""Face detections of one frame as parallel numpy arrays (the supervision style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame.

    ``boxes`` is (N, 4) float32 pixel ``x1, y1, x2, y2``; ``scores`` is (N,) float32;
    ``landmarks`` is optional (N, 5, 2) float32 pixel points.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = (
            np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
            if np.size(self.boxes)
            else np.zeros((0, 4), np.float32)
        )
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(
                f"Detections: boxes must be (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.shape != (boxes.shape[0], 5, 2):
                raise ValueError(f"Detections: landmarks must be ({boxes.shape[0]}, 5, 2), got {lm.shape}")
            object.__setattr__(self, "landmarks", lm)

    @classmethod
    def empty(cls) -> Detections:
        """No faces."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def filter(self, keep: np.ndarray) -> Detections:
        """Keep the rows selected by a boolean mask or index array."""
        lm = None if self.landmarks is None else self.landmarks[keep]
        return Detections(self.boxes[keep], self.scores[keep], lm)

    def clip(self, width: int, height: int) -> Detections:
        """Clip boxes to the frame and drop boxes left with no area."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        lm = None if self.landmarks is None else self.landmarks[keep]
        return Detections(boxes[keep], self.scores[keep], lm)
