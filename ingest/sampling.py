"""Keep frames at a target rate, by media time, whatever the source's frame rate."""

from __future__ import annotations


class FpsSampler:
    """Keeps a frame when its media time reaches the next slot of a ``fps`` grid."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None

    def resume_after(self, time_s: float) -> None:
        """Continue the grid of a run whose last kept frame was at ``time_s`` (a resumed file)."""
        self._next = time_s + self.period

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


class FullFrameSchedule:
    """When the ingest asks the worker for a full-frame pass (``FrameMessage.full``).

    Due on the first frame after the source opens (:meth:`reset`), whenever ``interval_s`` has passed on
    the camera's clock (media time for files, capture time for live sources) since the last full frame,
    when that clock jumps back (a file replayed), and whenever the caller forces one (motion recalibrating).
    While motion has seen nothing since the last full frame (``moved`` False on every frame since), the
    interval is ``still_interval_s`` instead: the picture is the one last searched whole.
    ``interval_s == 0``: every frame is full.
    """

    def __init__(self, interval_s: float, still_interval_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.still_interval_s = max(
            interval_s, still_interval_s if still_interval_s is not None else interval_s
        )
        self._last: float | None = None
        self._moved = False

    def reset(self) -> None:
        """The source was (re)opened: the next frame is full."""
        self._last = None

    def due(self, clock_s: float, force: bool = False, moved: bool | None = None) -> bool:
        """True if the frame at ``clock_s`` is a full pass; a full frame restarts the interval. ``moved``:
        whether motion found anything in this frame (None: motion is not computed)."""
        self._moved = self._moved or moved is None or moved
        last = self._last
        interval = self.interval_s if self._moved else self.still_interval_s
        if force or last is None or clock_s < last or clock_s - last + 1e-6 >= interval:
            self._last = clock_s
            self._moved = False
            return True
        return False
