"""The detector and classifier sections."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from maskwatch.config.base import StrictModel
from maskwatch.config.paths import default_weights_dir
from maskwatch.models.detectors.base import BackendConfig
from maskwatch.models.detectors.registry import AUTO, DETECTORS, get


class DetectorFields(StrictModel):
    """The face detector. ``auto``: RetinaFace when its ONNX file shipped with maskwatch
    (``models/detectors/retinaface_mnv2.onnx``) verifies, else YuNet when its verified weights are in
    ``weights_dir`` (``maskwatch models fetch yunet``), else the pip-bundled MTCNN; the worker logs which. Each backend's own options are in its section,
    ``detector.<backend>.*`` (``opencv-res10``: ``detector.opencv_res10``), from the backend's module."""

    type: str = Field(
        AUTO,
        description="Face detector backend (see docs/detectors.md for the measurements behind the default)",
    )
    weights_dir: Path = Field(
        default_factory=default_weights_dir,
        description="Folder of the detector's weight files (default <data_dir>/weights; "
        "a relative path is taken against the config file's folder)",
    )
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
    nms_iou: float = Field(0.4, gt=0.0, le=1.0, description="Overlap above which the weaker box is dropped")
    box_calibration: bool = Field(
        True,
        description="Map boxes to the labelled face-box convention (models/detectors/calibration/*.json)",
    )
    test_time_flip: bool = Field(
        False,
        description="Also detect on the mirrored frame and merge (finds more turned and masked faces; "
        "about twice the detector time)",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_flat_keys(cls, data: Any) -> Any:
        """Old flat keys (``detector.upscale_to`` ...) go to their backend's section, with a warning."""
        old_keys = [k for k in DEPRECATED_KEYS if isinstance(data, dict) and k in data]
        if not old_keys:
            return data
        data = dict(data)
        for old in old_keys:
            value = data.pop(old)
            if old == "input_size" and isinstance(value, str):  # from the environment: "[300, 300]"
                value = json.loads(value)
            targets = DEPRECATED_KEYS[old]
            new_keys = " and ".join(f"detector.{section}.{field}" for section, field in targets)
            warnings.warn(f"detector.{old} is deprecated; use {new_keys}", DeprecationWarning, stacklevel=2)
            for section, field in targets:
                options = data.get(section, {})
                options = options.model_dump() if isinstance(options, BaseModel) else dict(options)
                options.setdefault(field, value)  # the new key wins when both are given
                data[section] = options
        return data

    def options(self, kind: str) -> BackendConfig:
        """The options section of backend ``kind``."""
        options: BackendConfig = getattr(self, get(kind).section)
        return options


DEPRECATED_KEYS: dict[str, list[tuple[str, str]]] = {}
"""Old flat ``detector.*`` key -> the (section, field) pairs it now sets (from each backend's ``flat_keys``)."""
for _spec in DETECTORS.values():
    for _old, _field in _spec.flat_keys.items():
        DEPRECATED_KEYS.setdefault(_old, []).append((_spec.section, _field))

if TYPE_CHECKING:
    DetectorSettings = DetectorFields
else:
    DetectorSettings = create_model(
        "DetectorSettings",
        __base__=DetectorFields,
        __module__=__name__,
        __doc__=DetectorFields.__doc__,
        type=(
            Literal[(AUTO, *DETECTORS)],
            Field(AUTO, description=DetectorFields.model_fields["type"].description),
        ),
        **{
            spec.section: (
                spec.config,
                Field(default_factory=spec.config, description=f"{spec.key}: {spec.weights.description}"),
            )
            for spec in DETECTORS.values()
        },
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
