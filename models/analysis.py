"""Detect and classify faces in a batch of frames: one detector call, one classifier call, one threshold.

Every consumer of the models (the worker, ``maskwatch detect``, the scene evaluation) goes
through :class:`FaceAnalyzer`, so they all keep the same faces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskwatch.core.faces import Faces
from maskwatch.models.classifier import MaskClassifier
from maskwatch.models.crops import crop_faces
from maskwatch.models.detectors.base import FaceDetector

MASKED_PROBABILITY = 0.5
"""A face counts as masked for :class:`FaceThreshold` when the classifier gives ``with_mask`` at least this."""


@dataclass(frozen=True)
class FaceThreshold:
    """Which detections are faces: score >= ``confidence``, or score >= ``masked_confidence`` for
    faces the classifier calls masked.

    Every detector scores masked faces lower than bare ones (half the face is covered), so a
    single threshold finds fewer masked people and biases compliance down. ``None`` (or a value
    not below ``confidence``) turns the second rule off.
    """

    confidence: float
    masked_confidence: float | None = None

    def __str__(self) -> str:
        if self.masked_confidence is None or self.masked_confidence >= self.confidence:
            return f"{self.confidence:.2f}"
        return f"{self.confidence:.2f} (masked faces {self.masked_confidence:.2f})"

    @property
    def floor(self) -> float:
        """The lowest score either rule keeps: what the detector itself must be run at."""
        if self.masked_confidence is None:
            return self.confidence
        return min(self.confidence, self.masked_confidence)

    def keep(self, scores: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Boolean mask over N faces given their (N,) detector scores and (N, C) class probabilities."""
        scores = np.asarray(scores, np.float32)
        keep = scores >= self.confidence
        if self.masked_confidence is not None and self.masked_confidence < self.confidence and len(scores):
            masked = np.asarray(probs)[:, list(classes).index("with_mask")] >= MASKED_PROBABILITY
            keep |= (scores >= self.masked_confidence) & masked
        return keep


class FaceAnalyzer:
    """Detector + classifier + crop margin + :class:`FaceThreshold`; ``seconds`` holds the last call's timings."""

    def __init__(
        self,
        detector: FaceDetector,
        classifier: MaskClassifier,
        margin: float,
        threshold: FaceThreshold | None = None,
    ) -> None:
        self.detector, self.classifier, self.margin, self.threshold = detector, classifier, margin, threshold
        self.classes: tuple[str, ...] = tuple(classifier.classes)
        self.seconds = {"detect": 0.0, "classify": 0.0}

    @property
    def models(self) -> dict[str, str]:
        return {"detector": self.detector.name, "classifier": self.classifier.name}

    @property
    def placeholder(self) -> bool:
        """True when the classifier is the placeholder (no real mask classification)."""
        return bool(self.classifier.placeholder)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """The classified faces of each BGR frame (``probs`` in the order of :attr:`classes`);
        without a threshold every detection the detector returned is kept."""
        if not frames:
            return []
        t0 = time.perf_counter()
        detections = self.detector.detect(frames)
        t1 = time.perf_counter()
        crops = [
            c for f, d in zip(frames, detections, strict=True) for c in crop_faces(f, d.boxes, self.margin)
        ]
        probs = (
            np.asarray(self.classifier.predict(crops), np.float32)
            if crops
            else np.zeros((0, len(self.classes)), np.float32)
        )
        self.seconds = {"detect": t1 - t0, "classify": time.perf_counter() - t1}
        out, start = [], 0
        for det in detections:
            faces = det.with_probs(probs[start : start + len(det)], self.classes)
            start += len(det)
            if self.threshold is not None and len(faces):
                faces = faces[self.threshold.keep(faces.scores, faces.probs, self.classes)]
            out.append(faces)
        return out
