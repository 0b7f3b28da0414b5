"""Keep frames at a target rate, by media time, whatever the source's frame rate."""

from __future__ import annotations


class FpsSampler:
    """Keeps a frame when its media time reaches the next slot of a ``fps`` grid."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None

    def keep(self, time_s: float) -> bool:
        """True if the frame at ``time_s`` is kept."""
        if self._next is None or time_s < self._next - 10 * self.period:  # first frame, or time jumped back
            self._next = time_s + self.period
            return True
        if time_s + 1e-6 >= self._next:
            # Stay on the grid, but skip slots the source never filled.
            self._next += self.period * max(1, int((time_s - self._next) / self.period) + 1)
            return True
        return False
