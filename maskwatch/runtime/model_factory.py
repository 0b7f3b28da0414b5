"""Build the configured detector and classifier (the plugin registry)."""

from __future__ import annotations

import logging

from maskwatch.config.settings import ClassifierSettings, DetectorSettings
from maskwatch.models.analysis import FaceAnalyzer, FaceThreshold
from maskwatch.models.classifier import MaskClassifier, PlaceholderClassifier
from maskwatch.models.detectors.base import FaceDetector

log = logging.getLogger(__name__)

DEFAULT_CONFIDENCE: dict[str, float] = {
    "mtcnn": 0.88,
    "yunet": 0.80,
    "opencv-res10": 0.20,
    "blazeface": 0.45,
    "retinaface": 0.965,
}
"""Per-backend score thresholds when ``confidence`` is not set: the best face F1 on the ``train`` scenes,
with box calibration on and each backend's default passes (RetinaFace: small frames upscaled to 1024 px)
(``benchmarks/scene_table.py``, docs/detectors.md)."""

AUTO_ORDER = ("retinaface", "yunet", "mtcnn")
"""What ``type: auto`` picks: the first backend whose weights are installed."""

DEFAULT_MASKED_CONFIDENCE: dict[str, float] = {"retinaface": 0.77}
"""Per-backend thresholds for faces the classifier calls masked, when ``masked_confidence`` is not set:
the highest at which masked-face recall reaches bare-face recall on the ``train`` scenes
(``benchmarks/scene_table.py``, the ``+masked`` rows). Backends missing here use ``confidence`` alone:
YuNet's parity threshold (0.40) costs 14 points of precision on test, MTCNN reaches no parity."""


def face_threshold(settings: DetectorSettings) -> FaceThreshold:
    """The score rules that decide which detections are faces (settings, else the backend's tuned defaults)."""
    kind = resolve_detector_type(settings)
    conf = settings.confidence if settings.confidence is not None else DEFAULT_CONFIDENCE[kind]
    masked = settings.masked_confidence
    if masked is None:  # the tuned default; ignored when not below the confidence in use
        masked = DEFAULT_MASKED_CONFIDENCE.get(kind)
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
    """The backend ``settings.type`` means. ``auto``: the best installed one by end-to-end mAP on the
    held-out scenes (docs/detectors.md): RetinaFace (the ``retinaface`` wheel), else YuNet (verified
    weights in ``weights_dir``), else MTCNN (a runtime dependency)."""
    if settings.type != "auto":
        return settings.type
    from maskwatch.models.detectors.weights import weights_ready

    return next((kind for kind in AUTO_ORDER if weights_ready(kind, settings.weights_dir)), AUTO_ORDER[-1])


def build_detector(settings: DetectorSettings, confidence: float | None = None) -> FaceDetector:
    """The face detector named by ``settings.type``; ``confidence`` overrides the settings' threshold."""
    kind = resolve_detector_type(settings)
    conf = confidence if confidence is not None else settings.confidence
    conf = DEFAULT_CONFIDENCE[kind] if conf is None else conf
    if kind == "opencv-res10":
        from maskwatch.models.detectors.opencv_res10 import OpenCVRes10Detector

        detector: FaceDetector = OpenCVRes10Detector(
            settings.weights_dir, conf, settings.input_size, settings.nms_iou
        )
    elif kind == "yunet":
        from maskwatch.models.detectors.yunet import YuNetDetector

        detector = YuNetDetector(
            settings.weights_dir, conf, min(settings.nms_iou, 0.3), settings.upscale_to, settings.downscale_to
        )
    elif kind == "mtcnn":
        from maskwatch.models.detectors.mtcnn import MTCNNDetector

        detector = MTCNNDetector(conf, settings.nms_iou, settings.min_face_size, max_side=settings.max_side)
    elif kind == "blazeface":
        from maskwatch.models.detectors.blazeface import BlazeFaceDetector

        detector = BlazeFaceDetector(settings.blazeface_variant, conf, min(settings.nms_iou, 0.3))
    elif kind == "retinaface":
        from maskwatch.models.detectors.retinaface import RetinaFaceDetector

        detector = RetinaFaceDetector(
            conf, settings.nms_iou, settings.max_side, settings.retinaface_upscale_to
        )
    else:
        raise ValueError(f"unknown detector type {settings.type!r}")
    if settings.box_calibration:
        from maskwatch.models.detectors.calibration import BoxCalibration, CalibratedDetector

        calibration = BoxCalibration.for_backend(kind)
        if calibration is not None:
            detector = CalibratedDetector(detector, calibration)
    if settings.test_time_flip:
        from maskwatch.models.detectors.flip import FlipAugmentedDetector

        detector = FlipAugmentedDetector(detector, settings.nms_iou)
    if settings.type == "auto":
        detector.name = f"{detector.name} (auto)"
        log.info("detector type auto -> %s (run from score %.2f)", detector.name, conf)
    return detector


def build_classifier(settings: ClassifierSettings) -> MaskClassifier:
    """The mask classifier named by ``settings.type``."""
    if settings.type == "placeholder":
        return PlaceholderClassifier()
    if settings.type == "keras":
        from maskwatch.models.keras_classifier import KerasMaskClassifier

        return KerasMaskClassifier.load(settings.path, runtime=settings.runtime, threads=settings.threads)
    raise ValueError(f"unknown classifier type {settings.type!r}")
