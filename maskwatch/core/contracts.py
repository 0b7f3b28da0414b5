"""Messages on the Redis streams, typed and versioned.

Frame entries (``frames:<camera>``) and result entries (``results:<camera>``) are flat
Redis hashes of bytes. ``kind`` tells a frame (``frame``/``result``) from the end-of-file
marker (``eof``). ``decode_*`` raise :class:`ContractError` naming what is wrong, so that a
stage can dead-letter the message and carry on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskwatch.core.errors import ContractError  # one error hierarchy: core/errors.py
from maskwatch.core.faces import UNCLASSIFIED, Faces

SCHEMA_VERSION = 2
"""Written by this build. Version 2 adds a frame's ``motion`` boxes and ``full`` flag and a result's
``detection`` mode; version 1 messages still parse (no motion: the worker detects the whole frame)."""
READABLE_VERSIONS = (1, 2)
MAX_MOTION_BOXES = 256
DETECTION_MODES = ("full", "regions", "none")
EVENT_NAMESPACE = uuid.UUID("7a1d7f4e-3d2b-4f5e-9a51-6d61736b7761")


def event_id(camera: str, seq: int, kind: str = "frame") -> str:
    """Stable id of the event of (camera, sequence): the same on every redelivery."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{camera}:{seq}"))


def _text(fields: Mapping[bytes, bytes], name: str) -> str:
    try:
        raw = fields[name.encode()]
    except KeyError:
        raise ContractError(f"missing field {name!r}") from None
    try:
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        raise ContractError(f"field {name!r} is not UTF-8 text") from None


def _number(fields: Mapping[bytes, bytes], name: str, cast: type = float) -> Any:
    text = _text(fields, name)
    try:
        return cast(text)
    except ValueError:
        raise ContractError(f"field {name!r} is not a {cast.__name__}: {text[:40]!r}") from None


def _check_version(fields: Mapping[bytes, bytes]) -> None:
    v = _number(fields, "v", int)
    if v not in READABLE_VERSIONS:
        raise ContractError(f"schema version {v} is not supported (this build reads {READABLE_VERSIONS})")


Box = tuple[int, int, int, int]


def _motion(fields: Mapping[bytes, bytes], width: int, height: int) -> tuple[Box, ...] | None:
    """The frame's motion boxes (None when the ingest computed none), validated against the frame."""
    if b"motion" not in fields:
        return None
    try:
        raw = json.loads(_text(fields, "motion"))
    except ValueError:
        raise ContractError("field 'motion' is not JSON") from None
    if not isinstance(raw, list) or len(raw) > MAX_MOTION_BOXES:
        raise ContractError(f"field 'motion' must be a list of at most {MAX_MOTION_BOXES} boxes")
    boxes = []
    for box in raw:
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
            raise ContractError("field 'motion' holds a box that is not four integers")
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise ContractError(f"field 'motion' box {box} is outside the {width}x{height} frame")
        boxes.append((x1, y1, x2, y2))
    return tuple(boxes)


