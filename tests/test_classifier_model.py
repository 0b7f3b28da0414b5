"""The committed mask classifier: loads like the notebook's, batched predictions on real ../shared crops."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.core.labels import CLASSES
from maskwatch.models.classifier import DEFAULT_MODEL_PATH, MaskClassifier
from maskwatch.models.training.data import load_crops_folder, load_scene_crops
from maskwatch.models.training.splits import load_split
from tests.conftest import shared_path

CARD = DEFAULT_MODEL_PATH.with_suffix(".md")
METRICS = DEFAULT_MODEL_PATH.with_name("mask_classifier.metrics.json")


@pytest.fixture(scope="module")
def classifier():
    from maskwatch.models.keras_classifier import KerasMaskClassifier

    return KerasMaskClassifier.load()


def test_committed_model_is_small_and_described_by_its_card() -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size <= 10_000_000
    digest = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
    assert digest in CARD.read_text()
    assert json.loads(METRICS.read_text())["sha256"] == digest


def test_loads_with_plain_keras_like_the_notebook() -> None:
    import keras

    model = keras.models.load_model(DEFAULT_MODEL_PATH)
    assert model.output_shape == (None, len(CLASSES))


def test_is_the_configured_default(classifier) -> None:
    from maskwatch.config.settings import ClassifierSettings
    from maskwatch.runtime.model_factory import build_classifier

    assert ClassifierSettings().type == "keras"
    built = build_classifier(ClassifierSettings())
    assert isinstance(built, MaskClassifier) and not built.placeholder
    assert built.name == classifier.name and built.name.startswith("keras:mask_classifier:")


def test_predicts_held_out_shared_crops(classifier) -> None:
    crops_dir = shared_path("data", "crops")
    test = load_split("crops")["test"]
    pick = [n for n in test if n.startswith("with_mask/")][:8] + [
        n for n in test if n.startswith("without_mask/")
    ][:8]
    data = load_crops_folder(crops_dir, only=pick)
    probs = classifier.predict(data.crops)
    assert probs.shape == (16, 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1.0, atol=1e-4)
    assert (probs.argmax(1) == data.labels).mean() >= 0.9


def test_predicts_held_out_scene_faces_including_incorrect_masks(classifier) -> None:
    scenes_dir = shared_path("data", "scenes")
    data = load_scene_crops(scenes_dir, only=load_split("scenes")["test"][:40])
    probs = classifier.predict(data.crops)
    violation = probs[:, 1:].sum(1) > 0.5
    assert (violation == (data.labels > 0)).mean() >= 0.85


def test_one_batched_call_equals_one_by_one(classifier) -> None:
    crops_dir = shared_path("data", "crops")
    data = load_crops_folder(crops_dir, only=load_split("crops")["test"][:5])
    batched = classifier.predict(data.crops)
    single = np.concatenate([classifier.predict([c]) for c in data.crops])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_and_bad_input(classifier) -> None:
    assert classifier.predict([]).shape == (0, 3)
    with pytest.raises(ValueError, match="crop 1: expected a non-empty HxWx3 BGR uint8"):
        classifier.predict([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="float32"):
        classifier.predict([np.zeros((10, 10, 3), np.float32)])


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    from maskwatch.models.keras_classifier import KerasMaskClassifier

    with pytest.raises(FileNotFoundError, match="mask classifier model not found"):
        KerasMaskClassifier.load(tmp_path / "nope.keras")


def test_tflite_and_tensorflow_runtimes_agree_on_real_scene_faces(classifier) -> None:
    from maskwatch.models.keras_classifier import KerasMaskClassifier

    assert classifier.runtime == "tflite"  # auto on a machine where TensorFlow sees no GPU
    data = load_scene_crops(shared_path("data", "scenes"), only=load_split("scenes")["test"][:30])
    reference = KerasMaskClassifier(classifier.model, runtime="tensorflow")
    assert reference.runtime == "tensorflow"
    batch = data.crops[:17]
    np.testing.assert_allclose(classifier.predict(batch), reference.predict(batch), atol=1e-4)
    # the interpreter is resized per call: a smaller batch after a bigger one still matches
    np.testing.assert_allclose(classifier.predict(batch[:3]), reference.predict(batch[:3]), atol=1e-4)
    with pytest.raises(ValueError, match="runtime must be one of"):
        KerasMaskClassifier(classifier.model, runtime="onnx")


def test_auto_runtime_is_tensorflow_when_tensorflow_sees_a_gpu(classifier, monkeypatch) -> None:
    import tensorflow as tf

    from maskwatch.models.keras_classifier import KerasMaskClassifier

    real = tf.config.list_physical_devices
    # no GPU can exist here: pretend TensorFlow lists one, so `auto` keeps the GPU-capable runtime
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else real(kind),
    )
    assert KerasMaskClassifier(classifier.model).runtime == "tensorflow"
    assert KerasMaskClassifier(classifier.model, runtime="tflite").runtime == "tflite"
