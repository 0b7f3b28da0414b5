"""Per-camera face tracking across processed frames: IoU and motion association with a maximum age.

Each track predicts its next box from a smoothed constant velocity; faces are matched to
tracks greedily, first by IoU with the predicted box, then (for fast or jittery faces) by the
distance of box centres measured in face widths. A track that finds no face for more than
``max_age_frames`` processed frames ends, so a face hidden for a few frames keeps its track.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maskwatch.config.violations import ViolationSettings
from maskwatch.core.faces import Faces, iou_matrix
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.decide import AgreementRule, Decision

TRACK_INDEX_BITS = 16


def track_key(seq: int, index: int) -> int:
    """The integer id a track carries in :attr:`Faces.track_ids`: its first frame and face index."""
    return (seq << TRACK_INDEX_BITS) | index


def track_name(key: int) -> str:
    """The public track id ``"<first seq>-<face index>"`` of a track key ("" for no track)."""
    key = int(key)
    if key < 0:
        return ""
    return f"{key >> TRACK_INDEX_BITS}-{key & ((1 << TRACK_INDEX_BITS) - 1)}"


@dataclass
class Track:
    """The state of one face followed across frames of one camera (its faces are rows of a :class:`Faces`).

    ``key`` is what :attr:`Faces.track_ids` holds; ``id`` (``"<first seq>-<face index>"``) is its public
    form: unique per camera and the same when the same results are replayed after a restart.
    """

    key: int
    first_seq: int
    first_ts: float
    box: np.ndarray
    last_seq: int
    last_ts: float
    last_frame: int
    history: deque[np.ndarray]
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    decision: Decision | None = None
    first_decision: Decision | None = None
    violation_raised: bool = False
    best_by_label: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Per class the face showed (its highest probability): the best (quality, seq) of that class."""

    @property
    def best_seq(self) -> int:
        """The seq of the track's best frame of any class (largest face x detector score); -1: none."""
        return max(self.best_by_label.values(), default=(-1.0, -1))[1]

    @property
    def id(self) -> str:
        return track_name(self.key)

    def predicted_box(self, frame: int) -> np.ndarray:
        """The box expected at processed frame number ``frame`` (constant velocity)."""
        return self.box + self.velocity * (frame - self.last_frame)

    @property
    def label(self) -> str | None:
        """The decided class, or None while undecided."""
        return self.decision.label if self.decision else None


@dataclass(frozen=True)
class TrackerUpdate:
    """What one frame did: its faces with ``track_ids`` filled in, row ``i``'s track in ``tracks[i]``,
    which rows started a track (``new``) or changed its decision (``changed``), and the tracks that ended."""

    faces: Faces
    tracks: list[Track]
    new: np.ndarray
    changed: np.ndarray
    ended: list[Track]


