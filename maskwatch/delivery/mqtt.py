"""The MQTT sink (``maskwatch mqtt``): every document of the violations stream to an MQTT broker, at
least once and in order, plus each camera's retained state, an availability topic with a last will and
Home Assistant discovery.

Delivery discipline: the stage reads its consumer group ``mqtt.group`` on ``maskwatch:violations`` (one
stream; the publisher trims it, nobody deletes from it, so every sink has its own group), publishes each
document with QoS ``mqtt.qos`` on ``<prefix>/violations`` and ``<prefix>/<camera>/violations`` in stream
order, and XACKs an entry only once the broker has acknowledged both publishes (PUBACK). While
documents are in flight it reads nothing new. A broker outage keeps them in flight: paho resends them,
in order, after it reconnects. A restart re-reads this consumer's pending entries first (the consumer
name is the MQTT client id, stable across restarts), so nothing acknowledged is lost and nothing
unacknowledged is skipped; a document may arrive twice (consumers dedup by its ``id``). A document that
is not JSON (or has no camera or id) is dead-lettered with the reason and acknowledged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import redis

from maskwatch import __version__
from maskwatch.config.mqtt import MqttSettings
from maskwatch.config.settings import Settings
from maskwatch.core.errors import ErrorKind
from maskwatch.core.keys import Keys
from maskwatch.core.redaction import redact_url, register_secret
from maskwatch.delivery.camera_summary import CameraSummary
from maskwatch.delivery.homeassistant import Topics, discovery_configs
from maskwatch.runtime.deadletter import add_deadletter, deadletter_fields
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.metrics_server import DEADLETTERS
from maskwatch.runtime.redis_conn import connect
from maskwatch.runtime.stage import Every, LoopOptions, Stage

log = logging.getLogger(__name__)

_CAMERA_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # cameras[].id: also safe as an MQTT topic level
AVAILABLE, UNAVAILABLE = "online", "offline"


class BrokerLink:
    """One paho client, its network thread, and which publishes the broker has acknowledged."""

    def __init__(self, client: mqtt.Client, topics: Topics, host: str, port: int, keepalive_s: int) -> None:
        self.client, self.topics = client, topics
        self.host, self.port, self.keepalive_s = host, port, keepalive_s
        self._lock = threading.Lock()
        self._acked: set[int] = set()
        self._connected = threading.Event()
        self._connects = 0  # successful (re)connections so far; the stage redoes its retained topics
        self._refused: str | None = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish

    @classmethod
    def from_settings(cls, cfg: MqttSettings, topics: Topics) -> BrokerLink:
        """A client for ``cfg.url`` with its credentials, TLS, last will and reconnect delays."""
        broker = cfg.broker()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if broker.username is not None:
            password = broker.password.get_secret_value() if broker.password else None
            register_secret(password)  # the decoded form too (a %-escaped URL registers the escaped one)
            client.username_pw_set(broker.username, password)
        if broker.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
            client.tls_insecure_set(cfg.tls_insecure)
        client.will_set(topics.available, UNAVAILABLE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(cfg.reconnect_max_s)))
        return cls(client, topics, broker.host, broker.port, cfg.keepalive_s)

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers) and run the network thread."""
        self.client.connect_async(self.host, self.port, self.keepalive_s)
        self.client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def connects(self) -> int:
        return self._connects

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: str | bytes, qos: int, retain: bool = False) -> int | None:
        """Queue a publish; the mid to wait for (None for QoS 0: nothing comes back)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid if qos > 0 else None

    def take_acked(self, mids: set[int]) -> set[int]:
        """Which of ``mids`` the broker has acknowledged (each is reported once)."""
        with self._lock:
            done = self._acked & mids
            self._acked -= done
            return done

    def forget_acks(self, keep: set[int]) -> None:
        """Drop acknowledgements nobody waits for (retained topics), keeping ``keep``; call it only when no
        publish is under way, so every mid handed out so far is either in ``keep`` or not waited for."""
        with self._lock:
            self._acked &= keep

    def stop(self, timeout_s: float) -> None:
        """Say ``offline`` (retained), wait up to ``timeout_s`` for it, then disconnect."""
        if self.connected:
            info = self.client.publish(self.topics.available, UNAVAILABLE, qos=1, retain=True)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.connected:
                with self._lock:
                    if info.mid in self._acked:
                        break
                time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()

    # -- callbacks (paho's network thread) ---------------------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            why = str(reason)
            if why != self._refused:
                log.error("mqtt: broker %s:%d refused the connection: %s", self.host, self.port, why)
            self._refused = why
            return
        self._refused = None
        self._connects += 1
        log.info("mqtt: connected to %s:%d", self.host, self.port)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected.is_set():
            log.warning("mqtt: disconnected from %s:%d (%s); reconnecting", self.host, self.port, reason)
        self._connected.clear()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._lock:
            self._acked.add(mid)


@dataclass
class _InFlight:
    entry_id: bytes
    camera: str
    doc: dict[str, Any]
    mids: set[int]


@dataclass
class MqttStats:
    delivered: int = 0
    deadletters: int = 0
    trimmed: int = 0  # pending entries the stream had trimmed before they could be delivered
    states: int = 0


class MqttStage(Stage):
    """Delivers the violations stream to MQTT through its own consumer group (module docstring)."""

    stage = "mqtt"

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        link: BrokerLink,
        summary: CameraSummary,
        heartbeat: Heartbeat,
        config: MqttSettings,
        options: LoopOptions,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.keys, self.link, self.camera_summary, self.config = keys, link, summary, config
        self.topics = link.topics
        self.consumer = config.client_id
        self.stats = MqttStats()
        self._inflight: deque[_InFlight] = deque()
        self._own_cursor: bytes | None = b"0"  # reading our pending entries first; None: done
        self._state_every = Every(config.state_interval_s)
        self._claim_every = Every(max(0.5, config.claim_idle_ms / 4000))
        self._announced: set[str] = set()  # cameras whose discovery went out since the last connect
        self._connects_seen = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> MqttStage:
        """The MQTT sink the settings describe (``mqtt.url`` must be set)."""
        cfg = settings.mqtt
        if cfg.url is None:
            raise ValueError("mqtt.url is not set (MASKWATCH_MQTT__URL=mqtt://user:password@host:1883)")
        client = connect(settings)
        keys = Keys(settings.key_prefix)
        topics = Topics(cfg.topic_prefix, cfg.discovery_prefix)
        link = BrokerLink.from_settings(cfg, topics)
        summary = CameraSummary(client, keys, settings.violations.compliance_window_s, cfg.violation_hold_s)
        hb = Heartbeat.from_settings(client, settings, cls.stage, instance_name(cls.stage, settings.instance))
        return cls(client, keys, link, summary, hb, cfg, LoopOptions.from_settings(settings, cls.stage))

    @property
    def safe_url(self) -> str:
        return redact_url(self.config.url.get_secret_value()) if self.config.url else "(none)"

    # -- hooks ---------------------------------------------------------------------------------------

    def on_start(self) -> None:
        log.info(
            "mqtt: broker %s, topics %s/..., group %s", self.safe_url, self.topics.prefix, self.config.group
        )
        self._create_group()
        self.camera_summary.load_recent_violations()
        self.link.start()

    def on_reconnect(self) -> None:
        self._create_group()
        self._own_cursor = b"0"

    def on_stop(self, deadline: float) -> None:
        """Wait for the documents in flight until ``deadline``, ack them, then say ``offline``."""
        while self._inflight and time.monotonic() < deadline and self.link.connected:
            self._settle(50)
        if self._inflight:
            log.warning(
                "mqtt: %d document(s) not acknowledged by the broker; re-sent after restart",
                len(self._inflight),
            )
        self.link.stop(max(0.1, min(2.0, deadline - time.monotonic())))

    def heartbeat_info(self) -> dict[str, Any]:
        return {"delivered": self.stats.delivered, "connected": self.link.connected}

    def summary(self) -> str:
        s = self.stats
        return (
            f"mqtt: {s.delivered} documents delivered, {s.deadletters} dead-lettered, "
            f"{s.trimmed} trimmed before delivery, {s.states} state updates"
        )

    def step(self, block_ms: int) -> int:
        """Settle what is in flight (waiting up to ``block_ms``); with nothing in flight, read and publish
        the next documents; publish retained topics when due. Returns the entries acknowledged."""
        self._retained_chores()
        if self._inflight:
            return self._settle(block_ms)
        if self.config.qos == 0 and not self.link.connected:  # QoS 0 is not queued while disconnected
            self.stop_event.wait(block_ms / 1000)
            return 0
        entries = self._read(block_ms)
        done = 0
        for entry_id, fields in entries:
            done += self._publish_entry(entry_id, fields)
        if self._inflight:
            done += self._settle(block_ms)
        return done

    # -- reading -------------------------------------------------------------------------------------

    def _create_group(self) -> None:
        try:
            start = "0" if self.config.from_beginning else "$"
            self.client.xgroup_create(self.keys.violations, self.config.group, id=start, mkstream=True)
            log.info("mqtt: created consumer group %s on %s", self.config.group, self.keys.violations)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _read(self, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Our own pending entries first (after a restart or a Redis outage), then entries left pending by a
        gone consumer for ``claim_idle_ms``, then new ones."""
        stream, count = self.keys.violations, self.config.read_count
        if self._own_cursor is not None:
            got = self._xreadgroup({stream: self._own_cursor}, count, 0)
            if got:
                self._own_cursor = got[-1][0]
                return got
            self._own_cursor = None
        if self._claim_every.due():
            reply = self.client.xautoclaim(
                stream, self.config.group, self.consumer, self.config.claim_idle_ms, "0-0", count=count
            )
            claimed = [(i, f or {}) for i, f in reply[1]]
            if claimed:
                log.warning("mqtt: took over %d document(s) left pending by another consumer", len(claimed))
                return claimed
        return self._xreadgroup({stream: ">"}, count, block_ms)

    def _xreadgroup(
        self, streams: dict[str, bytes | str], count: int, block_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = self.client.xreadgroup(  # type: ignore[assignment]
                self.config.group,
                self.consumer,
                streams,  # type: ignore[arg-type]
                count=count,
                block=block_ms or None,
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                log.warning("mqtt: consumer group missing (Redis restarted?); re-creating")
                self._create_group()
                return []
            raise
        return [(i, f or {}) for _s, messages in reply or [] for i, f in messages]

    # -- publishing ----------------------------------------------------------------------------------

    def _publish_entry(self, entry_id: bytes, fields: dict[bytes, bytes]) -> int:
        """Publish one entry's document (or dead-letter it); returns 1 if it was settled at once."""
        if not fields:  # trimmed from the stream while pending: nothing left to send
            self.stats.trimmed += 1
            log.warning(
                "mqtt: %s was trimmed from %s before delivery", entry_id.decode(), self.keys.violations
            )
            self.client.xack(self.keys.violations, self.config.group, entry_id)
            return 1
        raw = fields.get(b"event", b"")
        try:
            doc = _document(raw)
        except ValueError as e:
            self._deadletter(entry_id, fields, str(e))
            return 1
        camera = doc["camera"]
        payload = raw.decode() if isinstance(raw, bytes) else str(raw)
        mids = {
            self.link.publish(topic, payload, self.config.qos)
            for topic in (self.topics.violations, self.topics.camera_violations(camera))
        }
        mids.discard(None)
        self._inflight.append(_InFlight(entry_id, camera, doc, {m for m in mids if m is not None}))
        return 0

    def _settle(self, block_ms: int) -> int:
        """Wait up to ``block_ms`` for the broker's acknowledgements; XACK the entries fully acknowledged."""
        deadline = time.monotonic() + block_ms / 1000
        while True:
            waiting = {m for f in self._inflight for m in f.mids}
            acked = self.link.take_acked(waiting) if waiting else set()
            for f in self._inflight:
                f.mids -= acked
            done = [f for f in self._inflight if not f.mids]
            if done or time.monotonic() >= deadline or self.stop_event.is_set():
                break
            time.sleep(0.005)
        if not done:
            return 0
        self.client.xack(self.keys.violations, self.config.group, *[f.entry_id for f in done])
        self._inflight = deque(f for f in self._inflight if f.mids)
        touched: set[str] = set()
        for f in done:
            self.stats.delivered += 1
            if f.doc.get("type") == "violation":
                self.camera_summary.add_violation(f.camera, _float(f.doc.get("decided_ts")) or time.time())
                touched.add(f.camera)
        for camera in touched:  # the binary sensor turns on now, not at the next state interval
            self._publish_state(camera)
        return len(done)

    def _retained_chores(self) -> None:
        """After each (re)connect: ``online`` and the discovery configs again (a broker without persistence
        forgets retained messages); every ``state_interval_s``: each camera's state."""
        if not self.link.connected:
            return
        if self.link.connects != self._connects_seen:
            self._connects_seen = self.link.connects
            self._announced.clear()
            self.link.publish(self.topics.available, AVAILABLE, 1, retain=True)
        if self._state_every.due():
            self.link.forget_acks({m for f in self._inflight for m in f.mids})
            self.camera_summary.poll_events()
            members: set[bytes] = self.client.smembers(self.keys.cameras)  # type: ignore[assignment]
            cameras = {m.decode() for m in members} | set(self.camera_summary.cameras)
            for camera in sorted(c for c in cameras if _CAMERA_ID.match(c)):
                self._publish_state(camera)

    def _publish_state(self, camera: str) -> None:
        if not self.link.connected:
            return
        if self.config.discovery and camera not in self._announced:
            for topic, payload in discovery_configs(self.topics, camera, __version__).items():
                self.link.publish(topic, json.dumps(payload), 1, retain=True)
            self._announced.add(camera)
        state = self.camera_summary.state(camera)
        self.link.publish(self.topics.state(camera), json.dumps(state), 1, retain=True)
        self.stats.states += 1

    def _deadletter(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        log.error("mqtt: dead-lettering %s %s: %s", self.keys.violations, entry_id.decode(), reason)
        pipe = self.client.pipeline(transaction=True)
        add_deadletter(
            pipe,
            self.keys.deadletter,
            deadletter_fields(self.stage, reason, self.keys.violations, entry_id, fields),
        )
        pipe.xack(self.keys.violations, self.config.group, entry_id)
        pipe.execute()
        DEADLETTERS.labels(self.stage, ErrorKind.MALFORMED.value).inc()
        self.stats.deadletters += 1


def _document(raw: bytes | str) -> dict[str, Any]:
    """The document in field ``event``, or ValueError saying what is wrong with it."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"field event is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"field event is JSON {type(doc).__name__}, not an object")
    camera = doc.get("camera")
    if not isinstance(camera, str) or not _CAMERA_ID.match(camera):
        raise ValueError("document has no valid camera id")
    if not isinstance(doc.get("id"), str):
        raise ValueError("document has no id")
    return doc


def _float(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
