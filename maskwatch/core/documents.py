"""The JSON documents the publisher emits, built in one place (schemas in README and docs/violations.md).

- ``frame`` (``maskwatch.frame``): one per processed frame, on ``maskwatch:events``;
- ``violation`` (``maskwatch.violation``): one per person, on ``maskwatch:violations``;
- ``clip_ready`` / ``clip_failed``: one per violation when its clip is written (or is not).

Every document has ``schema``, ``schema_version``, ``type``, ``id`` and ``camera``; ids are uuid5 of
the camera and the sequence number of the frame that caused the document, so replays repeat them.
The builders take plain values and return JSON-ready dicts whose key order is the documented one.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

import numpy as np

from maskwatch.core.contracts import ResultMessage, event_id
from maskwatch.core.labels import CLASSES, VIOLATION_CLASSES

EVENT_SCHEMA_VERSION = 1
"""The documents' schema version (README "Event schema"); new fields may be added within it. The
stream messages between stages have their own version (``contracts.SCHEMA_VERSION``)."""

FaceDoc = TypedDict(
    "FaceDoc",
    {
        "box": list[float],
        "score": float,
        "class": str,
        "probs": dict[str, float],
        "carried": NotRequired[bool],
    },
)
"""One face of a frame event; ``carried`` (only on carried faces, always true): not detected in this
frame but carried forward from an earlier one of its camera (its region was not searched again)."""


class FrameEvent(TypedDict):
    """``maskwatch.frame`` v1."""

    schema: str
    schema_version: int
    type: str
    id: str
    camera: str
    seq: int
    capture_ts: float
    processed_ts: float
    published_ts: float
    width: int
    height: int
    detection: str
    pts: float | None
    faces: list[FaceDoc]
    counts: dict[str, int]
    violations: int
    models: dict[str, str]
    placeholder_classifier: bool


ViolationDoc = TypedDict(
    "ViolationDoc",
    {
        "schema": str,
        "schema_version": int,
        "type": str,
        "id": str,
        "camera": str,
        "track_id": str,
        "class": str,
        "confidence": float,
        "votes": int,
        "first_seen_ts": float,
        "first_seen": str,
        "decided_ts": float,
        "seq": int,
        "box": list[float],
        "frame_width": int,
        "frame_height": int,
        "snapshot": str | None,
        "clip": str | None,
        "clip_id": str | None,
        "snapshot_url": str | None,
        "clip_url": str | None,
        "media_error": NotRequired[str],
    },
)


class ClipDoc(TypedDict):
    """``maskwatch.clip_ready`` (path, duration_s, frames, size_bytes) or ``maskwatch.clip_failed``
    (error, reason) v1."""

    schema: str
    schema_version: int
    type: str
    id: str
    violation_id: str
    camera: str
    track_id: str
    clip_id: str
    snapshot: str | None
    snapshot_url: str | None
    clip_url: NotRequired[str]
    path: NotRequired[str]
    duration_s: NotRequired[float]
    frames: NotRequired[int]
    size_bytes: NotRequired[int]
    error: NotRequired[str]
    reason: NotRequired[str | None]


def iso_utc(ts: float) -> str:
    """``2025-11-24T16:00:00.600Z``: Unix seconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _box(box: Sequence[float] | np.ndarray) -> list[float]:
    return [round(float(v), 1) for v in box]


def frame_event(
    result: ResultMessage,
    published_ts: float | None = None,
    violation_classes: Collection[str] = VIOLATION_CLASSES,
) -> FrameEvent:
    """The event of one processed frame; ``violations`` counts faces of ``violation_classes``
    (``violations.violation_classes`` of the settings); ``detection`` says how the frame was searched
    (``full``, ``regions``, ``none``) and carried faces say ``"carried": true``."""
    labels = result.labels
    detected = result.faces
    probs = detected.probs.astype(float) if detected.probs is not None else np.zeros((len(detected), 0))
    carried = detected.carried if detected.carried is not None else np.zeros(len(detected), bool)
    faces: list[FaceDoc] = []
    for i in range(len(labels)):
        face: FaceDoc = {
            "box": _box(detected.boxes[i]),
            "score": round(float(detected.scores[i]), 4),
            "class": labels[i],
            "probs": {c: round(float(p), 4) for c, p in zip(detected.classes, probs[i], strict=True)},
        }
        if carried[i]:
            face["carried"] = True
        faces.append(face)
    counts = dict.fromkeys(CLASSES, 0) | dict.fromkeys(detected.classes, 0)
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {
        "schema": "maskwatch.frame",
        "schema_version": EVENT_SCHEMA_VERSION,
        "type": "frame",
        "id": event_id(result.camera, result.seq),
        "camera": result.camera,
        "seq": result.seq,
        "capture_ts": result.capture_ts,
        "processed_ts": result.processed_ts,
        "published_ts": published_ts if published_ts is not None else time.time(),
        "width": result.width,
        "height": result.height,
        "detection": result.detection,
        "pts": result.pts,
        "faces": faces,
        "counts": counts,
        "violations": sum(counts.get(c, 0) for c in set(violation_classes)),
        "models": result.models,
        "placeholder_classifier": result.placeholder,
    }


