"""Start and stop a throw-away ``redis-server`` (no persistence) on a unix socket or a TCP port."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PRCTL: Any = None
with contextlib.suppress(OSError, AttributeError):  # resolved here, not in the forked child; Linux only
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the thread that started it ends (Linux; a no-op elsewhere)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """A ``redis-server`` child process. ``url`` is what clients connect to; :meth:`restart` keeps it.

    The server runs in its own session, so a terminal's Ctrl-C (SIGINT to the whole foreground process
    group) does not reach it: its owner stops it, after draining. With ``die_with_parent`` (Linux) it is
    also terminated when the thread that started it dies, so a killed owner leaves no orphan.
    """

    def __init__(
        self,
        port: int | None = None,
        unix_socket: bool = False,
        binary: str | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.binary = binary or shutil.which("redis-server")
        if not self.binary:
            raise FileNotFoundError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="maskwatch-redis-"))
        self.unix_socket = self.dir / "redis.sock" if unix_socket else None
        self.port = 0 if unix_socket else (port or free_port())
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        """The server's own log (its stderr)."""
        return self.dir / "redis.log"

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " / ".join(text.strip().splitlines()[-lines:])

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
        with self.log_path.open("ab") as log:  # a file, not a pipe nobody reads (it would fill and block)
            self.proc = subprocess.Popen(
                [str(a) for a in args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
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

    def exit_code(self) -> int | None:
        """None while the server runs (or was never started), else its exit status."""
        return None if self.proc is None else self.proc.poll()

    def restart(self) -> None:
        """Kill and start again on the same address (all data is lost: no persistence)."""
        self.stop(kill=True)
        self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its folder (socket, no data: nothing persists)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
