"""Exponential backoff with jitter, capped, for reconnecting sources."""

from __future__ import annotations

import random
import threading


class Backoff:
    """Delays ``initial * 2**n`` (capped at ``maximum``), each scaled by a random factor in [0.5, 1.5)."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial, maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt; grows with each call until :meth:`reset`."""
        base = min(self.maximum, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return min(self.maximum, base * self._rng.uniform(0.5, 1.5))

    def reset(self) -> None:
        """Back to the initial delay (after frames flowed again)."""
        self.attempt = 0

    def wait(self, stop: threading.Event) -> float:
        """Sleep the next delay, waking early if ``stop`` is set; returns the delay."""
        delay = self.next_delay()
        stop.wait(delay)
        return delay
