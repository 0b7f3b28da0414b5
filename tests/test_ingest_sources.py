"""Source formats and live-source failures: mkv/avi files, HLS over HTTP, RTSP over UDP, a stalled camera."""

from __future__ import annotations

import functools
import http.server
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import av
import pytest
import redis

from maskwatch.config.cameras import CameraConfig
from maskwatch.core.contracts import EndOfStream, decode_frame_entry
from maskwatch.core.keys import Keys
from maskwatch.ingest.camera import CameraState
from maskwatch.ingest.service import IngestService
from maskwatch.ingest.source import iter_frames
from maskwatch.runtime.private_redis import free_port
from tests.support.pipeline import make_settings, running, wait_for

KEYS = Keys()
BARE = "bare_then_masked_720p.mp4"


def _frames_on_stream(client: redis.Redis, camera: str) -> list:
    return [decode_frame_entry(f) for _, f in client.xrange(KEYS.frames(camera))]


def _transcode(src: Path, dst: Path, codec: str, max_frames: int = 60) -> Path:
    """Re-encode the first frames of ``src`` into ``dst`` (container from the suffix) with PyAV."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= max_frames:
                break
            for packet in stream.encode(frame.reformat(640, 360, "yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", "libx264"), (".avi", "mpeg4")])
def test_local_container_formats(redis_url, videos, tmp_path, suffix, codec):
    path = _transcode(videos / BARE, tmp_path / f"clip{suffix}", codec)
    s = make_settings(redis_url, cameras=[{"id": "f", "url": str(path), "fps": 10}])
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: ingest.finished, 60, what=f"{suffix} ingested")
    msgs = _frames_on_stream(redis.Redis.from_url(redis_url), "f")
    eos = msgs[-1]
    assert isinstance(eos, EndOfStream) and 19 <= eos.frames <= 22  # ~2 s of video kept at 10 fps
    assert [m.seq for m in msgs[:-1]] == list(range(eos.frames)) and msgs[0].width == 640


def _decoder_threads_used(caplog, camera: CameraConfig) -> tuple[str, int]:
    """Decode a few frames of ``camera`` with ``iter_frames``; the decoder's threading once opened (FFmpeg
    replaces an automatic count by the one it chose)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="maskwatch.ingest.source"):
        for i, _ in enumerate(iter_frames(camera)):
            if i == 3:
                break
    said = [r.getMessage() for r in caplog.records if "thread(s)" in r.getMessage()]
    assert len(said) == 1, said
    match = re.search(r"with (\d+) thread\(s\) \((\w+)\)", said[0])
    assert match, said[0]
    return match[2], int(match[1])


def test_decode_threads_are_applied_to_the_decoder(videos, tmp_path, caplog):
    path = str(_transcode(videos / BARE, tmp_path / "clip.mp4", "libx264", max_frames=10))
    live = CameraConfig(id="live", url=path, kind="live")
    assert _decoder_threads_used(caplog, live) == ("NONE", 1)  # a live source: one thread by default
    assert _decoder_threads_used(caplog, live.model_copy(update={"decode_threads": 2})) == ("AUTO", 2)
    kind, count = _decoder_threads_used(caplog, CameraConfig(id="file", url=path))
    assert kind == "AUTO" and count >= 1  # a file: FFmpeg's choice (CPUs + 1 on a multi-core machine)
    if len(os.sched_getaffinity(0)) > 1:
        assert count > 1
    assert _decoder_threads_used(caplog, CameraConfig(id="one", url=path, decode_threads=1)) == ("NONE", 1)


def test_hls_over_http(redis_url, videos, tmp_path):
    if not shutil.which("gst-launch-1.0"):
        pytest.skip("gst-launch-1.0 missing (apt-get install gstreamer1.0-tools) to cut HLS segments")
    hls = tmp_path / "hls"
    hls.mkdir()
    cut = subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "filesrc",
            f"location={videos / BARE}",
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "mpegtsmux",
            "!",
            "hlssink",
            f"location={hls}/seg%05d.ts",
            f"playlist-location={hls}/live.m3u8",
            "target-duration=2",
            "max-files=0",
            "playlist-length=0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if cut.returncode != 0 or not (hls / "live.m3u8").exists():
        pytest.skip(f"GStreamer hlssink unavailable: {cut.stderr[-300:]}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hls))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/live.m3u8"
        s = make_settings(redis_url, cameras=[{"id": "hls", "url": url, "fps": 5, "kind": "file"}])
        ingest = IngestService.from_settings(s)
        with running(ingest):
            wait_for(lambda: ingest.finished, 60, what="HLS playlist ingested")
    finally:
        httpd.shutdown()
    msgs = _frames_on_stream(redis.Redis.from_url(redis_url), "hls")
    assert msgs[-1].reason == "eof" and msgs[-1].frames >= 40 and msgs[0].width == 1280


def test_rtsp_over_udp(redis_url, rtsp_server):
    cams = [{"id": "udp", "url": rtsp_server.url, "fps": 5, "rtsp_transport": "udp", "open_timeout_s": 5}]
    s = make_settings(redis_url, cameras=cams)
    client = redis.Redis.from_url(redis_url)
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: client.xlen(KEYS.frames("udp")) >= 5, 60, what="5 frames over RTP/UDP")
    assert ingest.readers[0].state in (CameraState.STREAMING, CameraState.STOPPED)


