"""Motion detection of the ingest (``maskwatch.ingest.motion``) on synthetic frames, with real OpenCV, and
on the luma plane of frames decoded by PyAV from a video it encoded (libx264)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import redis
from pydantic import ValidationError

from maskwatch.config.cameras import CameraConfig, MotionConfig
from maskwatch.config.settings import ConfigError, load_settings
from maskwatch.core.contracts import EndOfStream, decode_frame_entry
from maskwatch.core.keys import Keys
from maskwatch.ingest.convert import FrameConverter, luma_plane, published_size
from maskwatch.ingest.motion import MotionDetector, MotionResult
from maskwatch.ingest.service import IngestService
from tests.support.pipeline import make_settings, running, wait_for

W, H = 1280, 720
PATCH = (400, 250, 560, 450)  # x1, y1, x2, y2 in pixels of the 720p frame


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A still, textured 720p BGR scene (blurred noise: edges everywhere, like a real picture)."""
    rng = np.random.default_rng(7)
    return cv2.GaussianBlur(rng.integers(30, 220, (H, W, 3), dtype=np.uint8), (0, 0), 5)


def _noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """Sensor-like noise of a few levels: must never count as motion."""
    noise = np.random.default_rng(seed).integers(-4, 5, frame.shape, dtype=np.int16)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _with_patch(scene: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    frame = scene.copy()
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = (235, 235, 235)
    cv2.rectangle(frame, (x1 + 20, y1 + 20), (x2 - 20, y2 - 20), (20, 20, 20), 6)
    return _noisy(frame, seed)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _union(boxes: tuple[tuple[int, int, int, int], ...]) -> tuple[int, int, int, int]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _warm(detector: MotionDetector, scene: np.ndarray, frames: int = 5) -> None:
    first = detector.detect(_noisy(scene, 100))
    assert first == MotionResult((), 0.0, True)  # the first frame only starts the background
    for i in range(frames - 1):
        assert detector.detect(_noisy(scene, 101 + i)).boxes == ()


def _assert_valid_boxes(result: MotionResult, width: int = W, height: int = H) -> None:
    for box in result.boxes:
        assert all(isinstance(v, int) for v in box)
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_still_scene_has_no_boxes_after_the_first_frame(scene):
    detector = MotionDetector(MotionConfig())
    results = [detector.detect(_noisy(scene, i)) for i in range(30)]
    assert results[0].calibrating and results[0].boxes == ()
    assert all(r.boxes == () and not r.calibrating and r.kind == "still" for r in results[1:])
    assert max(r.changed for r in results[1:]) < 0.01


def test_a_patch_that_appears_gets_a_box_covering_it(scene):
    detector = MotionDetector(MotionConfig())
    _warm(detector, scene)
    result = detector.detect(_with_patch(scene, PATCH))
    assert not result.calibrating and result.kind == "motion"
    _assert_valid_boxes(result)
    box = _union(result.boxes)
    assert _iou(box, PATCH) > 0.6 and _contains(box, PATCH)  # a margin of blur and dilation, no more
    assert 0.005 < result.changed < 0.2


def test_a_moving_patch_is_followed(scene):
    detector = MotionDetector(MotionConfig())
    _warm(detector, scene)
    for step in range(8):
        dx = 60 * step
        box = (PATCH[0] + dx, PATCH[1], PATCH[2] + dx, PATCH[3])
        result = detector.detect(_with_patch(scene, box, seed=step))
        _assert_valid_boxes(result)
        assert result.boxes, f"step {step}: no motion"
        best = max(_iou(b, box) for b in result.boxes)
        assert best > 0.6, f"step {step}: best IoU {best:.2f} with {result.boxes}"


def test_motion_at_the_frame_edge_is_clipped_to_the_frame(scene):
    detector = MotionDetector(MotionConfig())
    _warm(detector, scene)
    edge = (W - 150, H - 120, W, H)
    result = detector.detect(_with_patch(scene, edge))
    _assert_valid_boxes(result)
    assert _iou(_union(result.boxes), edge) > 0.6 and _union(result.boxes)[2:] == (W, H)


def test_a_global_brightness_jump_recalibrates_then_motion_is_found_again(scene):
    detector = MotionDetector(MotionConfig())
    _warm(detector, scene)
    bright = cv2.add(scene, np.full_like(scene, 90))  # lights on / IR off: the whole picture changes
    jump = detector.detect(_noisy(bright, 1))
    assert jump.calibrating and jump.boxes == () and jump.changed > 0.8 and jump.kind == "calibrating"
    settled = detector.detect(_noisy(bright, 2))  # the change settled: compared with the new background
    assert not settled.calibrating and settled.boxes == ()
    moved = detector.detect(_with_patch(bright, PATCH, seed=3))
    assert not moved.calibrating and _iou(_union(moved.boxes), PATCH) > 0.6


def test_a_single_flash_costs_two_calibrating_frames(scene):
    detector = MotionDetector(MotionConfig())
    _warm(detector, scene)
    flash = cv2.add(scene, np.full_like(scene, 120))
    kinds = [detector.detect(f).kind for f in (_noisy(flash, 1), _noisy(scene, 2), _noisy(scene, 3))]
    assert kinds == ["calibrating", "calibrating", "still"]


def test_the_lightning_threshold_is_the_changed_fraction(scene):
    detector = MotionDetector(MotionConfig(lightning_threshold=0.2))
    _warm(detector, scene)
    half = (0, 0, W // 2, H)  # half the frame changes: motion for 0.8, recalibration for 0.2
    result = detector.detect(_with_patch(scene, half))
    assert result.calibrating and result.boxes == () and 0.2 < result.changed < 0.8


def test_the_mask_hides_motion_inside_it(scene):
    left_half = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    detector = MotionDetector(MotionConfig(mask=[left_half]))
    _warm(detector, scene)
    inside = detector.detect(_with_patch(scene, PATCH))  # the patch lies in the left half
    assert inside.boxes == () and inside.changed == 0.0 and not inside.calibrating
    outside_box = (800, 250, 960, 450)
    outside = detector.detect(_with_patch(scene, outside_box, seed=2))
    assert outside.boxes and _iou(_union(outside.boxes), outside_box) > 0.6
    assert all(b[2] > W // 2 for b in outside.boxes)


def test_the_lightning_guard_counts_only_unmasked_pixels(scene):
    most = [(0.0, 0.0), (0.9, 0.0), (0.9, 1.0), (0.0, 1.0)]
    detector = MotionDetector(MotionConfig(mask=[most]))
    _warm(detector, scene)
    strip = (int(W * 0.9), 0, W, H)  # the whole unmasked strip changes
    assert detector.detect(_with_patch(scene, strip)).calibrating


def test_contour_area_drops_small_blobs(scene):
    small = (600, 300, 616, 316)  # 16 px: about 2x2 pixels of the 100-px-high motion image
    sensitive = MotionDetector(MotionConfig(contour_area=1))
    coarse = MotionDetector(MotionConfig(contour_area=200))
    for detector in (sensitive, coarse):
        _warm(detector, scene)
    frame = scene.copy()
    frame[small[1] : small[3], small[0] : small[2]] = 255
    frame[small[1] : small[3], small[0] - 16 : small[0]] = 0
    assert sensitive.detect(frame).boxes
    assert coarse.detect(frame).boxes == ()


def test_luma_input_small_frames_and_size_changes(scene):
    detector = MotionDetector(MotionConfig(frame_height=100))
    gray = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    assert detector.detect(gray).calibrating
    assert detector.detect(gray).boxes == ()
    small = cv2.resize(scene, (160, 90))  # lower than frame_height: used as it is, never enlarged
    assert detector.detect(small).calibrating  # a new frame size restarts the background
    assert detector.detect(small).boxes == ()
    moved = small.copy()
    moved[30:60, 50:80] = 255
    result = detector.detect(moved)
    _assert_valid_boxes(result, 160, 90)
    assert _iou(_union(result.boxes), (50, 30, 80, 60)) > 0.5


def test_reset_starts_the_background_again(scene):
    detector = MotionDetector.from_settings()
    _warm(detector, scene)
    detector.reset()
    assert detector.detect(_with_patch(scene, PATCH)).calibrating  # new background: no stale boxes


def test_motion_config_defaults_and_camera_keys():
    cam = CameraConfig(id="c", url="a.mp4")
    assert cam.motion == MotionConfig()
    assert cam.full_frame_interval_s == 2.0
    m = cam.motion
    assert (m.enabled, m.threshold, m.contour_area, m.frame_height) == (True, 30, 10, 100)
    assert (m.frame_alpha, m.lightning_threshold, m.mask) == (0.01, 0.8, [])
    for name, info in MotionConfig.model_fields.items():
        assert info.description, name
    assert CameraConfig.model_fields["full_frame_interval_s"].description


@pytest.mark.parametrize(
    ("motion", "message"),
    [
        ({"threshold": 0}, "greater than or equal to 1"),
        ({"threshold": 300}, "less than or equal to 254"),
        ({"contour_area": 0}, "greater than or equal to 1"),
        ({"frame_height": 10}, "greater than or equal to 32"),
        ({"frame_alpha": 0}, "greater than 0"),
        ({"lightning_threshold": 1.5}, "less than or equal to 1"),
        ({"sensitivity": 3}, "Extra inputs are not permitted"),
        ({"mask": [[[0, 0], [1, 0]]]}, "motion mask polygon 0: a zone needs at least 3 points"),
        ({"mask": [[[0, 0], [2, 0], [0, 1]]]}, "motion mask polygon 0: point 1 (2.0, 0.0) is outside"),
        (
            {"mask": [[[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 1], [1, 0], [0, 1]]]},
            "motion mask polygon 1: the zone crosses itself",
        ),
    ],
)
def test_motion_config_is_validated(motion, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CameraConfig(id="c", url="a.mp4", motion=motion)


def test_bad_motion_settings_name_the_camera_and_key():
    with pytest.raises(ConfigError, match=r"cameras\.0\.motion\.mask"):
        load_settings(None, cameras=[{"id": "c", "url": "a.mp4", "motion": {"mask": [[[0, 0]]]}}])
    with pytest.raises(ConfigError, match=r"cameras\.0\.full_frame_interval_s"):
        load_settings(None, cameras=[{"id": "c", "url": "a.mp4", "full_frame_interval_s": -1}])
    ok = load_settings(None, cameras=[{"id": "c", "url": "a.mp4", "motion": {"enabled": False}}])
    assert ok.cameras[0].motion.enabled is False


# --- the luma plane of decoded frames, boxes in the published (downscaled) frame -------------------------

VIDEO_W, VIDEO_H = 1920, 1080
STILL_FRAMES = 4  # frames before the patch appears
VIDEO_FRAMES = 12


def _patch_at(i: int) -> tuple[int, int, int, int] | None:
    """The moving patch of frame ``i`` in pixels of the 1080p video (None before it appears)."""
    if i < STILL_FRAMES:
        return None
    x = 500 + 90 * (i - STILL_FRAMES)
    return (x, 300, x + 240, 660)


@pytest.fixture(scope="module")
def patch_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1080p H.264 (yuv420p) video encoded with PyAV: a still textured scene, then a bright patch that
    moves right by 90 pixels a frame."""
    rng = np.random.default_rng(11)
    scene = cv2.GaussianBlur(rng.integers(30, 220, (VIDEO_H, VIDEO_W, 3), dtype=np.uint8), (0, 0), 5)
    path = tmp_path_factory.mktemp("motion-video") / "patch_1080p.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = VIDEO_W, VIDEO_H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(VIDEO_FRAMES):
            box = _patch_at(i)
            frame = _with_patch(scene, box, seed=i) if box else _noisy(scene, i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _scaled(box: tuple[int, int, int, int], sx: float, sy: float) -> tuple[int, int, int, int]:
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def _covers(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int], slack: int) -> bool:
    return _contains((outer[0] - slack, outer[1] - slack, outer[2] + slack, outer[3] + slack), inner)


@pytest.mark.parametrize("max_width", [960, 1280, 1001])
def test_motion_on_the_luma_plane_gives_boxes_in_the_published_frame(patch_video, max_width):
    out_w, out_h = published_size(VIDEO_W, VIDEO_H, max_width)
    sx, sy = out_w / VIDEO_W, out_h / VIDEO_H
    on_luma, on_bgr = MotionDetector(MotionConfig()), MotionDetector(MotionConfig())
    converter = FrameConverter(max_width)
    with av.open(str(patch_video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            luma = luma_plane(frame)
            assert frame.format.name == "yuv420p" and luma is not None
            assert luma.shape == (VIDEO_H, VIDEO_W)  # the full-size plane, not the published size
            result = on_luma.detect(luma, out_size=(out_w, out_h))
            image = converter.bgr(frame)
            assert image.shape[:2] == (out_h, out_w)
            reference = on_bgr.detect(image)  # the published BGR image, as before
            assert result.calibrating == reference.calibrating and result.kind == reference.kind, i
            _assert_valid_boxes(result, out_w, out_h)
            box = _patch_at(i)
            if box is None:
                assert result.boxes == (), i
                continue
            patch = _scaled(box, sx, sy)
            found = _union(result.boxes)
            assert _covers(found, patch, slack=round(4 * sx)), (i, found, patch)
            assert _iou(found, patch) > 0.7, (i, found, patch)
            assert _iou(found, _union(reference.boxes)) > 0.85, (i, found, reference.boxes)


def test_out_size_sizes_the_motion_image_like_the_published_frame():
    """``frame_height`` and ``contour_area`` mean pixels of the published picture's small image, whatever
    size the luma handed in: a picture published smaller than ``frame_height`` is never enlarged."""
    rng = np.random.default_rng(5)
    luma = cv2.GaussianBlur(rng.integers(30, 220, (1080, 1920), dtype=np.uint8), (0, 0), 5)
    detector = MotionDetector(MotionConfig(frame_height=100))
    assert detector.detect(luma, out_size=(128, 72)).calibrating
    assert detector._small == (128, 72)  # from the published 128x72, not the 1080p plane
    assert detector.detect(luma, out_size=(128, 72)).boxes == ()
    assert detector.detect(luma).calibrating  # another out size restarts the background
    assert detector._small == (178, 100)
    moved = luma.copy()
    moved[300:660, 500:740] = 250
    result = detector.detect(moved, out_size=(1280, 720))
    assert result.calibrating  # out size changed again
    result = detector.detect(moved, out_size=(1280, 720))
    assert result.boxes == ()  # the same frame: no change
    result = detector.detect(luma, out_size=(1280, 720))
    _assert_valid_boxes(result, 1280, 720)
    assert _iou(_union(result.boxes), (333, 200, 493, 440)) > 0.6


def test_the_ingest_publishes_luma_motion_in_downscaled_coordinates(redis_url, patch_video):
    cams = [{"id": "pm", "url": str(patch_video), "fps": 30, "max_width": 960}]
    s = make_settings(redis_url, cameras=cams, ingest={"file_max_backlog": 10_000})
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: ingest.finished, 60, what="patch video ingested")
    entries = redis.Redis.from_url(redis_url).xrange(Keys().frames("pm"))
    *frames, eos = [decode_frame_entry(f) for _, f in entries]
    assert isinstance(eos, EndOfStream) and len(frames) == VIDEO_FRAMES
    for i, msg in enumerate(frames):
        assert (msg.width, msg.height) == (960, 540)
        image = cv2.imdecode(np.frombuffer(msg.image, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (540, 960, 3)
        box = _patch_at(i)
        if box is None:
            assert msg.motion == (), i
            continue
        patch = _scaled(box, 0.5, 0.5)
        found = _union(msg.motion)
        assert _covers(found, patch, slack=2) and _iou(found, patch) > 0.7, (i, found, patch)
