"""Build the configured detector and classifier (the plugin registry)."""

from __future__ import annotations

import logging

from maskwatch.settings import ClassifierSettings, DetectorSettings
from models.classifier import MaskClassifier, PlaceholderClassifier
from models.detectors.base import FaceDetector

log = logging.getLogger(__name__)

DEFAULT_CONFIDENCE: dict[str, float] = {
    "mtcnn": 0.88,
    "yunet": 0.80,
    "opencv-res10": 0.20,
    "blazeface": 0.45,
}
"""Per-backend score thresholds when ``confidence`` is not set: the best face F1 on the ``train`` scenes,
with box calibration on (``benchmarks/scene_table.py``, docs/detectors.md)."""


def resolve_detector_type(settings: DetectorSettings) -> str:
    """The backend ``settings.type`` means: ``auto`` is YuNet when its verified weights are present, else MTCNN."""
    if settings.type != "auto":
        return settings.type
    from models.detectors.weights import weights_ready

    return "yunet" if weights_ready("yunet", settings.weights_dir) else "mtcnn"


def build_detector(settings: DetectorSettings, confidence: float | None = None) -> FaceDetector:
    """The face detector named by ``settings.type``; ``confidence`` overrides the settings' threshold."""
    kind = resolve_detector_type(settings)
    conf = confidence if confidence is not None else settings.confidence
    conf = DEFAULT_CONFIDENCE[kind] if conf is None else conf
    if kind == "opencv-res10":
        from models.detectors.opencv_res10 import OpenCVRes10Detector

        detector: FaceDetector = OpenCVRes10Detector(
            settings.weights_dir, conf, settings.input_size, settings.nms_iou
        )
    elif kind == "yunet":
        from models.detectors.yunet import YuNetDetector

        detector = YuNetDetector(
            settings.weights_dir, conf, min(settings.nms_iou, 0.3), settings.upscale_to, settings.downscale_to
        )
    elif kind == "mtcnn":
        from models.detectors.mtcnn import MTCNNDetector

        detector = MTCNNDetector(conf, settings.nms_iou, settings.min_face_size, max_side=settings.max_side)
    elif kind == "blazeface":
        from models.detectors.blazeface import BlazeFaceDetector

        detector = BlazeFaceDetector(settings.blazeface_variant, conf, min(settings.nms_iou, 0.3))
    else:
        raise ValueError(f"unknown detector type {settings.type!r}")
    if settings.box_calibration:
        from models.detectors.calibration import BoxCalibration, CalibratedDetector

        calibration = BoxCalibration.for_backend(kind)
        if calibration is not None:
            detector = CalibratedDetector(detector, calibration)
    if settings.type == "auto":
        detector.name = f"{detector.name} (auto)"
        log.info("detector type auto -> %s (threshold %.2f)", detector.name, conf)
    return detector


def build_classifier(settings: ClassifierSettings) -> MaskClassifier:
    """The mask classifier named by ``settings.type``."""
    if settings.type == "placeholder":
        return PlaceholderClassifier()
    if settings.type == "keras":
        from models.keras_classifier import KerasMaskClassifier

        return KerasMaskClassifier.load(settings.path)
    raise ValueError(f"unknown classifier type {settings.type!r}")
