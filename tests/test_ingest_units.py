"""Sampling to a target rate, reconnect backoff, frame conversion and decoder threads."""

from __future__ import annotations

import random

import av
import cv2
import numpy as np
import pytest

from maskwatch.config.cameras import CameraConfig
from maskwatch.config.settings import ConfigError, load_settings
from maskwatch.ingest.backoff import Backoff
from maskwatch.ingest.convert import FrameConverter, luma_plane, published_size
from maskwatch.ingest.sampling import FpsSampler, FullFrameSchedule
from maskwatch.ingest.source import decoder_threads
from tests.conftest import shared_path


def test_sampler_keeps_target_rate_from_30fps():
    s = FpsSampler(5)
    kept = [i for i in range(300) if s.keep(i / 30)]
    assert len(kept) == 50 and kept[:3] == [0, 6, 12]


def test_sampler_keeps_every_frame_when_source_is_slower():
    s = FpsSampler(10)
    assert all(s.keep(i / 4) for i in range(20))


def test_sampler_restarts_when_time_jumps_back():
    s = FpsSampler(1)
    assert s.keep(100.0) and not s.keep(100.5)
    assert s.keep(0.0)  # a reconnect starts timestamps over


def test_sampler_resumed_after_a_kept_frame_keeps_the_same_frames():
    times = [i / 30 for i in range(300)]
    whole = FpsSampler(5)
    kept = [t for t in times if whole.keep(t)]
    resumed = FpsSampler(5)
    resumed.resume_after(kept[9])
    assert [t for t in times if t > kept[9] and resumed.keep(t)] == kept[10:]


def test_backoff_grows_is_capped_and_jittered():
    b = Backoff(1.0, 8.0, random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[0] < 1.5 and max(delays[4:]) <= 8.0 and min(delays[4:]) >= 4.0
    b.reset()
    assert b.next_delay() < 1.5


def test_full_frame_schedule_by_clock_reopen_and_force():
    s = FullFrameSchedule(2.0)
    at = [t / 5 for t in range(25)]  # 5 fps for 5 s
    full = [t for t in at if s.due(t)]
    assert full == [0.0, 2.0, 4.0]
    assert s.due(4.2, force=True) and not s.due(6.0) and s.due(6.2)  # a forced pass restarts the interval
    assert s.due(1.0)  # the clock went back (a replayed file)
    s.reset()
    assert s.due(1.2)  # reopened: the first frame is full
    every = FullFrameSchedule(0)
    assert all(every.due(t) for t in at)


def test_a_still_camera_gets_its_full_pass_at_the_still_interval_and_motion_brings_the_short_one_back():
    s = FullFrameSchedule(2.0, 30.0)
    at = [t / 5 for t in range(5 * 70)]  # 5 fps for 70 s, nothing moves
    assert [t for t in at if s.due(t, moved=False)] == [0.0, 30.0, 60.0]
    assert s.due(70.0, moved=True), "motion, 10 s after the last full pass: due at once"
    s = FullFrameSchedule(2.0, 30.0)
    assert s.due(0.0, moved=False) and not s.due(1.0, moved=True) and not s.due(1.8, moved=False)
    assert s.due(2.0, moved=False), "motion since the last full pass: the 2 s interval"
    assert not s.due(4.0, moved=False), "still since then: the 30 s interval"
    motionless = FullFrameSchedule(2.0, 30.0)  # motion off (moved None): always the short interval
    assert [t for t in at[:25] if motionless.due(t)] == [0.0, 2.0, 4.0]
    assert FullFrameSchedule(5.0, 1.0).still_interval_s == 5.0, "never shorter than the interval"


def test_the_end_of_a_file_and_its_final_state_are_written_together(redis_url):
    """The worker passes an eof on only when the camera's record says finished: a state write lost to a
    brief outage (it used to be a separate, best-effort HSET) made a genuine eof look forged."""
    import redis as redis_lib

    from maskwatch.core.contracts import EndOfStream
    from maskwatch.core.keys import Keys
    from maskwatch.ingest.frame_sink import FrameSink

    client = redis_lib.Redis.from_url(redis_url)
    keys = Keys()
    client.hset(keys.camera_state("door"), mapping={"state": "streaming", "last_seq": "44"})
    FrameSink(client, keys, 300, 64, 0.1).end(EndOfStream("door", 44, 45), "finished")
    assert client.hget(keys.camera_state("door"), "state") == b"finished"
    ((_, fields),) = client.xrange(keys.frames("door"))
    assert fields[b"kind"] == b"eof" and fields[b"seq"] == b"44"


# --- frame conversion (ingest/convert.py) ---------------------------------------------------------------


def _old_publish(frame: av.VideoFrame, max_width: int | None) -> np.ndarray:
    """What the ingest published before one-pass conversion: BGR at full size, then cv2 INTER_AREA."""
    image = frame.to_ndarray(format="bgr24")
    h, w = image.shape[:2]
    if max_width and w > max_width:
        h, w = round(h * max_width / w), max_width
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module")
def frame_1080p() -> av.VideoFrame:
    """A real decoded 1080p frame (yuv420p) of the shared corridor video, a second in."""
    path = shared_path("data", "videos", "corridor_cctv_masked_1080p.mp4")
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 30:
                return frame
    raise AssertionError("the corridor video has fewer than 31 frames")


def test_published_size_rounds_like_before():
    assert published_size(1920, 1080, 1280) == (1280, 720)
    assert published_size(1920, 1080, None) == (1920, 1080)
    assert published_size(1280, 720, 1280) == (1280, 720)  # not wider: untouched
    assert published_size(640, 360, 1280) == (640, 360)  # never enlarged
    for w, h, mw in [(1920, 1080, 1279), (1920, 1080, 1001), (1280, 720, 641), (1921, 1081, 64)]:
        assert published_size(w, h, mw) == (mw, round(h * mw / w))
    assert published_size(7680, 50, 64) == (64, 1)  # rounds to 0: one row, not an empty image


@pytest.mark.parametrize("max_width", [1280, 1279, 1001, 640])
def test_one_pass_conversion_matches_the_old_cv2_path_on_a_real_1080p_frame(frame_1080p, max_width):
    old = _old_publish(frame_1080p, max_width)
    new = FrameConverter(max_width).bgr(frame_1080p)
    assert new.shape == old.shape and new.dtype == np.uint8  # odd heights (719, 563) too
    diff = np.abs(new.astype(np.int16) - old.astype(np.int16))
    assert diff.mean() < 2.0, diff.mean()  # about 0.3 at 1280 and 1 level of 255 at odd ratios
    assert np.percentile(diff, 99) <= 8
    ok, jpeg = cv2.imencode(".jpg", new, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok and cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == old.shape


def test_conversion_without_downscale_is_the_plain_bgr_frame(frame_1080p):
    for max_width in (None, 1920, 4096):
        image = FrameConverter(max_width).bgr(frame_1080p)
        assert np.array_equal(image, frame_1080p.to_ndarray(format="bgr24"))


def test_conversion_of_odd_sized_and_other_pixel_formats():
    rng = np.random.default_rng(3)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (361, 643, 3), dtype=np.uint8), (0, 0), 3)
    source = av.VideoFrame.from_ndarray(bgr, format="bgr24")
    for fmt in ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p", "rgb24", "yuyv422", "gray"):
        frame = source.reformat(format=fmt)
        image = FrameConverter(321).bgr(frame)
        assert image.shape == (_old_publish(frame, 321).shape), fmt
        assert image.shape == (180, 321, 3)  # round(361 * 321 / 643) = 180


