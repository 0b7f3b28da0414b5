"""Violations at the publisher: real frames of ../shared videos with scripted detections, through real
Redis and the real publisher service; clips decoded back with PyAV."""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from maskwatch.config.settings import ConfigError
from maskwatch.core.contracts import EndOfStream, ResultMessage
from maskwatch.core.faces import Faces
from maskwatch.core.keys import Keys
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.decider import TrackDecider, TrackEnded, ViolationDecided
from maskwatch.publisher.service import PublisherService
from maskwatch.publisher.sink import EventSink
from maskwatch.publisher.tracker import track_name
from maskwatch.publisher.violations import ViolationMonitor
from tests.support.pipeline import make_settings, running, wait_for

KEYS = Keys()
BARE_VIDEO = "bare_then_masked_720p.mp4"
MASKED_VIDEO = "corridor_cctv_masked_1080p.mp4"
T0 = 1_764_000_000.0
MASK, BARE = np.array([0.9, 0.07, 0.03]), np.array([0.08, 0.88, 0.04])
FACE_BARE = [500.0, 50.0, 820.0, 440.0]  # where the woman's face is in the first 4.5 s
FACE_MASKED = [520.0, 75.0, 800.0, 460.0]  # after the cut-away, masked


@lru_cache(maxsize=2)
def sampled_jpegs(video: Path, fps: float = 5.0) -> tuple[tuple[bytes, int, int], ...]:
    """The video sampled at ``fps`` as JPEG bytes (what the worker puts in results)."""
    out = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        step = round(float(stream.average_rate) / fps)
        for i, frame in enumerate(container.decode(stream)):
            if i % step == 0:
                img = frame.to_ndarray(format="bgr24")
                ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
                out.append((data.tobytes(), img.shape[1], img.shape[0]))
    return tuple(out)


def bare_then_masked_script(seq: int) -> tuple[list[list[float]], list[np.ndarray]]:
    """Scripted detections of bare_then_masked_720p.mp4 at 5 fps: faces from seq 3; bare to 22; none
    during the cut-away 23-27; masked from 28."""
    if 3 <= seq <= 22:
        return [FACE_BARE], [BARE]
    if seq >= 28:
        return [FACE_MASKED], [MASK]
    return [], []


def make_results(camera: str, video: Path, script, fps: float = 5.0) -> list[ResultMessage]:
    results = []
    for seq, (jpeg, w, h) in enumerate(sampled_jpegs(video, fps)):
        boxes, probs = script(seq)
        n = len(boxes)
        results.append(
            ResultMessage(
                camera=camera,
                seq=seq,
                capture_ts=T0 + seq / fps,
                width=w,
                height=h,
                processed_ts=T0 + seq / fps + 0.05,
                faces=Faces(
                    np.array(boxes).reshape(n, 4), np.full(n, 0.98), np.array(probs).reshape(n, 3), CLASSES
                ),
                image=jpeg,
            )
        )
    return results


def push(client: redis.Redis, results: list[ResultMessage]) -> None:
    camera = results[0].camera
    for r in results:
        client.xadd(KEYS.results(camera), r.to_fields())
    client.xadd(KEYS.results(camera), EndOfStream(camera, results[-1].seq, len(results)).to_fields())


def violation_docs(client: redis.Redis) -> list[dict]:
    return [json.loads(f[b"event"]) for _, f in client.xrange(KEYS.violations)]


def publish_all(
    settings, client: redis.Redis, camera: str, count: int, until=None, duplicates: bool = False
) -> list[dict]:
    """Run the real publisher service until it handled ``count`` results of ``camera`` (published, or
    skipped as ``duplicates``) and ``until`` holds for the violation documents; return them."""
    service = PublisherService.from_settings(settings)
    handled = (lambda: service.stats.duplicates >= count) if duplicates else (lambda: service.done([camera]))
    with running(service):
        wait_for(handled, 60, what=f"{count} results of {camera} handled")
        if until is not None:
            wait_for(lambda: until(violation_docs(client)), 60, what="violation documents")
    return violation_docs(client)


