"""Announced clips are settled when the publisher recording them is gone (real Redis, real clip files)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import redis

from maskwatch.core.documents import violation_document
from maskwatch.core.keys import Keys
from maskwatch.publisher.clip_ledger import ClipLedger

KEYS = Keys()


def announce(client: redis.Redis, ledger: ClipLedger, clip: Path, seq: int = 7) -> dict:
    doc = violation_document(
        camera="door",
        seq=seq,
        track_id=f"{seq}-0",
        label="without_mask",
        confidence=0.9,
        votes=3,
        first_seen_ts=1.0,
        decided_ts=2.0,
        box=np.array([1.0, 2.0, 30.0, 40.0]),
        frame_width=640,
        frame_height=480,
        snapshot=None,
        clip=str(clip),
        clip_id=f"clip-{seq}",
    )
    pipe = client.pipeline()
    ledger.track([doc], pipe)
    pipe.execute()
    return dict(doc)


def write_clip(path: Path, frames: int = 6) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            out.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24"))
            )
        out.mux(stream.encode())


def test_a_restarted_publisher_fails_its_unfinished_clips_and_announces_finished_ones(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    me = KEYS.heartbeat("publisher", "p1")
    before = ClipLedger(client, KEYS.announced_clips, me)
    lost = announce(client, before, tmp_path / "never.mp4", seq=7)
    done = announce(client, before, tmp_path / "done.mp4", seq=9)
    write_clip(tmp_path / "done.mp4")
    settled = ClipLedger(client, KEYS.announced_clips, me)  # the same publisher, restarted
    docs = {d["violation_id"]: d for d in settled.orphans()}
    assert docs[lost["id"]]["type"] == "clip_failed" and docs[lost["id"]]["reason"] == "publisher_stopped"
    assert docs[done["id"]]["type"] == "clip_ready" and docs[done["id"]]["frames"] == 6
    assert client.hlen(KEYS.announced_clips) == 0 and settled.orphans() == []


def test_a_live_peer_keeps_its_clips_and_a_dead_one_is_settled_once(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    peer = KEYS.heartbeat("publisher", "peer")
    client.set(peer, "{}", ex=30)
    announce(client, ClipLedger(client, KEYS.announced_clips, peer), tmp_path / "peer.mp4")
    a = ClipLedger(client, KEYS.announced_clips, KEYS.heartbeat("publisher", "a"))
    b = ClipLedger(client, KEYS.announced_clips, KEYS.heartbeat("publisher", "b"))
    assert a.orphans() == [] and b.orphans() == [], "the peer is alive and still recording"
    client.delete(peer)  # its heartbeat expired
    docs = a.orphans() + b.orphans()
    assert [d["type"] for d in docs] == ["clip_failed"]
    client.hset(KEYS.announced_clips, "v", b"{not json")
    assert a.orphans() == [] and client.hlen(KEYS.announced_clips) == 0, "an unreadable entry is dropped"


def test_a_published_clip_document_settles_its_announcement(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    ledger = ClipLedger(client, KEYS.announced_clips, KEYS.heartbeat("publisher", "p"))
    doc = announce(client, ledger, tmp_path / "x.mp4")
    assert client.hlen(KEYS.announced_clips) == 1
    pipe = client.pipeline()
    ledger.track([{"type": "clip_ready", "violation_id": doc["id"]}], pipe)
    pipe.execute()
    assert client.hlen(KEYS.announced_clips) == 0


def _frame_results(camera: str, frames: int) -> list:
    from tests.test_violations import BARE_VIDEO, bare_then_masked_script, make_results

    return make_results(camera, Path(_videos()) / BARE_VIDEO, bare_then_masked_script)[:frames]


def _videos() -> Path:
    import tempfile

    from tests.conftest import shared_path
    from tests.support.media import make_stand_in_videos

    shared = shared_path("data", "videos")
    if shared.is_dir():
        return shared
    folder = Path(tempfile.mkdtemp(prefix="ledger-videos-"))
    return make_stand_in_videos(folder)


def test_a_publisher_killed_before_the_post_roll_ends_is_followed_by_clip_failed(redis_url, tmp_path):
    """The violation announced a clip; the publisher was SIGKILLed while recording it. The publisher that
    takes over (here a new process with the same instance name) sends clip_failed for it at start."""
    import json
    import signal
    import subprocess
    import sys

    from tests.support.pipeline import wait_for

    client = redis.Redis.from_url(redis_url)
    camera = "killed-mid-clip"
    for r in _frame_results(camera, 20):  # a bare face from seq 3: a violation, its clip still open
        client.xadd(KEYS.results(camera), r.to_fields())
    env = {
        **__import__("os").environ,
        "MASKWATCH_REDIS_URL": redis_url,
        "MASKWATCH_INSTANCE": "publisher-a",
        "MASKWATCH_PUBLISHER__METRICS_PORT": "0",
        "MASKWATCH_CLIPS__DIR": str(tmp_path / "clips"),
        "MASKWATCH_CLIPS__POST_ROLL_S": "60",  # the clip cannot end before the kill
    }

    def documents() -> list[dict]:
        return [json.loads(f[b"event"]) for _, f in client.xrange(KEYS.violations)]

    def publisher() -> subprocess.Popen:
        cmd = [sys.executable, "-m", "maskwatch.cli", "publisher"]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    first = publisher()
    try:
        wait_for(lambda: any(d["type"] == "violation" for d in documents()), 60, what="the violation")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (violation,) = [d for d in documents() if d["type"] == "violation"]
    assert violation["clip"] and not Path(violation["clip"]).exists()
    second = publisher()
    try:
        wait_for(lambda: any(d["type"] == "clip_failed" for d in documents()), 60, what="clip_failed")
    finally:
        second.terminate()
        second.communicate(timeout=30)
    (failed,) = [d for d in documents() if d["type"] == "clip_failed"]
    assert failed["violation_id"] == violation["id"] and failed["reason"] == "publisher_stopped"
    assert client.hlen(KEYS.announced_clips) == 0


def test_frame_dedup_is_a_bounded_window_per_camera(redis_url):
    from maskwatch.publisher.sink import EventSink

    client = redis.Redis.from_url(redis_url)
    sink = EventSink(client, dedup_ttl_s=3600, dedup_window=32)

    def publish(*seqs: int) -> list[int]:
        pipe = client.pipeline(transaction=False)
        for seq in seqs:
            doc = {"id": f"frame-{seq}", "camera": "cam", "seq": seq}
            sink.publish_frame(
                doc, KEYS.published("cam"), KEYS.events, 10_000, KEYS.events_channel("cam"), pipe
            )
        return pipe.execute()

    assert publish(*range(100)) == [1] * 100
    assert publish(99, 80) == [0, 0], "redelivered within the window: refused"
    assert publish(60) == [-1], "older than the window: taken as published"
    assert publish(101, 100) == [1, 1], "out of order within the window: both published once"
    assert client.zcard(KEYS.published("cam")) <= 32 and 0 < client.ttl(KEYS.published("cam")) <= 3600
    assert client.xlen(KEYS.events) == 102
    assert not client.keys(KEYS.dedup("*")), "frame events leave no per-id markers"
