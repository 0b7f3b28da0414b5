"""Signed webhooks: every violation document POSTed to each configured endpoint, at least once.

Each endpoint (:class:`~maskwatch.config.webhooks.WebhookConfig`) is served by a :class:`WebhookDelivery`,
a stage loop on its own thread with its own consumer group (``webhook-<name>``) on the violations stream
and its own queue of documents waiting for an attempt. A step reads new documents (never more than
``max_queued`` in hand), POSTs those whose next attempt is due, and schedules a failed one again after a
capped, jittered, doubling delay (or the endpoint's ``Retry-After``), so a document in backoff holds back
nothing, and a slow or dead endpoint holds back only its own thread. A document is acknowledged (XACK,
never XDEL: other sinks read the same stream) only after a 2xx answer, or once it has been written to the
dead-letter stream: after ``max_attempts``, or at once on a 3xx or a 4xx other than 429.

:class:`WebhooksService` is the ``maskwatch webhooks`` process: one :class:`WebhookDelivery` thread per
endpoint, one heartbeat, one metrics endpoint, one summary line.

Every request carries the exact document bytes of the stream entry (field ``event``) with
``Content-Type: application/json``, ``X-Maskwatch-Signature: sha256=<hex HMAC-SHA256 of the body>``,
``X-Maskwatch-Event: <type>``, ``X-Maskwatch-Id`` and ``Idempotency-Key`` (the document id, the same on
every retry) and ``X-Maskwatch-Attempt``. URLs and secrets never reach logs, metric labels or dead letters:
those name the endpoint by its short ``name`` and ``scheme://host:port/…``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from prometheus_client import Counter, Gauge, Histogram

from maskwatch.config.settings import Settings
from maskwatch.config.webhooks import WebhookConfig
from maskwatch.core.errors import ErrorKind, MaskwatchError
from maskwatch.core.keys import Keys
from maskwatch.runtime.deadletter import add_deadletter, deadletter_fields
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.metrics_server import DEADLETTERS
from maskwatch.runtime.redis_conn import connect
from maskwatch.runtime.stage import Every, LoopOptions, Stage

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "maskwatch_webhook_deliveries_total",
    "Webhook outcomes: delivered (2xx), retry (a failed attempt, tried again later), "
    "dead_letter (given up), filtered (type not sent to this endpoint)",
    ["webhook", "result"],
)
DELIVERY_SECONDS = Histogram(
    "maskwatch_webhook_delivery_seconds",
    "Duration of one webhook HTTP attempt, whatever its outcome",
    ["webhook"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUED = Gauge(
    "maskwatch_webhook_queued_documents", "Documents read and not yet acknowledged, per webhook", ["webhook"]
)

SIGNATURE_HEADER = "X-Maskwatch-Signature"
USER_AGENT = "maskwatch-webhooks/1"
RETRY_AFTER_MAX_S = 3600.0
"""A ``Retry-After`` longer than this is taken as this."""
_MAX_ANSWER_BYTES = 64 * 1024  # read (and drop) at most this much of an answer


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Maskwatch-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(RETRY_AFTER_MAX_S, float(value))
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(RETRY_AFTER_MAX_S, max(0.0, when - (time.time() if now is None else now)))


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the HTTP status (None: no answer), an error sentence, ``Retry-After``."""

    status: int | None
    error: str = ""
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """No answer (connection error, timeout), 429 or 5xx: worth another attempt."""
        return self.status is None or self.status == 429 or 500 <= self.status < 600


Poster = Callable[[str, bytes, Mapping[str, str], float], Answer]
"""POST ``body`` with ``headers`` to a URL within a timeout; never raises for network or HTTP errors."""


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Answer:
    """POST with :mod:`http.client`: no proxies, no redirects (a 3xx is an answer), basic auth from the
    URL's ``user:password@``. ``timeout_s`` bounds the connect and each read of the answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = dict(headers)
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        sent["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
    try:
        conn.request("POST", path, body=body, headers=sent)
        answer = conn.getresponse()
        answer.read(_MAX_ANSWER_BYTES)
        status = answer.status
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        return Answer(status, error, retry_after_s(answer.getheader("Retry-After")))
    except TimeoutError:
        return Answer(None, f"timeout after {timeout_s:g}s")
    except (OSError, http.client.HTTPException) as e:
        return Answer(None, f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}")
    finally:
        conn.close()


@dataclass
class Queued:
    """A document read from the stream and not yet acknowledged."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    doc_id: str
    doc_type: str
    attempts: int = 0
    due: float = 0.0
    """``time.monotonic()`` of the next attempt."""
    last: Answer | None = None

    @property
    def body(self) -> bytes:
        return self.fields[b"event"]


