"""Liveness: each process refreshes a key with a TTL; ``maskwatch check`` reads it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import redis

from maskwatch.config.settings import Settings
from maskwatch.core.keys import Keys
from maskwatch.runtime.metrics_server import HEARTBEAT


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
        self._next = 0.0

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings, stage: str, instance: str) -> Heartbeat:
        """The heartbeat of ``stage``/``instance`` with the configured TTL and interval."""
        return cls(
            client,
            Keys(settings.key_prefix),
            stage,
            instance,
            settings.heartbeat_ttl_s,
            settings.heartbeat_every_s,
        )

    def beat(self, **info: object) -> None:
        """Refresh the key if due; Redis errors propagate to the caller's reconnect logic."""
        now = time.time()
        if now < self._next:
            return
        self.client.set(self.key, json.dumps({"ts": now, "pid": os.getpid(), **info}), ex=self.ttl_s)
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
