"""OpenCV DNN res10 SSD face detector (the notebook's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from maskwatch.models.detections import Detections
from maskwatch.models.detectors.base import WeightsError, require_file

TF_FILES = ("opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt")
CAFFE_FILES = ("res10_300x300_ssd_iter_140000.caffemodel", "deploy.prototxt")
MEAN_BGR = (104.0, 177.0, 123.0)


class OpenCVRes10Detector:
    """res10 SSD from TensorFlow (``.pb`` + ``.pbtxt``) or Caffe (``.caffemodel`` + ``.prototxt``) weights."""

    def __init__(
        self,
        weights_dir: Path,
        confidence: float = 0.5,
        input_size: tuple[int, int] = (300, 300),
        nms_iou: float = 0.4,
    ) -> None:
        weights_dir = Path(weights_dir)
        if (weights_dir / TF_FILES[0]).exists() or not (weights_dir / CAFFE_FILES[0]).exists():
            model, config = (require_file(weights_dir / f, "opencv-res10") for f in TF_FILES)
            load = cv2.dnn.readNetFromTensorflow
        else:
            model, config = (require_file(weights_dir / f, "opencv-res10") for f in CAFFE_FILES)
            load = cv2.dnn.readNetFromCaffe
        try:
            self.net = load(str(model), str(config))
        except cv2.error as e:
            raise WeightsError(
                f"opencv-res10: cannot load {model} with {config} (corrupt file?): {e}"
            ) from None
        self.confidence = confidence
        self.input_size = input_size
        self.nms_iou = nms_iou
        self.name = f"opencv-res10:{model.name}"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        # One forward pass per frame: OpenCV's DNN (4.x and 5.x) rejects batched input for this
        # graph's DetectionOutput layer ("expected: 'end <= dims'").
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        blob = cv2.dnn.blobFromImage(frame, 1.0, self.input_size, MEAN_BGR, swapRB=False, crop=False)
        self.net.setInput(blob)
        rows = self.net.forward().reshape(-1, 7)  # [image_id, label, score, x1, y1, x2, y2], coords in [0, 1]
        rows = rows[rows[:, 2] >= self.confidence]
        boxes = rows[:, 3:7] * np.array([w, h, w, h], dtype=np.float32)
        return _nms(Detections(boxes, rows[:, 2]).clip(w, h), self.nms_iou)


def _nms(det: Detections, iou: float) -> Detections:
    if len(det) < 2:
        return det
    xywh = np.column_stack([det.boxes[:, :2], det.boxes[:, 2:] - det.boxes[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), det.scores.tolist(), 0.0, iou)
    return det.filter(np.asarray(keep, dtype=int).reshape(-1))