@dataclass
class WebhookStats:
    delivered: int = 0
    retries: int = 0
    dead_lettered: int = 0
    filtered: int = 0


class WebhookDelivery(Stage):
    """One endpoint: its consumer group on the violations stream, its retry queue, its loop."""

    stage = "webhook"
    BLOCK_MS = 200
    """Longest a step waits for new documents (less when an attempt falls due sooner)."""
    CLAIM_IDLE_MS = 60_000
    """Documents a dead consumer of this group left pending this long are taken over; the documents this
    one holds are re-claimed (idle time reset) more often than that, so no live one is taken from it."""
    STEP_BUDGET_S = 1.0
    """After this long delivering in one step, the step ends (heartbeat, reads) even if more are due."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: WebhookConfig,
        consumer: str,
        heartbeat: Heartbeat,
        options: LoopOptions,
        *,
        poster: Poster = post,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.keys, self.config, self.consumer, self.poster = keys, config, consumer, poster
        self.name, self.group, self.stream = config.label, config.group, keys.violations
        self.stats = WebhookStats()
        self.queue: dict[bytes, Queued] = {}
        self._rng = rng or random.Random()
        self._url = config.url.get_secret_value()
        self._secret = config.secret.get_secret_value().encode()
        self._types = frozenset(config.types)
        self._claim = Every(self.CLAIM_IDLE_MS / 4000)
        self._own_from: bytes | None = b"0"  # read position in our own pending (None: read through)

    # -- loop hooks ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.ensure_group()
        log.info(
            "webhook %s: delivering %s to %s (group %s)",
            self.name,
            ", ".join(self.config.types),
            self.config.safe_endpoint,
            self.group,
        )

    def on_reconnect(self) -> None:
        self.ensure_group()
        self._own_from = b"0"

    def on_stop(self, deadline: float) -> None:
        if self.queue:
            log.info(
                "webhook %s: %d document(s) left pending, delivered after a restart",
                self.name,
                len(self.queue),
            )

    def heartbeat_info(self) -> dict[str, Any]:
        return {"webhook": self.name, "queued": len(self.queue)}

    def summary(self) -> str:
        s = self.stats
        return (
            f"{self.name}: {s.delivered} delivered, {s.retries} retried, {s.dead_lettered} dead-lettered, "
            f"{s.filtered} filtered, {len(self.queue)} pending"
        )

    def ensure_group(self) -> None:
        """Create this endpoint's group if missing, at the stream's end: an endpoint added to the config
        receives the documents published from then on, not the stream's history."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
            log.info("webhook %s: created consumer group %s on %s", self.name, self.group, self.stream)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def step(self, block_ms: int) -> int:
        """Take over what dead consumers left, read new documents (waiting at most until the next attempt
        is due), then POST every due one; returns documents read plus attempts made."""
        if self._claim.due():
            self._reclaim()
        work = 0
        room = self.config.max_queued - len(self.queue)
        wait_ms = block_ms
        if self.queue:
            wait_ms = max(0, min(block_ms, int((self._next_due() - time.monotonic()) * 1000)))
        if room > 0:
            work += self._read(room, wait_ms)
        elif wait_ms:
            self.stop_event.wait(wait_ms / 1000)
        work += self._deliver_due()
        QUEUED.labels(self.name).set(len(self.queue))
        return work

    # -- reading -------------------------------------------------------------------------------------

    def _read(self, count: int, block_ms: int) -> int:
        own = self._own_from  # first what this consumer name was given before a restart
        try:
            reply: Any = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: own if own is not None else b">"},
                count=count,
                block=None if own is not None or not block_ms else block_ms,
            )
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("webhook %s: consumer group missing (Redis restarted?); re-creating", self.name)
            self.ensure_group()
            return 0
        entries = [(i, f) for _stream, messages in reply or [] for i, f in messages]
        if own is not None:
            self._own_from = bytes(entries[-1][0]) if entries else None
        return self._take(entries)

    def _reclaim(self) -> None:
        """Keep the documents this consumer holds (reset their idle time), take over those a dead one
        left, and drop from the queue what is no longer pending (the group was re-created)."""
        held = list(self.queue)
        if held:
            kept: Any = self.client.xclaim(
                self.stream, self.group, self.consumer, 0, list[Any](held), justid=True
            )
            still = {bytes(i) for i in kept or []}
            for entry_id in held:
                if entry_id not in still:
                    self.queue.pop(entry_id, None)
        try:
            reply: Any = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.CLAIM_IDLE_MS, "0-0", count=100
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                self.ensure_group()
                return
            raise
        claimed = [(i, f) for i, f in reply[1] if f]
        deleted = [i for i, f in reply[1] if not f] + list(reply[2] if len(reply) > 2 else [])
        if deleted:  # trimmed from the stream meanwhile: nothing left to send
            self.client.xack(self.stream, self.group, *deleted)
        if claimed:
            log.warning(
                "webhook %s: took over %d document(s) left by a dead consumer", self.name, len(claimed)
            )
            self._take(claimed)

    def _take(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> int:
        """Queue the documents of ``entries`` for an attempt now; ack filtered ones, dead-letter bad ones."""
        now = time.monotonic()
        skip: list[bytes] = []
        for entry_id, fields in entries:
            entry_id = bytes(entry_id)
            if entry_id in self.queue:
                continue
            if not fields:  # an own-pending entry trimmed from the stream meanwhile
                skip.append(entry_id)
                continue
            try:
                doc_id, doc_type = _identity(fields)
            except ValueError as e:
                self._dead_letter_malformed(entry_id, fields, str(e))
                continue
            if doc_type not in self._types:
                skip.append(entry_id)
                self.stats.filtered += 1
                DELIVERIES.labels(self.name, "filtered").inc()
                continue
            self.queue[entry_id] = Queued(entry_id, dict(fields), doc_id, doc_type, due=now)
        if skip:
            self.client.xack(self.stream, self.group, *skip)
        return len(entries)

    # -- delivering ----------------------------------------------------------------------------------

    def _next_due(self) -> float:
        return min(q.due for q in self.queue.values())

    def _deliver_due(self) -> int:
        start = time.monotonic()
        attempts = 0
        for item in sorted(self.queue.values(), key=lambda q: q.due):
            now = time.monotonic()
            if item.due > now or self.stop_event.is_set() or now - start > self.STEP_BUDGET_S:
                break
            self._attempt(item)
            attempts += 1
        return attempts

    def _attempt(self, item: Queued) -> None:
        item.attempts += 1
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, item.body),
            "X-Maskwatch-Event": item.doc_type,
            "X-Maskwatch-Id": item.doc_id,
            "Idempotency-Key": item.doc_id,
            "X-Maskwatch-Attempt": str(item.attempts),
        }
        t0 = time.monotonic()
        answer = self.poster(self._url, item.body, headers, self.config.timeout_s)
        DELIVERY_SECONDS.labels(self.name).observe(time.monotonic() - t0)
        item.last = answer
        if answer.ok:
            self.client.xack(self.stream, self.group, item.entry_id)
            del self.queue[item.entry_id]
            self.stats.delivered += 1
            DELIVERIES.labels(self.name, "delivered").inc()
            return
        if answer.retryable and item.attempts < self.config.max_attempts:
            delay = self._delay(item.attempts, answer.retry_after_s)
            item.due = time.monotonic() + delay
            self.stats.retries += 1
            DELIVERIES.labels(self.name, "retry").inc()
            log.info(
                "webhook %s: %s %s attempt %d/%d failed (%s); retrying in %.1fs",
                self.name,
                item.doc_type,
                item.doc_id,
                item.attempts,
                self.config.max_attempts,
                answer.error,
                delay,
            )
            return
        self._dead_letter(item, answer)

    def _delay(self, failures: int, retry_after: float | None) -> float:
        """``backoff_initial_s * 2**(failures-1)`` capped at ``backoff_max_s``, times a random factor in
        [0.5, 1.0]; never less than the endpoint's ``Retry-After``."""
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** min(failures - 1, 30))
        delay = base * self._rng.uniform(0.5, 1.0)
        return max(delay, retry_after) if retry_after is not None else delay

    def _dead_letter(self, item: Queued, answer: Answer) -> None:
        why = "gave up" if answer.retryable else "not retried"
        reason = (
            f"webhook {self.name} ({self.config.safe_endpoint}): {why} after {item.attempts} attempt(s); "
            f"last: {answer.error or answer.status}"
        )
        entry = deadletter_fields(self.stage, reason, self.stream, item.entry_id, item.fields)
        entry.update(
            {
                "webhook": self.name,
                "attempts": str(item.attempts),
                "last_status": "" if answer.status is None else str(answer.status),
                "last_error": answer.error,
            }
        )
        pipe = self.client.pipeline(transaction=True)
        add_deadletter(pipe, self.keys.deadletter, entry)
        pipe.xack(self.stream, self.group, item.entry_id)
        pipe.execute()
        del self.queue[item.entry_id]
        self.stats.dead_lettered += 1
        DELIVERIES.labels(self.name, "dead_letter").inc()
        kind = ErrorKind.HTTP if answer.status is not None else ErrorKind.TIMEOUT
        if answer.status is None and not answer.error.startswith("timeout"):
            kind = ErrorKind.REFUSED
        DEADLETTERS.labels(self.stage, kind).inc()
        log.error("%s %s dead-lettered: %s", item.doc_type, item.doc_id, reason)

    def _dead_letter_malformed(self, entry_id: bytes, fields: dict[bytes, bytes], problem: str) -> None:
        reason = f"webhook {self.name}: malformed document: {problem}"
        entry = deadletter_fields(self.stage, reason, self.stream, entry_id, fields)
        entry["webhook"] = self.name
        pipe = self.client.pipeline(transaction=True)
        add_deadletter(pipe, self.keys.deadletter, entry)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        DEADLETTERS.labels(self.stage, ErrorKind.MALFORMED).inc()
        log.error("webhook %s: dead-lettered entry %s: %s", self.name, entry_id.decode(), problem)


