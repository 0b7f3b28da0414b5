"""The detector and classifier sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from maskwatch.config.base import StrictModel

DEFAULT_WEIGHTS_DIR = Path("../shared/weights")


class DetectorSettings(StrictModel):
    """The face detector. ``auto``: RetinaFace when the ``retinaface`` wheel is installed, else YuNet
    when its verified weights are in ``weights_dir`` (``maskwatch models fetch yunet``), else the
    pip-bundled MTCNN; the worker logs which."""

    type: Literal["auto", "mtcnn", "yunet", "opencv-res10", "blazeface", "retinaface"] = Field(
        "auto",
        description="Face detector backend (see docs/detectors.md for the measurements behind the default)",
    )
    weights_dir: Path = Field(DEFAULT_WEIGHTS_DIR, description="Folder holding the detector's weight files")
    confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Minimum detector score; default: the backend's threshold tuned on training scenes",
    )
    masked_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Minimum detector score of a face the classifier calls with_mask (masked faces score lower); "
        "default: the backend's value tuned on training scenes; ignored when not below confidence",
    )
    input_size: tuple[int, int] = Field(
        (300, 300), description="Network input (width, height) of opencv-res10"
    )
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
        1280,
        ge=64,
        le=7680,
        description="mtcnn, retinaface: downscale larger frames to this long side first (speed); None: off",
    )
    retinaface_upscale_to: int | None = Field(
        1024,
        ge=64,
        le=7680,
        description="retinaface: upscale frames whose long side is shorter to this size (faces under its 16 px "
        "anchors); None: off",
    )
    blazeface_variant: Literal["back", "full", "short", "front"] = Field(
        "back", description="blazeface model"
    )
    box_calibration: bool = Field(
        True,
        description="Map boxes to the labelled face-box convention (models/detectors/calibration/*.json)",
    )
    test_time_flip: bool = Field(
        False,
        description="Also detect on the mirrored frame and merge (finds more turned and masked faces; "
        "about twice the detector time)",
    )


class ClassifierSettings(StrictModel):
    type: Literal["keras", "placeholder"] = Field("keras", description="Mask classifier backend")
    path: Path | None = Field(None, description="A .keras model file; default: the model shipped in models/")
    margin: float = Field(
        0.15, ge=0.0, le=1.0, description="Box margin added around each face before cropping"
    )
    runtime: Literal["auto", "tflite", "tensorflow"] = Field(
        "auto",
        description="keras: tflite (XNNPACK, fastest on CPU), tensorflow (GPU when visible); auto: tensorflow "
        "with a GPU, else tflite",
    )
    threads: int | None = Field(None, ge=1, le=256, description="tflite: CPU threads; default: all cores")
