"""Source formats and live-source failures: mkv/avi files, HLS over HTTP, RTSP over UDP, a stalled camera."""

from __future__ import annotations

import functools
import http.server
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import av
import pytest
import redis

from maskwatch.core.contracts import EndOfStream, decode_frame_entry
from maskwatch.core.keys import Keys
from maskwatch.ingest.camera import CameraState
from maskwatch.ingest.service import IngestService
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
