"""Liveness: each process refreshes a key with a TTL; ``maskwatch check`` reads it.

With each beat a process also checks the run epoch (:class:`RunEpoch`): a random id the first process
sets once in ``<prefix>epoch``. Redis restarted without persistence comes back empty, the epoch gone:
every stage then logs what was lost and counts it in ``maskwatch_redis_reset_total{stage}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid

import redis

from maskwatch.config.settings import Settings
from maskwatch.core.keys import Keys
from maskwatch.runtime.metrics_server import HEARTBEAT, REDIS_RESETS
from maskwatch.runtime.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)

LOST_ON_RESET = {
    "ingest": "frames not yet processed (frames streams), the camera registry and camera states",
    "worker": "frames in flight (frames streams, pending entries) and results not yet published",
    "publisher": "results not yet published, event dedup markers (a redelivered result is published "
    "again) and the events and violations streams",
}
"""What a stage loses when Redis comes back empty (named in its error)."""


def epoch_key(keys: Keys) -> str:
    """``<prefix>epoch``: the run epoch, a random id set once (SET NX) by the first process."""
    return f"{keys.prefix}epoch"


class RunEpoch:
    """Tells a Redis that came back empty from one that was only unreachable: the first process sets a
    random id in ``<prefix>epoch`` (SET NX, no TTL); every process remembers it and, on each check,
    sets it again NX and reads it. Changed or vanished (so set anew): Redis lost its data."""

    def __init__(self, client: redis.Redis, keys: Keys, stage: str) -> None:
        self.client, self.stage, self.key = client, stage, epoch_key(keys)
        self.value: bytes | None = None
        self.resets = 0
        REDIS_RESETS.labels(stage)  # exported at 0 from the start: an alert can use increase()

    def queue(self, pipe: redis.client.Pipeline) -> None:
        """Add the check's commands (SET NX, GET) to ``pipe``; pass its two replies to :meth:`seen`."""
        pipe.set(self.key, uuid.uuid4().hex, nx=True)
        pipe.get(self.key)

    def seen(self, value: bytes | None) -> bool:
        """Record the epoch read; True (and an error logged, the metric counted) when it changed."""
        if self.value is None or value == self.value:
            self.value = value
            return False
        previous, self.value = self.value, value
        self.resets += 1
        REDIS_RESETS.labels(self.stage).inc()
        lost = LOST_ON_RESET.get(self.stage, "everything it kept in Redis")
        log.error(
            "%s: Redis came back empty (run epoch %s is gone, now %s: restarted without persistence?); "
            "lost: %s",
            self.stage,
            previous.decode(errors="replace")[:8],
            (value or b"?").decode(errors="replace")[:8],
            lost,
        )
        return True

    def check(self) -> bool:
        """Check now (one round trip); True when Redis came back empty since the last check."""
        pipe = self.client.pipeline(transaction=False)
        self.queue(pipe)
        _, value = pipe.execute()
        return self.seen(value)


def instance_name(stage: str, configured: str | None = None) -> str:
    """The configured ``instance``, else ``host-pid`` (unique per process; also the default consumer name)."""
    return configured or f"{socket.gethostname()}-{os.getpid()}"


class Heartbeat:
    """Refreshes ``<prefix>heartbeat:<stage>:<instance>`` (TTL ``ttl_s``) at most every ``interval_s``."""

    def __init__(
        self, client: redis.Redis, keys: Keys, stage: str, instance: str, ttl_s: int, interval_s: float
    ) -> None:
        self.client, self.stage, self.ttl_s, self.interval_s = client, stage, ttl_s, interval_s
        self.key = keys.heartbeat(stage, instance)
        self.epoch = RunEpoch(client, keys, stage)
        self._next = 0.0

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings, stage: str, instance: str) -> Heartbeat:
        """The heartbeat of ``stage`` with the configured TTL and interval, named by the configured
        ``instance`` when there is one (what ``maskwatch check`` looks for), else by ``instance``."""
        return cls(
            client,
            Keys(settings.key_prefix),
            stage,
            settings.instance or instance,
            settings.heartbeat_ttl_s,
            settings.heartbeat_every_s,
        )

    def beat(self, **info: object) -> None:
        """Refresh the key and check the run epoch, if due; Redis errors propagate to the caller's
        reconnect logic (and make the next call due at once, so a reset is seen right after an outage)."""
        now = time.time()
        if now < self._next:
            return
        pipe = self.client.pipeline(transaction=False)
        self.epoch.queue(pipe)
        pipe.set(self.key, json.dumps({"ts": now, "pid": os.getpid(), **info}), ex=self.ttl_s)
        try:
            _, epoch, _ = pipe.execute()
        except REDIS_DOWN:
            self._next = 0.0
            raise
        self.epoch.seen(epoch)
        HEARTBEAT.labels(self.stage).set(now)
        self._next = now + self.interval_s

    def clear(self) -> None:
        """Remove the key on a clean exit (best effort)."""
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self.key)


def check_alive(settings: Settings, stage: str, instance: str | None = None) -> int:
    """Exit code 0 if a live ``stage`` process (or that ``instance``) has a heartbeat, else 1."""
    from maskwatch.runtime.redis_conn import connect

    keys = Keys(settings.key_prefix)
    client = connect(settings, socket_timeout=5)
    instance = instance or settings.instance
    try:
        if instance:
            found = (
                [keys.heartbeat(stage, instance).encode()]
                if client.exists(keys.heartbeat(stage, instance))
                else []
            )
        else:  # this host's processes: a hung container is not vouched for by another one
            mine = keys.heartbeat(stage, f"{socket.gethostname()}-*")
            found = list(client.scan_iter(match=mine, count=500))
    except redis.RedisError as e:
        print(f"{stage}: cannot reach Redis at {settings.safe_redis_url}: {e}")
        return 1
    if not found:
        where = (
            keys.heartbeat(stage, instance)
            if instance
            else keys.heartbeat(stage, f"{socket.gethostname()}-*")
        )
        print(f"{stage}: no live process (no heartbeat {where})")
        return 1
    print(f"{stage}: alive ({len(found)} process(es))")
    return 0
