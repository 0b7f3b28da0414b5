"""How clip frames and snapshots look: faces blurred for privacy, boxes and labels, zones, camera and time.

A leaf: clips and snapshots both draw with :func:`render_frame`; it imports neither."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import cv2
import numpy as np

from maskwatch.core.faces import Faces
from maskwatch.models.annotate import draw_faces
from maskwatch.publisher.frames import BufferedFrame

ZONE_COLOUR_BGR = (255, 200, 0)


def utc_text(ts: float) -> str:
    """``2026-11-25 17:50:19.3 UTC``: the timestamp drawn on clips."""
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 100_000} UTC"


def media_text(pts: float) -> str:
    """``00:01:23.4``: a file source's media time, drawn on its clips instead of the wall clock."""
    tenths = max(0, round(pts * 10))
    seconds, tenth = divmod(tenths, 10)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}.{tenth}"


def clock_text(frame: BufferedFrame) -> str:
    """What a clip frame's clock shows: media time for files (``pts``), the capture time otherwise."""
    return media_text(frame.pts) if frame.pts is not None else utc_text(frame.ts)


def draw_caption(frame: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner on a dark band, in place."""
    h, w = frame.shape[:2]
    scale = max(0.5, min(h, w) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(frame, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), cv2.FILLED)
    cv2.putText(frame, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def draw_track_ids(frame: np.ndarray, faces: Faces, track_ids: Sequence[str]) -> np.ndarray:
    """Write each face's track id (its public name, "" for none) under its box, in place."""
    h, w = frame.shape[:2]
    scale = max(0.4, min(h, w) / 1400)
    for (x1, _y1, _x2, y2), tid in zip(faces.boxes.tolist(), track_ids, strict=True):
        if not tid:
            continue
        org = (int(x1), int(min(h - 4, y2 + 16 * scale + 6)))
        cv2.putText(frame, f"#{tid}", org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def blur_boxes(frame: np.ndarray, faces: Faces) -> np.ndarray:
    """Pixelate and blur each face's box (plus a 10% margin) beyond recognition, in place."""
    h, w = frame.shape[:2]
    for x1, y1, x2, y2 in faces.boxes.astype(np.float64).tolist():
        pad_x, pad_y = (x2 - x1) * 0.1, (y2 - y1) * 0.1
        a, b = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
        c, d = min(int(x2 + pad_x), w), min(int(y2 + pad_y), h)
        if c - a < 2 or d - b < 2:
            continue
        small = cv2.resize(
            frame[b:d, a:c], (max(1, (c - a) // 12), max(1, (d - b) // 12)), interpolation=cv2.INTER_AREA
        )
        frame[b:d, a:c] = cv2.GaussianBlur(
            cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST), (0, 0), 3
        )
    return frame


def render_frame(
    frame: BufferedFrame,
    blur: str = "none",
    violators: frozenset[str] | set[str] = frozenset(),
    max_width: int | None = None,
    zones: Sequence[Sequence[tuple[float, float]]] = (),
) -> np.ndarray | None:
    """The annotated picture of ``frame``: ``blur`` ``all`` faces, or all but the ``violators``
    (``others``); zone outlines, face boxes and labels, track ids, camera id and capture time."""
    img = frame.image()
    if img is None:
        return None
    faces, names = frame.faces, frame.track_names
    if blur == "all":
        blur_boxes(img, faces)
    elif blur == "others":
        blur_boxes(img, faces[np.array([t not in violators for t in names], bool)])
    h, w = img.shape[:2]
    for zone in zones:
        pts = np.array([[x * w, y * h] for x, y in zone], dtype=np.int32)
        cv2.polylines(img, [pts], True, ZONE_COLOUR_BGR, max(1, round(min(h, w) / 540)))
    img = draw_faces(img, faces, frame.labels)
    draw_track_ids(img, faces, names)
    draw_caption(img, f"{frame.camera}  {clock_text(frame)}")
    if max_width and w > max_width:
        img = cv2.resize(img, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    return img
