"""Hostile or broken input never stops a stage: real Redis, the real stages (objects from ``from_settings``
and ``maskwatch`` processes). Whatever a message holds, it is dead-lettered with its reason and counted,
the rest carries on, and no event holds a NaN."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from maskwatch.core.contracts import EndOfStream, FrameMessage, ResultMessage
from maskwatch.core.faces import Faces
from maskwatch.core.keys import Keys
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.service import PublisherService
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings, read_events, running, wait_for

KEYS = Keys()
T0 = 1_764_000_000.0
Fields = dict[str, Any]


def _result(camera: str, seq: int) -> Fields:
    faces = Faces(
        np.array([[1, 2, 30, 40]], np.float32),
        np.array([0.9], np.float32),
        np.array([[0.1, 0.8, 0.1]]),
        CLASSES,
    )
    msg = ResultMessage(camera, seq, T0 + seq, 64, 48, T0 + seq + 0.5, faces, {"detector": "t"})
    return dict(msg.to_fields())


def _data(**changes: Any) -> Callable[[Fields], Fields]:
    def mutate(fields: Fields) -> Fields:
        data = json.loads(fields["data"])
        data.update(changes)
        return fields | {"data": json.dumps(data)}

    return mutate


def _field(**changes: str) -> Callable[[Fields], Fields]:
    return lambda fields: fields | changes


NAN = float("nan")
HOSTILE_RESULTS: dict[str, Callable[[Fields], Fields]] = {
    "models a string": _data(models="retinaface"),
    "models a list of pairs": _data(models=[["detector", "x"]]),
    "models a list": _data(models=[1, 2]),
    "models not text": _data(models={"detector": {"nested": 1}}),
    "classes empty": _data(classes=[], probs=[[]]),
    "classes repeated": _data(classes=["a", "a", "a"]),
    "ts NaN": _field(ts="nan"),
    "ts 1e20": _field(ts="1e20"),
    "ts infinite": _field(ts="inf"),
    "processed ts NaN": _field(pts_done="nan"),
    "box NaN": _data(boxes=[[NAN, 2, 30, 40]]),
    "box outside the frame": _data(boxes=[[0, 0, 1e30, 1e30]]),
    "box upside down": _data(boxes=[[30, 40, 1, 2]]),
    "score NaN": _data(scores=[NAN]),
    "score above 1": _data(scores=[7.0]),
    "probs NaN": _data(probs=[[NAN, 0.5, 0.5]]),
    "boxes as text": _data(boxes=[["1", "2", "30", "40"]]),
    "width negative": _field(w="-5"),
    "height huge": _field(h="100000000"),
    "seq negative": _field(seq="-3"),
    "data a list": _field(data="[1]"),
    "data nested deeply": _field(data="[" * 100_000 + "]" * 100_000),
    "detection a number": _data(detection=5),
    "placeholder a string": _data(placeholder="no"),
    "camera of another stream": _field(camera="other"),
    "camera not an id": _field(camera="../../etc"),
    "encoding unknown": _field(enc="gif", img="GIF89a"),
}


def _strict_json(text: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"an event holds {name}")

    return json.loads(text, parse_constant=refuse)


def _deadletters(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [f for _, f in client.xrange(KEYS.deadletter)]


def _counted(stage: str, reason: str) -> float:
    return REGISTRY.get_sample_value("maskwatch_deadletter_total", {"stage": stage, "reason": reason}) or 0.0


def test_hostile_results_are_dead_lettered_one_by_one_and_the_rest_is_published(redis_url):
    """Each hostile result used to raise outside ContractError (and kill the publisher) or publish NaN."""
    s = make_settings(redis_url)
    client = redis.Redis.from_url(redis_url)
    stream = KEYS.results("cam")
    seq = 0
    for mutate in HOSTILE_RESULTS.values():
        client.xadd(stream, _result("cam", seq))  # a good one before each hostile one
        client.xadd(stream, mutate(_result("cam", seq + 1)))
        seq += 2
    client.xadd(stream, EndOfStream("cam", seq - 2, 200).to_fields())  # more frames than seq numbers
    client.xadd(stream, EndOfStream("other", seq - 2, 1).to_fields())  # another camera's end
    before = _counted("publisher", "malformed")
    publisher = PublisherService.from_settings(s)
    publisher.run_until_idle(max_s=60)
    publisher.close(time.time() + 5)

    events = [_strict_json(f[b"event"]) for _, f in client.xrange(KEYS.events)]
    assert sorted(e["seq"] for e in events) == list(range(0, seq, 2)), "every good result, no hostile one"
    letters = _deadletters(client)
    assert len(letters) == len(HOSTILE_RESULTS) + 2, [f[b"reason"] for f in letters]
    assert all(f[b"stage"] == b"publisher" and f[b"reason"] for f in letters)
    reasons = [f[b"reason"].decode() for f in letters]
    assert any("differs from its stream's camera 'cam'" in r for r in reasons)
    assert any("200 frames up to seq" in r for r in reasons)
    assert _counted("publisher", "malformed") - before == len(HOSTILE_RESULTS) + 2
    assert publisher.stats.ended == {}, "neither end of stream is believed"
    assert client.xlen(stream) == 0 and client.xpending(stream, "publishers")["pending"] == 0
    for raw in client.xrange(KEYS.violations):
        _strict_json(raw[1][b"event"])


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    return os.environ | {
        "MASKWATCH_REDIS_URL": redis_url,
        "MASKWATCH_PUBLISHER__METRICS_PORT": "0",
        "MASKWATCH_API__PORT": "0",
        **extra,
    }


def _publisher_process(redis_url: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "maskwatch.cli", "publisher"],
        env=_env(redis_url, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def test_a_hostile_result_does_not_kill_a_publisher_process(redis_url):
    """``models`` as a string killed the publisher with a ValueError; re-claimed every ~33 s, it killed
    every new publisher too (a crash loop)."""
    client = redis.Redis.from_url(redis_url)
    stream = KEYS.results("cam")
    client.xadd(stream, _data(models="retinaface")(_result("cam", 0)))
    client.xadd(stream, _field(ts="nan")(_result("cam", 1)))
    client.xadd(stream, _result("cam", 2))
    proc = _publisher_process(redis_url)
    try:
        wait_for(lambda: len(read_events(client)) == 1 or proc.poll() is not None, 60, what="the good event")
        assert proc.poll() is None, "the publisher died"
        client.xadd(stream, _result("cam", 3))
        wait_for(lambda: len(read_events(client)) == 2 or proc.poll() is not None, 30, what="a later event")
        assert proc.poll() is None, "the publisher died"
    finally:
        err = _stop(proc)
    assert [e["seq"] for e in read_events(client)] == [2, 3], err[-2000:]
    assert [f[b"msg.seq"] for f in _deadletters(client)] == [b"0", b"1"]


def test_a_message_delivered_max_deliveries_times_is_dead_lettered_by_a_fresh_publisher_process(redis_url):
    """A result that killed five publishers in turn (its delivery count raised with XCLAIM, as each
    publisher's reclaim would) is not handled a sixth time: it goes to the dead-letter stream."""
    client = redis.Redis.from_url(redis_url)
    stream = KEYS.results("cam")
    client.xgroup_create(stream, "publishers", id="0", mkstream=True)
    doomed = client.xadd(stream, _result("cam", 0))
    client.xreadgroup("publishers", "crashed-0", {stream: ">"})
    for n in range(1, 5):  # four more publishers took it and died
        client.xclaim(stream, "publishers", f"crashed-{n}", 0, [doomed])
    assert client.xpending_range(stream, "publishers", "-", "+", 1)[0]["times_delivered"] == 5
    time.sleep(0.3)
    client.xadd(stream, _result("cam", 1))
    proc = _publisher_process(
        redis_url, MASKWATCH_PUBLISHER__CLAIM_IDLE_MS="200", MASKWATCH_PUBLISHER__MAX_DELIVERIES="5"
    )
    try:
        wait_for(lambda: _deadletters(client) or proc.poll() is not None, 60, what="the dead letter")
        wait_for(lambda: read_events(client) or proc.poll() is not None, 30, what="the other result")
        assert proc.poll() is None, "the publisher died"
    finally:
        err = _stop(proc)
    letters = _deadletters(client)
    assert len(letters) == 1, [(f[b"reason"], f[b"msg.seq"]) for f in letters]
    (letter,) = letters
    assert letter[b"reason"].startswith(b"delivered 6 times (publisher.max_deliveries 5)"), err[-2000:]
    assert letter[b"msg.seq"] == b"0" and letter[b"id"] == doomed
    assert [e["seq"] for e in read_events(client)] == [1], "the doomed result is not published"
    assert client.xlen(stream) == 0 and client.xpending(stream, "publishers")["pending"] == 0


def _jpeg(w: int = 160, h: int = 120) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))[1].tobytes()


