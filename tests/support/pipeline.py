"""Run real stage services on threads inside a test, and read what they wrote to Redis."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from maskwatch.config.settings import Settings, load_settings
from maskwatch.core.keys import Keys


def make_settings(
    redis_url: str, weights_dir: Path | None = None, cameras: list[dict] | None = None, **extra: Any
) -> Settings:
    """Settings for tests: no metrics ports, fast discovery and reclaim."""
    base: dict[str, Any] = {
        "redis_url": redis_url,
        "cameras": cameras or [],
        "ingest": {"metrics_port": 0, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        "worker": {"metrics_port": 0, "discovery_interval_s": 0.2, "max_wait_ms": 20},
        "publisher": {"metrics_port": 0},
        "api": {"port": 0},
        "shutdown_grace_s": 5,
        "clips": {"dir": tempfile.mkdtemp(prefix="maskwatch-clips-")},
    }
    if weights_dir is not None:
        base["detector"] = {"weights_dir": str(weights_dir)}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = base[key] | value
        else:
            base[key] = value
    return load_settings(None, **base)


@contextmanager
def running(service: Any) -> Iterator[dict[str, Any]]:
    """Run ``service.run(stop)`` on a thread for the duration of the block; yields its outcome dict."""
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["summary"] = service.run(stop)
        except BaseException as e:  # noqa: BLE001 - surfaced to the test
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    outcome["thread"] = thread
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(timeout=30)
    if "error" in outcome:
        raise outcome["error"]


def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_events(client: redis.Redis, keys: Keys | None = None) -> list[dict[str, Any]]:
    """Every document on the events stream, oldest first."""
    return [json.loads(fields[b"event"]) for _, fields in client.xrange((keys or Keys()).events)]
