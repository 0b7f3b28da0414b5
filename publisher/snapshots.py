"""JPEG snapshots of violators: the track's best frame (largest, most confident face), annotated.

Written on the clip writer thread (see :class:`~maskwatch.publisher.clips.ClipRecorder`), never on the loop."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2

from maskwatch.config.violations import ClipSettings
from maskwatch.publisher.frames import BufferedFrame
from maskwatch.publisher.render import render_frame

log = logging.getLogger(__name__)


@dataclass
class SnapshotJob:
    """One snapshot to write: the frame, whose track is the violator, and where."""

    path: Path
    frame: BufferedFrame
    violator: str
    camera: str
    zones: Sequence[Sequence[tuple[float, float]]] = ()
    label: str | None = None
    """The violator's class, drawn on its face (the frame may predate the decision)."""


@dataclass(frozen=True)
class SnapshotResult:
    """A snapshot written on the clip writer thread (``error`` None), or why not."""

    camera: str
    path: Path
    error: str | None = None


class SnapshotWriter:
    """Renders a frame like a clip frame (same blur rule) and writes it as JPEG, atomically."""

    def __init__(self, *, blur: str, max_width: int | None, quality: int):
        self.blur = blur
        self.max_width = max_width
        self.quality = quality

    @classmethod
    def from_settings(cls, clips: ClipSettings) -> SnapshotWriter:
        """The writer of the ``clips`` settings (blur, ``max_width``, ``jpeg_quality``)."""
        return cls(blur=clips.blur, max_width=clips.max_width, quality=clips.jpeg_quality)

    def write(self, job: SnapshotJob) -> str | None:
        """Write the snapshot; return None, or the error text (the caller logs and counts it)."""
        frame = job.frame
        if job.label is not None:
            pairs = zip(frame.track_names, frame.labels, strict=True)
            frame = replace(frame, labels=tuple(job.label if t == job.violator else lb for t, lb in pairs))
        img = render_frame(frame, self.blur, {job.violator}, self.max_width, job.zones)
        if img is None:
            return f"snapshot {job.path.name}: the frame carried no image"
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return f"snapshot {job.path.name}: JPEG encoding failed"
        part = job.path.with_name(job.path.name + ".part")
        try:
            job.path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(data.tobytes())
            os.replace(part, job.path)
        except OSError as e:
            part.unlink(missing_ok=True)
            return f"cannot write snapshot {job.path}: {e}"
        return None
