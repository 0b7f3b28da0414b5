"""Tracking, the per-person decision, and clips (the publisher's violation sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from maskwatch.config.base import StrictModel
from maskwatch.config.paths import default_clips_dir

ViolationClass = Literal["without_mask", "incorrect_mask"]
DEFAULT_VIOLATION_CLASSES: tuple[ViolationClass, ...] = ("without_mask", "incorrect_mask")


class ViolationSettings(StrictModel):
    """Face tracking and the per-person class decision (publisher)."""

    enabled: bool = Field(True, description="Track faces and raise violation events")
    iou_threshold: float = Field(
        0.25, gt=0.0, le=1.0, description="Least IoU between a track's predicted box and a face"
    )
    max_center_shift: float = Field(
        1.0, ge=0.0, le=5.0, description="Else match a face whose centre moved at most this many face widths"
    )
    max_age_frames: int = Field(
        10, ge=0, le=1000, description="A track not seen for more processed frames than this ends"
    )
    window_frames: int = Field(
        5, ge=1, le=100, description="N: observations a track's decision looks back on"
    )
    min_votes: int = Field(
        3, ge=1, le=100, description="K: of the last N observations, at least K must agree"
    )
    min_confidence: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="theta: least mean probability of the class over its agreeing observations",
    )
    violation_classes: list[ViolationClass] = Field(
        default_factory=lambda: list(DEFAULT_VIOLATION_CLASSES),
        description="Decided classes that raise a violation",
    )
    compliance_window_s: float = Field(
        300.0, gt=0, le=86_400, description="Rolling window of the compliance gauges"
    )

    @model_validator(mode="after")
    def _votes_fit_window(self) -> ViolationSettings:
        if self.min_votes > self.window_frames:
            raise ValueError(
                f"min_votes ({self.min_votes}) cannot exceed window_frames ({self.window_frames})"
            )
        return self


class ClipSettings(StrictModel):
    """Annotated violation clips, snapshots and their retention (publisher)."""

    enabled: bool = Field(True, description="Write clips and snapshots of violations")
    dir: Path = Field(
        default_factory=default_clips_dir,
        description="Folder of clips and snapshots, one sub-folder per camera (default <data_dir>/clips; "
        "a relative path is taken against the config file's folder)",
    )
    pre_roll_s: float = Field(3.0, ge=0, le=120, description="Seconds of video kept before the violation")
    post_roll_s: float = Field(
        3.0, ge=0, le=120, description="Seconds of video kept after the last violation"
    )
    max_clip_s: float = Field(
        60.0, gt=0, le=3600, description="Longest clip; overlapping violations extend one clip up to this"
    )
    fps: float | None = Field(
        None, gt=0, le=120, description="Frame rate of clips; default the camera's sampling rate"
    )
    ring_buffer_frames: int = Field(
        150, ge=1, le=10_000, description="Recent frames kept per camera for pre-roll"
    )
    max_width: int = Field(
        1280, ge=64, le=7680, description="Wider frames are downscaled in clips and snapshots"
    )
    crf: int = Field(26, ge=0, le=51, description="H.264 quality (lower is better and bigger)")
    jpeg_quality: int = Field(90, ge=10, le=100, description="Snapshot JPEG quality")
    blur: Literal["none", "all", "others"] = Field(
        "none", description="Blur faces for privacy: 'all', or 'others' = every face but the violator's"
    )
    max_age_s: float = Field(
        7 * 86_400.0, gt=0, description="Clips and snapshots older than this are deleted"
    )
    max_total_mb: float = Field(
        10_240.0, gt=0, description="Oldest clips and snapshots go first above this total"
    )
    retention_interval_s: float = Field(60.0, gt=0, le=86_400, description="How often retention runs")
    max_pending: int = Field(
        8, ge=1, le=1000, description="Clips waiting for the writer before new ones are refused"
    )
