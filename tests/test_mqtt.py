"""The MQTT sink against a real Mosquitto and a real Redis: every document once and in order, broker
outages and restarts lose nothing, the last will, Home Assistant discovery, and no password in logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from maskwatch.config.settings import load_settings
from maskwatch.core.keys import Keys
from maskwatch.delivery.mqtt import MqttStage
from maskwatch.runtime.private_redis import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
KEYS = Keys()
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")


class Broker:
    """A mosquitto child process on a free port; persistent sessions survive :meth:`restart`."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder, self.port = folder, free_port()
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {folder}/"]
        if os.geteuid() == 0:  # as root it would switch to user mosquitto, who cannot read pytest's tmp dirs
            lines.append("user root")
        if users:
            passwd = folder / "passwd"
            for i, (user, password) in enumerate(users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it saves its sessions and retained messages
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Subscriber:
    """A persistent-session (clean_session false) QoS 1 subscriber recording every message."""

    def __init__(self, port: int, topics: list[str], auth: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", clean_session=False
        )
        if auth:
            self.client.username_pw_set(*auth)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def ids(self, topic: str) -> list[str]:
        return [json.loads(p)["id"] for p in self.on(topic)]

    def wait(self, cond: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; got {[(t, p[:80]) for t, p, _ in self.messages][-10:]}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _doc(camera: str, n: int, type_: str = "violation") -> dict[str, Any]:
    return {
        "schema": f"maskwatch.{type_}",
        "schema_version": 1,
        "type": type_,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{camera}/{n}/{type_}")),
        "camera": camera,
        "track_id": f"{n}-0",
        "class": "without_mask",
        "confidence": 0.9,
        "votes": 3,
        "decided_ts": time.time(),
        "seq": n,
    }


def _write(client: redis.Redis, docs: list[dict[str, Any]]) -> None:
    for d in docs:  # as the publisher's script writes them
        client.xadd(KEYS.violations, {"event": json.dumps(d)}, maxlen=10_000, approximate=True)


def _settings(redis_url: str, mqtt_url: str, **mqtt_overrides: Any) -> Any:
    section = {"url": mqtt_url, "state_interval_s": 0.3, "reconnect_max_s": 1, "metrics_port": 0}
    return load_settings(redis_url=redis_url, mqtt={**section, **mqtt_overrides})


class Running:
    """A stage on a thread, stopped (and drained) on exit."""

    def __init__(self, stage: MqttStage) -> None:
        self.stage, self.stop = stage, threading.Event()
        self.thread = threading.Thread(target=stage.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> MqttStage:
        self.thread.start()
        assert self.stage.link.wait_connected(10)
        return self.stage

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _pending(client: redis.Redis) -> int:
    return int(client.xpending(KEYS.violations, "mqtt")["pending"])


def test_every_document_once_in_order_with_state_and_discovery(broker: Broker, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    sub = Subscriber(broker.port, ["maskwatch/#", "homeassistant/#"])
    cameras = ["entrance", "lobby.2", "gate"]
    client.sadd(KEYS.cameras, *cameras)
    client.hset(KEYS.camera_state("entrance"), mapping={"state": "streaming", "since": "1700000000.5"})
    faces = [{"class": "with_mask"}, {"class": "with_mask"}, {"class": "without_mask"}]
    frame = {"type": "frame", "camera": "entrance", "capture_ts": time.time(), "faces": faces}
    client.xadd(KEYS.events, {"event": json.dumps(frame)})
    stage = MqttStage.from_settings(_settings(redis_url, f"mqtt://127.0.0.1:{broker.port}"))
    docs = [_doc(cameras[i % 3], i, "violation" if i % 4 else "clip_ready") for i in range(60)]
    with Running(stage):
        _write(client, docs[:30])
        client.xadd(KEYS.violations, {"event": b"{not json"})
        _write(client, docs[30:])
        sub.wait(lambda: len(sub.on("maskwatch/violations")) >= 60)
        for camera in cameras:
            sub.wait(lambda c=camera: len(sub.on(f"maskwatch/{c}/violations")) >= 20)  # type: ignore[misc]
        sub.wait(lambda: len(sub.on("maskwatch/entrance/state")) >= 2)
        time.sleep(0.5)  # nothing more arrives

    assert sub.ids("maskwatch/violations") == [d["id"] for d in docs]  # once each, in order
    for camera in cameras:
        assert sub.ids(f"maskwatch/{camera}/violations") == [d["id"] for d in docs if d["camera"] == camera]
    assert json.loads(sub.on("maskwatch/violations")[0]) == docs[0]  # the same JSON
    assert _pending(client) == 0
    dead = client.xrange(KEYS.deadletter)
    assert len(dead) == 1 and dead[0][1][b"stage"] == b"mqtt" and b"not JSON" in dead[0][1][b"reason"]

    state = json.loads(sub.on("maskwatch/entrance/state")[-1])
    assert state["up"] is True and state["camera_state"] == "streaming" and state["since"] == 1700000000.5
    assert state["faces"] == {"with_mask": 2, "without_mask": 1, "incorrect_mask": 0}
    assert state["compliance"] == pytest.approx(66.7)
    assert state["violation"] is True and state["violations"] == 15
    assert sub.on("maskwatch/available")[0] == b"online"
    assert sub.on("maskwatch/available")[-1] == b"offline"  # clean stop

    for cam in cameras:
        oid = "maskwatch_" + cam.replace(".", "_")
        sensor = json.loads(sub.on(f"homeassistant/sensor/{oid}_compliance/config")[0])
        binary = json.loads(sub.on(f"homeassistant/binary_sensor/{oid}_violation/config")[0])
        for cfg in (sensor, binary):
            assert cfg["state_topic"] == f"maskwatch/{cam}/state"
            assert cfg["availability_topic"] == "maskwatch/available"
            assert cfg["device"]["identifiers"] == [oid] and cfg["value_template"].startswith("{{")
        assert sensor["unique_id"] == f"{oid}_compliance" and sensor["unit_of_measurement"] == "%"
        assert binary["unique_id"] == f"{oid}_violation" and binary["device_class"] == "problem"
    sub.close()
    # retained: a subscriber arriving now still gets discovery, state and availability
    late = Subscriber(broker.port, ["homeassistant/#", "maskwatch/+/state", "maskwatch/available"])
    late.wait(lambda: bool(late.on("homeassistant/sensor/maskwatch_gate_compliance/config")))
    late.wait(lambda: bool(late.on("maskwatch/gate/state")) and bool(late.on("maskwatch/available")))
    late.close()


def test_broker_outage_loses_nothing(tmp_path: Path, redis_url: str) -> None:
    broker = Broker(tmp_path).start()
    client = redis.Redis.from_url(redis_url)
    sub = Subscriber(broker.port, ["maskwatch/+/violations"])
    docs = [_doc("cam1", i) for i in range(40)]
    stage = MqttStage.from_settings(_settings(redis_url, f"mqtt://127.0.0.1:{broker.port}"))
    try:
        with Running(stage):
            _write(client, docs[:10])
            sub.wait(lambda: len(sub.on("maskwatch/cam1/violations")) >= 10)
            broker.stop()
            _write(client, docs[10:30])  # written while the broker is down
            time.sleep(1.0)
            assert _pending(client) > 0  # read, not acknowledged: the broker has not confirmed them
            broker.start()
            _write(client, docs[30:])
            sub.wait(lambda: len(set(sub.ids("maskwatch/cam1/violations"))) >= 40, timeout=30)
            deadline = time.monotonic() + 10
            while _pending(client) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _pending(client) == 0
        got = sub.ids("maskwatch/cam1/violations")
        first_seen = list(dict.fromkeys(got))  # a resent document may come twice; dedup by id
        assert first_seen == [d["id"] for d in docs]
    finally:
        sub.close()
        broker.stop()


def test_restart_resends_what_the_broker_never_acknowledged(tmp_path: Path, redis_url: str) -> None:
    broker = Broker(tmp_path).start()
    client = redis.Redis.from_url(redis_url)
    sub = Subscriber(broker.port, ["maskwatch/violations"])
    docs = [_doc("cam1", i) for i in range(15)]
    settings = _settings(redis_url, f"mqtt://127.0.0.1:{broker.port}")
    try:
        with Running(MqttStage.from_settings(settings)):
            _write(client, docs[:5])
            sub.wait(lambda: len(sub.on("maskwatch/violations")) >= 5)
            broker.stop()
            _write(client, docs[5:])
            deadline = time.monotonic() + 10
            while not _pending(client) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            assert _pending(client) >= 1  # read, in flight when the stage stops (the rest not read yet)
        broker.start()
        with Running(MqttStage.from_settings(settings)):  # same client id = same consumer: its pending first
            sub.wait(lambda: len(set(sub.ids("maskwatch/violations"))) >= 15, timeout=30)
            deadline = time.monotonic() + 10
            while _pending(client) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert list(dict.fromkeys(sub.ids("maskwatch/violations"))) == [d["id"] for d in docs]
        assert _pending(client) == 0
    finally:
        sub.close()
        broker.stop()


def test_killed_process_goes_offline_and_logs_no_password(tmp_path: Path, redis_url: str) -> None:
    password = "s3cr@t-Pw!"
    broker = Broker(tmp_path, users={"maskwatch": password, "viewer": "viewer-pw"}).start()
    sub = Subscriber(broker.port, ["maskwatch/#"], auth=("viewer", "viewer-pw"))
    env = {
        **os.environ,
        "MASKWATCH_REDIS_URL": redis_url,
        "MASKWATCH_MQTT__URL": f"mqtt://maskwatch:s3cr%40t-Pw%21@127.0.0.1:{broker.port}",
        "MASKWATCH_MQTT__METRICS_PORT": "0",
        "MASKWATCH_MQTT__STATE_INTERVAL_S": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "--log-level", "DEBUG", "mqtt"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        sub.wait(lambda: sub.on("maskwatch/available")[-1:] == [b"online"])
        doc = _doc("cam1", 1)
        _write(redis.Redis.from_url(redis_url), [doc])
        sub.wait(lambda: sub.ids("maskwatch/cam1/violations") == [doc["id"]])
        proc.send_signal(signal.SIGKILL)  # no clean stop: only the broker's last will says offline
        proc.wait(10)
        sub.wait(lambda: sub.on("maskwatch/available")[-1:] == [b"offline"], timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0].decode()
        sub.close()
        broker.stop()
    assert "mqtt: connected to 127.0.0.1" in out and "maskwatch:***@127.0.0.1" in out
    for secret in (password, "s3cr%40t-Pw%21", "s3cr"):
        assert secret not in out


def test_bad_broker_url_is_a_config_error() -> None:
    from maskwatch.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mqtt\.url"):
        load_settings(mqtt={"url": "http://broker:1883"})
    address = load_settings(mqtt={"url": "mqtts://u:p%2Fw@broker"}).mqtt.broker()
    assert (address.host, address.port, address.tls, address.username) == ("broker", 8883, True, "u")
    assert address.password is not None and address.password.get_secret_value() == "p/w"
