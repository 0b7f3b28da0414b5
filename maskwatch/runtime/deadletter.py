"""The dead-letter stream: messages a stage could not handle, kept with the reason."""

from __future__ import annotations

import time
from collections.abc import Mapping

import redis

DEADLETTER_MAX_LEN = 10_000


def deadletter_fields(
    stage: str, reason: str, stream: str | bytes, entry_id: str | bytes, fields: Mapping[bytes, bytes]
) -> dict[str, bytes | str]:
    """The dead-letter entry for one message: who, why, where from, and the original fields (``msg.*``)."""
    out: dict[str, bytes | str] = {
        "stage": stage,
        "reason": reason[:500],
        "stream": stream.decode() if isinstance(stream, bytes) else stream,
        "id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "ts": repr(time.time()),
    }
    for k, v in fields.items():
        out[f"msg.{k.decode(errors='replace') if isinstance(k, bytes) else k}"] = v
    return out


def add_deadletter(
    pipe: redis.client.Pipeline | redis.Redis, key: str, entry: dict[str, bytes | str]
) -> None:
    """Queue the XADD of a dead-letter entry on ``pipe`` (bounded stream)."""
    pipe.xadd(key, dict(entry), maxlen=DEADLETTER_MAX_LEN, approximate=True)  # type: ignore[arg-type]