def clip_settings(tmp_path: Path, **clips) -> dict:
    return {
        "dir": str(tmp_path / "clips"),
        "pre_roll_s": 1.1,
        "post_roll_s": 1.0,
        "retention_interval_s": 0.5,
    } | clips


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def red_pixels(img: np.ndarray, box: list[float]) -> int:
    """Pixels of the drawn ``without_mask`` colour along the top of ``box`` (label band included)."""
    x1, y1, x2, _ = (int(v) for v in box)
    band = img[max(0, y1 - 30) : y1 + 4, x1:x2].astype(int)
    return int(((band[..., 2] > 170) & (band[..., 1] < 90) & (band[..., 0] < 90)).sum())


def test_bare_face_raises_one_violation_with_a_clip_and_snapshot(redis_url, videos, tmp_path):
    camera = "door-bare"
    s = make_settings(
        redis_url, cameras=[{"id": camera, "url": str(videos / BARE_VIDEO)}], clips=clip_settings(tmp_path)
    )
    client = redis.Redis.from_url(redis_url)
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(KEYS.violations_channel(camera))
    results = make_results(camera, videos / BARE_VIDEO, bare_then_masked_script)
    push(client, results)
    docs = publish_all(
        s, client, camera, len(results), until=lambda d: any(x["type"] == "clip_ready" for x in d)
    )

    violations = [d for d in docs if d["type"] == "violation"]
    assert len(violations) == 1, docs
    heard, quiet_until = [], time.monotonic() + 2.0
    while len(heard) < len(docs) and time.monotonic() < quiet_until:
        message = subscriber.get_message(timeout=0.2)  # None also for the ignored subscribe reply
        if message is not None:
            heard.append(json.loads(message["data"]))
    assert heard == docs, "the per-camera channel carries the same documents as the stream"
    v = violations[0]
    assert v["schema_version"] == 1 and v["camera"] == camera and v["class"] == "without_mask"
    assert v["seq"] == 5 and v["track_id"] == "3-0", "K=3 of N=5: decided on the third bare frame"
    assert v["first_seen_ts"] == pytest.approx(T0 + 3 / 5) and v["confidence"] == pytest.approx(
        0.88, abs=1e-3
    )
    assert v["box"] == FACE_BARE and (v["frame_width"], v["frame_height"]) == (1280, 720)
    assert Path(v["snapshot"]).is_file() and cv2.imread(v["snapshot"]).shape == (720, 1280, 3)

    ready = [d for d in docs if d["type"] == "clip_ready"]
    assert len(ready) == 1 and ready[0]["violation_id"] == v["id"] and ready[0]["path"] == v["clip"]
    # pre-roll 1.1 s = seq 0-4 before the violation at seq 5; post-roll 1 s = seq 6-10
    assert ready[0]["frames"] == 11 and ready[0]["duration_s"] == pytest.approx(11 / 5)
    with av.open(v["clip"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (1280, 720)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 11
    original = cv2.imdecode(np.frombuffer(results[5].image, np.uint8), cv2.IMREAD_COLOR)
    assert red_pixels(frames[5], FACE_BARE) > 20 * max(1, red_pixels(original, FACE_BARE)), "red box drawn"
    assert red_pixels(frames[0], FACE_BARE) < red_pixels(frames[5], FACE_BARE) / 4, (
        "no face yet in pre-roll frame 0"
    )
    assert metric("maskwatch_violations_total", camera=camera, **{"class": "without_mask"}) == 1
    assert metric("maskwatch_clips_written_total", camera=camera) == 1
    assert metric("maskwatch_tracks_total", camera=camera, **{"class": "without_mask"}) == 1
    assert metric("maskwatch_compliance_ratio", camera=camera, basis="people") == 0.0


def test_redelivered_results_do_not_duplicate_violations(redis_url, videos, tmp_path):
    camera = "door-redeliver"
    s = make_settings(
        redis_url, cameras=[{"id": camera, "url": str(videos / BARE_VIDEO)}], clips=clip_settings(tmp_path)
    )
    client = redis.Redis.from_url(redis_url)
    results = make_results(camera, videos / BARE_VIDEO, bare_then_masked_script)
    push(client, results)
    first = publish_all(
        s, client, camera, len(results), until=lambda d: any(x["type"] == "clip_ready" for x in d)
    )
    assert [d["type"] for d in first] == ["violation", "clip_ready"]

    # The same results delivered again (a worker retried) to a restarted publisher: nothing new.
    push(client, results)
    again = publish_all(s, client, camera, len(results), duplicates=True)
    assert again == first
    # A publisher that lost its dedup of frames replays the results: same ids, refused by the sink.
    monitor = ViolationMonitor.from_settings(s)
    replayed = [d for r in results for d in monitor.observe(r, None)] + monitor.close(float("inf"))
    assert [d["id"] for d in replayed] == [d["id"] for d in first]
    sink = EventSink(client, 3600)
    assert not any(
        sink.publish(d, KEYS.dedup(d["id"]), KEYS.violations, 100, KEYS.violations_channel(camera))
        for d in replayed
    )
    assert violation_docs(client) == first


def test_masked_person_with_flickering_frames_raises_nothing(redis_url, videos, tmp_path):
    camera = "corridor-masked"

    def script(seq: int):  # a masked face walking towards the camera; every 4th frame misread as bare
        size = 80 + 4 * seq
        box = [900 - size / 2, 300, 900 + size / 2, 300 + size * 1.2]
        return [box], [BARE if seq % 4 == 3 else MASK]

    s = make_settings(
        redis_url, cameras=[{"id": camera, "url": str(videos / MASKED_VIDEO)}], clips=clip_settings(tmp_path)
    )
    client = redis.Redis.from_url(redis_url)
    results = make_results(camera, videos / MASKED_VIDEO, script)
    push(client, results)
    assert publish_all(s, client, camera, len(results)) == []
    assert not (tmp_path / "clips" / camera).exists()
    assert metric("maskwatch_tracks_total", camera=camera, **{"class": "with_mask"}) == 1
    assert metric("maskwatch_compliance_ratio", camera=camera, basis="people") == 1.0
    assert 0.7 < metric("maskwatch_compliance_ratio", camera=camera, basis="faces") < 0.8


def test_overlapping_violations_share_one_clip(videos, tmp_path):
    camera = "two-people"

    def script(seq: int):  # two bare faces, the second appearing 4 frames later
        boxes, probs = [[100.0, 100.0, 300.0, 350.0]], [BARE]
        if seq >= 4:
            boxes.append([800.0, 100.0, 1000.0, 350.0])
            probs.append(BARE)
        return boxes, probs

    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path, blur="others"))
    monitor = ViolationMonitor.from_settings(s)
    docs = [
        d for r in make_results(camera, videos / BARE_VIDEO, script)[:20] for d in monitor.observe(r, None)
    ]
    docs += monitor.close(float("inf"))
    violations = [d for d in docs if d["type"] == "violation"]
    ready = [d for d in docs if d["type"] == "clip_ready"]
    assert [v["track_id"] for v in violations] == ["0-0", "4-1"]
    assert (
        violations[0]["clip"] == violations[1]["clip"]
        and violations[0]["clip_id"] == violations[1]["clip_id"]
    )
    assert {r["violation_id"] for r in ready} == {v["id"] for v in violations}
    assert len({r["id"] for r in ready}) == 2 and len({r["path"] for r in ready}) == 1


