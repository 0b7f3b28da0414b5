"""One violation per person: tracks faces per camera, decides their class by agreement, raises one
violation event per track, records clips and snapshots, and keeps the compliance metrics.

The publisher service calls :meth:`ViolationMonitor.observe` once per new result,
:meth:`ViolationMonitor.tick` about every 0.5 s and :meth:`ViolationMonitor.close` on shutdown, all
from its loop thread; each returns the documents to publish (schemas in ``docs/violations.md``).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.config.settings import Settings
from maskwatch.core.contracts import SCHEMA_VERSION, ResultMessage, event_id
from maskwatch.core.labels import ALIASES, CLASSES
from maskwatch.core.zones import ZoneError, faces_in_zones, validate_polygon
from maskwatch.publisher import metrics
from maskwatch.publisher.clips import BufferedFrame, ClipRecorder, ClipResult, FaceMarks
from maskwatch.publisher.decide import AgreementRule
from maskwatch.publisher.retention import Retention, RetentionReport
from maskwatch.publisher.snapshots import SnapshotJob, SnapshotWriter
from maskwatch.publisher.tracker import FaceTracker, Track

log = logging.getLogger(__name__)

Polygon = list[tuple[float, float]]
CLIP_ERROR_REASONS = ("write_error", "too_large", "backlog", "snapshot", "internal")
Doc = dict[str, Any]


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


@dataclass
class ViolationRecord:
    """A raised violation, kept until its clip is finished."""

    id: str
    camera: str
    seq: int
    track_id: str
    label: str
    snapshot: Path | None


class _Compliance:
    """Rolling compliance of one camera, by people (decided tracks) and by face observations."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.faces: deque[tuple[float, bool]] = deque()
        self.people: dict[str, tuple[float, bool]] = {}

    def add_face(self, ts: float, compliant: bool) -> None:
        self.faces.append((ts, compliant))

    def add_person(self, track_id: str, ts: float, compliant: bool) -> None:
        self.people[track_id] = (ts, compliant)

    def ratios(self, now_ts: float) -> tuple[float | None, float | None]:
        """(people, faces) ratios over the window ending at capture time ``now_ts``; None when empty."""
        cutoff = now_ts - self.window_s
        while self.faces and self.faces[0][0] < cutoff:
            self.faces.popleft()
        for tid in [t for t, (ts, _) in self.people.items() if ts < cutoff]:
            del self.people[tid]
        people = [ok for _, ok in self.people.values()]
        faces = [ok for _, ok in self.faces]
        return (sum(people) / len(people) if people else None, sum(faces) / len(faces) if faces else None)


