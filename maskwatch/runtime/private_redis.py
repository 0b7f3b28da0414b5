"""Start and stop a throw-away ``redis-server`` (no persistence) on a unix socket or a TCP port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A ``redis-server`` child process. ``url`` is what clients connect to; :meth:`restart` keeps it."""

    def __init__(self, port: int | None = None, unix_socket: bool = False, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("redis-server")
        if not self.binary:
            raise FileNotFoundError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="maskwatch-redis-"))
        self.unix_socket = self.dir / "redis.sock" if unix_socket else None
        self.port = 0 if unix_socket else (port or free_port())
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.unix_socket}" if self.unix_socket else f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.unix_socket:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(
            [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            try:
                client.ping()
                return self
            except (redis.ConnectionError, OSError):
                time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on {self.url} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``) and wait for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Kill and start again on the same address (all data is lost: no persistence)."""
        self.stop(kill=True)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