def test_faces_outside_the_zone_do_not_count(videos, tmp_path):
    camera = "zoned"
    left_half = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
    s = make_settings(
        "redis://127.0.0.1:1/0",
        cameras=[{"id": camera, "url": "x.mp4", "zones": [left_half]}],
        clips=clip_settings(tmp_path, enabled=False),
    )
    monitor = ViolationMonitor.from_settings(s)
    results = make_results(camera, videos / BARE_VIDEO, bare_then_masked_script)  # face centre x=660 of 1280
    assert [d for r in results for d in monitor.observe(r, None)] == []
    shifted = make_results("zoned", videos / BARE_VIDEO, lambda seq: ([[100.0, 50, 420, 440]], [BARE]))
    assert [d["type"] for r in shifted[:10] for d in monitor.observe(r, None)] == ["violation"]


def test_invalid_zone_is_a_clear_config_error():
    """Zones are validated once, by the camera settings; the publisher trusts what they hold."""
    bowtie = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(
        ConfigError, match=r"cameras.0.zones: .*camera 'gate' zone 1: the zone crosses itself"
    ):
        make_settings(
            "redis://x", cameras=[{"id": "gate", "url": "a.mp4", "zones": [[[0, 0], [1, 0], [0, 1]], bowtie]}]
        )


