"""One violation per person: the coordinator that wires the track decider to its subscribers.

- :class:`~maskwatch.publisher.decider.TrackDecider` (pure): zones, tracking, decisions → track events;
- :class:`~maskwatch.publisher.recorder.MediaRecorder`: ring buffers, clips, snapshots, retention;
- :class:`~maskwatch.publisher.compliance.ComplianceMetrics` (and any other subscriber): metrics.

The publisher service calls :meth:`ViolationMonitor.observe` once per new result,
:meth:`ViolationMonitor.end_of_stream` when a camera's file ends, :meth:`ViolationMonitor.tick` about
every 0.5 s and :meth:`ViolationMonitor.close` on shutdown, all from its loop thread; each returns the
documents to publish (built in :mod:`maskwatch.core.documents`; schemas in ``docs/violations.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from maskwatch.config.settings import Settings
from maskwatch.core.contracts import ResultMessage
from maskwatch.core.documents import (
    ClipDoc,
    ClipOf,
    ViolationDoc,
    clip_failed_document,
    clip_ready_document,
    violation_document,
    violation_id,
)
from maskwatch.publisher.compliance import ComplianceMetrics
from maskwatch.publisher.decider import TrackDecider, TrackEvent, ViolationDecided
from maskwatch.publisher.recorder import ClipFinished, Media, MediaRecorder, probe_writable

log = logging.getLogger(__name__)

Doc = ViolationDoc | ClipDoc

__all__ = ["Doc", "Subscriber", "ViolationMonitor", "probe_writable"]


class Subscriber(Protocol):
    """Anything that acts on track events (metrics, recording, notifications)."""

    def handle(self, event: TrackEvent) -> None: ...


class ViolationMonitor:
    """Results in, ``violation`` / ``clip_ready`` / ``clip_failed`` documents out (see the module docstring).

    ``decider`` turns results into track events; ``recorder`` (None: no clips or snapshots) records
    media and is asked for each violation's media; ``subscribers`` get every event, in order.
    """

    def __init__(
        self,
        decider: TrackDecider,
        recorder: MediaRecorder | None = None,
        subscribers: Sequence[Subscriber] = (),
    ):
        self.decider = decider
        self.recorder = recorder
        self.subscribers = list(subscribers)

    @classmethod
    def from_settings(cls, settings: Settings) -> ViolationMonitor:
        """The monitor the settings describe (``violations``, ``clips`` and each camera's ``zones``)."""
        decider = TrackDecider.from_settings(settings)
        recorder = MediaRecorder.from_settings(settings, decider.zones_of)
        compliance = ComplianceMetrics.from_settings(settings.violations)
        return cls(decider, recorder, [compliance])

    def observe(self, result: ResultMessage, frame: np.ndarray | None = None) -> list[Doc]:
        """Track the faces of one new result; return the violations it raises."""
        _faces, events = self.decider.observe(result, frame)
        return self._dispatch(events)

    def end_of_stream(self, camera: str) -> list[Doc]:
        """The camera's file ended: its open tracks end now and its open clip is closed (its
        ``clip_ready`` follows from :meth:`tick`)."""
        return self._dispatch(self.decider.end_of_stream(camera))

    def tick(self, now: float) -> list[Doc]:
        """Hand back finished clips (``clip_ready``/``clip_failed``); run retention every interval."""
        return self._clip_docs(self.recorder.tick(now)) if self.recorder else []

    def close(self, deadline: float) -> list[Doc]:
        """Finish open clips (until ``deadline``, wall time) and return their documents."""
        return self._clip_docs(self.recorder.close(deadline)) if self.recorder else []

    def _dispatch(self, events: list[TrackEvent]) -> list[Doc]:
        docs: list[Doc] = []
        for event in events:
            for subscriber in self.subscribers:
                subscriber.handle(event)
            if isinstance(event, ViolationDecided):
                docs.append(self._violation(event))
            elif self.recorder is not None:
                self.recorder.handle(event)
        return docs

    def _violation(self, event: ViolationDecided) -> ViolationDoc:
        camera, track, decision = event.camera, event.track, event.decision
        vid = violation_id(camera, event.seq, track.id)
        media = self.recorder.record_violation(event, vid) if self.recorder else Media()
        log.info(
            "violation %s: camera %s track %s %s (%.2f)",
            vid,
            camera,
            track.id,
            decision.label,
            decision.confidence,
        )
        return violation_document(
            camera=camera,
            seq=event.seq,
            track_id=track.id,
            label=decision.label,
            confidence=decision.confidence,
            votes=decision.votes,
            first_seen_ts=track.first_ts,
            decided_ts=event.ts,
            box=event.box,
            frame_width=event.width,
            frame_height=event.height,
            snapshot=str(media.snapshot) if media.snapshot else None,
            clip=str(media.clip) if media.clip else None,
            clip_id=media.clip_id,
            media_error=media.error,
        )

    @staticmethod
    def _clip_docs(finished: list[ClipFinished]) -> list[Doc]:
        docs: list[Doc] = []
        for item in finished:
            clip = item.clip
            for record in item.violations:
                of = ClipOf(
                    clip.camera,
                    record.seq,
                    record.track_id,
                    record.id,
                    clip.clip_id,
                    str(record.snapshot) if record.snapshot else None,
                )
                if clip.error:
                    docs.append(clip_failed_document(of, error=clip.error, reason=clip.reason))
                else:
                    docs.append(
                        clip_ready_document(
                            of,
                            path=str(clip.path),
                            duration_s=clip.duration_s,
                            frames=clip.frames,
                            size_bytes=clip.size_bytes,
                        )
                    )
        return docs
