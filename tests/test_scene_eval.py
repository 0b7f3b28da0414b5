"""Scene evaluation: matching and AP against a case computed by hand, then the CLI on real scenes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.cli.main import main
from maskwatch.models.evaluation.ap import average_precision, match
from maskwatch.models.evaluation.scenes import ImageResult, compute_metrics
from maskwatch.models.evaluation.voc import SceneImage
from tests.conftest import shared_path


def _scene(boxes, classes) -> SceneImage:
    return SceneImage(
        Path("x.jpg"), np.array(boxes, np.float32), tuple(classes), np.zeros(len(classes), bool)
    )


def _hand_case() -> list[ImageResult]:
    """Two images, 4 faces (one 10 px high, missed), 5 detections: see the test for the hand computation."""
    a = _scene([[0, 0, 40, 40], [80, 80, 120, 120]], ["with_mask", "without_mask"])
    b = _scene([[0, 0, 40, 40], [160, 160, 170, 170]], ["with_mask", "incorrect_mask"])
    # a: d1 on g1 (0.9), d2 on nothing (0.8), d3 on g2 (0.7, IoU 0.68); b: d5 on g3 (0.95), d4 duplicate of g3 (0.6)
    ra = ImageResult(
        a,
        np.array([[0, 0, 40, 40], [200, 200, 240, 240], [84, 84, 124, 124]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([[0.8, 0.2, 0], [0.05, 0.95, 0], [0.1, 0.9, 0]], np.float32),
    )
    rb = ImageResult(
        b,
        np.array([[4, 4, 44, 44], [0, 0, 40, 40]], np.float32),
        np.array([0.95, 0.6], np.float32),
        np.array([[0.9, 0.1, 0], [0.5, 0.5, 0]], np.float32),
    )
    return [ra, rb]


def test_face_ap_recall_and_precision_match_the_hand_computation():
    m = compute_metrics(_hand_case(), threshold=0.75).metrics
    # scores desc: .95 TP, .9 TP, .8 FP, .7 TP, .6 FP (duplicate); 4 faces
    # precision 1, 1, 2/3, 3/4, 3/5 at recall .25, .5, .5, .75, .75 -> AP = .25 + .25 + .25 * .75
    assert m["face_ap"] == pytest.approx(0.6875)
    assert m["face_recall"] == pytest.approx(2 / 4) and m["face_precision"] == pytest.approx(2 / 3)
    assert m["face_recall_small"] == 0.0 and m["face_recall_large"] == pytest.approx(2 / 3)
    assert m["small_faces"] == 1
    assert m["face_recall_by_class"] == {"with_mask": 1.0, "without_mask": 0.0, "incorrect_mask": 0.0}


def test_masked_threshold_keeps_lower_scoring_faces_classified_masked_at_the_operating_point():
    m = compute_metrics(_hand_case(), threshold=0.75, masked_threshold=0.55).metrics
    # extra: b's 0.6 duplicate (P(with_mask) 0.5) is kept and is an FP; a's 0.7 face is bare, still dropped
    assert m["face_recall"] == pytest.approx(2 / 4) and m["face_precision"] == pytest.approx(2 / 4)
    assert m["masked_threshold"] == 0.55 and m["face_ap"] == pytest.approx(0.6875)  # AP ranks raw scores
    m = compute_metrics(_hand_case(), threshold=0.75, masked_threshold=0.65).metrics
    assert m["face_precision"] == pytest.approx(2 / 3)


def test_per_class_ap_and_map_use_top_class_and_detector_times_class_score():
    m = compute_metrics(_hand_case(), threshold=0.75).metrics
    # with_mask: .855 TP, .72 TP, .30 FP (duplicate) -> 1.0
    # without_mask: .76 FP, .63 TP -> precision 1/2 at recall 1 -> 0.5; incorrect_mask: nothing found -> 0
    assert m["ap"] == pytest.approx({"with_mask": 1.0, "without_mask": 0.5, "incorrect_mask": 0.0})
    assert m["map"] == pytest.approx(0.75)
    assert 0.0 <= m["map_binary"] <= 1.0


def test_average_precision_edge_cases_and_ignored_boxes():
    assert average_precision(np.array([0.9]), np.array([True]), 1).ap == pytest.approx(1.0)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3).ap == 0.0
    assert np.isnan(average_precision(np.array([0.5]), np.array([False]), 0).ap)
    # a detection on an ignored box is neither TP nor FP; an unmatched one is FP
    m = match(
        np.array([[0, 0, 10, 10], [50, 50, 60, 60]]),
        np.array([0.9, 0.8]),
        np.array([[0, 0, 10, 10]]),
        np.array([True]),
    )
    assert m.ignored.tolist() == [True, False] and m.tp.tolist() == [False, False]


def test_incorrect_mask_faces_are_ignored_for_the_map_classes():
    scene = _scene([[0, 0, 40, 40]], ["incorrect_mask"])
    r = ImageResult(
        scene,
        np.array([[0, 0, 40, 40]], np.float32),
        np.array([0.9], np.float32),
        np.array([[0.9, 0.05, 0.05]], np.float32),
    )
    m = compute_metrics([r, _hand_case()[0]], threshold=0.5).metrics
    assert m["ap"]["with_mask"] == pytest.approx(1.0)  # the with_mask guess on an incorrect face is not an FP
    assert m["ap"]["incorrect_mask"] == 0.0


def test_evaluate_scenes_cli_writes_metrics_and_report_pictures(tmp_path, capsys):
    scenes = shared_path("data", "scenes")
    weights = shared_path("weights")
    if not (weights / "face_detection_yunet.onnx").is_file():
        pytest.skip("needs ../shared/weights/face_detection_yunet.onnx")
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("needs matplotlib (the dev extra) for --report-dir")
    out = tmp_path / "m.json"
    argv = [
        "evaluate",
        "scenes",
        str(scenes),
        "--split",
        "test",
        "--limit",
        "12",
        "--detector",
        "yunet",
        "--weights-dir",
        str(weights),
        "--json",
        str(out),
        "--report-dir",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    m = json.loads(out.read_text())
    assert m["images"] == 12 and m["split"] == "test" and m["detector"].startswith("yunet")
    for key in (
        "face_ap",
        "face_recall",
        "face_precision",
        "face_recall_small",
        "face_recall_large",
        "map",
        "ms_per_image",
    ):
        assert isinstance(m[key], float), key
    assert set(m["ap"]) == {"with_mask", "without_mask", "incorrect_mask"}
    assert set(m["face_recall_by_class"]) == {"with_mask", "without_mask", "incorrect_mask"}
    assert (tmp_path / "r" / "pr_curves.png").stat().st_size > 0
    assert (tmp_path / "r" / "worst_misses.png").stat().st_size > 0


def test_evaluate_scenes_on_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "scenes", str(tmp_path / "nope"), "--detector", "yunet"]) == 2
    assert "does not exist" in capsys.readouterr().err
