"""Zone polygons: validation and point-in-polygon tests.

A zone is a polygon in **normalized** frame coordinates: ``(x, y)`` with ``0 <= x, y <= 1``,
``(0, 0)`` the top-left corner and ``(1, 1)`` the bottom-right one, so a zone survives a change
of resolution (``max_width`` downscaling, a new camera). A face counts when the centre of its
box lies inside any zone of its camera; a camera without zones counts every face.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]


class ZoneError(ValueError):
    """A zone polygon that cannot be used; the message says which and why."""


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    return min(p[0], r[0]) <= q[0] <= max(p[0], r[0]) and min(p[1], r[1]) <= q[1] <= max(p[1], r[1])


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when segment p1-p2 and segment q1-q2 touch or cross."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and d1 != 0 and d2 != 0 and ((d3 > 0) != (d4 > 0)) and d3 != 0 and d4 != 0:
        return True
    return (
        (d1 == 0 and _on_segment(q1, p1, q2))
        or (d2 == 0 and _on_segment(q1, p2, q2))
        or (d3 == 0 and _on_segment(p1, q1, p2))
        or (d4 == 0 and _on_segment(p1, q2, p2))
    )


def polygon_area(points: Sequence[Point]) -> float:
    """Unsigned area (shoelace formula)."""
    n = len(points)
    s = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    return abs(s) / 2.0


def validate_polygon(points: Sequence[Sequence[float]]) -> list[Point]:
    """The polygon as a list of float pairs, or :class:`ZoneError` saying what is wrong.

    Rules: at least 3 points, each ``(x, y)`` normalized to ``[0, 1]``, a non-zero area and no
    self-intersection (edges may only meet their neighbours at shared corners).
    """
    pts: list[Point] = []
    for i, p in enumerate(points):
        if len(p) != 2:
            raise ZoneError(f"point {i} must be (x, y), got {len(p)} values")
        x, y = float(p[0]), float(p[1])
        if not (np.isfinite(x) and np.isfinite(y)) or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ZoneError(
                f"point {i} ({x}, {y}) is outside [0, 1]: zone points are normalized to the frame size"
            )
        pts.append((x, y))
    if len(pts) < 3:
        raise ZoneError(f"a zone needs at least 3 points, got {len(pts)}")
    n = len(pts)
    for i in range(n):
        a1, a2 = pts[i], pts[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # neighbouring edges share a corner
            if segments_intersect(a1, a2, pts[j], pts[(j + 1) % n]):
                raise ZoneError(f"the zone crosses itself: edge {i} meets edge {j}")
    if polygon_area(pts) < 1e-9:
        raise ZoneError("the zone has no area (its points are on one line or repeated)")
    return pts


def points_in_polygon(xs: np.ndarray, ys: np.ndarray, polygon: Sequence[Point]) -> np.ndarray:
    """Boolean array: which points ``(xs[i], ys[i])`` lie inside ``polygon`` (even-odd rule)."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    inside = np.zeros(xs.shape, dtype=bool)
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i - 1) % n]
        crosses = (y1 > ys) != (y2 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (x2 - x1) * (ys - y1) / (y2 - y1) + x1
        inside ^= crosses & (xs < x_at)
    return inside


def faces_in_zones(
    boxes: np.ndarray, width: int, height: int, zones: Sequence[Sequence[Point]]
) -> np.ndarray:
    """Boolean mask over ``boxes`` (N, 4 pixels): box centre inside any zone; all True without zones."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not zones:
        return np.ones(len(boxes), dtype=bool)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2.0 / max(width, 1)
    cy = (boxes[:, 1] + boxes[:, 3]) / 2.0 / max(height, 1)
    keep = np.zeros(len(boxes), dtype=bool)
    for zone in zones:
        keep |= points_in_polygon(cx, cy, zone)
    return keep
