"""YuNet (OpenCV's ``cv2.FaceDetectorYN``) from ONNX weights at a configured path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.detections import Detections
from models.detectors.base import WeightsError, require_file
from models.detectors.nms import resize_long_side

WEIGHTS_FILE = "face_detection_yunet.onnx"


class YuNetDetector:
    """YuNet at each frame's own size; frames whose long side is shorter than ``long_side`` are upscaled to it
    (finds faces under ~20 px that YuNet misses at their native size; larger frames are left alone).

    ``cv2.FaceDetectorYN`` takes one image per call, so a batch is a loop.
    """

    def __init__(
        self,
        weights_dir: Path,
        confidence: float = 0.6,
        nms_iou: float = 0.3,
        long_side: int | None = None,
        top_k: int = 5000,
    ) -> None:
        model = require_file(Path(weights_dir) / WEIGHTS_FILE, "yunet")
        try:
            self.net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), confidence, nms_iou, top_k)
        except cv2.error as e:
            raise WeightsError(
                f"yunet: cannot load {model} (corrupt file?); reinstall it with "
                f"`maskwatch models fetch yunet --from DIR`: {e}"
            ) from None
        self.confidence = confidence
        self.long_side = long_side
        self.name = f"yunet:{model.name}" + (f"@{long_side}px" if long_side else "")

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        image, scale = resize_long_side(
            frame, self.long_side if self.long_side and self.long_side > max(h, w) else None
        )
        self.net.setInputSize((image.shape[1], image.shape[0]))
        _, faces = self.net.detect(image)
        if faces is None or not len(faces):
            return Detections.empty()
        scores = faces[:, 14].astype(np.float32)
        geometry = faces[:, :14].astype(np.float32) / np.float32(scale)
        boxes = np.column_stack([geometry[:, :2], geometry[:, :2] + geometry[:, 2:4]])
        return Detections(boxes, scores, geometry[:, 4:14].reshape(-1, 5, 2)).clip(w, h)