class ViolationMonitor:
    """Turns new results into violation and clip documents (see the module docstring).

    Collaborators: ``tracker`` builds a :class:`FaceTracker` for a camera; ``recorder`` keeps the
    ring buffers and writes clips on its own thread (None: no clips); ``snapshots`` writes JPEG
    snapshots (None: none); ``retention`` deletes old media; ``clock`` is wall time.
    """

    def __init__(
        self,
        tracker: Callable[[str], FaceTracker],
        recorder: ClipRecorder | None = None,
        snapshots: SnapshotWriter | None = None,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
        media_root: Path | None = None,
        violation_classes: Iterable[str] = ("without_mask", "incorrect_mask"),
        zones: dict[str, Sequence[Sequence[Sequence[float]]]] | None = None,
        compliance_window_s: float = 300.0,
        retention_interval_s: float = 60.0,
    ):
        self.make_tracker = tracker
        self.recorder = recorder
        self.snapshots = snapshots
        self.retention = retention
        self.clock = clock
        self.media_root = Path(media_root) if media_root else (recorder.root if recorder else None)
        self.violation_classes = frozenset(violation_classes)
        self.zones = {camera: self._valid_zones(camera, polys) for camera, polys in (zones or {}).items()}
        self.compliance_window_s = compliance_window_s
        self.retention_interval_s = retention_interval_s
        self.trackers: dict[str, FaceTracker] = {}
        self.compliance: dict[str, _Compliance] = {}
        self.best_frames: dict[tuple[str, str], BufferedFrame] = {}
        self.records: dict[str, ViolationRecord] = {}
        self.open_clip_of: dict[tuple[str, str], str] = {}
        self._next_retention = 0.0
        self.media_error: str | None = None
        if self.media_root is not None and (self.recorder or self.snapshots):
            self.media_error = probe_writable(self.media_root)
            if self.media_error:
                log.error("violations: %s", self.media_error)

    @classmethod
    def from_settings(cls, settings: Settings) -> ViolationMonitor:
        """The monitor the settings describe (``violations``, ``clips`` and each camera's ``zones``)."""
        v, c = settings.violations, settings.clips
        rule = AgreementRule(v.window_frames, v.min_votes, v.min_confidence)

        def tracker(camera: str) -> FaceTracker:
            return FaceTracker(CLASSES, rule, v.iou_threshold, v.max_center_shift, v.max_age_frames)

        fps = {cam.id: cam.fps for cam in settings.cameras}
        zones = {cam.id: cam.zones for cam in settings.cameras if cam.zones}
        recorder = snapshots = retention = None
        if c.enabled:
            max_bytes = int(c.max_total_mb * 1e6)
            retention = Retention(c.dir.absolute(), c.max_age_s, max_bytes)
            snapshots = SnapshotWriter(c.blur, c.max_width, c.jpeg_quality)
            recorder = ClipRecorder(
                c.dir.absolute(),
                c.pre_roll_s,
                c.post_roll_s,
                c.max_clip_s,
                c.ring_buffer_frames,
                fps_of=lambda camera: c.fps or fps.get(camera, 5.0),
                zones_of=lambda camera: zones.get(camera, ()),
                blur=c.blur,
                max_width=c.max_width,
                crf=c.crf,
                max_pending=c.max_pending,
                max_bytes=max_bytes,
                retention=retention,
                snapshot_writer=snapshots,
            )
        return cls(
            tracker,
            recorder,
            snapshots,
            retention,
            media_root=c.dir.absolute(),
            violation_classes=v.violation_classes,
            zones=zones,
            compliance_window_s=v.compliance_window_s,
            retention_interval_s=c.retention_interval_s,
        )

    @staticmethod
    def _valid_zones(camera: str, polygons: Sequence[Sequence[Sequence[float]]]) -> list[Polygon]:
        valid = []
        for i, polygon in enumerate(polygons):
            try:
                valid.append(validate_polygon(polygon))
            except ZoneError as e:
                log.error("violations: camera %r zone %d ignored: %s", camera, i, e)
        if polygons and not valid:
            log.error("violations: camera %r has no usable zone; every face of it counts", camera)
        return valid

    # --- per result ---

    def observe(self, result: ResultMessage, frame: np.ndarray | None = None) -> list[Doc]:
        """Track the faces of one new result; return the documents it raises (violations, finished clips)."""
        camera, seq, ts = result.camera, result.seq, result.capture_ts
        boxes = result.faces.boxes.astype(np.float64)
        scores = result.faces.scores.astype(np.float64)
        probs = _canonical_probs(result)
        keep = faces_in_zones(boxes, result.width, result.height, self.zones.get(camera, ()))
        outside = FaceMarks(
            boxes[~keep],
            ("outside_zone",) * int((~keep).sum()),
            probs[~keep].max(axis=1, initial=0.0),
            ("",) * int((~keep).sum()),
        )
        boxes, scores, probs = boxes[keep], scores[keep], probs[keep]
        tracker = self.trackers.get(camera)
        if tracker is None:
            tracker = self.trackers[camera] = self.make_tracker(camera)
            for cls in self.violation_classes:
                metrics.VIOLATIONS.labels(camera, cls).inc(0)
            for cls in CLASSES:
                metrics.TRACKS.labels(camera, cls).inc(0)
            metrics.CLIPS_WRITTEN.labels(camera).inc(0)
            for reason in CLIP_ERROR_REASONS:
                metrics.CLIP_ERRORS.labels(camera, reason).inc(0)
            metrics.SNAPSHOTS_WRITTEN.labels(camera).inc(0)
        update = tracker.update(boxes, scores, probs, seq, ts)
        compliance = self.compliance.setdefault(camera, _Compliance(self.compliance_window_s))

        labels, label_probs, track_ids = [], [], []
        for face in update.faces:
            track, row = face.track, probs[face.index]
            frame_label = CLASSES[int(row.argmax())]
            label = track.label or frame_label
            labels.append(label)
            label_probs.append(float(row[CLASSES.index(label)]))
            track_ids.append(track.id)
            if not result.placeholder:  # a placeholder classifier says nothing about masks
                compliance.add_face(ts, frame_label == "with_mask")
            if face.decision_changed:
                if track.first_decision is track.decision:
                    metrics.TRACKS.labels(camera, track.label).inc()
                if track.label in self.violation_classes:
                    track.ever_violating = True
            if track.decision is not None:
                compliance.add_person(track.id, ts, not track.ever_violating)
        marks = FaceMarks(
            np.concatenate([boxes, outside.boxes]),
            tuple(labels) + outside.labels,
            np.concatenate([np.asarray(label_probs, dtype=np.float64), outside.probs]),
            tuple(track_ids) + outside.track_ids,
        )  # faces outside the zones are drawn grey and blurred like the others
        buffered = BufferedFrame(
            camera, seq, ts, marks, jpeg=result.image or None, pixels=None if result.image else frame
        )
        if self.recorder is not None:
            self.recorder.add_frame(buffered)
            metrics.RING_BUFFER_FRAMES.labels(camera).set(self.recorder.buffered_frames(camera))

        docs: list[Doc] = []
        for face in update.faces:
            track = face.track
            if track.best_seq == seq:
                self.best_frames[(camera, track.id)] = buffered
                self._refresh_snapshot(camera, track, buffered)
            if face.decision_changed and track.label in self.violation_classes and not track.violation_raised:
                track.violation_raised = True
                docs.append(self._raise(result, track))
        for track in update.ended:
            self.best_frames.pop((camera, track.id), None)

        metrics.ACTIVE_TRACKS.labels(camera).set(len(tracker.tracks))
        people, faces = compliance.ratios(ts)
        if people is not None:
            metrics.COMPLIANCE_RATIO.labels(camera, "people").set(people)
        if faces is not None:
            metrics.COMPLIANCE_RATIO.labels(camera, "faces").set(faces)
        return docs

    def _raise(self, result: ResultMessage, track: Track) -> Doc:
        camera, seq = result.camera, result.seq
        decision = track.decision
        assert decision is not None
        vid = event_id(camera, seq, kind=f"violation-{track.id}")
        metrics.VIOLATIONS.labels(camera, decision.label).inc()
        snapshot_path = clip_path = clip_id = None
        media_error = self.media_error
        best = self.best_frames.get((camera, track.id))
        if (
            self.snapshots is not None
            and best is not None
            and self.media_root is not None
            and not media_error
        ):
            stamp = datetime.fromtimestamp(result.capture_ts, UTC).strftime("%Y%m%dT%H%M%SZ")
            path = self.media_root / camera / f"{camera}_{stamp}_{seq}_{track.id}.jpg"
            job = SnapshotJob(path, best, track.id, camera, self.zones.get(camera, ()))
            error = self.snapshots.write(job)
            if error:
                log.error("violations: %s", error)
                metrics.CLIP_ERRORS.labels(camera, "snapshot").inc()
                media_error = error
            else:
                snapshot_path = path
                metrics.SNAPSHOTS_WRITTEN.labels(camera).inc()
        if self.recorder is not None and not self.media_error:
            clip = self.recorder.start(camera, vid, seq, result.capture_ts, track.id)
            clip_path, clip_id = clip.path, clip.clip_id
            self.open_clip_of[(camera, track.id)] = clip.clip_id
        if clip_id is not None:  # kept until the clip's documents are made
            self.records[vid] = ViolationRecord(vid, camera, seq, track.id, decision.label, snapshot_path)
        box = [round(float(v), 1) for v in track.box]
        doc: Doc = {
            "schema": "maskwatch.violation",
            "schema_version": SCHEMA_VERSION,
            "type": "violation",
            "id": vid,
            "camera": camera,
            "track_id": track.id,
            "class": decision.label,
            "confidence": round(decision.confidence, 4),
            "votes": decision.votes,
            "first_seen_ts": track.first_ts,
            "first_seen": _iso(track.first_ts),
            "decided_ts": result.capture_ts,
            "seq": seq,
            "box": box,
            "frame_width": result.width,
            "frame_height": result.height,
            "snapshot": str(snapshot_path) if snapshot_path else None,
            "clip": str(clip_path) if clip_path else None,
            "clip_id": clip_id,
        }
        if media_error:
            doc["media_error"] = media_error
        log.info(
            "violation %s: camera %s track %s %s (%.2f)",
            vid,
            camera,
            track.id,
            decision.label,
            decision.confidence,
        )
        return doc

    def _refresh_snapshot(self, camera: str, track: Track, best: BufferedFrame) -> None:
        """A better frame of a violator while its clip is open: rewrite the snapshot with the clip."""
        if self.recorder is None or not track.violation_raised:
            return
        clip = self.recorder.open.get(camera)
        if clip is None or clip.clip_id != self.open_clip_of.get((camera, track.id)):
            return
        record = next(
            (r for r in self.records.values() if r.camera == camera and r.track_id == track.id), None
        )
        if record is not None and record.snapshot is not None:
            clip.snapshots[track.id] = SnapshotJob(
                record.snapshot, best, track.id, camera, self.zones.get(camera, ())
            )

    # --- finished work ---

    def _finished(self, items: list[object]) -> list[Doc]:
        docs: list[Doc] = []
        for item in items:
            if isinstance(item, ClipResult):
                docs += self._clip_docs(item)
                item = item.retention
            if isinstance(item, RetentionReport):
                metrics.MEDIA_BYTES.set(item.total_bytes)
                for _path, reason in item.deleted:
                    metrics.RETENTION_DELETED.labels(reason).inc()
        return docs

    def _clip_docs(self, clip: ClipResult) -> list[Doc]:
        camera = clip.camera
        if clip.error:
            log.error("violations: %s", clip.error)
            metrics.CLIP_ERRORS.labels(camera, clip.reason or "error").inc()
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
        docs = []
        for vid in clip.violation_ids:
            record = self.records.pop(vid, None)
            if record is None:
                continue
            self.open_clip_of.pop((camera, record.track_id), None)
            kind = "clip_failed" if clip.error else "clip_ready"
            doc: Doc = {
                "schema": f"maskwatch.{kind}",
                "schema_version": SCHEMA_VERSION,
                "type": kind,
                "id": event_id(camera, record.seq, kind=f"{kind}-{record.track_id}"),
                "violation_id": vid,
                "camera": camera,
                "track_id": record.track_id,
                "clip_id": clip.clip_id,
                "snapshot": str(record.snapshot) if record.snapshot else None,
            }
            if clip.error:
                doc |= {"error": clip.error, "reason": clip.reason}
            else:
                doc |= {
                    "path": str(clip.path),
                    "duration_s": round(clip.duration_s, 3),
                    "frames": clip.frames,
                    "size_bytes": clip.size_bytes,
                }
            docs.append(doc)
        return docs

    def tick(self, now: float) -> list[Doc]:
        """Hand back finished clips (``clip_ready``/``clip_failed``); run retention every interval."""
        if now >= self._next_retention:
            self._next_retention = now + self.retention_interval_s
            self._sweep()
        if self.recorder is None:
            return []
        return self._finished(self.recorder.tick(now))

    def _sweep(self) -> None:
        if self.media_error and self.media_root is not None:
            self.media_error = probe_writable(self.media_root)
            if not self.media_error:
                log.info("violations: clip directory %s is writable again; clips are on", self.media_root)
        retention = self.retention
        if retention is None:
            return
        if self.recorder is not None:
            self.recorder.submit_background(retention.sweep)  # with the clip writes, never beside them
        else:
            self._finished([retention.sweep()])

    def close(self, deadline: float) -> list[Doc]:
        """Finish open clips (until ``deadline``, wall time) and return their documents."""
        if self.recorder is None:
            return []
        return self._finished(self.recorder.close(deadline))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _canonical_probs(result: ResultMessage) -> np.ndarray:
    """The result's probability rows in :data:`models.labels.CLASSES` order (aliases mapped, unknown dropped)."""
    faces = result.faces
    n = len(faces)
    probs = faces.probs.astype(np.float64) if n and faces.probs is not None else np.zeros((n, len(faces.classes)))
    if faces.classes == CLASSES or not n:
        return probs.reshape(n, len(CLASSES))
    out = np.zeros((n, len(CLASSES)))
    for j, name in enumerate(faces.classes):
        canonical = ALIASES.get(name.strip().lower())
        if canonical is not None:
            out[:, CLASSES.index(canonical)] += probs[:, j]
    return out
