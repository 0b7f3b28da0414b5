"""OpenCV DNN res10 SSD face detector (the notebook's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from maskwatch.core.faces import Faces
from maskwatch.models.detectors.base import (
    BackendConfig,
    DetectorSpec,
    DetectorWeights,
    WeightFile,
    WeightsError,
    require_file,
)
from maskwatch.models.detectors.nms import nms

MEAN_BGR = (104.0, 177.0, 123.0)
_OPENCV_3RDPARTY = "https://raw.githubusercontent.com/opencv/opencv_3rdparty"
_SAMPLES = "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector"
TF_FILES = (
    WeightFile(
        "opencv_face_detector_uint8.pb",
        "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed",
        f"{_OPENCV_3RDPARTY}/dnn_samples_face_detector_20180220_uint8/opencv_face_detector_uint8.pb",
    ),
    WeightFile(
        "opencv_face_detector.pbtxt",
        "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144",
        f"{_SAMPLES}/opencv_face_detector.pbtxt",
    ),
)
CAFFE_FILES = (
    WeightFile(
        "res10_300x300_ssd_iter_140000.caffemodel",
        None,  # not pinned: no copy was available to hash when this was written
        f"{_OPENCV_3RDPARTY}/dnn_samples_face_detector_20170830/res10_300x300_ssd_iter_140000.caffemodel",
    ),
    WeightFile("deploy.prototxt", None, f"{_SAMPLES}/deploy.prototxt"),
)


class Res10Config(BackendConfig):
    """``detector.opencv_res10``."""

    input_size: tuple[int, int] = Field((300, 300), description="Network input (width, height)")


class OpenCVRes10Detector:
    """res10 SSD from TensorFlow (``.pb`` + ``.pbtxt``) or Caffe (``.caffemodel`` + ``.prototxt``) weights."""

    def __init__(self, config: Res10Config, *, weights_dir: Path, confidence: float, nms_iou: float) -> None:
        weights_dir = Path(weights_dir)
        files = CAFFE_FILES
        if (weights_dir / TF_FILES[0].name).exists() or not (weights_dir / CAFFE_FILES[0].name).exists():
            files = TF_FILES
        model, graph = (require_file(weights_dir / f.name, "opencv-res10") for f in files)
        load = cv2.dnn.readNetFromTensorflow if files is TF_FILES else cv2.dnn.readNetFromCaffe
        try:
            self.net = load(str(model), str(graph))
        except cv2.error as e:
            raise WeightsError(
                f"opencv-res10: cannot load {model} with {graph} (corrupt file?): {e}"
            ) from None
        self.confidence = confidence
        self.input_size = config.input_size
        self.nms_iou = nms_iou
        self.name = f"opencv-res10:{model.name}"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        # One forward pass per frame: OpenCV's DNN (4.x and 5.x) rejects batched input for this
        # graph's DetectionOutput layer ("expected: 'end <= dims'").
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Faces:
        h, w = frame.shape[:2]
        blob = cv2.dnn.blobFromImage(frame, 1.0, self.input_size, MEAN_BGR, swapRB=False, crop=False)
        self.net.setInput(blob)
        rows = self.net.forward().reshape(-1, 7)  # [image_id, label, score, x1, y1, x2, y2], coords in [0, 1]
        rows = rows[rows[:, 2] >= self.confidence]
        boxes = rows[:, 3:7] * np.array([w, h, w, h], dtype=np.float32)
        return nms(Faces(boxes, rows[:, 2]).clip(w, h), self.nms_iou)


SPEC = DetectorSpec(
    key="opencv-res10",
    detector=OpenCVRes10Detector,
    config=Res10Config,
    confidence=0.20,
    evaluation_floor=0.1,
    weights=DetectorWeights(
        "OpenCV DNN res10 SSD 300x300 (the notebook's)", files=TF_FILES, alternatives=(CAFFE_FILES,)
    ),
    flat_keys={"input_size": "input_size"},
)
