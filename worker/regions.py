"""Where to look in a frame: square, native-resolution regions around motion and tracked faces (pure).

Detecting a whole 1080p frame costs the same whether one face moved or none; a few regions around
what moved (and around the faces the camera already tracks) cost a fraction of it and, searched at
native resolution, find small faces better than a shrunk full frame (DESIGN.md "Cost per camera").

:func:`plan_regions` decides, per frame, one of

- ``full``: search the whole frame (asked for, motion unknown, a frame smaller than a region, or
  regions that would cover most of it anyway);
- ``regions``: search these squares (each at least ``size`` pixels a side, inside the frame);
- ``none``: nothing moved and no tracked face needs a look: no detector call.

Regions: tracked faces' boxes grown ×1.35 come first (they have priority: a motion box already inside
one adds nothing), then clusters of motion boxes grown ×2. A motion box joins a cluster while the
cluster's region stays at the minimum size, or when every member stays at least
:data:`MIN_MEMBER_AREA` of the grown region's area (a tiny box does not stretch a region over half the
frame). Regions overlapping by more than :data:`MERGE_OVERLAP` of the smaller one are merged when one
square can hold both. A region never cuts what it was made for: a box longer than the frame's short
side (a square's largest side) is covered by several squares along its long side (:func:`cover`), so
motion over most of the frame becomes a full pass rather than a square in its middle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Box = tuple[int, int, int, int]
Mode = Literal["full", "regions", "none"]

MOTION_GROWTH = 2.0
"""Motion boxes are grown by this factor about their centre (a moving head needs its surroundings)."""
TRACKED_GROWTH = 1.35
"""Tracked faces' boxes are grown by this factor (room for the face to have moved since)."""
MIN_MEMBER_AREA = 0.05
"""A cluster grown past the minimum size refuses a member under this share of its region's area."""
MERGE_OVERLAP = 0.25
"""Two regions are merged when they overlap by more than this share of the smaller one's area."""


@dataclass(frozen=True)
class RegionPlan:
    """How one frame is searched: ``mode`` and, for ``regions``, the squares (frame pixels ``x1 y1 x2 y2``)."""

    mode: Mode
    regions: tuple[Box, ...] = ()


FULL = RegionPlan("full")
NONE = RegionPlan("none")


def plan_regions(
    width: int,
    height: int,
    motion: Sequence[Sequence[int]] | None,
    tracked: np.ndarray | Sequence[Sequence[float]] = (),
    *,
    size: int = 320,
    full_coverage: float = 0.6,
    full: bool = False,
) -> RegionPlan:
    """The plan of a ``width`` × ``height`` frame given its ``motion`` boxes (None: not computed) and the
    boxes of the ``tracked`` faces to look at again; ``full``: a full pass was asked for."""
    if full or motion is None or min(width, height) < size:
        return FULL
    tracked_boxes = np.asarray(tracked, np.float64).reshape(-1, 4)
    if not len(motion) and not len(tracked_boxes):
        return NONE
    frame = np.array([width, height, width, height], np.float64)
    regions = [
        r for b in tracked_boxes for r in cover(_grow(b, TRACKED_GROWTH).clip(0, frame), size, width, height)
    ]
    grown = [_grow(np.asarray(b, np.float64), MOTION_GROWTH).clip(0, frame) for b in motion]
    fresh = [b for b in grown if not any(_inside(b, r) for r in regions)]
    for members in cluster_boxes(fresh, size, width, height):
        regions.extend(cover(_union(members), size, width, height))
    regions = merge_regions(regions, size, width, height)
    if coverage(regions, width, height) > full_coverage:
        return FULL
    return RegionPlan("regions", tuple(regions))


