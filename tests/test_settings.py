"""Config: env over YAML over defaults, validation with field paths, secrets never shown."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from maskwatch.config.settings import ConfigError, load_settings
from maskwatch.core.redaction import RedactingFilter, redact_url

GOOD = """
redis_url: redis://:hunter2@127.0.0.1:6379/0
cameras:
  - id: door
    url: rtsp://admin:s3cret@10.0.0.5/stream1
    fps: 4
  - id: lobby
    url: /videos/lobby.mp4
worker:
  max_batch: 8
"""

BAD = """
cameras:
  - id: "bad id!"
    url: rtsp://x/y
    fps: -1
  - id: ok
    url: ""
    colour: red
worker:
  max_batch: 0
"""


def test_yaml_then_env_override(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    monkeypatch.setenv("MASKWATCH_WORKER__MAX_BATCH", "32")
    s = load_settings(f)
    assert [c.id for c in s.cameras] == ["door", "lobby"]
    assert s.worker.max_batch == 32  # environment beats the file
    assert s.cameras[0].is_live and s.cameras[0].effective_drop_policy == "drop_oldest"
    assert not s.cameras[1].is_live and s.cameras[1].effective_drop_policy == "block"


def test_redis_url_from_env(monkeypatch):
    monkeypatch.setenv("MASKWATCH_REDIS_URL", "redis://:pw@127.0.0.1:1/0")
    s = load_settings()
    assert s.redis_url.get_secret_value() == "redis://:pw@127.0.0.1:1/0"
    assert "pw" not in s.safe_redis_url and "pw" not in repr(s)


def test_secrets_are_redacted_everywhere(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    s = load_settings(f)
    assert "s3cret" not in repr(s) and "hunter2" not in repr(s)
    assert s.cameras[0].safe_url == "rtsp://admin:***@10.0.0.5/stream1"
    assert redact_url("https://cam/x.m3u8?token=abc&a=1") == "https://cam/x.m3u8?token=***&a=1"


def test_logging_filter_redacts_any_url_credentials(caplog):
    logger = logging.getLogger("maskwatch.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("opening %s", "rtsp://user:topsecret@cam.local/live")
    assert "topsecret" not in caplog.text and "rtsp://user:***@cam.local/live" in caplog.text


def test_every_invalid_field_is_reported_with_its_path(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    text = "\n".join(err.value.problems)
    for path in (
        "cameras.0.id",
        "cameras.0.fps",
        "cameras.1.url",
        "cameras.1.colour",
        "worker.max_batch",
    ):
        assert path in text, text


def test_duplicate_camera_ids_rejected():
    with pytest.raises(ConfigError, match="repeated: a"):
        load_settings(None, cameras=[{"id": "a", "url": "x.mp4"}, {"id": "a", "url": "y.mp4"}])


def test_validate_config_command(tmp_path):
    bad, good, garbage = tmp_path / "bad.yaml", tmp_path / "good.yaml", tmp_path / "garbage.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)
    garbage.write_text("cameras: [unclosed")

    def run(f):
        return subprocess.run(
            [sys.executable, "-m", "maskwatch.cli", "validate-config", str(f)],
            capture_output=True,
            text=True,
        )

    r = run(bad)
    assert r.returncode == 2 and "cameras.0.fps" in r.stderr and "worker.max_batch" in r.stderr
    r = run(good)
    assert r.returncode == 0 and "door, lobby" in r.stdout and "s3cret" not in r.stdout
    r = run(garbage)
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    r = run(tmp_path / "missing.yaml")
    assert r.returncode == 2 and "cannot read config file" in r.stderr


def test_precedence_overrides_then_env_then_yaml_then_defaults(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("worker:\n  max_batch: 8\n  max_wait_ms: 70\npublisher:\n  read_count: 5\n")
    monkeypatch.setenv("MASKWATCH_WORKER__MAX_WAIT_MS", "80")
    monkeypatch.setenv("MASKWATCH_PUBLISHER__READ_COUNT", "6")
    s = load_settings(f, publisher={"read_count": 7})
    assert (s.worker.max_batch, s.worker.max_wait_ms, s.publisher.read_count) == (8, 80, 7)
    assert s.worker.block_ms == 200 and type(s).__name__ == "Settings"


def test_paths_default_to_the_data_dir_never_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKWATCH_DATA_DIR", raising=False)
    s = load_settings()
    for p in (s.data_dir, s.detector.weights_dir, s.clips.dir):
        assert p.is_absolute() and "shared" not in p.parts, p
    assert s.detector.weights_dir == s.data_dir / "weights" and s.clips.dir == s.data_dir / "clips"
    monkeypatch.setenv("MASKWATCH_DATA_DIR", str(tmp_path / "data"))
    s = load_settings()
    assert (
        s.detector.weights_dir == tmp_path / "data" / "weights" and s.clips.dir == tmp_path / "data" / "clips"
    )


def test_data_dir_falls_back_to_xdg_for_a_user_without_var_lib(tmp_path, monkeypatch):
    from maskwatch.config import paths

    monkeypatch.setattr(paths.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIR", tmp_path / "absent")
    assert paths.default_data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "maskwatch"
    assert (
        paths.default_data_dir({"XDG_DATA_HOME": "relative"}) == paths.Path.home() / ".local/share/maskwatch"
    )
    assert paths.default_data_dir({"MASKWATCH_DATA_DIR": str(tmp_path)}) == tmp_path
    writable = tmp_path / "var-lib"
    writable.mkdir()
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIR", writable)
    assert paths.default_data_dir({}) == writable


def test_relative_paths_in_a_file_are_taken_against_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    f = conf / "c.yaml"
    f.write_text("data_dir: data\nclips:\n  dir: media/clips\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings(f)
    assert s.clips.dir == conf / "media" / "clips" and s.data_dir == conf / "data"
    assert s.detector.weights_dir == conf / "data" / "weights"
    monkeypatch.setenv("MASKWATCH_CLIPS__DIR", "from-env")  # not from the file: the working directory
    assert load_settings(f).clips.dir == tmp_path / "from-env"


def test_relative_weights_dir_in_a_file_is_taken_against_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    f = conf / "c.yaml"
    f.write_text("detector:\n  weights_dir: models/weights\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(f).detector.weights_dir == conf / "models" / "weights"
    monkeypatch.setenv("MASKWATCH_DETECTOR__WEIGHTS_DIR", "from-env")  # not a file: the working dir
    assert load_settings(f).detector.weights_dir == tmp_path / "from-env"


def test_heartbeat_interval_must_be_under_its_ttl():
    assert load_settings().heartbeat_every_s == 5.0
    assert load_settings(heartbeat_ttl_s=3).heartbeat_every_s == 1.0
    with pytest.raises(ConfigError, match="heartbeat_interval_s"):
        load_settings(heartbeat_ttl_s=10, heartbeat_interval_s=10)


@pytest.mark.parametrize("camera_id", [".", "..", "a/b", "", "x" * 65])
def test_camera_ids_that_would_name_other_files_are_refused(camera_id: str) -> None:
    from maskwatch.config.cameras import CameraConfig
    from maskwatch.core.keys import is_camera_id

    assert not is_camera_id(camera_id)
    with pytest.raises(ValueError, match="id"):
        CameraConfig(id=camera_id, url="video.mp4")


def test_a_config_error_names_its_real_source_and_the_nearest_key(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("cameras:\n  - id: door\n    url: /v/door.mp4\nworker:\n  max_bach: 4\n  max_wait_ms: -1\n")
    monkeypatch.setenv("MASKWATCH_PUBLISHER__READ_COUNT", "0")
    with pytest.raises(ConfigError) as err:
        load_settings(f, flag_names={"redis_url": "--redis-url"}, redis_url=12345)
    lines = {p.split(":")[0]: p for p in err.value.problems}
    assert lines["worker.max_bach"].endswith(f"[{f}, line 5]"), lines
    assert "did you mean 'max_batch'?" in lines["worker.max_bach"]
    assert lines["worker.max_wait_ms"].endswith(f"[{f}, line 6]")
    assert lines["publisher.read_count"].endswith(
        "[from environment variable MASKWATCH_PUBLISHER__READ_COUNT]"
    )
    assert lines["redis_url"].endswith("[from --redis-url]")


def test_unknown_maskwatch_variables_are_warned_about_with_the_nearest_one(monkeypatch, caplog):
    monkeypatch.setenv("MASKWATCH_WORKR__MAX_BATCH", "8")
    monkeypatch.setenv("MASKWATCH_REDIS_URL_FILE", "/nonexistent-but-unused")
    monkeypatch.setenv("MASKWATCH_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("MASKWATCH_SHARED", "/data")  # the tests' data folder: not a setting, never warned
    with caplog.at_level(logging.WARNING, logger="maskwatch.config.settings"):
        load_settings()
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "MASKWATCH_WORKR__MAX_BATCH is not a maskwatch setting; it is ignored "
        "(did you mean MASKWATCH_WORKER__MAX_BATCH?)"
    ]


def test_metrics_host_is_a_setting_with_no_default_of_its_own(monkeypatch):
    assert load_settings().metrics_host is None  # each command picks: run 127.0.0.1, stages 0.0.0.0
    monkeypatch.setenv("MASKWATCH_METRICS_HOST", "10.1.2.3")
    assert load_settings().metrics_host == "10.1.2.3"
    with pytest.raises(ConfigError, match="metrics_host"):
        load_settings(None, metrics_host="bad host!")
