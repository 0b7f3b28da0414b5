"""The dead-letter stream: messages a stage could not handle, kept with the reason.

A dead letter keeps the original fields (``msg.*``) up to ``max_payload_bytes`` of their values in all:
smaller fields are kept whole first, so one 50 MB image costs at most that much while the camera, sequence
number and the rest survive; ``payload_bytes`` records the original size and ``truncated`` (``1``) says
that something was cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis

from maskwatch.core.errors import ErrorKind
from maskwatch.runtime.metrics_server import DEADLETTERS

log = logging.getLogger(__name__)

DEADLETTER_MAX_LEN = 10_000
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
"""Default cap of the original fields' bytes kept per dead letter (``*.deadletter_max_payload_bytes``)."""

MAX_DELIVERIES = ErrorKind.MAX_DELIVERIES
"""Reason label: a message delivered more than ``max_deliveries`` times (it kept killing its handler)."""
FORGED_EOF = ErrorKind.FORGED_EOF
"""Reason label: an end-of-file marker no ingest vouches for."""


def deadletter_fields(
    stage: str,
    reason: str,
    stream: str | bytes,
    entry_id: str | bytes,
    fields: Mapping[bytes, bytes],
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> dict[str, bytes | str]:
    """The dead-letter entry for one message: who, why, where from, and the original fields (``msg.*``),
    their values capped at ``max_payload_bytes`` in all (smallest first), with ``payload_bytes`` (the
    original total) and ``truncated`` (``1`` when a value was cut or left out, else ``0``)."""
    out: dict[str, bytes | str] = {
        "stage": stage,
        "reason": reason[:500],
        "stream": stream.decode() if isinstance(stream, bytes) else stream,
        "id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "ts": repr(time.time()),
    }
    values = {
        f"msg.{k.decode(errors='replace') if isinstance(k, bytes) else k}": v
        if isinstance(v, bytes)
        else str(v)
        for k, v in fields.items()
    }
    total = sum(len(v) for v in values.values())
    budget, truncated = max_payload_bytes, False
    for name in sorted(values, key=lambda n: len(values[n])):
        value = values[name]
        if len(value) > budget:
            value, truncated = value[:budget], True
        budget -= len(value)
        values[name] = value
    out.update(values)
    out["payload_bytes"] = str(total)
    out["truncated"] = "1" if truncated else "0"
    return out


def add_deadletter(
    pipe: redis.client.Pipeline | redis.Redis, key: str, entry: dict[str, bytes | str]
) -> None:
    """Queue the XADD of a dead-letter entry on ``pipe`` (bounded stream)."""
    pipe.xadd(key, dict(entry), maxlen=DEADLETTER_MAX_LEN, approximate=True)  # type: ignore[arg-type]


class DeadLetters:
    """One stage's dead letters: queued on the caller's pipeline (with its acks), logged and counted in
    ``maskwatch_deadletter_total{stage,reason}``."""

    def __init__(self, key: str, stage: str, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.key, self.stage, self.max_payload_bytes = key, stage, max_payload_bytes
        self.written = 0

    def add(
        self,
        pipe: redis.client.Pipeline | redis.Redis,
        stream: str,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        kind: str,
        reason: str,
    ) -> None:
        """Queue the dead letter of one message (``kind`` is its metric label, ``reason`` the text)."""
        log.error("%s: dead-lettering %s %s (%s): %s", self.stage, stream, entry_id.decode(), kind, reason)
        entry = deadletter_fields(self.stage, reason, stream, entry_id, fields, self.max_payload_bytes)
        add_deadletter(pipe, self.key, entry)
        DEADLETTERS.labels(self.stage, str(kind)).inc()
        self.written += 1
