"""A camera: one video source (RTSP/HTTP(S)/HLS URL or local file) and how it is sampled."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from maskwatch.config.base import StrictModel
from maskwatch.core.keys import CAMERA_ID_PATTERN, is_camera_id
from maskwatch.core.redaction import redact_url
from maskwatch.core.zones import ZoneError, validate_polygon

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://")
HTTP_SCHEMES = ("http://", "https://")
FILE_SCHEMES = ("file://",)
SOURCE_SCHEMES = LIVE_SCHEMES + HTTP_SCHEMES + FILE_SCHEMES
"""Every URL scheme a camera may use; anything else with ``://`` is refused (a path has no scheme)."""
MAX_DECODE_THREADS = 64
"""The most decoder threads a camera may ask for (FFmpeg warns above 16)."""
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_HOST = re.compile(r"[^@/?#]*")


def _port_ok(host: str) -> bool:
    """True when ``host`` (``name``, ``name:port``, ``[v6]:port``) has no port or one from 1 to 65535."""
    if host.startswith("["):
        _, _, after = host.partition("]")
        port = after[1:] if after.startswith(":") else ""
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    return not port or (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a source (unsupported scheme, port that is not a number 1-65535),
    or None. Never echoes the URL's parts: they may hold credentials."""
    match = _SCHEME.match(url.strip())
    if match is None:
        return None  # a local path
    scheme = match["scheme"].lower() + "://"
    if scheme not in SOURCE_SCHEMES:
        return f"unsupported URL scheme {scheme!r} (use {', '.join(SOURCE_SCHEMES)} or a local file path)"
    if scheme in FILE_SCHEMES:
        return None
    # Passwords may hold "@", ":" or "/", so the userinfo may end at any "@": the port is bad only when
    # it is bad however the URL is read (no userinfo, or userinfo up to each "@" in turn).
    rest = match["rest"]
    starts = [0] + [i + 1 for i, c in enumerate(rest) if c == "@"]
    hosts = [m[0] for m in (_HOST.match(rest, start) for start in starts) if m]
    if not any(_port_ok(host) for host in hosts):
        return "the port in the URL is not a number from 1 to 65535"
    return None


def _valid_polygons(polygons: list[list[tuple[float, float]]], what: str) -> list[list[tuple[float, float]]]:
    """Each polygon checked by ``core.zones.validate_polygon``; the error names ``what`` and its index."""
    valid = []
    for i, polygon in enumerate(polygons):
        try:
            valid.append(validate_polygon(polygon))
        except ZoneError as e:
            raise ValueError(f"{what} {i}: {e}") from None
    return valid


class MotionConfig(StrictModel):
    """Motion detection of one camera, in the ingest: a cheap pass on a small luma image that tells the
    worker where the picture changed (``FrameMessage.motion``), so it can search only there."""

    enabled: bool = Field(
        True, description="Compute motion boxes; off: every frame is searched whole by the worker"
    )
    threshold: int = Field(
        30,
        ge=1,
        le=254,
        description="Change of a pixel (0-255, after contrast stretch) against the background that counts "
        "as motion; higher is less sensitive",
    )
    contour_area: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Smallest area (pixels of the frame_height image) of a changed blob that makes a box",
    )
    frame_height: int = Field(
        100,
        ge=32,
        le=1080,
        description="Height in pixels the frame is shrunk to for motion detection (never enlarged)",
    )
    frame_alpha: float = Field(
        0.01,
        gt=0,
        le=0.5,
        description="Weight of each new frame in the running-average background; higher forgets faster",
    )
    lightning_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Fraction of the (unmasked) image that, once changed, means lightning, IR switch or a "
        "moved camera: the background is reset and no boxes are proposed until the change settles",
    )
    mask: list[list[tuple[float, float]]] = Field(
        default_factory=list,
        max_length=64,
        description="Polygons of (x, y) points normalized to [0, 1] (like zones) where motion never counts "
        "(timestamps, trees, screens)",
    )

    @field_validator("mask")
    @classmethod
    def _valid_mask(cls, mask: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        return _valid_polygons(mask, "motion mask polygon")


class CameraConfig(StrictModel):
    """One video source: an RTSP/HTTP(S)/HLS URL or a local file."""

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Camera id: used in Redis keys and metric labels")
    url: SecretStr = Field(
        description="rtsp://, http(s):// (HLS too) URL or a local file path; may hold credentials"
    )
    fps: float = Field(5.0, gt=0, le=120, description="Frames per second kept after sampling")
    kind: Literal["auto", "live", "file"] = Field(
        "auto", description="'auto': file for local paths, live otherwise"
    )
    drop_policy: Literal["auto", "drop_oldest", "block"] = Field(
        "auto", description="When the frames stream is full: live sources drop the oldest, files block"
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP lower transport")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of frames put on the stream")
    max_width: int | None = Field(None, ge=64, le=7680, description="Downscale wider frames to this width")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout to open the source")
    stall_timeout_s: float = Field(
        10.0, gt=0, le=600, description="No frame for this long = stalled, reconnect"
    )
    decode_threads: int | None = Field(
        None,
        description="Decoder threads: unset = one thread for live sources (least CPU per frame, no "
        "frame-thread delay) and FFmpeg's automatic threading for files (fastest to read through); 0 = "
        "FFmpeg's automatic threading; N = that many threads (1 = single-threaded)",
    )
    loop: bool = Field(False, description="Replay a file source forever (demos, soak tests)")
    realtime: bool = Field(False, description="Pace a file source at its native frame rate, like a camera")
    enabled: bool = True
    options: dict[str, str] = Field(default_factory=dict, description="Extra FFmpeg/PyAV open options")
    zones: list[list[tuple[float, float]]] = Field(
        default_factory=list,
        max_length=64,
        description="Polygons of (x, y) points normalized to [0, 1] (0,0 = top-left); only faces whose box "
        "centre lies inside one count. Empty: the whole frame counts",
    )

    motion: MotionConfig = Field(
        default_factory=MotionConfig, description="Motion detection in the ingest (boxes for the worker)"
    )
    full_frame_interval_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Ask the worker for a full-frame pass at least this often (media time for files, capture "
        "time for live sources), besides the first frame after each (re)open and while motion recalibrates; "
        "0: every frame is a full pass",
    )
    still_full_frame_interval_s: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="While motion has seen nothing since the last full-frame pass, the next one waits this "
        "long instead of full_frame_interval_s (the picture has not changed: a new pass would find what "
        "the last one found); never shorter than full_frame_interval_s; cameras without motion use "
        "full_frame_interval_s",
    )

    @field_validator("id")
    @classmethod
    def _valid_id(cls, camera_id: str) -> str:
        if not is_camera_id(camera_id):
            raise ValueError(f"camera id {camera_id!r} is not allowed: it names files and Redis keys")
        return camera_id

    @field_validator("zones")
    @classmethod
    def _valid_zones(
        cls, zones: list[list[tuple[float, float]]], info: Any
    ) -> list[list[tuple[float, float]]]:
        """The one place zones are checked (``core.zones.validate_polygon``); stages trust the result."""
        return _valid_polygons(zones, f"camera {info.data.get('id', '?')!r} zone")

    @field_validator("decode_threads")
    @classmethod
    def _valid_decode_threads(cls, threads: int | None, info: Any) -> int | None:
        if threads is not None and not 0 <= threads <= MAX_DECODE_THREADS:
            raise ValueError(
                f"camera {info.data.get('id', '?')!r}: decode_threads must be unset (one thread for live "
                f"sources, automatic for files), 0 (FFmpeg's automatic threading) or a thread count from 1 "
                f"to {MAX_DECODE_THREADS}, not {threads}"
            )
        return threads

    @field_validator("url")
    @classmethod
    def _usable_url(cls, v: SecretStr, info: Any) -> SecretStr:
        """Empty URLs, unsupported schemes and bad ports are refused here, naming the camera."""
        camera = info.data.get("id", "?")
        if not v.get_secret_value().strip():
            raise ValueError(f"camera {camera!r}: source URL is empty")
        problem = url_problem(v.get_secret_value())
        if problem:
            raise ValueError(f"camera {camera!r}: {problem}")
        return v

    @property
    def is_live(self) -> bool:
        """True for network sources (RTSP, HTTP, ...) unless ``kind`` says otherwise."""
        if self.kind != "auto":
            return self.kind == "live"
        url = self.url.get_secret_value().lower()
        return url.startswith(LIVE_SCHEMES + HTTP_SCHEMES)

    @property
    def effective_drop_policy(self) -> Literal["drop_oldest", "block"]:
        """The drop policy after resolving ``auto`` (live: drop_oldest, file: block)."""
        if self.drop_policy != "auto":
            return self.drop_policy
        return "drop_oldest" if self.is_live and not self.loop else "block"

    @property
    def safe_url(self) -> str:
        """The source URL with any password replaced by ``***``: safe to log."""
        return redact_url(self.url.get_secret_value())
