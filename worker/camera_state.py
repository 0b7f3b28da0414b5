"""What the worker remembers about each camera between frames, kept in Redis (not in the worker).

Frames of one camera reach whichever worker of the group reads them first, so consecutive frames
of a camera are routinely processed by different workers (and a worker may restart at any time):
memory inside one worker cannot be trusted. The state therefore lives in Redis, our shared engine,
as one small hash per camera at :meth:`Keys.worker_state` (``maskwatch:camstate:<camera>``):

- ``seq``: the sequence number of the frame the state describes;
- ``state``: JSON with the frame's capture time and faces (box, score, class probabilities, how
  many times in a row the face was classified with the same winning class, when it was last
  classified and last detected), in the classes' order.

A worker reads every camera's state of a batch in one round trip before inference and writes the
new states in the same MULTI/EXEC as the batch's results and acks, through a tiny Lua script that
replaces a state only with one of a newer ``seq`` (two workers finishing frames of one camera out of
order never move it back; no WATCH, so no retry loop). The key expires ``ttl_s`` after its last
write, so a camera that stops leaves nothing behind. A lost or stale state costs only efficiency:
the ingest asks for full-frame passes regularly and classification simply runs again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import redis

from maskwatch.core.faces import Faces
from maskwatch.core.faces import iou_matrix as iou
from maskwatch.core.keys import Keys

log = logging.getLogger(__name__)

MATCH_IOU = 0.5
"""A face of a new frame is the same person as a remembered face when their boxes overlap this much."""
MAX_REMEMBERED_FACES = 4096
"""Faces of one state read back at most (the result contract's bound)."""
MAX_SIZE_CHANGE = 0.3
"""Cached classes are reused only while a face's box area changed less than this share."""

_WRITE_IF_NEWER = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
if tonumber(ARGV[1]) > cur then
  redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'state', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class TrackedFace:
    """One remembered face: its last box, score and probabilities, and its class cache."""

    box: tuple[float, float, float, float]
    score: float
    probs: tuple[float, ...]
    times: int = 0
    """Times in a row it was classified with the same winning class (0: never classified)."""
    classified_ts: float = 0.0
    detected_ts: float = 0.0

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


@dataclass(frozen=True)
class CameraState:
    """A camera's state after frame ``seq`` (capture time ``ts``); ``faces`` classified in ``classes``."""

    seq: int = -1
    ts: float = 0.0
    classes: tuple[str, ...] = ()
    faces: tuple[TrackedFace, ...] = field(default_factory=tuple)

    # --- views ---------------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        return np.asarray([f.box for f in self.faces], np.float32).reshape(-1, 4)

    def usable(self, classes: Sequence[str]) -> CameraState:
        """This state, or an empty one when it was classified in other classes (another classifier)."""
        return self if tuple(classes) == self.classes else CameraState(self.seq, self.ts, tuple(classes))

    def carried(self, mask: np.ndarray) -> Faces:
        """The remembered faces selected by ``mask`` as carried-forward :class:`Faces`."""
        chosen = [f for f, m in zip(self.faces, mask, strict=True) if m]
        if not chosen:
            return Faces.empty(self.classes)
        return Faces(
            np.asarray([f.box for f in chosen], np.float32),
            np.asarray([f.score for f in chosen], np.float32),
            np.asarray([f.probs for f in chosen], np.float32),
            self.classes,
            carried=np.ones(len(chosen), bool),
        )

    def cached_probs(
        self, box: np.ndarray, ts: float, *, min_times: int, interval_s: float
    ) -> tuple[float, ...] | None:
        """The probabilities to reuse for a face detected at ``box`` (capture time ``ts``), or None when
        it must be classified: it matches (IoU >= :data:`MATCH_IOU`) a remembered face whose class is
        settled (``min_times`` agreeing classifications), classified less than ``interval_s`` ago, whose
        size changed less than :data:`MAX_SIZE_CHANGE`."""
        if not self.faces or min_times <= 0:
            return None
        ious = iou(np.asarray(box, np.float64).reshape(1, 4), self.boxes.astype(np.float64))[0]
        j = int(ious.argmax())
        face = self.faces[j]
        if ious[j] < MATCH_IOU or face.times < min_times or not 0 <= ts - face.classified_ts < interval_s:
            return None  # (a clock that went back — a file replayed from its start — classifies again)
        area = float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
        if face.area <= 0 or abs(area / face.area - 1.0) >= MAX_SIZE_CHANGE:
            return None
        return face.probs

    # --- evolution -----------------------------------------------------------------------------
    def advance(self, seq: int, ts: float, faces: Faces, classified: np.ndarray) -> CameraState:
        """The state after frame ``seq``: ``faces`` are all its faces (detected and carried, in
        ``classes``), ``classified[i]`` True where face ``i``'s probs came from the classifier now."""
        if faces.probs is None or faces.classes != self.classes:
            return CameraState(seq, ts, faces.classes if faces.probs is not None else self.classes)
        assert faces.carried is not None and faces.class_ids is not None
        prev = self.boxes.astype(np.float64)
        ious = iou(faces.boxes.astype(np.float64), prev) if len(prev) else np.zeros((len(faces), 0))
        used: set[int] = set()
        out = []
        for i in range(len(faces)):
            match = None
            if ious.shape[1]:
                for j in np.argsort(-ious[i]):
                    if ious[i, j] < MATCH_IOU:
                        break
                    if int(j) not in used:
                        match = self.faces[int(j)]
                        used.add(int(j))
                        break
            box = tuple(round(float(v), 1) for v in faces.boxes[i])  # as stored: JSON round-trips it
            probs = tuple(round(float(v), 5) for v in faces.probs[i])
            if faces.carried[i] and match is not None:
                out.append(match)
                continue
            if classified[i]:
                same = (
                    match is not None
                    and match.times > 0
                    and int(np.argmax(match.probs)) == int(faces.class_ids[i])
                )
                times, classified_ts = (match.times + 1 if same and match else 1), ts
            elif match is not None:
                times, classified_ts = match.times, match.classified_ts
            else:
                times, classified_ts = 0, 0.0
            out.append(TrackedFace(box, round(float(faces.scores[i]), 4), probs, times, classified_ts, ts))  # type: ignore[arg-type]
        return replace(self, seq=seq, ts=ts, faces=tuple(out))

    # --- wire form -----------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "ts": self.ts,
                "classes": list(self.classes),
                "faces": [
                    {
                        "box": [round(v, 1) for v in f.box],
                        "score": round(f.score, 4),
                        "probs": [round(p, 5) for p in f.probs],
                        "times": f.times,
                        "classified_ts": f.classified_ts,
                        "detected_ts": f.detected_ts,
                    }
                    for f in self.faces
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CameraState:
        data: dict[str, Any] = json.loads(text)
        faces = tuple(
            TrackedFace(
                tuple(float(v) for v in f["box"]),  # type: ignore[arg-type]
                float(f["score"]),
                tuple(float(p) for p in f["probs"]),
                int(f["times"]),
                float(f["classified_ts"]),
                float(f["detected_ts"]),
            )
            for f in data["faces"][:MAX_REMEMBERED_FACES]
        )
        classes = tuple(str(c) for c in data["classes"])
        for f in faces:  # anything read from Redis is checked: finite, well-shaped, in range
            values = (*f.box, f.score, *f.probs, f.classified_ts, f.detected_ts)
            if not all(math.isfinite(v) for v in values) or len(f.probs) != len(classes):
                raise ValueError(
                    "a remembered face holds a non-finite value or probabilities of another shape"
                )
            if not (f.box[0] <= f.box[2] and f.box[1] <= f.box[3] and 0 <= f.score <= 1 and f.times >= 0):
                raise ValueError(
                    "a remembered face holds an inverted box, a score outside [0, 1] or negative times"
                )
        ts = float(data["ts"])
        if not math.isfinite(ts):
            raise ValueError("the state's capture time is not finite")
        return cls(int(data["seq"]), ts, classes, faces)


class CameraStateStore:
    """Reads and (transactionally, newest ``seq`` wins) writes the cameras' :class:`CameraState`."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: float) -> None:
        self.client, self.keys, self.ttl_ms = client, keys, max(1, int(ttl_s * 1000))

    def read(self, cameras: Iterable[str]) -> dict[str, CameraState]:
        """The state of each camera (one round trip); a missing or unreadable state is an empty one."""
        cams = sorted(set(cameras))
        if not cams:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for cam in cams:
            pipe.hget(self.keys.worker_state(cam), "state")
        out = {}
        for cam, raw in zip(cams, pipe.execute(), strict=True):
            state = CameraState()
            if raw:
                try:
                    state = CameraState.from_json(raw)
                except (ValueError, KeyError, TypeError) as e:
                    log.warning("worker: ignoring unreadable state of camera %s: %s", cam, e)
            out[cam] = state
        return out

    def write(self, pipe: redis.client.Pipeline, states: dict[str, CameraState]) -> None:
        """Queue each state's write-if-newer on ``pipe`` (the batch's MULTI/EXEC)."""
        for cam, state in sorted(states.items()):
            pipe.eval(
                _WRITE_IF_NEWER, 1, self.keys.worker_state(cam), state.seq, state.to_json(), self.ttl_ms
            )
