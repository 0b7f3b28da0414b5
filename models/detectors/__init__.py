"""Face detector backends, chosen by the ``type`` field of the detector settings."""

from maskwatch.models.detectors.base import FaceDetector, WeightsError

__all__ = ["FaceDetector", "WeightsError"]
