"""Signed webhooks against real HTTP receivers (``ThreadingHTTPServer`` on 127.0.0.1) and a real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY, generate_latest

from maskwatch.config.settings import ConfigError, load_settings
from maskwatch.core.keys import Keys
from maskwatch.delivery.webhooks import WebhookDelivery, WebhooksService, retry_after_s

KEYS = Keys()
SECRET = "s3cr3t-hmac-key-for-tests"


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP endpoint that answers each POST with the next of ``statuses`` (the last one repeats),
    after sleeping ``delay_s``, and records every request."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    retry_after: str | None = None
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.requests.append(Request(time.monotonic(), dict(self.headers), body))
                    n = len(receiver.requests)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.statuses[min(n, len(receiver.statuses)) - 1]
                try:
                    self.send_response(status)
                    if receiver.retry_after and status in (429, 503):
                        self.send_header("Retry-After", receiver.retry_after)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        r = Receiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def hook(url: str, **kw: Any) -> dict[str, Any]:
    return {"url": url, "secret": SECRET, "backoff_initial_s": 0.02, "backoff_max_s": 0.1, **kw}


def service(redis_url: str, *hooks: dict[str, Any]) -> WebhooksService:
    settings = load_settings(redis_url=redis_url, webhooks=list(hooks), shutdown_grace_s=2)
    svc = WebhooksService.from_settings(settings, metrics_port=0)
    for d in svc.deliveries:
        d.ensure_group()
    return svc


def publish(client: redis.Redis, doc_type: str = "violation", **extra: Any) -> tuple[str, bytes]:
    """XADD a document as the publisher does (JSON in field ``event``); its id and exact bytes."""
    doc_id = str(uuid.uuid4())
    doc = {"schema": f"maskwatch.{doc_type}", "schema_version": 1, "type": doc_type, "id": doc_id}
    body = json.dumps({**doc, "camera": "cam1", **extra}).encode()
    client.xadd(KEYS.violations, {"event": body})
    return doc_id, body


def drive(delivery: WebhookDelivery, until: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out"
        delivery.step(20)


def pending(client: redis.Redis, group: str) -> int:
    return int(client.xpending(KEYS.violations, group)["pending"])


def deadletters(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _id, fields in client.xrange(KEYS.deadletter)
    ]


def test_document_is_posted_signed_with_its_id_and_type_and_acked(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers()
    svc = service(redis_url, hook(rx.url))
    d = svc.deliveries[0]
    doc_id, body = publish(client, track_id=7)
    drive(d, lambda: d.stats.delivered == 1)

    (req,) = rx.requests
    assert req.body == body  # the exact bytes of the stream entry
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Maskwatch-Signature"], expected)
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Maskwatch-Event"] == "violation"
    assert req.headers["Idempotency-Key"] == req.headers["X-Maskwatch-Id"] == doc_id
    assert pending(client, d.group) == 0
    assert d.group == f"webhook-{d.name}" and len(d.name) == 8
    assert (
        REGISTRY.get_sample_value(
            "maskwatch_webhook_deliveries_total", {"webhook": d.name, "result": "delivered"}
        )
        == 1
    )
    assert REGISTRY.get_sample_value("maskwatch_webhook_delivery_seconds_count", {"webhook": d.name}) == 1


def test_failing_twice_then_succeeding_delivers_once_more_with_the_same_key(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[500, 503, 200])
    d = service(redis_url, hook(rx.url, max_attempts=5)).deliveries[0]
    doc_id, _ = publish(client)
    drive(d, lambda: d.stats.delivered == 1)
    time.sleep(0.2)
    for _ in range(5):
        d.step(20)  # nothing more is sent

    assert len(rx.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in rx.requests} == {doc_id}
    assert [r.headers["X-Maskwatch-Attempt"] for r in rx.requests] == ["1", "2", "3"]
    assert d.stats.retries == 2 and d.stats.dead_lettered == 0
    assert pending(client, d.group) == 0 and deadletters(client) == []


def test_retry_after_is_honoured(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[429, 200], retry_after="1")
    d = service(redis_url, hook(rx.url)).deliveries[0]
    publish(client)
    drive(d, lambda: d.stats.delivered == 1)
    first, second = rx.requests
    assert second.at - first.at >= 0.95  # backoff alone would be under 0.1 s


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_s("7") == 7
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_an_endpoint_that_always_fails_ends_in_the_dead_letter_stream_with_the_reason(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[502])
    d = service(redis_url, hook(rx.url, max_attempts=3, name="ops")).deliveries[0]
    doc_id, body = publish(client)
    drive(d, lambda: d.stats.dead_lettered == 1)

    assert len(rx.requests) == 3
    (dl,) = deadletters(client)
    assert dl["stage"] == "webhook" and dl["webhook"] == "ops"
    assert dl["attempts"] == "3" and dl["last_status"] == "502"
    port = rx.url.split(":")[2].split("/")[0]
    assert f"http://127.0.0.1:{port}/…" in dl["reason"] and "/hook" not in dl["reason"]
    assert "3 attempt(s)" in dl["reason"] and "HTTP 502" in dl["reason"]
    assert dl["msg.event"] == body.decode()
    assert pending(client, d.group) == 0  # acked once dead-lettered
    assert json.loads(dl["msg.event"])["id"] == doc_id


def test_a_client_error_is_not_retried(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[400])
    d = service(redis_url, hook(rx.url, max_attempts=5)).deliveries[0]
    publish(client)
    drive(d, lambda: d.stats.dead_lettered == 1)
    assert len(rx.requests) == 1
    assert deadletters(client)[0]["last_status"] == "400"
    assert "not retried after 1 attempt(s)" in deadletters(client)[0]["reason"]


def test_a_dead_endpoint_is_retried_then_dead_lettered(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers()
    url = rx.url
    rx.stop()  # nothing listens there any more: connection refused
    d = service(redis_url, hook(url, max_attempts=2)).deliveries[0]
    publish(client)
    drive(d, lambda: d.stats.dead_lettered == 1)
    (dl,) = deadletters(client)
    assert dl["last_status"] == "" and "ConnectionRefusedError" in dl["last_error"]


def test_a_slow_endpoint_does_not_delay_a_fast_one(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    slow = receivers(delay_s=3.0)
    fast = receivers()
    svc = service(redis_url, hook(slow.url, timeout_s=1.0, max_attempts=2), hook(fast.url))
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    runner.start()
    try:
        time.sleep(0.3)  # the service is up and blocking on its reads
        t0 = time.monotonic()
        ids = [publish(client)[0] for _ in range(3)]
        deadline = t0 + 5
        while len(fast.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(r.headers["X-Maskwatch-Id"] for r in fast.requests) == sorted(ids)
        assert max(r.at for r in fast.requests) - t0 < 0.8  # the slow one needs >= 1 s per attempt
        assert len(slow.requests) == 1  # still waiting on its first answer
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    fast_group = svc.deliveries[1].group
    assert pending(client, fast_group) == 0
    assert pending(client, svc.deliveries[0].group) > 0  # not delivered: left pending, not lost


def test_types_filter_what_an_endpoint_receives(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers()
    d = service(redis_url, hook(rx.url, types=["clip_ready"])).deliveries[0]
    publish(client, "violation")
    clip_id, _ = publish(client, "clip_ready", violation_id="v")
    publish(client, "clip_failed", error="disk full")
    drive(d, lambda: d.stats.delivered == 1 and d.stats.filtered == 2)
    assert [r.headers["X-Maskwatch-Id"] for r in rx.requests] == [clip_id]
    assert rx.requests[0].headers["X-Maskwatch-Event"] == "clip_ready"
    assert pending(client, d.group) == 0  # filtered documents are acked too


def test_a_malformed_entry_is_dead_lettered_and_acked(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers()
    d = service(redis_url, hook(rx.url)).deliveries[0]
    client.xadd(KEYS.violations, {"event": b"{not json"})
    drive(d, lambda: len(deadletters(client)) == 1)
    assert "malformed" in deadletters(client)[0]["reason"] and rx.requests == []
    assert pending(client, d.group) == 0


def test_a_restarted_consumer_delivers_what_it_held(redis_url, receivers):
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[503])
    first = service(redis_url, hook(rx.url, max_attempts=50)).deliveries[0]
    doc_id, _ = publish(client)
    drive(first, lambda: first.stats.retries >= 1)  # read, tried, waiting: pending in the group
    rx.statuses = [200]
    again = service(redis_url, hook(rx.url)).deliveries[0]  # same consumer name: reads its own pending
    drive(again, lambda: again.stats.delivered == 1)
    assert rx.requests[-1].headers["X-Maskwatch-Id"] == doc_id
    assert pending(client, again.group) == 0


def test_secrets_never_appear_in_logs_dead_letters_or_metrics(redis_url, receivers, caplog):
    caplog.set_level(logging.DEBUG)
    client = redis.Redis.from_url(redis_url)
    rx = receivers(statuses=[500])
    port = rx.url.split(":")[2].split("/")[0]
    password, token, secret = "pa55word-xyz", "tok-ABCDEF123456", "hmac-secret-never-logged"
    url = f"http://alice:{password}@127.0.0.1:{port}/hooks/{token}?key={token}"
    svc = service(redis_url, {**hook(url, max_attempts=2), "secret": secret})
    d = svc.deliveries[0]
    d.on_start()
    publish(client)
    drive(d, lambda: d.stats.dead_lettered == 1)

    assert rx.requests[0].headers["Authorization"].startswith("Basic ")  # userinfo sent as basic auth
    dead = {k: v for k, v in deadletters(client)[0].items() if not k.startswith("msg.")}
    exposed = caplog.text + json.dumps(dead) + generate_latest().decode() + d.summary() + svc.summary()
    for value in (password, token, secret, url):
        assert value not in exposed
    assert "webhook" in caplog.text  # it did log


def test_config_rejects_bad_urls_and_short_secrets_without_echoing_them():
    with pytest.raises(ConfigError) as e:
        load_settings(webhooks=[{"url": "ftp://x/secret-path-zzz", "secret": SECRET}])
    assert "webhooks.0.url" in str(e.value) and "secret-path-zzz" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_settings(webhooks=[{"url": "https://x/", "secret": "short-zzz"}])
    assert "webhooks.0.secret" in str(e.value) and "short-zzz" not in str(e.value)
    with pytest.raises(ConfigError):
        load_settings(webhooks=[{"url": "https://x/", "secret": SECRET, "types": ["frame"]}])
    s = load_settings(webhooks=[{"url": "https://x/", "secret": SECRET}])
    assert s.webhooks[0].types == ["violation", "clip_ready", "clip_failed"]


def test_the_webhooks_command_without_endpoints_says_what_to_do(redis_url, capsys):
    from maskwatch.cli.main import main

    assert main(["webhooks", "--redis-url", redis_url]) == 2
    assert "no webhook configured" in capsys.readouterr().err
