"""The publisher stage loop: results in, one event per frame out (plus violation documents), exactly once."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from maskwatch.config.settings import PublisherSettings, Settings
from maskwatch.core.contracts import ContractError, EndOfStream, ResultMessage, decode_result_entry
from maskwatch.core.keys import Keys
from maskwatch.publisher import metrics
from maskwatch.publisher.events import frame_event
from maskwatch.publisher.sink import EventSink
from maskwatch.publisher.violations import ViolationMonitor
from maskwatch.runtime.deadletter import add_deadletter, deadletter_fields
from maskwatch.runtime.group_consumer import Entry, StreamGroupConsumer
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.metrics_server import DEADLETTERS, REDIS_ERRORS, UP, serve_metrics
from maskwatch.runtime.redis_conn import REDIS_DOWN, connect, wait_for_redis

log = logging.getLogger(__name__)


class Monitor(Protocol):
    """Turns new results into violation documents (``publisher.violations``)."""

    def observe(self, result: ResultMessage) -> list[dict[str, Any]]: ...

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


class PublisherService:
    """Consumes every results stream through one group and publishes each frame's event once."""

    stage = "publisher"

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        consumer: StreamGroupConsumer,
        sink: EventSink,
        heartbeat: Heartbeat,
        config: PublisherSettings,
        monitor: Monitor | None = None,
        on_event: Any = None,
    ) -> None:
        self.client, self.keys, self.consumer, self.sink = client, keys, consumer, sink
        self.heartbeat, self.config, self.monitor = heartbeat, config, monitor
        self.on_event = on_event
        self.stats = PublisherStats()

    @classmethod
    def from_settings(cls, settings: Settings, on_event: Any = None) -> PublisherService:
        cfg = settings.publisher
        name = cfg.consumer or instance_name(cls.stage)
        client = connect(settings)
        keys = Keys(settings.key_prefix)
        consumer = StreamGroupConsumer(client, keys, "results", cfg.group, name, cfg.claim_idle_ms, 2.0)
        hb = Heartbeat(client, keys, cls.stage, name, settings.heartbeat_ttl_s)
        monitor = ViolationMonitor.from_settings(settings) if settings.violations.enabled else None
        return cls(client, keys, consumer, EventSink(client, cfg.dedup_ttl_s), hb, cfg, monitor, on_event)

    def done(self, cameras: list[str]) -> bool:
        """True when each camera's file has ended and all its frames have been published."""
        s = self.stats
        return all(c in s.ended and s.published_by_camera.get(c, 0) >= s.ended[c].frames for c in cameras)

    def run(self, stop: threading.Event) -> str:
        """Loop until ``stop``; then let the monitor finish its clips until the grace deadline."""
        serve_metrics(self.config.metrics_port, self.stage)
        UP.labels(self.stage).set(1)
        next_tick = next_lag = 0.0
        while not stop.is_set():
            try:
                self.heartbeat.beat(events=self.stats.events)
                self.consumer.discover()
                self.step(block_ms=200)
                now = time.monotonic()
                if self.monitor and now >= next_tick:
                    self._publish_docs(self.monitor.tick(time.time()))
                    next_tick = now + 0.5
                if now >= next_lag:
                    self.consumer.update_lag_metrics()
                    next_lag = now + 2.0
            except REDIS_DOWN as e:
                REDIS_ERRORS.labels(self.stage).inc()
                log.warning("publisher: Redis connection lost (%s)", e)
                if wait_for_redis(self.client, stop.is_set, self.stage):
                    self.consumer.reset()
        self.close(time.time() + 10.0)
        UP.labels(self.stage).set(0)
        self.heartbeat.clear()
        return self.summary()

    def close(self, deadline: float) -> None:
        """Finish the monitor's work in flight (clips) and publish what it returns."""
        if self.monitor:
            try:
                self._publish_docs(self.monitor.close(deadline))
            except REDIS_DOWN as e:
                log.error("publisher: could not publish final documents: %s", e)

    def step(self, block_ms: int = 200) -> int:
        """Handle one read of results; returns the number of entries handled."""
        entries = self.consumer.read(self.config.read_count, block_ms)
        if not entries:
            return 0
        results: list[ResultMessage] = []
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            try:
                msg = decode_result_entry(entry.fields)
            except ContractError as e:
                self._deadletter(entry, str(e))
                continue
            if isinstance(msg, EndOfStream):
                self.stats.ended[msg.camera] = msg
                log.info("publisher: camera %s ended (%d frames, %s)", msg.camera, msg.frames, msg.reason)
                continue
            results.append(msg)
            doc = frame_event(msg)
            self.sink.publish(
                doc,
                self.keys.dedup(doc["id"]),
                self.keys.events,
                self.config.events_max_len,
                self.keys.events_channel(msg.camera),
                pipe=pipe,
            )
        fresh = pipe.execute() if results else []
        now = time.time()
        for result, is_new in zip(results, fresh, strict=True):
            if not is_new:
                self.stats.duplicates += 1
                metrics.DUPLICATES_SKIPPED.labels(result.camera).inc()
                continue
            self._count(result, now)
            if self.monitor:
                self._publish_docs(self.monitor.observe(result))
        ack = self.client.pipeline(transaction=True)
        self.consumer.ack(entries, ack)
        ack.execute()
        return len(entries)

    def _publish_docs(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            if self.sink.publish(
                doc,
                self.keys.dedup(doc["id"]),
                self.keys.violations,
                self.config.violations_max_len,
                self.keys.violations_channel(doc["camera"]),
            ):
                self.stats.violation_docs += 1
                metrics.EVENTS_PUBLISHED.labels(doc["camera"], doc.get("type", "violation")).inc()

    def _count(self, result: ResultMessage, now: float) -> None:
        cam = result.camera
        self.stats.events += 1
        self.stats.published_by_camera[cam] = self.stats.published_by_camera.get(cam, 0) + 1
        metrics.EVENTS_PUBLISHED.labels(cam, "frame").inc()
        metrics.FRAMES_PUBLISHED.labels(cam).inc()
        metrics.END_TO_END_SECONDS.labels(cam).observe(max(0.0, now - result.capture_ts))
        for label in result.labels:
            metrics.FACES_SEEN.labels(cam, label).inc()
        if self.on_event:
            self.on_event(frame_event(result, now))

    def _deadletter(self, entry: Entry, reason: str) -> None:
        log.error("publisher: dead-lettering %s %s: %s", entry.stream, entry.id.decode(), reason)
        pipe = self.client.pipeline(transaction=True)
        add_deadletter(
            pipe,
            self.keys.deadletter,
            deadletter_fields(self.stage, reason, entry.stream, entry.id, entry.fields),
        )
        pipe.execute()
        DEADLETTERS.labels(self.stage, "malformed").inc()
        self.stats.deadletters += 1

    def summary(self) -> str:
        s = self.stats
        return (
            f"publisher: {s.events} events, {s.violation_docs} violation documents, "
            f"{s.duplicates} duplicates skipped, {s.deadletters} dead-lettered"
        )
