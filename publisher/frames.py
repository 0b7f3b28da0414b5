"""Processed frames kept for clips and snapshots: the frame's image, its faces and how each is labelled."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.core.faces import Faces
from maskwatch.publisher.tracker import track_name

OUTSIDE_ZONE = "outside_zone"
"""The drawn label of a face outside every zone of its camera (drawn grey, blurred like the others)."""


@dataclass(frozen=True)
class BufferedFrame:
    """A processed frame kept for clips: its JPEG (cheap to keep) or its pixels, and its faces.

    ``faces`` carry their track ids (``-1`` outside the zones); ``labels`` is the drawn label of
    each face (the track's decided class, the frame's class while undecided, or ``outside_zone``);
    empty means the faces' own classes.
    """

    camera: str
    seq: int
    ts: float
    faces: Faces
    labels: tuple[str, ...] = ()
    jpeg: bytes | None = None
    pixels: np.ndarray | None = None
    pts: float | None = None
    """Media time in the source file (seconds), None for live cameras: what a clip's clock shows."""

    def __post_init__(self) -> None:
        if not self.labels and len(self.faces):
            object.__setattr__(self, "labels", tuple(self.faces.labels))
        if len(self.labels) != len(self.faces):
            raise ValueError(f"BufferedFrame: {len(self.faces)} faces but {len(self.labels)} labels")

    @property
    def track_names(self) -> tuple[str, ...]:
        """Each face's public track id; "" where it has none."""
        assert self.faces.track_ids is not None
        return tuple(track_name(k) for k in self.faces.track_ids.tolist())

    def image(self) -> np.ndarray | None:
        """The BGR pixels (decoded on demand), or None if the frame carried no image."""
        if self.pixels is not None:
            return self.pixels.copy()
        if self.jpeg:
            return cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return None


class FrameRing:
    """The most recent processed frames of one camera (bounded by count)."""

    def __init__(self, max_frames: int):
        self.frames: deque[BufferedFrame] = deque(maxlen=max_frames)

    def append(self, frame: BufferedFrame) -> None:
        self.frames.append(frame)

    def since(self, ts: float) -> list[BufferedFrame]:
        """Frames captured at or after ``ts``, oldest first."""
        return [f for f in self.frames if f.ts >= ts]

    def __len__(self) -> int:
        return len(self.frames)
