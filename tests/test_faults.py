"""Faults with real services: RTSP server restarts, a worker killed mid-batch, Redis restarts, slow consumers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis

from maskwatch.core.keys import Keys
from maskwatch.ingest.camera import CameraState
from maskwatch.ingest.service import IngestService
from maskwatch.publisher.service import PublisherService
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings, read_events, running, wait_for

KEYS = Keys()
BARE = "bare_then_masked_720p.mp4"


def test_rtsp_source_streams_and_reconnects_after_server_restart(redis_url, weights_dir, rtsp_server):
    cams = [{"id": "rtsp", "url": rtsp_server.url, "fps": 5, "open_timeout_s": 3, "stall_timeout_s": 2}]
    s = make_settings(redis_url, weights_dir, cameras=cams)
    client = redis.Redis.from_url(redis_url)
    ingest = IngestService.from_settings(s)
    with running(ingest), running(WorkerService.from_settings(s)), running(PublisherService.from_settings(s)):
        wait_for(lambda: len(read_events(client)) >= 5, 60, what="5 events from RTSP")
        reader = ingest.readers[0]
        rtsp_server.stop()
        wait_for(
            lambda: reader.state in (CameraState.BACKOFF, CameraState.CONNECTING),
            20,
            what="camera noticed the outage",
        )
        before = len(read_events(client))
        rtsp_server.start()
        wait_for(
            lambda: len(read_events(client)) >= before + 5, 60, what="frames flowing again after restart"
        )
        assert reader.stats.reconnects >= 1
    seqs = [e["seq"] for e in read_events(client)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (
        "sequence numbers continue across the reconnect"
    )
    assert all(e["camera"] == "rtsp" and e["width"] == 1280 for e in read_events(client))


def test_worker_killed_mid_batch_is_reclaimed_without_loss_or_duplicates(redis_url, weights_dir, videos):
    cams = [{"id": "cam", "url": str(videos / BARE), "fps": 5}]
    s = make_settings(
        redis_url,
        weights_dir,
        cameras=cams,
        ingest={"file_max_backlog": 1000},
        worker={"claim_idle_ms": 1000},
    )
    client = redis.Redis.from_url(redis_url)
    ingest = IngestService.from_settings(s)
    with running(ingest):
        wait_for(lambda: ingest.finished, 60, what="file ingested")
    assert client.xlen(KEYS.frames("cam")) == 46  # 45 frames + end-of-file marker

    env = os.environ | {
        "MASKWATCH_REDIS_URL": redis_url,
        "MASKWATCH_DETECTOR__WEIGHTS_DIR": str(weights_dir),
        "MASKWATCH_WORKER__METRICS_PORT": "0",
        "MASKWATCH_WORKER__MAX_BATCH": "8",
        "MASKWATCH_WORKER__CONSUMER": "doomed",
    }
    doomed = subprocess.Popen(
        [sys.executable, "-m", "maskwatch.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: _pending(client, KEYS.frames("cam")) > 0,
            120,
            0.005,
            what="the doomed worker to take a batch",
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    finally:
        doomed.kill()
    pending = client.xpending(KEYS.frames("cam"), "workers")["pending"]
    assert pending > 0, "killed mid-batch: its batch is still pending"

    survivor = WorkerService.from_settings(s)
    publisher = PublisherService.from_settings(s)
    with running(survivor), running(publisher):
        wait_for(lambda: publisher.done(["cam"]), 90, what="every frame published")
        time.sleep(0.5)
    events = read_events(client)
    assert sorted(e["seq"] for e in events) == list(range(45)), "no frame lost, none duplicated"
    assert survivor.stats.reclaimed >= 1
    assert client.xpending(KEYS.frames("cam"), "workers")["pending"] == 0


def _pending(client: redis.Redis, stream: str) -> int:
    try:
        return client.xpending(stream, "workers")["pending"]
    except redis.ResponseError:  # the worker has not created its group yet
        return 0


def test_every_stage_survives_a_redis_restart(own_redis, weights_dir, videos):
    cams = [{"id": "loop", "url": str(videos / BARE), "fps": 10, "loop": True}]
    s = make_settings(own_redis.url, weights_dir, cameras=cams)
    client = redis.Redis.from_url(own_redis.url)
    services = [
        IngestService.from_settings(s),
        WorkerService.from_settings(s),
        PublisherService.from_settings(s),
    ]
    with running(services[0]) as a, running(services[1]) as b, running(services[2]) as c:
        wait_for(lambda: len(read_events(client)) >= 5, 60, what="events before the restart")
        own_redis.restart()  # every key is gone: groups, streams, dedup markers
        wait_for(lambda: len(read_events(client)) >= 5, 90, interval=0.3, what="events after the restart")
        assert all(o["thread"].is_alive() for o in (a, b, c)), "no stage crashed"
    assert all(s.stats.frames_published > 0 for s in services[0].readers)


def test_live_source_with_slow_worker_keeps_stream_bounded_and_counts_drops(redis_url, weights_dir, videos):
    cams = [{"id": "live", "url": str(videos / BARE), "kind": "live", "fps": 30}]
    s = make_settings(
        redis_url, weights_dir, cameras=cams, ingest={"stream_max_len": 20}, worker={"max_batch": 1}
    )
    client = redis.Redis.from_url(redis_url)
    ingest, worker = IngestService.from_settings(s), WorkerService.from_settings(s)
    lengths = []
    with running(ingest), running(worker):
        reader = wait_for(lambda: ingest.readers and ingest.readers[0], 10, what="reader")
        wait_for(
            lambda: reader.stats.frames_published >= 400, 120, interval=0.05, what="400 frames published"
        )
        for _ in range(20):
            lengths.append(client.xlen(KEYS.frames("live")))
            time.sleep(0.02)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the bound is max_len + 100.
    assert max(lengths) <= 20 + 100
    assert reader.stats.frames_dropped > 0, "the slow worker made the ingest drop the oldest frames"
    processed = worker.stats.frames
    assert processed < reader.stats.frames_published
    # every published frame is processed, skipped by the worker (superseded by a newer one: newest
    # first), dropped by the ingest, or still waiting: none is lost without a count
    assert (
        processed + worker.stats.skipped + reader.stats.frames_dropped + client.xlen(KEYS.frames("live"))
        >= reader.stats.frames_published
    )
