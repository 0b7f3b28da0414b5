"""The command line as a user runs it: quick start on a file, liveness checks, graceful shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import redis

from maskwatch.core.keys import Keys
from tests.support.pipeline import wait_for

KEYS = Keys()


DATA_DIR = tempfile.mkdtemp(prefix="maskwatch-data-")  # clips and weights never land in /var/lib or ~


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    return (
        env
        | {
            "MASKWATCH_DATA_DIR": DATA_DIR,
            "MASKWATCH_INGEST__METRICS_PORT": "0",
            "MASKWATCH_WORKER__METRICS_PORT": "0",
            "MASKWATCH_PUBLISHER__METRICS_PORT": "0",
        }
        | extra
    )


def test_run_quick_start_on_a_file_starts_private_redis_and_exits_when_done(weights_dir, videos, tmp_path):
    out = tmp_path / "events.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "maskwatch.cli",
            "run",
            "--source",
            str(videos / "bare_then_masked_720p.mp4"),
            "--fps",
            "2",
            "--events-out",
            str(out),
            "--progress-every",
            "1",
        ],
        env=_env(MASKWATCH_DETECTOR__WEIGHTS_DIR=str(weights_dir)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "started a private redis-server" in r.stderr and "private redis-server stopped" in r.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in docs if e["type"] == "frame"] == list(range(18))
    kinds = {d["type"] for d in docs}
    assert "violation" in kinds and kinds <= {"frame", "violation", "clip_ready", "clip_failed"}, kinds
    assert {"frame", "violation"} <= kinds, "every document of the run, not only frame events"
    summary = [line for line in r.stderr.splitlines() if "run: ingest:" in line]
    assert len(summary) == 1 and "18 published" in summary[0] and "18 events" in summary[0]
    assert f"{len(docs)} documents written to --events-out" in summary[0]
    assert re.search(r"maskwatch run: \d+/~?\d+ \(\d+%\) frames processed, [\d.]+ frames/s", r.stderr)
    noise = [
        line
        for line in r.stderr.splitlines()
        if re.match(r"[IWE]\d{4} ", line) or "absl::InitializeLog" in line or "XNNPACK" in line
    ]
    assert not noise, f"TensorFlow's start-up lines are silenced: {noise}"


def test_run_without_any_source_says_what_to_do():
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "run"], env=_env(), capture_output=True, text=True
    )
    assert r.returncode == 2 and "--source" in r.stderr


def test_check_follows_the_heartbeat_and_sigterm_drains_with_one_summary_line(redis_url, weights_dir):
    env = _env(MASKWATCH_REDIS_URL=redis_url, MASKWATCH_DETECTOR__WEIGHTS_DIR=str(weights_dir))

    def check():
        return subprocess.run(
            [sys.executable, "-m", "maskwatch.cli", "check", "worker"],
            env=env,
            capture_output=True,
            text=True,
        )

    assert check().returncode == 1
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskwatch.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = redis.Redis.from_url(redis_url)
        wait_for(
            lambda: list(client.scan_iter(match=KEYS.heartbeat_pattern("worker"))),
            120,
            what="worker heartbeat",
        )
        r = check()
        assert r.returncode == 0 and "alive" in r.stdout
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "SIGTERM received, draining" in err
    assert len([line for line in err.splitlines() if "worker: 0 frames in 0 batches" in line]) == 1
    time.sleep(0.1)
    assert check().returncode == 1, "a clean exit removes the heartbeat"


def test_stage_with_unreachable_weights_fails_with_the_file_and_the_fix(tmp_path, redis_url):
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "worker"],
        env=_env(
            MASKWATCH_REDIS_URL=redis_url,
            MASKWATCH_DETECTOR__TYPE="opencv-res10",
            MASKWATCH_DETECTOR__WEIGHTS_DIR=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert str(tmp_path) in r.stderr and "maskwatch models fetch" in r.stderr


def test_version_log_level_choices_and_the_ingest_hint():
    r = subprocess.run([sys.executable, "-m", "maskwatch.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and re.fullmatch(r"maskwatch \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "--log-level", "loud", "check", "worker"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "invalid choice" in r.stderr and "debug" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "ingest"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--config" in r.stderr and "MASKWATCH_CAMERAS" in r.stderr
    assert "or use --source" not in r.stderr, "ingest has no --source option"


def test_a_credential_in_source_is_warned_about_and_never_printed():
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "run", "--source", "rtsp://admin:SrcPw9xy@127.0.0.1:1/s"],
        env=_env(MASKWATCH_WORKER__MAX_BATCH="0"),  # a config error ends it before anything starts
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "MASKWATCH_WORKER__MAX_BATCH" in r.stderr, r.stderr
    assert "--source holds a credential" in r.stderr and "_FILE" in r.stderr
    assert "SrcPw9xy" not in r.stderr + r.stdout
