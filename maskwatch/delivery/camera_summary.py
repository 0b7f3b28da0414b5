"""Each camera's state for MQTT, from what other processes can read: the camera hash (ingest), the
per-frame events stream (publisher) and the violation documents the sink itself delivers.

Prometheus gauges live in the publisher's memory, so the compliance here is recomputed from the frame
events over the same rolling window (``violations.compliance_window_s``): the share of face observations
classified ``with_mask`` (``basis="faces"`` of ``maskwatch_compliance_ratio``; carried faces and frames of
the placeholder classifier are not observations; the gauge also applies zones, these events do not).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis

from maskwatch.core.keys import Keys

log = logging.getLogger(__name__)

CLASSES = ("with_mask", "without_mask", "incorrect_mask")


@dataclass
class _Camera:
    faces: deque[tuple[float, str]] = field(default_factory=deque)  # (capture ts, class) per observation
    violations: deque[float] = field(default_factory=deque)  # decided ts of each violation
    last_frame_ts: float | None = None
    in_view: int | None = None  # faces in the camera's latest frame event


class CameraSummary:
    """Rolling per-camera counts fed by :meth:`poll_events` (tails ``maskwatch:events`` with a cursor, not a
    consumer group: reading it changes nothing for anyone) and :meth:`add_violation`."""

    PAGE = 500
    MAX_PAGES = 40  # per poll: a long backlog is caught up over several polls

    def __init__(self, client: redis.Redis, keys: Keys, window_s: float, hold_s: float) -> None:
        self.client, self.keys, self.window_s, self.hold_s = client, keys, window_s, hold_s
        self.cameras: dict[str, _Camera] = {}
        self._cursor: str | None = None

    def camera(self, camera: str) -> _Camera:
        return self.cameras.setdefault(camera, _Camera())

    def add_violation(self, camera: str, decided_ts: float) -> None:
        self.camera(camera).violations.append(decided_ts)

    def load_recent_violations(self, now: float | None = None) -> None:
        """The violations of the last window (after a restart the binary sensor and counts carry on)."""
        start = f"{int(((now or time.time()) - self.window_s) * 1000)}-0"
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.client.xrange(  # type: ignore[assignment]
            self.keys.violations, min=start, max="+", count=10_000
        )
        for _id, fields in entries:
            doc = _json(fields.get(b"event"))
            if doc and doc.get("type") == "violation" and isinstance(doc.get("camera"), str):
                self.add_violation(doc["camera"], _num(doc.get("decided_ts")) or time.time())

    def poll_events(self, now: float | None = None) -> int:
        """Read the frame events added since the last poll (the first poll starts one window back)."""
        if self._cursor is None:
            self._cursor = f"{int(((now or time.time()) - self.window_s) * 1000)}-0"
            start = self._cursor
        else:
            start = f"({self._cursor}"
        n = 0
        for _ in range(self.MAX_PAGES):
            page: list[tuple[bytes, dict[bytes, bytes]]] = self.client.xrange(  # type: ignore[assignment]
                self.keys.events, min=start, max="+", count=self.PAGE
            )
            for entry_id, fields in page:
                self._cursor = entry_id.decode()
                doc = _json(fields.get(b"event"))
                if doc:
                    self._frame(doc)
                n += 1
            if len(page) < self.PAGE:
                break
            start = f"({self._cursor}"
        return n

    def _frame(self, doc: dict[str, Any]) -> None:
        camera, faces = doc.get("camera"), doc.get("faces")
        if not isinstance(camera, str) or not isinstance(faces, list):
            return
        ts = _num(doc.get("capture_ts")) or time.time()
        cam = self.camera(camera)
        cam.last_frame_ts, cam.in_view = ts, len(faces)
        if doc.get("placeholder_classifier"):
            return
        for face in faces:
            if isinstance(face, dict) and not face.get("carried") and face.get("class") in CLASSES:
                cam.faces.append((ts, face["class"]))

    def state(self, camera: str, now: float | None = None) -> dict[str, Any]:
        """The retained state document of ``camera`` (``<prefix>/<camera>/state``)."""
        now = time.time() if now is None else now
        cam = self.camera(camera)
        cutoff = now - self.window_s
        while cam.faces and cam.faces[0][0] < cutoff:
            cam.faces.popleft()
        while cam.violations and cam.violations[0] < cutoff:
            cam.violations.popleft()
        counts = dict.fromkeys(CLASSES, 0)
        for _, label in cam.faces:
            counts[label] += 1
        total = sum(counts.values())
        last_violation = max(cam.violations) if cam.violations else None
        hash_: dict[bytes, bytes] = self.client.hgetall(self.keys.camera_state(camera))  # type: ignore[assignment]
        ingest_state = hash_.get(b"state", b"").decode() or None
        recent = cam.last_frame_ts is not None and cam.last_frame_ts >= cutoff
        return {
            "camera": camera,
            "ts": round(now, 3),
            "up": None if ingest_state is None else ingest_state == "streaming",
            "camera_state": ingest_state,
            "since": _num(hash_.get(b"since", b"").decode() or None),
            "window_s": self.window_s,
            "faces": counts,
            "compliance": round(100.0 * counts["with_mask"] / total, 1) if total else None,
            "people_in_view": cam.in_view if recent else None,
            "violations": len(cam.violations),
            "last_violation_ts": last_violation,
            "violation": last_violation is not None and now - last_violation < self.hold_s,
        }


def _json(raw: bytes | None) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _num(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
