"""``maskwatch run``: ingest, worker, publisher and the HTTP API together in one process, for one machine.

Order of a run: inputs are checked (sources, ``--events-out``) before anything starts; then the private
redis-server (its own session: a terminal's Ctrl-C reaches only maskwatch, which drains), the stages,
one metrics endpoint for all of them; on stop the stages drain upstream first and the private Redis
stops last. The summary line is printed whatever ends the run.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import redis
from pydantic import SecretStr

from maskwatch.cli.stages import build_stage, install_signal_handlers
from maskwatch.config.settings import Settings
from maskwatch.core.errors import MaskwatchError
from maskwatch.core.keys import Keys
from maskwatch.runtime.metrics_server import serve_metrics
from maskwatch.runtime.private_redis import RedisServer
from maskwatch.runtime.redis_conn import REDIS_DOWN, connect

log = logging.getLogger("maskwatch")
_SUPERVISE_EVERY_S = 0.2  # how often the runner looks at its stages (not a stage loop: no config key)
_STOP_ORDER = ("ingest", "worker", "publisher", "api", "mqtt", "webhooks")
RUN_METRICS_HOST = "127.0.0.1"
"""Where ``run`` serves /metrics unless ``metrics_host`` says otherwise: one machine, not a cluster."""


class _JsonLines:
    """Every document of the run, one JSON object per line (each with its ``type``), thread-safe."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.lock = threading.Lock()
        self.count = 0

    @classmethod
    def open(cls, path: str) -> _JsonLines:
        """Open ``path`` for writing (raises ``OSError`` when it cannot be written)."""
        return cls(Path(path).open("w", encoding="utf-8"))  # noqa: SIM115 - closed in close()

    def __call__(self, doc: dict[str, Any]) -> None:
        with self.lock:
            self.file.write(json.dumps(doc) + "\n")
            self.count += 1

    def close(self) -> None:
        self.file.close()


class _StreamTail:
    """Copies each document of one stream (JSON in field ``event``) to ``write``, on its own thread, from
    ``start`` on. :meth:`stop` reads what is left, then ends: the violations stream into ``--events-out``."""

    def __init__(
        self, client: redis.Redis, stream: str, write: Callable[[dict[str, Any]], None], start: bytes
    ) -> None:
        self.client, self.stream, self.write, self.last = client, stream, write, start
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"tail {stream}", daemon=True)

    @classmethod
    def from_now(
        cls, client: redis.Redis, stream: str, write: Callable[[dict[str, Any]], None]
    ) -> _StreamTail:
        """A tail of what ``stream`` gets from now on (an existing stream's old entries are not copied)."""
        newest = client.xrevrange(stream, count=1)
        return cls(client, stream, write, newest[0][0] if newest else b"0-0")

    def start(self) -> _StreamTail:
        self.thread.start()
        return self

    def _read(self, block_ms: int | None) -> int:
        replies = self.client.xread({self.stream: self.last}, count=500, block=block_ms)
        n = 0
        for _, entries in replies or []:
            for entry_id, fields in entries:
                self.last = entry_id
                raw = fields.get(b"event")
                if raw is not None:
                    self.write(json.loads(raw))
                    n += 1
        return n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read(500)
            except REDIS_DOWN:
                self._stop.wait(0.5)

    def stop(self, timeout_s: float) -> None:
        """Stop following, then copy what the stream still holds (best effort when Redis is gone)."""
        self._stop.set()
        self.thread.join(timeout=timeout_s)
        try:
            while self._read(None):
                pass
        except REDIS_DOWN as e:
            log.error("run: could not read the last documents of %s: %s", self.stream, e)


