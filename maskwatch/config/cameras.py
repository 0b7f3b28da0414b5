"""A camera: one video source (RTSP/HTTP(S)/HLS URL or local file) and how it is sampled."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from maskwatch.config.base import StrictModel
from maskwatch.core.redaction import redact_url
from maskwatch.core.zones import ZoneError, validate_polygon

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://")
HTTP_SCHEMES = ("http://", "https://")


class CameraConfig(StrictModel):
    """One video source: an RTSP/HTTP(S)/HLS URL or a local file."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Camera id: used in Redis keys and metric labels"
    )
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

    @field_validator("zones")
    @classmethod
    def _valid_zones(
        cls, zones: list[list[tuple[float, float]]], info: Any
    ) -> list[list[tuple[float, float]]]:
        """The one place zones are checked (``core.zones.validate_polygon``); stages trust the result."""
        camera = info.data.get("id", "?")
        valid = []
        for i, polygon in enumerate(zones):
            try:
                valid.append(validate_polygon(polygon))
            except ZoneError as e:
                raise ValueError(f"camera {camera!r} zone {i}: {e}") from None
        return valid

    @field_validator("url")
    @classmethod
    def _non_empty(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("source URL is empty")
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
