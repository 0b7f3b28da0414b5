"""`maskwatch check` vouches for this process (or this host's), never for any live one elsewhere."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import redis

from maskwatch.config.settings import load_settings
from maskwatch.runtime.heartbeat import Heartbeat, check_alive, instance_name
from tests.support.pipeline import wait_for


def _beat(url: str, stage: str, instance: str) -> Heartbeat:
    settings = load_settings(None, redis_url=url)
    hb = Heartbeat.from_settings(redis.Redis.from_url(url), settings, stage, instance)
    hb.beat()
    return hb


def test_another_hosts_heartbeat_does_not_make_this_one_healthy(redis_url):
    settings = load_settings(None, redis_url=redis_url)
    other = _beat(redis_url, "ingest", "some-other-pod-1234")
    assert check_alive(settings, "ingest") == 1, "a live ingest elsewhere must not vouch for this host"
    mine = _beat(redis_url, "ingest", instance_name("ingest"))
    assert instance_name("ingest").startswith(socket.gethostname() + "-")
    assert check_alive(settings, "ingest") == 0
    assert check_alive(settings, "ingest", "some-other-pod-1234") == 0
    mine.clear()
    other.clear()
    assert check_alive(settings, "ingest") == 1


def test_the_configured_instance_names_the_heartbeat_and_the_check(redis_url):
    settings = load_settings(None, redis_url=redis_url, instance="ingest-pod-a")
    assert instance_name("ingest", settings.instance) == "ingest-pod-a"
    assert check_alive(settings, "ingest") == 1
    hb = _beat(redis_url, "ingest", "ingest-pod-a")
    assert check_alive(settings, "ingest") == 0
    hb.clear()


def test_a_hung_instance_is_unhealthy_while_another_instance_is_alive(redis_url, tmp_path):
    """Two publishers named by `instance`; one stops (SIGSTOP: hung, its heartbeat expires). The check of
    each process, run with that process's own config, follows only its own heartbeat."""
    from tests.test_cli import _env

    def env(instance: str) -> dict[str, str]:
        return _env(MASKWATCH_REDIS_URL=redis_url, MASKWATCH_INSTANCE=instance, MASKWATCH_HEARTBEAT_TTL_S="2")

    def check(instance: str) -> int:
        cmd = [sys.executable, "-m", "maskwatch.cli", "check", "publisher"]
        return subprocess.run(cmd, env=env(instance), capture_output=True, text=True, timeout=60).returncode

    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "maskwatch.cli", "publisher"],
            env=env(name),
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{name}.log").open("w"),
        )
        for name in ("pub-a", "pub-b")
    }
    try:
        wait_for(lambda: check("pub-a") == 0 and check("pub-b") == 0, 120, what="both heartbeats")
        procs["pub-a"].send_signal(signal.SIGSTOP)
        wait_for(lambda: check("pub-a") == 1, 60, what="the hung instance reported unhealthy")
        assert check("pub-b") == 0, "the live instance stays healthy"
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