def _frame(cam: str, seq: int, **changes: Any) -> Fields:
    msg = FrameMessage(cam, seq, time.time(), 160, 120, _jpeg())
    return dict(msg.to_fields()) | changes


@pytest.fixture
def worker_settings(redis_url, weights_dir):
    return make_settings(
        redis_url,
        weights_dir,
        classifier={"type": "placeholder"},
        worker={"max_batch": 8, "consumer": "w1", "deadletter_max_payload_bytes": 1000},
    )


def test_the_worker_dead_letters_forged_ends_foreign_cameras_and_caps_dead_letter_payloads(
    redis_url, worker_settings
):
    """A forged ``eof`` was passed on (and ends ``maskwatch run``); a frame naming another camera was
    handled as that camera's; a 1 MB undecodable image was kept whole in its dead letter."""
    client = redis.Redis.from_url(redis_url)
    worker = WorkerService.from_settings(worker_settings)
    client.sadd(KEYS.cameras, "cam", "file")
    stream = KEYS.frames("cam")
    client.xadd(stream, _frame("cam", 0))
    client.xadd(stream, EndOfStream("cam", 0, 1).to_fields())  # no ingest ever said cam ended
    client.xadd(stream, _frame("cam", 1, camera="other"))
    client.xadd(stream, _frame("cam", 2, img=b"\x00" * 1_000_000))
    client.xadd(stream, EndOfStream("cam", 5, 9).to_fields())  # 9 frames in seqs 0..5
    # a file the ingest finished: its end is passed on; one claiming an earlier last frame is not
    client.hset(KEYS.camera_state("file"), mapping={"state": "finished", "last_seq": "1"})
    client.xadd(KEYS.frames("file"), _frame("file", 0))
    client.xadd(KEYS.frames("file"), _frame("file", 1))
    client.xadd(KEYS.frames("file"), EndOfStream("file", 0, 1).to_fields())
    client.xadd(KEYS.frames("file"), EndOfStream("file", 1, 2).to_fields())
    forged_before = _counted("worker", "forged_eof")
    worker.consumer.discover(force=True)
    while worker.step(block_ms=100):
        pass

    results = [f for _, f in client.xrange(KEYS.results("cam"))]
    assert [(f[b"kind"], f[b"seq"]) for f in results] == [(b"result", b"0")], "no end passed on for cam"
    file_results = [(f[b"kind"], f[b"seq"]) for _, f in client.xrange(KEYS.results("file"))]
    assert file_results == [(b"result", b"0"), (b"result", b"1"), (b"eof", b"1")]
    letters = {(f[b"stream"], f[b"msg.seq"]): f for f in _deadletters(client)}
    reason = {k: f[b"reason"].decode() for k, f in letters.items()}
    assert "state none, not finished or failed" in reason[(stream.encode(), b"0")]
    assert "differs from its stream's camera 'cam'" in reason[(stream.encode(), b"1")]
    assert "claims 9 frames up to seq 5" in reason[(stream.encode(), b"5")]
    assert "the ingest's record says b'1'" in reason[(KEYS.frames("file").encode(), b"0")]
    assert _counted("worker", "forged_eof") - forged_before == 2
    big = letters[(stream.encode(), b"2")]
    assert "do not decode as jpeg" in reason[(stream.encode(), b"2")]
    assert big[b"truncated"] == b"1" and int(big[b"payload_bytes"]) > 1_000_000
    assert len(big[b"msg.img"]) < 1000 and big[b"msg.camera"] == b"cam" and big[b"msg.w"] == b"160"
    assert client.xlen(stream) == 0 and client.xlen(KEYS.frames("file")) == 0