@dataclass(frozen=True)
class EndOfStream:
    """Marks the end of a file source: ``frames`` frames were sent, the last with ``last_seq``."""

    camera: str
    last_seq: int
    frames: int
    reason: str = "eof"

    def to_fields(self) -> dict[str, bytes | str]:
        return {
            "v": str(SCHEMA_VERSION),
            "kind": "eof",
            "camera": self.camera,
            "seq": str(self.last_seq),
            "frames": str(self.frames),
            "reason": self.reason,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> EndOfStream:
        return cls(
            camera=_text(fields, "camera"),
            last_seq=_number(fields, "seq", int),
            frames=_number(fields, "frames", int),
            reason=_text(fields, "reason") if b"reason" in fields else "eof",
        )


@dataclass(frozen=True)
class FrameMessage:
    """One sampled, encoded frame of a camera."""

    camera: str
    seq: int
    capture_ts: float
    width: int
    height: int
    image: bytes
    encoding: str = "jpeg"
    pts: float | None = None
    live: bool = False
    motion: tuple[Box, ...] | None = None
    """Boxes (pixels of this frame) where the camera's picture changed; None: motion not computed."""
    full: bool = False
    """The ingest asks for a full-frame pass (at start, after a reconnect, every full_frame_interval_s)."""

    def to_fields(self) -> dict[str, bytes | str]:
        fields: dict[str, bytes | str] = {
            "v": str(SCHEMA_VERSION),
            "kind": "frame",
            "live": "1" if self.live else "0",
            "camera": self.camera,
            "seq": str(self.seq),
            "ts": repr(self.capture_ts),
            "w": str(self.width),
            "h": str(self.height),
            "enc": self.encoding,
            "img": self.image,
        }
        if self.pts is not None:
            fields["pts"] = repr(self.pts)
        if self.motion is not None:
            fields["motion"] = json.dumps([list(b) for b in self.motion], separators=(",", ":"))
        if self.full:
            fields["full"] = "1"
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> FrameMessage:
        image = fields.get(b"img")
        if not image:
            raise ContractError("missing or empty field 'img'")
        width, height = _number(fields, "w", int), _number(fields, "h", int)
        return cls(
            camera=_text(fields, "camera"),
            seq=_number(fields, "seq", int),
            capture_ts=_number(fields, "ts"),
            width=width,
            height=height,
            image=bytes(image),
            encoding=_text(fields, "enc"),
            pts=_number(fields, "pts") if b"pts" in fields else None,
            live=fields.get(b"live") == b"1",
            motion=_motion(fields, width, height),
            full=fields.get(b"full") == b"1",
        )


def _decode_entry(fields: Mapping[bytes, bytes], kinds: dict[str, Any]) -> Any:
    _check_version(fields)
    kind = _text(fields, "kind")
    if kind not in kinds:
        raise ContractError(f"unknown message kind {kind!r}")
    return kinds[kind].from_fields(fields)


def decode_frame_entry(fields: Mapping[bytes, bytes]) -> FrameMessage | EndOfStream:
    """Decode a ``frames:<camera>`` entry, or raise :class:`ContractError`."""
    return _decode_entry(fields, {"frame": FrameMessage, "eof": EndOfStream})


@dataclass(frozen=True)
class ResultMessage:
    """The faces found in one frame (classified, see :class:`Faces`), plus the frame's identity."""

    camera: str
    seq: int
    capture_ts: float
    width: int
    height: int
    processed_ts: float
    faces: Faces
    models: dict[str, str] = field(default_factory=dict)
    placeholder: bool = False
    worker: str = ""
    image: bytes | None = None
    encoding: str = "jpeg"
    detection: str = "full"
    """How the frame was searched: ``full`` (whole frame), ``regions`` (around motion and tracked
    faces; faces outside them are carried forward, ``faces.carried``), ``none`` (nothing moved)."""

    def __post_init__(self) -> None:
        if self.detection not in DETECTION_MODES:
            raise ContractError(f"detection must be one of {DETECTION_MODES}, got {self.detection!r}")

    @property
    def labels(self) -> list[str]:
        """Class per face; ``unclassified`` for every face when the classifier is a placeholder."""
        return [UNCLASSIFIED] * len(self.faces) if self.placeholder else self.faces.labels

    def to_fields(self) -> dict[str, bytes | str]:
        data = self.faces.to_wire() | {
            "models": self.models,
            "placeholder": self.placeholder,
            "worker": self.worker,
            "detection": self.detection,
        }
        fields: dict[str, bytes | str] = {
            "v": str(SCHEMA_VERSION),
            "kind": "result",
            "camera": self.camera,
            "seq": str(self.seq),
            "ts": repr(self.capture_ts),
            "pts_done": repr(self.processed_ts),
            "w": str(self.width),
            "h": str(self.height),
            "data": json.dumps(data, separators=(",", ":")),
        }
        if self.image is not None:
            fields["img"] = self.image
            fields["enc"] = self.encoding
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> ResultMessage:
        try:
            data = json.loads(_text(fields, "data"))
            faces = Faces.from_wire(data)
        except (ValueError, KeyError, TypeError) as e:
            raise ContractError(f"field 'data' is malformed: {e}") from None
        image = fields.get(b"img")
        return cls(
            camera=_text(fields, "camera"),
            seq=_number(fields, "seq", int),
            capture_ts=_number(fields, "ts"),
            width=_number(fields, "w", int),
            height=_number(fields, "h", int),
            processed_ts=_number(fields, "pts_done"),
            faces=faces,
            models=dict(data.get("models", {})),
            placeholder=bool(data.get("placeholder", False)),
            worker=str(data.get("worker", "")),
            detection=str(data.get("detection", "full")),
            image=bytes(image) if image else None,
            encoding=_text(fields, "enc") if b"enc" in fields else "jpeg",
        )


def decode_result_entry(fields: Mapping[bytes, bytes]) -> ResultMessage | EndOfStream:
    """Decode a ``results:<camera>`` entry, or raise :class:`ContractError`."""
    return _decode_entry(fields, {"result": ResultMessage, "eof": EndOfStream})
