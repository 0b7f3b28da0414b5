"""Whether an end-of-file marker on a frames stream is credible: only the ingest that read the file ends it.

``maskwatch run`` exits when the publisher has seen every camera's end and as many events as it
announces, so a forged ``eof`` entry would end a run early (or never). The ingest records each camera
in ``maskwatch:camera:<camera>`` (``state``, ``last_seq``) and sets ``state`` to ``finished`` (or
``failed``) *before* it writes the marker, so a credible marker finds:

- the camera's state ``finished`` or ``failed`` (a live camera, or a file still being read, never ends);
- the recorded ``last_seq`` equal to the marker's ``seq`` (-1 when no frame was ever recorded);
- no frame of the camera seen by this worker after the marker's ``seq``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from maskwatch.core.contracts import EndOfStream
from maskwatch.core.keys import Keys

ENDED_STATES = frozenset({"finished", "failed"})
"""Ingest camera states after which it writes an end-of-file marker (``ingest/camera.py``)."""


def doubts(
    client: redis.Redis, keys: Keys, ends: Sequence[EndOfStream], seen: Mapping[str, int]
) -> list[str | None]:
    """Per marker, None when it is credible, else why not; ``seen`` is the highest frame seq this worker
    has seen of each camera. One pipelined read of the cameras' ingest records."""
    if not ends:
        return []
    pipe = client.pipeline(transaction=False)
    for eos in ends:
        pipe.hmget(keys.camera_state(eos.camera), ["state", "last_seq"])
    out: list[str | None] = []
    for eos, (raw_state, raw_last) in zip(ends, pipe.execute(), strict=True):
        state = raw_state.decode(errors="replace") if raw_state else None
        try:
            last: int | None = int(raw_last) if raw_last is not None else -1
        except ValueError:
            last = None
        if state not in ENDED_STATES:
            out.append(
                f"forged end of file: the ingest's record of camera {eos.camera} says state "
                f"{state or 'none'}, not finished or failed"
            )
        elif last != eos.last_seq:
            out.append(
                f"forged end of file: it says the last frame of camera {eos.camera} was seq {eos.last_seq}, "
                f"the ingest's record says {raw_last!r}"
            )
        elif seen.get(eos.camera, -1) > eos.last_seq:
            out.append(
                f"forged end of file: frame seq {seen[eos.camera]} of camera {eos.camera} was seen after "
                f"its last seq {eos.last_seq}"
            )
        else:
            out.append(None)
    return out
