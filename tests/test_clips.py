"""Clips, snapshots, blurring and retention on real frames of ../shared videos."""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from maskwatch.config.settings import Settings, load_settings
from maskwatch.core.faces import Faces
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.clips import ClipJob, ClipRecorder, encode_clip
from maskwatch.publisher.frames import BufferedFrame
from maskwatch.publisher.render import render_frame
from maskwatch.publisher.retention import Retention
from maskwatch.publisher.tracker import track_key
from tests.test_violations import BARE_VIDEO, sampled_jpegs

BOX_A = [500.0, 50.0, 820.0, 440.0]
BOX_B = [100.0, 300.0, 300.0, 560.0]


def frames(
    videos: Path, count: int, t0: float = 1000.0, step: float = 0.2, camera: str = "cam"
) -> list[BufferedFrame]:
    faces = Faces(
        [BOX_A, BOX_B],
        [0.98, 0.98],
        [[0.05, 0.9, 0.05], [0.8, 0.1, 0.1]],
        CLASSES,
        track_ids=[track_key(1, 0), track_key(1, 1)],
    )  # without_mask 0.9 as track "1-0", with_mask 0.8 as track "1-1"
    return [
        BufferedFrame(camera, seq, t0 + seq * step, faces, jpeg=jpeg)
        for seq, (jpeg, _, _) in enumerate(sampled_jpegs(videos / BARE_VIDEO)[:count])
    ]


def clips_under(root: Path, **clips: object) -> Settings:
    """Settings whose ``clips`` section writes under ``root``, with ``clips`` overriding its values."""
    return load_settings(None, clips={"dir": str(root), **clips})


def sharpness(img: np.ndarray, box: list[float]) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    inner = img[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20]  # inside the drawn box and label
    return float(cv2.Laplacian(cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_blur_others_hides_every_face_but_the_violators(videos):
    frame = frames(videos, 1)[0]
    plain = render_frame(frame, "none")
    others = render_frame(frame, "others", violators={"1-0"})
    everyone = render_frame(frame, "all")
    assert sharpness(others, BOX_A) == pytest.approx(sharpness(plain, BOX_A), rel=0.05)
    assert sharpness(others, BOX_B) < sharpness(plain, BOX_B) / 5
    assert sharpness(everyone, BOX_A) < sharpness(plain, BOX_A) / 5


def test_clip_timeline_follows_capture_times(videos, tmp_path):
    kept = [f for f in frames(videos, 12) if f.seq not in (4, 5, 6)]  # 0.6 s of frames lost
    job = ClipJob("id", "cam", tmp_path / "gap.mp4", kept, {"1-0"}, ["v"], fps=5.0, max_width=640)
    result = encode_clip(job)
    assert result.error is None and result.frames == 9
    assert result.duration_s == pytest.approx(12 / 5)
    with av.open(str(job.path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
        assert (stream.width, stream.height) == (640, 360)
    assert times[4] - times[3] == pytest.approx(0.8, abs=0.01), "the gap keeps its real length"
    assert not list(tmp_path.glob("*.part"))


def test_clip_closes_on_the_clock_when_the_camera_stops(videos, tmp_path):
    now = [5000.0]
    recorder = ClipRecorder.from_settings(
        clips_under(tmp_path, pre_roll_s=0.5, post_roll_s=1.0), clock=lambda: now[0]
    )
    for f in frames(videos, 6):
        recorder.add_frame(f)
    clip = recorder.start("cam", "violation-1", 5, 1001.0, "1-0")
    assert [f.seq for f in clip.frames] == [3, 4, 5], "pre-roll from the ring buffer"
    assert recorder.tick(now[0] + 2.9) == [] and "cam" in recorder.open
    results = recorder.tick(now[0] + 3.1)
    deadline = time.monotonic() + 60
    while not results and time.monotonic() < deadline:
        time.sleep(0.05)
        results = recorder.tick(now[0] + 3.2)
    assert len(results) == 1 and results[0].error is None and results[0].frames == 3
    assert results[0].path.is_file() and "cam" not in recorder.open


def test_writer_backlog_refuses_clips_with_an_error(videos, tmp_path):
    recorder = ClipRecorder.from_settings(
        clips_under(tmp_path, pre_roll_s=0.2, post_roll_s=0.0, max_pending=1)
    )
    recorder._pending = 1  # as if one clip were being encoded
    for f in frames(videos, 3):
        recorder.add_frame(f)
    recorder.start("cam", "v", 2, 1000.4, "1-0")
    (result,) = recorder.close(time.time() + 5)
    assert result.reason == "backlog" and "behind" in result.error


def test_full_disk_during_encoding_is_a_clear_clip_error(videos, tmp_path):
    """A real write failure (EFBIG from RLIMIT_FSIZE stands in for a full disk)."""
    job = ClipJob("id", "cam", tmp_path / "full.mp4", frames(videos, 10), {"1-0"}, ["v"], fps=5.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        result = encode_clip(job)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert result.reason == "write_error" and f"cannot write clip {job.path}" in result.error
    assert not job.path.exists() and not list(tmp_path.glob("*.part"))


def test_retention_deletes_expired_then_oldest_until_the_total_fits(tmp_path):
    now = 1_000_000.0
    cam = tmp_path / "cam"
    cam.mkdir()

    def media(name: str, age_s: float, size: int) -> Path:
        path = cam / name
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age_s, now - age_s))
        return path

    expired = media("expired.mp4", 10 * 86_400, 100)
    oldest = media("old.jpg", 3000, 400)
    protected = media("protected.mp4", 2500, 400)
    newer = media("newer.mp4", 2000, 400)
    newest = media("newest.jpg", 1000, 400)
    other = media("notes.txt", 10 * 86_400, 10)
    part = media("writing.mp4.part", 10 * 86_400, 100)
    report = Retention(tmp_path, max_age_s=86_400, max_total_bytes=1000, clock=lambda: now).sweep(
        protect={protected}
    )
    assert [(p.name, why) for p, why in report.deleted] == [
        ("expired.mp4", "age"),
        ("old.jpg", "size"),
        ("newer.mp4", "size"),
    ]
    assert report.total_bytes == 900 and report.freed_bytes == 900
    assert not expired.exists() and not oldest.exists() and not newer.exists()
    assert protected.exists() and newest.exists() and other.exists() and part.exists()
