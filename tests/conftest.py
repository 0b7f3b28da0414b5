"""Shared fixtures: the ../shared data, real redis-server processes and a real RTSP server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maskwatch.runtime.private_redis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKWATCH_SHARED") or ROOT.parent / "shared").resolve()
"""The shared data folder: ``$MASKWATCH_SHARED``, else ``../shared`` beside the repository (one rule)."""
SYSTEM_PYTHON = "/usr/bin/python3"

_WHAT = {
    "data/crops": "face-crop classification set",
    "data/scenes": "labelled scene photos",
    "data/videos": "real CCTV videos",
    "weights": "face detector weight files",
}


def shared_path(*parts: str) -> Path:
    """A path under the shared folder, or skip the test naming the shared file or folder it needs."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        rel = "/".join(parts)
        what = next((w for k, w in _WHAT.items() if rel == k or rel.startswith(k + "/")), "shared data")
        name = f"../shared/{rel}" if rel else "../shared"
        pytest.skip(f"needs {name} ({what}); not found at {path} (set MASKWATCH_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``../shared/weights`` when present, else an empty folder: the default detector (RetinaFace, from the
    ``retinaface`` wheel) needs no weight file; tests of other backends skip naming the file they need."""
    path = SHARED / "weights"
    return path if path.is_dir() else tmp_path_factory.mktemp("no-shared-weights")


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``../shared/data/videos`` when present, else stand-ins written with PyAV under the same names and
    timelines from a real face photo in the matplotlib wheel (``tests/support/media.py``)."""
    path = SHARED / "data" / "videos"
    if path.is_dir():
        return path
    from tests.support.media import make_stand_in_videos

    return make_stand_in_videos(tmp_path_factory.mktemp("stand-in-videos"))


@pytest.fixture(scope="session")
def _session_redis() -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(_session_redis: RedisServer) -> str:
    """URL of a real, emptied redis-server shared by the session's tests."""
    redis.Redis.from_url(_session_redis.url).flushall()
    return _session_redis.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may kill and restart."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    yield server
    server.cleanup()


class RtspServer:
    """GStreamer's RTSP server in a child process (system Python with python3-gi)."""

    def __init__(self, video: Path, port: int | None = None) -> None:
        self.video, self.port = video, port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> RtspServer:
        script = Path(__file__).parent / "support" / "rtsp_server.py"
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), str(self.video), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            err = self.proc.stderr.read()
            raise RuntimeError(f"RTSP server did not start: {line} {err}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        time.sleep(0.2)


def _rtsp_available() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return "GStreamer RTSP server missing (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)"
    return None


@pytest.fixture
def rtsp_server(videos: Path) -> Iterator[RtspServer]:
    """A real RTSP server on 127.0.0.1 looping nothing: serving bare_then_masked_720p.mp4 once per client."""
    reason = _rtsp_available()
    if reason:
        pytest.skip(reason)
    server = RtspServer(videos / "bare_then_masked_720p.mp4").start()
    yield server
    server.stop()
