"""Credentials never reach logs: URL passwords of any shape, token-only userinfo, secret query keys,
YAML error messages, secrets read from *_FILE variables, and secrets given on the command line."""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwatch.cli.main import main
from maskwatch.config.settings import ConfigError, load_settings
from maskwatch.core.redaction import RedactingFilter, redact_text, redact_url, register_secret

SCHEMES = st.sampled_from(["rtsp", "rtsps", "http", "https", "redis", "rtmp", "srt"])
HOSTS = st.sampled_from(["10.0.0.5", "cam.local", "redis", "[::1]", "camera-7.example.org"])
PORTS = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
PATHS = st.sampled_from(["", "/", "/stream1", "/Streaming/Channels/101", "/live?ch=1&subtype=0"])
USERS = st.text(string.ascii_letters + string.digits + "._-", min_size=0, max_size=12)
# passwords hold the characters that used to break redaction: "/", "@", ":", "#", "?" ...
PASSWORDS = st.text(string.ascii_letters + string.digits + "/@:#?!$%&*+=.,;~-", min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(scheme=SCHEMES, user=USERS, password=PASSWORDS, host=HOSTS, port=PORTS, path=PATHS)
def test_a_generated_url_never_shows_its_password(scheme, user, password, host, port, path):
    secret = f"Zq{password}Xv"  # a marker so the check cannot hit the host or path by chance
    url = f"{scheme}://{user}:{secret}@{host}{port}{path}"
    out = redact_url(url)
    assert secret not in out and "***" in out
    assert f"{host}{port}" in out, "the host stays readable"
    assert secret not in redact_text(f"camera failed: {url} (timeout)")


@settings(max_examples=100, deadline=None)
@given(
    scheme=SCHEMES, token=st.text(string.ascii_letters + string.digits, min_size=8, max_size=32), host=HOSTS
)
def test_token_only_userinfo_is_masked(scheme, token, host):
    out = redact_url(f"{scheme}://{token}@{host}/stream")
    assert token not in out and out.startswith(f"{scheme}://***@")


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "apikey",
        "api_key",
        "auth",
        "signature",
        "secret",
    ],
)
def test_secret_query_keys_are_masked(key):
    out = redact_url(f"https://cam.example.org/snap.jpg?ch=1&{key}=S3cr3tValue&size=2")
    assert "S3cr3tValue" not in out and "ch=1" in out and "size=2" in out


def test_a_registered_secret_is_masked_even_with_spaces_in_it(caplog):
    register_secret("pass word with spaces")
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("connecting to rtsp://admin:%s@10.0.0.5/stream", "pass word with spaces")
    assert "pass word with spaces" not in caplog.text and "***" in caplog.text


def test_yaml_errors_name_the_place_but_never_echo_the_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text('cameras:\n  - id: a\n    url: "rtsp://admin:Hunter2Secret@10.0.0.5/s\n      fps: [5\n')
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    text = str(err.value)
    assert "Hunter2Secret" not in text and "line" in text and str(f) in text


def test_a_secret_can_come_from_a_file_named_by_an_env_variable(tmp_path, monkeypatch):
    secret = tmp_path / "redis_url"
    secret.write_text("redis://:FromAFile99@redis:6379/0\n")
    monkeypatch.setenv("MASKWATCH_REDIS_URL_FILE", str(secret))
    monkeypatch.delenv("MASKWATCH_REDIS_URL", raising=False)
    s = load_settings(None)
    assert s.redis_url is not None and s.redis_url.get_secret_value() == "redis://:FromAFile99@redis:6379/0"
    assert "FromAFile99" not in s.safe_redis_url
    monkeypatch.setenv("MASKWATCH_REDIS_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="MASKWATCH_REDIS_URL_FILE"):
        load_settings(None)


def test_a_credential_on_the_command_line_is_warned_about(tmp_path, capfd):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: []\n")
    main(["validate-config", str(cfg)])
    assert "holds a credential" not in capfd.readouterr().err  # nothing secret given: no warning
    main(["check", "worker", "--redis-url", "redis://:CmdLinePw@127.0.0.1:1/0"])
    captured = capfd.readouterr()
    assert "--redis-url holds a credential" in captured.err
    assert "CmdLinePw" not in captured.err + captured.out


def test_a_list_setting_can_come_from_a_file(tmp_path, monkeypatch):
    cams = tmp_path / "cameras.json"
    cams.write_text('[{"id": "gate", "url": "rtsp://admin:FileCamPw1@10.0.0.9/s"}]')
    monkeypatch.setenv("MASKWATCH_CAMERAS_FILE", str(cams))
    s = load_settings(None)
    assert [c.id for c in s.cameras] == ["gate"] and "FileCamPw1" not in s.cameras[0].safe_url
