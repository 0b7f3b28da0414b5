"""The one stage loop (``maskwatch.runtime.stage``) with a real Redis: run-until-idle, drain, errors."""

from __future__ import annotations

import errno
import logging
import threading
import time

import numpy as np
import pytest
import redis

from maskwatch.core.contracts import EndOfStream, ResultMessage
from maskwatch.core.errors import ConfigError, ContractError, ErrorKind, MaskwatchError, SourceError
from maskwatch.core.faces import Faces
from maskwatch.core.keys import Keys
from maskwatch.core.labels import CLASSES
from maskwatch.publisher.service import PublisherService
from maskwatch.runtime.heartbeat import Heartbeat
from maskwatch.runtime.metrics_server import UP
from maskwatch.runtime.stage import LoopOptions, Stage
from tests.support.pipeline import make_settings, read_events

KEYS = Keys()


def _options(**changes: float) -> LoopOptions:
    values = {"block_ms": 20, "shutdown_grace_s": 2.0, "redis_retry_max_s": 0.1, "metrics_port": 0} | changes
    return LoopOptions(**values)  # type: ignore[arg-type]


class Scripted(Stage):
    """A stage whose steps do what the test says: a number of work items, or an exception to raise."""

    stage = "scripted"

    def __init__(self, client: redis.Redis, script: list[int | BaseException], **options: float) -> None:
        super().__init__(client, Heartbeat(client, KEYS, self.stage, "t1", 15, 5.0), _options(**options))
        self.script, self.steps, self.drained_at = list(script), 0, None

    def step(self, block_ms: int) -> int:
        self.steps += 1
        todo = self.script.pop(0) if self.script else 0
        if isinstance(todo, BaseException):
            raise todo
        if not todo:
            self.stop_event.wait(block_ms / 1000)
        return todo

    def on_stop(self, deadline: float) -> None:
        self.drained_at = (time.monotonic(), deadline)

    def summary(self) -> str:
        return f"scripted: {self.steps} steps"


def _result(seq: int) -> ResultMessage:
    faces = Faces(
        np.array([[1, 2, 30, 40]], np.float32),
        np.array([0.9], np.float32),
        np.array([[0.8, 0.1, 0.1]]),
        CLASSES,
    )
    return ResultMessage("cam", seq, 1.0, 64, 48, 2.0, faces, {"detector": "test"}, False)


def test_publisher_run_until_idle_publishes_each_result_once_then_finds_no_work(redis_url):
    s = make_settings(redis_url, violations={"enabled": False})
    client = redis.Redis.from_url(redis_url)
    for seq in range(5):
        client.xadd(KEYS.results("cam"), _result(seq).to_fields())
    client.xadd(KEYS.results("cam"), EndOfStream("cam", 4, 5, "eof").to_fields())
    publisher = PublisherService.from_settings(s)
    assert publisher.run_until_idle(max_s=20) == 6
    assert publisher.done(["cam"]) and client.xlen(KEYS.results("cam")) == 0
    assert [e["seq"] for e in read_events(client)] == [0, 1, 2, 3, 4]
    client.xadd(KEYS.results("cam"), _result(2).to_fields())  # a redelivery: no second event
    assert publisher.run_until_idle(max_s=20) == 1
    assert publisher.stats.duplicates == 1 and len(read_events(client)) == 5
    assert publisher.run_until_idle(max_s=20) == 0


def test_run_until_idle_stops_at_the_first_step_without_work(redis_url):
    stage = Scripted(redis.Redis.from_url(redis_url), [3, 2, 0, 5])
    assert stage.run_until_idle(max_s=10) == 5 and stage.steps == 3
    assert client_has_heartbeat(redis_url)


def client_has_heartbeat(redis_url: str) -> bool:
    return bool(redis.Redis.from_url(redis_url).exists(KEYS.heartbeat("scripted", "t1")))


def test_a_disk_error_in_a_step_stops_the_stage_and_is_not_taken_for_a_lost_redis(redis_url, caplog):
    stage = Scripted(redis.Redis.from_url(redis_url), [1, OSError(errno.ENOSPC, "No space left on device")])
    with caplog.at_level(logging.INFO), pytest.raises(OSError, match="No space left"):
        stage.run(threading.Event())
    assert stage.steps == 2, "raised once, never retried"
    assert "Redis connection lost" not in caplog.text and "No space left on device" in caplog.text
    assert stage.drained_at is not None, "the work in flight is still drained"
    assert not client_has_heartbeat(redis_url) and UP.labels("scripted")._value.get() == 0


def test_a_lost_redis_is_waited_for_and_the_loop_carries_on(redis_url, caplog):
    lost = redis.ConnectionError("Connection refused")
    stage = Scripted(redis.Redis.from_url(redis_url), [1, lost, 1])
    reconnects: list[int] = []
    stage.on_reconnect = lambda: reconnects.append(stage.steps)  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=lambda: stage.run(stop), daemon=True)
    with caplog.at_level(logging.WARNING):
        thread.start()
        deadline = time.monotonic() + 10
        while stage.steps < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(10)
    assert reconnects == [2] and stage.steps >= 4
    assert caplog.text.count("Redis connection lost") == 1


def test_stop_drains_to_the_shutdown_grace_deadline_and_returns_one_summary(redis_url):
    stage = Scripted(redis.Redis.from_url(redis_url), [], shutdown_grace_s=7.0)
    stop = threading.Event()
    outcome: dict[str, str] = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=stage.run(stop)), daemon=True)
    thread.start()
    time.sleep(0.1)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and outcome["summary"].startswith("scripted: ")
    stopped_at, deadline = stage.drained_at
    assert deadline - stopped_at == pytest.approx(7.0, abs=0.5)


def test_errors_share_one_base_and_their_kinds_are_the_metric_labels():
    assert issubclass(ContractError, MaskwatchError) and issubclass(ContractError, ValueError)
    assert issubclass(ConfigError, MaskwatchError) and issubclass(SourceError, MaskwatchError)
    assert ContractError("x").kind == "malformed" and ContractError("x").kind is ErrorKind.MALFORMED
    e = SourceError("camera a: no such file", "not_found", retryable=False)
    assert e.kind is ErrorKind.NOT_FOUND and f"error: {e.kind}" == "error: not_found"
    with pytest.raises(ValueError):
        SourceError("x", "no such kind")
