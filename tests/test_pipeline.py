"""End to end through real Redis, real decoding and the real detector: files, bad input, dead letters."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import redis

from maskwatch.cli.run_all import run_all
from maskwatch.core.contracts import FrameMessage, ResultMessage
from maskwatch.core.keys import Keys
from maskwatch.ingest.camera import CameraState
from maskwatch.ingest.service import IngestService
from maskwatch.publisher.service import PublisherService
from maskwatch.worker.service import WorkerService
from tests.support.pipeline import make_settings, read_events, running, wait_for

KEYS = Keys()
BARE = "bare_then_masked_720p.mp4"  # 268 frames at 30 fps: 45 frames at 5 fps


def test_file_source_yields_exactly_one_event_per_sampled_frame_in_order(redis_url, weights_dir, videos):
    s = make_settings(
        redis_url,
        weights_dir,
        cameras=[{"id": "door", "url": str(videos / BARE), "fps": 5}],
        ingest={"file_max_backlog": 4},
        worker={"max_batch": 4},
    )
    assert run_all(s, stop=threading.Event()) == 0
    events = read_events(redis.Redis.from_url(redis_url))
    assert [e["seq"] for e in events] == list(range(45))
    assert len({e["id"] for e in events}) == 45
    e = events[10]
    assert e["schema"] == "maskwatch.frame" and e["schema_version"] == 1 and e["camera"] == "door"
    assert e["width"] == 1280 and e["height"] == 720
    assert e["capture_ts"] <= e["processed_ts"] <= e["published_ts"]
    # a file's frames carry their media time: sampled at 5 fps, one every 0.2 s of the file
    pts = np.array([ev["pts"] for ev in events])
    assert 0 <= pts[0] < 0.2 and np.allclose(np.diff(pts), 0.2, atol=0.05), pts
    assert sum(len(ev["faces"]) for ev in events) >= 30, "the woman's face is found in most frames"
    face = next(f for ev in events for f in ev["faces"])
    assert set(face) == {"box", "score", "class", "probs"} and len(face["box"]) == 4
    assert sum(e["counts"].values()) == len(e["faces"])


def test_cameras_are_independent_and_bad_sources_get_clear_errors(
    redis_url, weights_dir, videos, tmp_path, caplog
):
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("this is not a video\n" * 100)
    cams = [
        {"id": "good", "url": str(videos / BARE), "fps": 2},
        {"id": "textfile", "url": str(text_file)},
        {"id": "missing", "url": str(tmp_path / "nope.mp4")},
        {"id": "offline", "url": "rtsp://127.0.0.1:9/none", "open_timeout_s": 1, "stall_timeout_s": 1},
    ]
    s = make_settings(redis_url, weights_dir, cameras=cams)
    ingest = IngestService.from_settings(s)
    client = redis.Redis.from_url(redis_url)
    with running(ingest):
        by_id = lambda: {r.camera.id: r for r in ingest.readers}  # noqa: E731
        wait_for(
            lambda: ingest.readers and by_id()["good"].state is CameraState.FINISHED,
            60,
            what="good camera done",
        )
        wait_for(lambda: by_id()["offline"].stats.reconnects >= 2, 30, what="offline camera retried")
        readers = by_id()
    assert readers["good"].stats.frames_published == 18
    assert client.xlen(KEYS.frames("good")) == 19  # 18 frames + end-of-file marker
    assert (
        readers["textfile"].state is CameraState.FAILED
        and "not a readable video" in readers["textfile"].stats.last_error
    )
    assert (
        readers["missing"].state is CameraState.FAILED
        and "no such file" in readers["missing"].stats.last_error
    )
    assert (
        "connection refused" in readers["offline"].stats.last_error
        or "timed out" in readers["offline"].stats.last_error
    )
    assert client.hget(KEYS.camera_state("offline"), "state") in (b"backoff", b"connecting", b"stopped")


def test_garbage_and_undecodable_frames_go_to_the_dead_letter_stream(redis_url, weights_dir, videos):
    s = make_settings(redis_url, weights_dir)
    client = redis.Redis.from_url(redis_url)
    client.sadd(KEYS.cameras, "cam")
    ok, jpeg = cv2.imencode(".jpg", np.zeros((120, 160, 3), np.uint8))
    stream = KEYS.frames("cam")
    client.xadd(stream, {"garbage": b"\x00\xff\x13"})
    client.xadd(stream, FrameMessage("cam", 0, 1.0, 160, 120, b"not a jpeg at all").to_fields())
    client.xadd(stream, FrameMessage("cam", 1, 1.0, 160, 120, jpeg.tobytes()).to_fields())
    worker = WorkerService.from_settings(s)
    with running(worker):
        wait_for(lambda: client.xlen(KEYS.results("cam")) == 1, 30, what="the good frame's result")
        wait_for(lambda: client.xlen(KEYS.deadletter) == 2, 10, what="two dead letters")
    letters = [f for _, f in client.xrange(KEYS.deadletter)]
    reasons = [f[b"reason"].decode() for f in letters]
    assert "missing field 'v'" in reasons[0] and "do not decode as jpeg" in reasons[1]
    assert letters[0][b"msg.garbage"] == b"\x00\xff\x13"  # the original message is kept
    assert client.xlen(stream) == 0  # everything handled and removed
    assert worker.stats.deadletters == 2 and worker.stats.frames == 1


def test_publisher_publishes_to_stream_and_channel_and_skips_redelivered_results(
    redis_url, weights_dir, videos
):
    s = make_settings(redis_url, weights_dir, cameras=[{"id": "cam", "url": str(videos / BARE), "fps": 1}])
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(KEYS.events_channel("cam"))
    ingest, worker = IngestService.from_settings(s), WorkerService.from_settings(s)
    with running(ingest), running(worker):
        wait_for(lambda: client.xlen(KEYS.results("cam")) == 10, 60, what="10 results (9 frames + eof)")
    results = [f for _, f in client.xrange(KEYS.results("cam")) if f[b"kind"] == b"result"]
    for fields in results[:3]:  # a crashed publisher's redelivery: the same results again
        client.xadd(KEYS.results("cam"), fields)
    publisher = PublisherService.from_settings(s)
    with running(publisher):
        wait_for(
            lambda: publisher.done(["cam"]) and client.xlen(KEYS.results("cam")) == 0,
            30,
            what="all published",
        )
    events = read_events(client)
    assert [e["seq"] for e in events] == list(range(9))
    assert publisher.stats.duplicates == 3
    messages = []
    while (m := pubsub.get_message(timeout=1)) is not None:
        if m["type"] == "message":
            messages.append(m["data"])
    assert len(messages) == 9
    assert messages[0] == client.xrange(KEYS.events)[0][1][b"event"]


def test_stale_live_frames_are_not_searched_but_get_their_event_and_old_file_frames_are_searched(
    redis_url, weights_dir
):
    s = make_settings(redis_url, weights_dir, worker={"max_frame_age_s": 20})
    # built first: loading the models can take seconds on a busy machine, which would age the fresh frame
    worker = WorkerService.from_settings(s)
    client = redis.Redis.from_url(redis_url)
    client.sadd(KEYS.cameras, "cam")
    jpeg = cv2.imencode(".jpg", np.zeros((120, 160, 3), np.uint8))[1].tobytes()
    old = time.time() - 60
    client.xadd(KEYS.frames("cam"), FrameMessage("cam", 0, old, 160, 120, jpeg, live=True).to_fields())
    client.xadd(KEYS.frames("cam"), FrameMessage("cam", 1, old, 160, 120, jpeg, live=False).to_fields())
    client.xadd(
        KEYS.frames("cam"), FrameMessage("cam", 2, time.time(), 160, 120, jpeg, live=True).to_fields()
    )
    with running(worker):
        wait_for(lambda: client.xlen(KEYS.frames("cam")) == 0, 30, what="all frames handled")
    results = [ResultMessage.from_fields(f) for _, f in client.xrange(KEYS.results("cam"))]
    assert [(r.seq, r.detection) for r in results] == [(0, "skipped"), (1, "full"), (2, "full")]
    assert worker.stats.skipped == 1 and worker.stats.frames == 2


def test_events_say_how_frames_were_searched_and_carried_faces_cast_no_vote():
    from maskwatch.core.documents import frame_event
    from maskwatch.core.faces import Faces
    from maskwatch.core.labels import CLASSES
    from maskwatch.publisher.decide import AgreementRule
    from maskwatch.publisher.tracker import FaceTracker

    probs = np.array([[0.1, 0.85, 0.05], [0.1, 0.85, 0.05]], np.float32)
    faces = Faces(
        [[10, 10, 60, 60], [200, 200, 260, 260]], [0.99, 0.98], probs, CLASSES, carried=[False, True]
    )
    fields = ResultMessage("cam", 3, 1.0, 320, 320, 1.1, faces, detection="regions").to_fields()
    msg = ResultMessage.from_fields({k.encode(): v.encode() for k, v in fields.items()})  # type: ignore[union-attr]
    event = frame_event(msg, 1.2)
    assert event["detection"] == "regions"
    assert "carried" not in event["faces"][0] and event["faces"][1]["carried"] is True
    plain = frame_event(ResultMessage("cam", 4, 1.0, 320, 320, 1.1, faces[:1]), 1.2)
    assert plain["detection"] == "full" and set(plain["faces"][0]) == {"box", "score", "class", "probs"}

    tracker = FaceTracker(
        CLASSES, AgreementRule(5, 2, 0.5), iou_threshold=0.3, max_center_shift=0, max_age_frames=1
    )
    held = tracker.update(faces[:1], 0, 0.0).tracks[0]
    carried = Faces([[10, 10, 60, 60]], [0.99], probs[:1], CLASSES, carried=[True])
    for seq in range(1, 5):  # carried for longer than max_age_frames: alive, but no new votes
        update = tracker.update(carried, seq, seq / 10)
        assert update.tracks == [held] and not update.new.any() and not update.ended
    assert len(held.history) == 1 and held.last_seq == 4 and held.decision is None


def test_a_frame_declaring_a_huge_image_is_dead_lettered_before_decoding_and_spares_its_batch(
    redis_url, weights_dir
):
    """A 1 kB JPEG whose header claims 65000x65000 (or 20000x20000) pixels is refused from its header,
    never decoded, and the genuine frames of the same batch still get their results."""
    from maskwatch.worker.inference import declared_size

    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    genuine = buf.tobytes()
    assert declared_size(genuine, "jpeg") == (160, 120)
    sof = genuine.index(b"\xff\xc0")
    forged = {}
    for side in (65000, 20000):
        image = bytearray(genuine)
        image[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
        forged[side] = bytes(image)
        assert declared_size(forged[side], "jpeg") == (side, side)

    s = make_settings(redis_url, weights_dir, worker={"max_batch": 8, "max_wait_ms": 200})
    client = redis.Redis.from_url(redis_url)
    client.sadd(KEYS.cameras, "cam")
    stream = KEYS.frames("cam")
    seqs = iter(range(100))
    for _ in range(3):
        client.xadd(stream, FrameMessage("cam", next(seqs), 1.0, 160, 120, genuine).to_fields())
    client.xadd(stream, FrameMessage("cam", next(seqs), 1.0, 65000, 65000, forged[65000]).to_fields())
    client.xadd(stream, FrameMessage("cam", next(seqs), 1.0, 160, 120, forged[20000]).to_fields())
    worker = WorkerService.from_settings(s)
    worker.consumer.discover(force=True)
    while worker.step(block_ms=200):
        pass
    reasons = [f[b"reason"].decode() for _, f in client.xrange(KEYS.deadletter)]
    assert len(reasons) == 2 and all("over worker.max_frame_pixels" in r for r in reasons), reasons
    assert "65000x65000" in reasons[0] and "20000x20000" in reasons[1]
    assert client.xlen(KEYS.results("cam")) == 3, "the genuine frames of the batch still get results"
