"""FaceThreshold (masked faces kept from a lower detector score) and FaceAnalyzer on small stubs."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.config.settings import DetectorSettings
from maskwatch.core.faces import Faces
from maskwatch.core.labels import CLASSES
from maskwatch.models.analysis import FaceAnalyzer, FaceThreshold
from maskwatch.models.detectors.registry import get
from maskwatch.runtime.model_factory import face_threshold

MASKED, BARE, INCORRECT = [0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.3, 0.2, 0.5]


def test_masked_faces_are_kept_from_the_lower_score_and_others_are_not():
    rule = FaceThreshold(confidence=0.9, masked_confidence=0.6)
    scores = np.array([0.95, 0.7, 0.7, 0.7, 0.5], np.float32)
    probs = np.array([BARE, MASKED, BARE, INCORRECT, MASKED], np.float32)
    assert rule.keep(scores, probs, CLASSES).tolist() == [True, True, False, False, False]
    assert rule.floor == 0.6 and str(rule) == "0.90 (masked faces 0.60)"


@pytest.mark.parametrize("masked", [None, 0.9, 0.95])
def test_without_a_lower_masked_threshold_one_score_rule_applies(masked):
    rule = FaceThreshold(confidence=0.9, masked_confidence=masked)
    scores = np.array([0.95, 0.7], np.float32)
    probs = np.array([BARE, MASKED], np.float32)
    assert rule.keep(scores, probs, CLASSES).tolist() == [True, False]
    assert rule.floor == min(0.9, masked or 0.9) and str(rule) == "0.90"


def test_settings_defaults_come_per_backend_and_a_masked_default_above_the_confidence_does_nothing():
    masked = get("retinaface").masked_confidence
    rule = face_threshold(DetectorSettings(type="retinaface"))
    assert rule == FaceThreshold(get("retinaface").confidence, masked) and rule.floor == masked
    assert face_threshold(DetectorSettings(type="mtcnn")) == FaceThreshold(get("mtcnn").confidence, None)
    assert face_threshold(DetectorSettings(type="retinaface", confidence=0.8)) == FaceThreshold(0.8, masked)
    low = face_threshold(DetectorSettings(type="retinaface", confidence=0.5))
    assert low.floor == 0.5 and str(low) == "0.50"
    both = DetectorSettings(type="retinaface", confidence=0.9, masked_confidence=0.4)
    assert face_threshold(both) == FaceThreshold(0.9, 0.4)


class _StubDetector:
    """Two faces per frame at fixed boxes and scores."""

    name = "stub-detector"

    def detect(self, frames):
        return [
            Faces(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.95, 0.7], np.float32))
            for _ in frames
        ]


class _StubClassifier:
    """Calls every face masked; counts its calls and crops."""

    name, classes, placeholder = "stub-classifier", CLASSES, False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, crops):
        self.calls.append(len(crops))
        return np.tile(np.array(MASKED, np.float32), (len(crops), 1))


def test_analyzer_runs_one_classifier_call_per_batch_and_applies_the_threshold():
    classifier = _StubClassifier()
    frames = [np.zeros((40, 40, 3), np.uint8)] * 3
    strict = FaceAnalyzer(_StubDetector(), classifier, 0.1, FaceThreshold(0.9))
    out = strict(frames)
    assert classifier.calls == [6] and [len(a) for a in out] == [1, 1, 1]
    assert all(isinstance(a, Faces) and a.probs.shape == (1, 3) and a.labels == ["with_mask"] for a in out)
    lenient = FaceAnalyzer(_StubDetector(), classifier, 0.1, FaceThreshold(0.9, 0.6))
    assert [len(a) for a in lenient(frames)] == [2, 2, 2]
    everything = FaceAnalyzer(_StubDetector(), classifier, 0.1)
    assert [len(a) for a in everything(frames)] == [2, 2, 2]
    assert everything([]) == [] and set(everything.seconds) == {"detect", "classify"}
    assert everything.models == {"detector": "stub-detector", "classifier": "stub-classifier"}


@pytest.fixture(scope="module")
def retinaface_analyzer() -> FaceAnalyzer:
    """The shipped default detector (RetinaFace ONNX) with the stub classifier: real region search."""
    from maskwatch.runtime.model_factory import build_detector

    return FaceAnalyzer(build_detector(DetectorSettings(type="retinaface")), _StubClassifier(), 0.1)


def _scene(face_px: float, centre: tuple[float, float]) -> np.ndarray:
    from tests.support.media import background, face_photo, paste_face

    frame = background(1280, 720, seed=3)
    photo = face_photo()
    paste_face(frame, photo, centre, face_px / photo.shape[1] * 2.2)
    return frame


def _best(faces: Faces, box: np.ndarray) -> tuple[float, float]:
    from maskwatch.core.faces import iou_matrix

    if not len(faces):
        return 0.0, 0.0
    ious = iou_matrix(box.reshape(1, 4), faces.boxes)[0]
    return float(ious.max()), float(faces.scores[int(ious.argmax())])


@pytest.mark.parametrize("offset", [(5, 13), (17, 29), (0, 0)])
def test_a_region_finds_a_small_face_as_the_whole_frame_does_wherever_the_region_starts(
    retinaface_analyzer, offset
):
    frame = _scene(40, (1000.5, 250.5))
    (whole,) = retinaface_analyzer.analyze([frame], [None])
    assert len(whole.faces) == 1, "the whole-frame pass finds the face"
    box, score = whole.faces.boxes[0], float(whole.faces.scores[0])
    x, y = 850 + offset[0], 100 + offset[1]  # off the anchor grid unless snapped to it
    (regional,) = retinaface_analyzer.analyze([frame], [[(x, y, x + 320, y + 320)]])
    iou, region_score = _best(regional.faces, box)
    assert iou > 0.9 and abs(region_score - score) < 0.02, (iou, region_score, score)


def test_a_face_larger_than_the_region_input_is_found_whole_not_in_tile_fragments(retinaface_analyzer):
    frame = _scene(300, (640, 380))
    (whole,) = retinaface_analyzer.analyze([frame], [None])
    box = whole.faces.boxes[0]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = 480  # a tracked face's region, larger than the 320 input: tiled, and searched whole
    region = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
    (regional,) = retinaface_analyzer.analyze([frame], [[region]])
    assert len(regional.faces) == 1 and _best(regional.faces, box)[0] > 0.8, regional.faces.boxes


def test_a_face_cut_by_a_regions_border_is_looked_at_again_and_found_whole(retinaface_analyzer):
    frame = _scene(150, (700, 400))
    (whole,) = retinaface_analyzer.analyze([frame], [None])
    box = whole.faces.boxes[0]
    cut = int(box[1] + 0.7 * (box[3] - box[1]))
    region = (int(box[0]) - 100, cut - 320, int(box[0]) + 220, cut)  # ends across the face, above the chin
    (regional,) = retinaface_analyzer.analyze([frame], [[region]])
    assert len(regional.faces) == 1 and _best(regional.faces, box)[0] > 0.8, regional.faces.boxes
