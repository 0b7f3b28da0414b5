"""Test-time flip: mirrored detections map back onto the original frame and the two views merge."""

from __future__ import annotations

import numpy as np

from maskwatch.config.settings import DetectorSettings
from maskwatch.core.faces import Faces
from maskwatch.models.detectors.flip import FlipAugmentedDetector, mirror

FACE = np.array([[10, 20, 40, 60]], np.float32)
LANDMARKS = np.array([[[18, 30], [32, 30], [25, 40], [19, 50], [31, 52]]], np.float32)


class LeftHalfOnly:
    """Finds one fixed face, but only when it lies in the left half of the frame (a one-sided detector)."""

    name = "lefty"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def detect(self, frames):
        self.batches.append(len(frames))
        out = []
        for f in frames:
            ys, xs = np.nonzero(f[:, :, 0] > 0)
            if len(xs) and xs.mean() < f.shape[1] / 2:
                box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
                out.append(
                    Faces(box, np.array([0.9], np.float32), landmarks=LANDMARKS - FACE[0, :2] + box[0, :2])
                )
            else:
                out.append(Faces.empty())
        return out


def test_mirror_maps_boxes_and_landmarks_back_and_is_its_own_inverse():
    det = Faces(FACE, np.array([0.8], np.float32), landmarks=LANDMARKS)
    m = mirror(det, 100)
    assert np.allclose(m.boxes, [[60, 20, 90, 60]])
    # the left eye of the mirrored view is the right eye of the original: order is kept semantic
    assert np.allclose(m.landmarks[0, 0], [100 - 32, 30]) and np.allclose(m.landmarks[0, 3], [100 - 31, 52])
    back = mirror(m, 100)
    assert np.allclose(back.boxes, det.boxes) and np.allclose(back.landmarks, det.landmarks)


def test_flip_finds_a_face_only_the_mirrored_view_shows_and_merges_duplicates():
    inner = LeftHalfOnly()
    detector = FlipAugmentedDetector(inner, iou=0.4)
    right = np.zeros((80, 100, 3), np.uint8)
    right[20:60, 70:90] = 255  # the inner detector misses it directly, finds it mirrored
    centre = np.zeros((80, 100, 3), np.uint8)
    centre[20:60, 30:49] = 255  # found in the direct view only (mean x < 50)
    out_right, out_centre = detector.detect([right, centre])
    assert inner.batches == [4], "both views of both frames must go through the inner detector in one batch"
    assert detector.name == "lefty+flip"
    assert len(out_right) == 1 and np.allclose(out_right.boxes, [[70, 20, 90, 60]])
    assert out_right.landmarks is not None and out_right.landmarks[0, 0, 0] < out_right.landmarks[0, 1, 0]
    assert len(out_centre) == 1 and np.allclose(out_centre.boxes, [[30, 20, 49, 60]])
    assert detector.detect([]) == []


def test_flip_is_off_by_default_and_wraps_the_built_detector():
    from maskwatch.runtime.model_factory import build_detector

    assert DetectorSettings().test_time_flip is False
    detector = build_detector(DetectorSettings(type="mtcnn", test_time_flip=True))
    assert isinstance(detector, FlipAugmentedDetector) and detector.name.endswith("+boxcal+flip")
