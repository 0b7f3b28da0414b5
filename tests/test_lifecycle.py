"""`maskwatch run` and the stages as processes: Ctrl-C on the terminal's process group, a private Redis that
dies, a Redis that comes back empty, one metrics port, inputs checked before anything starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from maskwatch.runtime.private_redis import free_port
from tests.support.pipeline import wait_for
from tests.test_cli import _env

CLI = [sys.executable, "-m", "maskwatch.cli"]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``maskwatch ARGS`` in its own process group (as a terminal starts a foreground job)."""
    with log.open("w") as err:
        return subprocess.Popen(
            CLI + args, env=env, stdout=err, stderr=subprocess.STDOUT, start_new_session=True, text=True
        )


def _private_socket(log: Path, timeout: float = 60) -> str:
    """The unix socket of the private redis-server the run logged."""
    pattern = re.compile(r"private redis-server at unix://(\S+)")
    found = wait_for(lambda: pattern.search(log.read_text()), timeout, what="private redis-server start")
    return found.group(1)


def _pids_with(text: str) -> list[int]:
    """Processes whose command line holds ``text``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(proc.name))
    return pids


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr, port = local.split(":")
            if width == 8:
                host = ".".join(str(b) for b in reversed(bytes.fromhex(addr)))
            else:
                host = "::" if int(addr, 16) == 0 else addr
            out.add((host, int(port, 16)))
    return out


def _looping_config(tmp_path: Path, video: Path) -> Path:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"cameras:\n  - id: cam1\n    url: {video}\n    fps: 5\n    loop: true\napi:\n  port: 0\n"
        "shutdown_grace_s: 20\n"
    )
    return cfg


def _events(socket_path: str) -> int:
    try:
        return redis.Redis(unix_socket_path=socket_path).xlen("maskwatch:events")
    except redis.RedisError:
        return 0


def test_ctrl_c_drains_before_the_private_redis_stops_and_run_serves_one_metrics_port(
    weights_dir, videos, tmp_path
):
    port, stage_ports = free_port(), [free_port(), free_port(), free_port()]
    env = _env(
        MASKWATCH_DETECTOR__WEIGHTS_DIR=str(weights_dir),
        MASKWATCH_INGEST__METRICS_PORT=str(stage_ports[0]),
        MASKWATCH_WORKER__METRICS_PORT=str(stage_ports[1]),
        MASKWATCH_PUBLISHER__METRICS_PORT=str(stage_ports[2]),
    )
    log = tmp_path / "run.log"
    cfg = _looping_config(tmp_path, videos / "bare_then_masked_720p.mp4")
    proc = _start(["run", "--config", str(cfg), "--metrics-port", str(port)], env, log)
    try:
        sock = _private_socket(log)
        wait_for(lambda: _events(sock) >= 3, 240, what="events published")
        listening = _listening(proc.pid)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "SIGINT received, draining" in text
    assert "Redis connection lost" not in text and "Redis unreachable" not in text, text[-3000:]
    summary = [line for line in text.splitlines() if "run: ingest:" in line]
    assert len(summary) == 1 and "publisher:" in summary[0], text[-3000:]
    assert text.index("run: ingest:") < text.index("private redis-server stopped"), "Redis stops last"
    wait_for(lambda: not _pids_with(str(Path(sock).parent)), 20, what="no redis-server left")
    assert listening == {("127.0.0.1", port)}, f"one metrics port, on 127.0.0.1, no other: {listening}"
    assert 'maskwatch_process_up{stage="worker"}' in metrics
    assert 'maskwatch_process_up{stage="publisher"}' in metrics


def test_a_dead_private_redis_ends_the_run_with_an_error_counting_what_was_lost(
    weights_dir, videos, tmp_path
):
    env = _env(MASKWATCH_DETECTOR__WEIGHTS_DIR=str(weights_dir))
    log = tmp_path / "run.log"
    cfg = _looping_config(tmp_path, videos / "bare_then_masked_720p.mp4")
    proc = _start(["run", "--config", str(cfg)], env, log)
    try:
        sock = _private_socket(log)
        wait_for(lambda: _events(sock) >= 3, 240, what="events published")
        servers = [p for p in _pids_with(sock) if p != proc.pid]
        assert len(servers) == 1, servers
        os.kill(servers[0], signal.SIGKILL)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 1, text[-3000:]
    assert re.search(r"private redis-server exited .*\d+ frame\(s\) in flight were lost", text), text[-3000:]
    assert len([line for line in text.splitlines() if "run: ingest:" in line]) == 1


def test_a_stage_counts_and_logs_a_redis_that_came_back_empty(own_redis, tmp_path):
    port = free_port()
    env = _env(
        MASKWATCH_REDIS_URL=own_redis.url,
        MASKWATCH_PUBLISHER__METRICS_PORT=str(port),
        MASKWATCH_HEARTBEAT_TTL_S="3",
    )
    log = tmp_path / "publisher.log"
    proc = _start(["publisher"], env, log)
    client = redis.Redis.from_url(own_redis.url)

    def resets() -> str | None:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            return None
        found = re.search(r'^maskwatch_redis_reset_total\{stage="publisher"\} (\S+)$', body, re.M)
        return found.group(1) if found else None

    try:
        wait_for(lambda: client.get("maskwatch:epoch"), 60, what="run epoch set")
        wait_for(lambda: resets() == "0.0", 60, what="reset metric exported")
        before = client.get("maskwatch:epoch")
        own_redis.restart()  # no persistence: it comes back empty
        wait_for(lambda: resets() == "1.0", 60, what="reset counted")
        assert client.get("maskwatch:epoch") not in (None, before), "a new epoch is set"
        time.sleep(4)  # more beats on the new epoch: counted once
        assert resets() == "1.0"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
    text = log.read_text()
    assert "publisher: Redis came back empty" in text and "lost: results not yet published" in text, text


def test_unwritable_events_out_fails_at_once_with_code_2_and_starts_nothing(videos, tmp_path):
    video = str(videos / "bare_then_masked_720p.mp4")
    for target in (tmp_path, tmp_path / "no-such-folder" / "events.jsonl"):
        started = time.monotonic()
        r = subprocess.run(
            [*CLI, "run", "--source", video, "--events-out", str(target)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr[-2000:]
        assert "--events-out" in r.stderr and "Traceback" not in r.stderr
        assert "redis-server" not in r.stderr, "nothing was started"
        assert time.monotonic() - started < 20


def test_a_missing_source_or_a_bad_setting_fails_before_tensorflow_is_imported(tmp_path):
    code = (
        "import sys; from maskwatch.cli.main import main; rc = main(sys.argv[1:]); "
        "print('TF LOADED' if 'tensorflow' in sys.modules else 'no tf', file=sys.stderr); sys.exit(rc)"
    )
    missing = tmp_path / "missing.mp4"
    cases = [
        (["run", "--source", str(missing)], {}, str(missing)),
        (
            ["run", "--source", str(missing)],
            {"MASKWATCH_WORKER__MAX_BATCH": "0"},
            "MASKWATCH_WORKER__MAX_BATCH",
        ),
    ]
    for args, extra, named in cases:
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-c", code, *args], env=_env(**extra), capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2 and named in r.stderr, r.stderr
        assert "no tf" in r.stderr and "redis-server" not in r.stderr
        assert time.monotonic() - started < 15


def test_tensorflow_start_up_lines_only_at_debug_level():
    code = (
        "import sys; from maskwatch.runtime.logs import setup_logging, import_tensorflow_quietly; "
        "setup_logging(sys.argv[1]); import_tensorflow_quietly(); import tensorflow as tf; "
        "tf.config.list_physical_devices('GPU'); print('imported', file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", code, "info"], env=env, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", code, "debug"], env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert quiet.stderr.strip() == "imported", quiet.stderr
    assert len(loud.stderr.splitlines()) > 1, "debug lets TensorFlow's own lines through"


def test_ctrl_c_while_the_models_load_still_prints_a_summary_and_stops_redis(videos, tmp_path):
    log = tmp_path / "run.log"
    proc = _start(["run", "--source", str(videos / "bare_then_masked_720p.mp4")], _env(), log)
    try:
        sock = _private_socket(log)  # logged before the stages (and the models) are built
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 0 and "Traceback" not in text, text[-3000:]
    assert "maskwatch run: interrupted before the stages started" in text
    wait_for(lambda: not _pids_with(str(Path(sock).parent)), 20, what="no redis-server left")
