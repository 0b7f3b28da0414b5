"""Read frames from every camera's stream through one consumer group; reclaim what dead workers left."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import redis

from maskwatch.core.keys import Keys
from maskwatch.runtime import metrics_server as metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One stream entry delivered to this consumer."""

    stream: str
    id: bytes
    fields: dict[bytes, bytes]
    reclaimed: bool = False


class StreamGroupConsumer:
    """Consumer-group reader over ``<prefix><kind>:*`` streams, discovering new cameras at run time."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        kind: str,
        group: str,
        consumer: str,
        claim_idle_ms: int,
        discovery_interval_s: float,
    ) -> None:
        self.client, self.keys, self.kind = client, keys, kind
        self.group, self.consumer = group, consumer
        self.claim_idle_ms = claim_idle_ms
        self.discovery_interval_s = discovery_interval_s
        self.streams: set[str] = set()
        self._next_discovery = 0.0
        self._next_claim = 0.0
        self._read_own_pending = True
        self._buffer: deque[Entry] = deque()

    def stream_key(self, camera: str) -> str:
        return f"{self.keys.prefix}{self.kind}:{camera}"

    def reset(self) -> None:
        """Forget known streams (after Redis came back: groups may be gone) and re-read our pending."""
        self.streams.clear()
        self._next_discovery = 0.0
        self._read_own_pending = True

    def discover(self, force: bool = False) -> None:
        """Find camera streams (registry set and key scan) and make sure the group exists on each."""
        now = time.monotonic()
        if not force and now < self._next_discovery:
            return
        self._next_discovery = now + self.discovery_interval_s
        members: set[bytes] = self.client.smembers(self.keys.cameras)  # type: ignore[assignment]
        found = {self.stream_key(c.decode()) for c in members}
        found |= {
            bytes(k).decode()
            for k in self.client.scan_iter(match=f"{self.keys.prefix}{self.kind}:*", count=1000)
        }
        for key in sorted(found - self.streams):
            try:
                self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            self.streams.add(key)
            log.info("%s: consuming %s (group %s)", self.consumer, key, self.group)
        metrics.STREAMS.labels(self.kind).set(len(self.streams))

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries: buffered, reclaimed, our own pending, then new ones (blocking)."""
        out: list[Entry] = []
        while self._buffer and len(out) < count:
            out.append(self._buffer.popleft())
        if len(out) < count:
            out += self._reclaim(count - len(out))
        if len(out) < count and self.streams:
            out += self._read_group(count - len(out), block_ms if not out else 0)
        elif not self.streams and block_ms:
            time.sleep(block_ms / 1000)
        if len(out) > count:
            self._buffer.extend(out[count:])
            out = out[:count]
        return out

    def ack(self, entries: list[Entry], pipe: redis.client.Pipeline) -> None:
        """Queue XACK + XDEL of ``entries`` on ``pipe`` (the stream keeps only unprocessed entries)."""
        by_stream: dict[str, list[bytes]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)

    def _read_group(self, count: int, block_ms: int) -> list[Entry]:
        if self._read_own_pending:  # what this consumer was given before a restart or an outage
            entries = self._xreadgroup("0", count, 0)
            if entries:
                return entries
            self._read_own_pending = False  # none left: new entries from now on
        return self._xreadgroup(">", count, block_ms)

    def _xreadgroup(self, start_id: str, count: int, block_ms: int) -> list[Entry]:
        streams: dict[Any, Any] = {s: start_id for s in sorted(self.streams)}
        try:
            reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = self.client.xreadgroup(  # type: ignore[assignment]
                self.group, self.consumer, streams, count=count, block=block_ms or None
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                log.warning("%s: consumer group missing (Redis restarted?); re-creating", self.consumer)
                self.reset()
                self.discover(force=True)
                return []
            raise
        return [
            Entry(stream.decode(), entry_id, fields)
            for stream, messages in reply or []
            for entry_id, fields in messages
            if fields  # an own-pending entry deleted meanwhile comes back with no fields
        ]

    def _reclaim(self, count: int) -> list[Entry]:
        now = time.monotonic()
        if now < self._next_claim or not self.streams:
            return []
        self._next_claim = now + max(0.5, self.claim_idle_ms / 4000)
        out: list[Entry] = []
        for stream in sorted(self.streams):
            try:
                reply = self.client.xautoclaim(
                    stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=count
                )
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):
                    self.reset()
                    return out
                raise
            claimed = reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:
                self.client.xack(stream, self.group, *deleted)
            got = [Entry(stream, i, f, reclaimed=True) for i, f in claimed if f]
            if got:
                camera = self.keys.camera_of(stream)
                metrics.RECLAIMED.labels(self.kind, camera).inc(len(got))
                log.warning(
                    "%s: reclaimed %d message(s) of %s left by a dead consumer",
                    self.consumer,
                    len(got),
                    stream,
                )
            out += got
            if len(out) >= count:
                break
        return out

    def update_lag_metrics(self) -> None:
        """Export lag (undelivered) and pending (unacked) per stream from XINFO GROUPS."""
        for stream in sorted(self.streams):
            try:
                groups = self.client.xinfo_groups(stream)
            except redis.ResponseError:
                continue
            for g in groups:
                name = g.get("name", b"")
                if (name.decode() if isinstance(name, bytes) else name) != self.group:
                    continue
                camera = self.keys.camera_of(stream)
                lag = g.get("lag")
                metrics.STREAM_LAG.labels(self.kind, camera).set(float(lag) if lag is not None else 0)
                metrics.STREAM_PENDING.labels(self.kind, camera).set(float(g.get("pending", 0)))
