"""The worker stage: read a batch across cameras, infer, write results, then acknowledge (one ``step``)."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import redis

from maskwatch.config.settings import Settings, WorkerSettings
from maskwatch.core.contracts import EndOfStream, FrameMessage, ResultMessage, decode_frame_entry
from maskwatch.core.errors import ContractError, ErrorKind, ModelError
from maskwatch.core.keys import Keys
from maskwatch.runtime.deadletter import FORGED_EOF, MAX_DELIVERIES, DeadLetters
from maskwatch.runtime.group_consumer import Entry, StreamGroupConsumer
from maskwatch.runtime.heartbeat import Heartbeat, instance_name
from maskwatch.runtime.redis_conn import REDIS_DOWN, connect
from maskwatch.runtime.stage import Every, LoopOptions, Stage
from maskwatch.worker import metrics
from maskwatch.worker.admission import SearchBudget
from maskwatch.worker.camera_state import CameraState, CameraStateStore
from maskwatch.worker.end_of_file import doubts
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
    """Batches frames from every camera through one consumer group; acks only after results are written.

    A message that cannot be handled costs only itself: it is dead-lettered with the reason (malformed,
    undecodable, a camera other than its stream's, a forged end of file, delivered more than
    ``max_deliveries`` times, or whatever a step raised on it) and the rest of the batch carries on.
    Results streams are never trimmed: while a camera's results stream holds ``results_max_len``
    entries (the publisher is down or behind), its frames are not read (backpressure, like the
    ingest's file backlog): files wait, live frames are dropped by the ingest and counted there.
    """

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
        dead: DeadLetters | None = None,
    ) -> None:
        super().__init__(client, heartbeat, options)
        self.keys, self.consumer, self.inference, self.config = keys, consumer, inference, config
        self.states = states or CameraStateStore(client, keys, config.camera_state_ttl_s)
        self.dead = dead or DeadLetters(keys.deadletter, self.stage, config.deadletter_max_payload_bytes)
        self.stats = WorkerStats()
        self.budget = SearchBudget(config.latency_target_s)
        self._lag_metrics = Every(config.lag_metrics_interval_s)
        self._seen: dict[str, int] = {}  # highest frame seq seen per camera (end-of-file checks)
        self._results_len: dict[str, int] = {}  # frames stream -> its results stream's length, last seen
        self._held_since: dict[str, float] = {}
        self._gauged: set[str] = set()  # streams whose backpressure gauge exists

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerService:
        from maskwatch.runtime.model_factory import build_analyzer

        _log_devices()
        cfg = settings.worker
        name = cfg.consumer or instance_name(cls.stage, settings.instance)
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
            max_deliveries=cfg.max_deliveries,
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
        if cfg.regions and analyzer.supports_regions:
            analyzer.warm_up(cfg.region_size, cfg.max_batch)  # region shapes compile now, not on a live frame
        inference = BatchInference(analyzer, name, cfg)
        hb = Heartbeat.from_settings(client, settings, cls.stage, name)
        states = CameraStateStore(client, keys, cfg.camera_state_ttl_s)
        options = LoopOptions.from_settings(settings, cls.stage)
        dead = DeadLetters(keys.deadletter, cls.stage, cfg.deadletter_max_payload_bytes)
        return cls(client, keys, consumer, inference, hb, cfg, options, states, dead)

    def heartbeat_info(self) -> dict[str, int]:
        return {"frames": self.stats.frames}

    def on_reconnect(self) -> None:
        self.consumer.reset()
        self._seen.clear()  # Redis may have restarted empty: sequence numbers start again
        self._results_len.clear()

    def step(self, block_ms: int | None = None) -> int:
        """Process one batch: wait up to ``block_ms`` (default the configured ``block_ms``) for a first
        frame, then up to ``max_wait_ms`` to fill the batch; returns the frames handled."""
        self.consumer.discover()
        if self._lag_metrics.due():
            self.consumer.update_lag_metrics()
        self._hold_full_results()
        entries = self._collect_batch(self.options.block_ms if block_ms is None else block_ms)
        started = time.perf_counter()  # the batch's work begins (reads of a filled batch are overhead)
        superseded = self.consumer.take_superseded()  # older live frames a newer one replaced: ack, count
        exhausted = self.consumer.take_exhausted()  # delivered too often (they kept killing workers)
        if not entries and not superseded and not exhausted:
            return 0
        pipe = self.client.pipeline(transaction=True)
        for entry in exhausted:
            self._deadletter(
                pipe,
                entry,
                MAX_DELIVERIES,
                f"delivered {entry.deliveries} times (worker.max_deliveries {self.config.max_deliveries}): "
                "not handled again",
            )
        frames: list[tuple[Entry, FrameMessage]] = []
        skipped: list[tuple[Entry, FrameMessage]] = []  # not searched, but each gets its result
        ends: list[tuple[Entry, EndOfStream]] = []
        replaced = {id(e) for e in superseded}
        for entry in [*superseded, *entries]:
            try:
                msg = decode_frame_entry(entry.fields, self.consumer.camera_of(entry.stream))
            except ContractError as e:
                self._deadletter(pipe, entry, e.kind, f"malformed frame message: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - whatever a message provokes costs only that message
                log.exception("worker: decoding %s %s failed", entry.stream, entry.id.decode())
                self._deadletter(pipe, entry, ErrorKind.INTERNAL, f"decoding failed: {type(e).__name__}: {e}")
                continue
            if isinstance(msg, EndOfStream):
                ends.append((entry, msg))
                continue
            self._seen[msg.camera] = max(msg.seq, self._seen.get(msg.camera, -1))
            reason = "superseded" if id(entry) in replaced else ("stale" if self._stale(msg) else None)
            if reason is None:
                frames.append((entry, msg))
            else:
                metrics.FRAMES_SKIPPED.labels(msg.camera, reason).inc()
                self.stats.skipped += 1
                skipped.append((entry, msg))
        before = self.states.read({m.camera for _, m in frames + skipped}) if frames or skipped else {}
        frames, late, work = self._admit(frames, before)
        skipped += late
        t0 = time.perf_counter()
        results, bad, states = self._infer([m for _, m in frames], before)
        searching = time.perf_counter() - t0
        rejected = {id(b.frame): b for b in bad}
        for entry, msg in frames:
            if (b := rejected.get(id(msg))) is not None:
                self._deadletter(pipe, entry, b.kind, b.reason)
        done = [(e, m) for e, m in frames if id(m) not in rejected]
        out = list(zip(done, results, strict=True))
        out += zip(skipped, self.inference.skipped([m for _, m in skipped], before), strict=True)
        out.sort(key=lambda pair: (pair[1].camera, pair[1].seq))  # each camera's results in frame order
        written: list[ResultMessage] = []
        for (entry, _), result in out:
            if self._write(pipe, entry, result):
                written.append(result)
        for (entry, eos), doubt in zip(
            ends, doubts(self.client, self.keys, [e for _, e in ends], self._seen), strict=True
        ):
            if doubt is None:  # a file's end marker goes after the results of its batch
                self._write(pipe, entry, eos)
            else:
                self._deadletter(pipe, entry, FORGED_EOF, doubt)
        self.states.write(pipe, states)  # each camera's state moves only forward (newer seq)
        lengths = {}
        for camera in sorted({r.camera for r in written} | {e.camera for _, e in ends}):
            lengths[self.keys.frames(camera)] = len(pipe)
            pipe.xlen(self.keys.results(camera))
        self.consumer.ack(entries + superseded + exhausted, pipe)
        replies = pipe.execute()  # results, camera states, dead letters and acks land together, or not at all
        self._results_len.update({stream: int(replies[i]) for stream, i in lengths.items()})
        self._count(entries, [r for r in written if r.detection != "skipped"])
        self.budget.observe(searching, work, time.perf_counter() - started - searching)
        return len(entries) + len(superseded) + len(exhausted)

    def _admit(
        self, frames: list[tuple[Entry, FrameMessage]], before: dict[str, CameraState]
    ) -> tuple[list[tuple[Entry, FrameMessage]], list[tuple[Entry, FrameMessage]], float]:
        """``(search, late, work)``: the frames to search within ``latency_target_s`` (:class:`SearchBudget`),
        the live frames left out (counted ``late``) and the search work admitted, in region units."""
        units = {id(m): self.inference.search_units(m, before.get(m.camera)) for _, m in frames}
        chosen, _ = self.budget.admit([m for _, m in frames], lambda f: units[id(f)])
        kept = {id(m) for m in chosen}
        late = [(e, m) for e, m in frames if id(m) not in kept]
        for _, m in late:
            metrics.FRAMES_SKIPPED.labels(m.camera, "late").inc()
        self.stats.skipped += len(late)
        search = [(e, m) for e, m in frames if id(m) in kept]
        return search, late, sum(units[id(m)] for _, m in search)

    def _write(self, pipe: redis.client.Pipeline, entry: Entry, out: ResultMessage | EndOfStream) -> bool:
        """Queue the XADD of one result (or end marker); dead-letter its frame when it cannot be written.
        No ``MAXLEN``: results streams are bounded by backpressure, never trimmed unpublished."""
        try:
            fields = out.to_fields()
        except Exception as e:  # noqa: BLE001 - e.g. a NaN the JSON of an event may not hold
            self._deadletter(
                pipe, entry, ErrorKind.INTERNAL, f"result cannot be written: {type(e).__name__}: {e}"
            )
            return False
        pipe.xadd(self.keys.results(out.camera), fields)  # type: ignore[arg-type]
        return True

    def _infer(
        self, frames: list[FrameMessage], before: dict[str, CameraState]
    ) -> tuple[list[ResultMessage], list[Rejected], dict[str, CameraState]]:
        """Results (in input order), rejected frames and new camera states, each frame planned from
        ``before`` (the cameras' states read once for the batch); when the batch fails, each frame is
        tried alone so that only the frames that fail alone are rejected."""
        if not frames:
            return [], [], {}
        try:
            return self.inference.process(frames, before)
        except REDIS_DOWN:
            raise
        except Exception as e:  # noqa: BLE001 - a model failure must not stop the worker or lose frames
            if len(frames) > 1:
                log.exception(
                    "worker: inference failed on a batch of %d frames; trying each alone", len(frames)
                )
            else:
                log.exception("worker: inference failed on %s frame %d", frames[0].camera, frames[0].seq)
                error = (
                    e
                    if isinstance(e, ModelError)
                    else ModelError(f"inference failed: {type(e).__name__}: {e}")
                )
                return [], [Rejected(frames[0], error.kind, str(error))], {}
        results, bad, states = [], [], {}
        for frame in frames:
            r, b, st = self._infer([frame], {**before, **states})
            results += r
            bad += b
            for cam, state in st.items():
                if cam not in states or state.seq > states[cam].seq:
                    states[cam] = state
        return results, bad, states

    def _hold_full_results(self) -> None:
        """Backpressure: hold back the frames streams whose results stream holds ``results_max_len``
        entries, until it has room again (held ones are re-measured: one pipelined XLEN per step)."""
        held = sorted(self.consumer.held)
        if held:
            pipe = self.client.pipeline(transaction=False)
            for stream in held:
                pipe.xlen(self.keys.results(self.keys.camera_of(stream)))
            self._results_len.update(zip(held, map(int, pipe.execute()), strict=True))
        limit = self.config.results_max_len
        full = {s for s, n in self._results_len.items() if n >= limit}
        for stream in self._results_len.keys() - full - self._gauged:  # every camera has the series
            metrics.RESULTS_FULL.labels(self.keys.camera_of(stream)).set(0)
            self._gauged.add(stream)
        now = time.monotonic()
        for stream in sorted(full - self.consumer.held):
            camera = self.keys.camera_of(stream)
            log.warning(
                "worker: results stream of camera %s holds %d entries (worker.results_max_len %d): its "
                "frames wait until the publisher catches up",
                camera,
                self._results_len[stream],
                limit,
            )
            metrics.RESULTS_FULL.labels(camera).set(1)
            self._held_since[stream] = now
        for stream in sorted(self.consumer.held - full):
            camera = self.keys.camera_of(stream)
            log.info("worker: results stream of camera %s has room again: reading its frames", camera)
            metrics.RESULTS_FULL.labels(camera).set(0)
        for stream in sorted(full | self.consumer.held):
            since = self._held_since.pop(stream, now)
            metrics.BACKPRESSURE_SECONDS.labels(self.keys.camera_of(stream)).inc(now - since)
            if stream in full:
                self._held_since[stream] = now
        self.consumer.held = full

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

    def _deadletter(self, pipe: redis.client.Pipeline, entry: Entry, kind: str, reason: str) -> None:
        self.dead.add(pipe, entry.stream, entry.id, entry.fields, kind, reason)
        self.stats.deadletters += 1

    def _count(self, entries: list[Entry], results: list[ResultMessage]) -> None:
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
            f"{s.deadletters} dead-lettered, {s.reclaimed} reclaimed, {s.skipped} skipped (not searched, each with its event)"
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
