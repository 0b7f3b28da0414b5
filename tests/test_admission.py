"""Overload: a worker that cannot search every live frame in time searches what it can, fairly, and
every frame still gets its event."""

from __future__ import annotations

import time
from collections import Counter

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
from maskwatch.worker.admission import BATCH_SHARE, SearchBudget
from maskwatch.worker.inference import BatchInference
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings

KEYS = Keys()
CAMERAS = [f"cam{i}" for i in range(8)]


class SlowDetector:
    """Finds one fixed face per frame and takes ``seconds`` per frame: a worker that cannot keep up."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.frames = 0

    def detect(self, frames):
        time.sleep(self.seconds * len(frames))
        self.frames += len(frames)
        return [Faces([[10, 10, 50, 50]], [0.99]) for _ in frames]


class FixedClassifier:
    name, classes, placeholder = "fixed", CLASSES, False

    def predict(self, crops):
        return np.tile(np.array([0.1, 0.85, 0.05], np.float32), (len(crops), 1))


def _frame(cam: str, seq: int, ts: float, live: bool = True) -> FrameMessage:
    jpeg = cv2.imencode(".jpg", np.zeros((120, 160, 3), np.uint8))[1].tobytes()
    return FrameMessage(cam, seq, ts, 160, 120, jpeg, live=live)


def test_the_budget_admits_what_fits_least_recently_searched_cameras_first_and_always_one():
    now = [1000.0]
    budget = SearchBudget(1.0, cost_s=0.01, clock=lambda: now[0])
    units = BATCH_SHARE / 2.5 / 0.01  # two such frames fit in a batch's share of the target, three do not
    frames = [_frame(c, 0, now[0] - 0.1) for c in CAMERAS[:4]]
    search, late = budget.admit(frames, lambda f: units)
    assert [f.camera for f in search] == ["cam0", "cam1"]
    assert [f.camera for f in late] == ["cam2", "cam3"]
    now[0] += 0.5
    search, _ = budget.admit([_frame(c, 1, now[0] - 0.1) for c in CAMERAS[:4]], lambda f: units)
    assert [f.camera for f in search] == ["cam2", "cam3"], "the cameras left out go first next time"
    old = [_frame(c, 2, now[0] - 0.95) for c in CAMERAS[:2]]
    assert len(budget.admit(old, lambda f: units)[0]) == 1, "the event of the second would come too late"
    files = [_frame("cam0", 2, 0.0, live=False), _frame("cam1", 2, 0.0, live=False)]
    assert budget.admit(files, lambda f: units) == (files, []), "a file's frames are always searched"
    still = [_frame(c, 3, now[0]) for c in CAMERAS]
    assert budget.admit(still, lambda f: 0.0) == (still, []), "frames that search nothing cost nothing"
    assert len(budget.admit(frames, lambda f: 1e6)[0]) == 1, "at least one frame per batch is searched"
    budget.observe(1.2, 60.0, overhead_s=0.05)
    assert 0.01 < budget.cost_s < 0.02 and 0 < budget.overhead_s < 0.05


def test_eight_cameras_on_one_slow_worker_share_the_searches_and_every_frame_gets_its_event(redis_url):
    s = make_settings(redis_url, worker={"max_batch": 16, "max_wait_ms": 0, "latency_target_s": 0.6})
    client = redis.Redis.from_url(redis_url)
    detector = SlowDetector(0.1)  # 8 fresh frames a round, about 3 fit in half the 0.6 s target
    analyzer = FaceAnalyzer(detector, FixedClassifier(), 0.1)  # type: ignore[arg-type]
    cfg = s.worker
    consumer = StreamGroupConsumer(
        client, KEYS, "frames", cfg.group, "w1", cfg.claim_idle_ms, 0.0, newest_first=True
    )
    worker = WorkerService(
        client,
        KEYS,
        consumer,
        BatchInference(analyzer, "w1", cfg),
        Heartbeat.from_settings(client, s, "worker", "w1"),
        cfg,
        LoopOptions.from_settings(s, "worker"),
    )
    for cam in CAMERAS:
        client.sadd(KEYS.cameras, cam)
    rounds = 8
    for seq in range(rounds):
        for cam in CAMERAS:
            client.xadd(KEYS.frames(cam), _frame(cam, seq, time.time()).to_fields())
        consumer.discover(force=True)
        assert worker.step(block_ms=1000) == len(CAMERAS)
    searched: Counter[str] = Counter()
    for cam in CAMERAS:
        results = [ResultMessage.from_fields(f) for _, f in client.xrange(KEYS.results(cam))]
        assert [r.seq for r in results] == list(range(rounds)), f"{cam}: one event per frame, in order"
        searched[cam] = sum(r.detection == "full" for r in results)
        for r in results:
            if r.detection == "skipped" and searched[cam]:
                assert len(r.faces) <= 1 and r.faces.carried.all()
    shares = [searched[c] for c in CAMERAS]
    assert min(shares) >= 1 and max(shares) <= 2 * min(shares), searched
    assert detector.frames < rounds * len(CAMERAS) / 2, "overloaded: most frames were not searched"
