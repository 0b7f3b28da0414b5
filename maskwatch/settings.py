"""All configuration, declared once: environment (``MASKWATCH_*``) over a YAML file over defaults.

Nested fields use ``__`` in the environment, e.g. ``MASKWATCH_WORKER__MAX_BATCH=32``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from maskwatch.redaction import redact_url
from maskwatch.zones import ZoneError, validate_polygon

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://")
HTTP_SCHEMES = ("http://", "https://")
DEFAULT_WEIGHTS_DIR = Path("../shared/weights")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CameraConfig(_Strict):
    """One video source: an RTSP/HTTP(S)/HLS URL or a local file."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Camera id: used in Redis keys and metric labels")
    url: SecretStr = Field(description="rtsp://, http(s):// (HLS too) URL or a local file path; may hold credentials")
    fps: float = Field(5.0, gt=0, le=120, description="Frames per second kept after sampling")
    kind: Literal["auto", "live", "file"] = Field("auto", description="'auto': file for local paths, live otherwise")
    drop_policy: Literal["auto", "drop_oldest", "block"] = Field(
        "auto", description="When the frames stream is full: live sources drop the oldest, files block"
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP lower transport")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of frames put on the stream")
    max_width: int | None = Field(None, ge=64, le=7680, description="Downscale wider frames to this width")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout to open the source")
    stall_timeout_s: float = Field(10.0, gt=0, le=600, description="No frame for this long = stalled, reconnect")
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
    def _valid_zones(cls, zones: list[list[tuple[float, float]]], info: Any) -> list[list[tuple[float, float]]]:
        camera = info.data.get("id", "?")
        for i, polygon in enumerate(zones):
            try:
                validate_polygon(polygon)
            except ZoneError as e:
                raise ValueError(f"camera {camera!r} zone {i}: {e}") from None
        return zones

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


class IngestSettings(_Strict):
    stream_max_len: int = Field(300, ge=2, le=1_000_000, description="Bound of a live camera's frames stream")
    file_max_backlog: int = Field(64, ge=1, le=100_000, description="A file source waits while this many frames are unprocessed")
    backoff_initial_s: float = Field(1.0, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    metrics_port: int = Field(9101, ge=0, le=65535, description="0 disables the metrics server")


class WorkerSettings(_Strict):
    group: str = Field("workers", min_length=1, description="Consumer group on every frames stream")
    consumer: str | None = Field(None, description="Consumer name; default host-pid")
    max_batch: int = Field(16, ge=1, le=1024, description="Frames per inference batch")
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="Longest wait to fill a batch")
    claim_idle_ms: int = Field(30_000, ge=100, le=86_400_000, description="Reclaim messages pending this long")
    discovery_interval_s: float = Field(2.0, gt=0, le=600, description="How often new cameras are looked for")
    results_max_len: int = Field(2_000, ge=10, le=10_000_000, description="Bound of each results stream (entries carry JPEGs)")
    include_image: bool = Field(True, description="Carry the JPEG in results (the publisher draws clips from it)")
    max_frame_age_s: float = Field(
        10.0, ge=0, le=86_400, description="Skip live frames older than this when read (0: never); files are never skipped"
    )
    metrics_port: int = Field(9102, ge=0, le=65535)


class PublisherSettings(_Strict):
    group: str = Field("publishers", min_length=1)
    consumer: str | None = None
    read_count: int = Field(64, ge=1, le=10_000)
    events_max_len: int = Field(10_000, ge=10, le=10_000_000, description="Bound of the events stream")
    violations_max_len: int = Field(10_000, ge=10, le=10_000_000)
    dedup_ttl_s: int = Field(7 * 86_400, ge=60, description="How long an event id is remembered")
    claim_idle_ms: int = Field(30_000, ge=100, le=86_400_000)
    metrics_port: int = Field(9103, ge=0, le=65535)


