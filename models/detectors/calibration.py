"""Box calibration: a linear map from a detector's box (and landmarks) to the labelled face box convention.

Detectors disagree on what a face box is (YuNet's boxes take in forehead and hair; the scene
labels run from the eyebrows to the chin), and at IoU 0.5 that costs recall and AP for no
fault of the detection. Each backend gets a ridge regression, fit on the ``train`` scenes
only (``python -m maskwatch.cli.fit_calibration BACKEND``), that predicts the four edge offsets in
box widths/heights from the box shape, size, score and, where the backend has them, its
landmarks relative to the box. Coefficients live in ``models/detectors/calibration/<backend>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from maskwatch.core.faces import Faces
from maskwatch.models.detectors.base import FaceDetector

CALIBRATION_DIR = Path(__file__).with_name("calibration")


def features(
    boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None, use_landmarks: bool
) -> np.ndarray:
    """(N, F) regression inputs: bias, log aspect, log width and its square, score, then landmark positions in the box."""
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    lw = np.log(bw)
    cols = [np.ones(len(boxes)), np.log(bh / bw), lw, lw**2, scores]
    if use_landmarks:
        if landmarks is None:
            raise ValueError("this calibration needs landmarks; the detector gave none")
        cols += list(((landmarks[:, :, 0] - boxes[:, None, 0]) / bw[:, None]).T)
        cols += list(((landmarks[:, :, 1] - boxes[:, None, 1]) / bh[:, None]).T)
    return np.column_stack(cols).astype(np.float64)


def edge_offsets(boxes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 4) offsets of ``targets`` edges from ``boxes`` edges, in box widths (x) and heights (y)."""
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    d = targets - boxes
    return np.column_stack([d[:, 0] / bw, d[:, 1] / bh, d[:, 2] / bw, d[:, 3] / bh])


@dataclass(frozen=True)
class BoxCalibration:
    """Ridge coefficients (F, 4) mapping :func:`features` to :func:`edge_offsets`."""

    backend: str
    weights: np.ndarray
    use_landmarks: bool
    pairs: int = 0
    note: str = ""

    def apply(self, faces: Faces) -> Faces:
        """The same faces with calibrated boxes (everything else unchanged)."""
        if not len(faces):
            return faces
        off = features(faces.boxes, faces.scores, faces.landmarks, self.use_landmarks) @ self.weights
        b = faces.boxes
        bw = np.maximum(b[:, 2] - b[:, 0], 1.0)
        bh = np.maximum(b[:, 3] - b[:, 1], 1.0)
        boxes = np.column_stack(
            [
                b[:, 0] + off[:, 0] * bw,
                b[:, 1] + off[:, 1] * bh,
                b[:, 2] + off[:, 2] * bw,
                b[:, 3] + off[:, 3] * bh,
            ]
        )
        return replace(faces, boxes=boxes)

    @classmethod
    def fit(
        cls,
        backend: str,
        boxes: np.ndarray,
        scores: np.ndarray,
        landmarks: np.ndarray | None,
        targets: np.ndarray,
        use_landmarks: bool,
        ridge: float = 1.0,
        note: str = "",
    ) -> BoxCalibration:
        """Least squares with an L2 penalty ``ridge`` over matched (detection, labelled box) pairs."""
        x = features(boxes, scores, landmarks, use_landmarks)
        y = edge_offsets(boxes, targets)
        w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
        return cls(backend, w, use_landmarks, len(x), note)

    def to_json(self) -> str:
        return json.dumps(
            {
                "backend": self.backend,
                "use_landmarks": self.use_landmarks,
                "pairs": self.pairs,
                "note": self.note,
                "weights": np.round(self.weights, 6).tolist(),
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: Path) -> BoxCalibration:
        data = json.loads(Path(path).read_text())
        return cls(
            data["backend"],
            np.asarray(data["weights"], np.float64),
            data["use_landmarks"],
            data["pairs"],
            data["note"],
        )

    @classmethod
    def for_backend(cls, backend: str) -> BoxCalibration | None:
        """The shipped calibration of ``backend`` (e.g. ``yunet``), or None if there is none."""
        path = CALIBRATION_DIR / f"{backend}.json"
        return cls.load(path) if path.is_file() else None


class CalibratedDetector:
    """Wraps a detector and maps its boxes through a :class:`BoxCalibration` (clipped to the frame)."""

    def __init__(self, inner: FaceDetector, calibration: BoxCalibration) -> None:
        self.inner = inner
        self.calibration = calibration
        self.name = f"{inner.name}+boxcal"
        self.nms_iou = getattr(inner, "nms_iou", None)
        self.region_align = getattr(inner, "region_align", 1)
        # region search passes through; the boxes are calibrated once back in the frame
        if hasattr(inner, "detect_regions"):
            self.detect_regions = inner.detect_regions
        if hasattr(inner, "warm_regions"):
            self.warm_regions = inner.warm_regions

    def finish_regions(self, faces: Faces, width: int, height: int) -> Faces:
        """Calibrate region faces once mapped back into their ``width`` × ``height`` frame (the calibration's
        features depend on box sizes in frame pixels, which a resized region does not have)."""
        return self.calibration.apply(faces).clip(width, height)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        out = self.inner.detect(frames)
        return [
            self.calibration.apply(d).clip(f.shape[1], f.shape[0]) for d, f in zip(out, frames, strict=True)
        ]
