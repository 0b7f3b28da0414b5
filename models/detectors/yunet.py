"""YuNet (OpenCV's ``cv2.FaceDetectorYN``) from ONNX weights at a configured path."""

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
from maskwatch.models.detectors.nms import nms, resize_long_side

WEIGHTS = WeightFile(
    "face_detection_yunet.onnx",
    "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
)
WEIGHTS_FILE = WEIGHTS.name
MAX_NMS_IOU = 0.3
"""YuNet's overlapping candidates need a tighter NMS than the settings' default: ``nms_iou`` is capped here."""


class YuNetConfig(BackendConfig):
    """``detector.yunet``."""

    upscale_to: int | None = Field(
        1280,
        ge=64,
        le=7680,
        description="Frames whose long side is shorter also get a pass upscaled to this size (small faces); None: off",
    )
    downscale_to: int | None = Field(
        400,
        ge=64,
        le=7680,
        description="Frames 1.5x larger also get a pass downscaled to this long side (very large faces); None: off",
    )
    top_k: int = Field(5000, ge=1, description="Candidates kept before NMS")


class YuNetDetector:
    """YuNet run at up to three scales per frame, merged with NMS.

    - native size;
    - ``upscale_to``: frames whose long side is shorter get a pass upscaled to it, for faces
      under ~24 px that YuNet misses at native size (scene val/test: small-face recall 0.59 -> 0.76);
    - ``downscale_to``: frames at least 1.5x larger get a pass downscaled to it, for faces too
      large for YuNet's biggest anchors (close to the camera); it costs a few percent of the native pass.

    720p/1080p CCTV frames get the native and the downscaled pass. ``cv2.FaceDetectorYN`` takes
    one image per call, so a batch is a loop.
    """

    def __init__(self, config: YuNetConfig, *, weights_dir: Path, confidence: float, nms_iou: float) -> None:
        model = require_file(Path(weights_dir) / WEIGHTS_FILE, "yunet")
        nms_iou = min(nms_iou, MAX_NMS_IOU)
        try:
            self.net = cv2.FaceDetectorYN.create(
                str(model), "", (320, 320), confidence, nms_iou, config.top_k
            )
        except cv2.error as e:
            raise WeightsError(
                f"yunet: cannot load {model} (corrupt file?); reinstall it with "
                f"`maskwatch models fetch yunet --from DIR`: {e}"
            ) from None
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.upscale_to = config.upscale_to
        self.downscale_to = config.downscale_to
        passes = (
            ["native"]
            + [f"up{self.upscale_to}px"] * bool(self.upscale_to)
            + [f"down{self.downscale_to}px"] * bool(self.downscale_to)
        )
        self.name = f"yunet:{model.name}" + (f"[{'+'.join(passes)}]" if len(passes) > 1 else "")

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> Faces:
        h, w = frame.shape[:2]
        long_side = max(h, w)
        sizes: list[int | None] = [None]
        if self.upscale_to and self.upscale_to > long_side:
            sizes.append(self.upscale_to)
        if self.downscale_to and long_side >= 1.5 * self.downscale_to:
            sizes.append(self.downscale_to)
        found = [self._run(frame, size, w, h) for size in sizes]
        return found[0] if len(found) == 1 else nms(Faces.merge(found), self.nms_iou)

    def _run(self, frame: np.ndarray, long_side: int | None, w: int, h: int) -> Faces:
        image, scale = resize_long_side(frame, long_side)
        self.net.setInputSize((image.shape[1], image.shape[0]))
        _, rows = self.net.detect(image)
        rows = np.zeros((0, 15), np.float32) if rows is None else rows.astype(np.float32)
        # rows: x y w h, 5 landmarks (x, y), score; in pixels of the resized image
        geometry = rows[:, :14] / np.float32(scale)
        boxes = np.column_stack([geometry[:, :2], geometry[:, :2] + geometry[:, 2:4]])
        return Faces(boxes, rows[:, 14], landmarks=geometry[:, 4:14].reshape(len(rows), 5, 2)).clip(w, h)


SPEC = DetectorSpec(
    key="yunet",
    detector=YuNetDetector,
    config=YuNetConfig,
    confidence=0.80,
    evaluation_floor=0.3,
    weights=DetectorWeights("OpenCV YuNet, ONNX (cv2.FaceDetectorYN)", files=(WEIGHTS,)),
    auto_rank=1,
    flat_keys={"upscale_to": "upscale_to", "downscale_to": "downscale_to"},
)
