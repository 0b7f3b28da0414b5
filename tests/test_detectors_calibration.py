"""Box calibration: the fit recovers a known offset; the shipped files load and keep boxes in the frame."""

from __future__ import annotations

import numpy as np

from maskwatch.config.settings import DetectorSettings
from maskwatch.core.faces import Faces
from maskwatch.models.detectors.calibration import CALIBRATION_DIR, BoxCalibration, CalibratedDetector


def test_fit_recovers_a_known_edge_offset_and_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (200, 2))
    size = rng.uniform(20, 200, (200, 1))
    boxes = np.hstack([xy, xy + size * np.array([1.0, 1.3])]).astype(np.float32)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    # labelled boxes: top edge 20% lower, sides 5% inside
    targets = boxes + np.column_stack([0.05 * w, 0.2 * h, -0.05 * w, 0 * h])
    cal = BoxCalibration.fit("x", boxes, np.full(200, 0.9), None, targets, use_landmarks=False, ridge=1e-6)
    out = cal.apply(Faces(boxes, np.full(200, 0.9, np.float32)))
    assert np.abs(out.boxes - targets).max() < 0.5
    path = tmp_path / "x.json"
    path.write_text(cal.to_json())
    again = BoxCalibration.load(path)
    assert np.allclose(again.apply(Faces(boxes, np.full(200, 0.9, np.float32))).boxes, out.boxes, atol=0.05)


def test_shipped_calibrations_load_and_the_wrapper_clips_to_the_frame():
    shipped = sorted(CALIBRATION_DIR.glob("*.json"))
    assert shipped, "no calibration shipped"
    for path in shipped:
        cal = BoxCalibration.load(path)
        assert cal.weights.shape[1] == 4 and cal.pairs > 100

    class Edge:
        name = "edge"

        def detect(self, frames):
            return [
                Faces(
                    np.array([[0, 0, 64, 64]], np.float32),
                    np.array([0.9], np.float32),
                    landmarks=np.array([[[20, 25], [44, 25], [32, 38], [22, 50], [42, 50]]], np.float32),
                )
                for _ in frames
            ]

    cal = BoxCalibration.load(shipped[0])
    det = CalibratedDetector(Edge(), cal)
    (out,) = det.detect([np.zeros((64, 64, 3), np.uint8)])
    assert det.name == "edge+boxcal" and len(out) == 1
    assert (out.boxes >= 0).all() and (out.boxes <= 64).all()


def test_box_calibration_can_be_switched_off_in_settings():
    assert DetectorSettings().box_calibration is True
    assert DetectorSettings(box_calibration=False).box_calibration is False