class DetectorSettings(_Strict):
    """The face detector. ``auto``: RetinaFace when the ``retinaface`` wheel is installed, else YuNet
    when its verified weights are in ``weights_dir`` (``maskwatch models fetch yunet``), else the
    pip-bundled MTCNN; the worker logs which."""

    type: Literal["auto", "mtcnn", "yunet", "opencv-res10", "blazeface", "retinaface"] = Field(
        "auto", description="Face detector backend (see docs/detectors.md for the measurements behind the default)"
    )
    weights_dir: Path = Field(DEFAULT_WEIGHTS_DIR, description="Folder holding the detector's weight files")
    confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Minimum detector score; default: the backend's threshold tuned on training scenes"
    )
    masked_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Minimum detector score of a face the classifier calls with_mask (masked faces score lower); "
        "default: the backend's value tuned on training scenes; ignored when not below confidence",
    )
    input_size: tuple[int, int] = Field((300, 300), description="Network input (width, height) of opencv-res10")
    nms_iou: float = Field(0.4, gt=0.0, le=1.0)
    upscale_to: int | None = Field(
        1280,
        ge=64,
        le=7680,
        description="yunet: frames whose long side is shorter also get a pass upscaled to this size (small faces); None: off",
    )
    downscale_to: int | None = Field(
        400,
        ge=64,
        le=7680,
        description="yunet: frames 1.5x larger also get a pass downscaled to this long side (very large faces); None: off",
    )
    min_face_size: int = Field(20, ge=8, le=1000, description="mtcnn: smallest face searched for, in pixels")
    max_side: int | None = Field(
        1280, ge=64, le=7680, description="mtcnn, retinaface: downscale larger frames to this long side first (speed); None: off"
    )
    retinaface_upscale_to: int | None = Field(
        1024,
        ge=64,
        le=7680,
        description="retinaface: upscale frames whose long side is shorter to this size (faces under its 16 px "
        "anchors); None: off",
    )
    blazeface_variant: Literal["back", "full", "short", "front"] = Field("back", description="blazeface model")
    box_calibration: bool = Field(
        True, description="Map boxes to the labelled face-box convention (models/detectors/calibration/*.json)"
    )
    test_time_flip: bool = Field(
        False,
        description="Also detect on the mirrored frame and merge (finds more turned and masked faces; "
        "about twice the detector time)",
    )


class ClassifierSettings(_Strict):
    type: Literal["keras", "placeholder"] = Field("keras", description="Mask classifier backend")
    path: Path | None = Field(None, description="A .keras model file; default: the model shipped in models/")
    margin: float = Field(0.15, ge=0.0, le=1.0, description="Box margin added around each face before cropping")
    runtime: Literal["auto", "tflite", "tensorflow"] = Field(
        "auto",
        description="keras: tflite (XNNPACK, fastest on CPU), tensorflow (GPU when visible); auto: tensorflow "
        "with a GPU, else tflite",
    )
    threads: int | None = Field(None, ge=1, le=256, description="tflite: CPU threads; default: all cores")


class ViolationSettings(_Strict):
    """Face tracking and the per-person class decision (publisher)."""

    enabled: bool = Field(True, description="Track faces and raise violation events")
    iou_threshold: float = Field(0.25, gt=0.0, le=1.0, description="Least IoU between a track's predicted box and a face")
    max_center_shift: float = Field(
        1.0, ge=0.0, le=5.0, description="Else match a face whose centre moved at most this many face widths"
    )
    max_age_frames: int = Field(
        10, ge=0, le=1000, description="A track not seen for more processed frames than this ends"
    )
    window_frames: int = Field(5, ge=1, le=100, description="N: observations a track's decision looks back on")
    min_votes: int = Field(3, ge=1, le=100, description="K: of the last N observations, at least K must agree")
    min_confidence: float = Field(
        0.6, ge=0.0, le=1.0, description="theta: least mean probability of the class over its agreeing observations"
    )
    violation_classes: list[Literal["without_mask", "incorrect_mask"]] = Field(
        default_factory=lambda: ["without_mask", "incorrect_mask"], description="Decided classes that raise a violation"
    )
    compliance_window_s: float = Field(300.0, gt=0, le=86_400, description="Rolling window of the compliance gauges")

    @model_validator(mode="after")
    def _votes_fit_window(self) -> ViolationSettings:
        if self.min_votes > self.window_frames:
            raise ValueError(f"min_votes ({self.min_votes}) cannot exceed window_frames ({self.window_frames})")
        return self


