"""Face tracker and class decision on synthetic detections."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.config.settings import load_settings
from maskwatch.core.faces import Faces
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.decide import AgreementRule
from maskwatch.publisher.tracker import FaceTracker, iou_matrix, track_key, track_name

MASK, BARE, WRONG = (np.eye(3)[i] * 0.8 + 0.2 / 3 for i in range(3))


def make_tracker(**violations: object) -> FaceTracker:
    """A tracker of the default ``violations`` settings, with ``violations`` overriding them."""
    return FaceTracker.from_settings(load_settings(None, violations=violations).violations)


def box_at(cx: float, cy: float, size: float = 60.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def feed(tracker: FaceTracker, seq: int, boxes: list[list[float]], probs: list[np.ndarray]):
    faces = Faces(
        np.array(boxes).reshape(-1, 4), np.full(len(boxes), 0.9), np.array(probs).reshape(-1, 3), CLASSES
    )
    return tracker.update(faces, seq, seq / 5)


def test_iou_matrix_values() -> None:
    ious = iou_matrix(
        np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    )
    assert ious.shape == (1, 3)
    assert ious[0, 0] == pytest.approx(1.0) and ious[0, 1] == pytest.approx(1 / 3) and ious[0, 2] == 0


def test_two_people_crossing_keep_their_tracks() -> None:
    tracker = make_tracker(max_age_frames=3)
    ids_left_to_right, ids_right_to_left = set(), set()
    for seq in range(30):
        a = box_at(100 + 20 * seq, 300)  # walks right, masked
        b = box_at(700 - 20 * seq, 310)  # walks left, bare
        update = feed(tracker, seq, [a, b], [MASK, BARE])
        ids_left_to_right.add(update.tracks[0].id)
        ids_right_to_left.add(update.tracks[1].id)
        assert [track_name(k) for k in update.faces.track_ids] == [t.id for t in update.tracks]
    assert ids_left_to_right == {"0-0"} and ids_right_to_left == {"0-1"}
    labels = {t.id: t.label for t in tracker.tracks}
    assert labels == {"0-0": "with_mask", "0-1": "without_mask"}


def test_crossing_with_detection_order_swapped() -> None:
    tracker = make_tracker()
    for seq in range(30):
        a, b = box_at(100 + 20 * seq, 300), box_at(710 - 20 * seq, 300)  # nearly coincide at seq 15
        faces = [b, a] if seq % 2 else [a, b]  # the detector does not keep an order
        update = feed(tracker, seq, faces, [MASK, MASK])
        for index, track in enumerate(update.tracks):
            moving_right = faces[index] == a
            assert track.id == ("0-0" if moving_right else "0-1"), f"seq {seq}"


def test_face_missing_for_a_few_frames_keeps_its_track() -> None:
    tracker = make_tracker(max_age_frames=5)
    ids = set()
    for seq in range(20):
        if 8 <= seq < 12:  # occluded for 4 frames; the person keeps walking
            update = feed(tracker, seq, [], [])
            assert not update.ended
            continue
        update = feed(tracker, seq, [box_at(100 + 10 * seq, 200)], [BARE])
        ids.add(update.tracks[0].id)
    assert ids == {"0-0"}


def test_track_ends_after_max_age_and_a_new_one_starts() -> None:
    tracker = make_tracker(max_age_frames=2)
    feed(tracker, 0, [box_at(100, 100)], [BARE])
    ended = []
    for seq in range(1, 5):
        ended += feed(tracker, seq, [], []).ended
    assert [t.id for t in ended] == ["0-0"]
    update = feed(tracker, 5, [box_at(100, 100)], [BARE])
    assert update.new[0] and update.tracks[0].id == "5-0" and update.faces.track_ids[0] == track_key(5, 0)


def test_flickering_classification_is_decided_by_agreement() -> None:
    tracker = make_tracker(window_frames=5, min_votes=3, min_confidence=0.6)
    pattern = [MASK, BARE, MASK, MASK, BARE, MASK, MASK, BARE, MASK, MASK]
    decided = []
    for seq, p in enumerate(pattern):
        update = feed(tracker, seq, [box_at(300, 300)], [p])
        decided.append(update.tracks[0].label)
    assert decided[:2] == [None, None]  # one frame never decides
    assert all(label in (None, "with_mask") for label in decided)
    assert decided[-1] == "with_mask"
    assert "without_mask" not in decided


def test_low_confidence_votes_do_not_decide() -> None:
    unsure = np.array([0.3, 0.45, 0.25])
    tracker = make_tracker(window_frames=5, min_votes=3, min_confidence=0.6)
    for seq in range(10):
        update = feed(tracker, seq, [box_at(300, 300)], [unsure])
    assert update.tracks[0].label is None


def test_decision_changes_when_the_person_puts_a_mask_on() -> None:
    tracker = make_tracker()
    changes = []
    for seq in range(20):
        update = feed(tracker, seq, [box_at(300, 300)], [BARE if seq < 10 else MASK])
        if update.changed[0]:
            changes.append((seq, update.tracks[0].label))
    assert changes == [(2, "without_mask"), (12, "with_mask")]
    assert tracker.tracks[0].first_decision.label == "without_mask"


def test_agreement_rule_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="min_votes"):
        AgreementRule(window=3, min_votes=4, min_confidence=0.6)


def test_best_frame_is_the_largest_most_confident_face() -> None:
    tracker = make_tracker()
    for seq, size in enumerate([40, 80, 60]):
        feed(tracker, seq, [box_at(300, 300, size)], [BARE])
    assert tracker.tracks[0].best_seq == 1
