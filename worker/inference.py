"""Decode a batch of frames, detect faces in one call, classify every face in one call."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.core.contracts import FrameMessage, ResultMessage
from maskwatch.core.errors import ErrorKind, FrameError
from maskwatch.models.analysis import FaceAnalyzer
from maskwatch.worker import metrics


@dataclass(frozen=True)
class Rejected:
    """A frame that yields no result: ``kind`` is ``undecodable`` or ``inference_error``."""

    frame: FrameMessage
    kind: ErrorKind
    reason: str


class BatchInference:
    """Frames in, results out: one detector call and one classifier call per batch."""

    def __init__(self, analyzer: FaceAnalyzer, worker_name: str, *, include_image: bool) -> None:
        self.analyzer = analyzer
        self.worker_name, self.include_image = worker_name, include_image
        self.models = analyzer.models

    def process(self, frames: list[FrameMessage]) -> tuple[list[ResultMessage], list[Rejected]]:
        """Results for the decodable frames (in input order) and the frames that failed to decode."""
        t0 = time.perf_counter()
        images, good, bad = [], [], []
        for f in frames:
            try:
                image = _decode(f)
            except FrameError as e:
                bad.append(Rejected(f, e.kind, str(e)))
                continue
            images.append(image)
            good.append(f)
        metrics.INFERENCE_SECONDS.labels("decode").observe(time.perf_counter() - t0)
        analyzed = self.analyzer(images)
        if analyzed:
            metrics.INFERENCE_SECONDS.labels("detect").observe(self.analyzer.seconds["detect"])
            metrics.INFERENCE_SECONDS.labels("classify").observe(self.analyzer.seconds["classify"])
        now = time.time()
        results = [
            ResultMessage(
                camera=f.camera,
                seq=f.seq,
                capture_ts=f.capture_ts,
                width=f.width,
                height=f.height,
                processed_ts=now,
                faces=faces,
                models=self.models,
                placeholder=self.analyzer.placeholder,
                worker=self.worker_name,
                image=f.image if self.include_image else None,
                encoding=f.encoding,
            )
            for f, faces in zip(good, analyzed, strict=True)
        ]
        return results, bad


def _decode(frame: FrameMessage) -> np.ndarray:
    """The frame's pixels (BGR), or :class:`FrameError` saying why its image cannot be used."""
    if frame.encoding not in ("jpeg", "png"):
        raise FrameError(f"unsupported image encoding {frame.encoding!r}")
    image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError(f"image bytes do not decode as {frame.encoding} ({len(frame.image)} bytes)")
    if image.shape[:2] != (frame.height, frame.width):
        raise FrameError(
            f"decoded size {image.shape[1]}x{image.shape[0]} differs from declared {frame.width}x{frame.height}"
        )
    return image
