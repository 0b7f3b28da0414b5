"""One way to connect to Redis: binary-safe, retrying, with errors that name the (redacted) URL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from maskwatch.config.settings import Settings
from maskwatch.core.redaction import redact_url

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""Redis is unreachable: stages wait for it and carry on. Only redis-py's own errors (it wraps socket
errors in them); any other ``OSError`` (a full disk) is not a Redis outage and is not retried here."""


def connect(settings: Settings, socket_timeout: float | None = None) -> redis.Redis:
    """A client for ``settings.redis_url`` (default localhost). Bytes in, bytes out.

    ``socket_timeout`` defaults to ``settings.redis_socket_timeout_s``; a stage that blocks longer in
    one read passes its own.
    """
    url = settings.redis_url.get_secret_value() if settings.redis_url else DEFAULT_URL
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_timeout=settings.redis_socket_timeout_s if socket_timeout is None else socket_timeout,
            socket_connect_timeout=5.0,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
    except ValueError as e:
        raise ValueError(f"invalid Redis URL {redact_url(url)}: {e}") from None


def wait_for_redis(
    client: redis.Redis, stop_is_set: Callable[[], bool], stage: str, max_delay: float
) -> bool:
    """Ping until Redis answers (True) or ``stop_is_set()`` (False), pausing up to ``max_delay``
    seconds between pings (``settings.redis_retry_max_s``); logs once per outage."""
    delay, warned = 0.2, False
    while not stop_is_set():
        try:
            client.ping()
            if warned:
                log.info("%s: Redis is back", stage)
            return True
        except REDIS_DOWN as e:
            if not warned:
                log.warning("%s: Redis unreachable (%s); retrying", stage, e)
                warned = True
            time.sleep(delay)
            delay = min(max_delay, delay * 2)
    return False
