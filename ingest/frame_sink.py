"""Put encoded frames on a camera's Redis stream under its backpressure policy."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis

from maskwatch.config.settings import Settings
from maskwatch.core.contracts import EndOfStream, FrameMessage
from maskwatch.core.keys import Keys

# One frame, written once: a retry after a lost reply finds its seq recorded and writes nothing (-1).
# KEYS: stream, camera hash. ARGV: seq, maxlen (0: no trimming), pts ("" : not recorded), source, fields...
_PUT = """
local last = redis.call('HGET', KEYS[2], 'last_seq')
if last and tonumber(last) >= tonumber(ARGV[1]) then return -1 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local before = redis.call('XLEN', KEYS[1])
if ARGV[2] ~= '0' then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
else
  redis.call('XADD', KEYS[1], '*', unpack(fields))
end
local after = redis.call('XLEN', KEYS[1])
redis.call('HSET', KEYS[2], 'last_seq', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'last_pts', ARGV[3], 'source', ARGV[4]) end
return before + 1 - after
"""


@dataclass(frozen=True)
class Position:
    """Where a camera's stream stands in Redis (its hash): the next sequence number and, for a file, the
    media time of the last frame sent and which file it was (``source``, a fingerprint)."""

    next_seq: int
    last_pts: float | None = None
    source: str = ""


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
        self._put = client.register_script(_PUT)

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

    def register(self, camera: str) -> Position:
        """Announce the camera to workers; return where its stream stands (continues after restarts)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.cameras, camera)
        pipe.hmget(self.keys.camera_state(camera), ["last_seq", "last_pts", "source"])
        _, (last, pts, source) = pipe.execute()
        return Position(
            int(last) + 1 if last is not None else 0,
            float(pts) if pts is not None else None,
            source.decode() if source is not None else "",
        )

    def put(
        self, msg: FrameMessage, policy: str, stop: threading.Event, source: str | None = None
    ) -> tuple[int, float]:
        """Add one frame, at most once per seq (a retry after a lost reply writes nothing); returns (frames
        dropped by trimming, seconds waited for room). ``source``: a file's fingerprint, recorded with the
        frame's ``pts`` and seq in the camera's hash so a restarted ingest resumes after it."""
        key = self.keys.frames(msg.camera)
        state = self.keys.camera_state(msg.camera)
        waited = 0.0 if policy == "drop_oldest" else self._wait_for_room(key, stop)
        record_pts = source is not None and msg.pts is not None
        args: list[bytes | str | int] = [
            msg.seq,
            self.max_len if policy == "drop_oldest" else 0,
            repr(msg.pts) if record_pts else "",
            source or "",
        ]
        for name, value in msg.to_fields().items():
            args += [name, value]
        dropped = int(self._put(keys=[key, state], args=args))
        return max(0, dropped), waited

    def end(self, eos: EndOfStream, state: str) -> None:
        """Mark the end of a file source on its stream and, in the same transaction, the camera's final
        ``state`` in its hash: the worker passes an ``eof`` on only when that record agrees with it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.frames(eos.camera), eos.to_fields())
        pipe.hset(self.keys.camera_state(eos.camera), mapping={"state": state, "since": str(time.time())})
        pipe.execute()

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
