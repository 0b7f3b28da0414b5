"""Put encoded frames on a camera's Redis stream under its backpressure policy."""

from __future__ import annotations

import threading
import time

import redis

from maskwatch.config.settings import Settings
from maskwatch.core.contracts import EndOfStream, FrameMessage
from maskwatch.core.keys import Keys


class FrameSink:
    """XADDs frames. ``drop_oldest`` trims the stream to ``max_len`` (``MAXLEN ~``) and reports what
    was trimmed unprocessed; ``block`` never trims and waits while ``max_backlog`` frames are unprocessed.

    The worker deletes frames once their results are written, so the stream holds only unprocessed
    frames and its length is the backlog.
    """

    def __init__(
        self, client: redis.Redis, keys: Keys, max_len: int, max_backlog: int, poll_max_s: float
    ) -> None:
        self.client, self.keys = client, keys
        self.max_len, self.max_backlog, self.poll_max_s = max_len, max_backlog, poll_max_s

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> FrameSink:
        """The sink of the ``ingest`` section: stream bound, file backlog and its polling."""
        cfg = settings.ingest
        return cls(
            client,
            Keys(settings.key_prefix),
            cfg.stream_max_len,
            cfg.file_max_backlog,
            cfg.backlog_poll_max_s,
        )

    def register(self, camera: str) -> int:
        """Announce the camera to workers; return the next sequence number (continues after restarts)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.cameras, camera)
        pipe.hget(self.keys.camera_state(camera), "last_seq")
        _, last = pipe.execute()
        return int(last) + 1 if last is not None else 0

    def put(self, msg: FrameMessage, policy: str, stop: threading.Event) -> tuple[int, float]:
        """Add one frame; returns (frames dropped by trimming, seconds waited for room)."""
        key = self.keys.frames(msg.camera)
        state = self.keys.camera_state(msg.camera)
        if policy == "drop_oldest":
            pipe = self.client.pipeline(transaction=True)
            pipe.xlen(key)
            pipe.xadd(key, msg.to_fields(), maxlen=self.max_len, approximate=True)
            pipe.xlen(key)
            pipe.hset(state, "last_seq", msg.seq)
            before, _, after, _ = pipe.execute()
            return max(0, before + 1 - after), 0.0
        waited = self._wait_for_room(key, stop)
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(key, msg.to_fields())
        pipe.hset(state, "last_seq", msg.seq)
        pipe.execute()
        return 0, waited

    def end(self, eos: EndOfStream) -> None:
        """Mark the end of a file source on its stream."""
        self.client.xadd(self.keys.frames(eos.camera), eos.to_fields())

    def set_state(self, camera: str, **fields: str | int | float) -> None:
        """Record the camera's state in its hash (for operators and ``maskwatch check``)."""
        self.client.hset(self.keys.camera_state(camera), mapping={k: str(v) for k, v in fields.items()})

    def _wait_for_room(self, key: str, stop: threading.Event) -> float:
        start = time.monotonic()
        delay = 0.005
        while self.client.xlen(key) >= self.max_backlog and not stop.is_set():
            stop.wait(delay)
            delay = min(self.poll_max_s, delay * 2)
        return time.monotonic() - start
