"""Announced clips survive the publisher that was recording them.

A ``violation`` document announces its clip before the clip is written (post-roll). The ledger keeps
each announcement in Redis (``<prefix>clips:announced``) until its ``clip_ready`` or ``clip_failed`` is
published. A publisher that starts, or finds a peer's heartbeat gone, settles the announcements that
nobody is recording any more: ``clip_ready`` when the clip file was finished (files appear only once
complete), else ``clip_failed`` with reason ``publisher_stopped``. HDEL decides which publisher settles
an entry, so each is settled once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import av
import redis

from maskwatch.core.documents import ClipOf, clip_failed_document, clip_ready_document
from maskwatch.core.errors import ErrorKind

log = logging.getLogger(__name__)

SETTLING = ("clip_ready", "clip_failed")


class ClipLedger:
    """The announced, unsettled clips of every publisher; ``owner`` is this publisher's heartbeat key."""

    def __init__(self, client: redis.Redis, key: str, owner: str) -> None:
        self.client, self.key, self.owner = client, key, owner
        self._started = False

    def track(self, docs: Iterable[Mapping[str, Any]], pipe: redis.client.Pipeline) -> None:
        """Queue on ``pipe``: remember each published violation that announced a clip, forget each
        violation whose clip document was published."""
        for doc in docs:
            kind = doc.get("type")
            if kind == "violation" and doc.get("clip"):
                entry = {
                    "owner": self.owner,
                    "camera": doc["camera"],
                    "seq": doc["seq"],
                    "track_id": doc["track_id"],
                    "clip_id": doc["clip_id"],
                    "clip": doc["clip"],
                    "snapshot": doc.get("snapshot"),
                }
                pipe.hset(self.key, doc["id"], json.dumps(entry))
            elif kind in SETTLING:
                pipe.hdel(self.key, doc["violation_id"])

    def orphans(self) -> list[dict[str, Any]]:
        """Settle the announcements nobody records any more and return their clip documents: at the
        first call also this publisher's own (it restarted: its clips in progress are gone), then
        those of publishers whose heartbeat expired."""
        entries: dict[bytes, bytes] = self.client.hgetall(self.key)  # type: ignore[assignment]
        first, self._started = not self._started, True
        parsed = {vid: _parse(raw) for vid, raw in entries.items()}
        owners = sorted({e["owner"] for e in parsed.values() if e and e.get("owner") != self.owner})
        alive = dict(zip(owners, _each_exists(self.client, owners), strict=True))
        docs: list[dict[str, Any]] = []
        for vid, entry in parsed.items():
            if entry is None:
                self.client.hdel(self.key, vid)  # not ours to understand: drop it, say so
                log.error("clip ledger: dropped an unreadable entry %r", vid[:80])
                continue
            owner = entry.get("owner")
            if (owner == self.owner and not first) or (owner != self.owner and alive.get(owner, False)):
                continue
            if not self.client.hdel(self.key, vid):
                continue  # another publisher settled it
            docs.append(_settle(vid.decode(), entry))
        return docs


def _each_exists(client: redis.Redis, keys: list[str]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.exists(k)
    return [bool(n) for n in pipe.execute()]


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    needed = ("owner", "camera", "seq", "track_id", "clip_id", "clip")
    return entry if isinstance(entry, dict) and all(k in entry for k in needed) else None


def _settle(violation_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    of = ClipOf(
        str(entry["camera"]),
        int(entry["seq"]),
        str(entry["track_id"]),
        violation_id,
        str(entry["clip_id"]),
        entry.get("snapshot"),
    )
    path = Path(entry["clip"])
    if path.is_file():
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                frames = sum(1 for packet in container.demux(stream) if packet.size)
                duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            log.warning("clip %s was finished but never announced as ready: announcing it now", path)
            return dict(
                clip_ready_document(
                    of, path=str(path), duration_s=duration, frames=frames, size_bytes=path.stat().st_size
                )
            )
        except (av.error.FFmpegError, IndexError, OSError) as e:
            log.error("clip %s is unreadable: %s", path, e)
    error = f"the publisher recording clip {path.name} stopped before the clip was finished"
    log.error("%s: announcing clip_failed for violation %s", error, violation_id)
    return dict(clip_failed_document(of, error=error, reason=ErrorKind.PUBLISHER_STOPPED))