def _identity(fields: Mapping[bytes, bytes]) -> tuple[str, str]:
    """The ``id`` and ``type`` of the document in field ``event``; ValueError saying what is wrong."""
    raw = fields.get(b"event")
    if raw is None:
        raise ValueError("no 'event' field")
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"'event' is not JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError("'event' is not a JSON object")
    doc_id, doc_type = doc.get("id"), doc.get("type")
    if not isinstance(doc_id, str) or not doc_id or not isinstance(doc_type, str) or not doc_type:
        raise ValueError("document without a string 'id' and 'type'")
    if any(c in doc_id + doc_type for c in "\r\n"):
        raise ValueError("line break in 'id' or 'type'")
    return doc_id, doc_type


class WebhooksService(Stage):
    """The ``maskwatch webhooks`` process: one :class:`WebhookDelivery` thread per endpoint."""

    stage = "webhooks"
    BLOCK_MS = 500
    """How often the supervising loop looks at its endpoint threads (each has its own timing)."""
    DEFAULT_METRICS_PORT = 9105

    def __init__(
        self,
        client: redis.Redis,
        heartbeat: Heartbeat,
        options: LoopOptions,
        deliveries: list[WebhookDelivery],
    ) -> None:
        super().__init__(client, heartbeat, options)
        names = [d.name for d in deliveries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MaskwatchError(
                f"webhook names must be unique (give each endpoint its own `name`); repeated: "
                f"{', '.join(dupes)}"
            )
        self.deliveries = deliveries
        self._stops = [threading.Event() for _ in deliveries]
        self._threads: list[threading.Thread] = []
        self._failed: dict[str, str] = {}
        self._summaries: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, metrics_port: int | None = None) -> WebhooksService:
        """One delivery per ``settings.webhooks`` entry; ``metrics_port`` defaults to 9105 (0: none)."""
        if not settings.webhooks:
            raise MaskwatchError("no webhook configured: add a `webhooks:` list (url, secret) to the config")
        client = connect(settings)
        keys = Keys(settings.key_prefix)
        name = instance_name(cls.stage, settings.instance)
        hb = Heartbeat.from_settings(client, settings, cls.stage, name)
        port = cls.DEFAULT_METRICS_PORT if metrics_port is None else metrics_port
        options = LoopOptions(cls.BLOCK_MS, settings.shutdown_grace_s, settings.redis_retry_max_s, port)
        child = LoopOptions(
            WebhookDelivery.BLOCK_MS, settings.shutdown_grace_s, settings.redis_retry_max_s, 0
        )
        deliveries = [WebhookDelivery(client, keys, w, name, hb, child) for w in settings.webhooks]
        return cls(client, hb, options, deliveries)

    def on_start(self) -> None:
        for d in self.deliveries:
            d.ensure_group()  # before any thread runs: nothing published from now on is missed
        for delivery, stop in zip(self.deliveries, self._stops, strict=True):
            t = threading.Thread(
                target=self._run_one, args=(delivery, stop), name=f"webhook-{delivery.name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _run_one(self, delivery: WebhookDelivery, stop: threading.Event) -> None:
        try:
            self._summaries[delivery.name] = delivery.run(stop)
        except Exception as e:  # noqa: BLE001 - Stage.run logged it; step() notices
            self._failed[delivery.name] = f"{type(e).__name__}: {e}"

    def step(self, block_ms: int) -> int:
        self.stop_event.wait(block_ms / 1000)
        if self._failed:
            name, why = next(iter(self._failed.items()))
            raise MaskwatchError(f"webhook {name} stopped: {why}")
        return 0

    def on_stop(self, deadline: float) -> None:
        for stop in self._stops:
            stop.set()
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def heartbeat_info(self) -> dict[str, Any]:
        return {"webhooks": len(self.deliveries)}

    def summary(self) -> str:
        parts = [self._summaries.get(d.name) or d.summary() for d in self.deliveries]
        return f"webhooks: {len(self.deliveries)} endpoint(s); " + "; ".join(parts)
