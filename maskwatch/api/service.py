"""``maskwatch api``: the FastAPI application under uvicorn, run as a :class:`~maskwatch.runtime.stage.Stage`.

uvicorn serves on its own thread; the stage loop keeps the heartbeat (``maskwatch check api``), notices
a server that died, and on stop asks uvicorn to finish its requests and exit within ``shutdown_grace_s``.
The listening socket is bound in :meth:`ApiService.from_settings`, so a port in use fails at once with a
message naming it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import redis
import uvicorn

from maskwatch.api.app import create_app
from maskwatch.config.settings import Settings
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.redis_conn import connect
from maskwatch.runtime.stage import LoopOptions, Stage

log = logging.getLogger(__name__)
_BLOCK_MS = 500  # how often the loop looks at the server thread (not a work loop: no config key)


class ApiService(Stage):
    """The HTTP API and review page; ``url`` is where it listens."""

    stage = "api"

    def __init__(
        self,
        client: redis.Redis,
        heartbeat: Heartbeat,
        options: LoopOptions,
        settings: Settings,
        sock: socket.socket,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.host, self.port = host, port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/"
        self.app = create_app(settings, client)
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started_at = time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings, port: int | None = None) -> ApiService:
        """The API of ``settings`` on ``api.host``/``api.port`` (or ``port``: tests pass a free one)."""
        port = settings.api.port if port is None else port
        if port == 0:
            raise ValueError("api.port is 0: the API is disabled")
        sock = bind(settings.api.host, port)
        client = connect(settings)
        instance = instance_name("api", settings.instance)
        heartbeat = Heartbeat.from_settings(client, settings, "api", instance)
        options = LoopOptions(_BLOCK_MS, settings.shutdown_grace_s, settings.redis_retry_max_s, 0)
        return cls(client, heartbeat, options, settings, sock)

    def on_start(self) -> None:
        def serve() -> None:
            try:
                self.server.run(sockets=[self.sock])
            except BaseException as e:  # noqa: BLE001 - uvicorn exits with SystemExit on startup errors
                self._error = e

        thread = threading.Thread(target=serve, name="api-http", daemon=True)
        thread.start()
        self._thread = thread  # only once started: a thread not yet started is not alive either
        log.info("api: serving on %s (OpenAPI at %sdocs)", self.url, self.url)

    def step(self, block_ms: int) -> int:
        if self._thread is not None and not self._thread.is_alive():
            raise RuntimeError(f"the HTTP server stopped: {self._error or 'exited'}")
        self.stop_event.wait(block_ms / 1000)
        return 0

    def on_stop(self, deadline: float) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self.sock.close()

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """True once uvicorn accepts requests (tests and ``maskwatch run`` wait on it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.started:
                return True
            if self._thread is not None and not self._thread.is_alive():
                return False
            time.sleep(0.02)
        return False

    def heartbeat_info(self) -> dict[str, object]:
        return {"url": self.url}

    def summary(self) -> str:
        return f"api: served {self.url} for {time.monotonic() - self._started_at:.0f}s"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; OSError (port in use, bad address) names both."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
