"""`maskwatch check` vouches for this process (or this host's), never for any live one elsewhere."""

from __future__ import annotations

import socket

import redis

from maskwatch.config.settings import load_settings
from maskwatch.runtime.heartbeat import Heartbeat, check_alive, instance_name


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