def test_the_worker_dead_letters_its_own_pending_message_after_too_many_deliveries(
    redis_url, worker_settings
):
    """A frame that kept killing a worker of a fixed name (re-read from its own pending at each restart)
    is dead-lettered instead of being handled a sixth time."""
    client = redis.Redis.from_url(redis_url)
    stream = KEYS.frames("cam")
    client.sadd(KEYS.cameras, "cam")
    client.xgroup_create(stream, "workers", id="0", mkstream=True)
    client.xadd(stream, _frame("cam", 0))
    client.xreadgroup("workers", "w1", {stream: ">"})
    for _ in range(4):  # four restarts of w1 re-read it and died
        client.xreadgroup("workers", "w1", {stream: "0"})
    client.xadd(stream, _frame("cam", 1))
    worker = WorkerService.from_settings(worker_settings)
    worker.consumer.discover(force=True)
    while worker.step(block_ms=100):
        pass
    (letter,) = _deadletters(client)
    assert letter[b"reason"].startswith(b"delivered 6 times (worker.max_deliveries 5)")
    assert [f[b"seq"] for _, f in client.xrange(KEYS.results("cam"))] == [b"1"]
    assert client.xlen(stream) == 0


def test_streams_whose_camera_part_is_not_a_camera_id_are_ignored_with_one_warning(redis_url, caplog):
    client = redis.Redis.from_url(redis_url)
    for camera in ("cam", "bad id", "..", "x" * 65):
        client.xadd(KEYS.results(camera), _result("cam", 0))
    client.sadd(KEYS.cameras, "a/b")
    publisher = PublisherService.from_settings(make_settings(redis_url))
    with caplog.at_level(logging.WARNING):
        publisher.consumer.discover(force=True)
        publisher.consumer.discover(force=True)
    assert publisher.consumer.streams == {KEYS.results("cam")}
    warnings = [r.getMessage() for r in caplog.records if "not a valid camera id" in r.getMessage()]
    assert len(warnings) == 4, warnings
    assert client.xinfo_groups(KEYS.results("bad id")) == [], "no group on an ignored stream"
    assert not client.exists(KEYS.results("a/b"))


