"""Zone polygons: validation messages, point-in-polygon, and the config error a user sees."""

from __future__ import annotations

import re

import numpy as np
import pytest

from maskwatch.cli.main import main
from maskwatch.core.zones import ZoneError, faces_in_zones, points_in_polygon, validate_polygon

L_SHAPE = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(0, 0), (1, 0)], "at least 3 points, got 2"),
        ([(0, 0), (1, 1), (1, 0), (0, 1)], "crosses itself: edge 0 meets edge 2"),
        ([(0, 0), (0.5, 0.5), (1, 1)], "no area"),
        ([(0, 0), (1.5, 0), (0, 1)], "point 1 (1.5, 0.0) is outside [0, 1]"),
        ([(0, 0), (1, 0, 3), (0, 1)], "point 1 must be (x, y)"),
    ],
)
def test_invalid_polygons_say_why(points, message) -> None:
    with pytest.raises(ZoneError, match=re.escape(message)):
        validate_polygon(points)


def test_valid_polygons_pass() -> None:
    assert validate_polygon(L_SHAPE) == L_SHAPE
    assert validate_polygon([[0, 0], [1, 0], [0, 1]]) == [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]


def test_points_in_a_concave_polygon() -> None:
    xs = np.array([0.25, 0.75, 0.75, 0.25])
    ys = np.array([0.25, 0.25, 0.75, 0.75])
    assert points_in_polygon(xs, ys, L_SHAPE).tolist() == [True, False, True, True]


def test_faces_count_by_box_centre_in_pixels() -> None:
    boxes = np.array([[0, 0, 100, 100], [1100, 600, 1280, 720]], dtype=float)  # centres (50, 50), (1190, 660)
    top_left = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]
    assert faces_in_zones(boxes, 1280, 720, top_left).tolist() == [True, False]
    assert faces_in_zones(boxes, 1280, 720, []).tolist() == [True, True]


def test_validate_config_names_the_camera_and_zone(tmp_path, capsys) -> None:
    config = tmp_path / "bad.yml"
    config.write_text(
        "cameras:\n"
        "  - id: lobby\n    url: a.mp4\n    zones: [[[0, 0], [1, 0], [0, 1]]]\n"
        "  - id: gate\n    url: b.mp4\n    zones:\n      - [[0, 0], [1, 0], [0, 1]]\n      - [[0, 0], [1, 1], [1, 0], [0, 1]]\n"
    )
    assert main(["validate-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "cameras.1.zones" in err and "camera 'gate' zone 1: the zone crosses itself" in err
