"""Read frames from every camera's stream through one consumer group; reclaim what dead workers left."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import redis
from prometheus_client import Gauge

from maskwatch.core.keys import Keys, is_camera_id
from maskwatch.runtime import metrics_server as metrics

log = logging.getLogger(__name__)

STREAM_LENGTH = Gauge(
    "maskwatch_stream_length_messages",
    "Entries in a camera's stream (processed ones are deleted, so this is the backlog: undelivered plus "
    "pending)",
    ["stream", "camera"],
)


@dataclass(frozen=True)
class Entry:
    """One stream entry delivered to this consumer."""

    stream: str
    id: bytes
    fields: dict[bytes, bytes]
    reclaimed: bool = False
    deliveries: int = 1
    """Times the group has delivered this entry (XPENDING's count; 1 for a first delivery)."""

    @property
    def live(self) -> bool:
        """A live camera's frame (field ``live`` = ``1``): one a newer frame of its camera may supersede."""
        return self.fields.get(b"live") == b"1"


class StreamGroupConsumer:
    """Consumer-group reader over ``<prefix><kind>:*`` streams, discovering new cameras at run time.

    Every read serves every stream its share: the streams are read round-robin (the first stream rotates
    from read to read) with a per-stream COUNT of ``ceil(count / streams)``, and the entries are handed out
    interleaved by stream, so one busy camera cannot starve the others and a batch fills across cameras.
    Entries delivered beyond ``count`` wait in a buffer (they are ours, pending) for the next read.

    With ``newest_first`` (the worker; the publisher keeps it off and reads every entry in order), a live
    stream (entries with ``live`` = ``1``) that has several new entries yields only its newest one; the
    older ones are delivered too (so they can be acknowledged) but handed back by :meth:`take_superseded`,
    for the caller to ack and count. Entries of file streams (``live`` = ``0``) are never superseded, and
    neither are reclaimed ones.

    An entry delivered more than ``max_deliveries`` times (reclaimed from consumers that died on it, or
    re-read from our own pending after a restart) is not handed out: :meth:`take_exhausted` gives it to
    the caller to dead-letter and ack. Streams in :attr:`held` are not read for new entries (backpressure).
    """

    DRAIN_COUNT = 64
    """Entries per extra read when draining a live stream's backlog to find its newest entry."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        kind: str,
        group: str,
        consumer: str,
        claim_idle_ms: int,
        discovery_interval_s: float,
        *,
        newest_first: bool = False,
        max_deliveries: int | None = None,
    ) -> None:
        self.client, self.keys, self.kind = client, keys, kind
        self.group, self.consumer = group, consumer
        self.claim_idle_ms = claim_idle_ms
        self.discovery_interval_s = discovery_interval_s
        self.newest_first = newest_first
        self.max_deliveries = max_deliveries
        self.streams: set[str] = set()
        self.held: set[str] = set()
        """Streams not read for new entries while their output is full (the caller's backpressure)."""
        self._ignored: set[str] = set()  # keys whose camera part is not a camera id (warned once)
        self._exhausted: list[Entry] = []
        self._next_discovery = 0.0
        self._next_claim = 0.0
        self._read_own_pending = True
        self._pending_from: dict[str, bytes] = {}  # own-pending read position per stream
        self._pending_done: set[str] = set()  # streams whose own pending has been read through
        self._claimed: set[tuple[str, bytes]] = set()  # reclaimed while our own pending is read: not twice
        self._buffer: deque[Entry] = deque()
        self._superseded: list[Entry] = []
        self._turn = 0  # rotation of the stream order: the first stream of the next read

    def stream_key(self, camera: str) -> str:
        return f"{self.keys.prefix}{self.kind}:{camera}"

    def camera_of(self, stream: str) -> str | None:
        """The camera of one of our stream keys, or None when its camera part is not a camera id."""
        camera = stream.removeprefix(f"{self.keys.prefix}{self.kind}:")
        return camera if camera != stream and is_camera_id(camera) else None

    def reset(self) -> None:
        """Forget known streams (after Redis came back: groups may be gone) and re-read our pending."""
        self.streams.clear()
        self._next_discovery = 0.0
        self._read_own_pending = True
        self._pending_from.clear()
        self._pending_done.clear()
        self._claimed.clear()

    def discover(self, force: bool = False) -> None:
        """Find camera streams (registry set and key scan) and make sure the group exists on each."""
        now = time.monotonic()
        if not force and now < self._next_discovery:
            return
        self._next_discovery = now + self.discovery_interval_s
        members: set[bytes] = self.client.smembers(self.keys.cameras)  # type: ignore[assignment]
        found = {self.stream_key(c.decode(errors="replace")) for c in members}
        found |= {
            bytes(k).decode(errors="replace")
            for k in self.client.scan_iter(match=f"{self.keys.prefix}{self.kind}:*", count=1000)
        }
        for key in sorted(found - self.streams - self._ignored):
            if self.camera_of(key) is None:
                self._ignored.add(key)
                log.warning("%s: ignoring %r: its camera part is not a valid camera id", self.consumer, key)
                continue
            try:
                self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            self.streams.add(key)
            log.info("%s: consuming %s (group %s)", self.consumer, key, self.group)
        metrics.STREAMS.labels(self.kind).set(len(self.streams))

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries, interleaved by stream: buffered, reclaimed, our own pending, then new
        ones (blocking up to ``block_ms`` when nothing else is at hand). With ``newest_first``, older live
        entries that a newer one of the same stream replaces go to :meth:`take_superseded` instead."""
        order = self._rotation()
        out = list(self._buffer)
        self._buffer.clear()
        if len(out) < count:
            out += self._reclaim(count - len(out))
        if len(out) < count and self.streams:
            out += self._read_group(order, count - len(out), block_ms if not out else 0)
        elif not self.streams and not out and block_ms:
            time.sleep(block_ms / 1000)
        if self.newest_first:
            out = self._supersede(out)
        out = _interleave(out, order)
        if len(out) > count:
            self._buffer.extend(out[count:])
            out = out[:count]
        return out

    def take_exhausted(self) -> list[Entry]:
        """Entries delivered more than ``max_deliveries`` times since the last call, for the caller to
        dead-letter and ack (:meth:`ack`) instead of handling them again."""
        out, self._exhausted = self._exhausted, []
        return out

    def take_superseded(self) -> list[Entry]:
        """The live entries that newer ones replaced since the last call (``newest_first`` only), for the
        caller to ack (:meth:`ack`) and count as skipped, fields and all (the worker's ``skipped`` result of
        each carries its image on to the clips)."""
        out, self._superseded = self._superseded, []
        return out

    def ack(self, entries: list[Entry], pipe: redis.client.Pipeline) -> None:
        """Queue XACK + XDEL of ``entries`` on ``pipe`` (the stream keeps only unprocessed entries)."""
        by_stream: dict[str, list[bytes]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)

    def _rotation(self) -> list[str]:
        """The known streams, starting one further along at every read."""
        order = sorted(self.streams)
        if not order:
            return order
        k = self._turn % len(order)
        self._turn = k + 1
        return order[k:] + order[:k]

    def _supersede(self, entries: list[Entry]) -> list[Entry]:
        """Keep each stream's newest live entry (and every file or reclaimed one); set aside the rest."""
        newest: dict[str, bytes] = {}
        for e in entries:
            if e.live and not e.reclaimed:
                newest[e.stream] = e.id  # entries of a stream come oldest first
        kept = []
        for e in entries:
            if e.live and not e.reclaimed and newest[e.stream] != e.id:
                self._superseded.append(e)
            else:
                kept.append(e)
        return kept

    def _read_group(self, order: list[str], count: int, block_ms: int) -> list[Entry]:
        per_stream = math.ceil(count / len(order))
        for _ in range(1000):  # what this consumer was given before a restart or an outage, walked through
            if not self._read_own_pending:
                break
            exhausted = len(self._exhausted)
            entries = self._read_own(order, per_stream)
            if entries or len(self._exhausted) > exhausted:  # new entries only once it is all handled
                return entries
        order = [s for s in order if s not in self.held]
        if not order:  # every stream held back: wait as a blocking read would
            if block_ms:
                time.sleep(block_ms / 1000)
            return []
        per_stream = math.ceil(count / len(order))
        by_stream = self._xreadgroup({s: ">" for s in order}, per_stream, block_ms) or {}
        if self.newest_first:  # a live stream that filled its share may hold newer entries: drain it
            full = [s for s, es in by_stream.items() if len(es) >= per_stream and es[-1].live]
            while full:
                more = self._xreadgroup({s: ">" for s in full}, self.DRAIN_COUNT, 0) or {}
                for s, es in more.items():
                    by_stream[s] = self._supersede(by_stream[s] + es)
                full = [s for s, es in more.items() if len(es) >= self.DRAIN_COUNT and es[-1].live]
        return [e for s in order for e in by_stream.get(s, [])]

    def _read_own(self, order: list[str], per_stream: int) -> list[Entry]:
        """The next of this consumer's pending entries (each stream read on from where it left off)."""
        todo = {s: self._pending_from.get(s, b"0") for s in order if s not in self._pending_done}
        if not todo:
            self._read_own_pending = False
            return []
        by_stream = self._xreadgroup(todo, per_stream, 0, raw=True)
        if by_stream is None:  # group missing: reset() ran, our pending is gone
            return []
        out: list[Entry] = []
        for stream in todo:
            got = by_stream.get(stream, [])
            if not got:
                self._pending_done.add(stream)
                continue
            self._pending_from[stream] = got[-1].id
            # an own-pending entry deleted meanwhile has no fields; one reclaimed by this read is ours already
            out += [e for e in got if e.fields and (stream, e.id) not in self._claimed]
        if self._pending_done >= set(order):
            self._read_own_pending = False  # none left: new entries from now on
            self._claimed.clear()
        return self._within_deliveries([replace(e, deliveries=2) for e in out])

    def _within_deliveries(self, entries: list[Entry]) -> list[Entry]:
        """``entries`` (redelivered ones) with their delivery counts from XPENDING, one pipelined call;
        those delivered more than ``max_deliveries`` times are set aside for :meth:`take_exhausted`."""
        if not entries or self.max_deliveries is None:
            return entries
        pipe = self.client.pipeline(transaction=False)
        for e in entries:
            pipe.xpending_range(e.stream, self.group, e.id, e.id, 1, consumername=self.consumer)
        kept = []
        for e, rows in zip(entries, pipe.execute(raise_on_error=False), strict=True):
            count = int(rows[0]["times_delivered"]) if isinstance(rows, list) and rows else e.deliveries
            e = replace(e, deliveries=count)
            if count > self.max_deliveries:
                log.error(
                    "%s: %s %s was delivered %d times (max_deliveries %d): not handled again",
                    self.consumer,
                    e.stream,
                    e.id.decode(),
                    count,
                    self.max_deliveries,
                )
                self._exhausted.append(e)
            else:
                kept.append(e)
        return kept

    def _xreadgroup(
        self, streams: dict[Any, Any], count: int, block_ms: int, *, raw: bool = False
    ) -> dict[str, list[Entry]] | None:
        """Entries by stream (oldest first), or None when the group is gone (then re-created); with
        ``raw``, own-pending entries deleted meanwhile (no fields) are kept so the read can move past them."""
        try:
            reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = self.client.xreadgroup(  # type: ignore[assignment]
                self.group, self.consumer, streams, count=count, block=block_ms or None
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                log.warning("%s: consumer group missing (Redis restarted?); re-creating", self.consumer)
                self.reset()
                self.discover(force=True)
                return None
            raise
        return {
            stream.decode(): [
                Entry(stream.decode(), entry_id, fields or {})
                for entry_id, fields in messages
                if fields or raw
            ]
            for stream, messages in reply or []
        }

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
            got = [Entry(stream, i, f, reclaimed=True, deliveries=2) for i, f in claimed if f]
            if self._read_own_pending:
                self._claimed.update((stream, e.id) for e in got)
            if got:
                camera = self.keys.camera_of(stream)
                metrics.RECLAIMED.labels(self.kind, camera).inc(len(got))
                log.warning(
                    "%s: reclaimed %d message(s) of %s left by a dead consumer",
                    self.consumer,
                    len(got),
                    stream,
                )
            out += self._within_deliveries(got)
            if len(out) >= count:
                break
        return out

    def update_lag_metrics(self) -> None:
        """Export per stream its length (XLEN), pending (unacked, XINFO GROUPS) and lag: entries not yet
        delivered, taken as length minus pending (one pipelined call for every stream).

        Processed entries are deleted (XACK + XDEL), so the length is the backlog; XINFO's own ``lag``
        is not used: after deletions and ``MAXLEN ~`` trims Redis 7.0/7.2 report a phantom backlog
        (redis/redis#13957), e.g. a lag of 317 on an empty stream."""
        streams = sorted(self.streams)
        pipe = self.client.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        replies = pipe.execute(raise_on_error=False)
        for i, stream in enumerate(streams):
            length, groups = replies[2 * i], replies[2 * i + 1]
            if isinstance(length, Exception) or isinstance(groups, Exception):
                continue
            camera = self.keys.camera_of(stream)
            pending = 0
            for g in groups:
                name = g.get("name", b"")
                if (name.decode() if isinstance(name, bytes) else name) == self.group:
                    pending = int(g.get("pending", 0))
            STREAM_LENGTH.labels(self.kind, camera).set(length)
            metrics.STREAM_LAG.labels(self.kind, camera).set(max(0, length - pending))
            metrics.STREAM_PENDING.labels(self.kind, camera).set(pending)


def _interleave(entries: list[Entry], order: list[str]) -> list[Entry]:
    """``entries`` taken one per stream in turn (streams in ``order`` first), each stream's kept in order."""
    by_stream: dict[str, deque[Entry]] = {}
    for s in order:
        by_stream[s] = deque()
    for e in entries:
        by_stream.setdefault(e.stream, deque()).append(e)
    queues = [q for q in by_stream.values() if q]
    out: list[Entry] = []
    while queues:
        out += [q.popleft() for q in queues]
        queues = [q for q in queues if q]
    return out