def test_unwritable_clip_directory_logs_a_clear_error_and_events_still_flow(videos, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the clip directory should be")
    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path, dir=str(blocker / "clips")))
    with caplog.at_level(logging.ERROR, logger="maskwatch.publisher.violations"):
        monitor = ViolationMonitor.from_settings(s)
    assert f"clip directory {blocker / 'clips'} is not writable" in caplog.text
    results = make_results("cam-ro", videos / BARE_VIDEO, bare_then_masked_script)
    docs = [d for r in results for d in monitor.observe(r, None)] + monitor.close(float("inf"))
    assert [d["type"] for d in docs] == ["violation"]
    assert (
        docs[0]["clip"] is None and docs[0]["snapshot"] is None and "not writable" in docs[0]["media_error"]
    )


def test_clip_over_the_size_limit_fails_clearly_and_events_still_flow(videos, tmp_path, caplog):
    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path, max_total_mb=0.001))
    monitor = ViolationMonitor.from_settings(s)
    results = make_results("cam-full", videos / BARE_VIDEO, bare_then_masked_script)
    with caplog.at_level(logging.ERROR, logger="maskwatch.publisher.violations"):
        docs = [d for r in results for d in monitor.observe(r, None)] + monitor.close(float("inf"))
    assert [d["type"] for d in docs] == ["violation", "clip_failed"]
    assert "exceeds clips.max_total_mb" in docs[1]["error"] and docs[1]["violation_id"] == docs[0]["id"]
    assert "exceeds clips.max_total_mb" in caplog.text
    assert not list((tmp_path / "clips").rglob("*.mp4*"))
    assert metric("maskwatch_clip_errors_total", camera="cam-full", reason="too_large") == 1


def test_snapshot_is_refreshed_when_a_better_frame_follows_and_retention_reports(videos, tmp_path):
    camera = "approaching"

    def script(seq: int):  # a bare face growing as the person walks towards the camera
        size = 100 + 20 * seq
        return [[640 - size / 2, 360 - size / 2, 640 + size / 2, 360 + size / 2]], [BARE]

    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path, post_roll_s=1.0))
    monitor = ViolationMonitor.from_settings(s)
    results = make_results(camera, videos / BARE_VIDEO, script)[:12]
    docs = [d for r in results[:3] for d in monitor.observe(r, None)]
    snapshot = Path(docs[0]["snapshot"])
    wait_for(snapshot.is_file, 30, what="the snapshot (written on the clip writer thread)")
    at_violation = snapshot.read_bytes()
    docs += [d for r in results[3:] for d in monitor.observe(r, None)]  # seq 8 is past the post-roll
    docs += wait_for(lambda: monitor.tick(time.time()), 30, what="clip documents")
    assert [d["type"] for d in docs] == ["violation", "clip_ready"]
    assert snapshot.read_bytes() != at_violation, "rewritten with the largest face inside the clip"
    best = cv2.imread(str(snapshot))
    assert best.shape == (720, 1280, 3)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "clips").rglob("*") if p.is_file())
    clock = iter(range(10**6))

    def swept() -> bool:
        monitor.tick(time.time() + 3600 * next(clock))  # each call is past the retention interval
        return metric("maskwatch_media_bytes") == on_disk

    wait_for(swept, 30, what="a retention sweep reporting the bytes on disk")