def violation_id(camera: str, seq: int, track_id: str) -> str:
    """Id of the violation of track ``track_id`` decided at frame ``seq``."""
    return event_id(camera, seq, kind=f"violation-{track_id}")


def snapshot_url(violation: str) -> str:
    """Where the HTTP API (``maskwatch api``) serves the snapshot of a violation, relative to its root."""
    return f"/api/violations/{violation}/snapshot.jpg"


def clip_url(violation: str) -> str:
    """Where the HTTP API serves the clip of a violation (HTTP Range supported), relative to its root."""
    return f"/api/violations/{violation}/clip.mp4"


def violation_document(
    *,
    camera: str,
    seq: int,
    track_id: str,
    label: str,
    confidence: float,
    votes: int,
    first_seen_ts: float,
    decided_ts: float,
    box: Sequence[float] | np.ndarray,
    frame_width: int,
    frame_height: int,
    snapshot: str | None = None,
    clip: str | None = None,
    clip_id: str | None = None,
    media_error: str | None = None,
) -> ViolationDoc:
    """The ``violation`` document of one person (``media_error`` only when there is one)."""
    doc: ViolationDoc = {
        "schema": "maskwatch.violation",
        "schema_version": EVENT_SCHEMA_VERSION,
        "type": "violation",
        "id": violation_id(camera, seq, track_id),
        "camera": camera,
        "track_id": track_id,
        "class": label,
        "confidence": round(confidence, 4),
        "votes": votes,
        "first_seen_ts": first_seen_ts,
        "first_seen": iso_utc(first_seen_ts),
        "decided_ts": decided_ts,
        "seq": seq,
        "box": _box(box),
        "frame_width": frame_width,
        "frame_height": frame_height,
        "snapshot": snapshot,
        "clip": clip,
        "clip_id": clip_id,
        "snapshot_url": None,
        "clip_url": None,
    }
    doc["snapshot_url"] = snapshot_url(doc["id"]) if snapshot else None
    doc["clip_url"] = clip_url(doc["id"]) if clip else None
    if media_error:
        doc["media_error"] = media_error
    return doc


@dataclass(frozen=True)
class ClipOf:
    """Whose clip a clip document is about: the violation (its camera, deciding frame ``seq``,
    ``track_id`` and id), the clip's id and the violation's snapshot path."""

    camera: str
    seq: int
    track_id: str
    violation_id: str
    clip_id: str
    snapshot: str | None

    def _base(self, kind: str) -> ClipDoc:
        return {
            "schema": f"maskwatch.{kind}",
            "schema_version": EVENT_SCHEMA_VERSION,
            "type": kind,
            "id": event_id(self.camera, self.seq, kind=f"{kind}-{self.track_id}"),
            "violation_id": self.violation_id,
            "camera": self.camera,
            "track_id": self.track_id,
            "clip_id": self.clip_id,
            "snapshot": self.snapshot,
            "snapshot_url": snapshot_url(self.violation_id) if self.snapshot else None,
        }


def clip_ready_document(of: ClipOf, *, path: str, duration_s: float, frames: int, size_bytes: int) -> ClipDoc:
    """The ``clip_ready`` document of a violation's clip."""
    doc = of._base("clip_ready")
    doc |= {
        "clip_url": clip_url(of.violation_id),
        "path": path,
        "duration_s": round(duration_s, 3),
        "frames": frames,
        "size_bytes": size_bytes,
    }
    return doc


def clip_failed_document(of: ClipOf, *, error: str, reason: str | None) -> ClipDoc:
    """The ``clip_failed`` document: why a violation's clip was not written."""
    doc = of._base("clip_failed")
    doc |= {"error": error, "reason": reason}
    return doc


Document = FrameEvent | ViolationDoc | ClipDoc
"""Any document of this module; all are plain dicts at run time."""

__all__ = [
    "ClipDoc",
    "ClipOf",
    "Document",
    "FaceDoc",
    "FrameEvent",
    "ViolationDoc",
    "clip_failed_document",
    "clip_ready_document",
    "clip_url",
    "frame_event",
    "iso_utc",
    "snapshot_url",
    "violation_document",
    "violation_id",
]
