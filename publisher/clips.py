"""Annotated H.264 clips of violations: a ring buffer of recent frames per camera, open clips that
collect post-roll, and a background thread (``clip-writer``) that encodes them with PyAV and writes
snapshots, so the loop never waits.

Overlapping violations on one camera share one clip: a violation while a clip is open extends it
(up to ``max_clip_s``). Finished clips come back through :meth:`ClipRecorder.tick`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from maskwatch.config.settings import Settings
from maskwatch.config.violations import ClipSettings
from maskwatch.core.contracts import event_id
from maskwatch.core.errors import ErrorKind
from maskwatch.publisher.frames import BufferedFrame, FrameRing
from maskwatch.publisher.media_paths import media_path
from maskwatch.publisher.render import render_frame
from maskwatch.publisher.retention import Retention, RetentionReport
from maskwatch.publisher.snapshots import SnapshotJob, SnapshotResult, SnapshotWriter

log = logging.getLogger(__name__)

BlurMode = str  # "none" | "all" | "others"
_CLIP_DEFAULTS = ClipSettings.model_fields  # a job's defaults are the ``clips`` section's, declared there


@dataclass
class ClipJob:
    """Everything the writer thread needs to make one clip (and refresh its snapshots)."""

    clip_id: str
    camera: str
    path: Path
    frames: list[BufferedFrame]
    violators: set[str]
    violation_ids: list[str]
    fps: float
    blur: BlurMode = _CLIP_DEFAULTS["blur"].default
    max_width: int | None = _CLIP_DEFAULTS["max_width"].default
    crf: int = _CLIP_DEFAULTS["crf"].default
    zones: Sequence[Sequence[tuple[float, float]]] = ()
    snapshots: list[SnapshotJob] = field(default_factory=list)
    max_bytes: int | None = None


@dataclass
class ClipResult:
    """A finished clip: where it is and what it holds, or why there is none (``error``)."""

    clip_id: str
    camera: str
    path: Path
    violation_ids: list[str]
    frames: int = 0
    duration_s: float = 0.0
    write_s: float = 0.0
    size_bytes: int = 0
    error: str | None = None
    reason: ErrorKind | None = None
    retention: RetentionReport | None = None


def max_total_bytes(clips: ClipSettings) -> int:
    """``clips.max_total_mb`` in bytes: the retention budget, and the largest clip that is kept."""
    return int(clips.max_total_mb * 1e6)


def encode_clip(job: ClipJob) -> ClipResult:
    """Encode ``job.frames`` as H.264 MP4 (PyAV, libx264) at ``job.path``; errors go into the result.

    Frames are placed on a ``1/fps`` timeline by capture time, so gaps keep their real length.
    The file is written as ``<path>.part`` and renamed when complete.
    """
    started = time.perf_counter()
    result = ClipResult(job.clip_id, job.camera, job.path, list(job.violation_ids))
    part = job.path.with_name(job.path.name + ".part")
    frames = sorted(job.frames, key=lambda f: f.ts)
    try:
        job.path.parent.mkdir(parents=True, exist_ok=True)
        written, last_pts, first_ts = 0, -1, 0.0
        with av.open(str(part), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = None
            for frame in frames:
                img = render_frame(frame, job.blur, job.violators, job.max_width, job.zones)
                if img is None:
                    continue
                if stream is None:
                    h, w = img.shape[:2]
                    size = (w - w % 2, h - h % 2)
                    stream = container.add_stream("libx264", rate=Fraction(job.fps).limit_denominator(1001))
                    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
                    stream.options = {"crf": str(job.crf), "preset": "veryfast"}
                    first_ts = frame.ts
                if (img.shape[1], img.shape[0]) != size:
                    cropped = 0 <= img.shape[1] - size[0] <= 1 and 0 <= img.shape[0] - size[1] <= 1
                    img = (
                        np.ascontiguousarray(img[: size[1], : size[0]]) if cropped else cv2.resize(img, size)
                    )
                pts = max(round((frame.ts - first_ts) * job.fps), last_pts + 1)
                vf = av.VideoFrame.from_ndarray(img, format="bgr24")
                vf.pts = pts
                for packet in stream.encode(vf):
                    container.mux(packet)
                written, last_pts = written + 1, pts
            if stream is None:
                raise ValueError("no frame of the clip carried an image (is worker.include_image off?)")
            for packet in stream.encode():
                container.mux(packet)
        size_bytes = part.stat().st_size
        if job.max_bytes is not None and size_bytes > job.max_bytes:
            part.unlink(missing_ok=True)
            result.error = (
                f"clip of {size_bytes / 1e6:.2f} MB exceeds clips.max_total_mb ({job.max_bytes / 1e6:.3g} MB); "
                "not kept: raise the limit"
            )
            result.reason = ErrorKind.TOO_LARGE
            return result
        os.replace(part, job.path)
        result.frames = written
        result.duration_s = (last_pts + 1) / job.fps if written else 0.0
        result.size_bytes = size_bytes
    except (OSError, av.error.FFmpegError, ValueError) as e:
        part.unlink(missing_ok=True)
        result.error = f"cannot write clip {job.path}: {e}"
        result.reason = ErrorKind.WRITE_ERROR
    finally:
        result.write_s = time.perf_counter() - started
    return result


@dataclass
class OpenClip:
    """A clip still collecting frames: everything up to ``end_ts`` (capture time) belongs to it."""

    clip_id: str
    camera: str
    path: Path
    start_ts: float
    end_ts: float
    frames: list[BufferedFrame]
    violators: set[str]
    violation_ids: list[str]
    last_frame_wall: float
    snapshots: dict[str, SnapshotJob] = field(default_factory=dict)


class ClipRecorder:
    """Ring buffers, open clips and the writer thread of every camera.

    ``fps_of`` gives a camera's clip frame rate; ``zones_of`` its zone polygons (drawn on clips).
    The values come from the ``clips`` settings (:meth:`from_settings`).
    """

    def __init__(
        self,
        root: Path,
        *,
        pre_roll_s: float,
        post_roll_s: float,
        max_clip_s: float,
        ring_frames: int,
        fps_of: Callable[[str], float],
        zones_of: Callable[[str], Sequence[Sequence[tuple[float, float]]]] = lambda camera: (),
        blur: BlurMode,
        max_width: int | None,
        crf: int,
        max_pending: int,
        max_bytes: int | None,
        retention: Retention | None = None,
        snapshot_writer: SnapshotWriter | None = None,
        clock: Callable[[], float] = time.time,
        stale_after_s: float = 2.0,
    ):
        self.root = Path(root)
        self.pre_roll_s, self.post_roll_s, self.max_clip_s = pre_roll_s, post_roll_s, max_clip_s
        self.ring_frames = ring_frames
        self.fps_of, self.zones_of = fps_of, zones_of
        self.blur, self.max_width, self.crf = blur, max_width, crf
        self.max_pending, self.max_bytes = max_pending, max_bytes
        self.retention = retention
        self.snapshot_writer = snapshot_writer
        self.clock = clock
        self.stale_after_s = stale_after_s
        self.rings: dict[str, FrameRing] = {}
        self.open: dict[str, OpenClip] = {}
        self._jobs: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._done: queue.Queue[object] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._abandon = threading.Event()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        zones_of: Callable[[str], Sequence[Sequence[tuple[float, float]]]] = lambda camera: (),
        retention: Retention | None = None,
        snapshot_writer: SnapshotWriter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ClipRecorder:
        """The recorder of the ``clips`` settings; a camera's clip frame rate is ``clips.fps``, else its own."""
        c = settings.clips
        fps = {cam.id: cam.fps for cam in settings.cameras}
        return cls(
            c.dir.absolute(),
            pre_roll_s=c.pre_roll_s,
            post_roll_s=c.post_roll_s,
            max_clip_s=c.max_clip_s,
            ring_frames=c.ring_buffer_frames,
            fps_of=lambda camera: c.fps or fps.get(camera, 5.0),
            zones_of=zones_of,
            blur=c.blur,
            max_width=c.max_width,
            crf=c.crf,
            max_pending=c.max_pending,
            max_bytes=max_total_bytes(c),
            retention=retention,
            snapshot_writer=snapshot_writer,
            clock=clock,
        )

    # --- frames and clips (loop thread) ---

    def ring(self, camera: str) -> FrameRing:
        if camera not in self.rings:
            self.rings[camera] = FrameRing(self.ring_frames)
        return self.rings[camera]

    def add_frame(self, frame: BufferedFrame) -> None:
        """Keep ``frame`` for pre-roll and give it to the camera's open clip (closing the clip when past its end)."""
        clip = self.open.get(frame.camera)
        if clip is not None:
            if frame.ts > clip.end_ts:
                self._finish(clip)
            elif not clip.frames or frame.ts > clip.frames[-1].ts:
                clip.frames.append(frame)
                clip.last_frame_wall = self.clock()
        self.ring(frame.camera).append(frame)

    def clip_path(self, camera: str, ts: float, seq: int) -> Path:
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")
        return media_path(self.root, camera, f"{camera}_{stamp}_{seq}.mp4")

    def start(self, camera: str, violation_id: str, seq: int, ts: float, track_id: str) -> OpenClip:
        """The clip a violation at capture time ``ts`` belongs to: the camera's open clip, extended, or a new one.

        Call after :meth:`add_frame` of the triggering frame.
        """
        clip = self.open.get(camera)
        if clip is not None:
            clip.end_ts = min(max(clip.end_ts, ts + self.post_roll_s), clip.start_ts + self.max_clip_s)
        else:
            start_ts = ts - self.pre_roll_s
            clip = OpenClip(
                clip_id=event_id(camera, seq, kind="clip"),
                camera=camera,
                path=self.clip_path(camera, ts, seq),
                start_ts=start_ts,
                end_ts=min(ts + self.post_roll_s, start_ts + self.max_clip_s),
                frames=self.ring(camera).since(start_ts),
                violators=set(),
                violation_ids=[],
                last_frame_wall=self.clock(),
            )
            self.open[camera] = clip
        clip.violators.add(track_id)
        clip.violation_ids.append(violation_id)
        return clip

    def _finish(self, clip: OpenClip) -> None:
        self.open.pop(clip.camera, None)
        job = ClipJob(
            clip_id=clip.clip_id,
            camera=clip.camera,
            path=clip.path,
            frames=clip.frames,
            violators=clip.violators,
            violation_ids=clip.violation_ids,
            fps=self.fps_of(clip.camera),
            blur=self.blur,
            max_width=self.max_width,
            crf=self.crf,
            zones=self.zones_of(clip.camera),
            snapshots=list(clip.snapshots.values()),
            max_bytes=self.max_bytes,
        )
        with self._lock:
            if self._pending >= self.max_pending:
                error = f"clip writer is {self._pending} clips behind (clips.max_pending); clip {clip.path.name} dropped"
                self._done.put(
                    ClipResult(
                        clip.clip_id,
                        clip.camera,
                        clip.path,
                        clip.violation_ids,
                        error=error,
                        reason=ErrorKind.BACKLOG,
                    )
                )
                return
            self._pending += 1
        self._submit(lambda: self._write(job))

    def _write(self, job: ClipJob) -> ClipResult:
        try:
            result = encode_clip(job)
            if self.snapshot_writer is not None:
                for snap in job.snapshots:  # a better frame came after the violation: refresh
                    error = self.snapshot_writer.write(snap)
                    if error:
                        log.error("clip writer: %s", error)
            if self.retention is not None and result.error is None:
                result.retention = self.retention.sweep(protect={job.path})
        except Exception as e:  # a bug must not lose the clip's documents
            log.exception("clip writer: clip %s failed", job.path)
            result = ClipResult(
                job.clip_id,
                job.camera,
                job.path,
                job.violation_ids,
                error=f"clip writer failed: {e!r}",
                reason=ErrorKind.INTERNAL,
            )
        finally:
            with self._lock:
                self._pending -= 1
        return result

    # --- writer thread ---

    def _submit(self, job: Callable[[], object]) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="clip-writer", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None or self._abandon.is_set():
                    return
                try:
                    out = job()
                except Exception as e:  # a bug in one job must not stop clips for good
                    log.exception("clip writer: job failed")
                    out = e
                if out is not None:
                    self._done.put(out)
            finally:
                self._jobs.task_done()

    def submit_snapshot(self, job: SnapshotJob) -> None:
        """Write a snapshot on the writer thread (in order with the clips); its
        :class:`SnapshotResult` comes back from :meth:`tick`."""
        writer = self.snapshot_writer
        if writer is None:
            return

        def write() -> SnapshotResult:
            return SnapshotResult(job.camera, job.path, writer.write(job))

        self._submit(write)

    def finish(self, camera: str) -> None:
        """Close the camera's open clip now (its stream ended): it is written with the frames it has."""
        clip = self.open.get(camera)
        if clip is not None:
            self._finish(clip)

    def submit_background(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the writer thread (retention sweeps); a non-None return comes back from :meth:`tick`."""
        self._submit(job)

    def _drain(self) -> list[object]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def tick(self, now: float) -> list[object]:
        """Close clips whose camera sent nothing for post-roll plus a grace period; return finished work."""
        for clip in list(self.open.values()):
            if now - clip.last_frame_wall > self.post_roll_s + self.stale_after_s:
                self._finish(clip)
        return self._drain()

    def close(self, deadline: float) -> list[object]:
        """Close every open clip and wait for the writer until ``deadline`` (wall time); return finished work."""
        for clip in list(self.open.values()):
            self._finish(clip)
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(min(max(0.0, deadline - time.time()), 86_400.0))
            if self._thread.is_alive():
                log.error(
                    "clip writer: still busy at the shutdown deadline; %d clip(s) abandoned", self._pending
                )
                self._abandon.set()
        return self._drain()

    def buffered_frames(self, camera: str) -> int:
        return len(self.ring(camera))