class FaceTracker:
    """Tracks the faces of one camera; feed it every processed frame in order with :meth:`update`."""

    def __init__(
        self,
        classes: Sequence[str],
        rule: AgreementRule,
        *,
        iou_threshold: float,
        max_center_shift: float,
        max_age_frames: int,
        velocity_smoothing: float = 0.5,
    ):
        self.classes = tuple(classes)
        self.rule = rule
        self.iou_threshold = iou_threshold
        self.max_center_shift = max_center_shift
        self.max_age_frames = max_age_frames
        self.velocity_smoothing = velocity_smoothing
        self.tracks: list[Track] = []
        self.frame = 0

    @classmethod
    def from_settings(cls, violations: ViolationSettings, classes: Sequence[str] = CLASSES) -> FaceTracker:
        """A tracker of the ``violations`` settings (matching, ``max_age_frames`` and the agreement rule)."""
        return cls(
            classes,
            AgreementRule.from_settings(violations),
            iou_threshold=violations.iou_threshold,
            max_center_shift=violations.max_center_shift,
            max_age_frames=violations.max_age_frames,
        )

    def _associate(self, boxes: np.ndarray) -> dict[int, int]:
        """Greedy face -> track assignment: IoU with the predicted box first, then centre distance."""
        if not self.tracks or not len(boxes):
            return {}
        predicted = np.stack([t.predicted_box(self.frame) for t in self.tracks])
        ious = iou_matrix(boxes, predicted)
        pairs: dict[int, int] = {}
        used: set[int] = set()
        for flat in np.argsort(-ious, axis=None):
            d, t = divmod(int(flat), len(self.tracks))
            if ious[d, t] < self.iou_threshold:
                break
            if d in pairs or t in used:
                continue
            pairs[d] = t
            used.add(t)
        if self.max_center_shift <= 0:
            return pairs
        centers_d = (boxes[:, :2] + boxes[:, 2:]) / 2
        centers_t = (predicted[:, :2] + predicted[:, 2:]) / 2
        widths_d = (boxes[:, 2] - boxes[:, 0]).clip(1)
        widths_t = (predicted[:, 2] - predicted[:, 0]).clip(1)
        scale = np.maximum(widths_d[:, None], widths_t[None, :])
        dist = np.linalg.norm(centers_d[:, None, :] - centers_t[None, :, :], axis=2) / scale
        size_ratio = np.maximum(widths_d[:, None], widths_t[None, :]) / np.minimum(
            widths_d[:, None], widths_t[None, :]
        )
        dist[size_ratio > 2.0] = np.inf
        for flat in np.argsort(dist, axis=None):
            d, t = divmod(int(flat), len(self.tracks))
            if dist[d, t] > self.max_center_shift:
                break
            if d in pairs or t in used:
                continue
            pairs[d] = t
            used.add(t)
        return pairs

    def update(self, faces: Faces, seq: int, ts: float) -> TrackerUpdate:
        """Add one processed frame: ``faces`` classified in :attr:`classes` order (probs (N, C)).

        A carried face (``faces.carried``: not detected in this frame, carried forward by the worker)
        keeps its track alive but is no observation: no vote, no best-frame candidate."""
        if faces.classes != self.classes or faces.probs is None:
            raise ValueError(
                f"faces must be classified in the tracker's classes {self.classes}, got {faces.classes}"
            )
        boxes = faces.boxes.astype(np.float64)
        scores = faces.scores.astype(np.float64)
        probs = faces.probs.astype(np.float64)
        self.frame += 1
        pairs = self._associate(boxes)
        tracks: list[Track] = []
        new = np.zeros(len(faces), bool)
        changed = np.zeros(len(faces), bool)
        carried = faces.carried if faces.carried is not None else np.zeros(len(faces), bool)
        for d in range(len(boxes)):
            box = boxes[d]
            if carried[d] and d in pairs:  # seen before, not detected now: keeps its track alive, no vote
                track = self.tracks[pairs[d]]
                track.last_seq, track.last_ts, track.last_frame = seq, ts, self.frame
                tracks.append(track)
                continue
            if d in pairs:
                track = self.tracks[pairs[d]]
                gap = max(self.frame - track.last_frame, 1)
                step = (box - track.box) / gap
                a = self.velocity_smoothing
                track.velocity = step if track.hits == 1 else a * track.velocity + (1 - a) * step
                track.box, track.last_seq, track.last_ts, track.last_frame = box, seq, ts, self.frame
                track.hits += 1
            else:
                track = Track(
                    key=track_key(seq, d),
                    first_seq=seq,
                    first_ts=ts,
                    box=box,
                    last_seq=seq,
                    last_ts=ts,
                    last_frame=self.frame,
                    history=deque(maxlen=self.rule.window),
                )
                self.tracks.append(track)
                new[d] = True
            if carried[d]:  # an unmatched carried face opens a track but casts no vote
                tracks.append(track)
                continue
            track.history.append(probs[d])
            quality = float((box[2] - box[0]) * (box[3] - box[1]) * scores[d])
            shown = self.classes[int(np.argmax(probs[d]))]
            if quality > track.best_by_label.get(shown, (-1.0, -1))[0]:
                track.best_by_label[shown] = (quality, seq)
            decision = self.rule.decide(track.history, self.classes)
            changed[d] = decision is not None and (
                track.decision is None or decision.label != track.decision.label
            )
            if decision is not None:
                track.decision = decision  # undecided windows keep the last decision (hysteresis)
                if track.first_decision is None:
                    track.first_decision = decision
            tracks.append(track)
        ended = [t for t in self.tracks if self.frame - t.last_frame > self.max_age_frames]
        if ended:
            self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_age_frames]
        tracked = faces.with_track_ids([t.key for t in tracks])
        return TrackerUpdate(tracked, tracks, new, changed, ended)

    def flush(self) -> list[Track]:
        """End and return every live track (the camera's stream ended)."""
        ended, self.tracks = self.tracks, []
        return ended
