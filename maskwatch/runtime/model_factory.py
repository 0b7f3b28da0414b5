"""Build the configured detector and classifier from the detector registry (models/detectors/registry.py)."""

from __future__ import annotations

import logging

from maskwatch.config.settings import ClassifierSettings, DetectorSettings
from maskwatch.models.analysis import FaceAnalyzer, FaceThreshold
from maskwatch.models.classifier import MaskClassifier, PlaceholderClassifier
from maskwatch.models.detectors.base import FaceDetector
from maskwatch.models.detectors.registry import AUTO, AUTO_ORDER, get

log = logging.getLogger(__name__)


def face_threshold(settings: DetectorSettings) -> FaceThreshold:
    """The score rules that decide which detections are faces (settings, else the backend's tuned values:
    ``DetectorSpec.confidence`` and ``masked_confidence``, the latter ignored when not below the former)."""
    spec = get(resolve_detector_type(settings))
    conf = settings.confidence if settings.confidence is not None else spec.confidence
    masked = settings.masked_confidence if settings.masked_confidence is not None else spec.masked_confidence
    return FaceThreshold(conf, masked)


def build_analyzer(
    detector: DetectorSettings, classifier: ClassifierSettings, evaluation_floor: float | None = None
) -> FaceAnalyzer:
    """Detector (run at the threshold's floor) + classifier + the threshold: what the worker and ``detect`` use.

    With ``evaluation_floor`` the detector runs down to that score too and every candidate is kept
    (no threshold): scene evaluation applies the operating threshold itself, after AP.
    """
    threshold = face_threshold(detector)
    floor = threshold.floor if evaluation_floor is None else min(threshold.floor, evaluation_floor)
    return FaceAnalyzer(
        build_detector(detector, confidence=floor),
        build_classifier(classifier),
        classifier.margin,
        threshold if evaluation_floor is None else None,
    )


def resolve_detector_type(settings: DetectorSettings) -> str:
    """The backend ``settings.type`` means. ``auto``: the first of :data:`AUTO_ORDER` whose weights are
    installed (RetinaFace: its ONNX file shipped as package data, ``models/detectors/retinaface_mnv2.onnx``,
    verifies; YuNet: verified weights in ``weights_dir``), else
    the last (MTCNN, a runtime dependency); the order is by end-to-end mAP on the held-out scenes."""
    if settings.type != AUTO:
        return settings.type
    from maskwatch.models.detectors.weights import weights_ready

    return next((kind for kind in AUTO_ORDER if weights_ready(kind, settings.weights_dir)), AUTO_ORDER[-1])


def build_detector(settings: DetectorSettings, confidence: float | None = None) -> FaceDetector:
    """The face detector named by ``settings.type``; ``confidence`` overrides the settings' threshold."""
    kind = resolve_detector_type(settings)
    spec = get(kind)
    conf = confidence if confidence is not None else settings.confidence
    conf = spec.confidence if conf is None else conf
    detector = spec.detector(
        settings.options(kind), weights_dir=settings.weights_dir, confidence=conf, nms_iou=settings.nms_iou
    )
    if settings.box_calibration:
        from maskwatch.models.detectors.calibration import BoxCalibration, CalibratedDetector

        calibration = BoxCalibration.for_backend(kind)
        if calibration is not None:
            detector = CalibratedDetector(detector, calibration)
    if settings.test_time_flip:
        from maskwatch.models.detectors.flip import FlipAugmentedDetector

        detector = FlipAugmentedDetector(detector, settings.nms_iou)
    if settings.type == AUTO:
        detector.name = f"{detector.name} (auto)"
        log.info("detector type auto -> %s (run from score %.2f)", detector.name, conf)
    return detector


def build_classifier(settings: ClassifierSettings) -> MaskClassifier:
    """The mask classifier named by ``settings.type``."""
    if settings.type == "placeholder":
        return PlaceholderClassifier()
    if settings.type == "keras":
        import numpy as np

        from maskwatch.models.keras_classifier import KerasMaskClassifier
        from maskwatch.runtime.logs import quiet_native_stderr

        with quiet_native_stderr():  # TF/TFLite print their set-up (the XNNPACK delegate) at first use
            classifier = KerasMaskClassifier.load(
                settings.path, runtime=settings.runtime, threads=settings.threads
            )
            classifier.predict([np.zeros((32, 32, 3), np.uint8)])  # warm-up: the first batch pays no set-up
        return classifier
    raise ValueError(f"unknown classifier type {settings.type!r}")