def test_snapshot_shows_the_violating_class_not_the_best_frame_of_another(videos, tmp_path):
    """A person first seen large and masked, then smaller and bare: the without_mask snapshot shows a
    bare frame labelled without_mask, never the (larger, better scored) masked one."""
    camera = "unmasking"
    big, small = [440.0, 140.0, 840.0, 540.0], [490.0, 190.0, 790.0, 490.0]  # one centre: one track

    def script(seq: int):
        return ([big], [MASK]) if seq < 4 else ([small], [BARE])

    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path, blur="none"))
    monitor = ViolationMonitor.from_settings(s)
    docs = []
    for r in make_results(camera, videos / BARE_VIDEO, script)[:12]:
        docs += monitor.observe(r, None)
    violation = next(d for d in docs if d["type"] == "violation")
    assert violation["class"] == "without_mask" and violation["seq"] >= 4
    snapshot = Path(violation["snapshot"])
    wait_for(snapshot.is_file, 30, what="the snapshot (written on the clip writer thread)")
    img = cv2.imread(str(snapshot))
    assert red_pixels(img, small) > 200, "the violator is drawn with the without_mask colour"
    green = img[int(big[1]) - 30 : int(big[1]) + 4, int(big[0]) : int(big[2])].astype(int)
    assert int(((green[..., 1] > 150) & (green[..., 2] < 90)).sum()) < 50, "not the masked frame's box"
    monitor.close(time.time() + 30)


def test_faces_outside_zones_are_kept_for_drawing_and_blurring(videos, tmp_path):
    camera = "zoned-blur"
    left_half = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
    s = make_settings(
        "redis://127.0.0.1:1/0",
        cameras=[{"id": camera, "url": "x.mp4", "zones": [left_half]}],
        clips=clip_settings(tmp_path, blur="all"),
    )
    monitor = ViolationMonitor.from_settings(s)
    two_faces = make_results(
        camera, videos / BARE_VIDEO, lambda seq: ([[100.0, 50, 420, 440], FACE_BARE], [BARE, MASK])
    )
    monitor.observe(two_faces[0], None)
    marks = monitor.recorder.clips.ring(camera).frames[-1]
    assert marks.labels == ("without_mask", "outside_zone") and marks.track_names == ("0-0", "")
    assert marks.faces.boxes.tolist()[1] == FACE_BARE, "the outside face is still drawn (grey) and blurred"
    monitor.close(time.time() + 5)


def plain_result(camera: str, seq: int, boxes: list[list[float]], probs: list[np.ndarray]) -> ResultMessage:
    """A result without an image, for the pure decider."""
    n = len(boxes)
    faces = Faces(np.array(boxes).reshape(n, 4), np.full(n, 0.98), np.array(probs).reshape(n, 3), CLASSES)
    return ResultMessage(camera, seq, T0 + seq / 5, 1280, 720, T0 + seq / 5, faces)


