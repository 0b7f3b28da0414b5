"""YuNet (OpenCV's ``cv2.FaceDetectorYN``) from ONNX weights at a configured path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from maskwatch.models.detections import Detections
from maskwatch.models.detectors.base import WeightsError, require_file
from maskwatch.models.detectors.nms import nms, resize_long_side

WEIGHTS_FILE = "face_detection_yunet.onnx"


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

    def __init__(
        self,
        weights_dir: Path,
        confidence: float = 0.6,
        nms_iou: float = 0.3,
        upscale_to: int | None = None,
        downscale_to: int | None = None,
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
        self.nms_iou = nms_iou
        self.upscale_to = upscale_to
        self.downscale_to = downscale_to
        passes = (
            ["native"]
            + [f"up{upscale_to}px"] * bool(upscale_to)
            + [f"down{downscale_to}px"] * bool(downscale_to)
        )
        self.name = f"yunet:{model.name}" + (f"[{'+'.join(passes)}]" if len(passes) > 1 else "")

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        long_side = max(h, w)
        sizes: list[int | None] = [None]
        if self.upscale_to and self.upscale_to > long_side:
            sizes.append(self.upscale_to)
        if self.downscale_to and long_side >= 1.5 * self.downscale_to:
            sizes.append(self.downscale_to)
        found = [d for d in (self._run(frame, size, w, h) for size in sizes) if len(d)]
        if len(found) < 2:
            return found[0] if found else _empty()
        merged = Detections(
            np.concatenate([d.boxes for d in found]),
            np.concatenate([d.scores for d in found]),
            np.concatenate([d.landmarks for d in found]),
        )
        return nms(merged, self.nms_iou)

    def _run(self, frame: np.ndarray, long_side: int | None, w: int, h: int) -> Detections:
        image, scale = resize_long_side(frame, long_side)
        self.net.setInputSize((image.shape[1], image.shape[0]))
        _, faces = self.net.detect(image)
        if faces is None or not len(faces):
            return Detections(
                np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
            )
        scores = faces[:, 14].astype(np.float32)
        geometry = faces[:, :14].astype(np.float32) / np.float32(scale)
        boxes = np.column_stack([geometry[:, :2], geometry[:, :2] + geometry[:, 2:4]])
        return Detections(boxes, scores, geometry[:, 4:14].reshape(-1, 5, 2)).clip(w, h)


def _empty() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
