"""Where a camera's picture changed: a cheap per-camera pass on a small luma image (no I/O).

The frame is shrunk to ``frame_height`` pixels high and turned to luma, contrast-stretched between
smoothed low/high percentiles, blurred, and compared with a running-average background; pixels that
differ by more than ``threshold`` are dilated into blobs, and each blob of at least ``contour_area``
small-image pixels becomes a box in the pixels of the frame given, or of the picture ``out_size`` names
(the ingest gives the decoded frame's full-size luma plane and asks for boxes in the published,
``max_width``-downscaled frame). Pixels under the motion mask never count. When most of the image
changes at once (lightning, an IR switch, a moved camera) the background is reset to the current frame
and no boxes are proposed until the change settles (``calibrating``).
The first frame, and the first after :meth:`MotionDetector.reset` or a change of frame size (or of
``out_size``), only starts the background.

A 720p BGR frame costs well under a millisecond (``benchmarks/motion.py``), a luma plane less (no colour
conversion, one channel to shrink: ``benchmarks/ingest_cost.py``): the resize works on a frame twice
the target size (linear), then halves it by area, so each small pixel still averages many source pixels
without the cost of an area resize of the whole frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.config.cameras import MotionConfig
from maskwatch.core.contracts import MAX_MOTION_BOXES, Box
from maskwatch.core.zones import points_in_polygon

LOW_PERCENTILE = 0.04
"""Contrast stretch: the share of pixels at or below the black point, and at or above the white point."""
CONTRAST_SMOOTHING = 0.1
"""Weight of each frame's percentiles in the smoothed black/white points: a sudden global change is
not stretched away at once, so it shows as change (and trips the lightning guard)."""
MIN_CONTRAST_RANGE = 16.0
"""The stretch never amplifies by more than 255 / this (a flat, dark picture stays calm)."""
BLUR_KSIZE = (5, 5)
DILATE_ITERATIONS = 1
_DILATE_KERNEL = np.ones((3, 3), np.uint8)
_LEVELS = np.arange(256, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What :meth:`MotionDetector.detect` found in one frame."""

    boxes: tuple[Box, ...]
    """``(x1, y1, x2, y2)`` int boxes in pixels of the frame given (or of ``out_size``), clipped to it;
    empty when still."""
    changed: float
    """Fraction of the unmasked small image that differs from the background (0..1)."""
    calibrating: bool
    """The background was (re)started on this frame: no boxes are proposed; search the whole frame."""

    @property
    def kind(self) -> str:
        """``calibrating``, ``motion`` or ``still``: the metric label of this frame."""
        if self.calibrating:
            return "calibrating"
        return "motion" if self.boxes else "still"


