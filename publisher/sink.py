"""Publish a document exactly once: dedup check, bounded stream and pub/sub in one atomic script.

Frame events (many: one per sampled frame) are deduplicated per camera by sequence number in a bounded
window, a sorted set ``<prefix>published:<camera>`` of the last ``dedup_window`` published seqs: a seq in
the window is a duplicate, and one more than ``dedup_window`` below the camera's newest is taken as
published (too late to tell; a result is never that late unless it waited longer than a reclaim). So
a camera costs at most ``dedup_window`` small members of Redis, whatever its uptime. Other documents
(violations and clips: a few per person) keep one marker per id, ``<prefix>dedup:<id>``, for
``dedup_ttl_s``.
"""

from __future__ import annotations

import json
from typing import Any

import redis

# KEYS: dedup marker, stream; ARGV: ttl, maxlen, json, channel.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[3])
  return 1
end
return 0
"""

# KEYS: the camera's window (sorted set of seqs), stream; ARGV: seq, window, ttl, maxlen, json, channel.
# Returns 1 (published), 0 (a duplicate in the window) or -1 (older than the window: taken as published).
_PUBLISH_FRAME_ONCE = """
local seq, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local newest = top[2] and tonumber(top[2]) or seq
if seq <= newest - window then return -1 end
if redis.call('ZADD', KEYS[1], 'NX', seq, ARGV[1]) == 0 then return 0 end
if seq > newest then newest = seq end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', newest - window))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
"""


class EventSink:
    """Writes JSON documents to a bounded stream (field ``event``) and a pub/sub channel, once per id."""

    def __init__(self, client: redis.Redis, dedup_ttl_s: int, dedup_window: int = 2048) -> None:
        self.client = client
        self.dedup_ttl_s = dedup_ttl_s
        self.dedup_window = dedup_window
        self._script = client.register_script(_PUBLISH_ONCE)
        self._frame_script = client.register_script(_PUBLISH_FRAME_ONCE)

    def publish_frame(
        self,
        doc: dict[str, Any],
        window_key: str,
        stream: str,
        max_len: int,
        channel: str,
        pipe: redis.client.Pipeline,
    ) -> None:
        """Queue on ``pipe`` the publication of frame event ``doc`` unless its camera's window
        (``window_key``) holds its ``seq``; the reply is 1 (published), 0 or -1 (see the module
        docstring). Raises ``ValueError`` (nothing queued) for NaN or infinities."""
        payload = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        args = [int(doc["seq"]), self.dedup_window, self.dedup_ttl_s, max_len, payload, channel]
        self._frame_script(keys=[window_key, stream], args=args, client=pipe)

    def publish(
        self,
        doc: dict[str, Any],
        dedup_key: str,
        stream: str,
        max_len: int,
        channel: str,
        pipe: redis.client.Pipeline | None = None,
    ) -> bool | None:
        """Publish unless ``dedup_key`` exists. Returns True/False, or None when queued on ``pipe``.
        Raises ``ValueError`` (nothing queued) for a document JSON cannot hold: NaN or infinities."""
        payload = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        args = [self.dedup_ttl_s, max_len, payload, channel]
        if pipe is not None:
            self._script(keys=[dedup_key, stream], args=args, client=pipe)
            return None
        return bool(self._script(keys=[dedup_key, stream], args=args))
