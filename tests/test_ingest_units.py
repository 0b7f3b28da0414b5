"""Sampling to a target rate and reconnect backoff."""

from __future__ import annotations

import random

from maskwatch.ingest.backoff import Backoff
from maskwatch.ingest.sampling import FpsSampler, FullFrameSchedule


def test_sampler_keeps_target_rate_from_30fps():
    s = FpsSampler(5)
    kept = [i for i in range(300) if s.keep(i / 30)]
    assert len(kept) == 50 and kept[:3] == [0, 6, 12]


def test_sampler_keeps_every_frame_when_source_is_slower():
    s = FpsSampler(10)
    assert all(s.keep(i / 4) for i in range(20))


def test_sampler_restarts_when_time_jumps_back():
    s = FpsSampler(1)
    assert s.keep(100.0) and not s.keep(100.5)
    assert s.keep(0.0)  # a reconnect starts timestamps over


def test_sampler_resumed_after_a_kept_frame_keeps_the_same_frames():
    times = [i / 30 for i in range(300)]
    whole = FpsSampler(5)
    kept = [t for t in times if whole.keep(t)]
    resumed = FpsSampler(5)
    resumed.resume_after(kept[9])
    assert [t for t in times if t > kept[9] and resumed.keep(t)] == kept[10:]


def test_backoff_grows_is_capped_and_jittered():
    b = Backoff(1.0, 8.0, random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[0] < 1.5 and max(delays[4:]) <= 8.0 and min(delays[4:]) >= 4.0
    b.reset()
    assert b.next_delay() < 1.5


def test_full_frame_schedule_by_clock_reopen_and_force():
    s = FullFrameSchedule(2.0)
    at = [t / 5 for t in range(25)]  # 5 fps for 5 s
    full = [t for t in at if s.due(t)]
    assert full == [0.0, 2.0, 4.0]
    assert s.due(4.2, force=True) and not s.due(6.0) and s.due(6.2)  # a forced pass restarts the interval
    assert s.due(1.0)  # the clock went back (a replayed file)
    s.reset()
    assert s.due(1.2)  # reopened: the first frame is full
    every = FullFrameSchedule(0)
    assert all(every.due(t) for t in at)


def test_the_end_of_a_file_and_its_final_state_are_written_together(redis_url):
    """The worker passes an eof on only when the camera's record says finished: a state write lost to a
    brief outage (it used to be a separate, best-effort HSET) made a genuine eof look forged."""
    import redis as redis_lib

    from maskwatch.core.contracts import EndOfStream
    from maskwatch.core.keys import Keys
    from maskwatch.ingest.frame_sink import FrameSink

    client = redis_lib.Redis.from_url(redis_url)
    keys = Keys()
    client.hset(keys.camera_state("door"), mapping={"state": "streaming", "last_seq": "44"})
    FrameSink(client, keys, 300, 64, 0.1).end(EndOfStream("door", 44, 45), "finished")
    assert client.hget(keys.camera_state("door"), "state") == b"finished"
    ((_, fields),) = client.xrange(keys.frames("door"))
    assert fields[b"kind"] == b"eof" and fields[b"seq"] == b"44"
