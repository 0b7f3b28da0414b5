"""The region builder (pure): clustering, minimum size, borders, priority, coverage -> full pass."""

from __future__ import annotations

import numpy as np

from maskwatch.worker.regions import (
    MIN_MEMBER_AREA,
    cover,
    coverage,
    inside_any,
    merge_regions,
    plan_regions,
    square_region,
)

W, H = 1920, 1080


def _side(r):
    return r[2] - r[0]


def test_no_motion_none_and_unknown_motion_or_full_request_full():
    assert plan_regions(W, H, ()).mode == "none"
    assert plan_regions(W, H, None).mode == "full"
    assert plan_regions(W, H, [(10, 10, 20, 20)], full=True).mode == "full"
    assert plan_regions(300, 200, [(10, 10, 20, 20)]).mode == "full", "frame smaller than a region"


def test_small_motion_gets_one_square_of_the_minimum_size_around_it():
    plan = plan_regions(W, H, [(1000, 500, 1020, 530)])
    assert plan.mode == "regions" and len(plan.regions) == 1
    (r,) = plan.regions
    assert _side(r) == r[3] - r[1] == 320
    assert r[0] <= 1000 and r[2] >= 1020 and r[1] <= 500 and r[3] >= 530


def test_large_motion_grows_the_square_at_native_resolution():
    (r,) = plan_regions(W, H, [(800, 300, 1000, 500)]).regions  # 200 px grown x2 -> 400 px
    assert _side(r) == r[3] - r[1] == 400


def test_regions_near_borders_are_shifted_inside_not_cut():
    for box in [(0, 0, 10, 10), (W - 10, H - 10, W, H), (0, H - 5, 5, H)]:
        (r,) = plan_regions(W, H, [box]).regions
        assert _side(r) == 320 and r[3] - r[1] == 320
        assert r[0] >= 0 and r[2] <= W and r[1] >= 0 and r[3] <= H
    assert square_region((0, 0, 2000, 2000), 320, W, H) == (460, 0, 1540, H), "capped at the short side"


def test_nearby_motion_clusters_into_one_region_far_motion_into_two():
    near = plan_regions(W, H, [(500, 500, 520, 520), (560, 540, 580, 560)])
    assert len(near.regions) == 1
    far = plan_regions(W, H, [(100, 100, 120, 120), (1500, 800, 1520, 820)])
    assert len(far.regions) == 2


def test_a_tiny_box_does_not_stretch_a_large_cluster():
    big = (400, 300, 700, 600)  # grown x2: 600 px, region 600 px
    tiny = (1020, 380, 1030, 390)  # would stretch the region to ~700 px; its area is far under 5 %
    plan = plan_regions(W, H, [big, tiny])
    assert len(plan.regions) == 2
    sides = sorted(_side(r) for r in plan.regions)
    assert sides == [320, 600]
    assert MIN_MEMBER_AREA * 700 * 700 > 20 * 20


def test_tracked_faces_come_first_and_absorb_motion_inside_them():
    tracked = np.array([[1200, 400, 1300, 520]], np.float32)
    plan = plan_regions(W, H, [(1240, 440, 1260, 460), (100, 100, 120, 120)], tracked)
    assert len(plan.regions) == 2
    first = plan.regions[0]
    assert inside_any(tracked, [first]).all(), "the tracked face's region is first"
    assert inside_any(np.array([[100, 100, 120, 120]]), [plan.regions[1]]).all()
    only_tracked = plan_regions(W, H, (), tracked)
    assert only_tracked.mode == "regions" and len(only_tracked.regions) == 1


def test_overlapping_regions_merge():
    merged = merge_regions([(100, 100, 420, 420), (150, 150, 470, 470)], 320, W, H)
    assert len(merged) == 1 and _side(merged[0]) == 370
    apart = merge_regions([(100, 100, 420, 420), (400, 400, 720, 720)], 320, W, H)
    assert len(apart) == 2, "a sliver of overlap is not worth a bigger region"


def test_regions_covering_most_of_the_frame_become_a_full_pass():
    boxes = [(x, y, x + 150, y + 150) for x in range(0, W - 150, 330) for y in range(0, H - 150, 330)]
    assert plan_regions(W, H, boxes).mode == "full"
    assert plan_regions(W, H, boxes, full_coverage=1.0).mode == "regions"
    assert coverage([(0, 0, 960, 1080)], W, H) == 0.5
    assert coverage([(0, 0, 100, 100), (50, 50, 150, 150)], 1000, 1000) == (20000 - 2500) / 1e6


def test_large_regions_are_tiled_at_native_resolution():
    from maskwatch.models.analysis import TILE_OVERLAP, tile_region

    assert tile_region((10, 20, 330, 340), 320) == [(10, 20, 330, 340)]
    tiles = tile_region((0, 0, 700, 700), 320)
    assert all(t[2] - t[0] == 320 and t[3] - t[1] == 320 for t in tiles)
    xs = sorted({t[0] for t in tiles})
    assert xs[0] == 0 and xs[-1] + 320 == 700, "the tiles cover the region to its edges"
    assert all(b - a <= 320 - TILE_OVERLAP for a, b in zip(xs, xs[1:], strict=False)), "neighbours overlap"


def test_motion_longer_than_the_frames_short_side_is_covered_whole_not_cut_to_a_middle_square():
    wide = (100, 200, 1700, 500)  # 1600 px wide: no square of a 1080 px high frame holds it
    squares = cover(wide, 320, W, H)
    assert len(squares) == 2 and all(_side(r) == r[3] - r[1] == H for r in squares)
    assert squares[0][0] <= 100 and squares[-1][2] >= 1700, "both ends held"
    assert squares[0][2] > squares[1][0], "neighbours overlap"
    assert cover((0, 0, 2 * H, 10), 320, 3 * H, H)[1][0] < H, "an exact multiple still overlaps"
    assert cover((500, 500, 540, 540), 320, W, H) == [square_region((500, 500, 540, 540), 320, W, H)]
    plan = plan_regions(W, H, [(400, 300, 1200, 600)], full_coverage=1.0)  # grown x2: 1600 px wide
    assert plan.mode == "regions" and inside_any(np.array([[0, 150, 1600, 750]]), plan.regions).sum() == 0
    held = np.array([[0, 150, 800, 750], [800, 150, 1600, 750]])
    assert inside_any(held, plan.regions).all(), "every part of the motion is inside a region"
    assert plan_regions(W, H, [(400, 300, 1200, 600)]).mode == "full", "most of the frame: a full pass"


def test_regions_are_merged_only_when_one_square_holds_both():
    tracked = np.array([[40, 500, 100, 570]], np.float32)  # a face at the left edge
    plan = plan_regions(W, H, [(600, 100, 1100, 700)], tracked, full_coverage=1.0)
    assert len(plan.regions) >= 2 and inside_any(tracked, plan.regions).all(), "the face is not cut off"
    joined = merge_regions([(0, 0, 600, 600), (500, 0, 1100, 600)], 320, 1280, 720)
    assert len(joined) == 2, "a square around both would be 1100 px, over the frame's 720 px height"