def test_luma_plane_is_the_first_plane_without_padding():
    rng = np.random.default_rng(4)
    bgr = rng.integers(0, 255, (90, 170, 3), dtype=np.uint8)
    source = av.VideoFrame.from_ndarray(bgr, format="bgr24")
    for fmt in ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p", "gray"):
        frame = source.reformat(format=fmt)
        luma = luma_plane(frame)
        assert luma is not None and luma.shape == (90, 170) and luma.dtype == np.uint8, fmt
        assert frame.planes[0].line_size > 170  # padded rows: the padding is cut off
        full_range = source.reformat(format="gray").to_ndarray().astype(float)  # Y' of the picture
        expected = full_range if fmt in ("yuvj420p", "gray") else 16 + full_range * 219 / 255
        assert np.abs(luma - expected).max() <= 2, fmt
    for fmt in ("rgb24", "bgr24", "yuyv422", "yuv420p10le", "gbrp"):
        assert luma_plane(source.reformat(format=fmt)) is None, fmt


# --- decoder threads (cameras[].decode_threads) ---------------------------------------------------------


def test_decode_threads_defaults_live_single_file_automatic():
    assert decoder_threads(CameraConfig(id="f", url="a.mp4")) == ("AUTO", 0)
    assert decoder_threads(CameraConfig(id="l", url="rtsp://cam/1")) == ("NONE", 1)
    assert decoder_threads(CameraConfig(id="l", url="a.mp4", kind="live")) == ("NONE", 1)
    assert decoder_threads(CameraConfig(id="l", url="rtsp://cam/1", decode_threads=0)) == ("AUTO", 0)
    assert decoder_threads(CameraConfig(id="f", url="a.mp4", decode_threads=1)) == ("NONE", 1)
    assert decoder_threads(CameraConfig(id="f", url="a.mp4", decode_threads=4)) == ("AUTO", 4)
    assert CameraConfig.model_fields["decode_threads"].description


@pytest.mark.parametrize("threads", [-1, 65, "many", 1.5])
def test_bad_decode_threads_are_refused_naming_the_camera_and_key(threads):
    with pytest.raises(ConfigError, match=r"cameras\.1\.decode_threads") as err:
        load_settings(
            None,
            cameras=[
                {"id": "ok", "url": "a.mp4"},
                {"id": "door", "url": "b.mp4", "decode_threads": threads},
            ],
        )
    if isinstance(threads, int):
        assert "camera 'door': decode_threads must be" in str(err.value)
