"""Start a stage's Prometheus endpoint and the metrics every process shares."""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge, start_http_server

log = logging.getLogger(__name__)

UP = Gauge("maskwatch_process_up", "1 while this stage's loop runs", ["stage"])
REDIS_ERRORS = Counter("maskwatch_redis_errors_total", "Redis connection errors survived", ["stage"])
REDIS_RESETS = Counter(
    "maskwatch_redis_reset_total",
    "Times Redis came back empty (its run epoch changed or vanished): in-flight data was lost",
    ["stage"],
)
HEARTBEAT = Gauge("maskwatch_heartbeat_timestamp_seconds", "Unix time of the last heartbeat", ["stage"])
STREAM_LAG = Gauge(
    "maskwatch_stream_lag_messages", "Entries not yet delivered to the consumer group", ["stream", "camera"]
)
STREAM_PENDING = Gauge(
    "maskwatch_stream_pending_messages", "Entries delivered but not acknowledged", ["stream", "camera"]
)
STREAMS = Gauge("maskwatch_consumed_streams", "Camera streams this process consumes", ["stream"])
RECLAIMED = Counter(
    "maskwatch_reclaimed_total", "Messages reclaimed from dead consumers", ["stream", "camera"]
)
DEADLETTERS = Counter(
    "maskwatch_deadletter_total", "Messages sent to the dead-letter stream", ["stage", "reason"]
)

_started: set[int] = set()
_lock = threading.Lock()


def serve_metrics(port: int, stage: str, host: str = "0.0.0.0") -> None:  # noqa: S104 - the container default
    """Serve /metrics on ``host``:``port`` (0 disables it; a port already served in this process is reused:
    one registry, so one endpoint holds every stage's metrics)."""
    with _lock:
        if port == 0 or port in _started:
            return
        try:
            start_http_server(port, addr=host)
        except OSError as e:
            log.error("%s: cannot serve metrics on %s:%d: %s", stage, host, port, e)
            return
        _started.add(port)
    shown = f"[{host}]" if ":" in host else host
    log.info("%s: metrics on http://%s:%d/metrics", stage, shown, port)