class MotionDetector:
    """One camera's motion state (background, contrast points). Not thread-safe: one per camera reader."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._key: tuple[int, int, int, int] | None = None  # (height, width) given, (width, height) out
        self._out: tuple[int, int] = (0, 0)  # (width, height) of the picture the boxes are in
        self._small: tuple[int, int] = (0, 0)  # (width, height) of the motion image
        self._keep: np.ndarray | None = None  # uint8 255 = counts, 0 = masked; None = no mask
        self._keep_count = 0
        self._background: np.ndarray | None = None  # float32 running average
        self._low = 0.0
        self._high = 255.0

    @classmethod
    def from_settings(cls, config: MotionConfig | None = None) -> MotionDetector:
        """A detector with ``config`` (default: the defaults of the ``cameras[].motion`` section)."""
        return cls(config if config is not None else MotionConfig())

    def reset(self) -> None:
        """Forget the background (a reconnect): the next frame starts it again."""
        self._background = None

    def detect(self, frame: np.ndarray, out_size: tuple[int, int] | None = None) -> MotionResult:
        """Motion in ``frame`` (H x W x 3 BGR, or H x W luma, uint8) against the frames before it.

        ``out_size``: ``(width, height)`` of the picture ``frame`` shows, when boxes are wanted in its
        pixels rather than the frame's (e.g. a frame's full-size luma plane for a downscaled published
        image). The small motion image and the mask are sized from it, so a detector gives the same
        boxes for the same picture whatever size it is handed at."""
        h, w = frame.shape[:2]
        out_w, out_h = out_size if out_size is not None else (w, h)
        if self._key != (h, w, out_w, out_h):
            self._setup(h, w, out_w, out_h)
            self._background = None
        luma = self._luma(frame)
        if self._background is None:
            self._restart(luma)
            return MotionResult((), 0.0, True)
        image = self._prepare(luma)
        delta = cv2.absdiff(image, cv2.convertScaleAbs(self._background))
        _, changed_px = cv2.threshold(delta, self.config.threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            changed_px = cv2.bitwise_and(changed_px, self._keep)
        changed = cv2.countNonZero(changed_px) / self._keep_count if self._keep_count else 0.0
        if changed > self.config.lightning_threshold:
            self._restart(luma)  # the next frame is compared with this one: calibrating ends once it settles
            return MotionResult((), changed, True)
        cv2.accumulateWeighted(image, self._background, self.config.frame_alpha)
        return MotionResult(self._boxes(changed_px), changed, False)

    def _setup(self, h: int, w: int, out_w: int, out_h: int) -> None:
        self._key = (h, w, out_w, out_h)
        self._out = (out_w, out_h)
        sh = max(1, min(self.config.frame_height, out_h))
        sw = max(1, round(out_w * sh / out_h))
        self._small = (sw, sh)
        self._keep, self._keep_count = None, sw * sh
        if self.config.mask:
            xs, ys = np.meshgrid((np.arange(sw) + 0.5) / sw, (np.arange(sh) + 0.5) / sh)
            masked = np.zeros((sh, sw), dtype=bool)
            for polygon in self.config.mask:
                masked |= points_in_polygon(xs, ys, polygon)
            self._keep = np.where(masked, 0, 255).astype(np.uint8)
            self._keep_count = int(np.count_nonzero(self._keep))

    def _luma(self, frame: np.ndarray) -> np.ndarray:
        sw, sh = self._small
        h, w = frame.shape[:2]
        if h >= 4 * sh and w >= 4 * sw:  # linear to twice the size, then average 2x2: cheap anti-aliasing
            frame = cv2.resize(frame, (2 * sw, 2 * sh), interpolation=cv2.INTER_LINEAR)
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if frame.shape[:2] != (sh, sw):
            frame = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        return frame

    def _percentiles(self, luma: np.ndarray) -> tuple[float, float]:
        hist = cv2.calcHist([luma], [0], self._keep, [256], [0, 256]).ravel()
        cdf = np.cumsum(hist)
        total = cdf[-1]
        if total <= 0:
            return 0.0, 255.0
        low = float(np.searchsorted(cdf, LOW_PERCENTILE * total))
        high = float(np.searchsorted(cdf, (1 - LOW_PERCENTILE) * total))
        return low, high

    def _prepare(self, luma: np.ndarray, snap: bool = False) -> np.ndarray:
        """Contrast-stretched (smoothed black/white points; ``snap``: this frame's own), masked, blurred."""
        low, high = self._percentiles(luma)
        if snap:
            self._low, self._high = low, high
        else:
            self._low += CONTRAST_SMOOTHING * (low - self._low)
            self._high += CONTRAST_SMOOTHING * (high - self._high)
        span = max(self._high - self._low, MIN_CONTRAST_RANGE)
        table = np.clip((_LEVELS - self._low) * (255.0 / span), 0, 255).astype(np.uint8)
        image = cv2.LUT(luma, table)
        if self._keep is not None:
            image = cv2.bitwise_and(image, self._keep)
        return cv2.GaussianBlur(image, BLUR_KSIZE, 0)

    def _restart(self, luma: np.ndarray) -> None:
        self._background = self._prepare(luma, snap=True).astype(np.float32)

    def _boxes(self, changed_px: np.ndarray) -> tuple[Box, ...]:
        if not cv2.countNonZero(changed_px):
            return ()
        blobs = cv2.dilate(changed_px, _DILATE_KERNEL, iterations=DILATE_ITERATIONS)
        if self._keep is not None:
            blobs = cv2.bitwise_and(blobs, self._keep)
        contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        w, h = self._out
        sw, sh = self._small
        fx, fy = w / sw, h / sh
        boxes: list[Box] = []
        for contour in contours:
            if cv2.contourArea(contour) < self.config.contour_area:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            x1, y1 = max(0, math.floor(x * fx)), max(0, math.floor(y * fy))
            x2, y2 = min(w, math.ceil((x + bw) * fx)), min(h, math.ceil((y + bh) * fy))
            if x2 > x1 and y2 > y1:
                boxes.append((x1, y1, x2, y2))
        if len(boxes) > MAX_MOTION_BOXES:  # more blobs than a message carries: one box around them all
            boxes = [
                (
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                )
            ]
        return tuple(boxes)