def test_results_are_held_back_not_trimmed_while_the_publisher_is_away(own_redis, weights_dir):
    """With ``MAXLEN ~ results_max_len`` results the publisher had not read yet vanished; now the worker
    stops reading frames while the results stream is full and nothing is lost."""
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("stream-node-max-entries", 4)  # small nodes: MAXLEN ~ trims as exactly as it can
    s = make_settings(
        own_redis.url,
        weights_dir,
        classifier={"type": "placeholder"},
        worker={"max_batch": 4, "results_max_len": 10},
    )
    client.sadd(KEYS.cameras, "bp")
    for seq in range(40):
        client.xadd(KEYS.frames("bp"), _frame("bp", seq))
    worker = WorkerService.from_settings(s)
    worker.consumer.discover(force=True)
    deadline = time.monotonic() + 120
    while worker.step(block_ms=50) and time.monotonic() < deadline:
        pass
    held = client.xlen(KEYS.results("bp"))
    assert 10 <= held <= 10 + 4, "the worker stops at the bound (plus one batch)"
    assert client.xlen(KEYS.frames("bp")) == 40 - held, "the rest of the frames wait"
    gauge = {"camera": "bp"}
    assert REGISTRY.get_sample_value("maskwatch_worker_results_backpressure", gauge) == 1
    publisher = PublisherService.from_settings(s)
    with running(worker), running(publisher):
        wait_for(lambda: len(read_events(client)) == 40, 120, what="every frame's event")
    assert sorted(e["seq"] for e in read_events(client)) == list(range(40)), "nothing lost"
    assert REGISTRY.get_sample_value("maskwatch_worker_results_backpressure", gauge) == 0
    assert (REGISTRY.get_sample_value("maskwatch_worker_backpressure_seconds_total", gauge) or 0) > 0


def test_the_lag_gauge_reports_the_backlog_after_trims_and_the_length_is_exported(redis_url):
    """XINFO GROUPS said lag 317 for an empty stream after ``MAXLEN ~`` trims (redis/redis#13957)."""
    client = redis.Redis.from_url(redis_url)
    s = make_settings(
        redis_url, violations={"enabled": False}, publisher={"metrics_port": 0, "read_count": 1}
    )
    publisher = PublisherService.from_settings(s)
    stream = KEYS.results("lagcam")
    client.xgroup_create(stream, "publishers", id="0", mkstream=True)
    publisher.consumer.discover(force=True)
    for seq in range(500):
        client.xadd(stream, _result("lagcam", seq), maxlen=20, approximate=True)
        if seq % 5 == 0:
            publisher.step(block_ms=1)
    while publisher.step(block_ms=1):
        pass
    client.xadd(stream, _result("lagcam", 1000))
    client.xadd(stream, _result("lagcam", 1001))
    assert client.xinfo_groups(stream)[0]["lag"] > 100, "Redis's own lag is a phantom here"
    publisher.consumer.update_lag_metrics()
    labels = {"stream": "results", "camera": "lagcam"}
    assert REGISTRY.get_sample_value("maskwatch_stream_lag_messages", labels) == 2
    assert REGISTRY.get_sample_value("maskwatch_stream_length_messages", labels) == 2
    assert REGISTRY.get_sample_value("maskwatch_stream_pending_messages", labels) == 0


def test_a_dead_letter_keeps_every_small_field_and_caps_the_payload(redis_url):
    """One 50 MB image cost 60 MB of Redis in the dead-letter stream; now it costs the cap."""
    from maskwatch.runtime.deadletter import DeadLetters

    client = redis.Redis.from_url(redis_url)
    fields = {b"camera": b"cam", b"seq": b"7", b"img": b"\xff" * 50_000_000}
    dead = DeadLetters(KEYS.deadletter, "worker", 64 * 1024)
    dead.add(client, KEYS.frames("cam"), b"1-0", fields, "undecodable", "too big")
    (letter,) = _deadletters(client)
    assert letter[b"msg.camera"] == b"cam" and letter[b"msg.seq"] == b"7"
    assert len(letter[b"msg.img"]) == 64 * 1024 - len(b"cam7")
    assert letter[b"payload_bytes"] == b"50000004" and letter[b"truncated"] == b"1"
    assert client.memory_usage(KEYS.deadletter) < 200_000
    dead.add(client, KEYS.frames("cam"), b"2-0", {b"seq": b"8"}, "malformed", "small")
    assert _deadletters(client)[1][b"truncated"] == b"0"
