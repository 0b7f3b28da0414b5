"""Detect and classify faces in a batch of frames: one detector call (whole frames, plus one for every
region of every frame), one classifier call, one threshold.

Every consumer of the models (the worker, ``maskwatch detect``, the scene evaluation) goes
through :class:`FaceAnalyzer`, so they all keep the same faces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from maskwatch.core.faces import Faces, touches_any
from maskwatch.models.classifier import MaskClassifier
from maskwatch.models.crops import crop_faces
from maskwatch.models.detectors.base import FaceDetector
from maskwatch.models.detectors.nms import nms

Box = tuple[int, int, int, int]
Reuse = Callable[[int, Faces], Sequence[np.ndarray | None]]
"""``reuse(i, faces)``: per detected face of frame ``i``, probabilities to keep, or None to classify it."""
DEFAULT_NMS_IOU = 0.4
"""NMS across regions for a detector that does not say its own ``nms_iou``."""


TILE_OVERLAP = 64
"""Pixels two neighbouring tiles share, so a face on a tile border is whole in one of them."""


def tile_region(region: Box, size: int, overlap: int = TILE_OVERLAP) -> list[Box]:
    """``region`` as squares of side ``size`` at native resolution, overlapping by ``overlap``: a large
    region shrunk to the network's input would shrink its faces below what the detector finds."""
    x1, y1, x2, y2 = region
    side = max(x2 - x1, y2 - y1)
    if side <= size:
        return [region]
    n = int(np.ceil((side - overlap) / (size - overlap)))
    starts = np.linspace(0, side - size, n).round().astype(int)
    return [
        (x1 + int(dx), y1 + int(dy), x1 + int(dx) + size, y1 + int(dy) + size)
        for dy in starts
        for dx in starts
    ]


EDGE_MARGIN = 8.0
"""A box within this many pixels of a crop's border is cut by it."""


