"""Publish a document exactly once: dedup marker, bounded stream and pub/sub in one atomic script."""

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


class EventSink:
    """Writes JSON documents to a bounded stream (field ``event``) and a pub/sub channel, once per id."""

    def __init__(self, client: redis.Redis, dedup_ttl_s: int) -> None:
        self.client = client
        self.dedup_ttl_s = dedup_ttl_s
        self._script = client.register_script(_PUBLISH_ONCE)

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
