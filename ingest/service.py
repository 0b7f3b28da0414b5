"""The ingest stage: one reader thread per camera, a heartbeat, and a summary on exit."""

from __future__ import annotations

import logging
import threading

import redis

from maskwatch.config.settings import CameraConfig, Settings
from maskwatch.core.keys import Keys
from maskwatch.ingest.backoff import Backoff
from maskwatch.ingest.camera import CameraReader, CameraState
from maskwatch.ingest.frame_sink import FrameSink
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.metrics_server import REDIS_ERRORS, UP, serve_metrics
from maskwatch.runtime.redis_conn import REDIS_DOWN, connect

log = logging.getLogger(__name__)
DONE_STATES = (CameraState.FINISHED, CameraState.FAILED)


class IngestService:
    """Serves several cameras from one process; each camera reads on its own thread."""

    stage = "ingest"

    def __init__(
        self, cameras: list[CameraConfig], sink: FrameSink, heartbeat: Heartbeat, settings: Settings
    ) -> None:
        if not cameras:
            raise ValueError(
                "ingest: no camera configured (add `cameras:` to the config file or use --source)"
            )
        self.cameras, self.sink, self.heartbeat, self.settings = cameras, sink, heartbeat, settings
        self.readers: list[CameraReader] = []

    @classmethod
    def from_settings(cls, settings: Settings, camera_ids: list[str] | None = None) -> IngestService:
        cameras = [c for c in settings.cameras if c.enabled and (not camera_ids or c.id in camera_ids)]
        missing = sorted(set(camera_ids or []) - {c.id for c in settings.cameras})
        if missing:
            raise ValueError(f"ingest: unknown camera id(s): {', '.join(missing)}")
        client = connect(settings)
        keys = Keys(settings.key_prefix)
        sink = FrameSink(client, keys, settings.ingest.stream_max_len, settings.ingest.file_max_backlog)
        hb = Heartbeat(client, keys, cls.stage, instance_name(cls.stage), settings.heartbeat_ttl_s)
        return cls(cameras, sink, hb, settings)

    @property
    def finished(self) -> bool:
        """True once every camera is a file that has ended (or failed for good)."""
        return bool(self.readers) and all(r.state in DONE_STATES for r in self.readers)

    def run(self, stop: threading.Event) -> str:
        """Start the cameras and keep the heartbeat until ``stop``; returns the summary line."""
        serve_metrics(self.settings.ingest.metrics_port, self.stage)
        backoff = self.settings.ingest
        # Readers stop on their own event, set after the service's stop, so a drain can finish.
        reader_stop = threading.Event()
        self.readers = [
            CameraReader(c, self.sink, Backoff(backoff.backoff_initial_s, backoff.backoff_max_s), reader_stop)
            for c in self.cameras
        ]
        for r in self.readers:
            r.start()
        UP.labels(self.stage).set(1)
        while not stop.is_set():
            try:
                self.heartbeat.beat(
                    cameras=len(self.readers),
                    streaming=sum(r.state is CameraState.STREAMING for r in self.readers),
                )
            except (redis.RedisError, *REDIS_DOWN) as e:
                REDIS_ERRORS.labels(self.stage).inc()
                log.debug("ingest heartbeat failed: %s", e)
            if all(not r.thread.is_alive() for r in self.readers):
                break
            stop.wait(0.5)
        reader_stop.set()
        for r in self.readers:
            r.thread.join(timeout=self.settings.shutdown_grace_s)
        UP.labels(self.stage).set(0)
        self.heartbeat.clear()
        return self.summary()

    def summary(self) -> str:
        read = sum(r.stats.frames_read for r in self.readers)
        published = sum(r.stats.frames_published for r in self.readers)
        dropped = sum(r.stats.frames_dropped for r in self.readers)
        reconnects = sum(r.stats.reconnects for r in self.readers)
        failed = [r.camera.id for r in self.readers if r.state is CameraState.FAILED]
        return (
            f"ingest: {len(self.readers)} camera(s), {read} frames read, {published} published, "
            f"{dropped} dropped, {reconnects} reconnects"
            + (f", failed: {', '.join(failed)}" if failed else "")
        )
