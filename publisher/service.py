"""The publisher stage loop: results in, one event per frame out (plus violation documents), exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from maskwatch.config.settings import PublisherSettings, Settings
from maskwatch.core.contracts import EndOfStream, ResultMessage, decode_result_entry
from maskwatch.core.errors import ContractError, ErrorKind
from maskwatch.core.keys import Keys
from maskwatch.publisher import metrics
from maskwatch.publisher.clip_ledger import ClipLedger
from maskwatch.publisher.events import frame_event
from maskwatch.publisher.sink import EventSink
from maskwatch.publisher.violations import ViolationMonitor
from maskwatch.runtime.deadletter import MAX_DELIVERIES, DeadLetters
from maskwatch.runtime.group_consumer import Entry, StreamGroupConsumer
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.redis_conn import REDIS_DOWN, connect
from maskwatch.runtime.stage import Every, LoopOptions, Stage

log = logging.getLogger(__name__)


class Monitor(Protocol):
    """Turns new results into violation documents (``publisher.violations``)."""

    def observe(self, result: ResultMessage) -> list[dict[str, Any]]: ...

    def end_of_stream(self, camera: str) -> list[dict[str, Any]]: ...

    def tick(self, now: float) -> list[dict[str, Any]]: ...

    def close(self, deadline: float) -> list[dict[str, Any]]: ...


@dataclass
class PublisherStats:
    events: int = 0
    duplicates: int = 0
    violation_docs: int = 0
    deadletters: int = 0
    published_by_camera: dict[str, int] = field(default_factory=dict)
    ended: dict[str, EndOfStream] = field(default_factory=dict)


class PublisherService(Stage):
    """Consumes every results stream through one group and publishes each frame's event once.

    A result that cannot be handled costs only itself: whatever decoding, building its event (no NaN
    passes: documents are serialised with ``allow_nan=False``) or the violation monitor raise on it,
    it is dead-lettered with the reason and acknowledged, and the rest of the read carries on; one
    delivered more than ``max_deliveries`` times is dead-lettered unread.
    """

    stage = "publisher"

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        consumer: StreamGroupConsumer,
        sink: EventSink,
        heartbeat: Heartbeat,
        config: PublisherSettings,
        options: LoopOptions,
        monitor: Monitor | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        *,
        violation_classes: Collection[str],
        dead: DeadLetters | None = None,
        ledger: ClipLedger | None = None,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.keys, self.consumer, self.sink = keys, consumer, sink
        self.dead = dead or DeadLetters(keys.deadletter, self.stage, config.deadletter_max_payload_bytes)
        self.config, self.monitor, self.on_event = config, monitor, on_event
        self.stats = PublisherStats()
        self.violation_classes = frozenset(violation_classes)  # what a frame event counts as violations
        self._tick = Every(config.tick_interval_s)
        self._lag_metrics = Every(config.lag_metrics_interval_s)
        self.ledger = ledger  # announced clips, settled here when their publisher is gone
        self._ledger_check = Every(config.ledger_interval_s)

    @classmethod
    def from_settings(
        cls, settings: Settings, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> PublisherService:
        """The publisher the settings describe; ``on_event`` also receives every frame event."""
        cfg = settings.publisher
        name = cfg.consumer or instance_name(cls.stage, settings.instance)
        client = connect(settings)
        keys = Keys(settings.key_prefix)
        consumer = StreamGroupConsumer(
            client,
            keys,
            "results",
            cfg.group,
            name,
            cfg.claim_idle_ms,
            cfg.discovery_interval_s,
            max_deliveries=cfg.max_deliveries,
        )
        hb = Heartbeat.from_settings(client, settings, cls.stage, name)
        monitor = ViolationMonitor.from_settings(settings) if settings.violations.enabled else None
        options = LoopOptions.from_settings(settings, cls.stage)
        sink = EventSink(client, cfg.dedup_ttl_s, cfg.dedup_window)
        classes = settings.violations.violation_classes
        dead = DeadLetters(keys.deadletter, cls.stage, cfg.deadletter_max_payload_bytes)
        ledger = ClipLedger(client, keys.announced_clips, hb.key) if monitor else None
        return cls(
            client,
            keys,
            consumer,
            sink,
            hb,
            cfg,
            options,
            monitor,
            on_event,
            violation_classes=classes,
            dead=dead,
            ledger=ledger,
        )

    def done(self, cameras: list[str]) -> bool:
        """True when each camera's file has ended and all its frames have been published."""
        s = self.stats
        return all(c in s.ended and s.published_by_camera.get(c, 0) >= s.ended[c].frames for c in cameras)

    def heartbeat_info(self) -> dict[str, int]:
        return {"events": self.stats.events}

    def on_reconnect(self) -> None:
        self.consumer.reset()

    def on_stop(self, deadline: float) -> None:
        """Let the monitor finish its clips until ``deadline`` (``shutdown_grace_s`` after the stop)."""
        self.close(time.time() + max(0.0, deadline - time.monotonic()))

    def close(self, deadline: float) -> None:
        """Finish the monitor's work in flight (clips) by ``deadline`` (Unix time); publish what it returns."""
        if self.monitor:
            try:
                self._publish_docs(self.monitor.close(deadline))
            except REDIS_DOWN as e:
                log.error("publisher: could not publish final documents: %s", e)

    def step(self, block_ms: int | None = None) -> int:
        """Handle one read of results (blocking up to ``block_ms``, default the configured one) and the
        monitor's periodic tick; returns the number of entries handled."""
        self.consumer.discover()
        if self.ledger and self._ledger_check.due():  # first before anything of this run, then periodically
            self._publish_docs(self.ledger.orphans())
        handled = self._handle(self.options.block_ms if block_ms is None else block_ms)
        if self.monitor and self._tick.due():
            self._publish_docs(self.monitor.tick(time.time()))

        if self._lag_metrics.due():
            self.consumer.update_lag_metrics()
        return handled

    def _handle(self, block_ms: int) -> int:
        entries = self.consumer.read(self.config.read_count, block_ms)
        exhausted = self.consumer.take_exhausted()
        if not entries and not exhausted:
            return 0
        done = self.client.pipeline(transaction=True)  # dead letters and acks, together
        for entry in exhausted:
            self._deadletter(
                done,
                entry,
                MAX_DELIVERIES,
                f"delivered {entry.deliveries} times (publisher.max_deliveries {self.config.max_deliveries})"
                ": not handled again",
            )
        results: list[tuple[Entry, ResultMessage]] = []
        ended: list[tuple[Entry, str]] = []  # cameras whose file ended: their tracks end after their results
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            try:
                msg = decode_result_entry(entry.fields, self.consumer.camera_of(entry.stream))
                if isinstance(msg, EndOfStream):
                    self.stats.ended[msg.camera] = msg
                    ended.append((entry, msg.camera))
                    log.info("publisher: camera %s ended (%d frames, %s)", msg.camera, msg.frames, msg.reason)
                    continue
                doc = frame_event(msg, violation_classes=self.violation_classes)
                self.sink.publish_frame(
                    dict(doc),
                    self.keys.published(msg.camera),
                    self.keys.events,
                    self.config.events_max_len,
                    self.keys.events_channel(msg.camera),
                    pipe=pipe,
                )
            except REDIS_DOWN:
                raise
            except ContractError as e:
                self._deadletter(done, entry, e.kind, str(e))
                continue
            except Exception as e:  # noqa: BLE001 - whatever a message provokes costs only that message
                log.exception("publisher: %s %s cannot be published", entry.stream, entry.id.decode())
                self._deadletter(
                    done, entry, ErrorKind.INTERNAL, f"event not published: {type(e).__name__}: {e}"
                )
                continue
            results.append((entry, msg))
        fresh = pipe.execute() if results else []
        now = time.time()
        for (entry, result), outcome in zip(results, fresh, strict=True):
            if outcome != 1:
                self.stats.duplicates += 1
                metrics.DUPLICATES_SKIPPED.labels(result.camera).inc()
                if outcome == -1:
                    log.warning(
                        "publisher: %s frame %d is older than the dedup window (publisher.dedup_window %d "
                        "frames): taken as published",
                        result.camera,
                        result.seq,
                        self.config.dedup_window,
                    )
                continue
            self._after_publish(
                done, entry, f"{result.camera} frame {result.seq}", lambda r=result: self._observe(r, now)
            )
        for entry, camera in ended:
            self._after_publish(done, entry, f"end of {camera}", lambda c=camera: self._end_of_stream(c))
        self.consumer.ack(entries + exhausted, done)
        done.execute()
        return len(entries) + len(exhausted)

    def _observe(self, result: ResultMessage, now: float) -> None:
        """What follows a new frame event: counts, the ``on_event`` hook, violation documents."""
        self._count(result, now)
        if self.monitor:
            self._publish_docs(self.monitor.observe(result))

    def _end_of_stream(self, camera: str) -> None:
        if self.monitor:
            self._publish_docs(self.monitor.end_of_stream(camera))

    def _after_publish(
        self, pipe: redis.client.Pipeline, entry: Entry, what: str, work: Callable[[], None]
    ) -> None:
        """Run ``work`` for one handled entry; what it raises dead-letters that entry alone."""
        try:
            work()
        except REDIS_DOWN:
            raise
        except Exception as e:  # noqa: BLE001 - one message's failure must not stop the others
            log.exception("publisher: handling %s failed", what)
            self._deadletter(
                pipe, entry, ErrorKind.INTERNAL, f"handling {what} failed: {type(e).__name__}: {e}"
            )

    def _publish_docs(self, docs: list[dict[str, Any]]) -> None:
        settled: list[dict[str, Any]] = []  # for the clip ledger: published violations, every clip document
        for doc in docs:
            try:
                published = self.sink.publish(
                    doc,
                    self.keys.dedup(doc["id"]),
                    self.keys.violations,
                    self.config.violations_max_len,
                    self.keys.violations_channel(doc["camera"]),
                )
            except (ValueError, TypeError) as e:  # not JSON (a NaN): kept as a dead letter, never sent
                self.dead.add(
                    self.client,
                    self.keys.violations,
                    str(doc.get("id", "-")).encode(),
                    {b"document": repr(doc).encode()},
                    ErrorKind.MALFORMED,
                    f"document cannot be serialised: {e}",
                )
                self.stats.deadletters += 1
                continue
            if published:
                self.stats.violation_docs += 1
                metrics.EVENTS_PUBLISHED.labels(doc["camera"], doc.get("type", "violation")).inc()
            if published or doc.get("type") != "violation":
                settled.append(doc)
        if self.ledger and settled:
            pipe = self.client.pipeline(transaction=False)
            self.ledger.track(settled, pipe)
            pipe.execute()

    def _count(self, result: ResultMessage, now: float) -> None:
        cam = result.camera
        self.stats.events += 1
        self.stats.published_by_camera[cam] = self.stats.published_by_camera.get(cam, 0) + 1
        metrics.EVENTS_PUBLISHED.labels(cam, "frame").inc()
        metrics.FRAMES_PUBLISHED.labels(cam).inc()
        metrics.END_TO_END_SECONDS.labels(cam).observe(max(0.0, now - result.capture_ts))
        for label, carried in zip(result.labels, result.faces.carried, strict=True):
            if not carried:  # a carried face was seen in an earlier frame, not in this one
                metrics.FACES_SEEN.labels(cam, label).inc()
        if self.on_event:
            self.on_event(frame_event(result, now, self.violation_classes))

    def _deadletter(self, pipe: redis.client.Pipeline, entry: Entry, kind: str, reason: str) -> None:
        self.dead.add(pipe, entry.stream, entry.id, entry.fields, kind, reason)
        self.stats.deadletters += 1

    def summary(self) -> str:
        s = self.stats
        return (
            f"publisher: {s.events} events, {s.violation_docs} violation documents, "
            f"{s.duplicates} duplicates skipped, {s.deadletters} dead-lettered"
        )