class ClipSettings(_Strict):
    """Annotated violation clips, snapshots and their retention (publisher)."""

    enabled: bool = Field(True, description="Write clips and snapshots of violations")
    dir: Path = Field(Path("clips"), description="Folder of clips and snapshots (one sub-folder per camera)")
    pre_roll_s: float = Field(3.0, ge=0, le=120, description="Seconds of video kept before the violation")
    post_roll_s: float = Field(3.0, ge=0, le=120, description="Seconds of video kept after the last violation")
    max_clip_s: float = Field(60.0, gt=0, le=3600, description="Longest clip; overlapping violations extend one clip up to this")
    fps: float | None = Field(None, gt=0, le=120, description="Frame rate of clips; default the camera's sampling rate")
    ring_buffer_frames: int = Field(150, ge=1, le=10_000, description="Recent frames kept per camera for pre-roll")
    max_width: int = Field(1280, ge=64, le=7680, description="Wider frames are downscaled in clips and snapshots")
    crf: int = Field(26, ge=0, le=51, description="H.264 quality (lower is better and bigger)")
    jpeg_quality: int = Field(90, ge=10, le=100, description="Snapshot JPEG quality")
    blur: Literal["none", "all", "others"] = Field(
        "none", description="Blur faces for privacy: 'all', or 'others' = every face but the violator's"
    )
    max_age_s: float = Field(7 * 86_400.0, gt=0, description="Clips and snapshots older than this are deleted")
    max_total_mb: float = Field(10_240.0, gt=0, description="Oldest clips and snapshots go first above this total")
    retention_interval_s: float = Field(60.0, gt=0, le=86_400, description="How often retention runs")
    max_pending: int = Field(8, ge=1, le=1000, description="Clips waiting for the writer before new ones are refused")


class Settings(BaseSettings):
    """Everything a maskwatch process needs."""

    model_config = SettingsConfigDict(
        env_prefix="MASKWATCH_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    redis_url: SecretStr | None = Field(None, description="redis://[:password@]host:port/db or unix:///path.sock")
    key_prefix: str = Field("maskwatch:", pattern=r"^[A-Za-z0-9_.:-]{0,64}$", description="Prefix of every Redis key")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    heartbeat_ttl_s: int = Field(15, ge=2, le=3600)
    shutdown_grace_s: float = Field(10.0, ge=0, le=600, description="Drain deadline on SIGINT/SIGTERM")
    cameras: list[CameraConfig] = Field(default_factory=list)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    publisher: PublisherSettings = Field(default_factory=PublisherSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    violations: ViolationSettings = Field(default_factory=ViolationSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> Settings:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def safe_redis_url(self) -> str:
        """The Redis URL with its password redacted."""
        return redact_url(self.redis_url.get_secret_value()) if self.redis_url else "(none)"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings)


class ConfigError(Exception):
    """The configuration is invalid: ``problems`` lists each as ``path: message``."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration ({source}):\n" + "\n".join(f"  {p}" for p in problems))


_yaml_data: dict[str, Any] = {}


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds the YAML file given to :func:`load_settings` (below the environment)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return _yaml_data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data)


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Parse a YAML config file into a mapping, with errors that name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read config file: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(str(p), [f"not valid YAML: {e}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), [f"top level must be a mapping, got {type(data).__name__}"])
    return data


def format_validation_error(err: ValidationError) -> list[str]:
    """One ``a.b.0.c: message`` line per invalid field; input values are never echoed (secrets)."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"{loc}: {e['msg']}")
    return lines


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings: ``overrides`` > ``MASKWATCH_*`` env > YAML file > defaults."""
    global _yaml_data
    source = str(config_file) if config_file else "environment"
    _yaml_data = read_config_file(config_file) if config_file else {}
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(e)) from None
    finally:
        _yaml_data = {}
