"""The ingest, worker and publisher sections: what each stage reads, writes, and how its loop is timed."""

from __future__ import annotations

from pydantic import Field

from maskwatch.config.base import StrictModel


class IngestSettings(StrictModel):
    """Camera readers (one thread each) and their supervisor loop."""

    stream_max_len: int = Field(300, ge=2, le=1_000_000, description="Bound of a live camera's frames stream")
    file_max_backlog: int = Field(
        64, ge=1, le=100_000, description="A file source waits while this many frames are unprocessed"
    )
    backlog_poll_max_s: float = Field(
        0.1, gt=0, le=10, description="Longest pause between checks of a full file backlog"
    )
    backoff_initial_s: float = Field(1.0, gt=0, le=60, description="First reconnect delay of a failed camera")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="Cap of the reconnect delay (with jitter)")
    redis_retry_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Pause between attempts while Redis is unreachable (camera register, end)",
    )
    block_ms: int = Field(
        500, ge=1, le=60_000, description="Supervisor step: how long it waits between checks of its cameras"
    )
    metrics_port: int = Field(9101, ge=0, le=65535, description="0 disables the metrics server")


class ConsumerGroupSettings(StrictModel):
    """What a stage reading every camera's stream through a consumer group shares (worker, publisher)."""

    consumer: str | None = Field(None, description="Consumer name; default host-pid")
    claim_idle_ms: int = Field(
        30_000, ge=100, le=86_400_000, description="Reclaim messages pending this long"
    )
    discovery_interval_s: float = Field(2.0, gt=0, le=600, description="How often new cameras are looked for")
    lag_metrics_interval_s: float = Field(
        2.0, gt=0, le=600, description="How often stream lag and pending gauges are refreshed"
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        le=1000,
        description="A message is handled at most this many times: a later delivery (reclaimed from a "
        "consumer that died on it, or re-read after a restart) goes to the dead-letter stream instead",
    )
    deadletter_max_payload_bytes: int = Field(
        64 * 1024,
        ge=0,
        le=512 * 1024 * 1024,
        description="Bytes of a message's original fields kept in its dead letter (smallest fields first; "
        "the original size and a truncated flag are recorded)",
    )


class WorkerSettings(ConsumerGroupSettings):
    """Batched inference over every camera's frames stream."""

    group: str = Field("workers", min_length=1, description="Consumer group on every frames stream")
    max_batch: int = Field(16, ge=1, le=1024, description="Frames per inference batch")
    block_ms: int = Field(
        200, ge=1, le=60_000, description="Longest blocking read for the first frame of a batch"
    )
    max_wait_ms: int = Field(
        50, ge=0, le=60_000, description="Longest wait, after the first frame, to fill a batch"
    )
    results_max_len: int = Field(
        300,
        ge=10,
        le=10_000_000,
        description="Bound of each results stream (entries carry JPEGs): a camera's frames are not read "
        "while its results stream holds this many entries (backpressure; unpublished results are never "
        "trimmed)",
    )
    max_frame_pixels: int = Field(
        7680 * 4320,
        ge=64 * 64,
        le=1 << 30,
        description="Largest image (width x height) a frame may declare; larger ones are dead-lettered "
        "before decoding",
    )
    include_image: bool = Field(
        True, description="Carry the JPEG in results (the publisher draws clips from it)"
    )
    max_frame_age_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="Live frames older than this when read are not searched, and get a 'skipped' event (0: "
        "never); files are never skipped",
    )
    latency_target_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="A live frame is searched only while its event can still be published this soon after "
        "capture (by the worker's running cost of search work; cameras searched least recently first); the "
        "others get a 'skipped' event with their tracked faces carried. 0: search every frame; files are "
        "always searched",
    )
    regions: bool = Field(
        True,
        description="Detect in regions around motion and tracked faces when the ingest sends motion (kept "
        "100 % of full detection's faces and the same violations on the shared videos, "
        "benchmarks/gating_quality.py); false: always the whole frame",
    )
    region_size: int = Field(
        320,
        ge=64,
        le=1920,
        multiple_of=32,
        description="Smallest side of a square detection region (native pixels) and the size every region "
        "is resized to for the one batched detector call",
    )
    full_frame_coverage: float = Field(
        0.6, gt=0, le=1, description="Detect the whole frame instead when regions would cover more of it"
    )
    stationary_recheck_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="A tracked face no motion touches is carried forward, and searched again this often",
    )
    classify_min_times: int = Field(
        3,
        ge=0,
        le=1000,
        description="A face's class is settled after this many agreeing classifications (0: never reuse)",
    )
    reclassify_interval_s: float = Field(
        2.0, ge=0, le=3600, description="A settled face's class is reused for at most this long"
    )
    camera_state_ttl_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="A camera's worker state (last faces, class cache) expires after this",
    )
    metrics_port: int = Field(9102, ge=0, le=65535, description="0 disables the metrics server")


class PublisherSettings(ConsumerGroupSettings):
    """Events, violation documents and their delivery, once per frame."""

    group: str = Field("publishers", min_length=1, description="Consumer group on every results stream")
    read_count: int = Field(64, ge=1, le=10_000, description="Results read per step")
    block_ms: int = Field(200, ge=1, le=60_000, description="Longest blocking read of results")
    events_max_len: int = Field(10_000, ge=10, le=10_000_000, description="Bound of the events stream")
    violations_max_len: int = Field(
        10_000, ge=10, le=10_000_000, description="Bound of the violations stream"
    )
    dedup_ttl_s: int = Field(
        7 * 86_400,
        ge=60,
        description="How long a violation or clip document's id is remembered (and an idle camera's window)",
    )
    dedup_window: int = Field(
        2048,
        ge=16,
        le=1_000_000,
        description="Frame events remembered per camera (by seq) to refuse redelivered results; keep it "
        "above fps x (claim_idle_ms + a reclaim) of the fastest camera",
    )
    ledger_interval_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often announced clips of publishers whose heartbeat expired are settled",
    )
    tick_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often the violation monitor ends idle tracks and finishes clips"
    )
    metrics_port: int = Field(9103, ge=0, le=65535, description="0 disables the metrics server")
