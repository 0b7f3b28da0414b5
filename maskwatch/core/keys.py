"""Redis key and channel names: the names other programs script against."""

from __future__ import annotations

import re
from dataclasses import dataclass

CAMERA_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A camera id: 1-64 letters, digits, ``_``, ``.`` or ``-``; never ``.`` or ``..`` (ids name files)."""
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)


def is_camera_id(text: str) -> bool:
    """True when ``text`` is a valid camera id (:data:`CAMERA_ID_PATTERN`)."""
    return _CAMERA_ID.fullmatch(text) is not None and text not in (".", "..")


@dataclass(frozen=True)
class Keys:
    """Every Redis name maskwatch uses, under one configurable prefix (default ``maskwatch:``)."""

    prefix: str = "maskwatch:"

    def frames(self, camera: str) -> str:
        """Stream of encoded frames of one camera (ingest -> worker)."""
        return f"{self.prefix}frames:{camera}"

    def results(self, camera: str) -> str:
        """Stream of detection/classification results of one camera (worker -> publisher)."""
        return f"{self.prefix}results:{camera}"

    @property
    def events(self) -> str:
        """Bounded stream of per-frame events; field ``event`` holds the JSON document."""
        return f"{self.prefix}events"

    @property
    def violations(self) -> str:
        """Bounded stream of violation documents; field ``event`` holds the JSON document."""
        return f"{self.prefix}violations"

    @property
    def deadletter(self) -> str:
        """Stream of messages no stage could handle, with the reason."""
        return f"{self.prefix}deadletter"

    def events_channel(self, camera: str) -> str:
        return f"{self.prefix}events:{camera}"

    def violations_channel(self, camera: str) -> str:
        return f"{self.prefix}violations:{camera}"

    @property
    def cameras(self) -> str:
        """Set of camera ids that have ever produced frames (worker discovery)."""
        return f"{self.prefix}cameras"

    def camera_state(self, camera: str) -> str:
        """Hash with a camera's ingest state, reconnects and last sequence number."""
        return f"{self.prefix}camera:{camera}"

    def worker_state(self, camera: str) -> str:
        """Hash with what the workers remember of a camera between frames (``seq``, ``state`` JSON: last
        faces and their class cache), written only by a newer frame, with a TTL (``worker/camera_state.py``)."""
        return f"{self.prefix}camstate:{camera}"

    @property
    def announced_clips(self) -> str:
        """Hash of clips a violation announced and no ``clip_ready``/``clip_failed`` settled yet: violation
        id -> JSON (camera, clip, owner's heartbeat key); read when a publisher starts or one dies."""
        return f"{self.prefix}clips:announced"

    def heartbeat(self, stage: str, instance: str) -> str:
        """Key with a TTL refreshed by a live process."""
        return f"{self.prefix}heartbeat:{stage}:{instance}"

    def heartbeat_pattern(self, stage: str) -> str:
        return f"{self.prefix}heartbeat:{stage}:*"

    def published(self, camera: str) -> str:
        """Sorted set of the camera's last published frame seqs (frame-event dedup, bounded window)."""
        return f"{self.prefix}published:{camera}"

    def dedup(self, event_id: str) -> str:
        """Marker that an event id has been published (redelivery protection)."""
        return f"{self.prefix}dedup:{event_id}"

    def camera_of(self, stream_key: str | bytes) -> str:
        """The camera id of a ``frames:<camera>`` or ``results:<camera>`` key."""
        key = stream_key.decode() if isinstance(stream_key, bytes) else stream_key
        return key.rsplit(":", 1)[1]
