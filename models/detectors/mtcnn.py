"""MTCNN from the ``mtcnn`` package (weights ship inside the wheel; runs on TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from maskwatch.core.faces import Faces
from maskwatch.models.detectors.base import BackendConfig, DetectorSpec, DetectorWeights, WeightsError
from maskwatch.models.detectors.nms import nms, resize_long_side


class MTCNNConfig(BackendConfig):
    """``detector.mtcnn``. P-Net and R-Net thresholds are lowered from the package's 0.6/0.7 to 0.5/0.5:
    masked faces score low in the early stages (measured: +2 points of masked-face recall and +1.5 of
    face AP on scene images, for ~10% more time)."""

    min_face_size: int = Field(20, ge=8, le=1000, description="Smallest face searched for, in pixels")
    max_side: int | None = Field(
        1280, ge=64, le=7680, description="Downscale larger frames to this long side first (speed); None: off"
    )
    pnet_threshold: float = Field(0.5, ge=0.0, le=1.0, description="P-Net (first stage) score threshold")
    rnet_threshold: float = Field(0.5, ge=0.0, le=1.0, description="R-Net (second stage) score threshold")


class MTCNNDetector:
    """MTCNN (P-Net, R-Net, O-Net cascade); a batch of same-sized frames goes through the cascade together.

    ``confidence`` is the O-Net threshold; ``min_face_size`` the smallest face searched for
    (smaller finds smaller faces and costs more); frames larger than ``max_side`` are downscaled
    first (1080p costs about twice 720p, and MTCNN's cost is what limits a worker).
    """

    def __init__(
        self, config: MTCNNConfig, *, confidence: float, nms_iou: float, weights_dir: Path | None = None
    ) -> None:
        try:
            from mtcnn import MTCNN
        except ImportError as e:
            raise WeightsError(
                f"mtcnn: the `mtcnn` package is not installed ({e}); `pip install mtcnn`"
            ) from None
        self.model = MTCNN(device="CPU:0")
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.options = {
            "min_face_size": config.min_face_size,
            "threshold_pnet": config.pnet_threshold,
            "threshold_rnet": config.rnet_threshold,
            "threshold_onet": confidence,
        }
        self.max_side = config.max_side
        self.name = f"mtcnn:min{config.min_face_size}px" + (f",max{self.max_side}px" if self.max_side else "")

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        results: list[Faces] = [Faces.empty()] * len(frames)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(frame.shape, []).append(i)
        # mtcnn pads a mixed batch to its largest frame: group frames by size instead
        for indices in by_shape.values():
            h, w = frames[indices[0]].shape[:2]
            limit = self.max_side if self.max_side and max(h, w) > self.max_side else None
            resized = [resize_long_side(frames[i], limit) for i in indices]
            scale = np.float32(resized[0][1])
            rgb = [cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image, _ in resized]
            rows = np.asarray(
                self.model.detect_faces(rgb, box_format="xyxy", output_type="numpy", **self.options),
                dtype=np.float32,
            )
            # rows: image index, x1 y1 x2 y2, score, 5 landmark x, 5 landmark y
            rows = rows if rows.size else np.zeros((0, 16), np.float32)
            for j, i in enumerate(indices):
                r = rows[rows[:, 0] == j]
                landmarks = np.stack([r[:, 6:11], r[:, 11:16]], axis=-1) / scale
                faces = Faces(r[:, 1:5] / scale, r[:, 5], landmarks=landmarks).clip(w, h)
                results[i] = nms(faces, self.nms_iou)
        return results


SPEC = DetectorSpec(
    key="mtcnn",
    detector=MTCNNDetector,
    config=MTCNNConfig,
    confidence=0.88,
    evaluation_floor=0.3,
    weights=DetectorWeights("MTCNN cascade (weights inside the `mtcnn` wheel)", package="mtcnn", pip="mtcnn"),
    auto_rank=2,
    flat_keys={"min_face_size": "min_face_size", "max_side": "max_side"},
)
