"""The worker stage: read a batch across cameras, infer, write results, then acknowledge (one ``step``)."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import redis

from maskwatch.config.settings import Settings, WorkerSettings
from maskwatch.core.contracts import EndOfStream, FrameMessage, decode_frame_entry
from maskwatch.core.errors import ContractError, ErrorKind, ModelError
from maskwatch.core.keys import Keys
from maskwatch.runtime.deadletter import add_deadletter, deadletter_fields
from maskwatch.runtime.group_consumer import Entry, StreamGroupConsumer
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.metrics_server import DEADLETTERS
from maskwatch.runtime.redis_conn import connect
from maskwatch.runtime.stage import Every, LoopOptions, Stage
from maskwatch.worker import metrics
from maskwatch.worker.camera_state import CameraState, CameraStateStore
from maskwatch.worker.inference import BatchInference, Rejected

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    batches: int = 0
    frames: int = 0
    faces: int = 0
    deadletters: int = 0
    reclaimed: int = 0
    skipped: int = 0


class WorkerService(Stage):
    """Batches frames from every camera through one consumer group; acks only after results are written."""

    stage = "worker"

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        consumer: StreamGroupConsumer,
        inference: BatchInference,
        heartbeat: Heartbeat,
        config: WorkerSettings,
        options: LoopOptions,
        states: CameraStateStore | None = None,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.keys, self.consumer, self.inference, self.config = keys, consumer, inference, config
        self.states = states or CameraStateStore(client, keys, config.camera_state_ttl_s)
        self.stats = WorkerStats()
        self._lag_metrics = Every(config.lag_metrics_interval_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerService:
        from maskwatch.runtime.model_factory import build_analyzer

        _log_devices()
        cfg = settings.worker
        name = cfg.consumer or instance_name(cls.stage)
        longest_read_s = (cfg.block_ms + cfg.max_wait_ms) / 1000
        client = connect(settings, socket_timeout=max(settings.redis_socket_timeout_s, longest_read_s + 10))
        keys = Keys(settings.key_prefix)
        consumer = StreamGroupConsumer(  # newest first: a live camera's backlog yields its latest frame
            client,
            keys,
            "frames",
            cfg.group,
            name,
            cfg.claim_idle_ms,
            cfg.discovery_interval_s,
            newest_first=True,
        )
        analyzer = build_analyzer(settings.detector, settings.classifier)
        log.info(
            "worker %s: detector %s (score >= %s), classifier %s%s",
            name,
            analyzer.detector.name,
            analyzer.threshold,
            analyzer.classifier.name,
            " (PLACEHOLDER: no real mask classification)" if analyzer.placeholder else "",
        )
        inference = BatchInference(analyzer, name, cfg)
        hb = Heartbeat.from_settings(client, settings, cls.stage, name)
        states = CameraStateStore(client, keys, cfg.camera_state_ttl_s)
        options = LoopOptions.from_settings(settings, cls.stage)
        return cls(client, keys, consumer, inference, hb, cfg, options, states)

    def heartbeat_info(self) -> dict[str, int]:
        return {"frames": self.stats.frames}

    def on_reconnect(self) -> None:
        self.consumer.reset()

    def step(self, block_ms: int | None = None) -> int:
        """Process one batch: wait up to ``block_ms`` (default the configured ``block_ms``) for a first
        frame, then up to ``max_wait_ms`` to fill the batch; returns the frames handled."""
        self.consumer.discover()
        if self._lag_metrics.due():
            self.consumer.update_lag_metrics()
        entries = self._collect_batch(self.options.block_ms if block_ms is None else block_ms)
        superseded = self.consumer.take_superseded()  # older live frames a newer one replaced: ack, count
        if not entries and not superseded:
            return 0
        for entry in superseded:
            metrics.FRAMES_SKIPPED.labels(self.keys.camera_of(entry.stream), "superseded").inc()
        self.stats.skipped += len(superseded)
        frames: list[tuple[Entry, FrameMessage]] = []
        ends: list[EndOfStream] = []
        pipe = self.client.pipeline(transaction=True)
        for entry in entries:
            try:
                msg = decode_frame_entry(entry.fields)
            except ContractError as e:
                self._deadletter(pipe, entry, e.kind, f"malformed frame message: {e}")
                continue
            if isinstance(msg, EndOfStream):
                ends.append(msg)
            elif self._stale(msg):
                metrics.FRAMES_SKIPPED.labels(msg.camera, "stale").inc()
                self.stats.skipped += 1
            else:
                frames.append((entry, msg))
        states: dict[str, CameraState] = {}
        try:
            if frames:
                before = self.states.read(m.camera for _, m in frames)  # once per camera per batch
                results, bad, states = self.inference.process([m for _, m in frames], before)
            else:
                results, bad = [], []
        except Exception as e:  # noqa: BLE001 - a model failure must not stop the worker or lose frames
            log.exception("worker: inference failed on a batch of %d frame(s)", len(frames))
            error = (
                e if isinstance(e, ModelError) else ModelError(f"inference failed: {type(e).__name__}: {e}")
            )
            results, bad = [], [Rejected(m, error.kind, str(error)) for _, m in frames]
        rejected = {(b.frame.camera, b.frame.seq): b for b in bad}
        for entry, msg in frames:
            if (b := rejected.get((msg.camera, msg.seq))) is not None:
                self._deadletter(pipe, entry, b.kind, b.reason)
        for out in (*results, *ends):  # a file's end marker goes after the results of its batch
            pipe.xadd(
                self.keys.results(out.camera),
                out.to_fields(),
                maxlen=self.config.results_max_len,
                approximate=True,
            )
        self.states.write(pipe, states)  # each camera's state moves only forward (newer seq)
        self.consumer.ack(entries + superseded, pipe)
        pipe.execute()  # results, camera states and acks land together, or not at all
        self._count(entries, results)
        return len(entries) + len(superseded)

    def _stale(self, frame: FrameMessage) -> bool:
        """A live frame too old to be worth processing (latency stays bounded when we fall behind)."""
        max_age = self.config.max_frame_age_s
        return frame.live and max_age > 0 and time.time() - frame.capture_ts > max_age

    def _collect_batch(self, block_ms: int) -> list[Entry]:
        cfg = self.config
        batch = self.consumer.read(cfg.max_batch, block_ms)
        deadline = time.monotonic() + cfg.max_wait_ms / 1000  # batch timeout counts from the first frame
        while batch and len(batch) < cfg.max_batch:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self.consumer.read(cfg.max_batch - len(batch), left_ms)
            if not more:
                break
            batch += more
        return batch

    def _deadletter(self, pipe: redis.client.Pipeline, entry: Entry, kind: ErrorKind, reason: str) -> None:
        log.error("worker: dead-lettering %s %s: %s", entry.stream, entry.id.decode(), reason)
        add_deadletter(
            pipe,
            self.keys.deadletter,
            deadletter_fields(self.stage, reason, entry.stream, entry.id, entry.fields),
        )
        DEADLETTERS.labels(self.stage, kind).inc()
        self.stats.deadletters += 1

    def _count(self, entries: list[Entry], results: list) -> None:
        self.stats.batches += 1
        self.stats.frames += len(results)
        self.stats.reclaimed += sum(e.reclaimed for e in entries)
        metrics.BATCH_SIZE.observe(len(entries))
        for r in results:
            metrics.FRAMES_PROCESSED.labels(r.camera).inc()
            self.stats.faces += len(r.faces)
            for label, carried in zip(r.labels, r.faces.carried, strict=True):
                if not carried:
                    metrics.FACES.labels(r.camera, label).inc()

    def summary(self) -> str:
        s = self.stats
        return (
            f"worker: {s.frames} frames in {s.batches} batches, {s.faces} faces, "
            f"{s.deadletters} dead-lettered, {s.reclaimed} reclaimed, {s.skipped} stale skipped"
        )


def _log_devices() -> None:
    """Say whether TensorFlow sees a GPU (it uses one automatically when present)."""
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except Exception as e:  # noqa: BLE001 - TF missing/broken only matters to the keras classifier
        log.info("worker: TensorFlow not available (%s)", e)
        return
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    log.info(
        "worker: TensorFlow devices: %s",
        ", ".join(g.name for g in gpus) if gpus else "CPU only (no GPU found)",
    )
