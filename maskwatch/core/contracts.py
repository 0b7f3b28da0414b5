"""Messages on the Redis streams, typed and versioned.

Frame entries (``frames:<camera>``) and result entries (``results:<camera>``) are flat
Redis hashes of bytes. ``kind`` tells a frame (``frame``/``result``) from the end-of-file
marker (``eof``). ``decode_*`` raise :class:`ContractError` naming what is wrong, so that a
stage can dead-letter the message and carry on.

Every field read from Redis is validated here, since anyone who can write to Redis can write a
message: numbers are finite and bounded (timestamps are Unix seconds in
[0, now + :data:`MAX_FUTURE_S`]; sequence numbers in [0, :data:`MAX_SEQ`]; sizes in
[1, :data:`MAX_SIDE`]), the camera is a valid id (and, given the stream's camera, that one), a
result's faces fit its frame (:meth:`Faces.from_wire`) and its ``models`` map names to names.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskwatch.core.errors import ContractError  # one error hierarchy: core/errors.py
from maskwatch.core.faces import MAX_NAME_CHARS, UNCLASSIFIED, Faces
from maskwatch.core.keys import is_camera_id

SCHEMA_VERSION = 2
"""Written by this build. Version 2 adds a frame's ``motion`` boxes and ``full`` flag and a result's
``detection`` mode; version 1 messages still parse (no motion: the worker detects the whole frame)."""
READABLE_VERSIONS = (1, 2)
MAX_MOTION_BOXES = 256
DETECTION_MODES = ("full", "regions", "none", "skipped")
EVENT_NAMESPACE = uuid.UUID("7a1d7f4e-3d2b-4f5e-9a51-6d61736b7761")
IMAGE_ENCODINGS = ("jpeg", "png")
MAX_FUTURE_S = 86_400.0
"""A timestamp may lie at most this far (a day) ahead of the reader's clock: skewed clocks pass, 1e20 not."""
MAX_SEQ = 2**53
"""Largest sequence number: every one is exact in JSON (and in a float)."""
MAX_SIDE = 65_535
"""Largest frame width or height (JPEG's own limit)."""
MAX_MEDIA_TIME_S = 1e10
"""Largest magnitude of a media time (``pts``)."""
MAX_MODELS = 16
MAX_TEXT_CHARS = 256


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
        value = cast(text)
    except ValueError:
        raise ContractError(f"field {name!r} is not a {cast.__name__}: {text[:40]!r}") from None
    if cast is float and not math.isfinite(value):
        raise ContractError(f"field {name!r} is not a finite number: {text[:40]!r}")
    return value


def _bounded(fields: Mapping[bytes, bytes], name: str, low: float, high: float, cast: type = float) -> Any:
    """Field ``name`` as a number in [``low``, ``high``]."""
    value = _number(fields, name, cast)
    if not low <= value <= high:
        raise ContractError(f"field {name!r} = {value!r} is outside [{low:g}, {high:g}]")
    return value


def _timestamp(fields: Mapping[bytes, bytes], name: str) -> float:
    """Field ``name`` as Unix seconds in [0, now + :data:`MAX_FUTURE_S`]."""
    return float(_bounded(fields, name, 0.0, time.time() + MAX_FUTURE_S))


def _camera(fields: Mapping[bytes, bytes], stream_camera: str | None) -> str:
    """The message's camera: a valid id, and the stream's own camera when that is given."""
    camera = _text(fields, "camera")
    if not is_camera_id(camera):
        raise ContractError(f"field 'camera' is not a valid camera id: {camera[:70]!r}")
    if stream_camera is not None and camera != stream_camera:
        raise ContractError(f"field 'camera' {camera!r} differs from its stream's camera {stream_camera!r}")
    return camera


