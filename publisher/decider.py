"""Who is where and what they wear, per camera: results in, tracked faces and lifecycle events out.

Pure (no I/O, no metrics, no files; after Frigate's ``camera/state.py``): for each result the
:class:`TrackDecider` keeps the faces inside the camera's zones, tracks them (:class:`FaceTracker`),
decides each track's class by agreement (:class:`AgreementRule`) and returns the frame's
:class:`Faces` with ``track_ids`` filled in, plus the events subscribers act on:

- :class:`FrameTracked` — first event of every result: every face (zone faces tracked, the others
  labelled ``outside_zone``), the track of each zone face, the image;
- :class:`TrackStarted` — a face no live track matched; :class:`TrackUpdated` — a track observed
  (``best``: this frame is its best so far, largest face × detector score);
- :class:`TrackDecided` — a track's decided class changed (``first``: its first decision);
- :class:`ViolationDecided` — the first time a track's decided class is a violation class: one per person;
- :class:`TrackEnded` — lost for more than ``max_age_frames`` (``reason="lost"``) or its file ended (``"eof"``);
- :class:`StreamEnded` — the camera's file ended (after its tracks' :class:`TrackEnded`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from maskwatch.config.settings import Settings
from maskwatch.core.contracts import ResultMessage
from maskwatch.core.faces import Faces
from maskwatch.core.labels import ALIASES, CLASSES
from maskwatch.core.zones import faces_in_zones
from maskwatch.publisher.decide import Decision
from maskwatch.publisher.tracker import FaceTracker, Track

Polygon = list[tuple[float, float]]
OUTSIDE_ZONE = "outside_zone"
"""The drawn label of a face outside every zone of its camera (drawn grey, blurred like the others)."""


@dataclass(frozen=True)
class FrameTracked:
    """One result, tracked: ``faces`` are the zone faces (track ids filled in, ``tracks[i]`` the track of
    row ``i``) followed by the faces outside the zones (track id ``-1``), classes in ``CLASSES`` order;
    ``labels`` is what to draw for each face (decided class, else the frame's class, or ``outside_zone``)."""

    result: ResultMessage
    faces: Faces
    labels: tuple[str, ...]
    tracks: list[Track]
    active_tracks: int
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def camera(self) -> str:
        return self.result.camera


@dataclass(frozen=True)
class TrackStarted:
    camera: str
    seq: int
    ts: float
    track: Track


@dataclass(frozen=True)
class TrackUpdated:
    camera: str
    seq: int
    ts: float
    track: Track
    best: bool
    best_of: str | None = None
    """The class this frame is the track's best frame of (largest face x score among the frames that
    showed that class), or None: snapshots show the violating class, never a better frame of another."""


@dataclass(frozen=True)
class TrackDecided:
    camera: str
    seq: int
    ts: float
    track: Track
    decision: Decision
    first: bool


@dataclass(frozen=True)
class ViolationDecided:
    """A person's violation: decided at frame ``seq`` (capture time ``ts``) of a ``width`` × ``height`` frame."""

    camera: str
    seq: int
    ts: float
    track: Track
    decision: Decision
    box: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class TrackEnded:
    camera: str
    seq: int
    ts: float
    track: Track
    reason: Literal["lost", "eof"]


@dataclass(frozen=True)
class StreamEnded:
    camera: str


TrackEvent = (
    FrameTracked | TrackStarted | TrackUpdated | TrackDecided | ViolationDecided | TrackEnded | StreamEnded
)


def canonical_faces(faces: Faces) -> Faces:
    """``faces`` classified in :data:`CLASSES` order (aliases mapped, unknown classes dropped; unclassified
    faces get all-zero rows)."""
    n = len(faces)
    if faces.classes == CLASSES and faces.probs is not None:
        return faces
    out = np.zeros((n, len(CLASSES)), np.float32)
    if faces.probs is not None:
        for j, name in enumerate(faces.classes):
            canonical = ALIASES.get(name.strip().lower())
            if canonical is not None:
                out[:, CLASSES.index(canonical)] += faces.probs[:, j]
    return faces.with_probs(out, CLASSES)


class TrackDecider:
    """Per camera: zone filter, tracker and decisions (see the module docstring).

    ``make_tracker`` builds the :class:`FaceTracker` of a camera (classes :data:`CLASSES`);
    ``violation_classes`` are the decided classes that raise a violation; ``zones`` maps a camera to
    its polygons (normalized ``(x, y)``, as the camera settings validated them; a camera without
    zones counts every face).
    """

    def __init__(
        self,
        make_tracker: Callable[[str], FaceTracker],
        *,
        violation_classes: Collection[str],
        zones: Mapping[str, Sequence[Polygon]] | None = None,
    ):
        self.make_tracker = make_tracker
        self.violation_classes = frozenset(violation_classes)
        self.zones = {camera: list(polys) for camera, polys in (zones or {}).items()}
        self.trackers: dict[str, FaceTracker] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackDecider:
        """The decider of the ``violations`` settings and each camera's (validated) ``zones``."""
        v = settings.violations
        zones = {cam.id: cam.zones for cam in settings.cameras if cam.zones}
        return cls(
            lambda camera: FaceTracker.from_settings(v),
            violation_classes=v.violation_classes,
            zones=zones,
        )

    def zones_of(self, camera: str) -> list[Polygon]:
        return self.zones.get(camera, [])

    def observe(
        self, result: ResultMessage, pixels: np.ndarray | None = None
    ) -> tuple[Faces, list[TrackEvent]]:
        """Track one new result (in order per camera): its faces with track ids, and its events
        (:class:`FrameTracked` first)."""
        camera, seq, ts = result.camera, result.seq, result.capture_ts
        faces = canonical_faces(result.faces)
        keep = faces_in_zones(faces.boxes, result.width, result.height, self.zones_of(camera))
        tracker = self.trackers.get(camera)
        if tracker is None:
            tracker = self.trackers[camera] = self.make_tracker(camera)
        update = tracker.update(faces[keep], seq, ts)
        labels: list[str] = []
        events: list[TrackEvent] = []
        for i, (track, frame_label) in enumerate(zip(update.tracks, update.faces.labels, strict=True)):
            labels.append(track.label or frame_label)
            if update.new[i]:
                events.append(TrackStarted(camera, seq, ts, track))
            best_of = next((c for c, (_q, s) in track.best_by_label.items() if s == seq), None)
            events.append(TrackUpdated(camera, seq, ts, track, best=track.best_seq == seq, best_of=best_of))
            if update.changed[i]:
                decision = track.decision
                assert decision is not None
                events.append(
                    TrackDecided(camera, seq, ts, track, decision, track.first_decision is decision)
                )
                if decision.label in self.violation_classes and not track.violation_raised:
                    track.violation_raised = True
                    events.append(
                        ViolationDecided(
                            camera, seq, ts, track, decision, track.box.copy(), result.width, result.height
                        )
                    )
        events += [TrackEnded(camera, t.last_seq, t.last_ts, t, "lost") for t in update.ended]
        outside = faces[~keep]
        every = Faces.merge([update.faces, outside]) if len(outside) else update.faces
        labels += [OUTSIDE_ZONE] * len(outside)
        frame = FrameTracked(result, every, tuple(labels), update.tracks, len(tracker.tracks), pixels)
        return every, [frame, *events]

    def end_of_stream(self, camera: str) -> list[TrackEvent]:
        """The camera's file ended: every open track ends now (``reason="eof"``), then :class:`StreamEnded`."""
        tracker = self.trackers.pop(camera, None)
        ended = tracker.flush() if tracker is not None else []
        return [*(TrackEnded(camera, t.last_seq, t.last_ts, t, "eof") for t in ended), StreamEnded(camera)]