def test_decider_returns_tracked_faces_and_lifecycle_events_and_ends_tracks_at_eof():
    decider = TrackDecider.from_settings(make_settings("redis://x", violations={"max_age_frames": 10}))
    kinds = []
    for seq in range(6):  # the file ends while the bare face is still in view
        faces, events = decider.observe(plain_result("file", seq, [FACE_BARE], [BARE]))
        assert [track_name(k) for k in faces.track_ids] == ["0-0"], "Faces come back with track ids"
        assert events[0].faces is faces and events[0].labels == ("without_mask",)
        kinds += [type(e).__name__ for e in events]
    assert kinds.count("TrackStarted") == 1 and kinds.count("ViolationDecided") == 1
    assert kinds.count("TrackUpdated") == 6 and "TrackEnded" not in kinds
    _, events = decider.observe(plain_result("file", 6, [FACE_BARE], [BARE]))
    assert not any(isinstance(e, ViolationDecided) for e in events), "one violation per person"
    ended = decider.end_of_stream("file")
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in ended] == [
        ("TrackEnded", "eof"),
        ("StreamEnded", None),
    ]
    assert isinstance(ended[0], TrackEnded) and ended[0].track.id == "0-0" and ended[0].seq == 6


def test_tracks_end_and_the_clip_is_finished_when_the_file_ends(redis_url, videos, tmp_path):
    """The last frames still hold the bare face: eof ends the track at once (not after max_age_frames)."""
    camera = "door-eof"
    s = make_settings(
        redis_url,
        cameras=[{"id": camera, "url": str(videos / BARE_VIDEO)}],
        clips=clip_settings(tmp_path, post_roll_s=30.0),
        violations={"max_age_frames": 1000},
    )
    client = redis.Redis.from_url(redis_url)
    results = make_results(camera, videos / BARE_VIDEO, lambda seq: ([FACE_BARE], [BARE]))[:12]
    push(client, results)
    docs = publish_all(
        s, client, camera, len(results), until=lambda d: any(x["type"] == "clip_ready" for x in d)
    )
    assert [d["type"] for d in docs] == ["violation", "clip_ready"]
    assert docs[1]["frames"] == 12, "the clip ends with the file, not 30 s of post-roll later"
    assert metric("maskwatch_active_tracks", camera=camera) == 0


def test_frame_event_violations_follow_the_configured_violation_classes(redis_url, videos, tmp_path):
    camera = "door-classes"
    wrong = np.array([0.05, 0.15, 0.8])
    s = make_settings(
        redis_url,
        cameras=[{"id": camera, "url": str(videos / BARE_VIDEO)}],
        clips=clip_settings(tmp_path, enabled=False),
        violations={"violation_classes": ["without_mask"]},
    )
    client = redis.Redis.from_url(redis_url)
    results = make_results(
        camera, videos / BARE_VIDEO, lambda seq: ([FACE_BARE, [100.0, 50, 300, 300]], [wrong, BARE])
    )[:8]
    push(client, results)
    docs = publish_all(s, client, camera, len(results), until=lambda d: len(d) >= 1)
    assert [(d["type"], d["class"]) for d in docs] == [("violation", "without_mask")], (
        "incorrect_mask raises none"
    )
    events = [json.loads(f[b"event"]) for _, f in client.xrange(KEYS.events)]
    assert len(events) == len(results)
    assert all(e["counts"]["incorrect_mask"] == 1 and e["violations"] == 1 for e in events)


@pytest.mark.parametrize("camera", ["../../../../tmp/escape", "..", "a/../../b"])
def test_a_camera_id_that_leaves_the_clips_folder_writes_nothing_outside_it(videos, tmp_path, camera):
    s = make_settings("redis://127.0.0.1:1/0", clips=clip_settings(tmp_path / "root"))
    monitor = ViolationMonitor.from_settings(s)
    docs = []
    for r in make_results("placeholder", videos / BARE_VIDEO, bare_then_masked_script)[:12]:
        docs += monitor.observe(ResultMessage(**{**r.__dict__, "camera": camera}), None)
    docs += monitor.close(time.time() + 30)
    violation = next(d for d in docs if d["type"] == "violation")
    assert violation["clip"] is None and violation["snapshot"] is None
    assert "not a valid camera id" in violation["media_error"]
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and "root" not in p.relative_to(tmp_path).parts]
    assert outside == [] and not Path("/tmp/escape").exists()
