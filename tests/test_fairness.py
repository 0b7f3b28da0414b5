"""Overload stays bounded and fair: every camera's stream gets its share of each group read, and live
streams can hand over only their newest frame (the older ones superseded, to be acked and counted)."""

from __future__ import annotations

import time
from collections import Counter

import redis

from maskwatch.core.keys import Keys
from maskwatch.runtime.group_consumer import Entry, StreamGroupConsumer

KEYS = Keys()
CAMERAS = [f"cam{i}" for i in range(8)]


def _consumer(client: redis.Redis, name: str = "c1", **kw: object) -> StreamGroupConsumer:
    c = StreamGroupConsumer(client, KEYS, "frames", "workers", name, 60_000, 0.0, **kw)  # type: ignore[arg-type]
    c.discover(force=True)
    return c


def _backlog(
    client: redis.Redis, per_camera: int, *, live: bool, cameras: list[str] = CAMERAS, first: int = 0
) -> None:
    for cam in cameras:
        client.sadd(KEYS.cameras, cam)
        for seq in range(first, first + per_camera):
            client.xadd(
                KEYS.frames(cam),
                {"camera": cam, "seq": str(seq), "live": "1" if live else "0", "image": b"x" * 64},
            )


def _seq(e: Entry) -> int:
    return int(e.fields[b"seq"])


def _process(client: redis.Redis, c: StreamGroupConsumer, entries: list[Entry]) -> None:
    """What a stage does after handling a batch: ack it (and, newest-first, the superseded ones)."""
    pipe = client.pipeline(transaction=True)
    c.ack(entries + c.take_superseded(), pipe)
    pipe.execute()


def test_a_slow_consumer_with_small_batches_serves_every_camera_its_share(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 40, live=False)
    c = _consumer(client)
    served: Counter[str] = Counter()
    for _ in range(20):  # 20 batches of 3 out of 320 waiting frames: the backlog never clears
        batch = c.read(3, 0)
        assert len(batch) == 3
        served.update(KEYS.camera_of(e.stream) for e in batch)
        _process(client, c, batch)
        time.sleep(0.005)  # a slow consumer
    shares = [served[cam] for cam in CAMERAS]
    assert sum(shares) == 60
    assert min(shares) > 0 and max(shares) <= 2 * min(shares), served


def test_one_read_fills_a_batch_across_cameras(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 10, live=False)
    c = _consumer(client)
    batch = c.read(16, 100)
    assert len(batch) == 16
    assert Counter(KEYS.camera_of(e.stream) for e in batch) == {cam: 2 for cam in CAMERAS}


def test_newest_first_returns_each_live_cameras_newest_frame_and_the_older_ones_as_superseded(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 150, live=True, cameras=CAMERAS[:4])  # more than one drain read per stream
    c = _consumer(client, newest_first=True)
    batch = c.read(16, 100)
    assert sorted((KEYS.camera_of(e.stream), _seq(e)) for e in batch) == [(cam, 149) for cam in CAMERAS[:4]]
    superseded = c.take_superseded()
    assert Counter(KEYS.camera_of(e.stream) for e in superseded) == {cam: 149 for cam in CAMERAS[:4]}
    assert all(e.fields[b"image"] == b"x" * 64 for e in superseded), "kept whole: their results need them"
    assert c.take_superseded() == [], "handed over once"
    _process(client, c, batch + superseded)
    for cam in CAMERAS[:4]:
        assert client.xlen(KEYS.frames(cam)) == 0
        assert client.xpending(KEYS.frames(cam), "workers")["pending"] == 0
    _backlog(client, 1, live=True, cameras=CAMERAS[:1], first=150)  # a single new frame: returned as is
    assert [_seq(e) for e in c.read(16, 100)] == [150]
    assert c.take_superseded() == []


def test_newest_first_never_supersedes_file_streams(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 6, live=False, cameras=["file0"])
    _backlog(client, 6, live=True, cameras=["live0"])
    c = _consumer(client, newest_first=True)
    got: dict[str, list[int]] = {"file0": [], "live0": []}
    while batch := c.read(4, 0):
        for e in batch:
            got[KEYS.camera_of(e.stream)].append(_seq(e))
        _process(client, c, batch)
    assert got == {"file0": [0, 1, 2, 3, 4, 5], "live0": [5]}


def test_without_newest_first_every_entry_comes_in_order_per_stream(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 25, live=True, cameras=CAMERAS[:5])
    _backlog(client, 7, live=False, cameras=CAMERAS[5:])
    c = _consumer(client, "publisher")
    got: dict[str, list[int]] = {cam: [] for cam in CAMERAS}
    while batch := c.read(6, 0):
        for e in batch:
            got[KEYS.camera_of(e.stream)].append(_seq(e))
        _process(client, c, batch)
    assert c.take_superseded() == []
    assert got == {cam: list(range(25 if cam in CAMERAS[:5] else 7)) for cam in CAMERAS}


def test_own_pending_is_read_once_after_a_restart_then_new_entries(redis_url):
    client = redis.Redis.from_url(redis_url)
    _backlog(client, 5, live=False, cameras=CAMERAS[:3])
    first = _consumer(client, "w1")
    delivered = first.read(6, 0)  # delivered, never acked: the consumer "crashed"
    assert len(delivered) == 6
    _backlog(client, 1, live=False, cameras=CAMERAS[:3], first=5)
    again = _consumer(client, "w1")  # same name, restarted
    seen: list[tuple[str, int]] = []
    while batch := again.read(2, 0):
        seen += [(KEYS.camera_of(e.stream), _seq(e)) for e in batch]
        _process(client, again, batch)
    assert sorted(seen[:6]) == sorted((KEYS.camera_of(e.stream), _seq(e)) for e in delivered)
    assert len(seen) == len(set(seen)) == 18, "each entry once: own pending first, then the rest"
