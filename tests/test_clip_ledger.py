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