def _short_text(fields: Mapping[bytes, bytes], name: str, default: str) -> str:
    if name.encode() not in fields:
        return default
    text = _text(fields, name)
    if len(text) > MAX_TEXT_CHARS:
        raise ContractError(f"field {name!r} is longer than {MAX_TEXT_CHARS} characters")
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


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
    def from_fields(cls, fields: Mapping[bytes, bytes], stream_camera: str | None = None) -> EndOfStream:
        """Validated: ``frames`` in [0, MAX_SEQ], ``seq`` (the last one sent, -1 when none) in
        [-1, MAX_SEQ] with at least ``frames`` sequence numbers up to it (``frames <= seq + 1``)."""
        last_seq = _bounded(fields, "seq", -1, MAX_SEQ, int)
        frames = _bounded(fields, "frames", 0, MAX_SEQ, int)
        if frames > last_seq + 1:
            raise ContractError(f"end of stream claims {frames} frames up to seq {last_seq}")
        return cls(
            camera=_camera(fields, stream_camera),
            last_seq=last_seq,
            frames=frames,
            reason=_short_text(fields, "reason", "eof"),
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
    def from_fields(cls, fields: Mapping[bytes, bytes], stream_camera: str | None = None) -> FrameMessage:
        image = fields.get(b"img")
        if not image:
            raise ContractError("missing or empty field 'img'")
        width, height = _bounded(fields, "w", 1, MAX_SIDE, int), _bounded(fields, "h", 1, MAX_SIDE, int)
        return cls(
            camera=_camera(fields, stream_camera),
            seq=_bounded(fields, "seq", 0, MAX_SEQ, int),
            capture_ts=_timestamp(fields, "ts"),
            width=width,
            height=height,
            image=bytes(image),
            encoding=_short_text(fields, "enc", "") or _text(fields, "enc"),
            pts=_bounded(fields, "pts", -MAX_MEDIA_TIME_S, MAX_MEDIA_TIME_S) if b"pts" in fields else None,
            live=fields.get(b"live") == b"1",
            motion=_motion(fields, width, height),
            full=fields.get(b"full") == b"1",
        )


def _decode_entry(fields: Mapping[bytes, bytes], kinds: dict[str, Any], stream_camera: str | None) -> Any:
    _check_version(fields)
    kind = _text(fields, "kind")
    if kind not in kinds:
        raise ContractError(f"unknown message kind {kind[:40]!r}")
    return kinds[kind].from_fields(fields, stream_camera)


def decode_frame_entry(
    fields: Mapping[bytes, bytes], stream_camera: str | None = None
) -> FrameMessage | EndOfStream:
    """Decode a ``frames:<camera>`` entry (of ``stream_camera``'s stream: its ``camera`` must be that
    one), or raise :class:`ContractError`."""
    return _decode_entry(fields, {"frame": FrameMessage, "eof": EndOfStream}, stream_camera)


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
    pts: float | None = None
    """The frame's media time in seconds (file sources; field ``pts``), copied from its frame message."""

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
            "data": json.dumps(data, separators=(",", ":"), allow_nan=False),
        }
        if self.pts is not None:
            fields["pts"] = repr(self.pts)
        if self.image is not None:
            fields["img"] = self.image
            fields["enc"] = self.encoding
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes], stream_camera: str | None = None) -> ResultMessage:
        camera = _camera(fields, stream_camera)
        width, height = _bounded(fields, "w", 1, MAX_SIDE, int), _bounded(fields, "h", 1, MAX_SIDE, int)
        try:
            data = json.loads(_text(fields, "data"), parse_constant=_reject_constant)
        except ValueError as e:
            raise ContractError(f"field 'data' is not JSON: {str(e)[:80]}") from None
        except RecursionError:
            raise ContractError("field 'data' is nested too deeply") from None
        faces = Faces.from_wire(data, width, height)
        encoding = _short_text(fields, "enc", "jpeg")
        if encoding not in IMAGE_ENCODINGS:
            raise ContractError(f"field 'enc' must be one of {IMAGE_ENCODINGS}, got {encoding[:40]!r}")
        detection = data.get("detection", "full")
        placeholder, worker = data.get("placeholder", False), data.get("worker", "")
        if not isinstance(placeholder, bool):
            raise ContractError("'placeholder' must be a boolean")
        if not (isinstance(worker, str) and len(worker) <= MAX_TEXT_CHARS):
            raise ContractError(f"'worker' must be text of at most {MAX_TEXT_CHARS} characters")
        if not isinstance(detection, str) or detection not in DETECTION_MODES:
            raise ContractError(f"'detection' must be one of {DETECTION_MODES}")
        image = fields.get(b"img")
        return cls(
            camera=camera,
            seq=_bounded(fields, "seq", 0, MAX_SEQ, int),
            capture_ts=_timestamp(fields, "ts"),
            width=width,
            height=height,
            processed_ts=_timestamp(fields, "pts_done"),
            faces=faces,
            models=_models(data.get("models", {})),
            placeholder=placeholder,
            worker=worker,
            detection=detection,
            image=bytes(image) if image else None,
            encoding=encoding,
            pts=_bounded(fields, "pts", -MAX_MEDIA_TIME_S, MAX_MEDIA_TIME_S) if b"pts" in fields else None,
        )


def _models(value: Any) -> dict[str, str]:
    """A result's ``models``: at most :data:`MAX_MODELS` names (role -> model), each short text."""
    if not (
        isinstance(value, dict)
        and len(value) <= MAX_MODELS
        and all(
            isinstance(k, str)
            and isinstance(v, str)
            and len(k) <= MAX_NAME_CHARS
            and len(v) <= MAX_TEXT_CHARS
            for k, v in value.items()
        )
    ):
        raise ContractError(f"'models' must map at most {MAX_MODELS} names to names (text)")
    return dict(value)


def decode_result_entry(
    fields: Mapping[bytes, bytes], stream_camera: str | None = None
) -> ResultMessage | EndOfStream:
    """Decode a ``results:<camera>`` entry (of ``stream_camera``'s stream: its ``camera`` must be that
    one), or raise :class:`ContractError`."""
    return _decode_entry(fields, {"result": ResultMessage, "eof": EndOfStream}, stream_camera)
