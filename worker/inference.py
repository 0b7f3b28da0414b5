"""Decode a batch of frames, detect faces in one call, classify every face in one call."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.contracts import FrameMessage, ResultMessage
from models.classifier import MaskClassifier
from models.crops import crop_faces
from models.detectors.base import FaceDetector
from worker import metrics


@dataclass(frozen=True)
class Rejected:
    """A frame that yields no result: ``kind`` is ``undecodable`` or ``inference_error``."""

    frame: FrameMessage
    kind: str
    reason: str


class BatchInference:
    """Frames in, results out: one detector call and one classifier call per batch."""

    def __init__(self, detector: FaceDetector, classifier: MaskClassifier, margin: float, worker_name: str,
                 include_image: bool = True) -> None:
        self.detector, self.classifier, self.margin = detector, classifier, margin
        self.worker_name, self.include_image = worker_name, include_image
        self.models = {"detector": detector.name, "classifier": classifier.name}

    def process(self, frames: list[FrameMessage]) -> tuple[list[ResultMessage], list[Rejected]]:
        """Results for the decodable frames (in input order) and the frames that failed to decode."""
        t0 = time.perf_counter()
        images, good, bad = [], [], []
        for f in frames:
            image = _decode(f)
            if isinstance(image, str):
                bad.append(Rejected(f, "undecodable", image))
            else:
                images.append(image)
                good.append(f)
        t1 = time.perf_counter()
        detections = self.detector.detect(images) if images else []
        t2 = time.perf_counter()
        crops: list[np.ndarray] = []
        for image, det in zip(images, detections, strict=True):
            crops += crop_faces(image, det.boxes, self.margin)
        probs = self.classifier.predict(crops) if crops else np.zeros((0, len(self.classifier.classes)), np.float32)
        t3 = time.perf_counter()
        metrics.INFERENCE_SECONDS.labels("decode").observe(t1 - t0)
        metrics.INFERENCE_SECONDS.labels("detect").observe(t2 - t1)
        metrics.INFERENCE_SECONDS.labels("classify").observe(t3 - t2)
        now = time.time()
        results, start = [], 0
        for f, det in zip(good, detections, strict=True):
            n = len(det)
            results.append(
                ResultMessage(
                    camera=f.camera, seq=f.seq, capture_ts=f.capture_ts, width=f.width, height=f.height,
                    processed_ts=now, boxes=det.boxes, scores=det.scores, probs=probs[start:start + n],
                    classes=self.classifier.classes, models=self.models, placeholder=self.classifier.placeholder,
                    worker=self.worker_name, image=f.image if self.include_image else None, encoding=f.encoding,
                )
            )
            start += n
        return results, bad


def _decode(frame: FrameMessage) -> np.ndarray | str:
    if frame.encoding not in ("jpeg", "png"):
        return f"unsupported image encoding {frame.encoding!r}"
    image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return f"image bytes do not decode as {frame.encoding} ({len(frame.image)} bytes)"
    if image.shape[:2] != (frame.height, frame.width):
        return f"decoded size {image.shape[1]}x{image.shape[0]} differs from declared {frame.width}x{frame.height}"
    return image
