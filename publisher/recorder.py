"""Media of violations: a subscriber of the decider's events that keeps each camera's ring buffer of
recent frames, records clips (pre/post roll) and snapshots on the ``clip-writer`` thread, and runs
retention (after Frigate's ``record/maintainer.py``).

The loop thread only hands frames and jobs over; encoding, JPEG writing and retention sweeps run on
the writer thread and come back from :meth:`MediaRecorder.tick` as :class:`ClipFinished` (one per
clip, with the violations in it) after their metrics are counted.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from maskwatch.config.settings import Settings
from maskwatch.core.errors import ContractError, ErrorKind
from maskwatch.publisher import metrics
from maskwatch.publisher.clips import ClipRecorder, ClipResult, max_total_bytes
from maskwatch.publisher.decider import (
    FrameTracked,
    Polygon,
    StreamEnded,
    TrackEnded,
    TrackEvent,
    TrackUpdated,
    ViolationDecided,
)
from maskwatch.publisher.frames import BufferedFrame
from maskwatch.publisher.media_paths import media_path
from maskwatch.publisher.retention import Retention, RetentionReport
from maskwatch.publisher.snapshots import SnapshotJob, SnapshotResult, SnapshotWriter

log = logging.getLogger(__name__)


def probe_writable(root: Path) -> str | None:
    """None if files can be created in ``root``, else the reason, for a log line.

    A missing ``root`` is not created here (it is made with the first clip): then its nearest
    existing parent must be a writable directory.
    """
    root = Path(root)
    try:
        if root.is_dir():
            probe = root / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"ok")
            probe.unlink()
            return None
        if root.exists():
            raise NotADirectoryError(20, "exists and is not a directory")
        parent = root.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise NotADirectoryError(20, f"{parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(13, f"{parent} is not writable")
    except OSError as e:
        return f"clip directory {root} is not writable ({e.strerror or e}); clips and snapshots are off until it is"
    return None


@dataclass(frozen=True)
class Media:
    """What a violation gets: its snapshot path and clip (as they will be written), or why none."""

    snapshot: Path | None = None
    clip: Path | None = None
    clip_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ViolationRecord:
    """A raised violation, kept until its clip is finished."""

    id: str
    camera: str
    seq: int
    track_id: str
    label: str
    clip_id: str
    snapshot: Path | None


@dataclass(frozen=True)
class ClipFinished:
    """A clip written (or failed, ``clip.error``) and the violations it belongs to."""

    clip: ClipResult
    violations: list[ViolationRecord]


class MediaRecorder:
    """Ring buffers, clips, snapshots and retention (see the module docstring).

    ``clips`` owns the ring buffers, open clips and the writer thread (its ``snapshot_writer``, if
    any, writes snapshots); ``retention`` sweeps ``clips.root`` every ``retention_interval_s``;
    ``zones_of`` gives a camera's zones (drawn on snapshots).
    """

    def __init__(
        self,
        clips: ClipRecorder,
        retention: Retention | None = None,
        zones_of: Callable[[str], Sequence[Polygon]] = lambda camera: (),
        *,
        retention_interval_s: float,
    ):
        self.clips = clips
        self.retention = retention
        self.zones_of = zones_of
        self.retention_interval_s = retention_interval_s
        self.root = clips.root
        self.current: dict[str, BufferedFrame] = {}
        self.best_frames: dict[tuple[str, str, str], BufferedFrame] = {}  # (camera, track, class)
        self.records: dict[str, ViolationRecord] = {}
        self.by_track: dict[tuple[str, str], ViolationRecord] = {}
        self._next_retention = 0.0
        self.media_error = probe_writable(self.root)
        if self.media_error:
            log.error("violations: %s", self.media_error)

    @classmethod
    def from_settings(
        cls, settings: Settings, zones_of: Callable[[str], Sequence[Polygon]]
    ) -> MediaRecorder | None:
        """The recorder of the ``clips`` settings (None when clips are off)."""
        c = settings.clips
        if not c.enabled:
            return None
        retention = Retention(c.dir.absolute(), c.max_age_s, max_total_bytes(c))
        clips = ClipRecorder.from_settings(
            settings,
            zones_of=zones_of,
            retention=retention,
            snapshot_writer=SnapshotWriter.from_settings(c),
        )
        return cls(clips, retention, zones_of, retention_interval_s=c.retention_interval_s)

    # --- events (loop thread) ---

    def handle(self, event: TrackEvent) -> None:
        if isinstance(event, FrameTracked):
            result = event.result
            frame = BufferedFrame(
                result.camera,
                result.seq,
                result.capture_ts,
                event.faces,
                event.labels,
                jpeg=result.image or None,
                pixels=None if result.image else event.pixels,
                pts=result.pts,
            )
            self.current[frame.camera] = frame
            self.clips.add_frame(frame)
            metrics.RING_BUFFER_FRAMES.labels(frame.camera).set(self.clips.buffered_frames(frame.camera))
        elif isinstance(event, TrackUpdated):
            if event.best_of is not None:
                best = self.current[event.camera]
                self.best_frames[(event.camera, event.track.id, event.best_of)] = best
                self._refresh_snapshot(event.camera, event.track.id, event.best_of, best)
        elif isinstance(event, TrackEnded):
            for label in event.track.best_by_label:
                self.best_frames.pop((event.camera, event.track.id, label), None)
        elif isinstance(event, StreamEnded):
            self.clips.finish(event.camera)

    def record_violation(self, event: ViolationDecided, violation_id: str) -> Media:
        """Queue the violation's snapshot and open (or extend) its camera's clip; call after the
        :class:`FrameTracked` of the deciding frame."""
        if self.media_error:
            return Media(error=self.media_error)
        try:
            return self._record(event, violation_id)
        except ContractError as e:  # a camera id that would write outside the clips folder
            log.error("violations: %s", e)
            metrics.CLIP_ERRORS.labels(event.camera[:64], e.kind).inc()
            return Media(error=str(e))

    def _record(self, event: ViolationDecided, violation_id: str) -> Media:
        camera, track_id, label = event.camera, event.track.id, event.decision.label
        snapshot = None
        best = self.best_frames.get((camera, track_id, label), self.current.get(camera))
        if self.clips.snapshot_writer is not None and best is not None:
            stamp = datetime.fromtimestamp(event.ts, UTC).strftime("%Y%m%dT%H%M%SZ")
            snapshot = media_path(self.root, camera, f"{camera}_{stamp}_{event.seq}_{track_id}.jpg")
            job = SnapshotJob(snapshot, best, track_id, camera, self.zones_of(camera), label)
            self.clips.submit_snapshot(job)
        clip = self.clips.start(camera, violation_id, event.seq, event.ts, track_id)
        record = ViolationRecord(
            violation_id, camera, event.seq, track_id, event.decision.label, clip.clip_id, snapshot
        )
        self.records[violation_id] = self.by_track[(camera, track_id)] = record
        return Media(snapshot, clip.path, clip.clip_id)

    def _refresh_snapshot(self, camera: str, track_id: str, label: str, best: BufferedFrame) -> None:
        """A better frame of a violator showing its violating class while its clip is open: rewrite
        the snapshot with the clip."""
        record = self.by_track.get((camera, track_id))
        clip = self.clips.open.get(camera)
        if record is None or record.snapshot is None or clip is None or clip.clip_id != record.clip_id:
            return
        if label != record.label:
            return
        zones = self.zones_of(camera)
        clip.snapshots[track_id] = SnapshotJob(record.snapshot, best, track_id, camera, zones, label)

    # --- finished work ---

    def tick(self, now: float) -> list[ClipFinished]:
        """Close stale clips, run retention every interval; return the clips finished since the last call."""
        if now >= self._next_retention:
            self._next_retention = now + self.retention_interval_s
            self._sweep()
        return self._collect(self.clips.tick(now))

    def close(self, deadline: float) -> list[ClipFinished]:
        """Finish open clips (until ``deadline``, wall time)."""
        return self._collect(self.clips.close(deadline))

    def _sweep(self) -> None:
        if self.media_error:
            self.media_error = probe_writable(self.root)
            if not self.media_error:
                log.info("violations: clip directory %s is writable again; clips are on", self.root)
        if self.retention is not None:
            self.clips.submit_background(self.retention.sweep)  # with the clip writes, never beside them

    def _collect(self, items: list[object]) -> list[ClipFinished]:
        finished: list[ClipFinished] = []
        for item in items:
            if isinstance(item, ClipResult):
                finished.append(self._clip(item))
                item = item.retention
            if isinstance(item, RetentionReport):
                metrics.MEDIA_BYTES.set(item.total_bytes)
                for _path, reason in item.deleted:
                    metrics.RETENTION_DELETED.labels(reason).inc()
            elif isinstance(item, SnapshotResult):
                if item.error:
                    log.error("violations: %s", item.error)
                    metrics.CLIP_ERRORS.labels(item.camera, ErrorKind.SNAPSHOT).inc()
                else:
                    metrics.SNAPSHOTS_WRITTEN.labels(item.camera).inc()
        return finished

    def _clip(self, clip: ClipResult) -> ClipFinished:
        camera = clip.camera
        if clip.error:
            log.error("violations: %s", clip.error)
            metrics.CLIP_ERRORS.labels(camera, clip.reason or ErrorKind.ERROR).inc()
        else:
            metrics.CLIPS_WRITTEN.labels(camera).inc()
            metrics.CLIP_WRITE_SECONDS.labels(camera).observe(clip.write_s)
            log.info(
                "clip %s: %d frames, %.1f s, %.2f MB in %.2f s",
                clip.path,
                clip.frames,
                clip.duration_s,
                clip.size_bytes / 1e6,
                clip.write_s,
            )
        records = []
        for vid in clip.violation_ids:
            record = self.records.pop(vid, None)
            if record is not None:
                records.append(record)
                if self.by_track.get((camera, record.track_id)) is record:
                    del self.by_track[(camera, record.track_id)]
        return ClipFinished(clip, records)
