"""Per-camera worker state in Redis: the class cache, carried faces, and two workers sharing a camera."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import redis

from maskwatch.core.contracts import FrameMessage, ResultMessage
from maskwatch.core.faces import Faces
from maskwatch.core.keys import Keys
from maskwatch.core.labels import CLASSES
from maskwatch.models.analysis import FaceAnalyzer
from maskwatch.runtime.group_consumer import StreamGroupConsumer
from maskwatch.runtime.heartbeat import Heartbeat
from maskwatch.runtime.stage import LoopOptions
from maskwatch.worker.camera_state import CameraState, CameraStateStore, TrackedFace
from maskwatch.worker.inference import BatchInference
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings

KEYS = Keys()
W, H = 1280, 720


class BrightSquares:
    """Finds the bright square of an image (whole frames or region crops): a detector with known answers."""

    name = "bright-squares"
    nms_iou = 0.4

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[int, ...]]] = []

    def _find(self, image: np.ndarray) -> Faces:
        ys, xs = np.nonzero(image.max(axis=2) > 200)
        if not len(xs):
            return Faces.empty()
        return Faces([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], [0.99])

    def detect(self, frames):
        self.calls.append(("full", len(frames), frames[0].shape))
        return [self._find(f) for f in frames]

    def detect_regions(self, crops):
        self.calls.append(("regions", len(crops), crops[0].shape))
        return [self._find(c) for c in crops]


class CountingClassifier:
    name, classes, placeholder = "counting", CLASSES, False

    def __init__(self) -> None:
        self.faces = 0

    def predict(self, crops):
        self.faces += len(crops)
        return np.tile(np.array([0.1, 0.85, 0.05], np.float32), (len(crops), 1))


def _jpeg(box: tuple[int, int, int, int]) -> bytes:
    image = np.zeros((H, W, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return cv2.imencode(".jpg", image)[1].tobytes()


def _state(seq, box, times, classified_ts, detected_ts):
    probs = (0.1, 0.85, 0.05)
    return CameraState(
        seq, detected_ts, CLASSES, (TrackedFace(box, 0.99, probs, times, classified_ts, detected_ts),)
    )


def test_settled_classes_are_reused_only_while_fresh_matched_and_the_same_size():
    state = _state(4, (100.0, 100.0, 200.0, 200.0), 3, 10.0, 10.0)
    kw = {"min_times": 3, "interval_s": 2.0}
    assert state.cached_probs(np.array([105, 100, 205, 200]), 11.0, **kw) == (0.1, 0.85, 0.05)
    assert state.cached_probs(np.array([105, 100, 205, 200]), 12.5, **kw) is None, "classified too long ago"
    assert state.cached_probs(np.array([300, 300, 400, 400]), 11.0, **kw) is None, "another person"
    assert state.cached_probs(np.array([90, 90, 220, 220]), 11.0, **kw) is None, "size changed > 30 %"
    unsettled = _state(4, (100.0, 100.0, 200.0, 200.0), 2, 10.0, 10.0)
    assert unsettled.cached_probs(np.array([100, 100, 200, 200]), 11.0, **kw) is None


def test_advance_counts_agreeing_classifications_and_keeps_carried_faces():
    state = _state(1, (100.0, 100.0, 200.0, 200.0), 1, 1.0, 1.0)
    probs = np.array([[0.1, 0.85, 0.05]], np.float32)
    seen = Faces([[102, 100, 202, 200]], [0.98], probs, CLASSES)
    after = state.advance(2, 2.0, seen, np.array([True]))
    assert after.seq == 2 and after.faces[0].times == 2 and after.faces[0].classified_ts == 2.0
    flipped = Faces([[102, 100, 202, 200]], [0.98], np.array([[0.9, 0.05, 0.05]], np.float32), CLASSES)
    assert state.advance(2, 2.0, flipped, np.array([True])).faces[0].times == 1
    reused = state.advance(2, 2.0, seen, np.array([False]))
    assert reused.faces[0].times == 1 and reused.faces[0].classified_ts == 1.0
    carried = state.carried(np.array([True]))
    kept = state.advance(3, 3.0, carried, np.array([False]))
    assert kept.faces == state.faces, "a carried face keeps its last detection time and cache"
    assert CameraState.from_json(after.to_json()) == after


def test_the_state_moves_only_forward_and_expires(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = CameraStateStore(client, KEYS, ttl_s=30)
    for seq in (5, 3):  # a slower worker finishing an older frame later does not move it back
        pipe = client.pipeline(transaction=True)
        store.write(pipe, {"cam": _state(seq, (0.0, 0.0, 10.0, 10.0), 1, 0.0, 0.0)})
        pipe.execute()
    assert store.read(["cam"])["cam"].seq == 5
    assert 0 < client.pttl(KEYS.worker_state("cam")) <= 30_000
    assert store.read(["other"])["other"] == CameraState()


def _worker(settings, client, name, analyzer):
    cfg = settings.worker.model_copy(update={"consumer": name})
    consumer = StreamGroupConsumer(client, KEYS, "frames", cfg.group, name, cfg.claim_idle_ms, 0.01)
    return WorkerService(
        client,
        KEYS,
        consumer,
        BatchInference(analyzer, name, cfg),
        Heartbeat.from_settings(client, settings, "worker", name),
        cfg,
        LoopOptions.from_settings(settings, "worker"),
    )


def test_two_workers_share_one_cameras_state_and_regions_follow_its_tracked_face(redis_url):
    s = make_settings(
        redis_url,
        worker={
            "regions": True,
            "max_batch": 1,
            "max_wait_ms": 0,
            "stationary_recheck_s": 0.5,
            "reclassify_interval_s": 2.0,
        },
    )
    client = redis.Redis.from_url(redis_url)
    client.sadd(KEYS.cameras, "cam")
    detector, classifier = BrightSquares(), CountingClassifier()
    analyzer = FaceAnalyzer(detector, classifier, 0.1)  # type: ignore[arg-type]
    workers = [_worker(s, client, "w1", analyzer), _worker(s, client, "w2", analyzer)]

    def frame(seq, ts, face, motion, full=False) -> ResultMessage:
        msg = FrameMessage("cam", seq, 1000.0 + ts, W, H, _jpeg(face), motion=motion, full=full)
        client.xadd(KEYS.frames("cam"), msg.to_fields())
        assert workers[seq % 2].step(block_ms=2000) == 1  # even frames on w1, odd on w2
        _, fields = client.xrevrange(KEYS.results("cam"), count=1)[0]
        return ResultMessage.from_fields(fields)

    r = frame(0, 0.0, (600, 300, 660, 360), (), full=True)
    assert r.detection == "full" and len(r.faces) == 1 and detector.calls[-1][0] == "full"
    for seq, x in ((1, 610), (2, 620), (3, 630)):  # the face walks right; motion around it
        r = frame(seq, seq * 0.1, (x, 300, x + 60, 360), ((x - 5, 295, x + 65, 365),))
        assert r.detection == "regions" and detector.calls[-1] == ("regions", 1, (320, 320, 3))
        assert len(r.faces) == 1 and not r.faces.carried.any()
        assert np.abs(r.faces.boxes[0] - [x, 300, x + 60, 360]).max() <= 3, "mapped back to frame pixels"
    assert classifier.faces == 3, "frames 0-2 classified (by either worker); frame 3 reused the settled class"
    state = CameraStateStore(client, KEYS, 60).read(["cam"])["cam"]
    assert state.seq == 3 and state.faces[0].times == 3

    calls = len(detector.calls)
    r = frame(4, 0.4, (630, 300, 690, 360), ())  # nothing moved: the face is carried, no detector call
    assert r.detection == "none" and len(detector.calls) == calls
    assert r.faces.carried.tolist() == [True] and r.labels == ["without_mask"]

    r = frame(5, 1.0, (630, 300, 690, 360), ((40, 40, 80, 80),))  # motion elsewhere; face due a re-check
    assert r.detection == "regions" and detector.calls[-1][:2] == ("regions", 2), "tracked face + motion"
    assert len(r.faces) == 1 and not r.faces.carried.any(), "found again inside its tracked region"
    assert {w.stats.frames for w in workers} == {3}


def test_a_files_state_runs_on_media_time_not_on_read_time():
    """A file is read far faster than real time: class reuse must expire by its media time (pts), and a
    replay from the start (the clock going back) classifies again."""
    from maskwatch.worker.inference import clock

    file_frame = FrameMessage("c", 40, 1000.0, 64, 48, b"j", pts=8.0)
    live_frame = FrameMessage("c", 40, 1000.0, 64, 48, b"j", pts=8.0, live=True)
    assert clock(file_frame) == 8.0 and clock(live_frame) == 1000.0
    box = np.array([100, 100, 200, 200], np.float32)
    state = _state(4, (100.0, 100.0, 200.0, 200.0), 3, 5.0, 5.0)
    kwargs = {"min_times": 3, "interval_s": 2.0}
    assert state.cached_probs(box, 6.0, **kwargs) is not None
    assert state.cached_probs(box, 7.5, **kwargs) is None, "2 s of media time passed: classify again"
    assert state.cached_probs(box, 1.0, **kwargs) is None, "a replayed file's clock went back"


def test_a_batch_runs_in_waves_each_frame_planned_from_its_cameras_earlier_frames():
    """Two cameras, two frames each, in one batch: a camera's second frame sees the face its first found
    (a still face is carried, a moving one is searched where it was), each wave one detector call across
    both cameras."""
    from maskwatch.config.stages import WorkerSettings
    from maskwatch.worker.inference import waves

    detector, classifier = BrightSquares(), CountingClassifier()
    analyzer = FaceAnalyzer(detector, classifier, 0.1)  # type: ignore[arg-type]
    inference = BatchInference(analyzer, "w", WorkerSettings(regions=True, stationary_recheck_s=5.0))
    a, b = (600, 300, 660, 360), (200, 200, 250, 250)
    moved = (215, 200, 265, 250)
    batch = [
        FrameMessage("a", 0, 1000.0, W, H, _jpeg(a), motion=(), full=True),
        FrameMessage("b", 0, 1000.0, W, H, _jpeg(b), motion=(), full=True),
        FrameMessage("b", 1, 1000.2, W, H, _jpeg(moved), motion=((225, 205, 260, 245),)),
        FrameMessage("a", 1, 1000.2, W, H, _jpeg(a), motion=()),
    ]
    assert waves(batch) == [[0, 1], [2, 3]]
    assert waves(list(reversed(batch))) == [[2, 3], [0, 1]], "by seq within a camera, whatever the order"
    results, bad, states = inference.process(batch, {})
    assert not bad and [(r.camera, r.seq) for r in results] == [("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert detector.calls == [("full", 2, (H, W, 3)), ("regions", 1, (320, 320, 3))]
    assert [r.detection for r in results] == ["full", "full", "regions", "none"]
    still, walked = results[3], results[2]
    assert still.faces.carried.tolist() == [True], "camera a's face found in its first frame is carried"
    assert len(walked.faces) == 1 and np.abs(walked.faces.boxes[0] - moved).max() <= 3
    assert {cam: s.seq for cam, s in states.items()} == {"a": 1, "b": 1}
    one_wave = BatchInference(analyzer, "w", WorkerSettings(regions=False))
    detector.calls.clear()
    assert len(one_wave.process(batch, {})[0]) == 4 and detector.calls == [("full", 4, (H, W, 3))]


def test_a_corrupt_or_hostile_state_in_redis_is_ignored_not_used(redis_url):
    """The state is read from Redis like any message: NaN, wrong shapes or garbage make an empty state."""
    import redis as redis_lib

    from maskwatch.core.keys import Keys
    from maskwatch.worker.camera_state import CameraStateStore

    client = redis_lib.Redis.from_url(redis_url)
    keys = Keys()
    face = {"box": [1, 2, 30, 40], "score": 0.9, "probs": [0.1, 0.8, 0.1], "times": 2}
    face |= {"classified_ts": 1.0, "detected_ts": 1.0}
    good = {"seq": 3, "ts": 1.0, "classes": list(CLASSES), "faces": [face]}
    bad = {
        "nan": {**good, "faces": [{**face, "box": [float("nan"), 2, 30, 40]}]},
        "shape": {**good, "faces": [{**face, "probs": [1.0]}]},
        "inverted": {**good, "faces": [{**face, "box": [30, 2, 1, 40]}]},
        "garbage": "not json at all",
    }
    client.hset(keys.worker_state("good"), "state", json.dumps(good))
    for cam, state in bad.items():
        client.hset(keys.worker_state(cam), "state", state if isinstance(state, str) else json.dumps(state))
    states = CameraStateStore(client, keys, 60).read(["good", *bad])
    assert len(states["good"].faces) == 1
    assert all(states[cam].faces == () for cam in bad)


def test_frames_a_newer_one_superseded_still_get_their_event_with_the_tracked_faces_carried(redis_url):
    """Overload: a live camera's backlog is searched only at its newest frame; every older frame still
    gets one result (``skipped``, the remembered face carried forward), in frame order, and none of them
    is decoded or searched."""
    s = make_settings(redis_url, worker={"regions": True, "max_batch": 8, "max_wait_ms": 0})
    client = redis.Redis.from_url(redis_url)
    client.sadd(KEYS.cameras, "cam")
    detector, classifier = BrightSquares(), CountingClassifier()
    analyzer = FaceAnalyzer(detector, classifier, 0.1)  # type: ignore[arg-type]
    worker = _worker(s, client, "w1", analyzer)
    worker.consumer.newest_first = True
    now = time.time()
    face = (600, 300, 660, 360)
    first = FrameMessage("cam", 0, now, W, H, _jpeg(face), live=True, motion=(), full=True)
    client.xadd(KEYS.frames("cam"), first.to_fields())
    assert worker.step(block_ms=2000) == 1
    undecodable = b"\xff\xd8" + b"\x00" * 64  # never decoded: a skipped frame costs no pixels
    for seq in range(1, 6):
        image = _jpeg(face) if seq == 5 else undecodable
        msg = FrameMessage("cam", seq, now + seq * 0.2, W, H, image, live=True, motion=(), full=seq == 5)
        fields = msg.to_fields()
        if seq < 5:  # a header the size check accepts, pixels that would not decode
            fields["image"] = _jpeg(face)[:600] + undecodable
        client.xadd(KEYS.frames("cam"), fields)
    calls = len(detector.calls)
    assert worker.step(block_ms=2000) == 5
    results = [ResultMessage.from_fields(f) for _, f in client.xrange(KEYS.results("cam"))]
    assert [r.seq for r in results] == [0, 1, 2, 3, 4, 5], "one result per frame, in frame order"
    assert [r.detection for r in results] == ["full", "skipped", "skipped", "skipped", "skipped", "full"]
    for r in results[1:5]:
        assert r.faces.carried.tolist() == [True] and r.labels == ["without_mask"]
        assert np.allclose(r.faces.boxes[0], results[0].faces.boxes[0])
    assert len(detector.calls) == calls + 1, "only the newest frame was searched"
    assert client.xlen(KEYS.deadletter) == 0
    assert worker.stats.skipped == 4 and worker.stats.frames == 2
