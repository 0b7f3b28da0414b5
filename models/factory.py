"""Build the configured detector and classifier (the plugin registry)."""

from __future__ import annotations

from maskwatch.settings import ClassifierSettings, DetectorSettings
from models.classifier import MaskClassifier, PlaceholderClassifier
from models.detectors.base import FaceDetector


def build_detector(settings: DetectorSettings) -> FaceDetector:
    """The face detector named by ``settings.type``."""
    if settings.type == "opencv-res10":
        from models.detectors.opencv_res10 import OpenCVRes10Detector

        return OpenCVRes10Detector(settings.weights_dir, settings.confidence, settings.input_size, settings.nms_iou)
    raise ValueError(f"unknown detector type {settings.type!r}")


def build_classifier(settings: ClassifierSettings) -> MaskClassifier:
    """The mask classifier named by ``settings.type``."""
    if settings.type == "placeholder":
        return PlaceholderClassifier()
    if settings.type == "keras":
        from models.keras_classifier import KerasMaskClassifier

        return KerasMaskClassifier.load(settings.path)
    raise ValueError(f"unknown classifier type {settings.type!r}")
