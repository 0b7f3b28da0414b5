"""Run a stage in the foreground: signals set a stop event, work drains to a deadline, one summary line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from maskwatch.config.settings import Settings
from maskwatch.core.errors import MaskwatchError
from maskwatch.runtime.metrics_server import serve_metrics
from maskwatch.runtime.stage import Stage

log = logging.getLogger("maskwatch")


def install_signal_handlers(
    stop: threading.Event, grace_s: float, on_force_exit: Callable[[], None] | None = None
) -> None:
    """SIGINT/SIGTERM set ``stop``; if the drain outlasts ``grace_s`` (or a second signal), exit hard,
    after ``on_force_exit`` (what must not be left behind: ``run``'s private Redis, its summary)."""

    def force_exit() -> None:
        log.error("shutdown: drain did not finish within %.0fs; exiting", grace_s)
        if on_force_exit is not None:
            try:
                on_force_exit()
            except Exception:  # noqa: BLE001 - exiting anyway
                log.exception("shutdown: cleanup failed")
        os._exit(1)

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            force_exit()
        log.info("shutdown: %s received, draining (up to %.0fs)", signal.Signals(signum).name, grace_s)
        stop.set()
        timer = threading.Timer(grace_s, force_exit)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def build_stage(
    name: str,
    settings: Settings,
    camera_ids: list[str] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    metrics_port: int | None = None,
) -> Stage:
    """The service of stage ``name``, built from the settings; ``camera_ids`` (ingest), ``on_event``
    (publisher: also called with every frame event) and ``metrics_port`` (webhooks: its port has no config
    key) are passed to it, never patched in afterwards."""
    if name == "ingest":
        from maskwatch.ingest.service import IngestService

        return IngestService.from_settings(settings, camera_ids)
    if name == "worker":
        from maskwatch.runtime.logs import import_tensorflow_quietly
        from maskwatch.worker.service import WorkerService

        import_tensorflow_quietly()
        return WorkerService.from_settings(settings)
    if name == "publisher":
        from maskwatch.publisher.service import PublisherService

        return PublisherService.from_settings(settings, on_event=on_event)
    if name == "mqtt":
        from maskwatch.delivery.mqtt import MqttStage

        return MqttStage.from_settings(settings)
    if name == "api":
        from maskwatch.api.service import ApiService

        return ApiService.from_settings(settings)
    if name == "webhooks":
        from maskwatch.delivery.webhooks import WebhooksService

        return WebhooksService.from_settings(settings, metrics_port=metrics_port)
    raise ValueError(f"unknown stage {name!r}")


STAGE_METRICS_HOST = "0.0.0.0"  # noqa: S104 - containers: Prometheus scrapes from another host
"""Where a stage command serves /metrics unless ``metrics_host`` says otherwise."""


def run_stage(name: str, settings: Settings, camera_ids: list[str] | None = None) -> int:
    """Run one stage until SIGINT/SIGTERM (or, for an ingest of files, until they end)."""
    if name == "ingest" and not settings.cameras:
        print(
            "maskwatch ingest: no camera configured: add `cameras:` to the file given with --config, or "
            "set MASKWATCH_CAMERAS (JSON); `maskwatch run --source URL` runs one camera with every stage",
            file=sys.stderr,
        )
        return 2
    try:
        service = build_stage(name, settings, camera_ids)
    except (MaskwatchError, ValueError, OSError) as e:
        print(f"maskwatch {name}: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    install_signal_handlers(stop, settings.shutdown_grace_s)
    # served here, at the configured address; Stage.run's own call then finds the port served
    serve_metrics(service.options.metrics_port, name, settings.metrics_host or STAGE_METRICS_HOST)
    log.info("%s: started (redis %s, key prefix %r)", name, settings.safe_redis_url, settings.key_prefix)
    try:
        summary = service.run(stop)
    except Exception:  # noqa: BLE001 - Stage.run logged it with its traceback
        return 1
    log.info("%s", summary)
    return 0
