"""Scale-out through consumer groups: cameras found at run time, several workers sharing the work."""

from __future__ import annotations

import time

import redis

from maskwatch.core.keys import Keys
from maskwatch.ingest.service import IngestService
from maskwatch.publisher.service import PublisherService
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings, read_events, running, wait_for

KEYS = Keys()


def test_two_workers_share_cameras_discovered_after_they_started(redis_url, weights_dir, videos):
    cams = [{"id": f"cam{i}", "url": str(videos / "bare_then_masked_720p.mp4"), "fps": 3} for i in range(2)]
    s = make_settings(redis_url, weights_dir, cameras=cams, worker={"max_batch": 2})
    client = redis.Redis.from_url(redis_url)
    w1 = WorkerService.from_settings(
        s.model_copy(update={"worker": s.worker.model_copy(update={"consumer": "w1"})})
    )
    w2 = WorkerService.from_settings(
        s.model_copy(update={"worker": s.worker.model_copy(update={"consumer": "w2"})})
    )
    publisher = PublisherService.from_settings(s)
    with running(w1), running(w2), running(publisher):
        time.sleep(0.5)
        assert w1.consumer.streams == w2.consumer.streams == set(), "nothing to consume yet"
        ingest = IngestService.from_settings(s)  # cameras appear after the workers started
        with running(ingest):
            wait_for(lambda: publisher.done(["cam0", "cam1"]), 90, what="both cameras published")
    assert w1.consumer.streams == w2.consumer.streams == {KEYS.frames("cam0"), KEYS.frames("cam1")}
    assert w1.stats.frames > 0 and w2.stats.frames > 0, "both workers got work"
    assert w1.stats.frames + w2.stats.frames == 54
    events = read_events(client)
    for cam in ("cam0", "cam1"):
        assert sorted(e["seq"] for e in events if e["camera"] == cam) == list(range(27))
    assert {e["models"]["detector"] for e in events} == {w1.inference.models["detector"]}