def _aligned(box: Box, width: int, height: int, align: int) -> Box:
    """``box`` moved (by less than ``align``, same size) to start at multiples of ``align`` inside the frame."""
    if align <= 1:
        return box
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    left = min(round(x1 / align) * align, (width - bw) // align * align)
    top = min(round(y1 / align) * align, (height - bh) // align * align)
    left, top = max(left, 0), max(top, 0)
    return (left, top, left + bw, top + bh)


def _views(region: Box, size: int) -> dict[Box, Box]:
    """The squares searched for ``region`` (each mapped to its region): the region itself and, when it is
    larger than the network's input, also its native-resolution tiles."""
    tiles = tile_region(region, size)
    return {region: region} | ({t: region for t in tiles} if len(tiles) > 1 else {})


def _on_border(boxes: np.ndarray, views: np.ndarray | Box, outer: np.ndarray | Box) -> np.ndarray:
    """(N,) True where a box reaches a border of its view (``views``: one square, or one per box) that
    lies inside ``outer`` (one square, or one per box), i.e. a border that may have cut it."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    v = np.broadcast_to(np.asarray(views, np.float64).reshape(-1, 4), b.shape)
    o = np.broadcast_to(np.asarray(outer, np.float64).reshape(-1, 4), b.shape)
    m = EDGE_MARGIN
    return (
        ((b[:, 0] <= v[:, 0] + m) & (v[:, 0] > o[:, 0]))
        | ((b[:, 1] <= v[:, 1] + m) & (v[:, 1] > o[:, 1]))
        | ((b[:, 2] >= v[:, 2] - m) & (v[:, 2] < o[:, 2]))
        | ((b[:, 3] >= v[:, 3] - m) & (v[:, 3] < o[:, 3]))
    )


def _square_around(box: np.ndarray, size: int, width: int, height: int) -> Box:
    """A square of side max(``size``, twice the box's long side) centred on ``box``, inside the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(min(max(size, 2 * max(x2 - x1, y2 - y1)), width, height))
    left = min(max(int(round((x1 + x2 - side) / 2)), 0), width - side)
    top = min(max(int(round((y1 + y2 - side) / 2)), 0), height - side)
    return (left, top, left + side, top + side)


@runtime_checkable
class RegionDetector(Protocol):
    """A detector that searches same-size crops in one call, as they are (no resize of its own)."""

    def detect_regions(self, crops: Sequence[np.ndarray]) -> list[Faces]: ...


@dataclass(frozen=True)
class Analyzed:
    """One frame's kept faces and, per face, True where the classifier ran now (False: probs reused)."""

    faces: Faces
    classified: np.ndarray


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

    @property
    def supports_regions(self) -> bool:
        """True when the detector has a fixed-size region entry point (``detect_regions``)."""
        return isinstance(self.detector, RegionDetector)

    def warm_up(self, region_size: int, largest: int) -> None:
        """Let the detector prepare its region shapes (batches of up to ``largest`` regions) before the
        first frame, where it can (``warm_regions``); a no-op for other detectors."""
        warm = getattr(self.detector, "warm_regions", None)
        if warm is not None:
            warm(region_size, largest)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """The classified faces of each BGR frame (``probs`` in the order of :attr:`classes`);
        without a threshold every detection the detector returned is kept."""
        return [a.faces for a in self.analyze(frames, [None] * len(frames))]

    def analyze(
        self,
        frames: Sequence[np.ndarray],
        plans: Sequence[Sequence[Box] | None],
        *,
        region_size: int = 320,
        reuse: Reuse | None = None,
    ) -> list[Analyzed]:
        """Detect and classify each frame as its plan says: None: the whole frame; ``()``: nothing (no
        detector call); squares ``x1 y1 x2 y2``: only there, every region of every frame resized to
        ``region_size`` and searched in one detector call, boxes mapped back and merged by NMS.

        ``reuse(i, faces)`` may give, per detected face of frame ``i``, probabilities to keep instead of
        classifying it (None: classify); the rest are classified in one call. The threshold applies
        to every face alike. A detector without ``detect_regions`` searches region frames whole."""
        if not frames:
            return []
        t0 = time.perf_counter()
        detections = self._detect(frames, plans, region_size)
        t1 = time.perf_counter()
        reused: list[list[np.ndarray | None]] = [
            list(reuse(i, d)) if reuse is not None and len(d) else [None] * len(d)
            for i, d in enumerate(detections)
        ]
        crops = [
            c
            for f, d, r in zip(frames, detections, reused, strict=True)
            for c, cached in zip(crop_faces(f, d.boxes, self.margin), r, strict=True)
            if cached is None
        ]
        fresh = (
            np.asarray(self.classifier.predict(crops), np.float32)
            if crops
            else np.zeros((0, len(self.classes)), np.float32)
        )
        self.seconds = {"detect": t1 - t0, "classify": time.perf_counter() - t1}
        out, start = [], 0
        for det, r in zip(detections, reused, strict=True):
            classified = np.array([p is None for p in r], bool)
            probs = np.zeros((len(det), len(self.classes)), np.float32)
            n_new = int(classified.sum())
            probs[classified] = fresh[start : start + n_new]
            start += n_new
            for k, p in enumerate(r):
                if p is not None:
                    probs[k] = p
            faces = det.with_probs(probs, self.classes)
            if self.threshold is not None and len(faces):
                keep = self.threshold.keep(faces.scores, probs, self.classes)
                faces, classified = faces[keep], classified[keep]
            out.append(Analyzed(faces, classified))
        return out

    def _detect(
        self, frames: Sequence[np.ndarray], plans: Sequence[Sequence[Box] | None], size: int
    ) -> list[Faces]:
        regional = self.supports_regions
        whole = [i for i, p in enumerate(plans) if p is None or (len(p) and not regional)]
        out: list[Faces] = [Faces.empty() for _ in frames]
        if whole:
            for i, faces in zip(whole, self.detector.detect([frames[i] for i in whole]), strict=True):
                out[i] = faces
        if not regional:
            return out
        found = self._search_regions(frames, {i: list(plan) for i, plan in enumerate(plans) if plan}, size)
        cut = {
            i: _on_border(f.boxes, where, (0, 0, frames[i].shape[1], frames[i].shape[0]))
            for i, (f, where) in found.items()
        }
        again = {  # a face cut by a region's border: look again in a square around it (as Frigate does)
            i: [_square_around(b, size, frames[i].shape[1], frames[i].shape[0]) for b in f.boxes[cut[i]]]
            for i, (f, _) in found.items()
            if cut[i].any()
        }
        second = self._search_regions(frames, again, size) if again else {}
        iou = float(getattr(self.detector, "nms_iou", None) or DEFAULT_NMS_IOU)
        finish = getattr(self.detector, "finish_regions", None)  # e.g. box calibration, in frame pixels
        for i, (faces, _) in found.items():
            h, w = frames[i].shape[:2]
            if i in second:  # the second look replaces the cut faces it overlaps
                better = second[i][0]
                redone = touches_any(faces.boxes, better.boxes) & cut[i]
                faces = Faces.merge([faces[~redone], better])
            faces = nms(faces, iou).clip(w, h)
            out[i] = finish(faces, w, h) if finish is not None else faces
        return out

    def _search_regions(
        self, frames: Sequence[np.ndarray], regions: dict[int, list[Box]], size: int
    ) -> dict[int, tuple[Faces, np.ndarray]]:
        """Every region of every frame in one ``detect_regions`` call: a region larger than ``size`` is
        searched whole (resized to the input: its large faces) and in native-resolution tiles (its small
        ones, :func:`tile_region`); a tile's face cut by another tile's border is dropped (it is whole in
        the region's view or a neighbouring tile). Per frame: its faces (frame pixels, no NMS yet) and
        the region each was found in, ``(N, 4)``."""
        align = int(getattr(self.detector, "region_align", 1) or 1)
        crops, where = [], []
        for i, frame_regions in regions.items():
            h, w = frames[i].shape[:2]
            views: dict[Box, Box] = {}
            for region in frame_regions:
                outer = _aligned(tuple(int(v) for v in region), w, h, align)  # type: ignore[arg-type]
                for view, whole in _views(outer, size).items():
                    views.setdefault(_aligned(view, w, h, align), whole)
            for (x1, y1, x2, y2), region in views.items():
                crop = frames[i][y1:y2, x1:x2]
                if crop.shape[:2] != (size, size):
                    shrink = crop.shape[0] > size
                    crop = cv2.resize(
                        crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                    )
                crops.append(np.ascontiguousarray(crop))
                where.append((i, (x1, y1, x2, y2), region))
        if not crops:
            return {}
        assert isinstance(self.detector, RegionDetector)
        found = self.detector.detect_regions(crops)
        parts: dict[int, list[Faces]] = {}
        found_in: dict[int, list[np.ndarray]] = {}
        for faces, (i, view, region) in zip(found, where, strict=True):
            if not len(faces):
                continue
            x1, y1, x2, y2 = view
            sx, sy = (x2 - x1) / size, (y2 - y1) / size
            scale = np.array([sx, sy, sx, sy], np.float32)
            offset = np.array([x1, y1, x1, y1], np.float32)
            landmarks = None
            if faces.landmarks is not None:
                landmarks = faces.landmarks * scale[:2] + offset[:2]
            mapped = Faces(faces.boxes * scale + offset, faces.scores, landmarks=landmarks)
            if view != region:  # a tile: drop faces its inner borders cut
                mapped = mapped[~_on_border(mapped.boxes, view, region)]
            parts.setdefault(i, []).append(mapped)
            found_in.setdefault(i, []).append(np.tile(np.asarray(region, np.float64), (len(mapped), 1)))
        return {i: (Faces.merge(p), np.concatenate(found_in[i])) for i, p in parts.items()}