def preflight(settings: Settings, events_out: str | None) -> str | None:
    """What makes the run pointless before anything starts (no models loaded, no Redis): None if fine."""
    if not settings.cameras:
        return "no camera configured: pass --source URL or --config FILE with `cameras:`"
    for camera in settings.cameras:
        url = camera.url.get_secret_value()
        if camera.is_live or "://" in url or not camera.enabled:
            continue
        path = Path(url).expanduser()
        if not path.exists():
            return f"camera {camera.id}: source file {path} does not exist"
        if not path.is_file():
            return f"camera {camera.id}: source {path} is not a file"
        try:
            path.open("rb").close()
        except OSError as e:
            return f"camera {camera.id}: cannot read source file {path}: {e.strerror or e}"
    if events_out is not None:
        folder = Path(events_out).expanduser().absolute().parent
        if not folder.is_dir():
            return f"cannot write --events-out {events_out}: folder {folder} does not exist"
    return None


def expected_frames(path: str, fps: float) -> int | None:
    """About how many frames a file yields at ``fps`` (its duration times ``fps``); None if unknown."""
    try:
        import av

        with av.open(path) as container:
            if container.duration:
                return max(1, round(container.duration / 1_000_000 * fps))
    except Exception:  # noqa: BLE001 - only an estimate for the progress line
        return None
    return None


def run_all(
    settings: Settings,
    exit_when_done: bool = True,
    results_json: str | None = None,
    stop: threading.Event | None = None,
    metrics_port: int | None = None,
    progress_every_s: float = 5.0,
) -> int:
    """Run the three pipeline stages and the API (unless ``api.port`` is 0); with only file sources,
    return once every frame's event is published (``exit_when_done``). An API that cannot listen (port in
    use) is logged and left out: the analytics run without it.

    ``results_json`` receives every frame event and every document of the violations stream, one JSON
    per line. /metrics is served once, on ``metrics_port`` (default ``ingest.metrics_port``; 0: none), at
    ``metrics_host`` (default 127.0.0.1). A progress line goes to stderr every ``progress_every_s``
    (0: none) while files are processed. Exit codes: 0 done (or stopped and drained), 1 a stage, a camera
    or the private Redis failed, 2 bad input (nothing was started).
    """
    problem = preflight(settings, results_json)
    if problem is None and results_json:
        try:
            sink: _JsonLines | None = _JsonLines.open(results_json)
        except OSError as e:
            problem = f"cannot write --events-out {results_json}: {e.strerror or e}"
    else:
        sink = None
    if problem:
        print(f"maskwatch run: {problem}", file=sys.stderr)
        return 2
    own_signals = stop is None
    stop = stop or threading.Event()
    run = _Run(settings, stop, sink)
    if own_signals:  # before the models load: a Ctrl-C while they do still ends with a summary
        install_signal_handlers(stop, settings.shutdown_grace_s, on_force_exit=run.force_exit)
    try:
        return run.main(exit_when_done, metrics_port, progress_every_s)
    finally:
        run.close()


