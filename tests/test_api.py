"""The HTTP API against a real run: the real stages on a video write violations, clips and snapshots,
then ``maskwatch api`` (uvicorn on a real port) serves them."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from pydantic import SecretStr

from maskwatch.api.service import ApiService
from maskwatch.cli.run_all import run_all
from maskwatch.config.settings import Settings
from maskwatch.core.keys import Keys
from maskwatch.models.classifier import DEFAULT_MODEL_PATH
from maskwatch.runtime.heartbeat import check_alive
from maskwatch.runtime.private_redis import RedisServer, free_port
from tests.support.pipeline import make_settings, running

KEYS = Keys()
CAMERAS = ("api-door", "api-gate")
TOKEN = "s3cret-api-token"

pytestmark = [
    pytest.mark.skipif(
        not DEFAULT_MODEL_PATH.is_file(),
        reason=f"the mask classifier {DEFAULT_MODEL_PATH.name} is not in models/ yet",
    ),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]


@dataclass
class RealRun:
    settings: Settings
    client: redis.Redis
    docs: list[dict]  # every document of the violations stream, oldest first

    @property
    def violations(self) -> list[dict]:
        return [d for d in self.docs if d["type"] == "violation"]

    def clip_of(self, violation_id: str) -> dict:
        return next(d for d in self.docs if d.get("violation_id") == violation_id)


@pytest.fixture(scope="module")
def real_run(weights_dir: Path, videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    """Two cameras playing ``bare_then_masked_720p.mp4`` through ingest, worker (real detector, shipped
    classifier) and publisher, paced in real time so that clips have their pre- and post-roll."""
    server = RedisServer().start()
    clips = tmp_path_factory.mktemp("api-clips")
    video = str(videos / "bare_then_masked_720p.mp4")
    settings = make_settings(
        server.url,
        weights_dir,
        cameras=[{"id": cam, "url": video, "fps": 5, "realtime": True} for cam in CAMERAS],
        classifier={"type": "keras"},
        clips={"dir": str(clips), "pre_roll_s": 1.0, "post_roll_s": 1.0},
    )
    try:
        assert run_all(settings, stop=threading.Event()) == 0
        client = redis.Redis.from_url(server.url)
        docs = [json.loads(f[b"event"]) for _, f in client.xrange(KEYS.violations)]
        run = RealRun(settings, client, docs)
        assert {v["camera"] for v in run.violations} == set(CAMERAS), f"a violation per camera: {docs}"
        for v in run.violations:
            assert run.clip_of(v["id"])["type"] == "clip_ready", docs
        yield run
    finally:
        server.cleanup()


@contextmanager
def api_server(settings: Settings, token: str | None = None) -> Iterator[httpx.Client]:
    """``maskwatch api`` on a free port, run as its stage loop on a thread; an HTTP client for it."""
    if token is not None:
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"token": SecretStr(token)})}
        )
    service = ApiService.from_settings(settings, port=free_port())
    with running(service) as outcome:
        assert service.wait_ready(), outcome
        with httpx.Client(base_url=service.url.rstrip("/"), timeout=30) as http:
            yield http


@pytest.fixture
def http(real_run: RealRun) -> Iterator[httpx.Client]:
    with api_server(real_run.settings) as client:
        yield client


def test_documents_carry_api_urls(real_run: RealRun) -> None:
    v = real_run.violations[0]
    assert v["snapshot_url"] == f"/api/violations/{v['id']}/snapshot.jpg"
    assert v["clip_url"] == f"/api/violations/{v['id']}/clip.mp4"
    assert real_run.clip_of(v["id"])["clip_url"] == v["clip_url"]


def test_list_is_newest_first_with_clip_state_folded_in(real_run: RealRun, http: httpx.Client) -> None:
    r = http.get("/api/violations")
    assert r.status_code == 200
    body = r.json()
    expected = [v["id"] for v in reversed(real_run.violations)]
    assert [i["id"] for i in body["items"]] == expected and body["next_cursor"] is None
    for item in body["items"]:
        clip = real_run.clip_of(item["id"])
        assert item["clip_state"]["state"] == "ready"
        assert item["clip_state"]["path"] == clip["path"] and item["clip_state"]["frames"] == clip["frames"]
        assert item["review"] is None and item["snapshot_url"].endswith("/snapshot.jpg")


def test_pages_follow_the_cursor_and_still_fold_clips_published_above_it(
    real_run: RealRun, http: httpx.Client
) -> None:
    seen, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        body = http.get("/api/violations", params=params).json()
        assert body["count"] <= 1
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [i["id"] for i in seen] == [v["id"] for v in reversed(real_run.violations)]
    assert all(i["clip_state"]["state"] == "ready" for i in seen), "clip documents newer than the page"
    assert http.get("/api/violations", params={"cursor": "x; DROP"}).status_code == 400


def test_filter_by_camera_since_and_until(real_run: RealRun, http: httpx.Client) -> None:
    for cam in CAMERAS:
        items = http.get("/api/violations", params={"camera": cam}).json()["items"]
        assert items and {i["camera"] for i in items} == {cam}
        assert [i["id"] for i in items] == [
            v["id"] for v in reversed(real_run.violations) if v["camera"] == cam
        ]
    assert http.get("/api/violations", params={"camera": "nowhere"}).json()["items"] == []
    first, last = real_run.violations[0], real_run.violations[-1]
    after_first = http.get("/api/violations", params={"since": first["decided_ts"] + 1e-3}).json()["items"]
    assert first["id"] not in [i["id"] for i in after_first]
    assert all(i["decided_ts"] > first["decided_ts"] for i in after_first)
    iso = http.get("/api/violations", params={"since": first["first_seen"]}).json()["items"]
    assert first["id"] in [i["id"] for i in iso], "ISO 8601 works too"
    before_last = http.get("/api/violations", params={"until": last["decided_ts"] - 1e-3}).json()["items"]
    assert last["id"] not in [i["id"] for i in before_last]
    assert http.get("/api/violations", params={"since": "yesterday"}).status_code == 400


def test_one_violation_and_unknown_or_malformed_ids(real_run: RealRun, http: httpx.Client) -> None:
    v = real_run.violations[0]
    got = http.get(f"/api/violations/{v['id']}").json()
    assert got["id"] == v["id"] and got["track_id"] == v["track_id"] and got["clip_state"]["state"] == "ready"
    assert http.get("/api/violations/00000000-0000-0000-0000-000000000000").status_code == 404
    assert http.get("/api/violations/not-a-uuid").status_code == 400


def test_snapshot_is_the_jpeg_of_the_violation(real_run: RealRun, http: httpx.Client) -> None:
    v = real_run.violations[0]
    r = http.get(f"/api/violations/{v['id']}/snapshot.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == Path(v["snapshot"]).read_bytes()
    assert cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR) is not None


def test_clip_supports_range_requests(real_run: RealRun, http: httpx.Client) -> None:
    v = real_run.violations[0]
    data = Path(real_run.clip_of(v["id"])["path"]).read_bytes()
    url = f"/api/violations/{v['id']}/clip.mp4"
    full = http.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "video/mp4" and full.headers["accept-ranges"] == "bytes"
    part = http.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(data)}"
    tail = http.get(url, headers={"Range": f"bytes={len(data) - 50}-"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    assert tail.headers["content-range"] == f"bytes {len(data) - 50}-{len(data) - 1}/{len(data)}"
    assert http.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416


def test_clips_are_faststart(real_run: RealRun) -> None:
    data = Path(real_run.clip_of(real_run.violations[0]["id"])["path"]).read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "the index (moov) comes before the media (mdat)"


def test_paths_outside_the_clips_folder_are_never_served(real_run: RealRun, http: httpx.Client) -> None:
    for path in (
        "/api/violations/..%2F..%2F..%2Fetc%2Fpasswd/snapshot.jpg",
        "/api/violations/%2e%2e/clip.mp4",
        "/api/violations/../../etc/passwd",
        "/api/violations/..%5C..%5Cetc%5Cpasswd/clip.mp4",
    ):
        r = http.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert b"root:" not in r.content
    # A forged document whose paths leave clips.dir (absolute, and relative through ..): 404, no file.
    clips_dir = real_run.settings.clips.dir
    forged = dict(real_run.violations[0]) | {
        "id": "11111111-2222-4333-8444-555555555555",
        "snapshot": "/etc/passwd",
        "clip": str(clips_dir / ".." / ".." / "etc" / "passwd"),
    }
    entry = real_run.client.xadd(KEYS.violations, {"event": json.dumps(forged)})
    clip_doc = real_run.clip_of(real_run.violations[0]["id"]) | {
        "id": "11111111-2222-4333-8444-666666666666",
        "violation_id": forged["id"],
        "path": forged["clip"],
        "snapshot": "../../../../etc/passwd",
    }
    entry2 = real_run.client.xadd(KEYS.violations, {"event": json.dumps(clip_doc)})
    try:
        for suffix in ("snapshot.jpg", "clip.mp4"):
            r = http.get(f"/api/violations/{forged['id']}/{suffix}")
            assert r.status_code == 404 and b"root:" not in r.content
    finally:
        real_run.client.xdel(KEYS.violations, entry, entry2)


def test_review_is_stored_and_survives_an_api_restart(real_run: RealRun) -> None:
    v = real_run.violations[-1]
    with api_server(real_run.settings) as http:
        r = http.post(f"/api/violations/{v['id']}/review", json={"status": "false_alarm", "note": "a poster"})
        assert r.status_code == 200 and r.json()["review"]["status"] == "false_alarm"
        assert http.post(f"/api/violations/{v['id']}/review", json={"status": "maybe"}).status_code == 422
        unknown = "00000000-0000-0000-0000-000000000000"
        assert http.post(f"/api/violations/{unknown}/review", json={"status": "reviewed"}).status_code == 404
    with api_server(real_run.settings) as http:  # a new process would see the same: it lives in Redis
        got = http.get(f"/api/violations/{v['id']}").json()["review"]
        assert got["status"] == "false_alarm" and got["note"] == "a poster"
        listed = {i["id"]: i["review"] for i in http.get("/api/violations").json()["items"]}
        assert listed[v["id"]]["status"] == "false_alarm"
        http.post(f"/api/violations/{v['id']}/review", json={"status": "reviewed"})
        again = http.get(f"/api/violations/{v['id']}").json()["review"]
        assert again["status"] == "reviewed" and again["note"] is None and again["ts"] >= got["ts"]
    real_run.client.delete(f"{KEYS.prefix}reviews")


def test_cameras_report_state_rate_and_compliance(real_run: RealRun, http: httpx.Client) -> None:
    body = http.get("/api/cameras").json()
    cams = {c["id"]: c for c in body["cameras"]}
    assert set(cams) == set(CAMERAS)
    for cam in CAMERAS:
        c = cams[cam]
        assert c["state"] == "finished" and c["last_seq"] == 44
        assert c["frames_window"] == 45 and c["faces_window"] > 0
        assert 0 <= c["compliance_window"] <= 1 and c["compliance_now"] is not None
        assert c["violations_window"] == sum(1 for v in real_run.violations if v["camera"] == cam)
        assert c["fps"] >= 0 and c["window_covered_s"] == c["window_s"] == 3600
    assert body["compliance_basis"].startswith("faces")


def test_token_guards_every_api_route_but_not_health_or_page(real_run: RealRun) -> None:
    v = real_run.violations[0]
    routes = [
        "/api/violations",
        f"/api/violations/{v['id']}",
        f"/api/violations/{v['id']}/snapshot.jpg",
        f"/api/violations/{v['id']}/clip.mp4",
        "/api/cameras",
    ]
    with api_server(real_run.settings, token=TOKEN) as http:
        for route in routes:
            assert http.get(route).status_code == 401, route
            assert http.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401, route
            assert http.get(route, headers={"Authorization": TOKEN}).status_code == 401, route
            ok = http.get(route, headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, route
        review = f"/api/violations/{v['id']}/review"
        assert http.post(review, json={"status": "reviewed"}).status_code == 401
        assert http.get("/healthz").json() == {"status": "ok", "redis": "ok"}
        assert http.get("/").status_code == 200 and "<video" in http.get("/").text
        assert http.get("/static/app.js").status_code == 200


def test_health_openapi_and_heartbeat(real_run: RealRun, http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    for p in (
        "/api/violations",
        "/api/violations/{violation_id}",
        "/api/violations/{violation_id}/snapshot.jpg",
        "/api/violations/{violation_id}/clip.mp4",
        "/api/violations/{violation_id}/review",
        "/api/cameras",
        "/healthz",
    ):
        assert p in paths, p
    assert check_alive(real_run.settings, "api") == 0, "`maskwatch check api` finds its heartbeat"


def test_port_in_use_fails_at_once_naming_it(real_run: RealRun) -> None:
    port = free_port()
    first = ApiService.from_settings(real_run.settings, port=port)
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            ApiService.from_settings(real_run.settings, port=port)
    finally:
        first.sock.close()
