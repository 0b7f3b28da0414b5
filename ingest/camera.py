"""One camera's loop: open, decode, sample, encode, publish; reconnect with backoff on failure."""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import redis

from maskwatch.config.settings import CameraConfig
from maskwatch.core.contracts import Box, EndOfStream, FrameMessage
from maskwatch.core.errors import ErrorKind, SourceError
from maskwatch.ingest import metrics
from maskwatch.ingest.backoff import Backoff
from maskwatch.ingest.convert import FrameConverter, luma_plane
from maskwatch.ingest.frame_sink import FrameSink
from maskwatch.ingest.motion import MotionDetector
from maskwatch.ingest.sampling import FpsSampler, FullFrameSchedule
from maskwatch.ingest.source import SourceRejected, iter_frames
from maskwatch.runtime.metrics_server import REDIS_ERRORS
from maskwatch.runtime.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)


class CameraState(enum.Enum):
    """Where a camera's reader is. Exported as ``maskwatch_camera_state{state=...}``."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class CameraStats:
    frames_read: int = 0
    frames_published: int = 0
    frames_dropped: int = 0
    frames_redis_dropped: int = 0
    """Live frames not sent because Redis was unreachable (the camera stayed connected)."""
    opens: int = 0
    """Times the source was opened and delivered frames (the first open and every reopen)."""
    frames_full: int = 0
    motion_kinds: dict[str, int] = field(default_factory=dict)
    """Published frames by motion outcome (``motion``/``still``/``calibrating``); empty when motion is off."""
    reconnects: int = 0
    last_error: str = ""


class CameraReader:
    """Runs one camera on its own thread so a slow or dead camera never slows the others."""

    def __init__(
        self,
        camera: CameraConfig,
        sink: FrameSink,
        backoff: Backoff,
        stop: threading.Event,
        redis_retry_s: float,
        redis_backoff: Backoff | None = None,
    ) -> None:
        """``redis_retry_s``: pause between attempts while Redis is unreachable (``ingest.redis_retry_s``);
        ``redis_backoff``: pauses between frame writes while Redis is unreachable (default: from
        ``redis_retry_s`` up to 5 s). Redis outages never close the source."""
        self.camera, self.sink, self.backoff, self.stop = camera, sink, backoff, stop
        self.redis_retry_s = redis_retry_s
        self.redis_backoff = redis_backoff or Backoff(redis_retry_s, max(redis_retry_s, 5.0))
        self._redis_down = False
        self._redis_retry_at = 0.0  # live sources: monotonic time of the next write attempt while down
        self._resume_pts: float | None = None  # a file: media time of the last frame already sent
        self._source_id = _fingerprint(camera) if not camera.is_live else None
        self.state = CameraState.STOPPED
        self.stats = CameraStats()
        self.seq = 0
        self._encode_params = [cv2.IMWRITE_JPEG_QUALITY, camera.jpeg_quality]
        self._policy = camera.effective_drop_policy
        # One motion detector per reader, reset on every (re)open; None when the camera's motion is off.
        self._motion = MotionDetector(camera.motion) if camera.motion.enabled else None
        self._converter = FrameConverter(camera.max_width)
        self._full = FullFrameSchedule(camera.full_frame_interval_s, camera.still_full_frame_interval_s)
        self.thread = threading.Thread(target=self._run_thread, name=f"camera-{camera.id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run_thread(self) -> None:
        try:
            self.run()
        except Exception as e:  # a bug or a local fault (disk, memory): this camera stops, visibly
            cam = self.camera.id
            self.stats.last_error = f"camera {cam}: reader stopped: {type(e).__name__}: {e}"
            metrics.ERRORS.labels(cam, ErrorKind.ERROR).inc()
            log.exception("%s", self.stats.last_error)
            self._set_state(CameraState.FAILED)

    def run(self) -> None:
        """Read until the file ends, the camera fails for good, or ``stop`` is set."""
        cam = self.camera
        log.info(
            "camera %s: source %s (%s, %.1f fps, policy %s)",
            cam.id,
            cam.safe_url,
            "live" if cam.is_live else "file",
            cam.fps,
            self._policy,
        )
        for counter in (
            metrics.FRAMES_READ,
            metrics.FRAMES_PUBLISHED,
            metrics.FRAMES_DROPPED,
            metrics.RECONNECTS,
            metrics.OPENS,
            metrics.REDIS_DROPPED,
            metrics.REDIS_WAIT,
        ):
            counter.labels(cam.id).inc(0)  # export every camera's series from the start
        metrics.FULL_FRAMES.labels(cam.id).inc(0)
        if self._motion is not None:
            metrics.MOTION_SECONDS.labels(cam.id).inc(0)
            for kind in ("motion", "still", "calibrating"):
                metrics.MOTION_FRAMES.labels(cam.id, kind).inc(0)
        self.seq = self._register()
        first_seq = self.seq
        if self._resume_pts is not None:
            log.info(
                "camera %s: resuming the file after media time %.3fs (seq %d)",
                cam.id,
                self._resume_pts,
                self.seq,
            )
        while not self.stop.is_set():
            self._set_state(CameraState.CONNECTING)
            try:
                self._stream()
            except SourceError as e:
                self._failed(e)
                if not e.retryable:
                    self._set_state(CameraState.FAILED)
                    self._end(first_seq, reason=f"error: {e.kind}")
                    return
            else:
                if self.stop.is_set():
                    break
                if not cam.is_live and not cam.loop:
                    self._set_state(CameraState.FINISHED)
                    self._end(first_seq, reason="eof")
                    log.info("camera %s: end of file after %d frames", cam.id, self.seq - first_seq)
                    return
                if cam.loop:
                    self._resume_pts = None  # the next pass starts at the beginning
                    continue
                self._failed(SourceError(f"camera {cam.id}: stream ended", ErrorKind.ENDED))
            self._set_state(CameraState.BACKOFF)
            delay = self.backoff.wait(self.stop)
            self.stats.reconnects += 1
            metrics.RECONNECTS.labels(cam.id).inc()
            log.info(
                "camera %s: reconnecting (attempt %d, waited %.1fs)", cam.id, self.backoff.attempt, delay
            )
        self._set_state(CameraState.STOPPED)

    def _stream(self) -> None:
        cam = self.camera
        sampler = FpsSampler(cam.fps)
        start_after = self._resume_pts
        if start_after is not None:
            sampler.resume_after(start_after)  # the same frames as a run that never stopped
        self._full.reset()  # a (re)opened source starts with a full pass and a fresh background
        if self._motion is not None:
            self._motion.reset()
        start_wall: float | None = None
        start_media = 0.0
        opened = False
        for decoded in iter_frames(cam, start_after):
            if self.stop.is_set():
                return
            if not opened:
                opened = True
                self.stats.opens += 1
            now = time.time()
            if self.state is not CameraState.STREAMING:
                self._set_state(CameraState.STREAMING)
                self.backoff.reset()
            self.stats.frames_read += 1
            metrics.FRAMES_READ.labels(cam.id).inc()
            metrics.LAST_FRAME.labels(cam.id).set(now)
            if cam.realtime:
                if start_wall is None:
                    start_wall, start_media = now, decoded.time_s
                ahead = (decoded.time_s - start_media) - (now - start_wall)
                if ahead > 0 and self.stop.wait(ahead):
                    return
            if not sampler.keep(decoded.time_s):
                continue  # only kept frames are converted
            self._publish(decoded.frame, time.time(), decoded.time_s)

    def _images(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The published BGR image of ``frame`` (scaled to ``max_width`` and converted in one swscale
        pass) and what motion detection reads: the frame's own luma plane when it has one, else None
        (motion reads the BGR image)."""
        image = self._converter.bgr(frame)
        return image, luma_plane(frame) if self._motion is not None else None

    def _publish(self, frame: av.VideoFrame, capture_ts: float, pts: float) -> None:
        cam = self.camera
        image, luma = self._images(frame)
        h, w = image.shape[:2]
        motion, calibrating = self._detect_motion(luma if luma is not None else image, (w, h))
        moved = None if motion is None else bool(motion)
        full = self._full.due(capture_ts if cam.is_live else pts, force=calibrating, moved=moved)
        ok, jpeg = cv2.imencode(".jpg", image, self._encode_params)
        if not ok:
            raise SourceError(f"camera {cam.id}: JPEG encoding failed", ErrorKind.ENCODE)
        msg = FrameMessage(
            cam.id,
            self.seq,
            capture_ts,
            w,
            h,
            jpeg.tobytes(),
            "jpeg",
            pts,
            live=self._policy == "drop_oldest",
            motion=motion,
            full=full,
        )
        written = self._write(msg)
        if written is None:
            return
        dropped, waited = written
        self.seq += 1
        if self._source_id is not None:
            self._resume_pts = pts  # a reopen (source error) resumes after it too
        self.stats.frames_published += 1
        metrics.FRAMES_PUBLISHED.labels(cam.id).inc()
        if full:
            self.stats.frames_full += 1
            metrics.FULL_FRAMES.labels(cam.id).inc()
        if dropped:
            self.stats.frames_dropped += dropped
            metrics.FRAMES_DROPPED.labels(cam.id).inc(dropped)
        if waited:
            metrics.BACKLOG_WAIT.labels(cam.id).inc(waited)

    def _write(self, msg: FrameMessage) -> tuple[int, float] | None:
        """Put ``msg`` on the stream through Redis outages without closing the source: a live frame is
        dropped and counted while Redis is down (one attempt per backoff delay); a file waits with backoff
        and retries the same frame. Returns the sink's (dropped, waited), or None if not written."""
        cam = self.camera.id
        while True:
            if self._policy == "drop_oldest" and self._redis_down and time.monotonic() < self._redis_retry_at:
                self._drop_for_redis()
                return None
            try:
                written = self.sink.put(msg, self._policy, self.stop, self._source_id)
            except REDIS_DOWN as e:
                REDIS_ERRORS.labels("ingest").inc()
                delay = self.redis_backoff.next_delay()
                if not self._redis_down:
                    self._redis_down = True
                    metrics.ERRORS.labels(cam, ErrorKind.REDIS).inc()
                    log.warning(
                        "camera %s: Redis unreachable (%s); %s",
                        cam,
                        e,
                        "dropping frames until it is back, source kept open"
                        if self._policy == "drop_oldest"
                        else "holding the file's place until it is back",
                    )
                if self._policy == "drop_oldest":
                    self._redis_retry_at = time.monotonic() + delay
                    self._drop_for_redis()
                    return None
                t0 = time.monotonic()
                stopped = self.stop.wait(delay)
                metrics.REDIS_WAIT.labels(cam).inc(time.monotonic() - t0)
                if stopped:
                    return None
                continue
            if self._redis_down:
                self._redis_down = False
                self.redis_backoff.reset()
                log.info(
                    "camera %s: Redis is back (%d live frames dropped meanwhile)",
                    cam,
                    self.stats.frames_redis_dropped,
                )
                self._announce()
            return written

    def _drop_for_redis(self) -> None:
        self.stats.frames_redis_dropped += 1
        metrics.REDIS_DROPPED.labels(self.camera.id).inc()

    def _announce(self) -> None:
        """Register the camera again after an outage (a restarted Redis may have lost the camera set)."""
        try:
            self.sink.register(self.camera.id)
        except REDIS_DOWN as e:
            log.warning("camera %s: could not register again in Redis: %s", self.camera.id, e)

    def _detect_motion(
        self, picture: np.ndarray, size: tuple[int, int]
    ) -> tuple[tuple[Box, ...] | None, bool]:
        """Motion boxes (None when off) in pixels of the published image, ``size`` = (width, height), of
        which ``picture`` is the BGR image or the full-size luma; and whether the detector recalibrates."""
        if self._motion is None:
            return None, False
        t0 = time.perf_counter()
        result = self._motion.detect(picture, out_size=size)
        cam = self.camera.id
        metrics.MOTION_SECONDS.labels(cam).inc(time.perf_counter() - t0)
        kind = result.kind
        metrics.MOTION_FRAMES.labels(cam, kind).inc()
        self.stats.motion_kinds[kind] = self.stats.motion_kinds.get(kind, 0) + 1
        return result.boxes, result.calibrating

    def _register(self) -> int:
        """Announce the camera; the next seq. A file recorded under the same fingerprint resumes after the
        media time of its last frame sent (``last_pts`` of the camera's hash)."""
        while not self.stop.is_set():
            try:
                position = self.sink.register(self.camera.id)
                if (
                    self._source_id is not None
                    and position.last_pts is not None
                    and position.source == self._source_id
                ):
                    self._resume_pts = position.last_pts
                return position.next_seq
            except REDIS_DOWN as e:
                log.warning("camera %s: Redis unreachable (%s); retrying", self.camera.id, e)
                self.stop.wait(self.redis_retry_s)
        return 0

    def _end(self, first_seq: int, reason: str) -> None:
        eos = EndOfStream(self.camera.id, self.seq - 1, self.seq - first_seq, reason)
        while True:
            try:
                self.sink.end(eos, self.state.value)
                return
            except REDIS_DOWN as e:
                if self.stop.is_set():
                    return
                log.warning(
                    "camera %s: Redis unreachable writing end of file (%s); retrying", self.camera.id, e
                )
                self.stop.wait(self.redis_retry_s)

    def _failed(self, err: SourceError) -> None:
        self.stats.last_error = str(err)
        metrics.ERRORS.labels(self.camera.id, err.kind).inc()
        if isinstance(err, SourceRejected):
            metrics.REJECTED.labels(self.camera.id, err.reason).inc()
        log.error("%s%s", err, "" if err.retryable else " (not retried)")

    def _set_state(self, state: CameraState) -> None:
        if state is self.state:
            return
        self.state = state
        cam = self.camera.id
        for s in CameraState:
            metrics.CAMERA_STATE.labels(cam, s.value).set(1 if s is state else 0)
        metrics.CAMERA_UP.labels(cam).set(1 if state is CameraState.STREAMING else 0)
        log.info("camera %s: %s", cam, state.value)
        try:
            self.sink.set_state(cam, state=state.value, since=time.time(), reconnects=self.stats.reconnects)
        except redis.RedisError as e:  # the state hash is informative: the camera carries on without it
            REDIS_ERRORS.labels("ingest").inc()
            log.warning("camera %s: could not record state %s in Redis: %s", cam, state.value, e)


def _fingerprint(camera: CameraConfig) -> str:
    """Which file a camera reads: its URL and, for a local file, size and modification time (a replaced
    file starts over). A digest: the hash never holds the URL (it may carry credentials)."""
    url = camera.url.get_secret_value()
    parts = [url]
    try:
        st = os.stat(url)
        parts += [str(st.st_size), str(st.st_mtime_ns)]
    except OSError:
        pass
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