class _Run:
    """One ``maskwatch run``: its private Redis, stages and output; :meth:`close` undoes it all."""

    def __init__(self, settings: Settings, stop: threading.Event, sink: _JsonLines | None) -> None:
        self.settings, self.stop, self.sink = settings, stop, sink
        self.server: RedisServer | None = None
        self.services: dict[str, Any] = {}
        self.summaries: dict[str, str] = {}
        self.tail: _StreamTail | None = None
        self._summary_printed = False

    def main(self, exit_when_done: bool, metrics_port: int | None, progress_every_s: float) -> int:
        settings = self.settings
        port = settings.ingest.metrics_port if metrics_port is None else metrics_port
        if settings.redis_url is None:
            if shutil.which("redis-server"):
                self.server = RedisServer(unix_socket=True, die_with_parent=True).start()
                settings = settings.model_copy(update={"redis_url": SecretStr(self.server.url)})
                log.info(
                    "run: no Redis URL configured; started a private redis-server at %s (no persistence)",
                    self.server.url,
                )
            else:
                log.info(
                    "run: no Redis URL configured and no redis-server on PATH; using redis://127.0.0.1:6379/0"
                )
        # one /metrics for the whole process (one registry): the stages serve none of their own
        settings = settings.model_copy(
            update={
                section: getattr(settings, section).model_copy(update={"metrics_port": 0})
                for section in ("ingest", "worker", "publisher", "mqtt")
            }
        )
        self.settings = settings
        if self.stop.is_set():
            return self._interrupted_before_start()
        try:
            for name in ("ingest", "worker", "publisher"):  # the worker loads the models: seconds
                if self.stop.is_set():
                    return self._interrupted_before_start()
                on_event = self.sink if name == "publisher" else None
                self.services[name] = build_stage(name, settings, on_event=on_event)
            if settings.mqtt.url is not None:  # the MQTT sink only where a broker is configured
                self.services["mqtt"] = build_stage("mqtt", settings)
            if settings.webhooks:  # the webhook sink only where endpoints are configured
                self.services["webhooks"] = build_stage("webhooks", settings, metrics_port=0)
        except (MaskwatchError, ValueError, OSError) as e:
            print(f"maskwatch run: {e}", file=sys.stderr)
            return 2
        if self.stop.is_set():
            return self._interrupted_before_start()
        serve_metrics(port, "run", settings.metrics_host or RUN_METRICS_HOST)
        if self.sink is not None:
            client = connect(settings)
            self.tail = _StreamTail.from_now(client, Keys(settings.key_prefix).violations, self.sink).start()
        if settings.api.port:
            try:
                self.services["api"] = build_stage("api", settings)
            except OSError as e:
                log.warning("run: the API and review page are off: %s (set api.port, 0 disables it)", e)
            else:
                files_only = not any(c.is_live or c.loop for c in settings.cameras)
                hint = (
                    " (until the files end; --keep-running keeps it up)"
                    if exit_when_done and files_only
                    else ""
                )
                print(f"maskwatch run: review page and API at {self.services['api'].url}{hint}", flush=True)
        return self._supervise(exit_when_done, progress_every_s)

    def _interrupted_before_start(self) -> int:
        self.services = {}  # built, never run: nothing to summarise but that
        self._print_summary("interrupted before the stages started")
        return 0

    def _supervise(self, exit_when_done: bool, progress_every_s: float) -> int:
        """Run each stage on its thread until ``stop``, a stage dies, the private Redis dies or (files
        only) everything is published; then stop them upstream first, each draining within
        ``shutdown_grace_s``."""
        services, settings, stop = self.services, self.settings, self.stop
        stops = {name: threading.Event() for name in services}
        crashed: list[str] = []

        def run(name: str) -> None:
            try:
                self.summaries[name] = services[name].run(stops[name])
            except Exception as e:  # noqa: BLE001 - logged by Stage.run; the supervisor notices the thread end
                self.summaries[name] = f"{name}: failed ({type(e).__name__}: {e})"
                crashed.append(name)

        threads = {
            name: threading.Thread(target=run, args=(name,), name=name, daemon=True) for name in services
        }
        for t in threads.values():
            t.start()
        ingest, publisher = services["ingest"], services["publisher"]
        files_only = not any(c.is_live or c.loop for c in ingest.cameras)
        file_ids = [c.id for c in ingest.cameras]
        progress = _Progress(ingest, publisher, progress_every_s)
        redis_died = False
        while not stop.is_set():
            if exit_when_done and files_only and ingest.finished and publisher.done(file_ids):
                log.info("run: every file has been processed and published")
                break
            if crashed or any(not t.is_alive() for n, t in threads.items() if n != "ingest"):
                log.error("run: a stage stopped unexpectedly")
                break
            if self.server is not None and self.server.exit_code() is not None:
                redis_died = True
                self._private_redis_died()
                break
            progress.maybe_print()
            stop.wait(_SUPERVISE_EVERY_S)
        grace = settings.shutdown_grace_s
        for name in _STOP_ORDER:  # upstream first, so downstream drains what is in flight
            if name in services:
                stops[name].set()
                threads[name].join(timeout=grace)
        if self.tail is not None:
            self.tail.stop(timeout_s=grace)
        failed = [r.camera.id for r in ingest.readers if r.state.value == "failed"]
        self._print_summary()
        return 1 if failed or crashed or redis_died else 0

    def _private_redis_died(self) -> None:
        """The private Redis is gone, and with it every frame, result and document in flight: say how
        many frames, and stop (a restarted, empty Redis cannot complete this run's files; see README)."""
        assert self.server is not None
        ingest, publisher = self.services["ingest"], self.services["publisher"]
        sent = sum(r.stats.frames_published for r in ingest.readers)
        lost = max(0, sent - publisher.stats.events)
        log.error(
            "run: the private redis-server exited (status %s%s); %d frame(s) in flight were lost "
            "(%d put on the stream, %d published). Stopping: start `maskwatch run` again, or configure "
            "redis_url for a Redis that outlives the run",
            self.server.exit_code(),
            f": {tail}" if (tail := self.server.log_tail(2)) else "",
            lost,
            sent,
            publisher.stats.events,
        )

    def _print_summary(self, note: str | None = None) -> None:
        """The one summary line, to stderr at any log level (once)."""
        if self._summary_printed:
            return
        self._summary_printed = True
        parts = [self.summaries.get(n, f"{n}: did not stop") for n in _STOP_ORDER if n in self.services]
        if note:
            parts.append(note)
        if self.sink is not None:
            parts.append(f"{self.sink.count} documents written to --events-out")
        print(f"maskwatch run: {' | '.join(parts)}", file=sys.stderr, flush=True)

    def force_exit(self) -> None:
        """The drain outlasted its deadline: print what there is, stop the private Redis (then exit)."""
        self._print_summary("drain did not finish")
        self.close()

    def close(self) -> None:
        """Close ``--events-out`` and stop the private Redis: last, after the stages drained."""
        if self.sink is not None:
            self.sink.close()
        if self.server is not None:
            self.server.cleanup()
            self.server = None
            log.info("run: private redis-server stopped")


