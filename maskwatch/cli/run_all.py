"""``maskwatch run``: ingest, worker, publisher and the HTTP API together in one process, for one machine."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from maskwatch.cli.stages import build_stage, install_signal_handlers
from maskwatch.config.settings import Settings
from maskwatch.core.errors import MaskwatchError
from maskwatch.runtime.private_redis import RedisServer

log = logging.getLogger("maskwatch")
_SUPERVISE_EVERY_S = 0.2  # how often the runner looks at its stages (not a stage loop: no config key)
_STOP_ORDER = ("ingest", "worker", "publisher", "api", "mqtt", "webhooks")


class _JsonLines:
    def __init__(self, path: str) -> None:
        self.file = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lock = threading.Lock()

    def __call__(self, doc: dict[str, Any]) -> None:
        with self.lock:
            self.file.write(json.dumps(doc) + "\n")

    def close(self) -> None:
        self.file.close()


def run_all(
    settings: Settings,
    exit_when_done: bool = True,
    results_json: str | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the three pipeline stages and the API (unless ``api.port`` is 0); with only file sources,
    return once every frame's event is published (``exit_when_done``). An API that cannot listen (port in
    use) is logged and left out: the analytics run without it."""
    if not settings.cameras:
        print(
            "maskwatch run: no camera configured: pass --source URL or --config FILE with `cameras:`",
            file=sys.stderr,
        )
        return 2
    server = None
    if settings.redis_url is None:
        if shutil.which("redis-server"):
            server = RedisServer(unix_socket=True).start()
            settings = settings.model_copy(update={"redis_url": SecretStr(server.url)})
            log.info(
                "run: no Redis URL configured; started a private redis-server at %s (no persistence)",
                server.url,
            )
        else:
            log.info(
                "run: no Redis URL configured and no redis-server on PATH; using redis://127.0.0.1:6379/0"
            )
    sink = _JsonLines(results_json) if results_json else None
    own_signals = stop is None
    stop = stop or threading.Event()
    try:
        try:
            services = {
                "ingest": build_stage("ingest", settings),
                "worker": build_stage("worker", settings),
                "publisher": build_stage("publisher", settings, on_event=sink),
            }
            if settings.mqtt.url is not None:  # the MQTT sink only where a broker is configured
                services["mqtt"] = build_stage("mqtt", settings)
            if settings.webhooks:  # the webhook sink only where endpoints are configured
                services["webhooks"] = build_stage("webhooks", settings)
        except (MaskwatchError, ValueError, OSError) as e:
            print(f"maskwatch run: {e}", file=sys.stderr)
            return 2
        if settings.api.port:
            try:
                services["api"] = build_stage("api", settings)
            except OSError as e:
                log.warning("run: the API and review page are off: %s (set api.port, 0 disables it)", e)
            else:
                files_only = not any(c.is_live or c.loop for c in settings.cameras)
                hint = (
                    " (until the files end; --keep-running keeps it up)"
                    if exit_when_done and files_only
                    else ""
                )
                print(f"maskwatch run: review page and API at {services['api'].url}{hint}", flush=True)
        if own_signals:
            install_signal_handlers(stop, settings.shutdown_grace_s)
        return _supervise(services, settings, stop, exit_when_done)
    finally:
        if sink:
            sink.close()
        if server:
            server.cleanup()
            log.info("run: private redis-server stopped")


def _supervise(
    services: dict[str, Any], settings: Settings, stop: threading.Event, exit_when_done: bool
) -> int:
    """Run each stage on its thread until ``stop``, a stage dies, or (files only) everything is published;
    then stop them upstream first, each draining within ``shutdown_grace_s``."""
    stops = {name: threading.Event() for name in services}
    summaries: dict[str, str] = {}
    crashed: list[str] = []

    def run(name: str) -> None:
        try:
            summaries[name] = services[name].run(stops[name])
        except Exception as e:  # noqa: BLE001 - logged by Stage.run; the supervisor notices the thread end
            summaries[name] = f"{name}: failed ({type(e).__name__}: {e})"
            crashed.append(name)

    threads = {name: threading.Thread(target=run, args=(name,), name=name, daemon=True) for name in services}
    for t in threads.values():
        t.start()
    ingest, publisher = services["ingest"], services["publisher"]
    files_only = not any(c.is_live or c.loop for c in ingest.cameras)
    file_ids = [c.id for c in ingest.cameras]
    while not stop.is_set():
        if exit_when_done and files_only and ingest.finished and publisher.done(file_ids):
            log.info("run: every file has been processed and published")
            break
        if crashed or any(not t.is_alive() for n, t in threads.items() if n != "ingest"):
            log.error("run: a stage stopped unexpectedly")
            break
        stop.wait(_SUPERVISE_EVERY_S)
    for name in _STOP_ORDER:  # upstream first, so downstream drains what is in flight
        if name in services:
            stops[name].set()
            threads[name].join(timeout=settings.shutdown_grace_s)
    failed = [r.camera.id for r in ingest.readers if r.state.value == "failed"]
    log.info(
        "run: %s",
        " | ".join(summaries.get(n, f"{n}: did not stop") for n in _STOP_ORDER if n in services),
    )
    return 1 if failed or crashed else 0