def test_stalled_camera_is_detected_and_reopened(redis_url, rtsp_server):
    cams = [{"id": "stall", "url": rtsp_server.url, "fps": 5, "open_timeout_s": 2, "stall_timeout_s": 2}]
    s = make_settings(redis_url, cameras=cams)
    client = redis.Redis.from_url(redis_url)
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: client.xlen(KEYS.frames("stall")) >= 3, 60, what="frames before the stall")
        reader = ingest.readers[0]
        rtsp_server.proc.send_signal(signal.SIGSTOP)  # the connection stays open but no data comes
        try:
            wait_for(lambda: reader.state is not CameraState.STREAMING, 15, what="stall detected")
            assert "timed out" in reader.stats.last_error
        finally:
            rtsp_server.proc.send_signal(signal.SIGCONT)
        before = client.xlen(KEYS.frames("stall"))
        wait_for(lambda: client.xlen(KEYS.frames("stall")) >= before + 3, 60, what="frames after the stall")
        assert reader.stats.reconnects >= 1


# --- motion and full-frame passes (issue "Cost per camera") -------------------------------------------


def _full_pts(msgs: list) -> list[float]:
    return [m.pts for m in msgs if m.full]


def test_file_frames_carry_motion_and_a_full_pass_every_interval_of_media_time(redis_url, videos):
    interval, fps = 1.0, 5
    cams = [
        {
            "id": "mo",
            "url": str(videos / BARE),
            "fps": fps,
            "max_width": 640,
            "full_frame_interval_s": interval,
        }
    ]
    s = make_settings(redis_url, cameras=cams, ingest={"file_max_backlog": 10_000})
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: ingest.finished, 120, what="file ingested")
    *frames, eos = _frames_on_stream(redis.Redis.from_url(redis_url), "mo")
    assert isinstance(eos, EndOfStream) and len(frames) >= 20
    assert all(isinstance(m.motion, tuple) for m in frames)
    for m in frames:  # boxes are in pixels of the published (downscaled) frame
        assert (m.width, m.height) == (640, 360)
        assert all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360 for x1, y1, x2, y2 in m.motion)
    assert frames[0].full and frames[0].motion == ()  # the first frame only starts the background
    assert any(m.motion for m in frames), "no motion found in the whole clip"
    full = _full_pts(frames)
    gaps = [b - a for a, b in zip(full, full[1:], strict=False)]
    assert max(gaps) <= interval + 1 / fps + 1e-3  # never longer than the interval (one sample of slack)
    duration = frames[-1].pts - frames[0].pts
    reader = ingest.readers[0]
    calibrating = reader.stats.motion_kinds.get("calibrating", 0)
    assert duration / interval <= len(full) <= duration / interval + 1 + calibrating
    assert reader.stats.frames_full == len(full)
    assert sum(reader.stats.motion_kinds.values()) == len(frames)


def test_motion_off_and_every_frame_full(redis_url, videos, tmp_path):
    path = _transcode(videos / BARE, tmp_path / "clip.mp4", "libx264", max_frames=30)
    cams = [
        {"id": "off", "url": str(path), "fps": 10, "motion": {"enabled": False}, "full_frame_interval_s": 0}
    ]
    ingest = IngestService.from_settings(make_settings(redis_url, cameras=cams))
    with running(ingest):
        wait_for(lambda: ingest.finished, 60, what="file ingested")
    *frames, _ = _frames_on_stream(redis.Redis.from_url(redis_url), "off")
    assert frames and all(m.motion is None and m.full for m in frames)
    assert ingest.readers[0].stats.motion_kinds == {}


def test_every_reopen_starts_with_a_full_pass(redis_url, videos, tmp_path):
    """A replayed file reopens its source, like a reconnect: its first frame is full, with a new background."""
    path = _transcode(videos / BARE, tmp_path / "clip.mp4", "libx264", max_frames=30)  # 1 s
    cams = [{"id": "loop", "url": str(path), "fps": 10, "loop": True, "full_frame_interval_s": 3600}]
    s = make_settings(redis_url, cameras=cams, ingest={"file_max_backlog": 10_000})
    client = redis.Redis.from_url(redis_url)
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: client.xlen(KEYS.frames("loop")) >= 35, 60, what="three replays")
    frames = [m for m in _frames_on_stream(client, "loop") if not isinstance(m, EndOfStream)]
    starts = [i for i, m in enumerate(frames) if i == 0 or m.pts < frames[i - 1].pts]
    assert len(starts) >= 3
    assert all(frames[i].full and frames[i].motion == () for i in starts)  # fresh background each time
    reader = ingest.readers[0]
    assert reader.stats.frames_full <= len(starts) + reader.stats.motion_kinds.get("calibrating", 0)