class _Progress:
    """A line to stderr every ``every_s`` while file sources are processed: frames published / total
    (exact once the ingest read the whole file, else estimated from its duration; none for a looping
    file), frames per second since the last line."""

    def __init__(self, ingest: Any, publisher: Any, every_s: float) -> None:
        self.ingest, self.publisher, self.every_s = ingest, publisher, every_s
        self.files = [c for c in ingest.cameras if not c.is_live]
        self.estimates = (
            {c.id: expected_frames(c.url.get_secret_value(), c.fps) for c in self.files}
            if every_s > 0
            else {}
        )
        self._last = (time.monotonic(), 0)

    def maybe_print(self) -> None:
        if self.every_s <= 0 or not self.files:
            return
        now = time.monotonic()
        if now - self._last[0] < self.every_s:
            return
        stats = self.publisher.stats
        done = sum(stats.published_by_camera.get(c.id, 0) for c in self.files)
        readers = {r.camera.id: r for r in self.ingest.readers}
        totals = []  # (frames, exact): exact once the ingest has read the whole file
        for c in self.files:
            reader = readers.get(c.id)
            if c.loop:
                totals.append((None, False))
            elif reader is not None and reader.state.value == "finished":
                totals.append((reader.stats.frames_published, True))
            else:
                totals.append((self.estimates.get(c.id), False))
        fps = (done - self._last[1]) / (now - self._last[0])
        self._last = (now, done)
        if all(t is not None for t, _ in totals):
            total = sum(t or 0 for t, _ in totals)
            exact = all(e for _, e in totals)
            pct = f" ({100 * done / total:.0f}%)" if total else ""
            of = f"/{'' if exact else '~'}{total}{pct}"
        else:
            of = ""
        print(f"maskwatch run: {done}{of} frames processed, {fps:.1f} frames/s", file=sys.stderr, flush=True)