def square_region(box: Sequence[float] | np.ndarray, size: int, width: int, height: int) -> Box:
    """The square of side max(``size``, the box's long side) centred on ``box``, shifted (not cut) to lie
    inside the frame; its side is capped at the frame's short side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(min(max(size, np.ceil(max(x2 - x1, y2 - y1))), width, height))
    left = int(round((x1 + x2) / 2 - side / 2))
    top = int(round((y1 + y2) / 2 - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return (left, top, left + side, top + side)


def cover(box: Sequence[float] | np.ndarray, size: int, width: int, height: int) -> list[Box]:
    """Squares that together hold ``box``: :func:`square_region` when it fits in one, else squares of the
    frame's short side spread evenly (overlapping) along the box's long side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = min(width, height)
    if max(x2 - x1, y2 - y1) <= side:
        return [square_region(box, size, width, height)]

    def centres(lo: float, hi: float) -> np.ndarray:
        if hi - lo <= side:
            return np.array([(lo + hi) / 2])
        n = int((hi - lo) // side) + 1  # neighbours always overlap
        return np.linspace(lo + side / 2, hi - side / 2, n)

    return [
        square_region((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), size, width, height)
        for cy in centres(y1, y2)
        for cx in centres(x1, x2)
    ]


def cluster_boxes(boxes: Sequence[np.ndarray], size: int, width: int, height: int) -> list[list[np.ndarray]]:
    """Greedy clusters of (grown) boxes, largest first (see the module docstring for the rule)."""
    order = sorted(boxes, key=lambda b: -_area(b))
    clusters: list[list[np.ndarray]] = []
    for box in order:
        for members in clusters:
            candidate = [*members, box]
            x1, y1, x2, y2 = square_region(_union(candidate), size, width, height)
            side = x2 - x1
            union = _union(candidate)
            if max(union[2] - union[0], union[3] - union[1]) > side:
                continue  # would not fit in one region of this frame
            if side <= size or all(_area(m) >= MIN_MEMBER_AREA * side * side for m in candidate):
                members.append(box)
                break
        else:
            clusters.append([box])
    return clusters


def merge_regions(regions: Sequence[Box], size: int, width: int, height: int) -> list[Box]:
    """Regions with every pair overlapping more than :data:`MERGE_OVERLAP` of the smaller merged into one
    square around both, when one square of the frame holds both (order kept: a merged region takes the
    place of the first)."""
    out = list(regions)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                joined = _union([np.asarray(a, np.float64), np.asarray(b, np.float64)])
                fits = max(joined[2] - joined[0], joined[3] - joined[1]) <= min(width, height)
                if fits and _overlap(a, b) > MERGE_OVERLAP * min(_area(a), _area(b)):
                    out[i] = square_region(joined, size, width, height)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return list(dict.fromkeys(out))  # identical squares (both clamped to a corner) once


def coverage(regions: Sequence[Box], width: int, height: int) -> float:
    """The share of the frame's area inside at least one region (exact, by coordinate compression)."""
    if not regions or width <= 0 or height <= 0:
        return 0.0
    xs = sorted({v for r in regions for v in (r[0], r[2])})
    ys = sorted({v for r in regions for v in (r[1], r[3])})
    covered = 0
    for xa, xb in zip(xs, xs[1:], strict=False):
        for ya, yb in zip(ys, ys[1:], strict=False):
            if any(r[0] <= xa and xb <= r[2] and r[1] <= ya and yb <= r[3] for r in regions):
                covered += (xb - xa) * (yb - ya)
    return covered / (width * height)


def inside_any(boxes: np.ndarray, regions: Sequence[Box]) -> np.ndarray:
    """(N,) True where a box lies entirely inside at least one region."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros(len(boxes), bool)
    for r in regions:
        out |= (boxes[:, 0] >= r[0]) & (boxes[:, 1] >= r[1]) & (boxes[:, 2] <= r[2]) & (boxes[:, 3] <= r[3])
    return out


def _grow(box: np.ndarray, factor: float) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float64)


def _union(boxes: Sequence[np.ndarray]) -> np.ndarray:
    arr = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.array([arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max()])


def _area(box: Sequence[float] | np.ndarray) -> float:
    return float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(w, 0) * max(h, 0))


def _inside(box: np.ndarray, region: Box) -> bool:
    return bool(box[0] >= region[0] and box[1] >= region[1] and box[2] <= region[2] and box[3] <= region[3])
