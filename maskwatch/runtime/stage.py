"""The one stage loop every maskwatch process runs (arq's ``Worker`` is the model).

A stage subclasses :class:`Stage` and writes :meth:`Stage.step`: one bounded unit of work that blocks at
most ``block_ms`` waiting for it, writes its output and acknowledges its input (ack after write stays
inside the step). The base class owns the rest:

- :meth:`Stage.run` — ``while not stop.is_set()``: heartbeat, step; a Redis outage is counted, logged
  once, waited out and followed by :meth:`Stage.on_reconnect`; any other error stops the stage. On stop
  (SIGINT/SIGTERM set it) :meth:`Stage.on_stop` drains to a deadline ``shutdown_grace_s`` away, the
  heartbeat is removed and one summary line is returned.
- :meth:`Stage.run_until_idle` — steps until one finds no work: tests and benchmarks call it instead of
  polling a running thread with long timeouts.

Hooks, all optional except ``step`` and ``summary``: ``on_start()`` (before the first step),
``on_stop(deadline)``, ``on_reconnect()``, ``heartbeat_info()`` and the ``exhausted`` property (no work
will ever come again: every file source has ended).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import redis

from maskwatch.config.settings import Settings
from maskwatch.runtime.heartbeat import Heartbeat
from maskwatch.runtime.metrics_server import REDIS_ERRORS, UP, serve_metrics
from maskwatch.runtime.redis_conn import REDIS_DOWN, wait_for_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopOptions:
    """How a stage's loop is timed; :meth:`from_settings` reads them from the config."""

    block_ms: int
    """Longest a step blocks waiting for work (so also how soon a stop is noticed)."""
    shutdown_grace_s: float
    """Drain deadline after a stop."""
    redis_retry_max_s: float
    """Longest pause between pings while Redis is unreachable."""
    metrics_port: int
    """Port of the stage's /metrics endpoint; 0: none."""

    @classmethod
    def from_settings(cls, settings: Settings, stage: str) -> LoopOptions:
        """The options of ``stage`` (``ingest``, ``worker`` or ``publisher``): its section's ``block_ms``
        and ``metrics_port``, and the process-wide ``shutdown_grace_s`` and ``redis_retry_max_s``."""
        section = getattr(settings, stage)
        return cls(
            section.block_ms, settings.shutdown_grace_s, settings.redis_retry_max_s, section.metrics_port
        )


class Every:
    """A periodic chore inside a step: :meth:`due` is True at most once per ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        return True


class Stage:
    """Base of the ingest, worker and publisher services: the loop, its hooks and its shutdown."""

    stage: ClassVar[str] = "stage"
    """Name in logs, metric labels and heartbeat keys."""

    def __init__(self, client: redis.Redis, heartbeat: Heartbeat, options: LoopOptions) -> None:
        self.client, self.heartbeat, self.options = client, heartbeat, options
        self.stop_event = threading.Event()
        """Set when the stage is asked to stop; a step that waits should wait on it."""
        self._started = False

    # -- hooks ---------------------------------------------------------------------------------------

    def step(self, block_ms: int) -> int:
        """One unit of work, blocking at most ``block_ms`` for it; returns the work done (0: none)."""
        raise NotImplementedError

    def summary(self) -> str:
        """The stage's one summary line (what it did)."""
        raise NotImplementedError

    def on_start(self) -> None:
        """Called once, before the first step."""

    def on_stop(self, deadline: float) -> None:
        """Drain: finish the work in flight by ``deadline`` (``time.monotonic()`` seconds)."""

    def on_reconnect(self) -> None:
        """Redis answers again after an outage (its data may be gone: consumer groups, ...)."""

    def heartbeat_info(self) -> dict[str, Any]:
        """Extra fields of the heartbeat document."""
        return {}

    @property
    def exhausted(self) -> bool:
        """True when no work will ever come again (the loop then ends by itself)."""
        return False

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> str:
        """Step until ``stop`` (or :attr:`exhausted`), drain up to ``shutdown_grace_s``; the summary line.

        A Redis outage is survived; any other error is logged, ends the loop (after the drain) and is
        raised again: a full disk is not a lost connection and is not retried forever.
        """
        self.stop_event = stop
        serve_metrics(self.options.metrics_port, self.stage)
        UP.labels(self.stage).set(1)
        try:
            self._start()
            while not stop.is_set() and not self.exhausted:
                self._step_surviving_redis(stop)
        except Exception as e:
            log.exception("%s: stopping on an unexpected error: %s: %s", self.stage, type(e).__name__, e)
            raise
        finally:
            try:
                self.drain()
            finally:
                UP.labels(self.stage).set(0)
                self.heartbeat.clear()
        return self.summary()

    def run_until_idle(self, max_s: float, block_ms: int | None = None) -> int:
        """Step until a step finds no work, the stage is exhausted or ``max_s`` seconds have passed;
        returns the work done. Errors, Redis ones included, propagate. Call :meth:`drain` to finish
        work in flight (the publisher's clips) when done."""
        block = self.options.block_ms if block_ms is None else block_ms
        deadline = time.monotonic() + max_s
        self._start()
        total = 0
        while time.monotonic() < deadline:
            self.heartbeat.beat(**self.heartbeat_info())
            done = self.step(block)
            total += done
            if done == 0 or self.exhausted:
                break
        return total

    def drain(self, grace_s: float | None = None) -> None:
        """Run :meth:`on_stop` with a deadline ``grace_s`` (default ``shutdown_grace_s``) from now."""
        grace = self.options.shutdown_grace_s if grace_s is None else grace_s
        self.on_stop(time.monotonic() + grace)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.on_start()

    def _step_surviving_redis(self, stop: threading.Event) -> None:
        try:
            self.heartbeat.beat(**self.heartbeat_info())
            self.step(self.options.block_ms)
        except REDIS_DOWN as e:
            REDIS_ERRORS.labels(self.stage).inc()
            log.warning("%s: Redis connection lost (%s)", self.stage, e)
            if wait_for_redis(self.client, stop.is_set, self.stage, self.options.redis_retry_max_s):
                with contextlib.suppress(*REDIS_DOWN):
                    self.heartbeat.epoch.check()  # a Redis that came back empty is reported at once
                self.on_reconnect()
