"""The ingest stage: one reader thread per camera under a supervisor (a :class:`Stage`), and a summary."""

from __future__ import annotations

import logging
import threading
import time

import redis

from maskwatch.config.settings import CameraConfig, IngestSettings, Settings
from maskwatch.ingest.backoff import Backoff
from maskwatch.ingest.camera import CameraReader, CameraState
from maskwatch.ingest.frame_sink import FrameSink
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.redis_conn import connect
from maskwatch.runtime.stage import LoopOptions, Stage

log = logging.getLogger(__name__)
DONE_STATES = (CameraState.FINISHED, CameraState.FAILED)


class IngestService(Stage):
    """Serves several cameras from one process; each camera reads on its own thread.

    The stage's step supervises: it waits ``ingest.block_ms`` and reports how many readers still run;
    the loop ends by itself once every reader has ended (only files, all done).
    """

    stage = "ingest"

    def __init__(
        self,
        client: redis.Redis,
        cameras: list[CameraConfig],
        sink: FrameSink,
        heartbeat: Heartbeat,
        config: IngestSettings,
        options: LoopOptions,
    ) -> None:
        if not cameras:
            raise ValueError(
                "ingest: no camera configured (add `cameras:` to the config file or MASKWATCH_CAMERAS)"
            )
        super().__init__(client, heartbeat, options)
        self.cameras, self.sink, self.config = cameras, sink, config
        self.readers: list[CameraReader] = []
        # Readers stop on their own event, set after the service's stop, so a drain can finish.
        self._reader_stop = threading.Event()

    @classmethod
    def from_settings(cls, settings: Settings, camera_ids: list[str] | None = None) -> IngestService:
        cameras = [c for c in settings.cameras if c.enabled and (not camera_ids or c.id in camera_ids)]
        missing = sorted(set(camera_ids or []) - {c.id for c in settings.cameras})
        if missing:
            raise ValueError(f"ingest: unknown camera id(s): {', '.join(missing)}")
        client = connect(settings)
        sink = FrameSink.from_settings(client, settings)
        hb = Heartbeat.from_settings(client, settings, cls.stage, instance_name(cls.stage, settings.instance))
        return cls(client, cameras, sink, hb, settings.ingest, LoopOptions.from_settings(settings, cls.stage))

    @property
    def finished(self) -> bool:
        """True once every camera is a file that has ended (or failed for good)."""
        return bool(self.readers) and all(r.state in DONE_STATES for r in self.readers)

    @property
    def exhausted(self) -> bool:
        return bool(self.readers) and not any(r.thread.is_alive() for r in self.readers)

    def on_start(self) -> None:
        """Start one reader thread per camera."""
        cfg = self.config
        self.readers = [
            CameraReader(
                c,
                self.sink,
                Backoff(cfg.backoff_initial_s, cfg.backoff_max_s),
                self._reader_stop,
                cfg.redis_retry_s,
                Backoff(cfg.redis_retry_s, max(cfg.redis_retry_s, self.options.redis_retry_max_s)),
            )
            for c in self.cameras
        ]
        for r in self.readers:
            r.start()

    def step(self, block_ms: int) -> int:
        """Wait ``block_ms`` (less if stopped); the number of readers still running."""
        self.stop_event.wait(block_ms / 1000)
        return sum(r.thread.is_alive() for r in self.readers)

    def heartbeat_info(self) -> dict[str, int]:
        return {
            "cameras": len(self.readers),
            "streaming": sum(r.state is CameraState.STREAMING for r in self.readers),
            "failed": sum(r.state is CameraState.FAILED for r in self.readers),
        }

    def on_stop(self, deadline: float) -> None:
        """Stop the readers; each finishes the frame in hand, waiting until ``deadline`` at most."""
        self._reader_stop.set()
        for r in self.readers:
            r.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        still = [r.camera.id for r in self.readers if r.thread.is_alive()]
        if still:
            log.warning("ingest: camera reader(s) still busy at the shutdown deadline: %s", ", ".join(still))

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
