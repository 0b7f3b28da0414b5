"""Compliance and tracking metrics: a subscriber of the decider's events (no documents, no files).

People-based compliance counts decided tracks (compliant unless they violated), face-based counts
observations classified ``with_mask``; both over the rolling ``violations.compliance_window_s``.
Metric names and labels are documented in ``docs/violations.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from maskwatch.config.violations import ViolationSettings
from maskwatch.core.errors import ErrorKind
from maskwatch.core.labels import CLASSES
from maskwatch.publisher import metrics
from maskwatch.publisher.decider import FrameTracked, StreamEnded, TrackDecided, TrackEvent, ViolationDecided

CLIP_ERROR_REASONS = (
    ErrorKind.WRITE_ERROR,
    ErrorKind.TOO_LARGE,
    ErrorKind.BACKLOG,
    ErrorKind.SNAPSHOT,
    ErrorKind.INTERNAL,
)
"""The ``reason`` labels of ``maskwatch_clip_errors_total`` (shown at 0 from a camera's first frame)."""


class Compliance:
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


class ComplianceMetrics:
    """Keeps ``maskwatch_tracks_total``, ``maskwatch_violations_total``, ``maskwatch_active_tracks`` and
    ``maskwatch_compliance_ratio`` from track events (and shows every per-camera counter at 0 from the
    camera's first frame)."""

    def __init__(self, *, violation_classes: Collection[str], window_s: float):
        self.violation_classes = tuple(dict.fromkeys(violation_classes))
        self.window_s = window_s
        self.cameras: dict[str, Compliance] = {}

    @classmethod
    def from_settings(cls, violations: ViolationSettings) -> ComplianceMetrics:
        """The metrics of the ``violations`` settings (``violation_classes``, ``compliance_window_s``)."""
        return cls(violation_classes=violations.violation_classes, window_s=violations.compliance_window_s)

    def _camera(self, camera: str) -> Compliance:
        compliance = self.cameras.get(camera)
        if compliance is None:
            compliance = self.cameras[camera] = Compliance(self.window_s)
            for cls in self.violation_classes:
                metrics.VIOLATIONS.labels(camera, cls).inc(0)
            for cls in CLASSES:
                metrics.TRACKS.labels(camera, cls).inc(0)
            metrics.CLIPS_WRITTEN.labels(camera).inc(0)
            for reason in CLIP_ERROR_REASONS:
                metrics.CLIP_ERRORS.labels(camera, reason).inc(0)
            metrics.SNAPSHOTS_WRITTEN.labels(camera).inc(0)
        return compliance

    def handle(self, event: TrackEvent) -> None:
        if isinstance(event, FrameTracked):
            self._frame(event)
        elif isinstance(event, TrackDecided):
            if event.first:
                metrics.TRACKS.labels(event.camera, event.decision.label).inc()
        elif isinstance(event, ViolationDecided):
            metrics.VIOLATIONS.labels(event.camera, event.decision.label).inc()
        elif isinstance(event, StreamEnded):
            metrics.ACTIVE_TRACKS.labels(event.camera).set(0)

    def _frame(self, event: FrameTracked) -> None:
        result, camera, ts = event.result, event.camera, event.result.capture_ts
        compliance = self._camera(camera)
        tracked = event.faces[: len(event.tracks)]
        for track, frame_label, carried in zip(event.tracks, tracked.labels, tracked.carried, strict=True):
            if not result.placeholder and not carried:  # placeholder: no mask info; carried: seen before
                compliance.add_face(ts, frame_label == "with_mask")
            if track.decision is not None:
                compliance.add_person(track.id, ts, not track.violation_raised)
        metrics.ACTIVE_TRACKS.labels(camera).set(event.active_tracks)
        people, faces = compliance.ratios(ts)
        if people is not None:
            metrics.COMPLIANCE_RATIO.labels(camera, "people").set(people)
        if faces is not None:
            metrics.COMPLIANCE_RATIO.labels(camera, "faces").set(faces)
